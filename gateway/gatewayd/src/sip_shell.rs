//! The SIP run loop: sockets, connections and signals around the sans-IO [`Endpoint`].
//!
//! Receive tasks (one per UDP socket, one per accepted TCP or WebSocket connection) hand messages to the one
//! signalling task over a bounded channel; the signalling task alone owns the endpoint, feeds it with
//! `now`, sleeps until its next timer, and sends what it polls out: UDP from the listener the request
//! came in on, TCP and WebSocket on the connection it came in on (looked up by local and remote address).
//! Stream framing, CRLF keepalive pongs, the WebSocket handshake (subprotocol `sip`, RFC 7118) and
//! WebSocket pings happen in the connection task, below the core.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use edge_config::{Config, Transport as ConfigTransport};
use edge_media::session::{Leg, MediaEvent};
use edge_sip::b2bua::{CallEvent, CallRef};
use edge_sip::endpoint::Limits;
use edge_sip::framing::{Frame, StreamFramer};
use edge_sip::message::MAX_MESSAGE_LEN;
use edge_sip::ratelimit::RateLimit;
use edge_sip::transaction::{Route, TimerConfig};
use edge_sip::{Datagram, Endpoint, EndpointConfig, Outcome, Stats, Transport};

use crate::anchor::{Anchor, TrunkCodecs};
use crate::media_shell::{MediaNotice, MediaShell};
use crate::tls::{TlsConfigs, TrunkTls};
use crate::trunks;
use crate::web::{self, Book, LiveCall, LogRing, WebCommand, WebState};
use edge_config::routing::Host;
use edge_routing::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Messages waiting for the signalling task; beyond this the receive tasks wait (back-pressure).
const QUEUE: usize = 1024;
/// Outgoing messages queued per TCP/WebSocket connection before the connection is considered stuck.
const CONNECTION_QUEUE: usize = 256;
/// How often we ping a WebSocket peer (browsers answer pings without any script).
const WS_PING_INTERVAL: Duration = Duration::from_secs(30);
/// A WebSocket connection silent for this long (no message, no pong) is dead and is closed.
const WS_IDLE_LIMIT: Duration = Duration::from_secs(90);
/// A TLS or WebSocket handshake that takes longer is abandoned (a slow client cannot pin a task).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// A trunk cannot be reached from any local address.
    #[error("cannot route to trunk {name}: {reason}")]
    Trunk { name: String, reason: String },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    /// The media plane could not start (its thread or first sockets).
    #[error("cannot start the media plane: {0}")]
    Media(io::Error),
}

/// How the loop ended.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub(crate) signal: &'static str,
    pub(crate) stats: Stats,
}

/// What receive tasks tell the signalling task.
enum Input {
    Message {
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        payload: Vec<u8>,
    },
    Connected {
        local: SocketAddr,
        remote: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
        /// We opened it (toward the trunk).
        outbound: bool,
    },
    Closed {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Trunk `trunk` was looked up again: how to reach it now (`None`: its name does not resolve).
    Resolved {
        trunk: usize,
        route: Option<Route>,
    },
    /// Opening a connection toward `remote` failed.
    ConnectFailed {
        transport: Transport,
        remote: SocketAddr,
        reason: String,
    },
}

/// Binds every listener, then serves until SIGINT or SIGTERM. `tls` is present when a listener needs it.
/// SIGHUP reads `path` again (when the configuration came from a file) and applies its routing and
/// policy without dropping a call.
pub(crate) async fn run(
    config: &Config,
    path: Option<&Path>,
    tls: Option<TlsConfigs>,
    mut trunk_tls: Vec<Option<TrunkTls>>,
    logs: Arc<LogRing>,
) -> Result<Stopped, ShellError> {
    let (tx, mut rx) = mpsc::channel::<Input>(QUEUE);
    let mut udp: Vec<(Arc<UdpSocket>, SocketAddr)> = Vec::new();
    let mut bound: Vec<(ConfigTransport, SocketAddr)> = Vec::new();
    let mut tasks = Vec::new();
    for l in &config.sip.listen {
        let address = SocketAddr::new(l.address, l.port.get());
        let bind_err = |source| ShellError::Bind {
            transport: l.transport,
            address,
            source,
        };
        match l.transport {
            ConfigTransport::Udp => {
                let socket = Arc::new(UdpSocket::bind(address).await.map_err(bind_err)?);
                let local = socket.local_addr().map_err(bind_err)?;
                tracing::info!(transport = "udp", address = %local, "SIP listening");
                tasks.push(tokio::spawn(receive_udp(Arc::clone(&socket), local, tx.clone())));
                udp.push((socket, local));
                bound.push((l.transport, local));
            }
            ConfigTransport::Tcp | ConfigTransport::Tls | ConfigTransport::Ws | ConfigTransport::Wss => {
                let listener = TcpListener::bind(address).await.map_err(bind_err)?;
                let local = listener.local_addr().map_err(bind_err)?;
                let (transport, tls_config) = match l.transport {
                    ConfigTransport::Tls => (Transport::Tls, tls.as_ref().map(|t| Arc::clone(&t.sip))),
                    ConfigTransport::Ws => (Transport::Ws, None),
                    ConfigTransport::Wss => (Transport::Wss, tls.as_ref().map(|t| Arc::clone(&t.wss))),
                    _ => (Transport::Tcp, None),
                };
                if l.transport.needs_certificate() && tls_config.is_none() {
                    // Config validation guarantees [sip.tls] for these; reaching here is a caller bug.
                    return Err(ShellError::Bind {
                        transport: l.transport,
                        address,
                        source: io::Error::other("no TLS configuration loaded"),
                    });
                }
                tracing::info!(transport = l.transport.as_str(), address = %local, "SIP listening");
                bound.push((l.transport, local));
                let acceptor = tls_config.map(TlsAcceptor::from);
                tasks.push(tokio::spawn(accept_stream(
                    listener,
                    transport,
                    acceptor,
                    tx.clone(),
                )));
            }
        }
    }
    // Kept: connection tasks opened toward the trunk report through it.
    let input_tx = tx;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ShellError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ShellError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ShellError::Signals)?;

