//! A small DHCPv4 client (RFC 2131): DISCOVER → OFFER → REQUEST → ACK, then renewal at T1 (unicast to
//! the server), rebinding at T2 (broadcast), and back to DISCOVER when the lease runs out or a NAK
//! comes.
//!
//! Sans-IO: packets and `now` in, [`Output`]s out (packets to send, a lease to apply, a lease lost);
//! [`Client::poll_timeout`] says when to call [`Client::poll`] next. The shell owns the UDP socket
//! (port 68, broadcast, bound to the interface) and applies leases with rtnetlink. Requests carry
//! the broadcast flag, so replies reach a socket on an interface that has no address yet.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::time::Duration;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER_LEN: usize = 236;
/// BOOTP's minimum message size; some servers drop shorter requests.
const MIN_LEN: usize = 300;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_END: u8 = 255;

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;

/// First retransmission interval; it doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(16);
/// REQUESTs sent for one offer before starting over with DISCOVER.
const REQUEST_TRIES: u32 = 4;
/// Lease assumed when the server names none.
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// Retransmission interval while renewing or rebinding (bounded by the time left, RFC 2131 §4.4.5).
const RENEW_RETRY: Duration = Duration::from_secs(60);

/// What a server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Its prefix length (from the subnet mask; 24 when none was given).
    pub prefix: u8,
    /// The first router.
    pub router: Option<Ipv4Addr>,
    /// Name servers (at most 3).
    pub dns: Vec<Ipv4Addr>,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// Lease duration (`None`: infinite).
    pub duration: Option<Duration>,
    t1: Option<Duration>,
    t2: Option<Duration>,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `packet` from port 68 to `to`:67 (`Ipv4Addr::BROADCAST` for a broadcast).
    Send {
        /// The DHCP message.
        packet: Vec<u8>,
        /// Destination address.
        to: Ipv4Addr,
    },
    /// Apply this lease (address, route, DNS). Also after a renewal (same values, new times).
    Bound(Lease),
    /// The lease ran out without renewal: the address is no longer ours.
    Lost(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Selecting {
        next: Duration,
        retry: Duration,
    },
    Requesting {
        offer: Lease,
        next: Duration,
        tries: u32,
    },
    Bound {
        lease: Lease,
        since: Duration,
    },
    Renewing {
        lease: Lease,
        since: Duration,
        next: Duration,
    },
    Rebinding {
        lease: Lease,
        since: Duration,
        next: Duration,
    },
}

/// The client for one interface.
#[derive(Debug)]
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    state: State,
    out: Vec<Output>,
}

/// A parsed server reply.
#[derive(Debug)]
struct Reply {
    kind: u8,
    lease: Lease,
}

