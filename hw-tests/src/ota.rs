//! The OTA scenarios (issue 7, QEMU tier): a real update server on 127.0.0.1 (its TLS certificate made
//! here), reached by the fenced guest at `10.0.2.100:8443` through QEMU's `guestfwd` and a relay
//! (`edge-hil relay`); bundles signed here with the vendor key the image trusts; power cuts by killing
//! QEMU at random moments.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the harness is the board's peer: real processes, sockets and time"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_image::disk::Partition;
use edge_image::{SlotContent, build_slot, put_data_files, read_grubenv, read_partition};
use edge_ota::manifest::FORMAT;
use edge_ota::{Manifest, SigningKey, Version};

use crate::target::{Qemu, QemuSpec};

/// Where the guest finds the update server.
pub const GUEST_SERVER: &str = "10.0.2.100:8443";
const TOKEN: &str = "hil-device-token";
const ADMIN: &str = "hil-admin-token";

/// A scenario's verdict: (number, title, figures or failure).
pub type Outcome = (u8, &'static str, Result<String, String>);

/// The update server, started for real from its binary.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its HTTPS port on 127.0.0.1.
    pub port: u16,
    /// Its certificate (the guest's `ca`).
    pub ca: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

impl Server {
    /// Starts `bin` with a fresh store, TLS certificate (for 10.0.2.100 and 127.0.0.1) and tokens.
    pub fn start(bin: &Path, work: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(work).map_err(io_err(work.display()))?;
        let cert = rcgen::generate_simple_self_signed(vec!["10.0.2.100".into(), "127.0.0.1".into()])
            .map_err(|e| format!("making the server certificate: {e}"))?;
        let ca = work.join("server.pem");
        std::fs::write(&ca, cert.cert.pem()).map_err(io_err(ca.display()))?;
        let key = work.join("server.key");
        std::fs::write(&key, cert.signing_key.serialize_pem()).map_err(io_err(key.display()))?;
        let config = work.join("update-server.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nstore = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
                 device_tokens = [\"{TOKEN}\"]\nadmin_token = \"{ADMIN}\"\ncheckin_interval_s = 4\n",
                work.join("store").display(),
                ca.display(),
                key.display()
            ),
        )
        .map_err(io_err(config.display()))?;
        let log = std::fs::File::create(work.join("server.log")).map_err(io_err("server.log"))?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io_err(format!("starting {}", bin.display())))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().trim_end_matches('/').parse().ok())
            .ok_or_else(|| {
                format!("the update server said {first:?}, not `listening on https://127.0.0.1:PORT`")
            })?;
        // Keep draining its stdout.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, port, ca })
    }

    fn curl(&self, args: &[&str], path: &str) -> Result<(u16, String), String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--cacert"])
            .arg(&self.ca)
            .args([
                "-H",
                &format!("Authorization: Bearer {ADMIN}"),
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .map_err(io_err("running curl"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code = code.trim().parse().unwrap_or(0);
        if code == 0 {
            return Err(format!("curl {path}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok((code, body.to_owned()))
    }

    /// Publishes a bundle on `channel` at `percent`.
    pub fn upload(&self, bundle: &Path, percent: u8) -> Result<(), String> {
        let data = format!("@{}", bundle.display());
        let (code, body) = self.curl(
            &["-X", "PUT", "--data-binary", &data],
            &format!("/v1/admin/bundles/stable?percent={percent}"),
        )?;
        if code == 201 || code == 200 {
            Ok(())
        } else {
            Err(format!("upload of {} answered {code}: {body}", bundle.display()))
        }
    }

    /// The fleet as JSON.
    pub fn fleet(&self) -> Result<serde_json::Value, String> {
        let (code, body) = self.curl(&[], "/v1/fleet")?;
        if code != 200 {
            return Err(format!("/v1/fleet answered {code}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("/v1/fleet: {e}: {body}"))
    }

    /// `device`'s record in the fleet.
    pub fn device(&self, device: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(self.fleet()?["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["device"] == device).cloned()))
    }

    /// Polls `device`'s record until `ok` holds (or `within` passes).
    pub fn wait_device(
        &self,
        device: &str,
        within: Duration,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(d) = self.device(device)? {
                if ok(&d) {
                    return Ok(d);
                }
                last = Some(d);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(format!(
            "the server never showed {what} for {device} within {within:?}; last: {last:?}"
        ))
    }
}

/// Where an agent line puts the install: downloading P % → P, writing P % → 100 + P, past the write
/// → 200, anything before the download → 0.
fn progress_position(line: &str) -> u32 {
    let pct = |l: &str| {
        l.rsplit_once(": ")
            .and_then(|(_, p)| p.split('%').next())
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    if line.contains("edge-agent: downloading") {
        pct(line)
    } else if line.contains("edge-agent: writing") {
        100 + pct(line)
    } else if ["written to slot", "testboot", "installed in slot", "rebooting"]
        .iter()
        .any(|m| line.contains(m))
    {
        200
    } else {
        0
    }
}

/// Results of `device` in its fleet record.
fn results(d: &serde_json::Value) -> Vec<(String, String, String)> {
    d["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                    (s("version"), s("outcome"), s("reason"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs `payload` into `out` as the vendor does.
fn sign(key: &SigningKey, manifest: &Manifest, payload: &Path, out: &Path) -> Result<(), String> {
    let mut src = std::fs::File::open(payload).map_err(io_err(payload.display()))?;
    let mut dst = std::fs::File::create(out).map_err(io_err(out.display()))?;
    edge_ota::bundle::write(manifest, key, &[], &mut src, &mut dst, |_| {})
}

fn manifest(board: &str, version: &Version, payload: &Path) -> Result<Manifest, String> {
    let bytes = std::fs::read(payload).map_err(io_err(payload.display()))?;
    let now = now_unix();
    Ok(Manifest {
        format: FORMAT,
        board: board.to_owned(),
        version: version.clone(),
        min_version: None,
        created: now,
        expires: now + 30 * 86_400,
        payload_size: bytes.len() as u64,
        payload_sha256: edge_ota::sha256_hex(&bytes),
        notes: Some("edge-hil OTA scenario".into()),
    })
}

/// `v` with its patch number raised by `by` and build metadata `tag`.
fn bump(v: &Version, by: u64, tag: &str) -> Version {
    let text = format!("{}.{}.{}+{tag}", v.major, v.minor, v.patch + by);
    Version::parse(&text).unwrap_or_else(|_| Version::new(v.major, v.minor, v.patch + by))
}

/// The five bundles a device must refuse, each with a small payload (they fail before it matters,
/// or on its hash).
fn bad_bundles(
    key: &SigningKey,
    board: &str,
    running: &Version,
    work: &Path,
) -> Result<Vec<(PathBuf, &'static str)>, String> {
    let payload = work.join("small.payload");
    let mut bytes = vec![0u8; 256 * 1024];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| "random")?;
    std::fs::write(&payload, &bytes).map_err(io_err(payload.display()))?;
    let newer = bump(running, 7, "bad");
    let mut out = Vec::new();
    // 1. Tampered payload: correctly signed, one payload byte changed afterwards.
    let m = manifest(board, &newer, &payload)?;
    let p = work.join("1-tampered.bundle");
    sign(key, &m, &payload, &p)?;
    let mut b = std::fs::read(&p).map_err(io_err(p.display()))?;
    let last = b.len() - 1000;
    b[last] ^= 0x55;
    std::fs::write(&p, b).map_err(io_err(p.display()))?;
    out.push((p, "SHA-256"));
    // 2. Signed by a key the device does not trust.
    let stranger = SigningKey::generate().map_err(|e| e.to_string())?;
    let p = work.join("2-untrusted.bundle");
    sign(&stranger, &m, &payload, &p)?;
    out.push((p, "does not trust"));
    // 3. Another board.
    let mut m3 = m.clone();
    m3.board = format!("{board}-other");
    let p = work.join("3-board.bundle");
    sign(key, &m3, &payload, &p)?;
    out.push((p, "is for board"));
    // 4. Older than what runs.
    let mut m4 = m.clone();
    m4.version = Version::new(0, 0, 1);
    let p = work.join("4-older.bundle");
    sign(key, &m4, &payload, &p)?;
    out.push((p, "not newer"));
    // 5. Expired yesterday.
    let mut m5 = m;
    m5.created = now_unix() - 2 * 86_400;
    m5.expires = now_unix() - 86_400;
    let p = work.join("5-expired.bundle");
    sign(key, &m5, &payload, &p)?;
    out.push((p, "expired"));
    Ok(out)
}

/// What one board's OTA run needs.
#[derive(Debug, Clone, Copy)]
pub struct OtaRun<'a> {
    /// How to boot the board under QEMU.
    pub spec: &'a QemuSpec,
    /// The HIL image (built with `--test-hooks --ota-key <key>.pub`).
    pub image: &'a Path,
    /// The vendor's signing key (its public half is in the image).
    pub key_file: &'a Path,
    /// The `edge-update-server` binary.
    pub server_bin: &'a Path,
    /// The `edge-hil` binary (its `relay` mode carries the guest's connections).
    pub relay: &'a Path,
    /// Where logs, disks and bundles go.
    pub out: &'a Path,
    /// Power cuts before the update may complete.
    pub cuts: u32,
}

/// The OTA run for one board: scenarios 2 (refusals), 4 (power cuts) then 1 (the update), 3 (rollback).
pub fn run(run: &OtaRun<'_>) -> Vec<Outcome> {
    match run_inner(run) {
        Ok(v) => v,
        Err(e) => vec![(0, "OTA setup", Err(e))],
    }
}

fn run_inner(run: &OtaRun<'_>) -> Result<Vec<Outcome>, String> {
    let OtaRun {
        spec,
        image,
        key_file,
        server_bin,
        relay,
        out,
        cuts,
    } = *run;
    std::fs::create_dir_all(out).map_err(io_err(out.display()))?;
    let key_text = std::fs::read_to_string(key_file).map_err(io_err(key_file.display()))?;
    let key = SigningKey::from_file(&key_text).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let server = Server::start(server_bin, &out.join("server"))?;
    let content =
        SlotContent::from_image(image, Partition::SlotA, &out.join("slot")).map_err(|e| e.to_string())?;
    let board = content.board.clone();
    let running =
        Version::parse(&content.version).map_err(|e| format!("image version {:?}: {e}", content.version))?;
    let device = format!("hil-{board}");
    let guestfwd = format!(
        "tcp:{GUEST_SERVER}-cmd:{} relay 127.0.0.1:{}",
        relay.display(),
        server.port
    );
    // The site's settings on the data partition: our server, its certificate, a short interval.
    let update_toml = out.join("update.toml");
    std::fs::write(
        &update_toml,
        format!(
            "server = \"https://{GUEST_SERVER}\"\ntoken = \"{TOKEN}\"\nca = \"/data/etc/rtc-edge/update-ca.pem\"\n\
             device_id = \"{device}\"\ninterval_s = 4\nbackoff_s = 2\n"
        ),
    )
    .map_err(io_err(update_toml.display()))?;
    let base = out.join("base.img");
    std::fs::copy(image, &base).map_err(io_err(image.display()))?;
    put_data_files(
        &base,
        &[
            ("etc/rtc-edge/update.toml", &update_toml),
            ("etc/rtc-edge/update-ca.pem", &server.ca),
        ],
        &out.join("data-edit"),
    )
    .map_err(|e| e.to_string())?;
    let mut outcomes = Vec::new();

    // Scenario 2: five bad bundles uploaded (dropped in /data/ota/incoming): each refused, reported,
    // slot B untouched.
    let title2 = "bad bundles refused, reported, inactive slot untouched";
    let r2 = (|| -> Result<String, String> {
        let work = out.join("refusals");
        std::fs::create_dir_all(&work).map_err(io_err(work.display()))?;
        let disk = work.join("disk.img");
        std::fs::copy(&base, &disk).map_err(io_err(base.display()))?;
        let bad = bad_bundles(&key, &board, &running, &work)?;
        let files: Vec<(String, PathBuf)> = bad
            .iter()
            .map(|(p, _)| {
                (
                    format!(
                        "ota/incoming/{}",
                        p.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    p.clone(),
                )
            })
            .collect();
        let refs: Vec<(&str, &Path)> = files.iter().map(|(d, p)| (d.as_str(), p.as_path())).collect();
        put_data_files(&disk, &refs, &work.join("data-edit")).map_err(|e| e.to_string())?;
        let slot_b = ring::digest::digest(
            &ring::digest::SHA256,
            &read_partition(&disk, Partition::SlotB).map_err(|e| e.to_string())?,
        );
        let mut q = Qemu::boot_disk(spec, &disk, &work.join("vars.fd"), &work, Some(&guestfwd))
            .map_err(|e| e.to_string())?;
        let d = server.wait_device(&device, Duration::from_secs(120), "five rejected results", |d| {
            results(d).iter().filter(|r| r.1 == "rejected").count() >= 5
        });
        q.stop();
        let d = d?;
        let got = results(&d);
        for (p, reason) in &bad {
            if !got.iter().any(|r| r.1 == "rejected" && r.2.contains(reason)) {
                return Err(format!(
                    "no rejection mentioning {reason:?} for {}; results: {got:?}",
                    p.display()
                ));
            }
        }
        let after = ring::digest::digest(
            &ring::digest::SHA256,
            &read_partition(&disk, Partition::SlotB).map_err(|e| e.to_string())?,
        );
        if after.as_ref() != slot_b.as_ref() {
            return Err("slot B changed".into());
        }
        let env = read_grubenv(&disk).map_err(|e| e.to_string())?;
        let order = env.get("boot_order").unwrap_or("?").to_owned();
        let b_left = env.get("B_left").unwrap_or("?").to_owned();
        if !order.starts_with('A') || b_left != "0" {
            return Err(format!("grubenv changed: boot_order={order} B_left={b_left}"));
        }
        Ok(format!(
            "5/5 refused (tampered payload, untrusted key, wrong board, older, expired) and reported; slot B unchanged; grubenv boot_order={order} B_left={b_left}"
        ))
    })();
    outcomes.push((2, title2, r2));

    // Scenario 4 then 1: N+1 on the server; QEMU killed at random moments while it downloads and
    // writes; then the update completes: testboot, commit, the server shows it.
    let next = bump(&running, 1, "hil");
    let mut good = content.clone();
    good.version = next.to_string();
    let payload = out.join("next.squashfs");
    build_slot(&good, &payload).map_err(|e| e.to_string())?;
    let next_bundle = out.join("next.bundle");
    sign(&key, &manifest(&board, &next, &payload)?, &payload, &next_bundle)?;
    server.upload(&next_bundle, 100)?;
    let work = out.join("update");
    std::fs::create_dir_all(&work).map_err(io_err(work.display()))?;
    let disk = work.join("disk.img");
    std::fs::copy(&base, &disk).map_err(io_err(base.display()))?;
    let vars = work.join("vars.fd");
    let title4 = "power cut during download/write: boots N, next update succeeds";
    let mut phases = Vec::new();
    let r4 = (|| -> Result<String, String> {
        for i in 0..cuts {
            let mut q = Qemu::boot_disk(spec, &disk, &vars, &work.join(format!("cut{i}")), Some(&guestfwd))
                .map_err(|e| e.to_string())?;
            let seen = q
                .console
                .wait_for("edge-agent: ", crate::console::START, Duration::from_secs(120))
                .map_err(|e| format!("cut {i}: the agent never spoke: {e}"))?;
            // A random point of the download (0-100) or the slot write (100-200), read off the agent's
            // progress lines, plus up to 250 ms.
            let mut r = [0u8; 4];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
            // The first half of the cuts in the download (each resumes the previous one's staged
            // bytes), the rest in the slot write.
            let target = u32::from(r[0]) * 100 / 256 + if i < cuts.div_ceil(2) { 0 } else { 100 };
            let delay = Duration::from_millis(u64::from(u16::from_le_bytes([r[1], r[2]])) % 250);
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let pos = q
                    .console
                    .last_line("edge-agent: ")
                    .map_or(0, |l| progress_position(&l));
                if pos >= target {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("cut {i}: the install never reached {target} (of 200)"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(delay);
            let phase = q.console.last_line("edge-agent: ").unwrap_or_default();
            q.stop();
            let phase = phase.split("edge-agent: ").nth(1).unwrap_or(&phase).to_owned();
            println!(
                "  power cut {} (aimed at {target}/200, +{} ms): {phase}",
                i + 1,
                delay.as_millis()
            );
            // Cut before the testboot was armed: the device must come back on N (slot A).
            let slot = if seen.line.contains(" slot A ") { "A" } else { "B" };
            phases.push(format!("slot {slot}: {phase}"));
            if phase.contains("testboot") {
                // The cut came after the point of no return (the write is done and verified, the
                // testboot armed): the next power-on boots N+1 and commits it, which the next
                // scenario checks. Cutting again would interrupt that boot instead of an install.
                println!(
                    "  (the testboot was armed before that cut: the next power-on completes the update)"
                );
                break;
            }
        }
        Ok(format!(
            "{cuts} cuts; last lines before each: {}",
            phases.join(" | ")
        ))
    })();
    let title1 = "device on N gets N+1, installs, testboots, commits; server shows it";
    let mut final_q = None;
    let r1 = (|| -> Result<String, String> {
        let q = Qemu::boot_disk(spec, &disk, &vars, &work.join("final"), Some(&guestfwd))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let committed = q.console.wait_for(
            &format!("update to {next} committed"),
            crate::console::START,
            Duration::from_secs(400),
        );
        let resumed = q.console.last_line("resuming").is_some();
        final_q = Some(q);
        committed.map_err(|e| e.to_string())?;
        let d = server.wait_device(
            &device,
            Duration::from_secs(60),
            "version N+1 and an installed result",
            |d| {
                d["version"].as_str() == Some(&next.to_string())
                    && results(d)
                        .iter()
                        .any(|r| r.1 == "installed" && r.0 == next.to_string())
            },
        )?;
        Ok(format!(
            "{running} -> {next} committed in slot {} {:.0} s after power-on{}",
            d["slot"].as_str().unwrap_or("?"),
            start.elapsed().as_secs_f64(),
            if resumed {
                " (resumed a staged download)"
            } else {
                ""
            }
        ))
    })();
    let ok1 = r1.is_ok();
    outcomes.push((
        4,
        title4,
        r4.and_then(|s| {
            if ok1 {
                Ok(s)
            } else {
                Err(format!("{s}; the update never completed afterwards"))
            }
        }),
    ));
    outcomes.push((1, title1, r1));

    // Scenario 3: N+2 never becomes healthy: the device rolls back to N+1 by itself, reports it, and
    // does not take N+2 again.
    let title3 = "N+2 never healthy: rolled back, reported, not retried";
    let r3 = (|| -> Result<String, String> {
        let q = final_q.as_ref().ok_or("no running device (scenario 1 failed)")?;
        let bad = bump(&running, 2, "never-ready");
        let mut broken = content.clone();
        broken.version = bad.to_string();
        broken.gatewayd_toml =
            "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0\"\nport = 70000\n".into();
        broken.init_toml = crate::scenarios::shorter_ready_timeout(&broken.init_toml, 15);
        let payload = out.join("bad.squashfs");
        build_slot(&broken, &payload).map_err(|e| e.to_string())?;
        let bundle = out.join("bad.bundle");
        sign(&key, &manifest(&board, &bad, &payload)?, &payload, &bundle)?;
        let mark = q.console.mark();
        server.upload(&bundle, 100)?;
        let start = Instant::now();
        let rolled = q
            .console
            .wait_for(&format!("ROLLED BACK from {bad}"), mark, Duration::from_secs(400))
            .map_err(|e| e.to_string())?;
        let took = start.elapsed();
        server.wait_device(&device, Duration::from_secs(60), "a rolled-back result", |d| {
            results(d)
                .iter()
                .any(|r| r.1 == "rolled-back" && r.0 == bad.to_string())
        })?;
        // Three check-ins later it has not taken N+2 again.
        std::thread::sleep(Duration::from_secs(15));
        if let Ok(again) = q
            .console
            .wait_for(&format!("offers {bad}"), rolled.next, Duration::ZERO)
        {
            return Err(format!("N+2 offered again after the rollback: {}", again.line));
        }
        if let Ok(again) = q.console.wait_for("downloading", rolled.next, Duration::ZERO) {
            return Err(format!("a download after the rollback: {}", again.line));
        }
        let d = server.device(&device)?.unwrap_or_default();
        Ok(format!(
            "rolled back {:.0} s after publishing; device on {} slot {}; reason: {}",
            took.as_secs_f64(),
            d["version"].as_str().unwrap_or("?"),
            d["slot"].as_str().unwrap_or("?"),
            rolled.line.split(": ").skip(2).collect::<Vec<_>>().join(": ")
        ))
    })();
    outcomes.push((3, title3, r3));
    drop(final_q);
    Ok(outcomes)
}
