//! Routing and policy in `gatewayd.toml`: `[[trunks]]`, `[[routes]]`, `[routing]`, `[admission]`,
//! `[filter]`, `[[rewrite]]` and `[registrar]`. The types here are what the file may say; the routing
//! engine (`edge-routing`) compiles them into its tables. Cross-field checks (names that must exist,
//! one weight per trunk) are in [`crate::Config`]'s validation so that they are located in the file.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::located::Seg;
use crate::{HeaderText, Port, Transport, one_of};

/// A name for a trunk or a route: 1-32 characters of `A-Z a-z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(s))
        } else {
            Err(format!(
                "\"{s}\" is not a name: use 1-32 characters of letters, digits, '_', '-' and '.'"
            ))
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a trunk is: an IP address, or a DNS name the daemon resolves (A/AAAA) at start and again
/// while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Host {
    /// An IP literal.
    Ip(IpAddr),
    /// A DNS name (letters, digits, '-', dots; at most 253 characters).
    Name(String),
}

impl TryFrom<String> for Host {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = s.strip_suffix('.').unwrap_or(&s);
        if name.len() <= 253 && name.split('.').all(label_ok) && name.bytes().any(|b| b.is_ascii_alphabetic())
        {
            Ok(Self::Name(name.to_ascii_lowercase()))
        } else {
            Err(format!("\"{s}\" is neither an IP address nor a DNS name"))
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// A password: never printed (`Debug` shows `***`), one line of printable text.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the digest computation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl TryFrom<String> for Secret {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
            return Err("must be 1-256 characters of printable text".into());
        }
        Ok(Self(s))
    }
}

/// A regular expression, compiled when the file is read (so a bad one is an error at its line).
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        regex::RegexBuilder::new(&raw)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("not a usable regular expression: {e}")))
    }
}

/// A dialled-number prefix: 1-32 of `0-9 + * #` (a `+` only first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Prefix(String);

impl Prefix {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let body = s.strip_prefix('+').unwrap_or(&s);
        if !s.is_empty()
            && s.len() <= 32
            && body.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            Ok(Self(s))
        } else {
            Err(format!(
                "\"{s}\" is not a number prefix: use digits, '*', '#', and '+' only first"
            ))
        }
    }
}

/// An IP network, `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Network {
    /// The network address (host bits zero).
    pub address: IpAddr,
    /// Prefix length.
    pub bits: u8,
}

impl Network {
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(a)) => {
                a.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4)))
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("\"{s}\" is not a network: write 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32");
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.as_str(), None),
        };
        let address: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
            None => max,
        };
        let n = Self { address, bits };
        let host_bits_zero = match address {
            IpAddr::V4(a) => u32::from(a) & !u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0) == 0,
            IpAddr::V6(a) => u128::from(a) & !u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0) == 0,
        };
        if !host_bits_zero {
            return Err(format!("\"{s}\" has host bits set after /{bits}"));
        }
        Ok(n)
    }
}

/// `[[trunks]]`: a SIP peer calls go to (and may come from).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    /// Its name in routes, logs, metrics and the UI.
    pub name: Name,
    /// IP address or DNS name.
    pub address: Host,
    /// SIP port (default 5060, 5061 for tls).
    #[serde(default)]
    pub port: Option<Port>,
    /// `udp`, `tcp` or `tls`; needs a listener of the same transport.
    #[serde(default = "Trunk::default_transport")]
    pub transport: Transport,
    /// TLS: the name its certificate must carry (default: the address).
    #[serde(default)]
    pub server_name: Option<HeaderText>,
    /// TLS: the PEM that signs its certificate (relative to the file's folder).
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// Digest user name the gateway answers this trunk's 401/407 with.
    #[serde(default)]
    pub username: Option<HeaderText>,
    /// Digest password (needs `username`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Concurrent calls through it (0: no limit).
    #[serde(default)]
    pub max_calls: u32,
    /// New calls per second toward it (0: no limit).
    #[serde(default)]
    pub max_cps: u32,
    /// Media bandwidth of its calls in kbit/s, from the offered codec (0: no limit).
    #[serde(default)]
    pub max_kbps: u32,
    /// OPTIONS monitoring.
    #[serde(default)]
    pub monitor: Monitor,
    /// Cost per minute by number prefix, for `least-cost` routes (longest prefix wins).
    #[serde(default)]
    pub costs: Vec<Cost>,
    /// Codecs offered to and accepted from this trunk, most preferred first (empty: `[media] codecs`).
    #[serde(default)]
    pub codecs: Vec<crate::CodecName>,
}

impl Trunk {
    fn default_transport() -> Transport {
        Transport::Udp
    }

    /// The port, or the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.map_or(
            if self.transport == Transport::Tls {
                5061
            } else {
                5060
            },
            Port::get,
        )
    }
}

