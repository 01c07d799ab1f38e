//! The SIP check a scenario makes: OPTIONS over UDP to the board's gatewayd, answered 200.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where and how a board's gatewayd is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipAddr {
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

impl std::fmt::Display for SipAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Udp(a) => write!(f, "udp:{a}"),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl SipAddr {
    /// OPTIONS until a response or `within`; its status and how long it took.
    pub fn probe(self, within: Duration) -> std::io::Result<Option<(u16, Duration)>> {
        match self {
            Self::Udp(a) => probe(a, within),
            Self::Tcp(a) => probe_tcp(a, within),
        }
    }
}

/// A SIP OPTIONS request from `local` (a fresh branch and Call-ID from `n`).
pub fn options(local: SocketAddr, n: u64) -> String {
    format!(
        "OPTIONS sip:gateway@{local} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-hil-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:hil@127.0.0.1>;tag=hil{n}\r\n\
         To: <sip:gateway@127.0.0.1>\r\n\
         Call-ID: hil-{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The status code of a SIP response, if `bytes` is one.
pub fn status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse().ok()
}

/// Sends OPTIONS to `to` every 500 ms until a response comes or `within` passes; returns its status
/// and how long it took.
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the harness owns a real socket and waits in real time: it is the board's SIP peer"
)]
pub fn probe(to: SocketAddr, within: Duration) -> std::io::Result<Option<(u16, Duration)>> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let local = sock.local_addr()?;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while start.elapsed() < within {
        n += 1;
        sock.send_to(options(local, n).as_bytes(), to)?;
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                if let Some(code) = status(&buf[..len]) {
                    return Ok(Some((code, start.elapsed())));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The same over TCP (one connection; retried until `within`): QEMU's fenced user network
/// (`restrict=on`) forwards TCP connections in but drops the guest's UDP answers.
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the harness owns a real socket and waits in real time: it is the board's SIP peer"
)]
pub fn probe_tcp(to: SocketAddr, within: Duration) -> std::io::Result<Option<(u16, Duration)>> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < within {
        n += 1;
        let Ok(mut conn) = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let local = conn.local_addr()?;
        let request = options(local, n).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        if conn.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok(len) = conn.read(&mut buf)
            && let Some(code) = status(&buf[..len])
        {
            return Ok(Some((code, start.elapsed())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"), Some(200));
        assert_eq!(status(b"SIP/2.0 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(status(b"OPTIONS sip:x SIP/2.0\r\n"), None);
        assert_eq!(status(b""), None);
    }

    #[test]
    fn requests_differ_per_attempt() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_ne!(options(local, 1), options(local, 2));
        assert!(options(local, 1).ends_with("Content-Length: 0\r\n\r\n"));
    }
}
