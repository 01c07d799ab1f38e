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

use edge_init::cmdline::Slot;
use edge_init::supervisor::{ExitKind, Sig};

// ---------------------------------------------------------------------------------------------------
// Errors

/// Something the host did not do for PID 1: what was being done, and the system's reason. Every one is
/// reported on the console and PID 1 carries on (a fallback, a retry, or the watchdog's verdict).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SysError {
    /// A system call failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What PID 1 was doing (`mount /dev/vda2 (squashfs) on /slot`).
        what: String,
        /// The kernel's answer.
        errno: Errno,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What PID 1 was doing.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The system answered, but not with something PID 1 can use (no network interface, a grubenv
    /// it cannot rewrite safely, an SNTP server that never gave a usable time).
    #[error("{0}")]
    Unusable(String),
}

impl SysError {
    /// The system's reason alone (`No such file or directory`), for lines that name the action themselves.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Sys { errno, .. } => errno.desc().to_owned(),
            Self::Io { source, .. } => source.to_string(),
            Self::Unusable(why) => why.clone(),
        }
    }
}

/// Adds what PID 1 was doing to a system error.
pub(crate) trait Ctx<T> {
    /// `what` names the action: `mount /dev/vda2 on /slot`.
    fn ctx(self, what: impl Display) -> Result<T, SysError>;
}

