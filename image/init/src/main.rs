//! `edge-init`: the RTC Edge appliance's PID 1, the initramfs's `/init` (a static musl binary).
//!
//! **Owns**: the boot of the box after the kernel — `/proc`, `/sys`, `/dev`, the console, kernel modules
//! from `/modules.list`, the slot squashfs on `/slot`, the data partition on `/data`, PID 1's settings
//! (`init.toml`, `network.toml`), `lo` and the first Ethernet interface, `/etc/resolv.conf`, one SNTP
//! query, the hardware watchdog, the supervision of `gatewayd` over sd_notify (restarts, its watchdog,
//! a SIP health probe), marking the booted slot good in grubenv, reaping every orphan, shutdown.
//! The contract with the image builder, GRUB and the HIL harness is image/README.md ("Interfaces").
//!
//! **Never touches**: the inactive slot, anything on the ESP but `/EFI/BOOT/grubenv` (and that only
//! to reset the booted slot's tries, in place, at the same length), gatewayd's configuration or data,
//! the network beyond the one interface it is told about. It never exits and never panics on input:
//! a bad file or a missing device is a console line and a fallback.
//!
//! Shape: sans-IO cores that decide (`cmdline`, `config`, `modules`, `supervisor`, `notify`, `probe`,
//! `grubenv`, `sntp`, `netlink`, `lines`), each tested on fake time, and a thin shell (`sys` and the
//! loop below) that makes the system calls. The loop polls a signalfd, the notify socket, the probe
//! socket and (with test hooks) the console; it feeds what arrives into [`edge_init::supervisor::Supervisor`]
//! with the time since start, performs the actions it returns, and sleeps until its next timeout.

mod sys;

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::mount::MsFlags;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::sys::say;
use edge_init::cmdline::Cmdline;
use edge_init::config::GatewaydConfigFile;
use edge_init::config::{InitConfig, NETWORK_TOML};
use edge_init::supervisor::{Action, Hook, Settings, Supervisor};
use edge_init::{cmdline, config, lines, modules, notify};

/// How long the block devices named on the command line may take to appear.
const DEVICE_WAIT: Duration = Duration::from_secs(10);
/// The sd_notify socket gatewayd is given.
const NOTIFY_SOCKET: &str = "/run/notify.sock";
/// The image version file in the slot.
const VERSION_FILE: &str = "/slot/etc/rtc-edge/version";
/// gatewayd's configuration: the data partition's overrides the slot's.
const GATEWAYD_TOML_DATA: &str = "/data/etc/rtc-edge/gatewayd.toml";
const GATEWAYD_TOML_SLOT: &str = "/slot/etc/rtc-edge/gatewayd.toml";
/// The boot log on the data partition.
const BOOT_LOG: &str = "/data/log/boot.log";
/// gatewayd's latest sd_notify STATUS (`calls: N, ending: M, ...`), for the update agent.
const GATEWAYD_STATUS: &str = "/run/gatewayd.status";
/// The update agent in the slot (started once the slot is marked good).
const AGENT: &str = "/slot/usr/bin/edge-agent";

fn main() {
    // Time zero for `boot_ms`.
    let _ = sys::now();
    if std::process::id() != 1 {
        eprintln!(
            "edge-init: this is the appliance's PID 1 (the initramfs's /init); it does not run as pid {}",
            std::process::id()
        );
        std::process::exit(2);
    }
    let errors = sys::mount_early();
    let console = sys::attach_console();
    say(format!("starting (version {})", env!("CARGO_PKG_VERSION")));
    for e in errors {
        say(e);
    }
    if let Err(e) = console {
        say(e);
    }
    // Ctrl-Alt-Del becomes SIGINT to us (a clean shutdown) instead of the kernel's instant reboot.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        say(format!("cannot route Ctrl-Alt-Del to PID 1: {e}"));
    }
    // Before any thread exists, so every thread inherits the blocked mask.
    let signals = match sys::signals() {
        Ok(s) => Some(s),
        Err(e) => {
            say(format!("{e}: running without signal handling"));
            None
        }
    };
    let boot = boot();
    supervise(&boot, signals.as_ref());
}

