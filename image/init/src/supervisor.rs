//! The supervision core: gatewayd's life cycle, the sd_notify watchdog, restart backoff, the health
//! probe, when to pet the hardware watchdog, when to mark the slot good, shutdown.
//!
//! Sans-IO. Time is a [`Duration`] since PID 1 started, passed in with every call. The shell feeds
//! inputs (`spawned`, `exited`, `notify`, `probe_answered`, `hook`, `shutdown`, …), then calls
//! [`Supervisor::poll`] and performs the [`Action`]s it returns in order, then sleeps until
//! [`Supervisor::poll_timeout`]. Console lines are actions too ([`Line`]), so their exact wording is
//! decided — and tested — here.
//!
//! The rule for the hardware watchdog: PID 1 pets it while the system is *healthy* (gatewayd READY,
//! its `WATCHDOG=1` on time, the SIP probe answered) and for a grace period of `ready_timeout` after it
//! last was (or after supervision started). A gatewayd restart within the grace keeps the board up;
//! a gatewayd that does not come back in time lets the watchdog reset the board, and GRUB counts the
//! failed try. Once petting stops it never resumes in this boot.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::time::Duration;

use crate::cmdline::Slot;

/// First restart delay; it doubles per exit up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest restart delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// gatewayd that stayed READY this long gets its backoff reset.
pub const BACKOFF_RESET: Duration = Duration::from_secs(60);
/// How long one SIP probe waits for its answer before the next is sent.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Between SIGTERM and SIGKILL when PID 1 shuts down.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Between attempts to mark the slot good when writing grubenv failed.
pub const MARK_RETRY: Duration = Duration::from_secs(10);
/// Attempts to mark the slot good before giving up for this boot.
pub const MARK_ATTEMPTS: u32 = 3;

/// A process id.
pub type Pid = i32;

/// What the supervisor needs to know, fixed for the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The slot that booted (`None`: unknown, never marked good).
    pub slot: Option<Slot>,
    /// The image version, for the ready line.
    pub version: String,
    /// A hardware watchdog is open. Without one, giving up means rebooting ourselves.
    pub watchdog_present: bool,
    /// Pet every this long (a third of the hardware timeout).
    pub pet_interval: Duration,
    /// gatewayd's sd_notify watchdog period (`None`: not watched).
    pub notify_watchdog: Option<Duration>,
    /// Grace without health before petting stops.
    pub ready_timeout: Duration,
}

/// A signal PID 1 sends to gatewayd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM: please stop.
    Term,
    /// SIGKILL.
    Kill,
    /// SIGSTOP (test hook).
    Stop,
    /// SIGCONT (so a stopped gatewayd can act on SIGTERM).
    Cont,
}

/// How gatewayd ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it (the signal's name).
    Signal(String),
    /// It could not be started at all.
    CannotStart(String),
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "status {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
            Self::CannotStart(e) => write!(f, "cannot start: {e}"),
        }
    }
}

/// A console line (the shell adds the `edge-init: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// gatewayd was started.
    Started {
        /// Its pid.
        pid: Pid,
    },
    /// gatewayd said READY=1; the probe starts.
    GatewaydReady {
        /// Its pid.
        pid: Pid,
    },
    /// READY and the probe passed: the HIL harness's token.
    Ready {
        /// The image version.
        version: String,
        /// The slot (`?` when unknown).
        slot: Option<Slot>,
        /// Milliseconds since PID 1 started.
        boot_ms: u128,
    },
    /// grubenv rewritten.
    MarkedGood(Slot),
    /// grubenv could not be rewritten.
    MarkFailed {
        /// The slot.
        slot: Slot,
        /// Why.
        error: String,
        /// Whether another attempt follows.
        retrying: bool,
    },
    /// The slot is unknown, so it cannot be marked.
    CannotMarkUnknownSlot,
    /// The sd_notify watchdog deadline passed: SIGKILL, then a restart.
    MissedWatchdog,
    /// gatewayd ended and is restarted after a delay.
    Exited {
        /// How it ended.
        status: ExitKind,
        /// The delay.
        delay_ms: u128,
    },
    /// Not healthy in time: petting stops.
    NotReady {
        /// The grace, in seconds.
        secs: u64,
    },
    /// There is no watchdog to reset the board: PID 1 reboots itself.
    NoWatchdogRebooting,
    /// A test hook ran.
    HookDone(Hook),
    /// PID 1 was asked to stop.
    ShuttingDown,
    /// gatewayd did not stop on SIGTERM in time.
    StopTimeout,
}

fn slot_name(slot: Option<Slot>) -> String {
    slot.map_or_else(|| "?".to_owned(), |s| s.to_string())
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started { pid } => write!(f, "gatewayd started (pid {pid})"),
            Self::GatewaydReady { pid } => write!(f, "gatewayd (pid {pid}) is READY, probing SIP"),
            Self::Ready {
                version,
                slot,
                boot_ms,
            } => {
                write!(
                    f,
                    "ready version={version} slot={} boot_ms={boot_ms}",
                    slot_name(*slot)
                )
            }
            Self::MarkedGood(slot) => write!(f, "slot {slot} marked good"),
            Self::MarkFailed {
                slot,
                error,
                retrying,
            } => write!(
                f,
                "could not mark slot {slot} good: {error}{}",
                if *retrying {
                    ", retrying"
                } else {
                    ", giving up for this boot"
                }
            ),
            Self::CannotMarkUnknownSlot => {
                f.write_str("no appl.slot on the command line: not marking any slot good")
            }
            Self::MissedWatchdog => f.write_str("gatewayd missed its watchdog, restarting"),
            Self::Exited { status, delay_ms } => {
                write!(f, "gatewayd exited ({status}), restarting in {delay_ms} ms")
            }
            Self::NotReady { secs } => {
                write!(
                    f,
                    "not ready after {secs} s, letting the watchdog reset the board"
                )
            }
            Self::NoWatchdogRebooting => f.write_str("no hardware watchdog: rebooting instead"),
            Self::HookDone(hook) => write!(f, "hook {} done", hook.name()),
            Self::ShuttingDown => f.write_str("shutting down: stopping gatewayd"),
            Self::StopTimeout => f.write_str("gatewayd did not stop in time, killing it"),
        }
    }
}

