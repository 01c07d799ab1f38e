//! ICE-lite responder (RFC 8445 §2.5 and §7.3, RFC 7675 consent freshness) with its own small STUN
//! codec (RFC 5389): only what a lite agent needs — verify a Binding request (USERNAME,
//! MESSAGE-INTEGRITY, FINGERPRINT, USE-CANDIDATE) and answer it (XOR-MAPPED-ADDRESS,
//! MESSAGE-INTEGRITY, FINGERPRINT), written into the caller's buffer without allocating.
//!
//! A lite agent never sends checks: the browser (always controlling) checks us, and nominates a pair
//! with USE-CANDIDATE. Until then we answer on the address of the last authenticated check; after,
//! on the nominated one. Consent (RFC 7675) is the browser's checks arriving at all: none for
//! [`CONSENT_TIMEOUT`] and we must stop sending.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// RFC 7675 §5.1: consent expires 30 s after the last authenticated check.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

const MAGIC_COOKIE: u32 = 0x2112_a442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const ATTR_ICE_CONTROLLED: u16 = 0x8029;
const ATTR_ICE_CONTROLLING: u16 = 0x802a;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Whether `p` looks like STUN (RFC 7983: first byte 0–3) with the RFC 5389 magic cookie.
pub fn is_stun(p: &[u8]) -> bool {
    p.len() >= 20 && p[0] < 4 && p[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// What a received STUN packet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceInput {
    /// A valid check: send the `len` bytes written to the output buffer back to `to`.
    /// `nominated` is set when this check nominated (or re-nominated) `to`.
    Respond {
        len: usize,
        to: SocketAddr,
        nominated: bool,
    },
    /// Not for us, unauthenticated or malformed: dropped (and counted by the caller).
    Dropped(IceDrop),
}

/// Why a STUN packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IceDrop {
    /// malformed STUN message
    #[error("malformed STUN message")]
    Malformed,
    /// not a Binding request (a lite agent sends no requests, so expects no responses)
    #[error("not a Binding request")]
    NotARequest,
    /// USERNAME missing or not ours
    #[error("USERNAME missing or not ours")]
    WrongUsername,
    /// MESSAGE-INTEGRITY missing or wrong
    #[error("MESSAGE-INTEGRITY missing or wrong")]
    BadIntegrity,
    /// FINGERPRINT wrong
    #[error("FINGERPRINT wrong")]
    BadFingerprint,
    /// the output buffer is too small for the response
    #[error("output buffer too small")]
    NoRoom,
}

/// The ICE-lite agent of one browser leg.
#[derive(Debug)]
pub struct IceLite {
    local_ufrag: String,
    local_pwd: String,
    remote_ufrag: String,
    /// Where media goes: the nominated address, else the last authenticated check's source.
    selected: Option<SocketAddr>,
    nominated: bool,
    last_check: Option<Instant>,
}

impl IceLite {
    /// An agent with our credentials and the browser's ufrag (from its SDP).
    pub fn new(local_ufrag: &str, local_pwd: &str, remote_ufrag: &str) -> Self {
        Self {
            local_ufrag: local_ufrag.to_owned(),
            local_pwd: local_pwd.to_owned(),
            remote_ufrag: remote_ufrag.to_owned(),
            selected: None,
            nominated: false,
            last_check: None,
        }
    }

    /// New remote credentials (an ICE restart in a re-offer): forget the pair, wait for new checks.
    pub fn restart(&mut self, local_ufrag: &str, local_pwd: &str, remote_ufrag: &str) {
        *self = Self::new(local_ufrag, local_pwd, remote_ufrag);
    }

    /// Where to send media to the browser: `None` until a check arrives, and again once consent
    /// has expired.
    pub fn remote(&self, now: Instant) -> Option<SocketAddr> {
        self.consent_deadline().filter(|d| now < *d).and(self.selected)
    }

