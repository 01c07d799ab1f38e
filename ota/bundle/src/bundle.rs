//! The bundle file: `MAGIC`, a length-prefixed manifest, a length-prefixed signature block, the payload.
//!
//! ```text
//! "RTC-EDGE-OTA 1\n"          15 bytes
//! u32 big-endian N, manifest   N bytes of TOML (signed byte for byte)
//! u32 big-endian S, signature  S bytes of TOML: key, signature, [[endorsement]]...
//! payload                      manifest.payload_size bytes
//! ```
//!
//! The header is at most [`MAX_HEADER`] bytes, so a device can fetch it alone (an HTTP range) and
//! decide before it downloads or writes any payload.

use serde::{Deserialize, Serialize};

use crate::keys::{Endorsement, KeyError, KeyId, Keyring, MANIFEST_CONTEXT, PublicKey, SigningKey};
use crate::manifest::{Manifest, ManifestError};
use crate::{hex, unhex};

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"RTC-EDGE-OTA 1\n";
/// The largest header (magic, manifest, signature block) a reader accepts.
pub const MAX_HEADER: usize = 64 * 1024;

/// Why bytes are not a bundle header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More bytes are needed (at least `need` in all).
    #[error("the bundle header is cut short: {need} bytes needed")]
    Incomplete {
        /// Bytes the header needs from the start of the file.
        need: usize,
    },
    /// Not a bundle (or a format this reader does not know).
    #[error("not an RTC Edge bundle (bad magic)")]
    Magic,
    /// The header claims more than [`MAX_HEADER`] bytes.
    #[error("the bundle header claims {0} bytes, more than the {MAX_HEADER} allowed")]
    TooLarge(usize),
    /// The manifest is unreadable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The signature block is unreadable.
    #[error("the signature block is malformed: {0}")]
    Signature(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureBlock {
    key: String,
    signature: String,
    #[serde(default, rename = "endorsement", skip_serializing_if = "Vec::is_empty")]
    endorsements: Vec<Endorsement>,
}

/// A parsed (not yet verified) bundle header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The manifest's bytes, as signed.
    pub manifest_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// The key that signed it.
    pub signer: PublicKey,
    /// The signature.
    pub signature: Vec<u8>,
    /// The rotation chain from a trusted key to `signer` (empty when `signer` is trusted itself).
    pub endorsements: Vec<Endorsement>,
    /// Where the payload starts in the file.
    pub payload_offset: u64,
}

impl Header {
    /// The header and its signature for `manifest`, signed by `key`, carrying `endorsements`.
    pub fn sign(manifest: &Manifest, key: &SigningKey, endorsements: &[Endorsement]) -> Vec<u8> {
        let manifest_bytes = manifest.to_toml().into_bytes();
        let block = SignatureBlock {
            key: key.public().to_hex(),
            signature: hex(&key.sign(MANIFEST_CONTEXT, &manifest_bytes)),
            endorsements: endorsements.to_vec(),
        };
        let block = toml::to_string(&block).unwrap_or_default().into_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + manifest_bytes.len() + block.len());
        out.extend_from_slice(MAGIC);
        for part in [&manifest_bytes, &block] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Reads a header from the start of a bundle (`prefix` may hold more: the payload's beginning).
    pub fn parse(prefix: &[u8]) -> Result<Self, HeaderError> {
        let magic = prefix.get(..MAGIC.len().min(prefix.len())).unwrap_or_default();
        if !MAGIC.starts_with(magic) {
            return Err(HeaderError::Magic);
        }
        let mut at = MAGIC.len();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2);
        for _ in 0..2 {
            let len = prefix
                .get(at..at + 4)
                .ok_or(HeaderError::Incomplete { need: at + 4 })?;
            let len =
                usize::try_from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])).unwrap_or(usize::MAX);
            let end = (at + 4).saturating_add(len);
            if end > MAX_HEADER {
                return Err(HeaderError::TooLarge(end));
            }
            parts.push(
                prefix
                    .get(at + 4..end)
                    .ok_or(HeaderError::Incomplete { need: end })?,
            );
            at = end;
        }
        let manifest_bytes = parts[0].to_vec();
        let manifest = Manifest::parse(&manifest_bytes)?;
        let block = std::str::from_utf8(parts[1]).map_err(|_| HeaderError::Signature("not UTF-8".into()))?;
        let block: SignatureBlock =
            toml::from_str(block).map_err(|e| HeaderError::Signature(e.to_string()))?;
        let signer = PublicKey::from_hex(&block.key).map_err(|e| HeaderError::Signature(e.to_string()))?;
        let signature =
            unhex(&block.signature).ok_or_else(|| HeaderError::Signature("signature is not hex".into()))?;
        Ok(Self {
            manifest_bytes,
            manifest,
            signer,
            signature,
            endorsements: block.endorsements,
            payload_offset: u64::try_from(at).unwrap_or(u64::MAX),
        })
    }

    /// Checks the signature against the device's keys; returns the signing key's id.
    pub fn verify(&self, keyring: &Keyring) -> Result<KeyId, KeyError> {
        keyring.verify(
            &self.signer,
            MANIFEST_CONTEXT,
            &self.manifest_bytes,
            &self.signature,
            &self.endorsements,
        )
    }

    /// The whole bundle's length.
    pub fn bundle_len(&self) -> u64 {
        self.payload_offset.saturating_add(self.manifest.payload_size)
    }
}

