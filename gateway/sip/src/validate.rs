//! The checks a UAS makes on a request before acting on it (RFC 3261 §8.2), as pure functions.
//!
//! [`answerable`] decides whether any response can be formed at all (otherwise the request is dropped
//! and counted); [`check_request`] returns the error response a well-behaved UAS owes a request that
//! is malformed or asks for what we do not support.
//!
//! "Malformed" follows the RFC 3261 §25 grammar for the parts a UAS relies on: the Request-Line, the
//! fields a response copies or a dialog is built from (Via, From, To, Call-ID, CSeq, Contact) and
//! Max-Forwards. Fields the UAS does not use (Date, Expires, unknown extensions, …) are not judged: a bad
//! one is ignored, as RFC 4475 recommends (§3.1.2.12). The RFC 4475 torture messages are the test bed
//! (`tests/rfc4475.rs`).

use crate::message::{HeaderName, Message, Method, StartLine, is_token_byte};
use crate::uri::{SipUri, UriError, is_valid_scheme};
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

/// The §8.2 checks, in the RFC's order where it gives one: a malformed Request-Line (400), version
/// (505), repeated single-value fields, CSeq, Max-Forwards, Via, From/To/Contact syntax (400),
/// Request-URI scheme (416) and syntax (400), then `Require` against the option tags in `supported`
/// (420; never for CANCEL or ACK, §8.2.2.3).
pub fn check_request(msg: &Message, supported: &[&str]) -> Result<(), Rejection> {
    let StartLine::Request { method, uri, version } = &msg.start else {
        return Err(Rejection::bad("not a request"));
    };
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF: one SP between the elements and none
    // after the version (RFC 4475 §3.1.2.9 and §3.1.2.10 allow rejecting anything else).
    if uri.starts_with(char::is_whitespace)
        || uri.ends_with(char::is_whitespace)
        || version.contains(char::is_whitespace)
    {
        return Err(Rejection::bad("malformed Request-Line"));
    }
    if version != "SIP/2.0" {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    check_single_valued(msg).map_err(|e| Rejection::bad(&e))?;
    check_cseq(msg, method).map_err(Rejection::bad)?;
    if let Some(mf) = msg.header(&HeaderName::MaxForwards)
        && parse_digits(mf).is_none_or(|n| n > 255)
    {
        return Err(Rejection::bad("invalid Max-Forwards"));
    }
    check_vias(msg).map_err(Rejection::bad)?;
    check_addresses(msg).map_err(|e| Rejection::bad(&e))?;
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

/// `1*DIGIT` as a number; `None` for anything else (a sign, a space, an overflow).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Fields that carry exactly one value (RFC 3261 §7.3.1 and §20; RFC 4475 §3.3.8).
fn check_single_valued(msg: &Message) -> Result<(), String> {
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
    ] {
        if msg.headers.iter().filter(|h| h.name == name).count() > 1 {
            return Err(format!("more than one {} field", name.as_str()));
        }
    }
    Ok(())
}

/// CSeq = 1*DIGIT LWS Method, number < 2^31, method equal to the request's (§8.1.1.5).
fn check_cseq(msg: &Message, method: &Method) -> Result<(), &'static str> {
    let cseq = msg.header(&HeaderName::CSeq).unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let number = parts.next().and_then(parse_digits).ok_or("invalid CSeq number")?;
    if number >= 1 << 31 {
        return Err("CSeq number too large");
    }
    let m = parts.next().ok_or("CSeq without method")?;
    if parts.next().is_some() || m != method.as_str() {
        return Err("CSeq method does not match the request");
    }
    Ok(())
}

/// Every Via value, not only the top one used for routing: `sent-protocol LWS sent-by *( SEMI
/// via-params )`, no empty list elements or parameters (RFC 4475 §3.1.2.1).
fn check_vias(msg: &Message) -> Result<(), &'static str> {
    for h in msg.headers.iter().filter(|h| h.name == HeaderName::Via) {
        for item in split_top_level(&h.value, b',') {
            let item = item.trim();
            if item.is_empty() {
                return Err("empty Via value");
            }
            Via::parse(item).map_err(|_| "malformed Via")?;
            if let Some(i) = item.find(';') {
                check_params(item.get(i..).unwrap_or_default()).map_err(|_| "malformed Via parameter")?;
            }
        }
    }
    Ok(())
}

