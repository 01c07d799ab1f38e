//! PID 1's settings: `/slot/etc/rtc-edge/init.toml` (written by the image builder from the board file)
//! and the `[network]` override in `/data/etc/rtc-edge/network.toml`. The schema is image/README.md's.
//!
//! Pure: text in, typed values out. Every refusal is a [`ConfigError`] naming the file, line, column and
//! key (`network.address`), built as `edge-config` builds gatewayd's: the text is parsed into a spanned
//! table once, deserialised through `serde_path_to_error` for the key, and cross-field checks are
//! located back in the spanned table. The shell prints the error and falls back to [`InitConfig::default`]
//! (or, for `network.toml`, to the slot's `[network]`): PID 1 never stops on a bad file.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::time::Duration;

use edge_config::located::{Document, Seg};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where the slot keeps PID 1's settings.
pub const INIT_TOML: &str = "/slot/etc/rtc-edge/init.toml";
/// The operator's network override on the data partition.
pub const NETWORK_TOML: &str = "/data/etc/rtc-edge/network.toml";

/// The whole `init.toml`. Every key has a default (image/README.md's example values), so a file may
/// name only what differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// `[watchdog]`: the hardware watchdog.
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    /// `[gatewayd]`: the supervised daemon.
    #[serde(default)]
    pub gatewayd: GatewaydConfig,
    /// `[network]`: the first Ethernet interface.
    #[serde(default)]
    pub network: NetworkConfig,
}

/// `[watchdog]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// The watchdog device; absent on the board means no petting (and PID 1 reboots itself instead).
    #[serde(default = "WatchdogConfig::default_device")]
    pub device: AbsPath,
    /// Seconds without a pet before the board resets (1-3600); PID 1 pets every third of it.
    #[serde(default = "WatchdogConfig::default_timeout")]
    pub timeout_s: Bounded<1, 3600>,
}

impl WatchdogConfig {
    fn default_device() -> AbsPath {
        AbsPath(PathBuf::from("/dev/watchdog"))
    }
    fn default_timeout() -> Bounded<1, 3600> {
        Bounded(10)
    }

    /// How often the watchdog is petted: a third of its timeout.
    pub fn pet_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_s.get())) / 3
    }
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            device: Self::default_device(),
            timeout_s: Self::default_timeout(),
        }
    }
}

/// `[gatewayd]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaydConfig {
    /// The daemon's binary.
    #[serde(default = "GatewaydConfig::default_path")]
    pub path: AbsPath,
    /// `WATCHDOG_USEC` given to gatewayd: after READY, a `WATCHDOG=1` at least this often (0: not watched).
    #[serde(default = "GatewaydConfig::default_watchdog_usec")]
    pub watchdog_usec: u64,
    /// Not READY and probed healthy this long after supervision starts (or after it was last healthy):
    /// PID 1 stops petting the watchdog.
    #[serde(default = "GatewaydConfig::default_ready_timeout")]
    pub ready_timeout_s: NonZeroU32,
    /// Health probe: SIP OPTIONS to 127.0.0.1 on this UDP port must be answered 200.
    #[serde(default = "GatewaydConfig::default_probe_port")]
    pub sip_probe_port: NonZeroU16,
}

impl GatewaydConfig {
    fn default_path() -> AbsPath {
        AbsPath(PathBuf::from("/slot/usr/bin/gatewayd"))
    }
    fn default_watchdog_usec() -> u64 {
        4_000_000
    }
    fn default_ready_timeout() -> NonZeroU32 {
        NonZeroU32::new(30).expect("30 is not zero")
    }
    fn default_probe_port() -> NonZeroU16 {
        NonZeroU16::new(5060).expect("5060 is not zero")
    }

    /// The sd_notify watchdog period, `None` when it is off.
    pub fn watchdog(&self) -> Option<Duration> {
        (self.watchdog_usec > 0).then(|| Duration::from_micros(self.watchdog_usec))
    }
}

impl Default for GatewaydConfig {
    fn default() -> Self {
        Self {
            path: Self::default_path(),
            watchdog_usec: Self::default_watchdog_usec(),
            ready_timeout_s: Self::default_ready_timeout(),
            sip_probe_port: Self::default_probe_port(),
        }
    }
}

/// How the interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// `address`, `gateway` and `dns` as written.
    Static,
    /// Address, router and DNS from a DHCPv4 server.
    Dhcp,
}

