//! One call's media: the browser leg (ICE-lite, DTLS-SRTP, rtcp-mux on one port) bridged to the trunk
//! leg (RTP/AVP with symmetric RTP and latching, RTCP on its own port or muxed, optional SDES-SRTP).
//!
//! # Driving
//! - Hot path: [`MediaSession::from_browser`] / [`MediaSession::from_trunk`] take a received datagram
//!   in the caller's buffer and rewrite it **in place** into the datagram for the other leg, returning
//!   [`Forward`] (where to send how many bytes, from which of our sockets). No allocation, no lock.
//! - Everything else (STUN responses, DTLS records, generated telephone-events) queues for
//!   [`MediaSession::poll_transmit`]; state changes queue for [`MediaSession::poll_event`].
//! - [`MediaSession::poll_timeout`] / [`MediaSession::handle_timeout`] drive DTLS retransmission,
//!   DTMF generation, consent and inactivity.
//!
//! After every `handle_*`/`from_*` call drain `poll_transmit` and `poll_event`, then re-arm the timer
//! from `poll_timeout`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dtls::{DtlsError, DtlsIdentity, DtlsRole, DtlsTransport, FingerprintHash};
use crate::ice::{IceInput, IceLite, is_stun};
use crate::rtp::{
    DtmfSender, LossMeter, Rewriter, RtpHeader, dtmf_event, is_rtcp, own_report, translate_rtcp,
};
use crate::srtp::{Profile, SrtpContext};

/// How long DTLS may take once ICE has nominated the browser's address (Chrome completes in well
/// under a second; ten covers lost flights with their retransmissions).
pub const DTLS_DEADLINE: Duration = Duration::from_secs(10);

/// A leg that has had no RTCP from us for about this long (none of the other peer's to translate)
/// gets a report of our own: RFC 3550's minimum interval, randomised to 0.5-1.5 times it (§6.3.1).
pub const RTCP_INTERVAL: Duration = Duration::from_millis(RTCP_INTERVAL_MS);
const RTCP_INTERVAL_MS: u64 = 5_000;

/// Which of the call's two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The browser: ICE + DTLS-SRTP, one port.
    Browser,
    /// The trunk/PBX: plain RTP (or SDES-SRTP).
    Trunk,
}

/// Which local socket a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// The browser leg's port (RTP, RTCP, STUN and DTLS all on it).
    Browser,
    /// The trunk leg's RTP port.
    TrunkRtp,
    /// The trunk leg's RTCP port (RTP port + 1), unless rtcp-mux.
    TrunkRtcp,
}

/// What to do with the datagram just handed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send `buf[..len]` from `from` to `to`.
    Send {
        from: Socket,
        to: SocketAddr,
        len: usize,
    },
    /// Nothing to send (consumed, queued a reply, or dropped: see [`MediaStats`]).
    Done,
}

/// A datagram the session generated itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local socket to send from.
    pub from: Socket,
    /// Destination.
    pub to: SocketAddr,
    /// Payload.
    pub bytes: Vec<u8>,
}

/// Something the call core must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The browser nominated its address (ICE complete).
    IceConnected(SocketAddr),
    /// DTLS finished; SRTP keys are in place.
    DtlsConnected(Profile),
    /// DTLS failed: the browser leg has no media; end the call.
    DtlsFailed(String),
    /// The browser closed DTLS (close_notify), as it does when it hangs up: we stopped sending to it.
    /// Not a failure: its BYE ends the call (or consent expiry, if none comes).
    DtlsClosed,
    /// The browser stopped answering consent (RFC 7675): we stopped sending; end the call.
    ConsentExpired,
    /// No RTP for the configured time from a leg that should be sending (its direction lets it send to
    /// us), or from either leg while both are on hold: end the call. Reported again after another full
    /// timeout if the silence goes on (the call core may choose to wait, e.g. while the call rings).
    Inactive {
        /// The silent leg (the browser when both are on hold and neither sent).
        leg: Leg,
        /// How long it has been silent.
        idle: Duration,
    },
    /// The trunk's media source latched (first packet, or a new address after a re-INVITE).
    TrunkLatched(SocketAddr),
}

/// Directions as negotiated, from our point of view on each leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// We only send on this leg.
    SendOnly,
    /// We only receive on this leg.
    RecvOnly,
    /// Neither (hold).
    Inactive,
}

impl Direction {
    fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }
}

/// The negotiated parameters of a call (from the SDP layer), in media terms only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Browser's ICE ufrag.
    pub browser_ufrag: String,
    /// Browser's certificate fingerprint and its hash.
    pub browser_fingerprint: (FingerprintHash, Vec<u8>),
    /// Our DTLS role (kept for the whole call).
    pub dtls_role: DtlsRole,
    /// Where the trunk wants RTP (`None`: on hold with c=0.0.0.0, or unknown yet).
    pub trunk_rtp: Option<SocketAddr>,
    /// Where the trunk wants RTCP (`None` with rtcp-mux or unknown).
    pub trunk_rtcp: Option<SocketAddr>,
    /// The trunk multiplexes RTCP on the RTP port.
    pub trunk_rtcp_mux: bool,
    /// SDES keys on the trunk leg: (profile, our key||salt, their key||salt).
    pub trunk_sdes: Option<(Profile, Vec<u8>, Vec<u8>)>,
    /// The codec: clock rate, browser PT, trunk PT.
    pub codec: (u32, u8, u8),
    /// The other codecs both legs accepted (clock rate, browser PT, trunk PT): a peer may switch to
    /// one at any time (RFC 3264 §5.1). Those at the codec's clock rate are forwarded with their own
    /// mapping; one at another rate cannot share the rewritten timestamp line and is dropped (counted
    /// in [`MediaStats::malformed`]).
    pub alternatives: Vec<(u32, u8, u8)>,
    /// telephone-event: browser PT, trunk PT, and its clock rate (the codec's, or 8000 beside Opus
    /// with the many phones that know no other): event durations count in it, timestamps stay on the
    /// audio stream's line.
    pub telephone_event: Option<(u8, u8, u32)>,
    /// Our direction on the browser leg.
    pub browser_direction: Direction,
    /// Our direction on the trunk leg.
    pub trunk_direction: Direction,
    /// The trunk's packetisation time (for generated telephone-events).
    pub ptime: Duration,
}

/// Per-call parameters that are ours (random values come from the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our ICE ufrag and password on the browser leg.
    pub ice_ufrag: String,
    /// Our ICE password.
    pub ice_pwd: String,
    /// Our SSRC toward the browser and toward the trunk.
    pub ssrcs: (u32, u32),
    /// First sequence numbers toward the browser and toward the trunk.
    pub initial_seqs: (u16, u16),
    /// No RTP from either leg for this long ends the call.
    pub inactivity_timeout: Duration,
    /// The same, while both legs are on hold (direction inactive).
    pub hold_timeout: Duration,
}

/// Counters of what was dropped and why (the shell exports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets forwarded browser → trunk.
    pub to_trunk: u64,
    /// Packets forwarded trunk → browser.
    pub to_browser: u64,
    /// SRTP/SRTCP that failed authentication or replay checks.
    pub srtp_rejected: u64,
    /// Packets that were not STUN/DTLS/RTP/RTCP, or had a payload type not negotiated (or negotiated
    /// at another clock rate than the call's codec).
    pub malformed: u64,
    /// Packets dropped because the leg cannot send yet (no ICE/DTLS, no trunk address) or is on hold.
    pub not_ready: u64,
    /// STUN that failed ICE checks.
    pub stun_rejected: u64,
    /// Packets from a source other than the latched trunk address.
    pub wrong_source: u64,
    /// RTP packets received from the browser.
    pub from_browser: u64,
    /// RTP packets the browser sent that never arrived (from sequence numbers).
    pub lost_from_browser: u64,
    /// RTP packets received from the trunk.
    pub from_trunk: u64,
    /// RTP packets the trunk sent that never arrived.
    pub lost_from_trunk: u64,
}

