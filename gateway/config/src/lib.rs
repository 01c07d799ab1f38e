//! RTC Edge configuration.
//!
//! **Owns**: the TOML file format of `gatewayd`, its schema (the types below), the embedded default
//! configuration, and validation at load. A value that passes [`Config::parse`] is usable as it is: fields
//! are newtypes that were checked at the boundary ("parse, don't validate").
//!
//! **Never touches**: sockets, the clock, the file system beyond [`Config::load`] reading one file, or any
//! other crate's types. It is the only crate that knows the file format; everything else receives typed
//! values.
//!
//! Every refusal is a [`ConfigError`] that names the file, the line and column, and the key
//! (`sip.listen[0].port`), so that an operator can fix the file without guessing.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod json;
pub mod located;
pub mod routing;
pub mod web;

use located::{Document, FileError, Problem, Seg};

/// The commented default configuration, embedded in the binary. `gatewayd` with no `--config` runs it.
pub const DEFAULT_TOML: &str = include_str!("../gatewayd.toml");

/// Name under which the embedded default appears in error messages.
pub const DEFAULT_ORIGIN: &str = "<embedded default config>";

/// The configuration schema this build reads and writes (`schema = N` at the top of the file; a file
/// without it is schema 1). Older files are migrated forward in memory at load ([`MIGRATIONS`]); a file
/// written for a newer schema is refused, naming the key: after a rollback the older release reads its
/// own copy, `gatewayd.schema-<N>.toml` beside it ([`copy_for_schema`]), which whoever writes a newer
/// schema must keep.
pub const SCHEMA: u32 = 2;

/// One migration: rewrites a schema `from` table into schema `from + 1`.
pub type Migration = fn(&mut toml::Table) -> Result<(), String>;

/// The migrations, in order: entry `i` takes schema `i + 1` to `i + 2`.
///
/// 1 → 2: schema 2 added routing and policy (`[[trunks]]`, `[[routes]]`, `[routing]`, `[admission]`,
/// `[filter]`, `[[rewrite]]`, `[registrar]`); a schema-1 file means the same in schema 2 (its
/// `[sip.trunk]` is still the one-trunk shorthand), so the step only changes the number.
pub const MIGRATIONS: &[Migration] = &[|_| Ok(())];

/// The schema a configuration text declares (`schema = N`; 1 when absent or unreadable).
pub fn schema_of(text: &str) -> u32 {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("schema").and_then(toml::Value::as_integer))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
}

/// Where a configuration file keeps its copy for an older `schema` (`gatewayd.toml` →
/// `gatewayd.schema-1.toml`).
pub fn copy_for_schema(file: &Path, schema: u32) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "gatewayd".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.schema-{schema}.toml"))
}

/// Whether two configuration texts say the same apart from their `schema` key.
fn same_but_schema(a: &str, b: &str) -> bool {
    let table = |t: &str| {
        t.parse::<toml::Table>().ok().map(|mut t| {
            t.remove("schema");
            t
        })
    };
    matches!((table(a), table(b)), (Some(x), Some(y)) if x == y)
}

/// `text` (schema `from`) taken to schema `to` by `steps` (entry `i`: schema `i + 1` → `i + 2`).
fn migrate(text: &str, from: u32, to: u32, steps: &[Migration]) -> Result<String, String> {
    let mut table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
    for n in from..to {
        let step = n
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| steps.get(i))
            .ok_or_else(|| format!("no migration from schema {n}"))?;
        step(&mut table).map_err(|e| format!("migrating from schema {n}: {e}"))?;
    }
    table.insert("schema".into(), toml::Value::Integer(i64::from(to)));
    toml::to_string(&table).map_err(|e| e.to_string())
}

/// The whole `gatewayd` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The schema the file is written for (see [`SCHEMA`]).
    #[serde(default = "default_schema")]
    pub schema: u32,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// SIP signalling.
    pub sip: SipConfig,
    /// The media plane: addresses, ports, codecs, timeouts.
    #[serde(default)]
    pub media: MediaConfig,
    /// `[[trunks]]`: SIP peers calls go to (after load, `[sip.trunk]` is the first of them, named
    /// `trunk`).
    #[serde(default)]
    pub trunks: Vec<routing::Trunk>,
    /// `[[routes]]`: the routing table, first match wins. Without routes, browsers' calls go to the
    /// trunks in listed order.
    #[serde(default)]
    pub routes: Vec<routing::Route>,
    /// `[routing]`: alternative routing on failure, local time.
    #[serde(default)]
    pub routing: routing::RoutingConfig,
    /// `[admission]`: limits per source address.
    #[serde(default)]
    pub admission: routing::Admission,
    /// `[filter]`: deny and allow lists.
    #[serde(default)]
    pub filter: routing::Filter,
    /// `[[rewrite]]`: header manipulation on the way out.
    #[serde(default)]
    pub rewrite: Vec<routing::Rewrite>,
    /// `[registrar]`: where REGISTERs go; registration offload.
    #[serde(default)]
    pub registrar: routing::Registrar,
    /// `[web]`: the local web UI and REST API (absent: none).
    #[serde(default)]
    pub web: Option<web::WebConfig>,
}

fn default_schema() -> u32 {
    1
}

