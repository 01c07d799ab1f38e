//! The back-to-back user agent: one call = two dialogs (leg A, where the call came from; leg B, toward
//! the trunk), bridged, sans-IO.
//!
//! Leg B is a new dialog: its own Call-ID, tags, Via and Contact, so nothing of one side's topology
//! reaches the other (no Via, Record-Route, Contact or Call-ID crosses). What crosses: the identities
//! (From/To URIs), the request-URI user, status codes (mapped where a code means something else on the
//! other leg), and session descriptions, each of which crosses the media plane ([`MediaAnchor`]: offers
//! and answers in INVITE, 18x, 2xx, ACK, re-INVITE and UPDATE, both ways) so that media is anchored on
//! the gateway whenever a browser is bridged to a SIP peer (between two SIP peers the descriptions pass
//! unchanged); an offer it refuses gets its status (488) and goes no further. INFO DTMF goes to the
//! media plane as telephone-events; the media plane ends calls through [`B2bua::media_failed`].
//!
//! Implemented: INVITE with or without SDP (late offer: the ACK carries the answer), provisional
//! responses and early media (183 relayed without `Require: 100rel`), 2xx with the A-leg 2xx
//! retransmitted until ACK (RFC 3261 §13.3.1.4), BYE from either side, CANCEL (with the CANCEL/200
//! race: a 2xx arriving after a CANCEL is ACKed and BYEd), error responses mapped across, Timer B → 408,
//! Max-Forwards (483). Session timers (RFC 4028) are terminated per leg: the browser's interval is
//! accepted (422 + Min-SE below 90 s) with the browser as refresher, its bodiless UPDATEs answered here;
//! the trunk leg has its own interval (1800 s offered), refreshed by us (UPDATE, or re-INVITE with our
//! last offer) or watched when the trunk refreshes; a leg whose refreshes stop ends the call on both.
//! INFO and OPTIONS in a dialog are answered locally; re-INVITE and UPDATE with an offer are relayed to the other leg
//! (hold/resume both ways, 491 on glare, an offerless re-INVITE's answer carried by the ACK).
//! Registrations: a browser's REGISTER is relayed with our flow-token Contact, and calls for it reach
//! it on its flow; a closed flow ends its calls.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::message::{HeaderName, Message, Method, StartLine, header_param};
use crate::router::{Decision, Failure, Router, Target, Toward};
use crate::transaction::{MAGIC_COOKIE, Route, TimerConfig, TransactionLayer, TxId, response_for};
use crate::transport::Transport;
use crate::uri::SipUri;

/// What kind of peer a leg talks to: the media plane treats the two differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A browser (SIP over WebSocket): ICE + DTLS-SRTP media.
    Browser,
    /// A trunk, PBX or phone (SIP over UDP/TCP/TLS): RTP/AVP media.
    Trunk,
}

impl Peer {
    fn of(route: Route) -> Self {
        match route.transport {
            Transport::Ws | Transport::Wss => Self::Browser,
            Transport::Udp | Transport::Tcp | Transport::Tls => Self::Trunk,
        }
    }
}

/// Whether a session description is an offer or an answer (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    /// An offer: the answer comes back from the other leg.
    Offer,
    /// The answer to the offer that went out on the leg it came from.
    Answer,
}

/// The media plane refused a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRefusal {
    /// The SIP status for the refused offer: 488 (nothing in common, unusable SDP) or 503 (no ports).
    pub status: u16,
    /// Reason phrase, and the call's end reason if it ends over it.
    pub reason: String,
}

/// The media plane, as the B2BUA sees it: the narrow interface through which every session description
/// crosses from one leg to the other, so that media is anchored on the gateway. Implemented by the
/// daemon's media shell (SDP translation, ports, the media sessions); [`PassThrough`] hands bodies
/// across unchanged (signalling only).
pub trait MediaAnchor: std::fmt::Debug + Send {
    /// `sdp` arrived from the `from` peer of `call`; returns the description for the other leg. The same
    /// answer may come twice (183 then 200): the translation must be the same.
    fn cross(
        &mut self,
        now: Instant,
        call: CallRef,
        from: Peer,
        kind: SdpKind,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaRefusal>;
    /// The offer that went out toward the `to` peer will not be answered (a failure response, 491).
    fn offer_failed(&mut self, call: CallRef, to: Peer);
    /// A DTMF digit arrived in signalling (INFO) from the `from` peer; `false` if it cannot be sent as
    /// media (no telephone-event on the other leg).
    fn dtmf(&mut self, now: Instant, call: CallRef, from: Peer, digit: char, duration: Duration) -> bool;
    /// The call's SIP leg goes to the router's trunk `trunk` (before its first description crosses):
    /// the media plane may apply that trunk's codecs. Later calls for the same call change nothing.
    fn toward(&mut self, call: CallRef, trunk: usize) {
        let _ = (call, trunk);
    }
    /// The call is over: free its media (a call that never had any is fine).
    fn release(&mut self, call: CallRef);
}

/// Signalling-only media "plane": bodies cross unchanged (what a SIP proxy does). For tests of the
/// signalling and for gateways whose peers anchor media themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl MediaAnchor for PassThrough {
    fn cross(
        &mut self,
        _: Instant,
        _: CallRef,
        _: Peer,
        _: SdpKind,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaRefusal> {
        Ok(sdp.to_vec())
    }
    fn offer_failed(&mut self, _: CallRef, _: Peer) {}
    fn dtmf(&mut self, _: Instant, _: CallRef, _: Peer, _: char, _: Duration) -> bool {
        false
    }
    fn release(&mut self, _: CallRef) {}
}

const SDP: &str = "application/sdp";

/// Methods allowed once the B2BUA is on (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// Identifiers (Call-IDs, tags, branches): a SplitMix64 stream from a seed the shell draws from the OS.
#[derive(Debug, Clone)]
pub struct Ids {
    state: u64,
}

impl Ids {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 16 hex digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// Identifies a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(u64);

impl CallRef {
    /// A number unique to the call for the lifetime of the B2BUA (for logs and the media plane).
    pub fn id(self) -> u64 {
        self.0
    }

    /// The call with number `id` (as [`Self::id`] gave it): how the media plane names a call back.
    pub fn from_id(id: u64) -> Self {
        Self(id)
    }
}

/// What the B2BUA reports (for logs, metrics and CDRs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A call was accepted from leg A and offered to the trunk.
    Started {
        /// The call.
        call: CallRef,
    },
    /// The callee answered.
    Answered {
        /// The call.
        call: CallRef,
    },
    /// Leg B failed and the call was sent to the route's next trunk.
    Rerouted {
        /// The call.
        call: CallRef,
        /// What the previous trunk did.
        after: Failure,
        /// The router's index of the trunk now tried.
        trunk: usize,
    },
    /// The call is over; `reason` says how.
    Ended {
        /// The call.
        call: CallRef,
        /// e.g. "BYE from A", "486 from B", "CANCEL from A".
        reason: String,
    },
}

/// A call as an operator sees it (the web UI's call list and call records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The call.
    pub call: CallRef,
    /// The caller: the user part of A's From (the whole URI without one).
    pub from: String,
    /// The callee: the user part of A's To.
    pub to: String,
    /// The callee answered.
    pub answered: bool,
    /// BYE or CANCEL under way.
    pub ending: bool,
    /// The router's index of the trunk leg B went to, `None` toward a browser.
    pub trunk: Option<usize>,
    /// Leg A's transport.
    pub a_transport: Transport,
    /// Leg B's transport.
    pub b_transport: Transport,
}

/// A registered browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingInfo {
    /// Its address-of-record user.
    pub user: String,
    /// The transport it registered on.
    pub transport: Transport,
    /// When the registration lapses.
    pub expires_at: Instant,
}

/// What a test OPTIONS ([`B2bua::test_options`]) brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestAnswer {
    /// The id `test_options` gave.
    pub id: u64,
    /// The final status and reason phrase; `None` if nothing came back (timeout, unreachable).
    pub status: Option<(u16, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    A,
    B,
}

/// One dialog (RFC 3261 §12) as seen by us.
#[derive(Debug, Clone)]
struct Leg {
    /// How to reach the peer: for leg A the flow the call came in on, for leg B the trunk or the
    /// peer's Contact.
    route: Route,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// name-addr without tag.
    local_uri: String,
    remote_uri: String,
    /// The peer's Contact URI.
    remote_target: String,
    /// Route headers for requests we send, in order.
    route_set: Vec<String>,
    local_cseq: u32,
    /// Our Contact on this leg.
    contact: String,
    /// The peer listed UPDATE in an Allow header; if not, offers go to it as re-INVITEs.
    allows_update: bool,
    /// The leg's session timer, once negotiated.
    session: Option<SessionTimer>,
    /// The last SDP we offered on this leg (for a re-INVITE refresh): Content-Type and body.
    last_offer: Option<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE sent to B, no final answer yet.
    Early,
    /// 2xx sent to A, waiting for A's ACK.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// BYE/CANCEL under way; the call is removed once the other leg has been told.
    Ending,
}

#[derive(Debug)]
struct Call {
    a: Leg,
    b: Leg,
    phase: Phase,
    /// A's INVITE, for building responses on leg A.
    a_invite: Message,
    /// A's INVITE server transaction until it has its final response.
    a_tx: Option<TxId>,
    /// Our INVITE to B, for CANCEL.
    b_invite: Message,
    b_tx: Option<TxId>,
    b_provisional: bool,
    cancel_pending: bool,
    cancelled: bool,
    /// A's INVITE had no SDP: B's 2xx carries the offer and A's ACK the answer.
    late_offer: bool,
    /// The 2xx we sent A, retransmitted until its ACK.
    a_2xx: Option<Message>,
    a_2xx_interval: Duration,
    /// The ACK we sent B for its 2xx, resent if B retransmits the 2xx.
    b_ack: Option<Message>,
    /// The B 2xx waiting for A's ACK (late offer).
    b_2xx_unacked: bool,
    /// A relayed offerless re-INVITE was answered 2xx: the ACK toward this side waits for the
    /// originator's ACK (with the answer), and reuses this CSeq.
    pending_ack: Option<(Side, u32)>,
    /// The 2xx to a relayed re-INVITE from a UDP originator, retransmitted until its ACK: the side,
    /// the response, the current interval, and when retransmission gives up (64·T1).
    relay_2xx: Option<(Side, Message, Duration, Instant)>,
    /// The trunk leg B goes to (the router's index), `None` toward a browser.
    trunk: Option<usize>,
    /// Where leg B was sent first: the next hop when B's Contact names no IP address.
    b_first_hop: Route,
    /// An answer from B already crossed to A in a provisional (early media): no failover after it.
    b_early_answer: bool,
    /// Our INVITE to B was retried with digest credentials once.
    b_auth_tried: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    BInvite,
    Cancel,
    Bye,
    /// Our session refresh on leg B; `invite` if it went as a re-INVITE (needs an ACK) with this CSeq.
    Refresh {
        invite: bool,
        cseq: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum CallTimer {
    /// Retransmit the 2xx on leg A (T1 doubling to T2).
    Resend2xx,
    /// No ACK for 64·T1: end the call.
    AckTimeout,
    /// RFC 4028: we are this leg's refresher; refresh now (half the interval).
    Refresh(Side),
    /// RFC 4028: the peer is this leg's refresher and has not refreshed in time.
    Expire(Side),
    /// RFC 3261 §16.6 Timer C: leg B has not answered finally within 3 minutes of its last provisional.
    NoAnswer,
    /// §13.3.1.4 for a relayed re-INVITE: retransmit its 2xx to a UDP originator until the ACK.
    ResendRelay2xx,
    /// The trunk sent nothing (not even 100 Trying) within the router's attempt timeout: the call
    /// moves to the route's next trunk, if it has one.
    NoProvisional,
}

/// Timer C (RFC 3261 §16.6: greater than 3 minutes).
const TIMER_C: Duration = Duration::from_secs(181);

impl CallTimer {
    const ALL: [Self; 9] = [
        Self::NoAnswer,
        Self::NoProvisional,
        Self::ResendRelay2xx,
        Self::Resend2xx,
        Self::AckTimeout,
        Self::Refresh(Side::A),
        Self::Refresh(Side::B),
        Self::Expire(Side::A),
        Self::Expire(Side::B),
    ];
}

/// Smallest session interval we accept (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;
/// Session interval we ask a trunk for.
pub const TRUNK_SESSION_EXPIRES: u32 = 1800;

/// A leg's session timer (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionTimer {
    /// Session interval, seconds.
    interval: u32,
    /// We refresh (else the peer does and we watch for it).
    we_refresh: bool,
}

impl SessionTimer {
    /// When the non-refresher gives up: the interval minus min(32 s, a third of it) (§10).
    fn expiry(self) -> Duration {
        let s = u64::from(self.interval);
        Duration::from_secs(s - (s / 3).min(32))
    }

    fn refresh_after(self) -> Duration {
        Duration::from_secs(u64::from(self.interval) / 2)
    }
}

/// `Session-Expires: <seconds>[;refresher=uac|uas]`.
fn session_expires(m: &Message) -> Option<(u32, Option<String>)> {
    let v = m.header(&HeaderName::SessionExpires)?;
    let seconds = v.split(';').next()?.trim().parse().ok()?;
    let refresher = v.split(';').skip(1).find_map(|p| {
        let (k, val) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| val.trim().to_ascii_lowercase())
    });
    Some((seconds, refresher))
}

/// Whether the message's Supported (or Require) headers list `tag`.
fn supports(m: &Message, tag: &str) -> bool {
    [HeaderName::Supported, HeaderName::Require].iter().any(|h| {
        m.values(h)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(tag)))
    })
}

/// The call core.
#[derive(Debug)]
pub struct B2bua {
    /// Routing and policy: where calls and registrations go.
    router: Box<dyn Router>,
    /// OPTIONS probes toward trunks: our client transaction → the router's trunk index.
    probes: HashMap<TxId, usize>,
    /// Test OPTIONS the operator asked for: the id given back.
    tests: HashMap<TxId, u64>,
    test_answers: VecDeque<TestAnswer>,
    next_test: u64,
    server: Option<String>,
    timers_cfg: TimerConfig,
    ids: Ids,
    next: u64,
    calls: HashMap<CallRef, Call>,
    /// (Call-ID, our tag) → call and side, for in-dialog requests.
    dialogs: HashMap<(String, String), (CallRef, Side)>,
    client_txs: HashMap<TxId, (CallRef, Purpose)>,
    /// Client transactions still pending per call (a call is forgotten at zero once it has ended).
    pending_per_call: HashMap<CallRef, u32>,
    timers: BTreeSet<(Instant, CallRef, CallTimer)>,
    /// When each armed timer fires, so that disarming is a lookup, not a scan.
    armed: HashMap<(CallRef, CallTimer), Instant>,
    /// (leg A Call-ID, leg A From-tag) → call, for CANCEL.
    by_a_dialog: HashMap<(String, String), CallRef>,
    events: VecDeque<CallEvent>,
    registrations: Registrations,
    /// In-dialog requests relayed to the other leg, by our client transaction.
    relays: HashMap<TxId, Relay>,
    /// OPTIONS relayed to a registered browser: our client transaction → the asker's server transaction
    /// and request.
    options_relays: HashMap<TxId, (TxId, Message)>,
    /// Where session descriptions cross between the legs.
    media: Box<dyn MediaAnchor>,
}

/// An in-dialog request relayed across (re-INVITE, UPDATE with an offer).
#[derive(Debug, Clone)]
struct Relay {
    call: CallRef,
    from: Side,
    server_tx: TxId,
    request: Message,
    /// CSeq of our copy on the other leg (its ACK reuses it).
    cseq: u32,
    /// Method of our copy: INVITE when an UPDATE went to a peer that does not allow UPDATE.
    out_method: Method,
}

/// A browser's registration, bound to the flow (connection) it registered on, RFC 5626 in spirit: the
/// registrar only ever sees our Contact, whose user part is a token naming this binding.
#[derive(Debug, Clone)]
struct Binding {
    flow: Route,
    /// The browser's own Contact URI (e.g. `sip:k3l8@df7jal23ls0d.invalid;transport=ws`).
    contact: String,
    expires_at: Instant,
}

/// A REGISTER relayed to the registrar, waiting for its answer.
#[derive(Debug, Clone)]
struct PendingRegister {
    a_tx: TxId,
    a_request: Message,
    user: String,
    token: String,
    flow: Route,
    contact: Option<String>,
    requested: u32,
    /// The browser's REGISTER Call-ID (the offload cache's key).
    browser_call_id: String,
}

/// Registration offload: what the registrar last granted for one browser registration (by the
/// browser's Call-ID), so that refreshes in between are answered here.
#[derive(Debug, Clone)]
struct Upstream {
    user: String,
    flow: Route,
    contact: String,
    /// When we last forwarded a REGISTER for it.
    forwarded_at: Instant,
    /// When the registrar's binding ends.
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct Registrations {
    /// AoR user → binding.
    by_user: HashMap<String, Binding>,
    /// Contact token → AoR user (the registrar routes calls to `sip:<token>@gateway`).
    tokens: HashMap<String, String>,
    /// AoR user → its Contact token.
    token_of: HashMap<String, String>,
    /// The browser's REGISTER Call-ID → ours and our last CSeq, so refreshes stay one registration.
    call_ids: HashMap<String, (String, String, u32)>,
    pending: HashMap<TxId, PendingRegister>,
    /// Registration offload state, by the browser's REGISTER Call-ID.
    upstream: HashMap<String, Upstream>,
    /// Refreshes answered here instead of forwarded (registration offload).
    offloaded: u64,
}

impl Registrations {
    /// The flow and Contact for a request-URI user (an AoR user or one of our Contact tokens).
    fn flow_for(&mut self, user: &str, now: Instant) -> Option<(Route, String)> {
        let aor = self.tokens.get(user).cloned().unwrap_or_else(|| user.to_owned());
        match self.by_user.get(&aor) {
            Some(b) if b.expires_at > now => Some((b.flow, b.contact.clone())),
            Some(_) => {
                self.by_user.remove(&aor);
                None
            }
            None => None,
        }
    }
}

/// Where a new call's leg B goes.
#[derive(Debug)]
enum Dest {
    /// A registered browser: its flow and Contact.
    Browser(Route, String),
    /// A trunk the router chose.
    Trunk(Target),
}

/// Result of offering a request to the B2BUA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The B2BUA answered or relayed it (the code is what leg A or the sender got, if any).
    Yes(Option<u16>),
    /// Not for the B2BUA (no matching dialog or call).
    No,
}

impl B2bua {
    /// A call core whose calls go where `router` says; `server` is our Server/User-Agent text; `seed`
    /// feeds the ids.
    pub fn new(router: Box<dyn Router>, server: Option<String>, timers: TimerConfig, seed: u64) -> Self {
        Self {
            router,
            probes: HashMap::new(),
            tests: HashMap::new(),
            test_answers: VecDeque::new(),
            next_test: 0,
            server,
            timers_cfg: timers,
            ids: Ids::new(seed),
            next: 1,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            client_txs: HashMap::new(),
            pending_per_call: HashMap::new(),
            timers: BTreeSet::new(),
            armed: HashMap::new(),
            by_a_dialog: HashMap::new(),
            events: VecDeque::new(),
            registrations: Registrations::default(),
            relays: HashMap::new(),
            options_relays: HashMap::new(),
            media: Box::new(PassThrough),
        }
    }

