//! Installing a bundle: header and signature first, then the policy, then the payload staged on the
//! data partition while it is hashed (resumable: a power cut or a dropped connection continues where
//! the staged bytes end), then copied into the inactive slot and read back, then the testboot.
//!
//! Nothing reaches the inactive slot before the whole payload matched the signed SHA-256, and the
//! slot has 0 tries in grubenv from before its first byte is written until the testboot is armed.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use edge_agent::state::Pending;
use edge_ota::{Header, MAX_HEADER, PayloadCheck, PayloadError};

use super::http::Client;
use super::{Device, say, unix_now};

const CHUNK: usize = 64 * 1024;
const SYNC_EVERY: u64 = 4 << 20;

/// Where a bundle comes from.
#[derive(Debug)]
pub(crate) enum Source<'a> {
    /// The update server (`url` as it offered it).
    Server { client: &'a Client, url: String },
    /// A local file (an upload through the web UI, or a USB stick).
    File(PathBuf),
}

/// How an install ended, when it did not.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The bundle is refused (signature, policy, payload): reported, never retried as is.
    Rejected { version: String, reason: String },
    /// The network or the server failed: staged bytes are kept; retried after a backoff.
    Transient(String),
    /// This device failed (disk): reported.
    Failed { version: String, reason: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected { version, reason } => write!(f, "rejected {version}: {reason}"),
            Self::Transient(r) => write!(f, "will retry: {r}"),
            Self::Failed { version, reason } => write!(f, "failed to install {version}: {reason}"),
        }
    }
}

fn rejected(version: &str, reason: impl std::fmt::Display) -> Failure {
    Failure::Rejected {
        version: version.to_owned(),
        reason: reason.to_string(),
    }
}

fn failed(version: &str, reason: impl std::fmt::Display) -> Failure {
    Failure::Failed {
        version: version.to_owned(),
        reason: reason.to_string(),
    }
}

/// Opens the bundle's bytes from `from` on.
fn open_at(src: &Source<'_>, from: u64, to: Option<u64>) -> Result<Box<dyn Read>, Failure> {
    match src {
        Source::File(path) => {
            let mut f = File::open(path).map_err(|e| rejected("?", format!("{}: {e}", path.display())))?;
            f.seek(SeekFrom::Start(from))
                .map_err(|e| rejected("?", format!("{}: {e}", path.display())))?;
            Ok(Box::new(f))
        }
        Source::Server { client, url } => {
            let range = match to {
                Some(to) => format!("bytes={from}-{to}"),
                None => format!("bytes={from}-"),
            };
            let r = client
                .request("GET", &client.path_of(url), &[("Range", range)], b"")
                .map_err(Failure::Transient)?;
            match r.status {
                206 => {
                    let start = r
                        .header("content-range")
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if start != Some(from) {
                        return Err(Failure::Transient(format!(
                            "the server answered range {from}- with {:?}",
                            r.header("content-range")
                        )));
                    }
                    Ok(r.body)
                }
                200 => {
                    // No range support: skip what we have.
                    let mut body = r.body;
                    std::io::copy(&mut Read::by_ref(&mut body).take(from), &mut std::io::sink())
                        .map_err(|e| Failure::Transient(e.to_string()))?;
                    Ok(body)
                }
                416 => Err(rejected(
                    "?",
                    format!("the bundle on the server ends before byte {from} its manifest promises"),
                )),
                s => Err(Failure::Transient(format!("the server answered {s} for {url}"))),
            }
        }
    }
}

/// Reads and checks the header: signature, then what this device accepts. Nothing is written.
fn header(dev: &Device, src: &Source<'_>) -> Result<Header, Failure> {
    let mut prefix = Vec::with_capacity(MAX_HEADER);
    let max = u64::try_from(MAX_HEADER).unwrap_or(u64::MAX);
    open_at(src, 0, Some(max - 1))?
        .take(max)
        .read_to_end(&mut prefix)
        .map_err(|e| Failure::Transient(format!("reading the bundle header: {e}")))?;
    let header = Header::parse(&prefix).map_err(|e| rejected("?", e))?;
    let version = header.manifest.version.to_string();
    header.verify(&dev.keyring).map_err(|e| rejected(&version, e))?;
    let blocked = dev.state.blocked_versions();
    edge_ota::Device {
        board: &dev.board,
        version: &dev.version,
        now: unix_now(),
        blocked: &blocked,
    }
    .accepts(&header.manifest)
    .map_err(|e| rejected(&version, e))?;
    Ok(header)
}

