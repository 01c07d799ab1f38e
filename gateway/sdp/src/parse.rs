//! The strict SDP reader (RFC 8866 §5 line grammar): bytes → [`Sdp`], a borrowed view of the lines
//! with their line numbers. Only structure is checked here (line shape, section order, `v=`/`o=`/`s=`,
//! `m=`, `c=`, attribute names); the attributes the gateway interprets are read in `read`.
//!
//! Bounded work: the body, each line, the line count, the m-line count and the formats per m-line have
//! limits; every step is linear in the input.

use std::net::IpAddr;

use crate::error::{SdpError, malformed};

/// The largest SDP body accepted (the SIP core's default message limit).
pub const MAX_SDP_BYTES: usize = 65_535;
/// The most lines in one SDP (Chrome's audio+video+data offer is ≈ 150).
pub const MAX_LINES: usize = 1024;
/// The longest line, in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// The most m-lines in one SDP.
pub const MAX_MEDIA: usize = 32;
/// The most formats (payload types) on one m-line (there are only 128 RTP payload types).
pub const MAX_FORMATS: usize = 128;

/// One attribute line, `a=<name>[:<value>]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub(crate) line: usize,
    pub(crate) name: &'a str,
    pub(crate) value: Option<&'a str>,
}

/// A `c=` line's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnAddr<'a> {
    /// A unicast IP literal (may be unspecified: `0.0.0.0` is an RFC 2543 hold).
    Ip(IpAddr),
    /// A host name or a multicast group (`/ttl`): well-formed but unusable by a sans-IO anchor.
    Unusable(&'a str),
}

/// A `c=` line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn<'a> {
    pub(crate) addr: ConnAddr<'a>,
}

/// One media section: its `m=` line and what follows until the next one.
#[derive(Debug, Clone)]
pub(crate) struct Media<'a> {
    pub(crate) line: usize,
    pub(crate) kind: &'a str,
    pub(crate) port: u16,
    pub(crate) proto: &'a str,
    pub(crate) formats: Vec<&'a str>,
    pub(crate) conn: Option<Conn<'a>>,
    pub(crate) attrs: Vec<Attr<'a>>,
}

/// A whole session description, borrowed from the input.
#[derive(Debug, Clone)]
pub(crate) struct Sdp<'a> {
    pub(crate) conn: Option<Conn<'a>>,
    pub(crate) attrs: Vec<Attr<'a>>,
    pub(crate) media: Vec<Media<'a>>,
    /// The number of the last line (for "missing …" errors).
    pub(crate) last_line: usize,
}

impl<'a> Media<'a> {
    /// The attributes of this section with the given name.
    pub(crate) fn attrs_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Attr<'a>> + 's {
        self.attrs.iter().filter(move |a| a.name == name)
    }

    /// The first attribute of this section with the given name.
    pub(crate) fn attr(&self, name: &str) -> Option<&Attr<'a>> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The section has the flag attribute `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }
}

