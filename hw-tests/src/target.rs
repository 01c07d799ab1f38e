//! What a scenario runs against: a board reached through its serial console and a SIP address.
//! [`Qemu`] boots an image here (TCG, a per-test copy of the disk and firmware variables, the console on
//! a pty read with `serialport`, SIP forwarded from 127.0.0.1); [`Serial`] is a real board on a serial
//! device and a network address, as its board file names them.

use std::fs::File;
use std::io::{BufRead, BufReader};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::console::Console;
use crate::sip::SipAddr;

/// How to boot one board under QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuSpec {
    /// `qemu-system-x86_64` or `qemu-system-aarch64`.
    pub binary: String,
    /// Machine and CPU arguments, e.g. `["-M", "virt", "-cpu", "cortex-a57"]`.
    pub machine: Vec<String>,
    pub memory_mib: u32,
    /// UEFI firmware code (read-only) and the variables template (copied per test).
    pub firmware_code: PathBuf,
    pub firmware_vars: PathBuf,
}

/// Booting or reaching a target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU did not say where its serial pty is; its output:\n{0}")]
    NoPty(String),
    #[error("opening the serial console {path}: {source}")]
    Serial {
        path: String,
        #[source]
        source: serialport::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TargetError {
    let what = what.into();
    move |source| TargetError::Io { what, source }
}

/// The argument list for one boot (pure: tested below).
///
/// `guestfwd` adds `guestfwd=<it>` to the fenced network: a service on the host the guest may reach
/// (the update server, through a relay command), nothing else.
pub fn qemu_args(
    spec: &QemuSpec,
    disk: &Path,
    vars: &Path,
    sip_udp: u16,
    sip_tcp: u16,
    guestfwd: Option<&str>,
) -> Vec<String> {
    let mut a: Vec<String> = spec.machine.clone();
    a.extend(
        [
            "-accel",
            "tcg",
            "-m",
            &spec.memory_mib.to_string(),
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
            "-serial",
            "pty",
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={}", spec.firmware_code.display()),
            "-drive",
            &format!("if=pflash,format=raw,file={}", vars.display()),
            "-drive",
            &format!("file={},format=raw,if=none,id=disk0", disk.display()),
            "-device",
            "virtio-blk-pci,drive=disk0",
            // The guest reaches nothing but what is forwarded to it (restrict=on): no route out.
            "-netdev",
            &format!(
                "user,id=net0,restrict=on,hostfwd=udp:127.0.0.1:{sip_udp}-:5060,hostfwd=tcp:127.0.0.1:{sip_tcp}-:5060{}",
                guestfwd.map(|g| format!(",guestfwd={}", g.replace(',', ",,"))).unwrap_or_default()
            ),
            "-device",
            "virtio-net-pci,netdev=net0",
            // The hardware watchdog PID 1 pets; when petting stops, the board resets.
            "-device",
            "i6300esb",
            "-action",
            "watchdog=reset",
        ]
        .map(String::from),
    );
    a
}

/// A QEMU guest booted from a copy of an image.
pub struct Qemu {
    child: Child,
    pub console: Console,
    /// gatewayd's SIP, forwarded from 127.0.0.1: over TCP, because the fenced user network drops the
    /// guest's UDP answers to forwarded datagrams (QEMU 7.2 slirp with `restrict=on`).
    pub sip: SipAddr,
    /// The forwarded UDP port (reaches the guest; its answers do not come back while fenced).
    pub sip_udp: SocketAddr,
    /// The guest's own disk copy (a scenario may inspect it after the guest stopped).
    pub disk: PathBuf,
}

impl std::fmt::Debug for Qemu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qemu")
            .field("sip", &self.sip)
            .finish_non_exhaustive()
    }
}

impl Qemu {
    /// Copies `image` and the firmware variables into `work`, boots, and opens the console (its lines
    /// also go to `work/console.log`).
    pub fn boot(spec: &QemuSpec, image: &Path, work: &Path) -> Result<Self, TargetError> {
        std::fs::create_dir_all(work).map_err(io(format!("creating {}", work.display())))?;
        let disk = work.join("disk.img");
        let vars = work.join("vars.fd");
        std::fs::copy(image, &disk).map_err(io(format!("copying {}", image.display())))?;
        std::fs::copy(&spec.firmware_vars, &vars)
            .map_err(io(format!("copying {}", spec.firmware_vars.display())))?;
        Self::boot_disk(spec, &disk, &vars, work, None)
    }

