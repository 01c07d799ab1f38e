//! The manifest: what a bundle claims to be, in TOML, signed byte for byte.

use semver::Version;
use serde::{Deserialize, Serialize};

/// The manifest format this crate writes and reads.
pub const FORMAT: u32 = 1;

/// A bundle's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`]; a device refuses formats it does not know rather than guess.
    pub format: u32,
    /// The board the payload is built for (`qemu-x86_64`): a device refuses any other.
    pub board: String,
    /// The version the payload installs (semver; build metadata is ignored for ordering).
    pub version: Version,
    /// The oldest version this bundle may update from (its config migrations start there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<Version>,
    /// When it was signed (Unix seconds).
    pub created: u64,
    /// After this (Unix seconds) devices refuse it: a stolen old bundle cannot be replayed forever.
    pub expires: u64,
    /// The payload's exact length in bytes.
    pub payload_size: u64,
    /// The payload's SHA-256, lowercase hex.
    pub payload_sha256: String,
    /// Release notes shown to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Why manifest bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not UTF-8, not TOML, or a field missing or malformed.
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    /// A format this device does not know.
    #[error("manifest format {0} is not supported (this device reads format {FORMAT})")]
    Format(u32),
}

impl Manifest {
    /// Reads manifest bytes (as signed).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::Malformed("not UTF-8".into()))?;
        let doc = edge_config::located::Document::parse(text)
            .map_err(|e| ManifestError::Malformed(e.in_file("manifest").to_string()))?;
        let m: Self = doc
            .deserialize()
            .map_err(|e| ManifestError::Malformed(e.in_file("manifest").to_string()))?;
        if m.format != FORMAT {
            return Err(ManifestError::Format(m.format));
        }
        if m.payload_sha256.len() != 64 || crate::unhex(&m.payload_sha256).is_none() {
            return Err(ManifestError::Malformed(format!(
                "payload_sha256 {:?} is not a SHA-256 in hex",
                m.payload_sha256
            )));
        }
        if m.board.is_empty() || m.board.contains(['/', '\\', '\n']) {
            return Err(ManifestError::Malformed(format!(
                "board {:?} is not a board name",
                m.board
            )));
        }
        Ok(m)
    }

    /// The manifest as TOML (the bytes that get signed).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            board: "qemu-x86_64".into(),
            version: Version::parse("1.2.0").unwrap(),
            min_version: Some(Version::parse("1.0.0").unwrap()),
            created: 1_700_000_000,
            expires: 1_900_000_000,
            payload_size: 3,
            payload_sha256: crate::sha256_hex(b"abc"),
            notes: Some("fixes \"quotes\"\nand lines".into()),
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_does_not_know() {
        let m = sample();
        assert_eq!(Manifest::parse(m.to_toml().as_bytes()).unwrap(), m);
        let text = m.to_toml();
        assert!(matches!(
            Manifest::parse(text.replace("format = 1", "format = 2").as_bytes()),
            Err(ManifestError::Format(2))
        ));
        let extra = format!("{text}\nsurprise = true\n");
        assert!(matches!(
            Manifest::parse(extra.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
        let bad_hash = text.replace(&m.payload_sha256, "abc");
        assert!(Manifest::parse(bad_hash.as_bytes()).is_err());
        let err = Manifest::parse(text.replace("1.2.0", "one").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
        assert!(Manifest::parse(&[0xff, 0xfe]).is_err());
    }
}
