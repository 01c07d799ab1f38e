//! Per-source admission of new work (INVITE, REGISTER): a token bucket per source IP address, so a
//! flood from one address is refused before it starves everyone else. Sans-IO: time is an input.
//!
//! Memory is bounded: at most [`RateLimiter::MAX_SOURCES`] buckets; when full, buckets idle long
//! enough to have refilled are forgotten first (they carry no state worth keeping), and if none is,
//! a new source is refused until one is (a spoofed-source flood cannot grow the table).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Token-bucket parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second per source; 0 disables the limiter.
    pub per_second: u32,
    /// Requests a source may send at once before the rate applies.
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths, so that fractional refills are exact without floats.
    milli_tokens: u64,
    last: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket>,
    refused: u64,
}

impl RateLimiter {
    /// Largest number of sources tracked at once.
    pub const MAX_SOURCES: usize = 65_536;

    /// A limiter with `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
            refused: 0,
        }
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Sources currently tracked.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Whether `source` may start new work at `now`; takes a token if so.
    pub fn admit(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.limit.per_second == 0 {
            return true;
        }
        let capacity = u64::from(self.limit.burst.max(1)) * 1000;
        let rate = u64::from(self.limit.per_second);
        if !self.buckets.contains_key(&source) && self.buckets.len() >= Self::MAX_SOURCES {
            self.forget_full(now, capacity, rate);
            if self.buckets.len() >= Self::MAX_SOURCES {
                self.refused += 1;
                return false;
            }
        }
        let bucket = self.buckets.entry(source).or_insert(Bucket {
            milli_tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last);
        let refill =
            u64::try_from(elapsed.as_micros().saturating_mul(u128::from(rate)) / 1000).unwrap_or(u64::MAX);
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(capacity);
        bucket.last = now;
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Drops buckets that would be full by now (idle for at least burst/rate seconds).
    fn forget_full(&mut self, now: Instant, capacity: u64, rate: u64) {
        let refill_time = Duration::from_millis(capacity / rate.max(1));
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < refill_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_rate_per_source() {
        let mut rl = RateLimiter::new(RateLimit {
            per_second: 10,
            burst: 5,
        });
        let t0 = crate::test_epoch();
        let a = ip("198.51.100.1");
        let admitted = (0..20).filter(|_| rl.admit(a, t0)).count();
        assert_eq!(admitted, 5, "the burst, then nothing at the same instant");
        // Another source is not affected by the first one's flood.
        assert!(rl.admit(ip("198.51.100.2"), t0));
        // 10/s: one token per 100 ms.
        assert!(!rl.admit(a, t0 + Duration::from_millis(99)));
        assert!(rl.admit(a, t0 + Duration::from_millis(200)));
        // After a long pause the bucket is full again, never more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| rl.admit(a, later)).count(), 5);
        assert_eq!(rl.refused(), 15 + 1 + 15);
    }

    #[test]
    fn zero_rate_disables() {
        let mut rl = RateLimiter::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        let t0 = crate::test_epoch();
        assert!((0..1000).all(|_| rl.admit(ip("192.0.2.1"), t0)));
        assert_eq!(rl.sources(), 0);
    }

    #[test]
    fn the_table_is_bounded_against_spoofed_sources() {
        let mut rl = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        });
        let t0 = crate::test_epoch();
        for i in 0..RateLimiter::MAX_SOURCES {
            let n = u32::try_from(i).unwrap();
            assert!(rl.admit(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), t0));
        }
        assert_eq!(rl.sources(), RateLimiter::MAX_SOURCES);
        assert!(
            !rl.admit(ip("203.0.113.1"), t0),
            "a new source is refused while every bucket is in use"
        );
        // Once the old buckets have refilled, they are forgotten and new sources get in.
        assert!(rl.admit(ip("203.0.113.1"), t0 + Duration::from_secs(2)));
        assert_eq!(rl.sources(), 1);
    }
}
