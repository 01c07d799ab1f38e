//! The SIP message model the gateway works with.
//!
//! A tolerant tokenizer of our own splits a datagram into start line, header fields and body (RFC 3261
//! §7): compact header names are expanded (`v` → `Via`), folded lines unfolded, and a field that carries
//! several comma-separated values is kept as written and split on demand ([`Message::values`]). Semantic
//! checks (mandatory headers, CSeq, Content-Length, Request-URI) are left to the caller, so that a request
//! that is wrong in one field can still be answered with the right error instead of being dropped.

use std::fmt;

/// Largest message accepted, in bytes (a UDP datagram cannot be larger; streams get the same limit).
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// A SIP request method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261
    Invite,
    /// RFC 3261
    Ack,
    /// RFC 3261
    Bye,
    /// RFC 3261
    Cancel,
    /// RFC 3261
    Options,
    /// RFC 3261
    Register,
    /// RFC 6086
    Info,
    /// RFC 3311
    Update,
    /// RFC 3262
    Prack,
    /// RFC 6665
    Subscribe,
    /// RFC 6665
    Notify,
    /// RFC 3515
    Refer,
    /// RFC 3428
    Message,
    /// RFC 3903
    Publish,
    /// Any other syntactically valid method token.
    Other(String),
}

impl Method {
    /// Parses a method token; `None` if it is not a valid RFC 3261 token.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return None;
        }
        Some(match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Other(other.to_owned()),
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Header field names the gateway looks at, with their compact forms expanded; everything else is
/// [`HeaderName::Other`] and passes through as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Max-Forwards`
    MaxForwards,
    /// `Contact` / `m`
    Contact,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Require`
    Require,
    /// `Proxy-Require`
    ProxyRequire,
    /// `Supported` / `k`
    Supported,
    /// `Allow`
    Allow,
    /// `Accept`
    Accept,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `User-Agent`
    UserAgent,
    /// `Server`
    Server,
    /// `Expires`
    Expires,
    /// `Authorization`
    Authorization,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Session-Expires` / `x` (RFC 4028)
    SessionExpires,
    /// `Min-SE` (RFC 4028)
    MinSe,
    /// Any other name, as written.
    Other(String),
}

impl HeaderName {
    /// Maps a field name as received (any case, compact or long form) to a header name.
    pub fn from_wire(name: &str) -> Self {
        const KNOWN: &[(&str, Option<&str>, HeaderName)] = &[
            ("Via", Some("v"), HeaderName::Via),
            ("From", Some("f"), HeaderName::From),
            ("To", Some("t"), HeaderName::To),
            ("Call-ID", Some("i"), HeaderName::CallId),
            ("CSeq", None, HeaderName::CSeq),
            ("Max-Forwards", None, HeaderName::MaxForwards),
            ("Contact", Some("m"), HeaderName::Contact),
            ("Content-Length", Some("l"), HeaderName::ContentLength),
            ("Content-Type", Some("c"), HeaderName::ContentType),
            ("Require", None, HeaderName::Require),
            ("Proxy-Require", None, HeaderName::ProxyRequire),
            ("Supported", Some("k"), HeaderName::Supported),
            ("Allow", None, HeaderName::Allow),
            ("Accept", None, HeaderName::Accept),
            ("Route", None, HeaderName::Route),
            ("Record-Route", None, HeaderName::RecordRoute),
            ("User-Agent", None, HeaderName::UserAgent),
            ("Server", None, HeaderName::Server),
            ("Expires", None, HeaderName::Expires),
            ("Authorization", None, HeaderName::Authorization),
            ("Proxy-Authorization", None, HeaderName::ProxyAuthorization),
            ("Session-Expires", Some("x"), HeaderName::SessionExpires),
            ("Min-SE", None, HeaderName::MinSe),
        ];
        KNOWN
            .iter()
            .find(|(long, short, _)| {
                long.eq_ignore_ascii_case(name) || short.is_some_and(|s| s.eq_ignore_ascii_case(name))
            })
            .map_or_else(|| Self::Other(name.to_owned()), |(_, _, h)| h.clone())
    }

