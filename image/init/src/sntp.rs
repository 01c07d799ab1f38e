//! One SNTP exchange (RFC 4330 / RFC 5905 §7.3 packet): the client request and the checks of the reply.
//!
//! Pure: a nonce in, 48 bytes out; bytes and the nonce in, the server's time out. The shell sends the
//! request once over UDP with a 2 s timeout and sets `CLOCK_REALTIME`; it never blocks the boot on it.
//! The request's transmit timestamp is a nonce, not our clock (which is what we are about to correct):
//! the server echoes it as the originate timestamp, so a reply that does not carry it is refused.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::time::Duration;

/// NTP packet length without extensions.
pub const PACKET_LEN: usize = 48;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix).
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// Why a reply is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SntpError {
    /// Shorter than an NTP header.
    #[error("reply is {0} bytes, shorter than an NTP packet")]
    Short(usize),
    /// Not a server reply of version 3 or 4.
    #[error("not an NTPv3/v4 server reply (version {version}, mode {mode})")]
    NotServerReply {
        /// The version field.
        version: u8,
        /// The mode field.
        mode: u8,
    },
    /// Kiss-o'-death, or a server that is not synchronised.
    #[error("server is not synchronised (stratum {stratum}, leap indicator {leap})")]
    Unsynchronised {
        /// The stratum.
        stratum: u8,
        /// The leap indicator.
        leap: u8,
    },
    /// The originate timestamp is not our nonce: a stale or forged reply.
    #[error("reply does not answer our request")]
    NotOurs,
    /// A zero transmit timestamp.
    #[error("reply carries no time")]
    NoTime,
}

/// The client request carrying `nonce` as its transmit timestamp.
pub fn request(nonce: u64) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    // LI 0, version 4, mode 3 (client).
    p[0] = 0b00_100_011;
    p[40..48].copy_from_slice(&nonce.to_be_bytes());
    p
}

/// The server's timestamps, as time since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// When the server received the request.
    pub receive: Duration,
    /// When the server sent the reply.
    pub transmit: Duration,
}

