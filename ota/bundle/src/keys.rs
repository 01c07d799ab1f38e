//! Signing keys (ed25519), the public keys a device trusts, and key rotation.
//!
//! Rotation: the holder of a trusted key signs an **endorsement** of a new public key. A bundle signed
//! with the new key carries the endorsement chain, so devices that only know the old key accept it;
//! the images it installs ship the new key, and the old one can be retired from later images.
//!
//! Every signature is domain-separated (a fixed prefix names what is signed), so a manifest signature
//! can never be replayed as an endorsement or the other way round.

use serde::{Deserialize, Serialize};

use crate::{hex, unhex};

/// What a manifest signature covers: this prefix, then the manifest's exact bytes.
pub const MANIFEST_CONTEXT: &[u8] = b"rtc-edge-ota manifest v1\n";
/// What an endorsement covers: this prefix, then the endorsed public key's 32 bytes.
pub const ENDORSEMENT_CONTEXT: &[u8] = b"rtc-edge-ota key endorsement v1\n";
/// The longest endorsement chain followed (old key → … → signing key).
pub const MAX_CHAIN: usize = 8;

/// Why a key file or a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key file is not what it says.
    #[error("{0}")]
    File(String),
    /// The signing key is neither trusted nor endorsed (through a valid chain) by a trusted key.
    #[error("the bundle is signed by key {0}, which this device does not trust")]
    Untrusted(KeyId),
    /// The signature does not verify.
    #[error("the signature by key {0} does not verify")]
    BadSignature(KeyId),
    /// The device holds no keys at all.
    #[error("no trusted keys: this device cannot accept any update")]
    NoKeys,
}

/// Reads a key file's TOML (`what`: "a public key", for the error).
fn read_file<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, KeyError> {
    toml::from_str(text).map_err(|e| KeyError::File(format!("not {what} file: {e}")))
}

/// A key file's `kind` must be `want` (a private key is never read as a public one, and so on).
fn check_kind(kind: &str, want: &str) -> Result<(), KeyError> {
    if kind == want {
        Ok(())
    } else {
        Err(KeyError::File(format!("kind is {kind:?}, expected {want:?}")))
    }
}

/// A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// An ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// From the key's 32 bytes in hex.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        unhex(text)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or_else(|| KeyError::File(format!("{text:?} is not a 32-byte ed25519 public key in hex")))
    }

    /// The key's 32 bytes in hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The key's short name.
    pub fn id(&self) -> KeyId {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(d.as_ref().get(..8).unwrap_or(&[0; 8]));
        KeyId(id)
    }

    /// Whether `signature` is this key's signature over `context` + `message`.
    pub fn verifies(&self, context: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let mut signed = Vec::with_capacity(context.len() + message.len());
        signed.extend_from_slice(context);
        signed.extend_from_slice(message);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0)
            .verify(&signed, signature)
            .is_ok()
    }

    /// The public key file: TOML, `kind = "ed25519-public"`, `key = "<hex>"`.
    pub fn to_file(&self) -> String {
        format!(
            "# RTC Edge OTA public key {id}: devices holding it accept bundles signed by it.\n\
             kind = \"ed25519-public\"\nkey = \"{key}\"\n",
            id = self.id(),
            key = self.to_hex()
        )
    }

    /// Reads a public key file.
    pub fn from_file(text: &str) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            kind: String,
            key: String,
        }
        let f: File = read_file(text, "a public key")?;
        check_kind(&f.kind, "ed25519-public")?;
        Self::from_hex(&f.key)
    }
}

/// An ed25519 signing key (PKCS#8). Lives offline with the vendor, never on a device.
pub struct SigningKey {
    pkcs8: Vec<u8>,
    pair: ring::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().id())
    }
}