    /// The browser's address as ICE knows it, whether or not consent is still fresh.
    pub fn remote_any(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// Whether the browser nominated a pair.
    pub fn is_nominated(&self) -> bool {
        self.nominated
    }

    /// When consent expires unless another check arrives (`None` before the first check).
    pub fn consent_deadline(&self) -> Option<Instant> {
        self.last_check.map(|t| t + CONSENT_TIMEOUT)
    }

    /// Handles a STUN packet from `from`; writes the response (if any) into `out`.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, p: &[u8], out: &mut [u8]) -> IceInput {
        match self.check(p) {
            Ok(use_candidate) => {
                let Some(len) = binding_success(p, from, self.local_pwd.as_bytes(), out) else {
                    return IceInput::Dropped(IceDrop::NoRoom);
                };
                self.last_check = Some(now);
                let mut nominated = false;
                if use_candidate {
                    nominated = !self.nominated || self.selected != Some(from);
                    self.nominated = true;
                    self.selected = Some(from);
                } else if !self.nominated {
                    self.selected = Some(from);
                }
                IceInput::Respond {
                    len,
                    to: from,
                    nominated,
                }
            }
            Err(why) => IceInput::Dropped(why),
        }
    }

    /// Verifies a Binding request; returns whether it carries USE-CANDIDATE.
    fn check(&self, p: &[u8]) -> Result<bool, IceDrop> {
        let msg = Stun::parse(p).ok_or(IceDrop::Malformed)?;
        if msg.kind != BINDING_REQUEST {
            return Err(IceDrop::NotARequest);
        }
        let mut username = None;
        let mut integrity = None;
        let mut fingerprint = None;
        let mut use_candidate = false;
        for (at, kind, value) in msg.attributes() {
            // RFC 5389 §15.4/15.5: after MESSAGE-INTEGRITY only FINGERPRINT may follow.
            if integrity.is_some() && kind != ATTR_FINGERPRINT {
                continue;
            }
            match kind {
                ATTR_USERNAME => username = Some(value),
                ATTR_MESSAGE_INTEGRITY => integrity = Some((at, value)),
                ATTR_FINGERPRINT => fingerprint = Some((at, value)),
                ATTR_USE_CANDIDATE => use_candidate = true,
                ATTR_PRIORITY | ATTR_ICE_CONTROLLED | ATTR_ICE_CONTROLLING => {}
                _ => {}
            }
        }
        if let Some((at, value)) = fingerprint {
            let expect = crc32(&with_length(p, at, at + 8)) ^ FINGERPRINT_XOR;
            if value != expect.to_be_bytes() {
                return Err(IceDrop::BadFingerprint);
            }
        }
        // USERNAME is "<our ufrag>:<their ufrag>" (RFC 8445 §7.2.2).
        let username = username.ok_or(IceDrop::WrongUsername)?;
        let ours = self.local_ufrag.as_bytes();
        let theirs = self.remote_ufrag.as_bytes();
        if username.len() != ours.len() + 1 + theirs.len()
            || !username.starts_with(ours)
            || username.get(ours.len()) != Some(&b':')
            || (!theirs.is_empty() && !username.ends_with(theirs))
        {
            return Err(IceDrop::WrongUsername);
        }
        let (at, value) = integrity.ok_or(IceDrop::BadIntegrity)?;
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(self.local_pwd.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(&with_length(p, at, at + 24));
        if mac.verify_slice(value).is_err() {
            return Err(IceDrop::BadIntegrity);
        }
        Ok(use_candidate)
    }
}

/// `p[..end_of_prefix]` with the header's length field set as if the message ended at `end`
/// (RFC 5389 §15.4: MESSAGE-INTEGRITY and FINGERPRINT cover the header with an adjusted length).
fn with_length(p: &[u8], prefix: usize, end: usize) -> heapless::Vec<u8, 1500> {
    let mut v = heapless::Vec::new();
    let _ = v.extend_from_slice(p.get(..prefix).unwrap_or_default());
    let len = u16::try_from(end.saturating_sub(20))
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    if let Some(field) = v.get_mut(2..4) {
        field.copy_from_slice(&len);
    }
    v
}

/// A parsed STUN header over a borrowed packet.
struct Stun<'a> {
    kind: u16,
    body: &'a [u8],
}

impl<'a> Stun<'a> {
    fn parse(p: &'a [u8]) -> Option<Self> {
        if !is_stun(p) || p.len() > 1500 {
            return None;
        }
        let kind = u16::from_be_bytes([p[0], p[1]]);
        let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
        if len % 4 != 0 || 20 + len != p.len() {
            return None;
        }
        let body = &p[20..];
        // Every attribute must fit.
        let mut at = 0;
        while at < body.len() {
            let h = body.get(at..at + 4)?;
            let alen = usize::from(u16::from_be_bytes([h[2], h[3]]));
            at += 4 + alen.div_ceil(4) * 4;
        }
        (at == body.len()).then_some(Self { kind, body })
    }

