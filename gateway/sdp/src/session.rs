//! [`SdpSession`]: one call's offer/answer state on both legs.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use crate::error::{Incompatible, SdpError, malformed};
use crate::model::{Codec, CodecPolicy, Direction, DtlsRole, Fingerprint, LocalMedia, SrtpSuite, TrunkSrtp};
use crate::parse::{Media, Sdp};
use crate::plan::{BrowserPlan, CodecMapping, EventMapping, MediaPlan, SdesPlan, TrunkPlan};
use crate::read::{self, Audio, Crypto, Payload, Proto, Setup, Shape, browser_audio_problem, read_audio};
use crate::write::{AudioLine, Avp, Doc, Profile, WebRtc, Written};

/// The `a=fmtp` we write for `telephone-event`: the DTMF digits and flash (RFC 4733 §3.2).
const EVENT_FMTP: &str = "0-16";
/// The `a=crypto` tag of our SDES offers.
const OUR_CRYPTO_TAG: u32 = 1;
/// Dynamic payload types (RFC 3551 §6).
const DYNAMIC: RangeInclusive<u8> = 96..=127;
/// The unassigned range browsers also use once 96–127 are full (never 64–95: RTCP packet types
/// collide with them under rtcp-mux, RFC 5761 §4).
const UNASSIGNED: RangeInclusive<u8> = 35..=63;

/// One call's SDP state: the `o=` version and m-line layout of each leg, the payload-type numbers
/// each leg uses, our DTLS role once chosen, and the offer in flight. See the crate doc for the
/// four entry points. `Debug` shows no credential or key.
#[derive(Clone)]
pub struct SdpSession {
    local: LocalMedia,
    policy: CodecPolicy,
    browser: Leg,
    trunk: Leg,
    /// Our DTLS role, from the first completed exchange on; kept on re-offers (RFC 8842 §5.5).
    dtls_role: Option<DtlsRole>,
    /// The browser's ICE credentials and fingerprint of the last completed exchange.
    remote: Option<(String, String, Fingerprint)>,
    pending: Pending,
}

impl fmt::Debug for SdpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdpSession")
            .field("local", &self.local)
            .field("policy", &self.policy)
            .field("browser_version", &self.browser.version)
            .field("trunk_version", &self.trunk.version)
            .field("dtls_role", &self.dtls_role)
            .field("pending", &self.pending.describe())
            .finish_non_exhaustive()
    }
}

/// What we remember of one leg.
#[derive(Debug, Clone, Default)]
struct Leg {
    /// The `o=` version of the last SDP we sent on this leg (0: none yet).
    version: u64,
    /// The last SDP we sent on this leg; `None` also after an offer was cancelled, so that the next
    /// one gets a new version whatever its content.
    last_sent: Option<Vec<u8>>,
    /// The m-lines of the last exchange on this leg, and which one is the audio.
    layout: Option<(Vec<Shape>, usize)>,
    pts: PtBook,
}

impl Leg {
    /// Renders `doc` with this leg's version, bumped only when the text changes (RFC 3264 §8).
    fn stamp(&mut self, doc: &Doc<'_>) -> Vec<u8> {
        if let Some(last) = &self.last_sent
            && doc.render(self.version) == *last
        {
            return last.clone();
        }
        self.version = self.version.wrapping_add(1);
        let text = doc.render(self.version);
        self.last_sent = Some(text.clone());
        text
    }
}

/// Payload-type numbers in use on one leg: a peer's numbers, once seen, keep their meaning for the
/// rest of the call (RFC 3264 §8.3.2), and ours do not collide with them.
#[derive(Debug, Clone, Default)]
struct PtBook {
    known: Vec<(Payload, u8)>,
    /// Every number seen on this leg, including formats we do not carry (red, CN, …).
    used: u128,
}

/// The bit of a payload type in a `u128` set (0 for numbers over 127, which are never used).
fn bit(pt: u8) -> u128 {
    1u128.checked_shl(u32::from(pt)).unwrap_or(0)
}

impl PtBook {
    fn get(&self, payload: Payload) -> Option<u8> {
        self.known.iter().find(|(p, _)| *p == payload).map(|(_, pt)| *pt)
    }

    fn learn(&mut self, payload: Payload, pt: u8) {
        self.known.retain(|(p, n)| *p != payload && *n != pt);
        self.known.push((payload, pt));
        self.used |= bit(pt);
    }

    /// Learns every format of a peer's m-line: the first number of each payload we carry, and every
    /// other number as used.
    fn learn_formats(&mut self, formats: &[read::Format]) {
        for f in formats {
            match f.payload {
                Some(p) if formats.iter().find(|g| g.payload == Some(p)).map(|g| g.pt) == Some(f.pt) => {
                    self.learn(p, f.pt);
                }
                _ => self.used |= bit(f.pt),
            }
        }
    }