impl SigningKey {
    /// A fresh key from the system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::File("the system random source failed".into()))?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// From a PKCS#8 (v1 or v2) document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| KeyError::File(format!("not an ed25519 PKCS#8 key: {e}")))?;
        Ok(Self {
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        use ring::signature::KeyPair;
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    /// The signature over `context` + `message`.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> Vec<u8> {
        let mut signed = Vec::with_capacity(context.len() + message.len());
        signed.extend_from_slice(context);
        signed.extend_from_slice(message);
        self.pair.sign(&signed).as_ref().to_vec()
    }

    /// Endorses `new`: devices trusting this key will trust `new` when a bundle carries this.
    pub fn endorse(&self, new: &PublicKey) -> Endorsement {
        Endorsement {
            key: new.to_hex(),
            by: self.public().id().to_string(),
            signature: hex(&self.sign(ENDORSEMENT_CONTEXT, &new.0)),
        }
    }

    /// The private key file: TOML, `kind = "ed25519-private"`, `pkcs8 = "<hex>"`.
    pub fn to_file(&self) -> String {
        format!(
            "# RTC Edge OTA signing key {id}. Keep it offline: whoever holds it can update every device\n\
             # that trusts it.\nkind = \"ed25519-private\"\npkcs8 = \"{pkcs8}\"\n",
            id = self.public().id(),
            pkcs8 = hex(&self.pkcs8)
        )
    }

    /// Reads a private key file.
    pub fn from_file(text: &str) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            kind: String,
            pkcs8: String,
        }
        let f: File = read_file(text, "a signing key")?;
        check_kind(&f.kind, "ed25519-private")?;
        let der = unhex(&f.pkcs8).ok_or_else(|| KeyError::File("pkcs8 is not hex".into()))?;
        Self::from_pkcs8(&der)
    }
}

/// A trusted key's signature over a new public key (one link of a rotation chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endorsement {
    /// The endorsed public key, hex.
    pub key: String,
    /// The endorsing key's id.
    pub by: String,
    /// The endorsing key's signature, hex.
    pub signature: String,
}

impl Endorsement {
    /// The endorsement file (TOML).
    pub fn to_file(&self) -> String {
        format!(
            "# RTC Edge OTA key endorsement: key {by} vouches for the key below.\n\
             kind = \"ed25519-endorsement\"\nkey = \"{key}\"\nby = \"{by}\"\nsignature = \"{sig}\"\n",
            by = self.by,
            key = self.key,
            sig = self.signature
        )
    }

    /// Reads an endorsement file.
    pub fn from_file(text: &str) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            kind: String,
            #[serde(flatten)]
            e: Endorsement,
        }
        let f: File = read_file(text, "an endorsement")?;
        check_kind(&f.kind, "ed25519-endorsement")?;
        Ok(f.e)
    }
}

/// The public keys a device trusts (shipped in its image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

impl Keyring {
    /// A keyring holding `keys`.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