    let server = match &config.sip.server_header {
        None => Some(format!("RTC-Edge/{}", env!("CARGO_PKG_VERSION"))),
        Some(s) if s.as_str().is_empty() => None,
        Some(s) => Some(s.as_str().to_owned()),
    };
    let tag_secret = getrandom::u64().map_err(ShellError::Entropy)?;
    // Where each trunk is. An IP address that cannot be routed to is the operator's error; a name
    // that does not resolve yet is retried while we run (the trunk counts as down meanwhile).
    let mut routes = locate_trunks(config, &bound, None)
        .await
        .map_err(|(name, reason)| ShellError::Trunk { name, reason })?;
    let mut resolvers = spawn_resolvers(config, &bound, &routes, &input_tx, trunks::RESOLVE_RETRY);
    let mut current = config.clone();
    let trunk_codecs = TrunkCodecs::new(config);
    let router = (!config.trunks.is_empty()).then(|| {
        let wall = unix_now();
        Box::new(Engine::new(
            config,
            routes.clone(),
            tag_secret.rotate_left(17),
            (now(), wall),
        )) as Box<dyn edge_sip::router::Router>
    });
    let limits = &config.sip.limits;
    let mut endpoint = Endpoint::new(EndpointConfig {
        server,
        tag_secret,
        timers: TimerConfig::default(),
        router,
    })
    .with_limits(Limits {
        max_message_bytes: limits.max_message_bytes.get(),
        per_source: RateLimit {
            per_second: limits.per_source_rate,
            burst: limits.per_source_burst,
        },
    });
    // Media is anchored whenever calls are bridged (a trunk is configured).
    let mut notices = None;
    let mut media = None;
    if !config.trunks.is_empty() {
        let (shell, rx) = start_media(config, &mut endpoint, &trunk_codecs).map_err(ShellError::Media)?;
        media = Some(shell);
        notices = Some(rx);
    }
    // The web UI, when configured: its own threads; it talks to this loop through `web_rx`.
    let media_running_since_start = media.is_some();
    let mut web_rx = None;
    let mut web_loop = None;
    if let Some(w) = &config.web {
        // Calls do not depend on the UI: a UI that cannot start (its port taken, its folder not
        // writable) is an alarm in the log, not a gateway that stays down (and, on the appliance, a
        // boot that fails its health check and rolls back).
        match web::start(w, path, logs) {
            Ok((state, rx, _)) => {
                state.set_media(media.clone());
                web_rx = Some(rx);
                web_loop = Some(WebLoop {
                    state,
                    book: Book::default(),
                    tests: HashMap::new(),
                });
            }
            Err(e) => tracing::error!(error = %e, "the web UI is not running; SIP and media run without it"),
        }
    }
    let mut publish_tick = tokio::time::interval(Duration::from_secs(1));
    let mut answered = HashSet::new();
    let mut out = Outbound {
        udp,
        streams: HashMap::new(),
        outbound: HashMap::new(),
        connecting: HashMap::new(),
        input: input_tx.clone(),
        trunk_tls: HashMap::new(),
    };
    out.tls_routes(&trunk_tls, &routes);
    tracing::info!(listeners = config.sip.listen.len(), "ready");
    if let Some(w) = &web_loop {
        w.state
            .event("info", format!("gatewayd {} ready", env!("CARGO_PKG_VERSION")));
    }
    // sd_notify (systemd's Type=notify, or our PID 1): READY once every listener is bound, then
    // WATCHDOG from this very loop, so a stuck loop stops the petting and gets us restarted.
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("listening"),
    ]);
    let watchdog = sd_notify::watchdog_enabled();
    let mut pet = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |d| d / 2));
    if let Some(d) = watchdog {
        tracing::info!(interval_ms = d.as_millis(), "watchdog enabled");
    }

    let signal = loop {
        // The core says when it next needs time; the shell is the one place that reads the clock.
        let wake = endpoint.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                match path {
                    None => tracing::warn!("SIGHUP: running the embedded default configuration; nothing to read again"),
                    Some(path) => {
                        let reload = Reload { bound: &bound, input: &input_tx, codecs: &trunk_codecs };
                        let mut calls_plane = CallsPlane { media: &mut media, notices: &mut notices, tag_secret, media_running_since_start };
                        if let Err(why) = reload
                            .apply(path, &mut current, &mut endpoint, &mut routes, &mut trunk_tls, &mut resolvers, &mut calls_plane)
                            .await
                        {
                            tracing::error!(%why, "configuration not reloaded; the running one stays");
                        }
                        if let Some(w) = &web_loop {
                            w.state.set_media(media.clone());
                        }
                        out.tls_routes(&trunk_tls, &routes);
                        log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
                    }
                }
            }
            Some(command) = next_command(&mut web_rx) => {
                match command {
                    WebCommand::Reload(saved, reply) => {
                        let reload = Reload { bound: &bound, input: &input_tx, codecs: &trunk_codecs };
                        let mut calls_plane = CallsPlane { media: &mut media, notices: &mut notices, tag_secret, media_running_since_start };
                        let result = reload
                            .apply(&saved, &mut current, &mut endpoint, &mut routes, &mut trunk_tls, &mut resolvers, &mut calls_plane)
                            .await;
                        if let Err(why) = &result {
                            tracing::error!(%why, "configuration saved from the web UI not applied");
                        }
                        if let Some(w) = &web_loop {
                            w.state.set_media(media.clone());
                        }
                        out.tls_routes(&trunk_tls, &routes);
                        // The web thread may have given up waiting.
                        let _ = reply.try_send(result);
                    }
                    WebCommand::TestOptions { trunk, reply } => {
                        if let Some(w) = &mut web_loop {
                            w.test(&mut endpoint, &current, &routes, trunk, reply);
                        }
                        out.send_all(&mut endpoint).await;
                    }
                }
                log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
            }
            _ = publish_tick.tick(), if web_loop.is_some() => {
                if let Some(w) = &mut web_loop {
                    w.expire_tests();
                    w.publish(&mut endpoint, &current, &routes);
                }
            }
            _ = pet.tick(), if watchdog.is_some() => {
                let media_status = media.as_ref().map_or(String::new(), |m| {
                    format!(", media sessions: {}", m.active())
                });
                let trunk_status = endpoint.router_mut().map_or(String::new(), |r| format!(", {}", r.summary()));
                let status = format!(
                    "calls: {}, ending: {}, registered: {}, offloaded refreshes: {}{media_status}{trunk_status}",
                    endpoint.active_calls(),
                    endpoint.ending_calls(),
                    endpoint.registered(),
                    endpoint.offloaded_registers()
                );
                notify(&[sd_notify::NotifyState::Watchdog, sd_notify::NotifyState::Status(&status)]);
            }
            Some(notice) = next_notice(&mut notices) => {
                media_notice(&mut endpoint, &answered, notice);
                out.send_all(&mut endpoint).await;
                log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
            }
            () = sleep_until(wake), if wake.is_some() => {
                endpoint.handle_timeout(now());
                out.send_all(&mut endpoint).await;
                log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
            }
            input = rx.recv() => match input {
                None => break "listeners closed",
                Some(Input::Connected { local, remote, writer, outbound }) => {
                    tracing::debug!(%local, %remote, outbound, "connection");
                    if outbound {
                        out.opened(remote, &writer);
                    }
                    out.streams.insert((local, remote), writer);
                }
                Some(Input::Resolved { trunk, route }) => {
                    if let Some(slot) = routes.get_mut(trunk) {
                        *slot = route;
                    }
                    out.tls_routes(&trunk_tls, &routes);
                    if let Some(r) = endpoint.router_mut() {
                        r.set_route(trunk, route);
                    }
                }
                Some(Input::ConnectFailed { transport, remote, reason }) => {
                    let dropped = out.connecting.remove(&remote).map_or(0, |q| q.len());
                    tracing::warn!(%remote, %reason, dropped, "cannot connect to the trunk");
                    // What waited for it fails now (503), instead of timing out 32 s later.
                    endpoint.transport_error(now(), transport, remote);
                    out.send_all(&mut endpoint).await;
                    log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
                }
                Some(Input::Closed { local, remote }) => {
                    tracing::debug!(%local, %remote, "connection closed");
                    if let Some(w) = out.streams.remove(&(local, remote))
                        && out.outbound.get(&remote).is_some_and(|o| o.same_channel(&w))
                    {
                        out.outbound.remove(&remote);
                    }
                    endpoint.flow_closed(now(), local, remote);
                    out.send_all(&mut endpoint).await;
                    log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
                }
                Some(Input::Message { transport, local, remote, payload }) => {
                    let d = Datagram { transport, local, remote, payload: &payload };
                    match endpoint.handle_datagram(now(), d) {
                        Outcome::Answered { method, code } => {
                            tracing::debug!(%remote, %method, code, "answered");
                        }
                        Outcome::Relayed { method } => tracing::debug!(%remote, %method, "relayed"),
                        Outcome::Absorbed => {}
                        Outcome::Dropped(why) => {
                            tracing::debug!(%remote, reason = %why, "dropped malformed message");
                        }
                    }
                    out.send_all(&mut endpoint).await;
                    log_calls(&mut endpoint, &mut answered, &mut web_loop, &current);
                }
            }
        }
    };
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(
        signal,
        active_calls = endpoint.active_calls(),
        registered = endpoint.registered(),
        "stopping"
    );
    for task in tasks.into_iter().chain(resolvers) {
        task.abort();
    }
    if let Some(m) = &media {
        tracing::info!(
            sessions = m.active(),
            send_errors = m.send_errors(),
            recv_errors = m.recv_errors(),
            "media plane stopping"
        );
    }
    Ok(Stopped {
        signal,
        stats: endpoint.stats(),
    })
}

