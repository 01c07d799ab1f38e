//! RTC Edge routing and policy: sans-IO.
//!
//! **Owns**: the routing table ([`table`]: first matching route, trunk order by strategy), call
//! admission control ([`admission`]: concurrent calls, calls per second, bandwidth, per trunk and per
//! source address), the `[filter]` deny/allow lists, trunk monitoring state (OPTIONS probes) and the
//! compiled `[[rewrite]]` header rules. [`Engine`] puts them together behind the call core's
//! [`edge_sip::router::Router`] port.
//!
//! **Never touches**: sockets, the clock, threads, randomness sources, the file system. Time comes in
//! as `now` on every call (wall-clock time as one `(Instant, unix seconds)` pair at construction),
//! randomness as a seed, and trunk addresses as [`Route`]s the shell resolved.
//!
//! # A new call ([`Engine::route`]), in order
//! 1. `[filter]` → `filter.reject_status` (default 403 Forbidden).
//! 2. Per-source admission (`[admission] per_source_calls`, `per_source_cps`) → `admission.reject_status`
//!    (503 + Retry-After, or 486).
//! 3. `registered` → [`Decision::Local`] (still counted against its source).
//! 4. The routing table. No route matches (this includes every call from a SIP address that is not a
//!    configured trunk, and a route whose only trunk is the one the call came from) → 404 "No Route";
//!    a rejecting route → its status; otherwise the first candidate that is up, resolved and not full
//!    (`max_calls`, `max_cps`, `max_kbps` with the call's [`admission::call_kbps`]). Every candidate
//!    down or unresolved → 503 "Service Unavailable (no trunk up)" + Retry-After; some full and the
//!    rest down → `admission.reject_status`.
//!
//! # Failover ([`Engine::next`])
//! The call's remaining candidates, checked again at that moment, when the failure is one of
//! `[routing] failover_codes` (or a timeout / unreachable trunk with `failover_on_timeout`) and less
//! than `failover_budget_s` have passed since [`Engine::route`]. The call's counts move to the new trunk.
//!
//! # Unknown SIP peers
//! A route's empty `source` means "from browsers"; `"trunk"` and `"trunk:<name>"` match configured
//! trunks ([`Engine::trunk_of`]). A SIP peer that is neither matches only routes whose `source` lists
//! `"peer"` (a phone or IP-PBX the operator chose to serve, usually limited by `source_networks`);
//! otherwise it can reach registered browsers (step 3, after the filter), never a trunk. The gateway is
//! not an open relay unless its table says so.

#![forbid(unsafe_code)]
// Nothing received from the network may cause a panic: every index is checked. (Tests may index.)
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod admission;
pub mod dns;
mod filter;
mod monitor;
pub mod table;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use edge_config::Config;
use edge_config::routing::{Host, RoutingConfig, Toward as RuleToward};
use edge_sip::b2bua::CallRef;
use edge_sip::message::Message;
use edge_sip::rewrite::{self, Rule};
use edge_sip::router::{Decision, Failure, Router, Target, Toward};
use edge_sip::transaction::Route;
use edge_sip::uri::SipUri;
use edge_sip::{HeaderName, StartLine, Transport};

use admission::{Load, Sources};
use monitor::Probe;
use table::{Decided, Facts, LocalTime, Origin, Table, Turns};

/// A base instant for tests; from there time advances only by arithmetic, never by reading the clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the one clock read in the tests: the origin of fake time
pub(crate) fn test_epoch() -> Instant {
    Instant::now()
}

/// Counters of one trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStats {
    /// Its name.
    pub name: String,
    /// Up by monitoring (always, when not monitored).
    pub up: bool,
    /// Its address is resolved.
    pub resolved: bool,
    /// Calls on it now.
    pub calls: u32,
    /// Estimated kbit/s of its calls now.
    pub kbps: u32,
    /// Calls sent to it (first attempts and failovers).
    pub calls_total: u64,
    /// Times a call passed it over because it was full (`max_calls`, `max_cps`, `max_kbps`).
    pub rejected_cac: u64,
    /// Calls that failed on it and moved to another trunk.
    pub failovers: u64,
}

