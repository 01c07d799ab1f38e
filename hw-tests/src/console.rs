//! A board's serial console as lines with arrival times: one reader thread fills the log, tests wait
//! for a pattern after a mark, and can type a line back (the PID 1 test hooks).

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Every line seen so far, with when it arrived.
#[derive(Debug, Default)]
struct Log {
    lines: Vec<(Instant, String)>,
    /// The part of a line not yet ended by `\n`.
    partial: String,
    closed: bool,
}

/// The console: shared log plus the writing half.
pub struct Console {
    log: Arc<(Mutex<Log>, Condvar)>,
    writer: Mutex<Box<dyn Write + Send>>,
    /// A copy of every line goes here too (the test's console log file).
    started: Instant,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("lines", &self.len())
            .finish_non_exhaustive()
    }
}

/// A position in the console log: waits look only at lines after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(usize);

/// Before the first line.
pub const START: Mark = Mark(0);

/// A line that matched, and when it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub at: Instant,
    /// Its index: a mark just after it.
    pub next: Mark,
}

/// Waiting for the console failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("no console line containing {pattern:?} within {waited:?}; last lines:\n{tail}")]
    Timeout {
        pattern: String,
        waited: Duration,
        tail: String,
    },
    #[error("the console closed while waiting for {pattern:?}; last lines:\n{tail}")]
    Closed { pattern: String, tail: String },
    #[error("writing to the console: {0}")]
    Write(#[from] std::io::Error),
}

impl Console {
    /// Starts reading `reader` on a thread; `echo` receives every complete line (e.g. a log file).
    pub fn new(
        mut reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        mut echo: Box<dyn Write + Send>,
        started: Instant,
    ) -> Self {
        let log: Arc<(Mutex<Log>, Condvar)> = Arc::default();
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let now = clock();
                let (lock, cvar) = &*shared;
                let mut log = lock.lock().expect("console log lock poisoned");
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                log.partial.push_str(&text);
                while let Some(i) = log.partial.find('\n') {
                    let line: String = log.partial.drain(..=i).collect();
                    let line = clean(line.trim_end_matches('\n'));
                    let _ = writeln!(echo, "{:8.3} {line}", now.duration_since(started).as_secs_f64());
                    log.lines.push((now, line));
                }
                cvar.notify_all();
            }
            let (lock, cvar) = &*shared;
            lock.lock().expect("console log lock poisoned").closed = true;
            cvar.notify_all();
        });
        Self {
            log,
            writer: Mutex::new(writer),
            started,
        }
    }

    /// The position after every line seen so far.
    pub fn mark(&self) -> Mark {
        Mark(self.len())
    }

    fn len(&self) -> usize {
        self.log.0.lock().expect("console log lock poisoned").lines.len()
    }

    /// When the target was started (boot times are measured from it).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits for a line after `since` containing `pattern`.
    pub fn wait_for(&self, pattern: &str, since: Mark, within: Duration) -> Result<Seen, ConsoleError> {
        let deadline = clock() + within;
        let (lock, cvar) = &*self.log;
        let mut log = lock.lock().expect("console log lock poisoned");
        loop {
            if let Some((i, (at, line))) = log
                .lines
                .iter()
                .enumerate()
                .skip(since.0)
                .find(|(_, (_, l))| l.contains(pattern))
            {
                return Ok(Seen {
                    line: line.clone(),
                    at: *at,
                    next: Mark(i + 1),
                });
            }
            let tail = || tail(&log.lines, 25);
            if log.closed {
                return Err(ConsoleError::Closed {
                    pattern: pattern.into(),
                    tail: tail(),
                });
            }
            let now = clock();
            if now >= deadline {
                return Err(ConsoleError::Timeout {
                    pattern: pattern.into(),
                    waited: within,
                    tail: tail(),
                });
            }
            log = cvar
                .wait_timeout(log, deadline - now)
                .expect("console log lock poisoned")
                .0;
        }
    }

    /// The last line seen so far that contains `pattern`.
    pub fn last_line(&self, pattern: &str) -> Option<String> {
        let log = self.log.0.lock().expect("console log lock poisoned");
        log.lines
            .iter()
            .rev()
            .find(|(_, l)| l.contains(pattern))
            .map(|(_, l)| l.clone())
    }

    /// Types a line on the console (the guest reads it from /dev/console).
    pub fn send_line(&self, line: &str) -> Result<(), ConsoleError> {
        let mut w = self.writer.lock().expect("console writer lock poisoned");
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
        w.flush()?;
        Ok(())
    }
}

fn tail(lines: &[(Instant, String)], n: usize) -> String {
    let from = lines.len().saturating_sub(n);
    lines[from..]
        .iter()
        .map(|(_, l)| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A console line without terminal escape sequences (the firmware and GRUB draw with them).
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[allow(
    clippy::disallowed_methods,
    reason = "the harness talks to real hardware in real time"
)]
fn clock() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out chunks, then ends.
    struct Chunks(std::vec::IntoIter<&'static [u8]>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.next() {
                Some(c) => {
                    buf[..c.len()].copy_from_slice(c);
                    Ok(c.len())
                }
                None => Ok(0),
            }
        }
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_escapes_dropped() {
        let chunks: Vec<&'static [u8]> = vec![
            b"\x1b[2J\x1b[01;01HGRUB-AB: booting ",
            b"slot A\r\nedge-init: re",
            b"ady version=1 slot=A boot_ms=5\r\n",
            b"edge-init: ready version=1 slot=A",
        ];
        let c = Console::new(
            Box::new(Chunks(chunks.into_iter())),
            Box::new(std::io::sink()),
            Box::new(std::io::sink()),
            clock(),
        );
        let start = Mark(0);
        let grub = c
            .wait_for("GRUB-AB: booting slot A", start, Duration::from_secs(5))
            .unwrap();
        assert_eq!(grub.line, "GRUB-AB: booting slot A");
        let ready = c
            .wait_for("edge-init: ready", grub.next, Duration::from_secs(5))
            .unwrap();
        assert!(ready.line.ends_with("boot_ms=5"));
        // The unterminated last line is not a line yet; the console then closes.
        let err = c
            .wait_for("edge-init: ready", ready.next, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, ConsoleError::Closed { .. }), "{err}");
    }

    #[test]
    fn escape_sequences_and_controls_are_removed() {
        assert_eq!(
            clean("\x1b[0;37;40mBdsDxe: loading\x1b[0m\x07"),
            "BdsDxe: loading"
        );
        assert_eq!(clean("plain\ttext"), "plain\ttext");
    }
}
