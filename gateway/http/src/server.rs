//! The shell: a TCP listener, one thread per connection, rustls 0.23 or plain TCP, requests framed by
//! [`crate::head`] and handed to a [`Handler`]. Every read and write has a deadline, so a peer that
//! dribbles or stalls holds one thread for a bounded time; what a handler leaves of a body is skipped
//! in small reads or the connection is closed.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the shell: it owns the sockets and the clock"
)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::head::{self, Head};
use crate::{Body, Handler, Request, Response};

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// A read (a request's head or body, or the wait for the next request) that stalls this long ends
/// the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A request head must arrive whole within this (a peer dribbling bytes cannot hold a thread).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that takes no bytes for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body left unread by the handler (a refusal) is skipped up to this many bytes to keep the
/// connection; beyond, the connection is closed.
const SKIP_MAX: u64 = 1024 * 1024;
/// After the last response, what the peer still sends is read and dropped for this long (and up to
/// [`LINGER_MAX`] bytes) before the socket closes, so the response is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX: usize = 16 * 1024 * 1024;

/// A rustls server configuration (ring provider, HTTP/1.1 ALPN) from a PEM certificate chain and key
/// file; the message names the file at fault.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    tls_config_pem(&cert_pem, &key_pem).map_err(|e| match e {
        PemError::Cert(m) => format!("{}: {m}", cert.display()),
        PemError::Key(m) => format!("{}: {m}", key.display()),
        PemError::Pair(m) => format!("{} + {}: {m}", cert.display(), key.display()),
    })
}

/// Why PEM text cannot serve TLS, by the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// The certificate chain.
    Cert(String),
    /// The private key.
    Key(String),
    /// The two do not belong together.
    Pair(String),
}