/// Where outgoing messages go.
struct Outbound {
    udp: Vec<(Arc<UdpSocket>, SocketAddr)>,
    /// TCP and WebSocket connections by (local, remote) address.
    streams: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>,
    /// Connections we opened toward the trunk, by its address.
    outbound: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Messages waiting for a connection being opened, by destination.
    connecting: HashMap<SocketAddr, Vec<Vec<u8>>>,
    /// Where connection tasks report.
    input: mpsc::Sender<Input>,
    /// Client TLS toward each `tls` trunk, by its current address.
    trunk_tls: HashMap<SocketAddr, TrunkTls>,
}

impl Outbound {
    /// Sends everything the endpoint has queued.
    async fn send_all(&mut self, endpoint: &mut Endpoint) {
        while let Some(t) = endpoint.poll_transmit() {
            match t.transport {
                Transport::Udp => {
                    // A wildcard listener (0.0.0.0:5060) sends what the core addressed from a concrete
                    // local address on the same port.
                    let matches = |l: &SocketAddr| {
                        *l == t.local || (l.ip().is_unspecified() && l.port() == t.local.port())
                    };
                    let Some((socket, _)) = self.udp.iter().find(|(_, l)| matches(l)) else {
                        tracing::warn!(local = %t.local, "no UDP listener for an outgoing SIP message");
                        continue;
                    };
                    if let Err(e) = socket.send_to(&t.payload, t.destination).await {
                        tracing::warn!(destination = %t.destination, error = %e, "SIP send failed");
                    }
                }
                Transport::Tcp | Transport::Tls if !self.streams.contains_key(&(t.local, t.destination)) => {
                    // Toward the trunk: on the connection we opened, or open one and queue meanwhile.
                    if let Some(writer) = self.outbound.get(&t.destination) {
                        if writer.try_send(t.payload).is_err() {
                            tracing::warn!(destination = %t.destination, "trunk connection stuck or gone; dropping it");
                            self.outbound.remove(&t.destination);
                        }
                    } else if let Some(queue) = self.connecting.get_mut(&t.destination) {
                        queue.push(t.payload);
                    } else {
                        self.connecting.insert(t.destination, vec![t.payload]);
                        let tls = (t.transport == Transport::Tls)
                            .then(|| self.trunk_tls.get(&t.destination).cloned())
                            .flatten();
                        tokio::spawn(connect_trunk(t.destination, tls, self.input.clone()));
                    }
                }
                Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                    let key = (t.local, t.destination);
                    let Some(writer) = self.streams.get(&key) else {
                        tracing::warn!(destination = %t.destination, "no connection for an outgoing SIP message");
                        continue;
                    };
                    if writer.try_send(t.payload).is_err() {
                        tracing::warn!(destination = %t.destination, "connection stuck or gone; dropping it");
                        self.streams.remove(&key);
                    }
                }
            }
        }
    }
}

