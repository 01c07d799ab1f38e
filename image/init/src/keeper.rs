//! Keeps a helper process running beside `gatewayd`: the update agent (`edge-agent`). It starts once
//! the slot is marked good (so an update is only ever judged and installed from a healthy system) and
//! is restarted when it exits, after a backoff that doubles from 2 s to 60 s and resets once it has
//! run for a minute. It has no say in health: PID 1 never reboots or stops petting because of it.
//!
//! Pure: time and pids in, "spawn now" out.

#![forbid(unsafe_code)]

use std::time::Duration;

use crate::supervisor::Pid;

const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One kept process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keeper {
    state: State,
    backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not wanted (yet, or any more).
    Idle,
    /// To be spawned at this time.
    Down { at: Duration },
    /// Running since `since`.
    Running { pid: Pid, since: Duration },
}

impl Default for Keeper {
    fn default() -> Self {
        Self {
            state: State::Idle,
            backoff: FIRST_BACKOFF,
        }
    }
}

impl Keeper {
    /// Wants it running from `now` on (no effect when already started).
    pub fn start(&mut self, now: Duration) {
        if self.state == State::Idle {
            self.state = State::Down { at: now };
        }
    }

    /// Whether to spawn it now.
    pub fn due(&self, now: Duration) -> bool {
        matches!(self.state, State::Down { at } if at <= now)
    }

    /// When [`Self::due`] turns true.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            State::Down { at } => Some(at),
            _ => None,
        }
    }

    /// It was spawned.
    pub fn spawned(&mut self, now: Duration, pid: Pid) {
        self.state = State::Running { pid, since: now };
    }

    /// Spawning failed: retried after the backoff. Returns the delay.
    pub fn spawn_failed(&mut self, now: Duration) -> Duration {
        self.down(now)
    }

    /// A child exited: returns the restart delay if it was this one.
    pub fn exited(&mut self, now: Duration, pid: Pid) -> Option<Duration> {
        match self.state {
            State::Running { pid: p, since } if p == pid => {
                if now.saturating_sub(since) >= STABLE_AFTER {
                    self.backoff = FIRST_BACKOFF;
                }
                Some(self.down(now))
            }
            _ => None,
        }
    }

    fn down(&mut self, now: Duration) -> Duration {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.state = State::Down { at: now + wait };
        wait
    }

    /// Stops wanting it; returns the pid to signal, if it runs.
    pub fn stop(&mut self) -> Option<Pid> {
        let pid = match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        };
        self.state = State::Idle;
        pid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_when_asked_restarts_with_backoff_and_stops() {
        let s = Duration::from_secs;
        let mut k = Keeper::default();
        assert!(!k.due(s(100)), "idle until started");
        k.start(s(10));
        assert!(k.due(s(10)));
        k.spawned(s(10), 42);
        assert_eq!(k.exited(s(11), 7), None, "another child");
        assert_eq!(k.exited(s(11), 42), Some(s(2)));
        assert!(!k.due(s(12)) && k.due(s(13)));
        k.spawned(s(13), 43);
        assert_eq!(k.exited(s(14), 43), Some(s(4)), "doubles");
        k.spawned(s(18), 44);
        assert_eq!(k.exited(s(100), 44), Some(s(2)), "resets after a stable minute");
        assert_eq!(k.spawn_failed(s(102)), s(4));
        assert_eq!(k.poll_timeout(), Some(s(106)));
        k.spawned(s(106), 45);
        assert_eq!(k.stop(), Some(45));
        assert_eq!(k.exited(s(107), 45), None, "stopped: not restarted");
        assert!(!k.due(s(1000)));
    }
}
