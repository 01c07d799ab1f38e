//! The server's configuration file (TOML). Every refusal names the file, line and key.
//!
//! ```toml
//! listen = "127.0.0.1:8443"
//! store = "/var/lib/rtc-edge-updates"   # relative paths are relative to this file
//! tls_cert = "server.pem"                # optional, with tls_key; without them: plain HTTP
//! tls_key = "server.key"
//! device_tokens = ["tok1", "tok2"]       # at least one
//! admin_token = "adm"
//! checkin_interval_s = 300
//! keys = []                              # trusted public keys: uploads must verify against them
//! [pause]
//! min_failures = 2
//! failure_percent = 20
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use edge_config::located::{Document, FileError, Seg, path};
use edge_ota::{Keyring, PublicKey};
use serde::Deserialize;

use crate::fleet::PausePolicy;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// As given.
        file: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A syntax error or a wrong key or value (file, line, key).
    #[error(transparent)]
    File(#[from] FileError),
}

/// The certificate chain and private key (PEM) that turn on TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The folder holding the bundles and `state.json`.
    pub store: PathBuf,
    /// TLS, or `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Tokens devices authenticate with.
    pub device_tokens: Vec<String>,
    /// The operator's token.
    pub admin_token: String,
    /// Told to devices as `next_checkin_s`.
    pub checkin_interval_s: u64,
    /// Keys uploads must be signed by (through an endorsement chain); empty: uploads are not verified.
    pub keys: Keyring,
    /// When a release pauses itself.
    pub pause: PausePolicy,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &self.store)
            .field("tls", &self.tls)
            .field(
                "device_tokens",
                &format_args!("[{} redacted]", self.device_tokens.len()),
            )
            .field("admin_token", &"redacted")
            .field("checkin_interval_s", &self.checkin_interval_s)
            .field("keys", &self.keys)
            .field("pause", &self.pause)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    store: String,
    #[serde(default)]
    tls_cert: Option<String>,
    #[serde(default)]
    tls_key: Option<String>,
    device_tokens: Vec<String>,
    admin_token: String,
    #[serde(default = "default_interval")]
    checkin_interval_s: u64,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    pause: RawPause,
}

