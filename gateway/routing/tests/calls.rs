//! The call core with the real routing engine, on fake time: a browser on a WebSocket, trunks on UDP,
//! and `gatewayd.toml` text deciding where calls go. Failover, digest toward a trunk, OPTIONS
//! monitoring, admission control, header rules and registration offload, message by message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_config::Config;
use edge_routing::Engine;
use edge_sip::b2bua::CallEvent;
use edge_sip::message::{HeaderName, Message, StartLine};
use edge_sip::router::Failure;
use edge_sip::transaction::{Route, TimerConfig, response_for};
use edge_sip::{Datagram, Endpoint, EndpointConfig, Outcome, Transmit, Transport};

const GW_UDP: &str = "192.0.2.1:5060";
const GW_WS: &str = "192.0.2.1:5066";
const BROWSER: &str = "198.51.100.20:50000";
const A: &str = "203.0.113.10:5060";
const B: &str = "203.0.113.11:5060";

const HEAD: &str = "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"192.0.2.1\"\nport = 5060\n\
[[sip.listen]]\ntransport = \"ws\"\naddress = \"192.0.2.1\"\nport = 5066\n\
[[trunks]]\nname = \"a\"\naddress = \"203.0.113.10\"\nport = 5060\n";
const TRUNK_B: &str = "[[trunks]]\nname = \"b\"\naddress = \"203.0.113.11\"\nport = 5060\n";
const ROUTE_AB: &str = "[[routes]]\nname = \"out\"\ntrunks = [\"a\", \"b\"]\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Lab {
    ep: Endpoint,
    now: Instant,
    browser_cseq: u32,
}

impl Lab {
    /// `extra` goes after trunk a's table (its keys first), then trunk b and the rest.
    fn new(trunk_a_extra: &str, rest: &str) -> Self {
        let text = format!("{HEAD}{trunk_a_extra}{TRUNK_B}{rest}");
        let config = Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let now = Instant::now();
        let routes = config
            .trunks
            .iter()
            .map(|t| {
                Some(Route {
                    transport: Transport::Udp,
                    local: addr(GW_UDP),
                    remote: SocketAddr::new(
                        match &t.address {
                            edge_config::routing::Host::Ip(ip) => *ip,
                            edge_config::routing::Host::Name(_) => unreachable!(),
                        },
                        t.port_or_default(),
                    ),
                })
            })
            .collect();
        // Wednesday 2026-11-25 12:00 UTC.
        let engine = Engine::new(&config, routes, 42, (now, 1_795_608_000));
        let ep = Endpoint::new(EndpointConfig {
            server: Some("RTC-Edge/test".into()),
            tag_secret: 7,
            timers: TimerConfig::default(),
            router: Some(Box::new(engine)),
        });
        Self {
            ep,
            now,
            browser_cseq: 100,
        }
    }

    fn feed(
        &mut self,
        transport: Transport,
        local: &str,
        remote: &str,
        text: &str,
    ) -> (Outcome, Vec<Transmit>) {
        let d = Datagram {
            transport,
            local: addr(local),
            remote: addr(remote),
            payload: text.as_bytes(),
        };
        let o = self.ep.handle_datagram(self.now, d);
        (o, self.drain())
    }

    fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.ep.poll_transmit()).collect()
    }

    fn browser(&mut self, text: &str) -> Vec<Transmit> {
        self.feed(Transport::Ws, GW_WS, BROWSER, text).1
    }

    fn trunk(&mut self, trunk: &str, text: &str) -> Vec<Transmit> {
        self.feed(Transport::Udp, GW_UDP, trunk, text).1
    }

    fn advance(&mut self, by: Duration) -> Vec<Transmit> {
        self.now += by;
        self.ep.handle_timeout(self.now);
        self.drain()
    }

    /// Time passes in 500 ms steps (as a run loop would wake for each timer): everything sent.
    fn run_for(&mut self, total: Duration) -> Vec<Transmit> {
        let mut sent = Vec::new();
        let step = Duration::from_millis(500);
        let mut t = Duration::ZERO;
        while t < total {
            sent.extend(self.advance(step));
            t += step;
        }
        sent
    }

    fn invite(&mut self, user: &str, call_id: &str) -> Vec<Transmit> {
        self.browser_cseq += 1;
        let text = format!(
            "INVITE sip:{user}@gw.example.com SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{call_id}\r\n\
             Max-Forwards: 69\r\n\
             To: <sip:{user}@gw.example.com>\r\n\
             From: \"Alice\" <sip:alice@gw.example.com>;tag=a{call_id}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {} INVITE\r\n\
             Contact: <sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{SDP}",
            self.browser_cseq,
            SDP.len()
        );
        self.browser(&text)
    }

    fn events(&mut self) -> Vec<CallEvent> {
        std::iter::from_fn(|| self.ep.poll_call_event()).collect()
    }
}

const SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

fn to(sent: &[Transmit], who: &str) -> Vec<Message> {
    sent.iter()
        .filter(|t| t.destination == addr(who))
        .map(|t| Message::parse(&t.payload).unwrap())
        .collect()
}

fn first_lines(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .map(|m| {
            String::from_utf8(m.encode())
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn invites(ms: &[Message]) -> Vec<Message> {
    ms.iter()
        .filter(|m| matches!(&m.start, StartLine::Request { method, .. } if method.as_str() == "INVITE"))
        .cloned()
        .collect()
}

fn options(ms: &[Message]) -> Vec<Message> {
    ms.iter()
        .filter(|m| matches!(&m.start, StartLine::Request { method, .. } if method.as_str() == "OPTIONS"))
        .cloned()
        .collect()
}

fn respond(request: &Message, code: u16, reason: &str, extra: &[(&str, &str)]) -> String {
    let mut r = response_for(request, code, reason);
    for h in r.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
        h.value.push_str(";tag=trunk-tag");
    }
    for (name, value) in extra {
        r.push_header(HeaderName::from_wire(name), *value);
    }
    String::from_utf8(r.encode()).unwrap()
}

fn codes(ms: &[Message]) -> Vec<u16> {
    ms.iter()
        .filter_map(|m| match m.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        })
        .collect()
}

#[test]
fn a_503_sends_the_call_to_the_next_trunk_and_the_browser_never_sees_it() {
    let mut lab = Lab::new("", ROUTE_AB);
    let sent = lab.invite("4420", "c1");
    let first = invites(&to(&sent, A));
    assert_eq!(first.len(), 1, "the first trunk of the route gets the call");
    assert!(to(&sent, B).is_empty());
    let sent = lab.trunk(A, &respond(&first[0], 503, "Service Unavailable", &[]));
    // Trunk a gets the ACK for its 503 (transaction layer), trunk b the call in a new dialog.
    assert_eq!(
        first_lines(&to(&sent, A)),
        ["ACK sip:4420@203.0.113.10:5060 SIP/2.0"]
    );
    let second = invites(&to(&sent, B));
    assert_eq!(
        first_lines(&second),
        ["INVITE sip:4420@203.0.113.11:5060 SIP/2.0"]
    );
    assert_ne!(
        second[0].header(&HeaderName::CallId),
        first[0].header(&HeaderName::CallId)
    );
    assert_eq!(
        second[0].body, first[0].body,
        "the same offer goes to the next trunk"
    );
    assert!(
        codes(&to(&sent, BROWSER)).is_empty(),
        "the browser sees nothing of the failover"
    );
    let sent = lab.trunk(
        B,
        &respond(&second[0], 200, "OK", &[("Contact", "<sip:4420@203.0.113.11>")]),
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [200]);
    let events = lab.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            CallEvent::Rerouted {
                after: Failure::Status(503),
                trunk: 1,
                ..
            }
        )),
        "{events:?}"
    );
}

