//! The SIP endpoint: datagrams and time in, datagrams, timers and outcomes out.
//!
//! Every request runs through the [`TransactionLayer`], so retransmissions are absorbed or answered
//! from the transaction (RFC 3261 §17) and INVITEs get `100 Trying` and Timer G/H. Until the dialog
//! layer and the B2BUA land, the transaction user here is a correct UAS of its own (§8.2): `OPTIONS` →
//! `200 OK` with our capabilities (§11.2); CANCEL and BYE → 481 (no such call); anything else → 501;
//! malformed but answerable requests → the error [`crate::validate`] names; ACKs and stray responses are
//! absorbed; CRLF keepalives ignored; everything counted in [`Stats`].

use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::b2bua::{self, B2bua, CallEvent, Handled};
use crate::message::{HeaderName, Message, Method, StartLine, header_param};
use crate::ratelimit::{RateLimit, RateLimiter};
use crate::router::Router;
use crate::transaction::{Route, TimerConfig, TransactionLayer, TxEvent, TxId, response_for};
use crate::transport::{Datagram, Transmit};
use crate::validate::{self, Rejection};
use crate::via::Via;

/// Methods this endpoint serves today (the `Allow` header).
pub const ALLOW: &str = "OPTIONS";

/// Option tags we implement (`Supported`, and what `Require` may ask for). None yet.
pub const SUPPORTED: &[&str] = &[];

/// Construction parameters.
#[derive(Debug)]
pub struct EndpointConfig {
    /// `Server` header value; `None` sends none. Control characters are stripped.
    pub server: Option<String>,
    /// Secret mixed into generated To-tags so they cannot be predicted; supplied by the shell from the
    /// OS random source (the core never reads one).
    pub tag_secret: u64,
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Where calls go. Without a router the endpoint answers INVITE with 501 (signalling-only mode).
    pub router: Option<Box<dyn Router>>,
}

/// Counters; the shell exposes them in logs and, later, metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests read (retransmissions included).
    pub requests: u64,
    /// Responses we originated (transaction retransmissions not counted).
    pub responses_sent: u64,
    /// Requests answered with an error because they were malformed (400, 416, 505).
    pub malformed_answered: u64,
    /// Datagrams dropped because nothing could be answered (unreadable, or no usable Via/From/To/Call-ID/CSeq).
    pub malformed_dropped: u64,
    /// Responses received with no client transaction to deliver them to.
    pub stray_responses: u64,
    /// `ACK`s received.
    pub acks: u64,
    /// Whitespace-only keepalive datagrams (RFC 5626 §4.4.1 style CRLF pings).
    pub keepalives: u64,
    /// Transactions that timed out (Timer B, F or H).
    pub timeouts: u64,
    /// Requests refused with 513 for exceeding the size limit.
    pub oversize: u64,
    /// New INVITE/REGISTER refused with 503 by the per-source rate limit.
    pub rate_limited: u64,
}

/// Protection against bad or excessive input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted; larger requests are answered 513 (RFC 3261 §21.5.14).
    pub max_message_bytes: usize,
    /// New INVITE/REGISTER per source address.
    pub per_source: RateLimit,
}

impl Default for Limits {
    /// No limit beyond the 64 KiB every transport has; no rate limit.
    fn default() -> Self {
        Self {
            max_message_bytes: crate::message::MAX_MESSAGE_LEN,
            per_source: RateLimit {
                per_second: 0,
                burst: 0,
            },
        }
    }
}

/// What happened to one input, for the shell's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new request was answered.
    Answered {
        /// Request method.
        method: Method,
        /// Status code sent.
        code: u16,
    },
    /// Handed to the call core, which relays it (an INVITE offered to the trunk).
    Relayed {
        /// Request method.
        method: Method,
    },
    /// Nothing new to answer (retransmission, ACK, stray response, keepalive).
    Absorbed,
    /// Dropped; the reason names what was wrong.
    Dropped(String),
}