    /// The router, for the shell's updates (resolved addresses) and status.
    pub fn router_mut(&mut self) -> &mut dyn Router {
        self.router.as_mut()
    }

    /// The media plane that session descriptions cross (default: [`PassThrough`]).
    pub fn set_media(&mut self, media: Box<dyn MediaAnchor>) {
        self.media = media;
    }

    /// The media plane ended a call (no RTP for too long, DTLS failed, the browser's consent expired):
    /// BYE on both legs once answered; before the answer, A gets `status` and B a CANCEL. Unknown or
    /// ending calls are ignored.
    pub fn media_failed(
        &mut self,
        now: Instant,
        call: CallRef,
        status: u16,
        reason: &str,
        tl: &mut TransactionLayer,
    ) {
        let Some(phase) = self.calls.get(&call).map(|c| c.phase) else {
            return;
        };
        match phase {
            Phase::Ending => return,
            Phase::Early => {
                self.answer_a(now, call, status, reason, tl);
                self.abandon_b(now, call, tl);
            }
            Phase::Answered | Phase::Confirmed => {
                self.bye(now, call, Side::A, tl);
                self.bye(now, call, Side::B, tl);
            }
        }
        self.end(call, &format!("media: {reason}"));
    }

    /// Browsers currently registered through us.
    pub fn registered(&self) -> usize {
        self.registrations.by_user.len()
    }

    /// Refreshes answered here instead of forwarded to the registrar (registration offload).
    pub fn offloaded_registers(&self) -> u64 {
        self.registrations.offloaded
    }