#[test]
fn a_code_that_is_not_a_failover_code_is_final() {
    let mut lab = Lab::new("", ROUTE_AB);
    let sent = lab.invite("4420", "c1");
    let first = invites(&to(&sent, A));
    let sent = lab.trunk(A, &respond(&first[0], 486, "Busy Here", &[]));
    assert!(
        invites(&to(&sent, B)).is_empty(),
        "486 is the callee's answer, not the trunk's failure"
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [486]);
    assert_eq!(lab.ep.active_calls(), 0);
}

fn call_ids(ms: &[Message]) -> std::collections::BTreeSet<String> {
    ms.iter()
        .filter_map(|m| m.header(&HeaderName::CallId).map(str::to_owned))
        .collect()
}

#[test]
fn a_silent_trunk_is_given_up_after_the_attempt_timeout() {
    let mut lab = Lab::new("", ROUTE_AB);
    let sent = lab.invite("4420", "c1");
    assert_eq!(invites(&to(&sent, A)).len(), 1);
    let sent = lab.run_for(Duration::from_millis(4500));
    assert!(
        invites(&to(&sent, B)).is_empty(),
        "5 s allowed for a first sign of life"
    );
    let sent = lab.run_for(Duration::from_secs(1));
    assert_eq!(
        call_ids(&invites(&to(&sent, B))).len(),
        1,
        "then the call moves to trunk b"
    );
    assert!(codes(&to(&sent, BROWSER)).is_empty());
    // b says 100 Trying: it may then take its time; a's INVITE transaction ends alone, unnoticed.
    let b_invite = invites(&to(&sent, B)).remove(0);
    lab.trunk(B, &respond(&b_invite, 100, "Trying", &[]));
    let sent = lab.run_for(Duration::from_secs(40));
    assert!(
        invites(&to(&sent, B))
            .iter()
            .all(|m| m.header(&HeaderName::CallId) == b_invite.header(&HeaderName::CallId))
    );
    assert!(
        codes(&to(&sent, BROWSER)).is_empty(),
        "nothing final yet: {:?}",
        codes(&to(&sent, BROWSER))
    );
    let sent = lab.trunk(
        B,
        &respond(&b_invite, 200, "OK", &[("Contact", "<sip:4420@203.0.113.11>")]),
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [200]);
}

#[test]
fn without_an_attempt_timeout_timer_b_fails_over_unless_the_budget_is_spent() {
    let mut lab = Lab::new(
        "",
        &format!("{ROUTE_AB}[routing]\nattempt_timeout_s = 0\nfailover_budget_s = 40\n"),
    );
    lab.invite("4420", "c1");
    let sent = lab.run_for(Duration::from_secs(31));
    assert!(invites(&to(&sent, B)).is_empty());
    let sent = lab.run_for(Duration::from_secs(2));
    assert_eq!(
        call_ids(&invites(&to(&sent, B))).len(),
        1,
        "Timer B (32 s) moved the call to trunk b"
    );
    assert!(codes(&to(&sent, BROWSER)).is_empty());

    let mut lab = Lab::new(
        "",
        &format!("{ROUTE_AB}[routing]\nattempt_timeout_s = 0\nfailover_budget_s = 20\n"),
    );
    lab.invite("4420", "c1");
    let sent = lab.run_for(Duration::from_secs(33));
    assert!(
        invites(&to(&sent, B)).is_empty(),
        "20 s budget spent: no second try"
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [408]);
}

