//! The routing table and the routing decision as a pure function: [`Table::decide`] takes the compiled
//! table, the facts of one request, the local time, one random number and the round-robin counters, and
//! returns the first matching route with its candidate trunks in the order to try them. It knows
//! nothing of load, monitoring or time passing; the [`crate::Engine`] skips the trunks that are down or
//! full when it walks the list.
//!
//! # Matching
//! Routes are tried in file order; the first whose conditions all hold decides. An empty condition
//! holds for everything, except `source`: an empty `source` means "from browsers". A call from a SIP
//! address that is not a configured trunk (an unknown peer) matches only routes that name `peer` in
//! their `source` (secure by default: a stranger is never routed to a paid trunk unless the table
//! says so, usually with `source_networks`). `days` and `time`
//! are judged at the moment of the call in local time: with `time = "22:00-06:00"` and
//! `days = ["fri"]`, Saturday 01:00 does not match (the day is Saturday by then). Prefixes and
//! patterns see user parts as written on the wire (`+44…`, `%2B44…` are different).
//!
//! # Orders and tie-breaks
//! The trunk a call came from is never a candidate (a call is not sent back where it came from).
//! - `priority`: listed order.
//! - `round-robin`: listed order rotated by the route's counter (which advances once per call routed
//!   by it), then the source trunk removed.
//! - `weighted`: the first trunk is drawn with the random number in proportion to the weights of the
//!   candidates that are eligible now (the engine says which: up, resolved, not full); a weight of 0 is
//!   never drawn. The others follow by descending weight, equal weights in listed order.
//! - `least-cost`: each trunk's price for the called user is the cost of its **longest** matching
//!   prefix (equal prefixes: the first listed); cheapest first, equal prices in listed order, trunks
//!   with no matching prefix after every priced one, in listed order.

use std::net::IpAddr;

use edge_config::Config;
use edge_config::routing::{Network, Pattern, Source, Strategy, TimeWindow};
use edge_sip::message::Header;

/// Where a request came from, as routes match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A browser (SIP over WebSocket).
    Browser,
    /// The configured trunk with this index.
    Trunk(usize),
    /// A SIP address that is no configured trunk: matches only routes whose `source` has `peer`.
    Unknown,
}

/// What a route looks at in one request.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// The sender's IP address.
    pub ip: IpAddr,
    /// The Request-URI user (empty when there is none), as written.
    pub user: &'a str,
    /// The From URI's user (empty when there is none).
    pub from_user: &'a str,
    /// The To URI's user (empty when there is none).
    pub to_user: &'a str,
    /// The request's header fields.
    pub headers: &'a [Header],
}

/// Local time, as `days` and `time` windows see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 for Monday … 6 for Sunday.
    pub weekday: u8,
    /// Minutes after midnight, 0-1439.
    pub minute: u16,
}

impl LocalTime {
    /// The local time at `unix` seconds (UTC) with `offset_min` minutes east of UTC.
    pub fn at(unix: i64, offset_min: i16) -> Self {
        let t = unix.saturating_add(i64::from(offset_min) * 60);
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = u8::try_from((days + 3).rem_euclid(7)).unwrap_or(0);
        let minute = u16::try_from(secs / 60).unwrap_or(0);
        Self { weekday, minute }
    }
}

