//! The engine's tests: configurations written as the file would be, fake time (a base instant plus
//! durations), requests parsed from text.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_config::Config;
use edge_sip::b2bua::CallRef;
use edge_sip::message::Message;
use edge_sip::router::{Decision, Failure, Router, Target, Toward};
use edge_sip::transaction::Route;
use edge_sip::{HeaderName, StartLine, Transport};

use crate::table::{Decided, Facts, LocalTime, Origin, Table, Turns};
use crate::{Engine, splitmix};

const HEAD: &str =
    "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 5060\n";

/// Monday 2024-01-01 12:00 UTC.
const MONDAY_NOON: u64 = 1_704_067_200 + 12 * 3600;

fn config(text: &str) -> Config {
    Config::parse(&format!("{HEAD}{text}"), "test").unwrap()
}

/// `[[trunks]]` entries named as given, at 192.0.2.1, .2, … port 5060.
fn trunks(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("[[trunks]]\nname = \"{n}\"\naddress = \"192.0.2.{}\"\n", i + 1))
        .collect()
}

fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

fn udp(remote: &str) -> Route {
    Route {
        transport: Transport::Udp,
        local: local(),
        remote: remote.parse().unwrap(),
    }
}

fn browser() -> Route {
    Route {
        transport: Transport::Wss,
        local: "127.0.0.1:443".parse().unwrap(),
        remote: "203.0.113.50:40000".parse().unwrap(),
    }
}

fn browser_at(ip: &str) -> Route {
    Route {
        remote: SocketAddr::new(ip.parse().unwrap(), 40000),
        ..browser()
    }
}

/// Every configured trunk resolved to its IP literal.
fn resolved(c: &Config) -> Vec<Option<Route>> {
    c.trunks
        .iter()
        .map(|t| match &t.address {
            edge_config::routing::Host::Ip(ip) => Some(Route {
                transport: Transport::Udp,
                local: local(),
                remote: SocketAddr::new(*ip, t.port_or_default()),
            }),
            edge_config::routing::Host::Name(_) => None,
        })
        .collect()
}

struct T {
    e: Engine,
    t0: Instant,
    next_call: u64,
}

impl T {
    fn new(text: &str) -> Self {
        Self::at(text, MONDAY_NOON)
    }

    fn at(text: &str, unix: u64) -> Self {
        let c = config(text);
        let t0 = crate::test_epoch();
        Self {
            e: Engine::new(&c, resolved(&c), 7, (t0, unix)),
            t0,
            next_call: 0,
        }
    }

    fn after(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// A call at `t0 + ms`: its reference and the decision.
    fn call_at(&mut self, ms: u64, req: &Message, source: Route) -> (CallRef, Decision) {
        self.next_call += 1;
        let call = CallRef::from_id(self.next_call);
        let d = self.e.route(self.after(ms), call, req, source, false);
        (call, d)
    }

    fn call(&mut self, req: &Message, source: Route) -> (CallRef, Decision) {
        self.call_at(0, req, source)
    }
}

/// An INVITE for `user` from `from_user`, with extra header lines and a body.
fn invite_with(user: &str, from_user: &str, extra: &str, body: &str) -> Message {
    let text = format!(
        "INVITE sip:{user}@gw.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK1\r\n\
         From: <sip:{from_user}@example.com>;tag=1\r\n\
         To: <sip:{user}@gw.example.com>\r\n\
         Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Message::parse(text.as_bytes()).unwrap()
}

fn invite(user: &str) -> Message {
    invite_with(user, "alice", "", "")
}

fn trunk(d: &Decision) -> Option<usize> {
    match d {
        Decision::Forward(Target { trunk, .. }) => Some(*trunk),
        _ => None,
    }
}

fn status(d: &Decision) -> Option<(u16, Option<u32>)> {
    match d {
        Decision::Reject {
            status, retry_after, ..
        } => Some((*status, *retry_after)),
        _ => None,
    }
}

// ---------------------------------------------------------------- the pure decision

/// Decides on the table alone (every trunk eligible).
fn decide(table: &Table, turns: &mut Turns, origin: Origin, req: &Message, random: u64) -> Decided {
    let user = match &req.start {
        StartLine::Request { uri, .. } => crate::user_host(uri).0,
        StartLine::Response { .. } => "",
    };
    let facts = Facts {
        origin,
        ip: "203.0.113.50".parse().unwrap(),
        user,
        from_user: crate::header_user_host(req, &HeaderName::From).0,
        to_user: crate::header_user_host(req, &HeaderName::To).0,
        headers: &req.headers,
    };
    let noon = LocalTime {
        weekday: 0,
        minute: 720,
    };
    table.decide(&facts, noon, random, turns, &|_| true)
}

fn order(d: &Decided) -> Vec<usize> {
    match d {
        Decided::Trunks { order, .. } => order.clone(),
        other => panic!("not a trunk list: {other:?}"),
    }
}

fn table(text: &str) -> (Table, Turns) {
    let t = Table::new(&config(text));
    let turns = Turns::new(&t);
    (t, turns)
}

#[test]
fn without_routes_browsers_go_to_every_trunk_in_order_and_nothing_else_routes() {
    let (t, mut turns) = table(&trunks(&["a", "b", "c"]));
    let req = invite("100");
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &req, 0)),
        [0, 1, 2]
    );
    assert_eq!(
        decide(&t, &mut turns, Origin::Trunk(1), &req, 0),
        Decided::NoRoute
    );
    assert_eq!(decide(&t, &mut turns, Origin::Unknown, &req, 0), Decided::NoRoute);
    assert_eq!(t.route_name(0), Some("default"));
}

