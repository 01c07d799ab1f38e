//! The JSON bodies of the HTTP API (the contract with the device agent; `README.md` describes it).
//!
//! Requests from devices ignore fields they do not know (an agent may send more than this server reads);
//! admin requests refuse them (a typo there is an operator mistake worth reporting).

use serde::{Deserialize, Serialize};

pub use edge_ota::wire::{CheckinRequest, CheckinResponse, InstallResult, Offer, Outcome, Progress};

use crate::fleet::Release;

/// The longest device id, board, channel or version accepted in a check-in, in bytes.
pub const MAX_NAME: usize = 128;
/// The longest free-text field kept from a check-in (`slot`, `state`, a result's `reason`), in bytes;
/// longer text is cut, not refused.
pub const MAX_TEXT: usize = 1024;
/// The longest install log kept per result, in bytes (longer logs keep their end: the error is there).
pub const MAX_LOG: usize = 4096;

/// `POST /v1/admin/rollout`: change a release's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// The release's board.
    pub board: String,
    /// The release's channel.
    pub channel: String,
    /// The release's version (build metadata ignored).
    pub version: String,
    /// The new percentage of devices (0–100), if it changes.
    #[serde(default)]
    pub percent: Option<u8>,
    /// Pause or resume, if it changes.
    #[serde(default)]
    pub paused: Option<bool>,
}

/// One device in `GET /v1/fleet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// Its id.
    pub device: String,
    /// Its board.
    pub board: String,
    /// Its channel.
    pub channel: String,
    /// The version it last reported.
    pub version: String,
    /// The slot it last reported.
    pub slot: String,
    /// The state it last reported.
    pub state: String,
    /// Its progress, if it reported one.
    pub progress: Option<Progress>,
    /// When it last checked in (server clock, Unix seconds).
    pub last_seen: u64,
    /// Its last results, oldest first (at most [`crate::fleet::RESULTS_KEPT`]).
    pub results: Vec<InstallResult>,
}

/// `GET /v1/fleet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    /// Every device that ever checked in, by id.
    pub devices: Vec<DeviceView>,
    /// Every release, by board, channel and version.
    pub releases: Vec<Release>,
}

/// The body of every error response (`edge-http`'s, so the two cannot drift).
pub use edge_http::ErrorBody;
