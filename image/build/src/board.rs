//! Board files (`board-config/<board>.toml`): what one board is, validated at load.
//!
//! A board names its CPU architecture and Rust target, the Debian kernel package and the modules PID 1
//! loads, its console, boot disk, watchdog, partition sizes, network defaults and how the HIL harness
//! reaches it. [`Board::load`] refuses unknown keys and impossible values with a [`BoardError`] that names
//! the file, line, column and key (`kernel.modules[2]`), the way `edge-config` reports `gatewayd.toml`.
//! The schema is documented in `board-config/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use edge_config::located::{Document, FileError, Problem, Seg};
use serde::Deserialize;

/// The folder holding the board files of this repository (`<workspace>/board-config`).
pub fn board_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../board-config");
    dir.canonicalize().unwrap_or(dir)
}

/// One board, as read from its file. Every field has been checked; see `board-config/README.md`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// The board's name: the file name without `.toml` (`qemu-x86_64`). Not a key in the file.
    #[serde(skip)]
    pub name: String,
    /// The file it was read from (`<origin>` given to [`Board::parse`]), for messages.
    #[serde(skip)]
    pub file: PathBuf,
    /// One line for humans.
    pub description: String,
    /// CPU architecture.
    pub arch: Arch,
    /// Rust target triple of `edge-init` and `gatewayd` (static musl: `<arch>-unknown-linux-musl`).
    pub target: String,
    /// Kernel console (`console=` on the command line), e.g. `ttyS0` or `ttyS0,115200`.
    pub console: String,
    /// Name of the EFI binary under `/EFI/BOOT/` on the ESP (the removable-media path firmware boots):
    /// `BOOTX64.EFI` (x86_64) or `BOOTAA64.EFI` (aarch64).
    pub efi_binary: String,
    /// The boot disk as the kernel names it (`/dev/vda`, `/dev/mmcblk0`); partition N is `<disk>N`, or
    /// `<disk>pN` when the name ends in a digit.
    pub disk: String,
    /// Optional folder whose content is copied to the ESP root (board firmware such as the RPi4 UEFI
    /// files). A relative path is relative to the board file. Absent: the ESP holds only `/EFI/BOOT`.
    #[serde(default)]
    pub esp_extra: Option<PathBuf>,
    /// Kernel package and the modules of the initramfs.
    pub kernel: Kernel,
    /// The hardware watchdog PID 1 pets.
    pub watchdog: Watchdog,
    /// How PID 1 supervises `gatewayd` (`[gatewayd]` of `init.toml`).
    #[serde(default)]
    pub gatewayd: Supervision,
    /// Partition sizes.
    pub partitions: Partitions,
    /// Network defaults (`[network]` of `init.toml`; `network.toml` on the data partition overrides them).
    pub network: Network,
    /// How the HIL harness reaches the board.
    pub hil: Hil,
}

/// CPU architecture of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Arch {
    /// 64-bit x86 (Debian `amd64`).
    X86_64,
    /// 64-bit ARM (Debian `arm64`).
    Aarch64,
}

impl Arch {
    const ALL: [Self; 2] = [Self::X86_64, Self::Aarch64];

    /// The name used in board files and Rust target triples.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// Debian's name for the architecture.
    pub fn deb_arch(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
        }
    }

    /// GRUB's platform name (`/usr/lib/grub/<platform>`, `grub-mkimage -O`).
    pub fn grub_platform(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-efi",
            Self::Aarch64 => "arm64-efi",
        }
    }

    /// The Debian package holding GRUB's EFI modules for this architecture.
    pub fn grub_package(self) -> &'static str {
        match self {
            Self::X86_64 => "grub-efi-amd64-bin",
            Self::Aarch64 => "grub-efi-arm64-bin",
        }
    }

    /// The EFI removable-media boot file name.
    pub fn efi_binary(self) -> &'static str {
        match self {
            Self::X86_64 => "BOOTX64.EFI",
            Self::Aarch64 => "BOOTAA64.EFI",
        }
    }

    /// The architecture this program runs on, when it is one a board can have.
    pub fn host() -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == std::env::consts::ARCH)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Arch {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |a| a.as_str())
    }
}