#[test]
fn priority_is_the_listed_order_without_the_source_trunk() {
    let text = format!(
        "{}[[routes]]\nname = \"r\"\nsource = [\"browser\", \"trunk\"]\ntrunks = [\"c\", \"a\", \"b\"]\n",
        trunks(&["a", "b", "c"])
    );
    let (t, mut turns) = table(&text);
    let req = invite("100");
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &req, 0)),
        [2, 0, 1]
    );
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Trunk(0), &req, 0)),
        [2, 1],
        "never back to a"
    );
}

#[test]
fn round_robin_rotates_per_call_and_skips_the_source() {
    let text = format!(
        "{}[[routes]]\nname = \"rr\"\nsource = [\"browser\", \"trunk\"]\ntrunks = [\"a\", \"b\", \"c\"]\nstrategy = \"round-robin\"\n",
        trunks(&["a", "b", "c"])
    );
    let (t, mut turns) = table(&text);
    let req = invite("100");
    let orders: Vec<Vec<usize>> = (0..4)
        .map(|_| order(&decide(&t, &mut turns, Origin::Browser, &req, 0)))
        .collect();
    assert_eq!(
        orders,
        [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
    );
    // The fifth call comes from b: the rotation still advances, b is left out.
    assert_eq!(order(&decide(&t, &mut turns, Origin::Trunk(1), &req, 0)), [2, 0]);
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &req, 0)),
        [2, 0, 1]
    );
}

fn weighted_table(weights: &str) -> (Table, Turns) {
    table(&format!(
        "{}[[routes]]\nname = \"w\"\ntrunks = [\"a\", \"b\", \"c\", \"d\"]\nstrategy = \"weighted\"\nweights = {weights}\n",
        trunks(&["a", "b", "c", "d"])
    ))
}

#[test]
fn weighted_split_is_within_two_percent_of_the_weights() {
    let (t, mut turns) = weighted_table("[60, 25, 15, 0]");
    let req = invite("100");
    let mut rng = 42;
    let mut firsts = [0u32; 4];
    for _ in 0..10_000 {
        let o = order(&decide(&t, &mut turns, Origin::Browser, &req, splitmix(&mut rng)));
        assert_eq!(o.len(), 4, "every trunk stays a fallback: {o:?}");
        firsts[o[0]] += 1;
    }
    for (got, want) in firsts.iter().zip([6000u32, 2500, 1500, 0]) {
        assert!(got.abs_diff(want) <= 200, "{firsts:?}");
    }
    assert_eq!(firsts[3], 0, "a weight of 0 is never first");
}

#[test]
fn weighted_fallbacks_follow_by_weight_with_ties_in_listed_order() {
    let (t, mut turns) = weighted_table("[10, 30, 10, 0]");
    let req = invite("100");
    // random 0 draws the first eligible trunk with weight (a); the rest by weight: b(30), c(10), d(0).
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &req, 0)),
        [0, 1, 2, 3]
    );
    // The largest number draws the last weighted trunk (c); a and c tie at 10: a first (listed order).
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &req, u64::MAX)),
        [2, 1, 0, 3]
    );
    // Only eligible trunks are drawn: with b out, every draw goes to a or c, b still follows.
    let facts_req = invite("100");
    let facts = Facts {
        origin: Origin::Browser,
        ip: "203.0.113.50".parse().unwrap(),
        user: "100",
        from_user: "alice",
        to_user: "100",
        headers: &facts_req.headers,
    };
    let noon = LocalTime {
        weekday: 0,
        minute: 720,
    };
    let mut rng = 1;
    for _ in 0..100 {
        let d = t.decide(&facts, noon, splitmix(&mut rng), &mut turns, &|i| i != 1);
        let o = order(&d);
        assert!(o[0] == 0 || o[0] == 2, "{o:?}");
        assert_eq!(o[1], 1, "the heaviest follows even when not eligible now: {o:?}");
    }
}

