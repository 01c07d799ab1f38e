//! `edge-update-server --config FILE [--listen ADDR]`: the shell around [`Service`]. It owns the command
//! line, logging, the clock and every socket: one thread per connection reads requests
//! ([`edge_update_server::http`] frames them), hands them to the service, and writes the responses, over
//! rustls 0.23 when `tls_cert`/`tls_key` are set, plain TCP otherwise (with a loud warning).
//!
//! The first line on stdout is `listening on https://ADDR` (or `http://`), with the bound port when
//! `listen` asks for port 0.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the shell: it owns the sockets and the clock the library never touches"
)]

use std::io::{self, IsTerminal, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_update_server::config::TlsFiles;
use edge_update_server::http::{self, Head};
use edge_update_server::{Body, Config, Request, Response, Service};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: edge-update-server --config FILE [--listen ADDR]

  --config FILE   the server's TOML configuration
  --listen ADDR   listen here instead of the file's `listen` (port 0: any free port)

Logging: EDGE_UPDATE_SERVER_LOG (an EnvFilter, default \"info\") on stderr.";

const EXIT_USAGE: u8 = 2;
const EXIT_RUNTIME: u8 = 1;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
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

struct Options {
    config: PathBuf,
    listen: Option<SocketAddr>,
}

fn parse_args() -> Result<Option<Options>, String> {
    use lexopt::prelude::*;
    let mut config = None;
    let mut listen = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            Short('l') | Long("listen") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let text = value.to_string_lossy();
                listen = Some(
                    text.parse()
                        .map_err(|e| format!("--listen {text:?} is not an address:port ({e})"))?,
                );
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let config = config.ok_or("--config is required")?;
    Ok(Some(Options { config, listen }))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("edge-update-server: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let filter = std::env::var("EDGE_UPDATE_SERVER_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .init();

    let mut config = match Config::load(&options.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
    let tls = match config.tls.as_ref().map(tls_config).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (service, notes) = match Service::open(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    for note in notes {
        tracing::warn!("{note}");
    }
    match run(&Arc::new(service), tls.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// The TLS configuration from the PEM files; the message names the file at fault.
fn tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read the certificate chain: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: cannot read the private key: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            format!(
                "{} + {}: certificate and key cannot be used together: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn run(service: &Arc<Service>, tls: Option<&Arc<ServerConfig>>) -> Result<(), String> {
    let listen = service.config().listen;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() {
        tracing::warn!(
            %addr,
            "NO TLS: serving PLAIN HTTP. Device and admin tokens and bundles cross the network in clear; \
             set tls_cert and tls_key for anything but a lab"
        );
    }
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, store = %service.config().store.display(), "listening");

    let live = Arc::new(AtomicUsize::new(0));
    for tcp in listener.incoming() {
        let tcp = match tcp {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                // Out of file descriptors, most likely: let connections finish before trying again.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("{MAX_CONNECTIONS} connections open: one refused");
            continue;
        }
        let slot = Slot(Arc::clone(&live));
        let (service, tls) = (Arc::clone(service), tls.cloned());
        let spawned = thread::Builder::new().name("connection".into()).spawn(move || {
            let _slot = slot;
            let peer = tcp.peer_addr().ok();
            if let Err(e) = connection(&tcp, tls, &service) {
                tracing::debug!(?peer, "connection ended: {e}");
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a connection thread: {e}");
        }
    }
    Err("the listener stopped".into())
}

/// Gives back a connection slot when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn connection(tcp: &TcpStream, tls: Option<Arc<ServerConfig>>, service: &Service) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let result = match tls {
        None => serve(&mut &*tcp, service),
        Some(config) => {
            let conn = ServerConnection::new(config).map_err(io::Error::other)?;
            let mut tls = StreamOwned::new(conn, tcp);
            let result = serve(&mut tls, service);
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves requests on one connection until it closes, stalls or misbehaves.
fn serve<S: Read + Write>(stream: &mut S, service: &Service) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // When the head's first byte came.
        let mut begun = (!buf.is_empty()).then(Instant::now);
        let head: Head = loop {
            match http::parse_head(&buf) {
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
        };
        let mut body = BodyReader {
            pending: &mut buf,
            stream: &mut *stream,
            remaining: head.content_length,
            continue_due: head.expect_continue,
        };
        let response = service.handle(&req, &mut body, unix_now());
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
    let head = http::response_head(response.status, &response.headers, response.len(), close);
    stream.write_all(&head)?;
    if !head_only {
        match response.body {
            Body::Bytes(bytes) => stream.write_all(&bytes)?,
            Body::File { file, len } => {
                let sent = io::copy(&mut file.take(len), stream)?;
                if sent < len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the bundle file shrank",
                    ));
                }
            }
        }
    }
    stream.flush()
}