/// What the boot steps found, for the supervision loop.
#[derive(Debug)]
struct Boot {
    cmdline: Cmdline,
    config: InitConfig,
    data_mounted: bool,
    version: String,
}

/// Steps 1-5: command line, modules, devices, mounts, settings, network, time.
fn boot() -> Boot {
    let text = std::fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| {
        say(format!("cannot read /proc/cmdline: {e}"));
        String::new()
    });
    let (cmdline, warnings) = cmdline::parse(&text);
    for w in warnings {
        say(format!("kernel command line: {w}"));
    }
    say(format!(
        "slot {} root {} data {} esp {}{}",
        cmdline.slot.map_or_else(|| "?".to_owned(), |s| s.to_string()),
        cmdline.root.as_deref().unwrap_or("?"),
        cmdline.data.as_deref().unwrap_or("?"),
        cmdline.esp.as_deref().unwrap_or("?"),
        if cmdline.testhooks { " (test hooks on)" } else { "" },
    ));

    load_modules();

    let wanted: Vec<&str> = [&cmdline.root, &cmdline.data, &cmdline.esp]
        .into_iter()
        .filter_map(|d| d.as_deref())
        .collect();
    for missing in sys::wait_for_paths(&wanted, DEVICE_WAIT) {
        say(format!("{missing} did not appear in {} s", DEVICE_WAIT.as_secs()));
    }

    match cmdline.root.as_deref() {
        Some(root) => {
            let ro = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
            match sys::mount(root, "/slot", "squashfs", ro) {
                Ok(()) => say(format!("slot {root} on /slot (squashfs, read-only)")),
                Err(e) => say(format!("{e}: the slot is unusable, gatewayd cannot start")),
            }
        }
        None => say("no appl.root on the kernel command line: no slot to mount"),
    }
    let data_mounted = match cmdline.data.as_deref() {
        Some(data) => {
            let flags = MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
            match sys::mount(data, "/data", "ext4", flags) {
                Ok(()) => {
                    say(format!("data {data} on /data (ext4)"));
                    true
                }
                Err(e) => {
                    say(format!("{e}: continuing without the data partition"));
                    false
                }
            }
        }
        None => {
            say("no appl.data on the kernel command line: continuing without the data partition");
            false
        }
    };
    if data_mounted && let Err(e) = sys::attach_log(Path::new(BOOT_LOG)) {
        say(format!("boot log {BOOT_LOG}: {e}"));
    }

    let mut config = load_config();
    if data_mounted {
        match sys::read_optional(NETWORK_TOML) {
            Ok(None) => {}
            Ok(Some(text)) => match config.network.with_override(&text, NETWORK_TOML) {
                Ok(n) => {
                    say(format!("network settings from {NETWORK_TOML}"));
                    config.network = n;
                }
                Err(e) => say(format!("{e}; using the slot's [network]")),
            },
            Err(e) => say(format!(
                "{NETWORK_TOML}: cannot read: {e}; using the slot's [network]"
            )),
        }
    }
    let version = match sys::read_optional(VERSION_FILE) {
        Ok(Some(v)) => v.lines().next().unwrap_or("").trim().to_owned(),
        Ok(None) | Err(_) => String::new(),
    };
    let version = if version.is_empty() {
        "unknown".to_owned()
    } else {
        version
    };

    match sys::net::configure(&config.network) {
        Ok(name) => say(format!(
            "network: lo 127.0.0.1/8, {name} {}",
            match config.network.mode {
                config::NetMode::Static => format!(
                    "{}{}",
                    config.network.address.map(|a| a.to_string()).unwrap_or_default(),
                    config
                        .network
                        .gateway
                        .map(|g| format!(" via {g}"))
                        .unwrap_or_default()
                ),
                config::NetMode::Dhcp => "up, asking DHCP for an address".to_owned(),
            }
        )),
        Err(e) => say(format!("network: {e}")),
    }

    Boot {
        cmdline,
        config,
        data_mounted,
        version,
    }
}