    /// A REGISTER from a browser: relayed to the registrar (the trunk) with our Contact; the answer
    /// (challenges included) goes back; a 2xx binds the user to the flow the REGISTER came on.
    pub fn register(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        route: Route,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let Some(user) = request
            .header(&HeaderName::To)
            .and_then(|t| SipUri::parse(uri_in(t)).ok())
            .and_then(|u| u.user.map(str::to_owned))
        else {
            return self.reply(now, tl, tx, request, 400, "Bad Request (To has no user)", None);
        };
        let contact_value = request.values(&HeaderName::Contact).next().map(str::to_owned);
        let wildcard = contact_value.as_deref() == Some("*");
        let requested = contact_value
            .as_deref()
            .and_then(|c| header_param(c, "expires").flatten())
            .or_else(|| request.header(&HeaderName::Expires))
            .and_then(|e| e.trim().parse::<u32>().ok())
            .unwrap_or(3600);
        let browser_call_id = request.header(&HeaderName::CallId).unwrap_or_default().to_owned();
        let offload = self.router.offload_interval();
        if let (Some(interval), Some(contact), false) = (offload, contact_value.as_deref(), wildcard)
            && requested > 0
        {
            let contact = uri_in(contact).to_owned();
            let fresh = self
                .registrations
                .upstream
                .get(&browser_call_id)
                .is_some_and(|u| {
                    u.user == user
                        && u.flow == route
                        && u.contact == contact
                        && now < u.forwarded_at + interval
                        && u.expires_at >= now + Duration::from_secs(u64::from(requested))
                });
            if fresh {
                // A refresh inside the offload interval, the registrar's binding outliving it: answered
                // from here, the registrar never sees it.
                self.registrations.offloaded += 1;
                self.registrations.by_user.insert(
                    user,
                    Binding {
                        flow: route,
                        contact: contact.clone(),
                        expires_at: now + Duration::from_secs(u64::from(requested)),
                    },
                );
                let mut r = self.local_response(request, 200, "OK", None);
                r.push_header(HeaderName::Contact, format!("<{contact}>;expires={requested}"));
                let _ = tl.respond(now, tx, &r);
                return Handled::Yes(Some(200));
            }
        }
        // Forwarded: with offload on, the registrar is asked for a binding that outlives the interval.
        let ask = match offload {
            Some(interval) if requested > 0 => {
                requested.max(u32::try_from(interval.as_secs().saturating_mul(2)).unwrap_or(u32::MAX))
            }
            _ => requested,
        };
        let token = match self.registrations.token_of.get(&user) {
            Some(t) => t.clone(),
            None => {
                let t = self.ids.token();
                self.registrations.tokens.insert(t.clone(), user.clone());
                self.registrations.token_of.insert(user.clone(), t.clone());
                t
            }
        };
        let (call_id, tag, cseq) = {
            let fresh = (format!("{}@rtc-edge", self.ids.token()), self.ids.token(), 0);
            let entry = self
                .registrations
                .call_ids
                .entry(browser_call_id.clone())
                .or_insert(fresh);
            entry.2 += 1;
            entry.clone()
        };
        let Some(registrar) = self.router.registrar() else {
            return self.reply(
                now,
                tl,
                tx,
                request,
                503,
                "Service Unavailable (no registrar)",
                None,
            );
        };
        let route_out = registrar.route;
        let mut m = Message {
            start: request.start.clone(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push_header(HeaderName::Via, our_via(route_out, &mut self.ids));
        m.push_header(HeaderName::MaxForwards, "70");
        m.push_header(
            HeaderName::From,
            format!(
                "{};tag={tag}",
                strip_tag(request.header(&HeaderName::From).unwrap_or_default())
            ),
        );
        m.push_header(
            HeaderName::To,
            strip_tag(request.header(&HeaderName::To).unwrap_or_default()),
        );
        m.push_header(HeaderName::CallId, call_id);
        m.push_header(HeaderName::CSeq, format!("{cseq} REGISTER"));
        if wildcard {
            m.push_header(HeaderName::Contact, "*");
        } else if contact_value.is_some() {
            m.push_header(
                HeaderName::Contact,
                format!("<sip:{token}@{}>;expires={ask}", route_out.local),
            );
        }
        if let Some(e) = request.header(&HeaderName::Expires) {
            if ask == requested {
                m.push_header(HeaderName::Expires, e);
            } else {
                m.push_header(HeaderName::Expires, ask.to_string());
            }
        }
        // Digest credentials pass through: the Request-URI and method they sign are unchanged.
        for h in request
            .headers
            .iter()
            .filter(|h| matches!(h.name, HeaderName::Authorization | HeaderName::ProxyAuthorization))
        {
            m.headers.push(h.clone());
        }
        if let Some(s) = self.server.as_deref().filter(|s| !s.is_empty()) {
            m.push_header(HeaderName::UserAgent, s);
        }
        self.router.rewrite(Toward::Trunk(registrar.trunk), &mut m);
        let Ok(b_tx) = tl.start_client(now, m, route_out) else {
            return self.reply(now, tl, tx, request, 500, "Server Internal Error", None);
        };
        let contact = if wildcard {
            None
        } else {
            contact_value.as_deref().map(|c| uri_in(c).to_owned())
        };
        self.registrations.pending.insert(
            b_tx,
            PendingRegister {
                a_tx: tx,
                a_request: request.clone(),
                user,
                token,
                flow: route,
                contact,
                requested,
                browser_call_id,
            },
        );
        Handled::Yes(None)
    }

    /// The registrar answered one of our REGISTERs.
    fn register_answered(
        &mut self,
        now: Instant,
        p: &PendingRegister,
        response: &Message,
        tl: &mut TransactionLayer,
    ) {
        let StartLine::Response { code, reason } = &response.start else {
            return;
        };
        let mut r = self.local_response(&p.a_request, *code, reason, None);
        if (200..300).contains(code) {
            // The registrar lists every binding of the AoR; ours carries our token.
            let granted = response
                .values(&HeaderName::Contact)
                .find(|c| c.contains(&format!("sip:{}@", p.token)))
                .and_then(|c| header_param(c, "expires").flatten())
                .or_else(|| response.header(&HeaderName::Expires))
                .and_then(|e| e.trim().parse::<u32>().ok())
                .unwrap_or(p.requested);
            match (&p.contact, granted) {
                (Some(contact), g) if g > 0 => {
                    // The browser gets what it asked for at most; the registrar may have granted more
                    // (registration offload asks for more).
                    let own = g.min(p.requested.max(1));
                    self.registrations.by_user.insert(
                        p.user.clone(),
                        Binding {
                            flow: p.flow,
                            contact: contact.clone(),
                            expires_at: now + Duration::from_secs(u64::from(own)),
                        },
                    );
                    self.registrations.upstream.insert(
                        p.browser_call_id.clone(),
                        Upstream {
                            user: p.user.clone(),
                            flow: p.flow,
                            contact: contact.clone(),
                            forwarded_at: now,
                            expires_at: now + Duration::from_secs(u64::from(g)),
                        },
                    );
                    r.push_header(HeaderName::Contact, format!("<{contact}>;expires={own}"));
                }
                _ => {
                    self.registrations.by_user.remove(&p.user);
                    self.registrations.upstream.remove(&p.browser_call_id);
                }
            }
        } else {
            for h in response.headers.iter().filter(|h| {
                matches!(&h.name, HeaderName::Other(n) if n.eq_ignore_ascii_case("WWW-Authenticate") || n.eq_ignore_ascii_case("Proxy-Authenticate") || n.eq_ignore_ascii_case("Min-Expires") || n.eq_ignore_ascii_case("Retry-After"))
            }) {
                r.headers.push(h.clone());
            }
        }
        let _ = tl.respond(now, p.a_tx, &r);
    }

    /// A connection closed: registrations on it are gone, and calls using it end (BYE on the other leg).
    pub fn flow_closed(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        tl: &mut TransactionLayer,
    ) {
        let on_flow = |r: &Route| r.transport.is_reliable() && r.local == local && r.remote == remote;
        self.registrations.by_user.retain(|_, b| !on_flow(&b.flow));
        self.registrations.upstream.retain(|_, u| !on_flow(&u.flow));
        let hit: Vec<(CallRef, Side)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase != Phase::Ending)
            .filter_map(|(id, c)| {
                if on_flow(&c.a.route) {
                    Some((*id, Side::A))
                } else if on_flow(&c.b.route) {
                    Some((*id, Side::B))
                } else {
                    None
                }
            })
            .collect();
        for (call, side) in hit {
            let other = if side == Side::A { Side::B } else { Side::A };
            let early = self.calls.get(&call).is_some_and(|c| c.phase == Phase::Early);
            if early && side == Side::A {
                // The caller's flow is gone, but its INVITE transaction still needs a final response
                // to end (it goes nowhere; the transaction then times out as it should).
                self.terminate_a_invite(now, call, tl);
                self.abandon_b(now, call, tl);
            } else if early {
                // The callee's flow dropped while ringing: the caller hears it as unavailable.
                self.answer_a(now, call, 480, "Temporarily Unavailable", tl);
            } else {
                self.bye(now, call, other, tl);
            }
            self.end(call, "flow closed");
        }
    }

    /// Every call not yet forgotten, as an operator sees it.
    pub fn calls(&self) -> Vec<CallInfo> {
        self.calls.keys().filter_map(|c| self.call_info(*c)).collect()
    }

    /// One call, as an operator sees it.
    pub fn call_info(&self, call: CallRef) -> Option<CallInfo> {
        let c = self.calls.get(&call)?;
        let party = |h: &HeaderName| {
            let value = c.a_invite.header(h).unwrap_or_default();
            let uri = uri_in(value);
            SipUri::parse(uri)
                .ok()
                .and_then(|u| u.user.map(str::to_owned))
                .unwrap_or_else(|| uri.to_owned())
        };
        Some(CallInfo {
            call,
            from: party(&HeaderName::From),
            to: party(&HeaderName::To),
            answered: matches!(c.phase, Phase::Answered | Phase::Confirmed),
            ending: c.phase == Phase::Ending,
            trunk: c.trunk,
            a_transport: c.a.route.transport,
            b_transport: c.b.route.transport,
        })
    }

    /// Registered browsers, at most `max` of them.
    pub fn bindings(&self, max: usize) -> Vec<BindingInfo> {
        self.registrations
            .by_user
            .iter()
            .take(max)
            .map(|(user, b)| BindingInfo {
                user: user.clone(),
                transport: b.flow.transport,
                expires_at: b.expires_at,
            })
            .collect()
    }

    /// Calls in progress (not yet ended).
    pub fn active_calls(&self) -> usize {
        self.calls.values().filter(|c| c.phase != Phase::Ending).count()
    }

    /// Calls that have ended but whose last client transactions (the BYE, CANCEL or INVITE to B) are
    /// still running out their RFC 3261 timers; each is forgotten when its last one finishes.
    pub fn ending_calls(&self) -> usize {
        self.calls.len() - self.active_calls()
    }

    /// The next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.timers.first().map(|(at, _, _)| *at);
        match (calls, self.router.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due call timers.
    pub fn handle_timeout(&mut self, now: Instant, tl: &mut TransactionLayer) {
        let mut probed = false;
        while let Some(t) = self.router.poll_probe(now) {
            self.probe(now, &t, tl);
            probed = true;
        }
        if probed {
            self.leave_down_trunks(now, tl);
        }
        while let Some(&(at, call, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, call, timer));
            self.armed.remove(&(call, timer));
            match timer {
                CallTimer::Resend2xx => {
                    let Some(c) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    if c.phase != Phase::Answered {
                        continue;
                    }
                    if let Some(ok) = c.a_2xx.clone() {
                        tl.send_stateless(&ok, c.a.route);
                    }
                    c.a_2xx_interval = (c.a_2xx_interval * 2).min(self.timers_cfg.t2);
                    let next = at + c.a_2xx_interval;
                    self.arm(call, CallTimer::Resend2xx, next);
                }
                CallTimer::AckTimeout => {
                    if self.calls.get(&call).is_some_and(|c| c.phase == Phase::Answered) {
                        // §13.3.1.4: no ACK within 64·T1 — the session is terminated.
                        self.bye(now, call, Side::A, tl);
                        self.bye(now, call, Side::B, tl);
                        self.end(call, "no ACK from A");
                    }
                }
                CallTimer::Expire(side) => {
                    if self.calls.get(&call).is_some_and(|c| c.phase != Phase::Ending) {
                        // RFC 4028 §10: no refresh in time — the session is over on both legs.
                        self.bye(now, call, Side::A, tl);
                        self.bye(now, call, Side::B, tl);
                        let leg = if side == Side::A { "A" } else { "B" };
                        self.end(call, &format!("session timer expired on {leg}"));
                    }
                }
                CallTimer::Refresh(side) => self.refresh(now, call, side, tl),
                CallTimer::ResendRelay2xx => {
                    let Some(c) = self.calls.get_mut(&call) else {
                        continue;
                    };
                    let Some((side, ok, interval, until)) = c.relay_2xx.take() else {
                        continue;
                    };
                    if at >= until {
                        continue;
                    }
                    let route = if side == Side::A { c.a.route } else { c.b.route };
                    tl.send_stateless(&ok, route);
                    let next = (interval * 2).min(self.timers_cfg.t2);
                    c.relay_2xx = Some((side, ok, next, until));
                    self.arm(call, CallTimer::ResendRelay2xx, at + next);
                }
                CallTimer::NoProvisional => {
                    let silent = self
                        .calls
                        .get(&call)
                        .filter(|c| c.phase == Phase::Early && !c.b_provisional)
                        .and_then(|c| c.b_tx);
                    if let Some(old) = silent
                        && self.fail_over(now, call, Failure::Timeout, tl)
                    {
                        // The silent trunk's INVITE transaction runs out on its own; the call no longer
                        // waits for it.
                        self.untrack(old);
                    }
                }
                CallTimer::NoAnswer => {
                    if self.calls.get(&call).is_some_and(|c| c.phase == Phase::Early) {
                        self.answer_a(now, call, 408, "Request Timeout", tl);
                        self.end(call, "no final answer from B (Timer C)");
                        self.abandon_b(now, call, tl);
                    }
                }
            }
        }
    }

    /// A new out-of-dialog INVITE from leg A on server transaction `tx`.
    pub fn invite(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        route: Route,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let max_forwards = request
            .header(&HeaderName::MaxForwards)
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(70);
        if max_forwards == 0 {
            return self.reply(now, tl, tx, request, 483, "Too Many Hops", None);
        }
        let a_session = match session_expires(request) {
            Some((se, _)) if se < MIN_SE => {
                // RFC 4028 §8.1: too short; say what we accept.
                let mut r = self.local_response(request, 422, "Session Interval Too Small", None);
                r.push_header(HeaderName::MinSe, MIN_SE.to_string());
                let _ = tl.respond(now, tx, &r);
                return Handled::Yes(Some(422));
            }
            Some((se, refresher)) if supports(request, "timer") => Some(SessionTimer {
                interval: se,
                we_refresh: refresher.as_deref() == Some("uas"),
            }),
            _ => None,
        };
        let user = match &request.start {
            StartLine::Request { uri, .. } => request_user(uri),
            StartLine::Response { .. } => None,
        };
        let flow = user.as_deref().and_then(|u| self.registrations.flow_for(u, now));
        let call = CallRef(self.next);
        self.next += 1;
        let dest = match self.router.route(now, call, request, route, flow.is_some()) {
            Decision::Reject {
                status,
                reason,
                retry_after,
            } => {
                let mut r = self.local_response(request, status, &reason, None);
                if let Some(s) = retry_after {
                    r.push_header(HeaderName::Other("Retry-After".into()), s.to_string());
                }
                let _ = tl.respond(now, tx, &r);
                return Handled::Yes(Some(status));
            }
            Decision::Forward(t) => Dest::Trunk(t),
            Decision::Local => match flow {
                Some((route, contact)) => Dest::Browser(route, contact),
                None => {
                    self.router.ended(call);
                    return self.reply(now, tl, tx, request, 404, "Not Found", None);
                }
            },
        };
        let trunk = match &dest {
            Dest::Trunk(t) => Some(t.trunk),
            Dest::Browser(..) => None,
        };
        if let Some(t) = trunk {
            self.media.toward(call, t);
        }
        let Some(b) = self.b_invite(request, max_forwards - 1, dest) else {
            self.router.ended(call);
            return self.reply(
                now,
                tl,
                tx,
                request,
                400,
                "Bad Request (unusable From, To or Request-URI)",
                None,
            );
        };
        let (mut b_invite, mut b_leg) = b;
        let from = Peer::of(route);
        if !request.body.is_empty() && from != Peer::of(b_leg.route) {
            match self.media.cross(now, call, from, SdpKind::Offer, &request.body) {
                Ok(sdp) => {
                    b_invite.headers.retain(|h| h.name != HeaderName::ContentType);
                    b_invite.push_header(HeaderName::ContentType, SDP);
                    b_leg.last_offer = Some((SDP.to_owned(), sdp.clone()));
                    b_invite.body = sdp;
                }
                Err(refusal) => {
                    self.media.release(call);
                    self.router.ended(call);
                    return self.reply(now, tl, tx, request, refusal.status, &refusal.reason, None);
                }
            }
        }
        let Ok(b_tx) = tl.start_client(now, b_invite.clone(), b_leg.route) else {
            self.media.release(call);
            self.router.ended(call);
            return self.reply(now, tl, tx, request, 500, "Server Internal Error", None);
        };
        let b_first_hop = b_leg.route;
        let a_leg = Leg {
            route,
            call_id: request.header(&HeaderName::CallId).unwrap_or_default().to_owned(),
            local_tag: self.ids.token(),
            remote_tag: request
                .header(&HeaderName::From)
                .and_then(|f| header_param(f, "tag"))
                .flatten()
                .map(str::to_owned),
            local_uri: strip_tag(request.header(&HeaderName::To).unwrap_or_default()),
            remote_uri: strip_tag(request.header(&HeaderName::From).unwrap_or_default()),
            remote_target: contact_uri(request).unwrap_or_default(),
            route_set: request
                .headers
                .iter()
                .filter(|h| h.name == HeaderName::RecordRoute)
                .map(|h| h.value.clone())
                .collect(),
            local_cseq: 0,
            contact: our_contact(route),
            allows_update: allows(request, "UPDATE"),
            session: a_session,
            last_offer: None,
        };
        self.dialogs
            .insert((a_leg.call_id.clone(), a_leg.local_tag.clone()), (call, Side::A));
        self.dialogs
            .insert((b_leg.call_id.clone(), b_leg.local_tag.clone()), (call, Side::B));
        self.track(b_tx, (call, Purpose::BInvite));
        self.by_a_dialog.insert(
            (
                a_leg.call_id.clone(),
                a_leg.remote_tag.clone().unwrap_or_default(),
            ),
            call,
        );
        self.calls.insert(
            call,
            Call {
                a: a_leg,
                b: b_leg,
                phase: Phase::Early,
                late_offer: request.body.is_empty(),
                a_invite: request.clone(),
                a_tx: Some(tx),
                b_invite,
                b_tx: Some(b_tx),
                b_provisional: false,
                cancel_pending: false,
                cancelled: false,
                a_2xx: None,
                a_2xx_interval: self.timers_cfg.t1,
                b_ack: None,
                b_2xx_unacked: false,
                pending_ack: None,
                relay_2xx: None,
                trunk,
                b_first_hop,
                b_early_answer: false,
                b_auth_tried: false,
            },
        );
        self.events.push_back(CallEvent::Started { call });
        self.arm(call, CallTimer::NoAnswer, now + TIMER_C);
        self.arm_attempt(now, call);
        Handled::Yes(None)
    }

    /// An out-of-dialog OPTIONS whose Request-URI user is registered here goes to that browser on its
    /// flow, and its answer comes back (capabilities of the user, not of the gateway). Anything else is
    /// for the gateway itself (`Handled::No`: the endpoint answers it).
    pub fn options(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let StartLine::Request { uri, .. } = &request.start else {
            return Handled::No;
        };
        let Some((flow, contact)) = request_user(uri).and_then(|u| self.registrations.flow_for(&u, now))
        else {
            return Handled::No;
        };
        let mut m = Message {
            start: StartLine::Request {
                method: Method::Options,
                uri: contact,
                version: "SIP/2.0".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        let max_forwards = request
            .header(&HeaderName::MaxForwards)
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(70);
        m.push_header(HeaderName::Via, our_via(flow, &mut self.ids));
        m.push_header(
            HeaderName::MaxForwards,
            max_forwards.saturating_sub(1).to_string(),
        );
        m.push_header(
            HeaderName::From,
            format!(
                "{};tag={}",
                strip_tag(request.header(&HeaderName::From).unwrap_or_default()),
                self.ids.token()
            ),
        );
        m.push_header(
            HeaderName::To,
            strip_tag(request.header(&HeaderName::To).unwrap_or_default()),
        );
        m.push_header(HeaderName::CallId, format!("{}@rtc-edge", self.ids.token()));
        m.push_header(HeaderName::CSeq, "1 OPTIONS");
        if let Some(accept) = request.header(&HeaderName::Accept) {
            m.push_header(HeaderName::Accept, accept);
        }
        let Ok(out) = tl.start_client(now, m, flow) else {
            return Handled::No;
        };
        self.options_relays.insert(out, (tx, request.clone()));
        Handled::Yes(None)
    }

    /// Leg B toward a trunk must say something within the router's attempt timeout.
    fn arm_attempt(&mut self, now: Instant, call: CallRef) {
        let toward_trunk = self.calls.get(&call).is_some_and(|c| c.trunk.is_some());
        if let (true, Some(limit)) = (toward_trunk, self.router.attempt_timeout()) {
            self.arm(call, CallTimer::NoProvisional, now + limit);
        }
    }

    fn arm(&mut self, call: CallRef, timer: CallTimer, at: Instant) {
        self.disarm(call, timer);
        self.timers.insert((at, call, timer));
        self.armed.insert((call, timer), at);
    }

    fn disarm(&mut self, call: CallRef, timer: CallTimer) {
        if let Some(at) = self.armed.remove(&(call, timer)) {
            self.timers.remove(&(at, call, timer));
        }
    }

    fn track(&mut self, tx: TxId, entry: (CallRef, Purpose)) {
        *self.pending_per_call.entry(entry.0).or_default() += 1;
        self.client_txs.insert(tx, entry);
    }

    fn untrack(&mut self, tx: TxId) -> Option<(CallRef, Purpose)> {
        let entry = self.client_txs.remove(&tx)?;
        if let Some(n) = self.pending_per_call.get_mut(&entry.0) {
            *n -= 1;
            if *n == 0 {
                self.pending_per_call.remove(&entry.0);
            }
        }
        Some(entry)
    }

    /// (Re)arms a leg's session timer: a refresh if we are its refresher, else the expiry watch.
    fn arm_session(&mut self, now: Instant, call: CallRef, side: Side) {
        let Some(c) = self.calls.get(&call) else { return };
        let leg = if side == Side::A { &c.a } else { &c.b };
        let Some(st) = leg.session else { return };
        self.disarm(call, CallTimer::Refresh(side));
        self.disarm(call, CallTimer::Expire(side));
        if st.we_refresh {
            self.arm(call, CallTimer::Refresh(side), now + st.refresh_after());
        } else {
            self.arm(call, CallTimer::Expire(side), now + st.expiry());
        }
    }

    /// Our session refresh on a leg: UPDATE without a body where the peer allows it, else a re-INVITE
    /// with our last offer (RFC 4028 §9).
    fn refresh(&mut self, now: Instant, call: CallRef, side: Side, tl: &mut TransactionLayer) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase == Phase::Ending {
            return;
        }
        let leg = if side == Side::A { &mut c.a } else { &mut c.b };
        let Some(st) = leg.session else { return };
        let invite = !leg.allows_update;
        let offer = leg.last_offer.clone().filter(|_| invite);
        let body = offer.as_ref().map(|(ct, bytes)| (ct.as_str(), bytes.as_slice()));
        let method = if invite { Method::Invite } else { Method::Update };
        let mut m = build_in_dialog(leg, &mut self.ids, &method, None, body);
        m.push_header(HeaderName::Supported, "timer");
        m.push_header(
            HeaderName::SessionExpires,
            format!(
                "{};refresher={}",
                st.interval,
                if side == Side::B { "uac" } else { "uas" }
            ),
        );
        let (route, cseq) = (leg.route, leg.local_cseq);
        if let Ok(id) = tl.start_client(now, m, route) {
            self.track(id, (call, Purpose::Refresh { invite, cseq }));
        }
    }

    /// A CANCEL on server transaction `tx`: answered 200, the INVITE 487, leg B cancelled.
    pub fn cancel(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let call_id = request.header(&HeaderName::CallId).unwrap_or_default();
        let from_tag = request
            .header(&HeaderName::From)
            .and_then(|f| header_param(f, "tag"))
            .flatten();
        let key = (call_id.to_owned(), from_tag.unwrap_or_default().to_owned());
        let Some(&call) = self.by_a_dialog.get(&key) else {
            return Handled::No;
        };
        if !self
            .calls
            .get(&call)
            .is_some_and(|c| c.a_tx.is_some() && c.phase == Phase::Early)
        {
            return Handled::No;
        }
        self.reply(now, tl, tx, request, 200, "OK", None);
        self.terminate_a_invite(now, call, tl);
        self.abandon_b(now, call, tl);
        Handled::Yes(Some(200))
    }

    /// An in-dialog request (To tag present) on server transaction `tx`.
    pub fn in_dialog(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let Some((call, side)) = self.dialog_of(request) else {
            return Handled::No;
        };
        let method = request.method().cloned().unwrap_or(Method::Other(String::new()));
        match method {
            Method::Bye => {
                self.reply(now, tl, tx, request, 200, "OK", Some((call, side)));
                let other = if side == Side::A { Side::B } else { Side::A };
                let early = self.calls.get(&call).is_some_and(|c| c.phase == Phase::Early);
                if early && side == Side::A {
                    // A BYE before the answer acts as a CANCEL toward B, and ends A's INVITE with 487
                    // (RFC 3261 §15.1.2).
                    self.terminate_a_invite(now, call, tl);
                    self.abandon_b(now, call, tl);
                } else {
                    self.bye(now, call, other, tl);
                }
                self.end(
                    call,
                    &format!("BYE from {}", if side == Side::A { "A" } else { "B" }),
                );
                Handled::Yes(Some(200))
            }
            // Session refreshes (RFC 4028) and DTMF INFO are answered per leg.
            Method::Update if request.body.is_empty() => {
                // A session refresh: restart this leg's watch and confirm the interval (RFC 4028 §9).
                self.arm_session(now, call, side);
                let mut r = self.local_response(request, 200, "OK", Some((call, side)));
                if let Some((se, refresher)) = session_expires(request) {
                    r.push_header(HeaderName::Require, "timer");
                    let refresher = refresher.unwrap_or_else(|| "uac".to_owned());
                    r.push_header(HeaderName::SessionExpires, format!("{se};refresher={refresher}"));
                }
                let _ = tl.respond(now, tx, &r);
                Handled::Yes(Some(200))
            }
            Method::Info if dtmf_info(request).is_some() => {
                // SIP INFO DTMF becomes RFC 4733 telephone-events in the media toward the other leg.
                let from = self.calls.get(&call).map(|c| c.peer(side));
                if let (Some(from), Some((digit, duration))) = (from, dtmf_info(request)) {
                    self.media.dtmf(now, call, from, digit, duration);
                }
                self.reply(now, tl, tx, request, 200, "OK", Some((call, side)))
            }
            Method::Info | Method::Options if method == Method::Info || request.body.is_empty() => {
                self.reply(now, tl, tx, request, 200, "OK", Some((call, side)))
            }
            // Hold/resume and other offers: relayed to the other leg (§14, RFC 3311). Any of them is
            // also a session refresh of the leg it came on.
            Method::Invite | Method::Update => {
                self.arm_session(now, call, side);
                self.relay(now, tx, request, call, side, tl)
            }
            _ => self.reply(now, tl, tx, request, 501, "Not Implemented", Some((call, side))),
        }
    }

    /// Relays an in-dialog INVITE/UPDATE to the other leg; its answer comes back on server tx `tx`.
    fn relay(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        call: CallRef,
        side: Side,
        tl: &mut TransactionLayer,
    ) -> Handled {
        let busy = self.relays.values().any(|r| r.call == call)
            || self
                .calls
                .get(&call)
                .is_none_or(|c| !matches!(c.phase, Phase::Confirmed | Phase::Answered));
        if busy {
            // §14.2: an offer while another is pending on this call.
            return self.reply(now, tl, tx, request, 491, "Request Pending", Some((call, side)));
        }
        let crossed = if request.body.is_empty() {
            None
        } else {
            match self.cross(now, call, side, SdpKind::Offer, &request.body) {
                Ok(sdp) => Some(sdp),
                Err(refusal) => {
                    // §14.2 / RFC 3264 §6: an offer we cannot take changes nothing; the call goes on.
                    return self.reply(
                        now,
                        tl,
                        tx,
                        request,
                        refusal.status,
                        &refusal.reason,
                        Some((call, side)),
                    );
                }
            }
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return Handled::No;
        };
        let method = request.method().cloned().unwrap_or(Method::Update);
        let other = if side == Side::A { &mut c.b } else { &mut c.a };
        // Never an UPDATE to a peer that did not allow it (RFC 3311 §5.1): a re-INVITE carries the offer.
        let out_method = if method == Method::Update && !other.allows_update {
            Method::Invite
        } else {
            method
        };
        let body = crossed.as_deref().map(|sdp| (SDP, sdp));
        let out = build_in_dialog(other, &mut self.ids, &out_method, None, body);
        if let Some(sdp) = crossed {
            other.last_offer = Some((SDP.to_owned(), sdp));
        }
        let route = other.route;
        let cseq = other.local_cseq;
        let Ok(out_tx) = tl.start_client(now, out, route) else {
            return self.reply(
                now,
                tl,
                tx,
                request,
                500,
                "Server Internal Error",
                Some((call, side)),
            );
        };
        // A relayed re-INVITE gets a hard deadline: the far side may not keep it pending like a call.
        tl.deadline(out_tx, now + tl.timeout_interval());
        self.relays.insert(
            out_tx,
            Relay {
                call,
                from: side,
                server_tx: tx,
                request: request.clone(),
                cseq,
                out_method,
            },
        );
        Handled::Yes(None)
    }

    /// The other leg answered a relayed request: the answer goes back; a 2xx to a re-INVITE is ACKed
    /// on that leg (with the originator's ACK body when the re-INVITE carried no offer).
    fn relay_answered(&mut self, now: Instant, r: &Relay, response: &Message, tl: &mut TransactionLayer) {
        let StartLine::Response { code, reason } = &response.start else {
            return;
        };
        let code = *code;
        if code == 100 {
            return;
        }
        if !self.calls.contains_key(&r.call) {
            // The call ended meanwhile: the asker still gets a final answer, so its transaction ends.
            if code >= 200 {
                let answer = self.local_response(&r.request, 481, "Call/Transaction Does Not Exist", None);
                let _ = tl.respond(now, r.server_tx, &answer);
            }
            return;
        }
        let answering = if r.from == Side::A { Side::B } else { Side::A };
        let offered = !r.request.body.is_empty();
        let mut sdp = None;
        if (200..300).contains(&code) && !response.body.is_empty() {
            let kind = if offered { SdpKind::Answer } else { SdpKind::Offer };
            match self.cross(now, r.call, answering, kind, &response.body) {
                Ok(crossed) => sdp = Some(crossed),
                Err(_) => {
                    // The far side took the offer but answered with media we cannot bridge: the asker
                    // gets the 2xx without it and keeps its old session; the media plane logs why.
                }
            }
        } else if code >= 300 && offered {
            let to = self.calls.get(&r.call).map(|c| c.peer(answering));
            if let Some(to) = to {
                self.media.offer_failed(r.call, to);
            }
        }
        let Some(c) = self.calls.get_mut(&r.call) else {
            return;
        };
        let (from_leg, to_leg) = if r.from == Side::A {
            (&c.a, &mut c.b)
        } else {
            (&c.b, &mut c.a)
        };
        let mut answer = response_for(&r.request, code, reason);
        let tag = from_leg.local_tag.clone();
        let contact = from_leg.contact.clone();
        add_to_tag(&mut answer, || tag);
        if (200..300).contains(&code) {
            answer.push_header(HeaderName::Contact, contact);
        }
        if let Some(sdp) = sdp {
            answer.push_header(HeaderName::ContentType, SDP);
            answer.body = sdp;
        }
        if (200..300).contains(&code) && r.out_method == Method::Invite {
            if r.request.body.is_empty() {
                c.pending_ack = Some((if r.from == Side::A { Side::B } else { Side::A }, r.cseq));
            } else {
                let ack = build_in_dialog(to_leg, &mut self.ids, &Method::Ack, Some(r.cseq), None);
                tl.send_stateless(&ack, to_leg.route);
            }
        }
        let from_udp = !if r.from == Side::A { c.a.route } else { c.b.route }
            .transport
            .is_reliable();
        if (200..300).contains(&code) && r.request.method() == Some(&Method::Invite) && from_udp {
            let until = now + self.timers_cfg.t1x64();
            c.relay_2xx = Some((r.from, answer.clone(), self.timers_cfg.t1, until));
            self.arm(r.call, CallTimer::ResendRelay2xx, now + self.timers_cfg.t1);
        }
        let _ = tl.respond(now, r.server_tx, &answer);
    }

    /// An ACK without a transaction (to a 2xx). `true` if it belonged to a call.
    pub fn ack(&mut self, now: Instant, request: &Message, tl: &mut TransactionLayer) -> bool {
        let Some((call, side)) = self.dialog_of(request) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.relay_2xx.as_ref().is_some_and(|(s, ..)| *s == side) {
            c.relay_2xx = None;
            self.disarm(call, CallTimer::ResendRelay2xx);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        // The originator's ACK to a relayed offerless re-INVITE carries the answer across.
        if let Some((to, cseq)) = c.pending_ack
            && to != side
        {
            c.pending_ack = None;
            let sdp = self.ack_answer(now, call, side, request);
            let Some(c) = self.calls.get_mut(&call) else {
                return true;
            };
            let leg = if to == Side::A { &mut c.a } else { &mut c.b };
            let body = sdp.as_deref().map(|s| (SDP, s));
            let ack = build_in_dialog(leg, &mut self.ids, &Method::Ack, Some(cseq), body);
            tl.send_stateless(&ack, leg.route);
            return true;
        }
        if side != Side::A {
            return true;
        }
        if c.phase == Phase::Answered {
            c.phase = Phase::Confirmed;
            self.disarm(call, CallTimer::Resend2xx);
            self.disarm(call, CallTimer::AckTimeout);
            let Some(c) = self.calls.get_mut(&call) else {
                return true;
            };
            if c.b_2xx_unacked {
                // Late offer: A's ACK carries the answer to B's offer.
                let sdp = self.ack_answer(now, call, Side::A, request);
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                let cseq = c.b_invite_cseq();
                let body = sdp.as_deref().map(|s| (SDP, s));
                let ack = build_in_dialog(&mut c.b, &mut self.ids, &Method::Ack, Some(cseq), body);
                tl.send_stateless(&ack, c.b.route);
                c.b_ack = Some(ack);
                c.b_2xx_unacked = false;
            }
        }
        true
    }

    /// The answer an ACK from `side` carries, crossed for the other leg (`None` if it has none or the
    /// media plane refused it: the other side then keeps what it had).
    fn ack_answer(&mut self, now: Instant, call: CallRef, side: Side, ack: &Message) -> Option<Vec<u8>> {
        if ack.body.is_empty() {
            return None;
        }
        // Refused: the media plane logs why.
        self.cross(now, call, side, SdpKind::Answer, &ack.body).ok()
    }

    /// A response on one of our client transactions.
    pub fn response(
        &mut self,
        now: Instant,
        tx: TxId,
        response: &Message,
        tl: &mut TransactionLayer,
    ) -> bool {
        if let Some(&id) = self.tests.get(&tx) {
            if let StartLine::Response {
                code: code @ 200..,
                reason,
            } = &response.start
            {
                self.tests.remove(&tx);
                self.test_answers.push_back(TestAnswer {
                    id,
                    status: Some((*code, reason.clone())),
                });
            }
            return true;
        }
        if let Some(&trunk) = self.probes.get(&tx) {
            if let StartLine::Response {
                code: code @ 200.., ..
            } = response.start
            {
                self.probes.remove(&tx);
                self.router.probe_answered(now, trunk, Some(code));
                self.leave_down_trunks(now, tl);
            }
            return true;
        }
        if let Some((server_tx, request)) = self.options_relays.get(&tx).cloned() {
            if let StartLine::Response {
                code: code @ 200..,
                reason,
            } = &response.start
            {
                self.options_relays.remove(&tx);
                let mut r = self.local_response(&request, *code, reason, None);
                for name in [HeaderName::Allow, HeaderName::Accept, HeaderName::Supported] {
                    if let Some(v) = response.header(&name) {
                        r.push_header(name, v);
                    }
                }
                let _ = tl.respond(now, server_tx, &r);
            }
            return true;
        }
        if let Some(r) = self.relays.get(&tx).cloned() {
            if matches!(response.start, StartLine::Response { code: 200.., .. }) {
                self.relays.remove(&tx);
            }
            self.relay_answered(now, &r, response, tl);
            return true;
        }
        if let Some(p) = self.registrations.pending.get(&tx).cloned() {
            if matches!(response.start, StartLine::Response { code: 200.., .. }) {
                self.registrations.pending.remove(&tx);
                self.register_answered(now, &p, response, tl);
            }
            return true;
        }
        let Some(&(call, purpose)) = self.client_txs.get(&tx) else {
            return self.stray_2xx(response, tl);
        };
        let StartLine::Response { code, reason } = &response.start else {
            return true;
        };
        let code = *code;
        if code >= 200 {
            self.untrack(tx);
        }
        if let Purpose::Refresh { invite, cseq } = purpose {
            let StartLine::Response { code, .. } = response.start else {
                return true;
            };
            match code {
                100..=199 => {}
                200..=299 => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        if invite {
                            let ack =
                                build_in_dialog(&mut c.b, &mut self.ids, &Method::Ack, Some(cseq), None);
                            tl.send_stateless(&ack, c.b.route);
                        }
                        if let (Some(st), Some((se, _))) = (&mut c.b.session, session_expires(response)) {
                            st.interval = se.max(MIN_SE);
                        }
                    }
                    self.arm_session(now, call, Side::B);
                }
                _ => {
                    // A refused refresh ends the session (RFC 4028 §10).
                    if self.calls.get(&call).is_some_and(|c| c.phase != Phase::Ending) {
                        self.bye(now, call, Side::A, tl);
                        self.bye(now, call, Side::B, tl);
                        self.end(call, &format!("session refresh refused ({code})"));
                    }
                }
            }
            self.forget_if_done(call);
            return true;
        }
        if purpose != Purpose::BInvite {
            self.forget_if_done(call);
            return true;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return true;
        };
        if code >= 200 {
            c.b_tx = None;
        }
        match code {
            100 => {
                // Any provisional, 100 included, allows the CANCEL (§9.1); only 101–199 reach A.
                c.b_provisional = true;
                self.disarm(call, CallTimer::NoProvisional);
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                if c.cancel_pending {
                    c.cancel_pending = false;
                    self.send_cancel(now, call, tl);
                }
            }
            101..=199 => {
                c.b_provisional = true;
                self.disarm(call, CallTimer::NoProvisional);
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                learn_remote(&mut c.b, response, c.b_first_hop);
                // Timer C restarts with every provisional (§16.7 step 2).
                if !c.cancelled {
                    self.arm(call, CallTimer::NoAnswer, now + TIMER_C);
                }
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                if c.cancel_pending {
                    c.cancel_pending = false;
                    self.send_cancel(now, call, tl);
                } else if !c.cancelled
                    && let Some(a_tx) = c.a_tx
                {
                    // Early media: an answer in a provisional crosses (an offer cannot: no 100rel).
                    let late = c.late_offer;
                    let sdp = if late || response.body.is_empty() {
                        None
                    } else {
                        self.cross(now, call, Side::B, SdpKind::Answer, &response.body)
                            .ok()
                    };
                    if sdp.is_some()
                        && let Some(c) = self.calls.get_mut(&call)
                    {
                        c.b_early_answer = true;
                    }
                    if let Some(r) = self.a_response(call, code, reason, sdp) {
                        let _ = tl.respond(now, a_tx, &r);
                    }
                }
            }
            200..=299 => {
                learn_remote(&mut c.b, response, c.b_first_hop);
                if c.cancelled || c.phase == Phase::Ending {
                    // CANCEL/200 race: the callee answered anyway; ACK it and hang up (§15).
                    let cseq = c.b_invite_cseq();
                    let ack = build_in_dialog(&mut c.b, &mut self.ids, &Method::Ack, Some(cseq), None);
                    tl.send_stateless(&ack, c.b.route);
                    self.bye(now, call, Side::B, tl);
                    self.end(call, "answered after CANCEL");
                    return true;
                }
                if let Some((se, refresher)) = session_expires(response) {
                    // The 2xx names the refresher (RFC 4028 §9); without it, we (the UAC) refresh.
                    let we_refresh = refresher.as_deref() != Some("uas");
                    c.b.session = Some(SessionTimer {
                        interval: se.max(MIN_SE),
                        we_refresh,
                    });
                }
                // The answer to our offer (or, late offer, B's offer) crosses to A.
                let kind = if c.late_offer {
                    SdpKind::Offer
                } else {
                    SdpKind::Answer
                };
                let crossed = if response.body.is_empty() {
                    Ok(None)
                } else {
                    self.cross(now, call, Side::B, kind, &response.body).map(Some)
                };
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                let sdp = match crossed {
                    Ok(sdp) => sdp,
                    Err(refusal) => {
                        // B answered with media we cannot bridge: it gets its ACK and a BYE, A the refusal.
                        let cseq = c.b_invite_cseq();
                        let ack = build_in_dialog(&mut c.b, &mut self.ids, &Method::Ack, Some(cseq), None);
                        tl.send_stateless(&ack, c.b.route);
                        self.bye(now, call, Side::B, tl);
                        self.answer_a(now, call, refusal.status, &refusal.reason, tl);
                        self.end(call, &format!("media: {}", refusal.reason));
                        return true;
                    }
                };
                if c.late_offer {
                    c.b_2xx_unacked = true;
                } else {
                    let cseq = c.b_invite_cseq();
                    let ack = build_in_dialog(&mut c.b, &mut self.ids, &Method::Ack, Some(cseq), None);
                    tl.send_stateless(&ack, c.b.route);
                    c.b_ack = Some(ack);
                }
                let Some(a_tx) = c.a_tx.take() else { return true };
                let a_session = c.a.session;
                let Some(mut ok) = self.a_response(call, code, reason, sdp) else {
                    return true;
                };
                if let Some(st) = a_session {
                    let refresher = if st.we_refresh { "uas" } else { "uac" };
                    ok.push_header(HeaderName::Require, "timer");
                    ok.push_header(
                        HeaderName::SessionExpires,
                        format!("{};refresher={refresher}", st.interval),
                    );
                }
                let _ = tl.respond(now, a_tx, &ok);
                self.arm_session(now, call, Side::A);
                self.arm_session(now, call, Side::B);
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                c.phase = Phase::Answered;
                c.a_2xx = Some(ok);
                if !c.a.route.transport.is_reliable() {
                    self.arm(call, CallTimer::Resend2xx, now + self.timers_cfg.t1);
                }
                self.arm(call, CallTimer::AckTimeout, now + self.timers_cfg.t1 * 64);
                self.events.push_back(CallEvent::Answered { call });
            }
            _ => {
                // The transaction layer ACKs the non-2xx. A trunk's challenge is answered once with
                // its credentials; a failover code sends the call to the route's next trunk.
                if matches!(code, 401 | 407) && self.retry_with_credentials(now, call, response, tl) {
                    return true;
                }
                if self.fail_over(now, call, Failure::Status(code), tl) {
                    return true;
                }
                let Some(c) = self.calls.get_mut(&call) else {
                    return true;
                };
                if let Some(a_tx) = c.a_tx.take() {
                    let (mapped, text) = map_failure(code, reason);
                    if let Some(r) = self.a_response(call, mapped, &text, None) {
                        let _ = tl.respond(now, a_tx, &r);
                    }
                }
                self.end(call, &format!("{code} from B"));
            }
        }
        self.forget_if_done(call);
        true
    }

    /// Timer B/F on one of our client transactions: whoever waits for it gets 408.
    pub fn timeout(&mut self, now: Instant, tx: TxId, tl: &mut TransactionLayer) {
        self.failed(
            now,
            tx,
            (408, "Request Timeout"),
            "no answer from B (Timer B)",
            tl,
        );
    }

    /// The transport could not carry one of our client transactions (e.g. the trunk refused the
    /// connection, RFC 3261 §17.1.4): whoever waits for it gets 503 at once.
    pub fn transport_error(&mut self, now: Instant, tx: TxId, tl: &mut TransactionLayer) {
        self.failed(now, tx, (503, "Service Unavailable"), "trunk unreachable", tl);
    }

    fn failed(&mut self, now: Instant, tx: TxId, answer: (u16, &str), why: &str, tl: &mut TransactionLayer) {
        let (code, reason) = answer;
        if let Some(id) = self.tests.remove(&tx) {
            self.test_answers.push_back(TestAnswer { id, status: None });
            return;
        }
        if let Some(trunk) = self.probes.remove(&tx) {
            self.router.probe_answered(now, trunk, None);
            self.leave_down_trunks(now, tl);
            return;
        }
        if let Some((server_tx, request)) = self.options_relays.remove(&tx) {
            let r = self.local_response(&request, code, reason, None);
            let _ = tl.respond(now, server_tx, &r);
            return;
        }
        if let Some(r) = self.relays.remove(&tx) {
            let answer = self.local_response(&r.request, code, reason, Some((r.call, r.from)));
            let _ = tl.respond(now, r.server_tx, &answer);
            return;
        }
        if let Some(p) = self.registrations.pending.remove(&tx) {
            let r = self.local_response(&p.a_request, code, reason, None);
            let _ = tl.respond(now, p.a_tx, &r);
            return;
        }
        let Some((call, purpose)) = self.untrack(tx) else {
            return;
        };
        if purpose == Purpose::BInvite {
            let failure = if code == 408 {
                Failure::Timeout
            } else {
                Failure::Unreachable
            };
            if self.fail_over(now, call, failure, tl) {
                return;
            }
            self.answer_a(now, call, code, reason, tl);
            self.end(call, why);
        } else {
            self.forget_if_done(call);
        }
    }

    /// A response that matched no transaction: a 2xx retransmission from B after its INVITE transaction
    /// ended gets our ACK again. `true` if it belonged to a call.
    pub fn stray_response(&mut self, response: &Message, tl: &mut TransactionLayer) -> bool {
        self.stray_2xx(response, tl)
    }

    fn stray_2xx(&mut self, response: &Message, tl: &mut TransactionLayer) -> bool {
        let Some((call, Side::B)) = self.dialog_of_response(response) else {
            return false;
        };
        if let Some(c) = self.calls.get(&call)
            && let Some(ack) = &c.b_ack
        {
            tl.send_stateless(ack, c.b.route);
        }
        true
    }

    fn dialog_of(&self, request: &Message) -> Option<(CallRef, Side)> {
        let call_id = request.header(&HeaderName::CallId)?;
        let tag = request
            .header(&HeaderName::To)
            .and_then(|t| header_param(t, "tag"))
            .flatten()?;
        self.dialogs.get(&(call_id.to_owned(), tag.to_owned())).copied()
    }

    fn dialog_of_response(&self, response: &Message) -> Option<(CallRef, Side)> {
        let call_id = response.header(&HeaderName::CallId)?;
        let tag = response
            .header(&HeaderName::From)
            .and_then(|t| header_param(t, "tag"))
            .flatten()?;
        self.dialogs.get(&(call_id.to_owned(), tag.to_owned())).copied()
    }

    /// Answers a request locally (on leg A's or B's dialog if given, for the To-tag).
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        now: Instant,
        tl: &mut TransactionLayer,
        tx: TxId,
        request: &Message,
        code: u16,
        reason: &str,
        dialog: Option<(CallRef, Side)>,
    ) -> Handled {
        let r = self.local_response(request, code, reason, dialog);
        let _ = tl.respond(now, tx, &r);
        Handled::Yes(Some(code))
    }

