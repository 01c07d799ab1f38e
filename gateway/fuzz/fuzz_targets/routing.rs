//! The routing engine on arbitrary requests: filters, regex and prefix matching, the kbit/s estimate
//! from the SDP, every strategy, failover and release, and the header rules on the way out. Never a
//! panic; admission counts return to zero once every call has ended; a rewritten request still parses.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_config::Config;
use edge_routing::Engine;
use edge_sip::b2bua::CallRef;
use edge_sip::message::{HeaderName, Message, StartLine};
use edge_sip::router::{Decision, Failure, Router, Toward};
use edge_sip::transaction::Route;
use edge_sip::Transport;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
schema = 2
[sip]
[[sip.listen]]
transport = "udp"
address = "192.0.2.1"
port = 5060
[[sip.listen]]
transport = "ws"
address = "192.0.2.1"
port = 5066
[[trunks]]
name = "a"
address = "203.0.113.10"
max_calls = 3
max_cps = 2
max_kbps = 200
costs = [{ prefix = "44", cost = 3 }, { prefix = "4420", cost = 1 }]
[[trunks]]
name = "b"
address = "203.0.113.11"
costs = [{ prefix = "44", cost = 2 }]
[[trunks]]
name = "c"
address = "203.0.113.12"
[[routes]]
name = "blocked"
user_prefix = ["0900"]
reject = 403
[[routes]]
name = "cheap"
user_regex = "^\\+?44"
headers = [{ name = "X-Tenant", regex = "^(acme|globex)$" }]
trunks = ["a", "b", "c"]
strategy = "least-cost"
[[routes]]
name = "night"
time = "22:00-06:00"
from_regex = "^[0-9]+$"
trunks = ["c", "a"]
strategy = "round-robin"
[[routes]]
name = "transit"
source = ["trunk"]
trunks = ["a", "b", "c"]
strategy = "weighted"
weights = [5, 0, 3]
[[routes]]
name = "rest"
trunks = ["b", "a"]
[admission]
per_source_calls = 4
per_source_cps = 3
[filter]
deny_callers = ["+1900"]
allow_callees = []
deny_user_agents = ["(?i-u)scanner"]
reject_anonymous = true
[[rewrite]]
toward = "trunks"
user = "request"
pattern = "^0([0-9]+)$"
replace = "+44$1"
[[rewrite]]
toward = "trunk:a"
header = "X-*"
remove = true
[[rewrite]]
toward = "trunks"
user = "from"
pattern = "(.*)"
replace = "gw-$1"
[[rewrite]]
toward = "trunks"
header = "User-Agent"
pattern = "^(.*)$"
replace = "edge ($1)"
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::parse(CONFIG, "fuzz").expect("the fuzz configuration is valid"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else { return };
    let Ok(request) = Message::parse(payload) else { return };
    let cfg = config();
    // libFuzzer targets may read the clock: this is the origin of fake time, advanced by arithmetic.
    let t0 = Instant::now();
    let routes = ["203.0.113.10:5060", "203.0.113.11:5060", "203.0.113.12:5060"]
        .iter()
        .map(|r| {
            Some(Route {
                transport: Transport::Udp,
                local: "192.0.2.1:5060".parse().expect("literal"),
                remote: r.parse().expect("literal"),
            })
        })
        .collect();
    let mut engine = Engine::new(cfg, routes, u64::from(control), (t0, 1_795_608_000 + u64::from(control) * 3600));
    let sources = [
        Route { transport: Transport::Ws, local: "192.0.2.1:5066".parse().expect("literal"), remote: "198.51.100.20:50000".parse().expect("literal") },
        Route { transport: Transport::Udp, local: "192.0.2.1:5060".parse().expect("literal"), remote: "203.0.113.11:5060".parse().expect("literal") },
        Route { transport: Transport::Udp, local: "192.0.2.1:5060".parse().expect("literal"), remote: "198.51.100.99:5060".parse().expect("literal") },
    ];
    let source = sources[usize::from(control % 3)];
    // The same request as several calls, with failures in between, then every call ends.
    let calls = 1 + u64::from(control >> 5);
    for n in 0..calls {
        let now = t0 + Duration::from_millis(n * 300);
        let call = CallRef::from_id(n + 1);
        match engine.route(now, call, &request, source, control & 0x10 != 0) {
            Decision::Reject { status, .. } => assert!((400..=699).contains(&status), "status {status}"),
            Decision::Forward(t) => {
                assert!(t.trunk < 3);
                let mut m = request.clone();
                engine.rewrite(Toward::Trunk(t.trunk), &mut m);
                Message::parse(&m.encode()).expect("a rewritten request parses");
                // What a rule changed carries no control character (no CR/LF: nothing injected),
                // whatever the request brought.
                let clean = |v: &str| !v.chars().any(|c| c.is_control() && c != '\t');
                for name in [HeaderName::From, HeaderName::UserAgent] {
                    let of = |r: &Message| -> Vec<String> {
                        r.headers.iter().filter(|h| h.name == name).map(|h| h.value.clone()).collect()
                    };
                    let (before, after) = (of(&request), of(&m));
                    assert_eq!(before.len(), after.len(), "{name:?}: {before:?} -> {after:?}");
                    for (b, a) in before.iter().zip(&after) {
                        assert!(b == a || clean(a), "{name:?}: {b:?} -> {a:?}");
                    }
                }
                let uri = |r: &Message| match &r.start {
                    StartLine::Request { uri, .. } => uri.clone(),
                    StartLine::Response { .. } => String::new(),
                };
                assert!(uri(&request) == uri(&m) || clean(&uri(&m)), "{:?}", uri(&m));
                let mut failure = Failure::Status(503);
                while let Some(next) = engine.next(now + Duration::from_secs(1), call, failure) {
                    assert_ne!(next.route.remote, source.remote, "never back to the source trunk");
                    failure = Failure::Timeout;
                }
            }
            Decision::Local => {}
        }
    }
    for n in 0..calls {
        engine.ended(CallRef::from_id(n + 1));
    }
    let stats = engine.stats();
    assert!(stats.trunks.iter().all(|t| t.calls == 0), "admission counts leaked: {stats:?}");
});