#[test]
fn least_cost_longest_prefix_cheapest_first_ties_listed_unpriced_last() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\ncosts = [{ prefix = \"44\", cost = 12 }, { prefix = \"4420\", cost = 9 }]\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\ncosts = [{ prefix = \"44\", cost = 10 }]\n\
        [[trunks]]\nname = \"c\"\naddress = \"192.0.2.3\"\n\
        [[trunks]]\nname = \"d\"\naddress = \"192.0.2.4\"\ncosts = [{ prefix = \"4\", cost = 10 }]\n\
        [[trunks]]\nname = \"e\"\naddress = \"192.0.2.5\"\ncosts = [{ prefix = \"1\", cost = 1 }]\n\
        [[routes]]\nname = \"lc\"\ntrunks = [\"c\", \"a\", \"b\", \"d\", \"e\"]\nstrategy = \"least-cost\"\n";
    let (t, mut turns) = table(text);
    // 4420…: a's longest prefix 4420 costs 9 (not 44 at 12): a first; b and d tie at 10 in listed
    // order; c and e have no matching prefix: last, in listed order.
    assert_eq!(
        order(&decide(
            &t,
            &mut turns,
            Origin::Browser,
            &invite("442071234567"),
            0
        )),
        [0, 1, 3, 2, 4]
    );
    // 4430…: a is back to 44 at 12.
    assert_eq!(
        order(&decide(&t, &mut turns, Origin::Browser, &invite("443012345"), 0)),
        [1, 3, 0, 2, 4]
    );
    assert_eq!(t.price(0, "4420"), Some(9));
    assert_eq!(t.price(0, "442"), Some(12));
    assert_eq!(t.price(2, "4420"), None);
}

/// The route named in `Decided`, or "-" for none.
fn matched(t: &Table, d: &Decided) -> String {
    match d {
        Decided::NoRoute => "-".into(),
        Decided::Reject { route, .. } | Decided::Trunks { route, .. } => {
            t.route_name(*route).unwrap().to_owned()
        }
    }
}

#[test]
fn every_match_condition_and_first_match_wins() {
    let text = format!(
        "{}\
        [[routes]]\nname = \"blocked\"\nuser_prefix = [\"1900\"]\nreject = 403\n\
        [[routes]]\nname = \"from-b\"\nsource = [\"trunk:b\"]\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"from-trunks\"\nsource = [\"trunk\"]\ntrunks = [\"a\", \"b\"]\n\
        [[routes]]\nname = \"office\"\nsource_networks = [\"10.0.0.0/8\"]\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"regex\"\nuser_regex = \"^7[0-9]{{2}}$\"\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"from\"\nfrom_regex = \"^boss$\"\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"to\"\nto_regex = \"^sales$\"\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"tenant\"\nheaders = [{{ name = \"x-tenant\", regex = \"^acme$\" }}]\ntrunks = [\"a\"]\n\
        [[routes]]\nname = \"intl\"\nuser_prefix = [\"00\", \"+\"]\ntrunks = [\"b\"]\n\
        [[routes]]\nname = \"rest\"\ntrunks = [\"a\"]\n",
        trunks(&["a", "b"])
    );
    let (t, mut turns) = table(&text);
    let mut check = |origin, req: &Message, ip: &str, want: &str| {
        let user = match &req.start {
            StartLine::Request { uri, .. } => crate::user_host(uri).0,
            StartLine::Response { .. } => "",
        };
        let facts = Facts {
            origin,
            ip: ip.parse().unwrap(),
            user,
            from_user: crate::header_user_host(req, &HeaderName::From).0,
            to_user: crate::header_user_host(req, &HeaderName::To).0,
            headers: &req.headers,
        };
        let d = t.decide(
            &facts,
            LocalTime {
                weekday: 0,
                minute: 0,
            },
            0,
            &mut turns,
            &|_| true,
        );
        assert_eq!(matched(&t, &d), want, "{req:?} from {origin:?} at {ip}");
    };
    let out = "203.0.113.50";
    check(Origin::Browser, &invite("19001234"), out, "blocked");
    // An empty `source` means browsers: the trunk's call to 1900… is not blocked by the first route.
    check(Origin::Trunk(0), &invite("19001234"), out, "from-trunks");
    check(Origin::Trunk(1), &invite("555"), out, "from-b");
    check(Origin::Trunk(0), &invite("555"), out, "from-trunks");
    check(Origin::Unknown, &invite("555"), out, "-");
    check(Origin::Browser, &invite("555"), "10.1.2.3", "office");
    check(Origin::Browser, &invite("701"), out, "regex");
    check(Origin::Browser, &invite("7012"), out, "rest");
    check(Origin::Browser, &invite_with("555", "boss", "", ""), out, "from");
    check(Origin::Browser, &invite("sales"), out, "to");
    check(
        Origin::Browser,
        &invite_with("555", "x", "X-Tenant: acme\r\n", ""),
        out,
        "tenant",
    );
    check(
        Origin::Browser,
        &invite_with("555", "x", "X-Tenant: other\r\n", ""),
        out,
        "rest",
    );
    check(Origin::Browser, &invite("0044123"), out, "intl");
    check(Origin::Browser, &invite("+44123"), out, "intl");
    check(Origin::Browser, &invite("555"), out, "rest");
}

#[test]
fn local_time_from_unix_seconds() {
    assert_eq!(
        LocalTime::at(0, 0),
        LocalTime {
            weekday: 3,
            minute: 0
        },
        "1970-01-01 was a Thursday"
    );
    let monday_noon = i64::try_from(MONDAY_NOON).unwrap();
    assert_eq!(
        LocalTime::at(monday_noon, 0),
        LocalTime {
            weekday: 0,
            minute: 720
        }
    );
    // 12:00 UTC at -13:00 is Sunday 23:00.
    assert_eq!(
        LocalTime::at(monday_noon, -13 * 60),
        LocalTime {
            weekday: 6,
            minute: 23 * 60
        }
    );
    assert_eq!(
        LocalTime::at(-60, 0),
        LocalTime {
            weekday: 2,
            minute: 1439
        }
    );
}

#[test]
fn day_and_time_windows_use_local_time_and_wrap_past_midnight() {
    // Night service, Monday to Friday local time (UTC+02:00), 22:00-06:00.
    let text = format!(
        "{}[routing]\nutc_offset = \"+02:00\"\n\
        [[routes]]\nname = \"night\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\ntime = \"22:00-06:00\"\ntrunks = [\"b\"]\n\
        [[routes]]\nname = \"day\"\ntrunks = [\"a\"]\n",
        trunks(&["a", "b"])
    );
    // Monday 19:30 UTC = 21:30 local: day. The engine's wall clock moves with `now`.
    let mut t = T::at(&text, MONDAY_NOON + 7 * 3600 + 1800);
    let req = invite("100");
    let hour = 3_600_000;
    assert_eq!(trunk(&t.call_at(0, &req, browser()).1), Some(0), "21:30 local");
    assert_eq!(trunk(&t.call_at(hour, &req, browser()).1), Some(1), "22:30 local");
    assert_eq!(
        trunk(&t.call_at(3 * hour, &req, browser()).1),
        Some(1),
        "00:30 Tuesday local"
    );
    assert_eq!(
        trunk(&t.call_at(9 * hour, &req, browser()).1),
        Some(0),
        "06:30 local: the window ends"
    );
    // Friday 23:00 local is Friday (listed); Saturday 01:00 local is not.
    let friday = 4 * 24 * hour;
    assert_eq!(
        trunk(&t.call_at(friday + 1_500 * hour / 1000, &req, browser()).1),
        Some(1),
        "Fri 23:00 local"
    );
    assert_eq!(
        trunk(&t.call_at(friday + 3_500 * hour / 1000, &req, browser()).1),
        Some(0),
        "Sat 01:00 local"
    );
}

// ---------------------------------------------------------------- the engine's answers

#[test]
fn unknown_peers_and_trunks_without_a_route_get_404_registered_users_are_local() {
    let mut t = T::new(&trunks(&["a"]));
    let (_, d) = t.call(&invite("100"), udp("198.51.100.9:5060"));
    assert_eq!(status(&d), Some((404, None)));
    let (_, d) = t.call(&invite("100"), udp("192.0.2.1:5060"));
    assert_eq!(
        status(&d),
        Some((404, None)),
        "from the trunk, no route back to it"
    );
    let d = t.e.route(
        t.t0,
        CallRef::from_id(99),
        &invite("bob"),
        udp("198.51.100.9:5060"),
        true,
    );
    assert_eq!(d, Decision::Local);
    let (_, d) = t.call(&invite("100"), browser());
    assert_eq!(
        d,
        Decision::Forward(Target {
            trunk: 0,
            route: udp("192.0.2.1:5060"),
            host: "192.0.2.1".into()
        })
    );
    let s = t.e.stats();
    assert_eq!(
        (s.no_route, s.local, s.calls, s.trunks[0].calls_total),
        (2, 1, 2, 1)
    );
}

#[test]
fn a_peer_route_serves_sip_strangers_only_from_its_networks() {
    let mut t = T::new(&format!(
        "{}[[routes]]\nname = \"phones\"\nsource = [\"peer\"]\nsource_networks = [\"10.0.0.0/8\"]\ntrunks = [\"a\"]\n",
        trunks(&["a"])
    ));
    let (_, d) = t.call(&invite("100"), udp("10.1.2.3:5060"));
    assert_eq!(trunk(&d), Some(0), "a phone on the office network is routed");
    let (_, d) = t.call(&invite("100"), udp("198.51.100.9:5060"));
    assert_eq!(status(&d), Some((404, None)), "a stranger elsewhere is not");
    let (_, d) = t.call(&invite("100"), browser());
    assert_eq!(status(&d), Some((404, None)), "the route names peers only");
    let (_, d) = t.call(&invite("100"), udp("192.0.2.1:5060"));
    assert_eq!(status(&d), Some((404, None)), "the trunk is no peer");
}

#[test]
fn a_rejecting_route_answers_its_status() {
    let mut t = T::new(&format!(
        "{}[[routes]]\nname = \"premium\"\nuser_prefix = [\"1900\"]\nreject = 603\n[[routes]]\nname = \"r\"\ntrunks = [\"a\"]\n",
        trunks(&["a"])
    ));
    let (_, d) = t.call(&invite("19005551234"), browser());
    assert_eq!(status(&d), Some((603, None)));
    assert_eq!(t.e.stats().rejected_route, 1);
    assert_eq!(t.e.stats().calls, 0);
}

fn filtered(filter: &str, req: &Message, source: Route) -> bool {
    let mut t = T::new(&format!("{}[filter]\n{filter}\n", trunks(&["a"])));
    let (_, d) = t.call(req, source);
    let refused = status(&d) == Some((403, None));
    assert_eq!(t.e.stats().filtered, u64::from(refused));
    refused
}

#[test]
fn filters_deny_lists_allow_lists_and_deny_wins() {
    let b = browser;
    assert!(filtered(
        "deny_callers = [\"+1900\"]",
        &invite_with("100", "+19005551234", "", ""),
        b()
    ));
    assert!(!filtered(
        "deny_callers = [\"+1900\"]",
        &invite_with("100", "+44123", "", ""),
        b()
    ));
    assert!(filtered("deny_callees = [\"00\"]", &invite("0044123"), b()));
    assert!(!filtered("deny_callees = [\"00\"]", &invite("044123"), b()));
    assert!(filtered(
        "allow_callers = [\"1\"]",
        &invite_with("100", "200", "", ""),
        b()
    ));
    assert!(!filtered(
        "allow_callers = [\"1\"]",
        &invite_with("100", "150", "", ""),
        b()
    ));
    assert!(filtered("allow_callees = [\"4\"]", &invite("555"), b()));
    assert!(!filtered("allow_callees = [\"4\"]", &invite("455"), b()));
    assert!(filtered(
        "deny_networks = [\"203.0.113.0/24\"]",
        &invite("1"),
        b()
    ));
    assert!(!filtered(
        "deny_networks = [\"198.51.100.0/24\"]",
        &invite("1"),
        b()
    ));
    assert!(filtered("allow_networks = [\"10.0.0.0/8\"]", &invite("1"), b()));
    assert!(!filtered(
        "allow_networks = [\"10.0.0.0/8\"]",
        &invite("1"),
        browser_at("10.9.9.9")
    ));
    let scanner = invite_with("100", "1", "User-Agent: friendly-scanner 1.0\r\n", "");
    assert!(filtered(
        "deny_user_agents = [\"(?i-u)friendly-scanner|sipvicious\"]",
        &scanner,
        b()
    ));
    assert!(!filtered("deny_user_agents = [\"sipvicious\"]", &scanner, b()));
    // Deny wins over allow.
    let both = "allow_callers = [\"1\"]\ndeny_callers = [\"19\"]";
    assert!(filtered(both, &invite_with("100", "1999", "", ""), b()));
    assert!(!filtered(both, &invite_with("100", "1234", "", ""), b()));
}

#[test]
fn anonymous_callers_in_every_form() {
    let on = "reject_anonymous = true";
    let anon_user = Message::parse(
        b"INVITE sip:100@gw SIP/2.0\r\nFrom: \"Anonymous\" <sip:Anonymous@example.com>;tag=1\r\nTo: <sip:100@gw>\r\n\r\n",
    )
    .unwrap();
    let anon_host = Message::parse(
        b"INVITE sip:100@gw SIP/2.0\r\nFrom: <sip:caller@ANONYMOUS.invalid>;tag=1\r\nTo: <sip:100@gw>\r\n\r\n",
    )
    .unwrap();
    assert!(filtered(on, &anon_user, browser()));
    assert!(filtered(on, &anon_host, browser()));
    assert!(filtered(
        on,
        &invite_with("100", "alice", "Privacy: id\r\n", ""),
        browser()
    ));
    assert!(filtered(
        on,
        &invite_with("100", "alice", "Privacy: header;id\r\n", ""),
        browser()
    ));
    assert!(!filtered(
        on,
        &invite_with("100", "alice", "Privacy: none\r\n", ""),
        browser()
    ));
    assert!(!filtered(on, &invite("100"), browser()));
    assert!(!filtered("reject_anonymous = false", &anon_user, browser()));
}

#[test]
fn per_source_concurrent_calls() {
    let mut t = T::new(&format!(
        "{}[admission]\nper_source_calls = 2\nretry_after_s = 9\n",
        trunks(&["a"])
    ));
    let req = invite("100");
    let (c1, d1) = t.call(&req, browser());
    let (_, d2) = t.call(&req, browser());
    assert!(trunk(&d1).is_some() && trunk(&d2).is_some());
    let (_, d3) = t.call(&req, browser());
    assert_eq!(status(&d3), Some((503, Some(9))));
    // Another source is not affected.
    assert!(trunk(&t.call(&req, browser_at("203.0.113.51")).1).is_some());
    t.e.ended(c1);
    t.e.ended(c1); // idempotent
    assert!(trunk(&t.call(&req, browser()).1).is_some());
    assert_eq!(t.e.stats().rejected_source, 1);
}

#[test]
fn per_source_calls_per_second_refill_over_time_and_486_when_configured() {
    let mut t = T::new(&format!(
        "{}[admission]\nper_source_cps = 2\nreject_status = 486\n",
        trunks(&["a"])
    ));
    let req = invite("100");
    assert!(trunk(&t.call_at(0, &req, browser()).1).is_some());
    assert!(trunk(&t.call_at(0, &req, browser()).1).is_some());
    assert_eq!(status(&t.call_at(0, &req, browser()).1), Some((486, None)));
    assert_eq!(status(&t.call_at(499, &req, browser()).1), Some((486, None)));
    assert!(
        trunk(&t.call_at(500, &req, browser()).1).is_some(),
        "one token per 500 ms"
    );
    assert_eq!(t.e.stats().rejected_source, 2);
}

#[test]
fn trunk_max_calls_overflows_to_the_next_trunk_then_refuses() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmax_calls = 1\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\nmax_calls = 1\n";
    let mut t = T::new(text);
    let req = invite("100");
    let (c1, d1) = t.call(&req, browser());
    let (_, d2) = t.call(&req, browser());
    assert_eq!((trunk(&d1), trunk(&d2)), (Some(0), Some(1)));
    let (_, d3) = t.call(&req, browser());
    assert_eq!(status(&d3), Some((503, Some(5))));
    let s = t.e.stats();
    assert_eq!(
        (s.trunks[0].rejected_cac, s.trunks[1].rejected_cac, s.rejected_cac),
        (2, 1, 1)
    );
    assert_eq!((s.trunks[0].calls, s.trunks[1].calls), (1, 1));
    t.e.ended(c1);
    assert_eq!(trunk(&t.call(&req, browser()).1), Some(0));
}