/// `[network]`. A file that has the table means what it writes: no `gateway` is no default route, no
/// `dns` no resolv.conf, and a static `mode` needs its `address`. Only a file without the table gets
/// [`NetworkConfig::default`] (image/README.md's example, QEMU's user network).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `static` or `dhcp`.
    #[serde(default = "NetworkConfig::default_mode")]
    pub mode: NetMode,
    /// `a.b.c.d/prefix` (static; required then).
    #[serde(default)]
    pub address: Option<Ipv4Cidr>,
    /// Default route's next hop (static); must be inside `address`'s subnet. `""`: none.
    #[serde(default, deserialize_with = "de_gateway")]
    pub gateway: Option<Ipv4Addr>,
    /// Name servers for `/etc/resolv.conf` (at most 3, resolv.conf's limit).
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// SNTP server, `host` or `host:port`; empty keeps the RTC's time.
    #[serde(default)]
    pub ntp: NtpServer,
}

/// A gateway: an IPv4 address, or `""` for none.
fn de_gateway<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected an IPv4 address, or \"\" for no default route, found {s:?}"
        ))
    })
}

/// The same, for the override: present (`Some`, possibly `Some(None)`) or absent.
fn de_gateway_override<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Ipv4Addr>>, D::Error> {
    de_gateway(d).map(Some)
}

impl NetworkConfig {
    fn default_mode() -> NetMode {
        NetMode::Static
    }

    /// Checks that span keys, after each value was checked by its type.
    fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let key = |k: &str| vec![Seg::Key("network".into()), Seg::Key(k.into())];
        if self.dns.len() > 3 {
            return Err((
                key("dns"),
                format!("at most 3 name servers (found {})", self.dns.len()),
            ));
        }
        if self.mode == NetMode::Static {
            let Some(address) = self.address else {
                return Err((
                    key("address"),
                    "mode \"static\" needs an address like \"192.0.2.10/24\"".into(),
                ));
            };
            if let Some(gw) = self.gateway
                && !address.contains(gw)
            {
                return Err((
                    key("gateway"),
                    format!("gateway {gw} is outside {address} (it must be on the link)"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for NetworkConfig {
    /// image/README.md's example: QEMU's user network.
    fn default() -> Self {
        Self {
            mode: NetMode::Static,
            address: Some(Ipv4Cidr {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
            }),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3))],
            ntp: NtpServer::default(),
        }
    }
}

/// `network.toml` on the data partition: the keys of `[network]` it names replace the slot's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    #[serde(default)]
    network: NetworkOverride,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkOverride {
    mode: Option<NetMode>,
    address: Option<Ipv4Cidr>,
    #[serde(default, deserialize_with = "de_gateway_override")]
    gateway: Option<Option<Ipv4Addr>>,
    dns: Option<Vec<IpAddr>>,
    ntp: Option<NtpServer>,
}

/// An IPv4 address with its prefix length, `10.0.2.15/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Ipv4Cidr {
    /// The interface's address.
    pub address: Ipv4Addr,
    /// 0-32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    fn mask(self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    /// Whether `ip` is on this subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.address)) & self.mask() == 0
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let err =
            || format!("expected an IPv4 address with a prefix length like \"10.0.2.15/24\", found {s:?}");
        let (a, p) = s.split_once('/').ok_or_else(err)?;
        let address: Ipv4Addr = a.parse().map_err(|_| err())?;
        let prefix: u8 = p.parse().map_err(|_| err())?;
        if prefix > 32 {
            return Err(format!("prefix length /{prefix} is over 32"));
        }
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// An absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AbsPath(PathBuf);

impl AbsPath {
    /// The path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl TryFrom<String> for AbsPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !s.starts_with('/') || s.contains('\0') {
            return Err(format!("expected an absolute path, found {s:?}"));
        }
        Ok(Self(PathBuf::from(s)))
    }
}

/// An unsigned integer in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Bounded<const MIN: u32, const MAX: u32>(u32);

impl<const MIN: u32, const MAX: u32> Bounded<MIN, MAX> {
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const MIN: u32, const MAX: u32> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u32::try_from(v)
            .ok()
            .filter(|v| (MIN..=MAX).contains(v))
            .map(Self)
            .ok_or_else(|| format!("must be {MIN}-{MAX}, found {v}"))
    }
}

