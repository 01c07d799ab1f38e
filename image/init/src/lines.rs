//! Console input cut into lines, for the test hooks.
//!
//! Pure: bytes in as they arrive (any split), complete lines out. CR, LF and CRLF end a line; a line
//! longer than [`MAX_LINE`] is dropped whole rather than split, so no partial command runs.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

/// Longest line kept.
pub const MAX_LINE: usize = 256;

/// Accumulates bytes into lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    cur: Vec<u8>,
    overflow: bool,
}

impl LineBuffer {
    /// Adds `bytes`; returns the lines they completed (lossily decoded, without the terminator).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if !self.overflow && !self.cur.is_empty() {
                    out.push(String::from_utf8_lossy(&self.cur).into_owned());
                }
                self.cur.clear();
                self.overflow = false;
            } else if self.cur.len() < MAX_LINE {
                self.cur.push(b);
            } else {
                self.overflow = true;
            }
        }
        out
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
    fn lines_across_reads() {
        let mut lb = LineBuffer::default();
        assert!(lb.push(b"hook st").is_empty());
        assert_eq!(
            lb.push(b"op-petting\r\nhook stop-gatewayd\n\nx"),
            ["hook stop-petting", "hook stop-gatewayd"]
        );
        assert_eq!(lb.push(b"\r"), ["x"]);
    }

    #[test]
    fn overlong_lines_are_dropped_whole() {
        let mut lb = LineBuffer::default();
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(lb.push(&long).is_empty());
        assert!(lb.push(b"hook stop-petting\n").is_empty());
        assert_eq!(lb.push(b"hook stop-petting\n"), ["hook stop-petting"]);
    }
}