impl Outbound {
    /// Which client TLS goes with which address, after trunks were (re)located.
    fn tls_routes(&mut self, tls: &[Option<TrunkTls>], routes: &[Option<Route>]) {
        self.trunk_tls = tls
            .iter()
            .zip(routes)
            .filter_map(|(t, r)| Some((r.as_ref()?.remote, t.clone()?)))
            .collect();
    }

    /// A connection we opened is up: it carries what was waiting for it.
    fn opened(&mut self, remote: SocketAddr, writer: &mpsc::Sender<Vec<u8>>) {
        for payload in self.connecting.remove(&remote).unwrap_or_default() {
            if writer.try_send(payload).is_err() {
                tracing::warn!(%remote, "trunk connection stuck while flushing");
            }
        }
        self.outbound.insert(remote, writer.clone());
    }
}

/// Opens a TCP (or TLS, when `tls` is given) connection toward the trunk and serves it like an accepted
/// one.
async fn connect_trunk(remote: SocketAddr, tls: Option<TrunkTls>, tx: mpsc::Sender<Input>) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let failed = |reason: String| Input::ConnectFailed {
        transport,
        remote,
        reason,
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return drop(tx.send(failed(e.to_string())).await),
        Err(_) => return drop(tx.send(failed("timed out".into())).await),
    };
    let Ok(local) = stream.local_addr() else { return };
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return serve_tcp(stream, local, remote, Transport::Tcp, tx, true).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connector.connect(tls.server_name, stream)).await {
        Ok(Ok(stream)) => serve_tcp(stream, local, remote, Transport::Tls, tx, true).await,
        Ok(Err(e)) => drop(tx.send(failed(format!("TLS: {e}"))).await),
        Err(_) => drop(tx.send(failed("TLS handshake timed out".into())).await),
    }
}

/// Call events, one log line each (CDRs will be built from the same events); keeps the set of
/// answered calls.
fn log_calls(
    endpoint: &mut Endpoint,
    answered: &mut HashSet<u64>,
    web: &mut Option<WebLoop>,
    config: &Config,
) {
    let trunk_name = |i: Option<usize>| i.and_then(|i| config.trunks.get(i)).map(|t| t.name.to_string());
    while let Some(event) = endpoint.poll_call_event() {
        match event {
            CallEvent::Started { call } => {
                tracing::info!(?call, "call started");
                if let Some(w) = web.as_mut()
                    && let Some(info) = endpoint.call_info(call)
                {
                    w.book
                        .started(call.id(), info.from, info.to, trunk_name(info.trunk));
                }
            }
            CallEvent::Answered { call } => {
                answered.insert(call.id());
                tracing::info!(?call, "call answered");
                if let Some(w) = web.as_mut() {
                    w.book.answered(call.id());
                }
            }
            CallEvent::Rerouted { call, after, trunk } => {
                tracing::info!(?call, ?after, trunk, "call failed over to the next trunk");
                if let Some(w) = web.as_mut() {
                    w.book.rerouted(call.id(), trunk_name(Some(trunk)));
                }
            }
            CallEvent::Ended { call, reason } => {
                answered.remove(&call.id());
                tracing::info!(?call, %reason, "call ended");
                if let Some(w) = web.as_mut()
                    && let Some(cdr) = w.book.ended(call.id(), &reason)
                {
                    w.state.record(cdr);
                }
            }
        }
    }
    if let Some(router) = endpoint.router_mut() {
        while let Some((trunk, up)) = router.poll_change() {
            if up {
                tracing::info!(%trunk, "trunk up (answers OPTIONS)");
            } else {
                tracing::warn!(%trunk, "trunk down (OPTIONS unanswered); calls avoid it");
            }
            if let Some(w) = web.as_ref() {
                let (level, what) = if up {
                    ("info", "up (answers OPTIONS)")
                } else {
                    ("alarm", "down (OPTIONS unanswered)")
                };
                w.state.event(level, format!("trunk {trunk} {what}"));
            }
        }
    }
    if let Some(w) = web.as_mut() {
        while let Some(answer) = endpoint.poll_test_answer() {
            w.answered(answer);
        }
    }
}

