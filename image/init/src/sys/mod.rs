//! The shell's system calls: the clock, the console and boot log, mounts, kernel modules, gatewayd's
//! process, signals and reaping, grubenv on the ESP, reboot. No decisions are made here: they are in the
//! pure modules, and `main.rs` wires the two.

pub(crate) mod net;
pub(crate) mod watchdog;

use std::ffi::CString;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cmdline::Slot;
use crate::supervisor::{ExitKind, Sig};

// ---------------------------------------------------------------------------------------------------
// Clock

static START: OnceLock<Instant> = OnceLock::new();

/// Time since PID 1 started (the first call), on the monotonic clock: the cores' `now`.
#[allow(
    clippy::disallowed_methods,
    reason = "the shell reads the clock; the cores get it as input"
)]
pub(crate) fn now() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

/// Sleeps (only the boot steps before the supervision loop, e.g. waiting for block devices).
#[allow(clippy::disallowed_methods, reason = "the shell may wait; the cores never do")]
pub(crate) fn sleep(d: Duration) {
    std::thread::sleep(d);
}

// ---------------------------------------------------------------------------------------------------
// Console and boot log

/// The boot log on the data partition, with its backlog until the partition is mounted.
#[derive(Debug)]
struct Log {
    file: Option<File>,
    backlog: Vec<String>,
    detached: bool,
}

static LOG: Mutex<Log> = Mutex::new(Log {
    file: None,
    backlog: Vec::new(),
    detached: false,
});

/// Most lines kept in memory before the boot log is attached.
const BACKLOG_MAX: usize = 1000;
/// The boot log is rotated (to `boot.log.1`) when it grows past this.
const LOG_ROTATE_BYTES: u64 = 512 * 1024;

/// Prints `edge-init: <msg>` on the console and appends it (timestamped) to the boot log.
pub(crate) fn say(msg: impl Display) {
    let line = format!("edge-init: {msg}\n");
    {
        let mut out = std::io::stdout().lock();
        // Nowhere to report a console that cannot be written.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
    let t = now();
    let stamped = format!("[{:>5}.{:03}] {line}", t.as_secs(), t.subsec_millis());
    let mut log = LOG.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(f) = log.file.as_mut() {
        // On disk at once: the lines that matter most come just before a watchdog reset, which
        // would otherwise take the page cache (and the log) with it. They are few.
        let _ = f.write_all(stamped.as_bytes()).and_then(|()| f.sync_data());
    } else if !log.detached && log.backlog.len() < BACKLOG_MAX {
        log.backlog.push(stamped);
    }
}

/// Appends `msg` to the boot log only (gatewayd's STATUS changes: too chatty for the console; not
/// synced on its own, the next [`say`] syncs it).
pub(crate) fn log_only(msg: impl Display) {
    let t = now();
    let stamped = format!("[{:>5}.{:03}] {msg}\n", t.as_secs(), t.subsec_millis());
    let mut log = LOG.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(f) = log.file.as_mut() {
        let _ = f.write_all(stamped.as_bytes());
    }
}

/// Starts appending the boot log to `path` (writing the backlog first); rotates a large one.
pub(crate) fn attach_log(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        fs::rename(path, path.with_extension("log.1"))?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut log = LOG.lock().unwrap_or_else(PoisonError::into_inner);
    file.write_all(b"---- boot ----\n")?;
    for line in log.backlog.drain(..) {
        file.write_all(line.as_bytes())?;
    }
    file.sync_all()?;
    log.file = Some(file);
    Ok(())
}

/// Closes the boot log (before its file system is unmounted).
pub(crate) fn detach_log() {
    let mut log = LOG.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(f) = log.file.take() {
        let _ = f.sync_all();
    }
    log.detached = true;
    log.backlog.clear();
}

/// Makes `/dev/console` PID 1's stdin, stdout and stderr (the kernel may have found no console in
/// the initramfs before devtmpfs was mounted).
pub(crate) fn attach_console() -> Result<(), String> {
    let dev = Path::new("/dev/console");
    if !dev.exists() {
        // No devtmpfs: make the node by hand (character 5:1).
        nix::sys::stat::mknod(
            dev,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(5, 1),
        )
        .map_err(|e| format!("mknod /dev/console: {e}"))?;
    }
    let console = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(dev)
        .map_err(|e| format!("open /dev/console: {e}"))?;
    nix::unistd::dup2_stdin(&console).map_err(|e| format!("dup2 stdin: {e}"))?;
    nix::unistd::dup2_stdout(&console).map_err(|e| format!("dup2 stdout: {e}"))?;
    nix::unistd::dup2_stderr(&console).map_err(|e| format!("dup2 stderr: {e}"))?;
    Ok(())
}

/// Opens the console for reading test hooks: non-blocking, without echo (the harness's commands are
/// not written back over our lines).
pub(crate) fn open_console_input() -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open("/dev/console")?;
    if let Ok(mut t) = nix::sys::termios::tcgetattr(&f) {
        t.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&f, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    Ok(f)
}

// ---------------------------------------------------------------------------------------------------
// File systems

/// Mounts `source` on `target` (created if missing).
pub(crate) fn mount(source: &str, target: &str, fstype: &str, flags: MsFlags) -> Result<(), String> {
    fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    nix::mount::mount(Some(source), target, Some(fstype), flags, None::<&str>)
        .map_err(|e| format!("mount {source} ({fstype}) on {target}: {e}"))
}

/// `/proc`, `/sys`, devtmpfs on `/dev` (each unless already mounted), and the directories PID 1 uses.
pub(crate) fn mount_early() -> Vec<String> {
    let mut errors = Vec::new();
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (src, target, fstype, flags) in [
        ("proc", "/proc", "proc", quiet),
        ("sysfs", "/sys", "sysfs", quiet),
        ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID),
    ] {
        // Already there (mounted by whoever started us): keep it.
        if is_mountpoint(target) {
            continue;
        }
        if let Err(e) = mount(src, target, fstype, flags) {
            errors.push(e);
        }
    }
    for dir in ["/run", "/tmp", "/etc", "/slot", "/data", "/esp"] {
        if let Err(e) = fs::create_dir_all(dir) {
            errors.push(format!("mkdir {dir}: {e}"));
        }
    }
    errors
}

