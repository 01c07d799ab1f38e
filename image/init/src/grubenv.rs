//! The GRUB environment block (`/EFI/BOOT/grubenv` on the ESP): exactly 1024 bytes, the header line
//! `# GRUB Environment Block`, `key=value` lines, then `#` padding to the end.
//!
//! Pure: bytes in, bytes out. The block is always rewritten at the same length, so the shell can write
//! it in place (GRUB's `save_env` refuses a file whose size changed). Escaping follows GRUB's
//! `envblk.c`: a backslash in front of `\` or a newline in a value.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::cmdline::Slot;

/// The size of a GRUB environment block.
pub const BLOCK_LEN: usize = 1024;

const HEADER: &str = "# GRUB Environment Block\n";

/// Tries a slot gets back when it is marked good (the most GRUB's A/B script counts down from).
pub const TRIES_WHEN_GOOD: &str = "3";

/// Why a block cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrubEnvError {
    /// The file is not one 1024-byte block.
    #[error("grubenv is {0} bytes, expected {BLOCK_LEN}")]
    Length(usize),
    /// The block does not start with GRUB's header line.
    #[error("grubenv does not start with {:?}", HEADER.trim_end())]
    Header,
    /// The variables are not UTF-8 text.
    #[error("grubenv variables are not UTF-8 text")]
    NotText,
    /// The variables do not fit in one block.
    #[error("grubenv variables need {0} bytes, more than the {BLOCK_LEN}-byte block")]
    TooLong(usize),
    /// A key GRUB could not read back.
    #[error("grubenv key {0:?} is empty or contains '=', '#' or a line break")]
    BadKey(String),
}

/// The variables of a block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv {
    vars: Vec<(String, String)>,
}

