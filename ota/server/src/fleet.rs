//! The fleet: releases and devices, which update a device is offered, and the automatic pause of a bad
//! rollout. Sans-IO: values and the time in, decisions and events out; nothing here touches a disk, a
//! socket or the clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use edge_ota::Version;
use edge_ota::policy::newer;
use serde::{Deserialize, Serialize};

use crate::api::{
    CheckinRequest, CheckinResponse, DeviceView, FleetView, InstallResult, MAX_LOG, MAX_NAME, MAX_TEXT,
    Offer, Progress, RolloutRequest,
};

/// How many results per device the fleet keeps and shows.
pub const RESULTS_KEPT: usize = 20;
/// How many result ids per device are remembered to drop a result delivered again.
pub const IDS_KEPT: usize = 256;
/// The format of the persisted state (`state.json`).
pub const STATE_FORMAT: u32 = 1;

/// A device's rollout bucket for a release, 0–99: the first 8 bytes of
/// SHA-256(`device` + `"\n"` + `version`) as a big-endian `u64`, modulo 100.
///
/// A release at `percent` is offered to exactly the devices whose bucket is below `percent`, so raising
/// the percentage only adds devices, and each release picks a different sample. `version` is the
/// release's version exactly as its manifest writes it (`1.0.1`, or `1.0.1+g12ab` with build metadata).
/// The HIL harness recomputes this to know which simulated devices must update.
pub fn bucket(device: &str, version: &str) -> u8 {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{device}\n{version}").as_bytes());
    let first = digest.as_ref().first_chunk::<8>().copied().unwrap_or_default();
    u8::try_from(u64::from_be_bytes(first) % 100).expect("a value modulo 100 fits in a u8")
}

/// Whether a release of `version` at `percent` includes `device`.
pub fn in_rollout(device: &str, version: &Version, percent: u8) -> bool {
    bucket(device, &version.to_string()) < percent
}

/// Whether `name` may be a board, channel or version in a URL and a file path: 1–64 of
/// `A-Z a-z 0-9 . _ + -`, not starting with a dot.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// `v` without build metadata: the form versions are compared and blocked in.
fn precedence(v: &Version) -> String {
    let mut bare = Version::new(v.major, v.minor, v.patch);
    bare.pre = v.pre.clone();
    bare.to_string()
}

fn same_version(a: &Version, b: &Version) -> bool {
    a.cmp_precedence(b) == std::cmp::Ordering::Equal
}

/// When a release pauses itself: `failures >= min_failures` and
/// `failures * 100 >= failure_percent * (installed + failures)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausePolicy {
    /// Failures needed before any pause.
    pub min_failures: u64,
    /// The share of failures among reported outcomes, in percent, that pauses.
    pub failure_percent: u64,
}

impl Default for PausePolicy {
    fn default() -> Self {
        Self {
            min_failures: 2,
            failure_percent: 20,
        }
    }
}

impl PausePolicy {
    /// Whether a release with these counts must pause.
    pub fn trips(&self, installed: u64, failures: u64) -> bool {
        failures >= self.min_failures
            && failures.saturating_mul(100)
                >= self
                    .failure_percent
                    .saturating_mul(installed.saturating_add(failures))
    }
}

/// What a bundle's header says about it (read at upload, and again when the store is scanned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    /// The manifest's board.
    pub board: String,
    /// The manifest's version.
    pub version: Version,
    /// The manifest's minimum version.
    pub min_version: Option<Version>,
    /// The manifest's expiry (Unix seconds).
    pub expires: u64,
    /// The manifest's release notes.
    pub notes: Option<String>,
    /// The bundle file's length.
    pub size: u64,
}

impl BundleInfo {
    /// The facts of a parsed header.
    pub fn from_header(header: &edge_ota::Header) -> Self {
        let m = &header.manifest;
        Self {
            board: m.board.clone(),
            version: m.version.clone(),
            min_version: m.min_version.clone(),
            expires: m.expires,
            notes: m.notes.clone(),
            size: header.bundle_len(),
        }
    }
}