/// From, To and Contact: `( name-addr / addr-spec ) *( SEMI generic-param )` (§20.10, §20.20, §20.39).
fn check_addresses(msg: &Message) -> Result<(), String> {
    for h in &msg.headers {
        let checked = match h.name {
            HeaderName::From | HeaderName::To => check_address(&h.value),
            // `Contact: *` (REGISTER, §10.2.2) or a list of addresses.
            HeaderName::Contact if h.value == "*" => Ok(()),
            HeaderName::Contact => split_top_level(&h.value, b',').into_iter().try_for_each(|item| {
                if item.trim().is_empty() {
                    Err("empty value")
                } else {
                    check_address(item)
                }
            }),
            _ => Ok(()),
        };
        checked.map_err(|why| format!("{}: {why}", h.name.as_str()))?;
    }
    Ok(())
}

/// One `( name-addr / addr-spec ) *( SEMI generic-param )`.
///
/// * name-addr = `[ display-name ] "<" addr-spec ">"`, where the display name is a quoted string or
///   tokens separated by LWS (`Bell, Alexander <…>` is not: RFC 4475 §3.1.2.15; `caller<sip:…>`
///   without LWS is accepted, §3.1.1.6), and nothing may pad the URI inside the brackets (§3.1.2.14).
/// * A bare addr-spec cannot hold `;`, `,` or `?` (§20: those force the `<>` form; §3.1.2.13).
/// * Quoted strings must be terminated (§3.1.2.6).
///
/// The URI itself is only checked for shape (scheme, no whitespace): From, To and Contact may carry
/// any scheme (RFC 4475 §3.3.4).
fn check_address(value: &str) -> Result<(), &'static str> {
    let v = value.trim();
    let mut open = None;
    let mut i = 0;
    while let Some(&b) = v.as_bytes().get(i) {
        match b {
            b'"' => i += quoted_string_len(v.get(i..).unwrap_or_default()).ok_or("bad quoted string")?,
            b'<' => {
                open = Some(i);
                break;
            }
            _ => i += 1,
        }
    }
    let Some(open) = open else {
        // addr-spec form: the URI ends at the first `;`, parameters follow.
        let (uri, params) = match v.find(';') {
            Some(semi) => (
                v.get(..semi).unwrap_or_default().trim_end(),
                v.get(semi..).unwrap_or_default(),
            ),
            None => (v, ""),
        };
        if uri.contains(['?', ',']) {
            return Err("URI with headers or commas must be enclosed in <>");
        }
        check_uri_shape(uri)?;
        return check_params(params);
    };
    check_display_name(v.get(..open).unwrap_or_default().trim())?;
    let after = v.get(open + 1..).unwrap_or_default();
    let close = after.find('>').ok_or("'<' without '>'")?;
    check_uri_shape(after.get(..close).unwrap_or_default())?;
    check_params(after.get(close + 1..).unwrap_or_default())
}

/// `display-name = *(token LWS) / quoted-string`.
fn check_display_name(d: &str) -> Result<(), &'static str> {
    if d.starts_with('"') {
        return match quoted_string_len(d) {
            Some(n) if n == d.len() => Ok(()),
            _ => Err("bad display name"),
        };
    }
    if d.split_whitespace().all(|t| t.bytes().all(is_token_byte)) {
        Ok(())
    } else {
        Err("display name with non-token characters must be quoted")
    }
}

/// An absolute URI in a header: `scheme ":" something`, without whitespace, controls, quotes or angle
/// brackets.
fn check_uri_shape(uri: &str) -> Result<(), &'static str> {
    let (scheme, rest) = uri.split_once(':').ok_or("URI without scheme")?;
    if !is_valid_scheme(scheme)
        || rest.is_empty()
        || uri
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"\"<>".contains(&b))
    {
        return Err("malformed URI");
    }
    Ok(())
}

/// `*( SEMI generic-param )`, `generic-param = token [ EQUAL ( token / host / quoted-string ) ]`, with
/// LWS allowed around `;` and `=`.
fn check_params(params: &str) -> Result<(), &'static str> {
    let params = params.trim();
    if params.is_empty() {
        return Ok(());
    }
    let rest = params.strip_prefix(';').ok_or("junk after the address")?;
    for p in split_top_level(rest, b';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err("malformed parameter");
        }
        let value_ok = value.is_none_or(|v| {
            quoted_string_len(v) == Some(v.len())
                || (!v.is_empty() && v.bytes().all(|b| is_token_byte(b) || b"[]:".contains(&b)))
        });
        if !value_ok {
            return Err("malformed parameter value");
        }
    }
    Ok(())
}

