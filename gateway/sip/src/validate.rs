//! The checks a UAS makes on a request before acting on it (RFC 3261 §8.2), as pure functions.
//!
//! [`answerable`] decides whether any response can be formed at all (otherwise the request is dropped
//! and counted); [`check_request`] returns the error response a well-behaved UAS owes a request that
//! is malformed or asks for what we do not support.

use crate::message::{HeaderName, Message, Method, StartLine};
use crate::uri::{SipUri, UriError};
use crate::via::Via;

/// An error response owed to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub code: u16,
    /// Reason phrase (for 400, it names the defect).
    pub reason: String,
    /// Extra headers the response must carry (e.g. `Unsupported` on a 420).
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn bad(why: &str) -> Self {
        Self::new(400, format!("Bad Request ({why})"))
    }
}

/// A response can be routed and formed only with a readable top Via and non-empty From, To, Call-ID
/// and CSeq (§8.2.6.2). `Err` names what is missing.
pub fn answerable(msg: &Message) -> Result<(), String> {
    let top = msg.values(&HeaderName::Via).next().ok_or("request without Via")?;
    Via::parse(top).map_err(|_| "unreadable top Via")?;
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if msg.header(&h).is_none_or(str::is_empty) {
            return Err(format!("request without {}", h.as_str()));
        }
    }
    Ok(())
}

/// The §8.2 checks, in the RFC's order where it gives one: version (505), CSeq (400), Max-Forwards
/// (400), Request-URI scheme (416) and syntax (400), then `Require` against the option tags in
/// `supported` (420; never for CANCEL or ACK, §8.2.2.3).
pub fn check_request(msg: &Message, supported: &[&str]) -> Result<(), Rejection> {
    let StartLine::Request { method, uri, version } = &msg.start else {
        return Err(Rejection::bad("not a request"));
    };
    if version != "SIP/2.0" {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    check_cseq(msg, method).map_err(Rejection::bad)?;
    if let Some(mf) = msg.header(&HeaderName::MaxForwards)
        && mf.parse::<u8>().is_err()
    {
        return Err(Rejection::bad("invalid Max-Forwards"));
    }
    check_request_uri(uri)?;
    if !matches!(method, Method::Cancel | Method::Ack) {
        let unsupported: Vec<&str> = msg
            .values(&HeaderName::Require)
            .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = Rejection::new(420, "Bad Extension");
            r.headers
                .push((HeaderName::Other("Unsupported".into()), unsupported.join(", ")));
            return Err(r);
        }
    }
    Ok(())
}

/// CSeq = 1*DIGIT LWS Method, number < 2^31, method equal to the request's (§8.1.1.5).
fn check_cseq(msg: &Message, method: &Method) -> Result<(), &'static str> {
    let cseq = msg.header(&HeaderName::CSeq).unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let number = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or("invalid CSeq number")?;
    if number >= 1 << 31 {
        return Err("CSeq number too large");
    }
    let m = parts.next().ok_or("CSeq without method")?;
    if parts.next().is_some() || m != method.as_str() {
        return Err("CSeq method does not match the request");
    }
    Ok(())
}

/// SIP and SIPS URIs must follow the RFC 3261 grammar; `tel:` is accepted (RFC 3966); anything else is
/// an unsupported scheme (§8.2.2.1).
fn check_request_uri(uri: &str) -> Result<(), Rejection> {
    match SipUri::parse(uri) {
        Ok(_) => Ok(()),
        Err(UriError::Scheme) => match uri.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tel") => {
                if rest.is_empty() || rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    Err(Rejection::bad("malformed Request-URI"))
                } else {
                    Ok(())
                }
            }
            Some((scheme, _)) if !scheme.is_empty() => Err(Rejection::new(416, "Unsupported URI Scheme")),
            _ => Err(Rejection::bad("malformed Request-URI")),
        },
        Err(_) => Err(Rejection::bad("malformed Request-URI")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap()
    }

    const OK: &str = "OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:gw@192.0.2.1>\r\nCall-ID: c\r\n\
        CSeq: 7 OPTIONS\r\n\r\n";

    #[test]
    fn well_formed_passes() {
        assert_eq!(answerable(&req(OK)), Ok(()));
        assert_eq!(check_request(&req(OK), &[]), Ok(()));
        assert_eq!(
            check_request(
                &req(&OK.replace("\r\n\r\n", "\r\nRequire: timer\r\n\r\n")),
                &["timer"]
            ),
            Ok(())
        );
    }

    #[test]
    fn each_rejection() {
        let code = |text: String| check_request(&req(&text), &[]).unwrap_err().code;
        assert_eq!(code(OK.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")), 505);
        assert_eq!(code(OK.replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE")), 400);
        assert_eq!(
            code(OK.replace("CSeq: 7 OPTIONS", "CSeq: 4294967296 OPTIONS")),
            400
        );
        assert_eq!(code(OK.replace("Max-Forwards: 70", "Max-Forwards: 256")), 400);
        assert_eq!(code(OK.replace("sip:gw@192.0.2.1 SIP", "http://x SIP")), 416);
        assert_eq!(code(OK.replace("sip:gw@192.0.2.1 SIP", "sip:a%zz@x SIP")), 400);
        assert_eq!(code(OK.replace("sip:gw@192.0.2.1 SIP", "nocolon SIP")), 400);
        let r = check_request(
            &req(&OK.replace("\r\n\r\n", "\r\nRequire: foo, timer\r\n\r\n")),
            &["timer"],
        )
        .unwrap_err();
        assert_eq!(
            (r.code, r.headers),
            (420, vec![(HeaderName::Other("Unsupported".into()), "foo".into())])
        );
    }

    #[test]
    fn unanswerable() {
        assert!(answerable(&req(&OK.replace("Call-ID: c\r\n", ""))).is_err());
        assert!(
            answerable(&req(
                &OK.replace("Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1", "Via: garbage")
            ))
            .is_err()
        );
    }
}
