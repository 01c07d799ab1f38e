//! The SIP endpoint: datagrams in, datagrams out.
//!
//! Until the transaction layer and the B2BUA land, the endpoint is a correct stateless UAS (RFC 3261
//! §8.2): it answers `OPTIONS` with `200 OK` (capabilities, §11.2), answers what it cannot serve with the
//! error a UAS owes (501, 481, 416, 420, 505, 400), absorbs `ACK`, ignores stray responses and CRLF
//! keepalives, and counts everything in [`Stats`]. Responses are routed by the top Via ([`crate::via`]).

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use crate::message::{HeaderName, Message, Method, StartLine, header_param};
use crate::transport::{Datagram, Transmit, Transport};
use crate::uri::{SipUri, UriError};
use crate::via::Via;

/// Methods this endpoint serves today (the `Allow` header).
pub const ALLOW: &str = "OPTIONS";

/// Construction parameters.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// `Server` header value; `None` sends none. Control characters are stripped.
    pub server: Option<String>,
    /// Secret mixed into generated To-tags so they cannot be predicted; supplied by the shell from the
    /// OS random source (the core never reads one).
    pub tag_secret: u64,
}

/// Counters; the shell exposes them in logs and, later, metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests read.
    pub requests: u64,
    /// Responses we sent.
    pub responses_sent: u64,
    /// Requests answered with an error because they were malformed (400, 416, 505).
    pub malformed_answered: u64,
    /// Datagrams dropped because nothing could be answered (unreadable, or no usable Via/From/To/Call-ID/CSeq).
    pub malformed_dropped: u64,
    /// Responses received with no client transaction to deliver them to.
    pub stray_responses: u64,
    /// `ACK`s absorbed.
    pub acks: u64,
    /// Whitespace-only keepalive datagrams (RFC 5626 §4.4.1 style CRLF pings).
    pub keepalives: u64,
}

/// What happened to one input, for the shell's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response was queued.
    Answered {
        /// Request method.
        method: Method,
        /// Status code sent.
        code: u16,
    },
    /// Nothing to send (ACK, stray response, keepalive).
    Absorbed,
    /// Dropped; the reason names what was wrong.
    Dropped(String),
}

