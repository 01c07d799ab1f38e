//! The real `gatewayd` binary, started as a process: it answers SIP OPTIONS over UDP on 127.0.0.1,
//! stops with exit status 0 on SIGTERM and SIGINT, and refuses bad configuration naming file, line and key.

// These tests are the SIP peer: they own real sockets, which only the shell and its tests may.
#![allow(clippy::disallowed_types)]
// A real process runs in real time: the probe needs a wall-clock deadline.
#![allow(clippy::disallowed_methods)]
// A failed unwrap here is a failed test with a backtrace; clippy's test exemption misses helper fns.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{
    Gateway, free_tcp_port, free_udp_port, probe, retry_interrupted, run_to_end, scratch, ws_connect,
};

fn config_for(port: u16) -> String {
    format!(
        "[log]\nlevel = \"debug\"\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {port}\n"
    )
}

fn assert_ok_response(resp: &str, sender: &str) {
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.contains("CSeq: 1 OPTIONS\r\n"), "{resp}");
    assert!(resp.contains("Call-ID: probe-1\r\n"), "{resp}");
    assert!(resp.contains("Allow: OPTIONS"), "{resp}");
    assert!(
        resp.contains(&format!("received=127.0.0.1;rport={sender}")),
        "{resp}"
    );
    assert!(resp.contains("To: <sip:gateway@127.0.0.1>;tag="), "{resp}");
    assert!(resp.contains("Server: RTC-Edge/"), "{resp}");
}

#[test]
fn answers_options_over_udp_and_exits_zero_on_sigterm() {
    let dir = scratch("sigterm");
    let port = free_udp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(&cfg, config_for(port)).unwrap();
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    let resp = probe(port);
    let sender = resp
        .split("rport=")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_owned();
    assert_ok_response(&resp, &sender);
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SIP listening transport=\"udp\" address=127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("answered"),
        "debug log shows the answer: {stderr}"
    );
    assert!(stderr.contains("stopping signal=\"SIGTERM\""), "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
}

#[test]
fn exits_zero_on_sigint_and_survives_garbage() {
    let dir = scratch("sigint");
    let port = free_udp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(&cfg, config_for(port)).unwrap();
    let gw = Gateway::start(&["-c", cfg.to_str().unwrap()]);
    probe(port);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [
        &b"\x00\xff\xfe garbage"[..],
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        &[b'A'; 9000],
    ] {
        sock.send_to(junk, ("127.0.0.1", port)).unwrap();
    }
    // Still alive and answering after the garbage.
    probe(port);
    gw.signal("-INT");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("dropped malformed message"), "{stderr}");
    assert!(stderr.contains("stopping signal=\"SIGINT\""), "{stderr}");
}

/// The README's run command (`cargo run -p gatewayd`): the embedded default config, 127.0.0.1:5060,
/// and the web UI on http://127.0.0.1:8080.
#[test]
fn readme_run_command_uses_embedded_default_on_5060() {
    let free = UdpSocket::bind("127.0.0.1:5060").is_ok()
        && TcpListener::bind("127.0.0.1:5060").is_ok()
        && TcpListener::bind("127.0.0.1:5066").is_ok()
        && TcpListener::bind("127.0.0.1:8080").is_ok();
    if !free {
        eprintln!(
            "\n*** SKIPPED readme_run_command_uses_embedded_default_on_5060: 127.0.0.1:5060 (udp or tcp), 5066 or 8080 is \
             in use on this machine (another SIP server?). The same checks run against free ports in \
             answers_options_over_udp_and_exits_zero_on_sigterm and answers_options_over_tcp. ***\n"
        );
        return;
    }
    // The web UI keeps its state under $XDG_STATE_HOME: a scratch folder, not the user's.
    let state = scratch("readme-state");
    let gw = Gateway::start_with_env(&[], &[("XDG_STATE_HOME", state.as_os_str())]);
    let resp = probe(5060);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    let mut web = TcpStream::connect("127.0.0.1:8080").unwrap();
    web.write_all(b"GET /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    retry_interrupted(|| web.read_to_string(&mut page)).unwrap();
    assert!(page.contains("{\"setup_required\":true}"), "{page}");
    let resp = tcp_exchange(5060, &[&tcp_options("readme", 1)]);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("config=\"<embedded default config>\""),
        "{stderr}"
    );
}

