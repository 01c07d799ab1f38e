//! The check-in messages (JSON), as `ota/server/README.md` defines them.

use serde::{Deserialize, Serialize};

/// What a device says at each check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    /// Its id.
    pub device: String,
    /// Its board.
    pub board: String,
    /// Its channel.
    pub channel: String,
    /// The version it runs.
    pub version: String,
    /// The slot it runs from (`A`, `B`).
    pub slot: String,
    /// What it is doing: `idle`, `downloading`, `installing`, `testing`.
    pub state: String,
    /// A long step's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Outcomes not yet delivered (delivered at least once; the server dedupes by id).
    #[serde(default)]
    pub results: Vec<Report>,
}

/// A long step's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The version being installed.
    pub version: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// How one update attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Unique per device.
    pub id: String,
    /// The version it was about.
    pub version: String,
    /// `installed`, `rolled-back`, `rejected` or `failed`.
    pub outcome: String,
    /// Why (empty when installed).
    #[serde(default)]
    pub reason: String,
    /// The failed boot's log, when there is one.
    #[serde(default)]
    pub log: String,
    /// When (Unix seconds, the device's clock).
    pub at: u64,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// When to check in next.
    #[serde(default)]
    pub next_checkin_s: Option<u64>,
    /// An update to install, if any.
    #[serde(default)]
    pub update: Option<Offer>,
}

/// An offered update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its version (the signed manifest inside decides; this is only shown).
    pub version: String,
    /// Where to download the bundle (a path on the server, or an absolute URL on it).
    pub url: String,
    /// The bundle's size in bytes.
    #[serde(default)]
    pub size: u64,
}