#[test]
fn a_trunk_challenge_is_answered_with_its_credentials_once() {
    let mut lab = Lab::new("username = \"gw\"\npassword = \"s3cret\"\n", ROUTE_AB);
    let sent = lab.invite("4420", "c1");
    let first = invites(&to(&sent, A)).remove(0);
    let challenge = "Digest realm=\"pbx\", nonce=\"abc123\", qop=\"auth\", algorithm=MD5";
    let sent = lab.trunk(
        A,
        &respond(&first, 401, "Unauthorized", &[("WWW-Authenticate", challenge)]),
    );
    let retry = invites(&to(&sent, A));
    assert_eq!(retry.len(), 1, "the INVITE is sent again to the same trunk");
    let retry = &retry[0];
    assert_eq!(
        retry.header(&HeaderName::CallId),
        first.header(&HeaderName::CallId)
    );
    assert_eq!(retry.header(&HeaderName::CSeq), Some("2 INVITE"));
    let auth = retry.header(&HeaderName::Authorization).expect("Authorization");
    assert!(
        auth.starts_with(
            "Digest username=\"gw\", realm=\"pbx\", nonce=\"abc123\", uri=\"sip:4420@203.0.113.10:5060\""
        ),
        "{auth}"
    );
    // The response is right: recompute it from the cnonce the gateway chose.
    let cnonce = auth.split("cnonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let expected = edge_sip::digest::authorization(
        &edge_sip::digest::Challenge::parse(challenge).unwrap(),
        &edge_sip::digest::Credentials {
            username: "gw",
            password: "s3cret",
        },
        "INVITE",
        "sip:4420@203.0.113.10:5060",
        cnonce,
        1,
    );
    assert_eq!(auth, expected);
    assert!(
        codes(&to(&sent, BROWSER)).is_empty(),
        "the browser never sees the trunk's challenge"
    );
    // A second challenge means the credentials are wrong: the browser gets 403, no loop.
    let sent = lab.trunk(
        A,
        &respond(retry, 401, "Unauthorized", &[("WWW-Authenticate", challenge)]),
    );
    assert!(invites(&to(&sent, A)).is_empty());
    assert_eq!(codes(&to(&sent, BROWSER)), [403]);
}

#[test]
fn options_monitoring_marks_a_silent_trunk_down_calls_avoid_it_and_it_comes_back() {
    let mut lab = Lab::new(
        "monitor = { interval_s = 5, down_after = 2, up_after = 1 }\n",
        ROUTE_AB,
    );
    // Probes go out at start and every 5 s; a never answers: an unanswered probe fails when the next
    // is due, so two failures in a row take 10 s.
    let sent = lab.run_for(Duration::from_secs(9));
    assert_eq!(
        call_ids(&options(&to(&sent, A))).len(),
        2,
        "probes at 0 s and 5 s"
    );
    assert!(to(&sent, B).is_empty(), "b is not monitored");
    let none: Vec<_> = std::iter::from_fn(|| lab.ep.router_mut().unwrap().poll_change()).collect();
    assert!(none.is_empty(), "one failure so far: {none:?}");
    lab.run_for(Duration::from_millis(1500));
    let changes: Vec<_> = std::iter::from_fn(|| lab.ep.router_mut().unwrap().poll_change()).collect();
    assert_eq!(changes, [("a".to_owned(), false)]);
    // A call now goes straight to b.
    let sent = lab.invite("4420", "c1");
    assert!(invites(&to(&sent, A)).is_empty());
    assert_eq!(invites(&to(&sent, B)).len(), 1);
    // a answers its next probe (even a 404 proves it alive): up again.
    let mut probe = None;
    for _ in 0..20 {
        let sent = lab.advance(Duration::from_millis(500));
        let fresh: Vec<Message> = options(&to(&sent, A))
            .into_iter()
            .filter(|m| {
                m.header(&HeaderName::CSeq) == Some("1 OPTIONS")
                    && m.headers.iter().filter(|h| h.name == HeaderName::Via).count() == 1
            })
            .collect();
        if let Some(p) = fresh.into_iter().last() {
            probe = Some(p);
            break;
        }
    }
    let probe = probe.expect("a is still probed while down");
    lab.trunk(A, &respond(&probe, 404, "Not Found", &[]));
    let changes: Vec<_> = std::iter::from_fn(|| lab.ep.router_mut().unwrap().poll_change()).collect();
    assert_eq!(changes, [("a".to_owned(), true)]);
    let sent = lab.invite("4420", "c2");
    assert_eq!(invites(&to(&sent, A)).len(), 1);
}