/// Whether something is mounted on `path` (per `/proc/self/mounts`).
fn is_mountpoint(path: &str) -> bool {
    fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(path)))
}

/// Unmounts `target`; a busy one is detached lazily.
pub(crate) fn unmount(target: &str) -> Result<(), String> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => nix::mount::umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| format!("umount {target} (lazy): {e}")),
        Err(e) => Err(format!("umount {target}: {e}")),
    }
}

/// Waits until every path exists or `limit` passes; returns the ones still missing.
pub(crate) fn wait_for_paths<'a>(paths: &[&'a str], limit: Duration) -> Vec<&'a str> {
    let start = now();
    loop {
        let missing: Vec<&str> = paths.iter().copied().filter(|p| !Path::new(p).exists()).collect();
        if missing.is_empty() || now().saturating_sub(start) >= limit {
            return missing;
        }
        sleep(Duration::from_millis(50));
    }
}

/// Reads a small text file; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &str) -> Result<Option<String>, std::io::Error> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------------
// Kernel modules

/// Loads one module file with its parameters. An already loaded (or built-in) module is success.
pub(crate) fn load_module(path: &str, params: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("open: {e}"))?;
    let params = CString::new(params).map_err(|_| "parameters contain a NUL byte".to_owned())?;
    match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Processes and signals

/// Blocks the signals PID 1 handles (so they queue for the signalfd) and returns the signalfd. Must run
/// before any thread starts, so every thread inherits the mask; children get a clean mask from std's
/// `Command`.
pub(crate) fn signals() -> Result<SignalFd, String> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| format!("sigprocmask: {e}"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))
}

/// Sends `sig` to `pid`.
pub(crate) fn signal(pid: i32, sig: Sig) -> Result<(), String> {
    let s = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
        Sig::Stop => Signal::SIGSTOP,
        Sig::Cont => Signal::SIGCONT,
    };
    nix::sys::signal::kill(Pid::from_raw(pid), s).map_err(|e| format!("kill({pid}, {}): {e}", s.as_str()))
}

/// Reaps every child that has exited (PID 1 inherits orphans): `(pid, how)`.
pub(crate) fn reap() -> Vec<(i32, ExitKind)> {
    let mut out = Vec::new();
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitKind::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                out.push((pid.as_raw(), ExitKind::Signal(sig.as_str().to_owned())));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return out,
            Ok(_) => {}
        }
    }
}

/// How gatewayd is started.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The binary.
    pub(crate) path: std::path::PathBuf,
    /// Its `--config`.
    pub(crate) config: String,
    /// `NOTIFY_SOCKET`.
    pub(crate) notify_socket: String,
    /// `WATCHDOG_USEC` (0: not set).
    pub(crate) watchdog_usec: u64,
}

