//! [`SdpError`]: typed by who is at fault.

/// Why an SDP could not be translated. Each variant says who is at fault, so the caller knows what to
/// answer: `PeerMisbehaved` and `PeerIncompatible` → `488 Not Acceptable Here` (or a BYE when the SDP
/// came in a 2xx/ACK); `OutOfOrder` and `MissingSdesKey` are bugs or misconfiguration on our side
/// (`500`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// the peer's SDP is malformed: line {line}: {what}
    #[error("the peer's SDP is malformed: line {line}: {what}")]
    PeerMisbehaved {
        /// The 1-based line number where the problem is (for something missing: where it was due).
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// the peer's SDP is well-formed but cannot be honoured: {0}
    #[error("the peer's SDP is well-formed but cannot be honoured: {0}")]
    PeerIncompatible(Incompatible),
    /// `{call}` called out of order: {state}
    #[error("`{call}` called out of order: {state}")]
    OutOfOrder {
        /// The method called.
        call: &'static str,
        /// What the session was doing.
        state: &'static str,
    },
    /// SDES-SRTP toward the trunk is configured but the call has no SDES key (LocalMedia::sdes_key)
    #[error("SDES-SRTP toward the trunk is configured but the call has no SDES key (LocalMedia::sdes_key)")]
    MissingSdesKey,
}

/// Why a well-formed SDP cannot be honoured (answer `488 Not Acceptable Here`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incompatible {
    /// no usable audio stream (an active m=audio with a profile we support)
    #[error("no usable audio stream (an active m=audio with a profile we support)")]
    NoAudio,
    /// the browser's audio is not UDP/TLS/RTP/SAVPF (DTLS-SRTP is mandatory for WebRTC)
    #[error("the browser's audio is {0}, not UDP/TLS/RTP/SAVPF (DTLS-SRTP is mandatory for WebRTC)")]
    NotSavpf(String),
    /// the browser's SDP has no ICE credentials (a=ice-ufrag and a=ice-pwd)
    #[error("the browser's SDP has no ICE credentials (a=ice-ufrag and a=ice-pwd)")]
    NoIceCredentials,
    /// the browser's SDP has no DTLS fingerprint with a supported hash (sha-1/256/384/512)
    #[error("the browser's SDP has no DTLS fingerprint with a supported hash (sha-1/256/384/512)")]
    NoFingerprint,
    /// the browser does not multiplex RTP and RTCP (a=rtcp-mux), which the gateway requires
    #[error("the browser does not multiplex RTP and RTCP (a=rtcp-mux), which the gateway requires")]
    NoRtcpMux,
    /// the browser asked for a=setup:holdconn or an impossible DTLS role
    #[error("the browser asked for a=setup:holdconn or an impossible DTLS role")]
    DtlsRole,
    /// no codec is allowed by the policy and supported by both legs
    #[error("no codec is allowed by the policy and supported by both legs")]
    NoCommonCodec,
    /// the trunk's audio uses {0}; only RTP/AVP and RTP/SAVP are supported
    #[error("the trunk's audio uses {0}; only RTP/AVP and RTP/SAVP are supported")]
    TrunkProfile(String),
    /// the trunk offered or answered plain RTP but SDES-SRTP is required by the configuration
    #[error("the trunk offered or answered plain RTP but SDES-SRTP is required by the configuration")]
    SrtpRequired,
    /// the trunk offered SRTP (RTP/SAVP) but SDES-SRTP is off in the configuration
    #[error("the trunk offered SRTP (RTP/SAVP) but SDES-SRTP is off in the configuration")]
    SrtpNotConfigured,
    /// no a=crypto line with a supported suite (AES_CM_128_HMAC_SHA1_80, one inline key, no MKI or session parameters)
    #[error(
        "no a=crypto line with a supported suite (AES_CM_128_HMAC_SHA1_80, one inline key, no MKI or session parameters)"
    )]
    NoUsableCrypto,
    /// the connection address is a host name or multicast group, not a unicast IP address: {0}
    #[error("the connection address is a host name or multicast group, not a unicast IP address: {0}")]
    ConnectionAddress(String),
    /// the answer rejected the audio stream (port 0)
    #[error("the answer rejected the audio stream (port 0)")]
    AudioRejected,
}

impl From<Incompatible> for SdpError {
    fn from(e: Incompatible) -> Self {
        SdpError::PeerIncompatible(e)
    }
}

/// Shorthand for a `PeerMisbehaved` error.
pub(crate) fn malformed(line: usize, what: impl Into<String>) -> SdpError {
    SdpError::PeerMisbehaved {
        line,
        what: what.into(),
    }
}
