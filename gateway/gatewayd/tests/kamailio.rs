//! Real peers: a WebSocket client (as JsSIP would) registers through gatewayd to a real Kamailio
//! registrar, and a real baresip phone registered at Kamailio calls it; the INVITE reaches the client on
//! its WebSocket through Kamailio and the gateway.
//!
//! Needs `kamailio` and `baresip` (Debian packages of those names); `.ci/run` installs them. Without
//! them the test says so loudly and does nothing.

// Real processes on loopback, in real time.
#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Gateway, free_tcp_port, free_udp_port, probe, scratch, ws_connect};
use edge_sip::message::{HeaderName, Message, StartLine};
use edge_sip::transaction::response_for;

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child process whose output is collected line by line, killed on drop.
struct Peer {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn start(name: &'static str, command: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        // Its own process group, so that dropping the peer stops every process it started.
        let mut child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { name, child, lines }
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until a line contains `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line with {needle:?} within {within:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registrar + proxy: our own minimal configuration, derived from the interop recipe (UDP only, one
/// process so that stopping it is stopping it).
fn kamailio_cfg(port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
fork=no
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("17895", "7")) {{ exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ route(RELAY); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (!save("location")) {{ sl_reply_error(); exit; }}
        xlog("L_NOTICE", "REGISTERED $tu contact=$ct\n");
        exit;
    }}
    if (is_method("INVITE")) {{ record_route(); }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    xlog("L_NOTICE", "ROUTING $rm for $tu to $ru\n");
    route(RELAY);
}}
route[RELAY] {{
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}
"#
    )
}

/// baresip's ctrl_tcp: one netstring-framed JSON command (retrying the connection for up to 10 s while
/// baresip starts).
fn baresip_command(bob: &Peer, port: u16, command: &str, params: &str) {
    let body = format!(r#"{{"command":"{command}","params":"{params}","token":"t1"}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "baresip ctrl_tcp on {port}: {e}\n{}",
                    bob.log()
                );
                std::thread::yield_now();
            }
        }
    };
    s.write_all(format!("{}:{body},", body.len()).as_bytes()).unwrap();
}

#[test]
fn websocket_client_registers_through_the_gateway_to_kamailio_and_baresip_calls_it() {
    let missing: Vec<_> = ["kamailio", "baresip"]
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "\n*** SKIPPED websocket_client_registers_through_the_gateway_to_kamailio_and_baresip_calls_it: \
             {} not installed (apt-get install kamailio baresip; .ci/run does this). ***\n",
            missing.join(", ")
        );
        return;
    }
    let dir = scratch("kamailio");
    let (kam_port, gw_port, bob_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let ws_port = free_tcp_port();
    let ctrl_port = free_tcp_port();

    std::fs::write(dir.join("kamailio.cfg"), kamailio_cfg(kam_port)).unwrap();
    let kamailio = Peer::start(
        "kamailio",
        // -DD: stay in the foreground (no daemon), so that the test owns the process and its log.
        Command::new("kamailio").args([
            "-f",
            dir.join("kamailio.cfg").to_str().unwrap(),
            "-DD",
            "-E",
            "-m",
            "64",
            "-M",
            "8",
        ]),
    );

    std::fs::write(
        dir.join("gatewayd.toml"),
        format!(
            "[log]\nlevel = \"debug\"\n[sip]\n\
             [[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1\"\nport = {ws_port}\n\
             [sip.trunk]\naddress = \"127.0.0.1\"\nport = {kam_port}\ntransport = \"udp\"\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", dir.join("gatewayd.toml").to_str().unwrap()]);
    probe(gw_port);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as Ws;

        let mut ws = ws_connect(ws_port).await;
        let kam = &kamailio;
        let next_sip = async |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, what: &str| loop {
            let Ok(m) = tokio::time::timeout(Duration::from_secs(20), ws.next()).await else {
                panic!("waiting for {what}: nothing on the WebSocket within 20 s\nkamailio:\n{}", kam.log());
            };
            if let Ok(Ws::Text(t)) = m.unwrap() {
                return Message::parse(t.as_bytes()).unwrap();
            }
        };
        // JsSIP-shaped REGISTER for alice, straight to the gateway's WebSocket.
        let register = format!(
            "REGISTER sip:127.0.0.1:{kam_port} SIP/2.0\r\n\
             Via: SIP/2.0/WS lq3e8dnbd7s6.invalid;branch=z9hG4bK1372839\r\n\
             Max-Forwards: 69\r\n\
             To: <sip:alice@127.0.0.1>\r\n\
             From: <sip:alice@127.0.0.1>;tag=9p0hu1ndqa\r\n\
             Call-ID: rbdd6iabcv5jbc1ugq0r6b\r\n\
             CSeq: 1 REGISTER\r\n\
             Contact: <sip:0v3a2b6c@lq3e8dnbd7s6.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:2f4b>\";expires=600\r\n\
             Expires: 600\r\n\
             Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
             Supported: path,gruu,outbound\r\n\
             User-Agent: JsSIP 3.13.8\r\n\
             Content-Length: 0\r\n\r\n"
        );
        ws.send(Ws::text(register)).await.unwrap();
        let ok = next_sip(&mut ws, "the answer to REGISTER").await;
        assert!(matches!(ok.start, StartLine::Response { code: 200, .. }), "{:?}", ok.start);
        assert!(ok.header(&HeaderName::Contact).unwrap().starts_with("<sip:0v3a2b6c@lq3e8dnbd7s6.invalid;transport=ws>;expires="));
        // Kamailio's location holds alice at the gateway's flow-token Contact, not the browser's.
        let registered = kamailio.wait_for("REGISTERED sip:alice@127.0.0.1", Duration::from_secs(10));
        assert!(registered.contains(&format!("@127.0.0.1:{gw_port}>")), "{registered}");
        assert!(!registered.contains(".invalid"), "{registered}");

        // baresip (bob, registered at Kamailio) calls alice.
        std::fs::create_dir_all(dir.join("bob")).unwrap();
        std::fs::write(dir.join("bob/accounts"), format!("<sip:bob@127.0.0.1:{kam_port}>;regint=300;audio_codecs=PCMU\n")).unwrap();
        std::fs::write(
            dir.join("bob/config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{bob_port}\nnet_interface 127.0.0.1\n\
                 audio_player alsa,null\naudio_source ausine,440\naudio_alert alsa,null\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\nmodule alsa.so\n\
                 module_tmp uuid.so\nmodule_tmp account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n"
            ),
        )
        .unwrap();
        let bob = Peer::start("baresip", Command::new("baresip").args(["-f", dir.join("bob").to_str().unwrap()]));
        kamailio.wait_for("REGISTERED sip:bob@127.0.0.1", Duration::from_secs(20));
        baresip_command(&bob, ctrl_port, "dial", &format!("sip:alice@127.0.0.1:{kam_port}"));

        let invite = next_sip(&mut ws, "the INVITE from baresip").await;
        let StartLine::Request { uri, .. } = &invite.start else { panic!("expected an INVITE, got {:?}", invite.start) };
        assert_eq!(uri, "sip:0v3a2b6c@lq3e8dnbd7s6.invalid;transport=ws", "sent to the browser's own Contact");
        assert!(invite.header(&HeaderName::From).unwrap().contains("sip:bob@"), "{:?}", invite.header(&HeaderName::From));
        assert!(invite.values(&HeaderName::Via).next().unwrap().starts_with("SIP/2.0/WS 127.0.0.1:"));
        let sdp = String::from_utf8_lossy(&invite.body).to_string();
        // baresip's RTP/AVP offer reaches the browser anchored: WebRTC media on the gateway's port.
        assert!(sdp.contains("UDP/TLS/RTP/SAVPF"), "anchored for the browser: {sdp}");
        assert!(sdp.contains("a=fingerprint:sha-256 ") && sdp.contains("a=ice-lite"), "{sdp}");
        // Alice is busy: the 486 travels back to baresip.
        let mut busy = response_for(&invite, 486, "Busy Here");
        for h in busy.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
            h.value.push_str(";tag=alice-busy");
        }
        ws.send(Ws::text(String::from_utf8(busy.encode()).unwrap())).await.unwrap();
        let ack = next_sip(&mut ws, "the ACK to our 486").await;
        assert!(matches!(&ack.start, StartLine::Request { method, .. } if method.as_str() == "ACK"), "{:?}", ack.start);
        bob.wait_for("486", Duration::from_secs(10));
        ws.close(None).await.unwrap();
    });
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("call started") && stderr.contains("reason=486 from B"),
        "{stderr}"
    );
    drop(kamailio);
}
