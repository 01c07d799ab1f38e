//! [`MediaPlan`]: what the media core needs after each completed offer/answer, and nothing about text.

use std::fmt;
use std::net::SocketAddr;

use crate::model::{Codec, Direction, DtlsRole, Fingerprint, SrtpSuite};

/// The outcome of one offer/answer exchange, for the media core. A new plan replaces the previous one
/// of the same call (re-offers produce complete plans, not deltas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// The browser leg (ICE-lite, DTLS-SRTP, rtcp-mux).
    pub browser: BrowserPlan,
    /// The trunk leg (RTP or SDES-SRTP).
    pub trunk: TrunkPlan,
    /// The codec to send on both legs: the first codec of the answer.
    pub codec: CodecMapping,
    /// The other codecs both legs accepted, in the answer's order. A peer may switch to one of these
    /// at any time (RFC 3264 §5.1); the media core forwards them with the same mapping rule.
    pub alternatives: Vec<CodecMapping>,
    /// RFC 4733 events at [`CodecMapping::clock_rate`] of [`MediaPlan::codec`], when the trunk leg
    /// negotiated them (`None` otherwise).
    pub telephone_event: Option<EventMapping>,
}

/// What the media core needs for the browser leg.
#[derive(Clone, PartialEq, Eq)]
pub struct BrowserPlan {
    /// The browser's ICE username fragment (from its latest SDP).
    pub remote_ice_ufrag: String,
    /// The browser's ICE password.
    pub remote_ice_pwd: String,
    /// The fingerprint the browser's DTLS certificate must match.
    pub remote_fingerprint: Fingerprint,
    /// **Our** DTLS role. Chosen at the first exchange and kept on every re-offer.
    pub dtls_role: DtlsRole,
    /// The browser's UDP host/srflx/relay candidates for component 1 (IP literals only). Informative:
    /// an ICE-lite agent learns the browser's address from its connectivity checks.
    pub remote_candidates: Vec<SocketAddr>,
    /// The negotiated direction of this leg, from the browser's point of view: `receives()` — we may
    /// send to the browser; `sends()` — the browser will send to us.
    pub direction: Direction,
    /// The browser changed its ICE credentials since the previous exchange (ICE restart, RFC 8445
    /// §9): the ICE agent starts over with the new ones. Always false on the first exchange.
    pub ice_restart: bool,
    /// The browser changed its certificate fingerprint, or the DTLS roles were swapped, since the
    /// previous exchange: a new DTLS association must be made (RFC 8842 §5.5). Always false on the
    /// first exchange.
    pub dtls_restart: bool,
    /// The browser accepted reduced-size RTCP (RFC 5506).
    pub rtcp_rsize: bool,
}

impl fmt::Debug for BrowserPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserPlan")
            .field("remote_ice_ufrag", &self.remote_ice_ufrag)
            .field("remote_ice_pwd", &"<redacted>")
            .field("remote_fingerprint", &self.remote_fingerprint)
            .field("dtls_role", &self.dtls_role)
            .field("remote_candidates", &self.remote_candidates)
            .field("direction", &self.direction)
            .field("ice_restart", &self.ice_restart)
            .field("dtls_restart", &self.dtls_restart)
            .field("rtcp_rsize", &self.rtcp_rsize)
            .finish()
    }
}

/// What the media core needs for the trunk leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkPlan {
    /// Where to send RTP. `None` while the trunk holds (`c=0.0.0.0`, RFC 2543) or the port is 0.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` if given (RFC 3605), the RTP address with rtcp-mux, else RTP port
    /// + 1. `None` when `remote_rtp` is.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port on the trunk leg (only when the trunk offered `a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// The trunk's `a=ptime` (what it wants to receive), if written.
    pub ptime_ms: Option<u32>,
    /// The negotiated direction of this leg, from the trunk's point of view (see
    /// [`BrowserPlan::direction`]). A `c=0.0.0.0` hold counts as "does not receive".
    pub direction: Direction,
    /// SDES-SRTP keys, when the trunk leg is `RTP/SAVP`.
    pub sdes: Option<SdesPlan>,
}

/// The SDES-SRTP keys of the trunk leg (RFC 4568).
#[derive(Clone, PartialEq, Eq)]
pub struct SdesPlan {
    /// The crypto suite both sides chose.
    pub suite: SrtpSuite,
    /// The trunk's master key ‖ salt: unprotects what the trunk sends.
    pub remote_key: [u8; 30],
    /// Our master key ‖ salt: protects what we send to the trunk.
    pub local_key: [u8; 30],
    /// The `a=crypto` tag both sides used.
    pub tag: u32,
}

impl fmt::Debug for SdesPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdesPlan")
            .field("suite", &self.suite)
            .field("remote_key", &"<redacted>")
            .field("local_key", &"<redacted>")
            .field("tag", &self.tag)
            .finish()
    }
}

/// One codec both legs negotiated, with its payload type on each leg. A payload type in a peer's SDP
/// is the one that peer receives and, by RFC 3264 §6.1, also sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecMapping {
    /// The codec.
    pub codec: Codec,
    /// The RTP clock rate (8000 for G.722, per RFC 3551).
    pub clock_rate: u32,
    /// The channel count of `a=rtpmap` (2 for opus).
    pub channels: u8,
    /// The payload type on the browser leg.
    pub browser_pt: u8,
    /// The payload type on the trunk leg.
    pub trunk_pt: u8,
}

/// RFC 4733 `telephone-event` on the legs, at the clock rate of the negotiated codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMapping {
    /// 8000 for G.711 and G.722, 48000 for opus.
    pub clock_rate: u32,
    /// The payload type on the browser leg; `None` when the browser leg did not negotiate events
    /// (JsSIP sends DTMF as SIP INFO by default; the gateway may still send events to the trunk).
    pub browser_pt: Option<u8>,
    /// The payload type on the trunk leg.
    pub trunk_pt: u8,
}
