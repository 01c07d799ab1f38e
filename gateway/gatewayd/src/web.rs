//! The web UI in the daemon: `edge-web`'s [`App`] served by `edge_http::server` on its own threads,
//! and [`GatewayBackend`], what the UI sees and does.
//!
//! The SIP run loop owns the endpoint; the web threads never touch it. The loop publishes a snapshot
//! ([`Live`]) once a second and on every call event, and answers [`WebCommand`]s (apply a saved
//! configuration, send a test OPTIONS) between two SIP messages; a web thread waits for the answer
//! with a deadline. Media counters are asked of the media thread directly (once per request or
//! sample, never per packet). A sampler thread records the last hour (calls, packets, CPU) every 10 s.

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the shell: the web UI's listener, its sampler's 10 s tick, and the clock"
)]

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use edge_config::web::WebConfig;
use edge_config::{Config, DEFAULT_TOML};
use edge_web::App;
use edge_web::api::{self, Backend, Failure, Rejected};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;

use crate::media_shell::MediaShell;

/// Samples kept for the dashboard graph: an hour at one per [`SAMPLE`].
const HISTORY: usize = 360;
/// The graph's resolution.
const SAMPLE: Duration = Duration::from_secs(10);
/// Recent events and alarms kept.
const EVENTS: usize = 50;
/// Call records kept in memory (all of them also go to `cdrs.csv` in the state folder).
const CDRS: usize = 1000;
/// `cdrs.csv` is rotated to `cdrs.csv.1` past this size.
const CDR_FILE_MAX: u64 = 8 * 1024 * 1024;
/// Log lines kept for the UI.
const LOG_LINES: usize = 2000;
/// How long a web request waits for the SIP loop.
const LOOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a test OPTIONS waits for its answer (RFC 3261's Timer F is 32 s; an operator waits less).
pub(crate) const TEST_DEADLINE: Duration = Duration::from_secs(5);

#[allow(
    clippy::disallowed_methods,
    reason = "the shell is where time is read; the cores receive it"
)]
fn clock() -> Instant {
    Instant::now()
}

#[allow(
    clippy::disallowed_methods,
    reason = "the shell is where time is read; the cores receive it"
)]
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn unix_s() -> u64 {
    unix_ms() / 1000
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Log lines for the UI

/// The last [`LOG_LINES`] log lines, filled by [`RingLayer`].
#[derive(Debug, Default)]
pub(crate) struct LogRing {
    lines: Mutex<VecDeque<api::LogLine>>,
}

impl LogRing {
    fn last(&self, n: usize) -> Vec<api::LogLine> {
        let lines = lock(&self.lines);
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}

/// A `tracing` layer that keeps each event (as the log filter passed it) in a [`LogRing`].
#[derive(Debug, Clone)]
pub(crate) struct RingLayer(pub(crate) Arc<LogRing>);

/// Collects an event's message and fields as `message k=v …`.
#[derive(Default)]
struct Line(String, String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let entry = api::LogLine {
            time: unix_ms(),
            level: event.metadata().level().to_string(),
            message: format!("{}{}", line.0, line.1),
        };
        let mut lines = lock(&self.0.lines);
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(entry);
    }
}

// ---------------------------------------------------------------------------------------------
// What the SIP loop publishes

/// A call as the loop last saw it.
#[derive(Debug, Clone)]
pub(crate) struct LiveCall {
    pub(crate) key: u64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) answered: bool,
    pub(crate) started_unix: u64,
    pub(crate) trunk: Option<String>,
    /// Leg A came from a browser (WebSocket).
    pub(crate) a_browser: bool,
    /// Leg B goes to a browser.
    pub(crate) b_browser: bool,
}

/// The snapshot the SIP loop keeps current.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) ready: bool,
    pub(crate) calls: Vec<LiveCall>,
    pub(crate) calls_total: u64,
    pub(crate) registrations: api::Registrations,
    pub(crate) trunks: Vec<api::TrunkView>,
    pub(crate) routing: Option<edge_routing::Stats>,
    pub(crate) sip: edge_sip::Stats,
    pub(crate) offloaded: u64,
    pub(crate) events: VecDeque<api::Event>,
    pub(crate) cdrs: VecDeque<api::Cdr>,
    pub(crate) history: VecDeque<api::Sample>,
}

/// A request from a web thread to the SIP loop.
#[derive(Debug)]
pub(crate) enum WebCommand {
    /// The configuration file was saved: read it again and apply what can be applied. The answer
    /// lists what needs a restart.
    Reload(PathBuf, SyncSender<Result<Vec<&'static str>, String>>),
    /// Send OPTIONS to a trunk (by name; the first without one).
    TestOptions {
        trunk: Option<String>,
        reply: SyncSender<Result<api::TestCall, Failure>>,
    },
}

/// Everything the web threads share with the loop.
#[derive(Debug)]
pub(crate) struct WebState {
    pub(crate) live: Mutex<Live>,
    commands: tokio::sync::mpsc::Sender<WebCommand>,
    media: Mutex<Option<MediaShell>>,
    logs: Arc<LogRing>,
    /// The file gatewayd runs from.
    config_path: Option<PathBuf>,
    /// Where the UI saves and applies the configuration (`[web] save_to`, else `config_path`).
    save_path: Option<PathBuf>,
    web: WebConfig,
    state_dir: PathBuf,
    started: Instant,
    cpu: Mutex<f64>,
    slot: Option<String>,
}

impl WebState {
    /// Records an event for the dashboard (newest first).
    pub(crate) fn event(&self, level: &str, message: String) {
        let mut live = lock(&self.live);
        live.events.push_front(api::Event {
            time: unix_s(),
            level: level.to_owned(),
            message,
        });
        live.events.truncate(EVENTS);
    }

