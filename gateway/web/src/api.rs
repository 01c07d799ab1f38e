//! The JSON the REST API speaks (`openapi.json` describes the same shapes) and [`Backend`], what the
//! daemon provides behind it.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// `GET /api/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    /// No admin password yet: the UI must set one first.
    pub setup_required: bool,
}

/// `POST /api/setup` and `POST /api/login`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The password.
    pub password: String,
}

/// `POST /api/password`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub current: String,
    /// The new one.
    pub new: String,
}

/// A session's CSRF token (answer to setup, login and `GET /api/session`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionView {
    /// Send it as `X-CSRF-Token` with every state change.
    pub csrf: String,
    /// Seconds of inactivity that end the session.
    pub idle_timeout_s: u64,
}

/// A refusal with the field at fault: `{"error": ..., "fields": {"sip.listen[0].port": ...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// What is wrong, in one sentence.
    pub error: String,
    /// Messages by key path.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

impl Rejected {
    /// A refusal of one field.
    pub fn field(key: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error: format!("{key}: {message}"),
            fields: [(key.to_owned(), message)].into(),
        }
    }

    /// A refusal of the whole request.
    pub fn whole(message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
            fields: Default::default(),
        }
    }
}

/// Memory figures in bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// The machine's memory.
    pub total_bytes: u64,
    /// What the kernel says is available.
    pub available_bytes: u64,
    /// This process's resident set.
    pub process_bytes: u64,
}

/// Call counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallCounts {
    /// Calls up or being set up now.
    pub active: u64,
    /// Calls since start.
    pub total: u64,
}

/// One registered browser user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The user part of its address of record.
    pub user: String,
    /// `ws`/`wss`/…
    pub transport: String,
    /// Seconds until the registration lapses.
    pub expires_in_s: u64,
}

/// Registrations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registrations {
    /// How many bindings.
    pub count: u64,
    /// The first ones (at most 100).
    pub users: Vec<Registration>,
}

/// One trunk as monitoring sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrunkView {
    /// Its name.
    pub name: String,
    /// Where it is (`udp:10.0.0.5:5060`), or what it is called until it resolves.
    pub target: String,
    /// Whether calls may go to it.
    pub up: bool,
    /// Whether OPTIONS monitoring watches it.
    pub monitored: bool,
    /// Calls on it now.
    pub calls: u64,
}

/// A recent event or alarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub time: u64,
    /// `info`, `warn` or `alarm`.
    pub level: String,
    /// What happened.
    pub message: String,
}

/// `GET /api/status`: the dashboard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// gatewayd's version.
    pub version: String,
    /// The slot running (`A`/`B`) on the appliance, `null` on an ordinary host.
    pub slot: Option<String>,
    /// The host name.
    pub hostname: String,
    /// Seconds since gatewayd started.
    pub uptime_s: u64,
    /// CPU use of the machine over the last sample, percent.
    pub cpu_percent: f64,
    /// Memory.
    pub memory: Memory,
    /// Every listener is bound and the run loop turns.
    pub ready: bool,
    /// Calls.
    pub calls: CallCounts,
    /// Registered browsers.
    pub registrations: Registrations,
    /// Trunks.
    pub trunks: Vec<TrunkView>,
    /// Recent events, newest first.
    pub events: Vec<Event>,
}

/// One leg of a call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegView {
    /// `browser` or `trunk`.
    pub side: String,
    /// The codec bridged, once the media is up.
    pub codec: Option<String>,
    /// Media packets received from this leg.
    pub packets_in: u64,
    /// Media packets sent to it.
    pub packets_out: u64,
    /// Packets this leg's sender sent that never arrived (from sequence numbers).
    pub lost: u64,
    /// `lost` as a share of what was expected, percent.
    pub loss_percent: f64,
}