    /// Numbers for `wants`, in order: the number this leg already uses for the payload, else the
    /// suggestion when `valid` and free, else the first free number of `ranges`.
    fn assign(
        &self,
        wants: &[Payload],
        suggest: impl Fn(Payload) -> Option<u8>,
        valid: impl Fn(Payload, u8) -> bool,
        ranges: &[RangeInclusive<u8>],
    ) -> Vec<(Payload, u8)> {
        let mut slots: Vec<(Payload, Option<u8>)> = wants.iter().map(|p| (*p, None)).collect();
        let mut taken = 0u128;
        for (p, slot) in &mut slots {
            if let Some(pt) = self.get(*p).filter(|pt| taken & bit(*pt) == 0) {
                *slot = Some(pt);
                taken |= bit(pt);
            }
        }
        for (p, slot) in slots.iter_mut().filter(|(_, s)| s.is_none()) {
            if let Some(pt) = suggest(*p).filter(|pt| valid(*p, *pt) && (taken | self.used) & bit(*pt) == 0) {
                *slot = Some(pt);
                taken |= bit(pt);
            }
        }
        for (_, slot) in slots.iter_mut().filter(|(_, s)| s.is_none()) {
            // Prefer numbers this leg never used; if the peer used them all, only avoid our own.
            let free = |avoid: u128| {
                ranges
                    .iter()
                    .flat_map(|r| r.clone())
                    .find(|pt| avoid & bit(*pt) == 0)
            };
            let pt = free(taken | self.used)
                .or_else(|| free(taken))
                .expect("at most six payloads of ours against 29 or more dynamic numbers");
            *slot = Some(pt);
            taken |= bit(pt);
        }
        slots
            .into_iter()
            .filter_map(|(p, slot)| slot.map(|pt| (p, pt)))
            .collect()
    }
}

/// The offer in flight, if any.
#[derive(Debug, Clone, Default)]
enum Pending {
    #[default]
    None,
    /// The browser offered; we sent an offer to the trunk.
    BrowserOffered(Box<BrowserOffered>),
    /// The trunk offered; we sent an offer to the browser.
    TrunkOffered(Box<TrunkOffered>),
}

impl Pending {
    fn describe(&self) -> &'static str {
        match self {
            Pending::None => "no offer is in flight",
            Pending::BrowserOffered(_) => "the browser's offer is waiting for the trunk's answer",
            Pending::TrunkOffered(_) => "the trunk's offer is waiting for the browser's answer",
        }
    }
}

#[derive(Debug, Clone)]
struct BrowserOffered {
    offer: Audio,
    browser_layout: (Vec<Shape>, usize),
    dtls_role: DtlsRole,
    /// What we offered the trunk.
    trunk_payloads: Vec<Written>,
    trunk_layout: (Vec<Shape>, usize),
    sdes: Option<[u8; 30]>,
}

#[derive(Debug, Clone)]
struct TrunkOffered {
    offer: Audio,
    /// The trunk's direction, a `c=0.0.0.0` hold counted as "does not receive".
    direction: Direction,
    trunk_layout: (Vec<Shape>, usize),
    /// The crypto line we picked from the offer, and our key for the answer.
    crypto: Option<(Crypto, [u8; 30])>,
    /// What we offered the browser.
    browser_payloads: Vec<Written>,
    browser_layout: (Vec<Shape>, usize),
}

impl SdpSession {
    /// A session for one call. Nothing is sent until the first offer.
    pub fn new(local: LocalMedia, mut policy: CodecPolicy) -> Self {
        let mut seen = Vec::with_capacity(policy.codecs.len());
        policy.codecs.retain(|c| {
            let first = !seen.contains(c);
            seen.push(*c);
            first
        });
        SdpSession {
            local,
            policy,
            browser: Leg::default(),
            trunk: Leg::default(),
            dtls_role: None,
            remote: None,
            pending: Pending::None,
        }
    }

    /// Forgets the offer in flight (the other side refused it: 488, 491, a timeout…). The last
    /// completed exchange stays in force; the next SDP we send on the leg the offer went to carries a
    /// new `o=` version.
    pub fn cancel_offer(&mut self) {
        match std::mem::take(&mut self.pending) {
            Pending::None => {}
            Pending::BrowserOffered(_) => self.trunk.last_sent = None,
            Pending::TrunkOffered(_) => self.browser.last_sent = None,
        }
    }

