//! The media anchor: what the B2BUA's [`MediaAnchor`] port is in the daemon. Each session description
//! that crosses between the legs is translated by the call's [`SdpSession`] (browser ICE/DTLS-SRTP ⇄
//! trunk RTP/AVP, our addresses, mapped payload types), and each negotiated [`MediaPlan`] starts or
//! updates the call's media session in the [`MediaShell`].
//!
//! **Owns**: the per-call SDP state, the random per-call values (ICE credentials, SSRCs, first sequence
//! numbers, SDES key, `o=` id) and the mapping from the SDP layer's words to the media core's.
//! **Never touches**: SIP messages (the B2BUA hands bodies in), sockets and packets (the media shell).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_config::{CodecName, Config, MediaConfig, TrunkSrtp as ConfigSrtp};
use edge_media::dtls::{DtlsRole, FingerprintHash};
use edge_media::session::{Direction, Leg, Negotiated, SessionConfig};
use edge_media::srtp::Profile;
use edge_sdp::{
    Codec, CodecPolicy, Direction as SdpDirection, DtlsRole as SdpRole, Fingerprint, HashAlgorithm,
    LocalMedia, MediaPlan, SdpError, SdpSession, SrtpSuite, TrunkSrtp,
};
use edge_sip::b2bua::{CallRef, MediaAnchor, MediaRefusal, Peer, SdpKind};

use crate::media_shell::{MediaShell, Ports};

/// One anchored call.
#[derive(Debug)]
struct Anchored {
    sdp: SdpSession,
    /// The ports until the media session starts with them.
    ports: Option<Ports>,
    ice_ufrag: String,
    ice_pwd: String,
    /// The last answer that crossed (from, its bytes, what it became): a 200 repeating the 183's
    /// answer gets the same translation.
    last_answer: Option<(Peer, Vec<u8>, Vec<u8>)>,
}

fn codec(c: CodecName) -> Codec {
    match c {
        CodecName::Opus => Codec::Opus,
        CodecName::G722 => Codec::G722,
        CodecName::Pcmu => Codec::Pcmu,
        CodecName::Pcma => Codec::Pcma,
    }
}

/// Each trunk's own codecs (`[[trunks]] codecs`, by the router's trunk index; empty: `[media]
/// codecs`). Shared with the shell, which replaces them when the configuration is reloaded; read once
/// per call, when its first description crosses.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrunkCodecs(Arc<Mutex<Vec<Vec<Codec>>>>);

impl TrunkCodecs {
    pub(crate) fn new(config: &Config) -> Self {
        let t = Self::default();
        t.set(config);
        t
    }

    /// The trunks of `config` (a reload).
    pub(crate) fn set(&self, config: &Config) {
        let table = config
            .trunks
            .iter()
            .map(|t| t.codecs.iter().copied().map(codec).collect())
            .collect();
        if let Ok(mut guard) = self.0.lock() {
            *guard = table;
        }
    }

    fn of(&self, trunk: usize) -> Option<Vec<Codec>> {
        let guard = self.0.lock().ok()?;
        guard.get(trunk).filter(|c| !c.is_empty()).cloned()
    }
}

/// The daemon's media plane behind the B2BUA.
#[derive(Debug)]
pub(crate) struct Anchor {
    shell: MediaShell,
    policy: CodecPolicy,
    trunk_codecs: TrunkCodecs,
    /// The trunk each new call goes to, until its SDP session opens.
    toward: HashMap<u64, usize>,
    calls: HashMap<u64, Anchored>,
}