/// A rustls server configuration from PEM text (checks an uploaded certificate and key before they
/// are saved).
pub fn tls_config_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, PemError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Cert(format!("cannot read the certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(PemError::Cert("no CERTIFICATE in the text".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| PemError::Key(format!("cannot read the private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| PemError::Pair(format!("certificate and key cannot be used together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `handler` on `listener` until the listener fails: one thread per connection (at most
/// [`MAX_CONNECTIONS`]; more are closed at once), over TLS when `tls` is given. `name` labels the
/// threads and the log lines.
pub fn serve_listener<H: Handler>(
    listener: &TcpListener,
    tls: Option<&Arc<ServerConfig>>,
    handler: &Arc<H>,
    name: &str,
) -> io::Error {
    let live = Arc::new(AtomicUsize::new(0));
    for tcp in listener.incoming() {
        let tcp = match tcp {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(server = name, "accept failed: {e}");
                // Out of file descriptors, most likely: let connections finish before trying again.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(server = name, "{MAX_CONNECTIONS} connections open: one refused");
            continue;
        }
        let slot = Slot(Arc::clone(&live));
        let (handler, tls) = (Arc::clone(handler), tls.cloned());
        let server = name.to_owned();
        let spawned = thread::Builder::new()
            .name(format!("{name}-conn"))
            .spawn(move || {
                let _slot = slot;
                let peer = tcp.peer_addr().ok();
                if let Err(e) = connection(&tcp, tls, &*handler) {
                    tracing::debug!(server, ?peer, "connection ended: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(server = name, "cannot start a connection thread: {e}");
        }
    }
    io::Error::other("the listener stopped")
}

/// Gives back a connection slot when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn connection<H: Handler>(tcp: &TcpStream, tls: Option<Arc<ServerConfig>>, handler: &H) -> io::Result<()> {
    let peer = tcp.peer_addr().ok();
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let result = match tls {
        None => serve(&mut &*tcp, handler, peer, false),
        Some(config) => {
            let conn = ServerConnection::new(config).map_err(io::Error::other)?;
            let mut tls = StreamOwned::new(conn, tcp);
            let result = serve(&mut tls, handler, peer, true);
            tls.conn.send_close_notify();
            while tls.conn.wants_write() && tls.conn.write_tls(&mut tls.sock).is_ok() {}
            result
        }
    };
    linger(tcp);
    result
}

/// Closes our side, then drops what the peer still sends for a moment: closing a socket with unread
/// bytes resets the connection, and the peer could lose the response it has not read yet.
fn linger(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(LINGER));
    let started = Instant::now();
    let mut sink = vec![0u8; 16 * 1024];
    let mut total = 0;
    while started.elapsed() < LINGER && total < LINGER_MAX {
        match (&*tcp).read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Reads more bytes onto `buf`; 0 at the end of the stream.
fn fill(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A request's body: the bytes already read past its head, then the stream, never past
/// `Content-Length`. Sends `100 Continue` when first read if the client waits for it.
struct BodyReader<'a, S> {
    pending: &'a mut Vec<u8>,
    stream: &'a mut S,
    remaining: u64,
    continue_due: bool,
}

impl<S: Read + Write> Read for BodyReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let Some(out) = out.get_mut(..want).filter(|o| !o.is_empty()) else {
            return Ok(0);
        };
        let n = if self.pending.is_empty() {
            if self.continue_due {
                self.continue_due = false;
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                self.stream.flush()?;
            }
            self.stream.read(out)?
        } else {
            let n = want.min(self.pending.len());
            for (o, p) in out.iter_mut().zip(self.pending.drain(..n)) {
                *o = p;
            }
            n
        };
        self.remaining -= u64::try_from(n).unwrap_or(u64::MAX).min(self.remaining);
        Ok(n)
    }
}

/// Serves requests on one connection until it closes, stalls or misbehaves.
fn serve<S: Read + Write, H: Handler>(
    stream: &mut S,
    handler: &H,
    peer: Option<SocketAddr>,
    secure: bool,
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // When the head's first byte came.
        let mut begun = (!buf.is_empty()).then(Instant::now);
        let mut head: Head = loop {
            match head::parse_head(&buf) {
                Ok(Some((head, used))) => {
                    buf.drain(..used);
                    break head;
                }
                Ok(None) if begun.is_some_and(|t| t.elapsed() > HEAD_TIMEOUT) => return Ok(()),
                Ok(None) => match fill(stream, &mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {
                        begun.get_or_insert_with(Instant::now);
                    }
                    // The peer went quiet between requests: the usual end of a kept-alive connection.
                    Err(e)
                        if buf.is_empty()
                            && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    let r = Response::error(e.status(), e.to_string());
                    return write_response(stream, r, false, true);
                }
            }
        };
        let started = Instant::now();
        let req = Request {
            method: head.method.clone(),
            url: head.target.clone(),
            authorization: head.authorization.clone(),
            range: head.range.clone(),
            headers: std::mem::take(&mut head.headers),
            content_length: head.content_length,
            peer,
            secure,
        };
        let mut body = BodyReader {
            pending: &mut buf,
            stream: &mut *stream,
            remaining: head.content_length,
            continue_due: head.expect_continue,
        };
        let response = handler.handle(&req, &mut body);
        // What the handler left of the body: skip a little to keep the connection, else close it. A
        // client still waiting for `100 Continue` sends nothing more: close.
        let mut close = !head.keep_alive;
        if body.remaining > 0 {
            close |= body.continue_due
                || body.remaining > SKIP_MAX
                || io::copy(&mut body, &mut io::sink()).is_err()
                || body.remaining > 0;
        }
        let status = response.status;
        let sent = write_response(stream, response, head.method == "HEAD", close);
        // Never the query: the page's token may be in it.
        let path = req.url.split('?').next().unwrap_or_default();
        let ms = started.elapsed().as_millis();
        tracing::debug!(method = %req.method, path, status, ms, "request");
        sent?;
        if close {
            return Ok(());
        }
    }
}

fn write_response(
    stream: &mut impl Write,
    response: Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let head = head::response_head(response.status, &response.headers, response.len(), close);
    stream.write_all(&head)?;
    if !head_only {
        match response.body {
            Body::Bytes(bytes) => stream.write_all(&bytes)?,
            Body::File { file, len } => {
                let sent = io::copy(&mut file.take(len), stream)?;
                if sent < len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was sent",
                    ));
                }
            }
        }
    }
    stream.flush()
}