#[test]
fn a_call_ringing_on_a_trunk_that_goes_down_moves_to_the_next_at_once() {
    let mut lab = Lab::new(
        "monitor = { interval_s = 5, down_after = 1, up_after = 1 }\n",
        ROUTE_AB,
    );
    let sent = lab.advance(Duration::from_millis(100));
    assert_eq!(call_ids(&options(&to(&sent, A))).len(), 1, "the first probe");
    let sent = lab.invite("4420", "c1");
    let at_a = invites(&to(&sent, A)).remove(0);
    let sent = lab.trunk(
        A,
        &respond(&at_a, 180, "Ringing", &[("Contact", "<sip:4420@203.0.113.10>")]),
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [180]);
    // a dies: its probe goes unanswered, and at the next one a is down. The ringing call does not wait
    // for Timer C: a gets a CANCEL, b the call.
    let sent = lab.run_for(Duration::from_secs(5));
    let lines = first_lines(&to(&sent, A));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CANCEL sip:4420@203.0.113.10:5060")),
        "{lines:?}"
    );
    let cancel = to(&sent, A)
        .into_iter()
        .find(|m| first_lines(std::slice::from_ref(m))[0].starts_with("CANCEL"))
        .unwrap();
    assert_eq!(
        cancel.header(&HeaderName::CallId),
        at_a.header(&HeaderName::CallId)
    );
    assert_eq!(
        cancel.header(&HeaderName::Via),
        at_a.header(&HeaderName::Via),
        "the CANCEL matches a's INVITE"
    );
    let at_b = invites(&to(&sent, B));
    assert_eq!(call_ids(&at_b).len(), 1, "the call moved to b");
    assert!(codes(&to(&sent, BROWSER)).is_empty());
    // a's late 487 changes nothing; b answers.
    lab.trunk(A, &respond(&at_a, 487, "Request Terminated", &[]));
    let sent = lab.trunk(
        B,
        &respond(&at_b[0], 200, "OK", &[("Contact", "<sip:4420@203.0.113.11>")]),
    );
    assert_eq!(codes(&to(&sent, BROWSER)), [200]);
    assert_eq!(lab.ep.active_calls(), 1);
}

#[test]
fn admission_refuses_the_eleventh_concurrent_call_with_503_and_retry_after() {
    let mut lab = Lab::new(
        "max_calls = 10\n",
        "[[routes]]\nname = \"out\"\ntrunks = [\"a\"]\n",
    );
    let mut first = Vec::new();
    for i in 0..10 {
        let sent = lab.invite("4420", &format!("c{i}"));
        first.extend(invites(&to(&sent, A)));
    }
    assert_eq!(first.len(), 10);
    let sent = lab.invite("4420", "c10");
    assert!(invites(&to(&sent, A)).is_empty());
    let refusal = to(&sent, BROWSER)
        .into_iter()
        .find(|m| codes(std::slice::from_ref(m)) == [503])
        .expect("503");
    assert!(
        refusal.header(&HeaderName::from_wire("Retry-After")).is_some(),
        "503 carries Retry-After"
    );
    // One call ends (the callee is busy): a place frees up.
    lab.trunk(A, &respond(&first[0], 486, "Busy Here", &[]));
    let sent = lab.invite("4420", "c11");
    assert_eq!(invites(&to(&sent, A)).len(), 1);
}

#[test]
fn header_rules_apply_on_the_way_out_to_their_trunk_only() {
    let rules = "[[rewrite]]\ntoward = \"trunk:a\"\nuser = \"request\"\npattern = \"^0([0-9]+)$\"\nreplace = \"+44$1\"\n\
[[rewrite]]\ntoward = \"trunks\"\nheader = \"X-Tenant\"\nset = \"acme\"\n";
    let mut lab = Lab::new("", &format!("{ROUTE_AB}{rules}"));
    let sent = lab.invite("02071234567", "c1");
    let inv = invites(&to(&sent, A)).remove(0);
    assert_eq!(
        first_lines(std::slice::from_ref(&inv)),
        ["INVITE sip:+442071234567@203.0.113.10:5060 SIP/2.0"]
    );
    assert_eq!(inv.header(&HeaderName::from_wire("X-Tenant")), Some("acme"));
    // Toward b (after a fails) only the rule for all trunks applies.
    let sent = lab.trunk(A, &respond(&inv, 503, "Service Unavailable", &[]));
    let inv = invites(&to(&sent, B)).remove(0);
    assert_eq!(
        first_lines(std::slice::from_ref(&inv)),
        ["INVITE sip:02071234567@203.0.113.11:5060 SIP/2.0"]
    );
    assert_eq!(inv.header(&HeaderName::from_wire("X-Tenant")), Some("acme"));
}

