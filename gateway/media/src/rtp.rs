//! RTP/RTCP rewriting between the legs, in place: payload type mapping, one continuous outgoing stream
//! per direction (our SSRC, our sequence numbers, our timestamps) whatever the source does — new
//! SSRC after a re-INVITE, a pause during hold — RFC 4733 telephone-event generation, and RTCP
//! SR/RR translation.
//!
//! Why continuity matters: the browser's SRTP receiver estimates the rollover counter from sequence
//! numbers (RFC 3711 §3.3.1) and drops what looks replayed. If the stream it receives jumped back or
//! far ahead after a hold, every packet would fail authentication. Our outgoing sequence numbers
//! only ever advance by the source's own steps, and a new source continues where the old one
//! stopped, with the timestamp advanced by the wall-clock time that passed.

use std::time::{Duration, Instant};

/// The RTP fixed-header fields we read and rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Reads the fixed header of an RTP packet (`None` if it is not one: RFC 7983 first byte
    /// 128–191, version 2, RTCP payload types 192–223 excluded per RFC 5761 §4).
    pub fn parse(p: &[u8]) -> Option<Self> {
        if p.len() < 12 || p[0] >> 6 != 2 {
            return None;
        }
        let pt = p[1] & 0x7f;
        if (64..96).contains(&pt) {
            return None; // RTCP (rtcp-mux)
        }
        Some(Self {
            marker: p[1] & 0x80 != 0,
            pt,
            seq: u16::from_be_bytes([p[2], p[3]]),
            ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        })
    }

    /// Writes these fields over the fixed header of `p` (which [`Self::parse`] accepted).
    pub fn write(&self, p: &mut [u8]) {
        p[1] = (u8::from(self.marker) << 7) | self.pt;
        p[2..4].copy_from_slice(&self.seq.to_be_bytes());
        p[4..8].copy_from_slice(&self.ts.to_be_bytes());
        p[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// Whether `p` is RTCP (RFC 5761 §4: payload type field 64–95 once the marker bit is masked, i.e.
/// packet types 192–223).
pub fn is_rtcp(p: &[u8]) -> bool {
    p.len() >= 8 && p[0] >> 6 == 2 && (192..=223).contains(&p[1])
}

/// One outgoing stream: maps whatever source feeds it onto our SSRC, sequence and timestamp line.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    clock_rate: u32,
    /// The source currently mapped, with the offsets applied to it.
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// Last values sent (for continuing on a source change) and when.
    last_seq: u16,
    last_ts: u32,
    last_sent: Option<Instant>,
    /// Set on a source change: the next packet carries the marker bit (a new talkspurt).
    mark_next: bool,
}

impl Rewriter {
    /// A stream with our `ssrc`, starting after `initial_seq`/`initial_ts` (random, from the caller).
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: initial_seq,
            last_ts: initial_ts,
            last_sent: None,
            mark_next: false,
        }
    }

    /// Our SSRC on this stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The source SSRC currently mapped onto this stream.
    pub fn source(&self) -> Option<u32> {
        self.source
    }

    /// Changes the clock rate (a re-INVITE switched codecs); the next packet re-anchors.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        if clock_rate != self.clock_rate {
            self.clock_rate = clock_rate.max(1);
            self.source = None;
        }
    }

    /// The timestamp our line has reached at `now` (the last sent one plus the time since).
    fn ts_at(&self, now: Instant) -> u32 {
        let elapsed = self
            .last_sent
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let ticks = elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000;
        self.last_ts
            .wrapping_add(u32::try_from(ticks % (1u128 << 32)).unwrap_or(0))
    }

    /// Rewrites `h` (from the source) onto our line.
    pub fn rewrite(&mut self, now: Instant, h: &mut RtpHeader) {
        if self.source != Some(h.ssrc) {
            // A new source (first packet, or the far end switched streams): continue our line.
            let next_seq = self.last_seq.wrapping_add(1);
            let mut next_ts = self.ts_at(now);
            if self.last_sent.is_some() && next_ts == self.last_ts {
                next_ts = next_ts.wrapping_add(1);
            }
            self.seq_offset = next_seq.wrapping_sub(h.seq);
            self.ts_offset = next_ts.wrapping_sub(h.ts);
            self.source = Some(h.ssrc);
            self.mark_next = true;
        }
        h.seq = h.seq.wrapping_add(self.seq_offset);
        h.ts = h.ts.wrapping_add(self.ts_offset);
        h.ssrc = self.ssrc;
        if self.mark_next {
            h.marker = true;
            self.mark_next = false;
        }
        // Track the newest packet (a late, reordered one does not move the line back).
        if h.seq.wrapping_sub(self.last_seq) < 0x8000 {
            self.last_seq = h.seq;
            self.last_ts = h.ts;
            self.last_sent = Some(now);
        }
    }

    /// Claims the next sequence number for a packet we generate ourselves (telephone-event), and
    /// makes the next source packet re-anchor after it.
    pub fn next_own(&mut self, now: Instant) -> (u16, u32) {
        self.last_seq = self.last_seq.wrapping_add(1);
        let ts = self.ts_at(now);
        self.last_ts = ts;
        self.last_sent = Some(now);
        self.source = None;
        (self.last_seq, ts)
    }

    /// The source timestamp mapped onto our line (for RTCP SR translation).
    pub fn map_ts(&self, ts: u32) -> u32 {
        ts.wrapping_add(self.ts_offset)
    }
}