fn default_interval() -> u64 {
    300
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPause {
    min_failures: u64,
    failure_percent: u64,
}

impl Default for RawPause {
    fn default() -> Self {
        let p = PausePolicy::default();
        Self {
            min_failures: p.min_failures,
            failure_percent: p.failure_percent,
        }
    }
}

/// Whether `token` can travel in an `Authorization` header: visible ASCII, no spaces.
fn is_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

impl Config {
    /// Reads and checks `file`.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.display().to_string(),
            source,
        })?;
        let base = file.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &file.display().to_string(), base)
    }

    /// Checks `text`, the file named `name` in folder `base` (which relative paths start from; key
    /// files are read from there).
    pub fn parse(text: &str, name: &str, base: &Path) -> Result<Self, ConfigError> {
        let doc = Document::parse(text).map_err(|p| p.in_file(name))?;
        let raw: Raw = doc.deserialize().map_err(|p| p.in_file(name))?;
        let fail =
            |at: Vec<Seg>, message: String| ConfigError::File(doc.problem_at(&at, message).in_file(name));

        let listen = raw.listen.parse().map_err(|e| {
            fail(
                path(&["listen"]),
                format!("{:?} is not an address:port ({e})", raw.listen),
            )
        })?;
        if raw.store.is_empty() {
            return Err(fail(path(&["store"]), "the store folder must be named".into()));
        }
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: base.join(cert),
                key: base.join(key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(fail(path(&["tls_cert"]), "tls_cert needs tls_key too".into()));
            }
            (None, Some(_)) => return Err(fail(path(&["tls_key"]), "tls_key needs tls_cert too".into())),
        };
        if raw.device_tokens.is_empty() {
            return Err(fail(
                path(&["device_tokens"]),
                "at least one device token is needed".into(),
            ));
        }
        for (i, token) in raw.device_tokens.iter().enumerate() {
            if !is_token(token) {
                return Err(fail(
                    vec![Seg::Key("device_tokens".into()), Seg::Index(i)],
                    "a token is visible ASCII without spaces".into(),
                ));
            }
        }
        if !is_token(&raw.admin_token) {
            return Err(fail(
                path(&["admin_token"]),
                "a token is visible ASCII without spaces".into(),
            ));
        }
        if raw.device_tokens.contains(&raw.admin_token) {
            return Err(fail(
                path(&["admin_token"]),
                "the admin token must differ from every device token".into(),
            ));
        }
        if raw.checkin_interval_s == 0 {
            return Err(fail(
                path(&["checkin_interval_s"]),
                "must be at least 1 second".into(),
            ));
        }
        if raw.pause.min_failures == 0 {
            return Err(fail(
                path(&["pause", "min_failures"]),
                "must be at least 1 (0 would pause on the first report)".into(),
            ));
        }
        if raw.pause.failure_percent > 100 {
            return Err(fail(
                path(&["pause", "failure_percent"]),
                "must be 0 to 100".into(),
            ));
        }
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (i, key) in raw.keys.iter().enumerate() {
            let at = || vec![Seg::Key("keys".into()), Seg::Index(i)];
            let file = base.join(key);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(at(), format!("cannot read {}: {e}", file.display())))?;
            keys.push(
                PublicKey::from_file(&text).map_err(|e| fail(at(), format!("{}: {e}", file.display())))?,
            );
        }
        Ok(Self {
            listen,
            store: base.join(raw.store),
            tls,
            device_tokens: raw.device_tokens,
            admin_token: raw.admin_token,
            checkin_interval_s: raw.checkin_interval_s,
            keys: Keyring::new(keys),
            pause: PausePolicy {
                min_failures: raw.pause.min_failures,
                failure_percent: raw.pause.failure_percent,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8443"
store = "updates"
tls_cert = "server.pem"
tls_key = "server.key"
device_tokens = ["tok1", "tok2"]
admin_token = "adm"
[pause]
failure_percent = 30
"#;

    fn refused(text: &str) -> FileError {
        match Config::parse(text, "server.toml", Path::new("/etc/x")) {
            Err(ConfigError::File(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_file_with_defaults_and_relative_paths() {
        let c = Config::parse(GOOD, "server.toml", Path::new("/etc/x")).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(c.store, Path::new("/etc/x/updates"));
        assert_eq!(c.tls.unwrap().key, Path::new("/etc/x/server.key"));
        assert_eq!(c.checkin_interval_s, 300);
        assert_eq!(
            c.pause,
            PausePolicy {
                min_failures: 2,
                failure_percent: 30
            }
        );
        assert!(c.keys.keys().is_empty());
        let absolute = GOOD.replace("\"updates\"", "\"/srv/u\"");
        let c = Config::parse(&absolute, "server.toml", Path::new("/etc/x")).unwrap();
        assert_eq!(c.store, Path::new("/srv/u"));
        assert!(!format!("{c:?}").contains("tok1"), "tokens stay out of logs");
    }

    #[test]
    fn refusals_name_line_and_key() {
        let e = refused(&GOOD.replace("127.0.0.1:8443", "localhost"));
        assert_eq!((e.line(), e.key()), (2, Some("listen")), "{e}");
        assert!(e.to_string().starts_with("server.toml:2:"), "{e}");
        let e = refused(&GOOD.replace("tls_key = \"server.key\"\n", ""));
        assert_eq!(e.key(), Some("tls_cert"), "{e}");
        let e = refused(&GOOD.replace("[\"tok1\", \"tok2\"]", "[]"));
        assert_eq!((e.line(), e.key()), (6, Some("device_tokens")), "{e}");
        let e = refused(&GOOD.replace("\"tok2\"", "\"has space\""));
        assert_eq!(e.key(), Some("device_tokens[1]"), "{e}");
        let e = refused(&GOOD.replace("\"adm\"", "\"tok1\""));
        assert_eq!(e.key(), Some("admin_token"), "{e}");
        let e = refused(&GOOD.replace("failure_percent = 30", "failure_percent = 130"));
        assert_eq!((e.line(), e.key()), (9, Some("pause.failure_percent")), "{e}");
        let e = refused(&format!("{GOOD}min_failures = 0\n"));
        assert_eq!(e.key(), Some("pause.min_failures"), "{e}");
        let e = refused(&format!("{GOOD}surprise = 1\n"));
        assert_eq!(e.key(), Some("pause.surprise"), "{e}");
        let e = refused(&GOOD.replace("admin_token = \"adm\"\n", ""));
        assert_eq!(e.key(), Some("admin_token"), "{e}");
        let e = refused(&GOOD.replace(
            "store = \"updates\"",
            "store = \"updates\"\nkeys = [\"absent.pub\"]",
        ));
        assert_eq!((e.line(), e.key()), (4, Some("keys[0]")), "{e}");
        assert!(e.to_string().contains("/etc/x/absent.pub"), "{e}");
        assert!(matches!(
            Config::load(Path::new("/nonexistent/server.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