/// `[trunks.monitor]`: OPTIONS every `interval_s`; down after `down_after` failures in a row (no
/// answer, 408, 503), up again after `up_after` answers in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// Seconds between probes (0: not monitored, always up).
    #[serde(default)]
    pub interval_s: u32,
    /// Failures in a row that mark it down.
    #[serde(default = "Monitor::three")]
    pub down_after: u32,
    /// Answers in a row that mark it up again.
    #[serde(default = "Monitor::two")]
    pub up_after: u32,
}

impl Monitor {
    fn three() -> u32 {
        3
    }
    fn two() -> u32 {
        2
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            interval_s: 0,
            down_after: Self::three(),
            up_after: Self::two(),
        }
    }
}

/// One line of a trunk's cost table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Number prefix of the called user.
    pub prefix: Prefix,
    /// Cost per minute in the smallest unit you count in (e.g. tenths of a cent).
    pub cost: u32,
}

/// How a route spreads calls over its trunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Strategy {
    /// In the order listed; the next only when one fails or is down or full.
    #[default]
    Priority,
    /// At random in proportion to `weights`; the others follow as fallbacks, by weight.
    Weighted,
    /// Each call starts at the next trunk in turn.
    RoundRobin,
    /// Cheapest for the called number first (longest matching prefix in each trunk's `costs`; a trunk
    /// with no matching prefix comes last); ties in listed order.
    LeastCost,
}

impl Strategy {
    const ALL: [Self; 4] = [Self::Priority, Self::Weighted, Self::RoundRobin, Self::LeastCost];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Priority => "priority",
            Self::Weighted => "weighted",
            Self::RoundRobin => "round-robin",
            Self::LeastCost => "least-cost",
        }
    }
}

impl TryFrom<String> for Strategy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |t| t.as_str())
    }
}

/// Where a call came from, as a route matches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Source {
    /// A browser (SIP over WebSocket).
    Browser,
    /// Any configured trunk.
    AnyTrunk,
    /// A SIP peer that is not a configured trunk (a phone, an IP-PBX): never routed unless a route
    /// says so (toll fraud starts with routable strangers); restrict it with `source_networks`.
    Peer,
    /// That trunk.
    Trunk(Name),
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "browser" => Ok(Self::Browser),
            "trunk" => Ok(Self::AnyTrunk),
            "peer" => Ok(Self::Peer),
            _ => match s.strip_prefix("trunk:") {
                Some(n) => Name::try_from(n.to_owned()).map(Self::Trunk),
                None => Err(format!(
                    "unknown source \"{s}\": use \"browser\", \"trunk\" (any trunk), \"trunk:<name>\" or \"peer\" (a SIP peer that is no trunk)"
                )),
            },
        }
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Day {
    const ALL: [Self; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mon => "mon",
            Self::Tue => "tue",
            Self::Wed => "wed",
            Self::Thu => "thu",
            Self::Fri => "fri",
            Self::Sat => "sat",
            Self::Sun => "sun",
        }
    }

    /// 0 for Monday … 6 for Sunday.
    pub fn index(self) -> u8 {
        match self {
            Self::Mon => 0,
            Self::Tue => 1,
            Self::Wed => 2,
            Self::Thu => 3,
            Self::Fri => 4,
            Self::Sat => 5,
            Self::Sun => 6,
        }
    }
}

impl TryFrom<String> for Day {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |t| t.as_str())
    }
}

/// A daily time window `"08:00-18:00"` in minutes after midnight; `from > to` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeWindow {
    /// Start, minutes after midnight (inclusive).
    pub from: u16,
    /// End, minutes after midnight (exclusive).
    pub to: u16,
}

impl TimeWindow {
    /// Whether minute-of-day `m` is inside.
    pub fn contains(self, m: u16) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&m)
        } else {
            m >= self.from || m < self.to
        }
    }
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

impl TryFrom<String> for TimeWindow {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.split_once('-')
            .and_then(|(a, b)| {
                Some(Self {
                    from: minutes(a)?,
                    to: minutes(b)?,
                })
            })
            .filter(|w| w.from != w.to)
            .ok_or_else(|| format!("\"{s}\" is not a time window: write \"08:00-18:00\""))
    }
}

/// One header a route requires: its first value must match `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: HeaderText,
    /// What its value must match.
    pub regex: Pattern,
}

/// `[[routes]]`: the first route whose conditions all hold decides the call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Its name in logs and CDRs.
    pub name: Name,
    /// Where the call came from (any of; empty: from browsers).
    #[serde(default)]
    pub source: Vec<Source>,
    /// The sender's address is in one of these networks (empty: any).
    #[serde(default)]
    pub source_networks: Vec<Network>,
    /// The Request-URI user starts with one of these (empty: any).
    #[serde(default)]
    pub user_prefix: Vec<Prefix>,
    /// The Request-URI user matches.
    #[serde(default)]
    pub user_regex: Option<Pattern>,
    /// The From user matches.
    #[serde(default)]
    pub from_regex: Option<Pattern>,
    /// The To user matches.
    #[serde(default)]
    pub to_regex: Option<Pattern>,
    /// Headers that must be present and match.
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Days of the week it applies (local time, `[routing] utc_offset`; empty: every day).
    #[serde(default)]
    pub days: Vec<Day>,
    /// Time of day it applies (empty: all day).
    #[serde(default)]
    pub time: Option<TimeWindow>,
    /// The trunks it selects.
    #[serde(default)]
    pub trunks: Vec<Name>,
    /// How it picks among them.
    #[serde(default)]
    pub strategy: Strategy,
    /// `weighted`: one weight per trunk, in the same order.
    #[serde(default)]
    pub weights: Vec<u32>,
    /// Instead of trunks: answer the call with this status (400-699).
    #[serde(default)]
    pub reject: Option<u16>,
}