/// The sans-IO SIP endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    transmits: VecDeque<Transmit>,
    stats: Stats,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new(mut config: EndpointConfig) -> Self {
        if let Some(s) = &mut config.server {
            s.retain(|c| !c.is_control());
        }
        Self {
            config,
            transmits: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next datagram to send, if any. Drain after every `handle_*`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, d: Datagram<'_>) -> Outcome {
        if d.payload.iter().all(u8::is_ascii_whitespace) {
            self.stats.keepalives += 1;
            return Outcome::Absorbed;
        }
        let mut msg = match Message::parse(d.payload) {
            Ok(m) => m,
            Err(e) => return self.drop_malformed(e.to_string()),
        };
        // Framing first (it trims the body); a framing error is answered once the response can be routed.
        let framing = msg.frame_datagram_body();
        let (method, uri, version) = match &msg.start {
            StartLine::Response { .. } => {
                self.stats.stray_responses += 1;
                return Outcome::Absorbed;
            }
            StartLine::Request { method, uri, version } => (method.clone(), uri.clone(), version.clone()),
        };
        self.stats.requests += 1;

        // Without a readable top Via and the dialog-identifying fields no response can be formed.
        let Some(top) = msg.values(&HeaderName::Via).next() else {
            return self.drop_malformed("request without Via".into());
        };
        let Ok(top) = Via::parse(top) else {
            return self.drop_malformed("unreadable top Via".into());
        };
        let (destination, top_via) = top.response_route(d.remote);
        for h in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if msg.header(&h).is_none_or(str::is_empty) {
                return self.drop_malformed(format!("request without {}", h.as_str()));
            }
        }
        if method == Method::Ack {
            self.stats.acks += 1;
            return Outcome::Absorbed;
        }
        let reply = Reply {
            msg: &msg,
            top_via: &top_via,
            local: d.local,
            destination,
            transport: d.transport,
        };

        if version != "SIP/2.0" {
            return self.answer_malformed(&reply, &method, 505, "Version Not Supported", &[]);
        }
        if let Err(why) = check_cseq(&msg, &method) {
            return self.answer_malformed(&reply, &method, 400, &format!("Bad Request ({why})"), &[]);
        }
        if let Some(mf) = msg.header(&HeaderName::MaxForwards)
            && mf.parse::<u8>().is_err()
        {
            return self.answer_malformed(&reply, &method, 400, "Bad Request (invalid Max-Forwards)", &[]);
        }
        if let Err(why) = check_request_uri(&uri) {
            return match why {
                UriProblem::Scheme => {
                    self.answer_malformed(&reply, &method, 416, "Unsupported URI Scheme", &[])
                }
                UriProblem::Syntax => {
                    self.answer_malformed(&reply, &method, 400, "Bad Request (malformed Request-URI)", &[])
                }
            };
        }
        if let Err(why) = framing {
            return self.answer_malformed(&reply, &method, 400, &format!("Bad Request ({why})"), &[]);
        }
        // RFC 3261 §8.2.2.3: we implement no option tags yet, so any Require is unsupported (not on CANCEL).
        if method != Method::Cancel {
            let required: Vec<&str> = msg.values(&HeaderName::Require).collect();
            if !required.is_empty() {
                let unsupported = required.join(", ");
                return self.answer(
                    &reply,
                    &method,
                    420,
                    "Bad Extension",
                    &[("Unsupported", &unsupported)],
                );
            }
        }
        match method {
            Method::Options => self.answer(
                &reply,
                &method,
                200,
                "OK",
                &[
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Accept-Encoding", "identity"),
                ],
            ),
            // No dialog or transaction exists for these to act on (RFC 3261 §9.2, §15.1.2).
            Method::Cancel | Method::Bye => {
                self.answer(&reply, &method, 481, "Call/Transaction Does Not Exist", &[])
            }
            _ => self.answer(&reply, &method, 501, "Not Implemented", &[("Allow", ALLOW)]),
        }
    }

    fn drop_malformed(&mut self, why: String) -> Outcome {
        self.stats.malformed_dropped += 1;
        Outcome::Dropped(why)
    }

    fn answer_malformed(
        &mut self,
        r: &Reply<'_>,
        method: &Method,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> Outcome {
        self.stats.malformed_answered += 1;
        self.answer(r, method, code, reason, extra)
    }

    fn answer(
        &mut self,
        r: &Reply<'_>,
        method: &Method,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> Outcome {
        let payload = self.build_response(r, code, reason, extra);
        self.transmits.push_back(Transmit {
            transport: r.transport,
            local: r.local,
            destination: r.destination,
            payload,
        });
        self.stats.responses_sent += 1;
        Outcome::Answered {
            method: method.clone(),
            code,
        }
    }

    /// RFC 3261 §8.2.6.2: Via (all, top one stamped), From, To (+ tag), Call-ID, CSeq copied.
    fn build_response(&self, r: &Reply<'_>, code: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let msg = r.msg;
        let mut out = String::with_capacity(512);
        out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"));
        out.push_str(&format!("Via: {}\r\n", r.top_via));
        for via in msg.values(&HeaderName::Via).skip(1) {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        let from = msg.header(&HeaderName::From).unwrap_or_default();
        let to = msg.header(&HeaderName::To).unwrap_or_default();
        let call_id = msg.header(&HeaderName::CallId).unwrap_or_default();
        let cseq = msg.header(&HeaderName::CSeq).unwrap_or_default();
        out.push_str(&format!("From: {from}\r\n"));
        if header_param(to, "tag").is_some() {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {to};tag={}\r\n", self.to_tag(msg)));
        }
        out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(server) = self.config.server.as_deref().filter(|s| !s.is_empty()) {
            out.push_str(&format!("Server: {server}\r\n"));
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.into_bytes()
    }

    /// A To-tag that is the same for retransmissions of one request (so a stateless answer stays
    /// consistent, RFC 3261 §8.2.6.2) and unpredictable without the secret.
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

/// Everything needed to address a response.
struct Reply<'a> {
    msg: &'a Message,
    top_via: &'a str,
    local: SocketAddr,
    destination: SocketAddr,
    transport: Transport,
}

/// CSeq = 1*DIGIT LWS Method, number < 2^31, method equal to the request's (RFC 3261 §8.1.1.5).
fn check_cseq(msg: &Message, method: &Method) -> Result<(), &'static str> {
    let cseq = msg.header(&HeaderName::CSeq).unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let number = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or("invalid CSeq number")?;
    if number >= 1 << 31 {
        return Err("CSeq number too large");
    }
    let m = parts.next().ok_or("CSeq without method")?;
    if parts.next().is_some() || m != method.as_str() {
        return Err("CSeq method does not match the request");
    }
    Ok(())
}

enum UriProblem {
    Scheme,
    Syntax,
}

/// SIP and SIPS URIs must follow the RFC 3261 grammar; `tel:` is accepted (RFC 3966); anything else is
/// an unsupported scheme (RFC 3261 §8.2.2.1).
fn check_request_uri(uri: &str) -> Result<(), UriProblem> {
    match SipUri::parse(uri) {
        Ok(_) => Ok(()),
        Err(UriError::Scheme) => match uri.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tel") => {
                if rest.is_empty() || rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    Err(UriProblem::Syntax)
                } else {
                    Ok(())
                }
            }
            Some(_) => Err(UriProblem::Scheme),
            None => Err(UriProblem::Syntax),
        },
        Err(_) => Err(UriProblem::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "192.0.2.1:5060";
    const REMOTE: &str = "198.51.100.7:40000";

    fn endpoint() -> Endpoint {
        Endpoint::new(EndpointConfig {
            server: Some("RTC-Edge/test".into()),
            tag_secret: 42,
        })
    }

    fn feed(ep: &mut Endpoint, text: &str) -> (Outcome, Option<Transmit>) {
        let outcome = ep.handle_datagram(Datagram {
            transport: Transport::Udp,
            local: LOCAL.parse().unwrap(),
            remote: REMOTE.parse().unwrap(),
            payload: text.as_bytes(),
        });
        let t = ep.poll_transmit();
        assert_eq!(ep.poll_transmit(), None, "at most one response per request");
        (outcome, t)
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
        let tag = header_param(to, "tag").flatten().unwrap();
        assert_eq!(tag.len(), 16);
        assert_eq!(r.header(&HeaderName::CallId), Some("c1@10.0.0.5"));
        assert_eq!(r.header(&HeaderName::CSeq), Some("7 OPTIONS"));
        assert_eq!(r.header(&HeaderName::Allow), Some(ALLOW));
        assert_eq!(r.header(&HeaderName::Accept), Some("application/sdp"));
        assert_eq!(r.header(&HeaderName::Server), Some("RTC-Edge/test"));
        assert_eq!(r.header(&HeaderName::ContentLength), Some("0"));
        assert!(text(&t).ends_with("\r\n\r\n"));

        // A retransmission gets the same To-tag; another request a different one.
        let (_, again) = feed(&mut ep, &request("OPTIONS", ""));
        assert_eq!(again.unwrap().payload, t.payload);
        let (_, other) = feed(&mut ep, &request("OPTIONS", "").replace("c1@", "c2@"));
        assert!(!text(&other.unwrap()).contains(tag));
        assert_eq!(ep.stats().responses_sent, 3);
    }

    #[test]
    fn existing_to_tag_is_kept_and_no_server_header_when_disabled() {
        let mut ep = Endpoint::new(EndpointConfig {
            server: Some(String::new()),
            tag_secret: 1,
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
            (request("INVITE", ""), 501),
            (request("FOO", ""), 501),
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
            let r = Message::parse(&t.unwrap().payload).unwrap();
            assert!(matches!(r.start, StartLine::Response { code: c, .. } if c == code));
            if code == 420 {
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
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n\r\n"
            ),
            (Outcome::Absorbed, None)
        );
        assert_eq!(feed(&mut ep, "\r\n\r\n"), (Outcome::Absorbed, None));
        let s = ep.stats();
        assert_eq!(
            (s.acks, s.stray_responses, s.keepalives, s.responses_sent),
            (1, 1, 1, 0)
        );
    }

    #[test]
    fn unanswerable_garbage_is_dropped_and_counted() {
        let mut ep = endpoint();
        let no_via =
            request("OPTIONS", "").replace("Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKabc;rport\r\n", "");
        let no_via = no_via.replace("Via: SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKdef\r\n", "");
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
    }
}
