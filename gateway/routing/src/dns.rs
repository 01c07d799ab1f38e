//! DNS SRV for trunks named without a port (RFC 3263 §4.2, RFC 2782), sans-IO: [`srv_query`] builds
//! the question, [`parse_srv`] reads the answer (records, and the targets' addresses when the server
//! adds them), [`pick`] chooses one record: the lowest priority, then at random in proportion to the
//! weights. The shell sends and receives; nothing here touches a socket or a clock.
//!
//! The reader is bounded and total: it follows at most 16 compression pointers per name, refuses
//! names over 255 bytes and records that run past the message, and never panics (fuzzed: `dns`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types we read.
const SRV: u16 = 33;
const A: u16 = 1;
const AAAA: u16 = 28;
const IN: u16 = 1;

/// One SRV record (RFC 2782) with the addresses the server added for its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Share among records of the same priority.
    pub weight: u16,
    /// The SIP port.
    pub port: u16,
    /// The target host (lower case, no trailing dot).
    pub target: String,
    /// A/AAAA records for `target` from the additional section (may be empty: look it up).
    pub addresses: Vec<IpAddr>,
}

/// Why an answer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Not an answer to our question (id, flags or question differ).
    #[error("not an answer to our query")]
    NotOurs,
    /// The server said the name does not exist or failed (RCODE).
    #[error("DNS error code {0}")]
    Rcode(u8),
    /// Cut short or malformed.
    #[error("malformed DNS message: {0}")]
    Malformed(&'static str),
}

/// The SRV name for a trunk: `_sip._udp.<host>`, `_sip._tcp.<host>` or `_sips._tcp.<host>`.
pub fn srv_name(host: &str, transport: edge_config::Transport) -> String {
    match transport {
        edge_config::Transport::Tls | edge_config::Transport::Wss => format!("_sips._tcp.{host}"),
        edge_config::Transport::Tcp | edge_config::Transport::Ws => format!("_sip._tcp.{host}"),
        edge_config::Transport::Udp => format!("_sip._udp.{host}"),
    }
}

/// A recursive query for the SRV records of `name` with transaction `id`. `None` for a name that
/// cannot be written (a label over 63 bytes, a name over 253).
pub fn srv_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    write_name(&mut q, name)?;
    q.extend_from_slice(&SRV.to_be_bytes());
    q.extend_from_slice(&IN.to_be_bytes());
    Some(q)
}

fn write_name(out: &mut Vec<u8>, name: &str) -> Option<()> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return None;
    }
    for label in name.split('.') {
        let len = u8::try_from(label.len()).ok().filter(|l| (1..=63).contains(l))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Some(())
}

/// A cursor over a DNS message.
struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.at.checked_add(n).ok_or(DnsError::Malformed("length"))?;
        let b = self
            .msg
            .get(self.at..end)
            .ok_or(DnsError::Malformed("cut short"))?;
        self.at = end;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        Ok((u32::from(self.u16()?) << 16) | u32::from(self.u16()?))
    }

    /// A possibly compressed name starting at the cursor; the cursor moves past it.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut out = String::new();
        let mut pos = self.at;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.msg.get(pos).ok_or(DnsError::Malformed("name cut short"))?;
            match len {
                0 => {
                    if !jumped {
                        self.at = pos + 1;
                    }
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    let lo = *self
                        .msg
                        .get(pos + 1)
                        .ok_or(DnsError::Malformed("pointer cut short"))?;
                    if !jumped {
                        self.at = pos + 2;
                    }
                    jumps += 1;
                    if jumps > 16 {
                        return Err(DnsError::Malformed("compression loop"));
                    }
                    pos = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                    jumped = true;
                }
                l if l & 0xc0 == 0 => {
                    let label = self
                        .msg
                        .get(pos + 1..pos + 1 + usize::from(l))
                        .ok_or(DnsError::Malformed("label cut short"))?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                    if out.len() > 255 {
                        return Err(DnsError::Malformed("name too long"));
                    }
                    pos += 1 + usize::from(l);
                }
                _ => return Err(DnsError::Malformed("label type")),
            }
        }
        Ok(out)
    }
}