/// `[routing]`: alternative routing on failure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Final answers from a trunk that make the call try the route's next trunk.
    #[serde(default = "RoutingConfig::default_codes")]
    pub failover_codes: Vec<u16>,
    /// Also fail over when a trunk does not answer at all (Timer B) or cannot be reached.
    #[serde(default = "yes")]
    pub failover_on_timeout: bool,
    /// Total time one call may spend trying trunks, in seconds; after it, the last failure is final.
    #[serde(default = "RoutingConfig::default_budget")]
    pub failover_budget_s: u32,
    /// A trunk that sends nothing (not even 100 Trying) for this many seconds is given up for the
    /// route's next trunk (0: wait for Timer B, 32 s).
    #[serde(default = "RoutingConfig::default_attempt")]
    pub attempt_timeout_s: u32,
    /// Local time for `days`/`time` in routes: offset from UTC, `"+01:00"`.
    #[serde(default)]
    pub utc_offset: UtcOffset,
    /// The DNS server asked for trunks' SRV records (`"192.0.2.53"`, `"[2001:db8::53]:53"`); default:
    /// the first `nameserver` of /etc/resolv.conf. A and AAAA lookups use the system resolver.
    #[serde(default)]
    pub dns_server: Option<DnsServer>,
}

/// A DNS server address: an IP, with `:port` when not 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DnsServer(pub std::net::SocketAddr);

impl TryFrom<String> for DnsServer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(a) = s.parse::<std::net::SocketAddr>() {
            return Ok(Self(a));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(std::net::SocketAddr::new(ip, 53)))
            .map_err(|_| {
                format!("\"{s}\" is not a DNS server address: write \"192.0.2.53\" or \"127.0.0.1:5353\"")
            })
    }
}

fn yes() -> bool {
    true
}

impl RoutingConfig {
    fn default_codes() -> Vec<u16> {
        vec![408, 500, 502, 503, 504]
    }
    fn default_budget() -> u32 {
        30
    }
    fn default_attempt() -> u32 {
        5
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            failover_codes: Self::default_codes(),
            failover_on_timeout: true,
            failover_budget_s: Self::default_budget(),
            attempt_timeout_s: Self::default_attempt(),
            utc_offset: UtcOffset::default(),
            dns_server: None,
        }
    }
}

/// An offset from UTC in minutes, written `"+01:00"` / `"-05:30"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct UtcOffset(pub i16);

impl TryFrom<String> for UtcOffset {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let sign = match s.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => 0,
        };
        s.get(1..)
            .and_then(minutes)
            .filter(|m| sign != 0 && *m <= 14 * 60)
            .and_then(|m| i16::try_from(m).ok())
            .map(|m| Self(sign * m))
            .ok_or_else(|| format!("\"{s}\" is not a UTC offset: write \"+01:00\" or \"-05:30\""))
    }
}

/// `[admission]`: limits per source address, and how refusals are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// Concurrent calls from one source address (0: no limit).
    #[serde(default)]
    pub per_source_calls: u32,
    /// New calls per second from one source address (0: no limit).
    #[serde(default)]
    pub per_source_cps: u32,
    /// Status for calls over a limit: 503 (with Retry-After) or 486.
    #[serde(default = "Admission::default_status")]
    pub reject_status: u16,
    /// Retry-After on a 503, seconds.
    #[serde(default = "Admission::default_retry")]
    pub retry_after_s: u32,
}

impl Admission {
    fn default_status() -> u16 {
        503
    }
    fn default_retry() -> u32 {
        5
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            per_source_calls: 0,
            per_source_cps: 0,
            reject_status: Self::default_status(),
            retry_after_s: Self::default_retry(),
        }
    }
}