/// Length of the quoted-string that starts `s` (§25.1: `DQUOTE *(qdtext / quoted-pair) DQUOTE`), or
/// `None` if `s` does not start with one, it is unterminated or holds a raw control character.
fn quoted_string_len(s: &str) -> Option<usize> {
    let mut bytes = s.bytes().enumerate();
    if bytes.next()?.1 != b'"' {
        return None;
    }
    while let Some((i, b)) = bytes.next() {
        match b {
            b'"' => return Some(i + 1),
            // quoted-pair = "\" ( %x00-09 / %x0B-0C / %x0E-7F )
            b'\\' => {
                let (_, q) = bytes.next()?;
                if q > 0x7f || q == b'\r' || q == b'\n' {
                    return None;
                }
            }
            // qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
            b' ' | b'\t' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => {}
            _ => return None,
        }
    }
    None
}

/// Splits at `sep` where it is not inside a quoted string or `<…>`, keeping empty pieces (unlike
/// [`crate::message::split_list`], which drops them: here an empty element is a defect to report).
fn split_top_level(value: &str, sep: u8) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut quoted, mut angle, mut escaped, mut from) = (false, false, false, 0);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            _ if b == sep && !quoted && !angle => {
                items.push(value.get(from..i).unwrap_or_default());
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(value.get(from..).unwrap_or_default());
    items
}

