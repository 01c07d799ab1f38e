//! The call core under a fuzzed conversation. Each input byte pair is an action of one of the peers — a
//! browser on a WebSocket (leg A) and a trunk on UDP (leg B) — built from what the gateway really sent
//! them (so tags, branches and Call-IDs match and the deep paths are reached), or raw bytes.
//!
//! Properties: never a panic; everything the gateway sends parses; and once time runs far enough, every
//! transaction has ended (no server transaction is left without a final response).
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_sip::router::OneTrunk;
use edge_sip::message::{HeaderName, Message, StartLine};
use edge_sip::transaction::{Route, TimerConfig, response_for};
use edge_sip::{Datagram, Endpoint, EndpointConfig, Transport};
use libfuzzer_sys::fuzz_target;

const GW_UDP: &str = "192.0.2.1:5060";
const GW_WS: &str = "192.0.2.1:5066";
const TRUNK: &str = "203.0.113.10:5060";
const BROWSER: &str = "198.51.100.20:50000";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const CODES: [u16; 12] = [100, 180, 183, 200, 202, 401, 404, 408, 486, 487, 491, 503];

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

struct World {
    ep: Endpoint,
    now: Instant,
    /// The last request each side received from the gateway, and the last final response to the browser.
    last_to_a: Option<Message>,
    last_to_b: Option<Message>,
    a_ok: Option<Message>,
    calls: u32,
}