/// `[filter]`: who may call whom. Deny lists win over allow lists; an allow list that is not empty
/// admits only what it lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Caller (From user) prefixes refused.
    #[serde(default)]
    pub deny_callers: Vec<Prefix>,
    /// Called (Request-URI user) prefixes refused.
    #[serde(default)]
    pub deny_callees: Vec<Prefix>,
    /// If not empty, only callers with these prefixes.
    #[serde(default)]
    pub allow_callers: Vec<Prefix>,
    /// If not empty, only called numbers with these prefixes.
    #[serde(default)]
    pub allow_callees: Vec<Prefix>,
    /// Source networks refused.
    #[serde(default)]
    pub deny_networks: Vec<Network>,
    /// If not empty, only these source networks.
    #[serde(default)]
    pub allow_networks: Vec<Network>,
    /// User-Agent patterns refused (scanners: "friendly-scanner", "sipvicious").
    #[serde(default)]
    pub deny_user_agents: Vec<Pattern>,
    /// Refuse calls whose caller is anonymous (From user/host "anonymous", or `Privacy: id`).
    #[serde(default)]
    pub reject_anonymous: bool,
    /// Status for refused calls (default 403).
    #[serde(default = "Filter::default_status")]
    pub reject_status: u16,
}

impl Filter {
    fn default_status() -> u16 {
        403
    }
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            deny_callers: Vec::new(),
            deny_callees: Vec::new(),
            allow_callers: Vec::new(),
            allow_callees: Vec::new(),
            deny_networks: Vec::new(),
            allow_networks: Vec::new(),
            deny_user_agents: Vec::new(),
            reject_anonymous: false,
            reject_status: Self::default_status(),
        }
    }
}

/// What a `[[rewrite]]` rule changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum UserPart {
    /// The Request-URI user.
    Request,
    /// The From user.
    From,
    /// The To user.
    To,
}

impl TryFrom<String> for UserPart {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "request" => Ok(Self::Request),
            "from" => Ok(Self::From),
            "to" => Ok(Self::To),
            _ => Err(format!(
                "unknown user part \"{s}\": use \"request\", \"from\" or \"to\""
            )),
        }
    }
}

/// Which requests a `[[rewrite]]` rule applies to, on their way out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Toward {
    /// Every request sent to a trunk.
    Trunks,
    /// Every request sent to a browser.
    Browsers,
    /// Requests sent to that trunk.
    Trunk(Name),
}

impl TryFrom<String> for Toward {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "trunks" => Ok(Self::Trunks),
            "browsers" => Ok(Self::Browsers),
            _ => match s.strip_prefix("trunk:") {
                Some(n) => Name::try_from(n.to_owned()).map(Self::Trunk),
                None => Err(format!(
                    "unknown direction \"{s}\": use \"trunks\", \"browsers\" or \"trunk:<name>\""
                )),
            },
        }
    }
}

/// `[[rewrite]]`: one header manipulation rule, applied in file order to out-of-dialog requests
/// (INVITE, REGISTER, OPTIONS) on their way out. Exactly one of `header`/`user`, and exactly one
/// action: `add`, `set`, `remove = true`, or `pattern` + `replace`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Which requests.
    pub toward: Toward,
    /// A header name (not one that carries the dialog: Via, From, To, Call-ID, CSeq, Contact, ...).
    #[serde(default)]
    pub header: Option<SipHeader>,
    /// Or a user part.
    #[serde(default)]
    pub user: Option<UserPart>,
    /// Add a header with this value.
    #[serde(default)]
    pub add: Option<SipValue>,
    /// Set the header (all instances become one) or the user part to this value.
    #[serde(default)]
    pub set: Option<SipValue>,
    /// Remove the header.
    #[serde(default)]
    pub remove: bool,
    /// Rewrite: what to match.
    #[serde(default)]
    pub pattern: Option<Pattern>,
    /// Rewrite: the replacement (`$1`, `${name}` name captures).
    #[serde(default)]
    pub replace: Option<SipValue>,
}

impl Rewrite {
    /// The rule as the SIP core applies it (validation builds it once, so a rule the core would refuse
    /// is refused at its line in the file).
    pub fn rule(&self) -> Result<edge_sip::rewrite::Rule, String> {
        use edge_sip::rewrite::{Action, Rule, Target};
        let target = match (&self.header, self.user) {
            (Some(h), _) => Target::Header(h.field().clone()),
            (None, Some(UserPart::Request)) => Target::RequestUser,
            (None, Some(UserPart::From)) => Target::FromUser,
            (None, Some(UserPart::To)) => Target::ToUser,
            (None, None) => {
                return Err("a rule needs header = \"<name>\" or user = \"request\"|\"from\"|\"to\"".into());
            }
        };
        let action = if let Some(v) = &self.add {
            Action::Add(v.value().clone())
        } else if let Some(v) = &self.set {
            Action::Set(v.value().clone())
        } else if self.remove {
            Action::Remove
        } else if let (Some(p), Some(v)) = (&self.pattern, &self.replace) {
            Action::Rewrite {
                pattern: p.regex().clone(),
                replacement: v.value().clone(),
            }
        } else {
            return Err("a rule needs an action".into());
        };
        Rule::new(target, action).map_err(|e| e.to_string())
    }
}

/// A header name a rule may touch, checked by the SIP core's own rules (an RFC 3261 token, not a
/// header that carries the dialog).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SipHeader(String, edge_sip::rewrite::HeaderField);