    /// A finished call's record: kept for the UI and appended to `cdrs.csv`.
    pub(crate) fn record(&self, cdr: api::Cdr) {
        let path = self.state_dir.join("cdrs.csv");
        if let Err(e) = append_cdr(&path, &cdr) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the call record");
        }
        let mut live = lock(&self.live);
        live.cdrs.push_front(cdr);
        live.cdrs.truncate(CDRS);
    }

    /// The media plane, once calls are bridged.
    pub(crate) fn set_media(&self, media: Option<MediaShell>) {
        *lock(&self.media) = media;
    }
}

fn append_cdr(path: &Path, c: &api::Cdr) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > CDR_FILE_MAX) {
        std::fs::rename(path, path.with_extension("csv.1"))?;
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut text = String::new();
    if new {
        text.push_str(edge_web::CDR_CSV_HEADER);
    }
    text.push_str(&edge_web::cdr_csv_line(c));
    f.write_all(text.as_bytes())
}

/// The call book the SIP loop keeps: when each call started and was answered, for records.
#[derive(Debug, Default)]
pub(crate) struct Book {
    open: HashMap<u64, Open>,
    total: u64,
}

#[derive(Debug)]
struct Open {
    start: u64,
    answer: Option<u64>,
    from: String,
    to: String,
    trunk: Option<String>,
}

impl Book {
    /// A call started.
    pub(crate) fn started(&mut self, key: u64, from: String, to: String, trunk: Option<String>) {
        self.total += 1;
        self.open.insert(
            key,
            Open {
                start: unix_s(),
                answer: None,
                from,
                to,
                trunk,
            },
        );
    }

    /// A call was answered.
    pub(crate) fn answered(&mut self, key: u64) {
        if let Some(o) = self.open.get_mut(&key) {
            o.answer = Some(unix_s());
        }
    }

    /// A call moved to another trunk.
    pub(crate) fn rerouted(&mut self, key: u64, trunk: Option<String>) {
        if let Some(o) = self.open.get_mut(&key) {
            o.trunk = trunk;
        }
    }

    /// A call ended: its record.
    pub(crate) fn ended(&mut self, key: u64, reason: &str) -> Option<api::Cdr> {
        let o = self.open.remove(&key)?;
        let end = unix_s();
        // "486 from B", "BYE from A": a status leads the reason when the setup failed.
        let status = if o.answer.is_some() {
            Some(200)
        } else {
            reason
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<u16>().ok())
                .filter(|c| (300..700).contains(c))
        };
        Some(api::Cdr {
            id: format!("{key:x}"),
            start: o.start,
            answer: o.answer,
            end,
            duration_s: o.answer.map_or(0, |a| end.saturating_sub(a)),
            from: o.from,
            to: o.to,
            trunk: o.trunk,
            status,
            reason: reason.to_owned(),
        })
    }

    /// Calls since start.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// When a call started (Unix seconds).
    pub(crate) fn start_of(&self, key: u64) -> Option<u64> {
        self.open.get(&key).map(|o| o.start)
    }
}

// ---------------------------------------------------------------------------------------------
// Starting it

/// Where the UI keeps its files: `[web] state_dir`, else `$STATE_DIRECTORY` (systemd), else
/// `$XDG_STATE_HOME/rtc-edge`, else `~/.local/state/rtc-edge`, else `/var/lib/rtc-edge`.
fn state_dir(web: &WebConfig) -> PathBuf {
    if let Some(d) = &web.state_dir {
        return d.clone();
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("STATE_DIRECTORY") {
        // systemd may list several, colon-separated: the first is ours.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return PathBuf::from(first);
    }
    env("XDG_STATE_HOME")
        .map(|d| d.join("rtc-edge"))
        .or_else(|| env("HOME").map(|h| h.join(".local/state/rtc-edge")))
        .unwrap_or_else(|| PathBuf::from("/var/lib/rtc-edge"))
}

/// The running slot, from the kernel command line (`appl.slot=`; the appliance only).
fn running_slot() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cmdline").ok()?;
    let (cmdline, _) = edge_init::cmdline::parse(&text);
    cmdline.slot.map(|s| s.to_string())
}

/// Why the web UI cannot start: the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error("web UI: cannot use the state folder {}: {source}", path.display())]
    StateDir { path: PathBuf, source: io::Error },
    #[error("web UI: {0}")]
    Certificate(String),
    #[error("web UI: cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: io::Error },
}