impl World {
    fn feed(&mut self, from_a: bool, payload: &[u8]) {
        let (transport, local, remote) =
            if from_a { (Transport::Ws, GW_WS, BROWSER) } else { (Transport::Udp, GW_UDP, TRUNK) };
        let d = Datagram { transport, local: addr(local), remote: addr(remote), payload };
        self.ep.handle_datagram(self.now, d);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let m = Message::parse(&t.payload).expect("everything the gateway sends parses");
            let to_a = t.destination == addr(BROWSER);
            match (&m.start, to_a) {
                (StartLine::Request { .. }, true) => self.last_to_a = Some(m),
                (StartLine::Request { .. }, false) => self.last_to_b = Some(m),
                (StartLine::Response { code: 200..=299, .. }, true) => self.a_ok = Some(m),
                _ => {}
            }
        }
    }

    fn answer(&mut self, to_a_side: bool, code: u16, with_sdp: bool) {
        let request = if to_a_side { self.last_to_a.clone() } else { self.last_to_b.clone() };
        let Some(request) = request else { return };
        let mut r = response_for(&request, code, "Fuzz");
        for h in r.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
            if !h.value.contains("tag=") {
                h.value.push_str(";tag=peer");
            }
        }
        r.push_header(HeaderName::Contact, if to_a_side { "<sip:b@x.invalid;transport=ws>" } else { "<sip:t@203.0.113.10:5060>" });
        if with_sdp {
            r.push_header(HeaderName::ContentType, "application/sdp");
            r.body = SDP.as_bytes().to_vec();
        }
        let bytes = r.encode();
        self.feed(to_a_side, &bytes);
    }

    fn invite(&mut self, with_sdp: bool, session_expires: u8) {
        self.calls += 1;
        let n = self.calls;
        let body = if with_sdp { SDP } else { "" };
        let ct = if with_sdp { "Content-Type: application/sdp\r\n" } else { "" };
        let se = if session_expires > 0 { format!("Session-Expires: {}\r\nSupported: timer\r\n", u32::from(session_expires) * 2) } else { String::new() };
        let text = format!(
            "INVITE sip:bob@gw.example.com SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKfz{n}\r\nMax-Forwards: 70\r\n\
             To: <sip:bob@gw.example.com>\r\nFrom: <sip:alice@gw.example.com>;tag=fa{n}\r\nCall-ID: fuzz-{n}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:a@a.invalid;transport=ws>\r\n{se}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.feed(true, text.as_bytes());
    }

    /// A request from the browser within the last answered dialog.
    fn in_dialog(&mut self, method: &str, cseq: u8, with_sdp: bool) {
        let Some(ok) = self.a_ok.clone() else { return };
        let to = ok.header(&HeaderName::To).unwrap_or_default().to_owned();
        let from = ok.header(&HeaderName::From).unwrap_or_default().to_owned();
        let call_id = ok.header(&HeaderName::CallId).unwrap_or_default().to_owned();
        let number = ok.header(&HeaderName::CSeq).and_then(|c| c.split_whitespace().next()).and_then(|c| c.parse::<u32>().ok()).unwrap_or(1);
        let cseq = if method == "ACK" { number } else { number + 1 + u32::from(cseq) };
        let (ct, body) = if with_sdp { ("Content-Type: application/sdp\r\n", SDP) } else { ("", "") };
        let text = format!(
            "{method} sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKd{method}{cseq}\r\nMax-Forwards: 70\r\n\
             To: {to}\r\nFrom: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.feed(true, text.as_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let trunk = OneTrunk { route: Route { transport: Transport::Udp, local: addr(GW_UDP), remote: addr(TRUNK) } };
    let ep = Endpoint::new(EndpointConfig { server: None, tag_secret: 1, timers: TimerConfig::default(), router: Some(Box::new(trunk)) });
    // libFuzzer targets may read the clock: this is the origin of fake time, advanced by arithmetic.
    let mut w = World { ep, now: Instant::now(), last_to_a: None, last_to_b: None, a_ok: None, calls: 0 };
    let mut bytes = data.iter().copied();
    while let (Some(op), Some(arg)) = (bytes.next(), bytes.next()) {
        let code = CODES[usize::from(arg) % CODES.len()];
        match op % 12 {
            0 => w.invite(arg & 1 == 0, arg >> 4),
            1 => w.answer(false, code, arg & 0x80 != 0),
            2 => w.answer(true, code, arg & 0x80 != 0),
            3 => w.in_dialog("ACK", 0, arg & 1 == 1),
            4 => w.in_dialog("BYE", arg, false),
            5 => w.in_dialog("UPDATE", arg, arg & 1 == 1),
            6 => w.in_dialog("INVITE", arg, arg & 1 == 1),
            7 => {
                let cancel = format!(
                    "CANCEL sip:bob@gw.example.com SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKfz{0}\r\nMax-Forwards: 70\r\n\
                     To: <sip:bob@gw.example.com>\r\nFrom: <sip:alice@gw.example.com>;tag=fa{0}\r\nCall-ID: fuzz-{0}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
                    w.calls
                );
                w.feed(true, cancel.as_bytes());
            }
            8 => {
                w.now += Duration::from_millis(u64::from(arg) * 250);
                w.ep.handle_timeout(w.now);
                w.drain();
            }
            9 => {
                w.ep.flow_closed(w.now, addr(GW_WS), addr(BROWSER));
                w.drain();
            }
            10 => {
                // Raw bytes from either side: the rest of the input, up to a length.
                let raw: Vec<u8> = bytes.by_ref().take(usize::from(arg)).collect();
                w.feed(arg & 1 == 0, &raw);
            }
            _ => {
                let register = format!(
                    "REGISTER sip:gw.example.com SIP/2.0\r\nVia: SIP/2.0/WS a.invalid;branch=z9hG4bKr{arg}\r\nMax-Forwards: 70\r\n\
                     To: <sip:alice@gw.example.com>\r\nFrom: <sip:alice@gw.example.com>;tag=r\r\nCall-ID: reg\r\nCSeq: {arg} REGISTER\r\n\
                     Contact: <sip:a@a.invalid;transport=ws>;expires={}\r\nContent-Length: 0\r\n\r\n",
                    u32::from(arg) * 10
                );
                w.feed(true, register.as_bytes());
            }
        }
    }
    // Let every timer run out: all transactions must have ended.
    for _ in 0..40 {
        w.now += Duration::from_secs(60);
        w.ep.handle_timeout(w.now);
        w.drain();
    }
    assert_eq!(w.ep.transactions(), 0, "a transaction outlived its timers: {:#?}", w.ep);
});