/// The outcome of [`Table::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// No route matches.
    NoRoute,
    /// Route `route` matches and rejects the call with `status`.
    Reject {
        /// Index of the route.
        route: usize,
        /// Its status.
        status: u16,
    },
    /// Route `route` matches: try these trunks in this order (never the source trunk; may be empty
    /// when the source trunk was the route's only one).
    Trunks {
        /// Index of the route.
        route: usize,
        /// Trunk indices, first to try first.
        order: Vec<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceMatch {
    Browser,
    AnyTrunk,
    Trunk(usize),
    Peer,
}

#[derive(Debug, Clone)]
enum Then {
    Reject(u16),
    Trunks {
        trunks: Vec<usize>,
        strategy: Strategy,
        weights: Vec<u32>,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    sources: Vec<SourceMatch>,
    networks: Vec<Network>,
    prefixes: Vec<String>,
    user: Option<Pattern>,
    from: Option<Pattern>,
    to: Option<Pattern>,
    /// Canonical header name (compact forms expanded) and the pattern for its first value.
    headers: Vec<(String, Pattern)>,
    /// Bit `i` set: applies on weekday `i`; 0: every day.
    days: u8,
    time: Option<TimeWindow>,
    then: Then,
}

/// The compiled routing table.
#[derive(Debug, Clone)]
pub struct Table {
    rules: Vec<Rule>,
    /// Per trunk: its cost table (prefix, cost), in file order.
    costs: Vec<Vec<(String, u32)>>,
}

/// Round-robin counters, one per route.
#[derive(Debug, Clone, Default)]
pub struct Turns(Vec<u64>);

impl Turns {
    /// Counters for `table`, all at 0.
    pub fn new(table: &Table) -> Self {
        Self(vec![0; table.rules.len()])
    }
}

impl Table {
    /// Compiles the routes of `config`. Without `[[routes]]`, one implicit route named `default`
    /// sends browsers' calls to every trunk in listed order (and calls from trunks match nothing).
    pub fn new(config: &Config) -> Self {
        let index = |name: &str| config.trunks.iter().position(|t| t.name.as_str() == name);
        let mut rules: Vec<Rule> = config
            .routes
            .iter()
            .map(|r| Rule {
                name: r.name.as_str().to_owned(),
                sources: if r.source.is_empty() {
                    vec![SourceMatch::Browser]
                } else {
                    r.source
                        .iter()
                        .filter_map(|s| match s {
                            Source::Browser => Some(SourceMatch::Browser),
                            Source::AnyTrunk => Some(SourceMatch::AnyTrunk),
                            Source::Peer => Some(SourceMatch::Peer),
                            // Validation guarantees the name exists.
                            Source::Trunk(n) => index(n.as_str()).map(SourceMatch::Trunk),
                        })
                        .collect()
                },
                networks: r.source_networks.clone(),
                prefixes: r.user_prefix.iter().map(|p| p.as_str().to_owned()).collect(),
                user: r.user_regex.clone(),
                from: r.from_regex.clone(),
                to: r.to_regex.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        let name = edge_sip::HeaderName::from_wire(h.name.as_str())
                            .as_str()
                            .to_owned();
                        (name, h.regex.clone())
                    })
                    .collect(),
                days: r.days.iter().fold(0u8, |m, d| m | (1 << d.index())),
                time: r.time,
                then: match r.reject {
                    Some(status) => Then::Reject(status),
                    None => {
                        let pairs: Vec<(usize, u32)> = r
                            .trunks
                            .iter()
                            .enumerate()
                            .filter_map(|(j, n)| {
                                Some((index(n.as_str())?, r.weights.get(j).copied().unwrap_or(0)))
                            })
                            .collect();
                        Then::Trunks {
                            trunks: pairs.iter().map(|p| p.0).collect(),
                            strategy: r.strategy,
                            weights: if r.strategy == Strategy::Weighted {
                                pairs.iter().map(|p| p.1).collect()
                            } else {
                                Vec::new()
                            },
                        }
                    }
                },
            })
            .collect();
        if rules.is_empty() {
            rules.push(Rule {
                name: "default".into(),
                sources: vec![SourceMatch::Browser],
                networks: Vec::new(),
                prefixes: Vec::new(),
                user: None,
                from: None,
                to: None,
                headers: Vec::new(),
                days: 0,
                time: None,
                then: Then::Trunks {
                    trunks: (0..config.trunks.len()).collect(),
                    strategy: Strategy::Priority,
                    weights: Vec::new(),
                },
            });
        }
        let costs = config
            .trunks
            .iter()
            .map(|t| {
                t.costs
                    .iter()
                    .map(|c| (c.prefix.as_str().to_owned(), c.cost))
                    .collect()
            })
            .collect();
        Self { rules, costs }
    }

    /// Route `route`'s name (`default` for the implicit one), for logs and CDRs.
    pub fn route_name(&self, route: usize) -> Option<&str> {
        self.rules.get(route).map(|r| r.name.as_str())
    }

    /// The decision for one request: the first matching route and its candidates in order. `random`
    /// draws the first trunk of a weighted route among those `eligible` says can take the call now;
    /// `turns` is advanced for a round-robin route that matched.
    pub fn decide(
        &self,
        facts: &Facts<'_>,
        at: LocalTime,
        random: u64,
        turns: &mut Turns,
        eligible: &dyn Fn(usize) -> bool,
    ) -> Decided {
        let Some((route, rule)) = self.rules.iter().enumerate().find(|(_, r)| r.matches(facts, at)) else {
            return Decided::NoRoute;
        };
        let (trunks, strategy, weights) = match &rule.then {
            Then::Reject(status) => {
                return Decided::Reject {
                    route,
                    status: *status,
                };
            }
            Then::Trunks {
                trunks,
                strategy,
                weights,
            } => (trunks, *strategy, weights),
        };
        let not_source = |t: &usize| facts.origin != Origin::Trunk(*t);
        let order = match strategy {
            Strategy::Priority => trunks.iter().copied().filter(not_source).collect(),
            Strategy::RoundRobin => {
                let turn = turns.0.get(route).copied().unwrap_or(0);
                if let Some(c) = turns.0.get_mut(route) {
                    *c = c.wrapping_add(1);
                }
                let k = usize::try_from(turn % u64::try_from(trunks.len().max(1)).unwrap_or(1)).unwrap_or(0);
                trunks
                    .iter()
                    .cycle()
                    .skip(k)
                    .take(trunks.len())
                    .copied()
                    .filter(not_source)
                    .collect()
            }
            Strategy::Weighted => {
                let pairs: Vec<(usize, u32)> = trunks
                    .iter()
                    .copied()
                    .zip(weights.iter().copied())
                    .filter(|(t, _)| not_source(t))
                    .collect();
                weighted(&pairs, random, eligible)
            }
            Strategy::LeastCost => {
                let mut priced: Vec<(Option<u32>, usize)> = trunks
                    .iter()
                    .copied()
                    .filter(not_source)
                    .map(|t| (self.price(t, facts.user), t))
                    .collect();
                // Stable: equal prices keep the listed order; `None` (no prefix) sorts after every price.
                priced.sort_by_key(|(p, _)| (p.is_none(), p.unwrap_or(0)));
                priced.into_iter().map(|(_, t)| t).collect()
            }
        };
        Decided::Trunks { route, order }
    }

    /// Trunk `trunk`'s cost for calling `user`: its longest matching prefix's (the first listed
    /// among equally long ones), `None` when no prefix matches.
    pub fn price(&self, trunk: usize, user: &str) -> Option<u32> {
        let mut best: Option<(usize, u32)> = None;
        for (prefix, cost) in self.costs.get(trunk)? {
            if user.starts_with(prefix.as_str()) && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), *cost));
            }
        }
        best.map(|(_, c)| c)
    }
}

