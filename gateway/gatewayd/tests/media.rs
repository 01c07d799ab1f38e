//! Media through the whole daemon: a browser on a WebSocket (ICE checks from `rtc-stun`, DTLS from
//! str0m's `dimpl`, SRTP keyed from it) calls through `gatewayd` to a SIP trunk on UDP that answers with
//! plain RTP/AVP. Its offer is a real Chromium 156 offer with this browser's credentials written in.
//! Audio crosses both ways on the ports the gateway wrote into the SDP; an INFO digit reaches the trunk
//! as RFC 4733 telephone-events; BYE ends it.

// Real processes and sockets on loopback, in real time: every wait has a deadline.
#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

mod common;
#[allow(dead_code, reason = "this test uses part of edge-media's test kit")]
#[path = "../../media/src/testkit.rs"]
mod testkit;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Gateway, free_tcp_port, free_udp_port, probe, scratch, ws_connect};
use edge_sip::message::{HeaderName, Message, StartLine};
use edge_sip::transaction::response_for;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(10);
const CHROME_OFFER: &str = include_str!("../../sdp/tests/golden/chrome156_offer.sdp");
const BROWSER_UFRAG: &str = "Kq3v";

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// The value of the first `a=<name>:` line, or the `m=audio` port.
fn sdp_attr<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("a={name}:")))
        .unwrap_or_else(|| panic!("no a={name} in\n{sdp}"))
        .trim()
}

