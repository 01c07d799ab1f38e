//! The values the caller hands in ([`LocalMedia`], [`CodecPolicy`]) and the words both share
//! ([`Codec`], [`Direction`], [`Fingerprint`], [`DtlsRole`], [`SrtpSuite`]).

use std::fmt;
use std::net::SocketAddr;

/// Our side of one call, handed in by the caller when the call starts. Every random value (ICE
/// credentials, SDES key, `o=` session id) comes from the caller: this crate has no random source.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Our ICE host candidate and `c=` toward the browser. One port: RTP and RTCP are multiplexed
    /// (RFC 5761) and BUNDLE'd.
    pub browser_addr: SocketAddr,
    /// Our RTP address toward the trunk. RTCP is on port + 1 unless the trunk offers `a=rtcp-mux`.
    pub trunk_addr: SocketAddr,
    /// Our ICE username fragment (ICE-lite): 4–256 ICE characters (RFC 8839 §5.4).
    pub ice_ufrag: String,
    /// Our ICE password: 22–256 ICE characters.
    pub ice_pwd: String,
    /// The fingerprint of our DTLS certificate (sha-256 expected).
    pub fingerprint: Fingerprint,
    /// The `o=` session id, one per call, used on both legs. Keep it below 2^63: some SIP stacks read
    /// it into a signed 64-bit integer.
    pub session_id: u64,
    /// Our SDES master key ‖ master salt (16 + 14 bytes) toward the trunk. Required when the policy
    /// says [`TrunkSrtp::Sdes`].
    pub sdes_key: Option<[u8; 30]>,
}

impl fmt::Debug for LocalMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMedia")
            .field("browser_addr", &self.browser_addr)
            .field("trunk_addr", &self.trunk_addr)
            .field("ice_ufrag", &self.ice_ufrag)
            .field("ice_pwd", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .field("session_id", &self.session_id)
            .field("sdes_key", &self.sdes_key.map(|_| "<redacted>"))
            .finish()
    }
}

/// What the gateway may negotiate, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPolicy {
    /// The codecs allowed, most preferred first. Offers we write list them in this order.
    pub codecs: Vec<Codec>,
    /// `a=ptime` we ask the trunk for, in milliseconds (0: none written).
    pub ptime_ms: u32,
    /// Negotiate RFC 4733 `telephone-event` (DTMF) on both legs.
    pub telephone_event: bool,
    /// Media security toward the trunk.
    pub trunk_srtp: TrunkSrtp,
}

/// Media security toward the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkSrtp {
    /// Plain RTP (`RTP/AVP`); an `RTP/SAVP` offer from the trunk is refused.
    Off,
    /// SDES-SRTP (`RTP/SAVP` + `a=crypto`, RFC 4568), required: a plain `RTP/AVP` offer or answer
    /// from the trunk is refused.
    Sdes,
}

/// An audio codec the gateway can carry between the legs (no transcoding: both legs must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Codec {
    /// `opus/48000/2` (RFC 7587), dynamic payload type.
    Opus,
    /// `G722/8000` (RFC 3551: the RTP clock is 8000 although the codec samples at 16 kHz), PT 9.
    G722,
    /// `PCMU/8000`, PT 0.
    Pcmu,
    /// `PCMA/8000`, PT 8.
    Pcma,
}

impl Codec {
    /// Every codec, in no particular order.
    pub const ALL: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

    /// The encoding name as written in `a=rtpmap` (matched case-insensitively when read).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::G722 => "G722",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate (Hz).
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 8_000,
        }
    }

    /// The channel count written in `a=rtpmap` (opus is always `/2`, RFC 7587 §7).
    pub const fn channels(self) -> u8 {
        match self {
            Codec::Opus => 2,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 1,
        }
    }

    /// The static payload type of RFC 3551, if the codec has one.
    pub const fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Opus => None,
            Codec::G722 => Some(9),
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
        }
    }

    /// The codec a static payload type stands for without an `a=rtpmap`.
    pub(crate) const fn from_static_pt(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }
}

/// The media direction written in an SDP, **from the point of view of the peer that wrote it**
/// (RFC 3264 §5.1): `SendOnly` in the browser's SDP means the browser sends and will not receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when no direction attribute is written).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The writer sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// The writer wants to receive media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with the given abilities.
    pub const fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The attribute name (`sendrecv`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// A hash function of `a=fingerprint` (RFC 8122 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashAlgorithm {
    /// `sha-1` (20 bytes).
    Sha1,
    /// `sha-256` (32 bytes): what browsers use and what we send.
    Sha256,
    /// `sha-384` (48 bytes).
    Sha384,
    /// `sha-512` (64 bytes).
    Sha512,
}

impl HashAlgorithm {
    /// The name as written in `a=fingerprint`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha-1",
            HashAlgorithm::Sha256 => "sha-256",
            HashAlgorithm::Sha384 => "sha-384",
            HashAlgorithm::Sha512 => "sha-512",
        }
    }

    /// The digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    pub(crate) fn parse(name: &str) -> Option<HashAlgorithm> {
        [
            HashAlgorithm::Sha1,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }
}

/// A DTLS certificate fingerprint (`a=fingerprint`, RFC 8122). `Debug` and `Display` print it as
/// written in SDP.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The hash function.
    pub algorithm: HashAlgorithm,
    /// The digest ([`HashAlgorithm::digest_len`] bytes when read from a peer).
    pub value: Vec<u8>,
}

impl fmt::Display for Fingerprint {
    /// `sha-256 AB:CD:…`, as in `a=fingerprint`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.algorithm.as_str())?;
        for (i, b) in self.value.iter().enumerate() {
            let sep = if i == 0 { ' ' } else { ':' };
            write!(f, "{sep}{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Our DTLS role on the browser leg (RFC 5763 §5: `a=setup:passive` makes us the DTLS server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello (we wrote, or were answered, `a=setup:active`).
    Client,
    /// We wait for the browser's ClientHello (we wrote `a=setup:passive`).
    Server,
}

/// An SDES-SRTP crypto suite (RFC 4568 §6.2) that the media core implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: 16-byte key, 14-byte salt, 80-bit tag.
    AesCm128HmacSha1_80,
}

impl SrtpSuite {
    /// The name as written in `a=crypto`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<SrtpSuite> {
        (name == "AES_CM_128_HMAC_SHA1_80").then_some(SrtpSuite::AesCm128HmacSha1_80)
    }
}
