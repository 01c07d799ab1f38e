//! Call admission control: concurrent calls, calls per second and media bandwidth, per trunk and per
//! source address. Time is an input; calls per second is a token bucket of capacity = rate (a burst of
//! one second's worth), refilled continuously, counted in integer milli-tokens like
//! `edge_sip::ratelimit`.
//!
//! # Bandwidth estimate
//! A call's kbit/s is estimated from the SDP offer in the INVITE by [`call_kbps`]: the highest rate
//! among the offered audio codecs we know, each being the codec's bit rate plus 16 kbit/s of
//! IP/UDP/RTP headers at 20 ms packets (40 bytes × 50 packets/s): PCMU, PCMA, G.722 = 64 + 16 = 80;
//! opus = 40 (what browsers send for voice at most) + 16 = 56. An INVITE without a body, or whose
//! audio offers only codecs we do not know, counts as 80 (the worst of the known ones). Video is not
//! counted: the gateway relays audio only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// The estimate for a call whose codecs are not known (no offer, unknown codecs).
pub const DEFAULT_KBPS: u32 = 80;

/// A token bucket: `rate` per second, capacity `rate`; rate 0 admits everything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    rate: u32,
    milli_tokens: u64,
    last: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate,
            milli_tokens: u64::from(rate) * 1000,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let capacity = u64::from(self.rate) * 1000;
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last);
            let add = u64::try_from(elapsed.as_micros().saturating_mul(u128::from(self.rate)) / 1000)
                .unwrap_or(u64::MAX);
            self.milli_tokens = self.milli_tokens.saturating_add(add).min(capacity);
        }
        // Time never runs backwards here: an older `now` keeps the later mark.
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// Whether a token is there at `now` (refills, takes nothing).
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        self.milli_tokens >= 1000
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if !self.ready(now) {
            return false;
        }
        if self.rate != 0 {
            self.milli_tokens -= 1000;
        }
        true
    }

    /// Whether the bucket is full at `now` (it carries nothing worth keeping).
    fn full(&mut self, now: Instant) -> bool {
        self.rate == 0 || {
            self.refill(now);
            self.milli_tokens >= u64::from(self.rate) * 1000
        }
    }
}

/// A trunk's load against its limits.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    max_calls: u32,
    max_kbps: u32,
    pub(crate) calls: u32,
    pub(crate) kbps: u32,
    cps: Bucket,
}

impl Load {
    pub(crate) fn new(max_calls: u32, max_cps: u32, max_kbps: u32) -> Self {
        Self {
            max_calls,
            max_kbps,
            calls: 0,
            kbps: 0,
            cps: Bucket::new(max_cps),
        }
    }

    /// Whether one more call of `kbps` fits at `now` (takes nothing).
    pub(crate) fn fits(&mut self, now: Instant, kbps: u32) -> bool {
        (self.max_calls == 0 || self.calls < self.max_calls)
            && (self.max_kbps == 0 || self.kbps.saturating_add(kbps) <= self.max_kbps)
            && self.cps.ready(now)
    }

    /// A call of `kbps` starts toward it: one call-per-second token taken, counts up.
    pub(crate) fn start(&mut self, now: Instant, kbps: u32) {
        self.cps.take(now);
        self.calls = self.calls.saturating_add(1);
        self.kbps = self.kbps.saturating_add(kbps);
    }

    /// A call of `kbps` leaves it.
    pub(crate) fn stop(&mut self, kbps: u32) {
        self.calls = self.calls.saturating_sub(1);
        self.kbps = self.kbps.saturating_sub(kbps);
    }
}

#[derive(Debug, Clone, Copy)]
struct PerSource {
    calls: u32,
    cps: Bucket,
}

/// `[admission]` per source address. Memory is bounded at [`Sources::MAX`] addresses: when full,
/// addresses with no call and a full bucket are forgotten first; if none is, a new address is refused
/// (a spoofed-source flood cannot grow the table).
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    max_calls: u32,
    cps: u32,
    table: HashMap<IpAddr, PerSource>,
}

impl Sources {
    /// Largest number of addresses tracked at once.
    pub(crate) const MAX: usize = 65_536;

    pub(crate) fn new(max_calls: u32, cps: u32) -> Self {
        Self {
            max_calls,
            cps,
            table: HashMap::new(),
        }
    }

    fn off(&self) -> bool {
        self.max_calls == 0 && self.cps == 0
    }