/// Hashes the first `len` bytes of `path` into `check`.
fn rehash(path: &Path, len: u64, check: &mut PayloadCheck) -> std::io::Result<()> {
    let mut f = File::open(path)?.take(len);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        check
            .update(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    }
}

/// Prints progress at each tenth.
#[derive(Debug)]
struct Tenths<'a> {
    dev: &'a Device,
    what: &'static str,
    version: String,
    total: u64,
    last: u64,
}

impl Tenths<'_> {
    fn at(&mut self, done: u64) {
        let tenth = done.saturating_mul(10) / self.total.max(1);
        if tenth > self.last || done == 0 {
            self.last = tenth;
            say(format!(
                "{} {}: {}% ({done} of {} bytes)",
                self.what,
                self.version,
                tenth * 10,
                self.total
            ));
            self.dev.progress(self.what, &self.version, done, self.total);
        }
    }
}

/// Stages the payload on the data partition, resuming; returns the staged file once it verified.
fn stage(dev: &Device, src: &Source<'_>, h: &Header) -> Result<PathBuf, Failure> {
    let version = h.manifest.version.to_string();
    let size = h.manifest.payload_size;
    let dir = dev.ota_dir().join("staging");
    std::fs::create_dir_all(&dir).map_err(|e| failed(&version, format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{}.part", h.manifest.payload_sha256));
    // Another bundle's partial download is of no use now.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path() != path {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut have = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut check = PayloadCheck::new(&h.manifest);
    if have > size || rehash(&path, have, &mut check).is_err() {
        let _ = std::fs::remove_file(&path);
        have = 0;
        check = PayloadCheck::new(&h.manifest);
    }
    let started_with = have;
    if have > 0 {
        say(format!(
            "resuming {version}: {have} of {size} bytes are staged already"
        ));
    }
    let free = nix::sys::statvfs::statvfs(&dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(u64::MAX);
    if free < size - have + (1 << 20) {
        return Err(failed(
            &version,
            format!(
                "the data partition has {free} bytes free; staging needs {}",
                size - have
            ),
        ));
    }
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| failed(&version, format!("{}: {e}", path.display())))?;
    let mut progress = Tenths {
        dev,
        what: "downloading",
        version: version.clone(),
        total: size,
        last: have * 10 / size.max(1),
    };
    progress.at(have);
    if have < size {
        let mut body =
            open_at(src, h.payload_offset + have, Some(h.bundle_len() - 1)).map_err(|f| match f {
                Failure::Rejected { reason, .. } => rejected(&version, reason),
                other => other,
            })?;
        let mut buf = vec![0u8; CHUNK];
        let mut since_sync = 0u64;
        let started = check.seen();
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = out.sync_data();
                    return Err(Failure::Transient(format!(
                        "download of {version} broke at {} of {size} bytes: {e}",
                        check.seen()
                    )));
                }
            };
            let chunk = &buf[..n];
            if let Err(e) = check.update(chunk) {
                drop(out);
                let _ = std::fs::remove_file(&path);
                return Err(rejected(&version, e));
            }
            out.write_all(chunk)
                .map_err(|e| failed(&version, format!("{}: {e}", path.display())))?;
            since_sync += n as u64;
            if since_sync >= SYNC_EVERY {
                out.sync_data()
                    .map_err(|e| failed(&version, format!("{}: {e}", path.display())))?;
                since_sync = 0;
            }
            progress.at(check.seen());
        }
        out.sync_data()
            .map_err(|e| failed(&version, format!("{}: {e}", path.display())))?;
        if check.remaining() > 0 {
            let file_source = matches!(src, Source::File(_));
            if file_source || check.seen() == started {
                let _ = std::fs::remove_file(&path);
                return Err(rejected(
                    &version,
                    PayloadError::Short {
                        got: check.seen(),
                        expected: size,
                    },
                ));
            }
            return Err(Failure::Transient(format!(
                "download of {version} ended early at {} of {size} bytes",
                check.seen()
            )));
        }
    }
    let resumed = started_with > 0;
    if let Err(e) = check.finish() {
        let _ = std::fs::remove_file(&path);
        // Bytes staged before a power cut may not have survived it: that is not the bundle's fault.
        // Start over; a fresh download that does not match is refused.
        if resumed {
            return Err(Failure::Transient(format!(
                "{version}: the staged bytes from before did not survive ({e}); downloading again"
            )));
        }
        return Err(rejected(&version, e));
    }
    Ok(path)
}