/// Starts gatewayd; returns its pid. It is reaped by [`reap`], never waited for here.
///
/// `posix_spawn` rather than `std::process::Command`: the child must start with an empty signal mask
/// and default dispositions, and PID 1 keeps SIGTERM, SIGCHLD … blocked for its signalfd (a mask that
/// `Command` passes on, so gatewayd would never see its SIGTERM).
pub(crate) fn spawn(l: &Launch) -> Result<i32, String> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let path = cstr(&l.path.to_string_lossy())?;
    let args = [path.clone(), cstr("--config")?, cstr(&l.config)?];
    let mut env = vec![
        cstr("PATH=/slot/usr/bin:/usr/bin:/bin")?,
        cstr(&format!("NOTIFY_SOCKET={}", l.notify_socket))?,
    ];
    if l.watchdog_usec > 0 {
        env.push(cstr(&format!("WATCHDOG_USEC={}", l.watchdog_usec))?);
    }
    let mut attr = PosixSpawnAttr::init().map_err(|e| format!("posix_spawnattr_init: {e}"))?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)
        .map_err(|e| format!("posix_spawnattr_setflags: {e}"))?;
    attr.set_sigmask(&SigSet::empty())
        .map_err(|e| format!("posix_spawnattr_setsigmask: {e}"))?;
    attr.set_sigdefault(&SigSet::all())
        .map_err(|e| format!("posix_spawnattr_setsigdefault: {e}"))?;
    let mut actions =
        PosixSpawnFileActions::init().map_err(|e| format!("posix_spawn_file_actions_init: {e}"))?;
    actions
        .add_open(
            0,
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| format!("posix_spawn_file_actions_addopen: {e}"))?;
    nix::spawn::posix_spawn(path.as_c_str(), &actions, &attr, &args, &env)
        .map(Pid::as_raw)
        .map_err(|e| e.desc().to_owned())
}

// ---------------------------------------------------------------------------------------------------
// Mark good, reboot

/// Where grubenv lives on the ESP.
const GRUBENV: &str = "/esp/EFI/BOOT/grubenv";

/// Mounts the ESP, resets `slot`'s tries in grubenv (same length, in place, fsync), unmounts.
pub(crate) fn mark_good(esp: Option<&str>, slot: Slot) -> Result<(), String> {
    let dev = esp.ok_or("no appl.esp on the kernel command line")?;
    mount(
        dev,
        "/esp",
        "vfat",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )?;
    let result = rewrite_grubenv(Path::new(GRUBENV), slot);
    let unmounted = unmount("/esp");
    result?;
    unmounted
}

/// Rewrites the grubenv block at `path` in place (same length, one write at offset 0, fsync).
fn rewrite_grubenv(path: &Path, slot: Slot) -> Result<(), String> {
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
    let new = crate::grubenv::mark_good(&block, slot).map_err(|e| format!("{shown}: {e}"))?;
    if new != block {
        f.write_all_at(&new, 0)
            .map_err(|e| format!("write {shown}: {e}"))?;
        f.sync_all().map_err(|e| format!("fsync {shown}: {e}"))?;
    }
    Ok(())
}

/// Syncs, unmounts data and slot, and reboots. Never returns: if the reboot call fails, PID 1 idles.
pub(crate) fn reboot() -> ! {
    say("syncing, unmounting, rebooting");
    detach_log();
    nix::unistd::sync();
    for target in ["/esp", "/data", "/slot"] {
        if is_mountpoint(target)
            && let Err(e) = unmount(target)
        {
            say(e);
        }
    }
    nix::unistd::sync();
    let Err(e) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    say(format!("reboot failed: {e}"));
    idle()
}

/// PID 1 must never exit: when nothing else can be done, reap children forever.
pub(crate) fn idle() -> ! {
    loop {
        let _ = reap();
        sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grubenv_is_rewritten_in_place() {
        let dir = std::env::temp_dir().join(format!("edge-init-grubenv-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grubenv");
        let mut block = b"# GRUB Environment Block\nboot_order=A B\nA_left=1\nB_left=0\n".to_vec();
        block.resize(crate::grubenv::BLOCK_LEN, b'#');
        fs::write(&path, &block).unwrap();
        rewrite_grubenv(&path, Slot::A).unwrap();
        let after = fs::read(&path).unwrap();
        assert_eq!(after.len(), crate::grubenv::BLOCK_LEN);
        assert!(after.starts_with(b"# GRUB Environment Block\nboot_order=A B\nA_left=3\nB_left=0\n#"));
        // A file that is not a block is left alone.
        fs::write(&path, b"garbage").unwrap();
        assert!(rewrite_grubenv(&path, Slot::A).unwrap_err().contains("7 bytes"));
        assert_eq!(fs::read(&path).unwrap(), b"garbage");
        assert!(
            rewrite_grubenv(&dir.join("missing"), Slot::B)
                .unwrap_err()
                .starts_with("open ")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
