//! rtnetlink requests PID 1 needs — link up, add an IPv4 address, add a default route — and the
//! kernel's acknowledgement, as bytes (`rtnetlink(7)`, `linux/rtnetlink.h`).
//!
//! Pure: the shell sends these over an `AF_NETLINK`/`NETLINK_ROUTE` socket (safe `nix` calls), so no
//! ioctl and no `unsafe` is needed to configure the network. Headers are in host byte order as the
//! kernel expects; addresses in network order.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::net::Ipv4Addr;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_HOST: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

/// A request being built: header, fixed part, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32) -> Self {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        Self(b)
    }

    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    fn attr(mut self, kind: u16, payload: &[u8]) -> Self {
        let len = u16::try_from(4 + payload.len()).expect("attributes here are a few bytes");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len()).expect("requests here are under 100 bytes");
        if let Some(head) = self.0.get_mut(..4) {
            head.copy_from_slice(&len.to_ne_bytes());
        }
        self.0
    }
}

/// `RTM_NEWLINK`: set interface `index` up.
pub fn link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut ifi = Vec::with_capacity(16);
    ifi.extend_from_slice(&[AF_UNSPEC, 0]);
    ifi.extend_from_slice(&0u16.to_ne_bytes()); // device type
    ifi.extend_from_slice(&index.to_ne_bytes());
    ifi.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    ifi.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    Msg::new(RTM_NEWLINK, 0, seq).bytes(&ifi).finish()
}

/// `RTM_NEWADDR`: `address/prefix` on interface `index` (replacing the same address if present).
/// Loopback addresses get host scope; others universe scope and the subnet's broadcast address.
pub fn add_address(seq: u32, index: u32, address: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let scope = if address.is_loopback() {
        RT_SCOPE_HOST
    } else {
        RT_SCOPE_UNIVERSE
    };
    let mut ifa = vec![AF_INET, prefix, 0, scope];
    ifa.extend_from_slice(&index.to_ne_bytes());
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, seq)
        .bytes(&ifa)
        .attr(IFA_LOCAL, &address.octets())
        .attr(IFA_ADDRESS, &address.octets());
    if !address.is_loopback() && prefix < 31 {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(address) | !mask);
        m = m.attr(IFA_BROADCAST, &broadcast.octets());
    }
    m.finish()
}

/// `RTM_NEWROUTE`: the IPv4 default route via `gateway` out of interface `index` (replacing one).
pub fn add_default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let rtm = [
        AF_INET,
        0, // dst_len: 0.0.0.0/0
        0, // src_len
        0, // tos
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, seq)
        .bytes(&rtm)
        .bytes(&0u32.to_ne_bytes()) // rtm_flags
        .attr(RTA_GATEWAY, &gateway.octets())
        .attr(RTA_OIF, &index.to_ne_bytes())
        .finish()
}

/// The kernel's answer to request `seq`, if `buf` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Done.
    Ok,
    /// Refused with this errno (positive, e.g. `EEXIST` = 17).
    Errno(i32),
}

/// Scans a received buffer (one or more messages) for the acknowledgement of `seq`.
pub fn find_ack(buf: &[u8], seq: u32) -> Option<Ack> {
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let u32_at = |at: usize| {
            rest.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_ne_bytes)
        };
        let len = usize::try_from(u32_at(0)).unwrap_or(usize::MAX);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let kind = rest
            .get(4..6)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(0, u16::from_ne_bytes);
        if kind == NLMSG_ERROR && u32_at(8) == seq && len >= NLMSG_HDRLEN + 4 {
            let code = i32::from_ne_bytes(u32_at(NLMSG_HDRLEN).to_ne_bytes());
            return Some(if code == 0 {
                Ack::Ok
            } else {
                Ack::Errno(code.saturating_neg())
            });
        }
        let aligned = len.div_ceil(4) * 4;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The attributes after the fixed part: (type, payload).
    fn attrs(b: &[u8], fixed: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = NLMSG_HDRLEN + fixed;
        while at < b.len() {
            let len = usize::from(u16_at(b, at));
            out.push((u16_at(b, at + 2), b[at + 4..at + len].to_vec()));
            at += len.div_ceil(4) * 4;
        }
        out
    }

    #[test]
    fn link_up_message() {
        let m = link_up(7, 2);
        assert_eq!(m.len(), 32);
        assert_eq!(u32_at(&m, 0), 32);
        assert_eq!(u16_at(&m, 4), RTM_NEWLINK);
        assert_eq!(u16_at(&m, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&m, 8), 7);
        assert_eq!(u32_at(&m, 20), 2, "ifi_index");
        assert_eq!((u32_at(&m, 24), u32_at(&m, 28)), (IFF_UP, IFF_UP));
    }

    #[test]
    fn address_message() {
        let m = add_address(8, 2, Ipv4Addr::new(10, 0, 2, 15), 24);
        assert_eq!(usize::try_from(u32_at(&m, 0)).unwrap(), m.len());
        assert_eq!(u16_at(&m, 4), RTM_NEWADDR);
        assert_eq!(
            u16_at(&m, 6),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(&m[16..20], &[AF_INET, 24, 0, RT_SCOPE_UNIVERSE]);
        assert_eq!(u32_at(&m, 20), 2);
        assert_eq!(
            attrs(&m, 8),
            [
                (IFA_LOCAL, vec![10, 0, 2, 15]),
                (IFA_ADDRESS, vec![10, 0, 2, 15]),
                (IFA_BROADCAST, vec![10, 0, 2, 255]),
            ]
        );
        let lo = add_address(1, 1, Ipv4Addr::LOCALHOST, 8);
        assert_eq!(lo[19], RT_SCOPE_HOST);
        assert_eq!(attrs(&lo, 8).len(), 2, "no broadcast on loopback");
    }

    #[test]
    fn route_message() {
        let m = add_default_route(9, 3, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(u16_at(&m, 4), RTM_NEWROUTE);
        assert_eq!(
            &m[16..24],
            &[
                AF_INET,
                0,
                0,
                0,
                RT_TABLE_MAIN,
                RTPROT_BOOT,
                RT_SCOPE_UNIVERSE,
                RTN_UNICAST
            ]
        );
        assert_eq!(
            attrs(&m, 12),
            [
                (RTA_GATEWAY, vec![10, 0, 2, 2]),
                (RTA_OIF, 3u32.to_ne_bytes().to_vec())
            ]
        );
    }

    fn error_msg(seq: u32, code: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&36u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&code.to_ne_bytes());
        b.extend_from_slice(&[0; 16]); // the request's header, echoed
        b
    }

    #[test]
    fn acks() {
        assert_eq!(find_ack(&error_msg(5, 0), 5), Some(Ack::Ok));
        assert_eq!(find_ack(&error_msg(5, -17), 5), Some(Ack::Errno(17)));
        assert_eq!(find_ack(&error_msg(4, 0), 5), None);
        let mut two = error_msg(4, -1);
        two.extend(error_msg(5, -101));
        assert_eq!(find_ack(&two, 5), Some(Ack::Errno(101)));
        assert_eq!(find_ack(&[], 5), None);
        // A length that runs past the buffer, or is too small to move on, ends the scan.
        let mut bad = error_msg(5, 0);
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(find_ack(&bad, 5), None);
        bad[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(find_ack(&bad, 5), None);
    }
}