/// An RFC 4733 telephone-event being generated (DTMF from SIP INFO toward the trunk).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    /// Event duration in clock ticks.
    total: u32,
    step: u32,
    /// Interval between updates (one packetisation time).
    interval: Duration,
    start_ts: Option<u32>,
    sent: u32,
    /// How many end packets are still to go (RFC 4733 §2.5.1.4: three).
    ends_left: u8,
    next_at: Instant,
}

/// The RFC 4733 event code of a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn dtmf_event(digit: char) -> Option<u8> {
    Some(match digit.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        d @ 'A'..='D' => d as u8 - b'A' + 12,
        _ => return None,
    })
}

impl DtmfSender {
    /// A digit lasting `duration` (clamped to 40 ms – 5 s), updates every `interval`.
    pub fn new(now: Instant, event: u8, duration: Duration, clock_rate: u32, interval: Duration) -> Self {
        let duration = duration.clamp(Duration::from_millis(40), Duration::from_secs(5));
        let ticks = |d: Duration| {
            u32::try_from(d.as_micros() * u128::from(clock_rate) / 1_000_000).unwrap_or(u32::MAX)
        };
        Self {
            event,
            volume: 10,
            total: ticks(duration).min(0xffff),
            step: ticks(interval).max(1),
            interval,
            start_ts: None,
            sent: 0,
            ends_left: 3,
            next_at: now,
        }
    }

    /// When the next packet is due (`None` once the event is complete).
    pub fn next_at(&self) -> Option<Instant> {
        (self.ends_left > 0).then_some(self.next_at)
    }

    /// Writes the next packet (header with `pt`, our stream's numbers) into `out` if one is due.
    pub fn poll(&mut self, now: Instant, pt: u8, stream: &mut Rewriter, out: &mut [u8; 16]) -> Option<usize> {
        if self.ends_left == 0 || now < self.next_at {
            return None;
        }
        let (seq, ts_now) = stream.next_own(now);
        let first = self.start_ts.is_none();
        let start = *self.start_ts.get_or_insert(ts_now);
        self.sent = (self.sent + self.step).min(self.total);
        let end = self.sent >= self.total;
        if end {
            self.ends_left -= 1;
        }
        let h = RtpHeader {
            marker: first,
            pt,
            seq,
            ts: start,
            ssrc: stream.ssrc(),
        };
        out[0] = 0x80;
        h.write(&mut out[..12]);
        out[12] = self.event;
        out[13] = (u8::from(end) << 7) | (self.volume & 0x3f);
        out[14..16].copy_from_slice(&u16::try_from(self.sent).unwrap_or(u16::MAX).to_be_bytes());
        self.next_at = now + self.interval;
        Some(16)
    }
}