/// Under systemd (Type=notify, WatchdogSec=) or our PID 1: READY once listening, WATCHDOG from the run
/// loop at half the interval, STOPPING on the way out.
#[test]
fn notifies_ready_pets_the_watchdog_and_says_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = scratch("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = free_udp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(&cfg, config_for(port)).unwrap();
    let gw = Gateway::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("200000")),
        ],
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = retry_interrupted(|| socket.recv(&mut buf)).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = next();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // Ready means listening: OPTIONS is answered at once.
    assert!(probe(port).starts_with("SIP/2.0 200 OK"));
    let pets = (0..3)
        .map(|_| next())
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert_eq!(pets, 3, "the loop keeps petting every 100 ms");
    gw.signal("-TERM");
    let stopping = (0..20)
        .map(|_| next())
        .find(|m| m.lines().any(|l| l == "STOPPING=1"));
    assert!(stopping.is_some(), "STOPPING=1 before exit");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("watchdog enabled interval_ms=200"), "{stderr}");
}

fn tcp_options(call_id: &str, cseq: u32) -> String {
    format!(
        "OPTIONS sip:gateway@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP client.invalid:1;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe1\r\n\
         To: <sip:gateway@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Connects (retrying for up to 15 s while the gateway starts), writes each chunk, reads one response.
fn tcp_exchange(port: u16, chunks: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to 127.0.0.1:{port}: {e}"
                );
                std::thread::yield_now();
            }
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for chunk in chunks {
        stream.write_all(chunk.as_bytes()).unwrap();
        stream.flush().unwrap();
    }
    read_sip(&mut stream)
}

/// Reads one Content-Length framed message (or a lone CRLF pong) from a stream.
fn read_sip(stream: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = retry_interrupted(|| stream.read(&mut byte)).unwrap();
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
        if got == b"\r\n" {
            return "\r\n".into();
        }
        if got.ends_with(b"\r\n\r\n") {
            let head = String::from_utf8(got.clone()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).unwrap();
            return head + &String::from_utf8(body).unwrap();
        }
    }
}

#[test]
fn answers_options_over_tcp_pongs_keepalives_and_closes_unframeable_streams() {
    let dir = scratch("tcp");
    let port = free_tcp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!("[log]\nlevel = \"debug\"\n[sip]\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    // A keepalive ping gets a pong; then an OPTIONS cut into two writes is framed and answered on the
    // same connection, with the Via stamped with where it really came from.
    let req = tcp_options("tcp-1", 1);
    let (a, b) = req.split_at(40);
    let resp = tcp_exchange(port, &["\r\n\r\n"]);
    assert_eq!(resp, "\r\n");
    let resp = tcp_exchange(port, &[a, b]);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Via: SIP/2.0/TCP client.invalid:1;branch=z9hG4bK-tcp-1-1;received=127.0.0.1\r\n"),
        "{resp}"
    );
    assert!(resp.contains("CSeq: 1 OPTIONS\r\n"), "{resp}");
    // Two requests in one write, both answered in order on one connection.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all((tcp_options("tcp-2", 1) + &tcp_options("tcp-2", 2)).as_bytes())
        .unwrap();
    assert!(read_sip(&mut s).contains("CSeq: 1 OPTIONS"));
    assert!(read_sip(&mut s).contains("CSeq: 2 OPTIONS"));
    // A message without Content-Length cannot be framed on a stream: the connection is closed.
    s.write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).unwrap();
    assert_eq!(
        n,
        0,
        "closed without a reply: {:?}",
        String::from_utf8_lossy(&rest)
    );
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SIP listening transport=\"tcp\" address=127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("stream cannot be framed"), "{stderr}");
}