/// A test hook (image/README.md: only with `appl.testhooks=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `hook stop-gatewayd`: SIGSTOP gatewayd.
    StopGatewayd,
    /// `hook stop-petting`: stop petting the hardware watchdog for good.
    StopPetting,
}

impl Hook {
    /// The name on the console.
    pub fn name(self) -> &'static str {
        match self {
            Self::StopGatewayd => "stop-gatewayd",
            Self::StopPetting => "stop-petting",
        }
    }

    /// Reads a console line: `hook <name>`.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        if words.next() != Some("hook") {
            return None;
        }
        let hook = match words.next()? {
            "stop-gatewayd" => Self::StopGatewayd,
            "stop-petting" => Self::StopPetting,
            _ => return None,
        };
        words.next().is_none().then_some(hook)
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start gatewayd, then report [`Supervisor::spawned`] or [`Supervisor::spawn_failed`].
    Spawn,
    /// Send a signal to gatewayd.
    Signal(Pid, Sig),
    /// Pet the hardware watchdog.
    Pet,
    /// Send one SIP OPTIONS probe; report a 200 with [`Supervisor::probe_answered`].
    SendProbe,
    /// Rewrite grubenv with this slot's tries reset; report [`Supervisor::mark_result`].
    MarkGood(Slot),
    /// Print a line.
    Say(Line),
    /// gatewayd is gone and PID 1 was asked to stop: sync, unmount, reboot.
    Reboot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Send the next probe at this time.
    Due(Duration),
    /// Sent; a new one goes at this time if no 200 came.
    Waiting(Duration),
    /// Answered 200 since this READY.
    Passed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proc {
    /// Not running; started again at this time.
    Down { restart_at: Duration },
    /// [`Action::Spawn`] was returned; waiting for the shell's report.
    Spawning,
    /// Running, no READY yet.
    Starting { pid: Pid },
    /// READY.
    Ready {
        pid: Pid,
        since: Duration,
        /// When the next `WATCHDOG=1` is due (`None`: not watched).
        watchdog_due: Option<Duration>,
        probe: Probe,
    },
    /// It said STOPPING=1 (SIGKILL at `kill_at` if still there), or was SIGKILLed by us: waiting for
    /// it to exit.
    Leaving {
        pid: Pid,
        ready_since: Option<Duration>,
        kill_at: Option<Duration>,
    },
    /// PID 1 is shutting down: SIGTERM sent; SIGKILL at `kill_at` if still there.
    Terminating { pid: Pid, kill_at: Option<Duration> },
    /// Shut down: nothing runs any more.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    NotYet,
    /// [`Action::MarkGood`] returned; this is attempt n.
    Pending(u32),
    /// Attempt n failed; the next goes at this time.
    RetryAt(Duration, u32),
    Done,
}

/// The supervision state machine. See the module doc.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    proc: Proc,
    backoff: Duration,
    /// Petting has not been stopped (by the grace running out or by the hook).
    petting: bool,
    next_pet: Duration,
    /// The last time the system was healthy (or supervision started).
    last_healthy: Duration,
    mark: Mark,
    shutting_down: bool,
    actions: Vec<Action>,
}

impl Supervisor {
    /// Starts supervising at `now`: gatewayd is started and the watchdog petted at the first poll.
    pub fn new(settings: Settings, now: Duration) -> Self {
        Self {
            settings,
            proc: Proc::Down { restart_at: now },
            backoff: BACKOFF_MIN,
            petting: true,
            next_pet: now,
            last_healthy: now,
            mark: Mark::NotYet,
            shutting_down: false,
            actions: Vec::new(),
        }
    }

    /// The pid of the running gatewayd.
    pub fn pid(&self) -> Option<Pid> {
        match self.proc {
            Proc::Starting { pid }
            | Proc::Ready { pid, .. }
            | Proc::Leaving { pid, .. }
            | Proc::Terminating { pid, .. } => Some(pid),
            Proc::Down { .. } | Proc::Spawning | Proc::Gone => None,
        }
    }

    /// Whether a probe answer is awaited.
    #[cfg(test)]
    pub fn probing(&self) -> bool {
        matches!(
            self.proc,
            Proc::Ready {
                probe: Probe::Waiting(_),
                ..
            }
        )
    }

    fn healthy(&self) -> bool {
        matches!(
            self.proc,
            Proc::Ready {
                probe: Probe::Passed,
                ..
            }
        )
    }

    /// Call before every state change: a healthy system stays healthy until `now`.
    fn touch(&mut self, now: Duration) {
        if self.healthy() {
            self.last_healthy = self.last_healthy.max(now);
        }
    }

    fn say(&mut self, line: Line) {
        self.actions.push(Action::Say(line));
    }

    /// The shell started gatewayd.
    pub fn spawned(&mut self, now: Duration, pid: Pid) {
        self.touch(now);
        if self.proc == Proc::Spawning {
            self.proc = Proc::Starting { pid };
            self.say(Line::Started { pid });
        }
    }

    /// The shell could not start gatewayd.
    pub fn spawn_failed(&mut self, now: Duration, error: String) {
        self.touch(now);
        if self.proc == Proc::Spawning {
            self.restart_later(now, ExitKind::CannotStart(error), None);
        }
    }