impl<'a> Sdp<'a> {
    /// The first session-level attribute with the given name.
    pub(crate) fn attr(&self, name: &str) -> Option<&Attr<'a>> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// Reads an SDP body strictly. Lines end in CRLF or LF (RFC 8866 §5 asks parsers to accept both);
    /// empty lines are accepted only at the end.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Sdp<'a>, SdpError> {
        if body.len() > MAX_SDP_BYTES {
            return Err(malformed(
                0,
                format!(
                    "the body is {} bytes, over the {MAX_SDP_BYTES}-byte limit",
                    body.len()
                ),
            ));
        }
        let mut sdp = Sdp {
            conn: None,
            attrs: Vec::new(),
            media: Vec::new(),
            last_line: 0,
        };
        let mut trailing_empty = false;
        for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
            let n = index + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                trailing_empty = true;
                continue;
            }
            if trailing_empty {
                return Err(malformed(n - 1, "empty line inside the SDP"));
            }
            if n > MAX_LINES {
                return Err(malformed(n, format!("more than {MAX_LINES} lines")));
            }
            if raw.len() > MAX_LINE_BYTES {
                return Err(malformed(n, format!("line longer than {MAX_LINE_BYTES} bytes")));
            }
            let text = std::str::from_utf8(raw).map_err(|_| malformed(n, "not UTF-8"))?;
            if text.chars().any(|c| c.is_control() && c != '\t') {
                return Err(malformed(n, "control character in the line"));
            }
            let (kind, value) = match text.as_bytes() {
                [k @ b'a'..=b'z', b'=', ..] => (*k, text.get(2..).unwrap_or_default()),
                _ => return Err(malformed(n, "expected `<letter>=<value>`")),
            };
            sdp.line(n, kind, value)?;
            sdp.last_line = n;
        }
        if sdp.last_line < 3 {
            let missing = ["v=", "o=", "s="].get(sdp.last_line).copied().unwrap_or("v=");
            return Err(malformed(sdp.last_line + 1, format!("missing {missing} line")));
        }
        Ok(sdp)
    }

    fn line(&mut self, n: usize, kind: u8, value: &'a str) -> Result<(), SdpError> {
        // The first three lines are fixed (RFC 8866 §5).
        match (n, kind) {
            (1, b'v') => {
                return if value == "0" {
                    Ok(())
                } else {
                    Err(malformed(n, "v= must be 0"))
                };
            }
            (1, _) => return Err(malformed(n, "the first line must be v=0")),
            (2, b'o') => return check_origin(n, value),
            (2, _) => return Err(malformed(n, "the second line must be o=")),
            (3, b's') => return Ok(()),
            (3, _) => return Err(malformed(n, "the third line must be s=")),
            _ => {}
        }
        let in_media = !self.media.is_empty();
        match kind {
            b'm' => {
                if self.media.len() == MAX_MEDIA {
                    return Err(malformed(n, format!("more than {MAX_MEDIA} m= lines")));
                }
                self.media.push(parse_media(n, value)?);
            }
            b'a' => {
                let attr = parse_attr(n, value)?;
                match self.media.last_mut() {
                    Some(m) => m.attrs.push(attr),
                    None => self.attrs.push(attr),
                }
            }
            b'c' => {
                let conn = parse_conn(n, value)?;
                let slot = match self.media.last_mut() {
                    Some(m) => &mut m.conn,
                    None => &mut self.conn,
                };
                if slot.is_some() {
                    return Err(malformed(n, "second c= line in the same section"));
                }
                *slot = Some(conn);
            }
            // Lines we do not interpret, allowed where RFC 8866 §5 allows them.
            b'i' | b'b' | b'k' => {}
            b'u' | b'e' | b'p' | b't' | b'r' | b'z' if !in_media => {}
            b'v' | b'o' | b's' | b'u' | b'e' | b'p' | b't' | b'r' | b'z' => {
                return Err(malformed(n, format!("{}= is not allowed here", char::from(kind))));
            }
            _ => return Err(malformed(n, format!("unknown line type {}=", char::from(kind)))),
        }
        Ok(())
    }
}