/// A browser's view: a WebSocket client with subprotocol `sip` (as JsSIP and SIP.js connect).
#[test]
fn answers_options_over_websocket_with_sip_subprotocol() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let dir = scratch("ws");
    let port = free_tcp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!("[log]\nlevel = \"debug\"\n[sip]\n[[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1\"\nport = {port}\n"),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("ws://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let connect = |protocol: Option<&'static str>| {
            let mut req = url.as_str().into_client_request().unwrap();
            if let Some(p) = protocol {
                req.headers_mut()
                    .insert("sec-websocket-protocol", p.parse().unwrap());
            }
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                tokio_tungstenite::client_async(req, tcp).await
            }
        };
        // Wait for the listener, offering "sip" like JsSIP does.
        let (mut ws, response) = loop {
            match connect(Some("sip")).await {
                Ok(ok) => break ok,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebSocket listener: {e}");
                    tokio::task::yield_now().await;
                }
            }
        };
        assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "sip");
        // Without the subprotocol the handshake is refused with 400.
        match connect(None).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
            other => panic!("expected an HTTP 400 refusal, got {other:?}"),
        }
        // JsSIP's Via uses a random .invalid host; the response comes back on this WebSocket.
        let options = "OPTIONS sip:gateway@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK5536251\r\n\
            Max-Forwards: 69\r\n\
            To: <sip:gateway@127.0.0.1>\r\n\
            From: <sip:alice@example.com>;tag=tr2d8hf9vl\r\n\
            Call-ID: 8vdkqv9g0ksm8mbs2kbhqg\r\n\
            CSeq: 5125 OPTIONS\r\n\
            Supported: outbound\r\n\
            User-Agent: JsSIP 3.13.8\r\n\
            Content-Length: 0\r\n\r\n";
        ws.send(Message::text(options)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = reply.into_text().unwrap().to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(
            text.contains(
                "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK5536251;received=127.0.0.1\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("CSeq: 5125 OPTIONS\r\n"), "{text}");
        // A WebSocket ping is answered with a pong carrying the same payload.
        ws.send(Message::Ping(b"keepalive".to_vec().into()))
            .await
            .unwrap();
        let pong = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(pong, Message::Pong(b"keepalive".to_vec().into()));
        // A binary frame carrying SIP is read as well.
        ws.send(Message::binary(options.replace("5125", "5126").into_bytes()))
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(reply.into_text().unwrap().contains("CSeq: 5126 OPTIONS"));
        ws.close(None).await.unwrap();
    });
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SIP listening transport=\"ws\" address=127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("WebSocket handshake refused"), "{stderr}");
}

/// A self-signed certificate for 127.0.0.1, written as PEM into `dir`; returns the certificate DER.
fn self_signed(dir: &std::path::Path) -> rustls::pki_types::CertificateDer<'static> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("certs/gw.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("certs/gw.key"), ck.signing_key.serialize_pem()).unwrap();
    ck.cert.der().clone()
}