/// The media of one call.
#[derive(Debug)]
pub struct MediaSession {
    config: SessionConfig,
    neg: Negotiated,
    ice: IceLite,
    dtls: DtlsTransport,
    browser_rx: Option<SrtpContext>,
    browser_tx: Option<SrtpContext>,
    trunk_rx: Option<SrtpContext>,
    trunk_tx: Option<SrtpContext>,
    /// The trunk's actual source (symmetric RTP): latched from its first packet.
    trunk_latched: Option<SocketAddr>,
    trunk_rtcp_latched: Option<SocketAddr>,
    to_browser: Rewriter,
    to_trunk: Rewriter,
    /// Telephone-events we generate toward the trunk, and toward the browser.
    dtmf: VecDeque<DtmfSender>,
    dtmf_to_browser: VecDeque<DtmfSender>,
    /// Last RTP from each leg: inactivity is watched per leg.
    last_from_browser: Instant,
    last_from_trunk: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MediaEvent>,
    ended: bool,
    consent_reported: bool,
    /// DTLS must complete by then once ICE has nominated (a browser that checks but never
    /// handshakes would otherwise keep a silent call up until inactivity).
    dtls_deadline: Option<Instant>,
    stats: MediaStats,
    browser_loss: LossMeter,
    trunk_loss: LossMeter,
    /// When each leg is due a report of our own, unless RTCP from the other peer reaches it first:
    /// (browser, trunk).
    rtcp_due: (Instant, Instant),
    /// Intervals drawn so far (the randomisation's counter).
    rtcp_draws: u64,
    /// Our SDES CNAME (one per call, both legs).
    cname: String,
}

impl MediaSession {
    /// A session for a negotiated call, starting at `now`.
    pub fn new(
        now: Instant,
        identity: &DtlsIdentity,
        config: SessionConfig,
        neg: Negotiated,
    ) -> Result<Self, DtlsError> {
        let dtls = DtlsTransport::new(
            identity,
            neg.dtls_role,
            neg.browser_fingerprint.0,
            &neg.browser_fingerprint.1,
        )?;
        let ice = IceLite::new(&config.ice_ufrag, &config.ice_pwd, &neg.browser_ufrag);
        let rate = neg.codec.0;
        let (trunk_tx, trunk_rx) = sdes_contexts(neg.trunk_sdes.as_ref());
        let cname = format!("{:08x}@rtc-edge", config.ssrcs.0);
        Ok(Self {
            to_browser: Rewriter::new(
                config.ssrcs.0,
                config.initial_seqs.0,
                u32::from(config.initial_seqs.0) << 8,
                rate,
            ),
            to_trunk: Rewriter::new(
                config.ssrcs.1,
                config.initial_seqs.1,
                u32::from(config.initial_seqs.1) << 8,
                rate,
            ),
            config,
            ice,
            dtls,
            browser_rx: None,
            browser_tx: None,
            trunk_rx,
            trunk_tx,
            trunk_latched: None,
            trunk_rtcp_latched: None,
            neg,
            dtmf: VecDeque::new(),
            dtmf_to_browser: VecDeque::new(),
            last_from_browser: now,
            last_from_trunk: now,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ended: false,
            consent_reported: false,
            dtls_deadline: None,
            stats: MediaStats::default(),
            browser_loss: LossMeter::default(),
            trunk_loss: LossMeter::default(),
            rtcp_due: (now, now),
            rtcp_draws: 0,
            cname,
        }
        .with_rtcp_schedule(now))
    }