fn audio_port(sdp: &str) -> u16 {
    let m = sdp.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    m.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_browser_call_carries_audio_both_ways_and_dtmf_each_way_with_a_udp_trunk() {
    let dir = scratch("media-e2e");
    let (gw_port, ws_port) = (free_udp_port(), free_tcp_port());
    let trunk_sip = socket();
    let trunk_rtp = socket();
    let browser = socket();
    let trunk_port = trunk_sip.local_addr().unwrap().port();
    std::fs::write(
        dir.join("gatewayd.toml"),
        format!(
            "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1\"\nport = {ws_port}\n\
             [sip.trunk]\naddress = \"127.0.0.1\"\nport = {trunk_port}\ntransport = \"udp\"\n\
             [media]\ncodecs = [\"pcmu\", \"pcma\"]\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", dir.join("gatewayd.toml").to_str().unwrap()]);
    probe(gw_port);

    // This browser's DTLS certificate goes into the Chromium offer.
    let (mut dtls, fingerprint) = testkit::dimpl_peer(true, Instant::now());
    let hex: Vec<String> = fingerprint.iter().map(|b| format!("{b:02X}")).collect();
    let offer: String = CHROME_OFFER
        .lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                format!("a=fingerprint:sha-256 {}", hex.join(":"))
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\r\n")
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(ws_port).await;
        let next_sip = async |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, what: &str| loop {
            let m = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing on the WebSocket for {what}"));
            if let Ok(Ws::Text(t)) = m.unwrap() {
                let msg = Message::parse(t.as_bytes()).unwrap();
                if !matches!(msg.start, StartLine::Response { code: 100, .. }) {
                    return msg;
                }
            }
        };
        let head = |method: &str, cseq: u32, to: &str| {
            format!(
                "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS m4.invalid;branch=z9hG4bKm{cseq}\r\n\
                 Max-Forwards: 70\r\nTo: {to}\r\nFrom: <sip:alice@127.0.0.1>;tag=al1\r\nCall-ID: media-call\r\n\
                 CSeq: {cseq} {method}\r\nContact: <sip:a@m4.invalid;transport=ws>\r\n"
            )
        };
        let invite = head("INVITE", 1, "<sip:bob@127.0.0.1>")
            + &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}", offer.len());
        ws.send(Ws::text(invite)).await.unwrap();

        // The trunk gets plain RTP/AVP on the gateway's own media address, and answers PCMU + events.
        let (bytes, gw_sip) = testkit::recv_until(&trunk_sip, "the INVITE at the trunk", WAIT, |p| p.starts_with(b"INVITE "));
        let trunk_invite = Message::parse(&bytes).unwrap();
        let trunk_offer = String::from_utf8(trunk_invite.body.clone()).unwrap();
        assert!(trunk_offer.contains(" RTP/AVP 0 8 "), "{trunk_offer}");
        assert!(!trunk_offer.contains("a=fingerprint") && !trunk_offer.contains("a=ice-"), "{trunk_offer}");
        let gw_trunk_media = SocketAddr::from(([127, 0, 0, 1], audio_port(&trunk_offer)));
        let answer = format!(
            "v=0\r\no=- 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
            trunk_rtp.local_addr().unwrap().port()
        );
        let mut ok = response_for(&trunk_invite, 200, "OK");
        for h in ok.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
            h.value.push_str(";tag=trunk1");
        }
        ok.push_header(HeaderName::Contact, format!("<sip:bob@127.0.0.1:{trunk_port}>"));
        ok.push_header(HeaderName::ContentType, "application/sdp");
        ok.body = answer.into_bytes();
        trunk_sip.send_to(&ok.encode(), gw_sip).unwrap();

        // The browser's answer: ICE-lite, DTLS, our port and credentials.
        let a_ok = next_sip(&mut ws, "the 200 to the browser").await;
        assert!(matches!(a_ok.start, StartLine::Response { code: 200, .. }), "{:?}", a_ok.start);
        let browser_answer = String::from_utf8(a_ok.body.clone()).unwrap();
        assert!(browser_answer.contains("UDP/TLS/RTP/SAVPF 0"), "{browser_answer}");
        assert_eq!(sdp_attr(&browser_answer, "setup"), "passive", "{browser_answer}");
        let gw_browser_media = SocketAddr::from(([127, 0, 0, 1], audio_port(&browser_answer)));
        let (gw_ufrag, gw_pwd) = (sdp_attr(&browser_answer, "ice-ufrag"), sdp_attr(&browser_answer, "ice-pwd"));
        let to = a_ok.header(&HeaderName::To).unwrap().to_owned();
        ws.send(Ws::text(head("ACK", 1, &to) + "Content-Length: 0\r\n\r\n")).await.unwrap();

        // ICE: a nominating check from the browser's socket.
        let check = testkit::stun_request(&format!("{gw_ufrag}:{BROWSER_UFRAG}"), gw_pwd, true);
        browser.send_to(&check, gw_browser_media).unwrap();
        let (reply, _) = testkit::recv_until(&browser, "the STUN answer", WAIT, |p| p.len() >= 20 && p[..2] == [1, 1]);
        assert_eq!(reply[8..20], check[8..20]);
        // DTLS over the real socket, then SRTP both ways.
        let (mut tx, mut rx) = testkit::udp_handshake(&browser, gw_browser_media, &mut dtls, WAIT);
        let (mut buf, n) = testkit::rtp_packet(0, 1, 0x0b0b_0b0b, &[0x55; 160]);
        let n = tx.protect_rtp(&mut buf, n).unwrap();
        browser.send_to(&buf[..n], gw_browser_media).unwrap();
        let (plain, from) = testkit::recv_until(&trunk_rtp, "the browser's audio at the trunk", WAIT, |p| p.len() > 12);
        assert_eq!(from, gw_trunk_media, "sent from the port the SDP named (symmetric RTP)");
        assert_eq!(plain[1] & 0x7f, 0, "PCMU");
        assert_eq!(&plain[12..], &[0x55; 160][..]);

        let (buf, n) = testkit::rtp_packet(0, 9, 0x0b0b_0b0b, &[0x2a; 160]);
        trunk_rtp.send_to(&buf[..n], gw_trunk_media).unwrap();
        let (mut srtp, _) = testkit::recv_until(&browser, "the trunk's audio at the browser", WAIT, |p| p[0] >= 128);
        let n = rx.unprotect_rtp(&mut srtp).expect("the browser decrypts the gateway's SRTP");
        assert_eq!(&srtp[12..n], &[0x2a; 160][..]);

        // An INFO digit becomes telephone-events (PT 101, event 5) toward the trunk.
        let dtmf = "Signal=5\r\nDuration=100\r\n";
        ws.send(Ws::text(
            head("INFO", 2, &to)
                + &format!("Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{dtmf}", dtmf.len()),
        ))
        .await
        .unwrap();
        let info_ok = next_sip(&mut ws, "the 200 to INFO").await;
        assert!(matches!(info_ok.start, StartLine::Response { code: 200, .. }), "{:?}", info_ok.start);
        let (event, _) = testkit::recv_until(&trunk_rtp, "a telephone-event", WAIT, |p| p.len() >= 16 && p[1] & 0x7f == 101);
        assert_eq!(event[12], 5, "event 5");

        // The trunk's INFO digit becomes telephone-events toward the browser, at the browser's PT.
        let te_pt: u8 = browser_answer
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" telephone-event/8000"))
            .expect("telephone-event in the browser's answer")
            .parse()
            .unwrap();
        let gw_contact = trunk_invite.header(&HeaderName::Contact).unwrap();
        let gw_uri = gw_contact.trim_start_matches('<').split('>').next().unwrap();
        let dtmf = "Signal=9\r\nDuration=100\r\n";
        let info = format!(
            "INFO {gw_uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{trunk_port};branch=z9hG4bKtrunkinfo1\r\n\
             Max-Forwards: 70\r\nFrom: {};tag=trunk1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 INFO\r\n\
             Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{dtmf}",
            trunk_invite.header(&HeaderName::To).unwrap(),
            trunk_invite.header(&HeaderName::From).unwrap(),
            trunk_invite.header(&HeaderName::CallId).unwrap(),
            dtmf.len()
        );
        trunk_sip.send_to(info.as_bytes(), gw_sip).unwrap();
        let (info_ok, _) = testkit::recv_until(&trunk_sip, "the 200 to the trunk's INFO", WAIT, |p| p.starts_with(b"SIP/2.0 "));
        assert!(info_ok.starts_with(b"SIP/2.0 200 "), "{}", String::from_utf8_lossy(&info_ok));
        let (mut event, _) =
            testkit::recv_until(&browser, "a telephone-event at the browser", WAIT, |p| p.len() >= 16 && p[1] & 0x7f == te_pt);
        let n = rx.unprotect_rtp(&mut event).expect("the browser decrypts the event");
        assert_eq!((n, event[12]), (16, 9), "event 9");

        ws.send(Ws::text(head("BYE", 3, &to) + "Content-Length: 0\r\n\r\n")).await.unwrap();
        let (bye, gw_sip) = testkit::recv_until(&trunk_sip, "the BYE at the trunk", WAIT, |p| p.starts_with(b"BYE "));
        let bye = Message::parse(&bye).unwrap();
        trunk_sip.send_to(&response_for(&bye, 200, "OK").encode(), gw_sip).unwrap();
    });
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// A trunk's own `codecs` shape the offer it gets: the browser offers Opus, G.722, PCMU and PCMA; the
/// route for `00…` goes to a PCMA-only carrier, the rest to the PBX with `[media] codecs`.
#[test]
fn each_trunk_gets_an_offer_with_its_own_codecs() {
    let dir = scratch("media-trunk-codecs");
    let (gw_port, ws_port) = (free_udp_port(), free_tcp_port());
    let (pbx, carrier) = (socket(), socket());
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    std::fs::write(
        dir.join("gatewayd.toml"),
        format!(
            "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[sip.listen]]\ntransport = \"ws\"\naddress = \"127.0.0.1\"\nport = {ws_port}\n\
             [[trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1\"\nport = {}\n\
             [[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1\"\nport = {}\ncodecs = [\"pcma\"]\n\
             [[routes]]\nname = \"international\"\nuser_prefix = [\"00\"]\ntrunks = [\"carrier\"]\n\
             [[routes]]\nname = \"internal\"\ntrunks = [\"pbx\"]\n\
             [media]\ncodecs = [\"pcmu\", \"pcma\"]\nport_min = 28400\nport_max = 28499\n",
            port(&pbx),
            port(&carrier)
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
        let mut ws = ws_connect(ws_port).await;
        for (user, at, want) in [("0044207", &carrier, " RTP/AVP 8 "), ("200", &pbx, " RTP/AVP 0 8 ")] {
            let invite = format!(
                "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS m5.invalid;branch=z9hG4bKc{user}\r\n\
                 Max-Forwards: 70\r\nTo: <sip:{user}@127.0.0.1>\r\nFrom: <sip:alice@127.0.0.1>;tag=al{user}\r\n\
                 Call-ID: codecs-{user}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@m5.invalid;transport=ws>\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{CHROME_OFFER}",
                CHROME_OFFER.len()
            );
            ws.send(Ws::text(invite)).await.unwrap();
            let (bytes, _) = testkit::recv_until(at, "the INVITE at its trunk", WAIT, |p| p.starts_with(b"INVITE "));
            let offer = String::from_utf8(Message::parse(&bytes).unwrap().body).unwrap();
            assert!(offer.contains(want), "{user}: {offer}");
        }
    });
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