/// `o=<username> <sess-id> <sess-version> IN IP4|IP6 <address>`.
fn check_origin(n: usize, value: &str) -> Result<(), SdpError> {
    let fields: Vec<&str> = value.split(' ').collect();
    let [_user, id, version, net, addr_type, addr] = fields.as_slice() else {
        return Err(malformed(n, "o= needs 6 fields separated by single spaces"));
    };
    for (name, v) in [("session id", id), ("session version", version)] {
        if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(n, format!("o= {name} is not a number")));
        }
    }
    if *net != "IN" || !matches!(*addr_type, "IP4" | "IP6") || addr.is_empty() {
        return Err(malformed(n, "o= must name IN IP4 or IN IP6 and an address"));
    }
    Ok(())
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media(n: usize, value: &str) -> Result<Media<'_>, SdpError> {
    let mut fields = value.split(' ');
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(n, "m= needs media, port, protocol and formats"));
    };
    if !is_token(kind) || !is_proto(proto) {
        return Err(malformed(n, "m= media or protocol is not a token"));
    }
    let port_text = port.split_once('/').map_or(port, |(p, _count)| p);
    let port =
        parse_u16(port_text).ok_or_else(|| malformed(n, format!("m= port `{port}` is not 0-65535")))?;
    let formats: Vec<&str> = fields.collect();
    if formats.is_empty() || formats.iter().any(|f| !is_token(f)) {
        return Err(malformed(n, "m= needs formats separated by single spaces"));
    }
    if formats.len() > MAX_FORMATS {
        return Err(malformed(n, format!("more than {MAX_FORMATS} formats")));
    }
    Ok(Media {
        line: n,
        kind,
        port,
        proto,
        formats,
        conn: None,
        attrs: Vec::new(),
    })
}

/// `c=IN IP4|IP6 <address>`.
fn parse_conn(n: usize, value: &str) -> Result<Conn<'_>, SdpError> {
    let fields: Vec<&str> = value.split(' ').collect();
    let ["IN", addr_type, addr] = fields.as_slice() else {
        return Err(malformed(n, "c= must be `IN IP4|IP6 <address>`"));
    };
    let addr = match (*addr_type, addr.parse::<IpAddr>()) {
        ("IP4", Ok(ip @ IpAddr::V4(_))) | ("IP6", Ok(ip @ IpAddr::V6(_))) => ConnAddr::Ip(ip),
        ("IP4" | "IP6", Ok(_)) => return Err(malformed(n, "c= address does not match its type")),
        // A multicast group (`/ttl`) or a host name (letters, digits, `-` and `.`, some letter).
        ("IP4" | "IP6", Err(_)) if is_group(addr) || is_host_name(addr) => ConnAddr::Unusable(addr),
        _ => return Err(malformed(n, "c= must be `IN IP4|IP6 <address>`")),
    };
    Ok(Conn { addr })
}

/// `a=<name>` or `a=<name>:<value>`.
fn parse_attr(n: usize, value: &str) -> Result<Attr<'_>, SdpError> {
    let (name, value) = match value.split_once(':') {
        Some((name, v)) => (name, Some(v)),
        None => (value, None),
    };
    if !is_token(name) {
        return Err(malformed(n, "a= attribute name is not a token"));
    }
    Ok(Attr { line: n, name, value })
}

fn is_group(addr: &str) -> bool {
    addr.split_once('/').is_some_and(|(ip, rest)| {
        ip.parse::<IpAddr>().is_ok() && rest.split('/').all(|n| parse_u16(n).is_some())
    })
}

