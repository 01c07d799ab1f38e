//! Benchmark: SIP parse rate and B2BUA calls per second per core, WebSocket browser → UDP trunk, with the
//! sans-IO core driven in-process on one thread.
//!
//! Run: `cargo bench -p edge-sip --bench b2bua` (release). It prints, from one run:
//! 1. the parse-only rate of a ~900-byte JsSIP-style INVITE with SDP;
//! 2. complete calls per second (INVITE/100/200/ACK/BYE/200 on both legs), the peers included: the
//!    simulated browser and trunk parse everything the gateway sends them and build their replies from
//!    it (Via/From/To/Call-ID/CSeq echoed, tags and Contact learnt), as real peers would. Measured with
//!    one call in flight and with 1,000 in flight (in lockstep), to show how the core scales with load;
//! 3. the cost of a call in parse-only INVITEs, and a line against the goal (≥ 3,000 CPS/core).
//!
//! The machine is shared and noisy: every figure is the median over several rounds (min..max shown),
//! and the bench never fails on a time. It does fail, loudly, if any call does not complete exactly as
//! expected, so that it can never silently measure failing calls.
//!
//! Time is data: one `Instant::now()` is the origin of simulated time, which advances by arithmetic as
//! if calls arrived at the goal rate (3,000 CPS). Retransmission timers therefore never fire (every
//! message is answered within milliseconds of simulated time), but the cleanup timers do, as in
//! production: Timer L/M (32 s) and K (5 s) transactions pile up to the size they would have at the goal
//! load, and the shell's `poll_timeout`/`handle_timeout` loop is part of the measured cost.
//!
//! Under `cargo test --benches` / `--all-targets` (no `--bench` argument), or with `BENCH_QUICK=1`, it
//! runs a tiny round count instead: a smoke test of the same code and checks, in a few milliseconds.

// A benchmark measures wall time (Instant::now) and is not product code.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use edge_sip::b2bua::CallEvent;
use edge_sip::message::{HeaderName, Message, Method, StartLine};
use edge_sip::router::OneTrunk;
use edge_sip::transaction::{Route, TimerConfig, response_for};
use edge_sip::{Datagram, Endpoint, EndpointConfig, Outcome, Transmit, Transport};

/// The goal.
const GOAL_CPS: f64 = 3_000.0;
/// Messages parsed per call: 5 by the gateway (INVITE, 200, ACK, BYE, 200) and 6 by the peers (100,
/// INVITE, 200, ACK, 200, BYE).
const PARSED_PER_CALL: u32 = 11;

const GW_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
const GW_WS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5066);
const TRUNK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)), 5060);
const BROWSER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));

/// A WebRTC offer as a browser sends it, trimmed to a single audio m-line.
const SDP_BROWSER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
m=audio 52748 UDP/TLS/RTP/SAVPF 111 0 101\r\n\
c=IN IP4 198.51.100.20\r\n\
a=rtcp-mux\r\n\
a=ice-ufrag:Xk3m\r\n\
a=ice-pwd:wT0n2hVnN2vZKk1gk1pVdd2b\r\n\
a=fingerprint:sha-256 8C:4A:1F:3B:77:D2:9E:05:6A:C1:B4:52:E8:0D:93:7F:21:CE:AA:64:18:F9:3D:07:B2:5E:C8:41:96:0A:DF:73\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// The trunk's answer.
const SDP_TRUNK: &str = "v=0\r\n\
o=- 2 2 IN IP4 203.0.113.10\r\n\
s=-\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n";

/// JsSIP's INVITE for call `n` (fixed-width ids, so every call's INVITE has the same size).
fn browser_invite(n: u64) -> String {
    format!(
        "INVITE sip:bob@gw.example.com SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{n:010}i\r\n\
         Max-Forwards: 69\r\n\
         To: <sip:bob@gw.example.com>\r\n\
         From: \"Alice\" <sip:alice@gw.example.com>;tag={n:010}t\r\n\
         Call-ID: {n:010}-jssip-8ujd63kq0f\r\n\
         CSeq: 8061 INVITE\r\n\
         Contact: <sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
         Session-Expires: 90\r\n\
         Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
         Content-Type: application/sdp\r\n\
         Supported: timer,ice,replaces,outbound\r\n\
         Content-Length: {}\r\n\r\n{SDP_BROWSER}",
        SDP_BROWSER.len()
    )
}