/// Copies the verified staged payload into the inactive slot, then reads the slot back and checks it.
fn write_slot(dev: &Device, h: &Header, staged: &Path) -> Result<(), Failure> {
    let version = h.manifest.version.to_string();
    let target = &dev.inactive_device;
    let shown = target.display();
    let size = h.manifest.payload_size;
    let mut check = PayloadCheck::new(&h.manifest);
    {
        let mut from =
            File::open(staged).map_err(|e| failed(&version, format!("{}: {e}", staged.display())))?;
        let mut to = OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| failed(&version, format!("open {shown}: {e}")))?;
        let mut progress = Tenths {
            dev,
            what: "writing",
            version: version.clone(),
            total: size,
            last: 0,
        };
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from
                .read(&mut buf)
                .map_err(|e| failed(&version, format!("{}: {e}", staged.display())))?;
            if n == 0 {
                break;
            }
            check.update(&buf[..n]).map_err(|e| failed(&version, e))?;
            to.write_all(&buf[..n])
                .map_err(|e| failed(&version, format!("write {shown}: {e}")))?;
            progress.at(check.seen());
        }
        to.sync_all()
            .map_err(|e| failed(&version, format!("fsync {shown}: {e}")))?;
        check
            .finish()
            .map_err(|e| failed(&version, format!("the staged payload changed on disk: {e}")))?;
    }
    // Read back what the slot holds now.
    let mut back = PayloadCheck::new(&h.manifest);
    rehash(target, size, &mut back).map_err(|e| failed(&version, format!("read back {shown}: {e}")))?;
    back.finish()
        .map_err(|e| failed(&version, format!("{shown} does not hold what was written: {e}")))
}

/// The whole install, up to an armed testboot. The caller reboots.
pub(crate) fn install(dev: &mut Device, src: &Source<'_>) -> Result<String, Failure> {
    let h = header(dev, src)?;
    let version = h.manifest.version.to_string();
    say(format!(
        "{version} for {} is signed by key {} and acceptable ({} bytes of payload)",
        h.manifest.board,
        h.signer.id(),
        h.manifest.payload_size
    ));
    let staged = stage(dev, src, &h)?;
    say(format!("{version}: the payload matches its signed SHA-256"));
    let slot = dev.running.other();
    dev.grubenv(|b| {
        edge_init::grubenv::disable(b, slot)
            .map(Some)
            .map_err(|e| format!("grubenv: {e}"))
    })
    .map_err(|e| failed(&version, e))?;
    write_slot(dev, &h, &staged)?;
    say(format!("{version} written to slot {slot} and read back"));
    dev.state.pending = Some(Pending {
        version: version.clone(),
        slot: slot.to_string(),
        attempts: 1,
        armed: false,
    });
    dev.save().map_err(|e| failed(&version, e))?;
    let _ = std::fs::remove_file(&staged);
    arm(dev).map_err(|e| failed(&version, e))?;
    Ok(version)
}

/// Sets grubenv for the pending slot's testboot and records it.
pub(crate) fn arm(dev: &mut Device) -> Result<(), String> {
    let Some(p) = dev.state.pending.as_mut() else {
        return Ok(());
    };
    let slot = if p.slot == "A" {
        edge_init::cmdline::Slot::A
    } else {
        edge_init::cmdline::Slot::B
    };
    p.armed = false;
    dev.save()?;
    dev.grubenv(|b| {
        edge_init::grubenv::testboot(b, slot)
            .map(Some)
            .map_err(|e| format!("grubenv: {e}"))
    })?;
    if let Some(p) = dev.state.pending.as_mut() {
        p.armed = true;
        say(format!(
            "testboot of {} in slot {slot} armed (attempt {})",
            p.version, p.attempts
        ));
    }
    dev.save()
}
