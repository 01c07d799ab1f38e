//! The hardware watchdog device (`/dev/watchdog`, i6300esb in QEMU): open, set the timeout, pet.
//!
//! The one place in PID 1 with `unsafe`: `WDIOC_SETTIMEOUT` has no safe wrapper in `nix` or `rustix`.
//! Petting is a plain `write`. The device is never closed: closing it without the magic `V` would
//! stop nothing, and PID 1 never wants the watchdog disarmed.
#![allow(
    unsafe_code,
    reason = "WDIOC_SETTIMEOUT is an ioctl with no safe wrapper; the call is confined to this module"
)]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

mod ioctl {
    #![allow(unreachable_pub, reason = "nix's ioctl macro declares a pub fn")]
    // linux/watchdog.h: #define WDIOC_SETTIMEOUT _IOWR(WATCHDOG_IOCTL_BASE, 6, int), base 'W'.
    nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, nix::libc::c_int);
}

/// An open watchdog device.
#[derive(Debug)]
pub(crate) struct Watchdog {
    file: File,
}

impl Watchdog {
    /// Opens `path` (which arms the watchdog) and asks for `timeout_s`. Returns the device and the
    /// timeout the driver settled on (`Err` when it refused to change it: it keeps its own, e.g. the
    /// module's `heartbeat=` parameter).
    pub(crate) fn open(path: &Path, timeout_s: u32) -> std::io::Result<(Self, Result<u32, nix::Error>)> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut t = nix::libc::c_int::try_from(timeout_s).unwrap_or(nix::libc::c_int::MAX);
        // SAFETY: `file` is an open descriptor for the lifetime of the call; WDIOC_SETTIMEOUT reads and
        // writes exactly one c_int through the pointer, which points at `t`, a live, aligned c_int.
        let set = unsafe { ioctl::wdioc_settimeout(file.as_raw_fd(), &raw mut t) };
        let set = set.map(|_| u32::try_from(t).unwrap_or(0));
        Ok((Self { file }, set))
    }

    /// Pets the watchdog (any write resets its timer).
    pub(crate) fn pet(&mut self) -> std::io::Result<()> {
        self.file.write_all(b"\0")
    }
}