    /// Boots `disk` itself (no copy: what the previous boot left, as after a power cut) with the
    /// firmware variables `vars` (copied from the template when missing); console and QEMU logs go
    /// to `work`.
    pub fn boot_disk(
        spec: &QemuSpec,
        disk: &Path,
        vars: &Path,
        work: &Path,
        guestfwd: Option<&str>,
    ) -> Result<Self, TargetError> {
        std::fs::create_dir_all(work).map_err(io(format!("creating {}", work.display())))?;
        if !vars.exists() {
            std::fs::copy(&spec.firmware_vars, vars)
                .map_err(io(format!("copying {}", spec.firmware_vars.display())))?;
        }
        let disk = disk.to_owned();
        let (udp, tcp) = (free_port(false)?, free_port(true)?);
        let started = clock();
        let mut child = Command::new(&spec.binary)
            .args(qemu_args(spec, &disk, vars, udp, tcp, guestfwd))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {}", spec.binary)))?;
        // QEMU names the pty on standard output or standard error (versions differ): read both, keep
        // everything in qemu.log.
        let qemu_log = work.join("qemu.log");
        let log_file = File::create(&qemu_log).map_err(io(format!("creating {}", qemu_log.display())))?;
        let log_file = std::sync::Arc::new(std::sync::Mutex::new(log_file));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout is piped")),
            Box::new(child.stderr.take().expect("stderr is piped")),
        ];
        for output in outputs {
            let (tx, log_file) = (tx.clone(), std::sync::Arc::clone(&log_file));
            std::thread::spawn(move || {
                use std::io::Write;
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if let Ok(mut f) = log_file.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut said = String::new();
        let pty = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(p) = pty_path(&line) {
                        break Some(p);
                    }
                    said.push_str(&line);
                    said.push('\n');
                }
                Err(_) => break None,
            }
        };
        let Some(pty) = pty else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TargetError::NoPty(said));
        };
        let console = open_console(&pty, 115_200, work, started)?;
        Ok(Self {
            child,
            console,
            sip: SipAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], tcp))),
            sip_udp: SocketAddr::from(([127, 0, 0, 1], udp)),
            disk,
        })
    }

    /// Stops the guest (it is a test: no clean shutdown needed).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `char device redirected to /dev/pts/3 (label serial0)` → `/dev/pts/3`.
fn pty_path(line: &str) -> Option<String> {
    let i = line.find("/dev/pts/")?;
    let rest = &line[i..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// A port on 127.0.0.1 free at the moment of asking.
#[allow(
    clippy::disallowed_types,
    reason = "the harness owns real sockets: it is the peer of the board"
)]
fn free_port(tcp: bool) -> Result<u16, TargetError> {
    let port = if tcp {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("finding a free TCP port"))?
            .port()
    } else {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(io("finding a free UDP port"))?
            .port()
    };
    Ok(port)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the harness talks to real hardware in real time"
)]
fn clock() -> Instant {
    Instant::now()
}

/// A real board: its serial device and its SIP address (from the board file's HIL section).
pub struct Serial {
    pub console: Console,
    pub sip: SipAddr,
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serial")
            .field("sip", &self.sip)
            .finish_non_exhaustive()
    }
}

impl Serial {
    /// Opens the board's console; lines also go to `work/console.log`.
    pub fn open(device: &str, baud: u32, sip: SocketAddr, work: &Path) -> Result<Self, TargetError> {
        std::fs::create_dir_all(work).map_err(io(format!("creating {}", work.display())))?;
        Ok(Self {
            console: open_console(device, baud, work, clock())?,
            sip: SipAddr::Udp(sip),
        })
    }
}

/// Opens a serial console (a QEMU pty or a real device) and reads it from `started` on; every line also
/// goes to `work/console.log`.
fn open_console(path: &str, baud: u32, work: &Path, started: Instant) -> Result<Console, TargetError> {
    let serial = |source| TargetError::Serial {
        path: path.into(),
        source,
    };
    let port = serialport::new(path, baud)
        .timeout(Duration::from_millis(200))
        .open_native()
        .map_err(serial)?;
    let reader = port.try_clone_native().map_err(serial)?;
    let log = work.join("console.log");
    let echo = File::create(&log).map_err(io(format!("creating {}", log.display())))?;
    Ok(Console::new(
        Box::new(reader),
        Box::new(port),
        Box::new(echo),
        started,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pty_is_found_in_qemus_message() {
        assert_eq!(
            pty_path("char device redirected to /dev/pts/7 (label serial0)").as_deref(),
            Some("/dev/pts/7")
        );
        assert_eq!(pty_path("qemu-system-x86_64: warning: TCG doesn't support"), None);
    }

    #[test]
    fn the_guest_is_fenced_in_and_watched() {
        let spec = QemuSpec {
            binary: "qemu-system-aarch64".into(),
            machine: vec!["-M".into(), "virt".into(), "-cpu".into(), "cortex-a57".into()],
            memory_mib: 512,
            firmware_code: "/usr/share/AAVMF/AAVMF_CODE.fd".into(),
            firmware_vars: "/usr/share/AAVMF/AAVMF_VARS.fd".into(),
        };
        let a = qemu_args(
            &spec,
            Path::new("/w/disk.img"),
            Path::new("/w/vars.fd"),
            15060,
            15061,
            Some("tcp:10.0.2.100:8443-cmd:edge-hil relay 127.0.0.1:4443"),
        )
        .join(" ");
        assert!(a.starts_with("-M virt -cpu cortex-a57 -accel tcg -m 512"), "{a}");
        assert!(a.contains(
            "user,id=net0,restrict=on,hostfwd=udp:127.0.0.1:15060-:5060,hostfwd=tcp:127.0.0.1:15061-:5060,\
             guestfwd=tcp:10.0.2.100:8443-cmd:edge-hil relay 127.0.0.1:4443 "
        ));
        assert!(a.contains("-device i6300esb -action watchdog=reset"));
        assert!(
            a.contains("if=pflash,format=raw,file=/w/vars.fd"),
            "per-test variables"
        );
        assert!(a.contains("file=/w/disk.img,format=raw"), "per-test disk");
    }
}