/// The weighted order: the first drawn among eligible trunks with weight > 0, the rest by descending
/// weight (stable, so equal weights keep the listed order).
fn weighted(pairs: &[(usize, u32)], random: u64, eligible: &dyn Fn(usize) -> bool) -> Vec<usize> {
    let total: u64 = pairs
        .iter()
        .filter(|(t, _)| eligible(*t))
        .map(|(_, w)| u64::from(*w))
        .sum();
    let mut rest: Vec<(usize, u32)> = pairs.to_vec();
    let mut order = Vec::with_capacity(pairs.len());
    if total > 0 {
        // Multiply-shift maps the 64-bit number onto 0..total without modulo bias worth speaking of.
        let mut r = u64::try_from((u128::from(random) * u128::from(total)) >> 64).unwrap_or(0);
        let pick = rest.iter().position(|(t, w)| {
            if !eligible(*t) || *w == 0 {
                return false;
            }
            if r < u64::from(*w) {
                true
            } else {
                r -= u64::from(*w);
                false
            }
        });
        if let Some(i) = pick {
            order.push(rest.remove(i).0);
        }
    }
    rest.sort_by_key(|(_, w)| std::cmp::Reverse(*w));
    order.extend(rest.into_iter().map(|(t, _)| t));
    order
}

impl Rule {
    fn matches(&self, f: &Facts<'_>, at: LocalTime) -> bool {
        let source_ok = self.sources.iter().any(|s| match (s, f.origin) {
            (SourceMatch::Browser, Origin::Browser)
            | (SourceMatch::AnyTrunk, Origin::Trunk(_))
            | (SourceMatch::Peer, Origin::Unknown) => true,
            (SourceMatch::Trunk(want), Origin::Trunk(t)) => *want == t,
            _ => false,
        });
        let header_ok = |(name, re): &(String, Pattern)| {
            f.headers
                .iter()
                .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
                .is_some_and(|h| re.regex().is_match(&h.value))
        };
        source_ok
            && (self.networks.is_empty() || self.networks.iter().any(|n| n.contains(f.ip)))
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| f.user.starts_with(p.as_str())))
            && self.user.as_ref().is_none_or(|r| r.regex().is_match(f.user))
            && self.from.as_ref().is_none_or(|r| r.regex().is_match(f.from_user))
            && self.to.as_ref().is_none_or(|r| r.regex().is_match(f.to_user))
            && self.headers.iter().all(header_ok)
            && (self.days == 0 || self.days & (1 << at.weekday) != 0)
            && self.time.is_none_or(|w| w.contains(at.minute))
    }
}
