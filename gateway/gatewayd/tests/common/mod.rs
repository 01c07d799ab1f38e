//! Helpers shared by the process-level tests: scratch folders, ports, the gatewayd process, a SIP probe.

// Each test binary uses a subset of these.
#![allow(dead_code)]
// These helpers are the SIP peer: they own real sockets and a wall clock, which only the shell and its
// tests may; a failed unwrap is a failed test.
#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_gatewayd");

/// A scratch directory unique to this test process and call.
pub(crate) fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gatewayd-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A browser's WebSocket to the gateway's `ws` listener on `port`, offering subprotocol `sip` as JsSIP
/// does (retrying for up to 15 s while the gateway starts).
pub(crate) async fn ws_connect(port: u16) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let deadline = Instant::now() + Duration::from_secs(15);
    let tcp = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(t) => break t,
            Err(e) => {
                assert!(Instant::now() < deadline, "no WebSocket listener on {port}: {e}");
                tokio::task::yield_now().await;
            }
        }
    };
    let mut req = format!("ws://127.0.0.1:{port}").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "sip".parse().unwrap());
    tokio_tungstenite::client_async(req, tcp).await.unwrap().0
}

pub(crate) fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Gateway {
    child: Option<Child>,
}

impl Gateway {
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("GATEWAYD_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child: Some(child) }
    }

    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits at most 10 s for the process to exit; returns its status and stderr.
    pub(crate) fn wait(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            tx.send((child.wait().unwrap(), err)).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("gatewayd did not exit within 10 s of the signal")
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn options(call_id: &str, local: SocketAddr) -> String {
    format!(
        "OPTIONS sip:gateway@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe1\r\n\
         To: <sip:gateway@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends OPTIONS every 100 ms (as a UAC retransmits) until a response arrives or 15 s pass.
pub(crate) fn probe(port: u16) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let req = options("probe-1", sock.local_addr().unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.send_to(req.as_bytes(), ("127.0.0.1", port)).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!(from.port(), port, "response must come from the listening socket");
            return String::from_utf8(buf[..n].to_vec()).unwrap();
        }
    }
    panic!("no response to OPTIONS on 127.0.0.1:{port} within 15 s");
}

/// Runs a blocking socket read again when a signal interrupts it. A read with a timeout
/// (SO_RCVTIMEO) fails with EINTR on any caught signal, even one installed with SA_RESTART
/// (signal(7)); a test process that shares its threads with tokio or a CI harness can get one.
pub(crate) fn retry_interrupted<T>(mut read: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match read() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

pub(crate) fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("GATEWAYD_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
