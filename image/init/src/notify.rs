//! The receiving side of sd_notify: one datagram of newline-separated `KEY=VALUE` assignments
//! (systemd's `sd_notify(3)`), as `gatewayd` sends them through the `sd-notify` crate.
//!
//! Pure: bytes in, [`Notification`] out. Unknown keys are ignored (systemd does the same); the text
//! of `STATUS=` is kept printable so it can be shown on a console.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

/// Longest datagram read (systemd accepts up to its pipe buffer; gatewayd's are a few dozen bytes).
pub const MAX_DATAGRAM: usize = 4096;

/// Longest `STATUS=` text kept.
const MAX_STATUS: usize = 256;

/// What one datagram said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    /// `READY=1`: start-up finished.
    pub ready: bool,
    /// `WATCHDOG=1`: the keep-alive ping.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the service asks to be treated as hung.
    pub watchdog_trigger: bool,
    /// `STOPPING=1`: the service is shutting down on its own.
    pub stopping: bool,
    /// `STATUS=...`: free text, control characters replaced.
    pub status: Option<String>,
}

impl Notification {
    /// Parses one datagram. Never fails: a line that is not an assignment is skipped, invalid UTF-8 is
    /// replaced.
    pub fn parse(datagram: &[u8]) -> Self {
        let datagram = datagram.get(..MAX_DATAGRAM).unwrap_or(datagram);
        let text = String::from_utf8_lossy(datagram);
        let mut n = Self::default();
        for line in text.split('\n') {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "READY" => n.ready = value == "1",
                "WATCHDOG" if value == "1" => n.watchdog = true,
                "WATCHDOG" if value == "trigger" => n.watchdog_trigger = true,
                "STOPPING" => n.stopping = value == "1",
                "STATUS" => {
                    n.status = Some(
                        value
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .take(MAX_STATUS)
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        n
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn gatewayds_messages() {
        assert_eq!(
            Notification::parse(b"READY=1\nSTATUS=listening"),
            Notification {
                ready: true,
                status: Some("listening".into()),
                ..Notification::default()
            }
        );
        let n = Notification::parse(b"WATCHDOG=1\nSTATUS=calls=2 ending=0 registrations=1 media=2\n");
        assert!(n.watchdog && !n.ready);
        assert_eq!(
            n.status.as_deref(),
            Some("calls=2 ending=0 registrations=1 media=2")
        );
        assert!(Notification::parse(b"STOPPING=1").stopping);
    }

    #[test]
    fn values_other_than_one_do_not_count() {
        let n = Notification::parse(b"READY=0\nWATCHDOG=0\nSTOPPING=yes");
        assert_eq!(n, Notification::default());
        assert!(Notification::parse(b"WATCHDOG=trigger").watchdog_trigger);
        assert!(!Notification::parse(b"WATCHDOG=trigger").watchdog);
    }

    #[test]
    fn junk_is_ignored() {
        assert_eq!(Notification::parse(b""), Notification::default());
        assert_eq!(
            Notification::parse(b"\n\n=\nREADY\nFOO=1\xff\xfe"),
            Notification::default()
        );
        assert!(Notification::parse(b"MAINPID=7\nREADY=1\n").ready);
    }

    #[test]
    fn status_is_printable_and_bounded() {
        let n = Notification::parse(b"STATUS=a\x1b[31mb\rc");
        assert_eq!(n.status.as_deref(), Some("a [31mb c"));
        let long = format!("STATUS={}", "x".repeat(10_000));
        assert_eq!(
            Notification::parse(long.as_bytes()).status.map(|s| s.len()),
            Some(MAX_STATUS)
        );
    }
}