fn is_host_name(addr: &str) -> bool {
    addr.bytes().any(|b| b.is_ascii_alphabetic())
        && addr
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// RFC 8866 §9 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

/// A `proto` is tokens separated by `/` (`UDP/TLS/RTP/SAVPF`).
fn is_proto(s: &str) -> bool {
    s.split('/').all(is_token)
}

/// A decimal `u16` written with digits only (no sign, at most 5 digits).
pub(crate) fn parse_u16(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A decimal `u32` written with digits only.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_line(body: &str) -> (usize, String) {
        match Sdp::parse(body.as_bytes()) {
            Err(SdpError::PeerMisbehaved { line, what }) => (line, what),
            other => panic!("expected PeerMisbehaved, got {other:?}"),
        }
    }

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";

    #[test]
    fn reads_sections_and_line_numbers() {
        let body = format!(
            "{HEAD}c=IN IP4 192.0.2.1\r\na=group:BUNDLE 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
        );
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.attrs.len(), 1);
        assert_eq!(sdp.attr("group").unwrap().value, Some("BUNDLE 0"));
        let m = &sdp.media[0];
        assert_eq!(
            (m.line, m.kind, m.port, m.proto, m.formats.clone()),
            (7, "audio", 4000, "RTP/AVP", vec!["0", "8"])
        );
        assert_eq!(m.attr("rtpmap").unwrap().line, 8);
        assert!(m.has("sendonly"));
        assert_eq!(sdp.conn.unwrap().addr, ConnAddr::Ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn accepts_lf_only_and_trailing_empty_lines() {
        let body = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nm=audio 0 RTP/AVP 0\n\n\n";
        assert_eq!(Sdp::parse(body.as_bytes()).unwrap().media.len(), 1);
    }

    #[test]
    fn refuses_malformed_lines_naming_them() {
        assert_eq!(err_line("").0, 1);
        assert_eq!(
            err_line("o=- 1 2 IN IP4 x\r\n"),
            (1, "the first line must be v=0".into())
        );
        assert_eq!(err_line("v=0\r\n"), (2, "missing o= line".into()));
        assert_eq!(
            err_line("v=0\r\no=- 1 2 IN IP4 x\r\n"),
            (3, "missing s= line".into())
        );
        assert_eq!(err_line("v=1\r\n").0, 1);
        assert_eq!(err_line("v=0\r\no=- x 2 IN IP4 a\r\ns=-\r\n").0, 2);
        assert_eq!(err_line("v=0\r\no=- 1 2 IN IP4\r\ns=-\r\n").0, 2);
        assert_eq!(err_line(&format!("{HEAD}m=audio 70000 RTP/AVP 0\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}m=audio 4000 RTP/AVP\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}m=audio 4000  RTP/AVP 0\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}hello\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}x=1\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}m=audio 1 RTP/AVP 0\r\nt=0 0\r\n")).0, 6);
        assert_eq!(err_line(&format!("{HEAD}c=IN IP4 2001:db8::1\r\n")).0, 5);
        assert_eq!(
            err_line(&format!("{HEAD}c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n")).0,
            6
        );
        assert_eq!(err_line(&format!("{HEAD}c=IN\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}c=IN IP4 192.0.2\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}c=IN IP6 2001:db8::x\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}c=IN IP4 233.252.0.1/x\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}a=\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}a=x y\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}\r\na=x\r\n")).0, 5);
        assert_eq!(err_line(&format!("{HEAD}a=x\ry\r\n")).0, 5);
        let mut bad = HEAD.as_bytes().to_vec();
        bad.extend_from_slice(b"a=\xff\xfe\r\n");
        assert!(matches!(
            Sdp::parse(&bad),
            Err(SdpError::PeerMisbehaved { line: 5, .. })
        ));
    }

    #[test]
    fn bounds_the_work() {
        let long = format!("{HEAD}a=x:{}\r\n", "y".repeat(MAX_LINE_BYTES));
        assert_eq!(err_line(&long).0, 5);
        let many = format!("{HEAD}{}", "a=x\r\n".repeat(MAX_LINES));
        assert_eq!(err_line(&many).0, MAX_LINES + 1);
        let media = format!("{HEAD}{}", "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
        assert_eq!(err_line(&media).0, 5 + MAX_MEDIA);
        let huge = vec![b'a'; MAX_SDP_BYTES + 1];
        assert_eq!(
            Sdp::parse(&huge).unwrap_err(),
            malformed(
                0,
                format!(
                    "the body is {} bytes, over the {MAX_SDP_BYTES}-byte limit",
                    MAX_SDP_BYTES + 1
                )
            )
        );
    }

    #[test]
    fn host_names_and_multicast_are_unusable_not_malformed() {
        let body = format!("{HEAD}c=IN IP4 pbx.example.com\r\n");
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.conn.unwrap().addr, ConnAddr::Unusable("pbx.example.com"));
        let body = format!("{HEAD}c=IN IP4 233.252.0.1/127\r\n");
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        assert!(matches!(sdp.conn.unwrap().addr, ConnAddr::Unusable(_)));
    }
}