fn register(call_id: &str, cseq: u32, expires: u32) -> String {
    format!(
        "REGISTER sip:gw.example.com SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKr{cseq}\r\n\
         Max-Forwards: 69\r\n\
         To: <sip:alice@gw.example.com>\r\n\
         From: <sip:alice@gw.example.com>;tag=r1\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:k3l8d5@df7jal23ls0d.invalid;transport=ws>;expires={expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn registration_refreshes_are_answered_here_inside_the_offload_interval() {
    let mut lab = Lab::new("", "[registrar]\ntrunk = \"a\"\noffload_interval_s = 120\n");
    let sent = lab.browser(&register("reg-1", 1, 60));
    let up = to(&sent, A);
    assert_eq!(up.len(), 1);
    let contact = up[0].header(&HeaderName::Contact).unwrap().to_owned();
    assert!(
        contact.ends_with(";expires=240"),
        "the registrar is asked to outlive the interval: {contact}"
    );
    let ok = respond(&up[0], 200, "OK", &[("Contact", &contact)]);
    let sent = lab.trunk(A, &ok);
    let answer = to(&sent, BROWSER).remove(0);
    assert_eq!(codes(std::slice::from_ref(&answer)), [200]);
    assert!(
        answer
            .header(&HeaderName::Contact)
            .unwrap()
            .ends_with(";expires=60"),
        "the browser keeps its own interval"
    );
    // Refreshes every 30 s: answered here until 120 s have passed since the last forward.
    let mut forwarded = 0;
    for i in 0..8u32 {
        lab.advance(Duration::from_secs(30));
        let sent = lab.browser(&register("reg-1", 2 + i, 60));
        let up = to(&sent, A);
        if let Some(r) = up.first() {
            forwarded += 1;
            let contact = r.header(&HeaderName::Contact).unwrap().to_owned();
            lab.trunk(A, &respond(r, 200, "OK", &[("Contact", &contact)]));
        } else {
            assert_eq!(codes(&to(&sent, BROWSER)), [200], "refresh {i} answered here");
        }
    }
    assert_eq!(forwarded, 2, "240 s of refreshes: forwarded at 120 s and 240 s");
    assert_eq!(lab.ep.offloaded_registers(), 6);
    assert_eq!(lab.ep.registered(), 1);
    // A de-registration always goes to the registrar.
    lab.advance(Duration::from_secs(1));
    let sent = lab.browser(&register("reg-1", 20, 0));
    assert_eq!(to(&sent, A).len(), 1);
}

#[test]
fn calls_from_a_trunk_route_only_by_explicit_routes_and_never_back() {
    // Default: a trunk's call for nobody registered here is 404.
    let mut lab = Lab::new("", ROUTE_AB);
    let from_trunk = |user: &str| {
        format!(
            "INVITE sip:{user}@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKt1\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{user}@192.0.2.1>\r\n\
             From: <sip:+4420@203.0.113.10>;tag=t1\r\n\
             Call-ID: trunk-call-1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:+4420@203.0.113.10>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let sent = lab.trunk(A, &from_trunk("carol"));
    assert!(codes(&to(&sent, A)).contains(&404), "{:?}", codes(&to(&sent, A)));
    // A transit route from trunk a: it goes to b, never back to a.
    let mut lab = Lab::new(
        "",
        "[[routes]]\nname = \"transit\"\nsource = [\"trunk:a\"]\ntrunks = [\"a\", \"b\"]\n",
    );
    let sent = lab.trunk(A, &from_trunk("carol"));
    assert!(invites(&to(&sent, A)).is_empty());
    assert_eq!(invites(&to(&sent, B)).len(), 1);
}
