//! What this boot means for a pending update, judged once when the agent starts (PID 1 starts it only
//! after `gatewayd` is healthy and the running slot is marked good).
//!
//! Designed against what users of other A/B updaters complain about: a power cut during the testboot
//! is not taken for a bad update (one more testboot is tried before a version is blocked); a version
//! that failed is blocked, not downloaded again forever; and the failed boot's log goes with the report.

use edge_init::cmdline::Slot;
use edge_init::grubenv::AbState;

use crate::state::Pending;

/// Testboots of one version before it is blocked when no boot gave a verdict (power cut, hang).
pub const MAX_ATTEMPTS: u32 = 2;

/// Lines PID 1 writes when a slot fails its health check (image/README.md, "Console lines"), the
/// verdicts before their causes.
const HEALTH_FAILURES: [&str; 3] = ["not ready after", "missed its watchdog", "gatewayd exited"];

/// What to do about this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing pending, nothing odd.
    Nothing,
    /// The pending slot runs and is healthy: the update is committed.
    Committed {
        /// Its version.
        version: String,
    },
    /// The slot is written but grubenv was not (yet) set for its testboot: set it and reboot.
    Arm,
    /// The testboot is armed but has not happened (the reboot was lost): reboot.
    Reboot,
    /// The testboot ended without a verdict (power cut, kernel or boot hang): try it once more.
    Retry,
    /// The testboot failed: the old slot runs again; block the version.
    RolledBack {
        /// Its version.
        version: String,
        /// Why.
        reason: String,
        /// The failed boot's log (PID 1's lines), if it got that far.
        log: String,
    },
    /// Nothing was pending, yet GRUB fell back from the slot `boot_order` names first (a committed
    /// slot stopped booting).
    FellBack {
        /// The slot that stopped booting.
        from: Slot,
    },
}

/// The sections of PID 1's boot log (`---- boot ----` starts each boot); the last is this boot's.
pub fn boot_sections(log: &str) -> Vec<&str> {
    log.split("---- boot ----\n").filter(|s| !s.is_empty()).collect()
}

/// Judges this boot. `previous_boot` is the boot log's section before this boot's.
pub fn judge(running: Slot, ab: AbState, pending: Option<&Pending>, previous_boot: Option<&str>) -> Verdict {
    let Some(p) = pending else {
        return if ab.first == running {
            Verdict::Nothing
        } else {
            Verdict::FellBack { from: ab.first }
        };
    };
    let slot = if p.slot == "A" { Slot::A } else { Slot::B };
    if slot == running {
        return Verdict::Committed {
            version: p.version.clone(),
        };
    }
    if !p.armed {
        return Verdict::Arm;
    }
    if ab.first == slot && ab.left(slot) > 0 {
        return Verdict::Reboot;
    }
    // The testboot happened and did not mark itself good. Its log section names its slot.
    let testboot_log = previous_boot.filter(|s| s.contains(&format!("slot {slot} root ")));
    // PID 1's verdict first ("not ready after …"), then what led to it.
    let failure = testboot_log.and_then(|s| {
        HEALTH_FAILURES.iter().find_map(|f| {
            s.lines()
                .find(|l| l.contains(f))
                .map(|l| l.split("edge-init: ").nth(1).unwrap_or(l).trim().to_owned())
        })
    });
    let log = testboot_log.map(tail).unwrap_or_default();
    match failure {
        Some(line) => Verdict::RolledBack {
            version: p.version.clone(),
            reason: format!("slot {slot} failed its health check: {line}"),
            log,
        },
        None if p.attempts < MAX_ATTEMPTS => Verdict::Retry,
        None => Verdict::RolledBack {
            version: p.version.clone(),
            reason: format!(
                "slot {slot} did not come up in {} testboots and left no verdict (kernel or boot hang, or power cuts)",
                p.attempts
            ),
            log,
        },
    }
}

/// The last 60 lines of a log section.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(attempts: u32, armed: bool) -> Pending {
        Pending {
            version: "1.0.1".into(),
            slot: "B".into(),
            attempts,
            armed,
        }
    }
    const AB_A: AbState = AbState {
        first: Slot::A,
        a_left: 3,
        b_left: 0,
    };
    const TESTBOOT_B: AbState = AbState {
        first: Slot::B,
        a_left: 3,
        b_left: 1,
    };
    const AFTER_B: AbState = AbState {
        first: Slot::B,
        a_left: 3,
        b_left: 0,
    };

    #[test]
    fn each_verdict() {
        assert_eq!(judge(Slot::A, AB_A, None, None), Verdict::Nothing);
        assert_eq!(
            judge(Slot::A, AFTER_B, None, None),
            Verdict::FellBack { from: Slot::B }
        );
        let p = pending(1, true);
        assert_eq!(
            judge(Slot::B, AFTER_B, Some(&p), None),
            Verdict::Committed {
                version: "1.0.1".into()
            }
        );
        assert_eq!(judge(Slot::A, AB_A, Some(&pending(1, false)), None), Verdict::Arm);
        assert_eq!(judge(Slot::A, TESTBOOT_B, Some(&p), None), Verdict::Reboot);

        let failed = "[ 0.1] edge-init: slot B root /dev/vda3 data /dev/vda4 esp /dev/vda1\n\
                      [ 5.0] edge-init: gatewayd exited (status 2), restarting in 250 ms\n\
                      [30.0] edge-init: not ready after 30 s, letting the watchdog reset the board\n";
        match judge(Slot::A, AFTER_B, Some(&p), Some(failed)) {
            Verdict::RolledBack { version, reason, log } => {
                assert_eq!(version, "1.0.1");
                assert!(reason.contains("not ready after 30 s"), "{reason}");
                assert!(log.contains("slot B root"), "{log}");
            }
            other => panic!("{other:?}"),
        }
        // No verdict in the log (a power cut, or the previous section is an older boot of A): one
        // more testboot, then blocked.
        let older_a = "[ 0.1] edge-init: slot A root /dev/vda2\n[ 9.0] edge-init: gatewayd exited (code 1), restarting\n";
        assert_eq!(judge(Slot::A, AFTER_B, Some(&p), Some(older_a)), Verdict::Retry);
        assert_eq!(judge(Slot::A, AFTER_B, Some(&p), None), Verdict::Retry);
        assert!(matches!(
            judge(Slot::A, AFTER_B, Some(&pending(2, true)), None),
            Verdict::RolledBack { .. }
        ));
    }

    #[test]
    fn sections_split_per_boot() {
        let log = "---- boot ----\na\n---- boot ----\nb\nc\n";
        assert_eq!(boot_sections(log), ["a\n", "b\nc\n"]);
    }
}
