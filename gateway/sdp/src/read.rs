//! Reading the attributes the gateway interprets, from one media section of a parsed [`Sdp`], into
//! owned values. Every malformed attribute we read is an error naming its line; attributes we do not
//! use are never looked at.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Incompatible, SdpError, malformed};
use crate::model::{Codec, Direction, Fingerprint, HashAlgorithm, SrtpSuite};
use crate::parse::{Attr, ConnAddr, Media, Sdp, is_token, parse_u16, parse_u32};

/// The most candidates kept from one m-line.
const MAX_CANDIDATES: usize = 32;
/// The longest `a=fmtp` parameters we copy across (opus's are ≈ 60 bytes).
const MAX_FMTP_BYTES: usize = 512;

/// The transport profile of an m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// `UDP/TLS/RTP/SAVPF` (WebRTC, RFC 8827).
    Savpf,
    /// `RTP/AVP` (plain RTP).
    Avp,
    /// `RTP/SAVP` (SDES-SRTP).
    Savp,
    /// Anything else.
    Other,
}

impl Proto {
    pub(crate) fn of(proto: &str) -> Proto {
        match proto {
            "UDP/TLS/RTP/SAVPF" => Proto::Savpf,
            "RTP/AVP" => Proto::Avp,
            "RTP/SAVP" => Proto::Savp,
            _ => Proto::Other,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Proto::Savpf => "UDP/TLS/RTP/SAVPF",
            Proto::Avp => "RTP/AVP",
            Proto::Savp => "RTP/SAVP",
            Proto::Other => "?",
        }
    }
}

/// What a payload type stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Payload {
    Codec(Codec),
    /// `telephone-event/<rate>` (RFC 4733).
    Event(u32),
}

/// One format of an RTP m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) pt: u8,
    /// `None`: a codec or event the gateway does not carry (red, CN, …).
    pub(crate) payload: Option<Payload>,
    pub(crate) fmtp: Option<String>,
}

/// The DTLS `a=setup` value (RFC 4145 §4; absent means `active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

/// An `a=crypto` line we can use (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crypto {
    pub(crate) line: usize,
    pub(crate) tag: u32,
    pub(crate) suite: SrtpSuite,
    pub(crate) key: [u8; 30],
}

/// Everything read from the one audio m-line of a peer's SDP.
#[derive(Debug, Clone)]
pub(crate) struct Audio {
    pub(crate) line: usize,
    pub(crate) port: u16,
    pub(crate) proto: Proto,
    /// The effective connection address (media level, else session level); `0.0.0.0` is a hold.
    pub(crate) addr: IpAddr,
    pub(crate) formats: Vec<Format>,
    pub(crate) direction: Direction,
    pub(crate) ptime: Option<u32>,
    pub(crate) rtcp: Option<(u16, Option<IpAddr>)>,
    pub(crate) rtcp_mux: bool,
    pub(crate) rtcp_rsize: bool,
    pub(crate) in_bundle: bool,
    pub(crate) ice: Option<(String, String)>,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) setup: Setup,
    pub(crate) candidates: Vec<SocketAddr>,
    /// Usable crypto lines, in order.
    pub(crate) crypto: Vec<Crypto>,
}

impl Audio {
    /// The first format carrying `payload`.
    pub(crate) fn find(&self, payload: Payload) -> Option<&Format> {
        self.formats.iter().find(|f| f.payload == Some(payload))
    }
}

/// The shape of one m-line, kept to answer it (rejected) and to keep the m-line order in later offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) kind: String,
    pub(crate) proto: String,
    pub(crate) formats: String,
    pub(crate) mid: Option<String>,
}

impl Shape {
    pub(crate) fn of(m: &Media<'_>) -> Result<Shape, SdpError> {
        Ok(Shape {
            kind: m.kind.to_owned(),
            proto: m.proto.to_owned(),
            formats: m.formats.join(" "),
            mid: read_mid(m)?,
        })
    }
}