/// `[kernel]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// Debian bookworm kernel package: the generic-flavour metapackage (`linux-image-amd64`,
    /// `linux-image-arm64`), resolved at build time to the concrete `linux-image-6.1.0-<n>-<arch>`, or
    /// a concrete package to pin one.
    pub package: String,
    /// Modules PID 1 loads, in this order; the initramfs carries each with its dependencies (which are
    /// listed first). Built-in ones are skipped.
    pub modules: Vec<String>,
    /// Module parameters by module name (`i6300esb = "heartbeat=10"`); only for listed modules.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// `[watchdog]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    /// The watchdog device PID 1 opens.
    pub device: String,
    /// Seconds without a pet before the board resets (PID 1 pets every third of it), 3-600.
    pub timeout_s: u32,
}

/// `[gatewayd]`: supervision settings for PID 1 (all optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervision {
    /// `WATCHDOG_USEC` given to `gatewayd` (sd_notify watchdog), 100 ms to 10 min.
    #[serde(default = "Supervision::default_watchdog_usec")]
    pub watchdog_usec: u64,
    /// Seconds `gatewayd` has to become READY and answer the probe, 1-600.
    #[serde(default = "Supervision::default_ready_timeout")]
    pub ready_timeout_s: u32,
    /// UDP port of the SIP OPTIONS health probe on 127.0.0.1; the image's default `gatewayd.toml`
    /// listens on it (UDP and TCP).
    #[serde(default = "Supervision::default_probe_port")]
    pub sip_probe_port: u16,
}

impl Supervision {
    fn default_watchdog_usec() -> u64 {
        4_000_000
    }
    fn default_ready_timeout() -> u32 {
        30
    }
    fn default_probe_port() -> u16 {
        5060
    }
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            watchdog_usec: Self::default_watchdog_usec(),
            ready_timeout_s: Self::default_ready_timeout(),
            sip_probe_port: Self::default_probe_port(),
        }
    }
}

/// `[partitions]`: sizes in MiB. The disk is 1 MiB (GPT) + esp + 2 × slot + data + 1 MiB (backup GPT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    /// The ESP (FAT16 below 64 MiB, FAT32 from 64 MiB), 8-1024.
    pub esp_mib: u32,
    /// Each of slot A and slot B (squashfs), 8-4096.
    pub slot_mib: u32,
    /// The data partition (ext4), 8-65536.
    pub data_mib: u32,
}

impl Partitions {
    /// Allowed range of `esp_mib`.
    pub const ESP_MIB: Range<u32> = 8..1025;
    /// Allowed range of `slot_mib`.
    pub const SLOT_MIB: Range<u32> = 8..4097;
    /// Allowed range of `data_mib`.
    pub const DATA_MIB: Range<u32> = 8..65537;

    /// Size of the whole disk image in MiB.
    pub fn total_mib(&self) -> u64 {
        crate::disk::Layout::new(self).total_bytes() / crate::disk::MIB
    }
}

/// `[network]`: the same table as `[network]` of `init.toml` and of `network.toml` on the data partition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Static address or DHCP.
    pub mode: NetworkMode,
    /// `mode = "static"`: the IPv4 address with its prefix length (`10.0.2.15/24`).
    #[serde(default)]
    pub address: Option<Cidr>,
    /// `mode = "static"`: the default gateway (optional), on the address's subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers, at most 3 (resolv.conf's limit).
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// SNTP server, `host` or `host:port`; empty: keep the RTC's time.
    #[serde(default)]
    pub ntp: String,
}

/// How the board gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum NetworkMode {
    /// `address` (and `gateway`) from the file.
    Static,
    /// DHCP on the first Ethernet interface.
    Dhcp,
}

impl NetworkMode {
    const ALL: [Self; 2] = [Self::Static, Self::Dhcp];

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dhcp => "dhcp",
        }
    }
}