/// The next notice from the media plane (never, without one).
async fn next_notice(notices: &mut Option<mpsc::UnboundedReceiver<MediaNotice>>) -> Option<MediaNotice> {
    match notices {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the media plane saw: a call whose media died ends on both legs. Silence while a call rings is
/// normal (no early media), so inactivity ends only answered calls.
fn media_notice(endpoint: &mut Endpoint, answered: &HashSet<u64>, notice: MediaNotice) {
    let MediaNotice::Event(key, event) = notice;
    let call = CallRef::from_id(key);
    match event {
        MediaEvent::Inactive { leg, idle } if answered.contains(&key) => {
            let from = match leg {
                Leg::Browser => "the browser",
                Leg::Trunk => "the trunk",
            };
            let reason = format!("no RTP from {from} for {} s", idle.as_secs());
            endpoint.media_failed(now(), call, 408, &reason);
        }
        MediaEvent::DtlsFailed(why) => {
            tracing::info!(call = key, %why, "browser DTLS failed");
            endpoint.media_failed(now(), call, 488, "DTLS with the browser failed");
        }
        MediaEvent::ConsentExpired => {
            endpoint.media_failed(now(), call, 408, "the browser stopped answering ICE consent");
        }
        other => tracing::debug!(call = key, event = ?other, "media"),
    }
}

/// Where each trunk of `config` is. IP trunks are located now (an error names the trunk); a DNS name
/// is looked up now at start (`previous` is `None`), or on a reload taken from the previous
/// configuration when the same trunk had the same name there (its resolver looks it up soon).
async fn locate_trunks(
    config: &Config,
    bound: &[(ConfigTransport, SocketAddr)],
    previous: Option<(&Config, &[Option<Route>])>,
) -> Result<Vec<Option<Route>>, (String, String)> {
    let mut routes = Vec::with_capacity(config.trunks.len());
    for t in &config.trunks {
        if let (Host::Name(_), Some((old, old_routes))) = (&t.address, previous) {
            let same = old.trunks.iter().position(|o| {
                o.name == t.name
                    && o.address == t.address
                    && o.port_or_default() == t.port_or_default()
                    && o.transport == t.transport
            });
            routes.push(same.and_then(|i| old_routes.get(i).copied().flatten()));
            continue;
        }
        match trunks::locate(t, bound, config.routing.dns_server.map(|d| d.0)).await {
            Ok(r) => {
                tracing::info!(trunk = %t.name, address = %r.remote, from = %r.local, transport = %t.transport, "trunk");
                routes.push(Some(r));
            }
            Err(reason) if matches!(t.address, Host::Name(_)) => {
                tracing::warn!(trunk = %t.name, %reason, "trunk not resolved yet; retrying");
                routes.push(None);
            }
            Err(reason) => return Err((t.name.to_string(), reason)),
        }
    }
    Ok(routes)
}

/// One resolver task per trunk named by DNS; the first lookup after `first`.
fn spawn_resolvers(
    config: &Config,
    bound: &[(ConfigTransport, SocketAddr)],
    routes: &[Option<Route>],
    input: &mpsc::Sender<Input>,
    first: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    config
        .trunks
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t.address, Host::Name(_)))
        .map(|(i, t)| {
            tokio::spawn(resolve_trunk(
                i,
                t.clone(),
                bound.to_vec(),
                routes.get(i).copied().flatten(),
                input.clone(),
                first,
                config.routing.dns_server.map(|d| d.0),
            ))
        })
        .collect()
}

/// A configuration reload (SIGHUP).
struct Reload<'a> {
    bound: &'a [(ConfigTransport, SocketAddr)],
    input: &'a mpsc::Sender<Input>,
    codecs: &'a TrunkCodecs,
}