    /// The browser's offer (INVITE, re-INVITE, UPDATE, or the offer in its 2xx) → the offer to send
    /// to the trunk. The trunk's answer goes to [`SdpSession::trunk_answer`].
    pub fn browser_offer(&mut self, sdp: &[u8]) -> Result<Vec<u8>, SdpError> {
        self.expect_idle("browser_offer")?;
        let parsed = Sdp::parse(sdp)?;
        let index = pick(&parsed, |m| browser_audio_problem(m).is_none())
            .ok_or_else(|| first_audio_problem(&parsed, browser_audio_problem))?;
        let offer = read_audio(&parsed, index)?;
        check_webrtc(&offer)?;
        let dtls_role = match (offer.setup, self.dtls_role) {
            (Setup::HoldConn, _) => return Err(Incompatible::DtlsRole.into()),
            (Setup::ActPass, Some(kept)) => kept,
            (Setup::ActPass | Setup::Active, _) => DtlsRole::Server,
            (Setup::Passive, _) => DtlsRole::Client,
        };
        let codecs: Vec<Codec> = self
            .policy
            .codecs
            .iter()
            .copied()
            .filter(|c| offer.find(Payload::Codec(*c)).is_some())
            .collect();
        if codecs.is_empty() {
            return Err(Incompatible::NoCommonCodec.into());
        }
        let mut wants: Vec<Payload> = codecs.iter().map(|c| Payload::Codec(*c)).collect();
        if self.policy.telephone_event {
            if codecs.iter().any(|c| c.clock_rate() == 8000) {
                wants.push(Payload::Event(8000));
            }
            if codecs.contains(&Codec::Opus) && offer.find(Payload::Event(48_000)).is_some() {
                wants.push(Payload::Event(48_000));
            }
        }
        let sdes = match self.policy.trunk_srtp {
            TrunkSrtp::Off => None,
            TrunkSrtp::Sdes => Some(self.local.sdes_key.ok_or(SdpError::MissingSdesKey)?),
        };
        let numbers = self
            .trunk
            .pts
            .assign(&wants, trunk_suggestion, trunk_valid, &[DYNAMIC]);
        let trunk_payloads = written(&numbers, |p| match p {
            Payload::Codec(Codec::Opus) => offer.find(p).and_then(|f| f.fmtp.clone()),
            _ => None,
        });
        let trunk_layout = self
            .trunk
            .layout
            .clone()
            .unwrap_or_else(|| (vec![audio_shape(Proto::Avp, None)], 0));
        let doc = Doc {
            session_id: self.local.session_id,
            layout: &trunk_layout.0,
            audio: trunk_layout.1,
            line: AudioLine {
                addr: self.local.trunk_addr,
                payloads: &trunk_payloads,
                direction: offer.direction,
            },
            profile: Profile::Avp(Avp {
                ptime_ms: self.policy.ptime_ms,
                rtcp_mux: false,
                crypto: sdes.map(|key| (OUR_CRYPTO_TAG, SrtpSuite::AesCm128HmacSha1_80, key)),
            }),
        };
        let text = self.trunk.stamp(&doc);
        let browser_layout = (shapes(&parsed)?, index);
        self.pending = Pending::BrowserOffered(Box::new(BrowserOffered {
            offer,
            browser_layout,
            dtls_role,
            trunk_payloads,
            trunk_layout,
            sdes,
        }));
        Ok(text)
    }

