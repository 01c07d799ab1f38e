//! SIP and SIPS URIs (RFC 3261 §19.1, grammar §25.1).
//!
//! Our own reader, because rsip 0.4's accepts `sip:@@` and user parts with spaces, and refuses
//! `sip:x@[::1]:5060` (IPv6 reference with a port). This one checks the character classes of each part and
//! borrows from the input.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed `sip:` / `sips:` URI, borrowing from the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, still percent-escaped, if present.
    pub user: Option<&'a str>,
    /// Host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub host: &'a str,
    /// Port, if written.
    pub port: Option<u16>,
    /// `;param` list, without the leading `;`, as written.
    pub params: &'a str,
    /// `?header` list, without the leading `?`, as written.
    pub headers: &'a str,
}

/// Why a URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// Neither `sip:` nor `sips:` (the caller may accept others, e.g. `tel:`).
    Scheme,
    /// The user or password part has characters outside the grammar.
    UserInfo,
    /// The host or port is malformed.
    HostPort,
    /// A parameter or header part is malformed.
    Params,
}

impl<'a> SipUri<'a> {
    /// Parses `text`.
    pub fn parse(text: &'a str) -> Result<Self, UriError> {
        let (scheme, rest) = text.split_once(':').ok_or(UriError::Scheme)?;
        let secure = if scheme.eq_ignore_ascii_case("sips") {
            true
        } else if scheme.eq_ignore_ascii_case("sip") {
            false
        } else {
            return Err(UriError::Scheme);
        };
        // No '@' can occur unescaped after the user info, so the first one ends it.
        let (userinfo, rest) = match rest.split_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let user = match userinfo {
            Some(ui) => {
                let (user, password) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if user.is_empty() || !valid_escaped(user, b"&=+$,;?/") {
                    return Err(UriError::UserInfo);
                }
                if password.is_some_and(|p| !valid_escaped(p, b"&=+$,")) {
                    return Err(UriError::UserInfo);
                }
                Some(user)
            }
            None => None,
        };
        let (before_headers, headers) = match rest.split_once('?') {
            Some((b, h)) => (b, h),
            None => (rest, ""),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, p),
            None => (before_headers, ""),
        };
        let (host, port) = parse_hostport(hostport).ok_or(UriError::HostPort)?;
        if !params
            .split(';')
            .all(|p| !p.is_empty() && valid_escaped(p, b"[]/:&+$="))
            && !params.is_empty()
        {
            return Err(UriError::Params);
        }
        if !headers.is_empty()
            && !headers
                .split('&')
                .all(|h| !h.is_empty() && valid_escaped(h, b"[]/?:+$="))
        {
            return Err(UriError::Params);
        }
        Ok(Self {
            secure,
            user,
            host,
            port,
            params,
            headers,
        })
    }
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3261 §25.1, RFC 3986 §3.1): what may
/// stand before the first `:` of any absolute URI. A Request-URI whose scheme is well formed but
/// unknown earns a 416; one whose "scheme" is not even that (e.g. `<sip` in `<sip:a@b>`) is malformed,
/// a 400 (RFC 4475 §3.1.2.7).
pub fn is_valid_scheme(scheme: &str) -> bool {
    let mut b = scheme.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// RFC 3261 `unreserved` / `escaped` / the given extra characters.
fn valid_escaped(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) || extra.contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

/// `host [":" port]` with host = hostname / IPv4address / IPv6reference.
fn parse_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !(h.parse::<Ipv4Addr>().is_ok() || valid_hostname(h)) {
            return None;
        }
        (h, p)
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`, labels of alphanumerics and inner hyphens.
fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_uris() {
        let u = SipUri::parse("sip:+15550100%23x@gw.example.com:5061;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(
            u,
            SipUri {
                secure: false,
                user: Some("+15550100%23x"),
                host: "gw.example.com",
                port: Some(5061),
                params: "transport=tcp;lr",
                headers: "Subject=hi"
            }
        );
        let u = SipUri::parse("SIPS:x@[2001:db8::1]:5060;transport=ws").unwrap();
        assert!(u.secure);
        assert_eq!((u.host, u.port), ("2001:db8::1", Some(5060)));
        assert_eq!(SipUri::parse("sip:192.0.2.1").unwrap().host, "192.0.2.1");
        assert_eq!(
            SipUri::parse("sip:alice:secret@host.invalid").unwrap().user,
            Some("alice")
        );
        assert_eq!(SipUri::parse("sip:a;b=c@x.example").unwrap().user, Some("a;b=c"));
    }

    #[test]
    fn schemes() {
        for good in [
            "sip",
            "SIPS",
            "tel",
            "soap.beep",
            "nobodyKnowsThisScheme",
            "a+b-c.1",
        ] {
            assert!(is_valid_scheme(good), "{good}");
        }
        for bad in ["", "<sip", "1sip", "si p", "sip;", "-x", "sïp"] {
            assert!(!is_valid_scheme(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_uris() {
        for (bad, why) in [
            ("http://x", UriError::Scheme),
            ("x", UriError::Scheme),
            ("sip:@@", UriError::UserInfo),
            ("sip:@host", UriError::UserInfo),
            ("sip:a b@x", UriError::UserInfo),
            ("sip:a%2@x", UriError::UserInfo),
            ("sip:", UriError::HostPort),
            ("sip:user@", UriError::HostPort),
            ("sip:x@-bad-.example", UriError::HostPort),
            ("sip:x@[::1", UriError::HostPort),
            ("sip:x@[::1]5060", UriError::HostPort),
            ("sip:x@host:", UriError::HostPort),
            ("sip:x@host:70000", UriError::HostPort),
            ("sip:x@host;;", UriError::Params),
            ("sip:x@host;a=<b>", UriError::Params),
        ] {
            assert_eq!(SipUri::parse(bad), Err(why), "{bad}");
        }
    }
}
