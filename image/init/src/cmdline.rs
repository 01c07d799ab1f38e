//! The kernel command line (`/proc/cmdline`): the `appl.*` parameters GRUB's A/B script writes.
//!
//! Pure: text in, [`Cmdline`] and warnings out. Unknown parameters are the kernel's business and are
//! ignored; a malformed `appl.*` value is a warning, never a failure (PID 1 boots on with what it has).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::fmt;

/// An A/B slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Slot A (partition 2).
    A,
    /// Slot B (partition 3).
    B,
}

impl Slot {
    /// The grubenv variable holding this slot's tries left.
    pub fn tries_key(self) -> &'static str {
        match self {
            Self::A => "A_left",
            Self::B => "B_left",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
        })
    }
}

/// What PID 1 takes from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// `appl.slot=A|B`: the slot GRUB booted.
    pub slot: Option<Slot>,
    /// `appl.root=`: the slot's squashfs block device.
    pub root: Option<String>,
    /// `appl.esp=`: the ESP (vfat) holding grubenv.
    pub esp: Option<String>,
    /// `appl.data=`: the data partition (ext4).
    pub data: Option<String>,
    /// `appl.testhooks=1`: console test hooks are on (HIL images only).
    pub testhooks: bool,
}

/// Splits a command line into parameters the way the kernel does: on whitespace, with double quotes
/// grouping (the quotes themselves are dropped).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parses `/proc/cmdline`. Returns the parameters and one warning per malformed `appl.*` value.
pub fn parse(text: &str) -> (Cmdline, Vec<String>) {
    let mut c = Cmdline::default();
    let mut warnings = Vec::new();
    for word in words(text) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        let device = |v: Option<&str>, warnings: &mut Vec<String>| match v {
            Some(v) if v.starts_with('/') => Some(v.to_owned()),
            _ => {
                warnings.push(format!("{key}: expected a device path, found {word:?}"));
                None
            }
        };
        match key {
            "appl.slot" => {
                c.slot = match value {
                    Some("A") => Some(Slot::A),
                    Some("B") => Some(Slot::B),
                    _ => {
                        warnings.push(format!("appl.slot: expected A or B, found {word:?}"));
                        None
                    }
                }
            }
            "appl.root" => c.root = device(value, &mut warnings),
            "appl.esp" => c.esp = device(value, &mut warnings),
            "appl.data" => c.data = device(value, &mut warnings),
            "appl.testhooks" => c.testhooks = value == Some("1"),
            _ => {}
        }
    }
    (c, warnings)
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn grub_line() {
        let (c, w) = parse(
            "console=ttyS0 quiet appl.slot=B appl.root=/dev/vda3 appl.esp=/dev/vda1 appl.data=/dev/vda4\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c,
            Cmdline {
                slot: Some(Slot::B),
                root: Some("/dev/vda3".into()),
                esp: Some("/dev/vda1".into()),
                data: Some("/dev/vda4".into()),
                testhooks: false,
            }
        );
    }

    #[test]
    fn testhooks_only_when_one() {
        assert!(parse("appl.testhooks=1").0.testhooks);
        assert!(!parse("appl.testhooks=0").0.testhooks);
        assert!(!parse("appl.testhooks").0.testhooks);
        assert!(!parse("xappl.testhooks=1").0.testhooks);
    }

    #[test]
    fn quotes_group_and_later_wins() {
        let (c, w) = parse(r#"foo="a b" appl.root="/dev/vda2" appl.root=/dev/vda3"#);
        assert!(w.is_empty());
        assert_eq!(c.root.as_deref(), Some("/dev/vda3"));
        assert_eq!(words(r#"foo="a b"  c "" d"#), ["foo=a b", "c", "", "d"]);
    }

    #[test]
    fn malformed_values_warn() {
        let (c, w) = parse("appl.slot=C appl.root=vda2 appl.esp appl.data=");
        assert_eq!(c, Cmdline::default());
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.first().is_some_and(|w| w.contains("appl.slot")), "{w:?}");
    }

    #[test]
    fn empty_and_unicode() {
        assert_eq!(parse("").0, Cmdline::default());
        assert_eq!(parse("  \t\n").0, Cmdline::default());
        assert_eq!(parse("é=ü appl.slot=A").0.slot, Some(Slot::A));
    }

    #[test]
    fn slot_names() {
        assert_eq!(Slot::A.to_string(), "A");
        assert_eq!(Slot::B.tries_key(), "B_left");
    }
}