    /// A response we originate to `request`: the dialog's tag on that leg if given (a fresh one
    /// otherwise), and our Server header.
    fn local_response(
        &mut self,
        request: &Message,
        code: u16,
        reason: &str,
        dialog: Option<(CallRef, Side)>,
    ) -> Message {
        let mut r = response_for(request, code, reason);
        let tag = match dialog.and_then(|(call, side)| self.calls.get(&call).map(|c| (c, side))) {
            Some((c, Side::A)) => Some(c.a.local_tag.clone()),
            Some((c, Side::B)) => Some(c.b.local_tag.clone()),
            None => None,
        };
        add_to_tag(&mut r, || tag.unwrap_or_else(|| self.ids.token()));
        if let Some(s) = self.server.as_deref().filter(|s| !s.is_empty()) {
            r.push_header(HeaderName::Server, s);
        }
        r
    }

    /// A response for leg A's INVITE: our tag and Contact, and `sdp` (already crossed) if given.
    fn a_response(
        &mut self,
        call: CallRef,
        code: u16,
        reason: &str,
        sdp: Option<Vec<u8>>,
    ) -> Option<Message> {
        let c = self.calls.get(&call)?;
        let mut r = response_for(&c.a_invite, code, reason);
        let tag = c.a.local_tag.clone();
        add_to_tag(&mut r, || tag);
        if (101..300).contains(&code) {
            r.push_header(HeaderName::Contact, c.a.contact.clone());
        }
        if (200..300).contains(&code) {
            r.push_header(HeaderName::Allow, ALLOW);
        }
        if let Some(s) = self.server.as_deref().filter(|s| !s.is_empty()) {
            r.push_header(HeaderName::Server, s);
        }
        if let Some(sdp) = sdp
            && code < 300
        {
            r.push_header(HeaderName::ContentType, SDP);
            r.body = sdp;
        }
        Some(r)
    }

    /// Answers leg A's pending INVITE with 487, if it has not had its final response yet.
    fn terminate_a_invite(&mut self, now: Instant, call: CallRef, tl: &mut TransactionLayer) {
        self.answer_a(now, call, 487, "Request Terminated", tl);
    }

    /// Gives leg A's INVITE its final (failure) response, if it has not had one yet.
    fn answer_a(&mut self, now: Instant, call: CallRef, code: u16, reason: &str, tl: &mut TransactionLayer) {
        let a_tx = self.calls.get_mut(&call).and_then(|c| c.a_tx.take());
        if let Some(a_tx) = a_tx
            && let Some(r) = self.a_response(call, code, reason, None)
        {
            let _ = tl.respond(now, a_tx, &r);
        }
    }

    /// Leg A gave up before the answer: cancel leg B now if it has sent a provisional, otherwise as soon
    /// as it does (§9.1: a CANCEL may only follow a provisional response).
    fn abandon_b(&mut self, now: Instant, call: CallRef, tl: &mut TransactionLayer) {
        let provisional = self.calls.get_mut(&call).is_some_and(|c| {
            c.cancelled = true;
            c.cancel_pending = !c.b_provisional;
            c.b_provisional
        });
        if provisional {
            self.send_cancel(now, call, tl);
        }
    }

    fn send_cancel(&mut self, now: Instant, call: CallRef, tl: &mut TransactionLayer) {
        let Some(c) = self.calls.get(&call) else { return };
        let (route, b_tx) = (c.b.route, c.b_tx);
        let Some(cancel) = cancel_for(&c.b_invite, c.b_invite_cseq()) else {
            return;
        };
        if let Ok(id) = tl.start_client(now, cancel, route) {
            self.track(id, (call, Purpose::Cancel));
            // §9.1: the INVITE gives up 64·T1 after the CANCEL if no final response comes.
            if let Some(b_tx) = b_tx {
                tl.deadline(b_tx, now + tl.timeout_interval());
            }
        }
    }

