//! The check-in protocol between the device agent (`edge-agent`) and the update server
//! (`edge-update-server`): one definition for both sides (`ota/server/README.md` describes the API).
//! Devices' requests ignore fields a side does not know, so either can grow first.

use serde::{Deserialize, Serialize};

/// `POST /v1/checkin`: what a device reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinRequest {
    /// The device's id (unique in the fleet).
    pub device: String,
    /// Its board (`qemu-x86_64`).
    pub board: String,
    /// The channel it follows (`stable`).
    pub channel: String,
    /// The version it runs (semver; build metadata allowed and ignored for ordering).
    pub version: String,
    /// The slot it booted from (`A`/`B`), shown only.
    #[serde(default)]
    pub slot: String,
    /// What it is doing (`idle`, `downloading`, `installing`, `testing`), shown only.
    #[serde(default)]
    pub state: String,
    /// A download or install in progress.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// Outcomes of past installs, delivered at least once (deduplicated by `id`).
    #[serde(default)]
    pub results: Vec<InstallResult>,
}

/// A download or install in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The version being fetched or installed.
    pub version: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// What became of one install attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallResult {
    /// Unique per device; the same result sent twice has the same id.
    pub id: String,
    /// The version the attempt was for.
    pub version: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, in words (empty for `installed`).
    #[serde(default)]
    pub reason: String,
    /// The tail of the install log.
    #[serde(default)]
    pub log: String,
    /// When it ended (device clock, Unix seconds; 0 if unknown).
    #[serde(default)]
    pub at: u64,
}

/// How an install attempt ended. `installed` is a success of that release; the others are failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Committed: the new version runs and is healthy.
    Installed,
    /// It booted but failed its health check, and the device went back to the old slot.
    RolledBack,
    /// The device refused the bundle (signature, board, version, expiry).
    Rejected,
    /// Download or write failed.
    Failed,
}

impl Outcome {
    /// Whether this counts against the release.
    pub fn is_failure(self) -> bool {
        self != Self::Installed
    }
}

/// The reply to a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinResponse {
    /// When to check in next, in seconds.
    pub next_checkin_s: u64,
    /// The update to install, or `null`.
    pub update: Option<Offer>,
}

/// An update offered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The release's version (as in its manifest).
    pub version: String,
    /// Where to download the bundle (a path on this server: `/v1/bundles/<board>/<channel>/<file>`).
    pub url: String,
    /// The bundle's length in bytes.
    pub size: u64,
}