/// Reads the answer to `srv_query(id, name)`: its SRV records for `name`, each with the target's
/// addresses from the additional section. An empty list means the name has no SRV records (then
/// A/AAAA at the default port apply); NXDOMAIN is `Rcode(3)`.
pub fn parse_srv(msg: &[u8], id: u16, name: &str) -> Result<Vec<Srv>, DnsError> {
    let mut r = Reader { msg, at: 0 };
    if r.u16()? != id {
        return Err(DnsError::NotOurs);
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::NotOurs);
    }
    let rcode = u8::try_from(flags & 0x000f).unwrap_or(0);
    let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let want = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    for _ in 0..qd {
        let q = r.name()?;
        let (qtype, _class) = (r.u16()?, r.u16()?);
        if q != want || qtype != SRV {
            return Err(DnsError::NotOurs);
        }
    }
    if rcode != 0 {
        return Err(DnsError::Rcode(rcode));
    }
    let mut srv = Vec::new();
    let mut addresses: Vec<(String, IpAddr)> = Vec::new();
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    for n in 0..total {
        let owner = r.name()?;
        let (rtype, class, _ttl, len) = (r.u16()?, r.u16()?, r.u32()?, r.u16()?);
        let data_start = r.at;
        let data = r.bytes(usize::from(len))?;
        if class != IN {
            continue;
        }
        let in_answers = n < u32::from(an);
        match rtype {
            SRV if in_answers && owner == want && data.len() >= 7 => {
                let mut d = Reader { msg, at: data_start };
                let (priority, weight, port) = (d.u16()?, d.u16()?, d.u16()?);
                let target = d.name()?;
                // RFC 2782: a target of "." means the service is decidedly not available here.
                if !target.is_empty() && srv.len() < 32 {
                    srv.push(Srv {
                        priority,
                        weight,
                        port,
                        target,
                        addresses: Vec::new(),
                    });
                }
            }
            A if data.len() == 4 => {
                let mut b = [0u8; 4];
                b.copy_from_slice(data);
                addresses.push((owner, IpAddr::V4(Ipv4Addr::from(b))));
            }
            AAAA if data.len() == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                addresses.push((owner, IpAddr::V6(Ipv6Addr::from(b))));
            }
            _ => {}
        }
    }
    for s in &mut srv {
        s.addresses = addresses
            .iter()
            .filter(|(owner, _)| *owner == s.target)
            .map(|(_, ip)| *ip)
            .take(8)
            .collect();
    }
    Ok(srv)
}

