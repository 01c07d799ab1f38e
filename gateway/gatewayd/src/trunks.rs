//! Where each trunk is, for the router: its address (a DNS name resolved at start and again every
//! minute: SRV first when no port is configured, RFC 3263 §4.2, through `edge_routing::dns` and one
//! UDP exchange with the DNS server; A/AAAA through the system resolver) and the local address our
//! Via and Contact name toward it.

use std::net::SocketAddr;
use std::time::Duration;

use edge_config::Transport as ConfigTransport;
use edge_config::routing::{Host, Trunk};
use edge_sip::Transport;
use edge_sip::transaction::Route;
use tokio::net::UdpSocket;

/// How often a DNS name is looked up again.
pub(crate) const RESOLVE_EVERY: Duration = Duration::from_secs(60);
/// How often, while a name does not resolve.
pub(crate) const RESOLVE_RETRY: Duration = Duration::from_secs(10);
/// A lookup that takes longer has failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The trunk's address now: its IP, or what its name resolves to — the SRV record chosen by RFC 2782
/// when the trunk has no port and its name has SRV records, else A/AAAA at the default port (an
/// address of the family our listener can reach first).
pub(crate) async fn address(
    t: &Trunk,
    listener: SocketAddr,
    dns: Option<SocketAddr>,
) -> Result<SocketAddr, String> {
    let port = t.port_or_default();
    match &t.address {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        Host::Name(name) => {
            if t.port.is_none() {
                match srv(name, t.transport, dns).await {
                    Ok(Some(chosen)) => {
                        let found: Vec<SocketAddr> = chosen
                            .addresses
                            .iter()
                            .map(|ip| SocketAddr::new(*ip, chosen.port))
                            .collect();
                        if let Some(a) = prefer(&found, listener) {
                            return Ok(a);
                        }
                        return lookup(&chosen.target, chosen.port, listener).await;
                    }
                    Ok(None) => {}
                    Err(why) => tracing::debug!(trunk = %t.name, %why, "no SRV answer; trying A/AAAA"),
                }
            }
            lookup(name, port, listener).await
        }
    }
}

fn prefer(found: &[SocketAddr], listener: SocketAddr) -> Option<SocketAddr> {
    found
        .iter()
        .find(|a| a.is_ipv4() == listener.is_ipv4())
        .or_else(|| found.first())
        .copied()
}

/// A/AAAA through the system resolver.
async fn lookup(name: &str, port: u16, listener: SocketAddr) -> Result<SocketAddr, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| format!("DNS lookup of {name} timed out"))?
        .map_err(|e| format!("DNS lookup of {name}: {e}"))?;
    let all: Vec<SocketAddr> = found.collect();
    prefer(&all, listener).ok_or_else(|| format!("{name} has no address"))
}

/// The first `nameserver` of /etc/resolv.conf.
fn system_dns_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

/// The SRV record to use for `name` (`None`: the name has none).
async fn srv(
    name: &str,
    transport: ConfigTransport,
    server: Option<SocketAddr>,
) -> Result<Option<edge_routing::dns::Srv>, String> {
    use edge_routing::dns;
    let server = server
        .or_else(system_dns_server)
        .ok_or("no DNS server configured")?;
    let qname = dns::srv_name(name, transport);
    let [a, b, ..] = getrandom::u32().map_err(|e| e.to_string())?.to_be_bytes();
    let id = u16::from_be_bytes([a, b]);
    let query = dns::srv_query(id, &qname).ok_or("name too long for DNS")?;
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    sock.send_to(&query, server).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let answer = tokio::time::timeout(RESOLVE_TIMEOUT, async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.map_err(|e| e.to_string())?;
            if from != server {
                continue;
            }
            match dns::parse_srv(buf.get(..n).unwrap_or_default(), id, &qname) {
                Err(dns::DnsError::NotOurs) => {}
                Err(dns::DnsError::Rcode(3)) => return Ok(Vec::new()),
                other => return other.map_err(|e| e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| format!("no answer from DNS server {server}"))??;
    let random = getrandom::u64().map_err(|e| e.to_string())?;
    Ok(dns::pick(&answer, random).cloned())
}

/// How to reach the trunk at `remote`: from the first listener of its transport, with a concrete local
/// address (the one the kernel would use toward it) when that listener is bound to a wildcard.
pub(crate) async fn route(
    t: &Trunk,
    remote: SocketAddr,
    bound: &[(ConfigTransport, SocketAddr)],
) -> Result<Route, String> {
    let transport = match t.transport {
        ConfigTransport::Udp => Transport::Udp,
        ConfigTransport::Tcp => Transport::Tcp,
        ConfigTransport::Tls => Transport::Tls,
        other => return Err(format!("{other} toward a trunk is not supported")),
    };
    // Config validation requires a listener of the trunk's transport.
    let Some(&(_, mut local)) = bound.iter().find(|(k, _)| *k == t.transport) else {
        return Err(format!("no {} listener to send from", t.transport));
    };
    if local.ip().is_unspecified() {
        let probe = UdpSocket::bind(SocketAddr::new(local.ip(), 0))
            .await
            .map_err(|e| e.to_string())?;
        probe.connect(remote).await.map_err(|e| e.to_string())?;
        let ip = probe.local_addr().map_err(|e| e.to_string())?.ip();
        local = SocketAddr::new(ip, local.port());
    }
    Ok(Route {
        transport,
        local,
        remote,
    })
}

/// The listener address a trunk's transport sends from (for choosing an address family).
pub(crate) fn listener_for(t: &Trunk, bound: &[(ConfigTransport, SocketAddr)]) -> Option<SocketAddr> {
    bound.iter().find(|(k, _)| *k == t.transport).map(|(_, a)| *a)
}

/// Resolves and routes a trunk: `Ok(route)` or why not. `dns`: the server for SRV lookups (default:
/// /etc/resolv.conf's).
pub(crate) async fn locate(
    t: &Trunk,
    bound: &[(ConfigTransport, SocketAddr)],
    dns: Option<SocketAddr>,
) -> Result<Route, String> {
    let listener =
        listener_for(t, bound).ok_or_else(|| format!("no {} listener to send from", t.transport))?;
    let remote = address(t, listener, dns).await?;
    route(t, remote, bound).await
}