impl Reload<'_> {
    /// Reads `path` again and applies its routing and policy (`[[trunks]]`, `[[routes]]`, `[routing]`,
    /// `[admission]`, `[filter]`, `[[rewrite]]`, `[registrar]`) to the running router without
    /// dropping a call; what needs a restart (listeners, TLS, limits, media, logging) is named in a
    /// warning and left as it runs. An unreadable or invalid file changes nothing.
    #[allow(
        clippy::too_many_arguments,
        reason = "the loop's state, borrowed piece by piece"
    )]
    async fn apply(
        &self,
        path: &Path,
        current: &mut Config,
        endpoint: &mut Endpoint,
        routes: &mut Vec<Option<Route>>,
        trunk_tls: &mut Vec<Option<TrunkTls>>,
        resolvers: &mut Vec<tokio::task::JoinHandle<()>>,
        plane: &mut CallsPlane<'_>,
    ) -> Result<Vec<&'static str>, String> {
        let new = Config::load(path).map_err(|e| e.to_string())?;
        let tls = crate::tls::trunks(&new).map_err(|e| e.to_string())?;
        if new.trunks.is_empty() {
            return Err(if endpoint.router_mut().is_some() {
                "the new file has no trunk: the running calls need one; restart to run without".into()
            } else {
                "no trunk configured yet: calls are not routed".into()
            });
        }
        let fresh = locate_trunks(&new, self.bound, Some((current, routes)))
            .await
            .map_err(|(name, reason)| format!("cannot route to trunk {name}: {reason}"))?;
        if endpoint.router_mut().is_none() {
            // Started without trunks (signalling only, e.g. a first boot): calls start now. No call
            // can exist yet, so the call core and the media plane come up fresh.
            let engine = Engine::new(
                &new,
                fresh.clone(),
                plane.tag_secret.rotate_left(17),
                (now(), unix_now()),
            );
            endpoint.start_calls(Box::new(engine));
            self.codecs.set(&new);
            let (shell, rx) = start_media(&new, endpoint, self.codecs).map_err(|e| e.to_string())?;
            *plane.media = Some(shell);
            *plane.notices = Some(rx);
            tracing::info!(
                trunks = new.trunks.len(),
                "calls enabled: the first trunk is configured"
            );
        }
        let Some(router) = endpoint.router_mut() else {
            return Err("the call core did not start".into());
        };
        let Some(engine) = router.as_any_mut().downcast_mut::<Engine>() else {
            return Err("the running router cannot be reconfigured".into());
        };
        engine.reload(&new, fresh.clone());
        self.codecs.set(&new);
        for r in resolvers.drain(..) {
            r.abort();
        }
        *resolvers = spawn_resolvers(&new, self.bound, &fresh, self.input, Duration::ZERO);
        *routes = fresh;
        *trunk_tls = tls;
        let mut restart = Vec::new();
        if new.sip != current.sip {
            restart.push("[sip]");
        }
        if new.media != current.media && plane.media_running_since_start {
            restart.push("[media]");
        }
        if new.log != current.log {
            restart.push("[log]");
        }
        if new.web != current.web {
            restart.push("[web]");
        }
        if restart.is_empty() {
            tracing::info!(path = %path.display(), trunks = new.trunks.len(), routes = new.routes.len(), "configuration reloaded; calls kept");
        } else {
            tracing::warn!(
                path = %path.display(),
                needs_restart = restart.join(" "),
                "routing reloaded, calls kept; other changes apply at the next restart"
            );
        }
        *current = new;
        Ok(restart)
    }
}

/// The parts of the loop a reload may bring up when the gateway started without trunks.
struct CallsPlane<'a> {
    media: &'a mut Option<MediaShell>,
    notices: &'a mut Option<mpsc::UnboundedReceiver<MediaNotice>>,
    tag_secret: u64,
    /// The media plane was started from the configuration at start (a change to `[media]` then
    /// needs a restart; one started by this reload runs the new values).
    media_running_since_start: bool,
}

/// Starts the media plane and hands the endpoint its anchor.
fn start_media(
    config: &Config,
    endpoint: &mut Endpoint,
    codecs: &TrunkCodecs,
) -> Result<(MediaShell, mpsc::UnboundedReceiver<MediaNotice>), io::Error> {
    let (shell, rx) = MediaShell::start(&config.media)?;
    tracing::info!(
        browser = %config.media.browser.advertised(),
        trunk = %config.media.trunk.advertised(),
        ports = format!("{}-{}", config.media.port_min, config.media.port_max),
        "media plane ready"
    );
    endpoint.set_media(Box::new(Anchor::new(
        shell.clone(),
        &config.media,
        codecs.clone(),
    )));
    Ok((shell, rx))
}

/// The web UI's side of the loop: the call book, and test OPTIONS waiting for their answers.
struct WebLoop {
    state: Arc<WebState>,
    book: Book,
    tests: HashMap<u64, PendingTest>,
}

struct PendingTest {
    reply: std::sync::mpsc::SyncSender<Result<edge_web::api::TestCall, edge_web::api::Failure>>,
    trunk: String,
    target: String,
    sent: Instant,
}

impl WebLoop {
    /// Sends a test OPTIONS to trunk `name` (the first without one); the answer goes to `reply`.
    fn test(
        &mut self,
        endpoint: &mut Endpoint,
        config: &Config,
        routes: &[Option<Route>],
        name: Option<String>,
        reply: std::sync::mpsc::SyncSender<Result<edge_web::api::TestCall, edge_web::api::Failure>>,
    ) {
        let found = match &name {
            None => config.trunks.first().map(|t| (0, t)),
            Some(n) => config
                .trunks
                .iter()
                .enumerate()
                .find(|(_, t)| t.name.to_string() == *n),
        };
        let Some((index, trunk)) = found else {
            let _ = reply.try_send(Err(match name {
                None => (409, "no trunk is configured".to_owned()),
                Some(n) => (404, format!("no trunk is named {n}")),
            }));
            return;
        };
        let target = routes.get(index).copied().flatten().map_or_else(
            || format!("{} (not resolved)", trunk.address),
            |r| format!("{}:{}", r.transport.via_token().to_ascii_lowercase(), r.remote),
        );
        let no_answer = |error: String| edge_web::api::TestCall {
            trunk: trunk.name.to_string(),
            target: target.clone(),
            method: "OPTIONS".into(),
            status: None,
            reason: None,
            rtt_ms: None,
            error: Some(error),
        };
        match endpoint.test_options(now(), index) {
            Some(id) => {
                self.tests.insert(
                    id,
                    PendingTest {
                        reply,
                        trunk: trunk.name.to_string(),
                        target,
                        sent: now(),
                    },
                );
            }
            None => {
                let why = if endpoint.router_mut().is_none() {
                    "calls are not enabled yet (no trunk when the gateway started, and the saved one did not apply)"
                } else {
                    "the trunk's address is not resolved yet"
                };
                let _ = reply.try_send(Ok(no_answer(why.to_owned())));
            }
        }
    }