    /// (offset of the attribute in the whole message, type, value)
    fn attributes(&self) -> impl Iterator<Item = (usize, u16, &'a [u8])> + 'a {
        let body = self.body;
        let mut at = 0;
        std::iter::from_fn(move || {
            let h = body.get(at..at + 4)?;
            let kind = u16::from_be_bytes([h[0], h[1]]);
            let alen = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let value = body.get(at + 4..at + 4 + alen)?;
            let start = at;
            at += 4 + alen.div_ceil(4) * 4;
            Some((20 + start, kind, value))
        })
    }
}

/// Writes a Binding success response to `request` from `from` into `out`; returns its length.
fn binding_success(request: &[u8], from: SocketAddr, pwd: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut w = Writer::new(out, BINDING_SUCCESS, request.get(8..20)?)?;
    let mut xaddr = [0u8; 20];
    xaddr[1] = if from.is_ipv4() { 1 } else { 2 };
    let port = from.port() ^ 0x2112;
    xaddr[2..4].copy_from_slice(&port.to_be_bytes());
    let xlen = match from.ip() {
        IpAddr::V4(ip) => {
            let v = u32::from(ip) ^ MAGIC_COOKIE;
            xaddr[4..8].copy_from_slice(&v.to_be_bytes());
            8
        }
        IpAddr::V6(ip) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            key[4..].copy_from_slice(request.get(8..20)?);
            for (i, (o, k)) in ip.octets().iter().zip(key).enumerate() {
                xaddr[4 + i] = o ^ k;
            }
            20
        }
    };
    w.attr(ATTR_XOR_MAPPED_ADDRESS, &xaddr[..xlen])?;
    w.integrity(pwd)?;
    w.fingerprint()
}