/// Writes a whole bundle to `out`: the header signed by `key`, then the payload streamed from
/// `payload` and checked against the manifest on the way (a payload that changed since it was hashed
/// fails). `progress` gets the payload bytes written so far after each chunk.
pub fn write(
    manifest: &Manifest,
    key: &SigningKey,
    endorsements: &[Endorsement],
    payload: &mut impl std::io::Read,
    out: &mut impl std::io::Write,
    mut progress: impl FnMut(u64),
) -> Result<(), String> {
    out.write_all(&Header::sign(manifest, key, endorsements))
        .map_err(|e| e.to_string())?;
    let mut check = crate::PayloadCheck::new(manifest);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match payload.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the payload: {e}")),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        check.update(chunk).map_err(|e| e.to_string())?;
        out.write_all(chunk).map_err(|e| e.to_string())?;
        progress(check.seen());
    }
    check
        .finish()
        .map_err(|e| format!("the payload changed while it was bundled: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    #[test]
    fn a_signed_header_parses_verifies_and_refuses_tampering() {
        let key = SigningKey::generate().unwrap();
        let ring = Keyring::new(vec![key.public()]);
        let m = sample();
        let mut file = Header::sign(&m, &key, &[]);
        let header_len = file.len();
        file.extend_from_slice(b"abc");
        let h = Header::parse(&file).unwrap();
        assert_eq!(h.manifest, m);
        assert_eq!(h.payload_offset, header_len as u64);
        assert_eq!(h.bundle_len(), file.len() as u64);
        assert_eq!(h.verify(&ring), Ok(key.public().id()));

        // Every prefix short of the header asks for more, naming how much.
        for cut in 0..header_len {
            match Header::parse(&file[..cut]) {
                Err(HeaderError::Incomplete { need }) => assert!(need > cut && need <= header_len),
                other => panic!("prefix {cut}: {other:?}"),
            }
        }
        // One changed manifest byte (the version) fails the signature, not the parse.
        let mut tampered = file.clone();
        let at = tampered.windows(5).position(|w| w == b"1.2.0").unwrap();
        tampered[at] = b'9';
        let h = Header::parse(&tampered).unwrap();
        assert_eq!(h.verify(&ring), Err(KeyError::BadSignature(key.public().id())));
        // Another key's signature: untrusted.
        let other = SigningKey::generate().unwrap();
        let h = Header::parse(&Header::sign(&m, &other, &[])).unwrap();
        assert_eq!(h.verify(&ring), Err(KeyError::Untrusted(other.public().id())));
        // A rotated key with its endorsement is accepted by a device that knows only the old key.
        let h = Header::parse(&Header::sign(&m, &other, &[key.endorse(&other.public())])).unwrap();
        assert_eq!(h.verify(&ring), Ok(other.public().id()));
        // Junk and oversized headers.
        assert_eq!(Header::parse(b"GIF89a"), Err(HeaderError::Magic));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Header::parse(&huge), Err(HeaderError::TooLarge(_))));
        // `write` gives the same bytes, and refuses a payload that is not the signed one.
        let mut out = Vec::new();
        write(&m, &key, &[], &mut &b"abc"[..], &mut out, |_| {}).unwrap();
        assert_eq!(Header::parse(&out).unwrap().verify(&ring), Ok(key.public().id()));
        assert!(out.ends_with(b"abc"));
        assert!(write(&m, &key, &[], &mut &b"abd"[..], &mut Vec::new(), |_| {}).is_err());
    }
}