#[test]
fn trunk_calls_per_second_refill_over_fake_time() {
    let mut t = T::new("[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmax_cps = 1\n");
    let req = invite("100");
    assert_eq!(trunk(&t.call_at(0, &req, browser()).1), Some(0));
    assert_eq!(status(&t.call_at(999, &req, browser()).1), Some((503, Some(5))));
    assert_eq!(trunk(&t.call_at(1000, &req, browser()).1), Some(0));
}

#[test]
fn trunk_bandwidth_from_the_offered_codecs() {
    let mut t = T::new("[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmax_kbps = 120\n");
    let sdp =
        |m: &str| format!("v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n{m}");
    let opus = invite_with(
        "1",
        "a",
        "",
        &sdp("m=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
    );
    let pcmu = invite_with("1", "a", "", &sdp("m=audio 9 RTP/AVP 0\r\n"));
    let (c1, d1) = t.call(&opus, browser());
    assert_eq!(trunk(&d1), Some(0));
    assert_eq!(
        status(&t.call(&pcmu, browser()).1),
        Some((503, Some(5))),
        "56 + 80 > 120"
    );
    let (_, d2) = t.call(&opus, browser());
    assert_eq!(trunk(&d2), Some(0), "56 + 56 <= 120");
    assert_eq!(t.e.stats().trunks[0].kbps, 112);
    t.e.ended(c1);
    assert_eq!(t.e.stats().trunks[0].kbps, 56);
    // No body counts as 80.
    assert_eq!(status(&t.call(&invite("1"), browser()).1), Some((503, Some(5))));
}

#[test]
fn every_candidate_down_or_unresolved_is_503_no_trunk_up() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"pbx.example.com\"\nport = 5070\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\nmonitor = { interval_s = 10, down_after = 1 }\n";
    let mut t = T::new(text);
    // b goes down.
    assert_eq!(t.e.poll_probe(t.t0).map(|p| p.trunk), Some(1));
    t.e.probe_answered(t.t0, 1, None);
    let (_, d) = t.call(&invite("1"), browser());
    assert_eq!(
        d,
        Decision::Reject {
            status: 503,
            reason: "Service Unavailable (no trunk up)".into(),
            retry_after: Some(5)
        }
    );
    assert_eq!(t.e.stats().no_trunk_up, 1);
    // a is resolved now: the call goes there, with the configured host text and port.
    t.e.set_route(0, Some(udp("198.51.100.20:5070")));
    let (_, d) = t.call(&invite("1"), browser());
    assert_eq!(
        d,
        Decision::Forward(Target {
            trunk: 0,
            route: udp("198.51.100.20:5070"),
            host: "pbx.example.com:5070".into()
        })
    );
}

