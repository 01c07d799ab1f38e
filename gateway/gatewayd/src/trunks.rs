//! Where each trunk is, for the router: its address (a DNS name resolved at start and again every
//! minute; A/AAAA through the system resolver) and the local address our Via and Contact name toward it.

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

/// The trunk's address now: its IP, or what its name resolves to (an address of the family our
/// listener can reach first).
pub(crate) async fn address(t: &Trunk, listener: SocketAddr) -> Result<SocketAddr, String> {
    let port = t.port_or_default();
    match &t.address {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, port)),
        Host::Name(name) => {
            let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.as_str(), port)))
                .await
                .map_err(|_| format!("DNS lookup of {name} timed out"))?
                .map_err(|e| format!("DNS lookup of {name}: {e}"))?;
            let all: Vec<SocketAddr> = found.collect();
            all.iter()
                .find(|a| a.is_ipv4() == listener.is_ipv4())
                .or_else(|| all.first())
                .copied()
                .ok_or_else(|| format!("{name} has no address"))
        }
    }
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

/// Resolves and routes a trunk: `Ok(route)` or why not.
pub(crate) async fn locate(t: &Trunk, bound: &[(ConfigTransport, SocketAddr)]) -> Result<Route, String> {
    let listener =
        listener_for(t, bound).ok_or_else(|| format!("no {} listener to send from", t.transport))?;
    let remote = address(t, listener).await?;
    route(t, remote, bound).await
}