/// The SNTP server: empty (keep the RTC's time), `host` or `host:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NtpServer(String);

impl NtpServer {
    /// `host:port` to resolve, `None` when no server is configured.
    pub fn target(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let has_port = match self.0.rsplit_once(':') {
            // `[v6]:port`, or `host:port` with exactly one colon.
            Some((h, p)) => {
                !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (h.ends_with(']') || !h.contains(':'))
            }
            None => false,
        };
        Some(if has_port {
            self.0.clone()
        } else if self.0.contains(':') && !self.0.starts_with('[') {
            format!("[{}]:123", self.0)
        } else {
            format!("{}:123", self.0)
        })
    }
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NtpServer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
            return Err(format!(
                "expected a host name or address with an optional :port, found {s:?}"
            ));
        }
        Ok(Self(s))
    }
}

/// A refused settings file. The message names file, line, column and key.
pub use edge_config::located::FileError as ConfigError;

/// A parsed document: the typed value, and the spanned document to locate later checks in.
struct Doc<'a, T> {
    value: T,
    doc: Document<'a>,
    origin: &'a str,
}

impl<'a, T: DeserializeOwned> Doc<'a, T> {
    fn parse(text: &'a str, origin: &'a str) -> Result<Self, ConfigError> {
        let doc = Document::parse(text).map_err(|p| p.in_file(origin))?;
        let value = doc.deserialize().map_err(|p| p.in_file(origin))?;
        Ok(Self { value, doc, origin })
    }

    /// An error about `path`, located in this document.
    fn error_at(&self, path: &[Seg], message: String) -> ConfigError {
        self.doc.problem_at(path, message).in_file(self.origin)
    }
}

impl InitConfig {
    /// Parses and checks `init.toml`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let doc: Doc<'_, Self> = Doc::parse(text, origin)?;
        doc.value
            .network
            .validate()
            .map_err(|(path, message)| doc.error_at(&path, message))?;
        Ok(doc.value)
    }
}

impl NetworkConfig {
    /// This configuration as a complete `network.toml` (every key written, so it reads back the same
    /// whatever the slot's defaults are). Values are addresses and a checked host name: nothing in them
    /// needs escaping beyond TOML's basic string quoting.
    pub fn to_network_toml(&self) -> String {
        let mode = match self.mode {
            NetMode::Static => "static",
            NetMode::Dhcp => "dhcp",
        };
        let dns: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
        network_toml(
            mode,
            &self.address.map(|a| a.to_string()).unwrap_or_default(),
            &self.gateway.map(|g| g.to_string()).unwrap_or_default(),
            &dns,
            &self.ntp.to_string(),
        )
    }

    /// `base` with every key given as text (the web UI's form), checked as `network.toml` is: an
    /// empty `address` is left out, empty name servers are dropped.
    pub fn from_fields(
        base: &Self,
        mode: &str,
        address: &str,
        gateway: &str,
        dns: &[String],
        ntp: &str,
    ) -> Result<Self, ConfigError> {
        let dns: Vec<String> = dns.iter().filter(|d| !d.is_empty()).cloned().collect();
        base.with_override(&network_toml(mode, address, gateway, &dns, ntp), "network")
    }

    /// `base` with the keys `network.toml` (`text`) names replaced, checked as a whole; an error that
    /// the override causes is located in the override.
    pub fn with_override(&self, text: &str, origin: &str) -> Result<Self, ConfigError> {
        let doc: Doc<'_, NetworkFile> = Doc::parse(text, origin)?;
        let o = &doc.value.network;
        let merged = Self {
            mode: o.mode.unwrap_or(self.mode),
            address: o.address.or(self.address),
            gateway: o.gateway.unwrap_or(self.gateway),
            dns: o.dns.clone().unwrap_or_else(|| self.dns.clone()),
            ntp: o.ntp.clone().unwrap_or_else(|| self.ntp.clone()),
        };
        merged
            .validate()
            .map_err(|(path, message)| doc.error_at(&path, message))?;
        Ok(merged)
    }
}