/// One call in `GET /api/calls`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallView {
    /// Its id.
    pub id: String,
    /// The caller (user part).
    pub from: String,
    /// The callee (user part).
    pub to: String,
    /// `ringing` or `answered`.
    pub state: String,
    /// Unix seconds.
    pub started: u64,
    /// Seconds since it started.
    pub duration_s: u64,
    /// The trunk it went to.
    pub trunk: Option<String>,
    /// Its legs.
    pub legs: Vec<LegView>,
}

/// `GET /api/calls`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calls {
    /// Calls up now.
    pub calls: Vec<CallView>,
}

/// One sample of the dashboard graph.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub time: u64,
    /// Calls up.
    pub calls: u64,
    /// Media packets relayed during the interval.
    pub packets: u64,
}

/// `GET /api/history`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Seconds per sample.
    pub interval_s: u64,
    /// Oldest first, at most an hour.
    pub samples: Vec<Sample>,
}

/// `GET /api/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigView {
    /// The schema of the file.
    pub schema: u32,
    /// The file gatewayd runs from (`null`: the embedded default; a save writes the state folder's).
    pub path: Option<String>,
    /// The file as JSON.
    pub config: serde_json::Value,
}

/// `PUT /api/config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    /// The whole configuration as JSON (the shape of `GET /api/config`'s `config`).
    pub config: serde_json::Value,
}

/// A configuration accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// What took effect now, calls kept.
    pub applied: Vec<String>,
    /// What takes effect at the next restart.
    pub restart_required: Vec<String>,
    /// One sentence for the operator.
    pub message: String,
}

/// `PUT /api/network`: the appliance's network and time (PID 1 applies them at boot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// `dhcp` or `static`.
    pub mode: String,
    /// `a.b.c.d/prefix` (static).
    #[serde(default)]
    pub address: String,
    /// The default route's next hop (static), `""` for none.
    #[serde(default)]
    pub gateway: String,
    /// Name servers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// SNTP server (`host` or `host:port`), `""` for none.
    #[serde(default)]
    pub ntp: String,
}

/// `GET /api/network`: the settings and when they take effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    /// The settings.
    #[serde(flatten)]
    pub settings: NetworkSettings,
    /// When a change takes effect.
    pub applies: String,
}

/// `GET /api/certificate`: the certificate browsers see on WSS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertificateView {
    /// Whether one is configured and readable.
    pub present: bool,
    /// Its subject.
    pub subject: Option<String>,
    /// Its last valid day (`YYYY-MM-DD`).
    pub not_after: Option<String>,
    /// Issued by itself.
    pub self_signed: bool,
    /// SHA-256 of the DER, colon-separated hex (what a browser shows).
    pub sha256: Option<String>,
    /// The WSS listeners that serve it.
    pub wss_listeners: Vec<String>,
}

/// `POST /api/certificate/generate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// The name browsers use to reach the gateway.
    pub hostname: String,
}

/// `PUT /api/certificate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateBody {
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// `POST /api/test-call`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCallBody {
    /// The trunk (default: the first).
    #[serde(default)]
    pub trunk: Option<String>,
}

/// What a test OPTIONS to a trunk brought back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestCall {
    /// The trunk.
    pub trunk: String,
    /// Where it went.
    pub target: String,
    /// `OPTIONS`.
    pub method: String,
    /// The final status, `null` without an answer.
    pub status: Option<u16>,
    /// Its reason phrase.
    pub reason: Option<String>,
    /// Round trip in milliseconds.
    pub rtt_ms: Option<u64>,
    /// Why there is no status.
    pub error: Option<String>,
}

/// Update progress as the agent writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// `downloading`, `writing`, …
    pub state: String,
    /// 0–100.
    pub percent: u8,
    /// The agent's line.
    pub message: String,
}

/// `GET /api/update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateView {
    /// The running version.
    pub version: String,
    /// The running slot (appliance only).
    pub slot: Option<String>,
    /// The other slot.
    pub other_slot: Option<String>,
    /// The agent's state, when there is an agent.
    pub agent: Option<String>,
    /// An install under way.
    pub progress: Option<Progress>,
    /// The update server the agent checks in with.
    pub server: Option<String>,
    /// Whether bundles can be uploaded here.
    pub uploads: bool,
}

