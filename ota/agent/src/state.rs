//! What the agent remembers on the data partition (`/data/ota/state.toml`), across reboots, power
//! cuts and rollbacks: the device id, the pending testboot, versions that failed here, and outcomes
//! not yet delivered to the server.

use serde::{Deserialize, Serialize};

use edge_ota::wire::{InstallResult, Outcome};

/// Most undelivered reports kept (the oldest go first).
pub const MAX_REPORTS: usize = 20;

/// The agent's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// This device's id at the server.
    #[serde(default)]
    pub device_id: String,
    /// An installed slot waiting for its testboot's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Versions that failed here: never installed again automatically.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// Outcomes not yet delivered.
    #[serde(default)]
    pub reports: Vec<InstallResult>,
    /// The next report's sequence number.
    #[serde(default)]
    pub next_report: u64,
}

/// A slot written and verified, to be testbooted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The version in it.
    pub version: String,
    /// The slot (`A`, `B`).
    pub slot: String,
    /// Testboots started (armed in grubenv).
    pub attempts: u32,
    /// Whether grubenv has been set for the current attempt.
    pub armed: bool,
}

/// A version that failed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocked {
    /// The version.
    pub version: String,
    /// Why.
    pub reason: String,
}

impl State {
    /// Reads the state file; `None` text (no file yet) is the empty state.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The state file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Records an outcome to deliver.
    pub fn report(&mut self, version: &str, outcome: Outcome, reason: &str, log: &str, at: u64) {
        self.next_report += 1;
        self.reports.push(InstallResult {
            id: format!("r-{at}-{}", self.next_report),
            version: version.to_owned(),
            outcome,
            reason: reason.to_owned(),
            log: log.to_owned(),
            at,
        });
        let excess = self.reports.len().saturating_sub(MAX_REPORTS);
        self.reports.drain(..excess);
    }

    /// Forgets the reports the server acknowledged (those sent in a check-in that got a 200).
    pub fn delivered(&mut self, ids: &[String]) {
        self.reports.retain(|r| !ids.contains(&r.id));
    }

    /// Blocks `version` (once).
    pub fn block(&mut self, version: &str, reason: &str) {
        if !self.blocked.iter().any(|b| b.version == version) {
            self.blocked.push(Blocked {
                version: version.to_owned(),
                reason: reason.to_owned(),
            });
        }
    }

    /// The blocked versions that parse.
    pub fn blocked_versions(&self) -> Vec<edge_ota::Version> {
        self.blocked
            .iter()
            .filter_map(|b| edge_ota::Version::parse(&b.version).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_the_newest_reports() {
        let mut s = State {
            device_id: "dev-1".into(),
            pending: Some(Pending {
                version: "1.0.1".into(),
                slot: "B".into(),
                attempts: 1,
                armed: true,
            }),
            ..State::default()
        };
        s.block("1.0.2", "rolled back");
        s.block("1.0.2", "again");
        assert_eq!(s.blocked.len(), 1);
        for i in 0..(MAX_REPORTS as u64 + 5) {
            s.report(
                "1.0.1",
                Outcome::Rejected,
                "bad \"signature\"\nreally",
                "",
                1000 + i,
            );
        }
        assert_eq!(s.reports.len(), MAX_REPORTS);
        assert_eq!(s.reports[0].at, 1005);
        assert_eq!(State::parse(&s.to_toml()).unwrap(), s);
        assert_eq!(State::parse("").unwrap(), State::default());
        let first = s.reports[0].id.clone();
        s.delivered(&[first]);
        assert_eq!(s.reports.len(), MAX_REPORTS - 1);
        assert_eq!(
            s.blocked_versions(),
            vec![edge_ota::Version::parse("1.0.2").unwrap()]
        );
    }
}
