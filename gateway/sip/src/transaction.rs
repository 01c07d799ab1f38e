//! SIP transactions (RFC 3261 §17, with the Accepted states and timers L and M of RFC 6026), sans-IO.
//!
//! The [`TransactionLayer`] holds every client and server transaction. Time is an input: each call takes
//! `now`, and [`TransactionLayer::poll_timeout`] says when [`TransactionLayer::handle_timeout`] must be
//! called next. Nothing here reads a clock or touches a socket, so every timer is tested in microseconds.
//!
//! Driving order, after any input: drain [`TransactionLayer::poll_transmit`], then
//! [`TransactionLayer::poll_event`], then re-arm the wake-up from [`TransactionLayer::poll_timeout`].
//!
//! Matching follows §17.1.3 (client: top Via branch + CSeq method) and §17.2.3 (server: branch +
//! sent-by + method, ACK matching INVITE; requests without the `z9hG4bK` cookie by Call-ID, CSeq number,
//! From tag and top Via). An ACK to a 2xx is its own transaction-less request and goes to the TU.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::message::{HeaderName, Message, Method, StartLine, header_param};
use crate::transport::{Transmit, Transport};
use crate::via::Via;

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The transaction timers. Durations come from [`TimerConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// §17.1.1.2: INVITE retransmission (unreliable only), T1 doubling without limit.
    A,
    /// §17.1.1.2: INVITE transaction timeout, 64·T1.
    B,
    /// §17.1.1.2: wait for response retransmissions after a non-2xx final, ≥32 s (0 if reliable).
    D,
    /// §17.1.2.2: non-INVITE retransmission (unreliable only), T1 doubling up to T2 (T2 once provisional).
    E,
    /// §17.1.2.2: non-INVITE transaction timeout, 64·T1.
    F,
    /// §17.2.1: INVITE final response retransmission (unreliable only), T1 doubling up to T2.
    G,
    /// §17.2.1: wait for ACK, 64·T1.
    H,
    /// §17.2.1: absorb ACK retransmissions, T4 (0 if reliable).
    I,
    /// §17.2.2: absorb non-INVITE request retransmissions, 64·T1 (0 if reliable).
    J,
    /// §17.1.2.2: absorb response retransmissions, T4 (0 if reliable).
    K,
    /// RFC 6026 §8.7: absorb INVITE retransmissions after a 2xx, 64·T1.
    L,
    /// RFC 6026 §8.4: pass 2xx retransmissions to the TU, 64·T1.
    M,
}

impl Timer {
    const ALL: [Self; 12] = [
        Self::A,
        Self::B,
        Self::D,
        Self::E,
        Self::F,
        Self::G,
        Self::H,
        Self::I,
        Self::J,
        Self::K,
        Self::L,
        Self::M,
    ];
}

/// T1, T2, T4 (RFC 3261 §17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: the transaction timeout, also used by transaction users for their own RFC 3261 timers
    /// (2xx retransmission, §13.3.1.4).
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Timer D for unreliable transports: "at least 32 seconds" (§17.1.1.2).
const TIMER_D: Duration = Duration::from_secs(32);

/// Identifies a transaction in this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId(u64);

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Transport.
    pub transport: Transport,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address (for a stream transport, the connection's peer).
    pub remote: SocketAddr,
}

/// The four transaction machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// §17.1.1
    InviteClient,
    /// §17.1.2
    NonInviteClient,
    /// §17.2.1
    InviteServer,
    /// §17.2.2
    NonInviteServer,
}

/// Transaction states (figures 5–8 of RFC 3261, plus Accepted from RFC 6026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE client, request sent.
    Calling,
    /// Non-INVITE client/server, before any response.
    Trying,
    /// A provisional response was received/sent.
    Proceeding,
    /// A final (non-2xx for INVITE) response was received/sent.
    Completed,
    /// INVITE server: ACK received.
    Confirmed,
    /// INVITE client/server: 2xx received/sent (RFC 6026).
    Accepted,
}

/// What the layer reports to its user (the transaction user: dialogs, B2BUA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A new request. `tx` is its new server transaction, or `None` for an ACK that belongs to no
    /// transaction (the ACK to a 2xx, RFC 6026) — the TU matches it to its dialog.
    Request {
        /// Server transaction to answer on.
        tx: Option<TxId>,
        /// The request, top Via stamped with `received`/`rport` (§18.2.1, RFC 3581).
        request: Message,
        /// Where it came from.
        route: Route,
    },
    /// A response for a client transaction.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Message,
    },
    /// Timer B or F (no final response) or H (no ACK) fired; the transaction is over.
    Timeout {
        /// The transaction.
        tx: TxId,
        /// Which timer.
        timer: Timer,
    },
    /// The transport could not deliver the transaction's request (§17.1.4); the transaction is over.
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// The transaction ended and its state is gone.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
    /// A response that matched no client transaction (§18.1.2), e.g. a late 2xx retransmission.
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        route: Route,
    },
}

/// Why a call into the layer was refused. These are the caller's mistakes (or, for
/// [`TransactionLayer::handle_message`], a message without a usable top Via, which is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxError {
    /// A response was given where a request is needed, or the reverse.
    WrongMessageKind,
    /// ACK is never a client transaction of its own: send it with [`TransactionLayer::send_stateless`].
    AckIsNotATransaction,
    /// The message has no readable top Via.
    NoTopVia,
    /// A client request's top Via lacks a `z9hG4bK…` branch.
    BadBranch,
    /// A client transaction with this branch and method exists already.
    Duplicate,
    /// No such transaction (it may have terminated).
    UnknownTransaction(TxId),
    /// The transaction cannot send this now (e.g. a response on a client transaction, or a second
    /// final response).
    WrongState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    Legacy {
        call_id: String,
        cseq: u32,
        from_tag: String,
        via: String,
        method: Method,
    },
}

#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    /// Client: where requests go. Server: where responses go.
    route: Route,
    /// INVITE client only, until its final response: the request, to build the ACK for a non-2xx.
    /// Nothing else keeps a parsed request: a lingering transaction (Timers J, K, L, M) holds only
    /// what it may still have to send.
    request: Option<Message>,
    /// Client, until its final response: the encoded request, for retransmission.
    request_bytes: Vec<u8>,
    /// Server: the last response sent, for retransmission.
    last_response: Option<Vec<u8>>,
    /// INVITE client: the ACK for a non-2xx final, resent on each retransmitted final.
    ack: Option<Vec<u8>>,
    /// Current interval of timer A, E or G.
    interval: Duration,
    /// INVITE client: Timer B is a deadline the TU set, kept through provisional responses.
    hard_deadline: bool,
    client_key: Option<(String, Method)>,
    server_key: Option<ServerKey>,
}

/// All transactions of one endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    timers_cfg: TimerConfig,
    txs: HashMap<TxId, Tx>,
    clients: HashMap<(String, Method), TxId>,
    servers: HashMap<ServerKey, TxId>,
    timers: BTreeSet<(Instant, TxId, Timer)>,
    armed: HashMap<(TxId, Timer), Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    next_id: u64,
}

impl TransactionLayer {
    /// An empty layer with the given timer values.
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers_cfg: timers,
            txs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BTreeSet::new(),
            armed: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// State and kind of a live transaction.
    pub fn state(&self, tx: TxId) -> Option<(Kind, State)> {
        self.txs.get(&tx).map(|t| (t.kind, t.state))
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// Gives INVITE client transaction `tx` a hard deadline: without a final response by `at` it ends as
    /// a Timer B timeout even after a provisional. For the TU: 64·T1 after a CANCEL (§9.1), and for
    /// relayed re-INVITEs, which must not wait like a ringing phone. (Non-INVITE transactions keep
    /// Timer F through Proceeding and need none.)
    pub fn deadline(&mut self, tx: TxId, at: Instant) {
        let pending = self.txs.get(&tx).is_some_and(|t| {
            t.kind == Kind::InviteClient && matches!(t.state, State::Calling | State::Proceeding)
        });
        if pending {
            if let Some(t) = self.txs.get_mut(&tx) {
                t.hard_deadline = true;
            }
            self.arm(tx, Timer::B, at);
        }
    }

    /// The transport cannot reach `destination` (a connection was refused or failed): every client
    /// transaction still waiting on it ends now with a [`TxEvent::TransportError`] (§17.1.4).
    pub fn transport_error(&mut self, transport: Transport, destination: SocketAddr) {
        let failed: Vec<TxId> = self
            .txs
            .iter()
            .filter(|(_, t)| {
                matches!(t.kind, Kind::InviteClient | Kind::NonInviteClient)
                    && matches!(t.state, State::Calling | State::Trying | State::Proceeding)
                    && t.route.transport == transport
                    && t.route.remote == destination
            })
            .map(|(id, _)| *id)
            .collect();
        for tx in failed {
            self.events.push_back(TxEvent::TransportError { tx });
            self.terminate(tx);
        }
    }

    /// 64·T1, the transaction timeout.
    pub fn timeout_interval(&self) -> Duration {
        self.timers_cfg.t1x64()
    }

    /// Sends a message outside any transaction: the ACK to a 2xx, a 2xx retransmitted by the TU after
    /// the server transaction ended, or a stateless response.
    pub fn send_stateless(&mut self, message: &Message, route: Route) {
        self.transmit(route, message.encode());
    }

    /// Starts a client transaction for `request` (not ACK), whose top Via carries a fresh `z9hG4bK`
    /// branch, and sends it.
    pub fn start_client(&mut self, now: Instant, request: Message, route: Route) -> Result<TxId, TxError> {
        let method = request.method().cloned().ok_or(TxError::WrongMessageKind)?;
        if method == Method::Ack {
            return Err(TxError::AckIsNotATransaction);
        }
        let branch = top_via(&request)
            .ok_or(TxError::NoTopVia)?
            .branch()
            .map(str::to_owned);
        let branch = branch
            .filter(|b| b.starts_with(MAGIC_COOKIE))
            .ok_or(TxError::BadBranch)?;
        let key = (branch, method.clone());
        if self.clients.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let id = self.new_id();
        let bytes = request.encode();
        let (kind, state, retransmit, timeout) = if method == Method::Invite {
            (Kind::InviteClient, State::Calling, Timer::A, Timer::B)
        } else {
            (Kind::NonInviteClient, State::Trying, Timer::E, Timer::F)
        };
        self.transmit(route, bytes.clone());
        self.clients.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                kind,
                state,
                route,
                request: (kind == Kind::InviteClient).then_some(request),
                request_bytes: bytes,
                last_response: None,
                ack: None,
                interval: self.timers_cfg.t1,
                hard_deadline: false,
                client_key: Some(key),
                server_key: None,
            },
        );
        if !route.transport.is_reliable() {
            self.arm(id, retransmit, now + self.timers_cfg.t1);
        }
        self.arm(id, timeout, now + self.timers_cfg.t1x64());
        Ok(id)
    }

    /// Feeds a message received from the network. `Err` means it was dropped (no usable top Via).
    pub fn handle_message(&mut self, now: Instant, message: Message, route: Route) -> Result<(), TxError> {
        match message.start {
            StartLine::Response { code, .. } => {
                self.handle_response(now, code, message, route);
                Ok(())
            }
            StartLine::Request { .. } => self.handle_request(now, message, route),
        }
    }

    /// Sends `response` on server transaction `tx`.
    pub fn respond(&mut self, now: Instant, tx: TxId, response: &Message) -> Result<(), TxError> {
        let StartLine::Response { code, .. } = response.start else {
            return Err(TxError::WrongMessageKind);
        };
        let t = self.txs.get_mut(&tx).ok_or(TxError::UnknownTransaction(tx))?;
        let bytes = response.encode();
        let reliable = t.route.transport.is_reliable();
        let route = t.route;
        let cfg = self.timers_cfg;
        match (t.kind, t.state, code) {
            (Kind::InviteServer, State::Proceeding, 100..=199)
            | (Kind::NonInviteServer, State::Trying | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                t.last_response = Some(bytes.clone());
                self.transmit(route, bytes);
            }
            (Kind::InviteServer, State::Proceeding, 200..=299) => {
                t.state = State::Accepted;
                t.last_response = Some(bytes.clone());
                self.transmit(route, bytes);
                self.arm(tx, Timer::L, now + cfg.t1x64());
            }
            // The TU retransmits its 2xx until the ACK arrives (§13.3.1.4).
            (Kind::InviteServer, State::Accepted, 200..=299) => self.transmit(route, bytes),
            (Kind::InviteServer, State::Proceeding, 300..=699) => {
                t.state = State::Completed;
                t.last_response = Some(bytes.clone());
                t.interval = cfg.t1;
                self.transmit(route, bytes);
                if !reliable {
                    self.arm(tx, Timer::G, now + cfg.t1);
                }
                self.arm(tx, Timer::H, now + cfg.t1x64());
            }
            (Kind::NonInviteServer, State::Trying | State::Proceeding, 200..=699) => {
                t.state = State::Completed;
                t.last_response = Some(bytes.clone());
                self.transmit(route, bytes);
                if reliable {
                    self.terminate(tx);
                } else {
                    self.arm(tx, Timer::J, now + cfg.t1x64());
                }
            }
            _ => return Err(TxError::WrongState),
        }
        Ok(())
    }

    /// Fires every timer due at or before `now`, in order.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id, timer));
            self.armed.remove(&(id, timer));
            self.fire(at, id, timer);
        }
    }

    fn fire(&mut self, at: Instant, id: TxId, timer: Timer) {
        let cfg = self.timers_cfg;
        let Some(t) = self.txs.get_mut(&id) else { return };
        let route = t.route;
        match (timer, t.state) {
            (Timer::A, State::Calling) => {
                t.interval = t.interval.saturating_mul(2);
                let (next, bytes) = (at + t.interval, t.request_bytes.clone());
                self.transmit(route, bytes);
                self.arm(id, Timer::A, next);
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                t.interval = if t.state == State::Trying {
                    (t.interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                let (next, bytes) = (at + t.interval, t.request_bytes.clone());
                self.transmit(route, bytes);
                self.arm(id, Timer::E, next);
            }
            (Timer::G, State::Completed) => {
                t.interval = (t.interval * 2).min(cfg.t2);
                let next = at + t.interval;
                if let Some(bytes) = t.last_response.clone() {
                    self.transmit(route, bytes);
                }
                self.arm(id, Timer::G, next);
            }
            (Timer::B, State::Calling | State::Proceeding)
            | (Timer::F, State::Trying | State::Proceeding)
            | (Timer::H, State::Completed) => {
                self.events.push_back(TxEvent::Timeout { tx: id, timer });
                self.terminate(id);
            }
            (Timer::D | Timer::K | Timer::J, State::Completed)
            | (Timer::I, State::Confirmed)
            | (Timer::L | Timer::M, State::Accepted) => self.terminate(id),
            // A timer whose state has passed: transitions disarm them, so this is only reached if a
            // state change forgot to; ignoring it is the safe reading of the RFC.
            _ => {}
        }
    }

    fn handle_response(&mut self, now: Instant, code: u16, response: Message, route: Route) {
        let key = top_via(&response)
            .and_then(|v| v.branch().map(str::to_owned))
            .zip(cseq_method(&response))
            .and_then(|k| self.clients.get(&k).copied());
        let Some(id) = key else {
            self.events.push_back(TxEvent::StrayResponse { response, route });
            return;
        };
        let cfg = self.timers_cfg;
        let Some(t) = self.txs.get_mut(&id) else { return };
        let reliable = t.route.transport.is_reliable();
        let tx_route = t.route;
        match (t.kind, t.state, code) {
            (Kind::InviteClient, State::Calling | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                let keep_deadline = t.hard_deadline;
                self.disarm(id, Timer::A);
                if !keep_deadline {
                    self.disarm(id, Timer::B);
                }
                self.events.push_back(TxEvent::Response { tx: id, response });
            }
            (Kind::InviteClient, State::Calling | State::Proceeding, 200..=299) => {
                t.state = State::Accepted;
                t.request = None;
                t.request_bytes = Vec::new();
                self.disarm(id, Timer::A);
                self.disarm(id, Timer::B);
                self.arm(id, Timer::M, now + cfg.t1x64());
                self.events.push_back(TxEvent::Response { tx: id, response });
            }
            (Kind::InviteClient, State::Calling | State::Proceeding, 300..=699) => {
                t.state = State::Completed;
                t.request_bytes = Vec::new();
                // Invariant: an INVITE client transaction keeps its request until its final response.
                let invite = t
                    .request
                    .take()
                    .expect("INVITE client transaction holds its request");
                let ack = build_ack(&invite, &response).encode();
                t.ack = Some(ack.clone());
                self.disarm(id, Timer::A);
                self.disarm(id, Timer::B);
                self.transmit(tx_route, ack);
                self.events.push_back(TxEvent::Response { tx: id, response });
                if reliable {
                    self.terminate(id);
                } else {
                    self.arm(id, Timer::D, now + TIMER_D);
                }
            }
            (Kind::InviteClient, State::Completed, 300..=699) => {
                if let Some(ack) = t.ack.clone() {
                    self.transmit(tx_route, ack);
                }
            }
            (Kind::InviteClient, State::Accepted, 200..=299) => {
                self.events.push_back(TxEvent::Response { tx: id, response });
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                self.events.push_back(TxEvent::Response { tx: id, response });
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding, 200..=699) => {
                t.state = State::Completed;
                t.request_bytes = Vec::new();
                self.disarm(id, Timer::E);
                self.disarm(id, Timer::F);
                self.events.push_back(TxEvent::Response { tx: id, response });
                if reliable {
                    self.terminate(id);
                } else {
                    self.arm(id, Timer::K, now + cfg.t4);
                }
            }
            // Retransmissions and late provisionals are absorbed.
            _ => {}
        }
    }

    fn handle_request(&mut self, now: Instant, mut request: Message, route: Route) -> Result<(), TxError> {
        let top = top_via(&request).ok_or(TxError::NoTopVia)?;
        let (via_destination, stamped) = top.response_route(route.remote);
        request.replace_top_via(&stamped);
        // Over a stream, responses go back on the connection; over UDP, where the Via says (§18.2.2).
        let reply_to = if route.transport.is_reliable() {
            route
        } else {
            Route {
                remote: via_destination,
                ..route
            }
        };
        let method = request.method().cloned().ok_or(TxError::WrongMessageKind)?;
        let key = server_key(&request).ok_or(TxError::NoTopVia)?;

        if let Some(&id) = self.servers.get(&key) {
            self.server_retransmission(now, id, method == Method::Ack, request, route);
            return Ok(());
        }
        if method == Method::Ack {
            self.events.push_back(TxEvent::Request {
                tx: None,
                request,
                route,
            });
            return Ok(());
        }
        let id = self.new_id();
        let invite = method == Method::Invite;
        let (kind, state) = if invite {
            (Kind::InviteServer, State::Proceeding)
        } else {
            (Kind::NonInviteServer, State::Trying)
        };
        self.servers.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                kind,
                state,
                route: reply_to,
                request: None,
                request_bytes: Vec::new(),
                last_response: None,
                ack: None,
                interval: self.timers_cfg.t1,
                hard_deadline: false,
                client_key: None,
                server_key: Some(key),
            },
        );
        if invite {
            // §17.2.1: a 100 Trying at once stops the client's INVITE retransmissions.
            let trying = response_for(&request, 100, "Trying").encode();
            if let Some(t) = self.txs.get_mut(&id) {
                t.last_response = Some(trying.clone());
            }
            self.transmit(reply_to, trying);
        }
        self.events.push_back(TxEvent::Request {
            tx: Some(id),
            request,
            route,
        });
        Ok(())
    }

    fn server_retransmission(
        &mut self,
        now: Instant,
        id: TxId,
        is_ack: bool,
        request: Message,
        route: Route,
    ) {
        let cfg = self.timers_cfg;
        let Some(t) = self.txs.get_mut(&id) else { return };
        let reliable = t.route.transport.is_reliable();
        let reply_to = t.route;
        match (t.kind, t.state, is_ack) {
            (Kind::InviteServer, State::Completed, true) => {
                t.state = State::Confirmed;
                self.disarm(id, Timer::G);
                self.disarm(id, Timer::H);
                if reliable {
                    self.terminate(id);
                } else {
                    self.arm(id, Timer::I, now + cfg.t4);
                }
            }
            // RFC 6026 §7.1: an ACK matching an accepted INVITE goes to the TU.
            (Kind::InviteServer, State::Accepted, true) => {
                self.events.push_back(TxEvent::Request {
                    tx: None,
                    request,
                    route,
                });
            }
            (Kind::InviteServer, State::Proceeding | State::Completed, false)
            | (Kind::NonInviteServer, State::Proceeding | State::Completed, false) => {
                if let Some(bytes) = t.last_response.clone() {
                    self.transmit(reply_to, bytes);
                }
            }
            // Trying (NIST), Confirmed, Accepted (INVITE retransmission): absorbed.
            _ => {}
        }
    }

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn transmit(&mut self, route: Route, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: route.transport,
            local: route.local,
            destination: route.remote,
            payload,
        });
    }

    fn arm(&mut self, id: TxId, timer: Timer, at: Instant) {
        self.disarm(id, timer);
        self.timers.insert((at, id, timer));
        self.armed.insert((id, timer), at);
    }

    fn disarm(&mut self, id: TxId, timer: Timer) {
        if let Some(at) = self.armed.remove(&(id, timer)) {
            self.timers.remove(&(at, id, timer));
        }
    }

    fn terminate(&mut self, id: TxId) {
        for timer in Timer::ALL {
            self.disarm(id, timer);
        }
        if let Some(t) = self.txs.remove(&id) {
            if let Some(k) = t.client_key {
                self.clients.remove(&k);
            }
            if let Some(k) = t.server_key {
                self.servers.remove(&k);
            }
            self.events.push_back(TxEvent::Terminated { tx: id });
        }
    }
}

fn top_via(m: &Message) -> Option<Via<'_>> {
    m.values(&HeaderName::Via).next().and_then(|v| Via::parse(v).ok())
}

fn cseq_method(m: &Message) -> Option<Method> {
    m.header(&HeaderName::CSeq)?
        .split_whitespace()
        .nth(1)
        .and_then(Method::from_token)
}

fn server_key(request: &Message) -> Option<ServerKey> {
    let via = top_via(request)?;
    let method = match request.method()? {
        Method::Ack => Method::Invite,
        m => m.clone(),
    };
    match via.branch().filter(|b| b.starts_with(MAGIC_COOKIE)) {
        Some(branch) => {
            let sent_by = match via.port {
                Some(p) => format!("{}:{p}", via.host.to_ascii_lowercase()),
                None => via.host.to_ascii_lowercase(),
            };
            Some(ServerKey::Rfc3261 {
                branch: branch.to_owned(),
                sent_by,
                method,
            })
        }
        None => {
            let cseq = request
                .header(&HeaderName::CSeq)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let from_tag = request
                .header(&HeaderName::From)
                .and_then(|f| header_param(f, "tag"))
                .flatten();
            Some(ServerKey::Legacy {
                call_id: request.header(&HeaderName::CallId)?.to_owned(),
                cseq,
                from_tag: from_tag.unwrap_or_default().to_owned(),
                via: request.values(&HeaderName::Via).next()?.to_owned(),
                method,
            })
        }
    }
}

/// A response to `request` (§8.2.6.2): Via (all), From, To, Call-ID and CSeq copied; the caller adds a
/// To-tag where one is needed and any other header.
pub fn response_for(request: &Message, code: u16, reason: &str) -> Message {
    let mut headers = Vec::new();
    for h in &request.headers {
        if matches!(
            h.name,
            HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
        ) {
            headers.push(h.clone());
        }
    }
    Message {
        start: StartLine::Response {
            code,
            reason: reason.to_owned(),
        },
        headers,
        body: Vec::new(),
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3).
fn build_ack(invite: &Message, response: &Message) -> Message {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    let mut ack = Message {
        start: StartLine::Request {
            method: Method::Ack,
            uri,
            version: "SIP/2.0".into(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Some(via) = invite.values(&HeaderName::Via).next() {
        ack.push_header(HeaderName::Via, via);
    }
    for route in invite.headers.iter().filter(|h| h.name == HeaderName::Route) {
        ack.push_header(HeaderName::Route, route.value.clone());
    }
    ack.push_header(HeaderName::MaxForwards, "70");
    for (name, from) in [
        (HeaderName::From, invite.header(&HeaderName::From)),
        (HeaderName::To, response.header(&HeaderName::To)),
        (HeaderName::CallId, invite.header(&HeaderName::CallId)),
    ] {
        ack.push_header(name, from.unwrap_or_default());
    }
    let number = invite
        .header(&HeaderName::CSeq)
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("0");
    ack.push_header(HeaderName::CSeq, format!("{number} ACK"));
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(500);

    fn udp() -> Route {
        Route {
            transport: Transport::Udp,
            local: "192.0.2.1:5060".parse().unwrap(),
            remote: "198.51.100.7:5060".parse().unwrap(),
        }
    }

    fn tcp() -> Route {
        Route {
            transport: Transport::Tcp,
            ..udp()
        }
    }

    fn request(method: &str, branch: &str) -> Message {
        Message::parse(
            format!(
                "{method} sip:bob@198.51.100.7 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
                 Route: <sip:proxy.example.com;lr>\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:alice@192.0.2.1>;tag=a1\r\n\
                 To: <sip:bob@198.51.100.7>\r\n\
                 Call-ID: call-1\r\n\
                 CSeq: 1 {method}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn response(req: &Message, code: u16) -> Message {
        let mut r = response_for(req, code, "X");
        if let Some(to) = r.headers.iter_mut().find(|h| h.name == HeaderName::To) {
            to.value.push_str(";tag=b1");
        }
        r
    }

    /// A peer's request arriving: Via is the peer's.
    fn incoming(method: &str, branch: &str) -> Message {
        let text = String::from_utf8(request(method, branch).encode()).unwrap();
        Message::parse(
            text.replace("192.0.2.1:5060;branch", "198.51.100.7:5060;branch")
                .as_bytes(),
        )
        .unwrap()
    }

    struct Run {
        layer: TransactionLayer,
        start: Instant,
        sent: Vec<(Duration, String)>,
        events: Vec<(Duration, TxEvent)>,
    }

    impl Run {
        fn new() -> Self {
            Self {
                layer: TransactionLayer::new(TimerConfig::default()),
                start: crate::test_epoch(),
                sent: vec![],
                events: vec![],
            }
        }

        fn drain(&mut self, now: Instant) {
            while let Some(t) = self.layer.poll_transmit() {
                let first = String::from_utf8(t.payload)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap()
                    .to_owned();
                self.sent.push((now - self.start, first));
            }
            while let Some(e) = self.layer.poll_event() {
                self.events.push((now - self.start, e));
            }
        }

        /// Runs timers up to `until` (relative), draining outputs at each fire time.
        fn run_until(&mut self, until: Duration) {
            while let Some(at) = self.layer.poll_timeout() {
                if at > self.start + until {
                    break;
                }
                self.layer.handle_timeout(at);
                self.drain(at);
            }
        }

        fn at(&self, d: Duration) -> Instant {
            self.start + d
        }

        fn sent_times(&self, first_line_prefix: &str) -> Vec<Duration> {
            self.sent
                .iter()
                .filter(|(_, l)| l.starts_with(first_line_prefix))
                .map(|(t, _)| *t)
                .collect()
        }

        fn timeouts(&self) -> Vec<(Duration, Timer)> {
            self.events
                .iter()
                .filter_map(|(t, e)| match e {
                    TxEvent::Timeout { timer, .. } => Some((*t, *timer)),
                    _ => None,
                })
                .collect()
        }

        fn terminated_at(&self) -> Option<Duration> {
            self.events
                .iter()
                .find(|(_, e)| matches!(e, TxEvent::Terminated { .. }))
                .map(|(t, _)| *t)
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn invite_client_timer_a_doubles_and_timer_b_fires_at_64_t1() {
        let mut r = Run::new();
        let tx = r
            .layer
            .start_client(r.start, request("INVITE", "z9hG4bKa"), udp())
            .unwrap();
        r.drain(r.start);
        r.run_until(Duration::from_secs(60));
        // Sent at 0, then A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (T1 doubling, no T2 cap).
        assert_eq!(
            r.sent_times("INVITE"),
            [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms)
        );
        assert_eq!(r.timeouts(), [(T1 * 64, Timer::B)]);
        assert_eq!(r.terminated_at(), Some(T1 * 64));
        assert!(r.layer.state(tx).is_none() && r.layer.is_empty() && r.layer.poll_timeout().is_none());
    }

    #[test]
    fn invite_client_over_tcp_never_retransmits() {
        let mut r = Run::new();
        r.layer
            .start_client(r.start, request("INVITE", "z9hG4bKa"), tcp())
            .unwrap();
        r.drain(r.start);
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.sent_times("INVITE"), [ms(0)]);
        assert_eq!(r.timeouts(), [(T1 * 64, Timer::B)]);
    }

    #[test]
    fn invite_client_non_2xx_acks_and_timer_d_absorbs_retransmissions() {
        let mut r = Run::new();
        let inv = request("INVITE", "z9hG4bKa");
        let tx = r.layer.start_client(r.start, inv.clone(), udp()).unwrap();
        r.drain(r.start);
        r.layer
            .handle_message(r.at(ms(100)), response(&inv, 180), udp())
            .unwrap();
        r.drain(r.at(ms(100)));
        assert_eq!(r.layer.state(tx), Some((Kind::InviteClient, State::Proceeding)));
        r.run_until(Duration::from_secs(10)); // no A retransmission after a provisional, no B
        assert_eq!(r.sent_times("INVITE").len(), 1);
        r.layer
            .handle_message(r.at(ms(10_000)), response(&inv, 486), udp())
            .unwrap();
        r.drain(r.at(ms(10_000)));
        r.layer
            .handle_message(r.at(ms(10_400)), response(&inv, 486), udp())
            .unwrap();
        r.drain(r.at(ms(10_400)));
        assert_eq!(
            r.sent_times("ACK sip:bob@198.51.100.7 SIP/2.0"),
            [ms(10_000), ms(10_400)]
        );
        let to_tu: Vec<_> = r
            .events
            .iter()
            .filter(|(_, e)| matches!(e, TxEvent::Response { .. }))
            .collect();
        assert_eq!(to_tu.len(), 2, "180 and the first 486 only");
        r.run_until(Duration::from_secs(100));
        assert_eq!(r.terminated_at(), Some(ms(10_000) + Duration::from_secs(32)));
    }

    #[test]
    fn ack_for_non_2xx_is_built_per_17_1_1_3() {
        let inv = request("INVITE", "z9hG4bKa");
        let ack = build_ack(&inv, &response(&inv, 404));
        let text = String::from_utf8(ack.encode()).unwrap();
        assert_eq!(
            text,
            "ACK sip:bob@198.51.100.7 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\r\n\
             Route: <sip:proxy.example.com;lr>\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@192.0.2.1>;tag=a1\r\n\
             To: <sip:bob@198.51.100.7>;tag=b1\r\n\
             Call-ID: call-1\r\n\
             CSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn invite_client_2xx_is_accepted_passes_retransmissions_and_timer_m_ends_it() {
        let mut r = Run::new();
        let inv = request("INVITE", "z9hG4bKa");
        let tx = r.layer.start_client(r.start, inv.clone(), udp()).unwrap();
        r.layer
            .handle_message(r.at(ms(200)), response(&inv, 200), udp())
            .unwrap();
        assert_eq!(r.layer.state(tx), Some((Kind::InviteClient, State::Accepted)));
        r.layer
            .handle_message(r.at(ms(700)), response(&inv, 200), udp())
            .unwrap();
        r.drain(r.at(ms(700)));
        let to_tu = r
            .events
            .iter()
            .filter(|(_, e)| matches!(e, TxEvent::Response { .. }))
            .count();
        assert_eq!(to_tu, 2, "2xx retransmissions go to the TU, which ACKs them");
        assert_eq!(r.sent_times("ACK").len(), 0, "the transaction never ACKs a 2xx");
        r.run_until(Duration::from_secs(100));
        assert_eq!(r.sent_times("INVITE").len(), 1);
        assert_eq!(r.terminated_at(), Some(ms(200) + T1 * 64));
        // After M, a late 2xx is stray: the dialog layer still sees it.
        r.layer
            .handle_message(r.at(ms(40_000)), response(&inv, 200), udp())
            .unwrap();
        assert!(matches!(
            r.layer.poll_event(),
            Some(TxEvent::StrayResponse { .. })
        ));
    }

    #[test]
    fn non_invite_client_timer_e_caps_at_t2_and_timer_f_fires() {
        let mut r = Run::new();
        r.layer
            .start_client(r.start, request("OPTIONS", "z9hG4bKo"), udp())
            .unwrap();
        r.drain(r.start);
        r.run_until(Duration::from_secs(60));
        // 0, then E at +0.5, +1, +2, +4, +4, … (T2 = 4 s) until F at 32 s.
        assert_eq!(
            r.sent_times("OPTIONS"),
            [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500].map(ms)
        );
        assert_eq!(r.timeouts(), [(T1 * 64, Timer::F)]);
    }

    #[test]
    fn non_invite_client_provisional_sets_e_to_t2_then_final_runs_k() {
        let mut r = Run::new();
        let req = request("REGISTER", "z9hG4bKr");
        r.layer.start_client(r.start, req.clone(), udp()).unwrap();
        r.drain(r.start);
        r.layer
            .handle_message(r.at(ms(100)), response(&req, 100), udp())
            .unwrap();
        r.drain(r.at(ms(100)));
        r.run_until(ms(9000));
        // Timer E first fires at 0.5 s (armed before the 100), then every T2 in Proceeding.
        assert_eq!(r.sent_times("REGISTER"), [0, 500, 4500, 8500].map(ms));
        r.layer
            .handle_message(r.at(ms(9000)), response(&req, 200), udp())
            .unwrap();
        r.layer
            .handle_message(r.at(ms(9100)), response(&req, 200), udp())
            .unwrap(); // absorbed
        r.drain(r.at(ms(9100)));
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.sent_times("REGISTER").len(), 4);
        assert_eq!(
            r.events
                .iter()
                .filter(|(_, e)| matches!(e, TxEvent::Response { .. }))
                .count(),
            2
        );
        assert_eq!(
            r.terminated_at(),
            Some(ms(9000) + Duration::from_secs(5)),
            "Timer K = T4"
        );
    }

    #[test]
    fn non_invite_client_over_tcp_terminates_on_final() {
        let mut r = Run::new();
        let req = request("OPTIONS", "z9hG4bKo");
        r.layer.start_client(r.start, req.clone(), tcp()).unwrap();
        r.layer
            .handle_message(r.at(ms(50)), response(&req, 200), tcp())
            .unwrap();
        r.drain(r.at(ms(50)));
        assert_eq!(
            r.terminated_at(),
            Some(ms(50)),
            "Timer K is zero on a reliable transport"
        );
        assert!(r.layer.poll_timeout().is_none());
    }

    #[test]
    fn invite_server_sends_100_then_final_with_timer_g_and_h() {
        let mut r = Run::new();
        r.layer
            .handle_message(r.start, incoming("INVITE", "z9hG4bKs"), udp())
            .unwrap();
        r.drain(r.start);
        assert_eq!(r.sent_times("SIP/2.0 100 Trying"), [ms(0)]);
        let Some((
            _,
            TxEvent::Request {
                tx: Some(tx),
                request,
                ..
            },
        )) = r.events.first().cloned()
        else {
            panic!()
        };
        let top = request.values(&HeaderName::Via).next().unwrap().to_owned();
        assert!(top.ends_with(";branch=z9hG4bKs"), "{top}");
        // A retransmitted INVITE gets the 100 again and is not passed up.
        r.layer
            .handle_message(r.at(ms(500)), incoming("INVITE", "z9hG4bKs"), udp())
            .unwrap();
        r.drain(r.at(ms(500)));
        assert_eq!(r.sent_times("SIP/2.0 100").len(), 2);
        r.layer
            .respond(r.at(ms(1000)), tx, &response(&request, 486))
            .unwrap();
        r.drain(r.at(ms(1000)));
        assert_eq!(
            r.layer.respond(r.at(ms(1000)), tx, &response(&request, 200)),
            Err(TxError::WrongState)
        );
        r.run_until(Duration::from_secs(60));
        // G: 0.5, 1, 2, 4, 4, … after the first send at 1 s; H at 1 s + 32 s.
        let g: Vec<_> = r.sent_times("SIP/2.0 486");
        assert_eq!(&g[..6], &[1000, 1500, 2500, 4500, 8500, 12500].map(ms));
        assert_eq!(*g.last().unwrap(), ms(32_500));
        assert_eq!(r.timeouts(), [(ms(1000) + T1 * 64, Timer::H)]);
    }

    #[test]
    fn invite_server_ack_confirms_and_timer_i_ends_it() {
        let mut r = Run::new();
        r.layer
            .handle_message(r.start, incoming("INVITE", "z9hG4bKs"), udp())
            .unwrap();
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = r.layer.poll_event()
        else {
            panic!()
        };
        r.layer
            .respond(r.at(ms(10)), tx, &response(&request, 404))
            .unwrap();
        r.drain(r.at(ms(10)));
        r.layer
            .handle_message(r.at(ms(300)), incoming("ACK", "z9hG4bKs"), udp())
            .unwrap();
        assert_eq!(r.layer.state(tx), Some((Kind::InviteServer, State::Confirmed)));
        r.layer
            .handle_message(r.at(ms(400)), incoming("ACK", "z9hG4bKs"), udp())
            .unwrap(); // absorbed
        r.drain(r.at(ms(400)));
        assert!(
            !r.events.iter().any(|(_, e)| matches!(e, TxEvent::Request { .. })),
            "ACKs are not passed up"
        );
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.sent_times("SIP/2.0 100"), [ms(10)]);
        assert_eq!(
            r.sent_times("SIP/2.0 404"),
            [ms(10)],
            "G stopped by the ACK before it fired"
        );
        assert_eq!(
            r.terminated_at(),
            Some(ms(300) + Duration::from_secs(5)),
            "Timer I = T4"
        );
        assert!(r.timeouts().is_empty());
    }

    #[test]
    fn invite_server_2xx_is_accepted_and_timer_l_absorbs_retransmissions() {
        let mut r = Run::new();
        r.layer
            .handle_message(r.start, incoming("INVITE", "z9hG4bKs"), udp())
            .unwrap();
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = r.layer.poll_event()
        else {
            panic!()
        };
        r.layer
            .respond(r.at(ms(10)), tx, &response(&request, 200))
            .unwrap();
        r.layer
            .respond(r.at(ms(510)), tx, &response(&request, 200))
            .unwrap(); // TU retransmission
        r.layer
            .handle_message(r.at(ms(600)), incoming("INVITE", "z9hG4bKs"), udp())
            .unwrap();
        r.drain(r.at(ms(600)));
        assert_eq!(
            r.sent_times("SIP/2.0 200"),
            [ms(600), ms(600)],
            "only the TU's sends, not the INVITE's"
        );
        // The ACK to the 2xx has its own branch: it reaches the TU without a transaction.
        r.layer
            .handle_message(r.at(ms(700)), incoming("ACK", "z9hG4bKack"), udp())
            .unwrap();
        assert!(matches!(
            r.layer.poll_event(),
            Some(TxEvent::Request { tx: None, .. })
        ));
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.terminated_at(), Some(ms(10) + T1 * 64), "Timer L");
    }

    #[test]
    fn non_invite_server_timer_j_and_retransmissions() {
        let mut r = Run::new();
        r.layer
            .handle_message(r.start, incoming("OPTIONS", "z9hG4bKn"), udp())
            .unwrap();
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = r.layer.poll_event()
        else {
            panic!()
        };
        r.layer
            .handle_message(r.at(ms(100)), incoming("OPTIONS", "z9hG4bKn"), udp())
            .unwrap(); // Trying: discarded
        r.drain(r.at(ms(100)));
        assert!(r.sent.is_empty());
        r.layer
            .respond(r.at(ms(200)), tx, &response(&request, 200))
            .unwrap();
        r.layer
            .handle_message(r.at(ms(700)), incoming("OPTIONS", "z9hG4bKn"), udp())
            .unwrap();
        r.drain(r.at(ms(700)));
        assert_eq!(
            r.sent_times("SIP/2.0 200").len(),
            2,
            "final resent on retransmission"
        );
        assert!(
            r.events
                .iter()
                .all(|(_, e)| !matches!(e, TxEvent::Request { .. }))
        );
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.terminated_at(), Some(ms(200) + T1 * 64), "Timer J = 64·T1");
    }

    #[test]
    fn non_invite_server_over_tcp_ends_at_once_and_replies_on_the_connection() {
        let mut r = Run::new();
        let mut route = tcp();
        route.remote = "198.51.100.7:49152".parse().unwrap(); // connection's ephemeral port
        r.layer
            .handle_message(r.start, incoming("OPTIONS", "z9hG4bKn"), route)
            .unwrap();
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = r.layer.poll_event()
        else {
            panic!()
        };
        r.layer.respond(r.start, tx, &response(&request, 200)).unwrap();
        let t = r.layer.poll_transmit().unwrap();
        assert_eq!(t.destination, route.remote);
        assert!(matches!(r.layer.poll_event(), Some(TxEvent::Terminated { .. })));
    }

    #[test]
    fn udp_responses_follow_via_received_and_rport() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let now = crate::test_epoch();
        let req = incoming("OPTIONS", "z9hG4bKn");
        let text = String::from_utf8(req.encode())
            .unwrap()
            .replace("branch=z9hG4bKn", "branch=z9hG4bKn;rport");
        let mut route = udp();
        route.remote = "203.0.113.5:61000".parse().unwrap(); // NAT
        layer
            .handle_message(now, Message::parse(text.as_bytes()).unwrap(), route)
            .unwrap();
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = layer.poll_event()
        else {
            panic!()
        };
        let via = request.values(&HeaderName::Via).next().unwrap();
        assert!(via.ends_with(";received=203.0.113.5;rport=61000"), "{via}");
        layer.respond(now, tx, &response(&request, 200)).unwrap();
        assert_eq!(layer.poll_transmit().unwrap().destination, route.remote);
    }

    #[test]
    fn a_deadline_survives_provisional_responses() {
        let mut r = Run::new();
        let inv = request("INVITE", "z9hG4bKd");
        let tx = r.layer.start_client(r.start, inv.clone(), udp()).unwrap();
        r.layer.deadline(tx, r.start + Duration::from_secs(10));
        r.layer
            .handle_message(r.at(ms(100)), response(&inv, 180), udp())
            .unwrap();
        r.drain(r.at(ms(100)));
        r.run_until(Duration::from_secs(60));
        assert_eq!(r.timeouts(), [(Duration::from_secs(10), Timer::B)]);
        assert!(r.layer.is_empty());
    }

    #[test]
    fn a_transport_error_ends_waiting_client_transactions_at_once() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let now = crate::test_epoch();
        let tx = layer
            .start_client(now, request("INVITE", "z9hG4bKte"), tcp())
            .unwrap();
        let other = layer
            .start_client(now, request("OPTIONS", "z9hG4bKto"), udp())
            .unwrap();
        layer.transport_error(Transport::Tcp, tcp().remote);
        let events: Vec<_> = std::iter::from_fn(|| layer.poll_event()).collect();
        assert_eq!(
            events,
            [TxEvent::TransportError { tx }, TxEvent::Terminated { tx }]
        );
        assert!(layer.state(other).is_some(), "other transports are unaffected");
    }

    #[test]
    fn matching_rules() {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let now = crate::test_epoch();
        // Client side: same branch, different method (CANCEL) is a different transaction.
        let inv = request("INVITE", "z9hG4bKm");
        let inv_tx = layer.start_client(now, inv.clone(), udp()).unwrap();
        let cancel_tx = layer
            .start_client(now, request("CANCEL", "z9hG4bKm"), udp())
            .unwrap();
        assert_ne!(inv_tx, cancel_tx);
        assert_eq!(
            layer.start_client(now, request("INVITE", "z9hG4bKm"), udp()),
            Err(TxError::Duplicate)
        );
        assert_eq!(
            layer.start_client(now, request("OPTIONS", "nocookie"), udp()),
            Err(TxError::BadBranch)
        );
        assert_eq!(
            layer.start_client(now, request("ACK", "z9hG4bKx"), udp()),
            Err(TxError::AckIsNotATransaction)
        );
        while layer.poll_event().is_some() {}
        let mut wrong = response(&inv, 180);
        wrong.replace_top_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKother");
        layer.handle_message(now, wrong, udp()).unwrap();
        assert!(matches!(layer.poll_event(), Some(TxEvent::StrayResponse { .. })));

        // Server side: CANCEL shares the INVITE's branch but is its own transaction.
        layer
            .handle_message(now, incoming("INVITE", "z9hG4bKsrv"), udp())
            .unwrap();
        layer
            .handle_message(now, incoming("CANCEL", "z9hG4bKsrv"), udp())
            .unwrap();
        let new_server_txs = std::iter::from_fn(|| layer.poll_event())
            .filter(|e| matches!(e, TxEvent::Request { tx: Some(_), .. }))
            .count();
        assert_eq!(new_server_txs, 2);
        // Same branch from another sent-by is another transaction.
        let other = String::from_utf8(incoming("OPTIONS", "z9hG4bKsrv").encode())
            .unwrap()
            .replace(":5060;branch", ":5070;branch");
        layer
            .handle_message(now, Message::parse(other.as_bytes()).unwrap(), udp())
            .unwrap();
        assert!(matches!(
            layer.poll_event(),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        // RFC 2543 peers (no magic cookie) are matched by Call-ID, CSeq, From tag and Via.
        layer
            .handle_message(now, incoming("OPTIONS", "old1"), udp())
            .unwrap();
        layer
            .handle_message(now, incoming("OPTIONS", "old1"), udp())
            .unwrap();
        let legacy = std::iter::from_fn(|| layer.poll_event())
            .filter(|e| matches!(e, TxEvent::Request { .. }))
            .count();
        assert_eq!(legacy, 1);
        // No Via: dropped with an error.
        let mut no_via = incoming("OPTIONS", "z9hG4bKq");
        no_via.headers.retain(|h| h.name != HeaderName::Via);
        assert_eq!(layer.handle_message(now, no_via, udp()), Err(TxError::NoTopVia));
    }
}