/// The sans-IO SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    transactions: TransactionLayer,
    b2bua: Option<B2bua>,
    limits: Limits,
    limiter: RateLimiter,
    stats: Stats,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new(mut config: EndpointConfig) -> Self {
        if let Some(s) = &mut config.server {
            s.retain(|c| !c.is_control());
        }
        let transactions = TransactionLayer::new(config.timers);
        // The call core's ids come from the same secret, decorrelated (SplitMix64 of a different value).
        let b2bua = config.router.take().map(|router| {
            B2bua::new(
                router,
                config.server.clone(),
                config.timers,
                config.tag_secret ^ 0x5eed_ca11_b2b0_a000,
            )
        });
        let limits = Limits::default();
        Self {
            config,
            transactions,
            b2bua,
            limits,
            limiter: RateLimiter::new(limits.per_source),
            stats: Stats::default(),
        }
    }

    /// The same endpoint with `limits` applied.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.limiter = RateLimiter::new(limits.per_source);
        self
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.b2bua.as_ref().map_or(0, B2bua::active_calls)
    }

    /// Ended calls still waiting for their last transactions (see [`B2bua::ending_calls`]).
    pub fn ending_calls(&self) -> usize {
        self.b2bua.as_ref().map_or(0, B2bua::ending_calls)
    }

    /// Browsers registered through the gateway.
    pub fn registered(&self) -> usize {
        self.b2bua.as_ref().map_or(0, B2bua::registered)
    }

    /// Browsers' refreshes answered here instead of forwarded (registration offload).
    pub fn offloaded_registers(&self) -> u64 {
        self.b2bua.as_ref().map_or(0, B2bua::offloaded_registers)
    }

    /// The shell could not open a connection to `destination`: transactions waiting on it fail now.
    pub fn transport_error(
        &mut self,
        now: Instant,
        transport: crate::Transport,
        destination: std::net::SocketAddr,
    ) {
        self.transactions.transport_error(transport, destination);
        self.drain_events(now, None);
    }

    /// A connection (TCP, TLS, WebSocket) closed: its registrations go, and calls on it end with a BYE
    /// on the other leg.
    pub fn flow_closed(&mut self, now: Instant, local: std::net::SocketAddr, remote: std::net::SocketAddr) {
        if let Some(b2bua) = &mut self.b2bua {
            b2bua.flow_closed(now, local, remote, &mut self.transactions);
        }
        self.drain_events(now, None);
    }

    /// Starts the call core with `router` when the endpoint was built without one (a gateway that
    /// started with no trunk and got one by reload). Does nothing if calls already run.
    pub fn start_calls(&mut self, router: Box<dyn Router>) {
        if self.b2bua.is_none() {
            self.b2bua = Some(B2bua::new(
                router,
                self.config.server.clone(),
                self.config.timers,
                self.config.tag_secret ^ 0x5eed_ca11_b2b0_a000,
            ));
        }
    }

    /// Anchors media: session descriptions cross `media` between the legs (without it, bodies pass
    /// through unchanged). No effect without a trunk (no B2BUA).
    pub fn set_media(&mut self, media: Box<dyn b2bua::MediaAnchor>) {
        if let Some(b2bua) = &mut self.b2bua {
            b2bua.set_media(media);
        }
    }

    /// The router the call core asks (`None` without one).
    pub fn router_mut(&mut self) -> Option<&mut dyn Router> {
        self.b2bua.as_mut().map(B2bua::router_mut)
    }

    /// The media plane ended `call` (see [`B2bua::media_failed`]).
    pub fn media_failed(&mut self, now: Instant, call: b2bua::CallRef, status: u16, reason: &str) {
        if let Some(b2bua) = &mut self.b2bua {
            b2bua.media_failed(now, call, status, reason, &mut self.transactions);
        }
    }

    /// Every call not yet forgotten, as an operator sees it.
    pub fn calls(&self) -> Vec<b2bua::CallInfo> {
        self.b2bua.as_ref().map_or_else(Vec::new, B2bua::calls)
    }

    /// One call, as an operator sees it.
    pub fn call_info(&self, call: b2bua::CallRef) -> Option<b2bua::CallInfo> {
        self.b2bua.as_ref().and_then(|b| b.call_info(call))
    }

    /// Registered browsers, at most `max`.
    pub fn bindings(&self, max: usize) -> Vec<b2bua::BindingInfo> {
        self.b2bua.as_ref().map_or_else(Vec::new, |b| b.bindings(max))
    }

    /// Sends a test OPTIONS to trunk `trunk` (see [`B2bua::test_options`]); call [`Self::poll_transmit`]
    /// next.
    pub fn test_options(&mut self, now: Instant, trunk: usize) -> Option<u64> {
        let b2bua = self.b2bua.as_mut()?;
        b2bua.test_options(now, trunk, &mut self.transactions)
    }

    /// The next answer to a test OPTIONS.
    pub fn poll_test_answer(&mut self) -> Option<b2bua::TestAnswer> {
        self.b2bua.as_mut().and_then(B2bua::poll_test_answer)
    }

    /// The next call event (started, answered, ended), for logs and CDRs.
    pub fn poll_call_event(&mut self) -> Option<CallEvent> {
        self.b2bua.as_mut().and_then(B2bua::poll_event)
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// The next datagram to send, if any. Drain after every `handle_*`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transactions.poll_transmit()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.b2bua.as_ref().and_then(B2bua::poll_timeout);
        match (self.transactions.poll_timeout(), calls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.drain_events(now, None);
        if let Some(b2bua) = &mut self.b2bua {
            b2bua.handle_timeout(now, &mut self.transactions);
        }
        self.drain_events(now, None);
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, d: Datagram<'_>) -> Outcome {
        if d.payload.iter().all(u8::is_ascii_whitespace) {
            self.stats.keepalives += 1;
            return Outcome::Absorbed;
        }
        let mut msg = match Message::parse(d.payload) {
            Ok(m) => m,
            Err(e) => return self.drop_malformed(e.to_string()),
        };
        let route = Route {
            transport: d.transport,
            local: d.local,
            remote: d.remote,
        };
        let framing = msg.frame_datagram_body();
        let verdict = match &msg.start {
            StartLine::Response { .. } => {
                // Only transaction matching needs a response to be readable; a bad one is just stray.
                if self.transactions.handle_message(now, msg, route).is_err() {
                    self.stats.stray_responses += 1;
                }
                self.drain_events(now, None);
                return Outcome::Absorbed;
            }
            StartLine::Request { .. } => {
                self.stats.requests += 1;
                if let Err(why) = validate::answerable(&msg) {
                    return self.drop_malformed(why);
                }
                if msg.method() == Some(&Method::Ack) {
                    self.stats.acks += 1;
                }
                if d.payload.len() > self.limits.max_message_bytes {
                    self.stats.oversize += 1;
                    Err(Rejection {
                        code: 513,
                        reason: "Message Too Large".to_owned(),
                        headers: vec![],
                    })
                } else {
                    match framing {
                        Err(why) => Err(Rejection {
                            code: 400,
                            reason: format!("Bad Request ({why})"),
                            headers: vec![],
                        }),
                        Ok(()) => {
                            // With the call core on, session timers (RFC 4028) are implemented.
                            let supported: &[&str] = if self.b2bua.is_some() {
                                &["timer"]
                            } else {
                                SUPPORTED
                            };
                            validate::check_request(&msg, supported)
                        }
                    }
                }
            }
        };
        if let Err(e) = self.transactions.handle_message(now, msg, route) {
            return self.drop_malformed(format!("{e:?}"));
        }
        self.drain_events(now, Some(verdict)).unwrap_or(Outcome::Absorbed)
    }

    /// Hands the transaction layer's events to the TU logic. `verdict` is the validation result of the
    /// request just fed in, applied to the new server transaction it created (if any).
    fn drain_events(&mut self, now: Instant, mut verdict: Option<Result<(), Rejection>>) -> Option<Outcome> {
        let mut outcome = None;
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TxEvent::Request {
                    tx: Some(tx),
                    request,
                    route,
                } => {
                    let v = verdict.take().unwrap_or(Ok(()));
                    outcome = Some(self.dispatch(now, tx, &request, route, v));
                }
                // ACKs to 2xx and ACKs matching nothing.
                TxEvent::Request {
                    tx: None, request, ..
                } => {
                    if let Some(b2bua) = &mut self.b2bua {
                        b2bua.ack(now, &request, &mut self.transactions);
                    }
                }
                TxEvent::StrayResponse { response, .. } => {
                    let ours = self
                        .b2bua
                        .as_mut()
                        .is_some_and(|b| b.stray_response(&response, &mut self.transactions));
                    if !ours {
                        self.stats.stray_responses += 1;
                    }
                }
                TxEvent::Response { tx, response } => {
                    if let Some(b2bua) = &mut self.b2bua {
                        b2bua.response(now, tx, &response, &mut self.transactions);
                    }
                }
                TxEvent::Timeout { tx, .. } => {
                    self.stats.timeouts += 1;
                    if let Some(b2bua) = &mut self.b2bua {
                        b2bua.timeout(now, tx, &mut self.transactions);
                    }
                }
                TxEvent::TransportError { tx } => {
                    if let Some(b2bua) = &mut self.b2bua {
                        b2bua.transport_error(now, tx, &mut self.transactions);
                    }
                }
                TxEvent::Terminated { .. } => {}
            }
        }
        outcome
    }

    /// A new request: to the call core when it is about calls, otherwise the local UAS logic.
    fn dispatch(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        route: Route,
        verdict: Result<(), Rejection>,
    ) -> Outcome {
        let method = request.method().cloned().unwrap_or(Method::Other(String::new()));
        let in_dialog = request
            .header(&HeaderName::To)
            .and_then(|t| header_param(t, "tag"))
            .is_some();
        let new_work = !in_dialog && matches!(method, Method::Invite | Method::Register);
        if verdict.is_ok() && new_work && !self.limiter.admit(route.remote.ip(), now) {
            self.stats.rate_limited += 1;
            let response = self.build_response(
                request,
                503,
                "Service Unavailable",
                vec![(HeaderName::Other("Retry-After".into()), "5".to_owned())],
            );
            let _ = self.transactions.respond(now, tx, &response);
            return Outcome::Answered { method, code: 503 };
        }
        if verdict.is_ok()
            && let Some(b2bua) = &mut self.b2bua
        {
            let tl = &mut self.transactions;
            let handled = match method {
                Method::Invite if !in_dialog => b2bua.invite(now, tx, request, route, tl),
                Method::Cancel => b2bua.cancel(now, tx, request, tl),
                Method::Register if !in_dialog => b2bua.register(now, tx, request, route, tl),
                Method::Options if !in_dialog => b2bua.options(now, tx, request, tl),
                _ if in_dialog => b2bua.in_dialog(now, tx, request, tl),
                _ => Handled::No,
            };
            match handled {
                Handled::Yes(Some(code)) => {
                    self.stats.responses_sent += 1;
                    return Outcome::Answered { method, code };
                }
                Handled::Yes(None) => return Outcome::Relayed { method },
                Handled::No => {}
            }
        }
        self.serve(now, tx, request, verdict, in_dialog)
    }

    /// The UAS logic for one new request.
    fn serve(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        verdict: Result<(), Rejection>,
        in_dialog: bool,
    ) -> Outcome {
        let method = request.method().cloned().unwrap_or(Method::Other(String::new()));
        let allow = if self.b2bua.is_some() { b2bua::ALLOW } else { ALLOW };
        let (code, reason, headers) = match verdict {
            Err(r) => {
                if r.code != 420 {
                    self.stats.malformed_answered += 1;
                }
                (r.code, r.reason, r.headers)
            }
            Ok(()) => match method {
                Method::Options => (
                    200,
                    "OK".to_owned(),
                    vec![
                        (HeaderName::Allow, allow.to_owned()),
                        (HeaderName::Accept, "application/sdp".to_owned()),
                        (HeaderName::Other("Accept-Encoding".into()), "identity".to_owned()),
                    ],
                ),
                // No dialog or transaction exists for these to act on (RFC 3261 §9.2, §12.2.2).
                Method::Cancel | Method::Bye => (481, "Call/Transaction Does Not Exist".to_owned(), vec![]),
                _ if in_dialog => (481, "Call/Transaction Does Not Exist".to_owned(), vec![]),
                _ => (
                    501,
                    "Not Implemented".to_owned(),
                    vec![(HeaderName::Allow, allow.to_owned())],
                ),
            },
        };
        let response = self.build_response(request, code, &reason, headers);
        match self.transactions.respond(now, tx, &response) {
            Ok(()) => {
                self.stats.responses_sent += 1;
                Outcome::Answered { method, code }
            }
            Err(e) => Outcome::Dropped(format!("cannot respond: {e:?}")),
        }
    }

    fn drop_malformed(&mut self, why: String) -> Outcome {
        self.stats.malformed_dropped += 1;
        Outcome::Dropped(why)
    }

    /// §8.2.6.2: the response copies Via, From, To, Call-ID, CSeq; we add a To-tag and our headers.
    fn build_response(
        &self,
        request: &Message,
        code: u16,
        reason: &str,
        extra: Vec<(HeaderName, String)>,
    ) -> Message {
        let mut response = response_for(request, code, reason);
        if let Some(to) = response.headers.iter_mut().find(|h| h.name == HeaderName::To)
            && header_param(&to.value, "tag").is_none()
        {
            to.value = format!("{};tag={}", to.value, self.to_tag(request));
        }
        for (name, value) in extra {
            response.push_header(name, value);
        }
        if let Some(server) = self.config.server.as_deref().filter(|s| !s.is_empty()) {
            response.push_header(HeaderName::Server, server);
        }
        response
    }

    /// A To-tag that is the same for retransmissions of one request (RFC 3261 §8.2.6.2) and unpredictable
    /// without the secret.
    fn to_tag(&self, msg: &Message) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.config.tag_secret.hash(&mut h);
        msg.header(&HeaderName::CallId).hash(&mut h);
        msg.header(&HeaderName::From)
            .and_then(|f| header_param(f, "tag"))
            .hash(&mut h);
        msg.header(&HeaderName::CSeq).hash(&mut h);
        msg.values(&HeaderName::Via)
            .next()
            .and_then(|v| Via::parse(v).ok())
            .and_then(|v| v.branch())
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transport::Transport;

    const LOCAL: &str = "192.0.2.1:5060";
    const REMOTE: &str = "198.51.100.7:40000";

    fn endpoint() -> Endpoint {
        Endpoint::new(EndpointConfig {
            server: Some("RTC-Edge/test".into()),
            tag_secret: 42,
            timers: TimerConfig::default(),
            router: None,
        })
    }

    /// Feeds `text` at `now`; returns the outcome and every datagram sent.
    fn feed_at(ep: &mut Endpoint, now: Instant, text: &str) -> (Outcome, Vec<Transmit>) {
        let outcome = ep.handle_datagram(
            now,
            Datagram {
                transport: Transport::Udp,
                local: LOCAL.parse().unwrap(),
                remote: REMOTE.parse().unwrap(),
                payload: text.as_bytes(),
            },
        );
        (outcome, std::iter::from_fn(|| ep.poll_transmit()).collect())
    }

    fn feed(ep: &mut Endpoint, text: &str) -> (Outcome, Option<Transmit>) {
        let (o, mut sent) = feed_at(ep, crate::test_epoch(), text);
        assert!(sent.len() <= 1, "one response expected: {sent:?}");
        (o, sent.pop())
    }

    fn request(method: &str, extra: &str) -> String {
        format!(
            "{method} sip:gw@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKabc;rport\r\n\
             Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKdef\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
             To: <sip:gw@192.0.2.1>\r\n\
             Call-ID: c1@10.0.0.5\r\n\
             CSeq: 7 {method}\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn text(t: &Transmit) -> String {
        String::from_utf8(t.payload.clone()).unwrap()
    }

    fn code_of(t: &Transmit) -> u16 {
        match Message::parse(&t.payload).unwrap().start {
            StartLine::Response { code, .. } => code,
            StartLine::Request { .. } => panic!("sent a request"),
        }
    }

    #[test]
    fn options_gets_200_with_capabilities_routed_by_rport() {
        let mut ep = endpoint();
        let (outcome, t) = feed(&mut ep, &request("OPTIONS", ""));
        assert_eq!(
            outcome,
            Outcome::Answered {
                method: Method::Options,
                code: 200
            }
        );
        let t = t.unwrap();
        assert_eq!(t.destination, REMOTE.parse().unwrap());
        assert_eq!(t.local, LOCAL.parse().unwrap());
        let r = Message::parse(&t.payload).unwrap();
        assert_eq!(
            r.start,
            StartLine::Response {
                code: 200,
                reason: "OK".into()
            }
        );
        let vias: Vec<_> = r.values(&HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKabc;received=198.51.100.7;rport=40000",
                "SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKdef"
            ]
        );
        assert_eq!(
            r.header(&HeaderName::From),
            Some("\"Alice\" <sip:alice@example.com>;tag=f1")
        );
        let to = r.header(&HeaderName::To).unwrap();
        assert_eq!(header_param(to, "tag").flatten().unwrap().len(), 16);
        assert_eq!(r.header(&HeaderName::CallId), Some("c1@10.0.0.5"));
        assert_eq!(r.header(&HeaderName::CSeq), Some("7 OPTIONS"));
        assert_eq!(r.header(&HeaderName::Allow), Some(ALLOW));
        assert_eq!(r.header(&HeaderName::Accept), Some("application/sdp"));
        assert_eq!(r.header(&HeaderName::Server), Some("RTC-Edge/test"));
        assert_eq!(r.header(&HeaderName::ContentLength), Some("0"));
        assert!(text(&t).ends_with("\r\n\r\n"));

        // A retransmission is answered from the transaction: same bytes, no new answer.
        let (again_outcome, again) = feed(&mut ep, &request("OPTIONS", ""));
        assert_eq!(again_outcome, Outcome::Absorbed);
        assert_eq!(again.unwrap().payload, t.payload);
        // Another request gets another tag.
        let (_, other) = feed(
            &mut ep,
            &request("OPTIONS", "")
                .replace("c1@", "c2@")
                .replace("bKabc", "bKab2"),
        );
        let tag = header_param(to, "tag").flatten().unwrap();
        assert!(!text(&other.unwrap()).contains(tag));
        assert_eq!(ep.stats().responses_sent, 2);
        assert_eq!(ep.stats().requests, 3);
    }

    #[test]
    fn transactions_end_after_timer_j() {
        let mut ep = endpoint();
        let t0 = crate::test_epoch();
        feed_at(&mut ep, t0, &request("OPTIONS", ""));
        assert_eq!(ep.transactions(), 1);
        let deadline = ep.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Duration::from_secs(32), "Timer J = 64·T1 over UDP");
        ep.handle_timeout(deadline);
        assert_eq!((ep.transactions(), ep.poll_timeout()), (0, None));
    }

    #[test]
    fn invite_gets_100_then_501_retransmitted_until_ack() {
        let mut ep = endpoint();
        let t0 = crate::test_epoch();
        let (outcome, sent) = feed_at(&mut ep, t0, &request("INVITE", ""));
        assert_eq!(
            outcome,
            Outcome::Answered {
                method: Method::Invite,
                code: 501
            }
        );
        assert_eq!(sent.iter().map(code_of).collect::<Vec<_>>(), [100, 501]);
        let final_501 = sent[1].clone();
        // Timer G retransmits the 501 at T1.
        ep.handle_timeout(ep.poll_timeout().unwrap());
        assert_eq!(ep.poll_transmit().unwrap().payload, final_501.payload);
        // The ACK (same branch, To-tag from our response) stops it; Timer I then ends the transaction.
        let to = Message::parse(&final_501.payload)
            .unwrap()
            .header(&HeaderName::To)
            .unwrap()
            .to_owned();
        let ack = request("ACK", "").replace("To: <sip:gw@192.0.2.1>", &format!("To: {to}"));
        let (o, sent) = feed_at(&mut ep, t0 + Duration::from_millis(600), &ack);
        assert_eq!((o, sent.len()), (Outcome::Absorbed, 0));
        assert_eq!(ep.stats().acks, 1);
        ep.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!((ep.transactions(), ep.poll_transmit()), (0, None));
        assert_eq!(ep.stats().timeouts, 0);
    }

    #[test]
    fn missing_ack_times_out_on_timer_h() {
        let mut ep = endpoint();
        let t0 = crate::test_epoch();
        feed_at(&mut ep, t0, &request("INVITE", ""));
        ep.handle_timeout(t0 + Duration::from_secs(60));
        let resent = std::iter::from_fn(|| ep.poll_transmit()).count();
        assert!(resent >= 5, "Timer G kept retransmitting: {resent}");
        assert_eq!((ep.transactions(), ep.stats().timeouts), (0, 1));
    }

    #[test]
    fn existing_to_tag_is_kept_and_no_server_header_when_disabled() {
        let mut ep = Endpoint::new(EndpointConfig {
            server: Some(String::new()),
            tag_secret: 1,
            timers: TimerConfig::default(),
            router: None,
        });
        let req = request("OPTIONS", "").replace("To: <sip:gw@192.0.2.1>", "To: <sip:gw@192.0.2.1>;tag=mine");
        let (_, t) = feed(&mut ep, &req);
        let s = text(&t.unwrap());
        assert!(s.contains("To: <sip:gw@192.0.2.1>;tag=mine\r\n"), "{s}");
        assert!(!s.contains("Server:"), "{s}");
    }

    #[test]
    fn error_responses_a_uas_owes() {
        let cases = [
            (request("FOO", ""), 501),
            (request("REGISTER", ""), 501),
            (request("BYE", ""), 481),
            (request("CANCEL", ""), 481),
            (request("OPTIONS", "Require: 100rel, timer\r\n"), 420),
            (
                request("OPTIONS", "").replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"),
                400,
            ),
            (
                request("OPTIONS", "").replace("CSeq: 7 OPTIONS", "CSeq: x OPTIONS"),
                400,
            ),
            (
                request("OPTIONS", "").replace("CSeq: 7 OPTIONS", "CSeq: 2147483648 OPTIONS"),
                400,
            ),
            (
                request("OPTIONS", "").replace("Max-Forwards: 70", "Max-Forwards: many"),
                400,
            ),
            (
                request("OPTIONS", "").replace("Content-Length: 0", "Content-Length: 5"),
                400,
            ),
            (
                request("OPTIONS", "").replace("sip:gw@192.0.2.1 SIP", "http://x SIP"),
                416,
            ),
            (
                request("OPTIONS", "").replace("sip:gw@192.0.2.1 SIP", "sip:@@ SIP"),
                400,
            ),
            (
                request("OPTIONS", "").replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
                505,
            ),
        ];
        for (req, code) in cases {
            let mut ep = endpoint();
            let (outcome, t) = feed(&mut ep, &req);
            let Outcome::Answered { code: got, .. } = outcome else {
                panic!("{req}: {outcome:?}")
            };
            assert_eq!(got, code, "{req}");
            let t = t.unwrap();
            assert_eq!(code_of(&t), code);
            if code == 420 {
                let r = Message::parse(&t.payload).unwrap();
                assert_eq!(
                    r.header(&HeaderName::Other("Unsupported".into())),
                    Some("100rel, timer")
                );
            }
        }
    }

    #[test]
    fn tel_uri_is_accepted() {
        let mut ep = endpoint();
        let (o, _) = feed(
            &mut ep,
            &request("OPTIONS", "").replace("sip:gw@192.0.2.1 SIP", "tel:+15550100 SIP"),
        );
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Options,
                code: 200
            }
        );
    }

    #[test]
    fn ack_responses_and_keepalives_are_absorbed() {
        let mut ep = endpoint();
        assert_eq!(feed(&mut ep, &request("ACK", "")), (Outcome::Absorbed, None));
        assert_eq!(
            feed(
                &mut ep,
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
            (Outcome::Absorbed, None)
        );
        assert_eq!(feed(&mut ep, "SIP/2.0 200 OK\r\n\r\n"), (Outcome::Absorbed, None));
        assert_eq!(feed(&mut ep, "\r\n\r\n"), (Outcome::Absorbed, None));
        let s = ep.stats();
        assert_eq!(
            (s.acks, s.stray_responses, s.keepalives, s.responses_sent),
            (1, 2, 1, 0)
        );
    }

    #[test]
    fn unanswerable_garbage_is_dropped_and_counted() {
        let mut ep = endpoint();
        let no_via = request("OPTIONS", "")
            .replace("Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKabc;rport\r\n", "")
            .replace("Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKdef\r\n", "");
        for bad in [
            "hello world".to_owned(),
            no_via,
            request("OPTIONS", "").replace("Call-ID: c1@10.0.0.5\r\n", ""),
            request("OPTIONS", "").replace("Via: SIP/2.0/UDP 10.0.0.5:5062", "Via: SIP/2.0/UDP :5062"),
        ] {
            let (o, t) = feed(&mut ep, &bad);
            assert!(matches!(o, Outcome::Dropped(_)), "{bad}: {o:?}");
            assert_eq!(t, None);
        }
        assert_eq!(ep.stats().malformed_dropped, 4);
        assert_eq!(ep.transactions(), 0);
    }

    #[test]
    fn oversize_requests_get_513() {
        let mut ep = endpoint().with_limits(Limits {
            max_message_bytes: 600,
            ..Limits::default()
        });
        let big = request("OPTIONS", &format!("X-Padding: {}\r\n", "p".repeat(400)));
        assert!(big.len() > 600);
        let (o, t) = feed(&mut ep, &big);
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Options,
                code: 513
            }
        );
        assert_eq!(code_of(&t.unwrap()), 513);
        assert_eq!(
            feed(
                &mut ep,
                &request("OPTIONS", "")
                    .replace("c1@", "c3@")
                    .replace("bKabc", "bKsmall")
            )
            .0,
            Outcome::Answered {
                method: Method::Options,
                code: 200
            }
        );
        assert_eq!(ep.stats().oversize, 1);
    }

    #[test]
    fn a_register_flood_from_one_source_is_refused_with_503() {
        let mut ep = endpoint().with_limits(Limits {
            per_source: RateLimit {
                per_second: 2,
                burst: 3,
            },
            ..Limits::default()
        });
        let codes: Vec<u16> = (0..6)
            .map(|i| {
                let req = request("REGISTER", "")
                    .replace("c1@", &format!("c{i}@"))
                    .replace("bKabc", &format!("bKr{i}"));
                let (_, t) = feed(&mut ep, &req);
                code_of(&t.unwrap())
            })
            .collect();
        // No trunk here, so admitted REGISTERs get 501; the excess gets 503 with Retry-After.
        assert_eq!(codes, [501, 501, 501, 503, 503, 503]);
        assert_eq!(ep.stats().rate_limited, 3);
        // OPTIONS are not new work: never limited.
        let (o, _) = feed(&mut ep, &request("OPTIONS", "").replace("bKabc", "bKopt"));
        assert_eq!(
            o,
            Outcome::Answered {
                method: Method::Options,
                code: 200
            }
        );
    }
}