/// `/modules.list`: each module in order; a failure is reported and skipped.
fn load_modules() {
    let text = match sys::read_optional("/modules.list") {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            say(format!("/modules.list: {e}"));
            return;
        }
    };
    let list = modules::parse(&text);
    let mut failed = 0usize;
    for m in &list {
        if let Err(e) = sys::load_module(&m.path, &m.params) {
            failed += 1;
            say(format!("module {} ({}): {e}; continuing", m.name(), m.path));
        }
    }
    say(format!(
        "loaded {} of {} kernel modules",
        list.len() - failed,
        list.len()
    ));
}

/// `init.toml` from the slot, or the built-in defaults (said so) when it is missing or wrong.
fn load_config() -> InitConfig {
    match sys::read_optional(config::INIT_TOML) {
        Ok(Some(text)) => InitConfig::parse(&text, config::INIT_TOML).unwrap_or_else(|e| {
            say(format!("{e}; using the built-in defaults"));
            InitConfig::default()
        }),
        Ok(None) => {
            say(format!("no {}: using the built-in defaults", config::INIT_TOML));
            InitConfig::default()
        }
        Err(e) => {
            say(format!(
                "{}: cannot read: {e}; using the built-in defaults",
                config::INIT_TOML
            ));
            InitConfig::default()
        }
    }
}