/// `[media]`: where call media is anchored and what it may carry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The browser side: one port per call (ICE, DTLS-SRTP, RTP and RTCP muxed).
    #[serde(default)]
    pub browser: MediaSide,
    /// The trunk side: an even RTP port and the RTCP port above it per call.
    #[serde(default)]
    pub trunk: MediaSide,
    /// Lowest UDP port for media (even, at least 1024).
    #[serde(default = "MediaConfig::default_port_min")]
    pub port_min: u16,
    /// Highest UDP port for media (inclusive).
    #[serde(default = "MediaConfig::default_port_max")]
    pub port_max: u16,
    /// Codecs allowed, most preferred first; the legs must share one (no transcoding).
    #[serde(default = "MediaConfig::default_codecs")]
    pub codecs: Vec<CodecName>,
    /// Packetisation time we ask of the trunk, 10-60 ms in steps of 10.
    #[serde(default = "MediaConfig::default_ptime")]
    pub ptime_ms: u32,
    /// Offer and accept RFC 4733 telephone-event (DTMF) toward the trunk.
    #[serde(default = "yes")]
    pub telephone_event: bool,
    /// SRTP on the trunk leg.
    #[serde(default)]
    pub trunk_srtp: TrunkSrtp,
    /// No RTP either way for this many seconds ends the call on both legs (0: never).
    #[serde(default = "MediaConfig::default_inactivity")]
    pub inactivity_timeout_s: u32,
    /// The same while the call is on hold (0: never).
    #[serde(default = "MediaConfig::default_hold")]
    pub hold_timeout_s: u32,
    /// SCHED_FIFO priority of the media thread, 1-99 (0: the normal scheduler). Real-time scheduling
    /// keeps the relay's added latency low when the box is busy; it needs root, CAP_SYS_NICE or an
    /// RLIMIT_RTPRIO at least this high (the systemd unit sets LimitRTPRIO), else the thread runs normally.
    #[serde(default = "MediaConfig::default_realtime")]
    pub realtime_priority: u8,
    /// While any call has media, ask the kernel (PM QoS, `/dev/cpu_dma_latency`) to keep every CPU out
    /// of idle states that take longer than this many µs to leave (0: CPUs poll instead of halting).
    /// A halted CPU, or a virtual CPU the hypervisor has to wake, adds its wake-up time to every packet
    /// that arrives while the media thread sleeps: on VMs this is most of the latency tail. Costs power
    /// while calls are up. Unset: no request. Needs root or access to the device, else it is logged.
    #[serde(default)]
    pub cpu_latency_us: Option<u32>,
}

/// The largest `[media] cpu_latency_us`: beyond a few ms no idle state is kept out any more.
pub const MAX_CPU_LATENCY_US: u32 = 10_000;

pub(crate) fn yes() -> bool {
    true
}

impl MediaConfig {
    fn default_port_min() -> u16 {
        16_384
    }
    fn default_port_max() -> u16 {
        32_767
    }
    fn default_codecs() -> Vec<CodecName> {
        vec![CodecName::Opus, CodecName::Pcmu, CodecName::Pcma, CodecName::G722]
    }
    fn default_ptime() -> u32 {
        20
    }
    fn default_inactivity() -> u32 {
        60
    }
    fn default_hold() -> u32 {
        7200
    }
    fn default_realtime() -> u8 {
        10
    }

    /// How many calls the port range holds (four ports each: browser, trunk RTP + RTCP, and the
    /// browser port's pair is skipped to keep trunk RTP ports even).
    pub fn max_calls(&self) -> usize {
        (usize::from(self.port_max) + 1).saturating_sub(usize::from(self.port_min)) / 4
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            browser: MediaSide::default(),
            trunk: MediaSide::default(),
            port_min: Self::default_port_min(),
            port_max: Self::default_port_max(),
            codecs: Self::default_codecs(),
            ptime_ms: Self::default_ptime(),
            telephone_event: true,
            trunk_srtp: TrunkSrtp::default(),
            inactivity_timeout_s: Self::default_inactivity(),
            hold_timeout_s: Self::default_hold(),
            realtime_priority: Self::default_realtime(),
            cpu_latency_us: None,
        }
    }
}

/// `[media.browser]` / `[media.trunk]`: the local address media binds to on that side, and the one
/// written into SDP when they differ (a 1:1 NAT in front of the box).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSide {
    /// IP to bind (`0.0.0.0` or `::` for every interface: then `advertised_address` is required).
    #[serde(default = "MediaSide::default_address")]
    pub address: IpAddr,
    /// IP the peer is told to send to (SDP `c=` and ICE candidates). Default: `address`.
    #[serde(default)]
    pub advertised_address: Option<IpAddr>,
}

impl MediaSide {
    fn default_address() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    /// The address written into SDP.
    pub fn advertised(&self) -> IpAddr {
        self.advertised_address.unwrap_or(self.address)
    }
}

impl Default for MediaSide {
    fn default() -> Self {
        Self {
            address: Self::default_address(),
            advertised_address: None,
        }
    }
}

/// A codec the gateway can bridge without transcoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum CodecName {
    /// Opus, 48 kHz.
    Opus,
    /// G.722, 16 kHz audio (8000 in SDP).
    G722,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl CodecName {
    const ALL: [Self; 4] = [Self::Opus, Self::G722, Self::Pcmu, Self::Pcma];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::G722 => "g722",
            Self::Pcmu => "pcmu",
            Self::Pcma => "pcma",
        }
    }
}

impl TryFrom<String> for CodecName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |t| t.as_str())
    }
}