/// SIP and SIPS URIs must follow the RFC 3261 grammar and carry no headers (`?…` is not allowed in a
/// Request-URI, §19.1.1 Table 1; RFC 4475 §3.1.2.11); `tel:` is accepted (RFC 3966); another
/// well-formed scheme is unsupported (416, §8.2.2.1); anything else (whitespace, `<sip:…>`, no scheme)
/// is malformed (400).
fn check_request_uri(uri: &str) -> Result<(), Rejection> {
    if uri.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Rejection::bad("malformed Request-URI"));
    }
    match SipUri::parse(uri) {
        Ok(u) if !u.headers.is_empty() => Err(Rejection::bad("headers in Request-URI")),
        Ok(_) => Ok(()),
        Err(UriError::Scheme) => match uri.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tel") => {
                if rest.is_empty() {
                    Err(Rejection::bad("malformed Request-URI"))
                } else {
                    Ok(())
                }
            }
            Some((scheme, _)) if is_valid_scheme(scheme) => {
                Err(Rejection::new(416, "Unsupported URI Scheme"))
            }
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
    fn request_line_whitespace_is_400_before_the_version_check() {
        let code = |text: String| check_request(&req(&text), &[]).unwrap_err();
        // RFC 4475 §3.1.2.10 (trws): not a 505, the version is fine.
        let r = code(OK.replace("SIP/2.0\r\nVia", "SIP/2.0  \r\nVia"));
        assert_eq!(
            (r.code, r.reason.as_str()),
            (400, "Bad Request (malformed Request-Line)")
        );
        // §3.1.2.9 (lwsstart).
        let r = code(OK.replace(
            "OPTIONS sip:gw@192.0.2.1 SIP/2.0",
            "OPTIONS  sip:gw@192.0.2.1  SIP/2.0",
        ));
        assert_eq!(r.code, 400);
        // §3.1.2.8 (lwsruri).
        let r = code(OK.replace("sip:gw@192.0.2.1 SIP", "sip:gw@192.0.2.1; lr SIP"));
        assert_eq!(
            (r.code, r.reason.as_str()),
            (400, "Bad Request (malformed Request-URI)")
        );
    }

    #[test]
    fn request_uri_scheme_416_only_when_it_is_a_scheme() {
        let code = |uri: &str| {
            check_request(
                &req(&OK.replace("sip:gw@192.0.2.1 SIP", &format!("{uri} SIP"))),
                &[],
            )
            .map_err(|r| r.code)
        };
        assert_eq!(code("nobodyKnowsThisScheme:totallyopaquecontent"), Err(416));
        assert_eq!(code("soap.beep://192.0.2.103:3002"), Err(416));
        // RFC 4475 §3.1.2.7 (ltgtruri): `<sip` is no scheme.
        assert_eq!(code("<sip:user@example.com>"), Err(400));
        // §3.1.2.11 (escruri): no headers in a Request-URI.
        assert_eq!(code("sip:user@example.com?Route=%3Csip:example.com%3E"), Err(400));
        assert_eq!(code("tel:+15550100"), Ok(()));
        assert_eq!(code("tel:"), Err(400));
    }

    #[test]
    fn scalars_are_plain_digits() {
        let code = |from: &str, to: &str| check_request(&req(&OK.replace(from, to)), &[]).map_err(|r| r.code);
        assert_eq!(code("Max-Forwards: 70", "Max-Forwards: 0068"), Ok(()));
        assert_eq!(code("Max-Forwards: 70", "Max-Forwards: +70"), Err(400));
        assert_eq!(code("Max-Forwards: 70", "Max-Forwards: 300"), Err(400));
        assert_eq!(code("CSeq: 7 OPTIONS", "CSeq: 0009 OPTIONS"), Ok(()));
        assert_eq!(code("CSeq: 7 OPTIONS", "CSeq: +7 OPTIONS"), Err(400));
        assert_eq!(
            code("CSeq: 7 OPTIONS", "CSeq: 36893488147419103232 OPTIONS"),
            Err(400)
        );
    }

    #[test]
    fn single_value_fields_appear_once() {
        // RFC 4475 §3.3.8 (multi01).
        for dup in [
            "To: <sip:other@example.net>",
            "From: <sip:b@example.com>;tag=2",
            "Call-ID: d",
            "CSeq: 8 OPTIONS",
            "Max-Forwards: 5",
        ] {
            let r = check_request(&req(&OK.replace("\r\n\r\n", &format!("\r\n{dup}\r\n\r\n"))), &[]);
            assert_eq!(r.map_err(|r| r.code), Err(400), "{dup}");
        }
        // Contact and Via may repeat.
        let ok = OK.replace(
            "\r\n\r\n",
            "\r\nContact: <sip:a@h1>\r\nContact: <sip:a@h2>\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK2\r\n\r\n",
        );
        assert_eq!(check_request(&req(&ok), &[]), Ok(()));
    }

    #[test]
    fn every_via_is_checked() {
        for good in [
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1",
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP/2.0/UDP 192.168.255.111 ; branch=\r\n z9hG4bK30239",
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-;rport;received=2001:db8::1",
            "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
        ] {
            let text = OK.replace("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1", good);
            assert_eq!(check_request(&req(&text), &[]), Ok(()), "{good}");
        }
        for bad in [
            // RFC 4475 §3.1.2.1 (badinv01).
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1,",
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1, garbage",
            "SIP/2.0/UDP 10.0.0.5;branch=",
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;",
        ] {
            let text = OK.replace("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1", bad);
            let r = check_request(&req(&text), &[]).unwrap_err();
            assert!(r.code == 400 && r.reason.contains("Via"), "{bad}: {r:?}");
        }
    }

    #[test]
    fn addresses() {
        for good in [
            "<sip:a@example.com>",
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8",
            "caller<sip:caller@example.com>;tag=323",
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.",
            "\"BEL:\\\u{7} NUL:\\\0 DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>",
            "A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
            "isbn:2983792873",
            "<http://www.example.com>;tag=3234233",
            "sip:+19725552222@gw1.example.net;unknownparam",
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
            "<sip:a@[2001:db8::1]:5060;transport=ws>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
            "<sip:a@b>;received=[2001:db8::1]",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            // RFC 4475 §3.1.2.6 (quotbal), §3.1.2.13 (regbadct), §3.1.2.14 (badaspec), §3.1.2.15 (baddn).
            "\"Mr. J. User <sip:j.user@example.com>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            // §3.1.2.1 (badinv01).
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:a@b",
            "<sip:a@b> junk",
            "<sip:a@b>;tag=",
            "<sip:a@b>;=x",
            "<sip:a@b>;tag=\"open",
            "<sip:a@b>;tag=a b",
            "\"bad\\\u{e9}\" <sip:a@b>",
            "\"raw\u{7}\" <sip:a@b>",
            "Bob sip:bob@example.com",
            "<>",
            "<nocolon>",
            "<1x:y>",
            "\"x\"",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        let contact = |value: &str| {
            check_request(
                &req(&OK.replace("\r\n\r\n", &format!("\r\nContact: {value}\r\n\r\n"))),
                &[],
            )
            .map_err(|r| r.code)
        };
        assert_eq!(contact("*"), Ok(()));
        assert_eq!(contact("<sip:a@h1>;expires=0, \"B, b\" <sip:b@h2>;q=0.5"), Ok(()));
        assert_eq!(contact("<sip:a@h1>,,<sip:b@h2>"), Err(400));
        assert_eq!(contact("<sip:a@h1>, *"), Err(400));
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