// ---------------------------------------------------------------- failover

fn three_trunks(routing: &str) -> T {
    T::new(&format!("{}[routing]\n{routing}\n", trunks(&["a", "b", "c"])))
}

#[test]
fn failover_on_codes_moves_the_counts() {
    let mut t = three_trunks("failover_codes = [503]");
    let (c, d) = t.call(&invite("1"), browser());
    assert_eq!(trunk(&d), Some(0));
    let next = t.e.next(t.after(100), c, Failure::Status(503));
    assert_eq!(next.map(|n| n.trunk), Some(1));
    let s = t.e.stats();
    assert_eq!((s.trunks[0].calls, s.trunks[1].calls), (0, 1));
    assert_eq!((s.trunks[0].failovers, s.trunks[1].calls_total), (1, 1));
    // 486 is not a failover code: final.
    assert_eq!(t.e.next(t.after(200), c, Failure::Status(486)), None);
    assert_eq!(t.e.stats().trunks[1].calls, 0);
    t.e.ended(c);
    assert_eq!(t.e.stats().calls, 0);
}

#[test]
fn failover_on_timeout_unless_off() {
    let mut t = three_trunks("");
    let (c, _) = t.call(&invite("1"), browser());
    assert_eq!(
        t.e.next(t.after(100), c, Failure::Timeout).map(|n| n.trunk),
        Some(1)
    );
    assert_eq!(
        t.e.next(t.after(200), c, Failure::Unreachable).map(|n| n.trunk),
        Some(2)
    );
    assert_eq!(t.e.next(t.after(300), c, Failure::Timeout), None, "nothing left");

    let mut t = three_trunks("failover_on_timeout = false");
    let (c, _) = t.call(&invite("1"), browser());
    assert_eq!(t.e.next(t.after(100), c, Failure::Timeout), None);
    assert_eq!(t.e.stats().trunks[0].calls, 0, "the failed attempt is released");
}