/// SRTP on the trunk leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum TrunkSrtp {
    /// Plain RTP/AVP (what most PBXs and trunks speak).
    #[default]
    Off,
    /// RTP/SAVP keyed by SDES `a=crypto` (RFC 4568): only over a TLS trunk, or the keys go in clear.
    Sdes,
}

impl TrunkSrtp {
    const ALL: [Self; 2] = [Self::Off, Self::Sdes];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Sdes => "sdes",
        }
    }
}

impl TryFrom<String> for TrunkSrtp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |t| t.as_str())
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Minimum level written.
    #[serde(default)]
    pub level: LogLevel,
    /// Log phone numbers and URIs in clear instead of redacted.
    #[serde(default)]
    pub show_pii: bool,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default: lifecycle events (listening, stopping) and warnings.
    #[default]
    Info,
    /// Per-message detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    const ALL: [Self; 5] = [Self::Error, Self::Warn, Self::Info, Self::Debug, Self::Trace];

    /// The level as a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl TryFrom<String> for LogLevel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |l| l.as_str())
    }
}

/// Picks the variant whose name is `s`, or explains which names are allowed.
fn one_of<T: Copy>(s: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Result<T, String> {
    all.iter().copied().find(|v| name(*v) == s).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|v| format!("\"{}\"", name(*v))).collect();
        format!("unknown value \"{s}\", expected one of {}", names.join(", "))
    })
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// Server header value; `None` means the product default, `Some("")` means no header.
    #[serde(default)]
    pub server_header: Option<HeaderText>,
    /// Sockets to listen on.
    pub listen: Vec<Listen>,
    /// Certificate and key for the `tls` and `wss` listeners.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The one-trunk shorthand: at load it becomes `trunks[0]` named `trunk` (and this is `None`).
    #[serde(default)]
    pub trunk: Option<TrunkConfig>,
    /// Protection against oversize messages and floods.
    #[serde(default)]
    pub limits: Limits,
}

/// `[sip.limits]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest SIP message accepted on any transport, 1024-65535 bytes; larger requests get 513.
    #[serde(default = "Limits::default_max_message_bytes")]
    pub max_message_bytes: MessageSize,
    /// New INVITE/REGISTER per second from one source address (0 = unlimited); excess gets 503.
    #[serde(default = "Limits::default_rate")]
    pub per_source_rate: u32,
    /// How many such requests a source may send at once before the rate applies.
    #[serde(default = "Limits::default_burst")]
    pub per_source_burst: u32,
}

impl Limits {
    fn default_max_message_bytes() -> MessageSize {
        MessageSize(65_535)
    }
    fn default_rate() -> u32 {
        20
    }
    fn default_burst() -> u32 {
        40
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: Self::default_max_message_bytes(),
            per_source_rate: Self::default_rate(),
            per_source_burst: Self::default_burst(),
        }
    }
}

/// A message size limit, 1024-65535 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSize(u16);

impl MessageSize {
    /// The limit in bytes.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl<'de> Deserialize<'de> for MessageSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        u16::try_from(raw)
            .ok()
            .filter(|n| *n >= 1024)
            .map(MessageSize)
            .ok_or_else(|| serde::de::Error::custom(format!("must be 1024-65535 bytes, got {raw}")))
    }
}

/// `[sip.trunk]`: the next hop for calls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// IP address of the trunk or PBX (no DNS yet).
    pub address: IpAddr,
    /// Its SIP port.
    pub port: Port,
    /// Transport toward it: `udp` (sent from the first udp listener) or `tcp` (a connection opened on
    /// demand; our Via and Contact name the first tcp listener) or `tls` (the same, with the trunk's
    /// certificate verified against `ca_certificate`).
    pub transport: Transport,
    /// TLS: the name the trunk's certificate must carry (default: its IP address).
    #[serde(default)]
    pub server_name: Option<HeaderText>,
    /// TLS: the PEM certificate(s) that sign the trunk's certificate (relative to this file's folder).
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// Digest user name the gateway answers the trunk's 401/407 with.
    #[serde(default)]
    pub username: Option<HeaderText>,
    /// Digest password (needs `username`).
    #[serde(default)]
    pub password: Option<routing::Secret>,
}

impl TrunkConfig {
    /// The shorthand as the one `[[trunks]]` entry it stands for, named `trunk`.
    fn into_trunk(self) -> routing::Trunk {
        routing::Trunk {
            name: routing::Name::try_from("trunk".to_owned()).expect("\"trunk\" is a valid name"),
            address: routing::Host::Ip(self.address),
            port: Some(self.port),
            transport: self.transport,
            server_name: self.server_name,
            ca_certificate: self.ca_certificate,
            username: self.username,
            password: self.password,
            max_calls: 0,
            max_cps: 0,
            max_kbps: 0,
            monitor: routing::Monitor::default(),
            costs: Vec::new(),
            codecs: Vec::new(),
        }
    }
}

/// `[sip.tls]`: PEM files. Relative paths are relative to the configuration file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first (PEM).
    pub certificate: PathBuf,
    /// Private key of the leaf certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// One `[[sip.listen]]` socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Transport protocol.
    pub transport: Transport,
    /// IP address to bind.
    pub address: IpAddr,
    /// Port to bind.
    pub port: Port,
}