/// RFC 2782's choice: among the records of the lowest priority, one at random in proportion to its
/// weight (`random` from the caller; a weight of 0 is chosen only when all are 0, the first then).
pub fn pick(records: &[Srv], random: u64) -> Option<&Srv> {
    let best = records.iter().map(|s| s.priority).min()?;
    let tier: Vec<&Srv> = records.iter().filter(|s| s.priority == best).collect();
    let total: u64 = tier.iter().map(|s| u64::from(s.weight)).sum();
    if total == 0 {
        return tier.first().copied();
    }
    let mut point = random % total;
    for s in &tier {
        let w = u64::from(s.weight);
        if point < w {
            return Some(s);
        }
        point -= w;
    }
    tier.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as a server writes it: the question echoed, SRV answers with compressed names, A
    /// records for the targets in the additional section.
    fn answer(id: u16, rcode: u8, records: &[(u16, u16, u16, &str)], extra: &[(&str, [u8; 4])]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x81, 0x80 | rcode]);
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&u16::try_from(records.len()).unwrap().to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(&u16::try_from(extra.len()).unwrap().to_be_bytes());
        write_name(&mut m, "_sip._udp.pbx.example.com").unwrap();
        m.extend_from_slice(&[0, 33, 0, 1]);
        for (priority, weight, port, target) in records {
            m.extend_from_slice(&[0xc0, 12]); // pointer to the question's name
            m.extend_from_slice(&[0, 33, 0, 1, 0, 0, 0, 60]);
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&priority.to_be_bytes());
            rdata.extend_from_slice(&weight.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            if *target == "." {
                rdata.push(0);
            } else {
                write_name(&mut rdata, target).unwrap();
            }
            m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        for (name, ip) in extra {
            write_name(&mut m, name).unwrap();
            m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(ip);
        }
        m
    }

    const NAME: &str = "_sip._udp.pbx.example.com";

    #[test]
    fn the_query_is_a_recursive_srv_question() {
        let q = srv_query(0x1234, NAME).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..17], b"\x04_sip");
        assert_eq!(&q[q.len() - 4..], &[0, 33, 0, 1]);
        assert!(srv_query(1, &format!("{}.example.com", "a".repeat(64))).is_none());
        assert_eq!(
            srv_name("pbx.example.com", edge_config::Transport::Tls),
            "_sips._tcp.pbx.example.com"
        );
    }

    #[test]
    fn answers_are_read_with_their_addresses() {
        let m = answer(
            7,
            0,
            &[
                (10, 60, 5060, "sip1.example.com"),
                (10, 20, 5062, "sip2.example.com"),
                (20, 0, 5070, "backup.example.com"),
            ],
            &[
                ("sip1.example.com", [192, 0, 2, 1]),
                ("SIP2.example.com", [192, 0, 2, 2]),
            ],
        );
        let srv = parse_srv(&m, 7, "_SIP._udp.pbx.example.com.").unwrap();
        assert_eq!(srv.len(), 3);
        assert_eq!(srv[0].target, "sip1.example.com");
        assert_eq!(srv[0].addresses, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            srv[1].addresses,
            ["192.0.2.2".parse::<IpAddr>().unwrap()],
            "names compare without case"
        );
        assert!(
            srv[2].addresses.is_empty(),
            "no additional record: the shell looks it up"
        );
        // Priority 10 first, weights 60:20.
        let picks: Vec<u16> = (0..80).map(|r| pick(&srv, r).unwrap().port).collect();
        assert_eq!(picks.iter().filter(|p| **p == 5060).count(), 60);
        assert_eq!(picks.iter().filter(|p| **p == 5062).count(), 20);
        assert!(pick(&[], 0).is_none());
    }

    #[test]
    fn errors_and_strangers_are_told_apart() {
        assert_eq!(
            parse_srv(&answer(7, 3, &[], &[]), 7, NAME),
            Err(DnsError::Rcode(3))
        );
        assert_eq!(parse_srv(&answer(7, 0, &[], &[]), 7, NAME), Ok(Vec::new()));
        assert_eq!(
            parse_srv(&answer(8, 0, &[], &[]), 7, NAME),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            parse_srv(&answer(7, 0, &[], &[]), 7, "_sip._udp.other.example.com"),
            Err(DnsError::NotOurs)
        );
        let dot = answer(7, 0, &[(0, 0, 0, ".")], &[]);
        assert!(
            parse_srv(&dot, 7, NAME).unwrap().is_empty(),
            "\".\": not offered here"
        );
        // Every cut of a valid answer is an error, never a panic.
        let m = answer(
            7,
            0,
            &[(10, 60, 5060, "sip1.example.com")],
            &[("sip1.example.com", [192, 0, 2, 1])],
        );
        for n in 0..m.len() {
            assert!(parse_srv(&m[..n], 7, NAME).is_err(), "cut at {n}");
        }
        // A pointer loop is refused.
        let mut looped = m;
        let at = looped.len() - 14 - 18; // the additional record's owner name start
        looped[at] = 0xc0;
        looped[at + 1] = u8::try_from(at).unwrap();
        assert!(parse_srv(&looped, 7, NAME).is_err());
    }
}