    /// Calls still unanswered (no answer crossed to A) on a trunk monitoring has just marked down move
    /// to their route's next trunk at once, instead of waiting for the dead trunk's timers (Timer C
    /// after a provisional: 3 minutes). The dead leg is CANCELled if it had sent a provisional.
    fn leave_down_trunks(&mut self, now: Instant, tl: &mut TransactionLayer) {
        let stuck: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Early
                    && !c.b_early_answer
                    && !c.cancelled
                    && !c.cancel_pending
                    && c.a_tx.is_some()
                    && c.trunk.is_some_and(|t| !self.router.is_up(t))
            })
            .map(|(id, _)| *id)
            .collect();
        for call in stuck {
            let Some(c) = self.calls.get(&call) else {
                continue;
            };
            let cancel = c
                .b_provisional
                .then(|| cancel_for(&c.b_invite, c.b_invite_cseq()))
                .flatten();
            let (old_route, old_tx) = (c.b.route, c.b_tx);
            if !self.fail_over(now, call, Failure::Unreachable, tl) {
                continue;
            }
            if let Some(tx) = old_tx {
                self.untrack(tx);
            }
            if let Some(cancel) = cancel
                && let Ok(id) = tl.start_client(now, cancel, old_route)
            {
                self.track(id, (call, Purpose::Cancel));
                if let Some(tx) = old_tx {
                    tl.deadline(tx, now + tl.timeout_interval());
                }
            }
        }
    }

    fn bye(&mut self, now: Instant, call: CallRef, side: Side, tl: &mut TransactionLayer) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let leg = if side == Side::A { &mut c.a } else { &mut c.b };
        let bye = build_in_dialog(leg, &mut self.ids, &Method::Bye, None, None);
        let route = leg.route;
        if let Ok(id) = tl.start_client(now, bye, route) {
            self.track(id, (call, Purpose::Bye));
        }
    }

    /// Marks the call over and stops routing its dialogs; the call itself is forgotten once none of
    /// its client transactions (BYE, CANCEL, the INVITE to B) is pending.
    fn end(&mut self, call: CallRef, reason: &str) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Ending {
            c.phase = Phase::Ending;
            let reason = if c.cancelled && !reason.starts_with("answered") {
                "CANCEL from A"
            } else {
                reason
            };
            self.events.push_back(CallEvent::Ended {
                call,
                reason: reason.to_owned(),
            });
            // Retransmitted BYEs are answered by their transactions; new requests get 481.
            let a_key = (c.a.call_id.clone(), c.a.local_tag.clone());
            let b_key = (c.b.call_id.clone(), c.b.local_tag.clone());
            self.dialogs.remove(&a_key);
            self.dialogs.remove(&b_key);
            for t in CallTimer::ALL {
                self.disarm(call, t);
            }
            self.media.release(call);
            self.router.ended(call);
        }
        self.forget_if_done(call);
    }

    fn forget_if_done(&mut self, call: CallRef) {
        let ending = self.calls.get(&call).is_some_and(|c| c.phase == Phase::Ending);
        if ending
            && !self.pending_per_call.contains_key(&call)
            && let Some(c) = self.calls.remove(&call)
        {
            self.by_a_dialog
                .remove(&(c.a.call_id, c.a.remote_tag.unwrap_or_default()));
        }
    }

    /// `sdp` from leg `side` of `call` crosses the media plane toward the other leg.
    fn cross(
        &mut self,
        now: Instant,
        call: CallRef,
        side: Side,
        kind: SdpKind,
        sdp: &[u8],
    ) -> Result<Vec<u8>, MediaRefusal> {
        let Some(c) = self.calls.get(&call) else {
            return Err(MediaRefusal {
                status: 481,
                reason: "Call/Transaction Does Not Exist".into(),
            });
        };
        let other = if side == Side::A { Side::B } else { Side::A };
        let (from, to) = (c.peer(side), c.peer(other));
        if from == to {
            // Two SIP peers (or two browsers) speak the same media: their descriptions pass unchanged
            // and the media flows between them without the gateway.
            return Ok(sdp.to_vec());
        }
        self.media.cross(now, call, from, kind, sdp)
    }

    /// Leg B of an unanswered call failed with `failure`: when the router names a next trunk, a new
    /// leg B (new dialog) goes there with the same offer and `true` is returned; A sees nothing of it.
    /// Not after an answer has crossed to A (early media), a CANCEL, or toward a browser.
    fn fail_over(
        &mut self,
        now: Instant,
        call: CallRef,
        failure: Failure,
        tl: &mut TransactionLayer,
    ) -> bool {
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        if c.trunk.is_none()
            || c.cancelled
            || c.cancel_pending
            || c.phase != Phase::Early
            || c.b_early_answer
            || c.a_tx.is_none()
        {
            return false;
        }
        let a_invite = c.a_invite.clone();
        let offer = c.b.last_offer.clone();
        let max_forwards = c
            .b_invite
            .header(&HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u8>().ok())
            .unwrap_or(69);
        let Some(target) = self.router.next(now, call, failure) else {
            return false;
        };
        let trunk = target.trunk;
        let Some((mut m, mut leg)) = self.b_invite(&a_invite, max_forwards, Dest::Trunk(target)) else {
            return false;
        };
        if let Some((ct, body)) = &offer {
            m.headers.retain(|h| h.name != HeaderName::ContentType);
            m.push_header(HeaderName::ContentType, ct.clone());
            m.body.clone_from(body);
            leg.last_offer = offer;
        }
        let Ok(b_tx) = tl.start_client(now, m.clone(), leg.route) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        self.dialogs.remove(&(c.b.call_id.clone(), c.b.local_tag.clone()));
        self.dialogs
            .insert((leg.call_id.clone(), leg.local_tag.clone()), (call, Side::B));
        c.b_first_hop = leg.route;
        c.b = leg;
        c.b_invite = m;
        c.b_tx = Some(b_tx);
        c.b_provisional = false;
        c.b_auth_tried = false;
        c.trunk = Some(trunk);
        self.track(b_tx, (call, Purpose::BInvite));
        self.arm(call, CallTimer::NoAnswer, now + TIMER_C);
        self.arm_attempt(now, call);
        self.events.push_back(CallEvent::Rerouted {
            call,
            after: failure,
            trunk,
        });
        true
    }

    /// The trunk challenged our INVITE (401/407): it is sent again once, in the same dialog with the
    /// next CSeq, carrying the trunk's digest credentials (RFC 3261 §22.2). `false` when there are
    /// none, the challenge is unusable, or this was already the retry.
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        call: CallRef,
        response: &Message,
        tl: &mut TransactionLayer,
    ) -> bool {
        let Some(c) = self.calls.get(&call) else {
            return false;
        };
        if c.b_auth_tried || c.cancelled || c.cancel_pending || c.phase != Phase::Early {
            return false;
        }
        let Some((username, password)) = c.trunk.and_then(|t| self.router.credentials(t)) else {
            return false;
        };
        let proxy = matches!(response.start, StartLine::Response { code: 407, .. });
        let name = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let challenges = response
            .headers
            .iter()
            .filter(|h| matches!(&h.name, HeaderName::Other(n) if n.eq_ignore_ascii_case(name)))
            .map(|h| h.value.as_str());
        let Some(challenge) = crate::digest::best(challenges) else {
            return false;
        };
        let StartLine::Request { uri, .. } = &c.b_invite.start else {
            return false;
        };
        let cnonce = self.ids.token();
        let authorization = crate::digest::authorization(
            &challenge,
            &crate::digest::Credentials { username, password },
            "INVITE",
            uri,
            &cnonce,
            1,
        );
        let mut m = c.b_invite.clone();
        let cseq = c.b_invite_cseq() + 1;
        m.headers.retain(|h| {
            !matches!(
                h.name,
                HeaderName::Authorization | HeaderName::ProxyAuthorization | HeaderName::CSeq
            )
        });
        m.push_header(HeaderName::CSeq, format!("{cseq} INVITE"));
        m.push_header(
            if proxy {
                HeaderName::ProxyAuthorization
            } else {
                HeaderName::Authorization
            },
            authorization,
        );
        let route = c.b.route;
        m.replace_top_via(&our_via(route, &mut self.ids));
        let Ok(b_tx) = tl.start_client(now, m.clone(), route) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        c.b.local_cseq = cseq;
        c.b.remote_tag = None;
        c.b_invite = m;
        c.b_tx = Some(b_tx);
        c.b_auth_tried = true;
        self.track(b_tx, (call, Purpose::BInvite));
        true
    }

    /// An OPTIONS probe toward a monitored trunk; its answer (or its absence) goes to the router.
    fn probe(&mut self, now: Instant, t: &Target, tl: &mut TransactionLayer) {
        let m = self.options_to(t);
        match tl.start_client(now, m, t.route) {
            Ok(tx) => {
                self.probes.insert(tx, t.trunk);
            }
            Err(_) => self.router.probe_answered(now, t.trunk, None),
        }
    }

    /// Sends an OPTIONS to trunk `trunk` for the operator (the web UI's test button): its answer comes
    /// back as a [`TestAnswer`] with the id returned here. `None` if the trunk is unknown or not
    /// resolved yet.
    pub fn test_options(&mut self, now: Instant, trunk: usize, tl: &mut TransactionLayer) -> Option<u64> {
        let t = self.router.target_of(trunk)?;
        let m = self.options_to(&t);
        self.next_test += 1;
        let id = self.next_test;
        match tl.start_client(now, m, t.route) {
            Ok(tx) => {
                self.tests.insert(tx, id);
            }
            Err(_) => self.test_answers.push_back(TestAnswer { id, status: None }),
        }
        Some(id)
    }

    /// The next answer to a test OPTIONS.
    pub fn poll_test_answer(&mut self) -> Option<TestAnswer> {
        self.test_answers.pop_front()
    }

    /// An out-of-dialog OPTIONS toward `t`.
    fn options_to(&mut self, t: &Target) -> Message {
        let mut m = Message {
            start: StartLine::Request {
                method: Method::Options,
                uri: format!("sip:{}", t.host),
                version: "SIP/2.0".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push_header(HeaderName::Via, our_via(t.route, &mut self.ids));
        m.push_header(HeaderName::MaxForwards, "70");
        m.push_header(
            HeaderName::From,
            format!("<sip:rtc-edge@{}>;tag={}", t.route.local, self.ids.token()),
        );
        m.push_header(HeaderName::To, format!("<sip:{}>", t.host));
        m.push_header(HeaderName::CallId, format!("{}@rtc-edge", self.ids.token()));
        m.push_header(HeaderName::CSeq, "1 OPTIONS");
        m.push_header(HeaderName::Contact, our_contact(t.route));
        m.push_header(HeaderName::Accept, SDP);
        if let Some(s) = self.server.as_deref().filter(|s| !s.is_empty()) {
            m.push_header(HeaderName::UserAgent, s);
        }
        m
    }

    /// Our INVITE toward `dest` and the B leg it opens (header rules for that direction applied).
    fn b_invite(&mut self, a: &Message, max_forwards: u8, dest: Dest) -> Option<(Message, Leg)> {
        let StartLine::Request { uri, .. } = &a.start else {
            return None;
        };
        let user = request_user(uri)?;
        // Toward a registered browser: its flow and its Contact; otherwise the trunk.
        let (route, target, toward) = match dest {
            Dest::Browser(route, contact) => (route, contact, Toward::Browser),
            Dest::Trunk(t) => (t.route, format!("sip:{user}@{}", t.host), Toward::Trunk(t.trunk)),
        };
        let call_id = format!("{}@rtc-edge", self.ids.token());
        let tag = self.ids.token();
        let from = strip_tag(a.header(&HeaderName::From)?);
        let to = strip_tag(a.header(&HeaderName::To)?);
        let contact = our_contact(route);
        let mut m = Message {
            start: StartLine::Request {
                method: Method::Invite,
                uri: target.clone(),
                version: "SIP/2.0".into(),
            },
            headers: Vec::new(),
            body: a.body.clone(),
        };
        m.push_header(HeaderName::Via, our_via(route, &mut self.ids));
        m.push_header(HeaderName::MaxForwards, max_forwards.to_string());
        m.push_header(HeaderName::From, format!("{from};tag={tag}"));
        m.push_header(HeaderName::To, to.clone());
        m.push_header(HeaderName::CallId, call_id.clone());
        m.push_header(HeaderName::CSeq, "1 INVITE");
        m.push_header(HeaderName::Contact, contact.clone());
        m.push_header(HeaderName::Allow, ALLOW);
        // RFC 4028 on this leg, independent of leg A's.
        m.push_header(HeaderName::Supported, "timer");
        m.push_header(HeaderName::SessionExpires, TRUNK_SESSION_EXPIRES.to_string());
        m.push_header(HeaderName::MinSe, MIN_SE.to_string());
        if let Some(s) = self.server.as_deref().filter(|s| !s.is_empty()) {
            m.push_header(HeaderName::UserAgent, s);
        }
        if !a.body.is_empty()
            && let Some(ct) = a.header(&HeaderName::ContentType)
        {
            m.push_header(HeaderName::ContentType, ct);
        }
        self.router.rewrite(toward, &mut m);
        // The rules may have changed the identities: the leg keeps what was sent.
        let (from, to) = (
            m.header(&HeaderName::From).map_or(from, strip_tag),
            m.header(&HeaderName::To).map_or(to, strip_tag),
        );
        let target = match &m.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => target,
        };
        let leg = Leg {
            route,
            call_id,
            local_tag: tag,
            remote_tag: None,
            local_uri: from,
            remote_uri: to,
            remote_target: target,
            route_set: Vec::new(),
            local_cseq: 1,
            contact,
            allows_update: false,
            session: None,
            last_offer: (!a.body.is_empty()).then(|| {
                let ct = a
                    .header(&HeaderName::ContentType)
                    .unwrap_or("application/sdp")
                    .to_owned();
                (ct, a.body.clone())
            }),
        };
        Some((m, leg))
    }
}

impl Call {
    /// What kind of peer leg `side` talks to.
    fn peer(&self, side: Side) -> Peer {
        Peer::of(if side == Side::A {
            self.a.route
        } else {
            self.b.route
        })
    }

