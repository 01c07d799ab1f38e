//! The agent's shell: the device's files, grubenv, the clock, the reboot.

pub(crate) mod http;
pub(crate) mod install;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use edge_agent::config::Config;
use edge_agent::state::State;
use edge_init::cmdline::Slot;
use edge_ota::{Keyring, Version};
use serde::Deserialize;

/// Prints `edge-agent: <msg>` (the console, through PID 1; the HIL harness reads these lines).
pub(crate) fn say(msg: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "edge-agent: {msg}");
    let _ = out.flush();
}

/// Unix seconds by the wall clock; `None` before 2020 (a board whose clock was never set).
pub(crate) fn unix_now() -> Option<u64> {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    (s > 1_577_836_800).then_some(s)
}

/// A random number (for jitter and the device id).
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

/// Where things are on this device (`--system FILE` overrides, for running on a host against files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct System {
    /// The kernel command line (GRUB's `appl.*`).
    pub(crate) cmdline: PathBuf,
    /// The running slot's root (squashfs).
    pub(crate) slot_dir: PathBuf,
    /// The data partition.
    pub(crate) data_dir: PathBuf,
    /// A grubenv file to edit directly; empty: mount `appl.esp` and edit `/EFI/BOOT/grubenv` on it.
    pub(crate) grubenv: PathBuf,
    /// `pid1`: ask PID 1 for a clean reboot (SIGTERM); `exit`: exit 0 and let the caller reboot.
    pub(crate) reboot: String,
    /// Where long steps' progress is written for the web UI (tmpfs).
    pub(crate) progress: PathBuf,
    /// gatewayd's latest status, written by PID 1 (`calls: N, ending: M, ...`).
    pub(crate) gatewayd_status: PathBuf,
    /// Created by the web UI's "Check for updates": the agent checks in at its next look (within
    /// 5 s) instead of at the end of its interval, and removes it.
    pub(crate) check_request: PathBuf,
    /// Created by the web UI's "Roll back": the agent boots the other slot once (see
    /// `manual_rollback` in main.rs) and removes it.
    pub(crate) rollback_request: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        Self {
            cmdline: "/proc/cmdline".into(),
            slot_dir: "/slot".into(),
            data_dir: "/data".into(),
            grubenv: PathBuf::new(),
            reboot: "pid1".into(),
            progress: "/run/edge-agent.progress".into(),
            gatewayd_status: "/run/gatewayd.status".into(),
            check_request: "/run/edge-agent.check".into(),
            rollback_request: "/run/edge-agent.rollback".into(),
        }
    }
}

/// The device as the agent sees it at start.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) sys: System,
    pub(crate) running: Slot,
    pub(crate) inactive_device: PathBuf,
    pub(crate) esp: Option<String>,
    pub(crate) board: String,
    pub(crate) version: Version,
    pub(crate) keyring: Keyring,
    pub(crate) config: Config,
    pub(crate) state: State,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The other slot's device: the running root's partition number, 2 ↔ 3 (image/README.md).
pub(crate) fn sibling(root: &str) -> Option<String> {
    let other = match root.chars().last()? {
        '2' => '3',
        '3' => '2',
        _ => return None,
    };
    Some(format!("{}{other}", &root[..root.len() - 1]))
}

impl Device {
    pub(crate) fn open(sys: System) -> Result<Self, String> {
        let (cmdline, _) = edge_init::cmdline::parse(&read(&sys.cmdline)?);
        let running = cmdline
            .slot
            .ok_or("no appl.slot on the kernel command line: not booted by our GRUB script")?;
        let root = cmdline.root.ok_or("no appl.root on the kernel command line")?;
        let inactive_device = sibling(&root)
            .ok_or_else(|| format!("cannot tell the other slot's device from appl.root={root}"))?
            .into();
        let etc = sys.slot_dir.join("etc/rtc-edge");
        let board = read(&etc.join("board"))?.trim().to_owned();
        let version_text = read(&etc.join("version"))?;
        let version = Version::parse(version_text.trim()).map_err(|e| {
            format!(
                "{}: {:?} is not semver: {e}",
                etc.join("version").display(),
                version_text.trim()
            )
        })?;
        let keyring = Keyring::from_dir(&etc.join("ota-keys"))?;
        let data_cfg = sys.data_dir.join("etc/rtc-edge/update.toml");
        let slot_cfg = etc.join("update.toml");
        let config = match [&data_cfg, &slot_cfg].into_iter().find(|p| p.exists()) {
            Some(p) => Config::parse(&read(p)?, &p.display().to_string()).map_err(|e| e.to_string())?,
            None => Config::parse("", "(defaults)").map_err(|e| e.to_string())?,
        };
        let state_path = sys.data_dir.join("ota/state.toml");
        let mut state = match std::fs::read_to_string(&state_path) {
            Ok(t) => State::parse(&t).map_err(|e| format!("{}: {e}", state_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(format!("{}: {e}", state_path.display())),
        };
        if !config.device_id.is_empty() {
            state.device_id.clone_from(&config.device_id);
        } else if state.device_id.is_empty() {
            state.device_id = format!("dev-{:08x}{:08x}", random_u32(), random_u32());
        }
        let dev = Self {
            running,
            inactive_device,
            esp: cmdline.esp,
            board,
            version,
            keyring,
            config,
            state,
            sys,
        };
        dev.save()?;
        Ok(dev)
    }

    pub(crate) fn ota_dir(&self) -> PathBuf {
        self.sys.data_dir.join("ota")
    }

    /// Writes the state file atomically (temp file, fsync, rename, fsync of the folder).
    pub(crate) fn save(&self) -> Result<(), String> {
        let dir = self.ota_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join("state.toml.new");
        let done = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(self.state.to_toml().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join("state.toml"))?;
            File::open(&dir)?.sync_all()
        })();
        done.map_err(|e| format!("saving {}: {e}", dir.join("state.toml").display()))
    }

