//! `edge-agent`: the device's update agent. PID 1 starts it once `gatewayd` is healthy and the
//! running slot is marked good, and restarts it if it exits.
//!
//! ```text
//! edge-agent [run]          judge this boot, then check in with the server forever
//! edge-agent once           judge this boot, check in once, install what is offered
//! edge-agent install FILE   judge this boot, install a bundle file (an upload), testboot it
//! edge-agent status         print the agent's state
//! --system FILE             where things are (tests on a host: files instead of partitions)
//! ```

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the agent's shell: it owns the clock, sleeps between check-ins and opens sockets"
)]

mod sys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use edge_agent::boot::{Verdict, judge};
use edge_agent::schedule::Schedule;
use edge_ota::wire::{CheckinRequest, CheckinResponse, Outcome};

use sys::http::Client;
use sys::install::{Failure, Source, arm, install};
use sys::{Device, System, random_u32, say, unix_now};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut command = None;
    let mut file = None;
    let mut system = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("system") => system = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?)),
            Value(v) if command.is_none() => command = Some(v.string().map_err(|e| e.to_string())?),
            Value(v) if command.as_deref() == Some("install") && file.is_none() => {
                file = Some(PathBuf::from(v));
            }
            Short('h') | Long("help") => {
                println!("usage: edge-agent [run|once|install FILE|status] [--system FILE]");
                return Ok(());
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let sys = match system {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            toml::from_str::<System>(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => System::default(),
    };
    let mut dev = Device::open(sys)?;
    if command.as_deref() == Some("status") {
        print!("{}", dev.state.to_toml());
        return Ok(());
    }
    say(format!(
        "device {} board {} version {} slot {} ({} trusted keys, server {})",
        dev.state.device_id,
        dev.board,
        dev.version,
        dev.running,
        dev.keyring.keys().len(),
        if dev.config.server.is_empty() {
            "none"
        } else {
            &dev.config.server
        }
    ));
    judge_boot(&mut dev)?;
    if command.as_deref().unwrap_or("run") != "install" {
        incoming(&mut dev);
    }
    match command.as_deref().unwrap_or("run") {
        "run" => daemon(&mut dev),
        "once" => {
            let client = client(&dev)?.ok_or("no server configured")?;
            let reply = check_in(&mut dev, &client, "idle")?;
            if let Some(offer) = reply.update {
                let src = Source::Server {
                    client: &client,
                    url: offer.url,
                };
                attempt(&mut dev, &src, false)?;
                check_in(&mut dev, &client, "idle")?;
            }
            Ok(())
        }
        "install" => {
            let file = file.ok_or("install needs a bundle FILE")?;
            let result = attempt(&mut dev, &Source::File(file), true);
            if let Ok(Some(c)) = client(&dev) {
                let _ = check_in(&mut dev, &c, "idle");
            }
            result
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn client(dev: &Device) -> Result<Option<Client>, String> {
    if dev.config.server.is_empty() {
        return Ok(None);
    }
    Client::new(&dev.config.server, &dev.config.token, &dev.config.ca).map(Some)
}

/// What this boot means for a pending update; reboots when a testboot must (re)start.
fn judge_boot(dev: &mut Device) -> Result<(), String> {
    let ab = dev.ab()?;
    let previous = dev.previous_boot_log();
    let verdict = judge(dev.running, ab, dev.state.pending.as_ref(), previous.as_deref());
    let now = unix_now().unwrap_or(0);
    match verdict {
        Verdict::Nothing => return Ok(()),
        Verdict::Committed { version } => {
            say(format!(
                "update to {version} committed: slot {} is healthy and marked good",
                dev.running
            ));
            dev.state.pending = None;
            dev.state.report(&version, Outcome::Installed, "", "", now);
        }
        Verdict::Arm => {
            say("the installed slot was never armed (power cut?): arming its testboot");
            arm(dev)?;
            dev.reboot_when_idle();
        }
        Verdict::Reboot => {
            say("the testboot is armed but did not happen: rebooting into it");
            dev.reboot_when_idle();
        }
        Verdict::Retry => {
            if let Some(p) = dev.state.pending.as_mut() {
                p.attempts += 1;
                say(format!(
                    "the testboot of {} ended without a verdict (power cut or hang): trying it once more",
                    p.version
                ));
            }
            arm(dev)?;
            dev.reboot_when_idle();
        }
        Verdict::RolledBack { version, reason, log } => {
            say(format!(
                "ROLLED BACK from {version}: {reason}; {version} will not be installed again automatically"
            ));
            dev.state.pending = None;
            dev.state.block(&version, &reason);
            dev.state
                .report(&version, Outcome::RolledBack, &reason, &log, now);
            keep_running_slot(dev)?;
        }
        Verdict::FellBack { from } => {
            let reason = format!(
                "slot {from} stopped booting; running slot {} ({})",
                dev.running, dev.version
            );
            say(format!("FELL BACK: {reason}"));
            dev.state.report(
                &dev.version.to_string(),
                Outcome::Failed,
                &reason,
                &previous.unwrap_or_default(),
                now,
            );
            keep_running_slot(dev)?;
        }
    }
    dev.save()
}

/// After a fallback: the running slot goes first again and the failed one gets no tries.
fn keep_running_slot(dev: &Device) -> Result<(), String> {
    let running = dev.running;
    dev.grubenv(|b| {
        edge_init::grubenv::keep(b, running)
            .map(Some)
            .map_err(|e| format!("grubenv: {e}"))
    })
    .map(drop)
}

/// Installs the bundles dropped into `/data/ota/incoming/` (uploads through the web UI, air-gapped
/// sites), oldest name first; each file is removed once judged. Reboots when one installs.
fn incoming(dev: &mut Device) {
    let dir = dev.ota_dir().join("incoming");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    // One that was installing when the device rebooted (into its testboot, or a power cut) is done.
    for p in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "installing"))
    {
        let _ = std::fs::remove_file(p);
    }
    let mut files: Vec<PathBuf> = paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
        .collect();
    files.sort();
    for file in files {
        say(format!("installing the uploaded {}", file.display()));
        // Judged once: removed before a reboot can bring it back, moved aside while it installs.
        let taken = file.with_extension("installing");
        if std::fs::rename(&file, &taken).is_err() {
            continue;
        }
        // A bundle is judged once: an upload that fails is not retried.
        let _ = attempt(dev, &Source::File(taken.clone()), true);
        let _ = std::fs::remove_file(&taken);
    }
}

/// One check-in; delivered reports are forgotten.
fn check_in(dev: &mut Device, client: &Client, state: &str) -> Result<CheckinResponse, String> {
    let msg = CheckinRequest {
        device: dev.state.device_id.clone(),
        board: dev.board.clone(),
        channel: dev.config.channel.clone(),
        version: dev.version.to_string(),
        slot: dev.running.to_string(),
        state: state.to_owned(),
        progress: None,
        results: dev.state.reports.clone(),
    };
    let body = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
    let r = client.request(
        "POST",
        &client.path_of("/v1/checkin"),
        &[("Content-Type", "application/json".into())],
        &body,
    )?;
    let status = r.status;
    let text = r.text(1 << 20)?;
    if status != 200 {
        return Err(format!("check-in answered {status}: {}", text.trim()));
    }
    let reply: CheckinResponse = serde_json::from_str(&text).map_err(|e| format!("check-in answer: {e}"))?;
    let ids: Vec<String> = msg.results.iter().map(|r| r.id.clone()).collect();
    if !ids.is_empty() {
        dev.state.delivered(&ids);
        dev.save()?;
    }
    Ok(reply)
}

/// Installs from `src` and reboots into its testboot. A refused or failed bundle is reported (a
/// transient failure too when `report_transient`); the failure comes back as an error.
fn attempt(dev: &mut Device, src: &Source<'_>, report_transient: bool) -> Result<(), String> {
    let now = unix_now().unwrap_or(0);
    let failure = match install(dev, src) {
        Ok(version) => {
            say(format!(
                "{version} installed in slot {}; rebooting into its testboot",
                dev.running.other()
            ));
            dev.reboot_when_idle();
        }
        Err(f) => f,
    };
    say(&failure);
    match &failure {
        Failure::Rejected { version, reason } => {
            dev.state.report(version, Outcome::Rejected, reason, "", now);
        }
        Failure::Failed { version, reason } => dev.state.report(version, Outcome::Failed, reason, "", now),
        Failure::Transient(reason) if report_transient => {
            dev.state.report("?", Outcome::Failed, reason, "", now);
        }
        Failure::Transient(_) => {}
    }
    dev.save()?;
    Err(failure.to_string())
}

fn daemon(dev: &mut Device) -> Result<(), String> {
    let Some(client) = client(dev)? else {
        say("no update server configured: waiting for uploads in /data/ota/incoming");
        loop {
            std::thread::sleep(INCOMING_POLL);
            if check_requested(dev) {
                say("a check for updates was asked for, but no update server is configured");
            }
            if rollback_requested(dev) {
                manual_rollback(dev);
            }
            incoming(dev);
        }
    };
    let mut schedule = Schedule::new(
        Duration::from_secs(dev.config.interval_s),
        Duration::from_secs(dev.config.backoff_s),
    );
    // A first check-in soon after boot, spread a little so a fleet that rebooted together does not
    // call at once.
    std::thread::sleep(Duration::from_millis(u64::from(random_u32() % 2000)));
    loop {
        let wait = match check_in(dev, &client, "idle") {
            Ok(reply) => {
                let next = Some(Duration::from_secs(reply.next_checkin_s));
                match reply.update {
                    Some(offer) => {
                        say(format!("the server offers {}", offer.version));
                        let src = Source::Server {
                            client: &client,
                            url: offer.url,
                        };
                        match attempt(dev, &src, false) {
                            // Reported: tell the server at once.
                            Err(_) if !dev.state.reports.is_empty() => Duration::from_secs(1),
                            Err(_) => schedule.failure(random_u32()),
                            Ok(()) => schedule.success(next, random_u32()),
                        }
                    }
                    None => schedule.success(next, random_u32()),
                }
            }
            Err(e) => {
                let wait = schedule.failure(random_u32());
                say(format!("check-in failed ({e}); next try in {} s", wait.as_secs()));
                wait
            }
        };
        // Uploads are looked at while waiting.
        let mut left = wait;
        while !left.is_zero() {
            let step = left.min(INCOMING_POLL);
            std::thread::sleep(step);
            left -= step;
            incoming(dev);
            if rollback_requested(dev) {
                manual_rollback(dev);
            }
            if check_requested(dev) {
                say("checking for updates now (asked from the web UI)");
                break;
            }
        }
    }
}

/// Whether the web UI asked for a check-in now (the request is taken: removed).
fn check_requested(dev: &Device) -> bool {
    std::fs::remove_file(&dev.sys.check_request).is_ok()
}

/// Whether the web UI asked to roll back (the request is taken: removed).
fn rollback_requested(dev: &Device) -> bool {
    std::fs::remove_file(&dev.sys.rollback_request).is_ok()
}

/// The operator's rollback: the other slot (the version before the last update) gets a one-shot
/// testboot, exactly as a new install does, and the device reboots once no call is up. Healthy, PID 1
/// marks it good and it stays; if it fails its health check, GRUB comes back to this slot and the next
/// boot reports the fallback. Refused while an update is pending (its testboot owns grubenv).
fn manual_rollback(dev: &mut Device) {
    if let Some(p) = &dev.state.pending {
        say(format!(
            "a rollback was asked for while {} waits for its testboot: ignored",
            p.version
        ));
        return;
    }
    let other = dev.running.other();
    let armed = dev.grubenv(|b| {
        edge_init::grubenv::testboot(b, other)
            .map(Some)
            .map_err(|e| format!("grubenv: {e}"))
    });
    match armed {
        Ok(_) => {
            say(format!(
                "ROLLBACK asked for from the web UI: booting slot {other} once no call is up (one try; slot {} again if it fails)",
                dev.running
            ));
            dev.reboot_when_idle();
        }
        Err(e) => say(format!("rollback not possible: {e}")),
    }
}

/// How often the incoming folder is looked at.
const INCOMING_POLL: Duration = Duration::from_secs(5);
