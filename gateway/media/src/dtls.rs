//! DTLS-SRTP for the browser leg (RFC 5763, RFC 5764): one association per call on webrtc-rs's sans-IO
//! `rtc-dtls`, the peer authenticated by the certificate fingerprint from its SDP (never by a CA), the
//! SRTP master keys exported from the finished handshake.
//!
//! The association does not know addresses: datagrams the demultiplexer classified as DTLS go in,
//! records to send come out, and the caller sends them to wherever ICE says the browser is. That is
//! what keeps the association alive when the browser's address changes (an ICE switch is not a new
//! DTLS session), and what lets the role be fixed at construction and kept for the call's life
//! (re-offers never flip it: the SDP layer answers with the same `a=setup`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;

use crate::srtp::Profile;

/// The address the association is filed under inside `rtc-dtls` (which keys associations by peer
/// address); never used to send anything.
const ASSOCIATION_KEY: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 9);

/// Our DTLS role on a leg: chosen once by the SDP layer from `a=setup`, kept for the whole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello (we answered `a=setup:active`).
    Client,
    /// The browser sends the ClientHello (we answered `a=setup:passive`).
    Server,
}

/// A hash function of `a=fingerprint` (RFC 8122 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintHash {
    /// `sha-1` (legacy peers)
    Sha1,
    /// `sha-256` (what browsers send)
    Sha256,
    /// `sha-384`
    Sha384,
    /// `sha-512`
    Sha512,
}

impl FingerprintHash {
    fn digest(self, der: &[u8]) -> ring::digest::Digest {
        let alg = match self {
            Self::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha384 => &ring::digest::SHA384,
            Self::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, der)
    }
}

/// Why DTLS failed. The handshake is the peer's to complete; a failure ends the call's media.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// our certificate could not be made or loaded (local fault)
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// the DTLS configuration was refused by the library (local fault)
    #[error("DTLS configuration: {0}")]
    Config(String),
    /// the handshake failed: the peer misbehaved, its certificate did not match the SDP
    /// fingerprint, or it offered nothing we support
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// the handshake completed without an SRTP profile we support
    #[error("DTLS completed without a supported SRTP protection profile")]
    NoSrtpProfile,
    /// the peer closed the association (close_notify): not a failure, it is hanging up
    #[error("the peer closed DTLS (close_notify)")]
    Closed,
}

/// The gateway's DTLS identity: one self-signed ECDSA P-256 certificate for every call (its
/// fingerprint goes into every SDP we send to a browser).
#[derive(Clone)]
pub struct DtlsIdentity {
    certificate: Certificate,
    fingerprint: [u8; 32],
    provider: Arc<dyn rtc_crypto::RTCCryptoProvider>,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl DtlsIdentity {
    /// A fresh self-signed certificate (ECDSA P-256, as browsers use).
    pub fn generate() -> Result<Self, DtlsError> {
        let provider = rtc_crypto::default_provider().map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let certificate = Certificate::generate_self_signed(vec!["rtc-edge".to_owned()], provider.crypto())
            .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| DtlsError::Certificate("no certificate generated".into()))?;
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(FingerprintHash::Sha256.digest(der.as_ref()).as_ref());
        Ok(Self {
            certificate,
            fingerprint,
            provider,
        })
    }

    /// SHA-256 of our certificate, for `a=fingerprint:sha-256`.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        self.fingerprint
    }
}

/// SRTP master keys exported from a finished handshake (RFC 5764 §4.2), already split by direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: Profile,
    /// Key and salt we protect with.
    pub local_key: [u8; 16],
    /// Salt we protect with (`profile.salt_len()` bytes used).
    pub local_salt: [u8; 14],
    /// Key the peer protects with.
    pub remote_key: [u8; 16],
    /// Salt the peer protects with.
    pub remote_salt: [u8; 14],
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// One DTLS association (one browser leg).
pub struct DtlsTransport {
    role: DtlsRole,
    endpoint: Endpoint,
    client_config: Option<Arc<HandshakeConfig>>,
    started: bool,
    keys: Option<SrtpKeys>,
    out: std::collections::VecDeque<Vec<u8>>,
    /// The association's retransmission deadline, read after every call that can move it: the media
    /// path asks for it per packet, and the endpoint would look it up in its (cold) table each time.
    timer: Option<Instant>,
}