    /// The boot log section before this boot's (PID 1's `---- boot ----` sections).
    pub(crate) fn previous_boot_log(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.sys.data_dir.join("log/boot.log")).ok()?;
        let sections = edge_agent::boot::boot_sections(&log);
        sections
            .len()
            .checked_sub(2)
            .and_then(|i| sections.get(i))
            .map(|s| (*s).to_owned())
    }

    /// Reads grubenv, applies `edit` (bytes → bytes of the same length) and writes it back in place
    /// with fsync (GRUB refuses a resized file). Returns the block as it is afterwards.
    pub(crate) fn grubenv(
        &self,
        edit: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<Vec<u8>, String> {
        if !self.sys.grubenv.as_os_str().is_empty() {
            return edit_file(&self.sys.grubenv, edit);
        }
        let esp = self
            .esp
            .as_deref()
            .ok_or("no appl.esp on the kernel command line")?;
        use nix::mount::{MsFlags, mount, umount};
        let _ = std::fs::create_dir_all("/esp");
        mount(
            Some(esp),
            "/esp",
            Some("vfat"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| format!("mount {esp} on /esp: {e}"))?;
        let result = edit_file(Path::new("/esp/EFI/BOOT/grubenv"), edit);
        let unmounted = umount("/esp").map_err(|e| format!("umount /esp: {e}"));
        let block = result?;
        unmounted?;
        Ok(block)
    }

    pub(crate) fn ab(&self) -> Result<edge_init::grubenv::AbState, String> {
        let block = self.grubenv(|_| Ok(None))?;
        edge_init::grubenv::ab_state(&block).map_err(|e| format!("grubenv: {e}"))
    }

    /// Reboots once no call is up (gatewayd's status, as PID 1 last wrote it), or after the
    /// configured longest wait. Never returns.
    pub(crate) fn reboot_when_idle(&self) -> ! {
        let limit = std::time::Duration::from_secs(self.config.reboot_wait_s);
        let start = std::time::Instant::now();
        let mut said = false;
        loop {
            let busy = std::fs::read_to_string(&self.sys.gatewayd_status)
                .map_or(0, |s| edge_agent::schedule::busy_calls(&s));
            if busy == 0 {
                break;
            }
            if start.elapsed() >= limit {
                say(format!(
                    "{busy} calls still up after {} s: rebooting anyway",
                    limit.as_secs()
                ));
                break;
            }
            if !said {
                say(format!(
                    "waiting for {busy} calls to end before rebooting (at most {} s)",
                    limit.as_secs()
                ));
                said = true;
            }
            std::thread::sleep(std::time::Duration::from_secs(1).min(limit));
        }
        self.reboot()
    }

    /// Asks for a reboot (PID 1 stops gatewayd cleanly, syncs, unmounts, reboots). Never returns.
    pub(crate) fn reboot(&self) -> ! {
        say("rebooting");
        if self.sys.reboot == "pid1" {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(1), nix::sys::signal::Signal::SIGTERM);
            // PID 1 stops us with the rest; wait for it.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        std::process::exit(0)
    }

    /// Publishes a long step's progress for the web UI (one line of JSON, replaced atomically).
    pub(crate) fn progress(&self, what: &str, version: &str, done: u64, total: u64) {
        let tmp = self.sys.progress.with_extension("new");
        let line = format!(
            "{{\"step\":\"{what}\",\"version\":\"{}\",\"done\":{done},\"total\":{total}}}\n",
            version.replace(['"', '\\'], "")
        );
        if std::fs::write(&tmp, line).is_ok() {
            let _ = std::fs::rename(&tmp, &self.sys.progress);
        }
    }
}

fn edit_file(
    path: &Path,
    edit: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {shown}: {e}"))?;
    let mut block = Vec::new();
    Read::by_ref(&mut f)
        .take(4096)
        .read_to_end(&mut block)
        .map_err(|e| format!("read {shown}: {e}"))?;
    match edit(&block)? {
        Some(new) if new != block => {
            if new.len() != block.len() {
                return Err(format!("{shown}: refusing to change the block's length"));
            }
            f.write_all_at(&new, 0)
                .map_err(|e| format!("write {shown}: {e}"))?;
            f.sync_all().map_err(|e| format!("fsync {shown}: {e}"))?;
            Ok(new)
        }
        _ => Ok(block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_slot_is_the_sibling_partition() {
        assert_eq!(sibling("/dev/vda2").as_deref(), Some("/dev/vda3"));
        assert_eq!(sibling("/dev/mmcblk0p3").as_deref(), Some("/dev/mmcblk0p2"));
        assert_eq!(sibling("/dev/vda4"), None);
    }
}