/// `POST /api/update/upload` accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uploaded {
    /// The bundle's version.
    pub version: String,
    /// Its board.
    pub board: String,
    /// What happens next.
    pub message: String,
}

/// A plain message (`202` answers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// What happened.
    pub message: String,
}

/// One log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix milliseconds.
    pub time: u64,
    /// `ERROR` … `TRACE`.
    pub level: String,
    /// The line (URIs and numbers redacted as in the log itself).
    pub message: String,
}

/// `GET /api/logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Logs {
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

/// A call detail record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cdr {
    /// The call's id.
    pub id: String,
    /// Unix seconds.
    pub start: u64,
    /// When it was answered.
    pub answer: Option<u64>,
    /// When it ended.
    pub end: u64,
    /// Seconds answered.
    pub duration_s: u64,
    /// The caller.
    pub from: String,
    /// The callee.
    pub to: String,
    /// The trunk.
    pub trunk: Option<String>,
    /// The final status of the call's setup (200 if answered).
    pub status: Option<u16>,
    /// How it ended.
    pub reason: String,
}

/// `GET /api/cdrs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cdrs {
    /// Newest first.
    pub records: Vec<Cdr>,
}

/// An error answer with its status.
pub type Failure = (u16, String);

/// What the daemon provides behind the API. Called on connection threads: implementations share
/// state safely and answer fast (a slow action has a deadline of its own).
pub trait Backend: Send + Sync + 'static {
    /// The admin password's saved hash, if any.
    fn load_password_hash(&self) -> Option<String>;
    /// Saves the admin password's hash (atomically: a power cut leaves the old or the new).
    fn save_password_hash(&self, hash: &str) -> Result<(), String>;
    /// The dashboard.
    fn status(&self) -> Status;
    /// Calls up now.
    fn calls(&self) -> Calls;
    /// The last hour.
    fn history(&self) -> History;
    /// The configuration file.
    fn config(&self) -> Result<ConfigView, Failure>;
    /// Validates, saves and applies a whole configuration given as TOML text.
    fn apply_config(&self, toml: &str) -> Result<Applied, Rejected>;
    /// Validates, saves and applies a configuration given as JSON (the shape of [`ConfigView`]).
    fn apply_config_json(&self, json: &serde_json::Value) -> Result<Applied, Rejected>;
    /// The configuration file's text.
    fn export_config(&self) -> Result<String, Failure>;
    /// Network and time settings.
    fn network(&self) -> Result<Network, Failure>;
    /// Validates and saves network and time settings.
    fn set_network(&self, network: &NetworkSettings) -> Result<Network, Rejected>;
    /// The WSS certificate.
    fn certificate(&self) -> CertificateView;
    /// Makes and installs a self-signed WSS certificate.
    fn generate_certificate(&self, hostname: &str) -> Result<CertificateView, Rejected>;
    /// Checks and installs an uploaded WSS certificate and key.
    fn set_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<CertificateView, Rejected>;
    /// Sends OPTIONS to a trunk and reports the answer.
    fn test_call(&self, trunk: Option<&str>) -> Result<TestCall, Failure>;
    /// Update state.
    fn update(&self) -> UpdateView;
    /// Asks the agent to check in now.
    fn check_update(&self) -> Result<String, Failure>;
    /// Verifies an uploaded bundle (`len` bytes) and hands it to the agent.
    fn upload_update(&self, body: &mut dyn Read, len: u64) -> Result<Uploaded, Failure>;
    /// Boots the other slot.
    fn rollback(&self) -> Result<String, Failure>;
    /// The last `limit` log lines.
    fn logs(&self, limit: usize) -> Logs;
    /// Recent call detail records.
    fn cdrs(&self) -> Cdrs;
    /// Prometheus text exposition.
    fn metrics(&self) -> String;
    /// The token Prometheus may scrape `/metrics` with instead of a session.
    fn metrics_token(&self) -> Option<String>;
}