    /// The canonical long form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::MaxForwards => "Max-Forwards",
            Self::Contact => "Contact",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::Require => "Require",
            Self::ProxyRequire => "Proxy-Require",
            Self::Supported => "Supported",
            Self::Allow => "Allow",
            Self::Accept => "Accept",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::UserAgent => "User-Agent",
            Self::Server => "Server",
            Self::Expires => "Expires",
            Self::Authorization => "Authorization",
            Self::ProxyAuthorization => "Proxy-Authorization",
            Self::SessionExpires => "Session-Expires",
            Self::MinSe => "Min-SE",
            Self::Other(s) => s,
        }
    }
}

/// One header field: name and (unfolded, trimmed) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: HeaderName,
    /// Field value, without leading/trailing whitespace.
    pub value: String,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP-Version`
    Request {
        /// Method.
        method: Method,
        /// Request-URI, as written (checked by the receiver, see [`crate::validate`]). In a malformed
        /// Request-Line it keeps the stray whitespace, e.g. `" sip:a@b "` for `INVITE  sip:a@b  SIP/2.0`.
        uri: String,
        /// Version, e.g. `SIP/2.0`; as written, so trailing whitespace on the line stays in it.
        version: String,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`
    Response {
        /// Status code, 100–699.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// Why a datagram could not be read as a SIP message at all (nothing can be answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE_LEN`].
    TooLarge(usize),
    /// The start line and headers are not UTF-8.
    NotUtf8,
    /// The first line is neither a request line nor a status line.
    BadStartLine,
    /// A header line has no colon or an invalid name.
    BadHeaderLine(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "message of {n} bytes exceeds {MAX_MESSAGE_LEN}"),
            Self::NotUtf8 => f.write_str("start line or headers are not UTF-8"),
            Self::BadStartLine => f.write_str("first line is neither a request line nor a status line"),
            Self::BadHeaderLine(n) => write!(f, "header line {n} is malformed"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A tokenized SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Header fields, in order.
    pub headers: Vec<Header>,
    /// Everything after the empty line (see [`Message::frame_datagram_body`]).
    pub body: Vec<u8>,
}

impl Message {
    /// Tokenizes one message. Fails only when the bytes are not recognisably SIP.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLarge(bytes.len()));
        }
        // Leading CRLFs before a message are allowed and ignored (RFC 3261 §7.5).
        let start = bytes
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(bytes.len());
        let bytes = bytes.get(start..).unwrap_or_default();
        let (head, body) = split_head(bytes);
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().ok_or(ParseError::BadStartLine)?;
        let start = parse_start_line(first).ok_or(ParseError::BadStartLine)?;

        let mut headers: Vec<Header> = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // Folded continuation of the previous field (RFC 3261 §7.3.1): the line break and the
                // whitespace around it become one SP, but never at either end of the value (a field may
                // start on the next line, `To:\r\n sip:a@b`, or end in an empty continuation).
                let last = headers.last_mut().ok_or(ParseError::BadHeaderLine(i + 2))?;
                let more = line.trim();
                if !more.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(' ');
                    }
                    last.value.push_str(more);
                }
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::BadHeaderLine(i + 2))?;
            let name = name.trim_end();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ParseError::BadHeaderLine(i + 2));
            }
            headers.push(Header {
                name: HeaderName::from_wire(name),
                value: value.trim().to_owned(),
            });
        }
        Ok(Self {
            start,
            headers,
            body: body.to_vec(),
        })
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Value of the first field named `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated value of every field named `name`, in order (RFC 3261 §7.3.1). Commas
    /// inside quoted strings and angle brackets do not split.
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| &h.name == name)
            .flat_map(|h| split_list(&h.value))
    }

    /// Applies Content-Length to a message that arrived in one datagram (RFC 3261 §18.3): extra bytes are
    /// discarded; a body shorter than announced, or an unreadable Content-Length, is an error (`Err` holds
    /// the reason for a 400).
    ///
    /// Content-Length is `1*DIGIT` (no sign, RFC 3261 §20.14); several Content-Length values that
    /// disagree leave the body's extent unknown and are an error too (RFC 4475 §3.3.9).
    pub fn frame_datagram_body(&mut self) -> Result<(), &'static str> {
        let Some(len) = self.content_length()? else {
            return Ok(());
        };
        if len > self.body.len() {
            return Err("body shorter than Content-Length");
        }
        self.body.truncate(len);
        Ok(())
    }
}

impl Message {
    /// The announced body length: `None` without a Content-Length; an error if it is not `1*DIGIT` or
    /// if several values disagree (RFC 3261 §20.14, RFC 4475 §3.3.9). Datagram and stream framing both
    /// read it here.
    pub fn content_length(&self) -> Result<Option<usize>, &'static str> {
        let mut values = self.values(&HeaderName::ContentLength);
        let Some(raw) = values.next() else {
            return Ok(None);
        };
        if values.any(|other| other != raw) {
            return Err("conflicting Content-Length values");
        }
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid Content-Length");
        }
        raw.parse().map(Some).map_err(|_| "invalid Content-Length")
    }

    /// Serializes the message: start line, headers in order with canonical names, a Content-Length
    /// computed from the body (any Content-Length header present is replaced), the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            String::with_capacity(256 + self.headers.iter().map(|h| h.value.len() + 24).sum::<usize>());
        match &self.start {
            StartLine::Request { method, uri, version } => {
                out.push_str(method.as_str());
                out.push(' ');
                out.push_str(uri);
                out.push(' ');
                out.push_str(version);
            }
            StartLine::Response { code, reason } => {
                out.push_str("SIP/2.0 ");
                out.push_str(&code.to_string());
                out.push(' ');
                out.push_str(reason);
            }
        }
        out.push_str("\r\n");
        for h in self
            .headers
            .iter()
            .filter(|h| h.name != HeaderName::ContentLength)
        {
            out.push_str(h.name.as_str());
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str("Content-Length: ");
        out.push_str(&self.body.len().to_string());
        out.push_str("\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Replaces the first Via value (which may share a header line with others) with `via`.
    /// Returns false if the message has no Via.
    pub fn replace_top_via(&mut self, via: &str) -> bool {
        let Some(h) = self.headers.iter_mut().find(|h| h.name == HeaderName::Via) else {
            return false;
        };
        let rest: Vec<&str> = split_list(&h.value).skip(1).collect();
        let mut value = via.to_owned();
        for r in rest {
            value.push_str(", ");
            value.push_str(r);
        }
        h.value = value;
        true
    }

    /// Appends a header field.
    pub fn push_header(&mut self, name: HeaderName, value: impl Into<String>) {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
    }
}

/// Splits at the first empty line; without one, everything is head.
fn split_head(bytes: &[u8]) -> (&[u8], &[u8]) {
    // One pass over the line feeds: the first empty line ends the head, whether it is written
    // CRLF CRLF or (leniently) LF LF.
    let mut from = 0;
    while let Some(i) = bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        .map(|p| p + from)
    {
        let cut = match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'\n'), _) => Some((i, i + 2)),
            (Some(b'\r'), Some(b'\n')) if i > 0 && bytes.get(i - 1) == Some(&b'\r') => Some((i - 1, i + 3)),
            _ => None,
        };
        if let Some((head_end, body_start)) = cut {
            return (
                bytes.get(..head_end).unwrap_or_default(),
                bytes.get(body_start..).unwrap_or_default(),
            );
        }
        from = i + 1;
    }
    (bytes, &[])
}

fn parse_start_line(line: &str) -> Option<StartLine> {
    if line.starts_with("SIP/") {
        return parse_status_line(line);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version. The method ends at the first SP and the
    // version starts after the last SP that precedes it; the Request-URI is everything in between, kept
    // as written. So a URI with embedded LWS, extra SP between the elements or SP after the version is
    // still a request that names its Via, From, … and can be answered 400 (RFC 4475 §3.1.2.8–10)
    // rather than unreadable garbage.
    let (method, rest) = line.split_once(' ')?;
    let cut = rest.trim_end_matches([' ', '\t']).rfind(' ')?;
    let uri = rest.get(..cut)?;
    let version = rest.get(cut + 1..)?;
    if uri.trim().is_empty() || !version.starts_with("SIP/") {
        return None;
    }
    Some(StartLine::Request {
        method: Method::from_token(method)?,
        uri: uri.to_owned(),
        version: version.to_owned(),
    })
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; a code that is not three digits in 100–699 makes the
/// line unreadable (RFC 4475 §3.1.2.19: such a response is simply dropped).
fn parse_status_line(line: &str) -> Option<StartLine> {
    let mut parts = line.splitn(3, ' ');
    let _version = parts.next()?;
    let code = parts.next()?;
    let reason = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    if !(100..=699).contains(&code) {
        return None;
    }
    Some(StartLine::Response {
        code,
        reason: reason.to_owned(),
    })
}

/// Splits a header value at top-level commas (not inside `"…"` or `<…>`), trimming each item.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    ListItems { rest: Some(value) }
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The items of a comma-separated header value, without allocating.
struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let value = self.rest?;
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        for (i, c) in value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                ',' if !quoted && !angle => {
                    self.rest = value.get(i + 1..);
                    return value.get(..i);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(value)
    }
}

/// Value of header parameter `name` (e.g. `tag`) in a name-addr/addr-spec field such as From or To:
/// parameters after the `>` when the URI is in angle brackets, otherwise after the URI.
/// `Some(None)` for a parameter without a value.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<Option<&'a str>> {
    let params = match value.rfind('>') {
        Some(i) => value.get(i + 1..)?,
        None => value.split_once(';').map(|(_, p)| p)?,
    };
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find_map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            };
            k.eq_ignore_ascii_case(name).then_some(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK0\r\n\
        Via: SIP/2.0/TCP 203.0.113.10;branch=z9hG4bKx\r\n\
        From: \"Doe, John\" <sip:john@example.com>;tag=abc\r\n\
        t: <sip:gw@192.0.2.1>\r\n\
        i: call-1\r\n\
        CSeq: 1\r\n  OPTIONS\r\n\
        l: 4\r\n\
        \r\n\
        bodyEXTRA";

    #[test]
    fn compact_forms_folding_and_lists() {
        let mut m = Message::parse(OPTIONS.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Options));
        assert_eq!(m.header(&HeaderName::CallId), Some("call-1"));
        assert_eq!(m.header(&HeaderName::CSeq), Some("1 OPTIONS"));
        let vias: Vec<_> = m.values(&HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK1;rport",
                "SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK0",
                "SIP/2.0/TCP 203.0.113.10;branch=z9hG4bKx"
            ]
        );
        // The quoted comma in From does not split it.
        assert_eq!(m.values(&HeaderName::From).count(), 1);
        m.frame_datagram_body().unwrap();
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn content_length_longer_than_body_is_an_error() {
        let mut m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert_eq!(m.frame_datagram_body(), Err("body shorter than Content-Length"));
        let mut m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n").unwrap();
        assert_eq!(m.frame_datagram_body(), Err("invalid Content-Length"));
    }

    #[test]
    fn status_line_and_unknown_method() {
        let m = Message::parse(b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 486,
                reason: "Busy Here".into()
            }
        );
        let m = Message::parse(b"FROBNICATE sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some(&Method::Other("FROBNICATE".into())));
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"hello",
            b"SIP/2.0 99 Too Low\r\n\r\n",
            b"SIP/2.0 2000 X\r\n\r\n",
            b"INV@TE sip:a SIP/2.0\r\n\r\n",
            b"INVITE sip:a HTTP/1.1\r\n\r\n",
            b"OPTIONS sip:a SIP/2.0\r\nno colon here\r\n\r\n",
            b"OPTIONS sip:a SIP/2.0\r\n continuation first\r\n\r\n",
            b"OPTIONS sip:a SIP/2.0\r\nVia\xff: x\r\n\r\n",
            b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n",
            b"SIP/2.0 1e2 Scientific\r\n\r\n",
            b"INVITE SIP/2.0\r\n\r\n",
            b"INVITE  SIP/2.0\r\n\r\n",
            b"INVITE sip:a@b\r\n\r\n",
        ] {
            assert!(Message::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            Message::parse(&vec![b'a'; MAX_MESSAGE_LEN + 1]),
            Err(ParseError::TooLarge(65_536))
        );
    }

    #[test]
    fn folding_never_pads_the_value() {
        // RFC 4475 §3.1.1.1 (wsinv): a field may start on the continuation line, and a continuation
        // may be blank; neither leaves whitespace at either end of the value.
        let m = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:a@b ;   tag = 1\r\nSubject: x\r\n \t\r\nCall-ID:\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.header(&HeaderName::To), Some("sip:a@b ;   tag = 1"));
        assert_eq!(m.header(&HeaderName::Other("Subject".into())), Some("x"));
        assert_eq!(m.header(&HeaderName::CallId), Some(""));
    }

    #[test]
    fn malformed_request_lines_are_still_requests() {
        // RFC 4475 §3.1.2.8–10 (lwsruri, lwsstart, trws): the request can be answered 400 only if it
        // is read; the stray whitespace is kept for the validator to see.
        for (line, want_uri, want_version) in [
            (
                "INVITE sip:user@example.com; lr SIP/2.0",
                "sip:user@example.com; lr",
                "SIP/2.0",
            ),
            (
                "INVITE  sip:user@example.com  SIP/2.0",
                " sip:user@example.com ",
                "SIP/2.0",
            ),
            ("OPTIONS sip:a@b SIP/2.0  ", "sip:a@b", "SIP/2.0  "),
            (
                "OPTIONS sip:t.watson@example.org SIP/7.0",
                "sip:t.watson@example.org",
                "SIP/7.0",
            ),
        ] {
            let m = Message::parse(format!("{line}\r\nCall-ID: x\r\n\r\n").as_bytes()).unwrap();
            let StartLine::Request { uri, version, .. } = &m.start else {
                panic!("{line}")
            };
            assert_eq!(
                (uri.as_str(), version.as_str()),
                (want_uri, want_version),
                "{line}"
            );
        }
    }

    #[test]
    fn content_length_is_digits_and_only_one_value() {
        let frame = |cl: &str| {
            let text = format!("OPTIONS sip:a@b SIP/2.0\r\n{cl}\r\n\r\nThere's no way to know");
            Message::parse(text.as_bytes()).unwrap().frame_datagram_body()
        };
        assert_eq!(frame("Content-Length: +5"), Err("invalid Content-Length"));
        assert_eq!(frame("Content-Length: -999"), Err("invalid Content-Length"));
        assert_eq!(frame("Content-Length: five"), Err("invalid Content-Length"));
        // RFC 4475 §3.3.9 (mcl01).
        assert_eq!(
            frame("Content-Length: 13\r\nContent-Length: 5"),
            Err("conflicting Content-Length values")
        );
        assert_eq!(frame("l: 13, 5"), Err("conflicting Content-Length values"));
        assert_eq!(frame("Content-Length: 5\r\nl: 5"), Ok(()));
    }

    #[test]
    fn encode_round_trips_and_recomputes_content_length() {
        let mut m = Message::parse(OPTIONS.as_bytes()).unwrap();
        m.frame_datagram_body().unwrap();
        let bytes = m.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5062"),
            "{text}"
        );
        assert!(text.ends_with("Content-Length: 4\r\n\r\nbody"), "{text}");
        assert_eq!(text.matches("Content-Length").count(), 1);
        let mut again = Message::parse(&bytes).unwrap();
        again.frame_datagram_body().unwrap();
        assert_eq!(again.body, m.body);
        assert_eq!(again.values(&HeaderName::Via).count(), 3);
    }

    #[test]
    fn replace_top_via_keeps_the_others() {
        let mut m = Message::parse(OPTIONS.as_bytes()).unwrap();
        assert!(m.replace_top_via("SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew"));
        let vias: Vec<_> = m.values(&HeaderName::Via).collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0], "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew");
        assert_eq!(vias[1], "SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK0");
        let mut empty = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert!(!empty.replace_top_via("x"));
    }

    #[test]
    fn header_params() {
        assert_eq!(
            header_param("<sip:a@b;tag=uri>;tag=hdr", "tag"),
            Some(Some("hdr"))
        );
        assert_eq!(header_param("<sip:a@b;tag=uri>", "tag"), None);
        assert_eq!(header_param("sip:a@b;TAG=x ; lr", "tag"), Some(Some("x")));
        assert_eq!(header_param("sip:a@b;lr", "lr"), Some(None));
        assert_eq!(header_param("sip:a@b", "tag"), None);
    }
}