impl Anchor {
    pub(crate) fn new(shell: MediaShell, config: &MediaConfig, trunk_codecs: TrunkCodecs) -> Self {
        let codecs = config.codecs.iter().copied().map(codec).collect();
        let policy = CodecPolicy {
            codecs,
            ptime_ms: config.ptime_ms,
            telephone_event: config.telephone_event,
            trunk_srtp: match config.trunk_srtp {
                ConfigSrtp::Off => TrunkSrtp::Off,
                ConfigSrtp::Sdes => TrunkSrtp::Sdes,
            },
        };
        Self {
            shell,
            policy,
            trunk_codecs,
            toward: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    /// The call's state, created (ports bound, SDP session opened) on its first description.
    fn call(&mut self, key: u64) -> Result<&mut Anchored, MediaRefusal> {
        let vacant = match self.calls.entry(key) {
            Entry::Occupied(e) => return Ok(e.into_mut()),
            Entry::Vacant(v) => v,
        };
        let ports = self.shell.allocate().map_err(|e| {
            tracing::warn!(call = key, error = %e, "no media ports");
            MediaRefusal {
                status: 503,
                reason: "Service Unavailable (no media ports)".into(),
            }
        })?;
        tracing::debug!(
            call = key,
            browser = %ports.browser(),
            trunk_rtp = %ports.trunk_rtp(),
            trunk_rtcp = %ports.trunk_rtcp(),
            "media ports"
        );
        let unavailable = |what: &str| {
            tracing::error!(call = key, what, "no entropy for the call's media");
            internal_error()
        };
        let ice_ufrag = ice_chars(8).ok_or_else(|| unavailable("ICE ufrag"))?;
        let ice_pwd = ice_chars(24).ok_or_else(|| unavailable("ICE password"))?;
        let session_id = getrandom::u64().map_err(|_| unavailable("session id"))? >> 1;
        let sdes_key = if self.policy.trunk_srtp == TrunkSrtp::Sdes {
            let mut key = [0u8; 30];
            getrandom::fill(&mut key).map_err(|_| unavailable("SDES key"))?;
            Some(key)
        } else {
            None
        };
        let local = LocalMedia {
            browser_addr: ports.browser(),
            trunk_addr: ports.trunk_rtp(),
            ice_ufrag: ice_ufrag.clone(),
            ice_pwd: ice_pwd.clone(),
            fingerprint: Fingerprint {
                algorithm: HashAlgorithm::Sha256,
                value: self.shell.fingerprint().to_vec(),
            },
            session_id,
            sdes_key,
        };
        let mut policy = self.policy.clone();
        if let Some(codecs) = self.toward.remove(&key).and_then(|t| self.trunk_codecs.of(t)) {
            policy.codecs = codecs;
        }
        let anchored = Anchored {
            sdp: SdpSession::new(local, policy),
            ports: Some(ports),
            ice_ufrag,
            ice_pwd,
            last_answer: None,
        };
        Ok(vacant.insert(anchored))
    }

    /// Starts the call's media with `plan`, or updates it.
    fn apply(&mut self, key: u64, plan: &MediaPlan) -> Result<(), MediaRefusal> {
        let Some(call) = self.calls.get_mut(&key) else {
            return Ok(());
        };
        let neg = negotiated(plan, self.policy.ptime_ms);
        let Some(ports) = call.ports.take() else {
            self.shell.update(key, neg);
            return Ok(());
        };
        let (inactivity_timeout, hold_timeout) = self.shell.timeouts();
        // SSRCs and first sequence numbers (below 2^15, RFC 3550 §5.1) from one random draw.
        let r = getrandom::u64().unwrap_or(0x5eed_5eed_5eed_5eed).to_le_bytes();
        let config = SessionConfig {
            ice_ufrag: call.ice_ufrag.clone(),
            ice_pwd: call.ice_pwd.clone(),
            ssrcs: (
                u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
            ),
            initial_seqs: (
                u16::from_le_bytes([r[1], r[2]]) & 0x7fff,
                u16::from_le_bytes([r[5], r[6]]) & 0x7fff,
            ),
            inactivity_timeout,
            hold_timeout,
        };
        self.shell.start_session(key, ports, config, neg).map_err(|e| {
            tracing::error!(call = key, error = %e, "media session did not start");
            internal_error()
        })
    }
}

impl MediaAnchor for Anchor {
    fn cross(
        &mut self,
        _now: Instant,
        call: CallRef,
        from: Peer,
        kind: SdpKind,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaRefusal> {
        let key = call.id();
        let c = self.call(key)?;
        if kind == SdpKind::Answer
            && let Some((peer, input, output)) = &c.last_answer
            && *peer == from
            && input == sdp
        {
            return Ok(output.clone());
        }
        let crossed = match (from, kind) {
            (Peer::Browser, SdpKind::Offer) => c.sdp.browser_offer(sdp).map(|o| (o, None)),
            (Peer::Trunk, SdpKind::Offer) => c.sdp.trunk_offer(sdp).map(|o| (o, None)),
            (Peer::Trunk, SdpKind::Answer) => c.sdp.trunk_answer(sdp).map(|(o, p)| (o, Some(p))),
            (Peer::Browser, SdpKind::Answer) => c.sdp.browser_answer(sdp).map(|(o, p)| (o, Some(p))),
        };
        let (out, plan) = crossed.map_err(|e| refusal(key, from, kind, &e))?;
        if kind == SdpKind::Answer {
            c.last_answer = Some((from, sdp.to_vec(), out.clone()));
        }
        if let Some(plan) = plan {
            tracing::debug!(call = key, codec = ?plan.codec.codec, "media negotiated");
            self.shell.note_codec(key, plan.codec.codec.encoding_name());
            self.apply(key, &plan)?;
        }
        Ok(out)
    }

    fn offer_failed(&mut self, call: CallRef, _to: Peer) {
        if let Some(c) = self.calls.get_mut(&call.id()) {
            c.sdp.cancel_offer();
        }
    }

    fn dtmf(&mut self, _now: Instant, call: CallRef, from: Peer, digit: char, duration: Duration) -> bool {
        // INFO digits become telephone-events in the media toward the other leg: the browser's toward
        // the trunk, the trunk's toward the browser (whose audio stack plays them as tones).
        if !self.calls.contains_key(&call.id()) {
            return false;
        }
        let toward = match from {
            Peer::Browser => Leg::Trunk,
            Peer::Trunk => Leg::Browser,
        };
        self.shell.dtmf(call.id(), toward, digit, duration);
        true
    }

    fn toward(&mut self, call: CallRef, trunk: usize) {
        if !self.calls.contains_key(&call.id()) {
            self.toward.insert(call.id(), trunk);
        }
    }

    fn release(&mut self, call: CallRef) {
        self.toward.remove(&call.id());
        if self.calls.remove(&call.id()).is_some() {
            self.shell.release(call.id());
        }
    }
}

/// An SDP failure as the SIP status for it, logged with who is at fault.
fn refusal(key: u64, from: Peer, kind: SdpKind, e: &SdpError) -> MediaRefusal {
    match e {
        SdpError::PeerIncompatible(_) | SdpError::PeerMisbehaved { .. } => {
            tracing::info!(call = key, ?from, ?kind, error = %e, "SDP refused");
            MediaRefusal {
                status: 488,
                reason: "Not Acceptable Here".into(),
            }
        }
        SdpError::OutOfOrder { .. } => {
            tracing::warn!(call = key, ?from, ?kind, error = %e, "SDP out of order");
            MediaRefusal {
                status: 491,
                reason: "Request Pending".into(),
            }
        }
        _ => {
            tracing::error!(call = key, ?from, ?kind, error = %e, "SDP refused");
            internal_error()
        }
    }
}

/// Our fault, not the peer's: 500.
fn internal_error() -> MediaRefusal {
    MediaRefusal {
        status: 500,
        reason: "Server Internal Error".into(),
    }
}

/// The SDP layer's plan in the media core's words.
fn negotiated(plan: &MediaPlan, default_ptime_ms: u32) -> Negotiated {
    let fp = &plan.browser.remote_fingerprint;
    let hash = match fp.algorithm {
        HashAlgorithm::Sha1 => FingerprintHash::Sha1,
        HashAlgorithm::Sha256 => FingerprintHash::Sha256,
        HashAlgorithm::Sha384 => FingerprintHash::Sha384,
        HashAlgorithm::Sha512 => FingerprintHash::Sha512,
    };
    let codec = &plan.codec;
    // The same event rate on both legs (the SDP layer sees to it), so relayed events need no scaling;
    // generated ones count their duration in it.
    let telephone_event = plan
        .telephone_event
        .as_ref()
        .map(|e| (e.browser_pt.unwrap_or(u8::MAX), e.trunk_pt, e.clock_rate));
    Negotiated {
        browser_ufrag: plan.browser.remote_ice_ufrag.clone(),
        browser_fingerprint: (hash, fp.value.clone()),
        dtls_role: match plan.browser.dtls_role {
            SdpRole::Client => DtlsRole::Client,
            SdpRole::Server => DtlsRole::Server,
        },
        trunk_rtp: plan.trunk.remote_rtp,
        trunk_rtcp: plan.trunk.remote_rtcp,
        trunk_rtcp_mux: plan.trunk.rtcp_mux,
        trunk_sdes: plan.trunk.sdes.as_ref().map(|s| {
            // AES_CM_128_HMAC_SHA1_80 is the one suite the SDP layer negotiates (the enum is open for
            // more, which arrive here together with their profile in the media core).
            let profile = match s.suite {
                SrtpSuite::AesCm128HmacSha1_80 => Profile::Aes128CmHmacSha1_80,
                _ => Profile::Aes128CmHmacSha1_80,
            };
            (profile, s.local_key.to_vec(), s.remote_key.to_vec())
        }),
        codec: (codec.clock_rate, codec.browser_pt, codec.trunk_pt),
        alternatives: plan
            .alternatives
            .iter()
            .map(|c| (c.clock_rate, c.browser_pt, c.trunk_pt))
            .collect(),
        telephone_event,
        browser_direction: ours(plan.browser.direction),
        trunk_direction: ours(plan.trunk.direction),
        ptime: Duration::from_millis(u64::from(plan.trunk.ptime_ms.unwrap_or(default_ptime_ms))),
    }
}

/// A leg's direction from the peer's point of view (the SDP layer's) as ours (the media core's).
fn ours(peer: SdpDirection) -> Direction {
    match (peer.receives(), peer.sends()) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// `n` random ICE characters (RFC 8839 §5.4: ALPHA / DIGIT / "+" / "/").
fn ice_chars(n: usize) -> Option<String> {
    const ICE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    Some(
        bytes
            .iter()
            .map(|b| char::from(ICE[usize::from(b & 63)]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_flip_to_our_point_of_view() {
        assert_eq!(ours(SdpDirection::SendRecv), Direction::SendRecv);
        // The peer only sends (holds us): we only receive.
        assert_eq!(ours(SdpDirection::SendOnly), Direction::RecvOnly);
        assert_eq!(ours(SdpDirection::RecvOnly), Direction::SendOnly);
        assert_eq!(ours(SdpDirection::Inactive), Direction::Inactive);
    }

    #[test]
    fn ice_credentials_are_ice_characters_of_the_asked_length() {
        let pwd = ice_chars(24).unwrap();
        assert_eq!(pwd.len(), 24);
        assert!(
            pwd.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        );
        assert_ne!(pwd, ice_chars(24).unwrap());
    }
}