    /// Every `*.pub` key file in `dir`, in name order; a folder that does not exist is an empty
    /// keyring (a device built without a vendor key accepts nothing). The message names the file.
    pub fn from_dir(dir: &std::path::Path) -> Result<Self, String> {
        let mut keys = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<std::path::PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths.iter().filter(|p| p.extension().is_some_and(|x| x == "pub")) {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                keys.push(PublicKey::from_file(&text).map_err(|e| format!("{}: {e}", p.display()))?);
            }
        }
        Ok(Self { keys })
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Checks `signature` by `signer` over `context` + `message`: the signer must be trusted, or
    /// endorsed through `chain` by a trusted key. Returns the signer's id.
    pub fn verify(
        &self,
        signer: &PublicKey,
        context: &[u8],
        message: &[u8],
        signature: &[u8],
        chain: &[Endorsement],
    ) -> Result<KeyId, KeyError> {
        if self.keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut accepted = self.keys.clone();
        // Each round may add the keys endorsed by keys accepted so far.
        for _ in 0..MAX_CHAIN {
            let before = accepted.len();
            for e in chain {
                let Ok(key) = PublicKey::from_hex(&e.key) else {
                    continue;
                };
                if accepted.contains(&key) {
                    continue;
                }
                let Some(sig) = unhex(&e.signature) else { continue };
                let endorser = accepted.iter().find(|k| k.id().to_string() == e.by).copied();
                if endorser.is_some_and(|by| by.verifies(ENDORSEMENT_CONTEXT, &key.0, &sig)) {
                    accepted.push(key);
                }
            }
            if accepted.len() == before {
                break;
            }
        }
        if !accepted.contains(signer) {
            return Err(KeyError::Untrusted(signer.id()));
        }
        if signer.verifies(context, message, signature) {
            Ok(signer.id())
        } else {
            Err(KeyError::BadSignature(signer.id()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip() {
        let k = SigningKey::generate().unwrap();
        let k2 = SigningKey::from_file(&k.to_file()).unwrap();
        assert_eq!(k.public(), k2.public());
        assert_eq!(PublicKey::from_file(&k.public().to_file()).unwrap(), k.public());
        let e = k.endorse(&k2.public());
        assert_eq!(Endorsement::from_file(&e.to_file()).unwrap(), e);
        assert!(
            PublicKey::from_file(&k.to_file()).is_err(),
            "a private key file is not a public one"
        );
        assert!(SigningKey::from_file("kind = \"ed25519-private\"\npkcs8 = \"00\"\n").is_err());
    }

    #[test]
    fn only_trusted_or_endorsed_keys_verify() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let newer = SigningKey::generate().unwrap();
        let stranger = SigningKey::generate().unwrap();
        let ring = Keyring::new(vec![old.public()]);
        let msg = b"format = 1\n";
        let sig = |k: &SigningKey| k.sign(MANIFEST_CONTEXT, msg);

        assert_eq!(
            ring.verify(&old.public(), MANIFEST_CONTEXT, msg, &sig(&old), &[]),
            Ok(old.public().id())
        );
        // A new key is refused alone, accepted with the old key's endorsement, and through a chain.
        assert_eq!(
            ring.verify(&new.public(), MANIFEST_CONTEXT, msg, &sig(&new), &[]),
            Err(KeyError::Untrusted(new.public().id()))
        );
        let e1 = old.endorse(&new.public());
        assert!(
            ring.verify(
                &new.public(),
                MANIFEST_CONTEXT,
                msg,
                &sig(&new),
                std::slice::from_ref(&e1)
            )
            .is_ok()
        );
        let e2 = new.endorse(&newer.public());
        assert!(
            ring.verify(
                &newer.public(),
                MANIFEST_CONTEXT,
                msg,
                &sig(&newer),
                &[e2, e1.clone()]
            )
            .is_ok(),
            "a chain in any order"
        );
        // A stranger cannot endorse itself, nor reuse an endorsement of another key.
        let self_endorsed = stranger.endorse(&stranger.public());
        assert!(
            ring.verify(
                &stranger.public(),
                MANIFEST_CONTEXT,
                msg,
                &sig(&stranger),
                &[self_endorsed]
            )
            .is_err()
        );
        let mut forged = e1;
        forged.key = stranger.public().to_hex();
        assert!(
            ring.verify(
                &stranger.public(),
                MANIFEST_CONTEXT,
                msg,
                &sig(&stranger),
                &[forged]
            )
            .is_err()
        );
        // A wrong signature, a signature in another context, and an empty keyring.
        assert_eq!(
            ring.verify(&old.public(), MANIFEST_CONTEXT, b"format = 2\n", &sig(&old), &[]),
            Err(KeyError::BadSignature(old.public().id()))
        );
        let as_endorsement = old.sign(ENDORSEMENT_CONTEXT, msg);
        assert!(
            ring.verify(&old.public(), MANIFEST_CONTEXT, msg, &as_endorsement, &[])
                .is_err()
        );
        assert_eq!(
            Keyring::default().verify(&old.public(), MANIFEST_CONTEXT, msg, &sig(&old), &[]),
            Err(KeyError::NoKeys)
        );
    }
}