    /// A test OPTIONS came back (or failed).
    fn answered(&mut self, answer: edge_sip::b2bua::TestAnswer) {
        let Some(t) = self.tests.remove(&answer.id) else {
            return;
        };
        let rtt = u64::try_from(now().saturating_duration_since(t.sent).as_millis()).unwrap_or(u64::MAX);
        let (status, reason, error) = match answer.status {
            Some((code, reason)) => (Some(code), Some(reason), None),
            None => (None, None, Some("no answer (timeout or unreachable)".to_owned())),
        };
        let _ = t.reply.try_send(Ok(edge_web::api::TestCall {
            trunk: t.trunk,
            target: t.target,
            method: "OPTIONS".into(),
            status,
            reason,
            rtt_ms: status.map(|_| rtt),
            error,
        }));
    }

    /// Tests unanswered past [`web::TEST_DEADLINE`] are reported as such (the transaction runs on).
    fn expire_tests(&mut self) {
        let now = now();
        let late: Vec<u64> = self
            .tests
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.sent) >= web::TEST_DEADLINE)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(t) = self.tests.remove(&id) {
                let _ = t.reply.try_send(Ok(edge_web::api::TestCall {
                    trunk: t.trunk,
                    target: t.target,
                    method: "OPTIONS".into(),
                    status: None,
                    reason: None,
                    rtt_ms: None,
                    error: Some(format!("no answer in {} s", web::TEST_DEADLINE.as_secs())),
                }));
            }
        }
    }

    /// Publishes the loop's view for the web threads.
    fn publish(&mut self, endpoint: &mut Endpoint, config: &Config, routes: &[Option<Route>]) {
        let unix = web::unix_s();
        let now = now();
        let is_ws = |t: Transport| matches!(t, Transport::Ws | Transport::Wss);
        let calls: Vec<LiveCall> = endpoint
            .calls()
            .into_iter()
            .filter(|c| !c.ending)
            .map(|c| LiveCall {
                key: c.call.id(),
                from: c.from,
                to: c.to,
                answered: c.answered,
                started_unix: self.book.start_of(c.call.id()).unwrap_or(unix),
                trunk: c
                    .trunk
                    .and_then(|i| config.trunks.get(i))
                    .map(|t| t.name.to_string()),
                a_browser: is_ws(c.a_transport),
                b_browser: is_ws(c.b_transport),
            })
            .collect();
        let users = endpoint
            .bindings(100)
            .into_iter()
            .map(|b| edge_web::api::Registration {
                user: b.user,
                transport: b.transport.via_token().to_ascii_lowercase(),
                expires_in_s: b.expires_at.saturating_duration_since(now).as_secs(),
            })
            .collect();
        let registered = u64::try_from(endpoint.registered()).unwrap_or(u64::MAX);
        let (sip, offloaded) = (endpoint.stats(), endpoint.offloaded_registers());
        let routing = endpoint
            .router_mut()
            .and_then(|r| r.as_any_mut().downcast_mut::<Engine>())
            .map(|e| e.stats());
        let trunks = config
            .trunks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let stats = routing.as_ref().and_then(|r| r.trunks.get(i));
                edge_web::api::TrunkView {
                    name: t.name.to_string(),
                    target: routes.get(i).copied().flatten().map_or_else(
                        || t.address.to_string(),
                        |r| format!("{}:{}", r.transport.via_token().to_ascii_lowercase(), r.remote),
                    ),
                    up: stats.is_some_and(|s| s.up && s.resolved),
                    monitored: t.monitor.interval_s > 0,
                    calls: stats.map_or(0, |s| u64::from(s.calls)),
                }
            })
            .collect();
        let mut live = self
            .state
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.ready = true;
        live.calls = calls;
        live.calls_total = self.book.total();
        live.registrations = edge_web::api::Registrations {
            count: registered,
            users,
        };
        live.trunks = trunks;
        live.routing = routing;
        live.sip = sip;
        live.offloaded = offloaded;
    }
}

