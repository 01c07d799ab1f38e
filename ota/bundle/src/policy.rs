//! What a device accepts: the checks after the signature, before a byte is written.

use semver::Version;

use crate::manifest::Manifest;

/// The facts about a device that decide whether it takes a bundle.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    /// Its board (`qemu-x86_64`).
    pub board: &'a str,
    /// The version it runs.
    pub version: &'a Version,
    /// The wall clock, Unix seconds (`None` when the device has no trustworthy time yet).
    pub now: Option<u64>,
    /// Versions that failed here before (rolled back): never installed again automatically.
    pub blocked: &'a [Version],
}

/// Why a device refuses a (correctly signed) bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Built for another board.
    #[error("the bundle is for board {bundle}, this device is {device}")]
    WrongBoard {
        /// The manifest's board.
        bundle: String,
        /// This device's board.
        device: String,
    },
    /// Not newer than what runs (anti-rollback).
    #[error("version {bundle} is not newer than the running {running}")]
    NotNewer {
        /// The manifest's version.
        bundle: Version,
        /// The running version.
        running: Version,
    },
    /// The running version is older than the bundle's minimum.
    #[error("version {bundle} updates from {min} or later; this device runs {running}")]
    TooOld {
        /// The manifest's version.
        bundle: Version,
        /// The manifest's minimum.
        min: Version,
        /// The running version.
        running: Version,
    },
    /// Past its expiry.
    #[error("the bundle expired at {expires} (Unix time), it is now {now}")]
    Expired {
        /// The manifest's expiry.
        expires: u64,
        /// The device's clock.
        now: u64,
    },
    /// This version was rolled back here before.
    #[error("version {0} failed on this device before and is not installed again automatically")]
    Blocked(Version),
}

/// Orders versions as semver does, ignoring build metadata (`1.0.0+g1234` equals `1.0.0`).
pub fn newer(a: &Version, b: &Version) -> bool {
    a.cmp_precedence(b) == std::cmp::Ordering::Greater
}

impl Device<'_> {
    /// Whether this device takes `m`.
    ///
    /// A device without trustworthy time skips the expiry check only if its clock is unset (`now` is
    /// `None`); the signature, board and version checks still hold.
    pub fn accepts(&self, m: &Manifest) -> Result<(), Refusal> {
        if m.board != self.board {
            return Err(Refusal::WrongBoard {
                bundle: m.board.clone(),
                device: self.board.to_owned(),
            });
        }
        if !newer(&m.version, self.version) {
            return Err(Refusal::NotNewer {
                bundle: m.version.clone(),
                running: self.version.clone(),
            });
        }
        if let Some(min) = &m.min_version
            && newer(min, self.version)
        {
            return Err(Refusal::TooOld {
                bundle: m.version.clone(),
                min: min.clone(),
                running: self.version.clone(),
            });
        }
        if let Some(now) = self.now
            && now > m.expires
        {
            return Err(Refusal::Expired {
                expires: m.expires,
                now,
            });
        }
        if self
            .blocked
            .iter()
            .any(|b| b.cmp_precedence(&m.version) == std::cmp::Ordering::Equal)
        {
            return Err(Refusal::Blocked(m.version.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn each_refusal_and_the_one_acceptance() {
        let m = sample(); // qemu-x86_64 1.2.0, min 1.0.0, expires 1.9e9
        let running = v("1.1.0+g1234.dirty");
        let ok = Device {
            board: "qemu-x86_64",
            version: &running,
            now: Some(1_800_000_000),
            blocked: &[],
        };
        assert_eq!(ok.accepts(&m), Ok(()));
        assert_eq!(Device { now: None, ..ok }.accepts(&m), Ok(()));
        assert!(matches!(
            Device {
                board: "qemu-aarch64",
                ..ok
            }
            .accepts(&m),
            Err(Refusal::WrongBoard { .. })
        ));
        for same_or_newer in ["1.2.0", "1.2.0+other", "1.3.0", "2.0.0-rc.1"] {
            let r = v(same_or_newer);
            assert!(
                matches!(
                    Device { version: &r, ..ok }.accepts(&m),
                    Err(Refusal::NotNewer { .. })
                ),
                "{same_or_newer}"
            );
        }
        let old = v("0.9.0");
        assert!(matches!(
            Device { version: &old, ..ok }.accepts(&m),
            Err(Refusal::TooOld { .. })
        ));
        assert!(matches!(
            Device {
                now: Some(1_900_000_001),
                ..ok
            }
            .accepts(&m),
            Err(Refusal::Expired { .. })
        ));
        let blocked = [v("1.2.0+build7")];
        assert_eq!(
            Device {
                blocked: &blocked,
                ..ok
            }
            .accepts(&m),
            Err(Refusal::Blocked(v("1.2.0")))
        );
    }
}