impl SipHeader {
    /// The checked name.
    pub fn field(&self) -> &edge_sip::rewrite::HeaderField {
        &self.1
    }
}

impl PartialEq for SipHeader {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for SipHeader {}

impl TryFrom<String> for SipHeader {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let f = edge_sip::rewrite::HeaderField::new(&s).map_err(|e| e.to_string())?;
        Ok(Self(s, f))
    }
}

/// A header value or replacement: no CR, LF or other control character can be written (by type).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SipValue(String, edge_sip::rewrite::HeaderValue);

impl SipValue {
    /// The checked value.
    pub fn value(&self) -> &edge_sip::rewrite::HeaderValue {
        &self.1
    }
}

impl PartialEq for SipValue {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SipValue {}

impl TryFrom<String> for SipValue {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let v = edge_sip::rewrite::HeaderValue::new(&s).map_err(|e| e.to_string())?;
        Ok(Self(s, v))
    }
}

/// `[registrar]`: where browsers' REGISTERs go, and how many of their refreshes do.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registrar {
    /// The trunk (PBX) that is the registrar (default: the first trunk).
    #[serde(default)]
    pub trunk: Option<Name>,
    /// Registration offload: a browser's refresh is forwarded at most once per this many seconds
    /// (answered from the gateway's cache meanwhile) and the PBX is asked for bindings that outlive it.
    /// 0: every REGISTER is forwarded.
    #[serde(default)]
    pub offload_interval_s: u32,
}

type Invalid = (Vec<Seg>, String);

fn at(keys: &[Seg]) -> Vec<Seg> {
    keys.to_vec()
}

fn k(s: &str) -> Seg {
    Seg::Key(s.into())
}

