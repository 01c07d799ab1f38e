//! Trunk monitoring with OPTIONS: one probe per interval (the first at start). A probe still
//! unanswered when the next one is due has failed (a UDP probe's own transaction would take Timer F,
//! 32 s, to say so: far too slow to notice a dead trunk); its late result is then ignored when it is
//! a timeout and counts as an answer when it is one. A trunk starts up; `down_after` failures in a row
//! (no answer within the interval, 408, 503) mark it down and `up_after` answers in a row mark it up
//! again. Any other final response is an answer: a 404, 405, 403 or 401 still proves the peer alive.

use std::time::{Duration, Instant};

use edge_config::routing::Monitor;

/// One trunk's monitoring state.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// `None`: not monitored (always up).
    interval: Option<Duration>,
    down_after: u32,
    up_after: u32,
    pub(crate) up: bool,
    fails: u32,
    answers: u32,
    /// When the next probe is due.
    due: Instant,
    /// The latest probe is out, unanswered.
    outstanding: bool,
    /// Earlier probes already counted as failed whose transactions have not ended yet.
    stale: u32,
}

impl Probe {
    pub(crate) fn new(m: &Monitor, start: Instant) -> Self {
        Self {
            interval: (m.interval_s > 0).then(|| Duration::from_secs(u64::from(m.interval_s))),
            down_after: m.down_after.max(1),
            up_after: m.up_after.max(1),
            up: true,
            fails: 0,
            answers: 0,
            due: start,
            outstanding: false,
            stale: 0,
        }
    }

    /// When a probe is next due (`None`: not monitored).
    pub(crate) fn due(&self) -> Option<Instant> {
        self.interval.map(|_| self.due)
    }

    /// A probe is sent at `now`. If the previous one is still unanswered it has failed: the new state
    /// is returned when that changed it.
    pub(crate) fn sent(&mut self, now: Instant) -> Option<bool> {
        let change = if self.outstanding {
            self.stale = self.stale.saturating_add(1);
            self.record(false)
        } else {
            None
        };
        self.outstanding = true;
        self.due = now + self.interval.unwrap_or_default();
        change
    }

    /// A probe's result: `Some(status)` for a final response, `None` for none (its transaction timed
    /// out or could not be sent). Returns the new state when it changed.
    pub(crate) fn answered(&mut self, status: Option<u16>) -> Option<bool> {
        let alive = !matches!(status, None | Some(408 | 503));
        match (status, self.outstanding) {
            // A timeout belongs to the oldest probe: one already counted as failed, if any.
            (None, _) if self.stale > 0 => {
                self.stale -= 1;
                None
            }
            (_, true) => {
                self.outstanding = false;
                self.record(alive)
            }
            (Some(_), false) if self.stale > 0 => {
                // A late answer to a probe counted as failed: the peer is alive after all.
                self.stale -= 1;
                self.record(alive)
            }
            _ => None,
        }
    }

    /// The state of the same trunk's monitoring before a configuration reload: up or down, the
    /// counts in a row and the probes out carry over; the interval and thresholds are the new ones.
    pub(crate) fn carry(&mut self, old: &Self) {
        self.up = old.up;
        self.fails = old.fails;
        self.answers = old.answers;
        self.outstanding = old.outstanding;
        self.stale = old.stale;
        if self.interval.is_some() && old.interval.is_some() {
            self.due = old.due;
        }
    }

    fn record(&mut self, alive: bool) -> Option<bool> {
        if alive {
            self.fails = 0;
            self.answers = self.answers.saturating_add(1);
            if !self.up && self.answers >= self.up_after {
                self.up = true;
                return Some(true);
            }
        } else {
            self.answers = 0;
            self.fails = self.fails.saturating_add(1);
            if self.up && self.fails >= self.down_after {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}