    fn restart_later(&mut self, now: Duration, status: ExitKind, ready_since: Option<Duration>) {
        if ready_since.is_some_and(|since| now.saturating_sub(since) >= BACKOFF_RESET) {
            self.backoff = BACKOFF_MIN;
        }
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.proc = Proc::Down {
            restart_at: now + delay,
        };
        self.say(Line::Exited {
            status,
            delay_ms: delay.as_millis(),
        });
    }

    /// A child exited (the shell reaps every child; only gatewayd's pid matters).
    pub fn exited(&mut self, now: Duration, pid: Pid, status: ExitKind) {
        if self.pid() != Some(pid) {
            return;
        }
        self.touch(now);
        match self.proc {
            Proc::Terminating { .. } => {
                self.proc = Proc::Gone;
                self.actions.push(Action::Reboot);
            }
            Proc::Ready { since, .. } => self.restart_later(now, status, Some(since)),
            Proc::Leaving { ready_since, .. } => self.restart_later(now, status, ready_since),
            _ => self.restart_later(now, status, None),
        }
    }

    /// An sd_notify datagram arrived; `sender` is its pid when the kernel said (SCM_CREDENTIALS).
    /// Messages from any other process than the current gatewayd are ignored (systemd's
    /// `NotifyAccess=main`).
    pub fn notify(&mut self, now: Duration, sender: Option<Pid>, n: &crate::notify::Notification) {
        let Some(pid) = self.pid() else { return };
        if sender.is_some_and(|s| s != pid) {
            return;
        }
        self.touch(now);
        let due = self.settings.notify_watchdog.map(|w| now + w);
        if n.ready
            && let Proc::Starting { pid } = self.proc
        {
            self.proc = Proc::Ready {
                pid,
                since: now,
                watchdog_due: due,
                probe: Probe::Due(now),
            };
            self.say(Line::GatewaydReady { pid });
        }
        if let Proc::Ready { watchdog_due, .. } = &mut self.proc {
            if n.watchdog {
                *watchdog_due = due;
            }
            if n.watchdog_trigger {
                *watchdog_due = Some(now);
            }
        }
        if n.stopping
            && let Proc::Starting { pid } | Proc::Ready { pid, .. } = self.proc
        {
            let ready_since = match self.proc {
                Proc::Ready { since, .. } => Some(since),
                _ => None,
            };
            self.proc = Proc::Leaving {
                pid,
                ready_since,
                kill_at: Some(now + STOP_GRACE),
            };
        }
    }

    /// The SIP probe got a `SIP/2.0 200` answer.
    pub fn probe_answered(&mut self, now: Duration) {
        self.touch(now);
        let Proc::Ready { probe, .. } = &mut self.proc else {
            return;
        };
        if *probe == Probe::Passed {
            return;
        }
        *probe = Probe::Passed;
        self.last_healthy = now;
        self.say(Line::Ready {
            version: self.settings.version.clone(),
            slot: self.settings.slot,
            boot_ms: now.as_millis(),
        });
        if self.mark == Mark::NotYet {
            match self.settings.slot {
                Some(slot) => {
                    self.mark = Mark::Pending(1);
                    self.actions.push(Action::MarkGood(slot));
                }
                None => {
                    self.mark = Mark::Done;
                    self.say(Line::CannotMarkUnknownSlot);
                }
            }
        }
    }

    /// The outcome of [`Action::MarkGood`].
    pub fn mark_result(&mut self, now: Duration, result: Result<(), String>) {
        let Some(slot) = self.settings.slot else { return };
        let Mark::Pending(attempt) = self.mark else { return };
        match result {
            Ok(()) => {
                self.mark = Mark::Done;
                self.say(Line::MarkedGood(slot));
            }
            Err(error) => {
                let retrying = attempt < MARK_ATTEMPTS;
                self.mark = if retrying {
                    Mark::RetryAt(now + MARK_RETRY, attempt)
                } else {
                    Mark::Done
                };
                self.say(Line::MarkFailed {
                    slot,
                    error,
                    retrying,
                });
            }
        }
    }

    /// A test hook line arrived (the shell only passes them with `appl.testhooks=1`).
    pub fn hook(&mut self, now: Duration, hook: Hook) {
        self.touch(now);
        match hook {
            Hook::StopGatewayd => {
                if let Some(pid) = self.pid() {
                    self.actions.push(Action::Signal(pid, Sig::Stop));
                }
            }
            Hook::StopPetting => self.petting = false,
        }
        self.say(Line::HookDone(hook));
    }

    /// SIGTERM/SIGINT to PID 1: stop gatewayd (SIGTERM, then SIGKILL), then reboot.
    pub fn shutdown(&mut self, now: Duration) {
        if self.shutting_down {
            return;
        }
        self.touch(now);
        self.shutting_down = true;
        self.say(Line::ShuttingDown);
        match self.pid() {
            Some(pid) => {
                self.actions.push(Action::Signal(pid, Sig::Term));
                self.actions.push(Action::Signal(pid, Sig::Cont));
                self.proc = Proc::Terminating {
                    pid,
                    kill_at: Some(now + STOP_GRACE),
                };
            }
            None => {
                self.proc = Proc::Gone;
                self.actions.push(Action::Reboot);
            }
        }
    }

    /// Whether the watchdog may be petted at `now`.
    fn may_pet(&self, now: Duration) -> bool {
        self.petting && (self.shutting_down || self.healthy() || now < self.grace_end())
    }

    fn grace_end(&self) -> Duration {
        self.last_healthy + self.settings.ready_timeout
    }