impl crate::Config {
    /// Checks across `[[trunks]]`, `[[routes]]` and the policy sections: names that must exist, one
    /// weight per trunk, one action per rewrite rule, statuses that mean what they are used for.
    pub(crate) fn validate_routing(&self) -> Result<(), Invalid> {
        if self.sip.trunk.is_some() && !self.trunks.is_empty() {
            return Err((
                at(&[k("sip"), k("trunk")]),
                "[sip.trunk] is the one-trunk shorthand: with [[trunks]], list this trunk there too".into(),
            ));
        }
        let names: Vec<&Name> = self.trunks.iter().map(|t| &t.name).collect();
        let known = |n: &Name| names.contains(&n) || (self.sip.trunk.is_some() && n.as_str() == "trunk");
        for (i, t) in self.trunks.iter().enumerate() {
            let here = |key: &str| vec![k("trunks"), Seg::Index(i), k(key)];
            if names.get(..i).is_some_and(|earlier| earlier.contains(&&t.name)) {
                return Err((here("name"), format!("trunk \"{}\" is listed twice", t.name)));
            }
            self.check_trunk_transport(t.transport, t.ca_certificate.is_some(), &here("transport"))?;
            if t.username.is_some() != t.password.is_some() {
                return Err((
                    here(if t.username.is_some() {
                        "username"
                    } else {
                        "password"
                    }),
                    "digest credentials need both username and password".into(),
                ));
            }
            for (j, c) in t.codecs.iter().enumerate() {
                if t.codecs.get(..j).is_some_and(|e| e.contains(c)) {
                    return Err((
                        vec![k("trunks"), Seg::Index(i), k("codecs"), Seg::Index(j)],
                        format!("\"{}\" is listed twice", c.as_str()),
                    ));
                }
            }
            for (j, c) in t.costs.iter().enumerate() {
                if t.costs
                    .get(..j)
                    .is_some_and(|e| e.iter().any(|o| o.prefix == c.prefix))
                {
                    return Err((
                        vec![k("trunks"), Seg::Index(i), k("costs"), Seg::Index(j)],
                        format!("prefix \"{}\" is listed twice", c.prefix.as_str()),
                    ));
                }
            }
            if let Some(j) = self.trunks.get(..i).and_then(|e| {
                e.iter().position(|o| {
                    o.address == t.address
                        && o.port_or_default() == t.port_or_default()
                        && o.transport == t.transport
                })
            }) {
                return Err((
                    here("address"),
                    format!(
                        "trunks[{j}] is the same peer ({} {}:{})",
                        t.transport,
                        t.address,
                        t.port_or_default()
                    ),
                ));
            }
            if t.monitor.down_after == 0 || t.monitor.up_after == 0 {
                return Err((
                    vec![k("trunks"), Seg::Index(i), k("monitor")],
                    "down_after and up_after must be at least 1".into(),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let here = |key: &str| vec![k("routes"), Seg::Index(i), k(key)];
            if self
                .routes
                .get(..i)
                .is_some_and(|e| e.iter().any(|o| o.name == r.name))
            {
                return Err((here("name"), format!("route \"{}\" is listed twice", r.name)));
            }
            for (j, s) in r.source.iter().enumerate() {
                if let Source::Trunk(n) = s
                    && !known(n)
                {
                    return Err((
                        vec![k("routes"), Seg::Index(i), k("source"), Seg::Index(j)],
                        format!("no trunk is named \"{n}\""),
                    ));
                }
            }
            for (j, n) in r.trunks.iter().enumerate() {
                if !known(n) {
                    return Err((
                        vec![k("routes"), Seg::Index(i), k("trunks"), Seg::Index(j)],
                        format!("no trunk is named \"{n}\""),
                    ));
                }
            }
            match (r.reject, r.trunks.is_empty()) {
                (Some(code), true) if (400..=699).contains(&code) => {}
                (Some(code), true) => {
                    return Err((
                        here("reject"),
                        format!("must be a final status 400-699, got {code}"),
                    ));
                }
                (Some(_), false) => {
                    return Err((
                        here("reject"),
                        "a route either rejects or lists trunks, not both".into(),
                    ));
                }
                (None, true) => {
                    return Err((
                        here("trunks"),
                        "a route needs trunks (or reject = <status>)".into(),
                    ));
                }
                (None, false) => {}
            }
            if r.strategy == Strategy::Weighted {
                if r.weights.len() != r.trunks.len() {
                    return Err((
                        here("weights"),
                        format!(
                            "weighted: one weight per trunk ({} trunks, {} weights)",
                            r.trunks.len(),
                            r.weights.len()
                        ),
                    ));
                }
                if r.weights.iter().all(|w| *w == 0) {
                    return Err((here("weights"), "at least one weight must be above 0".into()));
                }
            } else if !r.weights.is_empty() {
                return Err((
                    here("weights"),
                    format!(
                        "weights only apply to strategy = \"weighted\", not \"{}\"",
                        r.strategy.as_str()
                    ),
                ));
            }
        }
        for (i, code) in self.routing.failover_codes.iter().enumerate() {
            if !(300..=699).contains(code) {
                return Err((
                    vec![k("routing"), k("failover_codes"), Seg::Index(i)],
                    format!("must be a final status 300-699, got {code}"),
                ));
            }
        }
        if self.routing.failover_budget_s == 0 {
            return Err((
                at(&[k("routing"), k("failover_budget_s")]),
                "must be at least 1 s".into(),
            ));
        }
        if !matches!(self.admission.reject_status, 486 | 503) {
            return Err((
                at(&[k("admission"), k("reject_status")]),
                format!(
                    "must be 503 (Service Unavailable, with Retry-After) or 486 (Busy Here), got {}",
                    self.admission.reject_status
                ),
            ));
        }
        if !(400..=699).contains(&self.filter.reject_status) {
            return Err((
                at(&[k("filter"), k("reject_status")]),
                format!(
                    "must be a final status 400-699, got {}",
                    self.filter.reject_status
                ),
            ));
        }
        for (i, r) in self.rewrite.iter().enumerate() {
            let here = |key: &str| vec![k("rewrite"), Seg::Index(i), k(key)];
            if let Toward::Trunk(n) = &r.toward
                && !known(n)
            {
                return Err((here("toward"), format!("no trunk is named \"{n}\"")));
            }
            match (&r.header, &r.user) {
                (Some(_), Some(_)) => {
                    return Err((
                        here("user"),
                        "a rule changes a header or a user part, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err((
                        vec![k("rewrite"), Seg::Index(i)],
                        "a rule needs header = \"<name>\" or user = \"request\"|\"from\"|\"to\"".into(),
                    ));
                }
                _ => {}
            }
            let actions = usize::from(r.add.is_some())
                + usize::from(r.set.is_some())
                + usize::from(r.remove)
                + usize::from(r.pattern.is_some() || r.replace.is_some());
            if actions != 1 {
                return Err((
                    vec![k("rewrite"), Seg::Index(i)],
                    "a rule needs exactly one action: add = \"..\", set = \"..\", remove = true, or pattern + replace".into(),
                ));
            }
            if r.pattern.is_some() != r.replace.is_some() {
                return Err((
                    here(if r.pattern.is_some() { "pattern" } else { "replace" }),
                    "pattern and replace go together".into(),
                ));
            }
            if r.user.is_some() && (r.add.is_some() || r.remove) {
                return Err((
                    here("user"),
                    "a user part can be set or rewritten, not added or removed".into(),
                ));
            }
            if let Err(e) = r.rule() {
                return Err((vec![k("rewrite"), Seg::Index(i)], e));
            }
        }
        if let Some(n) = &self.registrar.trunk
            && !known(n)
        {
            return Err((
                at(&[k("registrar"), k("trunk")]),
                format!("no trunk is named \"{n}\""),
            ));
        }
        if self.registrar.offload_interval_s != 0 && self.registrar.offload_interval_s < 10 {
            return Err((
                at(&[k("registrar"), k("offload_interval_s")]),
                format!(
                    "must be 0 (off) or at least 10 s, got {}",
                    self.registrar.offload_interval_s
                ),
            ));
        }
        Ok(())
    }

    /// A trunk's transport: one we can send on, with what it needs.
    pub(crate) fn check_trunk_transport(
        &self,
        transport: Transport,
        has_ca: bool,
        key: &[Seg],
    ) -> Result<(), Invalid> {
        if !matches!(transport, Transport::Udp | Transport::Tcp | Transport::Tls) {
            return Err((
                key.to_vec(),
                format!(
                    "transport \"{transport}\" toward a trunk is not supported; use \"udp\", \"tcp\" or \"tls\""
                ),
            ));
        }
        if transport == Transport::Tls && !has_ca {
            return Err((
                key.to_vec(),
                "a tls trunk needs ca_certificate (the PEM that signs its certificate)".into(),
            ));
        }
        // The trunk reaches us back (responses on UDP, in-dialog requests) at a listener of the same
        // transport, which our Via and Contact name.
        if !self.sip.listen.iter().any(|l| l.transport == transport) {
            return Err((
                key.to_vec(),
                format!("a {transport} trunk needs a {transport} listener in sip.listen to send from"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    use super::*;

    const LISTEN: &str =
        "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 5060\n";

    const FULL: &str = r#"
[[trunks]]
name = "carrier-a"
address = "127.0.0.1"
port = 5070
username = "gw"
password = "s3cret"
max_calls = 10
max_cps = 5
monitor = { interval_s = 5, down_after = 2, up_after = 1 }
costs = [{ prefix = "44", cost = 12 }, { prefix = "4420", cost = 9 }]

[[trunks]]
name = "carrier-b"
address = "sip.example.net"

[[routes]]
name = "blocked"
user_prefix = ["1900"]
reject = 403

[[routes]]
name = "uk-office-hours"
source = ["browser", "trunk:carrier-b"]
source_networks = ["10.0.0.0/8"]
user_regex = "^44[0-9]+$"
headers = [{ name = "X-Tenant", regex = "^acme$" }]
days = ["mon", "tue", "wed", "thu", "fri"]
time = "08:00-18:00"
trunks = ["carrier-a", "carrier-b"]
strategy = "weighted"
weights = [70, 30]

[routing]
failover_codes = [408, 503]
failover_budget_s = 20
utc_offset = "+01:00"

[admission]
per_source_calls = 4
reject_status = 486

[filter]
deny_callers = ["+1900"]
deny_networks = ["192.0.2.0/24"]
deny_user_agents = ["(?i)friendly-scanner"]
reject_anonymous = true

[[rewrite]]
toward = "trunk:carrier-a"
user = "request"
pattern = "^0([0-9]+)$"
replace = "+44$1"

[[rewrite]]
toward = "trunks"
header = "P-Asserted-Identity"
remove = true

[registrar]
trunk = "carrier-a"
offload_interval_s = 120
"#;

    fn err(text: &str) -> crate::ConfigError {
        Config::parse(&format!("{LISTEN}{text}"), "t.toml").expect_err("must be refused")
    }

    #[test]
    fn a_full_routing_section_is_read() {
        let c = Config::parse(&format!("{LISTEN}{FULL}"), "t.toml").unwrap();
        assert_eq!(c.trunks.len(), 2);
        let a = &c.trunks[0];
        assert_eq!(
            (a.max_calls, a.max_cps, a.monitor.interval_s, a.monitor.down_after),
            (10, 5, 5, 2)
        );
        assert_eq!(a.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(
            !format!("{a:?}").contains("s3cret"),
            "Debug must not show the password"
        );
        assert_eq!(c.trunks[1].address, Host::Name("sip.example.net".into()));
        assert_eq!(c.trunks[1].port_or_default(), 5060);
        let r = &c.routes[1];
        assert_eq!(r.strategy, Strategy::Weighted);
        assert_eq!(
            r.source,
            vec![Source::Browser, Source::Trunk(Name("carrier-b".into()))]
        );
        assert!(r.time.is_some_and(|w| w.contains(8 * 60) && !w.contains(18 * 60)));
        assert!(r.source_networks[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!r.source_networks[0].contains("11.0.0.1".parse().unwrap()));
        assert_eq!(c.routing.utc_offset, UtcOffset(60));
        assert_eq!(c.admission.reject_status, 486);
        assert!(c.filter.reject_anonymous);
        assert_eq!(c.rewrite.len(), 2);
        assert_eq!(c.registrar.offload_interval_s, 120);
    }

    #[test]
    fn values_are_checked_where_they_are_written() {
        for (text, key, line, says) in [
            (
                "[[trunks]]\nname = \"a b\"\naddress = \"127.0.0.1\"\n",
                "trunks[0].name",
                8,
                "is not a name",
            ),
            (
                "[[trunks]]\nname = \"a\"\naddress = \"-bad-\"\n",
                "trunks[0].address",
                9,
                "neither an IP",
            ),
            (
                "[filter]\ndeny_networks = [\"10.0.0.1/8\"]\n",
                "filter.deny_networks[0]",
                8,
                "host bits",
            ),
            (
                "[filter]\ndeny_user_agents = [\"(\"]\n",
                "filter.deny_user_agents[0]",
                8,
                "regular expression",
            ),
            (
                "[filter]\ndeny_callers = [\"12a\"]\n",
                "filter.deny_callers[0]",
                8,
                "not a number prefix",
            ),
            (
                "[routing]\nutc_offset = \"01:00\"\n",
                "routing.utc_offset",
                8,
                "UTC offset",
            ),
            (
                "[[rewrite]]\ntoward = \"trunks\"\nheader = \"Via\"\nremove = true\n",
                "rewrite[0].header",
                9,
                "carries the transaction",
            ),
            (
                "[[rewrite]]\ntoward = \"trunks\"\nheader = \"X-A\"\nadd = \"a\\r\\nVia: evil\"\n",
                "rewrite[0].add",
                10,
                "control",
            ),
        ] {
            let e = err(text);
            assert_eq!((e.key(), e.line()), (Some(key), Some(line)), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn cross_checks_name_the_entry() {
        let trunk = "[[trunks]]\nname = \"a\"\naddress = \"127.0.0.1\"\n";
        for (text, key, says) in [
            (format!("{trunk}{trunk}"), "trunks[1].name", "listed twice"),
            (
                format!("{trunk}[[routes]]\nname = \"r\"\ntrunks = [\"b\"]\n"),
                "routes[0].trunks[0]",
                "no trunk is named \"b\"",
            ),
            (
                format!("{trunk}[[routes]]\nname = \"r\"\n"),
                "routes[0].trunks",
                "needs trunks",
            ),
            (
                format!("{trunk}[[routes]]\nname = \"r\"\ntrunks = [\"a\"]\nreject = 403\n"),
                "routes[0].reject",
                "not both",
            ),
            (
                format!(
                    "{trunk}[[routes]]\nname = \"r\"\ntrunks = [\"a\"]\nstrategy = \"weighted\"\nweights = [1, 2]\n"
                ),
                "routes[0].weights",
                "one weight per trunk",
            ),
            (
                format!("{trunk}[[routes]]\nname = \"r\"\ntrunks = [\"a\"]\nweights = [1]\n"),
                "routes[0].weights",
                "only apply",
            ),
            (
                format!("{trunk}[[routes]]\nname = \"r\"\nsource = [\"trunk:zz\"]\ntrunks = [\"a\"]\n"),
                "routes[0].source[0]",
                "no trunk",
            ),
            (
                format!("{trunk}username = \"u\"\n"),
                "trunks[0].username",
                "both username and password",
            ),
            (
                format!("{trunk}transport = \"tcp\"\n"),
                "trunks[0].transport",
                "needs a tcp listener",
            ),
            (
                format!("{trunk}[admission]\nreject_status = 404\n"),
                "admission.reject_status",
                "503",
            ),
            (
                format!("{trunk}[registrar]\ntrunk = \"b\"\n"),
                "registrar.trunk",
                "no trunk",
            ),
            (
                format!("{trunk}[registrar]\noffload_interval_s = 5\n"),
                "registrar.offload_interval_s",
                "at least 10",
            ),
            (
                format!(
                    "{trunk}[[rewrite]]\ntoward = \"trunks\"\nheader = \"X-A\"\nadd = \"1\"\nremove = true\n"
                ),
                "rewrite[0]",
                "exactly one action",
            ),
            (
                format!("{trunk}[[rewrite]]\ntoward = \"trunks\"\nuser = \"from\"\nremove = true\n"),
                "rewrite[0].user",
                "not added or removed",
            ),
            (
                format!("{trunk}[[rewrite]]\ntoward = \"trunks\"\nuser = \"request\"\nset = \"a b\"\n"),
                "rewrite[0]",
                "user",
            ),
            (
                format!(
                    "{trunk}costs = [{{ prefix = \"44\", cost = 1 }}, {{ prefix = \"44\", cost = 2 }}]\n"
                ),
                "trunks[0].costs[1]",
                "listed twice",
            ),
            (
                format!("{trunk}[[trunks]]\nname = \"b\"\naddress = \"127.0.0.1\"\nport = 5060\n"),
                "trunks[1].address",
                "same peer",
            ),
            (
                format!("{trunk}[sip.trunk]\naddress = \"127.0.0.1\"\nport = 5070\ntransport = \"udp\"\n"),
                "sip.trunk",
                "shorthand",
            ),
        ] {
            let e = err(&text);
            assert_eq!(e.key(), Some(key), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn time_windows_wrap_past_midnight() {
        let w = TimeWindow::try_from("22:00-06:00".to_owned()).unwrap();
        assert!(w.contains(23 * 60) && w.contains(0) && w.contains(5 * 60 + 59));
        assert!(!w.contains(6 * 60) && !w.contains(12 * 60));
        assert!(TimeWindow::try_from("08:00-08:00".to_owned()).is_err());
        assert!(TimeWindow::try_from("8-18".to_owned()).is_err());
    }
}