impl GrubEnv {
    /// Reads a block. Lines that are not `key=value` (comments, the padding) are skipped as GRUB does.
    pub fn parse(block: &[u8]) -> Result<Self, GrubEnvError> {
        if block.len() != BLOCK_LEN {
            return Err(GrubEnvError::Length(block.len()));
        }
        let body = block
            .strip_prefix(HEADER.as_bytes())
            .ok_or(GrubEnvError::Header)?;
        // The variables end with the last line break; after it comes the padding, which is rewritten as
        // '#' whatever it holds. A variable that is not text is refused rather than dropped: losing
        // `boot_order` would silently send GRUB back to its defaults.
        let end = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = body
            .get(..end)
            .and_then(|t| std::str::from_utf8(t).ok())
            .filter(|t| !t.contains('\0'))
            .ok_or(GrubEnvError::NotText)?;
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut chars = text.chars().peekable();
        while chars.peek().is_some() {
            // One logical line: a value may hold an escaped newline.
            let mut line = String::new();
            let comment = chars.peek() == Some(&'#');
            while let Some(c) = chars.next() {
                match c {
                    '\\' if !comment => {
                        line.push('\\');
                        if let Some(n) = chars.next() {
                            line.push(n);
                        }
                    }
                    '\n' => break,
                    c => line.push(c),
                }
            }
            if comment {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() || key.contains('\\') {
                continue;
            }
            let value = unescape(value);
            match vars.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => vars.push((key.to_owned(), value)),
            }
        }
        Ok(Self { vars })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` (in place when present, else appended).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), GrubEnvError> {
        if key.is_empty() || key.contains(['=', '#', '\n', '\\', '\0']) {
            return Err(GrubEnvError::BadKey(key.to_owned()));
        }
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.vars.push((key.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    /// The 1024-byte block: header, variables in order, `#` padding.
    pub fn to_block(&self) -> Result<Vec<u8>, GrubEnvError> {
        let mut out = String::from(HEADER);
        for (k, v) in &self.vars {
            out.push_str(k);
            out.push('=');
            for c in v.chars() {
                if c == '\\' || c == '\n' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('\n');
        }
        if out.len() > BLOCK_LEN {
            return Err(GrubEnvError::TooLong(out.len()));
        }
        let mut block = out.into_bytes();
        block.resize(BLOCK_LEN, b'#');
        Ok(block)
    }
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The block with `slot`'s tries reset (`<slot>_left=3`), every other variable kept.
pub fn mark_good(block: &[u8], slot: Slot) -> Result<Vec<u8>, GrubEnvError> {
    let mut env = GrubEnv::parse(block)?;
    env.set(slot.tries_key(), TRIES_WHEN_GOOD)?;
    env.to_block()
}

impl Slot {
    /// The other slot of the pair.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// What the A/B variables say, as the update agent reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbState {
    /// The first slot of `boot_order` (GRUB tries it first).
    pub first: Slot,
    /// Tries left for A and B.
    pub a_left: u8,
    /// Tries left for B.
    pub b_left: u8,
}

impl AbState {
    /// Tries left for `slot`.
    pub fn left(&self, slot: Slot) -> u8 {
        match slot {
            Slot::A => self.a_left,
            Slot::B => self.b_left,
        }
    }
}

/// Reads `boot_order`, `A_left`, `B_left` with GRUB's script's defaults (`"A B"`, 3, 0) for missing or
/// unreadable values.
pub fn ab_state(block: &[u8]) -> Result<AbState, GrubEnvError> {
    let env = GrubEnv::parse(block)?;
    let left = |k: &str, d: u8| env.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d);
    let first = match env.get("boot_order").and_then(|o| o.split_whitespace().next()) {
        Some("B") => Slot::B,
        _ => Slot::A,
    };
    Ok(AbState {
        first,
        a_left: left("A_left", 3),
        b_left: left("B_left", 0),
    })
}

/// Before an update writes `slot`: GRUB must never pick it (0 tries) and boots `slot.other()` first.
pub fn disable(block: &[u8], slot: Slot) -> Result<Vec<u8>, GrubEnvError> {
    let mut env = GrubEnv::parse(block)?;
    env.set(slot.tries_key(), "0")?;
    env.set("boot_order", &format!("{} {}", slot.other(), slot))?;
    env.to_block()
}

/// A one-shot testboot of `slot`: tried first, once; if it does not mark itself good before the next
/// boot, GRUB finds it at 0 tries and boots the other slot (whose tries are left as they are).
pub fn testboot(block: &[u8], slot: Slot) -> Result<Vec<u8>, GrubEnvError> {
    let mut env = GrubEnv::parse(block)?;
    env.set(slot.tries_key(), "1")?;
    env.set("boot_order", &format!("{} {}", slot, slot.other()))?;
    env.to_block()
}

/// After a failed testboot, from the slot that runs: it goes first again; the failed slot gets no tries.
pub fn keep(block: &[u8], running: Slot) -> Result<Vec<u8>, GrubEnvError> {
    disable(block, running.other())
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    /// What `grub-editenv grubenv create; grub-editenv grubenv set boot_order="A B" A_left=3 B_left=0`
    /// writes (checked byte for byte against grub-editenv 2.06).
    fn fresh() -> Vec<u8> {
        let mut b = b"# GRUB Environment Block\nboot_order=A B\nA_left=3\nB_left=0\n".to_vec();
        b.resize(BLOCK_LEN, b'#');
        b
    }

    #[test]
    fn reads_a_fresh_image() {
        let env = GrubEnv::parse(&fresh()).unwrap();
        assert_eq!(env.get("boot_order"), Some("A B"));
        assert_eq!(env.get("A_left"), Some("3"));
        assert_eq!(env.get("B_left"), Some("0"));
        assert_eq!(env.get("nope"), None);
    }

    #[test]
    fn mark_good_sets_tries_and_keeps_the_rest_in_place() {
        let mut after_grub = b"# GRUB Environment Block\nboot_order=B A\nA_left=3\nB_left=1\nx=y\n".to_vec();
        after_grub.resize(BLOCK_LEN, b'#');
        let out = mark_good(&after_grub, Slot::B).unwrap();
        assert_eq!(out.len(), BLOCK_LEN);
        let mut want = b"# GRUB Environment Block\nboot_order=B A\nA_left=3\nB_left=3\nx=y\n".to_vec();
        want.resize(BLOCK_LEN, b'#');
        assert_eq!(out, want);
        // Idempotent.
        assert_eq!(mark_good(&out, Slot::B).unwrap(), want);
    }

    #[test]
    fn mark_good_adds_a_missing_key() {
        let mut b = b"# GRUB Environment Block\nboot_order=A B\n".to_vec();
        b.resize(BLOCK_LEN, b'#');
        let env = GrubEnv::parse(&mark_good(&b, Slot::A).unwrap()).unwrap();
        assert_eq!(env.get("A_left"), Some("3"));
        assert_eq!(env.get("boot_order"), Some("A B"));
    }

    #[test]
    fn escapes_round_trip() {
        let mut env = GrubEnv::default();
        env.set("k", "a\\b\nc=d").unwrap();
        let block = env.to_block().unwrap();
        assert!(block.starts_with(b"# GRUB Environment Block\nk=a\\\\b\\\nc=d\n#"));
        assert_eq!(GrubEnv::parse(&block).unwrap().get("k"), Some("a\\b\nc=d"));
    }

    #[test]
    fn refuses_what_it_cannot_rewrite_safely() {
        assert_eq!(GrubEnv::parse(b"short"), Err(GrubEnvError::Length(5)));
        assert_eq!(GrubEnv::parse(&[b'#'; BLOCK_LEN]), Err(GrubEnvError::Header));
        let mut bad = fresh();
        if let Some(b) = bad.get_mut(30) {
            *b = 0xff;
        }
        assert_eq!(GrubEnv::parse(&bad), Err(GrubEnvError::NotText));
        let mut nul = fresh();
        if let Some(b) = nul.get_mut(30) {
            *b = 0;
        }
        assert_eq!(GrubEnv::parse(&nul), Err(GrubEnvError::NotText));
        let mut env = GrubEnv::default();
        env.set("big", &"x".repeat(1000)).unwrap();
        assert!(matches!(env.to_block(), Err(GrubEnvError::TooLong(_))));
        assert!(env.set("a=b", "1").is_err());
        assert!(env.set("", "1").is_err());
    }

    #[test]
    fn invalid_utf8_in_the_padding_is_ignored() {
        let mut b = fresh();
        if let Some(last) = b.last_mut() {
            *last = 0xff;
        }
        assert_eq!(GrubEnv::parse(&b).unwrap().get("A_left"), Some("3"));
    }

    #[test]
    fn skips_comments_and_junk_lines_and_last_duplicate_wins() {
        let mut b = b"# GRUB Environment Block\n# a comment=x\nnoequals\nA_left=1\nA_left=2\n".to_vec();
        b.resize(BLOCK_LEN, b'#');
        let env = GrubEnv::parse(&b).unwrap();
        assert_eq!(env.get("A_left"), Some("2"));
        assert_eq!(env.get("# a comment"), None);
    }

    #[test]
    fn never_panics_on_arbitrary_blocks() {
        // A cheap deterministic scan over byte patterns inside a valid header.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let mut b = HEADER.as_bytes().to_vec();
            while b.len() < BLOCK_LEN {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let choices = b"ab=\\\n#\xc3\xa9";
                let i = usize::try_from(seed % choices.len() as u64).unwrap();
                b.push(choices[i]);
            }
            if let Ok(env) = GrubEnv::parse(&b) {
                let _ = mark_good(&b, Slot::A);
                if let Ok(out) = env.to_block() {
                    assert_eq!(GrubEnv::parse(&out).unwrap(), env);
                }
            }
        }
    }

    #[test]
    fn testboot_is_one_try_then_the_old_slot() {
        let fresh = fresh();
        let s = ab_state(&fresh).unwrap();
        assert_eq!((s.first, s.a_left, s.b_left), (Slot::A, 3, 0));
        let off = disable(&fresh, Slot::B).unwrap();
        assert_eq!(
            ab_state(&off).unwrap(),
            AbState {
                first: Slot::A,
                a_left: 3,
                b_left: 0
            }
        );
        let t = testboot(&off, Slot::B).unwrap();
        assert_eq!(
            ab_state(&t).unwrap(),
            AbState {
                first: Slot::B,
                a_left: 3,
                b_left: 1
            }
        );
        assert_eq!(t.len(), BLOCK_LEN);
        let kept = keep(&t, Slot::A).unwrap();
        assert_eq!(
            ab_state(&kept).unwrap(),
            AbState {
                first: Slot::A,
                a_left: 3,
                b_left: 0
            }
        );
        assert_eq!(Slot::A.other(), Slot::B);
    }
}