/// A `network.toml` with these values (TOML basic strings, escaped); an empty `address` is left out.
fn network_toml(mode: &str, address: &str, gateway: &str, dns: &[String], ntp: &str) -> String {
    let quote = |s: &str| {
        let mut q = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                c if c.is_control() => q.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => q.push(c),
            }
        }
        q.push('"');
        q
    };
    let mut out = format!("[network]\nmode = {}\n", quote(mode));
    if !address.is_empty() {
        out.push_str(&format!("address = {}\n", quote(address)));
    }
    let dns: Vec<String> = dns.iter().map(|d| quote(d)).collect();
    out.push_str(&format!(
        "gateway = {}\ndns = [{}]\nntp = {}\n",
        quote(gateway),
        dns.join(", "),
        quote(ntp)
    ));
    out
}

/// Which `gatewayd` configuration PID 1 hands to gatewayd, given the data partition's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewaydConfigFile {
    /// The data partition's `gatewayd.toml` (its schema is this release's or older: gatewayd migrates
    /// it forward in memory).
    Data,
    /// A newer release rewrote the file for a newer schema (this slot was rolled back to): its copy
    /// for this release's schema, kept beside it.
    DataCopy(u32),
    /// The slot's default, and why (said on the console).
    Slot(Option<String>),
}