impl<T> Ctx<T> for Result<T, Errno> {
    fn ctx(self, what: impl Display) -> Result<T, SysError> {
        self.map_err(|errno| SysError::Sys {
            what: what.to_string(),
            errno,
        })
    }
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, what: impl Display) -> Result<T, SysError> {
        self.map_err(|source| SysError::Io {
            what: what.to_string(),
            source,
        })
    }
}

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
pub(crate) fn attach_console() -> Result<(), SysError> {
    let dev = Path::new("/dev/console");
    if !dev.exists() {
        // No devtmpfs: make the node by hand (character 5:1).
        nix::sys::stat::mknod(
            dev,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(5, 1),
        )
        .ctx(format_args!("mknod /dev/console"))?;
    }
    let console = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(dev)
        .ctx(format_args!("open /dev/console"))?;
    nix::unistd::dup2_stdin(&console).ctx(format_args!("dup2 stdin"))?;
    nix::unistd::dup2_stdout(&console).ctx(format_args!("dup2 stdout"))?;
    nix::unistd::dup2_stderr(&console).ctx(format_args!("dup2 stderr"))?;
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
pub(crate) fn mount(source: &str, target: &str, fstype: &str, flags: MsFlags) -> Result<(), SysError> {
    fs::create_dir_all(target).ctx(format_args!("mkdir {target}"))?;
    nix::mount::mount(Some(source), target, Some(fstype), flags, None::<&str>)
        .ctx(format_args!("mount {source} ({fstype}) on {target}"))
}

/// `/proc`, `/sys`, devtmpfs on `/dev` (each unless already mounted), and the directories PID 1 uses.
pub(crate) fn mount_early() -> Vec<SysError> {
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
            errors.push(SysError::Io {
                what: format!("mkdir {dir}"),
                source: e,
            });
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
pub(crate) fn unmount(target: &str) -> Result<(), SysError> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => {
            nix::mount::umount2(target, MntFlags::MNT_DETACH).ctx(format_args!("umount {target} (lazy)"))
        }
        Err(errno) => Err(SysError::Sys {
            what: format!("umount {target}"),
            errno,
        }),
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
pub(crate) fn load_module(path: &str, params: &str) -> Result<(), SysError> {
    let file = File::open(path).ctx(format_args!("open"))?;
    let params =
        CString::new(params).map_err(|_| SysError::Unusable("parameters contain a NUL byte".into()))?;
    match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(SysError::Sys {
            what: "finit_module".into(),
            errno,
        }),
    }
}

// ---------------------------------------------------------------------------------------------------
// Processes and signals

/// Blocks the signals PID 1 handles (so they queue for the signalfd) and returns the signalfd. Must run
/// before any thread starts, so every thread inherits the mask; children get a clean mask from std's
/// `Command`.
pub(crate) fn signals() -> Result<SignalFd, SysError> {
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
    mask.thread_block().ctx(format_args!("sigprocmask"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ctx(format_args!("signalfd"))
}

/// Sends `sig` to `pid`.
pub(crate) fn signal(pid: i32, sig: Sig) -> Result<(), SysError> {
    let s = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
        Sig::Stop => Signal::SIGSTOP,
        Sig::Cont => Signal::SIGCONT,
    };
    nix::sys::signal::kill(Pid::from_raw(pid), s).ctx(format_args!("kill({pid}, {})", s.as_str()))
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
pub(crate) fn spawn(l: &Launch) -> Result<i32, SysError> {
    let path = l.path.to_string_lossy();
    let mut env = vec![
        "PATH=/slot/usr/bin:/usr/bin:/bin".to_owned(),
        format!("NOTIFY_SOCKET={}", l.notify_socket),
    ];
    if l.watchdog_usec > 0 {
        env.push(format!("WATCHDOG_USEC={}", l.watchdog_usec));
    }
    spawn_clean(&path, &["--config", &l.config], &env)
}

/// Starts a helper (the update agent) the same way: clean signal state, stdin from /dev/null,
/// stdout and stderr on the console. Returns its pid.
pub(crate) fn spawn_helper(path: &str, args: &[&str]) -> Result<i32, SysError> {
    spawn_clean(path, args, &["PATH=/slot/usr/bin:/usr/bin:/bin".to_owned()])
}

fn spawn_clean(path: &str, args: &[&str], env: &[String]) -> Result<i32, SysError> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    let cstr =
        |s: &str| CString::new(s).map_err(|_| SysError::Unusable(format!("{s:?} contains a NUL byte")));
    let cpath = cstr(path)?;
    let mut argv = vec![cpath.clone()];
    for a in args {
        argv.push(cstr(a)?);
    }
    let env = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>, _>>()?;
    let mut attr = PosixSpawnAttr::init().ctx(format_args!("posix_spawnattr_init"))?;
    attr.set_flags(PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF)
        .ctx(format_args!("posix_spawnattr_setflags"))?;
    attr.set_sigmask(&SigSet::empty())
        .ctx(format_args!("posix_spawnattr_setsigmask"))?;
    attr.set_sigdefault(&SigSet::all())
        .ctx(format_args!("posix_spawnattr_setsigdefault"))?;
    let mut actions = PosixSpawnFileActions::init().ctx(format_args!("posix_spawn_file_actions_init"))?;
    actions
        .add_open(
            0,
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(format_args!("posix_spawn_file_actions_addopen"))?;
    nix::spawn::posix_spawn(cpath.as_c_str(), &actions, &attr, &argv, &env)
        .map(Pid::as_raw)
        .ctx(format_args!("posix_spawn {path}"))
}

// ---------------------------------------------------------------------------------------------------
// Mark good, reboot

/// Where grubenv lives on the ESP.
const GRUBENV: &str = "/esp/EFI/BOOT/grubenv";

/// Mounts the ESP, resets `slot`'s tries in grubenv (same length, in place, fsync), unmounts.
pub(crate) fn mark_good(esp: Option<&str>, slot: Slot) -> Result<(), SysError> {
    let dev = esp.ok_or_else(|| SysError::Unusable("no appl.esp on the kernel command line".into()))?;
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
fn rewrite_grubenv(path: &Path, slot: Slot) -> Result<(), SysError> {
    let shown = path.display();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx(format_args!("open {shown}"))?;
    let mut block = Vec::new();
    Read::by_ref(&mut f)
        .take(4096)
        .read_to_end(&mut block)
        .ctx(format_args!("read {shown}"))?;
    let new = edge_init::grubenv::mark_good(&block, slot)
        .map_err(|e| SysError::Unusable(format!("{shown}: {e}")))?;
    if new != block {
        f.write_all_at(&new, 0).ctx(format_args!("write {shown}"))?;
        f.sync_all().ctx(format_args!("fsync {shown}"))?;
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
        block.resize(edge_init::grubenv::BLOCK_LEN, b'#');
        fs::write(&path, &block).unwrap();
        rewrite_grubenv(&path, Slot::A).unwrap();
        let after = fs::read(&path).unwrap();
        assert_eq!(after.len(), edge_init::grubenv::BLOCK_LEN);
        assert!(after.starts_with(b"# GRUB Environment Block\nboot_order=A B\nA_left=3\nB_left=0\n#"));
        // A file that is not a block is left alone.
        fs::write(&path, b"garbage").unwrap();
        let e = rewrite_grubenv(&path, Slot::A).unwrap_err();
        assert!(e.to_string().contains("7 bytes"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"garbage");
        assert!(
            rewrite_grubenv(&dir.join("missing"), Slot::B)
                .unwrap_err()
                .to_string()
                .starts_with("open ")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