/// The next command from the web UI (never, without one).
async fn next_command(rx: &mut Option<mpsc::Receiver<WebCommand>>) -> Option<WebCommand> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Looks trunk `index` up again every minute (every 10 s while it does not resolve) and reports a
/// change.
async fn resolve_trunk(
    index: usize,
    trunk: edge_config::routing::Trunk,
    bound: Vec<(ConfigTransport, SocketAddr)>,
    mut current: Option<Route>,
    tx: mpsc::Sender<Input>,
    first: Duration,
    dns: Option<SocketAddr>,
) {
    let mut wait = first;
    loop {
        tokio::time::sleep(wait).await;
        wait = if current.is_some() {
            trunks::RESOLVE_EVERY
        } else {
            trunks::RESOLVE_RETRY
        };
        let found = match trunks::locate(&trunk, &bound, dns).await {
            Ok(r) => Some(r),
            Err(reason) => {
                tracing::warn!(trunk = %trunk.name, %reason, "trunk address lookup failed");
                // A lookup that fails keeps the last address: DNS trouble is not the trunk's.
                current
            }
        };
        if found != current {
            if let Some(r) = &found {
                tracing::info!(trunk = %trunk.name, address = %r.remote, "trunk address changed");
            }
            current = found;
            if tx
                .send(Input::Resolved {
                    trunk: index,
                    route: found,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Tells the service manager (if any: `NOTIFY_SOCKET`) about our state; a failure is logged, not fatal.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The clock, read here and handed to the cores.
#[allow(clippy::disallowed_methods)] // the shell is where time is read; cores receive it
fn now() -> Instant {
    Instant::now()
}

/// The wall clock in Unix seconds, for routes' days and times of day.
#[allow(clippy::disallowed_methods)] // the shell is where time is read; cores receive it
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sleep_until(wake: Option<tokio::time::Instant>) {
    if let Some(at) = wake {
        tokio::time::sleep_until(at).await;
    }
}

/// Reads datagrams from one socket until the signalling task goes away.
async fn receive_udp(socket: Arc<UdpSocket>, local: SocketAddr, tx: mpsc::Sender<Input>) {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let payload = buf.get(..n).unwrap_or_default().to_vec();
                let input = Input::Message {
                    transport: Transport::Udp,
                    local,
                    remote,
                    payload,
                };
                if tx.send(input).await.is_err() {
                    return;
                }
            }
            // An unconnected UDP socket reports nothing fatal here (e.g. ICMP errors with IP_RECVERR);
            // log and keep serving.
            Err(e) => tracing::warn!(%local, error = %e, "SIP receive error"),
        }
    }
}

/// Accepts TCP connections (SIP over TCP/TLS, WebSocket, secure WebSocket) until the signalling task
/// goes away.
async fn accept_stream(
    listener: TcpListener,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<Input>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                tokio::spawn(serve_connection(
                    stream,
                    remote,
                    transport,
                    tls.clone(),
                    tx.clone(),
                ));
            }
            // Out of file descriptors and the like: log, and keep accepting once it clears.
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Terminates TLS if the listener has it, then serves the stream as SIP or WebSocket.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<Input>,
) {
    let Ok(local) = stream.local_addr() else { return };
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_stream(stream, local, remote, transport, tx).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_stream(stream, local, remote, transport, tx).await,
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

async fn serve_stream<S>(
    stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match transport {
        Transport::Ws | Transport::Wss => serve_ws(stream, local, remote, transport, tx).await,
        _ => serve_tcp(stream, local, remote, transport, tx, false).await,
    }
}

/// Frames one TCP or TLS stream into SIP messages, answers CRLF keepalives, and writes what the
/// signalling task queues for it.
async fn serve_tcp<S>(
    stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Input>,
    outbound: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(CONNECTION_QUEUE);
    if tx
        .send(Input::Connected {
            local,
            remote,
            writer: out_tx.clone(),
            outbound,
        })
        .await
        .is_err()
    {
        return;
    }
    let writing = tokio::spawn(write_tcp(writer, out_rx));
    let mut framer = StreamFramer::new(MAX_MESSAGE_LEN);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(buf.get(..n).unwrap_or_default());
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(payload))) => {
                    let input = Input::Message {
                        transport,
                        local,
                        remote,
                        payload,
                    };
                    if tx.send(input).await.is_err() {
                        break 'read;
                    }
                }
                // RFC 5626 §4.4.1: answer a double-CRLF ping with a single CRLF pong.
                Ok(Some(Frame::Ping)) => {
                    if out_tx.send(b"\r\n".to_vec()).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Pong)) => {}
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "closing TCP connection: stream cannot be framed");
                    break 'read;
                }
            }
        }
    }
    drop(out_tx);
    let _ = tx.send(Input::Closed { local, remote }).await;
    // The signalling task dropped its sender on Closed; the writer flushes what is queued and ends.
    let _ = writing.await;
}

async fn write_tcp<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// RFC 7118 §4: the client must offer the `sip` subprotocol and we select it; anything else is refused
/// with 400 before a WebSocket exists.
#[allow(clippy::result_large_err)] // the error type is tungstenite's HTTP response, by its API
fn select_sip_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offers_sip = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !offers_sip {
        let mut refusal =
            ErrorResponse::new(Some("WebSocket subprotocol \"sip\" required (RFC 7118)".into()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    response
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
    Ok(response)
}

/// One WebSocket connection: handshake, one SIP message per WebSocket message (RFC 7118 §5), pings
/// every [`WS_PING_INTERVAL`], closed after [`WS_IDLE_LIMIT`] of silence.
async fn serve_ws<S>(
    stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_LEN))
        .max_frame_size(Some(MAX_MESSAGE_LEN));
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, select_sip_subprotocol, Some(config));
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "WebSocket handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "WebSocket handshake timed out");
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CONNECTION_QUEUE);
    if tx
        .send(Input::Connected {
            local,
            remote,
            writer: out_tx,
            outbound: false,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(WS_PING_INTERVAL);
    ping.tick().await; // the first tick is immediate
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let idle_deadline = last_heard + WS_IDLE_LIMIT;
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    last_heard = tokio::time::Instant::now();
                    let payload = text.as_str().as_bytes().to_vec();
                    let input = Input::Message { transport, local, remote, payload };
                    if tx.send(input).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Binary(bytes))) => {
                    last_heard = tokio::time::Instant::now();
                    let input = Input::Message { transport, local, remote, payload: bytes.to_vec() };
                    if tx.send(input).await.is_err() {
                        break;
                    }
                }
                // tungstenite answers pings itself; any sign of life keeps the flow up.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                    last_heard = tokio::time::Instant::now();
                }
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "closing WebSocket: protocol error");
                    break;
                }
            },
            outgoing = out_rx.recv() => {
                let Some(bytes) = outgoing else { break };
                // SIP is text; a message that is not UTF-8 (a binary body) goes as a binary frame.
                let message = match String::from_utf8(bytes) {
                    Ok(text) => WsMessage::text(text),
                    Err(e) => WsMessage::binary(e.into_bytes()),
                };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                tracing::debug!(%remote, "closing WebSocket: silent for {} s", WS_IDLE_LIMIT.as_secs());
                break;
            }
        }
    }
    let _ = sink.close().await;
    let _ = tx.send(Input::Closed { local, remote }).await;
}