/// Chooses between the data partition's configuration (`data`: its text, if it exists), the copy a
/// newer release kept for this schema (`copy_exists`), and the slot's default.
pub fn gatewayd_config(data: Option<&str>, copy_exists: bool) -> GatewaydConfigFile {
    let Some(text) = data else {
        return GatewaydConfigFile::Slot(None);
    };
    let schema = edge_config::schema_of(text);
    if schema <= edge_config::SCHEMA {
        GatewaydConfigFile::Data
    } else if copy_exists {
        GatewaydConfigFile::DataCopy(edge_config::SCHEMA)
    } else {
        GatewaydConfigFile::Slot(Some(format!(
            "the data partition's gatewayd.toml is for configuration schema {schema} (a newer release) and \
             there is no copy for schema {}: running the slot's default configuration",
            edge_config::SCHEMA
        )))
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_slot_reads_the_copy_for_its_schema() {
        let now = format!("schema = {}\n[sip]\n", edge_config::SCHEMA);
        let newer = format!("schema = {}\n[sip]\n", edge_config::SCHEMA + 1);
        assert_eq!(gatewayd_config(None, false), GatewaydConfigFile::Slot(None));
        assert_eq!(
            gatewayd_config(Some("[sip]\n"), false),
            GatewaydConfigFile::Data,
            "no schema: 1"
        );
        assert_eq!(gatewayd_config(Some(&now), true), GatewaydConfigFile::Data);
        assert_eq!(
            gatewayd_config(Some(&newer), true),
            GatewaydConfigFile::DataCopy(edge_config::SCHEMA)
        );
        assert!(
            matches!(gatewayd_config(Some(&newer), false), GatewaydConfigFile::Slot(Some(r)) if r.contains("schema"))
        );
    }

    /// image/README.md's example, verbatim.
    const README_EXAMPLE: &str = r#"
[watchdog]
device = "/dev/watchdog"      # pet interval = timeout / 3
timeout_s = 10
[gatewayd]
path = "/slot/usr/bin/gatewayd"
watchdog_usec = 4000000       # WATCHDOG_USEC given to gatewayd
ready_timeout_s = 30          # not READY by then: PID 1 stops petting (the board resets; GRUB counts the try)
sip_probe_port = 5060         # health probe: SIP OPTIONS to 127.0.0.1:<port> must get a 200 before mark-good
[network]
mode = "static"               # or "dhcp"
address = "10.0.2.15/24"
gateway = "10.0.2.2"
dns = ["10.0.2.3"]
ntp = ""                      # empty: keep the RTC's time
"#;

    fn invalid(e: &ConfigError) -> (&str, usize, &str) {
        match e {
            ConfigError::Invalid {
                key, line, message, ..
            } => (key.as_str(), *line, message.as_str()),
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn readme_example_is_the_default() {
        let c = InitConfig::parse(README_EXAMPLE, "init.toml").unwrap();
        assert_eq!(c, InitConfig::default());
        assert_eq!(InitConfig::parse("", "init.toml").unwrap(), InitConfig::default());
        assert_eq!(
            c.watchdog.pet_interval(),
            Duration::from_millis(3333) + Duration::from_nanos(333_333)
        );
        assert_eq!(c.gatewayd.watchdog(), Some(Duration::from_secs(4)));
        assert_eq!(c.network.ntp.target(), None);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = InitConfig::parse(
            "[gatewayd]\nready_timeout_s = 5\nreadytimeout = 3\n",
            "/slot/init.toml",
        )
        .unwrap_err();
        let (key, line, _) = invalid(&e);
        assert_eq!((key, line), ("gatewayd.readytimeout", 3));
        let msg = e.to_string();
        assert!(msg.starts_with("/slot/init.toml:3:"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("[watchdog]\ntimeout_s = 0\n", "watchdog.timeout_s", 2),
            ("[watchdog]\n\ntimeout_s = 99999\n", "watchdog.timeout_s", 3),
            ("[watchdog]\ndevice = \"watchdog\"\n", "watchdog.device", 2),
            ("[gatewayd]\nsip_probe_port = 0\n", "gatewayd.sip_probe_port", 2),
            (
                "[gatewayd]\nsip_probe_port = 70000\n",
                "gatewayd.sip_probe_port",
                2,
            ),
            ("[gatewayd]\nready_timeout_s = 0\n", "gatewayd.ready_timeout_s", 2),
            ("[gatewayd]\nwatchdog_usec = -1\n", "gatewayd.watchdog_usec", 2),
            ("[network]\nmode = \"ppp\"\n", "network.mode", 2),
            ("[network]\naddress = \"10.0.2.15\"\n", "network.address", 2),
            ("[network]\naddress = \"10.0.2.15/33\"\n", "network.address", 2),
            (
                "[network]\naddress = \"10.0.2.15/24\"\ngateway = \"10.0.3.1\"\n",
                "network.gateway",
                3,
            ),
            ("[network]\ndns = [\"1.1.1.1\", \"x\"]\n", "network.dns[1]", 2),
            (
                "[network]\ndns = [\"10.0.0.1\",\"10.0.0.2\",\"10.0.0.3\",\"10.0.0.4\"]\n",
                "network.dns",
                2,
            ),
            ("[network]\nntp = \"pool ntp\"\n", "network.ntp", 2),
            ("[nework]\nmode = \"dhcp\"\n", "nework", 1),
            ("[network]\nmode = \"static\"\n", "network.address", 1),
            (
                "[network]\naddress = \"10.0.2.15/24\"\ngateway = \"x\"\n",
                "network.gateway",
                3,
            ),
        ];
        for (text, want_key, want_line) in cases {
            let e = InitConfig::parse(text, "init.toml").unwrap_err();
            let (key, line, msg) = invalid(&e);
            assert_eq!((key, line), (*want_key, *want_line), "{text:?}: {e}");
            assert!(!msg.is_empty());
        }
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = InitConfig::parse("[watchdog]\ntimeout_s = = 3\n", "init.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e}");
        assert!(e.to_string().starts_with("init.toml:2:"), "{e}");
    }

    #[test]
    fn a_written_table_means_what_it_says() {
        let c = InitConfig::parse("[network]\naddress = \"192.0.2.10/24\"\n", "i").unwrap();
        assert_eq!(c.network.gateway, None, "no gateway key: no default route");
        assert!(c.network.dns.is_empty());
        let c = InitConfig::parse("[network]\naddress = \"192.0.2.10/24\"\ngateway = \"\"\n", "i").unwrap();
        assert_eq!(c.network.gateway, None);
        // What the image builder writes for a static board without a gateway, and for DHCP.
        let c = InitConfig::parse(
            "[network]\nmode = \"static\"\naddress = \"192.168.50.20/24\"\ndns = [\"192.168.50.1\"]\nntp = \"\"\n",
            "i",
        )
        .unwrap();
        assert_eq!(c.network.gateway, None);
        let c = InitConfig::parse(
            "[network]\nmode = \"dhcp\"\ndns = []\nntp = \"ntp.example\"\n",
            "i",
        )
        .unwrap();
        assert_eq!((c.network.mode, c.network.address), (NetMode::Dhcp, None));
    }

    #[test]
    fn dhcp_ignores_the_static_address() {
        let c = InitConfig::parse("[network]\nmode = \"dhcp\"\ngateway = \"192.0.2.1\"\n", "i").unwrap();
        assert_eq!(c.network.mode, NetMode::Dhcp);
    }

    #[test]
    fn network_override_replaces_only_what_it_names() {
        let base = NetworkConfig::default();
        let n = base
            .with_override("[network]\nntp = \"127.0.0.1:1123\"\n", "/data/network.toml")
            .unwrap();
        assert_eq!(n.address, base.address);
        assert_eq!(n.ntp.target().as_deref(), Some("127.0.0.1:1123"));
        let n = base
            .with_override(
                "[network]\naddress = \"192.0.2.10/25\"\ngateway = \"192.0.2.1\"\ndns = []\n",
                "/data/network.toml",
            )
            .unwrap();
        assert_eq!(n.address.map(|a| a.to_string()).as_deref(), Some("192.0.2.10/25"));
        assert!(n.dns.is_empty());
        assert_eq!(base.with_override("", "x").unwrap(), base);
        // `gateway = ""` removes the slot's default route.
        let n = base.with_override("[network]\ngateway = \"\"\n", "x").unwrap();
        assert_eq!(n.gateway, None);
        assert_eq!(n.dns, base.dns);
    }

    #[test]
    fn network_override_errors_point_into_the_override() {
        let base = NetworkConfig::default();
        // The address moves off the slot's gateway's subnet: the override is at fault.
        let e = base
            .with_override(
                "# operator\n[network]\naddress = \"192.0.2.10/24\"\n",
                "/data/network.toml",
            )
            .unwrap_err();
        let (key, line, msg) = invalid(&e);
        assert_eq!(key, "network.gateway");
        assert_eq!(line, 2); // the [network] header: gateway itself is not in this file
        assert!(msg.contains("outside 192.0.2.10/24"), "{msg}");
        assert!(e.to_string().starts_with("/data/network.toml:2:"), "{e}");
        let e = base
            .with_override("[watchdog]\ntimeout_s = 3\n", "n.toml")
            .unwrap_err();
        assert_eq!(invalid(&e).0, "watchdog");
    }

    #[test]
    fn cidr_math() {
        let c = Ipv4Cidr::try_from("192.0.2.10/25".to_owned()).unwrap();
        assert!(c.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(!c.contains(Ipv4Addr::new(192, 0, 2, 200)));
        let all = Ipv4Cidr::try_from("10.1.2.3/0".to_owned()).unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        let host = Ipv4Cidr::try_from("10.1.2.3/32".to_owned()).unwrap();
        assert!(!host.contains(Ipv4Addr::new(10, 1, 2, 4)));
    }

    #[test]
    fn ntp_targets() {
        let t = |s: &str| NtpServer::try_from(s.to_owned()).unwrap().target();
        assert_eq!(t(""), None);
        assert_eq!(t("127.0.0.1").as_deref(), Some("127.0.0.1:123"));
        assert_eq!(t("ntp.example:1123").as_deref(), Some("ntp.example:1123"));
        assert_eq!(t("::1").as_deref(), Some("[::1]:123"));
        assert_eq!(t("[::1]:5").as_deref(), Some("[::1]:5"));
        assert!(NtpServer::try_from("a b".to_owned()).is_err());
    }

    #[test]
    fn network_toml_is_written_as_it_reads() {
        let base = NetworkConfig::default();
        for text in [
            "[network]\nmode = \"dhcp\"\nntp = \"pool.ntp.org\"\n",
            "[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\", \"2001:db8::53\"]\n",
        ] {
            let n = base.with_override(text, "network.toml").unwrap();
            let written = n.to_network_toml();
            assert_eq!(base.with_override(&written, "again").unwrap(), n, "{written}");
        }
        // The UI's fields: empty name servers dropped; text cannot add a key of its own.
        let n = NetworkConfig::from_fields(
            &base,
            "static",
            "192.0.2.10/24",
            "192.0.2.1",
            &["".into(), "192.0.2.53".into()],
            "",
        )
        .unwrap();
        assert_eq!((n.mode, n.dns.len()), (NetMode::Static, 1));
        let sneaky =
            NetworkConfig::from_fields(&base, "static", "192.0.2.10/24", "", &[], "x\"\nmode = \"dhcp");
        assert!(sneaky.is_err() || sneaky.unwrap().mode == NetMode::Static);
        let e = NetworkConfig::from_fields(&base, "static", "192.0.2.10/33", "", &[], "").unwrap_err();
        assert_eq!(e.key(), Some("network.address"));
    }
}