/// Translates an RTCP compound packet in place for the other leg: SR/RR/SDES/BYE are kept with their
/// SSRCs rewritten (`sender` → `new_sender`, report blocks about `reported` → `new_reported`, SR
/// timestamps through `map_ts`); feedback, XR and APP packets, which describe this leg's transport
/// only, are dropped. Returns the new length (0 when nothing is left to send).
pub fn translate_rtcp(
    p: &mut [u8],
    len: usize,
    sender: u32,
    new_sender: u32,
    reported: Option<u32>,
    new_reported: u32,
    map_ts: impl Fn(u32) -> u32,
) -> usize {
    let mut read = 0;
    let mut write = 0;
    let rd32 = |p: &[u8], at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    while read + 4 <= len {
        if p[read] >> 6 != 2 {
            break;
        }
        let words = usize::from(u16::from_be_bytes([p[read + 2], p[read + 3]]));
        let size = 4 * (words + 1);
        if read + size > len {
            break;
        }
        let kind = p[read + 1];
        let count = usize::from(p[read] & 0x1f);
        let keep = matches!(kind, 200..=203);
        if keep {
            p.copy_within(read..read + size, write);
            let pkt = &mut p[write..write + size];
            let swap = |v: u32, pkt: &mut [u8], at: usize| {
                let new = if v == sender {
                    new_sender
                } else if Some(v) == reported {
                    new_reported
                } else {
                    v
                };
                pkt[at..at + 4].copy_from_slice(&new.to_be_bytes());
            };
            match kind {
                200 | 201 if size >= 8 => {
                    let s = rd32(pkt, 4);
                    swap(s, pkt, 4);
                    let mut blocks_at = 8;
                    if kind == 200 && size >= 28 {
                        let ts = map_ts(rd32(pkt, 16));
                        pkt[16..20].copy_from_slice(&ts.to_be_bytes());
                        blocks_at = 28;
                    }
                    for b in 0..count {
                        let at = blocks_at + 24 * b;
                        if at + 24 <= size {
                            let s = rd32(pkt, at);
                            swap(s, pkt, at);
                        }
                    }
                }
                202 | 203 if size >= 8 => {
                    // SDES: the first chunk's SSRC; BYE: every listed SSRC.
                    let n = if kind == 203 { count } else { count.min(1) };
                    for i in 0..n {
                        let at = 4 + 4 * i;
                        if at + 4 <= size {
                            let s = rd32(pkt, at);
                            swap(s, pkt, at);
                        }
                    }
                }
                _ => {}
            }
            write += size;
        }
        read += size;
    }
    write
}

/// Writes our own compound RTCP into `out`: a receiver report from `sender` (with `block` when we
/// receive a stream on that leg) and an SDES CNAME chunk (RFC 3550 §6.1 requires one in every compound
/// packet). Returns the length; `out` must hold 4 + 4 + 24 + 4 + 4 + 2 + 255 + 3 bytes at most.
pub fn own_report(out: &mut [u8; 320], sender: u32, block: Option<ReportBlock>, cname: &str) -> usize {
    let count = u8::from(block.is_some());
    // RR: header, sender SSRC, report blocks.
    out[0] = 0x80 | count;
    out[1] = 201;
    out[2..4].copy_from_slice(&(1 + 6 * u16::from(count)).to_be_bytes());
    out[4..8].copy_from_slice(&sender.to_be_bytes());
    let mut at = 8;
    if let Some(b) = block {
        out[at..at + 4].copy_from_slice(&b.ssrc.to_be_bytes());
        out[at + 4] = b.fraction_lost;
        out[at + 5..at + 8].copy_from_slice(&b.cumulative_lost.to_be_bytes()[1..]);
        out[at + 8..at + 12].copy_from_slice(&b.highest_seq.to_be_bytes());
        // Jitter, LSR, DLSR.
        out[at + 12..at + 24].fill(0);
        at += 24;
    }
    // SDES: one chunk, CNAME item, END, padded to a word.
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let sdes = at;
    out[sdes] = 0x81;
    out[sdes + 1] = 202;
    out[sdes + 4..sdes + 8].copy_from_slice(&sender.to_be_bytes());
    out[sdes + 8] = 1;
    out[sdes + 9] = u8::try_from(cname.len()).unwrap_or(u8::MAX);
    out[sdes + 10..sdes + 10 + cname.len()].copy_from_slice(cname);
    let mut end = sdes + 10 + cname.len();
    // At least one zero octet ends the item list, then up to the next word.
    out[end] = 0;
    end += 1;
    while !(end - sdes).is_multiple_of(4) {
        out[end] = 0;
        end += 1;
    }
    let words = u16::try_from((end - sdes) / 4 - 1).unwrap_or(u16::MAX);
    out[sdes + 2..sdes + 4].copy_from_slice(&words.to_be_bytes());
    end
}

