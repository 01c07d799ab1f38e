//! HTTP/1.1 for RTC Edge's two servers: the local web UI and REST API in `gatewayd`, and the fleet's
//! update server (`edge-update-server`).
//!
//! **Owns**: request framing ([`head`], sans-IO: bytes in, a [`head::Head`] out; tested at every cut
//! and fuzzed), the plain values a handler sees ([`Request`], [`Response`], [`Body`]), small helpers
//! every handler needs (query strings, constant-time secret comparison), and the shell that serves a
//! [`Handler`] on a TCP listener, one thread per connection, over rustls 0.23 or plain TCP ([`server`]).
//!
//! **Never**: decides what a request means (routing, sessions, tokens belong to the handler), buffers a
//! body (a handler reads it from a [`std::io::Read`] bounded by `Content-Length`), or allocates for a
//! length a peer declared: a 1 TB `Content-Length` is a number, not a buffer.
//!
//! Why not `tiny_http` 0.12 (the brief's plan): its `ssl-rustls` feature brings rustls 0.20 and ring 0.16
//! (a second TLS stack; rustls 0.20 got no fix for RUSTSEC-2024-0336), and, with or without TLS, dropping
//! a request whose body was not read to its end allocates the rest of its *declared* `Content-Length`
//! at once (`EqualReader::drop`), so one unauthenticated request with `Content-Length: 1000000000000`
//! aborted the server (tried; the fix, tiny-http PR #290, is not released).
//!
//! Architecture Invariant: a handler's response headers cannot carry a line break (dropped when the
//! head is written), and request bodies reach handlers only through a reader that stops at
//! `Content-Length`.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;

use serde::Serialize;

pub mod head;
pub mod server;

/// An HTTP request, as a handler sees it (the body comes separately, as a reader).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target: path and query (`/v1/fleet`, `/?token=…`).
    pub url: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Range` header.
    pub range: Option<String>,
    /// Every header with a UTF-8 value: name in lower case, value trimmed.
    pub headers: Vec<(String, String)>,
    /// The body's declared length.
    pub content_length: u64,
    /// Who sent it (absent in tests that build requests by hand).
    pub peer: Option<SocketAddr>,
    /// Whether it came over TLS.
    pub secure: bool,
}

impl Request {
    /// The first value of header `name` (give it in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or_default()
    }

    /// The query string (after `?`), empty if none.
    pub fn query(&self) -> &str {
        self.url.split_once('?').map_or("", |(_, q)| q)
    }

    /// The value of cookie `name` (the first `Cookie` header holding it).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// In memory.
    Bytes(Vec<u8>),
    /// `len` bytes of an open file, from its current position: streamed, never read whole.
    File {
        /// Positioned at the first byte to send.
        file: File,
        /// How many bytes to send.
        len: u64,
    },
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides `Content-Length` (the shell sets it from the body).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// The body of every JSON error response: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// What is wrong.
    pub error: String,
}

impl Response {
    /// A JSON response (`Cache-Control: no-store`).
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "no-store".into()),
            ],
            body: Body::Bytes(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// A JSON error: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(
            status,
            &ErrorBody {
                error: message.into(),
            },
        )
    }

    /// A response of `bytes` with a content type.
    pub fn bytes(status: u16, content_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: Body::Bytes(bytes),
        }
    }

    /// No body (e.g. 204).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body's length.
    pub fn len(&self) -> u64 {
        match &self.body {
            Body::Bytes(b) => u64::try_from(b.len()).unwrap_or(u64::MAX),
            Body::File { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a server serves: a request and its body in, a response out. Called on the connection's
/// thread; the body reader never yields more than the request's `Content-Length`.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response;
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX`-decodes a path segment or query value (`+` stays `+`); `None` if malformed or not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in a query string: `None` if absent, `Some(None)` if present but malformed.
pub fn query_param(query: &str, name: &str) -> Option<Option<String>> {
    query.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_helpers() {
        let req = Request {
            url: "/api/logs?limit=20&x=%zz".into(),
            headers: vec![
                ("cookie".into(), "a=1; edge_session=abc".into()),
                ("cookie".into(), "b=2".into()),
                ("x-csrf-token".into(), "t".into()),
            ],
            ..Request::default()
        };
        assert_eq!(req.path(), "/api/logs");
        assert_eq!(req.cookie("edge_session"), Some("abc"));
        assert_eq!(req.cookie("b"), Some("2"));
        assert_eq!(req.cookie("c"), None);
        assert_eq!(req.header("x-csrf-token"), Some("t"));
        assert_eq!(query_param(req.query(), "limit"), Some(Some("20".into())));
        assert_eq!(query_param(req.query(), "x"), Some(None));
        assert_eq!(query_param(req.query(), "y"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("ab", "abc"));
    }
}