/// Counters of the engine (for gatewayd's status and the web UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Per trunk, in configuration order.
    pub trunks: Vec<TrunkStats>,
    /// Calls refused by `[filter]`.
    pub filtered: u64,
    /// Calls refused by per-source admission control.
    pub rejected_source: u64,
    /// Calls refused because every candidate trunk was full.
    pub rejected_cac: u64,
    /// Calls refused because no candidate trunk was up (or resolved).
    pub no_trunk_up: u64,
    /// Calls no route matched.
    pub no_route: u64,
    /// Calls a rejecting route answered.
    pub rejected_route: u64,
    /// Calls to registered browsers.
    pub local: u64,
    /// Calls now.
    pub calls: usize,
    /// Source addresses tracked by per-source admission now.
    pub sources: usize,
}

#[derive(Debug)]
struct Trunk {
    name: String,
    host: String,
    route: Option<Route>,
    credentials: Option<(String, String)>,
    load: Load,
    probe: Probe,
    calls_total: u64,
    rejected_cac: u64,
    failovers: u64,
}

impl Trunk {
    fn target(&self, index: usize) -> Option<Target> {
        Some(Target {
            trunk: index,
            route: self.route?,
            host: self.host.clone(),
        })
    }
}

/// Why a trunk cannot take a call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    Down,
    Full,
}

#[derive(Debug)]
struct Call {
    /// The source address counted by per-source admission.
    source: IpAddr,
    started: Instant,
    /// Candidates not tried yet, first next.
    remaining: VecDeque<usize>,
    /// The trunk it is on now.
    current: Option<usize>,
    kbps: u32,
}

/// Routing and policy for gatewayd: implements [`Router`].
pub struct Engine {
    table: Table,
    turns: Turns,
    trunks: Vec<Trunk>,
    routing: RoutingConfig,
    admission: edge_config::routing::Admission,
    filter: edge_config::routing::Filter,
    sources: Sources,
    calls: HashMap<u64, Call>,
    rng: u64,
    wall: (Instant, u64),
    to_browsers: Vec<Rule>,
    to_trunks: Vec<Vec<Rule>>,
    registrar: Option<usize>,
    offload: Option<Duration>,
    changes: VecDeque<(String, bool)>,
    filtered: u64,
    rejected_source: u64,
    rejected_cac: u64,
    no_trunk_up: u64,
    no_route: u64,
    rejected_route: u64,
    local: u64,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("trunks", &self.trunks.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

/// The reason phrase we send with `status`.
fn reason(status: u16) -> &'static str {
    match status {
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Rejected",
    }
}

/// The URI inside a name-addr (`<...>`), or the value itself without parameters.
fn uri_in(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b).unwrap_or(value),
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// User and host of a `sip:`/`sips:`/`tel:` URI (empty when absent or unreadable).
fn user_host(uri: &str) -> (&str, &str) {
    let uri = uri.trim();
    if let Some(number) = uri.strip_prefix("tel:") {
        return (number.split(';').next().unwrap_or(""), "");
    }
    SipUri::parse(uri).map_or(("", ""), |u| (u.user.unwrap_or(""), u.host))
}

fn header_user_host<'a>(m: &'a Message, name: &HeaderName) -> (&'a str, &'a str) {
    m.header(name).map_or(("", ""), |v| user_host(uri_in(v)))
}