fn timestamp(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(..8) {
        b.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

/// An NTP timestamp as time since the Unix epoch. Era 0 ends in 2036: seconds that would fall before
/// 1970 are read as era 1.
fn to_unix(ts: u64) -> Duration {
    let secs = ts >> 32;
    let frac = ts & 0xffff_ffff;
    let unix_secs = if secs >= NTP_TO_UNIX {
        secs - NTP_TO_UNIX
    } else {
        secs + (1 << 32) - NTP_TO_UNIX
    };
    // frac / 2^32 seconds, in nanoseconds: fits in u64 (frac < 2^32, times 1e9 < 2^62).
    let nanos = (frac * 1_000_000_000) >> 32;
    Duration::from_secs(unix_secs) + Duration::from_nanos(nanos)
}

/// Checks a reply to the request made with `nonce`.
pub fn parse_reply(bytes: &[u8], nonce: u64) -> Result<Reply, SntpError> {
    let Some(head) = bytes.get(..PACKET_LEN) else {
        return Err(SntpError::Short(bytes.len()));
    };
    let b0 = head.first().copied().unwrap_or(0);
    let (leap, version, mode) = (b0 >> 6, (b0 >> 3) & 0b111, b0 & 0b111);
    if !(3..=4).contains(&version) || mode != 4 {
        return Err(SntpError::NotServerReply { version, mode });
    }
    let stratum = head.get(1).copied().unwrap_or(0);
    if stratum == 0 || stratum > 15 || leap == 3 {
        return Err(SntpError::Unsynchronised { stratum, leap });
    }
    let field = |at: usize| timestamp(head.get(at..).unwrap_or_default());
    if field(24) != nonce {
        return Err(SntpError::NotOurs);
    }
    let (receive, transmit) = (field(32), field(40));
    if transmit == 0 {
        return Err(SntpError::NoTime);
    }
    Ok(Reply {
        receive: to_unix(receive),
        transmit: to_unix(transmit),
    })
}

impl Reply {
    /// The time when the reply arrived, given the round trip measured on our monotonic clock: the
    /// server's transmit time plus half the network delay (the round trip minus the server's own time).
    pub fn time_at_arrival(&self, round_trip: Duration) -> Duration {
        let in_server = self.transmit.saturating_sub(self.receive);
        self.transmit + round_trip.saturating_sub(in_server) / 2
    }
}

/// A Unix time as `YYYY-MM-DD hh:mm:ss UTC`, for the console.
#[derive(Debug, Clone, Copy)]
pub struct Utc(pub Duration);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u64::from(m <= 2);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    const NONCE: u64 = 0x0123_4567_89ab_cdef;

    /// 2026-05-14 12:00:00 UTC as an NTP timestamp (+ half a second).
    const T: u64 = ((1_778_760_000 + NTP_TO_UNIX) << 32) | 0x8000_0000;

    fn reply(b0: u8, stratum: u8, origin: u64, receive: u64, transmit: u64) -> Vec<u8> {
        let mut p = vec![0u8; PACKET_LEN];
        p[0] = b0;
        p[1] = stratum;
        p[24..32].copy_from_slice(&origin.to_be_bytes());
        p[32..40].copy_from_slice(&receive.to_be_bytes());
        p[40..48].copy_from_slice(&transmit.to_be_bytes());
        p
    }

    #[test]
    fn request_layout() {
        let r = request(NONCE);
        assert_eq!(r[0], 0x23, "LI 0, VN 4, mode 3");
        assert!(r[1..40].iter().all(|&b| b == 0));
        assert_eq!(&r[40..], &NONCE.to_be_bytes());
    }

    #[test]
    fn good_reply() {
        let r = parse_reply(&reply(0x24, 2, NONCE, T, T + (1 << 30)), NONCE).unwrap();
        assert_eq!(r.receive, Duration::from_millis(1_778_760_000_500));
        assert_eq!(r.transmit, Duration::from_millis(1_778_760_000_750));
        // 100 ms round trip, 250 ms of it inside the server (clock skew there): no negative delay.
        assert_eq!(r.time_at_arrival(Duration::from_millis(100)), r.transmit);
        // 300 ms round trip, 250 in the server: 25 ms each way.
        assert_eq!(
            r.time_at_arrival(Duration::from_millis(300)),
            r.transmit + Duration::from_millis(25)
        );
        assert_eq!(Utc(r.transmit).to_string(), "2026-05-14 12:00:00 UTC");
        // NTPv3 servers and extension fields are fine.
        let mut v3 = reply(0x1c, 1, NONCE, T, T);
        v3.extend_from_slice(&[0; 20]);
        assert!(parse_reply(&v3, NONCE).is_ok());
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_reply(&[0x24; 47], NONCE), Err(SntpError::Short(47)));
        assert!(matches!(
            parse_reply(&reply(0x23, 2, NONCE, T, T), NONCE),
            Err(SntpError::NotServerReply { mode: 3, .. })
        ));
        assert!(matches!(
            parse_reply(&reply(0x14, 2, NONCE, T, T), NONCE),
            Err(SntpError::NotServerReply { version: 2, .. })
        ));
        assert!(matches!(
            parse_reply(&reply(0x24, 0, NONCE, T, T), NONCE),
            Err(SntpError::Unsynchronised { stratum: 0, .. })
        ));
        assert!(matches!(
            parse_reply(&reply(0xe4, 2, NONCE, T, T), NONCE),
            Err(SntpError::Unsynchronised { leap: 3, .. })
        ));
        assert_eq!(
            parse_reply(&reply(0x24, 2, NONCE + 1, T, T), NONCE),
            Err(SntpError::NotOurs)
        );
        assert_eq!(
            parse_reply(&reply(0x24, 2, NONCE, T, 0), NONCE),
            Err(SntpError::NoTime)
        );
    }

    #[test]
    fn era_rollover_and_calendar() {
        // 2036-02-07 06:28:16 UTC is NTP second 2^32 = era 1 second 0.
        assert_eq!(to_unix(0), Duration::from_secs((1 << 32) - NTP_TO_UNIX));
        assert_eq!(Utc(to_unix(0)).to_string(), "2036-02-07 06:28:16 UTC");
        assert_eq!(Utc(Duration::ZERO).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            Utc(Duration::from_secs(951_782_400)).to_string(),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            Utc(Duration::from_secs(4_107_542_399)).to_string(),
            "2100-02-28 23:59:59 UTC"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 7u64;
        for len in 0..120 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    u8::try_from(seed >> 56).unwrap()
                })
                .collect();
            let _ = parse_reply(&bytes, NONCE);
        }
    }
}