#[test]
fn failover_stops_when_the_budget_is_spent() {
    let mut t = three_trunks("failover_budget_s = 10");
    let (c, _) = t.call(&invite("1"), browser());
    assert_eq!(
        t.e.next(t.after(9_999), c, Failure::Status(503)).map(|n| n.trunk),
        Some(1)
    );
    assert_eq!(t.e.next(t.after(10_000), c, Failure::Status(503)), None);
}

#[test]
fn failover_checks_the_next_trunks_again_and_never_goes_back_to_the_source() {
    let text = format!(
        "{}[[routes]]\nname = \"r\"\nsource = [\"trunk\", \"browser\"]\ntrunks = [\"a\", \"b\", \"c\", \"d\"]\n",
        "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\n\
         [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\nmonitor = { interval_s = 60, down_after = 1 }\n\
         [[trunks]]\nname = \"c\"\naddress = \"192.0.2.3\"\n\
         [[trunks]]\nname = \"d\"\naddress = \"192.0.2.4\"\n"
    );
    let mut t = T::new(&text);
    // From trunk c: candidates a, b, d.
    let (call, d) = t.call(&invite("1"), udp("192.0.2.3:5060"));
    assert_eq!(trunk(&d), Some(0));
    // b goes down while a is tried.
    assert_eq!(t.e.poll_probe(t.t0).map(|p| p.trunk), Some(1));
    t.e.probe_answered(t.t0, 1, Some(503));
    assert_eq!(
        t.e.next(t.after(10), call, Failure::Status(500)).map(|n| n.trunk),
        Some(3)
    );
}

#[test]
fn attempt_timeout_and_offload_interval() {
    let t = three_trunks("attempt_timeout_s = 3");
    assert_eq!(t.e.attempt_timeout(), Some(Duration::from_secs(3)));
    assert_eq!(t.e.offload_interval(), None);
    let t = T::new(&format!(
        "{}[routing]\nattempt_timeout_s = 0\n[registrar]\noffload_interval_s = 60\n",
        trunks(&["a"])
    ));
    assert_eq!(t.e.attempt_timeout(), None);
    assert_eq!(t.e.offload_interval(), Some(Duration::from_secs(60)));
}

// ---------------------------------------------------------------- monitoring

#[test]
fn monitoring_down_after_n_up_after_m_an_unanswered_probe_fails_at_the_next_interval() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmonitor = { interval_s = 10, down_after = 2, up_after = 2 }\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\n";
    let mut t = T::new(text);
    let s = |ms| Duration::from_millis(ms);
    assert_eq!(t.e.poll_timeout(), Some(t.t0), "first probe at start");
    assert_eq!(t.e.poll_probe(t.t0).map(|p| p.trunk), Some(0));
    assert_eq!(
        t.e.poll_probe(t.t0),
        None,
        "b is not monitored; a's next probe is due in 10 s"
    );
    assert_eq!(t.e.poll_timeout(), Some(t.after(10_000)));
    assert_eq!(t.e.poll_probe(t.t0 + s(9_999)), None, "one probe per interval");
    // Unanswered for its whole interval: one failure (still up), and the next probe goes out.
    assert!(t.e.poll_probe(t.after(10_000)).is_some());
    assert_eq!(t.e.poll_change(), None);
    // The first probe's transaction times out later: already counted, ignored.
    t.e.probe_answered(t.after(32_000), 0, None);
    assert_eq!(t.e.poll_change(), None);
    // The second is refused with 408: two failures in a row, down.
    t.e.probe_answered(t.after(10_001), 0, Some(408));
    assert_eq!(t.e.poll_change(), Some(("a".into(), false)));
    assert_eq!(t.e.poll_change(), None);
    assert!(!t.e.stats().trunks[0].up);
    assert_eq!(t.e.summary(), "trunks up: 1/2, routed calls: 0");
    assert_eq!(
        trunk(&t.call_at(10_002, &invite("1"), browser()).1),
        Some(1),
        "a is skipped"
    );
    // A 404 proves it alive; one is not enough with up_after = 2.
    assert_eq!(t.e.poll_timeout(), Some(t.after(20_000)));
    assert!(t.e.poll_probe(t.after(19_999)).is_none());
    assert!(t.e.poll_probe(t.after(20_000)).is_some());
    t.e.probe_answered(t.after(20_010), 0, Some(404));
    assert_eq!(t.e.poll_change(), None);
    // A stray answer with no probe out counts for nothing.
    t.e.probe_answered(t.after(20_020), 0, Some(200));
    assert_eq!(t.e.poll_change(), None);
    assert!(t.e.poll_probe(t.after(30_000)).is_some());
    t.e.probe_answered(t.after(30_010), 0, Some(405));
    assert_eq!(t.e.poll_change(), Some(("a".into(), true)));
    assert_eq!(trunk(&t.call_at(30_020, &invite("1"), browser()).1), Some(0));
}

