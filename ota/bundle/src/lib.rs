//! OTA bundles for RTC Edge appliances: what an update is and who may make one.
//!
//! A bundle is one file: a magic line, a **manifest** (TOML: board, version, the minimum version it may
//! update from, payload size and SHA-256, expiry, release notes), a **signature block** (ed25519 over the
//! exact manifest bytes, plus the endorsements that chain a rotated key back to a key the device
//! trusts), then the **payload** (a slot's squashfs). The header comes first and is small, so a device
//! fetches and verifies it before it downloads or writes a byte of payload.
//!
//! This crate owns the format ([`bundle`]), keys and their rotation ([`keys`]), the manifest
//! ([`manifest`]), what a device accepts ([`policy`]), the streaming payload check ([`PayloadCheck`]),
//! and the check-in messages both sides exchange ([`wire`]).
//! It is pure: bytes in, verdicts out. It never touches a disk, a socket or the clock (callers pass the
//! time); the device agent (`edge-agent`) and the update server (`edge-update-server`) do their own I/O.
//!
//! Architecture Invariant: nothing here reads the clock or opens a file except the CLI in `main.rs`.

pub mod bundle;
pub mod keys;
pub mod manifest;
pub mod policy;
pub mod wire;

pub use bundle::{Header, HeaderError, MAGIC, MAX_HEADER};
pub use keys::{Endorsement, KeyError, KeyId, Keyring, PublicKey, SigningKey};
pub use manifest::{Manifest, ManifestError};
pub use policy::{Device, Refusal};
pub use semver::Version;

/// The SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of a hex string (either case); `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

/// Hashes a payload as it streams past (download, staging, slot write) and checks it against the
/// manifest at the end: never more than one chunk in memory.
pub struct PayloadCheck {
    ctx: ring::digest::Context,
    seen: u64,
    size: u64,
    sha256: String,
}

/// Why a payload is not the one the manifest signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// More bytes than the manifest's `payload_size`.
    #[error("the payload is longer than the manifest's {expected} bytes")]
    TooLong {
        /// The signed size.
        expected: u64,
    },
    /// Fewer bytes than signed.
    #[error("the payload is short: {got} of {expected} bytes")]
    Short {
        /// Bytes seen.
        got: u64,
        /// The signed size.
        expected: u64,
    },
    /// The bytes differ from the signed ones.
    #[error("the payload's SHA-256 is {got}, the manifest signed {expected}")]
    Digest {
        /// What the bytes hash to.
        got: String,
        /// The signed digest.
        expected: String,
    },
}

impl std::fmt::Debug for PayloadCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PayloadCheck({} of {} bytes)", self.seen, self.size)
    }
}

impl PayloadCheck {
    /// A check for the payload `manifest` describes.
    pub fn new(manifest: &Manifest) -> Self {
        Self {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            seen: 0,
            size: manifest.payload_size,
            sha256: manifest.payload_sha256.clone(),
        }
    }

    /// Feeds the next bytes; refuses them (and everything after) once the signed size is passed.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), PayloadError> {
        let n = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if self.seen.saturating_add(n) > self.size {
            return Err(PayloadError::TooLong { expected: self.size });
        }
        self.seen += n;
        self.ctx.update(bytes);
        Ok(())
    }

    /// Bytes fed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.size - self.seen
    }

    /// The verdict: the whole payload, and exactly the signed bytes.
    pub fn finish(self) -> Result<(), PayloadError> {
        if self.seen < self.size {
            return Err(PayloadError::Short {
                got: self.seen,
                expected: self.size,
            });
        }
        let got = hex(self.ctx.finish().as_ref());
        if got == self.sha256 {
            Ok(())
        } else {
            Err(PayloadError::Digest {
                got,
                expected: self.sha256,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