impl std::fmt::Debug for DtlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsTransport")
            .field("role", &self.role)
            .field("started", &self.started)
            .field("connected", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

impl DtlsTransport {
    /// An association in `role` that accepts only a peer whose certificate hashes (with `hash`) to
    /// `remote_fingerprint`.
    pub fn new(
        identity: &DtlsIdentity,
        role: DtlsRole,
        hash: FingerprintHash,
        remote_fingerprint: &[u8],
    ) -> Result<Self, DtlsError> {
        let expected = remote_fingerprint.to_vec();
        let verify: rtc_dtls::config::VerifyPeerCertificateFn = Arc::new(move |certs, _| {
            let leaf = certs.first().ok_or(rtc_shared::error::Error::ErrNoCertificates)?;
            if hash.digest(leaf).as_ref() == expected.as_slice() {
                Ok(())
            } else {
                Err(rtc_shared::error::Error::Other(
                    "peer certificate does not match the SDP fingerprint".into(),
                ))
            }
        });
        let builder = ConfigBuilder::default()
            .with_crypto_provider(identity.provider.clone())
            .with_certificates(vec![identity.certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true) // no CA chain in WebRTC: the fingerprint check below is the trust
            .with_verify_peer_certificate(Some(verify));
        let (server_config, client_config) = match role {
            DtlsRole::Server => {
                let config = builder
                    .with_client_auth(ClientAuthType::RequireAnyClientCert)
                    .build(false, None)
                    .map_err(|e| DtlsError::Config(e.to_string()))?;
                (Some(Arc::new(config)), None)
            }
            DtlsRole::Client => {
                let config = builder
                    .build(true, Some(ASSOCIATION_KEY))
                    .map_err(|e| DtlsError::Config(e.to_string()))?;
                (None, Some(Arc::new(config)))
            }
        };
        let endpoint = Endpoint::new(ASSOCIATION_KEY, rtc_shared::TransportProtocol::UDP, server_config);
        Ok(Self {
            role,
            endpoint,
            client_config,
            started: false,
            keys: None,
            out: std::collections::VecDeque::new(),
            timer: None,
        })
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// The exported SRTP keys, once the handshake has completed.
    pub fn srtp_keys(&self) -> Option<&SrtpKeys> {
        self.keys.as_ref()
    }

    /// Starts the handshake if we are the client (call once ICE knows where the browser is); does
    /// nothing for a server or a second time.
    pub fn start(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.started || self.role == DtlsRole::Server {
            return Ok(());
        }
        self.started = true;
        let config = self
            .client_config
            .clone()
            .ok_or_else(|| DtlsError::Config("no client config".into()))?;
        self.endpoint
            .connect(now, ASSOCIATION_KEY, config, None)
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        self.drain();
        Ok(())
    }

    /// Feeds one DTLS datagram. Returns `Ok(true)` when this datagram completed the handshake (the
    /// keys are then in [`Self::srtp_keys`]).
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<bool, DtlsError> {
        self.started = true;
        let result = self.endpoint.read(now, ASSOCIATION_KEY, None, datagram.into());
        self.drain();
        let events = result.map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let mut completed = false;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => {
                    self.keys = Some(self.export()?);
                    completed = true;
                }
                EndpointEvent::PeerClosed => return Err(DtlsError::Closed),
                // WebRTC audio carries no data channel on this leg: application data is ignored.
                _ => {}
            }
        }
        Ok(completed)
    }

    /// Retransmits a flight whose timer expired.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            let result = self.endpoint.handle_timeout(ASSOCIATION_KEY, now);
            self.drain();
            result.map_err(|e| DtlsError::Handshake(e.to_string()))?;
        }
        Ok(())
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The next record to send to the browser.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Collects what the endpoint wants sent, and its timer (every call that changes either ends here).
    fn drain(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.out.push_back(t.message.to_vec());
        }
        self.timer = self.endpoint.poll_timeout(&ASSOCIATION_KEY);
    }

    fn export(&self) -> Result<SrtpKeys, DtlsError> {
        let state = self
            .endpoint
            .get_connection_state(ASSOCIATION_KEY)
            .ok_or(DtlsError::NoSrtpProfile)?;
        let profile =
            Profile::from_dtls_id(state.srtp_protection_profile() as u16).ok_or(DtlsError::NoSrtpProfile)?;
        let (k, s) = (profile.key_len(), profile.salt_len());
        let material = state
            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (k + s))
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        let m: &[u8] = material.as_ref();
        // RFC 5764 §4.2: client key | server key | client salt | server salt.
        let (client_key, rest) = m.split_at(k);
        let (server_key, rest) = rest.split_at(k);
        let (client_salt, server_salt) = rest.split_at(s);
        let (lk, ls, rk, rs) = match self.role {
            DtlsRole::Client => (client_key, client_salt, server_key, server_salt),
            DtlsRole::Server => (server_key, server_salt, client_key, client_salt),
        };
        let mut keys = SrtpKeys {
            profile,
            local_key: [0; 16],
            local_salt: [0; 14],
            remote_key: [0; 16],
            remote_salt: [0; 14],
        };
        keys.local_key.copy_from_slice(lk);
        keys.local_salt[..s].copy_from_slice(ls);
        keys.remote_key.copy_from_slice(rk);
        keys.remote_salt[..s].copy_from_slice(rs);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::dimpl_peer;
    use std::time::Duration;

    struct Outcome {
        ours: Option<SrtpKeys>,
        theirs: Option<(Vec<u8>, dimpl::SrtpProfile)>,
        their_view_of_our_cert: Option<Vec<u8>>,
        error: Option<String>,
    }

    /// Runs both ends against each other on fake time, dropping the datagrams whose ordinal is in
    /// `lose` (to exercise retransmission).
    fn run(ours: &mut DtlsTransport, theirs: &mut dimpl::Dtls, mut now: Instant, lose: &[usize]) -> Outcome {
        let mut outcome = Outcome {
            ours: None,
            theirs: None,
            their_view_of_our_cert: None,
            error: None,
        };
        let mut n = 0usize;
        if let Err(e) = ours.start(now) {
            outcome.error = Some(e.to_string());
            return outcome;
        }
        for _ in 0..200 {
            let mut progressed = false;
            while let Some(p) = ours.poll_transmit() {
                n += 1;
                progressed = true;
                if !lose.contains(&n) {
                    let _ = theirs.handle_packet(&p);
                }
            }
            let mut buf = vec![0u8; 4096];
            let mut to_us = Vec::new();
            let their_timer;
            loop {
                match theirs.poll_output(&mut buf) {
                    dimpl::Output::Packet(p) => to_us.push(p.to_vec()),
                    dimpl::Output::Timeout(t) => {
                        their_timer = Some(t);
                        break;
                    }
                    dimpl::Output::KeyingMaterial(k, p) => outcome.theirs = Some((k.to_vec(), p)),
                    dimpl::Output::PeerCert(c) => outcome.their_view_of_our_cert = Some(c.to_vec()),
                    _ => {}
                }
            }
            for p in to_us {
                n += 1;
                progressed = true;
                if lose.contains(&n) {
                    continue;
                }
                match ours.handle(now, &p) {
                    Ok(true) => outcome.ours = ours.srtp_keys().cloned(),
                    Ok(false) => {}
                    Err(e) => {
                        outcome.error = Some(e.to_string());
                        return outcome;
                    }
                }
            }
            if outcome.ours.is_some() && outcome.theirs.is_some() {
                return outcome;
            }
            if !progressed {
                // Nothing in flight: advance fake time to the earliest timer.
                let next = [ours.poll_timeout(), their_timer].into_iter().flatten().min();
                now = next.map_or(now + Duration::from_millis(100), |t| t.max(now));
                if let Err(e) = ours.handle_timeout(now) {
                    outcome.error = Some(e.to_string());
                    return outcome;
                }
                let _ = theirs.handle_timeout(now);
            }
        }
        outcome
    }

    fn check_keys(ours: &SrtpKeys, theirs: &(Vec<u8>, dimpl::SrtpProfile), we_are_client: bool) {
        let (k, s) = (ours.profile.key_len(), ours.profile.salt_len());
        let m = &theirs.0;
        let (ck, sk, cs, ss) = (
            &m[..k],
            &m[k..2 * k],
            &m[2 * k..2 * k + s],
            &m[2 * k + s..2 * (k + s)],
        );
        let (lk, ls, rk, rs) = if we_are_client {
            (ck, cs, sk, ss)
        } else {
            (sk, ss, ck, cs)
        };
        assert_eq!(&ours.local_key[..], lk);
        assert_eq!(&ours.local_salt[..s], ls);
        assert_eq!(&ours.remote_key[..], rk);
        assert_eq!(&ours.remote_salt[..s], rs);
    }

    #[test]
    fn handshake_as_server_against_dimpl() {
        let now = crate::test_epoch();
        let identity = DtlsIdentity::generate().unwrap();
        let (mut browser, fp) = dimpl_peer(true, now);
        let mut ours = DtlsTransport::new(&identity, DtlsRole::Server, FingerprintHash::Sha256, &fp).unwrap();
        let o = run(&mut ours, &mut browser, now, &[]);
        assert_eq!(o.error, None);
        let keys = o.ours.expect("our side completed");
        check_keys(&keys, &o.theirs.expect("dimpl completed"), false);
        // dimpl saw the certificate whose fingerprint we put in our SDP.
        let seen = o.their_view_of_our_cert.unwrap();
        assert_eq!(
            ring::digest::digest(&ring::digest::SHA256, &seen).as_ref(),
            identity.fingerprint_sha256()
        );
    }

    #[test]
    fn handshake_as_client_against_dimpl_with_lost_flights() {
        let now = crate::test_epoch();
        let identity = DtlsIdentity::generate().unwrap();
        let (mut browser, fp) = dimpl_peer(false, now);
        let mut ours = DtlsTransport::new(&identity, DtlsRole::Client, FingerprintHash::Sha256, &fp).unwrap();
        // Lose our first ClientHello and the peer's first reply: both sides must retransmit.
        let o = run(&mut ours, &mut browser, now, &[1, 3]);
        assert_eq!(o.error, None);
        check_keys(
            &o.ours.expect("our side completed"),
            &o.theirs.expect("dimpl completed"),
            true,
        );
    }

    #[test]
    fn wrong_fingerprint_fails_the_handshake() {
        let now = crate::test_epoch();
        let identity = DtlsIdentity::generate().unwrap();
        let (mut browser, mut fp) = dimpl_peer(true, now);
        fp[0] ^= 1;
        let mut ours = DtlsTransport::new(&identity, DtlsRole::Server, FingerprintHash::Sha256, &fp).unwrap();
        let o = run(&mut ours, &mut browser, now, &[]);
        assert!(o.ours.is_none());
        assert!(o.error.is_some(), "the mismatch is reported");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let identity = DtlsIdentity::generate().unwrap();
        let mut ours =
            DtlsTransport::new(&identity, DtlsRole::Server, FingerprintHash::Sha256, &[0; 32]).unwrap();
        let now = crate::test_epoch();
        for junk in [&[][..], &[20], &[22, 254, 253, 0, 0], &[22u8; 300]] {
            let _ = ours.handle(now, junk);
        }
        assert!(ours.srtp_keys().is_none());
    }
}