/// Packet loss of one incoming RTP stream from its sequence numbers (RFC 3550 appendix A.1/A.3):
/// expected = extended highest − first + 1, lost = expected − received. A new SSRC starts over (the
/// totals so far are kept). Reordered and duplicate packets count as received; a jump of more than
/// 3000 is taken as a restart of the sender, not as loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossMeter {
    ssrc: Option<u32>,
    base: u64,
    max: u64,
    received: u64,
    /// Packets expected and received in finished streams (earlier SSRCs and restarts).
    closed_expected: u64,
    closed_received: u64,
    /// Expected and received of the current stream at the previous report block (RFC 3550 A.3).
    expected_prior: u64,
    received_prior: u64,
}

/// One RTCP reception report block (RFC 3550 §6.4.1) about a stream we receive. Jitter, LSR and DLSR
/// are sent as 0: our own reports stand in only while the other peer sends none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Loss since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the stream began (24-bit, clamped).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
}

impl LossMeter {
    /// Counts one packet.
    pub fn observe(&mut self, ssrc: u32, seq: u16) {
        let seq64 = u64::from(seq);
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq64);
            return;
        }
        // Extend to the cycle nearest the highest seen.
        let cycle = self.max & !0xffff;
        let candidates = [
            cycle.wrapping_sub(0x1_0000) | seq64,
            cycle | seq64,
            (cycle + 0x1_0000) | seq64,
        ];
        let ext = candidates
            .into_iter()
            .filter(|c| *c >= self.base.saturating_sub(0x1_0000))
            .min_by_key(|c| c.abs_diff(self.max))
            .unwrap_or(cycle | seq64);
        if ext > self.max + 3000 || ext + 3000 < self.base {
            self.restart(ssrc, seq64);
            return;
        }
        self.received += 1;
        self.max = self.max.max(ext);
        self.base = self.base.min(ext);
    }

    fn restart(&mut self, ssrc: u32, seq: u64) {
        self.closed_expected += self.expected_now();
        self.closed_received += self.received;
        // Offset by a cycle so that a packet just before the first still fits.
        let ext = seq + 0x1_0000;
        *self = Self {
            ssrc: Some(ssrc),
            base: ext,
            max: ext,
            received: 1,
            expected_prior: 0,
            received_prior: 0,
            ..*self
        };
    }

    /// A report block about the current stream (`None` before its first packet); the next one's
    /// fraction lost counts from here.
    pub fn report_block(&mut self) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected_now();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| u8::try_from(f).unwrap_or(u8::MAX));
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: u32::try_from(expected.saturating_sub(self.received))
                .unwrap_or(u32::MAX)
                .min(0x7f_ffff),
            // Extended numbers run a cycle high (see `restart`).
            highest_seq: u32::try_from(self.max.saturating_sub(0x1_0000) & 0xffff_ffff).unwrap_or(u32::MAX),
        })
    }

    fn expected_now(&self) -> u64 {
        if self.ssrc.is_some() {
            self.max - self.base + 1
        } else {
            0
        }
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.closed_received + self.received
    }

    /// Packets the sender sent that did not arrive.
    pub fn lost(&self) -> u64 {
        (self.closed_expected + self.expected_now()).saturating_sub(self.received())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn t0() -> Instant {
        crate::test_epoch()
    }

    fn h(seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            pt: 0,
            seq,
            ts,
            ssrc,
        }
    }

    #[test]
    fn a_new_source_continues_the_line_with_wall_clock_time() {
        let t = t0();
        let mut r = Rewriter::new(0x1111, 999, 50_000, 8000);
        let mut a = h(100, 7_000, 0xa);
        r.rewrite(t, &mut a);
        assert_eq!((a.seq, a.ts, a.ssrc, a.marker), (1000, 50_000, 0x1111, true));
        let mut a2 = h(101, 7_160, 0xa);
        r.rewrite(t + Duration::from_millis(20), &mut a2);
        assert_eq!((a2.seq, a2.ts, a2.marker), (1001, 50_160, false));
        // Hold: 10 minutes of nothing, then music on hold from another SSRC with wild numbers.
        let later = t + Duration::from_millis(20) + Duration::from_secs(600);
        let mut b = h(40_000, 123, 0xb);
        r.rewrite(later, &mut b);
        assert_eq!(b.seq, 1002, "sequence continues: no SRTP replay/ROC trouble");
        assert_eq!(
            b.ts,
            50_160 + 600 * 8000,
            "timestamp advanced by the time that passed"
        );
        assert!(b.marker);
        // Loss and reordering inside a source are preserved, not hidden.
        let mut b3 = h(40_002, 443, 0xb);
        r.rewrite(later + Duration::from_millis(40), &mut b3);
        let mut b2 = h(40_001, 283, 0xb);
        r.rewrite(later + Duration::from_millis(41), &mut b2);
        assert_eq!((b3.seq, b2.seq), (1004, 1003));
        // Sequence numbers wrap cleanly.
        let mut r = Rewriter::new(1, 65_534, 0, 8000);
        let mut p = h(5, 0, 9);
        r.rewrite(t, &mut p);
        assert_eq!(p.seq, 65_535);
        let mut p = h(6, 160, 9);
        r.rewrite(t, &mut p);
        assert_eq!(p.seq, 0);
    }

    #[test]
    fn dtmf_follows_rfc4733() {
        let t = t0();
        let mut stream = Rewriter::new(0x2222, 10, 1000, 8000);
        let mut a = h(1, 0, 0xa);
        stream.rewrite(t, &mut a); // audio at seq 11
        let mut d = DtmfSender::new(
            t,
            dtmf_event('5').unwrap(),
            Duration::from_millis(100),
            8000,
            Duration::from_millis(20),
        );
        let mut out = [0u8; 16];
        let mut packets = Vec::new();
        let mut now = t + Duration::from_millis(20);
        while let Some(at) = d.next_at() {
            now = now.max(at);
            if let Some(n) = d.poll(now, 101, &mut stream, &mut out) {
                packets.push(out[..n].to_vec());
            }
        }
        assert_eq!(
            packets.len(),
            5 + 2,
            "5 updates (the last one ends) + 2 more end packets"
        );
        let hs: Vec<_> = packets.iter().map(|p| RtpHeader::parse(p).unwrap()).collect();
        assert!(hs[0].marker && hs[1..].iter().all(|h| !h.marker));
        assert!(
            hs.iter()
                .all(|h| h.ts == hs[0].ts && h.pt == 101 && h.ssrc == 0x2222)
        );
        assert_eq!(
            hs.iter().map(|h| h.seq).collect::<Vec<_>>(),
            (12..19).collect::<Vec<_>>()
        );
        assert_eq!(packets[0][12], 5);
        assert_eq!(packets[4][13] & 0x80, 0x80, "end bit");
        assert_eq!(u16::from_be_bytes([packets[6][14], packets[6][15]]), 800);
        // Audio after the event continues the line.
        let mut a = h(2, 160, 0xa);
        stream.rewrite(now + Duration::from_millis(20), &mut a);
        assert_eq!(a.seq, 19);
        assert_eq!(dtmf_event('#'), Some(11));
        assert_eq!(dtmf_event('x'), None);
    }

    #[test]
    fn rtcp_translation_rewrites_ssrcs_and_drops_feedback() {
        // SR (1 block) + RTPFB (transport-cc) + SDES
        let mut p = vec![
            0x81, 200, 0, 12, 0, 0, 0, 0xa, /*ntp*/ 1, 2, 3, 4, 5, 6, 7, 8, /*ts*/ 0, 0, 0, 100, 0,
            0, 0, 1, 0, 0, 0, 2, /*block*/ 0, 0, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        p.extend_from_slice(&[0x8f, 205, 0, 2, 0, 0, 0, 0xa, 0, 0, 0, 0xb]);
        p.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 0xa, 1, 0, 0, 0]);
        let len = p.len();
        let n = translate_rtcp(&mut p, len, 0xa, 0x1a, Some(0xb), 0x1b, |ts| ts + 5);
        assert_eq!(n, 52 + 12);
        assert_eq!(&p[4..8], &[0, 0, 0, 0x1a]);
        assert_eq!(&p[16..20], &[0, 0, 0, 105]);
        assert_eq!(&p[28..32], &[0, 0, 0, 0x1b]);
        assert_eq!(p[53], 202);
        assert_eq!(&p[56..60], &[0, 0, 0, 0x1a]);
        // Truncated and garbage input never panics.
        for cut in 0..len {
            let mut q = p.clone();
            let _ = translate_rtcp(&mut q, cut, 1, 2, None, 3, |t| t);
        }
    }

    /// Our own compound RTCP as an independent parser (webrtc-rs `rtc-rtcp`) reads it:
    /// (RR sender, report blocks as (ssrc, fraction, total lost, highest seq), SDES (ssrc, CNAME)).
    /// (ssrc, fraction lost, total lost, highest sequence number) of one report block.
    pub(crate) type Block = (u32, u8, u32, u32);

    pub(crate) fn parse_own_report(p: &[u8]) -> (u32, Vec<Block>, (u32, String)) {
        use rtc_rtcp::receiver_report::ReceiverReport;
        use rtc_rtcp::source_description::SourceDescription;
        let packets = rtc_rtcp::packet::unmarshal(&mut &p[..]).expect("valid compound RTCP");
        assert_eq!(packets.len(), 2, "RR + SDES");
        let rr = packets[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .expect("a receiver report first");
        let sdes = packets[1]
            .as_any()
            .downcast_ref::<SourceDescription>()
            .expect("then SDES");
        let chunk = &sdes.chunks[0];
        (
            rr.ssrc,
            rr.reports
                .iter()
                .map(|r| (r.ssrc, r.fraction_lost, r.total_lost, r.last_sequence_number))
                .collect(),
            (
                chunk.source,
                String::from_utf8(chunk.items[0].text.to_vec()).unwrap(),
            ),
        )
    }

    #[test]
    fn own_reports_carry_loss_since_the_last_one_and_parse_elsewhere() {
        let mut m = LossMeter::default();
        // 1..=10 with 4 and 7 lost; then 11..=20 with none lost.
        for seq in (65_530u16..=65_535)
            .chain(0..4)
            .filter(|s| *s != 65_533 && *s != 1)
        {
            m.observe(0xabc, seq);
        }
        let first = m.report_block().unwrap();
        assert_eq!(
            (
                first.ssrc,
                first.cumulative_lost,
                first.highest_seq,
                first.fraction_lost
            ),
            (0xabc, 2, 0x1_0003, 51), // 2 of 10 lost: 2 × 256 / 10
            "the sequence wrapped once: the extended highest counts the cycle"
        );
        for seq in 4..14 {
            m.observe(0xabc, seq);
        }
        let second = m.report_block().unwrap();
        assert_eq!((second.fraction_lost, second.cumulative_lost), (0, 2));
        assert_eq!(LossMeter::default().report_block(), None);
        let mut out = [0u8; 320];
        for (block, cname) in [(Some(second), "0a0b0c0d@rtc-edge"), (None, "x"), (None, "abc")] {
            let n = own_report(&mut out, 0x5eed, block, cname);
            assert_eq!(n % 4, 0);
            let (sender, blocks, (source, text)) = parse_own_report(&out[..n]);
            assert_eq!((sender, source, text.as_str()), (0x5eed, 0x5eed, cname));
            assert_eq!(
                blocks,
                block
                    .map(|b| (b.ssrc, b.fraction_lost, b.cumulative_lost, b.highest_seq))
                    .into_iter()
                    .collect::<Vec<_>>()
            );
        }
        // The longest CNAME still fits the buffer.
        let long = "n".repeat(300);
        let n = own_report(&mut out, 1, Some(second), &long);
        assert_eq!(parse_own_report(&out[..n]).2.1.len(), 255);
    }

    #[test]
    fn loss_from_sequence_numbers() {
        let mut m = LossMeter::default();
        assert_eq!((m.received(), m.lost()), (0, 0));
        // 65530..=65535, 0..=9 with 3 and 7 missing: wraps, 16 expected, 2 lost.
        for seq in (65_530u16..=65_535).chain((0..10).filter(|s| *s != 3 && *s != 7)) {
            m.observe(1, seq);
        }
        assert_eq!((m.received(), m.lost()), (14, 2));
        // A late packet fills a gap; a duplicate counts as received.
        m.observe(1, 3);
        assert_eq!(m.lost(), 1);
        // A new SSRC keeps the totals and starts its own count.
        m.observe(2, 500);
        m.observe(2, 502);
        assert_eq!((m.received(), m.lost()), (17, 2));
        // A packet just before the first of a stream is not a wrap.
        let mut m = LossMeter::default();
        m.observe(9, 100);
        m.observe(9, 99);
        m.observe(9, 101);
        assert_eq!((m.received(), m.lost()), (3, 0));
        // A big jump is a restart of the sender, not thousands lost.
        m.observe(9, 40_000);
        m.observe(9, 40_001);
        assert_eq!((m.received(), m.lost()), (5, 0));
    }
}
