//! A small HTTP/1.1 client over rustls (or plain TCP for `http://`): one request per connection,
//! bodies streamed (Content-Length, chunked, or to the end), never held whole in memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 16 * 1024;

/// The update server, as the agent reaches it.
#[derive(Clone)]
pub(crate) struct Client {
    host: String,
    port: u16,
    base_path: String,
    token: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Client({}:{}, tls={})",
            self.host,
            self.port,
            self.tls.is_some()
        )
    }
}

/// A response whose body is still on the wire.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Box<dyn Read>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body, up to `limit` bytes (for small JSON answers).
    pub(crate) fn text(mut self, limit: u64) -> Result<String, String> {
        let mut s = String::new();
        Read::by_ref(&mut self.body)
            .take(limit)
            .read_to_string(&mut s)
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok(s)
    }
}

impl Client {
    /// For `base` (`https://host:port[/prefix]`), sending `token`; `ca` is the PEM file the server's
    /// certificate must chain to (https only).
    pub(crate) fn new(base: &str, token: &str, ca: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = base.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = base.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{base:?} is not an http(s) URL"));
        };
        let (authority, base_path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| {
            (a, format!("/{}", p.trim_end_matches('/')))
        });
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p.parse().map_err(|_| format!("bad port in {base:?}"))?,
            ),
            _ => (authority.to_owned(), if tls { 443 } else { 80 }),
        };
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{ca}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{ca}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{ca}: no certificate in it"));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("{ca}: {e}"))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            base_path,
            token: token.to_owned(),
            tls,
        })
    }

    /// The path to request for `url`: an absolute URL on this server, or a path under the base.
    pub(crate) fn path_of(&self, url: &str) -> String {
        if let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        {
            return rest
                .find('/')
                .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned());
        }
        format!("{}/{}", self.base_path, url.trim_start_matches('/'))
    }

    /// Sends one request and reads the response head.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Response, String> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(self.host.as_str(), self.port))
            .map_err(|e| format!("resolving {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.host))?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        tcp.set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut stream: Box<dyn ReadWrite> = match &self.tls {
            Some(config) => {
                let name =
                    ServerName::try_from(self.host.clone()).map_err(|e| format!("{}: {e}", self.host))?;
                let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
            None => Box::new(tcp),
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\
             User-Agent: edge-agent/{}\r\nContent-Length: {}\r\n",
            self.host,
            self.port,
            self.token,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush())
            .map_err(|e| format!("sending to {addr}: {e}"))?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let (status, headers) = read_head(&mut reader).map_err(|e| format!("the answer from {addr}: {e}"))?;
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body: Box<dyn Read> =
            if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                Box::new(Chunked {
                    inner: reader,
                    left: 0,
                    done: false,
                })
            } else if let Some(len) = find("content-length") {
                let len: u64 = len
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {len:?}"))?;
                Box::new(reader.take(len))
            } else {
                Box::new(reader)
            };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn read_line(r: &mut impl BufRead, budget: &mut usize) -> Result<String, String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(u64::try_from(*budget).unwrap_or(0))
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed before the response head ended".into());
    }
    *budget = budget.saturating_sub(n);
    if !line.ends_with(b"\n") {
        return Err("response head too long".into());
    }
    String::from_utf8(line)
        .map(|l| l.trim_end().to_owned())
        .map_err(|_| "response head is not text".into())
}

fn read_head(r: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>), String> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(r, &mut budget)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
}

/// A chunked body (RFC 9112 §7.1), trailers skipped.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut budget = 1024;
            let line = read_line(&mut self.inner, &mut budget).map_err(|e| bad(&e))?;
            let size = line.split(';').next().unwrap_or_default().trim();
            self.left = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if self.left == 0 {
                // Trailers, then the empty line.
                while !read_line(&mut self.inner, &mut budget)
                    .map_err(|e| bad(&e))?
                    .is_empty()
                {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("connection closed inside a chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_chunked_bodies_parse() {
        let raw = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        let (status, headers) = read_head(&mut r).unwrap();
        assert_eq!(status, 206);
        assert_eq!(headers[0], ("Content-Range".into(), "bytes 5-9/10".into()));
        let mut body = String::new();
        Chunked {
            inner: r,
            left: 0,
            done: false,
        }
        .read_to_string(&mut body)
        .unwrap();
        assert_eq!(body, "abcde");
        assert!(read_head(&mut BufReader::new(&b"SSH-2.0\r\n\r\n"[..])).is_err());
        assert!(read_head(&mut BufReader::new(&b"HTTP/1.1 200 OK\r\nX: y"[..])).is_err());
        let huge = [b'a'; MAX_HEAD + 10];
        assert!(read_head(&mut BufReader::new(&huge[..])).is_err());
        let mut bad = String::new();
        assert!(
            Chunked {
                inner: BufReader::new(&b"zz\r\n"[..]),
                left: 0,
                done: false
            }
            .read_to_string(&mut bad)
            .is_err()
        );
    }

    #[test]
    fn urls_split_into_host_port_and_paths() {
        let c = Client::new("http://10.0.2.100:8080/updates/", "t", "").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.2.100", 8080));
        assert_eq!(
            c.path_of("/v1/bundles/b/c/1.bundle"),
            "/updates/v1/bundles/b/c/1.bundle"
        );
        assert_eq!(c.path_of("https://other:1/v1/x"), "/v1/x");
        assert!(Client::new("ftp://x", "t", "").is_err());
        assert!(Client::new("https://x", "t", "/nonexistent.pem").is_err());
    }
}