    /// The trunk's answer to the offer made by [`SdpSession::browser_offer`] → the answer to send to
    /// the browser, and the media plan. After an error the exchange is over (the previous plan stays).
    pub fn trunk_answer(&mut self, sdp: &[u8]) -> Result<(Vec<u8>, MediaPlan), SdpError> {
        let p = match std::mem::take(&mut self.pending) {
            Pending::BrowserOffered(p) => *p,
            other => {
                self.pending = other;
                return Err(self.out_of_order("trunk_answer"));
            }
        };
        let parsed = Sdp::parse(sdp)?;
        let audio_index = p.trunk_layout.1;
        let answer_m = answer_audio(&parsed, p.trunk_layout.0.len(), audio_index)?;
        if answer_m.port == 0 {
            return Err(Incompatible::AudioRejected.into());
        }
        let answer = read_audio(&parsed, audio_index)?;
        let sdes = match (p.sdes, answer.proto) {
            (None, Proto::Avp) => None,
            (Some(local_key), Proto::Savp) => {
                // RFC 4568 §7.1.3: the answer names the tag of the offer's line it accepts.
                let c = answer
                    .crypto
                    .iter()
                    .find(|c| c.tag == OUR_CRYPTO_TAG)
                    .ok_or(Incompatible::NoUsableCrypto)?;
                Some(SdesPlan {
                    suite: c.suite,
                    remote_key: c.key,
                    local_key,
                    tag: c.tag,
                })
            }
            (Some(_), Proto::Avp) => return Err(Incompatible::SrtpRequired.into()),
            (offered, _) => {
                let offered = if offered.is_some() {
                    Proto::Savp
                } else {
                    Proto::Avp
                };
                return Err(malformed(
                    answer.line,
                    format!(
                        "the answer's protocol {} is not the offer's {}",
                        answer_m.proto,
                        offered.as_str()
                    ),
                ));
            }
        };
        // The trunk's codecs in its order, among those we offered.
        let mut accepted: Vec<CodecMapping> = Vec::new();
        for f in &answer.formats {
            let Some(Payload::Codec(codec)) = f.payload else {
                continue;
            };
            let offered = p
                .trunk_payloads
                .iter()
                .any(|w| w.payload == Payload::Codec(codec));
            if !offered || accepted.iter().any(|m| m.codec == codec) {
                continue;
            }
            let Some(browser) = p.offer.find(Payload::Codec(codec)) else {
                continue;
            };
            accepted.push(mapping(codec, browser.pt, f.pt));
        }
        let (codec, alternatives) = split_first(accepted)?;
        let trunk_dir = held(answer.direction, &answer);
        // Events the trunk accepted at a rate of an accepted codec; the browser gets those it offered.
        let event_rates = event_rates(&codec, &alternatives);
        let trunk_events: Vec<(u32, u8)> = event_rates
            .iter()
            .filter(|r| p.trunk_payloads.iter().any(|w| w.payload == Payload::Event(**r)))
            .filter_map(|r| answer.find(Payload::Event(*r)).map(|f| (*r, f.pt)))
            .collect();
        let mut browser_payloads = Vec::new();
        for m in std::iter::once(&codec).chain(&alternatives) {
            let fmtp = match m.codec {
                Codec::Opus => answer
                    .find(Payload::Codec(Codec::Opus))
                    .and_then(|f| f.fmtp.clone()),
                _ => None,
            };
            browser_payloads.push(Written {
                pt: m.browser_pt,
                payload: Payload::Codec(m.codec),
                fmtp,
            });
        }
        for (rate, _) in &trunk_events {
            if let Some(f) = p.offer.find(Payload::Event(*rate)) {
                browser_payloads.push(Written {
                    pt: f.pt,
                    payload: Payload::Event(*rate),
                    fmtp: Some(EVENT_FMTP.into()),
                });
            }
        }
        let setup = match p.dtls_role {
            DtlsRole::Server => "passive",
            DtlsRole::Client => "active",
        };
        let doc = Doc {
            session_id: self.local.session_id,
            layout: &p.browser_layout.0,
            audio: p.browser_layout.1,
            line: AudioLine {
                addr: self.local.browser_addr,
                payloads: &browser_payloads,
                direction: trunk_dir,
            },
            profile: Profile::WebRtc(WebRtc {
                ice_ufrag: &self.local.ice_ufrag,
                ice_pwd: &self.local.ice_pwd,
                fingerprint: &self.local.fingerprint,
                setup,
                bundle: p.offer.in_bundle,
                rtcp_rsize: p.offer.rtcp_rsize,
            }),
        };
        let text = self.browser.stamp(&doc);
        let rate = chosen_event(codec.codec, trunk_events.iter().map(|(r, _)| *r));
        let telephone_event = trunk_events
            .iter()
            .find(|(r, _)| Some(*r) == rate)
            .map(|(rate, trunk_pt)| EventMapping {
                clock_rate: *rate,
                browser_pt: browser_payloads
                    .iter()
                    .find(|w| w.payload == Payload::Event(*rate))
                    .map(|w| w.pt),
                trunk_pt: *trunk_pt,
            });
        let browser_plan = self.browser_plan(&p.offer, p.dtls_role, intersect(p.offer.direction, trunk_dir));
        let trunk_plan = trunk_plan(&answer, false, intersect(trunk_dir, p.offer.direction), sdes);
        // Commit.
        self.browser.pts.learn_formats(&p.offer.formats);
        self.browser.layout = Some(p.browser_layout);
        self.trunk.layout = Some(p.trunk_layout);
        for w in &p.trunk_payloads {
            self.trunk.pts.learn(w.payload, w.pt);
        }
        self.trunk.pts.learn_formats(&answer.formats);
        self.commit_browser(&p.offer, p.dtls_role);
        Ok((
            text,
            MediaPlan {
                browser: browser_plan,
                trunk: trunk_plan,
                codec,
                alternatives,
                telephone_event,
            },
        ))
    }