#[test]
fn a_late_answer_to_a_probe_counted_as_failed_still_proves_the_trunk_alive() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmonitor = { interval_s = 2, down_after = 2, up_after = 1 }\n";
    let mut t = T::new(text);
    assert!(t.e.poll_probe(t.t0).is_some());
    assert!(
        t.e.poll_probe(t.after(2_000)).is_some(),
        "first counted as failed"
    );
    assert!(t.e.poll_probe(t.after(4_000)).is_some(), "second too: down");
    assert_eq!(t.e.poll_change(), Some(("a".into(), false)));
    // The first probe's answer arrives late: the current probe is still out, so it counts for it.
    t.e.probe_answered(t.after(4_100), 0, Some(200));
    assert_eq!(t.e.poll_change(), Some(("a".into(), true)));
    // The stale ones end with timeouts: ignored.
    t.e.probe_answered(t.after(34_000), 0, None);
    t.e.probe_answered(t.after(36_000), 0, None);
    assert_eq!(t.e.poll_change(), None);
    assert!(t.e.stats().trunks[0].up);
}

#[test]
fn a_failure_between_answers_restarts_the_count() {
    let mut t = T::new(
        "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmonitor = { interval_s = 1, down_after = 2 }\n",
    );
    for (i, answer) in [None, Some(200), None, Some(503), None].into_iter().enumerate() {
        let at = t.after(1000 * u64::try_from(i).unwrap());
        assert!(t.e.poll_probe(at).is_some());
        t.e.probe_answered(at, 0, answer);
    }
    assert_eq!(
        t.e.poll_change(),
        Some(("a".into(), false)),
        "down only at the 503 + none in a row"
    );
    assert_eq!(t.e.poll_change(), None);
}

#[test]
fn unresolved_trunks_are_not_probed() {
    let mut t =
        T::new("[[trunks]]\nname = \"a\"\naddress = \"pbx.example.com\"\nmonitor = { interval_s = 5 }\n");
    assert_eq!(t.e.poll_timeout(), None);
    assert_eq!(t.e.poll_probe(t.t0), None);
    t.e.set_route(0, Some(udp("198.51.100.20:5060")));
    assert_eq!(
        t.e.poll_probe(t.t0).map(|p| p.host),
        Some("pbx.example.com".into())
    );
}

// ---------------------------------------------------------------- the rest of the port

#[test]
fn rewrite_rules_per_direction_in_file_order() {
    let text = format!(
        "{}\
        [[rewrite]]\ntoward = \"trunk:a\"\nuser = \"request\"\npattern = \"^0([0-9]+)$\"\nreplace = \"+44$1\"\n\
        [[rewrite]]\ntoward = \"trunks\"\nheader = \"X-Order\"\nset = \"trunks\"\n\
        [[rewrite]]\ntoward = \"trunk:a\"\nheader = \"X-Order\"\nrewrite_placeholder = 1\n\
        [[rewrite]]\ntoward = \"browsers\"\nheader = \"X-Secret\"\nremove = true\n",
        trunks(&["a", "b"])
    )
    .replace("rewrite_placeholder = 1", "pattern = \"^trunks$\"\nreplace = \"trunks-then-a\"");
    let t = T::new(&text);
    let ruri = |m: &Message| match &m.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    let x = HeaderName::Other("X-Order".into());
    let mut to_a = invite_with("02071234567", "alice", "X-Secret: s\r\n", "");
    t.e.rewrite(Toward::Trunk(0), &mut to_a);
    assert_eq!(ruri(&to_a), "sip:+442071234567@gw.example.com");
    assert_eq!(to_a.header(&x), Some("trunks-then-a"));
    let mut to_b = invite_with("02071234567", "alice", "X-Secret: s\r\n", "");
    t.e.rewrite(Toward::Trunk(1), &mut to_b);
    assert_eq!(ruri(&to_b), "sip:02071234567@gw.example.com");
    assert_eq!(to_b.header(&x), Some("trunks"));
    assert!(to_b.header(&HeaderName::Other("X-Secret".into())).is_some());
    let mut to_browser = invite_with("1", "alice", "X-Secret: s\r\n", "");
    t.e.rewrite(Toward::Browser, &mut to_browser);
    assert!(to_browser.header(&HeaderName::Other("X-Secret".into())).is_none());
    assert!(to_browser.header(&x).is_none());
}

