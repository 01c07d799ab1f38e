//! When to check in: the interval when all is well, exponential backoff when the server or the
//! download fails, and jitter so that a fleet that lost power together does not call back together;
//! and when to reboot into a testboot: once no call is up.

use std::time::Duration;

/// The check-in schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    backoff: Duration,
    failures: u32,
}

impl Schedule {
    /// `interval` between good check-ins; `backoff` for the first retry after a failure.
    pub fn new(interval: Duration, backoff: Duration) -> Self {
        Self {
            interval,
            backoff: backoff.min(interval),
            failures: 0,
        }
    }

    /// After a good check-in: the interval (the server's, if it named one), minus up to 10 % jitter.
    /// `random` is any random number.
    pub fn success(&mut self, server_interval: Option<Duration>, random: u32) -> Duration {
        self.failures = 0;
        let base = server_interval.filter(|d| !d.is_zero()).unwrap_or(self.interval);
        base - base.mul_f64(f64::from(random % 1000) / 10_000.0)
    }

    /// After a failure: `backoff` doubled per consecutive failure, capped at the interval, then
    /// "equal jitter" (a random point in the upper half), so retries spread out but never bunch at 0.
    pub fn failure(&mut self, random: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.interval);
        self.failures = self.failures.saturating_add(1);
        let half = doubled / 2;
        half + half.mul_f64(f64::from(random % 1001) / 1000.0)
    }
}

/// Calls up or being torn down, from gatewayd's sd_notify STATUS (`calls: 2, ending: 1, registered:
/// 5, media sessions: 3`); 0 when the text says nothing about calls. A testboot reboot waits for 0.
pub fn busy_calls(status: &str) -> u32 {
    status
        .split(',')
        .filter_map(|part| part.split_once(':'))
        .filter(|(k, _)| matches!(k.trim(), "calls" | "ending"))
        .filter_map(|(_, v)| v.trim().parse::<u32>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_read_from_gatewayds_status() {
        assert_eq!(
            busy_calls("calls: 2, ending: 1, registered: 5, media sessions: 3"),
            3
        );
        assert_eq!(busy_calls("calls: 0, ending: 0, registered: 1"), 0);
        assert_eq!(busy_calls("listening"), 0);
        assert_eq!(busy_calls(""), 0);
    }

    #[test]
    fn backs_off_doubling_with_jitter_and_resets_on_success() {
        let s = |x| Duration::from_secs(x);
        let mut sch = Schedule::new(s(300), s(15));
        let lows: Vec<_> = (0..7).map(|_| sch.failure(0)).collect();
        assert_eq!(lows, [s(15) / 2, s(15), s(30), s(60), s(120), s(150), s(150)]);
        let mut sch = Schedule::new(s(300), s(15));
        assert_eq!(sch.failure(1000), s(15), "the top of the jitter range");
        assert_eq!(sch.failure(1000), s(30));
        assert_eq!(sch.success(None, 0), s(300));
        assert_eq!(sch.failure(1000), s(15), "success resets the backoff");
        let jittered = sch.success(Some(s(100)), 999);
        assert!(jittered < s(100) && jittered > s(89), "{jittered:?}");
        assert_eq!(
            sch.success(Some(Duration::ZERO), 0),
            s(300),
            "0 from the server is ignored"
        );
    }
}