impl Client {
    /// A client for the interface with hardware address `mac`; `xid` seeds the transaction ids (any
    /// value unlikely to repeat across boots). The first DISCOVER goes at the first poll.
    pub fn new(mac: [u8; 6], xid: u32, now: Duration) -> Self {
        Self {
            mac,
            xid,
            state: State::Selecting {
                next: now,
                retry: RETRY_MIN,
            },
            out: Vec::new(),
        }
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn poll_timeout(&self) -> Duration {
        match &self.state {
            State::Selecting { next, .. } | State::Requesting { next, .. } => *next,
            State::Bound { lease, since } => lease.t1.map_or(Duration::MAX, |t| *since + t),
            State::Renewing { lease, since, next } => {
                (*next).min(lease.t2.map_or(Duration::MAX, |t| *since + t))
            }
            State::Rebinding { lease, since, next } => {
                (*next).min(lease.duration.map_or(Duration::MAX, |d| *since + d))
            }
        }
    }

    /// Sends and expires what is due at `now`.
    pub fn poll(&mut self, now: Duration) -> Vec<Output> {
        match self.state.clone() {
            State::Selecting { next, retry } if next <= now => {
                self.send_discover();
                self.state = State::Selecting {
                    next: now + retry,
                    retry: (retry * 2).min(RETRY_MAX),
                };
            }
            State::Requesting { offer, next, tries } if next <= now => {
                if tries >= REQUEST_TRIES {
                    self.restart(now);
                    return self.poll(now);
                } else {
                    self.send_request(&offer, false);
                    self.state = State::Requesting {
                        offer,
                        next: now + RETRY_MIN * 2u32.pow(tries),
                        tries: tries + 1,
                    };
                }
            }
            State::Bound { lease, since } if lease.t1.is_some_and(|t| since + t <= now) => {
                self.xid = self.xid.wrapping_add(1);
                self.state = State::Renewing {
                    lease,
                    since,
                    next: now,
                };
                return self.poll(now);
            }
            State::Renewing { lease, since, next } => {
                if lease.t2.is_some_and(|t| since + t <= now) {
                    self.state = State::Rebinding {
                        lease,
                        since,
                        next: now,
                    };
                    return self.poll(now);
                }
                if next <= now {
                    self.send_request(&lease, true);
                    let left = lease
                        .t2
                        .map_or(RENEW_RETRY, |t| (since + t).saturating_sub(now) / 2);
                    self.state = State::Renewing {
                        lease,
                        since,
                        next: now + left.clamp(RETRY_MIN, RENEW_RETRY),
                    };
                }
            }
            State::Rebinding { lease, since, next } => {
                if lease.duration.is_some_and(|d| since + d <= now) {
                    self.out.push(Output::Lost(lease.address));
                    self.restart(now);
                    return self.poll(now);
                }
                if next <= now {
                    self.send_request(&lease, false);
                    let left = lease
                        .duration
                        .map_or(RENEW_RETRY, |d| (since + d).saturating_sub(now) / 2);
                    self.state = State::Rebinding {
                        lease,
                        since,
                        next: now + left.clamp(RETRY_MIN, RENEW_RETRY),
                    };
                }
            }
            _ => {}
        }
        std::mem::take(&mut self.out)
    }

    /// Back to DISCOVER, with a new transaction id.
    fn restart(&mut self, now: Duration) {
        self.xid = self.xid.wrapping_add(1);
        self.state = State::Selecting {
            next: now,
            retry: RETRY_MIN,
        };
    }

    /// A datagram arrived on port 68.
    pub fn handle(&mut self, now: Duration, packet: &[u8]) -> Vec<Output> {
        let Some(reply) = parse(packet, self.xid, self.mac) else {
            return Vec::new();
        };
        match (&self.state, reply.kind) {
            (State::Selecting { .. }, OFFER) => {
                self.send_request(&reply.lease, false);
                self.state = State::Requesting {
                    offer: reply.lease,
                    next: now + RETRY_MIN,
                    tries: 1,
                };
            }
            (State::Requesting { offer, .. }, ACK) if reply.lease.address == offer.address => {
                self.bind(now, reply.lease);
            }
            (State::Renewing { lease, .. } | State::Rebinding { lease, .. }, ACK)
                if reply.lease.address == lease.address =>
            {
                self.bind(now, reply.lease);
            }
            (State::Requesting { .. }, NAK) => self.restart(now),
            (State::Renewing { lease, .. } | State::Rebinding { lease, .. }, NAK) => {
                self.out.push(Output::Lost(lease.address));
                self.restart(now);
            }
            _ => {}
        }
        let mut out = std::mem::take(&mut self.out);
        out.extend(self.poll(now));
        out
    }

    fn bind(&mut self, now: Duration, mut lease: Lease) {
        if let Some(d) = lease.duration {
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease; kept in order.
            let t2 = lease.t2.filter(|t| *t < d).unwrap_or(d * 7 / 8);
            let t1 = lease.t1.filter(|t| *t < t2).unwrap_or(d / 2).min(t2);
            lease.t1 = Some(t1);
            lease.t2 = Some(t2);
        } else {
            lease.t1 = None;
            lease.t2 = None;
        }
        self.out.push(Output::Bound(lease.clone()));
        self.state = State::Bound { lease, since: now };
    }

    fn header(&self, ciaddr: Ipv4Addr) -> Vec<u8> {
        let mut p = Vec::with_capacity(MIN_LEN);
        p.extend_from_slice(&[BOOTREQUEST, 1, 6, 0]);
        p.extend_from_slice(&self.xid.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes()); // secs
        // The broadcast flag only while we cannot receive unicast (no address configured yet).
        let flags: u16 = if ciaddr.is_unspecified() { 0x8000 } else { 0 };
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&ciaddr.octets());
        p.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
        p.extend_from_slice(&self.mac);
        p.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
        p.extend_from_slice(&MAGIC);
        p
    }