/// A request the browser sends in the dialog the gateway's 2xx established.
fn browser_in_dialog(method: &str, n: u64, cseq: u32, target: &str, to: &str) -> Vec<u8> {
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{n:010}{method}\r\n\
         Max-Forwards: 69\r\n\
         To: {to}\r\n\
         From: \"Alice\" <sip:alice@gw.example.com>;tag={n:010}t\r\n\
         Call-ID: {n:010}-jssip-8ujd63kq0f\r\n\
         CSeq: {cseq} {method}\r\n\
         User-Agent: JsSIP 3.10.1\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// One call's peer-side state between steps.
#[derive(Debug, Default)]
struct Call {
    n: u64,
    browser: Option<SocketAddr>,
    /// The Call-ID of leg B, as the trunk saw it in the INVITE.
    b_call_id: String,
    /// Next message from the trunk.
    from_trunk: Vec<u8>,
    /// Browser's ACK and BYE, built from the gateway's 200.
    ack: Vec<u8>,
    bye: Vec<u8>,
}

/// The gateway and its simulated peers.
struct Bench {
    ep: Endpoint,
    now: Instant,
    /// Simulated time per input message.
    step: Duration,
    sent: Vec<Transmit>,
    next_call: u64,
    completed: u64,
    /// Accumulate the wall time spent inside the gateway (costs two clock reads per input).
    timed: bool,
    in_gateway: Duration,
}

fn parse(t: &Transmit, who: &str, n: u64) -> Message {
    Message::parse(&t.payload).unwrap_or_else(|e| {
        panic!(
            "call {n}: the {who} cannot parse what the gateway sent ({e}):\n{}",
            String::from_utf8_lossy(&t.payload)
        )
    })
}

fn code(m: &Message) -> Option<u16> {
    match m.start {
        StartLine::Response { code, .. } => Some(code),
        StartLine::Request { .. } => None,
    }
}

fn uri_in(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b).unwrap_or(value),
        _ => value,
    }
}

impl Bench {
    fn new(origin: Instant) -> Self {
        let ep = Endpoint::new(EndpointConfig {
            server: Some("RTC-Edge/bench".into()),
            tag_secret: 0x0123_4567_89ab_cdef,
            timers: TimerConfig::default(),
            router: Some(Box::new(OneTrunk {
                route: Route {
                    transport: Transport::Udp,
                    local: GW_UDP,
                    remote: TRUNK,
                },
            })),
        });
        // Five inputs per call at the goal rate.
        let step = Duration::from_secs(1).div_f64(GOAL_CPS * 5.0);
        Self {
            ep,
            now: origin,
            step,
            sent: Vec::new(),
            next_call: 0,
            completed: 0,
            timed: false,
            in_gateway: Duration::ZERO,
        }
    }