/// Starts the web UI: state folder, certificate (made if HTTPS has none), listener, server threads.
/// Returns the shared state and the receiver of the loop's commands.
pub(crate) fn start(
    web: &WebConfig,
    config_path: Option<&Path>,
    logs: Arc<LogRing>,
) -> Result<(Arc<WebState>, tokio::sync::mpsc::Receiver<WebCommand>, SocketAddr), WebError> {
    let dir = state_dir(web);
    std::fs::create_dir_all(&dir).map_err(|source| WebError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let tls = if web.https {
        let (cert, key) = match (&web.certificate, &web.private_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => {
                let (c, k) = (dir.join("web-cert.pem"), dir.join("web-key.pem"));
                if !c.exists() || !k.exists() {
                    let host = hostname();
                    let (cert_pem, key_pem) = self_signed(&host).map_err(WebError::Certificate)?;
                    write_private(&k, key_pem.as_bytes())
                        .map_err(|e| WebError::Certificate(e.to_string()))?;
                    write_atomic(&c, cert_pem.as_bytes())
                        .map_err(|e| WebError::Certificate(e.to_string()))?;
                    tracing::info!(path = %c.display(), %host, "web UI: made a self-signed certificate");
                }
                (c, k)
            }
        };
        Some(edge_http::server::tls_config(&cert, &key).map_err(WebError::Certificate)?)
    } else {
        None
    };
    let address = SocketAddr::new(web.address, web.port.get());
    let listener =
        std::net::TcpListener::bind(address).map_err(|source| WebError::Bind { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| WebError::Bind { address, source })?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let state = Arc::new(WebState {
        live: Mutex::new(Live::default()),
        commands: tx,
        media: Mutex::new(None),
        logs,
        config_path: config_path.map(Path::to_path_buf),
        save_path: web.save_to.clone().or_else(|| config_path.map(Path::to_path_buf)),
        web: web.clone(),
        state_dir: dir,
        started: clock(),
        cpu: Mutex::new(0.0),
        slot: running_slot(),
    });
    let app = App::new(GatewayBackend {
        state: Arc::clone(&state),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            let e = edge_http::server::serve_listener(&listener, tls.as_ref(), &app, "web");
            tracing::error!(error = %e, "web UI stopped");
        })
        .map_err(|source| WebError::Bind { address, source })?;
    let sampler = Arc::clone(&state);
    std::thread::Builder::new()
        .name("web-sampler".into())
        .spawn(move || sample(&sampler))
        .map_err(|source| WebError::Bind { address, source })?;
    tracing::info!(url = %format!("{scheme}://{local}/"), "web UI listening");
    Ok((state, rx, local))
}

/// Every [`SAMPLE`]: calls up, media packets relayed since the last sample, and CPU use.
fn sample(state: &WebState) {
    let mut last_packets = None;
    let mut last_cpu = cpu_times();
    loop {
        std::thread::sleep(SAMPLE);
        let media = lock(&state.media).clone();
        let packets = media.as_ref().and_then(|m| {
            let live = m.call_stats()?;
            Some(m.closed_packets() + live.iter().map(|(_, s)| s.to_trunk + s.to_browser).sum::<u64>())
        });
        let delta = match (packets, last_packets) {
            (Some(now), Some(before)) => now.saturating_sub(before),
            (Some(now), None) => now,
            _ => 0,
        };
        last_packets = packets.or(last_packets);
        let cpu = cpu_times();
        if let (Some((busy0, total0)), Some((busy1, total1))) = (last_cpu, cpu) {
            let total = total1.saturating_sub(total0);
            if total > 0 {
                #[allow(clippy::cast_precision_loss, reason = "a percentage")]
                let pct = busy1.saturating_sub(busy0) as f64 * 100.0 / total as f64;
                *lock(&state.cpu) = pct;
            }
        }
        last_cpu = cpu;
        let mut live = lock(&state.live);
        let calls = u64::try_from(live.calls.len()).unwrap_or(u64::MAX);
        live.history.push_back(api::Sample {
            time: unix_s(),
            calls,
            packets: delta,
        });
        while live.history.len() > HISTORY {
            live.history.pop_front();
        }
    }
}

/// (busy, total) jiffies of all CPUs from `/proc/stat`.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        // The kernel says "(none)" until something sets a name (the appliance's PID 1 does not).
        .filter(|h| !h.is_empty() && h != "(none)")
        .unwrap_or_else(|| "rtc-edge".into())
}

/// A self-signed certificate for `host` (and `localhost`), PEM: (certificate, key). Subject
/// `CN=<host>`, valid from the first of this year for ten years.
fn self_signed(host: &str) -> Result<(String, String), String> {
    let err = |e: rcgen::Error| format!("cannot make a certificate: {e}");
    let mut names = vec![host.to_owned()];
    if host != "localhost" {
        names.push("localhost".to_owned());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, host);
    let year = i32::try_from(1970 + unix_s() / 31_556_952).unwrap_or(2026);
    params.not_before = rcgen::date_time_ymd(year, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file so that a power cut leaves the old or the new one: a temporary file beside it,
/// synced, renamed over.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// The same, readable by its owner only (keys, the password hash).
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp-web");
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

// ---------------------------------------------------------------------------------------------
// The backend

/// What the UI sees and does, over the shared state.
#[derive(Debug)]
pub(crate) struct GatewayBackend {
    state: Arc<WebState>,
}

impl GatewayBackend {
    /// Asks the SIP loop and waits for its answer.
    fn ask<T>(&self, make: impl FnOnce(SyncSender<T>) -> WebCommand) -> Result<T, Failure> {
        let (tx, rx) = sync_channel(1);
        self.state
            .commands
            .try_send(make(tx))
            .map_err(|_| (503, "the gateway is busy; try again".to_owned()))?;
        rx.recv_timeout(LOOP_DEADLINE + TEST_DEADLINE)
            .map_err(|_| (503, "the gateway did not answer in time".to_owned()))
    }

    /// The configuration the UI edits: the saved copy once there is one, else the running file.
    fn edited_path(&self) -> Option<&Path> {
        self.state
            .save_path
            .as_deref()
            .filter(|p| p.exists())
            .or(self.state.config_path.as_deref())
    }

    fn config_text(&self) -> Result<(String, Option<&Path>), Failure> {
        match self.edited_path() {
            None => Ok((DEFAULT_TOML.to_owned(), None)),
            Some(p) => std::fs::read_to_string(p)
                .map(|t| (t, Some(p)))
                .map_err(|e| (500, format!("{}: {e}", p.display()))),
        }
    }

    /// The certificate and key files WSS uses (`[sip.tls]`), if configured.
    fn wss_files(&self) -> Option<(PathBuf, PathBuf, Vec<String>)> {
        let path = self.edited_path()?;
        let config = Config::load(path).ok()?;
        let tls = config.sip.tls.as_ref()?;
        let listeners = config
            .sip
            .listen
            .iter()
            .filter(|l| l.transport == edge_config::Transport::Wss)
            .map(|l| format!("{}:{}", l.address, l.port.get()))
            .collect();
        Some((tls.certificate.clone(), tls.private_key.clone(), listeners))
    }

    /// Saves `text` as the configuration (already validated) and has the loop apply it.
    fn save_and_apply(&self, text: &str) -> Result<api::Applied, Rejected> {
        let Some(path) = &self.state.save_path else {
            return Err(Rejected::whole(
                "gatewayd runs the embedded default configuration: start it with --config FILE to change it here",
            ));
        };
        // A file written for an older schema is kept for the release that reads it (rollback).
        if let Ok(old) = std::fs::read_to_string(path) {
            let schema = edge_config::schema_of(&old);
            if schema < edge_config::SCHEMA {
                let copy = edge_config::copy_for_schema(path, schema);
                if !copy.exists() {
                    write_atomic(&copy, old.as_bytes())
                        .map_err(|e| Rejected::whole(format!("cannot keep {}: {e}", copy.display())))?;
                }
            }
        }
        write_atomic(path, text.as_bytes())
            .map_err(|e| Rejected::whole(format!("cannot save {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), "configuration saved from the web UI");
        self.state
            .event("info", "configuration saved from the web UI".into());
        match self.ask(|reply| WebCommand::Reload(path.clone(), reply)) {
            Ok(Ok(restart)) => {
                let restart: Vec<String> = restart.iter().map(|s| (*s).to_owned()).collect();
                let message = if restart.is_empty() {
                    "saved and applied; calls kept".to_owned()
                } else {
                    format!(
                        "saved; routing applied, calls kept; {} apply at the next restart",
                        restart.join(", ")
                    )
                };
                Ok(api::Applied {
                    applied: vec!["routing and policy".into()],
                    restart_required: restart,
                    message,
                })
            }
            Ok(Err(why)) => Ok(api::Applied {
                applied: Vec::new(),
                restart_required: vec!["everything".into()],
                message: format!("saved; not applied yet ({why}): it applies at the next restart"),
            }),
            Err((_, why)) => Ok(api::Applied {
                applied: Vec::new(),
                restart_required: vec!["everything".into()],
                message: format!("saved; {why}: it applies at the next restart"),
            }),
        }
    }

    /// Validates a configuration text as gatewayd would read it, then saves and applies it.
    fn validate_and_apply(&self, text: &str) -> Result<api::Applied, Rejected> {
        let parsed = match &self.state.save_path {
            Some(path) => Config::parse_for(text, path),
            None => Config::parse(text, "gatewayd.toml"),
        };
        let config = parsed.map_err(|e| match e.key() {
            Some(key) => Rejected {
                error: e.to_string(),
                fields: [(key.to_owned(), e.to_string())].into(),
            },
            None => Rejected::whole(e.to_string()),
        })?;
        crate::tls::load(&config).map_err(|e| Rejected::field("sip.tls", e.to_string()))?;
        crate::tls::trunks(&config).map_err(|e| Rejected::whole(e.to_string()))?;
        self.save_and_apply(text)
    }

    /// Installs a WSS certificate: writes the files, points `[sip.tls]` at them (keeping other keys),
    /// and saves the configuration.
    fn install_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<api::CertificateView, Rejected> {
        let Some(path) = self.edited_path().map(Path::to_path_buf) else {
            return Err(Rejected::whole(
                "gatewayd runs the embedded default configuration: start it with --config FILE to install a certificate",
            ));
        };
        let (cert, key) = match self.wss_files() {
            Some((c, k, _)) => (c, k),
            None => (
                self.state.state_dir.join("wss-cert.pem"),
                self.state.state_dir.join("wss-key.pem"),
            ),
        };
        write_private(&key, key_pem.as_bytes())
            .map_err(|e| Rejected::field("key_pem", format!("cannot save {}: {e}", key.display())))?;
        write_atomic(&cert, cert_pem.as_bytes())
            .map_err(|e| Rejected::field("cert_pem", format!("cannot save {}: {e}", cert.display())))?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Rejected::whole(format!("{}: {e}", path.display())))?;
        let mut json = edge_config::json::to_json(&text).map_err(Rejected::whole)?;
        if let Some(sip) = json.get_mut("sip").and_then(|s| s.as_object_mut()) {
            let tls = sip
                .entry("tls")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let Some(t) = tls.as_object_mut() {
                t.insert("certificate".into(), cert.display().to_string().into());
                t.insert("private_key".into(), key.display().to_string().into());
            }
        }
        let new = edge_config::json::to_toml(&json).map_err(|(k, m)| Rejected::field(&k, m))?;
        if new != text {
            self.validate_and_apply(&new)?;
        }
        Ok(self.certificate())
    }
}

impl Backend for GatewayBackend {
    fn load_password_hash(&self) -> Option<String> {
        std::fs::read_to_string(self.state.state_dir.join("admin.argon2"))
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    }

    fn save_password_hash(&self, hash: &str) -> Result<(), String> {
        let path = self.state.state_dir.join("admin.argon2");
        write_private(&path, format!("{hash}\n").as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn status(&self) -> api::Status {
        let (total, available) = meminfo();
        let live = lock(&self.state.live);
        api::Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            slot: self.state.slot.clone(),
            hostname: hostname(),
            uptime_s: clock().saturating_duration_since(self.state.started).as_secs(),
            cpu_percent: (*lock(&self.state.cpu) * 10.0).round() / 10.0,
            memory: api::Memory {
                total_bytes: total,
                available_bytes: available,
                process_bytes: process_rss(),
            },
            ready: live.ready,
            calls: api::CallCounts {
                active: u64::try_from(live.calls.len()).unwrap_or(u64::MAX),
                total: live.calls_total,
            },
            registrations: live.registrations.clone(),
            trunks: live.trunks.clone(),
            events: live.events.iter().cloned().collect(),
        }
    }

    fn calls(&self) -> api::Calls {
        let media = lock(&self.state.media).clone();
        let stats: HashMap<u64, edge_media::session::MediaStats> = media
            .as_ref()
            .and_then(MediaShell::call_stats)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let now = unix_s();
        let live = lock(&self.state.live);
        let calls = live
            .calls
            .iter()
            .map(|c| {
                let s = stats.get(&c.key);
                let codec = media.as_ref().and_then(|m| m.codec_of(c.key)).map(str::to_owned);
                let leg = |browser: bool| {
                    let (received, lost, sent) = match (s, browser) {
                        (Some(s), true) => (s.from_browser, s.lost_from_browser, s.to_browser),
                        (Some(s), false) => (s.from_trunk, s.lost_from_trunk, s.to_trunk),
                        (None, _) => (0, 0, 0),
                    };
                    api::LegView {
                        side: if browser { "browser" } else { "trunk" }.into(),
                        codec: codec.clone(),
                        packets_in: received,
                        packets_out: sent,
                        lost,
                        loss_percent: loss_percent(received, lost),
                    }
                };
                // Media is anchored only between a browser and a SIP peer; other calls pass through.
                let anchored = c.a_browser != c.b_browser;
                let legs = if anchored && (s.is_some() || codec.is_some()) {
                    vec![leg(true), leg(false)]
                } else {
                    Vec::new()
                };
                api::CallView {
                    id: format!("{:x}", c.key),
                    from: c.from.clone(),
                    to: c.to.clone(),
                    state: if c.answered { "answered" } else { "ringing" }.into(),
                    started: c.started_unix,
                    duration_s: now.saturating_sub(c.started_unix),
                    trunk: c.trunk.clone(),
                    legs,
                }
            })
            .collect();
        api::Calls { calls }
    }

    fn history(&self) -> api::History {
        api::History {
            interval_s: SAMPLE.as_secs(),
            samples: lock(&self.state.live).history.iter().copied().collect(),
        }
    }

    fn config(&self) -> Result<api::ConfigView, Failure> {
        let (text, path) = self.config_text()?;
        let config = edge_config::json::to_json(&text).map_err(|e| (500, e))?;
        Ok(api::ConfigView {
            schema: edge_config::schema_of(&text),
            path: path.map(|p| p.display().to_string()),
            config,
        })
    }

    fn apply_config(&self, toml: &str) -> Result<api::Applied, Rejected> {
        self.validate_and_apply(toml)
    }

    fn apply_config_json(&self, json: &serde_json::Value) -> Result<api::Applied, Rejected> {
        let text = edge_config::json::to_toml(json).map_err(|(k, m)| Rejected::field(&k, m))?;
        self.validate_and_apply(&text)
    }

    fn export_config(&self) -> Result<String, Failure> {
        self.config_text().map(|(t, _)| t)
    }

    fn network(&self) -> Result<api::Network, Failure> {
        let Some(file) = &self.state.web.network_file else {
            return Err((
                409,
                "this host's network is not managed by the gateway ([web] network_file)".into(),
            ));
        };
        let base = slot_network();
        let n = match std::fs::read_to_string(file) {
            Ok(text) => base
                .with_override(&text, &file.display().to_string())
                .map_err(|e| (500, e.to_string()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => base,
            Err(e) => return Err((500, format!("{}: {e}", file.display()))),
        };
        Ok(network_view(&n))
    }

    fn set_network(&self, n: &api::NetworkSettings) -> Result<api::Network, Rejected> {
        let Some(file) = &self.state.web.network_file else {
            return Err(Rejected::whole(
                "this host's network is not managed by the gateway ([web] network_file)",
            ));
        };
        // Read through PID 1's own parser: what it refuses is refused here, with its key.
        let parsed = edge_init::config::NetworkConfig::from_fields(
            &slot_network(),
            &n.mode,
            &n.address,
            &n.gateway,
            &n.dns,
            &n.ntp,
        )
        .map_err(|e| match e.key() {
            Some(k) => Rejected::field(k, e.to_string()),
            None => Rejected::whole(e.to_string()),
        })?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Rejected::whole(format!("{}: {e}", dir.display())))?;
        }
        write_atomic(file, parsed.to_network_toml().as_bytes())
            .map_err(|e| Rejected::whole(format!("cannot save {}: {e}", file.display())))?;
        self.state.event(
            "info",
            "network and time settings saved (applied at the next boot)".into(),
        );
        Ok(network_view(&parsed))
    }

    fn certificate(&self) -> api::CertificateView {
        let Some((cert, _, listeners)) = self.wss_files() else {
            return api::CertificateView::default();
        };
        let mut view = std::fs::read(&cert)
            .ok()
            .and_then(|pem| describe_certificate(&pem))
            .unwrap_or_default();
        view.wss_listeners = listeners;
        view
    }

    fn generate_certificate(&self, hostname: &str) -> Result<api::CertificateView, Rejected> {
        let valid = !hostname.is_empty()
            && hostname.len() <= 253
            && hostname.split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(Rejected::field("hostname", "a DNS name like edge.example.com"));
        }
        let (cert, key) = self_signed(hostname).map_err(Rejected::whole)?;
        self.install_certificate(&cert, &key)
    }

    fn set_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<api::CertificateView, Rejected> {
        edge_http::server::tls_config_pem(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| match e {
            edge_http::server::PemError::Cert(m) => Rejected::field("cert_pem", m),
            edge_http::server::PemError::Key(m) => Rejected::field("key_pem", m),
            edge_http::server::PemError::Pair(m) => Rejected::field("key_pem", m),
        })?;
        self.install_certificate(cert_pem, key_pem)
    }

    fn test_call(&self, trunk: Option<&str>) -> Result<api::TestCall, Failure> {
        let trunk = trunk.map(str::to_owned);
        self.ask(|reply| WebCommand::TestOptions { trunk, reply })?
    }

    fn update(&self) -> api::UpdateView {
        let mut view = api::UpdateView {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            slot: self.state.slot.clone(),
            other_slot: self
                .state
                .slot
                .as_deref()
                .map(|s| if s == "A" { "B" } else { "A" }.to_owned()),
            uploads: self.state.web.update.is_some(),
            ..api::UpdateView::default()
        };
        let Some(u) = &self.state.web.update else {
            return view;
        };
        view.server = agent_server(u);
        // The agent's progress line: {"step":"downloading","version":"…","done":N,"total":N}.
        if let Some(p) = u.progress.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            view.progress = serde_json::from_str::<serde_json::Value>(&p).ok().map(|v| {
                let (done, total) = (v["done"].as_u64().unwrap_or(0), v["total"].as_u64().unwrap_or(0));
                let step = v["step"].as_str().unwrap_or("working").to_owned();
                let version = v["version"].as_str().unwrap_or_default();
                api::Progress {
                    percent: u8::try_from(
                        (done.saturating_mul(100))
                            .checked_div(total)
                            .unwrap_or(0)
                            .min(100),
                    )
                    .unwrap_or(100),
                    message: format!("{step} {version}: {done} of {total} bytes"),
                    state: step,
                }
            });
            view.agent = view.progress.as_ref().map(|p| p.state.clone());
        }
        view
    }

    fn check_update(&self) -> Result<String, Failure> {
        let Some(u) = &self.state.web.update else {
            return Err((409, "this gateway has no update agent".into()));
        };
        let Some(request) = &u.check_request else {
            return Err((
                409,
                "this gateway cannot ask its update agent to check in ([web.update] check_request)".into(),
            ));
        };
        if agent_server(u).is_none() {
            return Err((
                409,
                "no update server is configured: install updates by uploading a bundle".into(),
            ));
        }
        write_atomic(request, b"check\n").map_err(|e| (500, format!("{}: {e}", request.display())))?;
        Ok(
            "asked the update agent to check in now (within 5 s); an offered update shows its progress here"
                .into(),
        )
    }

    fn upload_update(&self, body: &mut dyn Read, len: u64) -> Result<api::Uploaded, Failure> {
        let Some(u) = &self.state.web.update else {
            return Err((
                409,
                "this gateway has no update agent: update it with its package manager".into(),
            ));
        };
        receive_bundle(u, body, len)
    }

    fn rollback(&self) -> Result<String, Failure> {
        let (Some(u), Some(running)) = (&self.state.web.update, self.state.slot.as_deref()) else {
            return Err((
                409,
                "this gateway is not an A/B appliance: there is no other slot to boot".into(),
            ));
        };
        let Some(request) = &u.rollback_request else {
            return Err((
                409,
                "this gateway cannot ask its update agent to roll back ([web.update] rollback_request)"
                    .into(),
            ));
        };
        let other = if running == "A" { "B" } else { "A" };
        write_atomic(request, b"rollback\n").map_err(|e| (500, format!("{}: {e}", request.display())))?;
        self.state.event(
            "warn",
            format!("rollback to slot {other} asked for from the web UI"),
        );
        Ok(format!(
            "asked the update agent to boot slot {other} (the version before the last update) once no call is up; \
             if it fails its health check the device comes back to slot {running} by itself"
        ))
    }

    fn logs(&self, limit: usize) -> api::Logs {
        api::Logs {
            lines: self.state.logs.last(limit),
        }
    }

    fn cdrs(&self) -> api::Cdrs {
        api::Cdrs {
            records: lock(&self.state.live).cdrs.iter().cloned().collect(),
        }
    }

    fn metrics(&self) -> String {
        let media = lock(&self.state.media).clone();
        let live_media = media
            .as_ref()
            .and_then(MediaShell::call_stats)
            .unwrap_or_default();
        let live = lock(&self.state.live);
        let mut m = edge_web::metrics::Metrics::default();
        m.gauge(
            "rtcedge_up",
            "1 while the gateway's listeners are bound and its loop turns",
            u64::from(live.ready),
        );
        m.gauge(
            "rtcedge_calls_active",
            "Calls up or being set up",
            u64::try_from(live.calls.len()).unwrap_or(0),
        );
        m.counter("rtcedge_calls_total", "Calls since start", live.calls_total);
        m.gauge(
            "rtcedge_registrations",
            "Browsers registered through the gateway",
            live.registrations.count,
        );
        m.counter(
            "rtcedge_registrations_offloaded_total",
            "REGISTER refreshes answered locally",
            live.offloaded,
        );
        let s = &live.sip;
        m.counter("rtcedge_sip_requests_total", "SIP requests read", s.requests);
        m.counter(
            "rtcedge_sip_malformed_total",
            "Malformed SIP answered with an error or dropped",
            s.malformed_answered + s.malformed_dropped,
        );
        m.counter(
            "rtcedge_sip_rate_limited_total",
            "INVITE/REGISTER refused by the per-source rate limit",
            s.rate_limited,
        );
        m.counter(
            "rtcedge_sip_timeouts_total",
            "SIP transactions that timed out",
            s.timeouts,
        );
        let (mut to_trunk, mut to_browser, mut lost_b, mut lost_t) = (0, 0, 0, 0);
        for (_, st) in &live_media {
            to_trunk += st.to_trunk;
            to_browser += st.to_browser;
            lost_b += st.lost_from_browser;
            lost_t += st.lost_from_trunk;
        }
        m.gauge(
            "rtcedge_media_sessions",
            "Media sessions running",
            u64::try_from(live_media.len()).unwrap_or(0),
        );
        m.counter(
            "rtcedge_media_packets_total",
            "Media packets relayed since start",
            media.as_ref().map_or(0, MediaShell::closed_packets) + to_trunk + to_browser,
        );
        m.labelled(
            "rtcedge_media_packets_lost",
            "Packets the running calls' senders sent that never arrived, by the side that sent them",
            "gauge",
            &[(&[("from", "browser")], lost_b), (&[("from", "trunk")], lost_t)],
        );
        m.gauge(
            "rtcedge_transcoding_sessions",
            "Calls transcoded (none: legs share a codec)",
            0,
        );
        if let Some(r) = &live.routing {
            for (name, help, kind, value) in [
                (
                    "rtcedge_trunk_up",
                    "1 if calls may go to the trunk",
                    "gauge",
                    (|t: &edge_routing::TrunkStats| u64::from(t.up)) as fn(&edge_routing::TrunkStats) -> u64,
                ),
                ("rtcedge_trunk_calls", "Calls on the trunk now", "gauge", |t| {
                    u64::from(t.calls)
                }),
                (
                    "rtcedge_trunk_calls_total",
                    "Calls sent to the trunk",
                    "counter",
                    |t| t.calls_total,
                ),
                (
                    "rtcedge_trunk_failovers_total",
                    "Calls that failed on the trunk and moved on",
                    "counter",
                    |t| t.failovers,
                ),
                (
                    "rtcedge_trunk_cac_rejected_total",
                    "Times a call passed the trunk over because it was full",
                    "counter",
                    |t| t.rejected_cac,
                ),
            ] {
                let rows: Vec<(Vec<(&str, &str)>, u64)> = r
                    .trunks
                    .iter()
                    .map(|t| (vec![("trunk", t.name.as_str())], value(t)))
                    .collect();
                let rows: Vec<(&[(&str, &str)], u64)> =
                    rows.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
                m.labelled(name, help, kind, &rows);
            }
            m.counter(
                "rtcedge_calls_filtered_total",
                "Calls refused by [filter]",
                r.filtered,
            );
            m.counter(
                "rtcedge_calls_admission_rejected_total",
                "Calls refused by per-source admission control",
                r.rejected_source,
            );
        }
        m.finish()
    }

    fn metrics_token(&self) -> Option<String> {
        self.state
            .web
            .metrics_token
            .as_ref()
            .map(|t| t.as_str().to_owned())
    }
}

/// The update server the agent checks in with (its settings file, read by its own parser).
fn agent_server(u: &edge_config::web::WebUpdate) -> Option<String> {
    let path = u.agent_config.iter().find(|p| p.exists())?;
    let text = std::fs::read_to_string(path).ok()?;
    let config = edge_agent::config::Config::parse(&text, &path.display().to_string()).ok()?;
    Some(config.server).filter(|s| !s.is_empty())
}

fn loss_percent(received: u64, lost: u64) -> f64 {
    let expected = received + lost;
    if expected == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss, reason = "a percentage")]
    let pct = lost as f64 * 100.0 / expected as f64;
    (pct * 100.0).round() / 100.0
}

/// (total, available) bytes from `/proc/meminfo`.
fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// This process's resident set, bytes.
fn process_rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The slot's network settings (PID 1's `init.toml`), the base `network.toml` overrides.
fn slot_network() -> edge_init::config::NetworkConfig {
    std::fs::read_to_string(edge_init::config::INIT_TOML)
        .ok()
        .and_then(|t| edge_init::config::InitConfig::parse(&t, edge_init::config::INIT_TOML).ok())
        .map(|c| c.network)
        .unwrap_or_default()
}

fn network_view(n: &edge_init::config::NetworkConfig) -> api::Network {
    api::Network {
        settings: api::NetworkSettings {
            mode: match n.mode {
                edge_init::config::NetMode::Static => "static",
                edge_init::config::NetMode::Dhcp => "dhcp",
            }
            .into(),
            address: n.address.map(|a| a.to_string()).unwrap_or_default(),
            gateway: n.gateway.map(|g| g.to_string()).unwrap_or_default(),
            dns: n.dns.iter().map(ToString::to_string).collect(),
            ntp: n.ntp.to_string(),
        },
        applies: "at the next boot".into(),
    }
}

/// Subject, expiry, issuer and fingerprint of the first certificate in `pem`.
fn describe_certificate(pem: &[u8]) -> Option<api::CertificateView> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let sha256 = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let not_after = cert.validity().not_after.to_datetime();
    Some(api::CertificateView {
        present: true,
        subject: Some(cert.subject().to_string()),
        not_after: Some(format!(
            "{:04}-{:02}-{:02}",
            not_after.year(),
            u8::from(not_after.month()),
            not_after.day()
        )),
        self_signed: cert.subject() == cert.issuer(),
        sha256: Some(sha256),
        wss_listeners: Vec::new(),
    })
}