    fn b_invite_cseq(&self) -> u32 {
        self.b_invite
            .header(&HeaderName::CSeq)
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// The digit and duration of a DTMF INFO: `application/dtmf-relay` (`Signal=5` / `Duration=160`, ms)
/// or `application/dtmf` (the digit alone; 250 ms).
fn dtmf_info(m: &Message) -> Option<(char, Duration)> {
    let ct = m.header(&HeaderName::ContentType)?.split(';').next()?.trim();
    let body = std::str::from_utf8(&m.body).ok()?;
    let digit_of = |s: &str| {
        let mut chars = s.trim().chars();
        let c = chars.next()?.to_ascii_uppercase();
        (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
    };
    if ct.eq_ignore_ascii_case("application/dtmf") {
        return Some((digit_of(body)?, Duration::from_millis(250)));
    }
    if !ct.eq_ignore_ascii_case("application/dtmf-relay") {
        return None;
    }
    let mut digit = None;
    let mut ms = 250u64;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = digit_of(v),
            "duration" => ms = v.trim().parse().ok()?,
            _ => {}
        }
    }
    Some((digit?, Duration::from_millis(ms.clamp(40, 5000))))
}

/// A body to carry: Content-Type and bytes.
type Body<'a> = Option<(&'a str, &'a [u8])>;

/// A request within `leg`'s dialog (§12.2.1.1); ACK reuses `cseq`, others take the next number.
fn build_in_dialog(
    leg: &mut Leg,
    ids: &mut Ids,
    method: &Method,
    cseq: Option<u32>,
    body: Body<'_>,
) -> Message {
    let number = cseq.unwrap_or_else(|| {
        leg.local_cseq += 1;
        leg.local_cseq
    });
    let mut m = Message {
        start: StartLine::Request {
            method: method.clone(),
            uri: leg.remote_target.clone(),
            version: "SIP/2.0".into(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    m.push_header(HeaderName::Via, our_via(leg.route, ids));
    m.push_header(HeaderName::MaxForwards, "70");
    for r in &leg.route_set {
        m.push_header(HeaderName::Route, r.clone());
    }
    m.push_header(
        HeaderName::From,
        format!("{};tag={}", leg.local_uri, leg.local_tag),
    );
    match &leg.remote_tag {
        Some(t) => m.push_header(HeaderName::To, format!("{};tag={t}", leg.remote_uri)),
        None => m.push_header(HeaderName::To, leg.remote_uri.clone()),
    }
    m.push_header(HeaderName::CallId, leg.call_id.clone());
    m.push_header(HeaderName::CSeq, format!("{number} {method}"));
    if let Some((content_type, bytes)) = body {
        m.push_header(HeaderName::ContentType, content_type);
        m.body = bytes.to_vec();
    }
    m
}

/// The CANCEL for our INVITE `inv` (RFC 3261 §9.1: same Request-URI, top Via, Route, From, To,
/// Call-ID; CSeq number `cseq` with method CANCEL).
fn cancel_for(inv: &Message, cseq: u32) -> Option<Message> {
    let StartLine::Request { uri, .. } = &inv.start else {
        return None;
    };
    let mut cancel = Message {
        start: StartLine::Request {
            method: Method::Cancel,
            uri: uri.clone(),
            version: "SIP/2.0".into(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    for name in [HeaderName::Via, HeaderName::Route] {
        for v in inv.headers.iter().filter(|h| h.name == name) {
            cancel.headers.push(v.clone());
        }
    }
    cancel.push_header(HeaderName::MaxForwards, "70");
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        cancel.push_header(name.clone(), inv.header(&name).unwrap_or_default());
    }
    cancel.push_header(HeaderName::CSeq, format!("{cseq} CANCEL"));
    Some(cancel)
}

/// Learns the peer's tag, Contact and Record-Route from a response on leg B (§12.1.2: route set reversed).
fn learn_remote(leg: &mut Leg, response: &Message, first_hop: Route) {
    if response.header(&HeaderName::Allow).is_some() {
        leg.allows_update = allows(response, "UPDATE");
    }
    if leg.remote_tag.is_none() {
        leg.remote_tag = response
            .header(&HeaderName::To)
            .and_then(|t| header_param(t, "tag"))
            .flatten()
            .map(str::to_owned);
    }
    if let Some(target) = contact_uri(response) {
        // Requests go where the Contact (or the first Route) says when it is an IP literal; a host name
        // would need DNS, which the core does not do: then the trunk address is used.
        leg.remote_target = target;
    }
    let rr: Vec<String> = response
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::RecordRoute)
        .map(|h| h.value.clone())
        .collect();
    if !rr.is_empty() {
        leg.route_set = rr.into_iter().rev().collect();
    }
    if leg.route.transport.is_reliable() {
        // A connection-oriented leg (a browser's WebSocket) is reached on its flow, whatever its
        // Contact says (`*.invalid` hosts).
        return;
    }
    let next_hop = leg
        .route_set
        .first()
        .map(|r| uri_in(r).to_owned())
        .unwrap_or_else(|| leg.remote_target.clone());
    leg.route = Route {
        remote: address_of(&next_hop).unwrap_or(first_hop.remote),
        ..first_hop
    };
}

/// The URI inside a name-addr (`<...>`), or the value itself.
fn uri_in(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b).unwrap_or(value),
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

fn contact_uri(m: &Message) -> Option<String> {
    m.values(&HeaderName::Contact)
        .next()
        .map(|c| uri_in(c).to_owned())
}

/// The socket address of a SIP URI whose host is an IP literal.
fn address_of(uri: &str) -> Option<SocketAddr> {
    let u = SipUri::parse(uri).ok()?;
    let ip: IpAddr = u.host.parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

/// The user part of a request-URI (`sip:user@host`, `tel:+number`).
fn request_user(uri: &str) -> Option<String> {
    if let Some(number) = uri.strip_prefix("tel:") {
        return Some(number.split(';').next()?.to_owned());
    }
    SipUri::parse(uri).ok()?.user.map(str::to_owned)
}

/// Whether the message's Allow headers list `method`.
fn allows(m: &Message, method: &str) -> bool {
    m.values(&HeaderName::Allow)
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(method)))
}

/// A header value without its `tag` parameter.
fn strip_tag(value: &str) -> String {
    let (head, params) = match value.rfind('>') {
        Some(i) => (value.get(..=i).unwrap_or(value), value.get(i + 1..).unwrap_or("")),
        None => match value.split_once(';') {
            Some((h, p)) => (h, p),
            None => (value, ""),
        },
    };
    let mut out = head.trim().to_owned();
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let name = p.split('=').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("tag") {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

fn add_to_tag(r: &mut Message, tag: impl FnOnce() -> String) {
    if let Some(to) = r.headers.iter_mut().find(|h| h.name == HeaderName::To)
        && header_param(&to.value, "tag").is_none()
    {
        to.value = format!("{};tag={}", to.value, tag());
    }
}

fn our_via(route: Route, ids: &mut Ids) -> String {
    format!(
        "SIP/2.0/{} {};branch={MAGIC_COOKIE}{};rport",
        route.transport.via_token(),
        route.local,
        ids.token()
    )
}

fn our_contact(route: Route) -> String {
    match route.transport {
        Transport::Udp => format!("<sip:rtc-edge@{}>", route.local),
        t => format!(
            "<sip:rtc-edge@{};transport={}>",
            route.local,
            t.via_token().to_ascii_lowercase()
        ),
    }
}

/// Failure codes as leg A should see them.
fn map_failure(code: u16, reason: &str) -> (u16, String) {
    match code {
        // A challenge is for the gateway (trunk credentials), never for the browser.
        401 | 407 => (403, "Forbidden (trunk authentication failed)".into()),
        // §16.7 logic: a downstream 503 means that server, not us; tell A the callee is unreachable.
        503 => (480, "Temporarily Unavailable".into()),
        _ => (code, reason.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::endpoint::{Endpoint, EndpointConfig, Outcome};
    use crate::transport::{Datagram, Transmit};

    const GW_UDP: &str = "192.0.2.1:5060";
    const GW_WS: &str = "192.0.2.1:5066";
    const TRUNK: &str = "203.0.113.10:5060";
    const BROWSER: &str = "198.51.100.20:50000";

    /// A browser on a WebSocket (leg A), a trunk on UDP (leg B), and the gateway between.
    struct Net {
        ep: Endpoint,
        now: Instant,
    }

    impl Net {
        fn new() -> Self {
            let trunk = crate::router::OneTrunk {
                route: Route {
                    transport: Transport::Udp,
                    local: GW_UDP.parse().unwrap(),
                    remote: TRUNK.parse().unwrap(),
                },
            };
            let ep = Endpoint::new(EndpointConfig {
                server: Some("RTC-Edge/test".into()),
                tag_secret: 7,
                timers: TimerConfig::default(),
                router: Some(Box::new(trunk)),
            });
            Self {
                ep,
                now: crate::test_epoch(),
            }
        }

        fn a_sends(&mut self, text: &str) -> (Outcome, Vec<Transmit>) {
            self.feed(Transport::Ws, GW_WS, BROWSER, text)
        }

        fn b_sends(&mut self, text: &str) -> (Outcome, Vec<Transmit>) {
            self.feed(Transport::Udp, GW_UDP, TRUNK, text)
        }

        fn feed(
            &mut self,
            transport: Transport,
            local: &str,
            remote: &str,
            text: &str,
        ) -> (Outcome, Vec<Transmit>) {
            let d = Datagram {
                transport,
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
                payload: text.as_bytes(),
            };
            let o = self.ep.handle_datagram(self.now, d);
            (o, std::iter::from_fn(|| self.ep.poll_transmit()).collect())
        }

        fn advance(&mut self, by: Duration) -> Vec<Transmit> {
            self.now += by;
            self.ep.handle_timeout(self.now);
            std::iter::from_fn(|| self.ep.poll_transmit()).collect()
        }
    }

    fn to_a(sent: &[Transmit]) -> Vec<Message> {
        sent.iter()
            .filter(|t| t.destination == BROWSER.parse().unwrap())
            .map(|t| Message::parse(&t.payload).unwrap())
            .collect()
    }

    fn to_b(sent: &[Transmit]) -> Vec<Message> {
        sent.iter()
            .filter(|t| t.destination == TRUNK.parse().unwrap())
            .map(|t| Message::parse(&t.payload).unwrap())
            .collect()
    }

    fn first_line(m: &Message) -> String {
        String::from_utf8(m.encode())
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned()
    }

    fn lines(ms: &[Message]) -> Vec<String> {
        ms.iter().map(first_line).collect()
    }

    const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    const SDP_B: &str = "v=0\r\no=- 2 2 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";

    /// JsSIP's INVITE, shortened.
    fn a_invite(body: &str) -> String {
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        format!(
            "INVITE sip:bob@gw.example.com SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK9uy1cqb\r\n\
             Max-Forwards: 69\r\n\
             To: <sip:bob@gw.example.com>\r\n\
             From: \"Alice\" <sip:alice@gw.example.com>;tag=ahg2k8a5k2\r\n\
             Call-ID: browser-call-1\r\n\
             CSeq: 8061 INVITE\r\n\
             Contact: <sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
             Session-Expires: 90\r\n\
             Supported: timer,ice,replaces,outbound\r\n\
             {ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// The trunk's response to the INVITE it received.
    fn b_response(invite: &Message, code: u16, reason: &str, body: &str) -> String {
        let mut r = response_for(invite, code, reason);
        for h in r.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
            h.value.push_str(";tag=trunk-tag-1");
        }
        if code > 100 {
            r.push_header(HeaderName::Contact, "<sip:bob@203.0.113.10:5060>");
            r.push_header(HeaderName::RecordRoute, "<sip:203.0.113.10;lr>");
        }
        if !body.is_empty() {
            r.push_header(HeaderName::ContentType, "application/sdp");
            r.body = body.as_bytes().to_vec();
        }
        String::from_utf8(r.encode()).unwrap()
    }

    /// A request the browser sends within the dialog, echoing the gateway's 2xx To-tag.
    fn a_in_dialog(method: &str, cseq: u32, a_ok: &Message) -> String {
        let to = a_ok.header(&HeaderName::To).unwrap();
        format!(
            "{method} sip:rtc-edge@192.0.2.1:5066;transport=ws SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{method}{cseq}\r\n\
             Max-Forwards: 69\r\n\
             To: {to}\r\n\
             From: \"Alice\" <sip:alice@gw.example.com>;tag=ahg2k8a5k2\r\n\
             Call-ID: browser-call-1\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// No header naming one side's topology may reach the other side. (Bodies are passed through until
    /// the media plane anchors them and rewrites the SDP.)
    fn assert_hidden(to_b: &[Message], to_a: &[Message]) {
        let head = |m: &Message| {
            let text = String::from_utf8(m.encode()).unwrap();
            text.split("\r\n\r\n").next().unwrap().to_owned()
        };
        for m in to_b {
            let text = head(m);
            for leak in [
                "df7jal23ls0d",
                "k3l8d5",
                "browser-call-1",
                "198.51.100.20",
                "Session-Expires: 90",
            ] {
                assert!(!text.contains(leak), "{leak} leaked to the trunk:\n{text}");
            }
        }
        for m in to_a {
            let text = head(m);
            for leak in ["trunk-tag-1", "203.0.113.10", "rtc-edge@192.0.2.1:5060"] {
                assert!(!text.contains(leak), "{leak} leaked to the browser:\n{text}");
            }
        }
    }

    /// Up to the answer: returns the INVITE the trunk got and the 200 the browser got.
    fn answered_call(net: &mut Net, body: &str) -> (Message, Message, Vec<Message>) {
        let (o, sent) = net.a_sends(&a_invite(body));
        assert_eq!(
            o,
            Outcome::Relayed {
                method: Method::Invite
            }
        );
        assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 100 Trying"]);
        let b_inv = to_b(&sent).pop().unwrap();
        let (_, sent) = net.b_sends(&b_response(&b_inv, 180, "Ringing", ""));
        let mut seen_by_a = to_a(&sent);
        assert_eq!(lines(&seen_by_a), ["SIP/2.0 180 Ringing"]);
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        let acks = to_b(&sent);
        let a_msgs = to_a(&sent);
        assert_eq!(lines(&a_msgs), ["SIP/2.0 200 OK"]);
        seen_by_a.extend(a_msgs.clone());
        if body.is_empty() {
            assert!(acks.is_empty(), "late offer: B's ACK waits for A's answer");
        } else {
            assert_eq!(lines(&acks), ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"]);
        }
        (b_inv, a_msgs.into_iter().next().unwrap(), seen_by_a)
    }

    #[test]
    fn invite_is_bridged_with_a_fresh_dialog_and_hidden_topology() {
        let mut net = Net::new();
        let (b_inv, a_ok, seen_by_a) = answered_call(&mut net, SDP_A);
        assert_eq!(first_line(&b_inv), "INVITE sip:bob@203.0.113.10:5060 SIP/2.0");
        let vias: Vec<_> = b_inv.values(&HeaderName::Via).collect();
        assert_eq!(vias.len(), 1);
        assert!(
            vias[0].starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK"),
            "{}",
            vias[0]
        );
        assert_eq!(b_inv.header(&HeaderName::MaxForwards), Some("68"));
        assert!(
            b_inv
                .header(&HeaderName::From)
                .unwrap()
                .starts_with("\"Alice\" <sip:alice@gw.example.com>;tag=")
        );
        assert_eq!(b_inv.header(&HeaderName::To), Some("<sip:bob@gw.example.com>"));
        assert_eq!(b_inv.header(&HeaderName::CSeq), Some("1 INVITE"));
        assert_eq!(
            b_inv.header(&HeaderName::Contact),
            Some("<sip:rtc-edge@192.0.2.1:5060>")
        );
        assert_eq!(
            b_inv.body,
            SDP_A.as_bytes(),
            "SDP passed through until the media plane anchors it"
        );
        assert_eq!(a_ok.body, SDP_B.as_bytes());
        assert_eq!(
            a_ok.header(&HeaderName::Contact),
            Some("<sip:rtc-edge@192.0.2.1:5066;transport=ws>")
        );
        assert_eq!(
            a_ok.values(&HeaderName::Via).collect::<Vec<_>>(),
            ["SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK9uy1cqb;received=198.51.100.20"]
        );
        assert_eq!(a_ok.header(&HeaderName::CallId), Some("browser-call-1"));
        assert_eq!(net.ep.active_calls(), 1);
        // The browser ACKs, then hangs up: the trunk gets a BYE in its dialog, through its Record-Route.
        let (o, sent) = net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        assert_eq!((o, sent.len()), (Outcome::Absorbed, 0));
        let (_, sent) = net.a_sends(&a_in_dialog("BYE", 8062, &a_ok));
        assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 200 OK"]);
        let bye = to_b(&sent).pop().unwrap();
        assert_eq!(first_line(&bye), "BYE sip:bob@203.0.113.10:5060 SIP/2.0");
        assert_eq!(
            bye.header(&HeaderName::To),
            Some("<sip:bob@gw.example.com>;tag=trunk-tag-1")
        );
        assert_eq!(bye.header(&HeaderName::CSeq), Some("2 BYE"));
        assert_eq!(bye.header(&HeaderName::Route), Some("<sip:203.0.113.10;lr>"));
        assert_eq!(bye.header(&HeaderName::CallId), b_inv.header(&HeaderName::CallId));
        assert_hidden(&[b_inv, bye.clone()], &seen_by_a);
        let (_, sent) = net.b_sends(&String::from_utf8(response_for(&bye, 200, "OK").encode()).unwrap());
        assert!(sent.is_empty());
        assert_eq!(net.ep.active_calls(), 0);
        let events: Vec<_> = std::iter::from_fn(|| net.ep.poll_call_event()).collect();
        assert!(
            matches!(events.last(), Some(CallEvent::Ended { reason, .. }) if reason == "BYE from A"),
            "{events:?}"
        );
    }

    #[test]
    fn bye_from_the_trunk_reaches_the_browser_on_its_websocket() {
        let mut net = Net::new();
        let (b_inv, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let b_from = b_inv.header(&HeaderName::From).unwrap();
        let b_bye = format!(
            "BYE sip:rtc-edge@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKtrunkbye\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@gw.example.com>;tag=trunk-tag-1\r\nTo: {b_from}\r\n\
             Call-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            b_inv.header(&HeaderName::CallId).unwrap()
        );
        let (_, sent) = net.b_sends(&b_bye);
        assert_eq!(lines(&to_b(&sent)), ["SIP/2.0 200 OK"]);
        let bye = to_a(&sent).pop().unwrap();
        assert_eq!(
            first_line(&bye),
            "BYE sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0"
        );
        assert!(
            bye.values(&HeaderName::Via)
                .next()
                .unwrap()
                .starts_with("SIP/2.0/WS 192.0.2.1:5066;branch=")
        );
        assert_eq!(bye.header(&HeaderName::From), a_ok.header(&HeaderName::To));
        assert_eq!(
            bye.header(&HeaderName::To),
            Some("\"Alice\" <sip:alice@gw.example.com>;tag=ahg2k8a5k2")
        );
        assert_eq!(bye.header(&HeaderName::CallId), Some("browser-call-1"));
        assert_eq!(bye.header(&HeaderName::CSeq), Some("1 BYE"));
        assert_hidden(&[], &[bye]);
    }

    #[test]
    fn early_media_183_reaches_the_browser_without_100rel() {
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        let mut r183 = b_response(&b_inv, 183, "Session Progress", SDP_B);
        r183 = r183.replace("Content-Type", "Require: 100rel\r\nRSeq: 1\r\nContent-Type");
        let (_, sent) = net.b_sends(&r183);
        let a = to_a(&sent).pop().unwrap();
        assert_eq!(first_line(&a), "SIP/2.0 183 Session Progress");
        assert_eq!(a.body, SDP_B.as_bytes());
        assert_eq!(a.header(&HeaderName::Require), None);
        assert_eq!(a.header(&HeaderName::Other("RSeq".into())), None);
    }

    #[test]
    fn failures_are_mapped_and_acked() {
        for (code, reason, expect) in [
            (486, "Busy Here", "SIP/2.0 486 Busy Here"),
            (404, "Not Found", "SIP/2.0 404 Not Found"),
            (503, "Service Unavailable", "SIP/2.0 480 Temporarily Unavailable"),
            (
                407,
                "Proxy Authentication Required",
                "SIP/2.0 403 Forbidden (trunk authentication failed)",
            ),
        ] {
            let mut net = Net::new();
            let (_, sent) = net.a_sends(&a_invite(SDP_A));
            let b_inv = to_b(&sent).pop().unwrap();
            let (_, sent) = net.b_sends(&b_response(&b_inv, code, reason, ""));
            assert_eq!(lines(&to_a(&sent)), [expect]);
            assert_eq!(
                lines(&to_b(&sent)),
                ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"],
                "the transaction ACKs the {code}"
            );
            assert_eq!(net.ep.active_calls(), 0);
        }
    }

    #[test]
    fn cancel_while_ringing_and_the_cancel_200_race() {
        for trunk_answers in [false, true] {
            let mut net = Net::new();
            let (_, sent) = net.a_sends(&a_invite(SDP_A));
            let b_inv = to_b(&sent).pop().unwrap();
            net.b_sends(&b_response(&b_inv, 180, "Ringing", ""));
            let cancel = a_invite("")
                .replacen("INVITE sip:", "CANCEL sip:", 1)
                .replace("8061 INVITE", "8061 CANCEL");
            let (o, sent) = net.a_sends(&cancel);
            assert_eq!(
                o,
                Outcome::Answered {
                    method: Method::Cancel,
                    code: 200
                }
            );
            assert_eq!(
                lines(&to_a(&sent)),
                ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
            );
            let b_cancel = to_b(&sent).pop().unwrap();
            assert_eq!(
                first_line(&b_cancel),
                first_line(&b_inv).replace("INVITE", "CANCEL")
            );
            assert_eq!(
                b_cancel.values(&HeaderName::Via).next(),
                b_inv.values(&HeaderName::Via).next(),
                "same branch"
            );
            assert_eq!(b_cancel.header(&HeaderName::CSeq), Some("1 CANCEL"));
            net.b_sends(&String::from_utf8(response_for(&b_cancel, 200, "OK").encode()).unwrap());
            if trunk_answers {
                // The callee picked up as the CANCEL crossed: ACK and BYE it.
                let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
                assert_eq!(
                    lines(&to_b(&sent)),
                    [
                        "ACK sip:bob@203.0.113.10:5060 SIP/2.0",
                        "BYE sip:bob@203.0.113.10:5060 SIP/2.0"
                    ]
                );
                assert!(to_a(&sent).is_empty());
                let bye = to_b(&sent).pop().unwrap();
                net.b_sends(&String::from_utf8(response_for(&bye, 200, "OK").encode()).unwrap());
            } else {
                let (_, sent) = net.b_sends(&b_response(&b_inv, 487, "Request Terminated", ""));
                assert_eq!(lines(&to_b(&sent)), ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"]);
                assert!(to_a(&sent).is_empty(), "A already has its 487");
            }
            assert_eq!(net.ep.active_calls(), 0, "trunk answered: {trunk_answers}");
        }
    }

    #[test]
    fn cancel_before_any_provisional_waits_for_one() {
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        let cancel = a_invite("")
            .replacen("INVITE sip:", "CANCEL sip:", 1)
            .replace("8061 INVITE", "8061 CANCEL");
        let (_, sent) = net.a_sends(&cancel);
        assert!(to_b(&sent).is_empty(), "§9.1: no CANCEL before a provisional");
        let (_, sent) = net.b_sends(&b_response(&b_inv, 100, "Trying", ""));
        assert!(to_a(&sent).is_empty(), "a 100 from the trunk is not relayed");
        assert_eq!(
            lines(&to_b(&sent)),
            [first_line(&b_inv).replace("INVITE", "CANCEL")],
            "but it allows the CANCEL"
        );
        let (_, sent) = net.b_sends(&b_response(&b_inv, 180, "Ringing", ""));
        assert!(to_a(&sent).is_empty(), "no 180 after the browser cancelled");
        assert!(to_b(&sent).is_empty(), "one CANCEL only");
    }

    #[test]
    fn no_answer_gives_408_on_timer_b() {
        let mut net = Net::new();
        net.a_sends(&a_invite(SDP_A));
        let sent = net.advance(Duration::from_secs(33));
        assert!(
            to_a(&sent)
                .iter()
                .any(|m| first_line(m) == "SIP/2.0 408 Request Timeout"),
            "{:?}",
            lines(&to_a(&sent))
        );
        assert_eq!(net.ep.active_calls(), 0);
    }

    #[test]
    fn max_forwards_zero_is_483() {
        let mut net = Net::new();
        let (o, sent) = net.a_sends(&a_invite(SDP_A).replace("Max-Forwards: 69", "Max-Forwards: 0"));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Invite,
                code: 483
            }
        );
        assert_eq!(
            lines(&to_a(&sent)),
            ["SIP/2.0 100 Trying", "SIP/2.0 483 Too Many Hops"]
        );
        assert!(to_b(&sent).is_empty());
    }

    #[test]
    fn late_offer_answer_travels_in_the_ack() {
        let mut net = Net::new();
        let (_, a_ok, _) = answered_call(&mut net, "");
        assert_eq!(a_ok.body, SDP_B.as_bytes(), "B's offer reaches A in the 200");
        let ack = a_in_dialog("ACK", 8061, &a_ok).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                SDP_A.len()
            ),
        );
        let (_, sent) = net.a_sends(&ack);
        let b_ack = to_b(&sent).pop().unwrap();
        assert_eq!(first_line(&b_ack), "ACK sip:bob@203.0.113.10:5060 SIP/2.0");
        assert_eq!(b_ack.header(&HeaderName::CSeq), Some("1 ACK"));
        assert_eq!(b_ack.body, SDP_A.as_bytes());
    }

    #[test]
    fn missing_ack_over_udp_retransmits_the_2xx_then_ends_the_call() {
        let mut net = Net::new();
        // This time the caller is on UDP (a SIP phone), so the 2xx is retransmitted (§13.3.1.4).
        let inv = a_invite(SDP_A).replace(
            "SIP/2.0/WS df7jal23ls0d.invalid",
            "SIP/2.0/UDP 198.51.100.20:50000",
        );
        let (_, sent) = net.feed(Transport::Udp, GW_UDP, BROWSER, &inv);
        let b_inv = to_b(&sent).pop().unwrap();
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 200 OK"]);
        let mut resent = 0;
        let mut byes = Vec::new();
        for _ in 0..40 {
            let sent = net.advance(Duration::from_secs(1));
            resent += to_a(&sent)
                .iter()
                .filter(|m| first_line(m) == "SIP/2.0 200 OK")
                .count();
            byes.extend(
                lines(&to_a(&sent))
                    .into_iter()
                    .chain(lines(&to_b(&sent)))
                    .filter(|l| l.starts_with("BYE")),
            );
        }
        assert!(resent >= 8, "2xx retransmitted until 64·T1: {resent}");
        byes.sort();
        byes.dedup(); // nobody answers the BYEs here, so Timer E retransmits them
        assert_eq!(byes.len(), 2, "both legs hung up: {byes:?}");
    }

    #[test]
    fn in_dialog_refresh_is_answered_locally_and_unknown_dialogs_get_481() {
        let mut net = Net::new();
        let (_, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let (o, sent) = net.a_sends(&a_in_dialog("UPDATE", 8062, &a_ok));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Update,
                code: 200
            }
        );
        assert!(to_b(&sent).is_empty(), "session refreshes are per leg");
        let (o, _) = net.a_sends(&a_in_dialog("INFO", 8063, &a_ok));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Info,
                code: 200
            }
        );
        let stranger = a_in_dialog("BYE", 9, &a_ok).replace("browser-call-1", "no-such-call");
        let (o, _) = net.a_sends(&stranger);
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Bye,
                code: 481
            }
        );
    }

    fn a_register(cseq: u32, extra: &str) -> String {
        format!(
            "REGISTER sip:gw.example.com SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg{cseq}\r\n\
             Max-Forwards: 69\r\n\
             To: <sip:alice@gw.example.com>\r\n\
             From: <sip:alice@gw.example.com>;tag=regtag1\r\n\
             Call-ID: browser-reg-1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:k3l8d5@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:f81d4fae>\";expires=600\r\n\
             Expires: 600\r\n\
             Supported: path,gruu,outbound\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    /// Registers alice through the gateway (with a digest round); returns the token in our Contact.
    fn registered_alice(net: &mut Net) -> String {
        let (o, sent) = net.a_sends(&a_register(1, ""));
        assert_eq!(
            o,
            Outcome::Relayed {
                method: Method::Register
            }
        );
        let reg = to_b(&sent).pop().unwrap();
        assert_eq!(first_line(&reg), "REGISTER sip:gw.example.com SIP/2.0");
        let contact = reg.header(&HeaderName::Contact).unwrap().to_owned();
        let token = contact
            .strip_prefix("<sip:")
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(contact, format!("<sip:{token}@192.0.2.1:5060>;expires=600"));
        assert_hidden(std::slice::from_ref(&reg), &[]);
        let text = String::from_utf8(reg.encode()).unwrap();
        assert!(
            !text.contains("+sip.instance") && !text.contains("reg-id") && !text.contains("Supported"),
            "{text}"
        );
        // The registrar challenges; the challenge reaches the browser.
        let mut challenge = response_for(&reg, 401, "Unauthorized");
        challenge.push_header(
            HeaderName::Other("WWW-Authenticate".into()),
            "Digest realm=\"gw.example.com\", nonce=\"n1\"",
        );
        let (_, sent) = net.b_sends(&String::from_utf8(challenge.encode()).unwrap());
        let a401 = to_a(&sent).pop().unwrap();
        assert_eq!(first_line(&a401), "SIP/2.0 401 Unauthorized");
        assert_eq!(
            a401.header(&HeaderName::Other("WWW-Authenticate".into())),
            Some("Digest realm=\"gw.example.com\", nonce=\"n1\"")
        );
        // The browser answers it; the credentials pass through, in the same registration (Call-ID).
        let auth = "Authorization: Digest username=\"alice\", realm=\"gw.example.com\", nonce=\"n1\", uri=\"sip:gw.example.com\", response=\"0123\"\r\n";
        let (_, sent) = net.a_sends(&a_register(2, auth));
        let reg2 = to_b(&sent).pop().unwrap();
        assert_eq!(reg2.header(&HeaderName::CallId), reg.header(&HeaderName::CallId));
        assert_eq!(reg2.header(&HeaderName::CSeq), Some("2 REGISTER"));
        assert!(
            reg2.header(&HeaderName::Authorization)
                .unwrap()
                .contains("response=\"0123\"")
        );
        let mut ok = response_for(&reg2, 200, "OK");
        ok.push_header(
            HeaderName::Contact,
            format!("<sip:{token}@192.0.2.1:5060>;expires=300"),
        );
        ok.push_header(HeaderName::Contact, "<sip:other@203.0.113.77>;expires=100");
        let (_, sent) = net.b_sends(&String::from_utf8(ok.encode()).unwrap());
        let a200 = to_a(&sent).pop().unwrap();
        assert_eq!(first_line(&a200), "SIP/2.0 200 OK");
        assert_eq!(
            a200.values(&HeaderName::Contact).collect::<Vec<_>>(),
            ["<sip:k3l8d5@df7jal23ls0d.invalid;transport=ws>;expires=300"]
        );
        assert_eq!(
            a200.headers
                .iter()
                .filter(|h| h.name == HeaderName::Server)
                .count(),
            1
        );
        assert_hidden(&[], &[a200]);
        assert_eq!(net.ep.registered(), 1);
        token
    }

    /// The trunk calls `user` (a token or an AoR user).
    fn trunk_invite(user: &str) -> String {
        format!(
            "INVITE sip:{user}@192.0.2.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKpbx1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bob@gw.example.com>;tag=pbx-tag\r\n\
             To: <sip:alice@gw.example.com>\r\n\
             Call-ID: pbx-call-1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:bob@203.0.113.10:5060>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{SDP_B}",
            SDP_B.len()
        )
    }

    #[test]
    fn registration_relays_challenges_and_calls_reach_the_browser_on_its_websocket() {
        let mut net = Net::new();
        let token = registered_alice(&mut net);
        let (o, sent) = net.b_sends(&trunk_invite(&token));
        assert_eq!(
            o,
            Outcome::Relayed {
                method: Method::Invite
            }
        );
        assert_eq!(lines(&to_b(&sent)), ["SIP/2.0 100 Trying"]);
        let to_browser: Vec<&Transmit> = sent
            .iter()
            .filter(|t| t.destination == BROWSER.parse().unwrap())
            .collect();
        assert_eq!(to_browser.len(), 1);
        assert_eq!(
            (to_browser[0].transport, to_browser[0].local),
            (Transport::Ws, GW_WS.parse().unwrap())
        );
        let inv = Message::parse(&to_browser[0].payload).unwrap();
        assert_eq!(
            first_line(&inv),
            "INVITE sip:k3l8d5@df7jal23ls0d.invalid;transport=ws SIP/2.0"
        );
        assert!(
            inv.values(&HeaderName::Via)
                .next()
                .unwrap()
                .starts_with("SIP/2.0/WS 192.0.2.1:5066;branch=z9hG4bK")
        );
        assert_eq!(
            inv.header(&HeaderName::Contact),
            Some("<sip:rtc-edge@192.0.2.1:5066;transport=ws>")
        );
        for leak in ["pbx-call-1", "pbx-tag", "203.0.113.10:5060;branch"] {
            assert!(!String::from_utf8(inv.encode()).unwrap().contains(leak), "{leak}");
        }
        // The browser answers; the trunk gets the 200, the browser our ACK on its WebSocket.
        let mut ok = response_for(&inv, 200, "OK");
        for h in ok.headers.iter_mut().filter(|h| h.name == HeaderName::To) {
            h.value.push_str(";tag=browser-tag");
        }
        ok.push_header(
            HeaderName::Contact,
            "<sip:k3l8d5@df7jal23ls0d.invalid;transport=ws>",
        );
        ok.push_header(HeaderName::ContentType, "application/sdp");
        ok.body = SDP_A.as_bytes().to_vec();
        let (_, sent) = net.a_sends(&String::from_utf8(ok.encode()).unwrap());
        assert_eq!(lines(&to_b(&sent)), ["SIP/2.0 200 OK"]);
        assert_eq!(
            lines(&to_a(&sent)),
            ["ACK sip:k3l8d5@df7jal23ls0d.invalid;transport=ws SIP/2.0"]
        );
        assert_eq!(net.ep.active_calls(), 1);
        // The browser's WebSocket drops mid-call: the trunk gets a BYE; the registration is gone.
        let ws_flow = (GW_WS.parse().unwrap(), BROWSER.parse().unwrap());
        net.ep.flow_closed(net.now, ws_flow.0, ws_flow.1);
        let sent: Vec<Transmit> = std::iter::from_fn(|| net.ep.poll_transmit()).collect();
        assert_eq!(lines(&to_b(&sent)), ["BYE sip:bob@203.0.113.10:5060 SIP/2.0"]);
        assert_eq!(net.ep.registered(), 0);
        let (o, sent) = net.b_sends(
            &trunk_invite(&token)
                .replace("pbx-call-1", "pbx-call-2")
                .replace("z9hG4bKpbx1", "z9hG4bKpbx2"),
        );
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Invite,
                code: 404
            }
        );
        assert_eq!(
            lines(&to_b(&sent)),
            ["SIP/2.0 100 Trying", "SIP/2.0 404 Not Found"]
        );
    }

    #[test]
    fn trunk_calls_for_nobody_registered_are_404_not_looped_back() {
        let mut net = Net::new();
        let (o, sent) = net.b_sends(&trunk_invite("carol"));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Invite,
                code: 404
            }
        );
        assert!(to_a(&sent).is_empty());
        assert_eq!(
            lines(&to_b(&sent)),
            ["SIP/2.0 100 Trying", "SIP/2.0 404 Not Found"]
        );
    }

    #[test]
    fn unregister_removes_the_binding() {
        let mut net = Net::new();
        let token = registered_alice(&mut net);
        let (_, sent) = net.a_sends(
            &a_register(3, "")
                .replace("expires=600", "expires=0")
                .replace("Expires: 600", "Expires: 0"),
        );
        let reg = to_b(&sent).pop().unwrap();
        assert_eq!(
            reg.header(&HeaderName::Contact),
            Some(format!("<sip:{token}@192.0.2.1:5060>;expires=0").as_str())
        );
        net.b_sends(&String::from_utf8(response_for(&reg, 200, "OK").encode()).unwrap());
        assert_eq!(net.ep.registered(), 0);
    }

    /// The trunk sends a request within its dialog (as the callee of a browser's call).
    fn b_in_dialog(method: &str, cseq: u32, b_inv: &Message, body: &str) -> String {
        let from = b_inv.header(&HeaderName::From).unwrap();
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        format!(
            "{method} sip:rtc-edge@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKb{method}{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@gw.example.com>;tag=trunk-tag-1\r\nTo: {from}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:bob@203.0.113.10:5060>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            b_inv.header(&HeaderName::CallId).unwrap(),
            body.len()
        )
    }

    fn with_body(mut m: Message, body: &str) -> String {
        m.push_header(HeaderName::ContentType, "application/sdp");
        m.body = body.as_bytes().to_vec();
        String::from_utf8(m.encode()).unwrap()
    }

    #[test]
    fn hold_and_resume_from_the_browser_are_relayed_to_the_trunk() {
        let mut net = Net::new();
        let (b_inv, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let hold = SDP_A.replace(
            "m=audio 40000 RTP/AVP 0\r\n",
            "m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n",
        );
        for (i, sdp) in [hold.as_str(), SDP_A].into_iter().enumerate() {
            let cseq = 8062 + u32::try_from(i).unwrap() * 2;
            let reinvite = a_in_dialog("INVITE", cseq, &a_ok).replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                ),
            );
            let (o, sent) = net.a_sends(&reinvite);
            assert_eq!(
                o,
                Outcome::Relayed {
                    method: Method::Invite
                }
            );
            assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 100 Trying"]);
            let b_re = to_b(&sent).pop().unwrap();
            assert_eq!(first_line(&b_re), "INVITE sip:bob@203.0.113.10:5060 SIP/2.0");
            assert_eq!(
                b_re.header(&HeaderName::CSeq),
                Some(format!("{} INVITE", 2 + i).as_str())
            );
            assert_eq!(
                b_re.header(&HeaderName::To),
                Some("<sip:bob@gw.example.com>;tag=trunk-tag-1")
            );
            assert_eq!(b_re.body, sdp.as_bytes());
            let (_, sent) = net.b_sends(&with_body(response_for(&b_re, 200, "OK"), SDP_B));
            assert_eq!(lines(&to_b(&sent)), ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"]);
            let a200 = to_a(&sent).pop().unwrap();
            assert_eq!(first_line(&a200), "SIP/2.0 200 OK");
            assert_eq!(a200.header(&HeaderName::To), a_ok.header(&HeaderName::To));
            assert_eq!(
                a200.header(&HeaderName::CSeq),
                Some(format!("{cseq} INVITE").as_str())
            );
            assert_eq!(a200.body, SDP_B.as_bytes());
            let (_, sent) = net.a_sends(&a_in_dialog("ACK", cseq, &a_ok));
            assert!(sent.is_empty(), "the browser's ACK ends there");
            assert_hidden(&[b_re], &[a200]);
        }
        assert_eq!(net.ep.active_calls(), 1);
        let _ = b_inv;
    }

    #[test]
    fn hold_from_the_trunk_reaches_the_browser_and_glare_gets_491() {
        let mut net = Net::new();
        let (b_inv, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let hold = SDP_B.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendonly\r\n");
        let (_, sent) = net.b_sends(&b_in_dialog("INVITE", 2, &b_inv, &hold));
        let a_re = to_a(&sent).pop().unwrap();
        assert_eq!(
            first_line(&a_re),
            "INVITE sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0"
        );
        assert_eq!(a_re.header(&HeaderName::CSeq), Some("1 INVITE"));
        assert_eq!(a_re.body, hold.as_bytes());
        // Glare: the browser sends its own offer meanwhile.
        let (o, _) = net.a_sends(&a_in_dialog("UPDATE", 8062, &a_ok).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                SDP_A.len()
            ),
        ));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Update,
                code: 491
            }
        );
        let (_, sent) = net.a_sends(&with_body(response_for(&a_re, 200, "OK"), SDP_A));
        assert_eq!(lines(&to_b(&sent)), ["SIP/2.0 200 OK"]);
        assert_eq!(
            lines(&to_a(&sent)),
            ["ACK sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0"]
        );
    }

    #[test]
    fn offerless_reinvite_takes_the_answer_from_the_originators_ack() {
        let mut net = Net::new();
        let (b_inv, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let (_, sent) = net.b_sends(&b_in_dialog("INVITE", 2, &b_inv, ""));
        let a_re = to_a(&sent).pop().unwrap();
        assert!(a_re.body.is_empty());
        let (_, sent) = net.a_sends(&with_body(response_for(&a_re, 200, "OK"), SDP_A));
        assert!(
            to_a(&sent).is_empty(),
            "no ACK to the browser before the trunk's answer"
        );
        let b200 = to_b(&sent).pop().unwrap();
        assert_eq!(b200.body, SDP_A.as_bytes());
        let (_, sent) = net.b_sends(&b_in_dialog("ACK", 2, &b_inv, SDP_B));
        let a_ack = to_a(&sent).pop().unwrap();
        assert_eq!(
            first_line(&a_ack),
            "ACK sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0"
        );
        assert_eq!(a_ack.header(&HeaderName::CSeq), Some("1 ACK"));
        assert_eq!(a_ack.body, SDP_B.as_bytes());
    }

    #[test]
    fn update_offers_become_reinvites_toward_a_trunk_that_does_not_allow_update() {
        let mut net = Net::new();
        let (_, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let update = a_in_dialog("UPDATE", 8062, &a_ok).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                SDP_A.len()
            ),
        );
        let (_, sent) = net.a_sends(&update);
        let b_re = to_b(&sent).pop().unwrap();
        assert_eq!(
            first_line(&b_re),
            "INVITE sip:bob@203.0.113.10:5060 SIP/2.0",
            "the trunk never advertised UPDATE"
        );
        let (_, sent) = net.b_sends(&with_body(response_for(&b_re, 200, "OK"), SDP_B));
        assert_eq!(lines(&to_b(&sent)), ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"]);
        let a200 = to_a(&sent).pop().unwrap();
        assert_eq!(a200.header(&HeaderName::CSeq), Some("8062 UPDATE"));
        assert_eq!(a200.body, SDP_B.as_bytes());

        // A trunk that allows UPDATE gets the UPDATE itself.
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        let ok = b_response(&b_inv, 200, "OK", SDP_B).replace(
            "Content-Type",
            "Allow: INVITE, ACK, BYE, CANCEL, UPDATE\r\nContent-Type",
        );
        let (_, sent) = net.b_sends(&ok);
        let a_ok = to_a(&sent).pop().unwrap();
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        let (_, sent) = net.a_sends(&update);
        assert_eq!(
            first_line(&to_b(&sent).pop().unwrap()),
            "UPDATE sip:bob@203.0.113.10:5060 SIP/2.0"
        );
    }

    fn all_lines(sent: &[Transmit]) -> Vec<String> {
        sent.iter()
            .map(|t| first_line(&Message::parse(&t.payload).unwrap()))
            .collect()
    }

    #[test]
    fn session_timers_are_terminated_per_leg() {
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        assert_eq!(
            b_inv.header(&HeaderName::SessionExpires),
            Some("1800"),
            "the trunk leg has its own interval"
        );
        assert_eq!(b_inv.header(&HeaderName::Supported), Some("timer"));
        assert_eq!(b_inv.header(&HeaderName::MinSe), Some("90"));
        let ok = b_response(&b_inv, 200, "OK", SDP_B).replace(
            "Content-Type",
            "Session-Expires: 1800;refresher=uac\r\nRequire: timer\r\nContent-Type",
        );
        let (_, sent) = net.b_sends(&ok);
        let a_ok = to_a(&sent).pop().unwrap();
        assert_eq!(
            a_ok.header(&HeaderName::SessionExpires),
            Some("90;refresher=uac"),
            "JsSIP refreshes its own leg"
        );
        assert_eq!(a_ok.header(&HeaderName::Require), Some("timer"));
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        // JsSIP refreshes every 45 s with a bodiless UPDATE: answered here, never relayed.
        let mut b_refreshes = Vec::new();
        for i in 0..21u32 {
            let sent = net.advance(Duration::from_secs(45));
            let refreshes: Vec<Message> = to_b(&sent)
                .into_iter()
                .filter(|m| first_line(m).starts_with("INVITE"))
                .collect();
            for re in refreshes {
                // Our own refresh toward the trunk at half its interval: a re-INVITE (no UPDATE in its
                // Allow) with the last offer.
                assert_eq!(re.header(&HeaderName::SessionExpires), Some("1800;refresher=uac"));
                assert_eq!(re.body, SDP_A.as_bytes());
                let (_, sent) = net.b_sends(&with_body(response_for(&re, 200, "OK"), SDP_B));
                assert_eq!(lines(&to_b(&sent)), ["ACK sip:bob@203.0.113.10:5060 SIP/2.0"]);
                assert!(to_a(&sent).is_empty(), "the trunk's refresh stays on its leg");
                b_refreshes.push(net.now);
            }
            let update = a_in_dialog("UPDATE", 8062 + i, &a_ok).replace(
                "Content-Length",
                "Session-Expires: 90;refresher=uac\r\nContent-Length",
            );
            let (o, sent) = net.a_sends(&update);
            assert_eq!(
                o,
                Outcome::Answered {
                    method: Method::Update,
                    code: 200
                }
            );
            let r = to_a(&sent).pop().unwrap();
            assert_eq!(r.header(&HeaderName::SessionExpires), Some("90;refresher=uac"));
            assert!(to_b(&sent).is_empty());
        }
        assert_eq!(b_refreshes.len(), 1, "one trunk refresh in 945 s at 900 s");
        assert_eq!(net.ep.active_calls(), 1, "kept up well past 2×90 s");
        // The browser stops refreshing (its tab froze): 90 − 30 s later both legs are hung up.
        let sent = net.advance(Duration::from_secs(59));
        assert!(all_lines(&sent).iter().all(|l| !l.starts_with("BYE")));
        let sent = net.advance(Duration::from_secs(2));
        let byes: Vec<_> = all_lines(&sent)
            .into_iter()
            .filter(|l| l.starts_with("BYE"))
            .collect();
        assert_eq!(byes.len(), 2, "{byes:?}");
        let events: Vec<_> = std::iter::from_fn(|| net.ep.poll_call_event()).collect();
        assert!(
            matches!(events.last(), Some(CallEvent::Ended { reason, .. }) if reason == "session timer expired on A"),
            "{events:?}"
        );
    }

    #[test]
    fn a_too_short_session_interval_gets_422_with_min_se() {
        let mut net = Net::new();
        let (o, sent) = net.a_sends(&a_invite(SDP_A).replace("Session-Expires: 90", "Session-Expires: 30"));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Invite,
                code: 422
            }
        );
        let r = to_a(&sent).pop().unwrap();
        assert_eq!(first_line(&r), "SIP/2.0 422 Session Interval Too Small");
        assert_eq!(r.header(&HeaderName::MinSe), Some("90"));
        assert!(to_b(&sent).is_empty());
    }