    /// Admits a new call from `ip` at `now` (a calls-per-second token taken, the call counted), or
    /// refuses it.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.off() {
            return true;
        }
        if !self.table.contains_key(&ip) && self.table.len() >= Self::MAX {
            self.table.retain(|_, s| s.calls > 0 || !s.cps.full(now));
            if self.table.len() >= Self::MAX {
                return false;
            }
        }
        let cps = self.cps;
        let s = self.table.entry(ip).or_insert(PerSource {
            calls: 0,
            cps: Bucket::new(cps),
        });
        if self.max_calls != 0 && s.calls >= self.max_calls {
            return false;
        }
        if !s.cps.take(now) {
            return false;
        }
        s.calls += 1;
        true
    }

    /// A call admitted from `ip` ended (or was refused after admission).
    pub(crate) fn release(&mut self, ip: IpAddr) {
        if let Some(s) = self.table.get_mut(&ip) {
            s.calls = s.calls.saturating_sub(1);
        }
    }

    /// New limits (a configuration reload); the calls counted so far stay counted.
    pub(crate) fn set_limits(&mut self, max_calls: u32, cps: u32) {
        self.max_calls = max_calls;
        if cps != self.cps {
            self.cps = cps;
            for s in self.table.values_mut() {
                s.cps = Bucket::new(cps);
            }
        }
    }

    /// Addresses tracked now.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// The estimated kbit/s of a call from the SDP offer in its INVITE (see the module doc).
pub fn call_kbps(body: &[u8]) -> u32 {
    let Ok(sdp) = std::str::from_utf8(body) else {
        return DEFAULT_KBPS;
    };
    let lines: Vec<&str> = sdp.lines().map(str::trim).collect();
    let mut best: Option<u32> = None;
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        i += 1;
        let Some(media) = line.strip_prefix("m=") else {
            continue;
        };
        let mut fields = media.split_whitespace();
        if fields.next() != Some("audio") {
            continue;
        }
        let payloads: Vec<&str> = fields.skip(2).collect();
        // This section's attributes run until the next m= line.
        let end = lines
            .iter()
            .skip(i)
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |p| p + i);
        let section = lines.get(i..end).unwrap_or_default();
        for pt in payloads {
            let name = section
                .iter()
                .filter_map(|l| l.strip_prefix("a=rtpmap:"))
                .find_map(|m| {
                    let (p, enc) = m.split_once(char::is_whitespace)?;
                    (p == pt).then(|| enc.trim().split('/').next().unwrap_or(""))
                })
                .or(match pt {
                    "0" => Some("PCMU"),
                    "8" => Some("PCMA"),
                    "9" => Some("G722"),
                    _ => None,
                });
            let rate = match name {
                Some(n) if ["PCMU", "PCMA", "G722"].iter().any(|k| n.eq_ignore_ascii_case(k)) => Some(80),
                Some(n) if n.eq_ignore_ascii_case("opus") => Some(56),
                _ => None,
            };
            if let Some(r) = rate {
                best = Some(best.map_or(r, |b: u32| b.max(r)));
            }
        }
    }
    best.unwrap_or(DEFAULT_KBPS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let t0 = crate::test_epoch();
        let mut b = Bucket::new(2);
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "capacity = one second's worth");
        assert!(!b.take(t0 + Duration::from_millis(499)));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(b.full(t0 + Duration::from_secs(10)));
        let mut off = Bucket::new(0);
        assert!((0..100).all(|_| off.take(t0)));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let t0 = crate::test_epoch();
        let mut s = Sources::new(0, 1);
        for n in 0..u32::try_from(Sources::MAX).unwrap() {
            assert!(s.admit(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), t0));
        }
        let other: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(!s.admit(other, t0), "full, and every bucket in use");
        // Release their calls; once their buckets refill they are forgotten first.
        for n in 0..u32::try_from(Sources::MAX).unwrap() {
            s.release(IpAddr::from((0x0a00_0000 + n).to_be_bytes()));
        }
        assert!(s.admit(other, t0 + Duration::from_secs(1)));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn kbps_from_the_offer() {
        let offer =
            |m: &str| format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{m}");
        let webrtc = offer(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n",
        );
        assert_eq!(
            call_kbps(webrtc.as_bytes()),
            80,
            "the highest: PCMU by its static type"
        );
        let opus = offer(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 telephone-event/8000\r\n",
        );
        assert_eq!(call_kbps(opus.as_bytes()), 56);
        let g722 = offer("m=audio 4000 RTP/AVP 9\r\n");
        assert_eq!(call_kbps(g722.as_bytes()), 80);
        // An opus rtpmap in the video section does not count for audio.
        let video =
            offer("m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\nm=video 4002 RTP/AVP 0\r\n");
        assert_eq!(call_kbps(video.as_bytes()), 56);
        assert_eq!(call_kbps(b""), DEFAULT_KBPS, "no offer");
        let unknown = offer("m=audio 4000 RTP/AVP 18\r\n");
        assert_eq!(
            call_kbps(unknown.as_bytes()),
            DEFAULT_KBPS,
            "G.729 is not a codec we know"
        );
        assert_eq!(call_kbps(&[0xff, 0xfe]), DEFAULT_KBPS);
    }
}