    /// One datagram into the gateway, as the shell does it: feed, drain what to send, run due timers,
    /// drain call events. Leaves what was sent in `self.sent`.
    fn feed(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> Outcome {
        self.now += self.step;
        let t0 = self.timed.then(Instant::now);
        let outcome = self.ep.handle_datagram(
            self.now,
            Datagram {
                transport,
                local,
                remote,
                payload,
            },
        );
        self.sent.clear();
        while let Some(t) = self.ep.poll_transmit() {
            self.sent.push(t);
        }
        if self.ep.poll_timeout().is_some_and(|due| due <= self.now) {
            self.ep.handle_timeout(self.now);
            if let Some(t) = self.ep.poll_transmit() {
                panic!(
                    "a timer sent something (a retransmission means a message went unanswered):\n{}",
                    String::from_utf8_lossy(&t.payload)
                );
            }
        }
        while let Some(event) = self.ep.poll_call_event() {
            match event {
                CallEvent::Ended { reason, .. } if reason == "BYE from A" => self.completed += 1,
                CallEvent::Ended { reason, .. } => panic!("a call ended abnormally: {reason}"),
                CallEvent::Started { .. } | CallEvent::Answered { .. } | CallEvent::Rerouted { .. } => {}
            }
        }
        if let Some(t0) = t0 {
            self.in_gateway += t0.elapsed();
        }
        outcome
    }

    fn new_call(&mut self) -> Call {
        let n = self.next_call;
        self.next_call += 1;
        // Browsers on distinct WebSocket flows.
        let port = 10_000 + u16::try_from(n % 50_000).expect("below 50,000");
        Call {
            n,
            browser: Some(SocketAddr::new(BROWSER_IP, port)),
            ..Call::default()
        }
    }

    fn is_to_browser(t: &Transmit, c: &Call) -> bool {
        if Some(t.destination) == c.browser {
            assert!(
                t.transport == Transport::Ws && t.local == GW_WS,
                "call {}: sent to the browser off its WebSocket flow: {t:?}",
                c.n
            );
            true
        } else {
            assert!(
                t.destination == TRUNK && t.transport == Transport::Udp && t.local == GW_UDP,
                "call {}: sent somewhere unexpected: {t:?}",
                c.n
            );
            false
        }
    }

    /// Browser INVITE → 100 Trying to the browser, INVITE to the trunk; the trunk prepares its 200.
    fn invite(&mut self, c: &mut Call) {
        let browser = c.browser.expect("set by new_call");
        let invite = browser_invite(c.n);
        let o = self.feed(Transport::Ws, GW_WS, browser, invite.as_bytes());
        assert_eq!(
            o,
            Outcome::Relayed {
                method: Method::Invite
            },
            "call {}: INVITE",
            c.n
        );
        let (mut trying, mut offered) = (0, 0);
        for t in &self.sent {
            if Self::is_to_browser(t, c) {
                let m = parse(t, "browser", c.n);
                assert_eq!(code(&m), Some(100), "call {}: browser expected 100 Trying", c.n);
                trying += 1;
            } else {
                let inv = parse(t, "trunk", c.n);
                assert_eq!(
                    inv.method(),
                    Some(&Method::Invite),
                    "call {}: trunk expected INVITE",
                    c.n
                );
                assert_eq!(
                    inv.body,
                    SDP_BROWSER.as_bytes(),
                    "call {}: SDP not passed through",
                    c.n
                );
                c.b_call_id = inv
                    .header(&HeaderName::CallId)
                    .expect("INVITE has a Call-ID")
                    .to_owned();
                let mut ok = response_for(&inv, 200, "OK");
                for h in ok.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
                    h.value.push_str(&format!(";tag=trunk{:010}", c.n));
                }
                ok.push_header(HeaderName::Contact, "<sip:bob@203.0.113.10:5060>");
                ok.push_header(HeaderName::ContentType, "application/sdp");
                ok.body = SDP_TRUNK.as_bytes().to_vec();
                c.from_trunk = ok.encode();
                offered += 1;
            }
        }
        assert_eq!((trying, offered), (1, 1), "call {}: after INVITE", c.n);
    }

    /// Trunk 200 → ACK to the trunk, 200 to the browser; the browser prepares its ACK and BYE.
    fn answer(&mut self, c: &mut Call) {
        let ok = std::mem::take(&mut c.from_trunk);
        let o = self.feed(Transport::Udp, GW_UDP, TRUNK, &ok);
        assert_eq!(o, Outcome::Absorbed, "call {}: trunk 200", c.n);
        let (mut acked, mut answered) = (0, 0);
        for t in &self.sent {
            if Self::is_to_browser(t, c) {
                let m = parse(t, "browser", c.n);
                assert_eq!(code(&m), Some(200), "call {}: browser expected 200", c.n);
                assert_eq!(
                    m.body,
                    SDP_TRUNK.as_bytes(),
                    "call {}: answer not passed through",
                    c.n
                );
                let to = m.header(&HeaderName::To).expect("200 has a To");
                let target = uri_in(m.header(&HeaderName::Contact).expect("2xx has a Contact"));
                c.ack = browser_in_dialog("ACK", c.n, 8061, target, to);
                c.bye = browser_in_dialog("BYE", c.n, 8062, target, to);
                answered += 1;
            } else {
                let ack = parse(t, "trunk", c.n);
                assert_eq!(
                    ack.method(),
                    Some(&Method::Ack),
                    "call {}: trunk expected ACK",
                    c.n
                );
                assert_eq!(
                    ack.header(&HeaderName::CallId),
                    Some(c.b_call_id.as_str()),
                    "call {}: ACK outside the dialog",
                    c.n
                );
                acked += 1;
            }
        }
        assert_eq!((acked, answered), (1, 1), "call {}: after trunk 200", c.n);
    }