    /// The trunk's offer (INVITE, re-INVITE, UPDATE, or the late offer in its 2xx) → the offer to
    /// send to the browser. The browser's answer goes to [`SdpSession::browser_answer`].
    pub fn trunk_offer(&mut self, sdp: &[u8]) -> Result<Vec<u8>, SdpError> {
        self.expect_idle("trunk_offer")?;
        let parsed = Sdp::parse(sdp)?;
        let srtp = self.policy.trunk_srtp;
        let problem = |m: &Media<'_>| trunk_audio_problem(m, srtp);
        let index =
            pick(&parsed, |m| problem(m).is_none()).ok_or_else(|| first_audio_problem(&parsed, problem))?;
        let offer = read_audio(&parsed, index)?;
        let crypto = match offer.proto {
            Proto::Savp => {
                let c = offer
                    .crypto
                    .first()
                    .cloned()
                    .ok_or(Incompatible::NoUsableCrypto)?;
                Some((c, self.local.sdes_key.ok_or(SdpError::MissingSdesKey)?))
            }
            _ => None,
        };
        let codecs: Vec<Codec> = self
            .policy
            .codecs
            .iter()
            .copied()
            .filter(|c| offer.find(Payload::Codec(*c)).is_some())
            .collect();
        if codecs.is_empty() {
            return Err(Incompatible::NoCommonCodec.into());
        }
        let mut wants: Vec<Payload> = codecs.iter().map(|c| Payload::Codec(*c)).collect();
        if self.policy.telephone_event {
            // Events at a common codec's rate; failing those, the trunk's others (see `event_rates`).
            let offered: Vec<u32> = EVENT_RATES
                .into_iter()
                .filter(|r| offer.find(Payload::Event(*r)).is_some())
                .collect();
            let matching: Vec<u32> = offered
                .iter()
                .copied()
                .filter(|r| codecs.iter().any(|c| event_rate(*c) == *r))
                .collect();
            let rates = if matching.is_empty() { offered } else { matching };
            wants.extend(rates.into_iter().map(Payload::Event));
        }
        let numbers = self.browser.pts.assign(
            &wants,
            |p| offer.find(p).map(|f| f.pt),
            browser_valid,
            &[DYNAMIC, UNASSIGNED],
        );
        let browser_payloads = written(&numbers, |p| match p {
            Payload::Codec(Codec::Opus) => offer.find(p).and_then(|f| f.fmtp.clone()),
            _ => None,
        });
        let browser_layout = self.browser.layout.clone().unwrap_or_else(|| {
            (
                vec![Shape {
                    mid: Some("0".into()),
                    ..audio_shape(Proto::Savpf, None)
                }],
                0,
            )
        });
        let direction = held(offer.direction, &offer);
        let setup = match self.dtls_role {
            Some(DtlsRole::Server) => "passive",
            Some(DtlsRole::Client) => "active",
            None => "actpass",
        };
        let doc = Doc {
            session_id: self.local.session_id,
            layout: &browser_layout.0,
            audio: browser_layout.1,
            line: AudioLine {
                addr: self.local.browser_addr,
                payloads: &browser_payloads,
                direction,
            },
            profile: Profile::WebRtc(WebRtc {
                ice_ufrag: &self.local.ice_ufrag,
                ice_pwd: &self.local.ice_pwd,
                fingerprint: &self.local.fingerprint,
                setup,
                bundle: true,
                rtcp_rsize: false,
            }),
        };
        let text = self.browser.stamp(&doc);
        let trunk_layout = (shapes(&parsed)?, index);
        self.pending = Pending::TrunkOffered(Box::new(TrunkOffered {
            offer,
            direction,
            trunk_layout,
            crypto,
            browser_payloads,
            browser_layout,
        }));
        Ok(text)
    }