fn client_tls(
    cert: rustls::pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

#[test]
fn answers_options_over_tls_and_secure_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let dir = scratch("tls");
    let cert = self_signed(&dir);
    let tls_port = free_tcp_port();
    let wss_port = free_tcp_port();
    let cfg = dir.join("gatewayd.toml");
    // Relative certificate paths resolve against the config file's folder.
    std::fs::write(
        &cfg,
        format!(
            "[sip]\n[[sip.listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1\"\nport = {tls_port}\n\
             [[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1\"\nport = {wss_port}\n\
             [sip.tls]\ncertificate = \"certs/gw.pem\"\nprivate_key = \"certs/gw.key\"\n"
        ),
    )
    .unwrap();
    let (code, out, err) = run_to_end(&["--check-config", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);

    // SIP over TLS, with a blocking rustls client that verifies our certificate.
    let deadline = Instant::now() + Duration::from_secs(15);
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", tls_port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "no TLS listener: {e}");
                std::thread::yield_now();
            }
        }
    };
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client_tls(cert.clone(), &[]), name.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        tcp_options("tls-1", 1)
            .replace("SIP/2.0/TCP", "SIP/2.0/TLS")
            .as_bytes(),
    )
    .unwrap();
    let resp = read_sip(&mut tls);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("Via: SIP/2.0/TLS client.invalid:1;branch=z9hG4bK-tls-1-1;received=127.0.0.1\r\n"),
        "{resp}"
    );

    // Secure WebSocket, as a browser on wss:// would connect.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", wss_port))
            .await
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_tls(cert, &[b"http/1.1"]));
        let tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let mut req = format!("wss://127.0.0.1:{wss_port}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "sip".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
        let options =
            tcp_options("wss-1", 1).replace("SIP/2.0/TCP client.invalid:1", "SIP/2.0/WSS k3l8s0d.invalid");
        ws.send(Message::text(options)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = reply.into_text().unwrap().to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(
            text.contains("Via: SIP/2.0/WSS k3l8s0d.invalid;branch=z9hG4bK-wss-1-1;received=127.0.0.1\r\n"),
            "{text}"
        );
        ws.close(None).await.unwrap();
    });
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SIP listening transport=\"wss\" address=127.0.0.1:{wss_port}"
        )),
        "{stderr}"
    );
}