/// Steps 6-9: the watchdog, gatewayd, the loop. Never returns.
fn supervise(boot: &Boot, signals: Option<&SignalFd>) -> ! {
    let cfg = &boot.config;
    let watchdog =
        match sys::watchdog::Watchdog::open(cfg.watchdog.device.path(), cfg.watchdog.timeout_s.get()) {
            Ok((wd, set)) => {
                match set {
                    Ok(t) => say(format!(
                        "watchdog {}: timeout {t} s",
                        cfg.watchdog.device.path().display()
                    )),
                    Err(e) => say(format!(
                        "watchdog {}: cannot set the timeout to {} s ({e}); the driver's own applies",
                        cfg.watchdog.device.path().display(),
                        cfg.watchdog.timeout_s.get()
                    )),
                }
                Some(wd)
            }
            Err(e) => {
                say(format!(
                    "no watchdog at {} ({e})",
                    cfg.watchdog.device.path().display()
                ));
                None
            }
        };
    let notify = sys::net::NotifySocket::bind(Path::new(NOTIFY_SOCKET))
        .map_err(|e| say(format!("{e}: gatewayd cannot report READY")))
        .ok();
    let probe = sys::net::ProbeSocket::bind(cfg.gatewayd.sip_probe_port.get())
        .map_err(|e| say(format!("{e}: no health probe possible")))
        .ok();
    let mut console = if boot.cmdline.testhooks {
        sys::open_console_input()
            .map_err(|e| say(format!("test hooks: cannot read the console: {e}")))
            .ok()
    } else {
        None
    };
    let data_text = boot
        .data_mounted
        .then(|| std::fs::read_to_string(GATEWAYD_TOML_DATA).ok())
        .flatten();
    let copy = edge_config::copy_for_schema(Path::new(GATEWAYD_TOML_DATA), edge_config::SCHEMA);
    let config_path = match config::gatewayd_config(data_text.as_deref(), copy.exists()) {
        GatewaydConfigFile::Data => GATEWAYD_TOML_DATA.to_owned(),
        GatewaydConfigFile::DataCopy(_) => copy.display().to_string(),
        GatewaydConfigFile::Slot(reason) => {
            if let Some(r) = reason {
                say(r);
            }
            GATEWAYD_TOML_SLOT.to_owned()
        }
    };
    let config_path = config_path.as_str();
    let launch = sys::Launch {
        path: cfg.gatewayd.path.path().to_owned(),
        config: config_path.to_owned(),
        notify_socket: NOTIFY_SOCKET.to_owned(),
        watchdog_usec: cfg.gatewayd.watchdog_usec,
    };
    say(format!(
        "supervising {} --config {config_path}",
        launch.path.display()
    ));
    let settings = Settings {
        slot: boot.cmdline.slot,
        version: boot.version.clone(),
        watchdog_present: watchdog.is_some(),
        pet_interval: cfg.watchdog.pet_interval(),
        notify_watchdog: cfg.gatewayd.watchdog(),
        ready_timeout: Duration::from_secs(u64::from(cfg.gatewayd.ready_timeout_s.get())),
    };
    let mut shell = Shell {
        sup: Supervisor::new(settings, sys::now()),
        watchdog,
        launch,
        probe,
        esp: boot.cmdline.esp.clone(),
        pet_error_said: false,
        agent: edge_init::keeper::Keeper::default(),
    };
    let mut lines = lines::LineBuffer::default();
    let mut last_status: Option<String> = None;
    loop {
        shell.run_due();
        let next = match (shell.sup.poll_timeout(), shell.agent.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = next.map_or(PollTimeout::NONE, |t| poll_timeout(t.saturating_sub(sys::now())));
        // Order of the poll set: signals, notify, probe, console (each optional).
        let mut fds = Vec::with_capacity(4);
        let mut kinds = Vec::with_capacity(4);
        if let Some(s) = signals {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            kinds.push(Source::Signals);
        }
        if let Some(n) = &notify {
            fds.push(PollFd::new(n.fd(), PollFlags::POLLIN));
            kinds.push(Source::Notify);
        }
        if let Some(p) = &shell.probe {
            fds.push(PollFd::new(p.fd(), PollFlags::POLLIN));
            kinds.push(Source::Probe);
        }
        if let Some(c) = &console {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            kinds.push(Source::Console);
        }
        let ready: Vec<Source> = match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => fds
                .iter()
                .zip(&kinds)
                .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, k)| *k)
                .collect(),
            Err(nix::errno::Errno::EINTR) => Vec::new(),
            Err(e) => {
                say(format!("poll: {e}"));
                sys::sleep(Duration::from_millis(100));
                Vec::new()
            }
        };
        drop(fds);
        let now = sys::now();
        for source in ready {
            match source {
                Source::Signals => {
                    if let Some(s) = signals {
                        while let Ok(Some(info)) = s.read_signal() {
                            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                            match Signal::try_from(signo) {
                                Ok(Signal::SIGTERM | Signal::SIGINT) => {
                                    if let Some(pid) = shell.agent.stop()
                                        && let Err(e) = sys::signal(pid, edge_init::supervisor::Sig::Term)
                                    {
                                        say(e);
                                    }
                                    shell.sup.shutdown(now);
                                }
                                Ok(Signal::SIGCHLD) | Err(_) => {}
                                Ok(other) => say(format!("ignoring {}", other.as_str())),
                            }
                        }
                    }
                }
                Source::Notify => {
                    if let Some(n) = &notify {
                        while let Some((bytes, pid)) = n.recv() {
                            let note = notify::Notification::parse(&bytes);
                            if let Some(status) = &note.status
                                && last_status.as_ref() != Some(status)
                            {
                                sys::log_only(format_args!("gatewayd status: {status}"));
                                // For the update agent: it reboots into a testboot only when no call
                                // is up.
                                let tmp = format!("{GATEWAYD_STATUS}.new");
                                if std::fs::write(&tmp, format!("{status}\n")).is_ok() {
                                    let _ = std::fs::rename(&tmp, GATEWAYD_STATUS);
                                }
                                last_status = Some(status.clone());
                            }
                            shell.sup.notify(now, pid, &note);
                        }
                    }
                }
                Source::Probe => {
                    if shell.probe.as_ref().is_some_and(sys::net::ProbeSocket::answered) {
                        shell.sup.probe_answered(now);
                    }
                }
                Source::Console => {
                    let mut buf = [0u8; 512];
                    let mut closed = false;
                    if let Some(mut c) = console.as_ref() {
                        loop {
                            match c.read(&mut buf) {
                                Ok(0) => {
                                    closed = true;
                                    break;
                                }
                                Ok(n) => {
                                    for line in lines.push(buf.get(..n).unwrap_or_default()) {
                                        if let Some(hook) = Hook::parse(&line) {
                                            shell.sup.hook(now, hook);
                                        }
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                                Err(e) => {
                                    say(format!("test hooks: console read: {e}"));
                                    closed = true;
                                    break;
                                }
                            }
                        }
                    }
                    // A console that hung up would wake poll forever: stop reading it.
                    if closed {
                        say("test hooks: the console closed, no more hooks");
                        console = None;
                    }
                }
            }
        }
        // SIGCHLD or not: reaping is cheap and nothing is missed if signals coalesce.
        for (pid, status) in sys::reap() {
            match shell.agent.exited(now, pid) {
                Some(wait) => say(format!(
                    "{AGENT} exited ({status}), restarting in {} s",
                    wait.as_secs()
                )),
                None => shell.sup.exited(now, pid, status),
            }
        }
    }
}