    /// The browser's answer to the offer made by [`SdpSession::trunk_offer`] → the answer to send to
    /// the trunk, and the media plan. After an error the exchange is over (the previous plan stays).
    pub fn browser_answer(&mut self, sdp: &[u8]) -> Result<(Vec<u8>, MediaPlan), SdpError> {
        let p = match std::mem::take(&mut self.pending) {
            Pending::TrunkOffered(p) => *p,
            other => {
                self.pending = other;
                return Err(self.out_of_order("browser_answer"));
            }
        };
        let parsed = Sdp::parse(sdp)?;
        let audio_index = p.browser_layout.1;
        let answer_m = answer_audio(&parsed, p.browser_layout.0.len(), audio_index)?;
        if answer_m.port == 0 {
            return Err(Incompatible::AudioRejected.into());
        }
        if Proto::of(answer_m.proto) != Proto::Savpf {
            return Err(Incompatible::NotSavpf(answer_m.proto.to_owned()).into());
        }
        let answer = read_audio(&parsed, audio_index)?;
        check_webrtc(&answer)?;
        let dtls_role = match (answer.setup, self.dtls_role) {
            (Setup::ActPass, _) => {
                let line = answer_m.attr("setup").map_or(answer.line, |a| a.line);
                return Err(malformed(line, "a=setup:actpass in an answer (RFC 5763 §5)"));
            }
            (Setup::HoldConn, _)
            | (Setup::Active, Some(DtlsRole::Client))
            | (Setup::Passive, Some(DtlsRole::Server)) => {
                return Err(Incompatible::DtlsRole.into());
            }
            (Setup::Active, _) => DtlsRole::Server,
            (Setup::Passive, _) => DtlsRole::Client,
        };
        // The trunk offer's order wins; only codecs both answered.
        let mut accepted: Vec<CodecMapping> = Vec::new();
        for f in &p.offer.formats {
            let Some(Payload::Codec(codec)) = f.payload else {
                continue;
            };
            let offered = p
                .browser_payloads
                .iter()
                .any(|w| w.payload == Payload::Codec(codec));
            if !offered || accepted.iter().any(|m| m.codec == codec) {
                continue;
            }
            if let Some(b) = answer.find(Payload::Codec(codec)) {
                accepted.push(mapping(codec, b.pt, f.pt));
            }
        }
        let (codec, alternatives) = split_first(accepted)?;
        let rates = event_rates(&codec, &alternatives);
        let mut trunk_payloads = Vec::new();
        for m in std::iter::once(&codec).chain(&alternatives) {
            let fmtp = match m.codec {
                Codec::Opus => answer
                    .find(Payload::Codec(Codec::Opus))
                    .and_then(|f| f.fmtp.clone()),
                _ => None,
            };
            trunk_payloads.push(Written {
                pt: m.trunk_pt,
                payload: Payload::Codec(m.codec),
                fmtp,
            });
        }
        for rate in &rates {
            let offered = p
                .browser_payloads
                .iter()
                .any(|w| w.payload == Payload::Event(*rate));
            if let (true, Some(f)) = (offered, p.offer.find(Payload::Event(*rate))) {
                trunk_payloads.push(Written {
                    pt: f.pt,
                    payload: Payload::Event(*rate),
                    fmtp: Some(EVENT_FMTP.into()),
                });
            }
        }
        let doc = Doc {
            session_id: self.local.session_id,
            layout: &p.trunk_layout.0,
            audio: p.trunk_layout.1,
            line: AudioLine {
                addr: self.local.trunk_addr,
                payloads: &trunk_payloads,
                direction: answer.direction,
            },
            profile: Profile::Avp(Avp {
                ptime_ms: self.policy.ptime_ms,
                rtcp_mux: p.offer.rtcp_mux,
                crypto: p.crypto.as_ref().map(|(c, key)| (c.tag, c.suite, *key)),
            }),
        };
        let text = self.trunk.stamp(&doc);
        let events = trunk_payloads.iter().filter_map(|w| match w.payload {
            Payload::Event(rate) => Some((rate, w.pt)),
            Payload::Codec(_) => None,
        });
        let rate = chosen_event(codec.codec, events.clone().map(|(r, _)| r));
        let telephone_event = events
            .clone()
            .find(|(r, _)| Some(*r) == rate)
            .map(|(rate, trunk_pt)| EventMapping {
                clock_rate: rate,
                browser_pt: answer.find(Payload::Event(rate)).map(|f| f.pt),
                trunk_pt,
            });
        let sdes = p.crypto.as_ref().map(|(c, local_key)| SdesPlan {
            suite: c.suite,
            remote_key: c.key,
            local_key: *local_key,
            tag: c.tag,
        });
        let browser_plan = self.browser_plan(&answer, dtls_role, intersect(answer.direction, p.direction));
        let trunk_plan = trunk_plan(
            &p.offer,
            p.offer.rtcp_mux,
            intersect(p.direction, answer.direction),
            sdes,
        );
        // Commit.
        for w in &p.browser_payloads {
            self.browser.pts.learn(w.payload, w.pt);
        }
        self.browser.pts.learn_formats(&answer.formats);
        self.browser.layout = Some(p.browser_layout);
        self.trunk.pts.learn_formats(&p.offer.formats);
        self.trunk.layout = Some(p.trunk_layout);
        self.commit_browser(&answer, dtls_role);
        Ok((
            text,
            MediaPlan {
                browser: browser_plan,
                trunk: trunk_plan,
                codec,
                alternatives,
                telephone_event,
            },
        ))
    }

    fn expect_idle(&self, call: &'static str) -> Result<(), SdpError> {
        match self.pending {
            Pending::None => Ok(()),
            _ => Err(self.out_of_order(call)),
        }
    }

    fn out_of_order(&self, call: &'static str) -> SdpError {
        SdpError::OutOfOrder {
            call,
            state: self.pending.describe(),
        }
    }

    /// The browser half of the plan; the restart flags compare with the last completed exchange.
    fn browser_plan(&self, sdp: &Audio, dtls_role: DtlsRole, direction: Direction) -> BrowserPlan {
        let (ufrag, pwd) = sdp.ice.clone().unwrap_or_default();
        let fingerprint = sdp
            .fingerprint
            .clone()
            .expect("check_webrtc refused SDPs without a fingerprint");
        let (ice_restart, dtls_restart) = match &self.remote {
            Some((u, p, f)) => (
                *u != ufrag || *p != pwd,
                *f != fingerprint || self.dtls_role != Some(dtls_role),
            ),
            None => (false, false),
        };
        BrowserPlan {
            remote_ice_ufrag: ufrag,
            remote_ice_pwd: pwd,
            remote_fingerprint: fingerprint,
            dtls_role,
            remote_candidates: sdp.candidates.clone(),
            direction,
            ice_restart,
            dtls_restart,
            rtcp_rsize: sdp.rtcp_rsize,
        }
    }

    fn commit_browser(&mut self, sdp: &Audio, dtls_role: DtlsRole) {
        self.dtls_role = Some(dtls_role);
        if let (Some((u, p)), Some(f)) = (sdp.ice.clone(), sdp.fingerprint.clone()) {
            self.remote = Some((u, p, f));
        }
    }
}

/// The index of the first m-line that `usable` accepts.
fn pick(sdp: &Sdp<'_>, usable: impl Fn(&Media<'_>) -> bool) -> Option<usize> {
    sdp.media.iter().position(usable)
}