/// A call from a browser (WebSocket) to a trunk reached over TLS: the gateway opens the connection,
/// verifies the trunk's certificate against `ca_certificate`, and the whole dialog runs on it.
#[test]
fn calls_reach_a_tls_trunk_over_a_verified_connection() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let dir = scratch("tls-trunk");
    let cert = self_signed(&dir);
    let trunk_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let trunk_port = trunk_listener.local_addr().unwrap().port();
    let ws_port = free_tcp_port();
    let tls_port = free_tcp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\n[[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1\"\nport = {ws_port}\n\
             [[sip.listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1\"\nport = {tls_port}\n\
             [sip.tls]\ncertificate = \"certs/gw.pem\"\nprivate_key = \"certs/gw.key\"\n\
             [sip.trunk]\naddress = \"127.0.0.1\"\nport = {trunk_port}\ntransport = \"tls\"\nca_certificate = \"certs/gw.pem\"\n"
        ),
    )
    .unwrap();

    // The trunk: a rustls server with the certificate the gateway trusts; answers the INVITE and the BYE.
    let key = std::fs::read(dir.join("certs/gw.key")).unwrap();
    let trunk = std::thread::spawn(move || {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], PrivateKeyDer::from_pem_slice(&key).unwrap())
            .unwrap();
        let (tcp, _) = trunk_listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let text = read_sip(&mut tls);
            let m = edge_sip::message::Message::parse(text.as_bytes()).unwrap();
            seen.push(
                text.lines().next().unwrap().to_owned()
                    + " | "
                    + m.values(&edge_sip::HeaderName::Via).next().unwrap()
                    + " | "
                    + String::from_utf8_lossy(&m.body)
                        .lines()
                        .find(|l| l.starts_with("m="))
                        .unwrap_or(""),
            );
            if matches!(m.method(), Some(edge_sip::Method::Invite | edge_sip::Method::Bye)) {
                let mut ok = edge_sip::transaction::response_for(&m, 200, "OK");
                for h in ok
                    .headers
                    .iter_mut()
                    .filter(|h| h.name == edge_sip::HeaderName::To)
                {
                    h.value.push_str(";tag=tls-trunk");
                }
                ok.push_header(
                    edge_sip::HeaderName::Contact,
                    format!("<sip:pbx@127.0.0.1:{trunk_port};transport=tls>"),
                );
                tls.write_all(&ok.encode()).unwrap();
                tls.flush().unwrap();
            }
        }
        seen
    });

    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(ws_port).await;
        // A real Chromium 156 offer (ICE, DTLS-SRTP, Opus/G.711): the gateway anchors its media.
        let sdp = include_str!("../../sdp/tests/golden/chrome156_offer.sdp");
        let head = |method: &str, cseq: u32, to: &str| {
            format!(
                "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS q8.invalid;branch=z9hG4bKtls{cseq}\r\nMax-Forwards: 70\r\n\
                 To: {to}\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nCall-ID: tls-call\r\nCSeq: {cseq} {method}\r\n"
            )
        };
        let invite = head("INVITE", 1, "<sip:bob@127.0.0.1>")
            + &format!("Contact: <sip:a@q8.invalid;transport=ws>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len());
        ws.send(Ws::text(invite)).await.unwrap();
        let mut to = String::new();
        while to.is_empty() {
            let m = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.unwrap().unwrap().unwrap();
            let text = m.into_text().unwrap().to_string();
            if text.starts_with("SIP/2.0 200") {
                let parsed = edge_sip::message::Message::parse(text.as_bytes()).unwrap();
                to = parsed.header(&edge_sip::HeaderName::To).unwrap().to_owned();
            }
        }
        ws.send(Ws::text(head("ACK", 1, &to) + "Content-Length: 0\r\n\r\n")).await.unwrap();
        ws.send(Ws::text(head("BYE", 2, &to) + "Content-Length: 0\r\n\r\n")).await.unwrap();
        let bye_ok = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.unwrap().unwrap().unwrap();
        assert!(bye_ok.into_text().unwrap().starts_with("SIP/2.0 200 OK"));
    });
    let seen = trunk.join().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!(
            "INVITE sip:bob@127.0.0.1:{trunk_port} SIP/2.0 | SIP/2.0/TLS 127.0.0.1:{tls_port};"
        )),
        "{seen:?}"
    );
    // The trunk got plain RTP/AVP on a port of the gateway's media range, not the browser's SAVPF.
    let port: u16 = seen[0]
        .split(" | m=audio ")
        .nth(1)
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port in {seen:?}"));
    assert!(
        (16384..=32767).contains(&port),
        "the default media range: {seen:?}"
    );
    assert!(seen[0].contains(" RTP/AVP "), "{seen:?}");
    assert!(seen[1].starts_with("ACK "), "{seen:?}");
    assert!(seen[2].starts_with("BYE "), "{seen:?}");
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A trunk that refuses connections: the caller hears 503 at once, not a 408 after 32 s.
#[test]
fn an_unreachable_tcp_trunk_fails_the_call_at_once() {
    let dir = scratch("dead-trunk");
    let port = free_udp_port();
    let tcp_port = free_tcp_port();
    let dead = free_tcp_port(); // closed again
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {port}\n\
             [[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1\"\nport = {tcp_port}\n\
             [sip.trunk]\naddress = \"127.0.0.1\"\nport = {dead}\ntransport = \"tcp\"\n\
             [[routes]]\nname = \"phones\"\nsource = [\"peer\"]\nsource_networks = [\"127.0.0.0/8\"]\ntrunks = [\"trunk\"]\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    probe(port);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKdead;rport\r\nMax-Forwards: 70\r\n\
         To: <sip:bob@127.0.0.1>\r\nFrom: <sip:alice@127.0.0.1>;tag=d1\r\nCall-ID: dead-trunk\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n"
    );
    let started = Instant::now();
    sock.send_to(invite.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let final_line = loop {
        let (n, _) = retry_interrupted(|| sock.recv_from(&mut buf)).expect("a final response within 10 s");
        let line = String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !line.starts_with("SIP/2.0 1") {
            break line;
        }
    };
    assert_eq!(final_line, "SIP/2.0 503 Service Unavailable");
    assert!(started.elapsed() < Duration::from_secs(10));
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cannot connect to the trunk"), "{stderr}");
    assert!(stderr.contains("reason=trunk unreachable"), "{stderr}");
}

#[test]
fn unusable_certificates_are_refused_naming_the_file() {
    let dir = scratch("badtls");
    self_signed(&dir);
    let cfg = dir.join("gatewayd.toml");
    let write = |cert: &str, key: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sip]\n[[sip.listen]]\ntransport = \"wss\"\naddress = \"127.0.0.1\"\nport = 7443\n\
                 [sip.tls]\ncertificate = \"{cert}\"\nprivate_key = \"{key}\"\n"
            ),
        )
        .unwrap();
    };
    std::fs::write(dir.join("certs/garbage.pem"), "not a certificate\n").unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("certs/other.key"), other.signing_key.serialize_pem()).unwrap();
    let d = dir.display();
    for (cert, key, expect) in [
        (
            "certs/gw.pem",
            "certs/missing.key",
            format!("{d}/certs/missing.key: cannot read private key"),
        ),
        (
            "certs/garbage.pem",
            "certs/gw.key",
            format!("{d}/certs/garbage.pem: cannot read certificate chain: no CERTIFICATE"),
        ),
        (
            "certs/gw.pem",
            "certs/other.key",
            "certificate and key cannot be used together".to_owned(),
        ),
    ] {
        write(cert, key);
        for args in [
            vec!["--check-config", "-c", cfg.to_str().unwrap()],
            vec!["-c", cfg.to_str().unwrap()],
        ] {
            let (code, _, stderr) = run_to_end(&args);
            assert_eq!(code, 2, "{cert} {key}: {stderr}");
            assert!(stderr.contains(&expect), "expected {expect:?} in {stderr}");
        }
    }
}