/// A release: one bundle in one channel, with its rollout and what devices reported about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The board it is for.
    pub board: String,
    /// The channel it is published in.
    pub channel: String,
    /// Its version, as in its manifest.
    pub version: Version,
    /// The oldest version it updates from.
    #[serde(default)]
    pub min_version: Option<Version>,
    /// When its signature expires (Unix seconds): not offered after that.
    pub expires: u64,
    /// The bundle's length in bytes.
    pub size: u64,
    /// Its release notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// The share of devices it is offered to, 0–100 (see [`bucket`]).
    pub percent: u8,
    /// A paused release is offered to nobody.
    pub paused: bool,
    /// Why it is paused (the operator, or the failure counts that paused it).
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// Installs reported successful.
    #[serde(default)]
    pub installed: u64,
    /// Installs reported rolled back, rejected or failed.
    #[serde(default)]
    pub failures: u64,
    /// Devices it was offered to (a device offered it on many check-ins counts once).
    #[serde(default)]
    pub offered: u64,
}

impl Release {
    /// A new release of `info` in `channel`, offered to `percent` of the devices.
    pub fn new(info: BundleInfo, channel: &str, percent: u8) -> Self {
        Self {
            board: info.board,
            channel: channel.to_owned(),
            version: info.version,
            min_version: info.min_version,
            expires: info.expires,
            size: info.size,
            notes: info.notes,
            percent: percent.min(100),
            paused: false,
            paused_reason: None,
            installed: 0,
            failures: 0,
            offered: 0,
        }
    }

    /// Its file name in the store and in its URL: `<version>.bundle`.
    pub fn file_name(&self) -> String {
        format!("{}.bundle", self.version)
    }

    /// Where devices download it.
    pub fn url(&self) -> String {
        format!("/v1/bundles/{}/{}/{}", self.board, self.channel, self.file_name())
    }

    fn is(&self, board: &str, channel: &str, version: &Version) -> bool {
        self.board == board && self.channel == channel && same_version(&self.version, version)
    }
}

/// What the fleet remembers of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    device: String,
    board: String,
    channel: String,
    version: String,
    slot: String,
    state: String,
    progress: Option<Progress>,
    last_seen: u64,
    /// The last [`RESULTS_KEPT`] results, oldest first.
    results: VecDeque<InstallResult>,
    /// The last [`IDS_KEPT`] result ids, to drop results delivered again.
    seen: VecDeque<String>,
    /// Versions (without build metadata) this device reported failing: never offered to it again.
    blocked: BTreeSet<String>,
    /// The version last offered (so `Release::offered` counts each device once).
    last_offered: Option<String>,
}

impl DeviceRecord {
    fn view(&self) -> DeviceView {
        DeviceView {
            device: self.device.clone(),
            board: self.board.clone(),
            channel: self.channel.clone(),
            version: self.version.clone(),
            slot: self.slot.clone(),
            state: self.state.clone(),
            progress: self.progress.clone(),
            last_seen: self.last_seen,
            results: self.results.iter().cloned().collect(),
        }
    }
}

/// A check-in refused as malformed (400): the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Why a rollout change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// Malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// No such release (404).
    #[error("no release {version} of board {board} in channel {channel}")]
    Unknown {
        /// As asked.
        board: String,
        /// As asked.
        channel: String,
        /// As asked.
        version: String,
    },
}

/// What a check-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkin {
    /// The reply to the device.
    pub response: CheckinResponse,
    /// Results that were new (not delivered before).
    pub new_results: Vec<InstallResult>,
    /// Releases this check-in's results paused, with the reason.
    pub paused: Vec<(Release, String)>,
}