    /// Runs what is due at `now` and returns the actions, in order.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        self.touch(now);
        // gatewayd's life cycle.
        match self.proc {
            Proc::Down { restart_at } if restart_at <= now && !self.shutting_down => {
                self.proc = Proc::Spawning;
                self.actions.push(Action::Spawn);
            }
            Proc::Ready {
                pid,
                since,
                watchdog_due,
                probe,
            } => {
                if now.saturating_sub(since) >= BACKOFF_RESET {
                    self.backoff = BACKOFF_MIN;
                }
                if watchdog_due.is_some_and(|due| due <= now) {
                    self.proc = Proc::Leaving {
                        pid,
                        ready_since: Some(since),
                        kill_at: None,
                    };
                    self.say(Line::MissedWatchdog);
                    self.actions.push(Action::Signal(pid, Sig::Kill));
                } else if let Probe::Due(at) | Probe::Waiting(at) = probe
                    && at <= now
                {
                    self.proc = Proc::Ready {
                        pid,
                        since,
                        watchdog_due,
                        probe: Probe::Waiting(now + PROBE_INTERVAL),
                    };
                    self.actions.push(Action::SendProbe);
                }
            }
            Proc::Leaving {
                pid,
                ready_since,
                kill_at: Some(at),
            } if at <= now => {
                self.proc = Proc::Leaving {
                    pid,
                    ready_since,
                    kill_at: None,
                };
                self.say(Line::StopTimeout);
                self.actions.push(Action::Signal(pid, Sig::Kill));
            }
            Proc::Terminating {
                pid,
                kill_at: Some(at),
            } if at <= now => {
                self.proc = Proc::Terminating { pid, kill_at: None };
                self.say(Line::StopTimeout);
                self.actions.push(Action::Signal(pid, Sig::Kill));
            }
            _ => {}
        }
        // Marking good, again after a failure.
        if let (Mark::RetryAt(at, done), Some(slot)) = (self.mark, self.settings.slot)
            && at <= now
            && !self.shutting_down
        {
            self.mark = Mark::Pending(done + 1);
            self.actions.push(Action::MarkGood(slot));
        }
        // The hardware watchdog.
        if self.petting && !self.may_pet(now) {
            self.petting = false;
            self.say(Line::NotReady {
                secs: self.settings.ready_timeout.as_secs(),
            });
            if !self.settings.watchdog_present {
                self.say(Line::NoWatchdogRebooting);
                self.shutdown(now);
            }
        }
        if self.may_pet(now) && self.next_pet <= now {
            self.next_pet = now + self.settings.pet_interval;
            self.actions.push(Action::Pet);
        }
        std::mem::take(&mut self.actions)
    }

    /// When [`poll`](Self::poll) next has something to do (`None`: only on an input).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let mut t: Option<Duration> = None;
        let mut at = |d: Duration| t = Some(t.map_or(d, |t| t.min(d)));
        match self.proc {
            Proc::Down { restart_at } if !self.shutting_down => at(restart_at),
            Proc::Ready {
                watchdog_due, probe, ..
            } => {
                if let Some(due) = watchdog_due {
                    at(due);
                }
                if let Probe::Due(p) | Probe::Waiting(p) = probe {
                    at(p);
                }
            }
            Proc::Terminating { kill_at: Some(k), .. } | Proc::Leaving { kill_at: Some(k), .. } => at(k),
            _ => {}
        }
        if let Mark::RetryAt(r, _) = self.mark
            && !self.shutting_down
        {
            at(r);
        }
        if self.petting {
            at(self.next_pet);
            if !self.healthy() && !self.shutting_down {
                at(self.grace_end());
            }
        }
        t
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;
    use crate::notify::Notification;

    const PET: Duration = Duration::from_millis(3333);
    const WD: Duration = Duration::from_secs(4);
    const READY_TIMEOUT: Duration = Duration::from_secs(30);

    fn settings() -> Settings {
        Settings {
            slot: Some(Slot::B),
            version: "1.2.3".into(),
            watchdog_present: true,
            pet_interval: PET,
            notify_watchdog: Some(WD),
            ready_timeout: READY_TIMEOUT,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn note(text: &str) -> Notification {
        Notification::parse(text.as_bytes())
    }

    /// A driver on fake time: runs the supervisor, records actions, answers Spawn with pids 100, 101, …
    struct Sim {
        sup: Supervisor,
        now: Duration,
        next_pid: Pid,
        log: Vec<(Duration, Action)>,
    }

    impl Sim {
        fn new(settings: Settings) -> Self {
            let mut s = Self {
                sup: Supervisor::new(settings, Duration::ZERO),
                now: Duration::ZERO,
                next_pid: 100,
                log: Vec::new(),
            };
            s.step();
            s
        }

        /// Polls at the current time and performs Spawn; returns the actions.
        fn step(&mut self) -> Vec<Action> {
            let mut all = Vec::new();
            loop {
                let actions = self.sup.poll(self.now);
                if actions.is_empty() {
                    break;
                }
                for a in actions {
                    if a == Action::Spawn {
                        let pid = self.next_pid;
                        self.next_pid += 1;
                        self.sup.spawned(self.now, pid);
                    }
                    self.log.push((self.now, a.clone()));
                    all.push(a);
                }
            }
            all
        }

        /// Advances time to `until`, stopping at every timeout the supervisor asks for.
        fn run_until(&mut self, until: Duration) -> Vec<Action> {
            let mut all = Vec::new();
            loop {
                let next = self.sup.poll_timeout().filter(|t| *t <= until);
                match next {
                    Some(t) => {
                        assert!(t >= self.now, "timeout in the past: {t:?} < {:?}", self.now);
                        self.now = t;
                        all.extend(self.step());
                    }
                    None => {
                        self.now = until;
                        all.extend(self.step());
                        return all;
                    }
                }
            }
        }

        fn input(&mut self, f: impl FnOnce(&mut Supervisor, Duration)) -> Vec<Action> {
            f(&mut self.sup, self.now);
            self.step()
        }

        fn pets_between(&self, from: Duration, to: Duration) -> usize {
            self.log
                .iter()
                .filter(|(t, a)| *a == Action::Pet && *t >= from && *t < to)
                .count()
        }

        fn lines(actions: &[Action]) -> Vec<String> {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Say(l) => Some(l.to_string()),
                    _ => None,
                })
                .collect()
        }

        /// READY, WATCHDOG pings every 2 s, and the probe answered.
        fn make_ready(&mut self) -> Vec<Action> {
            let pid = self.sup.pid().expect("gatewayd runs");
            let mut all = self.input(|s, now| s.notify(now, Some(pid), &note("READY=1\nSTATUS=listening")));
            assert!(all.contains(&Action::SendProbe), "{all:?}");
            assert!(self.sup.probing());
            all.extend(self.input(Supervisor::probe_answered));
            all
        }

        /// Keeps gatewayd pinging every 2 s until `until`; returns the time of the last ping.
        fn ping_until(&mut self, until: Duration) -> Duration {
            let mut last = self.now;
            while self.now + Duration::from_secs(2) <= until {
                let t = self.now + Duration::from_secs(2);
                self.run_until(t);
                let pid = self.sup.pid().expect("gatewayd runs");
                self.input(|s, now| s.notify(now, Some(pid), &note("WATCHDOG=1")));
                last = self.now;
            }
            self.run_until(until);
            last
        }
    }

    #[test]
    fn boot_to_marked_good() {
        let mut sim = Sim::new(settings());
        assert_eq!(
            sim.log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(),
            [
                Action::Spawn,
                Action::Pet,
                Action::Say(Line::Started { pid: 100 })
            ]
        );
        sim.run_until(ms(4200));
        let a = sim.make_ready();
        assert_eq!(
            Sim::lines(&a),
            [
                "gatewayd (pid 100) is READY, probing SIP",
                "ready version=1.2.3 slot=B boot_ms=4200",
            ]
        );
        assert_eq!(a.last(), Some(&Action::MarkGood(Slot::B)));
        let a = sim.input(|s, now| s.mark_result(now, Ok(())));
        assert_eq!(Sim::lines(&a), ["slot B marked good"]);
        // Healthy for ten minutes: petted every 3.333 s, never marked again, never restarted.
        sim.ping_until(Duration::from_secs(600));
        assert!(sim.pets_between(Duration::from_secs(60), Duration::from_secs(600)) >= 160);
        assert!(
            !sim.log
                .iter()
                .any(|(t, a)| *t > ms(4200) && matches!(a, Action::MarkGood(_) | Action::Spawn))
        );
    }

    #[test]
    fn pets_every_interval_and_poll_timeout_says_when() {
        let mut sim = Sim::new(settings());
        assert_eq!(sim.sup.poll_timeout(), Some(PET));
        sim.run_until(PET * 3);
        assert_eq!(sim.pets_between(Duration::ZERO, PET * 3 + ms(1)), 4);
        let pets: Vec<Duration> = sim
            .log
            .iter()
            .filter(|(_, a)| *a == Action::Pet)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(pets, [Duration::ZERO, PET, PET * 2, PET * 3]);
    }

    #[test]
    fn never_ready_stops_petting_after_ready_timeout() {
        let mut sim = Sim::new(settings());
        let a = sim.run_until(Duration::from_secs(120));
        assert_eq!(
            Sim::lines(&a),
            ["not ready after 30 s, letting the watchdog reset the board"]
        );
        let last_pet = sim
            .log
            .iter()
            .rev()
            .find(|(_, a)| *a == Action::Pet)
            .map(|(t, _)| *t);
        assert!(last_pet.is_some_and(|t| t < READY_TIMEOUT), "{last_pet:?}");
        assert_eq!(sim.pets_between(READY_TIMEOUT, Duration::from_secs(120)), 0);
        // Becoming ready later does not resume petting (the reset is already under way).
        sim.make_ready();
        sim.ping_until(Duration::from_secs(200));
        assert_eq!(sim.pets_between(READY_TIMEOUT, Duration::from_secs(200)), 0);
        // No busy loop: with petting stopped and gatewayd watched, the next wake is its watchdog.
        assert!(sim.sup.poll_timeout().is_some_and(|t| t > sim.now));
    }

    #[test]
    fn ready_but_probe_never_answered_is_not_healthy() {
        let mut sim = Sim::new(settings());
        let pid = sim.sup.pid().unwrap();
        sim.input(|s, now| s.notify(now, Some(pid), &note("READY=1")));
        let mut probes = 0;
        while sim.now < Duration::from_secs(40) {
            let t = sim.now + Duration::from_secs(2);
            let a = sim.run_until(t);
            probes += a.iter().filter(|a| **a == Action::SendProbe).count();
            sim.input(|s, now| s.notify(now, Some(pid), &note("WATCHDOG=1")));
        }
        assert!((38..=41).contains(&probes), "a probe per second: {probes}");
        assert!(
            sim.log
                .iter()
                .any(|(_, a)| matches!(a, Action::Say(Line::NotReady { secs: 30 })))
        );
        assert!(
            !sim.log
                .iter()
                .any(|(_, a)| matches!(a, Action::Say(Line::Ready { .. }) | Action::MarkGood(_)))
        );
    }

    #[test]
    fn missed_watchdog_kills_and_restarts() {
        let mut sim = Sim::new(settings());
        sim.run_until(ms(1000));
        sim.make_ready();
        sim.input(|s, now| s.mark_result(now, Ok(())));
        let last_ping = sim.ping_until(Duration::from_secs(20));
        // Pings stop (hook stop-gatewayd, or a hung loop): the deadline is 4 s after the last one.
        let a = sim.run_until(Duration::from_secs(30));
        let kill_at = sim
            .log
            .iter()
            .find(|(_, a)| *a == Action::Signal(100, Sig::Kill))
            .map(|(t, _)| *t);
        assert_eq!(kill_at, Some(last_ping + WD));
        assert_eq!(Sim::lines(&a), ["gatewayd missed its watchdog, restarting"]);
        // The kill is reaped; restart after the first backoff step.
        let a = sim.input(|s, now| s.exited(now, 100, ExitKind::Signal("SIGKILL".into())));
        assert_eq!(
            Sim::lines(&a),
            ["gatewayd exited (signal SIGKILL), restarting in 250 ms"]
        );
        let a = sim.run_until(sim.now + ms(250));
        assert!(a.contains(&Action::Spawn));
        assert_eq!(sim.sup.pid(), Some(101));
        // It comes back healthy within the grace: the board was petted throughout.
        sim.make_ready();
        sim.ping_until(Duration::from_secs(90));
        let pets: Vec<Duration> = sim
            .log
            .iter()
            .filter(|(_, a)| *a == Action::Pet)
            .map(|(t, _)| *t)
            .collect();
        assert!(pets.windows(2).all(|w| w[1] - w[0] <= PET), "{pets:?}");
        // The ready line is printed again, the slot is not marked again.
        let readies = sim
            .log
            .iter()
            .filter(|(_, a)| matches!(a, Action::Say(Line::Ready { .. })))
            .count();
        assert_eq!(readies, 2);
        assert_eq!(
            sim.log
                .iter()
                .filter(|(_, a)| matches!(a, Action::MarkGood(_)))
                .count(),
            1
        );
    }

    #[test]
    fn watchdog_trigger_counts_as_missed() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        let a = sim.input(|s, now| s.notify(now, Some(100), &note("WATCHDOG=trigger")));
        assert!(a.contains(&Action::Signal(100, Sig::Kill)), "{a:?}");
    }

    #[test]
    fn no_notify_watchdog_means_no_deadline() {
        let mut sim = Sim::new(Settings {
            notify_watchdog: None,
            ..settings()
        });
        sim.make_ready();
        sim.run_until(Duration::from_secs(300));
        assert!(!sim.log.iter().any(|(_, a)| matches!(a, Action::Signal(..))));
        assert!(sim.pets_between(Duration::from_secs(200), Duration::from_secs(300)) >= 29);
    }

    #[test]
    fn backoff_doubles_to_eight_seconds_and_resets_after_a_minute_ready() {
        let mut sim = Sim::new(Settings {
            ready_timeout: Duration::from_secs(3600),
            ..settings()
        });
        let mut delays = Vec::new();
        for _ in 0..8 {
            let pid = sim.sup.pid().unwrap();
            let a = sim.input(|s, now| s.exited(now, pid, ExitKind::Code(1)));
            for l in Sim::lines(&a) {
                delays.push(l);
            }
            let Some(Action::Say(Line::Exited { delay_ms, .. })) = a.first() else {
                panic!("{a:?}")
            };
            let d = u64::try_from(*delay_ms).unwrap();
            sim.run_until(sim.now + ms(d));
            assert!(sim.sup.pid().is_some());
        }
        assert_eq!(
            delays.first().map(String::as_str),
            Some("gatewayd exited (status 1), restarting in 250 ms")
        );
        let ms_list: Vec<&str> = delays.iter().map(|l| l.rsplit(' ').nth(1).unwrap()).collect();
        assert_eq!(
            ms_list,
            ["250", "500", "1000", "2000", "4000", "8000", "8000", "8000"]
        );
        // Ready for 59 s: no reset.
        sim.make_ready();
        sim.ping_until(sim.now + Duration::from_secs(59));
        let pid = sim.sup.pid().unwrap();
        let a = sim.input(|s, now| s.exited(now, pid, ExitKind::Code(1)));
        assert!(
            matches!(a.first(), Some(Action::Say(Line::Exited { delay_ms: 8000, .. }))),
            "{a:?}"
        );
        sim.run_until(sim.now + ms(8000));
        // Ready for 60 s: back to 250 ms.
        sim.make_ready();
        sim.ping_until(sim.now + Duration::from_secs(61));
        let pid = sim.sup.pid().unwrap();
        let a = sim.input(|s, now| s.exited(now, pid, ExitKind::Code(0)));
        assert_eq!(
            Sim::lines(&a),
            ["gatewayd exited (status 0), restarting in 250 ms"]
        );
    }

    #[test]
    fn a_crash_loop_lets_the_board_reset_after_the_grace() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        sim.input(|s, now| s.mark_result(now, Ok(())));
        sim.ping_until(Duration::from_secs(10));
        // From now on every start fails.
        let crash_from = sim.now;
        while sim.now < Duration::from_secs(100) {
            if let Some(pid) = sim.sup.pid() {
                sim.input(|s, now| s.exited(now, pid, ExitKind::Code(2)));
            }
            let next = sim.sup.poll_timeout().unwrap();
            sim.run_until(next);
        }
        let stop = sim
            .log
            .iter()
            .find(|(_, a)| matches!(a, Action::Say(Line::NotReady { .. })))
            .map(|(t, _)| *t);
        assert_eq!(stop, Some(crash_from + READY_TIMEOUT));
        assert_eq!(
            sim.pets_between(crash_from + READY_TIMEOUT, Duration::from_secs(100)),
            0
        );
        // It keeps supervising (restarting) all the same.
        assert!(
            sim.log
                .iter()
                .filter(|(t, a)| *t > crash_from + READY_TIMEOUT && *a == Action::Spawn)
                .count()
                >= 5
        );
    }

    #[test]
    fn spawn_failure_is_an_exit_with_backoff() {
        let mut sup = Supervisor::new(settings(), Duration::ZERO);
        assert_eq!(sup.poll(Duration::ZERO), [Action::Spawn, Action::Pet]);
        sup.spawn_failed(Duration::ZERO, "No such file or directory (os error 2)".into());
        assert_eq!(
            Sim::lines(&sup.poll(Duration::ZERO)),
            ["gatewayd exited (cannot start: No such file or directory (os error 2)), restarting in 250 ms"]
        );
        assert_eq!(sup.poll_timeout(), Some(ms(250)));
        assert_eq!(sup.poll(ms(250)), [Action::Spawn]);
    }

    #[test]
    fn notify_from_another_process_is_ignored() {
        let mut sim = Sim::new(settings());
        let a = sim.input(|s, now| s.notify(now, Some(4242), &note("READY=1")));
        assert!(a.is_empty());
        assert!(!sim.sup.probing());
        // Without credentials the message is taken.
        let a = sim.input(|s, now| s.notify(now, None, &note("READY=1")));
        assert!(a.contains(&Action::SendProbe));
        // An exit of some other child (an orphan PID 1 reaped) changes nothing.
        let a = sim.input(|s, now| s.exited(now, 7, ExitKind::Code(0)));
        assert!(a.is_empty());
    }

    #[test]
    fn watchdog_before_ready_is_not_enforced() {
        let mut sim = Sim::new(Settings {
            ready_timeout: Duration::from_secs(3600),
            ..settings()
        });
        sim.input(|s, now| s.notify(now, Some(100), &note("WATCHDOG=1")));
        sim.run_until(Duration::from_secs(100));
        assert!(!sim.log.iter().any(|(_, a)| matches!(a, Action::Signal(..))));
    }

    #[test]
    fn stopping_then_exit_restarts_without_a_missed_watchdog() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        sim.input(|s, now| s.notify(now, Some(100), &note("STOPPING=1")));
        let a = sim.run_until(Duration::from_secs(9));
        assert!(!a.iter().any(|a| matches!(a, Action::Signal(..))), "{a:?}");
        let a = sim.input(|s, now| s.exited(now, 100, ExitKind::Code(0)));
        assert_eq!(
            Sim::lines(&a),
            ["gatewayd exited (status 0), restarting in 250 ms"]
        );
    }

    #[test]
    fn stopping_but_never_exiting_is_killed() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        sim.input(|s, now| s.notify(now, Some(100), &note("STOPPING=1")));
        let a = sim.run_until(STOP_GRACE);
        assert!(a.contains(&Action::Signal(100, Sig::Kill)), "{a:?}");
        assert!(Sim::lines(&a).contains(&"gatewayd did not stop in time, killing it".to_owned()));
    }

    #[test]
    fn mark_good_retries_then_gives_up() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        let a = sim.input(|s, now| s.mark_result(now, Err("EIO".into())));
        assert_eq!(Sim::lines(&a), ["could not mark slot B good: EIO, retrying"]);
        let a = sim.run_until(sim.now + MARK_RETRY);
        assert!(a.contains(&Action::MarkGood(Slot::B)), "{a:?}");
        sim.input(|s, now| s.mark_result(now, Err("EIO".into())));
        sim.run_until(sim.now + MARK_RETRY);
        let a = sim.input(|s, now| s.mark_result(now, Err("EIO".into())));
        assert_eq!(
            Sim::lines(&a),
            ["could not mark slot B good: EIO, giving up for this boot"]
        );
        sim.ping_until(sim.now + Duration::from_secs(60));
        assert_eq!(
            sim.log
                .iter()
                .filter(|(_, a)| matches!(a, Action::MarkGood(_)))
                .count(),
            3
        );
    }

    #[test]
    fn no_mark_retry_while_shutting_down() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        sim.input(|s, now| s.mark_result(now, Err("EIO".into())));
        sim.input(Supervisor::shutdown);
        let a = sim.run_until(sim.now + MARK_RETRY * 2);
        assert!(!a.iter().any(|a| matches!(a, Action::MarkGood(_))), "{a:?}");
    }

    #[test]
    fn unknown_slot_is_never_marked() {
        let mut sim = Sim::new(Settings {
            slot: None,
            ..settings()
        });
        let a = sim.make_ready();
        assert_eq!(
            Sim::lines(&a)[1..],
            [
                "ready version=1.2.3 slot=? boot_ms=0".to_owned(),
                "no appl.slot on the command line: not marking any slot good".to_owned(),
            ]
        );
        assert!(!a.iter().any(|a| matches!(a, Action::MarkGood(_))));
    }

    #[test]
    fn hooks() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        let a = sim.input(|s, now| s.hook(now, Hook::StopGatewayd));
        assert_eq!(a[0], Action::Signal(100, Sig::Stop));
        assert_eq!(Sim::lines(&a), ["hook stop-gatewayd done"]);
        // Stopped, it misses its watchdog and is killed (SIGKILL works on a stopped process).
        let a = sim.run_until(sim.now + WD);
        assert!(a.contains(&Action::Signal(100, Sig::Kill)));
        sim.input(|s, now| s.exited(now, 100, ExitKind::Signal("SIGKILL".into())));
        sim.run_until(sim.now + ms(250));
        sim.make_ready();
        let a = sim.input(|s, now| s.hook(now, Hook::StopPetting));
        assert_eq!(Sim::lines(&a), ["hook stop-petting done"]);
        let from = sim.now;
        sim.ping_until(from + Duration::from_secs(60));
        assert_eq!(sim.pets_between(from, from + Duration::from_secs(60)), 0);
        assert!(
            !sim.log
                .iter()
                .any(|(_, a)| matches!(a, Action::Say(Line::NotReady { .. })))
        );
    }

    #[test]
    fn hook_lines() {
        assert_eq!(Hook::parse("hook stop-gatewayd"), Some(Hook::StopGatewayd));
        assert_eq!(Hook::parse("  hook   stop-petting \r"), Some(Hook::StopPetting));
        assert_eq!(Hook::parse("hook stop-petting now"), None);
        assert_eq!(Hook::parse("hook"), None);
        assert_eq!(Hook::parse("hook reboot"), None);
        assert_eq!(Hook::parse("edge-init: hook stop-petting done"), None);
    }

    #[test]
    fn shutdown_terms_then_kills_then_reboots() {
        let mut sim = Sim::new(settings());
        sim.make_ready();
        let a = sim.input(Supervisor::shutdown);
        assert_eq!(
            a[..3],
            [
                Action::Say(Line::ShuttingDown),
                Action::Signal(100, Sig::Term),
                Action::Signal(100, Sig::Cont),
            ]
        );
        assert!(
            sim.input(Supervisor::shutdown).is_empty(),
            "a second request changes nothing"
        );
        let a = sim.run_until(sim.now + STOP_GRACE);
        assert!(a.contains(&Action::Signal(100, Sig::Kill)), "{a:?}");
        // Petting continues while it stops, no restart happens.
        assert!(a.contains(&Action::Pet));
        let a = sim.input(|s, now| s.exited(now, 100, ExitKind::Signal("SIGKILL".into())));
        assert_eq!(a, [Action::Reboot]);
        let a = sim.run_until(sim.now + Duration::from_secs(30));
        assert!(!a.contains(&Action::Spawn));
    }

    #[test]
    fn shutdown_while_down_reboots_at_once() {
        let mut sim = Sim::new(settings());
        sim.input(|s, now| s.exited(now, 100, ExitKind::Code(1)));
        let a = sim.input(Supervisor::shutdown);
        assert_eq!(a, [Action::Say(Line::ShuttingDown), Action::Reboot]);
        assert!(!sim.run_until(Duration::from_secs(5)).contains(&Action::Spawn));
    }

    #[test]
    fn without_a_watchdog_giving_up_reboots() {
        let mut sim = Sim::new(Settings {
            watchdog_present: false,
            ..settings()
        });
        let a = sim.run_until(READY_TIMEOUT);
        assert_eq!(
            Sim::lines(&a),
            [
                "not ready after 30 s, letting the watchdog reset the board",
                "no hardware watchdog: rebooting instead",
                "shutting down: stopping gatewayd",
            ]
        );
        assert!(a.contains(&Action::Signal(100, Sig::Term)));
        let a = sim.input(|s, now| s.exited(now, 100, ExitKind::Code(0)));
        assert_eq!(a, [Action::Reboot]);
    }

    #[test]
    fn console_lines_match_the_readme_contract() {
        let lines = [
            (
                Line::Ready {
                    version: "2026.5.1".into(),
                    slot: Some(Slot::A),
                    boot_ms: 8123,
                },
                "ready version=2026.5.1 slot=A boot_ms=8123",
            ),
            (Line::MarkedGood(Slot::A), "slot A marked good"),
            (Line::MissedWatchdog, "gatewayd missed its watchdog, restarting"),
            (
                Line::Exited {
                    status: ExitKind::Code(1),
                    delay_ms: 500,
                },
                "gatewayd exited (status 1), restarting in 500 ms",
            ),
            (
                Line::NotReady { secs: 30 },
                "not ready after 30 s, letting the watchdog reset the board",
            ),
            (Line::HookDone(Hook::StopGatewayd), "hook stop-gatewayd done"),
            (Line::HookDone(Hook::StopPetting), "hook stop-petting done"),
        ];
        for (line, text) in lines {
            assert_eq!(line.to_string(), text);
        }
    }

    #[test]
    fn timeouts_never_go_backwards_under_random_inputs() {
        // A small deterministic random walk over every input: no panic, poll_timeout never in the past
        // after a poll, and petting never resumes once stopped.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..50 {
            let mut sim = Sim::new(settings());
            let mut stopped_at = None;
            for _ in 0..300 {
                let dt = ms(rnd(3000));
                let t = sim.now + dt;
                sim.run_until(t);
                let pid = sim.sup.pid();
                match rnd(9) {
                    0 => drop(sim.input(|s, now| s.notify(now, pid, &note("READY=1")))),
                    1 | 2 => drop(sim.input(|s, now| s.notify(now, pid, &note("WATCHDOG=1")))),
                    3 => drop(sim.input(Supervisor::probe_answered)),
                    4 => {
                        if let Some(p) = pid {
                            sim.input(|s, now| s.exited(now, p, ExitKind::Code(1)));
                        }
                    }
                    5 => drop(sim.input(|s, now| s.mark_result(now, Err("x".into())))),
                    6 => drop(sim.input(|s, now| s.notify(now, pid, &note("STOPPING=1")))),
                    7 if rnd(20) == 0 => drop(sim.input(|s, now| s.hook(now, Hook::StopPetting))),
                    _ => {}
                }
                if let Some(t) = sim.sup.poll_timeout() {
                    assert!(t >= sim.now, "{t:?} < {:?}", sim.now);
                }
                if stopped_at.is_none() && !sim.sup.petting {
                    stopped_at = Some(sim.now);
                }
            }
            if let Some(at) = stopped_at {
                assert_eq!(sim.pets_between(at + ms(1), sim.now + ms(1)), 0);
            }
        }
    }
}