#[test]
fn bad_config_files_are_refused_naming_file_line_and_key() {
    let dir = scratch("badcfg");
    let good = config_for(5090);
    let cases = [
        (
            "unknown-key.toml",
            good.replace("level = \"debug\"", "level = \"debug\"\nverbose = true"),
            3,
            "log.verbose",
            "unknown field `verbose`",
        ),
        (
            "wrong-type.toml",
            good.replace("level = \"debug\"", "level = 3"),
            2,
            "log.level",
            "invalid type: integer `3`, expected a string",
        ),
        (
            "bad-port.toml",
            good.replace("5090", "65536"),
            7,
            "sip.listen[0].port",
            "port must be 1-65535, got 65536",
        ),
        (
            "zero-port.toml",
            good.replace("5090", "0"),
            7,
            "sip.listen[0].port",
            "port must be 1-65535, got 0",
        ),
    ];
    for (name, text, line, key, what) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        for args in [vec!["--config", p], vec!["--config", p, "--check-config"]] {
            let (code, _, stderr) = run_to_end(&args);
            assert_eq!(code, 2, "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{p}:{line}:")),
                "{name}: file and line in {stderr}"
            );
            assert!(
                stderr.contains(&format!("key `{key}`")),
                "{name}: key in {stderr}"
            );
            assert!(stderr.contains(what), "{name}: reason in {stderr}");
        }
    }
    let (code, _, stderr) = run_to_end(&["--config", "/nonexistent/gatewayd.toml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/gatewayd.toml: cannot read config"),
        "{stderr}"
    );
}

#[test]
fn check_config_version_and_default_config() {
    let (code, out, _) = run_to_end(&["--check-config"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "gatewayd: config OK: <embedded default config> (3 SIP listener(s))\n"
    );
    let (code, out, _) = run_to_end(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("gatewayd {} (RTC Edge, ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let (code, out, _) = run_to_end(&["--print-default-config"]);
    assert_eq!(code, 0);
    assert_eq!(out, edge_config::DEFAULT_TOML);
    // The printed default, saved to a file, is itself a valid config.
    let dir = scratch("default");
    std::fs::write(dir.join("d.toml"), out).unwrap();
    let (code, _, err) = run_to_end(&["--check-config", "-c", dir.join("d.toml").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_to_end(&["--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: gatewayd"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = scratch("busy");
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(&cfg, config_for(port)).unwrap();
    let (code, _, stderr) = run_to_end(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind SIP udp listener 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("Address already in use"), "{stderr}");
}