/// A STUN message being written into a caller's buffer.
struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8], kind: u16, transaction: &[u8]) -> Option<Self> {
        let head = out.get_mut(..20)?;
        head[..2].copy_from_slice(&kind.to_be_bytes());
        head[2..4].copy_from_slice(&[0, 0]);
        head[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        head[8..20].copy_from_slice(transaction);
        Some(Self { out, len: 20 })
    }

    fn set_length(&mut self, len: usize) -> Option<()> {
        let l = u16::try_from(len - 20).ok()?.to_be_bytes();
        self.out.get_mut(2..4)?.copy_from_slice(&l);
        Some(())
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> Option<()> {
        let padded = value.len().div_ceil(4) * 4;
        let slot = self.out.get_mut(self.len..self.len + 4 + padded)?;
        slot[..2].copy_from_slice(&kind.to_be_bytes());
        slot[2..4].copy_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
        slot[4..4 + value.len()].copy_from_slice(value);
        slot[4 + value.len()..].fill(0);
        self.len += 4 + padded;
        self.set_length(self.len)
    }

    fn integrity(&mut self, key: &[u8]) -> Option<()> {
        self.set_length(self.len + 24)?;
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok()?;
        mac.update(self.out.get(..self.len)?);
        let tag = mac.finalize().into_bytes();
        self.attr(ATTR_MESSAGE_INTEGRITY, &tag)
    }

    fn fingerprint(mut self) -> Option<usize> {
        self.set_length(self.len + 8)?;
        let crc = crc32(self.out.get(..self.len)?) ^ FINGERPRINT_XOR;
        self.attr(ATTR_FINGERPRINT, &crc.to_be_bytes())?;
        Some(self.len)
    }
}

/// CRC-32 (ISO-HDLC, as in RFC 5389 §15.5).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            #[allow(clippy::cast_possible_truncation)] // i < 256
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[usize::from(c.to_le_bytes()[0] ^ b)] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{crypto, stun_request as request};
    use rtc_stun::fingerprint::FINGERPRINT;
    use rtc_stun::integrity::MessageIntegrity;
    use rtc_stun::message::{Getter, Message};
    use rtc_stun::xoraddr::XorMappedAddress;

    fn t0() -> Instant {
        crate::test_epoch()
    }

    #[test]
    fn answers_a_browser_check_that_rtc_stun_verifies() {
        let mut ice = IceLite::new("gwufrag", "gwpassword0123456789ab", "brws");
        let from: SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let req = request("gwufrag:brws", "gwpassword0123456789ab", false);
        let mut out = [0u8; 256];
        let r = ice.handle(t0(), from, &req, &mut out);
        let IceInput::Respond { len, to, nominated } = r else {
            panic!("{r:?}")
        };
        assert_eq!((to, nominated), (from, false));
        assert_eq!(ice.remote(t0()), Some(from));
        // The response parses and verifies with the independent codec.
        let mut m = Message::new();
        m.raw = out[..len].to_vec();
        m.decode().unwrap();
        assert_eq!(m.typ.value(), BINDING_SUCCESS);
        let mut xor = XorMappedAddress::default();
        xor.get_from(&m).unwrap();
        assert_eq!(SocketAddr::new(xor.ip, xor.port), from);
        MessageIntegrity::check(&mut m, b"gwpassword0123456789ab", crypto().crypto()).unwrap();
        FINGERPRINT.check(&m).unwrap();
    }

    #[test]
    fn use_candidate_nominates_and_ipv6_maps() {
        let mut ice = IceLite::new("u1", "p1p1p1p1p1p1p1p1p1p1p1", "r1");
        let a: SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::7]:50002".parse().unwrap();
        let mut out = [0u8; 256];
        let req = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        assert!(matches!(
            ice.handle(t0(), b, &req, &mut out),
            IceInput::Respond { nominated: true, .. }
        ));
        // A later non-nominating check from elsewhere does not move media.
        let req2 = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", false);
        assert!(matches!(
            ice.handle(t0(), a, &req2, &mut out),
            IceInput::Respond { nominated: false, .. }
        ));
        assert_eq!(ice.remote(t0()), Some(b));
        assert!(ice.is_nominated());
        let IceInput::Respond { len, .. } = ice.handle(t0(), b, &req, &mut out) else {
            panic!()
        };
        let mut m = Message::new();
        m.raw = out[..len].to_vec();
        m.decode().unwrap();
        let mut xor = XorMappedAddress::default();
        xor.get_from(&m).unwrap();
        assert_eq!(SocketAddr::new(xor.ip, xor.port), b);
    }

    #[test]
    fn refuses_wrong_credentials_and_garbage() {
        let mut ice = IceLite::new("u1", "p1p1p1p1p1p1p1p1p1p1p1", "r1");
        let from: SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let mut out = [0u8; 256];
        let wrong_pwd = request("u1:r1", "not-the-password-at-all", true);
        assert_eq!(
            ice.handle(t0(), from, &wrong_pwd, &mut out),
            IceInput::Dropped(IceDrop::BadIntegrity)
        );
        let wrong_user = request("u2:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        assert_eq!(
            ice.handle(t0(), from, &wrong_user, &mut out),
            IceInput::Dropped(IceDrop::WrongUsername)
        );
        let mut bad_fp = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        let n = bad_fp.len();
        bad_fp[n - 1] ^= 0xff;
        assert_eq!(
            ice.handle(t0(), from, &bad_fp, &mut out),
            IceInput::Dropped(IceDrop::BadFingerprint)
        );
        let mut bad_len = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        bad_len[3] ^= 4;
        assert_eq!(
            ice.handle(t0(), from, &bad_len, &mut out),
            IceInput::Dropped(IceDrop::Malformed)
        );
        let good = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        assert_eq!(
            ice.handle(t0(), from, &good, &mut [0u8; 30]),
            IceInput::Dropped(IceDrop::NoRoom)
        );
        assert_eq!(ice.remote(t0()), None, "nothing authenticated yet");
        for junk in [&[][..], &[0u8; 19], &[0u8; 20], &[1u8; 64]] {
            assert!(matches!(
                ice.handle(t0(), from, junk, &mut out),
                IceInput::Dropped(_)
            ));
        }
    }

    #[test]
    fn consent_expires_thirty_seconds_after_the_last_check() {
        let mut ice = IceLite::new("u1", "p1p1p1p1p1p1p1p1p1p1p1", "r1");
        let from: SocketAddr = "192.0.2.10:50000".parse().unwrap();
        let mut out = [0u8; 256];
        let req = request("u1:r1", "p1p1p1p1p1p1p1p1p1p1p1", true);
        let t = t0();
        ice.handle(t, from, &req, &mut out);
        assert_eq!(ice.consent_deadline(), Some(t + CONSENT_TIMEOUT));
        // Chrome checks every few seconds: each check pushes the deadline.
        ice.handle(t + Duration::from_secs(5), from, &req, &mut out);
        assert_eq!(ice.remote(t + Duration::from_secs(34)), Some(from));
        assert_eq!(ice.remote(t + Duration::from_secs(35)), None, "consent expired");
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