/// Why no m-line was usable: the problem of the first audio m-line, else "no audio".
fn first_audio_problem(sdp: &Sdp<'_>, problem: impl Fn(&Media<'_>) -> Option<Incompatible>) -> SdpError {
    if sdp.media.is_empty() {
        return malformed(sdp.last_line + 1, "missing m= line");
    }
    let first = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .and_then(problem);
    first.unwrap_or(Incompatible::NoAudio).into()
}

fn trunk_audio_problem(m: &Media<'_>, srtp: TrunkSrtp) -> Option<Incompatible> {
    if m.kind != "audio" || m.port == 0 {
        return Some(Incompatible::NoAudio);
    }
    match (Proto::of(m.proto), srtp) {
        (Proto::Avp, TrunkSrtp::Off) | (Proto::Savp, TrunkSrtp::Sdes) => None,
        (Proto::Avp, TrunkSrtp::Sdes) => Some(Incompatible::SrtpRequired),
        (Proto::Savp, TrunkSrtp::Off) => Some(Incompatible::SrtpNotConfigured),
        _ => Some(Incompatible::TrunkProfile(m.proto.to_owned())),
    }
}

/// The audio m-line of an answer: the answer has as many m-lines as the offer, in the same order
/// (RFC 3264 §6).
fn answer_audio<'s, 'a>(sdp: &'s Sdp<'a>, offered: usize, index: usize) -> Result<&'s Media<'a>, SdpError> {
    if sdp.media.len() != offered {
        return Err(malformed(
            sdp.last_line,
            format!(
                "the answer has {} m= lines, the offer had {offered}",
                sdp.media.len()
            ),
        ));
    }
    let m = sdp
        .media
        .get(index)
        .ok_or_else(|| malformed(sdp.last_line, "missing m=audio line"))?;
    if m.kind != "audio" {
        return Err(malformed(
            m.line,
            format!("m={} answers the offer's m=audio", m.kind),
        ));
    }
    Ok(m)
}

/// ICE credentials, a fingerprint and rtcp-mux: what the browser leg cannot do without.
fn check_webrtc(a: &Audio) -> Result<(), SdpError> {
    if a.ice.is_none() {
        return Err(Incompatible::NoIceCredentials.into());
    }
    if a.fingerprint.is_none() {
        return Err(Incompatible::NoFingerprint.into());
    }
    if !a.rtcp_mux {
        return Err(Incompatible::NoRtcpMux.into());
    }
    Ok(())
}

fn shapes(sdp: &Sdp<'_>) -> Result<Vec<Shape>, SdpError> {
    sdp.media.iter().map(Shape::of).collect()
}

fn audio_shape(proto: Proto, mid: Option<String>) -> Shape {
    Shape {
        kind: "audio".into(),
        proto: proto.as_str().into(),
        formats: String::new(),
        mid,
    }
}

/// Our preferred numbers toward the trunk: static where RFC 3551 has one, the usual ones otherwise.
fn trunk_suggestion(p: Payload) -> Option<u8> {
    match p {
        Payload::Codec(c) => c.static_pt().or(Some(96)),
        Payload::Event(8000) => Some(101),
        Payload::Event(_) => Some(100),
    }
}

/// Toward the trunk: a codec's static number, or a dynamic one.
fn trunk_valid(p: Payload, pt: u8) -> bool {
    match p {
        Payload::Codec(c) if c.static_pt().is_some() => c.static_pt() == Some(pt),
        _ => DYNAMIC.contains(&pt),
    }
}

/// Toward the browser: never 64–95 (rtcp-mux), and a static number only for its own codec.
fn browser_valid(p: Payload, pt: u8) -> bool {
    if (64..=95).contains(&pt) || pt > 127 {
        return false;
    }
    pt >= 35 || matches!(p, Payload::Codec(c) if c.static_pt() == Some(pt))
}

fn written(numbers: &[(Payload, u8)], codec_fmtp: impl Fn(Payload) -> Option<String>) -> Vec<Written> {
    numbers
        .iter()
        .map(|(payload, pt)| Written {
            pt: *pt,
            payload: *payload,
            fmtp: match payload {
                Payload::Event(_) => Some(EVENT_FMTP.into()),
                Payload::Codec(_) => codec_fmtp(*payload),
            },
        })
        .collect()
}

fn mapping(codec: Codec, browser_pt: u8, trunk_pt: u8) -> CodecMapping {
    CodecMapping {
        codec,
        clock_rate: codec.clock_rate(),
        channels: codec.channels(),
        browser_pt,
        trunk_pt,
    }
}

fn split_first(mut accepted: Vec<CodecMapping>) -> Result<(CodecMapping, Vec<CodecMapping>), SdpError> {
    if accepted.is_empty() {
        return Err(Incompatible::NoCommonCodec.into());
    }
    let first = accepted.remove(0);
    Ok((first, accepted))
}

/// The `telephone-event` clock rate that goes with a codec (its RTP clock rate, RFC 4733 §2.1).
fn event_rate(codec: Codec) -> u32 {
    codec.clock_rate()
}