    /// A re-offer/answer changed the parameters (hold/resume, codec, trunk address, ICE restart, new
    /// DTLS certificate). The DTLS role never changes; a new browser fingerprint means a new DTLS
    /// association, new ICE credentials an ICE restart; our outgoing streams continue either way.
    pub fn update(
        &mut self,
        now: Instant,
        identity: &DtlsIdentity,
        mut neg: Negotiated,
    ) -> Result<(), DtlsError> {
        neg.dtls_role = self.neg.dtls_role;
        // A leg that may now send to us (a resume) gets a full timeout from now.
        if neg.browser_direction.receives() && !self.neg.browser_direction.receives() {
            self.last_from_browser = now;
        }
        if neg.trunk_direction.receives() && !self.neg.trunk_direction.receives() {
            self.last_from_trunk = now;
        }
        if neg.browser_fingerprint != self.neg.browser_fingerprint {
            self.dtls = DtlsTransport::new(
                identity,
                neg.dtls_role,
                neg.browser_fingerprint.0,
                &neg.browser_fingerprint.1,
            )?;
            self.browser_rx = None;
            self.browser_tx = None;
            self.dtls_deadline = Some(now + DTLS_DEADLINE);
        }
        if neg.browser_ufrag != self.neg.browser_ufrag {
            self.ice
                .restart(&self.config.ice_ufrag, &self.config.ice_pwd, &neg.browser_ufrag);
            self.consent_reported = false;
        }
        if neg.trunk_rtp != self.neg.trunk_rtp {
            self.trunk_latched = None;
            self.trunk_rtcp_latched = None;
        }
        if neg.trunk_sdes != self.neg.trunk_sdes {
            (self.trunk_tx, self.trunk_rx) = sdes_contexts(neg.trunk_sdes.as_ref());
        }
        self.to_browser.set_clock_rate(neg.codec.0);
        self.to_trunk.set_clock_rate(neg.codec.0);
        self.neg = neg;
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            from_browser: self.browser_loss.received(),
            lost_from_browser: self.browser_loss.lost(),
            from_trunk: self.trunk_loss.received(),
            lost_from_trunk: self.trunk_loss.lost(),
            ..self.stats
        }
    }

    /// Whether DTLS has completed (nothing is sent to the browser before).
    pub fn is_secure(&self) -> bool {
        self.browser_tx.is_some()
    }

    /// Queue a DTMF digit (from SIP INFO) toward the `toward` leg as RFC 4733 telephone-event; that
    /// leg's audio from the other side is held back while it plays. Returns false if that leg did not
    /// negotiate telephone-event or the digit is not DTMF.
    pub fn send_dtmf(&mut self, now: Instant, toward: Leg, digit: char, duration: Duration) -> bool {
        let (Some(event), Some((browser_pt, _, event_clock))) = (dtmf_event(digit), self.neg.telephone_event)
        else {
            return false;
        };
        let queue = match toward {
            Leg::Trunk => &mut self.dtmf,
            // The SDP layer marks a browser that did not take telephone-event with no valid PT.
            Leg::Browser if browser_pt < 128 => &mut self.dtmf_to_browser,
            Leg::Browser => return false,
        };
        let start = queue
            .back()
            .and_then(DtmfSender::next_at)
            .map_or(now, |t| t.max(now));
        let ptime = if self.neg.ptime.is_zero() {
            Duration::from_millis(20)
        } else {
            self.neg.ptime
        };
        queue.push_back(DtmfSender::new(start, event, duration, event_clock, ptime));
        true
    }

    /// A datagram arrived on the browser port from `from`; `buf[..len]` holds it and `buf` has room
    /// for the SRTP tag growth of the other direction (1500 bytes is enough).
    pub fn from_browser(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8], len: usize) -> Forward {
        let Some(p) = buf.get(..len) else {
            return Forward::Done;
        };
        let Some(&first) = p.first() else {
            self.stats.malformed += 1;
            return Forward::Done;
        };
        // RFC 7983 demultiplexing on the first byte.
        match first {
            0..=3 if is_stun(p) => {
                self.stun(now, from, len, buf);
                Forward::Done
            }
            20..=63 => {
                self.dtls_in(now, from, len, buf);
                Forward::Done
            }
            128..=191 => self.browser_media(now, from, buf, len),
            _ => {
                self.stats.malformed += 1;
                Forward::Done
            }
        }
    }

    fn stun(&mut self, now: Instant, from: SocketAddr, len: usize, buf: &mut [u8]) {
        let mut out = [0u8; 256];
        let was_nominated = self.ice.is_nominated();
        match self.ice.handle(now, from, &buf[..len], &mut out) {
            IceInput::Respond { len, to, nominated } => {
                self.transmits.push_back(Transmit {
                    from: Socket::Browser,
                    to,
                    bytes: out[..len].to_vec(),
                });
                if nominated {
                    self.events.push_back(MediaEvent::IceConnected(to));
                    if !self.is_secure() && self.dtls_deadline.is_none() {
                        self.dtls_deadline = Some(now + DTLS_DEADLINE);
                    }
                }
                if !was_nominated || nominated {
                    // We know where the browser is: a DTLS client may start.
                    if let Err(e) = self.dtls.start(now) {
                        self.dtls_failed(&e);
                    }
                    self.flush_dtls();
                }
            }
            IceInput::Dropped(_) => self.stats.stun_rejected += 1,
        }
    }

    fn dtls_in(&mut self, now: Instant, from: SocketAddr, len: usize, buf: &[u8]) {
        // DTLS only from an address that passed an ICE check.
        if self.ice.remote(now) != Some(from) {
            self.stats.not_ready += 1;
            return;
        }
        match self.dtls.handle(now, &buf[..len]) {
            Ok(true) => {
                if let Some(keys) = self.dtls.srtp_keys() {
                    let s = keys.profile.salt_len();
                    self.browser_tx = SrtpContext::new(keys.profile, &keys.local_key, &keys.local_salt[..s]);
                    self.browser_rx =
                        SrtpContext::new(keys.profile, &keys.remote_key, &keys.remote_salt[..s]);
                    self.events.push_back(MediaEvent::DtlsConnected(keys.profile));
                    self.dtls_deadline = None;
                }
            }
            Ok(false) => {}
            // The browser closed its end (its call is over; the BYE is on its way, or consent expiry
            // will end the call): its SRTP keys are gone, so nothing more goes to it.
            Err(DtlsError::Closed) => {
                if self.browser_tx.take().is_some() {
                    self.browser_rx = None;
                    self.events.push_back(MediaEvent::DtlsClosed);
                }
            }
            Err(e) => self.dtls_failed(&e),
        }
        self.flush_dtls();
    }

    fn dtls_failed(&mut self, e: &DtlsError) {
        self.dtls_deadline = None;
        if !self.ended {
            self.ended = true;
            self.events.push_back(MediaEvent::DtlsFailed(e.to_string()));
        }
    }

    fn flush_dtls(&mut self) {
        while let Some(bytes) = self.dtls.poll_transmit() {
            if let Some(to) = self.ice.remote_any() {
                self.transmits.push_back(Transmit {
                    from: Socket::Browser,
                    to,
                    bytes,
                });
            }
        }
    }

    fn browser_media(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8], len: usize) -> Forward {
        if self.ice.remote_any() != Some(from) {
            self.stats.wrong_source += 1;
            return Forward::Done;
        }
        let Some(rx) = self.browser_rx.as_mut() else {
            self.stats.not_ready += 1;
            return Forward::Done;
        };
        let rtcp = is_rtcp(&buf[..len]);
        let plain = if rtcp {
            rx.unprotect_rtcp(&mut buf[..len])
        } else {
            rx.unprotect_rtp(&mut buf[..len])
        };
        let Ok(plain) = plain else {
            self.stats.srtp_rejected += 1;
            return Forward::Done;
        };
        if rtcp {
            let forward = self.browser_rtcp(buf, plain);
            if matches!(forward, Forward::Send { .. }) {
                self.rtcp_due.1 = self.rtcp_interval(now);
            }
            return forward;
        }
        self.last_from_browser = now;
        let Some(mut h) = RtpHeader::parse(&buf[..plain]) else {
            self.stats.malformed += 1;
            return Forward::Done;
        };
        self.browser_loss.observe(h.ssrc, h.seq);
        // While we generate a telephone-event toward the trunk, the browser's audio is suppressed.
        if !self.dtmf.is_empty() || !self.neg.trunk_direction.sends() {
            self.stats.not_ready += 1;
            return Forward::Done;
        }
        h.pt = match map_pt(&self.neg, h.pt, true) {
            Some(pt) => pt,
            None => {
                self.stats.malformed += 1;
                return Forward::Done;
            }
        };
        let Some(to) = self.trunk_rtp_target() else {
            self.stats.not_ready += 1;
            return Forward::Done;
        };
        self.to_trunk.rewrite(now, &mut h);
        h.write(&mut buf[..plain]);
        let len = match self.trunk_tx.as_mut() {
            Some(tx) => match tx.protect_rtp(buf, plain) {
                Ok(n) => n,
                Err(_) => return Forward::Done,
            },
            None => plain,
        };
        self.stats.to_trunk += 1;
        Forward::Send {
            from: Socket::TrunkRtp,
            to,
            len,
        }
    }

    fn browser_rtcp(&mut self, buf: &mut [u8], len: usize) -> Forward {
        let n = translate_between(buf, len, &self.to_trunk, &self.to_browser);
        let (Some((from, to)), true) = (self.trunk_rtcp_target(), n > 0) else {
            return Forward::Done;
        };
        let len = match self.trunk_tx.as_mut() {
            Some(tx) => match tx.protect_rtcp(buf, n) {
                Ok(n) => n,
                Err(_) => return Forward::Done,
            },
            None => n,
        };
        Forward::Send { from, to, len }
    }

    fn trunk_rtp_target(&self) -> Option<SocketAddr> {
        self.trunk_latched.or(self.neg.trunk_rtp)
    }

    /// Where RTCP for the trunk goes: its RTP port with rtcp-mux, else its RTCP source or SDP port.
    fn trunk_rtcp_target(&self) -> Option<(Socket, SocketAddr)> {
        if self.neg.trunk_rtcp_mux {
            self.trunk_rtp_target().map(|t| (Socket::TrunkRtp, t))
        } else {
            self.trunk_rtcp_latched
                .or(self.neg.trunk_rtcp)
                .map(|t| (Socket::TrunkRtcp, t))
        }
    }

    /// A datagram arrived on one of the trunk ports (`rtcp_port` says which).
    pub fn from_trunk(
        &mut self,
        now: Instant,
        from: SocketAddr,
        rtcp_port: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Forward {
        let Some(p) = buf.get(..len) else {
            return Forward::Done;
        };
        let rtcp = rtcp_port || is_rtcp(p);
        // Symmetric RTP: latch onto the first source (RFC 4961), and only then accept from it.
        if !rtcp {
            match self.trunk_latched {
                None => {
                    if RtpHeader::parse(p).is_none() {
                        self.stats.malformed += 1;
                        return Forward::Done;
                    }
                    self.trunk_latched = Some(from);
                    self.events.push_back(MediaEvent::TrunkLatched(from));
                }
                Some(l) if l != from => {
                    self.stats.wrong_source += 1;
                    return Forward::Done;
                }
                Some(_) => {}
            }
        } else if self.trunk_rtcp_latched.is_none() && rtcp_port {
            self.trunk_rtcp_latched = Some(from);
        }
        let plain = match self.trunk_rx.as_mut() {
            Some(rx) => {
                let r = if rtcp {
                    rx.unprotect_rtcp(&mut buf[..len])
                } else {
                    rx.unprotect_rtp(&mut buf[..len])
                };
                match r {
                    Ok(n) => n,
                    Err(_) => {
                        self.stats.srtp_rejected += 1;
                        return Forward::Done;
                    }
                }
            }
            None => len,
        };
        let Some(tx) = self.browser_tx.as_mut() else {
            // Nothing goes to the browser before DTLS completes.
            self.stats.not_ready += 1;
            return Forward::Done;
        };
        let Some(to) = self.ice.remote(now) else {
            self.stats.not_ready += 1;
            return Forward::Done;
        };
        if rtcp {
            let n = translate_between(buf, plain, &self.to_browser, &self.to_trunk);
            if n == 0 {
                return Forward::Done;
            }
            return match tx.protect_rtcp(buf, n) {
                Ok(len) => {
                    self.rtcp_due.0 = self.rtcp_interval(now);
                    Forward::Send {
                        from: Socket::Browser,
                        to,
                        len,
                    }
                }
                Err(_) => Forward::Done,
            };
        }
        self.last_from_trunk = now;
        let Some(mut h) = RtpHeader::parse(&buf[..plain]) else {
            self.stats.malformed += 1;
            return Forward::Done;
        };
        self.trunk_loss.observe(h.ssrc, h.seq);
        // While we generate a telephone-event toward the browser, the trunk's audio is suppressed.
        if !self.dtmf_to_browser.is_empty() || !self.neg.browser_direction.sends() {
            self.stats.not_ready += 1;
            return Forward::Done;
        }
        h.pt = match map_pt(&self.neg, h.pt, false) {
            Some(pt) => pt,
            None => {
                self.stats.malformed += 1;
                return Forward::Done;
            }
        };
        self.to_browser.rewrite(now, &mut h);
        h.write(&mut buf[..plain]);
        match tx.protect_rtp(buf, plain) {
            Ok(len) => {
                self.stats.to_browser += 1;
                Forward::Send {
                    from: Socket::Browser,
                    to,
                    len,
                }
            }
            Err(_) => Forward::Done,
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        [
            self.dtls.poll_timeout(),
            self.dtmf.front().and_then(DtmfSender::next_at),
            self.dtmf_to_browser.front().and_then(DtmfSender::next_at),
            (!self.consent_reported)
                .then(|| self.ice.consent_deadline())
                .flatten(),
            self.dtls_deadline,
            Some(self.idle_deadline().0),
            Some(self.rtcp_due.0.min(self.rtcp_due.1)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When silence becomes inactivity, and on which leg. A leg is watched while its direction lets it
    /// send to us; when neither may (both on hold), the call is idle once neither leg sent for the
    /// hold timeout.
    fn idle_deadline(&self) -> (Instant, Leg) {
        let watched = [
            (self.neg.browser_direction, self.last_from_browser, Leg::Browser),
            (self.neg.trunk_direction, self.last_from_trunk, Leg::Trunk),
        ];
        watched
            .iter()
            .filter(|(direction, _, _)| direction.receives())
            .map(|&(_, last, leg)| (last + self.config.inactivity_timeout, leg))
            .min_by_key(|&(at, _)| at)
            .unwrap_or_else(|| {
                let last = self.last_from_browser.max(self.last_from_trunk);
                (last + self.config.hold_timeout, Leg::Browser)
            })
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.dtls_failed(&e);
        }
        self.flush_dtls();
        // Telephone-events toward each leg (toward the browser only once DTLS is up).
        let events = self.neg.telephone_event;
        match (events, self.trunk_latched.or(self.neg.trunk_rtp)) {
            (Some((_, pt, _)), Some(to)) => play_events(
                now,
                &mut self.dtmf,
                (pt, &mut self.to_trunk, self.trunk_tx.as_mut()),
                (Socket::TrunkRtp, to),
                &mut self.transmits,
            ),
            _ => self.dtmf.clear(),
        }
        match (events, self.ice.remote(now), self.browser_tx.as_mut()) {
            (Some((pt, _, _)), Some(to), Some(tx)) => play_events(
                now,
                &mut self.dtmf_to_browser,
                (pt, &mut self.to_browser, Some(tx)),
                (Socket::Browser, to),
                &mut self.transmits,
            ),
            _ => self.dtmf_to_browser.clear(),
        }
        self.own_rtcp(now);
        if self.dtls_deadline.is_some_and(|d| now >= d) && !self.is_secure() {
            self.dtls_failed(&DtlsError::Handshake(format!(
                "no DTLS handshake within {} s of ICE",
                DTLS_DEADLINE.as_secs()
            )));
        }
        if !self.consent_reported && self.ice.consent_deadline().is_some_and(|d| now >= d) {
            self.consent_reported = true;
            self.ended = true;
            self.events.push_back(MediaEvent::ConsentExpired);
        }
        let (deadline, leg) = self.idle_deadline();
        if !self.ended && now >= deadline {
            let last = match leg {
                Leg::Browser => &mut self.last_from_browser,
                Leg::Trunk => &mut self.last_from_trunk,
            };
            let idle = now.saturating_duration_since(*last);
            // Counted afresh: if the call core lets the call live (it rings), it hears again later.
            *last = now;
            self.events.push_back(MediaEvent::Inactive { leg, idle });
        }
    }

    fn with_rtcp_schedule(mut self, now: Instant) -> Self {
        self.rtcp_due = (self.rtcp_interval(now), self.rtcp_interval(now));
        self
    }

    /// `now` plus RFC 3550 §6.3.1's randomised interval (0.5-1.5 × [`RTCP_INTERVAL`]), drawn from the
    /// session's random SSRCs and a counter (the core has no randomness source), so that calls set up
    /// together do not all report at once.
    fn rtcp_interval(&mut self, now: Instant) -> Instant {
        self.rtcp_draws += 1;
        let seed = (u64::from(self.config.ssrcs.0) << 32) | u64::from(self.config.ssrcs.1);
        // splitmix64's finaliser over the seed and the draw.
        let mut x = seed ^ self.rtcp_draws.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        now + Duration::from_millis(RTCP_INTERVAL_MS / 2 + x % RTCP_INTERVAL_MS)
    }

    /// Our own receiver report to each leg that had no RTCP from us for [`RTCP_INTERVAL`] (a peer that
    /// sends none, or a leg on hold): what we receive on that leg, from the SSRC we send it. A leg that
    /// cannot be sent to yet (no DTLS, no trunk address) waits another interval.
    fn own_rtcp(&mut self, now: Instant) {
        // Taken for the reports and put back (the schedule below borrows the session).
        let cname = std::mem::take(&mut self.cname);
        let mut out = [0u8; 320];
        if now >= self.rtcp_due.0 {
            self.rtcp_due.0 = self.rtcp_interval(now);
            if let (Some(tx), Some(to)) = (self.browser_tx.as_mut(), self.ice.remote(now)) {
                let block = self.browser_loss.report_block();
                let n = own_report(&mut out, self.to_browser.ssrc(), block, &cname);
                if let Some(bytes) = sealed(&out[..n], Some(tx), true) {
                    self.transmits.push_back(Transmit {
                        from: Socket::Browser,
                        to,
                        bytes,
                    });
                }
            }
        }
        if now >= self.rtcp_due.1 {
            self.rtcp_due.1 = self.rtcp_interval(now);
            if let Some((from, to)) = self.trunk_rtcp_target() {
                let block = self.trunk_loss.report_block();
                let n = own_report(&mut out, self.to_trunk.ssrc(), block, &cname);
                if let Some(bytes) = sealed(&out[..n], self.trunk_tx.as_mut(), true) {
                    self.transmits.push_back(Transmit { from, to, bytes });
                }
            }
        }
        self.cname = cname;
    }

    /// The next datagram the session generated.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the call core.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }
}

/// Translates an RTCP compound from one leg for the other: its sender becomes our stream `out`'s SSRC
/// (SR timestamps moved onto that stream's line), and its reports about `back` — our stream toward the
/// sender — name the source `back` carries instead. Returns the new length (0: nothing to send).
/// Sends what is due of `queue`'s telephone-events on `stream` (with `pt`, protected by `tx` when the
/// leg has SRTP) from `socket` to `to`; finished events leave the queue.
fn play_events(
    now: Instant,
    queue: &mut VecDeque<DtmfSender>,
    (pt, stream, mut tx): (u8, &mut Rewriter, Option<&mut SrtpContext>),
    (from, to): (Socket, SocketAddr),
    transmits: &mut VecDeque<Transmit>,
) {
    while let Some(sender) = queue.front_mut() {
        let mut out = [0u8; 16];
        if let Some(n) = sender.poll(now, pt, stream, &mut out)
            && let Some(bytes) = sealed(&out[..n], tx.as_deref_mut(), false)
        {
            transmits.push_back(Transmit { from, to, bytes });
        }
        match sender.next_at() {
            None => {
                queue.pop_front();
            }
            Some(t) if t <= now => {}
            Some(_) => break,
        }
    }
}

/// A packet we generated, as it leaves on a leg: protected with `tx` when the leg has SRTP (`rtcp`:
/// as SRTCP); `None` if protection fails.
fn sealed(plain: &[u8], tx: Option<&mut SrtpContext>, rtcp: bool) -> Option<Vec<u8>> {
    // Room for the longest SRTP/SRTCP trailer (index and tag).
    let mut bytes = vec![0u8; plain.len() + 32];
    bytes[..plain.len()].copy_from_slice(plain);
    let len = match tx {
        Some(tx) if rtcp => tx.protect_rtcp(&mut bytes, plain.len()).ok()?,
        Some(tx) => tx.protect_rtp(&mut bytes, plain.len()).ok()?,
        None => plain.len(),
    };
    bytes.truncate(len);
    Some(bytes)
}

/// The payload type on the other leg for `pt` received on one (`toward_trunk`: from the browser):
/// the codec, an alternative at the codec's clock rate, or telephone-event. Never allocates.
fn map_pt(neg: &Negotiated, pt: u8, toward_trunk: bool) -> Option<u8> {
    let rate = neg.codec.0;
    std::iter::once(neg.codec)
        .chain(neg.alternatives.iter().copied().filter(|c| c.0 == rate))
        .map(|(_, browser, trunk)| (browser, trunk))
        .chain(neg.telephone_event.map(|(browser, trunk, _)| (browser, trunk)))
        .find_map(|(browser, trunk)| {
            if toward_trunk {
                (pt == browser).then_some(trunk)
            } else {
                (pt == trunk).then_some(browser)
            }
        })
}

fn translate_between(buf: &mut [u8], len: usize, out: &Rewriter, back: &Rewriter) -> usize {
    let Some(sender) = buf
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return 0;
    };
    translate_rtcp(
        buf,
        len,
        sender,
        out.ssrc(),
        Some(back.ssrc()),
        back.source().unwrap_or(0),
        |ts| out.map_ts(ts),
    )
}

fn sdes_contexts(sdes: Option<&(Profile, Vec<u8>, Vec<u8>)>) -> (Option<SrtpContext>, Option<SrtpContext>) {
    let Some((profile, ours, theirs)) = sdes else {
        return (None, None);
    };
    let k = profile.key_len();
    let ctx = |m: &[u8]| SrtpContext::new(*profile, m.get(..k)?, m.get(k..)?);
    (ctx(ours), ctx(theirs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{dimpl_peer, dtls_handshake, stun_request};

    const BROWSER: &str = "192.0.2.10:50000";
    const TRUNK: &str = "198.51.100.20:4000";

    /// A browser made of independent parts: rtc-stun checks, dimpl DTLS, and SRTP keyed from dimpl's
    /// exported material.
    struct Browser {
        addr: SocketAddr,
        dtls: dimpl::Dtls,
        tx: Option<SrtpContext>,
        rx: Option<SrtpContext>,
        seq: u16,
    }

    struct Call {
        now: Instant,
        gw: MediaSession,
        browser: Browser,
        events: Vec<MediaEvent>,
    }

    fn neg(fingerprint: Vec<u8>) -> Negotiated {
        Negotiated {
            browser_ufrag: "brws".into(),
            browser_fingerprint: (FingerprintHash::Sha256, fingerprint),
            dtls_role: DtlsRole::Server,
            trunk_rtp: Some(TRUNK.parse().unwrap()),
            trunk_rtcp: Some("198.51.100.20:4001".parse().unwrap()),
            trunk_rtcp_mux: false,
            trunk_sdes: None,
            codec: (8000, 0, 0),
            alternatives: Vec::new(),
            telephone_event: Some((126, 101, 8000)),
            browser_direction: Direction::SendRecv,
            trunk_direction: Direction::SendRecv,
            ptime: Duration::from_millis(20),
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            ice_ufrag: "gwu".into(),
            ice_pwd: "gw-password-0123456789".into(),
            ssrcs: (0xb0b0_b0b0, 0x7070_7070),
            initial_seqs: (1000, 2000),
            inactivity_timeout: Duration::from_secs(60),
            hold_timeout: Duration::from_secs(3600),
        }
    }

    impl Call {
        fn new() -> Self {
            Self::with(|_| {})
        }

        /// A call whose negotiated parameters `change` adjusts first.
        fn with(change: impl FnOnce(&mut Negotiated)) -> Self {
            let now = crate::test_epoch();
            let (dtls, fp) = dimpl_peer(true, now);
            let identity = DtlsIdentity::generate().unwrap();
            let mut negotiated = neg(fp);
            change(&mut negotiated);
            let gw = MediaSession::new(now, &identity, config(), negotiated).unwrap();
            let browser = Browser {
                addr: BROWSER.parse().unwrap(),
                dtls,
                tx: None,
                rx: None,
                seq: 7,
            };
            Self {
                now,
                gw,
                browser,
                events: Vec::new(),
            }
        }

        fn drain(&mut self) -> Vec<Transmit> {
            while let Some(e) = self.gw.poll_event() {
                self.events.push(e);
            }
            std::iter::from_fn(|| self.gw.poll_transmit()).collect()
        }

        /// ICE check with USE-CANDIDATE, then the DTLS handshake (the browser is the client).
        fn connect(&mut self) {
            let mut req = stun_request("gwu:brws", "gw-password-0123456789", true);
            let n = req.len();
            req.resize(1500, 0);
            assert_eq!(
                self.gw.from_browser(self.now, self.browser.addr, &mut req, n),
                Forward::Done
            );
            let t = self.drain();
            assert_eq!(t.len(), 1, "one STUN response");
            assert!(self.events.contains(&MediaEvent::IceConnected(self.browser.addr)));
            let ((tx, rx), events) =
                dtls_handshake(&mut self.gw, self.now, self.browser.addr, &mut self.browser.dtls);
            self.events.extend(events);
            self.browser.tx = Some(tx);
            self.browser.rx = Some(rx);
        }

        fn consent_check(&mut self) {
            let mut req = stun_request("gwu:brws", "gw-password-0123456789", false);
            let n = req.len();
            req.resize(1500, 0);
            self.gw.from_browser(self.now, self.browser.addr, &mut req, n);
        }

        /// The browser sends one SRTP packet; returns what the gateway sends to the trunk.
        fn browser_sends(&mut self, pt: u8, payload: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
            self.browser.seq = self.browser.seq.wrapping_add(1);
            let mut buf = vec![0u8; 1500];
            let h = RtpHeader {
                marker: false,
                pt,
                seq: self.browser.seq,
                ts: u32::from(self.browser.seq) * 160,
                ssrc: 0xb505,
            };
            buf[0] = 0x80;
            h.write(&mut buf);
            buf[12..12 + payload.len()].copy_from_slice(payload);
            let n = self
                .browser
                .tx
                .as_mut()
                .unwrap()
                .protect_rtp(&mut buf, 12 + payload.len())
                .unwrap();
            match self.gw.from_browser(self.now, self.browser.addr, &mut buf, n) {
                Forward::Send {
                    from: Socket::TrunkRtp,
                    to,
                    len,
                } => Some((to, buf[..len].to_vec())),
                Forward::Send { .. } => panic!("wrong socket"),
                Forward::Done => None,
            }
        }

        /// The trunk sends one RTP packet; returns the plain RTP the browser decrypts, if any.
        fn trunk_sends(&mut self, from: SocketAddr, h: RtpHeader, payload: &[u8]) -> Option<Vec<u8>> {
            let mut buf = vec![0u8; 1500];
            buf[0] = 0x80;
            h.write(&mut buf);
            buf[12..12 + payload.len()].copy_from_slice(payload);
            match self
                .gw
                .from_trunk(self.now, from, false, &mut buf, 12 + payload.len())
            {
                Forward::Send {
                    from: Socket::Browser,
                    to,
                    len,
                } => {
                    assert_eq!(to, self.browser.addr);
                    let mut p = buf[..len].to_vec();
                    let n = self
                        .browser
                        .rx
                        .as_mut()
                        .unwrap()
                        .unprotect_rtp(&mut p)
                        .expect("browser accepts it");
                    Some(p[..n].to_vec())
                }
                Forward::Send { .. } => panic!("wrong socket"),
                Forward::Done => None,
            }
        }
    }

    fn trunk() -> SocketAddr {
        TRUNK.parse().unwrap()
    }

    /// The trunk's PCMU packet `seq` (SSRC 0x5151, 20 ms apart).
    fn trunk_pcmu(seq: u16) -> RtpHeader {
        RtpHeader {
            marker: false,
            pt: 0,
            seq,
            ts: u32::from(seq) * 160,
            ssrc: 0x5151,
        }
    }

    #[test]
    fn bridges_dtls_srtp_to_rtp_both_ways() {
        let mut c = Call::new();
        // Before DTLS: nothing reaches the browser (the trunk, behind NAT, sends from elsewhere than
        // its SDP says; its first packet latches that source).
        let nat: SocketAddr = "203.0.113.5:30000".parse().unwrap();
        let early = RtpHeader {
            marker: false,
            pt: 0,
            seq: 1,
            ts: 0,
            ssrc: 0x5151,
        };
        let mut buf = vec![0u8; 1500];
        buf[0] = 0x80;
        early.write(&mut buf);
        assert_eq!(c.gw.from_trunk(c.now, nat, false, &mut buf, 172), Forward::Done);
        assert_eq!(c.gw.stats().not_ready, 1);
        c.connect();
        assert!(c.events.iter().any(|e| matches!(e, MediaEvent::DtlsConnected(_))));
        // Browser → trunk: PCMU, decrypted, our SSRC, mapped PT.
        let (to, p) = c.browser_sends(0, &[0xd5; 160]).unwrap();
        assert_eq!(to, nat, "media goes where the trunk's packets come from");
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!((h.pt, h.ssrc, h.seq), (0, 0x7070_7070, 2001));
        assert_eq!(&p[12..], &[0xd5; 160]);
        // telephone-event PT mapped 126 → 101; an unnegotiated PT is dropped.
        assert_eq!(
            RtpHeader::parse(&c.browser_sends(126, &[1, 0, 0, 160]).unwrap().1)
                .unwrap()
                .pt,
            101
        );
        assert!(c.browser_sends(111, &[0; 40]).is_none());
        // Trunk → browser from the latched address; other sources refused (symmetric RTP).
        c.now += Duration::from_millis(20);
        let got = c
            .trunk_sends(
                nat,
                RtpHeader {
                    marker: false,
                    pt: 0,
                    seq: 77,
                    ts: 1234,
                    ssrc: 0x5151,
                },
                &[0xff; 160],
            )
            .unwrap();
        let h = RtpHeader::parse(&got).unwrap();
        assert_eq!((h.pt, h.ssrc, h.seq), (0, 0xb0b0_b0b0, 1001));
        assert_eq!(&got[12..], &[0xff; 160]);
        c.drain();
        assert!(c.events.contains(&MediaEvent::TrunkLatched(nat)));
        assert!(
            c.trunk_sends(
                trunk(),
                RtpHeader {
                    marker: false,
                    pt: 0,
                    seq: 78,
                    ts: 1394,
                    ssrc: 0x5151
                },
                &[0; 160]
            )
            .is_none()
        );
        // Browser media now follows the latched trunk address.
        assert_eq!(c.browser_sends(0, &[0; 160]).unwrap().0, nat);
        assert_eq!(c.gw.stats().wrong_source, 1);
    }

    #[test]
    fn a_peer_may_switch_to_an_alternative_codec_at_the_same_clock_rate() {
        // Answered PCMU first, PCMA (browser PT 8, trunk PT 18 by the trunk's numbering) and G.722
        // as alternatives, and Opus at 48 kHz, which cannot share the call's timestamp line.
        let mut c = Call::with(|n| {
            n.alternatives = vec![(8000, 8, 18), (8000, 9, 9), (48_000, 111, 96)];
        });
        c.connect();
        let pt_to_trunk = |c: &mut Call, pt| {
            c.browser_sends(pt, &[0x55; 160])
                .map(|(_, p)| RtpHeader::parse(&p).unwrap().pt)
        };
        assert_eq!(pt_to_trunk(&mut c, 0), Some(0));
        assert_eq!(
            pt_to_trunk(&mut c, 8),
            Some(18),
            "PCMA mapped to the trunk's number"
        );
        assert_eq!(pt_to_trunk(&mut c, 9), Some(9));
        assert_eq!(
            pt_to_trunk(&mut c, 111),
            None,
            "another clock rate is not bridged"
        );
        assert_eq!(
            pt_to_trunk(&mut c, 96),
            None,
            "the trunk's number means nothing from the browser"
        );
        assert_eq!(c.gw.stats().malformed, 2);
        // The trunk switches to PCMA mid-stream: same SSRC line, continuous sequence toward the browser.
        let mut seqs = Vec::new();
        for (i, pt) in (0u16..).zip([0u8, 18, 18, 0]) {
            c.now += Duration::from_millis(20);
            let got = c
                .trunk_sends(
                    trunk(),
                    RtpHeader {
                        marker: false,
                        pt,
                        seq: 500 + i,
                        ts: 8000 + 160 * u32::from(i),
                        ssrc: 0x7777,
                    },
                    &[0x11; 160],
                )
                .expect("forwarded");
            let h = RtpHeader::parse(&got).unwrap();
            seqs.push((h.pt, h.seq, h.ts));
            assert_eq!(h.ssrc, 0xb0b0_b0b0);
        }
        let pts: Vec<u8> = seqs.iter().map(|s| s.0).collect();
        assert_eq!(pts, [0, 8, 8, 0], "trunk PT 18 reaches the browser as its PT 8");
        assert!(
            seqs.windows(2)
                .all(|w| w[1].1 == w[0].1.wrapping_add(1) && w[1].2 == w[0].2.wrapping_add(160)),
            "one continuous stream across the switch: {seqs:?}"
        );
        let dropped = c.gw.stats().malformed;
        assert!(
            c.trunk_sends(
                trunk(),
                RtpHeader {
                    marker: false,
                    pt: 96,
                    seq: 504,
                    ts: 8640,
                    ssrc: 0x7777
                },
                &[0; 80]
            )
            .is_none()
        );
        assert_eq!(c.gw.stats().malformed, dropped + 1);
    }

    #[test]
    fn rtcp_is_translated_and_a_leg_without_any_gets_our_own_reports() {
        use crate::rtp::tests::parse_own_report;
        let mut c = Call::new();
        c.connect();
        c.drain();
        let rtcp_port: SocketAddr = "198.51.100.20:4001".parse().unwrap();
        // RTP both ways; the trunk's seq 11 is lost.
        for _ in 0..3 {
            c.browser_sends(0, &[0; 160]).unwrap();
        }
        for seq in [10u16, 12, 13] {
            c.trunk_sends(trunk(), trunk_pcmu(seq), &[0; 160]).unwrap();
        }
        // The browser's SR reaches the trunk translated: our SSRC toward the trunk, the block about
        // the trunk's source kept on the trunk's own SSRC (what the trunk sent is what it asks about).
        let mut sr = vec![
            0x81, 200, 0, 12, 0, 0, 0xb5, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 100, 0, 0, 0, 3, 0, 0, 0x01,
            0xe0, 0xb0, 0xb0, 0xb0, 0xb0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let n = sr.len();
        sr.resize(1500, 0);
        let n = c.browser.tx.as_mut().unwrap().protect_rtcp(&mut sr, n).unwrap();
        c.now += Duration::from_secs(1);
        let Forward::Send { from, to, len } = c.gw.from_browser(c.now, c.browser.addr, &mut sr, n) else {
            panic!("the browser's SR is forwarded");
        };
        assert_eq!((from, to), (Socket::TrunkRtcp, rtcp_port));
        assert_eq!((sr[1], &sr[4..8]), (200, &0x7070_7070u32.to_be_bytes()[..]));
        assert_eq!(&sr[28..32], &0x5151u32.to_be_bytes());
        assert_eq!(len, 52, "plain RTCP toward a trunk without SDES");
        // Each leg that had no RTCP from us gets our own receiver report, 2.5-7.5 s apart (RFC 3550's
        // randomised interval): the browser leg about the browser's stream, the trunk leg about the
        // trunk's, with its one loss in four.
        let t0 = c.now - Duration::from_secs(1);
        let (mut to_browser, mut to_trunk) = (Vec::new(), Vec::new());
        while to_browser.len() < 4 || to_trunk.len() < 4 {
            c.now = c.gw.poll_timeout().unwrap();
            c.gw.handle_timeout(c.now);
            for t in c.drain() {
                match t.from {
                    Socket::Browser => to_browser.push((c.now, t)),
                    _ => to_trunk.push((c.now, t)),
                }
            }
            assert!(c.now < t0 + Duration::from_secs(60), "reports stopped");
        }
        let half = RTCP_INTERVAL / 2;
        for (times, first_from) in [(&to_browser, t0), (&to_trunk, t0 + Duration::from_secs(1))] {
            let mut last = first_from;
            let mut gaps = Vec::new();
            for (at, _) in times.iter() {
                let gap = *at - last;
                assert!(gap >= half && gap <= RTCP_INTERVAL + half, "{gap:?}");
                gaps.push(gap);
                last = *at;
            }
            gaps.dedup();
            assert!(gaps.len() > 1, "randomised, not periodic: {gaps:?}");
        }
        let mut p = to_browser[0].1.bytes.clone();
        assert_eq!(to_browser[0].1.to, c.browser.addr);
        let n = c
            .browser
            .rx
            .as_mut()
            .unwrap()
            .unprotect_rtcp(&mut p)
            .expect("SRTCP the browser accepts");
        let (sender, blocks, (_, cname)) = parse_own_report(&p[..n]);
        assert_eq!(sender, 0xb0b0_b0b0, "from the SSRC the browser receives");
        assert_eq!(blocks, [(0xb505, 0, 0, u32::from(c.browser.seq))]);
        assert!(cname.ends_with("@rtc-edge"));
        assert_eq!(
            (to_trunk[0].1.from, to_trunk[0].1.to),
            (Socket::TrunkRtcp, rtcp_port)
        );
        let (sender, blocks, _) = parse_own_report(&to_trunk[0].1.bytes);
        assert_eq!(sender, 0x7070_7070);
        assert_eq!(blocks, [(0x5151, 64, 1, 13)]);
        let (_, blocks, _) = parse_own_report(&to_trunk[1].1.bytes);
        assert_eq!(blocks, [(0x5151, 0, 1, 13)], "nothing lost since the last report");
        // The trunk's own RR, translated toward the browser, holds our next report to it back.
        let mut rr = vec![
            0x81, 201, 0, 7, 0, 0, 0x51, 0x51, 0x70, 0x70, 0x70, 0x70, 0, 0, 0, 0, 0, 0, 0x07, 0xd3, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let n = rr.len();
        rr.resize(1500, 0);
        let Forward::Send { from, to, len } = c.gw.from_trunk(c.now, rtcp_port, true, &mut rr, n) else {
            panic!("the trunk's RR is forwarded");
        };
        assert_eq!((from, to), (Socket::Browser, c.browser.addr));
        let n = c
            .browser
            .rx
            .as_mut()
            .unwrap()
            .unprotect_rtcp(&mut rr[..len])
            .unwrap();
        assert_eq!(
            &rr[4..8],
            &0xb0b0_b0b0u32.to_be_bytes(),
            "our SSRC toward the browser"
        );
        assert_eq!(
            &rr[8..12],
            &0xb505u32.to_be_bytes(),
            "the report is about the browser's stream"
        );
        assert_eq!(n, 32);
        let forwarded = c.now;
        while c.now < forwarded + half {
            c.now = c.gw.poll_timeout().unwrap().max(c.now + Duration::from_millis(1));
            c.gw.handle_timeout(c.now);
            let sent = c.drain();
            assert!(
                sent.iter()
                    .all(|t| t.from != Socket::Browser || c.now >= forwarded + half),
                "our report to the browser so soon after the trunk's"
            );
        }
    }

    #[test]
    fn continuity_across_hold_and_a_new_source_keeps_the_browsers_srtp_happy() {
        let mut c = Call::new();
        c.connect();
        let mut last = None;
        for i in 0..50u16 {
            c.now += Duration::from_millis(20);
            let got = c.trunk_sends(
                trunk(),
                RtpHeader {
                    marker: false,
                    pt: 0,
                    seq: 65_500u16.wrapping_add(i),
                    ts: u32::from(i) * 160,
                    ssrc: 0xaaaa,
                },
                &[1; 160],
            );
            last = Some(RtpHeader::parse(&got.unwrap()).unwrap());
        }
        // Hold for 20 minutes (re-INVITE sendonly/inactive), then resume with a new SSRC whose
        // numbers are far away: a naive relay would make the browser see a replay or a ROC jump.
        let mut held = neg(c.gw.neg.browser_fingerprint.1.clone());
        held.browser_direction = Direction::Inactive;
        held.trunk_direction = Direction::Inactive;
        let identity = DtlsIdentity::generate().unwrap();
        c.gw.update(c.now, &identity, held.clone()).unwrap();
        // The browser keeps consent alive during the hold (Chrome checks every few seconds).
        for _ in 0..240 {
            c.now += Duration::from_secs(5);
            c.consent_check();
            c.gw.handle_timeout(c.now);
            c.drain();
        }
        assert!(
            !c.events.iter().any(|e| matches!(e, MediaEvent::Inactive { .. })),
            "hold uses the hold timeout"
        );
        let mut resumed = held;
        resumed.browser_direction = Direction::SendRecv;
        resumed.trunk_direction = Direction::SendRecv;
        // The re-offer tries to flip the DTLS role: it is kept.
        resumed.dtls_role = DtlsRole::Client;
        c.gw.update(c.now, &identity, resumed).unwrap();
        assert_eq!(c.gw.dtls.role(), DtlsRole::Server);
        assert!(
            c.gw.is_secure(),
            "same fingerprint: same DTLS association, same keys"
        );
        let got = c
            .trunk_sends(
                trunk(),
                RtpHeader {
                    marker: false,
                    pt: 0,
                    seq: 3,
                    ts: 999_999,
                    ssrc: 0xbbbb,
                },
                &[2; 160],
            )
            .unwrap();
        let h = RtpHeader::parse(&got).unwrap();
        let last = last.unwrap();
        assert_eq!(h.seq, last.seq.wrapping_add(1));
        assert_eq!(h.ts, last.ts.wrapping_add(1200 * 8000));
        assert!(h.marker);
        assert_eq!(c.gw.stats().srtp_rejected, 0);
    }

    #[test]
    fn info_dtmf_becomes_rfc4733_toward_the_trunk() {
        let mut c = Call::new();
        c.connect();
        c.browser_sends(0, &[0; 160]).unwrap();
        let (packets, hs) = dtmf_7(&mut c);
        assert!(hs.iter().all(|h| h.pt == 101 && h.ssrc == 0x7070_7070));
        assert_eq!(packets[0].bytes[12], 7);
        let seqs: Vec<u16> = hs.iter().map(|h| h.seq).collect();
        assert_eq!(
            seqs,
            (2002..2009).collect::<Vec<_>>(),
            "the event continues the audio stream"
        );
        // 100 ms at the event's 8 kHz clock.
        assert_eq!(event_duration(packets.last().unwrap()), 800);
    }

    #[test]
    fn info_dtmf_from_the_trunk_becomes_rfc4733_toward_the_browser() {
        let mut c = Call::new();
        c.connect();
        let audio = |c: &mut Call, seq: u16| c.trunk_sends(trunk(), trunk_pcmu(seq), &[0x33; 160]);
        let before = RtpHeader::parse(&audio(&mut c, 1).unwrap()).unwrap();
        assert!(c.gw.send_dtmf(c.now, Leg::Browser, '9', Duration::from_millis(60)));
        let mut events = Vec::new();
        let mut seq = 2;
        while let Some(t) = c.gw.poll_timeout() {
            if t > c.now + Duration::from_secs(1) {
                break;
            }
            c.now = c.now.max(t);
            c.gw.handle_timeout(c.now);
            for t in c.drain() {
                assert_eq!((t.from, t.to), (Socket::Browser, c.browser.addr));
                let mut p = t.bytes.clone();
                let n = c
                    .browser
                    .rx
                    .as_mut()
                    .unwrap()
                    .unprotect_rtp(&mut p)
                    .expect("SRTP the browser accepts");
                events.push(p[..n].to_vec());
            }
            // The trunk's audio is held back while the event plays.
            let held = audio(&mut c, seq).is_none();
            assert_eq!(
                held,
                !c.gw.dtmf_to_browser.is_empty(),
                "after {} packets",
                events.len()
            );
            seq += 1;
        }
        // 60 ms at 20 ms packets: three updates, the last of them the end, sent twice more (RFC 4733
        // §2.5.1.4).
        assert_eq!(events.len(), 5);
        let hs: Vec<RtpHeader> = events.iter().map(|p| RtpHeader::parse(p).unwrap()).collect();
        assert!(hs.iter().all(|h| h.pt == 126 && h.ssrc == 0xb0b0_b0b0), "{hs:?}");
        assert!(hs[0].marker && hs.iter().skip(1).all(|h| !h.marker));
        assert!(hs.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
        assert_eq!(
            hs[0].seq,
            before.seq.wrapping_add(1),
            "on the audio stream's sequence line"
        );
        assert!(events.iter().all(|p| p[12] == 9), "event 9");
        assert_eq!(u16::from_be_bytes([events[4][14], events[4][15]]), 480);
        assert!(
            events[2..].iter().all(|p| p[13] & 0x80 != 0),
            "end bit on the last three"
        );
        assert!(events[..2].iter().all(|p| p[13] & 0x80 == 0));
        // And audio flows again.
        assert!(audio(&mut c, seq).is_some());
        // A browser that did not take telephone-event gets none.
        let mut c = Call::with(|n| n.telephone_event = Some((u8::MAX, 101, 8000)));
        c.connect();
        assert!(
            !c.gw
                .send_dtmf(c.now, Leg::Browser, '9', Duration::from_millis(60))
        );
        assert!(c.gw.send_dtmf(c.now, Leg::Trunk, '9', Duration::from_millis(60)));
    }

    #[test]
    fn dtmf_beside_opus_counts_in_the_event_clock() {
        // Opus at 48 kHz with telephone-event/8000 (what baresip and many phones answer).
        let mut c = Call::with(|n| {
            n.codec = (48_000, 111, 96);
            n.telephone_event = Some((126, 101, 8000));
        });
        c.connect();
        c.browser_sends(111, &[0; 60]).unwrap();
        let (packets, hs) = dtmf_7(&mut c);
        assert_eq!(
            event_duration(packets.last().unwrap()),
            800,
            "8 kHz units, not 48 kHz ones"
        );
        assert!(
            hs.windows(2).all(|w| w[0].ts == w[1].ts),
            "one event, one timestamp"
        );
    }

    /// The RFC 4733 duration field of a telephone-event packet.
    fn event_duration(t: &Transmit) -> u16 {
        u16::from_be_bytes([t.bytes[14], t.bytes[15]])
    }

    /// Digit 7 for 100 ms from INFO; returns the packets sent to the trunk and their headers.
    fn dtmf_7(c: &mut Call) -> (Vec<Transmit>, Vec<RtpHeader>) {
        assert!(c.gw.send_dtmf(c.now, Leg::Trunk, '7', Duration::from_millis(100)));
        assert!(!c.gw.send_dtmf(c.now, Leg::Trunk, 'x', Duration::from_millis(100)));
        let mut packets = Vec::new();
        while let Some(t) = c.gw.poll_timeout() {
            if t > c.now + Duration::from_secs(1) {
                break;
            }
            c.now = c.now.max(t);
            c.gw.handle_timeout(c.now);
            packets.extend(c.drain());
            // Browser audio during the event is held back.
            assert!(c.browser_sends(0, &[0; 160]).is_none() || c.gw.dtmf.is_empty());
        }
        assert_eq!(packets.len(), 7);
        assert!(
            packets
                .iter()
                .all(|t| t.from == Socket::TrunkRtp && t.to == trunk())
        );
        let hs: Vec<_> = packets
            .iter()
            .map(|t| RtpHeader::parse(&t.bytes).unwrap())
            .collect();
        (packets, hs)
    }

    #[test]
    fn inactivity_ends_the_call_and_consent_expiry_stops_sending() {
        let mut c = Call::new();
        c.connect();
        c.now += Duration::from_secs(25);
        c.gw.handle_timeout(c.now);
        c.drain();
        assert!(
            c.events
                .iter()
                .all(|e| !matches!(e, MediaEvent::Inactive { .. } | MediaEvent::ConsentExpired))
        );
        // No consent checks for 30 s: we stop, and say so.
        c.now += Duration::from_secs(6);
        c.gw.handle_timeout(c.now);
        c.drain();
        assert!(c.events.contains(&MediaEvent::ConsentExpired));
        assert!(
            c.trunk_sends(
                trunk(),
                RtpHeader {
                    marker: false,
                    pt: 0,
                    seq: 1,
                    ts: 0,
                    ssrc: 1
                },
                &[0; 160]
            )
            .is_none()
        );

        let mut c = Call::new();
        c.connect();
        // Keep consent alive with checks, but send no media: inactivity after 60 s.
        for _ in 0..13 {
            c.now += Duration::from_secs(5);
            c.consent_check();
            c.gw.handle_timeout(c.now);
            c.drain();
        }
        assert!(
            c.events
                .iter()
                .any(|e| matches!(e, MediaEvent::Inactive { idle, .. } if *idle >= Duration::from_secs(60)))
        );
        assert!(!c.events.contains(&MediaEvent::ConsentExpired));
    }

    #[test]
    fn a_browser_that_checks_but_never_handshakes_fails_dtls_after_the_deadline() {
        let mut c = Call::new();
        let mut req = stun_request("gwu:brws", "gw-password-0123456789", true);
        let n = req.len();
        req.resize(1500, 0);
        c.gw.from_browser(c.now, c.browser.addr, &mut req, n);
        c.drain();
        assert!(c.events.contains(&MediaEvent::IceConnected(c.browser.addr)));
        // Consent stays fresh, but no DTLS record ever comes.
        for _ in 0..2 {
            c.now += DTLS_DEADLINE / 2 - Duration::from_millis(1);
            c.consent_check();
            c.gw.handle_timeout(c.now);
            c.drain();
        }
        assert!(!c.events.iter().any(|e| matches!(e, MediaEvent::DtlsFailed(_))));
        c.now += Duration::from_millis(2);
        assert!(c.gw.poll_timeout().is_some_and(|t| t <= c.now));
        c.gw.handle_timeout(c.now);
        c.drain();
        assert!(
            c.events
                .iter()
                .any(|e| matches!(e, MediaEvent::DtlsFailed(why) if why.contains("within 10 s of ICE"))),
            "{:?}",
            c.events
        );
        // A browser that does handshake is not affected (the deadline is cleared).
        let mut c = Call::new();
        c.connect();
        c.now += DTLS_DEADLINE * 2;
        c.consent_check();
        c.gw.handle_timeout(c.now);
        c.drain();
        assert!(!c.events.iter().any(|e| matches!(e, MediaEvent::DtlsFailed(_))));
    }

    #[test]
    fn the_browsers_close_notify_stops_media_to_it_without_failing_the_call() {
        let mut c = Call::new();
        c.connect();
        c.browser.dtls.close().unwrap();
        let mut buf = vec![0u8; 1500];
        let mut alerts = Vec::new();
        while let dimpl::Output::Packet(p) = c.browser.dtls.poll_output(&mut buf) {
            alerts.push(p.to_vec());
        }
        assert_eq!(alerts.len(), 1, "one close_notify");
        let mut alert = alerts.remove(0);
        let n = alert.len();
        alert.resize(1500, 0);
        assert_eq!(
            c.gw.from_browser(c.now, c.browser.addr, &mut alert, n),
            Forward::Done
        );
        c.drain();
        assert!(c.events.contains(&MediaEvent::DtlsClosed), "{:?}", c.events);
        assert!(!c.events.iter().any(|e| matches!(e, MediaEvent::DtlsFailed(_))));
        // The trunk's audio no longer goes to a browser that has no keys for it.
        let h = RtpHeader {
            marker: false,
            pt: 0,
            seq: 1,
            ts: 0,
            ssrc: 1,
        };
        assert!(c.trunk_sends(trunk(), h, &[0; 160]).is_none());
    }

    #[test]
    fn a_silent_trunk_is_inactive_while_the_browser_talks_but_not_while_it_holds() {
        let mut c = Call::new();
        c.connect();
        let inactive = |c: &Call| {
            c.events
                .iter()
                .filter_map(|e| match e {
                    MediaEvent::Inactive { leg, idle } => Some((*leg, idle.as_secs())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // The phone's network vanishes: the browser goes on talking, the trunk sends nothing.
        let talk = |c: &mut Call, seconds: u64| {
            for i in 0..seconds * 50 {
                c.now += Duration::from_millis(20);
                c.browser_sends(0, &[0xd5; 160]);
                if i % 250 == 0 {
                    c.consent_check();
                }
                c.gw.handle_timeout(c.now);
                c.drain();
            }
        };
        talk(&mut c, 59);
        assert_eq!(inactive(&c), []);
        talk(&mut c, 2);
        assert_eq!(inactive(&c), [(Leg::Trunk, 60)], "the silent leg is named");
        // The call core may let it live (the call still rings): it hears again after another timeout.
        talk(&mut c, 61);
        assert_eq!(inactive(&c), [(Leg::Trunk, 60), (Leg::Trunk, 60)]);

        // The browser holds (we only send toward the trunk): the trunk owes us nothing, the browser
        // (sendonly, still sending) is watched.
        let mut held = neg(c.gw.neg.browser_fingerprint.1.clone());
        held.browser_direction = Direction::RecvOnly;
        held.trunk_direction = Direction::SendOnly;
        let identity = DtlsIdentity::generate().unwrap();
        c.gw.update(c.now, &identity, held.clone()).unwrap();
        c.events.clear();
        talk(&mut c, 300);
        assert_eq!(inactive(&c), []);
        // Resumed: the trunk gets a full timeout from the resume, not from its last packet.
        let mut resumed = held;
        resumed.trunk_direction = Direction::SendRecv;
        resumed.browser_direction = Direction::SendRecv;
        c.gw.update(c.now, &identity, resumed).unwrap();
        talk(&mut c, 59);
        assert_eq!(inactive(&c), []);
        talk(&mut c, 2);
        assert_eq!(inactive(&c), [(Leg::Trunk, 60)]);
    }

    #[test]
    fn garbage_on_either_port_is_counted_not_fatal() {
        let mut c = Call::new();
        c.connect();
        let mut junk_lengths = 0;
        for first in [0u8, 2, 19, 20, 63, 64, 127, 128, 191, 192, 255] {
            for len in [0usize, 1, 11, 12, 20, 40, 200] {
                let mut buf = vec![first; 1500];
                c.gw.from_browser(c.now, c.browser.addr, &mut buf, len);
                let mut buf = vec![first; 1500];
                c.gw.from_trunk(c.now, trunk(), first >= 192, &mut buf, len);
                junk_lengths += 1;
            }
        }
        assert!(junk_lengths > 0);
        // Still working afterwards.
        assert!(c.browser_sends(0, &[0; 160]).is_some());
    }
}