/// Releases and devices: everything the server decides from, and everything `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    format: u32,
    /// Sorted by board, channel, version.
    releases: Vec<Release>,
    devices: BTreeMap<String, DeviceRecord>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self {
            format: STATE_FORMAT,
            ..Self::default()
        }
    }

    /// The persisted state, as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A fleet from its persisted state.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let fleet: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if fleet.format != STATE_FORMAT {
            return Err(format!(
                "state format {} is not supported (this server reads format {STATE_FORMAT})",
                fleet.format
            ));
        }
        Ok(fleet)
    }

    /// Every release, by board, channel and version.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// The release of (`board`, `channel`) whose version equals `version` (build metadata ignored).
    pub fn release(&self, board: &str, channel: &str, version: &Version) -> Option<&Release> {
        self.releases.iter().find(|r| r.is(board, channel, version))
    }

    /// The release stored as `file` in (`board`, `channel`).
    pub fn release_file(&self, board: &str, channel: &str, file: &str) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.board == board && r.channel == channel && r.file_name() == file)
    }

    /// Adds a release; refuses one whose version (build metadata ignored) is already in its channel,
    /// returning the version there.
    pub fn add_release(&mut self, release: Release) -> Result<&Release, Version> {
        if let Some(existing) = self.release(&release.board, &release.channel, &release.version) {
            return Err(existing.version.clone());
        }
        let at = self.releases.partition_point(|r| {
            (&r.board, &r.channel, &r.version) < (&release.board, &release.channel, &release.version)
        });
        self.releases.insert(at, release);
        Ok(&self.releases[at])
    }

    /// Makes the releases those found in the store: keeps the rollout and counts of those already
    /// known (refreshing what the header says), adds the others at 0 % (the operator decides), and
    /// forgets releases whose bundle is gone. Returns the added and the forgotten.
    pub fn reconcile(&mut self, found: Vec<Release>) -> (Vec<Release>, Vec<Release>) {
        let mut known = std::mem::take(&mut self.releases);
        let mut added = Vec::new();
        for mut release in found {
            match known
                .iter()
                .position(|k| k.is(&release.board, &release.channel, &release.version))
            {
                Some(i) => {
                    let k = known.swap_remove(i);
                    release.percent = k.percent;
                    release.paused = k.paused;
                    release.paused_reason = k.paused_reason;
                    release.installed = k.installed;
                    release.failures = k.failures;
                    release.offered = k.offered;
                }
                None => {
                    release.percent = 0;
                    added.push(release.clone());
                }
            }
            // Two files of one version (build metadata apart): the first one found stands.
            let _ = self.add_release(release);
        }
        (added, known)
    }

    /// Changes a release's rollout; returns it as it now is.
    pub fn set_rollout(&mut self, req: &RolloutRequest) -> Result<&Release, RolloutError> {
        let version = Version::parse(&req.version)
            .map_err(|e| RolloutError::Invalid(format!("version {:?}: {e}", req.version)))?;
        if req.percent.is_some_and(|p| p > 100) {
            return Err(RolloutError::Invalid("percent must be 0 to 100".into()));
        }
        let release = self
            .releases
            .iter_mut()
            .find(|r| r.is(&req.board, &req.channel, &version))
            .ok_or_else(|| RolloutError::Unknown {
                board: req.board.clone(),
                channel: req.channel.clone(),
                version: req.version.clone(),
            })?;
        if let Some(p) = req.percent {
            release.percent = p;
        }
        match req.paused {
            Some(true) if !release.paused => {
                release.paused = true;
                release.paused_reason = Some("paused by the operator".into());
            }
            Some(false) => {
                release.paused = false;
                release.paused_reason = None;
            }
            _ => {}
        }
        Ok(release)
    }

    /// A device checks in at `now` (server clock, Unix seconds): record what it reports, count its new
    /// results (pausing releases that fail per `policy`), and decide its update.
    pub fn checkin(
        &mut self,
        req: CheckinRequest,
        now: u64,
        next_checkin_s: u64,
        policy: PausePolicy,
    ) -> Result<Checkin, Invalid> {
        let running = validate(&req)?;
        let result_versions = req
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Version::parse(&r.version)
                    .map_err(|e| Invalid(format!("results[{i}].version {:?}: {e}", r.version)))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let CheckinRequest {
            device,
            board,
            channel,
            version,
            slot,
            state,
            progress,
            results,
        } = req;
        let rec = self
            .devices
            .entry(device.clone())
            .or_insert_with(|| DeviceRecord {
                device,
                board: String::new(),
                channel: String::new(),
                version: String::new(),
                slot: String::new(),
                state: String::new(),
                progress: None,
                last_seen: 0,
                results: VecDeque::new(),
                seen: VecDeque::new(),
                blocked: BTreeSet::new(),
                last_offered: None,
            });
        rec.board = board;
        rec.channel = channel;
        rec.version = version;
        rec.slot = cut_front(&slot, MAX_TEXT);
        rec.state = cut_front(&state, MAX_TEXT);
        rec.progress = progress;
        rec.last_seen = now;

        let mut new_results = Vec::new();
        let mut paused = Vec::new();
        for (mut result, version) in results.into_iter().zip(result_versions) {
            if rec.seen.contains(&result.id) {
                continue;
            }
            rec.seen.push_back(result.id.clone());
            if rec.seen.len() > IDS_KEPT {
                rec.seen.pop_front();
            }
            let failed = result.outcome.is_failure();
            if failed {
                rec.blocked.insert(precedence(&version));
            }
            if let Some(release) = self
                .releases
                .iter_mut()
                .find(|r| r.is(&rec.board, &rec.channel, &version))
            {
                if failed {
                    release.failures += 1;
                    if !release.paused && policy.trips(release.installed, release.failures) {
                        let reason = format!(
                            "paused automatically: {} failed of {} reported (threshold: {} failures and {} %)",
                            release.failures,
                            release.installed + release.failures,
                            policy.min_failures,
                            policy.failure_percent
                        );
                        release.paused = true;
                        release.paused_reason = Some(reason.clone());
                        paused.push((release.clone(), reason));
                    }
                } else {
                    release.installed += 1;
                }
            }
            result.reason = cut_front(&result.reason, MAX_TEXT);
            result.log = cut_back(&result.log, MAX_LOG);
            new_results.push(result.clone());
            rec.results.push_back(result);
            if rec.results.len() > RESULTS_KEPT {
                rec.results.pop_front();
            }
        }

        let offer = self
            .releases
            .iter_mut()
            .filter(|r| {
                r.board == rec.board
                    && r.channel == rec.channel
                    && !r.paused
                    && now <= r.expires
                    && newer(&r.version, &running)
                    && r.min_version.as_ref().is_none_or(|min| !newer(min, &running))
                    && !rec.blocked.contains(&precedence(&r.version))
                    && in_rollout(&rec.device, &r.version, r.percent)
            })
            .max_by(|a, b| a.version.cmp_precedence(&b.version))
            .map(|r| {
                let version = r.version.to_string();
                if rec.last_offered.as_ref() != Some(&version) {
                    r.offered += 1;
                    rec.last_offered = Some(version.clone());
                }
                Offer {
                    version,
                    url: r.url(),
                    size: r.size,
                }
            });
        Ok(Checkin {
            response: CheckinResponse {
                next_checkin_s,
                update: offer,
            },
            new_results,
            paused,
        })
    }

    /// The fleet as `GET /v1/fleet` shows it.
    pub fn view(&self) -> FleetView {
        FleetView {
            devices: self.devices.values().map(DeviceRecord::view).collect(),
            releases: self.releases.clone(),
        }
    }
}