/// Reads the audio m-line at `index` of `sdp`.
pub(crate) fn read_audio(sdp: &Sdp<'_>, index: usize) -> Result<Audio, SdpError> {
    let m = sdp
        .media
        .get(index)
        .ok_or_else(|| malformed(sdp.last_line, "missing m=audio line"))?;
    let conn = m
        .conn
        .or(sdp.conn)
        .ok_or_else(|| malformed(m.line, "no c= line for this m= line nor the session"))?;
    let addr = match conn.addr {
        ConnAddr::Ip(ip) => ip,
        ConnAddr::Unusable(text) => return Err(Incompatible::ConnectionAddress(text.to_owned()).into()),
    };
    let mid = read_mid(m)?;
    let in_bundle = mid.as_ref().is_some_and(|mid| {
        sdp.attrs.iter().filter(|a| a.name == "group").any(|a| {
            let mut words = a.value.unwrap_or_default().split(' ');
            words.next() == Some("BUNDLE") && words.any(|w| w == mid)
        })
    });
    let ice = read_ice(sdp, m)?;
    let rtcp = m.attr("rtcp").map(read_rtcp).transpose()?;
    let ptime = match m.attr("ptime") {
        Some(a) => Some(
            a.value
                .and_then(parse_u32)
                .filter(|p| (1..=1000).contains(p))
                .ok_or_else(|| malformed(a.line, "a=ptime is not a number of milliseconds 1-1000"))?,
        ),
        None => None,
    };
    Ok(Audio {
        line: m.line,
        port: m.port,
        proto: Proto::of(m.proto),
        addr,
        formats: read_formats(m)?,
        direction: read_direction(sdp, m)?,
        ptime,
        rtcp,
        rtcp_mux: m.has("rtcp-mux"),
        rtcp_rsize: m.has("rtcp-rsize"),
        in_bundle,
        ice,
        fingerprint: read_fingerprint(sdp, m)?,
        setup: read_setup(sdp, m)?,
        candidates: read_candidates(m)?,
        crypto: read_crypto(m)?,
    })
}

fn read_mid(m: &Media<'_>) -> Result<Option<String>, SdpError> {
    match m.attr("mid") {
        Some(a) => match a.value {
            Some(v) if is_token(v) && v.len() <= 64 => Ok(Some(v.to_owned())),
            _ => Err(malformed(a.line, "a=mid is not a token of at most 64 characters")),
        },
        None => Ok(None),
    }
}

/// The formats of an RTP m-line with their `a=rtpmap` and `a=fmtp`.
fn read_formats(m: &Media<'_>) -> Result<Vec<Format>, SdpError> {
    let mut formats: Vec<Format> = Vec::with_capacity(m.formats.len());
    for f in &m.formats {
        let pt = parse_u16(f)
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| *p <= 127)
            .ok_or_else(|| malformed(m.line, format!("payload type `{f}` is not a number 0-127")))?;
        if formats.iter().any(|x| x.pt == pt) {
            return Err(malformed(m.line, format!("payload type {pt} listed twice")));
        }
        formats.push(Format {
            pt,
            payload: Codec::from_static_pt(pt).map(Payload::Codec),
            fmtp: None,
        });
    }
    let mut mapped = 0u128;
    for a in m.attrs_named("rtpmap") {
        let (pt, rest) = split_pt(a, "a=rtpmap")?;
        let bit = 1u128 << pt;
        if mapped & bit != 0 {
            return Err(malformed(
                a.line,
                format!("second a=rtpmap for payload type {pt}"),
            ));
        }
        mapped |= bit;
        let payload = read_rtpmap(a.line, rest)?;
        if let Some(f) = formats.iter_mut().find(|f| f.pt == pt) {
            f.payload = payload;
        }
    }
    let mut with_fmtp = 0u128;
    for a in m.attrs_named("fmtp") {
        let (pt, params) = split_pt(a, "a=fmtp")?;
        let bit = 1u128 << pt;
        if with_fmtp & bit != 0 {
            return Err(malformed(a.line, format!("second a=fmtp for payload type {pt}")));
        }
        with_fmtp |= bit;
        if params.is_empty() || params.len() > MAX_FMTP_BYTES {
            return Err(malformed(
                a.line,
                format!("a=fmtp parameters must be 1-{MAX_FMTP_BYTES} bytes"),
            ));
        }
        if let Some(f) = formats.iter_mut().find(|f| f.pt == pt) {
            f.fmtp = Some(params.to_owned());
        }
    }
    Ok(formats)
}

