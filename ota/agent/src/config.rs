//! `update.toml`: where the update server is and how to reach it.
//!
//! The slot ships `/etc/rtc-edge/update.toml` (no server: uploads only); the data partition's
//! `/data/etc/rtc-edge/update.toml` replaces it when present (the site's server, token and CA).

use edge_config::located::{Document, FileError, path};
use serde::Deserialize;

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The update server's base URL (`https://updates.example:8443`); empty: never check in.
    #[serde(default)]
    pub server: String,
    /// The device token sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token: String,
    /// PEM file of the CA (or self-signed certificate) the server's certificate must chain to.
    #[serde(default)]
    pub ca: String,
    /// The release channel (`stable`, `beta`).
    #[serde(default = "stable")]
    pub channel: String,
    /// Seconds between check-ins when all is well (the server may ask for another interval).
    #[serde(default = "interval")]
    pub interval_s: u64,
    /// This device's id at the server; empty: one made up once and kept on the data partition.
    #[serde(default)]
    pub device_id: String,
    /// Longest wait, in seconds, for calls to end before rebooting into a testboot (then it reboots
    /// anyway, so that a box that is never idle still updates).
    #[serde(default = "reboot_wait")]
    pub reboot_wait_s: u64,
    /// The first retry after a failed check-in or download; doubles up to `interval_s`.
    #[serde(default = "backoff")]
    pub backoff_s: u64,
}

fn stable() -> String {
    "stable".into()
}
fn interval() -> u64 {
    300
}
fn backoff() -> u64 {
    15
}
fn reboot_wait() -> u64 {
    1800
}

impl Config {
    /// Reads `text` (from `file`, named in errors with line and key).
    pub fn parse(text: &str, file: &str) -> Result<Self, FileError> {
        let doc = Document::parse(text).map_err(|p| p.in_file(file))?;
        let c: Self = doc.deserialize().map_err(|p| p.in_file(file))?;
        let bad = |key: &str, msg: String| Err(doc.problem_at(&path(&[key]), msg).in_file(file));
        let url = c.server.starts_with("https://") || c.server.starts_with("http://");
        if !c.server.is_empty() && !url {
            return bad(
                "server",
                format!("{:?} is not an http:// or https:// URL", c.server),
            );
        }
        if c.server.starts_with("https://") && c.ca.is_empty() {
            return bad(
                "server",
                "an https server needs `ca` (the PEM file its certificate chains to)".into(),
            );
        }
        if !c.server.is_empty() && c.token.is_empty() {
            return bad("token", "a server needs a device token".into());
        }
        if c.interval_s == 0 {
            return bad("interval_s", "must be at least 1".into());
        }
        if c.backoff_s == 0 || c.backoff_s > c.interval_s {
            return bad(
                "backoff_s",
                format!("must be between 1 and interval_s ({})", c.interval_s),
            );
        }
        if c.channel.is_empty() || c.channel.contains(['/', '\\', '.']) {
            return bad("channel", format!("{:?} is not a channel name", c.channel));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals_name_the_key() {
        let c = Config::parse("", "update.toml").unwrap();
        assert_eq!(
            (c.server.as_str(), c.channel.as_str(), c.interval_s),
            ("", "stable", 300)
        );
        let ok = "server = \"https://10.0.2.100:8443\"\ntoken = \"t\"\nca = \"/data/ca.pem\"\n";
        assert!(Config::parse(ok, "u").is_ok());
        for (text, key, line) in [
            ("server = \"ftp://x\"\n", "server", 1),
            ("token = \"t\"\nserver = \"https://x\"\n", "server", 2),
            ("server = \"http://x\"\n", "token", 1),
            ("interval_s = 0\n", "interval_s", 1),
            ("\nchannel = \"../etc\"\n", "channel", 2),
            ("surprise = 1\n", "surprise", 1),
        ] {
            let e = Config::parse(text, "update.toml").unwrap_err();
            assert_eq!((e.key(), e.line()), (Some(key), line), "{text}: {e}");
            assert!(e.to_string().starts_with("update.toml:"), "{e}");
        }
    }
}