/// Receives an uploaded bundle: its header is read and checked (magic, signature by a trusted key,
/// board) before anything is written; the payload is then streamed into a hidden file in the
/// agent's `incoming` folder while hashed, and renamed in only if it matches the signed size and
/// SHA-256. A bad bundle leaves nothing behind.
fn receive_bundle(
    u: &edge_config::web::WebUpdate,
    body: &mut dyn Read,
    len: u64,
) -> Result<api::Uploaded, Failure> {
    use edge_ota::bundle::{HeaderError, MAX_HEADER};
    let bad = |m: String| (422, format!("not a valid update bundle for this device: {m}"));
    let mut head = Vec::new();
    let header = loop {
        match edge_ota::bundle::Header::parse(&head) {
            Ok(h) => break h,
            Err(HeaderError::Incomplete { need }) if need <= MAX_HEADER && head.len() < need => {
                let want = u64::try_from(need - head.len()).unwrap_or(u64::MAX);
                let before = head.len();
                body.take(want)
                    .read_to_end(&mut head)
                    .map_err(|e| (400, format!("reading the upload failed: {e}")))?;
                if head.len() == before {
                    return Err(bad("the file ends inside the bundle header".into()));
                }
            }
            Err(e) => return Err(bad(e.to_string())),
        }
    };
    let keyring = edge_ota::Keyring::from_dir(&u.keys).map_err(|e| (500, e))?;
    header
        .verify(&keyring)
        .map_err(|e| bad(format!("signature: {e}")))?;
    let manifest = &header.manifest;
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_owned())
            .map_err(|e| (500, format!("{}: {e}", p.display())))
    };
    let board = read(&u.board_file)?;
    let running = read(&u.version_file)?;
    let running = edge_ota::Version::parse(&running).map_err(|e| {
        (
            500,
            format!("{}: {running:?} is not semver: {e}", u.version_file.display()),
        )
    })?;
    let device = edge_ota::Device {
        board: &board,
        version: &running,
        now: Some(unix_s()),
        blocked: &[],
    };
    device.accepts(manifest).map_err(|e| bad(e.to_string()))?;
    if header.bundle_len() != len {
        return Err(bad(format!(
            "the upload has {len} bytes, the bundle says {}",
            header.bundle_len()
        )));
    }
    std::fs::create_dir_all(&u.incoming).map_err(|e| (500, format!("{}: {e}", u.incoming.display())))?;
    let name = format!("upload-{}", manifest.version);
    let part = u.incoming.join(format!(".{name}.part"));
    let result = (|| -> Result<(), Failure> {
        let mut out = std::fs::File::create(&part).map_err(|e| (500, format!("{}: {e}", part.display())))?;
        out.write_all(&head).map_err(|e| (500, e.to_string()))?;
        let mut check = edge_ota::PayloadCheck::new(manifest);
        let offset = usize::try_from(header.payload_offset).unwrap_or(usize::MAX);
        check
            .update(head.get(offset..).unwrap_or_default())
            .map_err(|e| bad(e.to_string()))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((400, format!("reading the upload failed: {e}"))),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            check.update(chunk).map_err(|e| bad(e.to_string()))?;
            out.write_all(chunk).map_err(|e| (500, e.to_string()))?;
        }
        check.finish().map_err(|e| bad(e.to_string()))?;
        out.sync_all().map_err(|e| (500, e.to_string()))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    let done = u.incoming.join(format!("{name}.bundle"));
    std::fs::rename(&part, &done).map_err(|e| (500, format!("{}: {e}", done.display())))?;
    tracing::info!(version = %manifest.version, "update bundle uploaded and verified; the agent installs it");
    Ok(api::Uploaded {
        version: manifest.version.to_string(),
        board,
        message: "verified; the update agent installs it and the device restarts into it when no call is up"
            .into(),
    })
}