    /// Browser ACK → nothing.
    fn ack(&mut self, c: &mut Call) {
        let browser = c.browser.expect("set by new_call");
        let ack = std::mem::take(&mut c.ack);
        let o = self.feed(Transport::Ws, GW_WS, browser, &ack);
        assert_eq!(o, Outcome::Absorbed, "call {}: browser ACK", c.n);
        assert!(
            self.sent.is_empty(),
            "call {}: ACK made the gateway send {:?}",
            c.n,
            self.sent
        );
    }

    /// Browser BYE → 200 to the browser, BYE to the trunk; the trunk prepares its 200.
    fn hang_up(&mut self, c: &mut Call) {
        let browser = c.browser.expect("set by new_call");
        let bye = std::mem::take(&mut c.bye);
        let o = self.feed(Transport::Ws, GW_WS, browser, &bye);
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Bye,
                code: 200
            },
            "call {}: browser BYE",
            c.n
        );
        let (mut answered, mut relayed) = (0, 0);
        for t in &self.sent {
            if Self::is_to_browser(t, c) {
                let m = parse(t, "browser", c.n);
                assert_eq!(code(&m), Some(200), "call {}: browser expected 200 to BYE", c.n);
                assert_eq!(m.header(&HeaderName::CSeq), Some("8062 BYE"), "call {}", c.n);
                answered += 1;
            } else {
                let bye = parse(t, "trunk", c.n);
                assert_eq!(
                    bye.method(),
                    Some(&Method::Bye),
                    "call {}: trunk expected BYE",
                    c.n
                );
                assert_eq!(
                    bye.header(&HeaderName::CallId),
                    Some(c.b_call_id.as_str()),
                    "call {}: BYE outside the dialog",
                    c.n
                );
                c.from_trunk = response_for(&bye, 200, "OK").encode();
                relayed += 1;
            }
        }
        assert_eq!((answered, relayed), (1, 1), "call {}: after BYE", c.n);
    }

    /// Trunk 200 to the BYE → nothing; the call is over.
    fn bye_ok(&mut self, c: &mut Call) {
        let ok = std::mem::take(&mut c.from_trunk);
        let o = self.feed(Transport::Udp, GW_UDP, TRUNK, &ok);
        assert_eq!(o, Outcome::Absorbed, "call {}: trunk 200 to BYE", c.n);
        assert!(self.sent.is_empty(), "call {}: gateway sent {:?}", c.n, self.sent);
    }

    /// `count` complete calls, `in_flight` at a time (each step done for the whole batch before the
    /// next). Returns the wall time.
    fn calls(&mut self, count: u64, in_flight: usize) -> Duration {
        let completed_before = self.completed;
        let mut batch: Vec<Call> = Vec::with_capacity(in_flight);
        let mut done = 0;
        let start = Instant::now();
        while done < count {
            let k = usize::try_from(count - done).map_or(in_flight, |left| left.min(in_flight));
            batch.clear();
            for _ in 0..k {
                let c = self.new_call();
                batch.push(c);
            }
            for step in [Self::invite, Self::answer, Self::ack, Self::hang_up, Self::bye_ok] {
                for c in &mut batch {
                    step(self, c);
                }
            }
            done += k as u64;
        }
        let elapsed = start.elapsed();
        assert_eq!(
            self.completed - completed_before,
            count,
            "not every call completed with \"BYE from A\""
        );
        assert_eq!(
            self.ep.active_calls(),
            0,
            "calls left active after they all ended"
        );
        elapsed
    }
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

/// `12,345` for a rate.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Peak resident memory of this process (Linux), for the size of the state the run built.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

struct Plan {
    rounds: usize,
    parses: u32,
    warmup_calls: u64,
    calls: u64,
    in_flight: usize,
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
        || !std::env::args().any(|a| a == "--bench");
    let plan = if quick {
        Plan {
            rounds: 1,
            parses: 100,
            warmup_calls: 20,
            calls: 20,
            in_flight: 10,
        }
    } else {
        Plan {
            rounds: 7,
            parses: 100_000,
            // 32 s of simulated time at the goal rate, so Timer L/M/K state is at its steady size.
            warmup_calls: 100_000,
            calls: 12_000,
            in_flight: 1_000,
        }
    };

    let invite = browser_invite(0);
    let origin = Instant::now();
    let mut bench = Bench::new(origin);
    let warm = Instant::now();
    bench.calls(plan.warmup_calls, 1);
    let warm = warm.elapsed();