/// Checks a check-in before anything is recorded; returns the running version.
fn validate(req: &CheckinRequest) -> Result<Version, Invalid> {
    let name = |field: &str, value: &str| {
        if value.is_empty() || value.len() > MAX_NAME || value.chars().any(char::is_control) {
            Err(Invalid(format!(
                "{field} must be 1 to {MAX_NAME} bytes without control characters"
            )))
        } else {
            Ok(())
        }
    };
    name("device", &req.device)?;
    name("board", &req.board)?;
    name("channel", &req.channel)?;
    name("version", &req.version)?;
    for (i, r) in req.results.iter().enumerate() {
        name(&format!("results[{i}].id"), &r.id)?;
    }
    Version::parse(&req.version).map_err(|e| Invalid(format!("version {:?}: {e}", req.version)))
}

/// The first `max` bytes of `s` (cut at a character boundary).
fn cut_front(s: &str, max: usize) -> String {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    s.get(..end).unwrap_or_default().to_owned()
}

/// The last `max` bytes of `s` (cut at a character boundary).
fn cut_back(s: &str, max: usize) -> String {
    let start = (s.len().saturating_sub(max)..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s.get(start..).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Outcome;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn release(version: &str, percent: u8) -> Release {
        Release::new(
            BundleInfo {
                board: "qemu-x86_64".into(),
                version: v(version),
                min_version: None,
                expires: 2_000_000_000,
                notes: None,
                size: 1000,
            },
            "stable",
            percent,
        )
    }

    fn checkin(device: &str, version: &str) -> CheckinRequest {
        CheckinRequest {
            device: device.into(),
            board: "qemu-x86_64".into(),
            channel: "stable".into(),
            version: version.into(),
            slot: "A".into(),
            state: "idle".into(),
            progress: None,
            results: vec![],
        }
    }

    fn result(id: &str, version: &str, outcome: Outcome) -> InstallResult {
        InstallResult {
            id: id.into(),
            version: version.into(),
            outcome,
            reason: String::new(),
            log: String::new(),
            at: 0,
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn offered(fleet: &mut Fleet, req: CheckinRequest) -> Option<String> {
        let c = fleet.checkin(req, NOW, 300, PausePolicy::default()).unwrap();
        assert_eq!(c.response.next_checkin_s, 300);
        c.response.update.map(|o| o.version)
    }

    /// The bucket as the README defines it, computed here without `bucket`.
    fn expected_bucket(device: &str, version: &str) -> u64 {
        let input = [device.as_bytes(), b"\n", version.as_bytes()].concat();
        let d = ring::digest::digest(&ring::digest::SHA256, &input);
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        u64::from_be_bytes(first) % 100
    }

    #[test]
    fn bucket_is_the_documented_hash_and_stable() {
        for i in 0..200 {
            let device = format!("dev-{i}");
            for version in ["1.0.1", "1.0.1+g12ab", "2.0.0-rc.1"] {
                let b = bucket(&device, version);
                assert_eq!(u64::from(b), expected_bucket(&device, version));
                assert_eq!(b, bucket(&device, version), "deterministic");
                assert!(b < 100);
            }
        }
        // Different releases pick different samples.
        let a: Vec<u8> = (0..50).map(|i| bucket(&format!("dev-{i}"), "1.0.1")).collect();
        let b: Vec<u8> = (0..50).map(|i| bucket(&format!("dev-{i}"), "1.0.2")).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn raising_the_percentage_only_adds_devices() {
        let ver = v("1.0.1");
        let devices: Vec<String> = (0..300).map(|i| format!("dev-{i}")).collect();
        let included = |p: u8| -> BTreeSet<&str> {
            devices
                .iter()
                .filter(|d| in_rollout(d, &ver, p))
                .map(String::as_str)
                .collect()
        };
        assert!(included(0).is_empty());
        assert_eq!(included(100).len(), devices.len());
        let mut previous = included(0);
        for p in 1..=100 {
            let now = included(p);
            assert!(previous.is_subset(&now), "{p}%");
            previous = now;
        }
        // Roughly the asked share.
        let half = included(50).len();
        assert!((100..=200).contains(&half), "{half} of 300 at 50 %");
    }

    #[test]
    fn half_a_rollout_offers_exactly_the_devices_below_50() {
        let mut fleet = Fleet::new();
        fleet.add_release(release("1.0.1", 50)).unwrap();
        let mut got = BTreeSet::new();
        let mut expected = BTreeSet::new();
        for i in 0..10 {
            let device = format!("dev-{i}");
            if expected_bucket(&device, "1.0.1") < 50 {
                expected.insert(device.clone());
            }
            if offered(&mut fleet, checkin(&device, "1.0.0+g12ab")).is_some() {
                got.insert(device);
            }
        }
        assert_eq!(got, expected);
        assert!(
            !expected.is_empty() && expected.len() < 10,
            "the sample splits: {expected:?}"
        );
        let r = fleet.release("qemu-x86_64", "stable", &v("1.0.1")).unwrap();
        assert_eq!(r.offered, expected.len() as u64);
        // Checking in again offers again but counts each device once.
        for d in &expected {
            assert_eq!(offered(&mut fleet, checkin(d, "1.0.0")), Some("1.0.1".into()));
        }
        let r = fleet.release("qemu-x86_64", "stable", &v("1.0.1")).unwrap();
        assert_eq!(r.offered, expected.len() as u64);
    }

    #[test]
    fn the_newest_eligible_release_is_offered() {
        let mut fleet = Fleet::new();
        for ver in ["1.0.1", "1.2.0", "1.1.0", "0.9.0"] {
            fleet.add_release(release(ver, 100)).unwrap();
        }
        let mut other_channel = release("9.0.0", 100);
        other_channel.channel = "beta".into();
        fleet.add_release(other_channel).unwrap();
        let mut other_board = release("9.0.0", 100);
        other_board.board = "rpi4".into();
        fleet.add_release(other_board).unwrap();

        assert_eq!(offered(&mut fleet, checkin("d", "1.0.0")), Some("1.2.0".into()));
        assert_eq!(
            offered(&mut fleet, checkin("d", "1.2.0+local")),
            None,
            "up to date"
        );
        assert_eq!(
            offered(&mut fleet, checkin("d", "2.0.0")),
            None,
            "never a downgrade"
        );
        let sorted: Vec<String> = fleet
            .releases()
            .iter()
            .map(|r| format!("{}/{}/{}", r.board, r.channel, r.version))
            .collect();
        assert_eq!(
            sorted,
            [
                "qemu-x86_64/beta/9.0.0",
                "qemu-x86_64/stable/0.9.0",
                "qemu-x86_64/stable/1.0.1",
                "qemu-x86_64/stable/1.1.0",
                "qemu-x86_64/stable/1.2.0",
                "rpi4/stable/9.0.0"
            ]
        );
        assert!(
            fleet.add_release(release("1.2.0+rebuilt", 100)).is_err(),
            "same version"
        );
    }

    #[test]
    fn paused_too_new_expired_blocked_and_excluded_releases_are_skipped() {
        let mut fleet = Fleet::new();
        fleet.add_release(release("1.1.0", 100)).unwrap();
        let mut needs_new = release("1.3.0", 100);
        needs_new.min_version = Some(v("1.0.5"));
        fleet.add_release(needs_new).unwrap();
        let mut expired = release("1.4.0", 100);
        expired.expires = NOW - 1;
        fleet.add_release(expired).unwrap();
        fleet.add_release(release("1.2.0", 100)).unwrap();
        fleet.add_release(release("1.5.0", 0)).unwrap();
        let rollout = |version: &str, percent: Option<u8>, paused: Option<bool>| RolloutRequest {
            board: "qemu-x86_64".into(),
            channel: "stable".into(),
            version: version.into(),
            percent,
            paused,
        };
        fleet.set_rollout(&rollout("1.2.0", None, Some(true))).unwrap();

        // 1.5.0 at 0 %, 1.4.0 expired, 1.3.0 needs 1.0.5, 1.2.0 paused.
        assert_eq!(offered(&mut fleet, checkin("d", "1.0.0")), Some("1.1.0".into()));
        assert_eq!(offered(&mut fleet, checkin("d", "1.0.5")), Some("1.3.0".into()));
        // The device reports 1.3.0 rolled back (the version with build metadata): never offered again.
        let mut req = checkin("d", "1.0.5");
        req.results = vec![result("r-1", "1.3.0+g77", Outcome::RolledBack)];
        assert_eq!(offered(&mut fleet, req), Some("1.1.0".into()));
        assert_eq!(
            offered(&mut fleet, checkin("other", "1.0.5")),
            Some("1.3.0".into())
        );
        // Resuming 1.2.0 offers it again; the operator's reason goes away.
        let r = fleet
            .set_rollout(&rollout("1.2.0", Some(100), Some(false)))
            .unwrap();
        assert_eq!((r.paused, r.paused_reason.clone()), (false, None));
        assert_eq!(offered(&mut fleet, checkin("d", "1.0.0")), Some("1.2.0".into()));

        assert!(matches!(
            fleet.set_rollout(&rollout("7.0.0", Some(1), None)),
            Err(RolloutError::Unknown { .. })
        ));
        assert!(matches!(
            fleet.set_rollout(&rollout("1.2.0", Some(101), None)),
            Err(RolloutError::Invalid(_))
        ));
        assert!(matches!(
            fleet.set_rollout(&rollout("x", None, None)),
            Err(RolloutError::Invalid(_))
        ));
    }

    #[test]
    fn failures_pause_a_release_per_the_thresholds() {
        let policy = PausePolicy {
            min_failures: 2,
            failure_percent: 20,
        };
        assert!(!policy.trips(0, 1), "one failure is not enough");
        assert!(policy.trips(0, 2));
        assert!(policy.trips(8, 2), "2 of 10 is 20 %");
        assert!(!policy.trips(9, 2), "2 of 11 is under 20 %");

        let mut fleet = Fleet::new();
        fleet.add_release(release("1.0.1", 100)).unwrap();
        let report = |fleet: &mut Fleet, device: &str, outcome: Outcome| {
            let mut req = checkin(device, "1.0.0");
            req.results = vec![result(&format!("r-{device}"), "1.0.1", outcome)];
            fleet.checkin(req, NOW, 300, policy).unwrap()
        };
        for i in 0..9 {
            let c = report(&mut fleet, &format!("ok-{i}"), Outcome::Installed);
            assert!(c.paused.is_empty());
        }
        assert!(report(&mut fleet, "bad-1", Outcome::Failed).paused.is_empty());
        assert!(
            report(&mut fleet, "bad-2", Outcome::Rejected).paused.is_empty(),
            "2 of 11"
        );
        let c = report(&mut fleet, "bad-3", Outcome::RolledBack);
        assert_eq!(c.paused.len(), 1, "3 of 12 is 25 %");
        assert!(c.paused[0].1.contains("3 failed of 12"), "{}", c.paused[0].1);
        let r = fleet.release("qemu-x86_64", "stable", &v("1.0.1")).unwrap();
        assert_eq!((r.installed, r.failures, r.paused), (9, 3, true));
        assert!(
            r.paused_reason
                .as_deref()
                .unwrap()
                .starts_with("paused automatically")
        );
        // Paused: offered to nobody, and no second pause event.
        assert_eq!(offered(&mut fleet, checkin("fresh", "1.0.0")), None);
        assert!(report(&mut fleet, "bad-4", Outcome::Failed).paused.is_empty());
    }

    #[test]
    fn results_delivered_twice_count_once() {
        let mut fleet = Fleet::new();
        fleet.add_release(release("1.0.1", 100)).unwrap();
        let policy = PausePolicy {
            min_failures: 1,
            failure_percent: 100,
        };
        let mut req = checkin("d", "1.0.1");
        req.results = vec![
            result("r-1", "1.0.1", Outcome::Installed),
            result("r-1", "1.0.1", Outcome::Installed),
        ];
        let c = fleet.checkin(req.clone(), NOW, 300, policy).unwrap();
        assert_eq!(c.new_results.len(), 1);
        let c = fleet.checkin(req, NOW + 300, 300, policy).unwrap();
        assert!(c.new_results.is_empty());
        let r = fleet.release("qemu-x86_64", "stable", &v("1.0.1")).unwrap();
        assert_eq!((r.installed, r.failures), (1, 0));
        let view = fleet.view();
        assert_eq!(view.devices.len(), 1);
        assert_eq!(view.devices[0].results.len(), 1);
        assert_eq!(view.devices[0].last_seen, NOW + 300);

        // Only the last RESULTS_KEPT are shown; ids are remembered longer.
        let mut req = checkin("d", "1.0.1");
        req.results = (0..30)
            .map(|i| result(&format!("x-{i}"), "0.1.0", Outcome::Failed))
            .collect();
        fleet.checkin(req.clone(), NOW, 300, policy).unwrap();
        let c = fleet.checkin(req, NOW, 300, policy).unwrap();
        assert!(c.new_results.is_empty());
        let shown = &fleet.view().devices[0].results;
        assert_eq!(shown.len(), RESULTS_KEPT);
        assert_eq!(shown.last().unwrap().id, "x-29");
    }

    #[test]
    fn malformed_checkins_are_refused_and_change_nothing() {
        let mut fleet = Fleet::new();
        let policy = PausePolicy::default();
        for (req, field) in [
            (checkin("", "1.0.0"), "device"),
            (checkin("d", "one"), "version"),
            (checkin(&"x".repeat(MAX_NAME + 1), "1.0.0"), "device"),
            (checkin("a\u{7}b", "1.0.0"), "device"),
            (
                CheckinRequest {
                    results: vec![result("r", "not-semver", Outcome::Failed)],
                    ..checkin("d", "1.0.0")
                },
                "results[0].version",
            ),
        ] {
            let err = fleet.checkin(req, NOW, 300, policy).unwrap_err();
            assert!(err.0.contains(field), "{err}");
        }
        assert_eq!(fleet, Fleet::new());
        // Long free text is cut, not refused; a log keeps its end.
        let mut req = checkin("d", "1.0.0");
        req.state = "é".repeat(MAX_TEXT);
        let mut r = result("r", "1.0.1", Outcome::Failed);
        r.log = format!("{}THE END", "y".repeat(MAX_LOG));
        req.results = vec![r];
        fleet.checkin(req, NOW, 300, policy).unwrap();
        let d = &fleet.view().devices[0];
        assert!(d.state.len() <= MAX_TEXT && d.state.starts_with('é'));
        assert!(d.results[0].log.len() <= MAX_LOG && d.results[0].log.ends_with("THE END"));
    }

    #[test]
    fn state_round_trips_through_json_and_reconciles_with_the_store() {
        let mut fleet = Fleet::new();
        fleet.add_release(release("1.0.1", 30)).unwrap();
        fleet.add_release(release("1.0.2", 100)).unwrap();
        let mut req = checkin("d", "1.0.0");
        req.progress = Some(Progress {
            version: "1.0.2".into(),
            done: 5,
            total: 10,
        });
        req.results = vec![result("r-1", "1.0.1", Outcome::Failed)];
        fleet.checkin(req, NOW, 300, PausePolicy::default()).unwrap();
        let json = fleet.to_json();
        let back = Fleet::from_json(&json).unwrap();
        assert_eq!(back, fleet);
        // The blocked version and dedupe memory survive a restart.
        let mut again = back;
        let mut req = checkin("d", "1.0.0");
        req.results = vec![result("r-1", "1.0.1", Outcome::Failed)];
        let c = again.checkin(req, NOW, 300, PausePolicy::default()).unwrap();
        assert!(c.new_results.is_empty());
        assert_eq!(c.response.update.unwrap().version, "1.0.2");

        assert!(Fleet::from_json(b"{").is_err());
        assert!(Fleet::from_json(br#"{"format":9,"releases":[],"devices":{}}"#).is_err());

        // The store holds 1.0.2 (header refreshed) and an unknown 1.0.3; 1.0.1's file is gone.
        let mut fresh = release("1.0.2", 100);
        fresh.notes = Some("new notes".into());
        let (added, gone) = fleet.reconcile(vec![release("1.0.3", 100), fresh]);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].version, v("1.0.3"));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].version, v("1.0.1"));
        let kept = fleet.release("qemu-x86_64", "stable", &v("1.0.2")).unwrap();
        assert_eq!(
            (kept.percent, kept.offered, kept.notes.as_deref()),
            (100, 1, Some("new notes"))
        );
        assert_eq!(
            fleet
                .release("qemu-x86_64", "stable", &v("1.0.3"))
                .unwrap()
                .percent,
            0
        );
    }

    #[test]
    fn names_that_are_safe_in_paths() {
        for ok in ["qemu-x86_64", "stable", "1.0.1+g12ab", "2.0.0-rc.1", "a"] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}