impl TryFrom<String> for NetworkMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        one_of(&s, &Self::ALL, |m| m.as_str())
    }
}

/// An IPv4 address with its prefix length, written `10.0.2.15/24` (PID 1 configures IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    /// The address.
    pub address: Ipv4Addr,
    /// Prefix length, 0-32.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is on this subnet.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        (u32::from(ip) ^ u32::from(self.address)) & mask == 0
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("\"{s}\" is not an IPv4 address with a prefix length, e.g. \"10.0.2.15/24\"");
        let (ip, len) = s.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(format!("prefix length {prefix} is over 32"));
        }
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// `[hil]`: exactly one of `[hil.qemu]` (a virtual board) and `[hil.serial]` (real hardware).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hil {
    /// A QEMU virtual board.
    #[serde(default)]
    pub qemu: Option<QemuHil>,
    /// Real hardware on a serial line and the network.
    #[serde(default)]
    pub serial: Option<SerialHil>,
}

/// `[hil.qemu]`: what the harness needs to start the virtual board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuHil {
    /// The emulator (`qemu-system-x86_64`).
    pub binary: String,
    /// `-M` (`pc`, `virt`).
    pub machine: String,
    /// `-cpu` (`qemu64`, `cortex-a57`).
    pub cpu: String,
    /// `-m` in MiB; GRUB runs out of memory below 512.
    pub memory_mib: u32,
    /// Read-only UEFI firmware code (first pflash).
    pub firmware_code: PathBuf,
    /// UEFI variable store template (second pflash): copy it per run, it is written to.
    pub firmware_vars: PathBuf,
    /// Device for the disk image (`virtio-blk-pci`: the guest sees `/dev/vda`).
    pub disk_device: String,
    /// Network device (`virtio-net-pci`).
    pub net_device: String,
    /// Watchdog device (`i6300esb`).
    pub watchdog_device: String,
}

/// `[hil.serial]`: a real board on a serial console and the network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialHil {
    /// The host's serial device wired to the board's console (`/dev/ttyUSB0`).
    pub device: PathBuf,
    /// Baud rate of the console.
    pub baud: u32,
    /// Where the harness reaches the board's `gatewayd` (its static address, or the DHCP reservation).
    pub address: IpAddr,
}

/// Why a board file was refused: the message names the file, line, column and key.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The file could not be read.
    #[error("{file}: cannot read board file: {source}")]
    Read {
        /// Path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file name is not a board name.
    #[error("{file}: a board file is named <board>.toml with <board> of a-z, 0-9, '-', '_'")]
    Name {
        /// Path as given.
        file: String,
    },
    /// The file is not valid TOML, or a key or value in it is wrong (file, line, column, key).
    #[error(transparent)]
    File(#[from] FileError),
}

impl BoardError {
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
            Self::Read { .. } | Self::Name { .. } => None,
        }
    }
}

impl Board {
    /// Reads and validates `board-config/<name>.toml` of this repository.
    pub fn named(name: &str) -> Result<Self, BoardError> {
        Self::load(&board_dir().join(format!("{name}.toml")))
    }