/// Which file descriptor woke the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Signals,
    Notify,
    Probe,
    Console,
}

/// A poll timeout rounded up to the millisecond (so the loop never spins on a sub-millisecond rest),
/// at most a minute.
fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000).min(60_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE)
}

/// The shell around the supervisor: performs its actions.
#[derive(Debug)]
struct Shell {
    sup: Supervisor,
    watchdog: Option<sys::watchdog::Watchdog>,
    launch: sys::Launch,
    probe: Option<sys::net::ProbeSocket>,
    esp: Option<String>,
    pet_error_said: bool,
    /// The update agent, started once the slot is marked good.
    agent: edge_init::keeper::Keeper,
}

impl Shell {
    /// Polls the supervisor and performs its actions until nothing more is due now.
    fn run_due(&mut self) {
        if self.agent.due(sys::now()) {
            match sys::spawn_helper(AGENT, &[]) {
                Ok(pid) => {
                    say(format!("started {AGENT} (pid {pid})"));
                    self.agent.spawned(sys::now(), pid);
                }
                Err(e) => {
                    let wait = self.agent.spawn_failed(sys::now());
                    say(format!("{e}; trying again in {} s", wait.as_secs()));
                }
            }
        }
        loop {
            let now = sys::now();
            let actions = self.sup.poll(now);
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.perform(action);
            }
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Spawn => match sys::spawn(&self.launch) {
                Ok(pid) => self.sup.spawned(sys::now(), pid),
                Err(e) => self.sup.spawn_failed(sys::now(), e.reason()),
            },
            Action::Signal(pid, sig) => {
                if let Err(e) = sys::signal(pid, sig) {
                    say(e);
                }
            }
            Action::Pet => {
                if let Some(wd) = self.watchdog.as_mut()
                    && let Err(e) = wd.pet()
                    && !self.pet_error_said
                {
                    self.pet_error_said = true;
                    say(format!("watchdog: cannot pet: {e}"));
                }
            }
            Action::SendProbe => {
                if let Some(p) = self.probe.as_mut()
                    && let Err(e) = p.send()
                {
                    say(e);
                }
            }
            Action::MarkGood(slot) => {
                let result = sys::mark_good(self.esp.as_deref(), slot);
                // The update agent judges the boot and installs only from a system that is healthy
                // and committed.
                if result.is_ok() && Path::new(AGENT).exists() {
                    self.agent.start(sys::now());
                }
                self.sup
                    .mark_result(sys::now(), result.map_err(|e| e.to_string()));
            }
            Action::Say(line) => say(line),
            Action::Reboot => sys::reboot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_and_are_bounded() {
        assert_eq!(poll_timeout(Duration::ZERO), PollTimeout::ZERO);
        assert_eq!(poll_timeout(Duration::from_micros(1)), PollTimeout::from(1u16));
        assert_eq!(poll_timeout(Duration::from_micros(1500)), PollTimeout::from(2u16));
        assert_eq!(
            poll_timeout(Duration::from_secs(3600)),
            PollTimeout::try_from(60_000u32).unwrap()
        );
    }
}