    #[test]
    fn a_trunk_that_is_its_own_refresher_is_watched() {
        let mut net = Net::new();
        let inv = a_invite(SDP_A).replace("Session-Expires: 90\r\n", "");
        let (_, sent) = net.a_sends(&inv);
        let b_inv = to_b(&sent).pop().unwrap();
        let ok = b_response(&b_inv, 200, "OK", SDP_B).replace(
            "Content-Type",
            "Session-Expires: 120;refresher=uas\r\nContent-Type",
        );
        let (_, sent) = net.b_sends(&ok);
        let a_ok = to_a(&sent).pop().unwrap();
        assert_eq!(
            a_ok.header(&HeaderName::SessionExpires),
            None,
            "no timer on a leg that did not ask"
        );
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        // The trunk refreshes once (a bodiless UPDATE): answered on its leg.
        net.advance(Duration::from_secs(60));
        let (o, sent) = net.b_sends(&b_in_dialog("UPDATE", 2, &b_inv, "").replace(
            "Content-Length",
            "Session-Expires: 120;refresher=uas\r\nContent-Length",
        ));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Update,
                code: 200
            }
        );
        assert!(to_a(&sent).is_empty());
        // Then it falls silent: 120 − 32 s after its last refresh, the call ends on both legs.
        let sent = net.advance(Duration::from_secs(87));
        assert!(all_lines(&sent).iter().all(|l| !l.starts_with("BYE")));
        let sent = net.advance(Duration::from_secs(2));
        assert_eq!(
            all_lines(&sent).iter().filter(|l| l.starts_with("BYE")).count(),
            2
        );
    }

    #[test]
    fn options_to_a_registered_user_reach_the_browser_others_are_answered_here() {
        let mut net = Net::new();
        let token = registered_alice(&mut net);
        let options = trunk_invite(&token)
            .replacen("INVITE", "OPTIONS", 1)
            .replace("1 INVITE", "1 OPTIONS")
            .replace("z9hG4bKpbx1", "z9hG4bKopt1");
        let options = options.split("Content-Type").next().unwrap().to_owned() + "Content-Length: 0\r\n\r\n";
        let (o, sent) = net.b_sends(&options);
        assert_eq!(
            o,
            Outcome::Relayed {
                method: Method::Options
            }
        );
        let to_browser = to_a(&sent).pop().unwrap();
        assert_eq!(
            first_line(&to_browser),
            "OPTIONS sip:k3l8d5@df7jal23ls0d.invalid;transport=ws SIP/2.0"
        );
        let mut ok = response_for(&to_browser, 200, "OK");
        ok.push_header(
            HeaderName::Allow,
            "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
        );
        let (_, sent) = net.a_sends(&String::from_utf8(ok.encode()).unwrap());
        let back = to_b(&sent).pop().unwrap();
        assert_eq!(first_line(&back), "SIP/2.0 200 OK");
        assert!(
            back.header(&HeaderName::Allow).unwrap().contains("MESSAGE"),
            "the browser's capabilities"
        );
        // OPTIONS for the gateway itself (a keepalive probe) are answered locally.
        let probe = options
            .replace(&format!("sip:{token}@"), "sip:")
            .replace("z9hG4bKopt1", "z9hG4bKopt2");
        let (o, sent) = net.b_sends(&probe);
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Options,
                code: 200
            }
        );
        assert!(to_a(&sent).is_empty());
    }

    #[test]
    fn a_trunk_that_rings_forever_gets_timer_c_and_nothing_is_left() {
        let mut net = Net::new();
        let inv = a_invite(SDP_A).replace("Session-Expires: 90\r\n", "");
        let (_, sent) = net.a_sends(&inv);
        let b_inv = to_b(&sent).pop().unwrap();
        net.b_sends(&b_response(&b_inv, 180, "Ringing", ""));
        let sent = net.advance(Duration::from_secs(180));
        assert!(
            to_a(&sent)
                .iter()
                .all(|m| !first_line(m).starts_with("SIP/2.0 408")),
            "not before Timer C"
        );
        let sent = net.advance(Duration::from_secs(2));
        assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 408 Request Timeout"]);
        assert_eq!(
            lines(&to_b(&sent)),
            [first_line(&b_inv).replace("INVITE", "CANCEL")]
        );
        // The trunk never answers the CANCEL nor the INVITE: both transactions give up on their own.
        net.advance(Duration::from_secs(40));
        assert_eq!(net.ep.active_calls(), 0);
        net.advance(Duration::from_secs(60));
        assert_eq!(net.ep.transactions(), 0, "nothing outlives its timers");
        let events: Vec<_> = std::iter::from_fn(|| net.ep.poll_call_event()).collect();
        assert!(events.iter().any(|e| matches!(e, CallEvent::Ended { reason, .. } if reason == "no final answer from B (Timer C)")), "{events:?}");
    }

    #[test]
    fn an_early_bye_or_a_dropped_flow_still_finishes_the_callers_invite() {
        // BYE in the early dialog: 200 for the BYE, 487 for the INVITE, CANCEL toward the trunk.
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        let (_, sent) = net.b_sends(&b_response(&b_inv, 180, "Ringing", ""));
        let ringing = to_a(&sent).pop().unwrap();
        let (_, sent) = net.a_sends(&a_in_dialog("BYE", 8062, &ringing));
        assert_eq!(
            lines(&to_a(&sent)),
            ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
        );
        assert_eq!(
            lines(&to_b(&sent)),
            [first_line(&b_inv).replace("INVITE", "CANCEL")]
        );
        net.advance(Duration::from_secs(120));
        assert_eq!((net.ep.active_calls(), net.ep.transactions()), (0, 0));

        // The browser's WebSocket drops while ringing; the trunk answers anyway: ACK + BYE toward it,
        // and every transaction still ends.
        let mut net = Net::new();
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        net.ep
            .flow_closed(net.now, GW_WS.parse().unwrap(), BROWSER.parse().unwrap());
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        assert_eq!(
            lines(&to_b(&sent)),
            [
                "ACK sip:bob@203.0.113.10:5060 SIP/2.0",
                "BYE sip:bob@203.0.113.10:5060 SIP/2.0"
            ]
        );
        net.advance(Duration::from_secs(120));
        assert_eq!((net.ep.active_calls(), net.ep.transactions()), (0, 0));
    }

    #[test]
    fn the_2xx_to_a_relayed_reinvite_is_retransmitted_to_a_udp_caller_until_its_ack() {
        let mut net = Net::new();
        // The caller is a SIP phone on UDP.
        let udp = |text: &str| {
            text.replace(
                "SIP/2.0/WS df7jal23ls0d.invalid",
                "SIP/2.0/UDP 198.51.100.20:50000",
            )
        };
        let (_, sent) = net.feed(Transport::Udp, GW_UDP, BROWSER, &udp(&a_invite(SDP_A)));
        let b_inv = to_b(&sent).pop().unwrap();
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        let a_ok = to_a(&sent).pop().unwrap();
        net.feed(
            Transport::Udp,
            GW_UDP,
            BROWSER,
            &udp(&a_in_dialog("ACK", 8061, &a_ok)),
        );
        let reinvite = udp(&a_in_dialog("INVITE", 8062, &a_ok)).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                SDP_A.len()
            ),
        );
        let (_, sent) = net.feed(Transport::Udp, GW_UDP, BROWSER, &reinvite);
        let b_re = to_b(&sent).pop().unwrap();
        let (_, sent) = net.b_sends(&with_body(response_for(&b_re, 200, "OK"), SDP_B));
        let first = to_a(&sent).pop().unwrap();
        assert_eq!(first.header(&HeaderName::CSeq), Some("8062 INVITE"));
        // Lost on the way: it comes again at T1, then 2·T1…
        let again = net.advance(Duration::from_millis(500));
        assert_eq!(
            to_a(&again).iter().map(|m| m.encode()).collect::<Vec<_>>(),
            [first.encode()]
        );
        let again = net.advance(Duration::from_millis(1000));
        assert_eq!(to_a(&again).len(), 1);
        // …until the phone's ACK.
        net.feed(
            Transport::Udp,
            GW_UDP,
            BROWSER,
            &udp(&a_in_dialog("ACK", 8062, &a_ok)),
        );
        let after = net.advance(Duration::from_secs(10));
        assert!(
            to_a(&after)
                .iter()
                .all(|m| !first_line(m).starts_with("SIP/2.0 200")),
            "{:?}",
            lines(&to_a(&after))
        );
        assert_eq!(net.ep.active_calls(), 1);
    }

    /// A media plane that labels what crosses (so each body's path is visible) and records every call
    /// the B2BUA makes on it: the hand-off's contract, checked without the daemon's media shell.
    #[derive(Debug, Clone, Default)]
    struct Labeller {
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        refuse_offers_from: Option<Peer>,
    }

    impl MediaAnchor for Labeller {
        fn cross(
            &mut self,
            _: Instant,
            call: CallRef,
            from: Peer,
            kind: SdpKind,
            sdp: &[u8],
        ) -> Result<Vec<u8>, MediaRefusal> {
            self.log
                .lock()
                .unwrap()
                .push(format!("cross {} {from:?} {kind:?}", call.id()));
            if kind == SdpKind::Offer && self.refuse_offers_from == Some(from) {
                return Err(MediaRefusal {
                    status: 488,
                    reason: "Not Acceptable Here (no common codec)".into(),
                });
            }
            Ok([format!("{from:?}-{kind:?}|").as_bytes(), sdp].concat())
        }
        fn offer_failed(&mut self, call: CallRef, to: Peer) {
            self.log
                .lock()
                .unwrap()
                .push(format!("offer_failed {} {to:?}", call.id()));
        }
        fn dtmf(&mut self, _: Instant, call: CallRef, from: Peer, digit: char, duration: Duration) -> bool {
            self.log.lock().unwrap().push(format!(
                "dtmf {} {from:?} {digit} {}ms",
                call.id(),
                duration.as_millis()
            ));
            true
        }
        fn release(&mut self, call: CallRef) {
            self.log.lock().unwrap().push(format!("release {}", call.id()));
        }
    }

    fn anchored(refuse_offers_from: Option<Peer>) -> (Net, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let mut net = Net::new();
        let media = Labeller {
            refuse_offers_from,
            ..Labeller::default()
        };
        let log = media.log.clone();
        net.ep.set_media(Box::new(media));
        (net, log)
    }

    fn taken(log: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn every_sdp_crosses_the_media_plane_and_the_call_releases_it() {
        let (mut net, log) = anchored(None);
        let (_, sent) = net.a_sends(&a_invite(SDP_A));
        let b_inv = to_b(&sent).pop().unwrap();
        assert_eq!(b_inv.body, format!("Browser-Offer|{SDP_A}").as_bytes());
        assert_eq!(b_inv.header(&HeaderName::ContentType), Some("application/sdp"));
        // Early media: the answer in the 183 crosses; the 200 repeats it and crosses again.
        let (_, sent) = net.b_sends(&b_response(&b_inv, 183, "Session Progress", SDP_B));
        let a183 = to_a(&sent).pop().unwrap();
        assert_eq!(first_line(&a183), "SIP/2.0 183 Session Progress");
        assert_eq!(
            a183.header(&HeaderName::Require),
            None,
            "no 100rel toward the browser"
        );
        assert_eq!(a183.body, format!("Trunk-Answer|{SDP_B}").as_bytes());
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        let a_ok = to_a(&sent).pop().unwrap();
        assert_eq!(a_ok.body, format!("Trunk-Answer|{SDP_B}").as_bytes());
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        // Hold from the trunk: its offer crosses toward the browser, the browser's answer back.
        let hold = SDP_B.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendonly\r\n");
        let (_, sent) = net.b_sends(&b_in_dialog("INVITE", 2, &b_inv, &hold));
        let a_re = to_a(&sent).pop().unwrap();
        assert_eq!(a_re.body, format!("Trunk-Offer|{hold}").as_bytes());
        let (_, sent) = net.a_sends(&with_body(response_for(&a_re, 200, "OK"), SDP_A));
        let b200 = to_b(&sent).pop().unwrap();
        assert_eq!(b200.body, format!("Browser-Answer|{SDP_A}").as_bytes());
        // A refused re-offer from the trunk: the trunk's offer is forgotten by the media plane.
        let (_, sent) = net.b_sends(&b_in_dialog("INVITE", 3, &b_inv, &hold));
        let a_re = to_a(&sent).pop().unwrap();
        net.a_sends(&String::from_utf8(response_for(&a_re, 488, "Not Acceptable Here").encode()).unwrap());
        net.b_sends(&b_in_dialog("BYE", 4, &b_inv, ""));
        assert_eq!(
            taken(&log),
            [
                "cross 1 Browser Offer",
                "cross 1 Trunk Answer",
                "cross 1 Trunk Answer",
                "cross 1 Trunk Offer",
                "cross 1 Browser Answer",
                "cross 1 Trunk Offer",
                "offer_failed 1 Browser",
                "release 1",
            ]
        );
    }

    #[test]
    fn an_offer_the_media_plane_refuses_gets_488_and_reaches_nobody() {
        let (mut net, log) = anchored(Some(Peer::Browser));
        let (o, sent) = net.a_sends(&a_invite(SDP_A));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Invite,
                code: 488
            }
        );
        assert!(to_b(&sent).is_empty(), "nothing reaches the trunk");
        assert_eq!(
            lines(&to_a(&sent)),
            [
                "SIP/2.0 100 Trying",
                "SIP/2.0 488 Not Acceptable Here (no common codec)"
            ]
        );
        assert_eq!(taken(&log), ["cross 1 Browser Offer", "release 1"]);
        assert_eq!(net.ep.active_calls(), 0);
    }

    #[test]
    fn late_offer_crosses_as_the_trunks_offer_and_the_acks_answer() {
        let (mut net, log) = anchored(None);
        let (_, sent) = net.a_sends(&a_invite(""));
        let b_inv = to_b(&sent).pop().unwrap();
        assert!(b_inv.body.is_empty());
        let (_, sent) = net.b_sends(&b_response(&b_inv, 200, "OK", SDP_B));
        let a_ok = to_a(&sent).pop().unwrap();
        assert_eq!(a_ok.body, format!("Trunk-Offer|{SDP_B}").as_bytes());
        let ack = a_in_dialog("ACK", 8061, &a_ok).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
                SDP_A.len()
            ),
        );
        let (_, sent) = net.a_sends(&ack);
        let b_ack = to_b(&sent).pop().unwrap();
        assert_eq!(b_ack.body, format!("Browser-Answer|{SDP_A}").as_bytes());
        assert_eq!(taken(&log), ["cross 1 Trunk Offer", "cross 1 Browser Answer"]);
    }

    #[test]
    fn info_dtmf_goes_to_the_media_plane_and_media_failure_ends_both_legs() {
        let (mut net, log) = anchored(None);
        let (b_inv, a_ok, _) = answered_call(&mut net, SDP_A);
        net.a_sends(&a_in_dialog("ACK", 8061, &a_ok));
        for (cseq, ct, body) in [
            (8062, "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            (8063, "application/dtmf", "#"),
            (8064, "application/dtmf-relay", "Signal=X\r\n"),
        ] {
            let info = a_in_dialog("INFO", cseq, &a_ok).replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            );
            let (_, sent) = net.a_sends(&info);
            assert_eq!(lines(&to_a(&sent)), ["SIP/2.0 200 OK"]);
            assert!(to_b(&sent).is_empty(), "INFO DTMF is not relayed as signalling");
        }
        let call = CallRef(1);
        net.ep.media_failed(net.now, call, 408, "no RTP for 60 s");
        let sent: Vec<_> = std::iter::from_fn(|| net.ep.poll_transmit()).collect();
        assert_eq!(
            lines(&to_a(&sent)),
            ["BYE sip:k3l8d5@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0"]
        );
        assert_eq!(lines(&to_b(&sent)), ["BYE sip:bob@203.0.113.10:5060 SIP/2.0"]);
        let ended = std::iter::from_fn(|| net.ep.poll_call_event()).last();
        assert_eq!(
            ended,
            Some(CallEvent::Ended {
                call,
                reason: "media: no RTP for 60 s".into()
            })
        );
        let _ = b_inv;
        assert_eq!(
            taken(&log),
            [
                "cross 1 Browser Offer",
                "cross 1 Trunk Answer",
                "dtmf 1 Browser 5 160ms",
                "dtmf 1 Browser # 250ms",
                "release 1",
            ]
        );
    }
}