    fn finish(mut p: Vec<u8>, to: Ipv4Addr) -> Output {
        p.extend_from_slice(&[
            OPT_PARAMS,
            6,
            OPT_SUBNET_MASK,
            OPT_ROUTER,
            OPT_DNS,
            OPT_LEASE_TIME,
            OPT_T1,
            OPT_T2,
        ]);
        p.push(OPT_END);
        if p.len() < MIN_LEN {
            p.resize(MIN_LEN, OPT_PAD);
        }
        Output::Send { packet: p, to }
    }

    fn send_discover(&mut self) {
        let mut p = self.header(Ipv4Addr::UNSPECIFIED);
        p.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, DISCOVER]);
        self.out.push(Self::finish(p, Ipv4Addr::BROADCAST));
    }

    /// A REQUEST: selecting (server id + requested address) for an offer, or renewing/rebinding
    /// (`ciaddr` set; `unicast` to the server when renewing).
    fn send_request(&mut self, lease: &Lease, unicast: bool) {
        let bound = matches!(self.state, State::Renewing { .. } | State::Rebinding { .. });
        let ciaddr = if bound {
            lease.address
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let mut p = self.header(ciaddr);
        p.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, REQUEST]);
        if !bound {
            p.extend_from_slice(&[OPT_REQUESTED_IP, 4]);
            p.extend_from_slice(&lease.address.octets());
            p.extend_from_slice(&[OPT_SERVER_ID, 4]);
            p.extend_from_slice(&lease.server.octets());
        }
        let to = if unicast {
            lease.server
        } else {
            Ipv4Addr::BROADCAST
        };
        self.out.push(Self::finish(p, to));
    }
}

/// An interface's hardware address as `/sys/class/net/<if>/address` shows it (`52:54:00:12:34:56`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn ip(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b.get(..4)?).ok().map(Ipv4Addr::from)
}

fn secs(b: &[u8]) -> Option<Option<Duration>> {
    let v = u32::from_be_bytes(<[u8; 4]>::try_from(b.get(..4)?).ok()?);
    Some((v != u32::MAX).then(|| Duration::from_secs(u64::from(v))))
}

