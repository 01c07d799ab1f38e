//! The Via header and where responses go.
//!
//! RFC 3261 §18.2.1: the server stamps the top Via with `received` when the packet's source differs
//! from `sent-by`; RFC 3581: with `rport`, also with the source port, and the response goes back to the
//! source address and port (symmetric response routing, which NATed and WebSocket clients rely on).
//! RFC 3261 §18.2.2: for unreliable transports without `rport`, the response goes to the source IP and
//! the `sent-by` port (default 5060).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::message::is_token_byte;

/// One parsed Via value, e.g. `SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK1;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol version token as written, `2.0` today. Any token is read (RFC 3261 §25.1
    /// `protocol-version = token`), so that a request from a future version can still be answered
    /// `505 Version Not Supported` along its Via (RFC 4475 §3.1.2.16) instead of being dropped.
    pub version: &'a str,
    /// Transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, …), upper-cased as written.
    pub transport: &'a str,
    /// `sent-by` host: a name, an IPv4 address, or an IPv6 reference without brackets.
    pub host: &'a str,
    /// `sent-by` port, if written.
    pub port: Option<u16>,
    /// Parameters in order; `None` value for a flag such as a bare `rport`.
    pub params: Vec<(&'a str, Option<&'a str>)>,
}

/// Why a Via value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViaError {
    /// Not `SIP/<version>/<transport>`.
    Protocol,
    /// Missing or malformed `sent-by`.
    SentBy,
}

impl<'a> Via<'a> {
    /// Parses one Via value (one element of the comma-separated list).
    pub fn parse(value: &'a str) -> Result<Self, ViaError> {
        // sent-protocol = "SIP" / protocol-version / transport, with optional whitespace around the
        // slashes; protocol-version is a token.
        let mut proto = value.splitn(3, '/');
        let name = proto.next().ok_or(ViaError::Protocol)?.trim();
        let version = proto.next().ok_or(ViaError::Protocol)?.trim();
        let rest = proto.next().ok_or(ViaError::Protocol)?.trim_start();
        if !name.eq_ignore_ascii_case("SIP") || version.is_empty() || !version.bytes().all(is_token_byte) {
            return Err(ViaError::Protocol);
        }
        let split = rest
            .find(|c: char| c.is_ascii_whitespace())
            .ok_or(ViaError::SentBy)?;
        let (transport, rest) = rest.split_at(split);
        if transport.is_empty() || !transport.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ViaError::Protocol);
        }
        let mut parts = rest.split(';');
        let sent_by = parts.next().ok_or(ViaError::SentBy)?.trim();
        let (host, port) = split_host_port(sent_by).ok_or(ViaError::SentBy)?;
        let params = parts
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            })
            .collect();
        Ok(Self {
            version,
            transport,
            host,
            port,
            params,
        })
    }

    /// A parameter: `None` if absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// Where a response to a request carrying this top Via, received from `source` over an unreliable
    /// transport, must be sent, and the Via value to put at the top of that response.
    pub fn response_route(&self, source: SocketAddr) -> (SocketAddr, String) {
        let rport = self.param("rport").is_some();
        let host_is_source = self.host.parse::<IpAddr>().is_ok_and(|ip| ip == source.ip());
        let mut out = format!("SIP/{}/{} ", self.version, self.transport);
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(out, "[{}]:{p}", self.host),
            (true, None) => write!(out, "[{}]", self.host),
            (false, Some(p)) => write!(out, "{}:{p}", self.host),
            (false, None) => write!(out, "{}", self.host),
        }
        .expect("writing to a String cannot fail");
        for (k, v) in &self.params {
            if k.eq_ignore_ascii_case("received") || k.eq_ignore_ascii_case("rport") {
                continue;
            }
            match v {
                Some(v) => write!(out, ";{k}={v}"),
                None => write!(out, ";{k}"),
            }
            .expect("writing to a String cannot fail");
        }
        if rport || !host_is_source {
            write!(out, ";received={}", source.ip()).expect("writing to a String cannot fail");
        }
        if rport {
            write!(out, ";rport={}", source.port()).expect("writing to a String cannot fail");
        }
        let destination = if rport {
            source
        } else {
            SocketAddr::new(source.ip(), self.port.unwrap_or(5060))
        };
        (destination, out)
    }
}

/// Splits `host[:port]` / `[v6]:port`; `None` if the host is empty or the port is not 1–65535.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.trim().parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rport_sends_back_to_source_and_stamps_both() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        let (dst, via) = v.response_route(src("198.51.100.7:40000"));
        assert_eq!(dst, src("198.51.100.7:40000"));
        assert_eq!(
            via,
            "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK1;received=198.51.100.7;rport=40000"
        );
    }

    #[test]
    fn without_rport_uses_sent_by_port_and_stamps_received_only_when_needed() {
        let v = Via::parse("SIP / 2.0 / UDP 198.51.100.7;branch=z9hG4bK2").unwrap();
        let (dst, via) = v.response_route(src("198.51.100.7:40000"));
        assert_eq!(dst, src("198.51.100.7:5060"));
        assert_eq!(via, "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK2");

        let v = Via::parse("SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bK3;received=1.2.3.4").unwrap();
        let (dst, via) = v.response_route(src("203.0.113.9:6000"));
        assert_eq!(dst, src("203.0.113.9:5070"));
        assert_eq!(
            via,
            "SIP/2.0/UDP pc33.example.com:5070;branch=z9hG4bK3;received=203.0.113.9"
        );
    }

    #[test]
    fn ipv6_and_websocket_hosts() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK4;rport").unwrap();
        assert_eq!((v.host, v.port), ("2001:db8::1", Some(5060)));
        let (_, via) = v.response_route(src("[2001:db8::1]:5060"));
        assert_eq!(
            via,
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK4;received=2001:db8::1;rport=5060"
        );
        let v = Via::parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK5").unwrap();
        assert_eq!(
            (v.transport, v.host, v.port),
            ("WSS", "df7jal23ls0d.invalid", None)
        );
    }

    #[test]
    fn another_protocol_version_is_read_and_kept_for_the_505() {
        // RFC 4475 §3.1.2.16 (badvers): the request must be answered 505, so its Via must be usable.
        let v = Via::parse("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw").unwrap();
        assert_eq!((v.version, v.transport, v.host), ("7.0", "UDP", "c.example.com"));
        let (dst, via) = v.response_route(src("192.0.2.7:5060"));
        assert_eq!(dst, src("192.0.2.7:5060"));
        assert_eq!(
            via,
            "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw;received=192.0.2.7"
        );
        assert_eq!(Via::parse("SIP/ 2.0 /UDP a.example").unwrap().version, "2.0");
    }

    #[test]
    fn malformed_vias_are_errors() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP//UDP a.example",
            "SIP/2 0/UDP a.example",
            "SIP/2,0/UDP a.example",
            "HTTP/2.0/UDP a.example",
            "SIP/2.0/UDP :5060",
            "SIP/2.0/UDP a.example:0",
            "SIP/2.0/UDP a.example:99999",
            "SIP/2.0/UDP [zz]:5060",
            "SIP/2.0/U$P a.example",
            "SIP/2.0/UDP a_b.example",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad:?}");
        }
    }
}