/// SplitMix64: the engine's one random stream, from the seed the shell gives.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Engine {
    /// The engine for `config`. `routes[i]` is how to reach trunk `i` now (`None`: not resolved yet;
    /// the trunk is skipped like a down one until [`Engine::set_route`]). `seed` seeds the weighted
    /// draws; `wall` is one instant and the Unix time (seconds) at that instant, for `days`/`time`.
    /// Monitored trunks are first probed at `wall.0`.
    pub fn new(config: &Config, routes: Vec<Option<Route>>, seed: u64, wall: (Instant, u64)) -> Self {
        let mut routes = routes.into_iter();
        let trunks: Vec<Trunk> = config
            .trunks
            .iter()
            .map(|t| {
                let address = match &t.address {
                    Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
                    other => other.to_string(),
                };
                Trunk {
                    name: t.name.as_str().to_owned(),
                    host: match t.port {
                        Some(p) => format!("{address}:{}", p.get()),
                        None => address,
                    },
                    route: routes.next().flatten(),
                    credentials: t
                        .username
                        .as_ref()
                        .zip(t.password.as_ref())
                        .map(|(u, p)| (u.as_str().to_owned(), p.expose().to_owned())),
                    load: Load::new(t.max_calls, t.max_cps, t.max_kbps),
                    probe: Probe::new(&t.monitor, wall.0),
                    calls_total: 0,
                    rejected_cac: 0,
                    failovers: 0,
                }
            })
            .collect();
        let index = |name: &str| trunks.iter().position(|t| t.name == name);
        let mut to_browsers = Vec::new();
        let mut to_trunks: Vec<Vec<Rule>> = vec![Vec::new(); trunks.len()];
        // Configuration validation built every rule once already: none fails here.
        for r in &config.rewrite {
            let Ok(rule) = r.rule() else {
                continue;
            };
            match &r.toward {
                RuleToward::Browsers => to_browsers.push(rule),
                RuleToward::Trunks => to_trunks.iter_mut().for_each(|rules| rules.push(rule.clone())),
                RuleToward::Trunk(n) => {
                    if let Some(rules) = index(n.as_str()).and_then(|t| to_trunks.get_mut(t)) {
                        rules.push(rule);
                    }
                }
            }
        }
        let registrar = match &config.registrar.trunk {
            Some(n) => index(n.as_str()),
            None => (!trunks.is_empty()).then_some(0),
        };
        let table = Table::new(config);
        Self {
            turns: Turns::new(&table),
            table,
            trunks,
            routing: config.routing.clone(),
            admission: config.admission,
            filter: config.filter.clone(),
            sources: Sources::new(config.admission.per_source_calls, config.admission.per_source_cps),
            calls: HashMap::new(),
            rng: seed,
            wall,
            to_browsers,
            to_trunks,
            registrar,
            offload: (config.registrar.offload_interval_s > 0)
                .then(|| Duration::from_secs(u64::from(config.registrar.offload_interval_s))),
            changes: VecDeque::new(),
            filtered: 0,
            rejected_source: 0,
            rejected_cac: 0,
            no_trunk_up: 0,
            no_route: 0,
            rejected_route: 0,
            local: 0,
        }
    }

    /// A new configuration, applied without dropping a call: the table, trunks, limits, filters,
    /// header rules and registrar are rebuilt from `config` (`routes` as in [`Engine::new`]), and what
    /// is live carries over by trunk name — the calls on each trunk (now counted against its new
    /// limits), its monitoring state and counters — as do the per-source counts (under the new
    /// limits) and the totals. A call on a trunk that is gone stays up, no longer counted against a
    /// trunk; its remaining failover candidates are mapped by name (a removed trunk drops out).
    pub fn reload(&mut self, config: &Config, routes: Vec<Option<Route>>) {
        let mut fresh = Self::new(config, routes, self.rng, self.wall);
        let map: Vec<Option<usize>> = self
            .trunks
            .iter()
            .map(|t| fresh.trunks.iter().position(|n| n.name == t.name))
            .collect();
        for (old, to) in self.trunks.iter().zip(&map) {
            if let Some(f) = to.and_then(|i| fresh.trunks.get_mut(i)) {
                f.load.calls = old.load.calls;
                f.load.kbps = old.load.kbps;
                f.probe.carry(&old.probe);
                f.calls_total = old.calls_total;
                f.rejected_cac = old.rejected_cac;
                f.failovers = old.failovers;
            }
        }
        let moved = |i: usize| map.get(i).copied().flatten();
        fresh.calls = self
            .calls
            .drain()
            .map(|(id, mut c)| {
                c.current = c.current.and_then(moved);
                c.remaining = c.remaining.iter().filter_map(|&i| moved(i)).collect();
                (id, c)
            })
            .collect();
        fresh.sources = std::mem::replace(&mut self.sources, Sources::new(0, 0));
        fresh
            .sources
            .set_limits(config.admission.per_source_calls, config.admission.per_source_cps);
        fresh.changes = std::mem::take(&mut self.changes);
        fresh.filtered = self.filtered;
        fresh.rejected_source = self.rejected_source;
        fresh.rejected_cac = self.rejected_cac;
        fresh.no_trunk_up = self.no_trunk_up;
        fresh.no_route = self.no_route;
        fresh.rejected_route = self.rejected_route;
        fresh.local = self.local;
        *self = fresh;
    }

    /// The compiled routing table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            trunks: self
                .trunks
                .iter()
                .map(|t| TrunkStats {
                    name: t.name.clone(),
                    up: t.probe.up,
                    resolved: t.route.is_some(),
                    calls: t.load.calls,
                    kbps: t.load.kbps,
                    calls_total: t.calls_total,
                    rejected_cac: t.rejected_cac,
                    failovers: t.failovers,
                })
                .collect(),
            filtered: self.filtered,
            rejected_source: self.rejected_source,
            rejected_cac: self.rejected_cac,
            no_trunk_up: self.no_trunk_up,
            no_route: self.no_route,
            rejected_route: self.rejected_route,
            local: self.local,
            calls: self.calls.len(),
            sources: self.sources.len(),
        }
    }

    /// Local time at `now` for `days`/`time` windows.
    fn local_time(&self, now: Instant) -> LocalTime {
        let base = i64::try_from(self.wall.1).unwrap_or(i64::MAX);
        let unix = match now.checked_duration_since(self.wall.0) {
            Some(d) => base.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            None => base.saturating_sub(
                i64::try_from(self.wall.0.saturating_duration_since(now).as_secs()).unwrap_or(i64::MAX),
            ),
        };
        LocalTime::at(unix, self.routing.utc_offset.0)
    }

    fn unusable(&mut self, trunk: usize, now: Instant, kbps: u32) -> Option<Unusable> {
        let t = self.trunks.get_mut(trunk)?;
        if t.route.is_none() || !t.probe.up {
            Some(Unusable::Down)
        } else if !t.load.fits(now, kbps) {
            Some(Unusable::Full)
        } else {
            None
        }
    }

    /// Takes the first usable trunk off `remaining` (counting the full ones passed over), or says
    /// whether any was full.
    fn pick(&mut self, now: Instant, remaining: &mut VecDeque<usize>, kbps: u32) -> Result<usize, bool> {
        let mut any_full = false;
        while let Some(t) = remaining.pop_front() {
            match self.unusable(t, now, kbps) {
                None => {
                    if let Some(tr) = self.trunks.get_mut(t) {
                        tr.load.start(now, kbps);
                        tr.calls_total += 1;
                    }
                    return Ok(t);
                }
                Some(Unusable::Full) => {
                    any_full = true;
                    if let Some(tr) = self.trunks.get_mut(t) {
                        tr.rejected_cac += 1;
                    }
                }
                Some(Unusable::Down) => {}
            }
        }
        Err(any_full)
    }

    fn admission_reject(&self) -> Decision {
        let status = self.admission.reject_status;
        Decision::Reject {
            status,
            reason: reason(status).into(),
            retry_after: (status == 503).then_some(self.admission.retry_after_s),
        }
    }

    fn reject(status: u16, reason: &str) -> Decision {
        Decision::Reject {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    fn release_trunk(&mut self, trunk: Option<usize>, kbps: u32) {
        if let Some(t) = trunk.and_then(|t| self.trunks.get_mut(t)) {
            t.load.stop(kbps);
        }
    }
}

impl Router for Engine {
    fn route(
        &mut self,
        now: Instant,
        call: CallRef,
        request: &Message,
        source: Route,
        registered: bool,
    ) -> Decision {
        let ip = source.remote.ip().to_canonical();
        let user = match &request.start {
            StartLine::Request { uri, .. } => user_host(uri).0,
            StartLine::Response { .. } => "",
        };
        let (from_user, from_host) = header_user_host(request, &HeaderName::From);
        let (to_user, _) = header_user_host(request, &HeaderName::To);
        let caller = filter::Caller {
            ip,
            from_user,
            from_host,
            callee: user,
            headers: &request.headers,
        };
        if filter::refused(&self.filter, &caller) {
            self.filtered += 1;
            return Self::reject(self.filter.reject_status, reason(self.filter.reject_status));
        }
        if !self.sources.admit(ip, now) {
            self.rejected_source += 1;
            return self.admission_reject();
        }
        // An earlier call under the same reference (never expected) is released first.
        self.ended(call);
        let kbps = admission::call_kbps(&request.body);
        let state = Call {
            source: ip,
            started: now,
            remaining: VecDeque::new(),
            current: None,
            kbps,
        };
        if registered {
            self.local += 1;
            self.calls.insert(call.id(), state);
            return Decision::Local;
        }
        let origin = if matches!(source.transport, Transport::Ws | Transport::Wss) {
            Origin::Browser
        } else {
            self.trunk_of(source).map_or(Origin::Unknown, Origin::Trunk)
        };
        let facts = Facts {
            origin,
            ip,
            user,
            from_user,
            to_user,
            headers: &request.headers,
        };
        let at = self.local_time(now);
        let random = splitmix(&mut self.rng);
        // Which trunks could take the call now (for the weighted draw): computed before, as a list.
        let usable: Vec<bool> = (0..self.trunks.len())
            .map(|t| self.unusable(t, now, kbps).is_none())
            .collect();
        let eligible = |t: usize| usable.get(t).copied().unwrap_or(false);
        let decided = self.table.decide(&facts, at, random, &mut self.turns, &eligible);
        let order = match decided {
            Decided::Reject { status, .. } => {
                self.sources.release(ip);
                self.rejected_route += 1;
                return Self::reject(status, reason(status));
            }
            Decided::Trunks { order, .. } if !order.is_empty() => order,
            // No route, or the route's only trunk is the one the call came from.
            Decided::NoRoute | Decided::Trunks { .. } => {
                self.sources.release(ip);
                self.no_route += 1;
                return Self::reject(404, "No Route");
            }
        };
        let mut remaining: VecDeque<usize> = order.into();
        match self.pick(now, &mut remaining, kbps) {
            Ok(t) => {
                let state = Call {
                    remaining,
                    current: Some(t),
                    ..state
                };
                let target = self.trunks.get(t).and_then(|tr| tr.target(t));
                self.calls.insert(call.id(), state);
                match target {
                    Some(target) => Decision::Forward(target),
                    // `pick` only takes resolved trunks.
                    None => Self::reject(500, "Server Internal Error"),
                }
            }
            Err(any_full) => {
                self.sources.release(ip);
                if any_full {
                    self.rejected_cac += 1;
                    self.admission_reject()
                } else {
                    self.no_trunk_up += 1;
                    Decision::Reject {
                        status: 503,
                        reason: "Service Unavailable (no trunk up)".into(),
                        retry_after: Some(self.admission.retry_after_s),
                    }
                }
            }
        }
    }

    fn next(&mut self, now: Instant, call: CallRef, failure: Failure) -> Option<Target> {
        let mut state = self.calls.remove(&call.id())?;
        let old = state.current.take();
        self.release_trunk(old, state.kbps);
        let qualifies = match failure {
            Failure::Status(code) => self.routing.failover_codes.contains(&code),
            Failure::Timeout | Failure::Unreachable => self.routing.failover_on_timeout,
        };
        let budget = Duration::from_secs(u64::from(self.routing.failover_budget_s));
        let in_time = now.saturating_duration_since(state.started) < budget;
        let mut picked = None;
        if qualifies && in_time {
            let mut remaining = std::mem::take(&mut state.remaining);
            if let Ok(t) = self.pick(now, &mut remaining, state.kbps) {
                picked = Some(t);
            }
            state.remaining = remaining;
        } else {
            state.remaining.clear();
        }
        if let (Some(_), Some(o)) = (picked, old.and_then(|o| self.trunks.get_mut(o))) {
            o.failovers += 1;
        }
        state.current = picked;
        self.calls.insert(call.id(), state);
        picked.and_then(|t| self.trunks.get(t)?.target(t))
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        (self.routing.attempt_timeout_s > 0)
            .then(|| Duration::from_secs(u64::from(self.routing.attempt_timeout_s)))
    }

    fn ended(&mut self, call: CallRef) {
        if let Some(state) = self.calls.remove(&call.id()) {
            self.release_trunk(state.current, state.kbps);
            self.sources.release(state.source);
        }
    }

    fn rewrite(&self, toward: Toward, request: &mut Message) {
        let rules = match toward {
            Toward::Browser => Some(&self.to_browsers),
            Toward::Trunk(t) => self.to_trunks.get(t),
        };
        if let Some(rules) = rules {
            // Refused results leave their target unchanged; the rule list itself was checked at start.
            let _ = rewrite::apply(rules, request);
        }
    }

    fn credentials(&self, trunk: usize) -> Option<(&str, &str)> {
        self.trunks
            .get(trunk)?
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    fn registrar(&self) -> Option<Target> {
        let t = self.registrar?;
        self.trunks.get(t)?.target(t)
    }

    fn offload_interval(&self) -> Option<Duration> {
        self.offload
    }

    /// The trunk whose resolved address is exactly `remote`; else the first trunk listed at `remote`'s
    /// IP address (a trunk may send from another port than it listens on, e.g. over TCP).
    fn trunk_of(&self, source: Route) -> Option<usize> {
        let remote = source.remote;
        let ip = remote.ip().to_canonical();
        let at_ip = |t: &Trunk| t.route.is_some_and(|r| r.remote.ip().to_canonical() == ip);
        let exact = self
            .trunks
            .iter()
            .position(|t| at_ip(t) && t.route.is_some_and(|r| r.remote.port() == remote.port()));
        // A trunk's TCP or TLS connection comes from an ephemeral port; over UDP a trunk sends from
        // its own port, and another port on its host is someone else (a phone, a test tool).
        exact.or_else(|| {
            matches!(source.transport, Transport::Tcp | Transport::Tls)
                .then(|| self.trunks.iter().position(at_ip))
                .flatten()
        })
    }

    fn poll_probe(&mut self, now: Instant) -> Option<Target> {
        let (i, t) = self
            .trunks
            .iter_mut()
            .enumerate()
            .find(|(_, t)| t.route.is_some() && t.probe.due().is_some_and(|d| d <= now))?;
        if let Some(up) = t.probe.sent(now) {
            let name = t.name.clone();
            self.changes.push_back((name, up));
        }
        self.trunks.get(i).and_then(|t| t.target(i))
    }

    fn target_of(&self, trunk: usize) -> Option<Target> {
        self.trunks.get(trunk).and_then(|t| t.target(trunk))
    }

    fn probe_answered(&mut self, _now: Instant, trunk: usize, status: Option<u16>) {
        if let Some(t) = self.trunks.get_mut(trunk)
            && let Some(up) = t.probe.answered(status)
        {
            self.changes.push_back((t.name.clone(), up));
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .filter(|t| t.route.is_some())
            .filter_map(|t| t.probe.due())
            .min()
    }

    fn is_up(&self, trunk: usize) -> bool {
        self.trunks
            .get(trunk)
            .is_some_and(|t| t.probe.up && t.route.is_some())
    }

    fn set_route(&mut self, trunk: usize, route: Option<Route>) {
        if let Some(t) = self.trunks.get_mut(trunk) {
            t.route = route;
        }
    }

    fn poll_change(&mut self) -> Option<(String, bool)> {
        self.changes.pop_front()
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn summary(&self) -> String {
        let up = self
            .trunks
            .iter()
            .filter(|t| t.probe.up && t.route.is_some())
            .count();
        // `calls` is already the call core's own count on the same line: admitted calls here are
        // `routed calls`, which must come back to 0 with it.
        format!(
            "trunks up: {up}/{}, routed calls: {}",
            self.trunks.len(),
            self.calls.len()
        )
    }
}

#[cfg(test)]
mod tests;