    /// Reads and validates the board file at `path`; the board's name is the file name without `.toml`.
    /// A relative `esp_extra` is made relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, BoardError> {
        let file = path.display().to_string();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".toml"))
            .filter(|n| valid_board_name(n))
            .ok_or_else(|| BoardError::Name { file: file.clone() })?;
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
            file: file.clone(),
            source,
        })?;
        let mut board = Self::parse(&text, name, &file)?;
        if let (Some(extra), Some(dir)) = (board.esp_extra.as_mut(), path.parent())
            && extra.is_relative()
        {
            *extra = dir.join(&*extra);
        }
        Ok(board)
    }

    /// Parses and validates `text` as the board `name`; `origin` names it in errors.
    pub fn parse(text: &str, name: &str, origin: &str) -> Result<Self, BoardError> {
        let located = |p: Problem| p.in_file(origin);
        let doc = Document::parse(text).map_err(located)?;
        let mut board: Self = doc.deserialize().map_err(located)?;
        board.name = name.to_owned();
        board.file = PathBuf::from(origin);
        board
            .validate()
            .map_err(|(path, message)| located(doc.problem_at(&path, message)))?;
        Ok(board)
    }

    /// The device of partition `n` (1-4) on the boot disk: `/dev/vda2`, `/dev/mmcblk0p2`.
    pub fn partition_device(&self, n: u8) -> String {
        format!("{}{n}", self.partition_prefix())
    }

    /// `<disk>` or `<disk>p` when the disk name ends in a digit.
    pub fn partition_prefix(&self) -> String {
        if self.disk.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{}p", self.disk)
        } else {
            self.disk.clone()
        }
    }

    /// The concrete or meta kernel package with the Debian architecture qualifier (`linux-image-arm64:arm64`).
    pub fn kernel_package_qualified(&self) -> String {
        format!("{}:{}", self.kernel.package, self.arch.deb_arch())
    }

    /// The modules line of `/modules.list` for module `name` (its parameters, if any).
    pub fn module_params(&self, module: &str) -> Option<&str> {
        let norm = normalise_module(module);
        self.kernel
            .params
            .iter()
            .find(|(m, _)| normalise_module(m) == norm)
            .map(|(_, p)| p.as_str())
    }

    /// Checks that span several keys or need more than a type, after the types have checked each value.
    fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let key = |k: &str| vec![Seg::Key(k.to_owned())];
        let key2 = |a: &str, b: &str| vec![Seg::Key(a.to_owned()), Seg::Key(b.to_owned())];
        let arch = self.arch;

        let target = format!("{arch}-unknown-linux-musl");
        if self.target != target {
            return Err((
                key("target"),
                format!(
                    "must be \"{target}\": the image runs static musl binaries built for the board's arch"
                ),
            ));
        }
        if self.efi_binary != arch.efi_binary() {
            return Err((
                key("efi_binary"),
                format!(
                    "must be \"{}\" for arch \"{arch}\" (the removable-media path UEFI firmware boots)",
                    arch.efi_binary()
                ),
            ));
        }
        if self.description.trim().is_empty() || self.description.contains('\n') {
            return Err((key("description"), "one non-empty line is required".into()));
        }
        if self.console.is_empty()
            || !self
                .console
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ",._-".contains(c))
        {
            return Err((
                key("console"),
                format!(
                    "\"{}\" is not a console device name like \"ttyS0\" or \"ttyS0,115200\"",
                    self.console
                ),
            ));
        }
        check_device(&self.disk).map_err(|m| (key("disk"), m))?;
        if self.esp_extra.as_ref().is_some_and(|e| e.as_os_str().is_empty()) {
            return Err((key("esp_extra"), "must name a folder".into()));
        }

        // Kernel.
        let deb = arch.deb_arch();
        let pkg = &self.kernel.package;
        let pkg_ok = pkg.starts_with("linux-image-")
            && pkg.ends_with(&format!("-{deb}"))
            && pkg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c));
        if !pkg_ok {
            return Err((
                key2("kernel", "package"),
                format!(
                    "\"{pkg}\" is not a Debian kernel package for {deb} (linux-image-{deb} or linux-image-6.1.0-<n>-{deb})"
                ),
            ));
        }
        if pkg.contains("-cloud-") {
            return Err((
                key2("kernel", "package"),
                "the cloud flavour lacks hardware drivers such as i6300esb: use the generic flavour".into(),
            ));
        }
        if self.kernel.modules.is_empty() {
            return Err((
                key2("kernel", "modules"),
                "at least one module is required".into(),
            ));
        }
        let mut seen = Vec::new();
        for (i, m) in self.kernel.modules.iter().enumerate() {
            let at = || {
                vec![
                    Seg::Key("kernel".into()),
                    Seg::Key("modules".into()),
                    Seg::Index(i),
                ]
            };
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
                return Err((at(), format!("\"{m}\" is not a module name")));
            }
            let n = normalise_module(m);
            if seen.contains(&n) {
                return Err((at(), format!("module \"{m}\" is listed twice")));
            }
            seen.push(n);
        }
        for needed in ["squashfs", "vfat", "ext4"] {
            if !seen.iter().any(|m| m == needed) {
                return Err((
                    key2("kernel", "modules"),
                    format!(
                        "\"{needed}\" is required: PID 1 mounts the slot (squashfs), the ESP (vfat) and data (ext4)"
                    ),
                ));
            }
        }
        for (m, p) in &self.kernel.params {
            let at = || {
                vec![
                    Seg::Key("kernel".into()),
                    Seg::Key("params".into()),
                    Seg::Key(m.clone()),
                ]
            };
            if !seen.contains(&normalise_module(m)) {
                return Err((at(), format!("module \"{m}\" is not in kernel.modules")));
            }
            if p.trim().is_empty() || p.chars().any(char::is_control) {
                return Err((
                    at(),
                    "parameters are one non-empty line (\"name=value name2=value2\")".into(),
                ));
            }
        }

        // Watchdog and supervision.
        check_device(&self.watchdog.device).map_err(|m| (key2("watchdog", "device"), m))?;
        if !(3..=600).contains(&self.watchdog.timeout_s) {
            return Err((key2("watchdog", "timeout_s"), "must be 3-600 seconds".into()));
        }
        if !(100_000..=600_000_000).contains(&self.gatewayd.watchdog_usec) {
            return Err((
                key2("gatewayd", "watchdog_usec"),
                "must be 100000-600000000 (100 ms to 10 min)".into(),
            ));
        }
        if !(1..=600).contains(&self.gatewayd.ready_timeout_s) {
            return Err((
                key2("gatewayd", "ready_timeout_s"),
                "must be 1-600 seconds".into(),
            ));
        }
        if self.gatewayd.sip_probe_port == 0 {
            return Err((key2("gatewayd", "sip_probe_port"), "must be 1-65535".into()));
        }

        // Partitions.
        let p = &self.partitions;
        for (name, value, range) in [
            ("esp_mib", p.esp_mib, Partitions::ESP_MIB),
            ("slot_mib", p.slot_mib, Partitions::SLOT_MIB),
            ("data_mib", p.data_mib, Partitions::DATA_MIB),
        ] {
            if !range.contains(&value) {
                return Err((
                    key2("partitions", name),
                    format!("{value} MiB is outside {}-{} MiB", range.start, range.end - 1),
                ));
            }
        }

        // Network.
        let n = &self.network;
        match n.mode {
            NetworkMode::Static => {
                if n.address.is_none() {
                    return Err((
                        key2("network", "address"),
                        "required with mode = \"static\"".into(),
                    ));
                }
            }
            NetworkMode::Dhcp => {
                if n.address.is_some() {
                    return Err((key2("network", "address"), "only with mode = \"static\"".into()));
                }
                if n.gateway.is_some() {
                    return Err((key2("network", "gateway"), "only with mode = \"static\"".into()));
                }
            }
        }
        if let (Some(a), Some(g)) = (n.address, n.gateway)
            && !a.contains(g)
        {
            return Err((
                key2("network", "gateway"),
                format!("{g} is outside {a} (the gateway must be on the link)"),
            ));
        }
        if n.dns.len() > 3 {
            return Err((
                key2("network", "dns"),
                format!("at most 3 name servers (found {})", n.dns.len()),
            ));
        }
        if !n
            .ntp
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err((
                key2("network", "ntp"),
                format!("\"{}\" is not a host name or address", n.ntp),
            ));
        }

        // HIL.
        match (&self.hil.qemu, &self.hil.serial) {
            (Some(q), None) => {
                let at = |k: &str| {
                    vec![
                        Seg::Key("hil".into()),
                        Seg::Key("qemu".into()),
                        Seg::Key(k.to_owned()),
                    ]
                };
                if q.memory_mib < 512 {
                    return Err((
                        at("memory_mib"),
                        "at least 512: GRUB runs out of memory below".into(),
                    ));
                }
                for (k, v) in [
                    ("binary", &q.binary),
                    ("machine", &q.machine),
                    ("cpu", &q.cpu),
                    ("disk_device", &q.disk_device),
                    ("net_device", &q.net_device),
                    ("watchdog_device", &q.watchdog_device),
                ] {
                    if v.is_empty() || v.contains(char::is_whitespace) {
                        return Err((at(k), "one word is required".into()));
                    }
                }
                for (k, v) in [
                    ("firmware_code", &q.firmware_code),
                    ("firmware_vars", &q.firmware_vars),
                ] {
                    if !v.is_absolute() {
                        return Err((at(k), "must be an absolute path".into()));
                    }
                }
            }
            (None, Some(s)) => {
                let at = |k: &str| {
                    vec![
                        Seg::Key("hil".into()),
                        Seg::Key("serial".into()),
                        Seg::Key(k.to_owned()),
                    ]
                };
                if !s.device.is_absolute() {
                    return Err((at("device"), "must be an absolute path".into()));
                }
                if s.baud == 0 {
                    return Err((at("baud"), "must be positive".into()));
                }
            }
            (Some(_), Some(_)) => {
                return Err((key("hil"), "give [hil.qemu] or [hil.serial], not both".into()));
            }
            (None, None) => {
                return Err((key("hil"), "[hil.qemu] or [hil.serial] is required".into()));
            }
        }
        Ok(())
    }
}