#[test]
fn credentials_registrar_and_hosts() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\n\
        [[trunks]]\nname = \"pbx\"\naddress = \"2001:db8::5\"\nport = 5070\nusername = \"gw\"\npassword = \"s3cret\"\n\
        [registrar]\ntrunk = \"pbx\"\n";
    let t = T::new(text);
    assert_eq!(t.e.credentials(1), Some(("gw", "s3cret")));
    assert_eq!(t.e.credentials(0), None);
    assert_eq!(t.e.credentials(9), None);
    let r = t.e.registrar().unwrap();
    assert_eq!((r.trunk, r.host.as_str()), (1, "[2001:db8::5]:5070"));
    assert_eq!(r.route.remote, "[2001:db8::5]:5070".parse().unwrap());
    // Default registrar: the first trunk.
    let t = T::new(&trunks(&["x", "y"]));
    assert_eq!(t.e.registrar().map(|r| r.trunk), Some(0));
    assert!(!format!("{:?}", t.e).contains("s3cret"));
}

#[test]
fn trunk_of_is_the_exact_address_over_udp_and_the_ip_over_streams() {
    let text = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.1\"\nport = 5070\n\
        [[trunks]]\nname = \"c\"\naddress = \"192.0.2.3\"\n";
    let t = T::new(text);
    let from = |transport, s: &str| Route {
        transport,
        local: "192.0.2.100:5060".parse().unwrap(),
        remote: s.parse().unwrap(),
    };
    let at = |transport, s: &str| t.e.trunk_of(from(transport, s));
    assert_eq!(at(Transport::Udp, "192.0.2.1:5070"), Some(1));
    assert_eq!(at(Transport::Udp, "192.0.2.1:5060"), Some(0));
    assert_eq!(
        at(Transport::Tcp, "192.0.2.1:40312"),
        Some(0),
        "a TCP connection from an ephemeral port: the first trunk at that IP"
    );
    assert_eq!(at(Transport::Tls, "192.0.2.3:40000"), Some(2));
    assert_eq!(
        at(Transport::Udp, "192.0.2.1:40312"),
        None,
        "over UDP another port on a trunk's host is someone else"
    );
    assert_eq!(
        at(Transport::Udp, "[::ffff:192.0.2.3]:5060"),
        Some(2),
        "v4-mapped"
    );
    assert_eq!(at(Transport::Udp, "198.51.100.1:5060"), None);
}

#[test]
fn stats_count_every_outcome() {
    let mut t = T::new(&format!(
        "{}[filter]\ndeny_callers = [\"666\"]\n[[routes]]\nname = \"no\"\nuser_prefix = [\"9\"]\nreject = 403\n[[routes]]\nname = \"r\"\ntrunks = [\"a\"]\n",
        trunks(&["a"])
    ));
    t.call(&invite_with("1", "666", "", ""), browser());
    t.call(&invite("9"), browser());
    t.call(&invite("1"), udp("198.51.100.9:5060"));
    let (c, _) = t.call(&invite("1"), browser());
    let s = t.e.stats();
    assert_eq!((s.filtered, s.rejected_route, s.no_route, s.calls), (1, 1, 1, 1));
    assert_eq!(
        (
            s.trunks[0].name.as_str(),
            s.trunks[0].calls,
            s.trunks[0].calls_total
        ),
        ("a", 1, 1)
    );
    assert!(s.trunks[0].up && s.trunks[0].resolved);
    t.e.ended(c);
    t.e.ended(CallRef::from_id(12345)); // unknown: no-op
    assert_eq!(t.e.stats().trunks[0].calls, 0);
    assert_eq!(t.e.summary(), "trunks up: 1/1, routed calls: 0");
}

// ---------------------------------------------------------------- reload

#[test]
fn a_reload_keeps_live_calls_counted_and_monitoring_state_by_trunk_name() {
    let before = "[[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmax_calls = 2\n\
        monitor = { interval_s = 10, down_after = 1 }\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\n";
    let mut t = T::new(before);
    // a is monitored (and answers); two calls go to a, which is then full.
    assert_eq!(t.e.poll_probe(t.t0).map(|p| p.trunk), Some(0));
    t.e.probe_answered(t.t0, 0, Some(200));
    let (c1, d1) = t.call(&invite("1"), browser());
    let (_c2, d2) = t.call(&invite("2"), browser());
    assert_eq!((trunk(&d1), trunk(&d2)), (Some(0), Some(0)));
    assert_eq!(trunk(&t.call(&invite("3"), browser()).1), Some(1), "a is full: b");
    // The new file lists the trunks the other way round, adds c, raises a's limit to 3 and routes
    // explicitly; the calls in flight stay counted on a under its new index.
    let after = "[[trunks]]\nname = \"c\"\naddress = \"192.0.2.3\"\n\
        [[trunks]]\nname = \"b\"\naddress = \"192.0.2.2\"\n\
        [[trunks]]\nname = \"a\"\naddress = \"192.0.2.1\"\nmax_calls = 3\n\
        monitor = { interval_s = 10, down_after = 1 }\n\
        [[routes]]\nname = \"r\"\ntrunks = [\"a\", \"c\"]\n";
    let c = config(after);
    t.e.reload(&c, resolved(&c));
    let s = t.e.stats();
    let names: Vec<&str> = s.trunks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert_eq!(s.trunks[2].calls, 2, "a's two calls carried over");
    assert_eq!(s.trunks[1].calls, 1, "b's call too");
    assert_eq!(s.calls, 3);
    assert_eq!(
        trunk(&t.call(&invite("4"), browser()).1),
        Some(2),
        "a takes a third call now"
    );
    assert_eq!(
        trunk(&t.call(&invite("5"), browser()).1),
        Some(0),
        "then it is full: c"
    );
    // A call that started before the reload ends: released from a under its new index.
    t.e.ended(c1);
    assert_eq!(t.e.stats().trunks[2].calls, 2);
    assert_eq!(
        t.e.poll_timeout(),
        Some(t.after(10_000)),
        "a's probe schedule continues"
    );
}