/// `<pt> <rest>` of `a=rtpmap` / `a=fmtp`.
fn split_pt<'a>(a: &Attr<'a>, what: &str) -> Result<(u8, &'a str), SdpError> {
    let bad = || malformed(a.line, format!("{what} must be `<payload type 0-127> <value>`"));
    let (pt, rest) = a.value.and_then(|v| v.split_once(' ')).ok_or_else(bad)?;
    let pt = parse_u16(pt)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| *p <= 127)
        .ok_or_else(bad)?;
    Ok((pt, rest))
}

/// `<encoding name>/<clock rate>[/<channels>]` → what the gateway carries, or `None`.
fn read_rtpmap(line: usize, value: &str) -> Result<Option<Payload>, SdpError> {
    let bad = || {
        malformed(
            line,
            "a=rtpmap must be `<pt> <encoding>/<clock rate>[/<channels>]`",
        )
    };
    let mut parts = value.split('/');
    let name = parts.next().filter(|n| is_token(n)).ok_or_else(bad)?;
    let rate = parts
        .next()
        .and_then(parse_u32)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let channels = match parts.next() {
        Some(c) => parse_u16(c).filter(|c| *c > 0).ok_or_else(bad)?,
        None => 1,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    if name.eq_ignore_ascii_case("telephone-event") {
        return Ok((channels == 1).then_some(Payload::Event(rate)));
    }
    Ok(Codec::ALL
        .into_iter()
        .find(|c| {
            c.encoding_name().eq_ignore_ascii_case(name)
                && c.clock_rate() == rate
                && u16::from(c.channels()) == channels
        })
        .map(Payload::Codec))
}

/// The direction attribute of the m-line, else of the session, else `sendrecv`.
fn read_direction(sdp: &Sdp<'_>, m: &Media<'_>) -> Result<Direction, SdpError> {
    let level = |attrs: &[Attr<'_>]| -> Result<Option<Direction>, SdpError> {
        let mut found: Option<Direction> = None;
        for a in attrs {
            if let Some(d) = Direction::parse(a.name) {
                if found.is_some_and(|f| f != d) {
                    return Err(malformed(a.line, "conflicting direction attributes"));
                }
                found = Some(d);
            }
        }
        Ok(found)
    };
    Ok(level(&m.attrs)?.or(level(&sdp.attrs)?).unwrap_or_default())
}

/// `a=ice-ufrag` and `a=ice-pwd` (media level, else session level), checked per RFC 8839 §5.4.
fn read_ice(sdp: &Sdp<'_>, m: &Media<'_>) -> Result<Option<(String, String)>, SdpError> {
    let get = |name: &str, min: usize| -> Result<Option<String>, SdpError> {
        let Some(a) = m.attr(name).or_else(|| sdp.attr(name)) else {
            return Ok(None);
        };
        match a.value {
            Some(v)
                if (min..=256).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') =>
            {
                Ok(Some(v.to_owned()))
            }
            _ => Err(malformed(
                a.line,
                format!("a={name} must be {min}-256 ICE characters"),
            )),
        }
    };
    Ok(match (get("ice-ufrag", 4)?, get("ice-pwd", 22)?) {
        (Some(u), Some(p)) => Some((u, p)),
        _ => None,
    })
}

/// The preferred `a=fingerprint` with a supported hash (media level, else session level).
fn read_fingerprint(sdp: &Sdp<'_>, m: &Media<'_>) -> Result<Option<Fingerprint>, SdpError> {
    let media_level: Vec<&Attr<'_>> = m.attrs_named("fingerprint").collect();
    let attrs: Vec<&Attr<'_>> = if media_level.is_empty() {
        sdp.attrs.iter().filter(|a| a.name == "fingerprint").collect()
    } else {
        media_level
    };
    let mut best: Option<Fingerprint> = None;
    for a in attrs {
        let bad = || malformed(a.line, "a=fingerprint must be `<hash> <hex>:<hex>:…`");
        let (hash, hex) = a.value.and_then(|v| v.split_once(' ')).ok_or_else(bad)?;
        let Some(algorithm) = HashAlgorithm::parse(hash) else {
            continue;
        };
        let value = hex
            .split(':')
            .map(|pair| match pair.as_bytes() {
                [_, _] => u8::from_str_radix(pair, 16).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        if value.len() != algorithm.digest_len() {
            return Err(malformed(
                a.line,
                format!(
                    "a=fingerprint {} must have {} bytes",
                    algorithm.as_str(),
                    algorithm.digest_len()
                ),
            ));
        }
        let rank = |alg: HashAlgorithm| match alg {
            HashAlgorithm::Sha256 => 0,
            HashAlgorithm::Sha384 => 1,
            HashAlgorithm::Sha512 => 2,
            HashAlgorithm::Sha1 => 3,
        };
        if best.as_ref().is_none_or(|b| rank(algorithm) < rank(b.algorithm)) {
            best = Some(Fingerprint { algorithm, value });
        }
    }
    Ok(best)
}

fn read_setup(sdp: &Sdp<'_>, m: &Media<'_>) -> Result<Setup, SdpError> {
    let Some(a) = m.attr("setup").or_else(|| sdp.attr("setup")) else {
        return Ok(Setup::Active);
    };
    match a.value {
        Some("active") => Ok(Setup::Active),
        Some("passive") => Ok(Setup::Passive),
        Some("actpass") => Ok(Setup::ActPass),
        Some("holdconn") => Ok(Setup::HoldConn),
        _ => Err(malformed(
            a.line,
            "a=setup must be active, passive, actpass or holdconn",
        )),
    }
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
fn read_rtcp(a: &Attr<'_>) -> Result<(u16, Option<IpAddr>), SdpError> {
    let bad = || malformed(a.line, "a=rtcp must be `<port> [IN IP4|IP6 <address>]`");
    let fields: Vec<&str> = a.value.unwrap_or_default().split(' ').collect();
    match fields.as_slice() {
        [port] => Ok((parse_u16(port).ok_or_else(bad)?, None)),
        [port, "IN", "IP4" | "IP6", addr] => Ok((parse_u16(port).ok_or_else(bad)?, addr.parse().ok())),
        _ => Err(bad()),
    }
}

/// The UDP candidates of component 1 with an IP address (RFC 8839 §5.1). mDNS names and TCP
/// candidates are skipped; a malformed candidate is an error.
fn read_candidates(m: &Media<'_>) -> Result<Vec<SocketAddr>, SdpError> {
    let mut out = Vec::new();
    for a in m.attrs_named("candidate") {
        let bad = || {
            malformed(
                a.line,
                "a=candidate must be `<foundation> <component> <transport> <priority> <address> <port> typ <type> …`",
            )
        };
        let fields: Vec<&str> = a.value.unwrap_or_default().split(' ').take(8).collect();
        let [
            _foundation,
            component,
            transport,
            priority,
            address,
            port,
            typ,
            _kind,
        ] = fields.as_slice()
        else {
            return Err(bad());
        };
        let component = parse_u16(component).ok_or_else(bad)?;
        parse_u32(priority).ok_or_else(bad)?;
        let port = parse_u16(port).ok_or_else(bad)?;
        if *typ != "typ" {
            return Err(bad());
        }
        if let (1, true, Ok(ip)) = (
            component,
            transport.eq_ignore_ascii_case("udp"),
            address.parse::<IpAddr>(),
        ) && out.len() < MAX_CANDIDATES
        {
            out.push(SocketAddr::new(ip, port));
        }
    }
    Ok(out)
}

/// The `a=crypto` lines we can use: a supported suite, exactly one `inline:` key of 30 bytes, an
/// optional lifetime, no MKI, no session parameters. Others are skipped (RFC 4568 §7.1.1 lets the
/// answerer pick); a line we could use but whose key is malformed is an error.
fn read_crypto(m: &Media<'_>) -> Result<Vec<Crypto>, SdpError> {
    let mut out = Vec::new();
    for a in m.attrs_named("crypto") {
        let bad = |what: &str| malformed(a.line, format!("a=crypto: {what}"));
        let fields: Vec<&str> = a.value.unwrap_or_default().split(' ').collect();
        let [tag, suite, key_params, session_params @ ..] = fields.as_slice() else {
            return Err(bad("must be `<tag> <suite> inline:<key>`"));
        };
        let tag = parse_u32(tag)
            .filter(|t| tag.len() <= 9 && *t > 0)
            .ok_or_else(|| bad("tag must be 1-9 digits"))?;
        let Some(suite) = SrtpSuite::parse(suite) else {
            continue;
        };
        if !session_params.is_empty() || key_params.contains(';') {
            continue;
        }
        let inline = key_params
            .strip_prefix("inline:")
            .ok_or_else(|| bad("the key must be `inline:`"))?;
        let mut parts = inline.split('|');
        let key_b64 = parts.next().unwrap_or_default();
        let mut with_mki = false;
        for p in parts {
            if p.contains(':') {
                with_mki = true;
            } else if !(p.bytes().all(|b| b.is_ascii_digit())
                || p.strip_prefix("2^")
                    .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())))
                || p.is_empty()
            {
                return Err(bad("lifetime must be a number or 2^n"));
            }
        }
        if with_mki {
            continue;
        }
        let key = STANDARD
            .decode(key_b64)
            .ok()
            .and_then(|k| <[u8; 30]>::try_from(k).ok())
            .ok_or_else(|| bad("the key is not 30 bytes of base64 (16-byte key + 14-byte salt)"))?;
        out.push(Crypto {
            line: a.line,
            tag,
            suite,
            key,
        });
    }
    Ok(out)
}

/// The rejection reason for a browser m-line, or `None` when it is usable as the audio stream.
pub(crate) fn browser_audio_problem(m: &Media<'_>) -> Option<Incompatible> {
    if m.kind != "audio" || (m.port == 0 && !m.has("bundle-only")) {
        return Some(Incompatible::NoAudio);
    }
    (Proto::of(m.proto) != Proto::Savpf).then(|| Incompatible::NotSavpf(m.proto.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nc=IN IP4 192.0.2.1\r\n";

    fn audio(media: &str) -> Result<Audio, SdpError> {
        let body = format!("{HEAD}{media}");
        let sdp = Sdp::parse(body.as_bytes())?;
        read_audio(&sdp, 0)
    }

    fn line_of(r: Result<Audio, SdpError>) -> usize {
        match r {
            Err(SdpError::PeerMisbehaved { line, .. }) => line,
            other => panic!("expected PeerMisbehaved, got {other:?}"),
        }
    }

    #[test]
    fn formats_static_and_mapped() {
        let a = audio("m=audio 4000 RTP/AVP 0 96 101 13\r\na=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
        let got: Vec<(u8, Option<Payload>)> = a.formats.iter().map(|f| (f.pt, f.payload)).collect();
        assert_eq!(
            got,
            vec![
                (0, Some(Payload::Codec(Codec::Pcmu))),
                (96, Some(Payload::Codec(Codec::Opus))),
                (101, Some(Payload::Event(8000))),
                (13, None),
            ]
        );
        assert_eq!(
            a.find(Payload::Codec(Codec::Opus)).unwrap().fmtp.as_deref(),
            Some("useinbandfec=1")
        );
    }

    #[test]
    fn opus_mono_and_wrong_rates_are_not_our_codecs() {
        let a = audio("m=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000\r\na=rtpmap:97 PCMU/16000\r\n")
            .unwrap();
        assert!(a.formats.iter().all(|f| f.payload.is_none()));
    }

    #[test]
    fn malformed_attributes_name_their_line() {
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0 x\r\n")), 6);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0 0\r\n")), 6);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 128\r\n")), 6);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=rtpmap:abc\r\n")), 7);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n")), 7);
        assert_eq!(
            line_of(audio("m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/1\r\n")),
            7
        );
        assert_eq!(
            line_of(audio(
                "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:0 PCMU/8000\r\n"
            )),
            8
        );
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=fmtp:0 \r\n")), 7);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=ptime:0\r\n")), 7);
        assert_eq!(
            line_of(audio("m=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n")),
            8
        );
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=setup:maybe\r\n")), 7);
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=ice-ufrag:ab\r\n")), 7);
        assert_eq!(
            line_of(audio("m=audio 4000 RTP/AVP 0\r\na=fingerprint:sha-256 AB:CD\r\n")),
            7
        );
        assert_eq!(
            line_of(audio("m=audio 4000 RTP/AVP 0\r\na=fingerprint:sha-256 ABC\r\n")),
            7
        );
        assert_eq!(
            line_of(audio(
                "m=audio 4000 RTP/AVP 0\r\na=candidate:1 1 udp x 192.0.2.1 5000 typ host\r\n"
            )),
            7
        );
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=rtcp:99999\r\n")), 7);
        assert_eq!(
            line_of(audio(
                "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n"
            )),
            7
        );
        assert_eq!(line_of(audio("m=audio 4000 RTP/AVP 0\r\na=mid:a b\r\n")), 7);
        let no_c = Sdp::parse(b"v=0\r\no=- 1 2 IN IP4 a\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n").unwrap();
        assert!(matches!(
            read_audio(&no_c, 0),
            Err(SdpError::PeerMisbehaved { line: 4, .. })
        ));
    }

    #[test]
    fn fingerprint_prefers_sha256_and_skips_unknown_hashes() {
        let sha1 = vec!["AA"; 20].join(":");
        let sha256 = vec!["bb"; 32].join(":");
        let a = audio(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:md5 zz\r\na=fingerprint:sha-1 {sha1}\r\na=fingerprint:SHA-256 {sha256}\r\n")).unwrap();
        assert_eq!(
            a.fingerprint,
            Some(Fingerprint {
                algorithm: HashAlgorithm::Sha256,
                value: vec![0xbb; 32]
            })
        );
    }

    #[test]
    fn candidates_keep_udp_component_one_ip_literals() {
        let a = audio(
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
            a=candidate:1 1 udp 2122260223 198.51.100.7 50000 typ host generation 0\r\n\
            a=candidate:2 2 udp 2122260222 198.51.100.7 50001 typ host\r\n\
            a=candidate:3 1 tcp 1518280447 198.51.100.7 9 typ host tcptype active\r\n\
            a=candidate:4 1 udp 2122260223 4b1d2c.local 50002 typ host\r\n\
            a=candidate:5 1 UDP 1686052607 203.0.113.9 40000 typ srflx raddr 198.51.100.7 rport 50000\r\n",
        )
        .unwrap();
        assert_eq!(
            a.candidates,
            vec![
                "198.51.100.7:50000".parse().unwrap(),
                "203.0.113.9:40000".parse().unwrap()
            ]
        );
    }

    #[test]
    fn crypto_lines_we_cannot_use_are_skipped() {
        let key = STANDARD.encode([7u8; 30]);
        let a = audio(&format!(
            "m=audio 4000 RTP/SAVP 0\r\n\
             a=crypto:1 AEAD_AES_256_GCM inline:whatever\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{key}\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4\r\n\
             a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP\r\n\
             a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31\r\n"
        ))
        .unwrap();
        assert_eq!(
            a.crypto,
            vec![Crypto {
                line: 11,
                tag: 5,
                suite: SrtpSuite::AesCm128HmacSha1_80,
                key: [7; 30]
            }]
        );
    }

    #[test]
    fn direction_defaults_and_session_level() {
        assert_eq!(
            audio("m=audio 1 RTP/AVP 0\r\n").unwrap().direction,
            Direction::SendRecv
        );
        let body = format!("{HEAD}a=inactive\r\nm=audio 1 RTP/AVP 0\r\n");
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(read_audio(&sdp, 0).unwrap().direction, Direction::Inactive);
        let body = format!("{HEAD}a=inactive\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\n");
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(read_audio(&sdp, 0).unwrap().direction, Direction::SendOnly);
    }
}