/// Module names compare with `-` and `_` as the same character (as modprobe does).
fn normalise_module(m: &str) -> String {
    m.replace('-', "_")
}

fn valid_board_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_device(dev: &str) -> Result<(), String> {
    let ok = dev.len() > "/dev/".len()
        && dev.starts_with("/dev/")
        && dev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("\"{dev}\" is not a device path like \"/dev/vda\""))
    }
}

/// Picks the variant whose name is `s`, or explains which names are allowed.
fn one_of<T: Copy>(s: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Result<T, String> {
    all.iter().copied().find(|v| name(*v) == s).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|v| format!("\"{}\"", name(*v))).collect();
        format!("unknown value \"{s}\", expected one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "test board"
arch = "x86_64"
target = "x86_64-unknown-linux-musl"
console = "ttyS0"
efi_binary = "BOOTX64.EFI"
disk = "/dev/vda"

[kernel]
package = "linux-image-amd64"
modules = ["virtio_blk", "squashfs", "vfat", "ext4", "i6300esb"]
params = { i6300esb = "heartbeat=10" }

[watchdog]
device = "/dev/watchdog"
timeout_s = 10

[partitions]
esp_mib = 8
slot_mib = 20
data_mib = 12

[network]
mode = "static"
address = "10.0.2.15/24"
gateway = "10.0.2.2"
dns = ["10.0.2.3"]
ntp = ""

[hil.qemu]
binary = "qemu-system-x86_64"
machine = "pc"
cpu = "qemu64"
memory_mib = 512
firmware_code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
firmware_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
disk_device = "virtio-blk-pci"
net_device = "virtio-net-pci"
watchdog_device = "i6300esb"
"#;

    fn err(text: &str) -> BoardError {
        Board::parse(text, "t", "t.toml").expect_err("board must be refused")
    }

    /// GOOD with `from` replaced by `to` (which must occur exactly once).
    fn with(from: &str, to: &str) -> String {
        assert_eq!(GOOD.matches(from).count(), 1, "{from}");
        GOOD.replace(from, to)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle in text")
            + 1
    }

    #[test]
    fn good_board_parses() {
        let b = Board::parse(GOOD, "t", "t.toml").unwrap();
        assert_eq!(b.name, "t");
        assert_eq!(b.arch, Arch::X86_64);
        assert_eq!(b.module_params("i6300esb"), Some("heartbeat=10"));
        assert_eq!(b.module_params("virtio_blk"), None);
        assert_eq!(b.gatewayd, Supervision::default());
        assert_eq!(b.partition_device(2), "/dev/vda2");
        assert_eq!(b.network.address.unwrap().to_string(), "10.0.2.15/24");
        assert_eq!(b.kernel_package_qualified(), "linux-image-amd64:amd64");
    }

    #[test]
    fn mmc_disks_get_a_p_before_the_partition_number() {
        let b = Board::parse(&with("\"/dev/vda\"", "\"/dev/mmcblk0\""), "t", "t.toml").unwrap();
        assert_eq!(b.partition_device(4), "/dev/mmcblk0p4");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = with("timeout_s = 10", "timeout_s = 10\ntimout = 3");
        let e = err(&text);
        assert_eq!(e.key(), Some("watchdog.timout"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "timout =")), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("t.toml:{}:", line_of(&text, "timout ="))),
            "{e}"
        );
    }

    #[test]
    fn unknown_section_is_refused() {
        let text = format!("{GOOD}\n[usb]\nports = 2\n");
        let e = err(&text);
        assert_eq!(e.key(), Some("usb"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "[usb]")), "{e}");
    }

    #[test]
    fn missing_key_is_named() {
        let e = err(&with("console = \"ttyS0\"\n", ""));
        assert_eq!(e.key(), Some("console"), "{e}");
        assert!(e.to_string().contains("missing field"), "{e}");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = with("slot_mib = 20", "slot_mib = \"20\"");
        let e = err(&text);
        assert_eq!(e.key(), Some("partitions.slot_mib"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "slot_mib")), "{e}");
    }

    #[test]
    fn unknown_arch_lists_the_known_ones() {
        let e = err(&with("arch = \"x86_64\"", "arch = \"riscv64\""));
        assert_eq!(e.key(), Some("arch"), "{e}");
        assert!(e.to_string().contains("\"x86_64\", \"aarch64\""), "{e}");
    }

    #[test]
    fn target_must_match_arch_and_be_musl() {
        let text = with("\"x86_64-unknown-linux-musl\"", "\"x86_64-unknown-linux-gnu\"");
        let e = err(&text);
        assert_eq!(e.key(), Some("target"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "target =")), "{e}");
    }

    #[test]
    fn efi_binary_must_match_arch() {
        let e = err(&with("\"BOOTX64.EFI\"", "\"BOOTAA64.EFI\""));
        assert_eq!(e.key(), Some("efi_binary"), "{e}");
    }

    #[test]
    fn kernel_package_must_be_for_the_arch_and_not_cloud() {
        let e = err(&with("\"linux-image-amd64\"", "\"linux-image-arm64\""));
        assert_eq!(e.key(), Some("kernel.package"), "{e}");
        let e = err(&with("\"linux-image-amd64\"", "\"linux-image-cloud-amd64\""));
        assert!(e.to_string().contains("cloud"), "{e}");
    }

    #[test]
    fn bad_module_is_located_by_index() {
        let text = with("\"virtio_blk\", \"squashfs\"", "\"virtio_blk\", \"squash fs\"");
        let e = err(&text);
        assert_eq!(e.key(), Some("kernel.modules[1]"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "modules =")), "{e}");
    }

    #[test]
    fn duplicate_modules_compare_dash_and_underscore_alike() {
        let e = err(&with(
            "\"virtio_blk\", \"squashfs\"",
            "\"virtio_blk\", \"virtio-blk\", \"squashfs\"",
        ));
        assert_eq!(e.key(), Some("kernel.modules[1]"), "{e}");
    }

    #[test]
    fn required_filesystems_must_be_listed() {
        let e = err(&with("\"vfat\", ", ""));
        assert_eq!(e.key(), Some("kernel.modules"), "{e}");
        assert!(e.to_string().contains("vfat"), "{e}");
    }

    #[test]
    fn params_only_for_listed_modules() {
        let text = with("i6300esb = \"heartbeat=10\"", "softdog = \"soft_margin=10\"");
        let e = err(&text);
        assert_eq!(e.key(), Some("kernel.params.softdog"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "softdog")), "{e}");
    }

    #[test]
    fn partition_sizes_are_bounded() {
        let text = with("slot_mib = 20", "slot_mib = 2");
        let e = err(&text);
        assert_eq!(e.key(), Some("partitions.slot_mib"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "slot_mib")), "{e}");
        assert!(e.to_string().contains("outside 8-4096"), "{e}");
        let e = err(&with("esp_mib = 8", "esp_mib = 4"));
        assert_eq!(e.key(), Some("partitions.esp_mib"), "{e}");
    }

    #[test]
    fn watchdog_timeout_is_bounded() {
        let e = err(&with("timeout_s = 10", "timeout_s = 1"));
        assert_eq!(e.key(), Some("watchdog.timeout_s"), "{e}");
    }

    #[test]
    fn static_network_needs_an_address_and_dhcp_refuses_one() {
        let e = err(&with("address = \"10.0.2.15/24\"\n", ""));
        assert_eq!(e.key(), Some("network.address"), "{e}");
        let e = err(&with("mode = \"static\"", "mode = \"dhcp\""));
        assert_eq!(e.key(), Some("network.address"), "{e}");
        assert!(e.to_string().contains("only with mode"), "{e}");
    }

    #[test]
    fn bad_cidr_and_dns_are_refused() {
        let e = err(&with("\"10.0.2.15/24\"", "\"10.0.2.15\""));
        assert_eq!(e.key(), Some("network.address"), "{e}");
        let e = err(&with("\"10.0.2.15/24\"", "\"10.0.2.15/33\""));
        assert!(e.to_string().contains("over 32"), "{e}");
        let e = err(&with("\"10.0.2.15/24\"", "\"fd00::15/64\""));
        assert!(e.to_string().contains("IPv4"), "{e}");
        let text = with("gateway = \"10.0.2.2\"", "gateway = \"10.0.3.2\"");
        let e = err(&text);
        assert_eq!(e.key(), Some("network.gateway"), "{e}");
        assert_eq!(e.line(), Some(line_of(&text, "gateway =")), "{e}");
        let e = err(&with(
            "[\"10.0.2.3\"]",
            "[\"10.0.2.3\", \"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\"]",
        ));
        assert_eq!(e.key(), Some("network.dns"), "{e}");
        let e = err(&with("[\"10.0.2.3\"]", "[\"10.0.2.3\", \"dns.example\"]"));
        assert_eq!(e.key(), Some("network.dns[1]"), "{e}");
    }

    #[test]
    fn hil_needs_exactly_one_connection() {
        let text = format!(
            "{GOOD}\n[hil.serial]\ndevice = \"/dev/ttyUSB0\"\nbaud = 115200\naddress = \"192.0.2.1\"\n"
        );
        let e = err(&text);
        assert_eq!(e.key(), Some("hil"), "{e}");
        let e = err(&with("memory_mib = 512", "memory_mib = 256"));
        assert_eq!(e.key(), Some("hil.qemu.memory_mib"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("arch = \n");
        assert!(
            matches!(e, BoardError::File(FileError::Syntax { line: 1, .. })),
            "{e}"
        );
    }

    #[test]
    fn load_takes_the_name_from_the_file_and_refuses_odd_names() {
        let e = Board::load(Path::new("/nonexistent/Bad Name.toml")).expect_err("odd name");
        assert!(matches!(e, BoardError::Name { .. }), "{e}");
        let e = Board::load(Path::new("/nonexistent/good.toml")).expect_err("missing file");
        assert!(matches!(e, BoardError::Read { .. }), "{e}");
    }

    #[test]
    fn repository_boards_load() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(board_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let b = Board::load(&path).unwrap_or_else(|e| panic!("{e}"));
                if b.hil.qemu.is_some() {
                    // The QEMU boards are booted in tests: keep them small.
                    assert!(
                        b.partitions.total_mib() <= 64,
                        "{}: {} MiB",
                        b.name,
                        b.partitions.total_mib()
                    );
                }
                names.push(b.name);
            }
        }
        names.sort();
        for needed in ["qemu-aarch64", "qemu-x86_64"] {
            assert!(names.iter().any(|n| n == needed), "{needed} missing: {names:?}");
        }
        assert!(names.len() >= 3, "at least one real board: {names:?}");
    }
}
