//! The appliance scenarios (issue 6): each takes a booted board's console and SIP address, so the same
//! code runs against QEMU here and a real board over serial + network elsewhere.

use std::time::Duration;

use crate::console::{Console, ConsoleError, Mark};
use crate::sip::SipAddr;

/// Console lines PID 1 prints (image/README.md, "Console lines").
pub mod lines {
    pub const READY: &str = "edge-init: ready version=";
    pub const MARKED_GOOD: &str = "marked good";
    pub const MISSED_WATCHDOG: &str = "edge-init: gatewayd missed its watchdog, restarting";
    pub const NOT_READY: &str = "edge-init: not ready after";
    pub const GRUB_BOOTING: &str = "GRUB-AB: booting slot ";
    pub fn hook_done(name: &str) -> String {
        format!("edge-init: hook {name} done")
    }
}

/// How long things may take under TCG on this machine (a real board is faster).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Power-on (or reset) to PID 1's ready line.
    pub boot: Duration,
    /// gatewayd's WATCHDOG_USEC plus PID 1's reaction.
    pub service_watchdog: Duration,
    /// The hardware watchdog's timeout plus margin.
    pub hardware_watchdog: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            boot: Duration::from_secs(150),
            service_watchdog: Duration::from_secs(20),
            hardware_watchdog: Duration::from_secs(45),
        }
    }
}

/// A scenario failed: what was expected and what the console showed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error("SIP OPTIONS to {to}: {what}")]
    Sip { to: SipAddr, what: String },
    #[error("{0}")]
    Other(String),
}

/// What a boot showed: the ready line, its slot and how long it took.
#[derive(Debug, Clone)]
pub struct Ready {
    pub line: String,
    pub slot: String,
    /// PID 1's own count (ms since it started).
    pub boot_ms: Option<u64>,
    /// From power-on (the target's start) or from `since` to the ready line, as the host saw it.
    pub host_elapsed: Duration,
    pub next: Mark,
}

/// Waits for PID 1's ready line after `since`.
pub fn wait_ready(console: &Console, since: Mark, within: Duration) -> Result<Ready, ScenarioError> {
    let seen = console.wait_for(lines::READY, since, within)?;
    let field = |k: &str| {
        seen.line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_owned)
    };
    Ok(Ready {
        slot: field("slot=").unwrap_or_default(),
        boot_ms: field("boot_ms=").and_then(|v| v.parse().ok()),
        host_elapsed: seen.at.saturating_duration_since(console.started()),
        line: seen.line.clone(),
        next: seen.next,
    })
}

/// OPTIONS to the board's gatewayd must be answered 200.
pub fn sip_ok(sip: SipAddr, within: Duration) -> Result<Duration, ScenarioError> {
    match sip.probe(within) {
        Ok(Some((200, took))) => Ok(took),
        Ok(Some((code, _))) => Err(ScenarioError::Sip {
            to: sip,
            what: format!("answered {code}, not 200"),
        }),
        Ok(None) => Err(ScenarioError::Sip {
            to: sip,
            what: format!("no answer within {within:?}"),
        }),
        Err(e) => Err(ScenarioError::Sip {
            to: sip,
            what: e.to_string(),
        }),
    }
}

/// Scenario 1: the image boots to the ready line, the slot is marked good, gatewayd answers OPTIONS.
pub fn boots_to_ready(console: &Console, sip: SipAddr, limits: Limits) -> Result<Ready, ScenarioError> {
    let ready = wait_ready(console, console_start(), limits.boot)?;
    console.wait_for(lines::MARKED_GOOD, ready.next, Duration::from_secs(20))?;
    sip_ok(sip, Duration::from_secs(10))?;
    Ok(ready)
}

/// Scenario 2: gatewayd stops (SIGSTOP through the test hook); PID 1 sees its watchdog missed, restarts
/// it, and it becomes ready again. Returns the time from the hook to the new ready line.
pub fn service_watchdog_restarts_gatewayd(
    console: &Console,
    sip: SipAddr,
    limits: Limits,
) -> Result<Duration, ScenarioError> {
    let mark = console.mark();
    console.send_line("hook stop-gatewayd")?;
    let hooked = console.wait_for(&lines::hook_done("stop-gatewayd"), mark, Duration::from_secs(10))?;
    let missed = console.wait_for(lines::MISSED_WATCHDOG, hooked.next, limits.service_watchdog)?;
    let ready = wait_ready(console, missed.next, limits.boot)?;
    sip_ok(sip, Duration::from_secs(10))?;
    Ok(ready_after(console, &hooked.at, &ready))
}

/// Scenario 3: PID 1 stops petting (test hook); the hardware watchdog resets the board, which boots to
/// ready again. Returns the time from the hook to the reset (GRUB's line) and to the new ready line.
pub fn hardware_watchdog_resets_the_board(
    console: &Console,
    sip: SipAddr,
    limits: Limits,
) -> Result<(Duration, Duration), ScenarioError> {
    let mark = console.mark();
    console.send_line("hook stop-petting")?;
    let hooked = console.wait_for(&lines::hook_done("stop-petting"), mark, Duration::from_secs(10))?;
    let reset = console.wait_for(lines::GRUB_BOOTING, hooked.next, limits.hardware_watchdog)?;
    let ready = wait_ready(console, reset.next, limits.boot)?;
    sip_ok(sip, Duration::from_secs(10))?;
    Ok((
        reset.at.saturating_duration_since(hooked.at),
        ready_after(console, &hooked.at, &ready),
    ))
}

/// Scenario 4 (on a disk whose slot B holds a gatewayd that never becomes ready and is first in the boot
/// order with one try): B is tried, PID 1 gives up and lets the watchdog reset, and the next boot is A.
pub fn failed_slot_falls_back(
    console: &Console,
    sip: SipAddr,
    limits: Limits,
) -> Result<Ready, ScenarioError> {
    let start = console_start();
    let b = console.wait_for(&format!("{}B", lines::GRUB_BOOTING), start, limits.boot)?;
    let gave_up = console.wait_for(lines::NOT_READY, b.next, limits.boot)?;
    let a = console.wait_for(
        &format!("{}A", lines::GRUB_BOOTING),
        gave_up.next,
        limits.hardware_watchdog,
    )?;
    let ready = wait_ready(console, a.next, limits.boot)?;
    if ready.slot != "A" {
        return Err(ScenarioError::Other(format!(
            "ready on slot {:?}, expected A: {}",
            ready.slot, ready.line
        )));
    }
    console.wait_for(lines::MARKED_GOOD, ready.next, Duration::from_secs(20))?;
    sip_ok(sip, Duration::from_secs(10))?;
    Ok(ready)
}

fn ready_after(console: &Console, from: &std::time::Instant, ready: &Ready) -> Duration {
    (console.started() + ready.host_elapsed).saturating_duration_since(*from)
}

fn console_start() -> Mark {
    crate::console::START
}

/// `init.toml` with `ready_timeout_s` replaced (the fallback scenario need not wait the board's full time).
pub fn shorter_ready_timeout(init_toml: &str, seconds: u32) -> String {
    init_toml
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("ready_timeout_s") {
                format!("ready_timeout_s = {seconds}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