/// SIP transports a listener can serve. Further variants arrive with the transports that implement them,
/// so that no configuration is accepted that the gateway cannot honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Transport {
    /// SIP over UDP (RFC 3261 §18).
    Udp,
    /// SIP over TCP (RFC 3261 §18), Content-Length framed, CRLF keepalives (RFC 5626).
    Tcp,
    /// SIP over TLS (RFC 3261 §26), certificate from `[sip.tls]`.
    Tls,
    /// SIP over WebSocket (RFC 7118), subprotocol `sip`: what browsers (JsSIP, SIP.js) speak.
    Ws,
    /// SIP over secure WebSocket (`wss://`), certificate from `[sip.tls]`.
    Wss,
}

impl Transport {
    const ALL: [Self; 5] = [Self::Udp, Self::Tcp, Self::Tls, Self::Ws, Self::Wss];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Needs `[sip.tls]`.
    pub fn needs_certificate(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

impl TryFrom<String> for Transport {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |t| t.as_str())
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fixed TCP/UDP port, 1–65535. Port 0 ("any") is refused: an operator must know where we listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port(NonZeroU16);

impl Port {
    /// `n` as a port, unless it is 0.
    pub fn new(n: u16) -> Option<Self> {
        NonZeroU16::new(n).map(Self)
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        u16::try_from(raw)
            .ok()
            .and_then(NonZeroU16::new)
            .map(Port)
            .ok_or_else(|| serde::de::Error::custom(format!("port must be 1-65535, got {raw}")))
    }
}

/// Text that goes into a SIP header value: printable, one line, at most 128 bytes. CR, LF and other
/// control characters are impossible by construction, so configuration can never inject a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderText(String);

impl HeaderText {
    /// Longest value accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Self, String> {
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "must be at most {} bytes, got {}",
                Self::MAX_LEN,
                s.len()
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(format!(
                "must be one line of printable text, found control character {c:?}"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeaderText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// Why a configuration was refused. The operator is at fault; the message says where and what.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read config: {source}")]
    Read {
        /// Path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value in it is wrong (file, line, column, key).
    #[error(transparent)]
    File(#[from] FileError),
}

impl ConfigError {
    /// The offending key path, when the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::File(f) => f.key(),
            _ => None,
        }
    }

    /// The 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::File(f) => Some(f.line()),
            Self::Read { .. } => None,
        }
    }
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded_default() -> Self {
        // Invariant: DEFAULT_TOML is part of this crate and a unit test parses it.
        Self::parse(DEFAULT_TOML, DEFAULT_ORIGIN).expect("embedded default config is valid")
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse_for(&text, path)
    }

    /// Validates `text` as the file at `path` would be read (errors name `path`; relative paths in it
    /// are taken from `path`'s folder): what the web UI checks before it saves a file there.
    pub fn parse_for(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config = Self::parse(text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            let tls = config
                .sip
                .tls
                .iter_mut()
                .flat_map(|t| [&mut t.certificate, &mut t.private_key]);
            let ca = config.trunks.iter_mut().filter_map(|t| t.ca_certificate.as_mut());
            let web = config.web.iter_mut().flat_map(|w| {
                [
                    &mut w.certificate,
                    &mut w.private_key,
                    &mut w.state_dir,
                    &mut w.network_file,
                ]
                .into_iter()
                .flatten()
            });
            for p in tls.chain(ca).chain(web) {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates `text`; `origin` names it in errors (a path, or [`DEFAULT_ORIGIN`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, origin, MIGRATIONS)
    }

    fn parse_with(text: &str, origin: &str, steps: &[Migration]) -> Result<Self, ConfigError> {
        let located = |p: Problem| p.in_file(origin);
        let doc = Document::parse(text).map_err(located)?;
        let declared = schema_of(text);
        if declared > SCHEMA || declared == 0 {
            let message = format!(
                "the file is written for configuration schema {declared}; this gatewayd reads schemas 1 to {SCHEMA} \
                 (a newer release wrote it; this release's copy is {})",
                copy_for_schema(Path::new(origin), SCHEMA).display()
            );
            return Err(located(doc.problem_at(&[Seg::Key("schema".into())], message)).into());
        }
        if declared < SCHEMA {
            let migrated = migrate(text, declared, SCHEMA, steps)
                .map_err(|m| located(doc.problem_at(&[Seg::Key("schema".into())], m)))?;
            // A file the migrations leave as it was (they only change the number) is read as written,
            // so that its errors name its own lines.
            if same_but_schema(text, &migrated) {
                return Self::read_current(&doc, origin);
            }
            return Self::parse_with(
                &migrated,
                &format!("{origin} (migrated from schema {declared})"),
                steps,
            );
        }
        Self::read_current(&doc, origin)
    }

    /// Reads a document written for this schema.
    fn read_current(doc: &Document<'_>, origin: &str) -> Result<Self, ConfigError> {
        let located = |p: Problem| p.in_file(origin);
        let mut config: Self = doc.deserialize().map_err(located)?;
        config
            .validate()
            .map_err(|(path, message)| located(doc.problem_at(&path, message)))?;
        config
            .validate_routing()
            .map_err(|(path, message)| located(doc.problem_at(&path, message)))?;
        if let Some(t) = config.sip.trunk.take() {
            config.trunks.insert(0, t.into_trunk());
        }
        Ok(config)
    }

    /// Checks that span several keys, after the types have checked each value.
    fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let listen_path = || vec![Seg::Key("sip".into()), Seg::Key("listen".into())];
        if self.sip.listen.is_empty() {
            return Err((listen_path(), "at least one listener is required".into()));
        }
        if let Some(trunk) = &self.sip.trunk {
            let key = [
                Seg::Key("sip".into()),
                Seg::Key("trunk".into()),
                Seg::Key("transport".into()),
            ];
            self.check_trunk_transport(trunk.transport, trunk.ca_certificate.is_some(), &key)?;
            if trunk.password.is_some() && trunk.username.is_none() {
                return Err((
                    vec![
                        Seg::Key("sip".into()),
                        Seg::Key("trunk".into()),
                        Seg::Key("password".into()),
                    ],
                    "a password needs a username".into(),
                ));
            }
        }
        self.validate_media()?;
        self.validate_web()?;
        for (i, l) in self.sip.listen.iter().enumerate() {
            if l.transport.needs_certificate() && self.sip.tls.is_none() {
                let mut path = listen_path();
                path.extend([Seg::Index(i), Seg::Key("transport".into())]);
                return Err((
                    path,
                    format!(
                        "transport \"{}\" needs [sip.tls] with certificate and private_key",
                        l.transport
                    ),
                ));
            }
            if let Some(j) = self
                .sip
                .listen
                .get(..i)
                .and_then(|earlier| earlier.iter().position(|e| e == l))
            {
                let mut path = listen_path();
                path.push(Seg::Index(i));
                return Err((
                    path,
                    format!(
                        "{} {}:{} is already listed as sip.listen[{j}]",
                        l.transport,
                        l.address,
                        l.port.get()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_web(&self) -> Result<(), (Vec<Seg>, String)> {
        let Some(w) = &self.web else {
            return Ok(());
        };
        let key = |k: &str| vec![Seg::Key("web".into()), Seg::Key(k.into())];
        if !w.https && !w.address.is_loopback() && !w.allow_http {
            return Err((
                key("https"),
                format!(
                    "plain HTTP is served only on a loopback address (the admin password would cross the \
                     network in clear); use https = true, or set allow_http = true to serve {} anyway",
                    w.address
                ),
            ));
        }
        if w.certificate.is_some() != w.private_key.is_some() {
            let missing = if w.certificate.is_some() {
                "private_key"
            } else {
                "certificate"
            };
            return Err((key(missing), "certificate and private_key go together".into()));
        }
        if self.sip.listen.iter().any(|l| {
            l.port == w.port
                && l.transport != Transport::Udp
                && (l.address == w.address || l.address.is_unspecified() || w.address.is_unspecified())
        }) {
            return Err((
                key("port"),
                format!("port {} is already a SIP listener's", w.port.get()),
            ));
        }
        Ok(())
    }

    fn validate_media(&self) -> Result<(), (Vec<Seg>, String)> {
        let m = &self.media;
        let key = |k: &[&str]| {
            let mut p = vec![Seg::Key("media".into())];
            p.extend(k.iter().map(|k| Seg::Key((*k).into())));
            p
        };
        if m.port_min < 1024 || !m.port_min.is_multiple_of(2) {
            return Err((
                key(&["port_min"]),
                format!(
                    "must be even and at least 1024 (RTP ports are even), got {}",
                    m.port_min
                ),
            ));
        }
        if m.max_calls() == 0 {
            return Err((
                key(&["port_max"]),
                format!(
                    "the range {}-{} holds no call: each call needs four ports",
                    m.port_min, m.port_max
                ),
            ));
        }
        if self
            .sip
            .listen
            .iter()
            .any(|l| (m.port_min..=m.port_max).contains(&l.port.get()))
        {
            return Err((
                key(&["port_min"]),
                "the media port range overlaps a sip.listen port".into(),
            ));
        }
        if m.codecs.is_empty() {
            return Err((key(&["codecs"]), "at least one codec is required".into()));
        }
        if let Some((i, c)) = m
            .codecs
            .iter()
            .enumerate()
            .find(|(i, c)| m.codecs.get(..*i).is_some_and(|e| e.contains(c)))
        {
            let mut p = key(&["codecs"]);
            p.push(Seg::Index(i));
            return Err((p, format!("\"{}\" is listed twice", c.as_str())));
        }
        if !(10..=60).contains(&m.ptime_ms) || !m.ptime_ms.is_multiple_of(10) {
            return Err((
                key(&["ptime_ms"]),
                format!("must be 10, 20, 30, 40, 50 or 60, got {}", m.ptime_ms),
            ));
        }
        for side in ["browser", "trunk"] {
            let s = if side == "browser" { &m.browser } else { &m.trunk };
            if s.advertised().is_unspecified() {
                return Err((
                    key(&[side, "advertised_address"]),
                    format!(
                        "media bound to {} needs advertised_address: the peer must be told one address to send to",
                        s.address
                    ),
                ));
            }
        }
        if m.realtime_priority > 99 {
            return Err((
                key(&["realtime_priority"]),
                format!(
                    "must be 0 (normal scheduling) or 1-99, got {}",
                    m.realtime_priority
                ),
            ));
        }
        if let Some(us) = m.cpu_latency_us
            && us > MAX_CPU_LATENCY_US
        {
            return Err((
                key(&["cpu_latency_us"]),
                format!("must be 0-{MAX_CPU_LATENCY_US} µs (leave it out for no request), got {us}"),
            ));
        }
        if m.inactivity_timeout_s != 0 && m.inactivity_timeout_s < 5 {
            return Err((
                key(&["inactivity_timeout_s"]),
                format!(
                    "must be 0 (never) or at least 5 s, got {}",
                    m.inactivity_timeout_s
                ),
            ));
        }
        if m.trunk_srtp == TrunkSrtp::Sdes
            && (self
                .sip
                .trunk
                .as_ref()
                .is_some_and(|t| t.transport != Transport::Tls)
                || self.trunks.iter().any(|t| t.transport != Transport::Tls))
        {
            return Err((
                key(&["trunk_srtp"]),
                "SDES keys travel in the SDP: \"sdes\" needs a tls trunk, or anyone on the path reads them"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 5060\n";

    #[test]
    fn schema_is_declared_checked_and_migrated_forward() {
        assert_eq!(Config::parse(MINIMAL, "g.toml").unwrap().schema, 1);
        assert_eq!(schema_of(MINIMAL), 1);
        assert_eq!(schema_of(&format!("schema = 1\n{MINIMAL}")), 1);
        // A file written by a newer release is refused naming the key, the line and this release's copy.
        let newer = format!("# written by a newer release\nschema = {}\n{MINIMAL}", SCHEMA + 1);
        let e = Config::parse(&newer, "/data/etc/rtc-edge/gatewayd.toml").unwrap_err();
        assert_eq!((e.key(), e.line()), (Some("schema"), Some(2)), "{e}");
        assert!(
            e.to_string().contains(&format!("gatewayd.schema-{SCHEMA}.toml")),
            "{e}"
        );
        assert_eq!(
            copy_for_schema(Path::new("/data/etc/rtc-edge/gatewayd.toml"), 3),
            Path::new("/data/etc/rtc-edge/gatewayd.schema-3.toml")
        );
        // The migration machinery, with a made-up step 1 → 2: steps run in order and the result
        // declares the schema it reached.
        fn rename_level(t: &mut toml::Table) -> Result<(), String> {
            if let Some(toml::Value::Table(log)) = t.get_mut("log")
                && let Some(v) = log.remove("verbosity")
            {
                log.insert("level".into(), v);
            }
            Ok(())
        }
        let old = format!("[log]\nverbosity = \"debug\"\n{MINIMAL}");
        let text = migrate(&old, 1, 2, &[rename_level]).unwrap();
        assert!(
            text.contains("schema = 2") && text.contains("level = \"debug\""),
            "{text}"
        );
        assert!(!text.contains("verbosity"), "{text}");
        assert!(
            migrate(&old, 1, 3, &[rename_level]).is_err(),
            "a missing step is an error, never a skip"
        );
        assert!(migrate(&old, 0, 1, &[rename_level]).is_err());
        assert_eq!(MIGRATIONS.len(), usize::try_from(SCHEMA - 1).unwrap());
    }

    fn err(text: &str) -> ConfigError {
        Config::parse(text, "test.toml").expect_err("config must be refused")
    }

    const GOOD: &str = "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 5060\n";

    #[test]
    fn embedded_default_parses_and_listens_on_loopback_udp_tcp_and_ws() {
        let c = Config::embedded_default();
        assert_eq!(c.log.level, LogLevel::Info);
        assert!(!c.log.show_pii);
        assert_eq!(c.sip.server_header, None);
        let at = |transport| Listen {
            transport,
            address: "127.0.0.1".parse().unwrap(),
            port: Port(NonZeroU16::new(5060).unwrap()),
        };
        let ws = Listen {
            port: Port(NonZeroU16::new(5066).unwrap()),
            ..at(Transport::Ws)
        };
        assert_eq!(c.sip.listen, vec![at(Transport::Udp), at(Transport::Tcp), ws]);
    }

    #[test]
    fn embedded_default_media_and_minimal_config_agree() {
        let c = Config::embedded_default();
        assert_eq!(c.media, Config::parse(GOOD, "x").unwrap().media);
        assert_eq!(c.media.max_calls(), 4096);
        assert_eq!(c.media.browser.advertised(), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            c.media.codecs,
            [CodecName::Opus, CodecName::Pcmu, CodecName::Pcma, CodecName::G722]
        );
        assert_eq!(c.media.trunk_srtp, TrunkSrtp::Off);
    }

    #[test]
    fn media_section_is_read_and_checked() {
        let ok = format!(
            "{GOOD}[media]\nport_min = 40000\nport_max = 40099\ncodecs = [\"pcma\"]\nptime_ms = 30\n\
             inactivity_timeout_s = 0\n[media.browser]\naddress = \"0.0.0.0\"\nadvertised_address = \"203.0.113.7\"\n"
        );
        let c = Config::parse(&ok, "x").unwrap();
        assert_eq!(c.media.max_calls(), 25);
        assert_eq!(c.media.codecs, [CodecName::Pcma]);
        assert_eq!(c.media.browser.advertised(), IpAddr::from([203, 0, 113, 7]));
        assert_eq!(c.media.trunk.advertised(), IpAddr::from([127, 0, 0, 1]));
        let cases: &[(&str, &str, usize, &str)] = &[
            ("[media]\nport_min = 20001\n", "media.port_min", 7, "even"),
            ("[media]\nport_min = 80\n", "media.port_min", 7, "at least 1024"),
            (
                "[media]\nport_min = 20000\nport_max = 20002\n",
                "media.port_max",
                8,
                "four ports",
            ),
            (
                "[media]\nport_min = 5000\nport_max = 6000\n",
                "media.port_min",
                7,
                "overlaps",
            ),
            ("[media]\ncodecs = []\n", "media.codecs", 7, "at least one"),
            (
                "[media]\ncodecs = [\"pcmu\", \"gsm\"]\n",
                "media.codecs[1]",
                7,
                "gsm",
            ),
            (
                "[media]\ncodecs = [\"pcmu\",\n \"pcmu\"]\n",
                "media.codecs[1]",
                8,
                "twice",
            ),
            ("[media]\nptime_ms = 25\n", "media.ptime_ms", 7, "20, 30"),
            ("[media]\ntrunk_srtp = \"dtls\"\n", "media.trunk_srtp", 7, "sdes"),
            (
                "[media]\ninactivity_timeout_s = 2\n",
                "media.inactivity_timeout_s",
                7,
                "at least 5",
            ),
            (
                "[media]\nrealtime_priority = 100\n",
                "media.realtime_priority",
                7,
                "1-99",
            ),
            (
                "[media]\ncpu_latency_us = 20000\n",
                "media.cpu_latency_us",
                7,
                "0-10000",
            ),
            (
                "[media.trunk]\naddress = \"::\"\n",
                "media.trunk.advertised_address",
                6,
                "advertised_address",
            ),
            ("[media]\nrtp_port = 4\n", "media.rtp_port", 7, "unknown field"),
            (
                "[sip.trunk]\naddress = \"10.0.0.1\"\nport = 5060\ntransport = \"udp\"\n[media]\ntrunk_srtp = \"sdes\"\n",
                "media.trunk_srtp",
                11,
                "tls trunk",
            ),
        ];
        for (extra, key, line, what) in cases {
            let e = err(&format!("{GOOD}{extra}"));
            assert_eq!(e.key(), Some(*key), "{extra}: {e}");
            assert_eq!(e.line(), Some(*line), "{extra}: {e}");
            assert!(e.to_string().contains(what), "{extra}: {e}");
            assert!(e.to_string().starts_with("test.toml:"), "{e}");
        }
    }

    #[test]
    fn same_port_on_udp_and_tcp_is_not_a_duplicate() {
        let text =
            format!("{GOOD}[[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1\"\nport = 5060\n");
        assert_eq!(Config::parse(&text, "x").unwrap().sip.listen.len(), 2);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(GOOD, "x").unwrap();
        assert_eq!(c.log, LogConfig::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[log]\nlevel = \"info\"\nlevle = \"debug\"\n[sip]\nlisten = []\n");
        let msg = e.to_string();
        assert_eq!(e.key(), Some("log.levle"), "{msg}");
        assert_eq!(e.line(), Some(3), "{msg}");
        assert!(msg.starts_with("test.toml:3:"), "{msg}");
        assert!(msg.contains("unknown field `levle`"), "{msg}");
    }

    #[test]
    fn unknown_top_level_section() {
        let e = err(&format!("{GOOD}[webui]\nports = 1\n"));
        assert_eq!(e.key(), Some("webui"), "{e}");
        assert_eq!(e.line(), Some(6), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err("[log]\nshow_pii = \"yes\"\n[sip]\nlisten = []\n");
        assert_eq!(e.key(), Some("log.show_pii"), "{e}");
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(e.to_string().contains("expected a boolean"), "{e}");
        let e = err("[log]\nlevel = 3\n[sip]\nlisten = []\n");
        assert_eq!(e.key(), Some("log.level"), "{e}");
        assert!(
            e.to_string()
                .contains("invalid type: integer `3`, expected a string"),
            "{e}"
        );
        let e = err("[log]\nlevel = \"loud\"\n[sip]\nlisten = []\n");
        assert!(
            e.to_string()
                .contains("expected one of \"error\", \"warn\", \"info\", \"debug\", \"trace\""),
            "{e}"
        );
    }

    #[test]
    fn port_out_of_range_and_zero_and_string_are_refused() {
        for (value, expect) in [
            ("70000", "port must be 1-65535, got 70000"),
            ("0", "got 0"),
            ("-1", "got -1"),
            ("\"5060\"", "invalid type"),
        ] {
            let text = GOOD.replace("5060", value);
            let e = err(&text);
            assert_eq!(e.key(), Some("sip.listen[0].port"), "{value}: {e}");
            assert_eq!(e.line(), Some(5), "{value}: {e}");
            assert!(e.to_string().contains(expect), "{value}: {e}");
        }
    }

    #[test]
    fn bad_enum_and_bad_address() {
        let e = err(&GOOD.replace("\"udp\"", "\"sctp\""));
        assert_eq!(e.key(), Some("sip.listen[0].transport"), "{e}");
        assert!(
            e.to_string()
                .contains("unknown value \"sctp\", expected one of \"udp\""),
            "{e}"
        );
        assert_eq!(e.line(), Some(3), "{e}");
        let e = err(&GOOD.replace("127.0.0.1", "localhost"));
        assert_eq!(e.key(), Some("sip.listen[0].address"), "{e}");
        assert_eq!(e.line(), Some(4), "{e}");
    }

    #[test]
    fn missing_required_section() {
        let e = err("[log]\nlevel = \"warn\"\n");
        assert!(e.to_string().contains("missing field `sip`"), "{e}");
        assert_eq!(e.key(), Some("sip"), "the missing key itself: {e}");
    }

    #[test]
    fn cross_field_errors_point_at_the_entry() {
        let e = err("[sip]\nlisten = []\n");
        assert_eq!(e.key(), Some("sip.listen"), "{e}");
        assert_eq!(e.line(), Some(2), "{e}");
        let e = err(&format!(
            "{GOOD}[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 5060\n"
        ));
        assert_eq!(e.key(), Some("sip.listen[1]"), "{e}");
        assert_eq!(e.line(), Some(6), "{e}"); // its `[[sip.listen]]` header
        assert!(e.to_string().contains("already listed as sip.listen[0]"), "{e}");
    }

    #[test]
    fn header_text_cannot_carry_a_line_break() {
        let e = err(&format!(
            "[sip]\nserver_header = \"x\\r\\nVia: evil\"\n{}",
            GOOD.trim_start_matches("[sip]\n")
        ));
        assert_eq!(e.key(), Some("sip.server_header"), "{e}");
        assert!(e.to_string().contains("control character"), "{e}");
        let c = Config::parse(
            &format!(
                "[sip]\nserver_header = \"\"\n{}",
                GOOD.trim_start_matches("[sip]\n")
            ),
            "x",
        )
        .unwrap();
        assert_eq!(c.sip.server_header.as_ref().map(HeaderText::as_str), Some(""));
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_relative_paths_follow_the_file() {
        let wss = GOOD.replace("\"udp\"", "\"wss\"");
        let e = err(&wss);
        assert_eq!(e.key(), Some("sip.listen[0].transport"), "{e}");
        assert_eq!(e.line(), Some(3), "{e}");
        assert!(e.to_string().contains("needs [sip.tls]"), "{e}");
        let with_tls =
            format!("{wss}[sip.tls]\ncertificate = \"certs/gw.pem\"\nprivate_key = \"/abs/gw.key\"\n");
        let dir = std::env::temp_dir().join(format!("edge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatewayd.toml");
        std::fs::write(&file, with_tls).unwrap();
        let tls = Config::load(&file).unwrap().sip.tls.unwrap();
        assert_eq!(tls.certificate, dir.join("certs/gw.pem"));
        assert_eq!(tls.private_key, PathBuf::from("/abs/gw.key"));
        let e = err(&format!("{GOOD}[sip.tls]\ncertificate = \"a\"\n"));
        assert!(e.to_string().contains("missing field `private_key`"), "{e}");
    }

    #[test]
    fn trunk_is_checked_against_listeners() {
        let trunk = "[sip.trunk]\naddress = \"127.0.0.1\"\nport = 5070\ntransport = \"udp\"\n";
        let c = Config::parse(&format!("{GOOD}{trunk}"), "x").unwrap();
        assert!(c.sip.trunk.is_none(), "the shorthand becomes trunks[0]");
        assert_eq!(c.trunks.len(), 1);
        assert_eq!(
            (c.trunks[0].name.as_str(), c.trunks[0].port_or_default()),
            ("trunk", 5070)
        );
        let e = err(&format!("{GOOD}{}", trunk.replace("\"udp\"", "\"tcp\"")));
        assert_eq!((e.key(), e.line()), (Some("sip.trunk.transport"), Some(9)), "{e}");
        assert!(e.to_string().contains("a tcp trunk needs a tcp listener"), "{e}");
        let e = err(&format!("{GOOD}{}", trunk.replace("\"udp\"", "\"wss\"")));
        assert!(e.to_string().contains("not supported"), "{e}");
        let tls_listen =
            GOOD.replace("\"udp\"", "\"tls\"") + "[sip.tls]\ncertificate = \"c\"\nprivate_key = \"k\"\n";
        let e = err(&format!("{tls_listen}{}", trunk.replace("\"udp\"", "\"tls\"")));
        assert!(e.to_string().contains("a tls trunk needs ca_certificate"), "{e}");
        let ok = format!(
            "{tls_listen}{}ca_certificate = \"ca.pem\"\nserver_name = \"pbx.example.com\"\n",
            trunk.replace("\"udp\"", "\"tls\"")
        );
        let t = Config::parse(&ok, "x").unwrap().trunks.remove(0);
        assert_eq!(
            t.server_name.as_ref().map(HeaderText::as_str),
            Some("pbx.example.com")
        );
        let e = err(&format!("{}{trunk}", GOOD.replace("\"udp\"", "\"tcp\"")));
        assert!(e.to_string().contains("needs a udp listener"), "{e}");
        let e = err(&format!("{GOOD}{}", trunk.replace("5070", "0")));
        assert_eq!(e.key(), Some("sip.trunk.port"), "{e}");
    }

    #[test]
    fn limits_have_defaults_and_ranges() {
        let c = Config::parse(GOOD, "x").unwrap();
        assert_eq!(c.sip.limits, Limits::default());
        assert_eq!(c.sip.limits.max_message_bytes.get(), 65_535);
        let c = Config::parse(&format!("{GOOD}[sip.limits]\nper_source_rate = 0\n"), "x").unwrap();
        assert_eq!(
            (c.sip.limits.per_source_rate, c.sip.limits.per_source_burst),
            (0, 40)
        );
        let e = err(&format!("{GOOD}[sip.limits]\nmax_message_bytes = 100\n"));
        assert_eq!(
            (e.key(), e.line()),
            (Some("sip.limits.max_message_bytes"), Some(7)),
            "{e}"
        );
        assert!(e.to_string().contains("must be 1024-65535 bytes, got 100"), "{e}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("[sip\nlisten = []\n");
        assert!(
            matches!(e, ConfigError::File(FileError::Syntax { line: 1, .. })),
            "{e}"
        );
        assert!(e.to_string().starts_with("test.toml:1:"), "{e}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/gatewayd.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/gatewayd.toml: cannot read config"),
            "{e}"
        );
    }
}