/// The event rates worth negotiating, first codec's first: those of the accepted codecs, then the
/// others (many phones have only `telephone-event/8000`, also beside Opus; RFC 4733 wants the codec's
/// rate, but DTMF at 8000 beats no DTMF).
fn event_rates(codec: &CodecMapping, alternatives: &[CodecMapping]) -> Vec<u32> {
    let mut rates: Vec<u32> = Vec::new();
    let codec_rates = std::iter::once(codec)
        .chain(alternatives)
        .map(|m| event_rate(m.codec));
    for rate in codec_rates.chain(EVENT_RATES) {
        if !rates.contains(&rate) {
            rates.push(rate);
        }
    }
    rates
}

/// The telephone-event clock rates we know.
const EVENT_RATES: [u32; 2] = [8000, 48_000];

/// Which of the events both legs have goes with `codec`: the one at its rate, else the first.
fn chosen_event(codec: Codec, rates: impl IntoIterator<Item = u32> + Clone) -> Option<u32> {
    let wanted = event_rate(codec);
    rates
        .clone()
        .into_iter()
        .find(|r| *r == wanted)
        .or_else(|| rates.into_iter().next())
}

/// A peer's direction with an RFC 2543 hold (`c=0.0.0.0`) counted as "does not receive".
fn held(direction: Direction, a: &Audio) -> Direction {
    if a.addr.is_unspecified() {
        Direction::from_flags(direction.sends(), false)
    } else {
        direction
    }
}

/// A leg's negotiated direction from its peer's view: the peer's SDP said `peer`, ours said `ours`.
fn intersect(peer: Direction, ours: Direction) -> Direction {
    Direction::from_flags(peer.sends() && ours.receives(), peer.receives() && ours.sends())
}

fn trunk_plan(sdp: &Audio, rtcp_mux: bool, direction: Direction, sdes: Option<SdesPlan>) -> TrunkPlan {
    let rtp = (sdp.port != 0 && !sdp.addr.is_unspecified()).then(|| SocketAddr::new(sdp.addr, sdp.port));
    let rtcp = rtp.and_then(|rtp| match sdp.rtcp {
        Some((port, addr)) => Some(SocketAddr::new(
            addr.filter(|a| !a.is_unspecified()).unwrap_or(sdp.addr),
            port,
        )),
        None if rtcp_mux => Some(rtp),
        None => rtp
            .port()
            .checked_add(1)
            .map(|port| SocketAddr::new(sdp.addr, port)),
    });
    TrunkPlan {
        remote_rtp: rtp,
        remote_rtcp: rtcp,
        rtcp_mux,
        ptime_ms: sdp.ptime,
        direction,
        sdes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_even_when_the_peer_used_them_all() {
        let book = PtBook {
            known: Vec::new(),
            used: u128::MAX,
        };
        let wants = [
            Payload::Codec(Codec::Opus),
            Payload::Event(8000),
            Payload::Event(48_000),
        ];
        let got = book.assign(&wants, |_| Some(70), browser_valid, &[DYNAMIC, UNASSIGNED]);
        assert_eq!(got, vec![(wants[0], 96), (wants[1], 97), (wants[2], 98)]);
    }

    #[test]
    fn a_known_number_is_kept_and_never_reused_for_another_payload() {
        let mut book = PtBook::default();
        book.learn(Payload::Event(8000), 126);
        book.learn(Payload::Codec(Codec::Opus), 96);
        let wants = [Payload::Event(8000), Payload::Event(48_000)];
        // The suggestion 96 belongs to opus on this leg: the 48 kHz events get the next free number.
        let got = book.assign(&wants, |_| Some(96), browser_valid, &[DYNAMIC]);
        assert_eq!(got, vec![(wants[0], 126), (wants[1], 97)]);
        // Learning a new number for a payload forgets the old one.
        book.learn(Payload::Event(8000), 101);
        assert_eq!(book.get(Payload::Event(8000)), Some(101));
        assert_eq!(book.known.len(), 2);
    }

    #[test]
    fn debug_shows_no_secret() {
        let local = LocalMedia {
            browser_addr: "192.0.2.1:40000".parse().unwrap(),
            trunk_addr: "192.0.2.2:30000".parse().unwrap(),
            ice_ufrag: "gwUf".into(),
            ice_pwd: "secret-ice-password-0123".into(),
            fingerprint: Fingerprint {
                algorithm: crate::HashAlgorithm::Sha256,
                value: vec![1; 32],
            },
            session_id: 1,
            sdes_key: Some(*b"secret-sdes-key-secret-sdes-ke"),
        };
        let policy = CodecPolicy {
            codecs: vec![Codec::Pcmu],
            ptime_ms: 20,
            telephone_event: true,
            trunk_srtp: TrunkSrtp::Sdes,
        };
        let text = format!("{:?}", SdpSession::new(local, policy));
        assert!(!text.contains("secret"), "{text}");
    }
}