/// Reads a server reply to transaction `xid` for `mac`; `None` for anything else.
fn parse(p: &[u8], xid: u32, mac: [u8; 6]) -> Option<Reply> {
    if p.first() != Some(&BOOTREPLY) || p.get(4..8)? != xid.to_be_bytes() || p.get(28..34)? != mac {
        return None;
    }
    if p.get(HEADER_LEN..HEADER_LEN + 4)? != MAGIC {
        return None;
    }
    let yiaddr = ip(p.get(16..20)?)?;
    let mut kind = None;
    let mut mask = None;
    let mut router = None;
    let mut dns = Vec::new();
    let mut server = None;
    let mut duration = Some(DEFAULT_LEASE);
    let (mut t1, mut t2) = (None, None);
    let mut opts = p.get(HEADER_LEN + 4..)?;
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            OPT_PAD => {
                opts = rest;
                continue;
            }
            OPT_END => break,
            _ => {}
        }
        let (&len, rest) = rest.split_first()?;
        let data = rest.get(..usize::from(len))?;
        opts = rest.get(usize::from(len)..)?;
        match code {
            OPT_MESSAGE_TYPE => kind = data.first().copied(),
            OPT_SUBNET_MASK => mask = ip(data),
            OPT_ROUTER => router = ip(data),
            OPT_DNS => dns = data.chunks_exact(4).filter_map(ip).take(3).collect(),
            OPT_SERVER_ID => server = ip(data),
            OPT_LEASE_TIME => duration = secs(data)?,
            OPT_T1 => t1 = secs(data)?,
            OPT_T2 => t2 = secs(data)?,
            _ => {}
        }
    }
    let kind = kind?;
    let prefix = match mask {
        Some(m) => {
            let bits = u32::from(m);
            let ones = bits.leading_ones();
            // A mask must be contiguous ones.
            if bits.checked_shl(ones).unwrap_or(0) != 0 {
                return None;
            }
            u8::try_from(ones).ok()?
        }
        None => 24,
    };
    if kind != NAK && (yiaddr.is_unspecified() || yiaddr.is_broadcast() || yiaddr.is_multicast()) {
        return None;
    }
    Some(Reply {
        kind,
        lease: Lease {
            address: yiaddr,
            prefix,
            router,
            dns,
            server: server.unwrap_or(Ipv4Addr::UNSPECIFIED),
            duration,
            t1,
            t2,
        },
    })
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const YOU: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The option `code` in a request we sent.
    fn opt(p: &[u8], code: u8) -> Option<Vec<u8>> {
        let mut o = &p[HEADER_LEN + 4..];
        while let Some((&c, rest)) = o.split_first() {
            if c == OPT_PAD {
                o = rest;
                continue;
            }
            if c == OPT_END {
                return None;
            }
            let len = usize::from(rest[0]);
            if c == code {
                return Some(rest[1..=len].to_vec());
            }
            o = &rest[1 + len..];
        }
        None
    }

    fn xid(p: &[u8]) -> u32 {
        u32::from_be_bytes(p[4..8].try_into().unwrap())
    }

    /// A server reply (what QEMU's slirp sends, in substance).
    fn reply(kind: u8, xid: u32, yiaddr: Ipv4Addr, lease: u32) -> Vec<u8> {
        let mut p = vec![BOOTREPLY, 1, 6, 0];
        p.extend_from_slice(&xid.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&yiaddr.octets());
        p.extend_from_slice(&SERVER.octets());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&MAC);
        p.extend_from_slice(&[0; 10 + 64 + 128]);
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, kind]);
        p.extend_from_slice(&[OPT_SERVER_ID, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[OPT_SUBNET_MASK, 4, 255, 255, 255, 0]);
        p.extend_from_slice(&[OPT_ROUTER, 4, 10, 0, 2, 2]);
        p.extend_from_slice(&[OPT_DNS, 8, 10, 0, 2, 3, 10, 0, 2, 4]);
        p.push(OPT_LEASE_TIME);
        p.push(4);
        p.extend_from_slice(&lease.to_be_bytes());
        p.push(OPT_END);
        p
    }

    fn sent(out: &[Output]) -> Vec<(Vec<u8>, Ipv4Addr)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { packet, to } => Some((packet.clone(), *to)),
                _ => None,
            })
            .collect()
    }

    /// Runs DISCOVER/OFFER/REQUEST/ACK at t=0 and returns the client, bound.
    fn bound(lease_secs: u32) -> Client {
        let mut c = Client::new(MAC, 41, Duration::ZERO);
        let out = c.poll(Duration::ZERO);
        let (discover, to) = &sent(&out)[0];
        assert_eq!(*to, Ipv4Addr::BROADCAST);
        let out = c.handle(Duration::ZERO, &reply(OFFER, xid(discover), YOU, lease_secs));
        let (request, _) = &sent(&out)[0];
        let out = c.handle(Duration::ZERO, &reply(ACK, xid(request), YOU, lease_secs));
        assert!(matches!(out.first(), Some(Output::Bound(_))), "{out:?}");
        c
    }

    #[test]
    fn discover_offer_request_ack() {
        let mut c = Client::new(MAC, 41, Duration::ZERO);
        let out = c.poll(Duration::ZERO);
        let (discover, to) = &sent(&out)[0];
        assert_eq!(*to, Ipv4Addr::BROADCAST);
        assert!(discover.len() >= MIN_LEN);
        assert_eq!(&discover[..4], &[BOOTREQUEST, 1, 6, 0]);
        assert_eq!(&discover[10..12], &[0x80, 0], "broadcast flag");
        assert_eq!(&discover[28..34], &MAC);
        assert_eq!(opt(discover, OPT_MESSAGE_TYPE), Some(vec![DISCOVER]));
        assert!(opt(discover, OPT_PARAMS).unwrap().contains(&OPT_ROUTER));
        // A reply to another transaction or another MAC is ignored.
        assert!(
            c.handle(s(0), &reply(OFFER, xid(discover) + 1, YOU, 600))
                .is_empty()
        );
        let out = c.handle(s(0), &reply(OFFER, xid(discover), YOU, 600));
        let (request, to) = &sent(&out)[0];
        assert_eq!(*to, Ipv4Addr::BROADCAST);
        assert_eq!(opt(request, OPT_MESSAGE_TYPE), Some(vec![REQUEST]));
        assert_eq!(opt(request, OPT_REQUESTED_IP), Some(YOU.octets().to_vec()));
        assert_eq!(opt(request, OPT_SERVER_ID), Some(SERVER.octets().to_vec()));
        assert_eq!(&request[12..16], &[0; 4], "no ciaddr while selecting");
        let out = c.handle(s(1), &reply(ACK, xid(request), YOU, 600));
        let Some(Output::Bound(lease)) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(lease.address, YOU);
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(
            lease.dns,
            [Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(10, 0, 2, 4)]
        );
        assert_eq!(lease.duration, Some(s(600)));
        // Renewal at T1 = 300 s.
        assert_eq!(c.poll_timeout(), s(301));
    }

    #[test]
    fn discover_is_retransmitted_with_backoff() {
        let mut c = Client::new(MAC, 7, Duration::ZERO);
        let mut times = Vec::new();
        let mut now = Duration::ZERO;
        for _ in 0..7 {
            let out = c.poll(now);
            assert_eq!(sent(&out).len(), 1);
            times.push(now.as_secs());
            now = c.poll_timeout();
        }
        assert_eq!(times, [0, 1, 3, 7, 15, 31, 47]);
    }

    #[test]
    fn unanswered_requests_start_over() {
        let mut c = Client::new(MAC, 7, Duration::ZERO);
        let out = c.poll(s(0));
        let (d, _) = &sent(&out)[0];
        c.handle(s(0), &reply(OFFER, xid(d), YOU, 600));
        let mut requests = 1;
        let restarted_at = loop {
            let now = c.poll_timeout();
            let out = c.poll(now);
            let p = sent(&out);
            let (pk, _) = &p[0];
            if opt(pk, OPT_MESSAGE_TYPE) == Some(vec![DISCOVER]) {
                break now;
            }
            requests += 1;
            assert!(now < s(60));
        };
        assert_eq!(requests, REQUEST_TRIES);
        assert_eq!(restarted_at, s(15));
    }

    #[test]
    fn nak_starts_over() {
        let mut c = Client::new(MAC, 7, Duration::ZERO);
        let out = c.poll(s(0));
        let (d, _) = &sent(&out)[0];
        let out = c.handle(s(0), &reply(OFFER, xid(d), YOU, 600));
        let (r, _) = &sent(&out)[0];
        let out = c.handle(s(0), &reply(NAK, xid(r), Ipv4Addr::UNSPECIFIED, 0));
        let (d2, _) = &sent(&out)[0];
        assert_eq!(opt(d2, OPT_MESSAGE_TYPE), Some(vec![DISCOVER]));
        assert_ne!(xid(d2), xid(d), "a new transaction");
    }

    #[test]
    fn renew_unicast_then_rebind_broadcast_then_lost() {
        let mut c = bound(1000);
        assert_eq!(c.poll_timeout(), s(500));
        let out = c.poll(s(500));
        let (renew, to) = &sent(&out)[0];
        assert_eq!(*to, SERVER, "renewing is unicast");
        assert_eq!(&renew[12..16], &YOU.octets(), "ciaddr");
        assert_eq!(&renew[10..12], &[0, 0], "no broadcast flag once bound");
        assert_eq!(opt(renew, OPT_REQUESTED_IP), None);
        // Unanswered: retries until T2 = 875 s, then rebinds by broadcast.
        let mut now = s(500);
        let mut last_to = *to;
        while now < s(1000) {
            now = c.poll_timeout();
            if let Some((_, to)) = sent(&c.poll(now)).first() {
                last_to = *to;
                if now >= s(875) {
                    break;
                }
            }
        }
        assert_eq!(last_to, Ipv4Addr::BROADCAST);
        // Still unanswered: the lease ends at 1000 s.
        let mut lost = None;
        while lost.is_none() {
            now = c.poll_timeout();
            assert!(now <= s(1000));
            lost = c.poll(now).into_iter().find(|o| matches!(o, Output::Lost(_)));
        }
        assert_eq!(lost, Some(Output::Lost(YOU)));
        assert_eq!(now, s(1000));
    }

    #[test]
    fn renewal_ack_rebinds_the_clock() {
        let mut c = bound(1000);
        let out = c.poll(s(500));
        let (renew, _) = &sent(&out)[0];
        let out = c.handle(s(501), &reply(ACK, xid(renew), YOU, 1000));
        assert!(matches!(out.first(), Some(Output::Bound(_))));
        assert_eq!(c.poll_timeout(), s(1001));
    }

    #[test]
    fn mac_addresses() {
        assert_eq!(parse_mac("52:54:00:12:34:56\n"), Some(MAC));
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("52:54:00:12:34:5g"), None);
        assert_eq!(parse_mac("5:54:00:12:34:56"), None);
    }

    #[test]
    fn infinite_lease_never_renews() {
        let c = bound(u32::MAX);
        assert_eq!(c.poll_timeout(), Duration::MAX);
    }

    #[test]
    fn malformed_replies_are_ignored() {
        let mut c = Client::new(MAC, 7, Duration::ZERO);
        let out = c.poll(s(0));
        let (d, _) = &sent(&out)[0];
        let good = reply(OFFER, xid(d), YOU, 600);
        for cut in 0..good.len() {
            let _ = c.handle(s(0), &good[..cut]);
        }
        let mut bad_mask = good.clone();
        let i = bad_mask
            .windows(2)
            .position(|w| w == [OPT_SUBNET_MASK, 4])
            .unwrap();
        bad_mask[i + 2..i + 6].copy_from_slice(&[255, 0, 255, 0]);
        let mut c = Client::new(MAC, 7, Duration::ZERO);
        let out = c.poll(s(0));
        let (d, _) = &sent(&out)[0];
        let mut bad = bad_mask;
        bad[4..8].copy_from_slice(&xid(d).to_be_bytes());
        assert!(c.handle(s(0), &bad).is_empty());
        let mut zero = reply(OFFER, xid(d), Ipv4Addr::UNSPECIFIED, 600);
        assert!(c.handle(s(0), &zero).is_empty());
        zero[0] = BOOTREQUEST;
        assert!(c.handle(s(0), &zero).is_empty());
    }
}
