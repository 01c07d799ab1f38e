//! The SIP run loop: sockets and signals around the sans-IO [`Endpoint`].
//!
//! One receive task per listening socket hands datagrams to the signalling task over a bounded channel;
//! the signalling task alone owns the endpoint, feeds it, and sends what it polls out. The same shape
//! takes stream transports (TCP/TLS/WS) later: their connection tasks feed the same channel.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use edge_config::{Config, Transport as ConfigTransport};
use edge_sip::transaction::TimerConfig;
use edge_sip::{Datagram, Endpoint, EndpointConfig, Outcome, Stats, Transport};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Datagrams waiting for the signalling task; beyond this the receive tasks wait (back-pressure).
const QUEUE: usize = 1024;

/// Why the gateway could not run. The operator or the host is at fault; each names what failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShellError {
    /// A listener could not be bound (address in use, not local, no permission).
    #[error("cannot bind SIP {transport} listener {address}: {source}")]
    Bind {
        transport: ConfigTransport,
        address: SocketAddr,
        source: io::Error,
    },
    /// The OS random source failed.
    #[error("cannot read the OS random source: {0}")]
    Entropy(getrandom::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
}

/// How the loop ended.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub(crate) signal: &'static str,
    pub(crate) stats: Stats,
}

struct Received {
    listener: usize,
    remote: SocketAddr,
    payload: Vec<u8>,
}

/// Binds every listener, then serves until SIGINT or SIGTERM.
pub(crate) async fn run(config: &Config) -> Result<Stopped, ShellError> {
    let mut sockets = Vec::with_capacity(config.sip.listen.len());
    for l in &config.sip.listen {
        let address = SocketAddr::new(l.address, l.port.get());
        match l.transport {
            ConfigTransport::Udp => {
                let bind_err = |source| ShellError::Bind {
                    transport: l.transport,
                    address,
                    source,
                };
                let socket = UdpSocket::bind(address).await.map_err(bind_err)?;
                let local = socket.local_addr().map_err(bind_err)?;
                tracing::info!(transport = "udp", address = %local, "SIP listening");
                sockets.push((Arc::new(socket), local));
            }
        }
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(ShellError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ShellError::Signals)?;

    let server = match &config.sip.server_header {
        None => Some(format!("RTC-Edge/{}", env!("CARGO_PKG_VERSION"))),
        Some(s) if s.as_str().is_empty() => None,
        Some(s) => Some(s.as_str().to_owned()),
    };
    let tag_secret = getrandom::u64().map_err(ShellError::Entropy)?;
    let mut endpoint = Endpoint::new(EndpointConfig {
        server,
        tag_secret,
        timers: TimerConfig::default(),
    });

    let (tx, mut rx) = mpsc::channel::<Received>(QUEUE);
    let receivers: Vec<_> = sockets
        .iter()
        .enumerate()
        .map(|(listener, (socket, local))| {
            tokio::spawn(receive(listener, Arc::clone(socket), *local, tx.clone()))
        })
        .collect();
    drop(tx);
    tracing::info!(listeners = sockets.len(), "ready");

    let signal = loop {
        // The core says when it next needs time; the shell is the one place that reads the clock.
        let wake = endpoint.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            () = sleep_until(wake), if wake.is_some() => {
                endpoint.handle_timeout(now());
                send_all(&mut endpoint, &sockets).await;
            }
            received = rx.recv() => {
                let Some(r) = received else { break "listeners closed" };
                let Some((_, local)) = sockets.get(r.listener) else { continue };
                let outcome = endpoint.handle_datagram(now(), Datagram {
                    transport: Transport::Udp,
                    local: *local,
                    remote: r.remote,
                    payload: &r.payload,
                });
                match outcome {
                    Outcome::Answered { method, code } => {
                        tracing::debug!(remote = %r.remote, %method, code, "answered");
                    }
                    Outcome::Absorbed => {}
                    Outcome::Dropped(why) => {
                        tracing::debug!(remote = %r.remote, reason = %why, "dropped malformed datagram");
                    }
                }
                send_all(&mut endpoint, &sockets).await;
            }
        }
    };
    tracing::info!(signal, "stopping");
    for task in receivers {
        task.abort();
    }
    Ok(Stopped {
        signal,
        stats: endpoint.stats(),
    })
}

/// The clock, read here and handed to the cores.
#[allow(clippy::disallowed_methods)] // the shell is where time is read; cores receive it
fn now() -> Instant {
    Instant::now()
}

async fn sleep_until(wake: Option<tokio::time::Instant>) {
    if let Some(at) = wake {
        tokio::time::sleep_until(at).await;
    }
}

/// Sends everything the endpoint has queued, each from the listener it names.
async fn send_all(endpoint: &mut Endpoint, sockets: &[(Arc<UdpSocket>, SocketAddr)]) {
    while let Some(t) = endpoint.poll_transmit() {
        let Some((socket, _)) = sockets.iter().find(|(_, l)| *l == t.local) else {
            tracing::warn!(local = %t.local, "no listener for an outgoing SIP message");
            continue;
        };
        if let Err(e) = socket.send_to(&t.payload, t.destination).await {
            tracing::warn!(destination = %t.destination, error = %e, "SIP send failed");
        }
    }
}

/// Reads datagrams from one socket until the signalling task goes away.
async fn receive(listener: usize, socket: Arc<UdpSocket>, local: SocketAddr, tx: mpsc::Sender<Received>) {
    let mut buf = vec![0u8; edge_sip::message::MAX_MESSAGE_LEN + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let payload = buf.get(..n).unwrap_or_default().to_vec();
                if tx
                    .send(Received {
                        listener,
                        remote,
                        payload,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // An unconnected UDP socket reports nothing fatal here (e.g. ICMP errors with IP_RECVERR);
            // log and keep serving.
            Err(e) => tracing::warn!(%local, error = %e, "SIP receive error"),
        }
    }
}
