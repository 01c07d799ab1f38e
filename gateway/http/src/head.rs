//! HTTP/1.1 framing, sans-IO: a request head from bytes, a response head to bytes. The shell reads and
//! writes the sockets; this decides where a request ends and what it may cost.
//!
//! Request bodies need `Content-Length` (chunked uploads get 411): a body's length is known before a
//! byte of it is read, and whatever the handler leaves unread is skipped in small reads or the
//! connection is closed, never buffered.

/// The longest request head read (request line and headers), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 48;

/// What a request head says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The body's length (0 without `Content-Length`).
    pub content_length: u64,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Range` header.
    pub range: Option<String>,
    /// Every header with a UTF-8 value, in order: the name in lower case, the value trimmed.
    pub headers: Vec<(String, String)>,
}

/// Why a request head is refused; the connection is closed after the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] headers.
    #[error("the request head is too large")]
    TooLarge,
    /// A body without `Content-Length` (e.g. chunked).
    #[error("send the body with a Content-Length (chunked request bodies are not supported)")]
    LengthRequired,
    /// An `Expect` other than `100-continue`.
    #[error("only Expect: 100-continue is supported")]
    Expectation,
}

impl HeadError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::TooLarge => 431,
            Self::LengthRequired => 411,
            Self::Expectation => 417,
        }
    }
}

/// Reads a request head from the start of `buf`: `Ok(None)` if more bytes are needed, otherwise the
/// head and how many bytes of `buf` it took (the body, if any, follows).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let mut head = Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        ..Head::default()
    };
    let http11 = req.version == Some(1);
    let (mut close, mut keep_alive, mut length) = (false, false, None);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok().map(str::trim);
        let name = h.name;
        if let Some(v) = value {
            head.headers.push((name.to_ascii_lowercase(), v.to_owned()));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| HeadError::Malformed("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HeadError::LengthRequired);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.unwrap_or_default().split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
                return Err(HeadError::Expectation);
            }
            head.expect_continue = true;
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = value.map(str::to_owned);
        } else if name.eq_ignore_ascii_case("range") {
            head.range = value.map(str::to_owned);
        }
    }
    head.content_length = length.unwrap_or(0);
    head.keep_alive = !close && (http11 || keep_alive);
    Ok(Some((head, used)))
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        303 => "See Other",
        304 => "Not Modified",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A response head: status line, `headers` (any with a line break is dropped), `Content-Length`, and
/// `Connection: close` if the connection ends after this response.
pub fn response_head(status: u16, headers: &[(&str, String)], content_length: u64, close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        if !value.contains(['\r', '\n']) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str(&format!("Content-Length: {content_length}\r\n"));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<(Head, usize)>, HeadError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_at_every_cut() {
        let text = "PUT /v1/admin/bundles/stable?percent=5 HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer adm \r\n\
                    Content-Length: 12\r\nExpect: 100-continue\r\nRange: bytes=1-\r\n\r\nbody follows";
        let end = text.find("\r\n\r\n").unwrap() + 4;
        for cut in 0..end {
            assert_eq!(parse(&text[..cut]), Ok(None), "cut at {cut}");
        }
        let (head, used) = parse(text).unwrap().unwrap();
        assert_eq!(used, end);
        assert_eq!(
            head,
            Head {
                method: "PUT".into(),
                target: "/v1/admin/bundles/stable?percent=5".into(),
                content_length: 12,
                keep_alive: true,
                expect_continue: true,
                authorization: Some("Bearer adm".into()),
                range: Some("bytes=1-".into()),
                headers: [
                    ("host", "x"),
                    ("authorization", "Bearer adm"),
                    ("content-length", "12"),
                    ("expect", "100-continue"),
                    ("range", "bytes=1-"),
                ]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .to_vec(),
            }
        );
    }

    #[test]
    fn connection_persistence() {
        let keep = |t: &str| parse(t).unwrap().unwrap().0.keep_alive;
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        let err = |t: &str| parse(t).unwrap_err().status();
        assert_eq!(err("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
        assert_eq!(
            err("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(err("GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), 400);
        assert_eq!(
            err("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(err("GET / HTTP/1.1\r\nExpect: magic\r\n\r\n"), 417);
        assert_eq!(err("GET\0 / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(err(&format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD))), 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(err(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
        // A huge but well-formed length is only a number: nothing is allocated for it.
        let (head, _) = parse("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.content_length, u64::MAX);
    }

    #[test]
    fn response_heads() {
        let head = response_head(
            206,
            &[("Content-Range", "bytes 0-1/9".into()), ("X", "a\r\nb".into())],
            2,
            true,
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-1/9\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }
}