    let (mut parse_us, mut seq_us, mut timed_us, mut share, mut many_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        // 1. Parse only: the same INVITE over and over (cache-warm: a best case).
        let start = Instant::now();
        for _ in 0..plan.parses {
            let m = Message::parse(black_box(invite.as_bytes())).expect("the INVITE parses");
            black_box(m);
        }
        parse_us.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(plan.parses));

        // 2. Calls, one in flight.
        let elapsed = bench.calls(plan.calls, 1);
        seq_us.push(elapsed.as_secs_f64() * 1e6 / plan.calls as f64);

        // 2b. The same, timing the gateway's part separately (two clock reads per input).
        bench.timed = true;
        bench.in_gateway = Duration::ZERO;
        let elapsed = bench.calls(plan.calls, 1);
        bench.timed = false;
        timed_us.push(elapsed.as_secs_f64() * 1e6 / plan.calls as f64);
        share.push(bench.in_gateway.as_secs_f64() / elapsed.as_secs_f64());

        // 2c. Many calls in flight.
        let elapsed = bench.calls(plan.calls, plan.in_flight);
        many_us.push(elapsed.as_secs_f64() * 1e6 / plan.calls as f64);
    }

    let (p, p_min, p_max) = stats(parse_us);
    let (s, s_min, s_max) = stats(seq_us);
    let (t, _, _) = stats(timed_us);
    let (g, g_min, g_max) = stats(share);
    let (m, m_min, m_max) = stats(many_us);
    let parse_rate = 1e6 / p;
    let cps = 1e6 / s;
    let cps_many = 1e6 / m;

    println!(
        "edge-sip B2BUA bench: sans-IO core in-process, 1 thread, {} rounds{}; median [min..max]",
        plan.rounds,
        if quick {
            " (QUICK smoke run: figures meaningless)"
        } else {
            ""
        }
    );
    println!(
        "parse-only   JsSIP INVITE+SDP, {} B: {p:.2} µs/msg [{p_min:.2}..{p_max:.2}] = {} msg/s per core",
        invite.len(),
        thousands(parse_rate)
    );
    println!(
        "calls WS→UDP, 1 in flight:     {s:.1} µs/call [{s_min:.1}..{s_max:.1}] = {} CPS per core",
        thousands(cps)
    );
    println!(
        "calls WS→UDP, {} in flight: {m:.1} µs/call [{m_min:.1}..{m_max:.1}] = {} CPS per core",
        plan.in_flight,
        thousands(cps_many)
    );
    println!(
        "  split (1 in flight, timed rounds): gateway {:.0}% [{:.0}..{:.0}%] = {:.1} µs/call, simulated peers {:.1} µs/call",
        g * 100.0,
        g_min * 100.0,
        g_max * 100.0,
        t * g,
        t * (1.0 - g)
    );
    println!(
        "  cost of a call = {:.1} parse-only INVITEs (calls/s ÷ parse rate = {:.4}); the gateway's part alone = {:.1}; \
         {PARSED_PER_CALL} messages parsed per call (5 gateway, 6 peers)",
        parse_rate / cps,
        cps / parse_rate,
        t * g / p
    );
    let stats_end = bench.ep.stats();
    println!(
        "checks: {} calls ({} warm-up in {:.1} s) all ended \"BYE from A\", active_calls()=0, timeouts={}, \
         malformed={}; simulated {:.0} s; live transactions at end {}; peak RSS {}",
        bench.completed,
        plan.warmup_calls,
        warm.as_secs_f64(),
        stats_end.timeouts,
        stats_end.malformed_dropped + stats_end.malformed_answered,
        (bench.now - origin).as_secs_f64(),
        bench.ep.transactions(),
        peak_rss_mib().map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"))
    );
    assert_eq!(bench.ep.active_calls(), 0, "active_calls() must be 0 at the end");
    assert_eq!(bench.completed, bench.next_call, "every call must complete");
    assert_eq!(stats_end.timeouts, 0, "no transaction may time out");
    println!(
        "goal (issue): ≥ {} CPS per core → {} CPS (1 in flight), {} CPS ({} in flight): {:.1}× / {:.1}× the goal — {}",
        thousands(GOAL_CPS),
        thousands(cps),
        thousands(cps_many),
        plan.in_flight,
        cps / GOAL_CPS,
        cps_many / GOAL_CPS,
        if quick {
            "no verdict from a quick run"
        } else if cps.min(cps_many) >= GOAL_CPS {
            "MET"
        } else {
            "NOT MET"
        }
    );
}
