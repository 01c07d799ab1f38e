//! grubenv: GRUB's 1024-byte environment block (`/EFI/BOOT/grubenv` on the ESP), edited exactly as
//! `grub-editenv` does — same header, `name=value` lines with `\` escaping, `#` padding to 1024 bytes, a
//! changed variable kept in its place, a new one appended — and read or set inside an image file through
//! mtools (no mount).

use std::path::Path;

use crate::Error;
use crate::disk::{Partition, partition_span};
use crate::tools;

/// Size of the block.
pub const BLOCK_SIZE: usize = 1024;
/// Its first line.
pub const HEADER: &str = "# GRUB Environment Block\n";
/// Where it lives on the ESP.
pub const ESP_PATH: &str = "::/EFI/BOOT/grubenv";

/// The variables of an environment block, in block order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrubEnv {
    vars: Vec<(String, String)>,
}

impl GrubEnv {
    /// The block of a fresh image: `boot_order="A B" A_left=3 B_left=0`.
    pub fn fresh() -> Self {
        let mut e = Self::default();
        e.set("boot_order", "A B");
        e.set("A_left", "3");
        e.set("B_left", "0");
        e
    }

    /// Parses a block (as `grub-editenv` wrote it, or PID 1 rewrote it).
    pub fn parse(block: &[u8]) -> Result<Self, String> {
        if block.len() != BLOCK_SIZE {
            return Err(format!("grubenv is {} bytes, not {BLOCK_SIZE}", block.len()));
        }
        let rest = block
            .strip_prefix(HEADER.as_bytes())
            .ok_or("grubenv does not start with the GRUB environment block header")?;
        let text = std::str::from_utf8(rest).map_err(|_| "grubenv is not UTF-8")?;
        let mut vars = Vec::new();
        let mut chars = text.chars().peekable();
        let mut line = String::new();
        // Lines end at an unescaped newline; `\x` stands for `x`.
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    line.push('\\');
                    if let Some(n) = chars.next() {
                        line.push(n);
                    }
                }
                '\n' => {
                    if let Some(v) = parse_line(&line) {
                        vars.push(v);
                    }
                    line.clear();
                }
                c => line.push(c),
            }
        }
        Ok(Self { vars })
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Sets `name` (in place if present, else appended).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(v) => v.1 = value.to_owned(),
            None => self.vars.push((name.to_owned(), value.to_owned())),
        }
    }

    /// All variables in block order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// The 1024-byte block, or an error if the variables do not fit.
    pub fn to_block(&self) -> Result<Vec<u8>, String> {
        let mut b = HEADER.as_bytes().to_vec();
        for (n, v) in &self.vars {
            if n.is_empty() || n.contains(['=', '\n', '\\']) {
                return Err(format!("\"{n}\" is not a grubenv variable name"));
            }
            b.extend_from_slice(n.as_bytes());
            b.push(b'=');
            for c in v.bytes() {
                if c == b'\\' || c == b'\n' {
                    b.push(b'\\');
                }
                b.push(c);
            }
            b.push(b'\n');
        }
        if b.len() > BLOCK_SIZE {
            return Err(format!(
                "the variables need {} bytes, over grubenv's {BLOCK_SIZE}",
                b.len()
            ));
        }
        b.resize(BLOCK_SIZE, b'#');
        Ok(b)
    }
}

fn parse_line(line: &str) -> Option<(String, String)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (name, raw) = line.split_once('=')?;
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                value.push(n);
            }
        } else {
            value.push(c);
        }
    }
    Some((name.to_owned(), value))
}

/// mtools' image argument for the ESP of `image`: `<path>@@<offset>`.
fn esp_arg(image: &Path) -> Result<String, Error> {
    let (offset, _) = partition_span(image, Partition::Esp)?;
    Ok(format!("{}@@{offset}", image.display()))
}

/// Reads the grubenv block on the ESP of the image file at `image`.
pub fn read_grubenv(image: &Path) -> Result<GrubEnv, Error> {
    tools::check(&[("mcopy", "mtools")])?;
    let out = tools::run(
        "read grubenv",
        tools::cmd("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-n", "-i", &esp_arg(image)?, ESP_PATH, "-"]),
    )?;
    GrubEnv::parse(&out.stdout).map_err(|m| Error::Other(format!("{}: {m}", image.display())))
}

/// Sets `vars` in the grubenv block on the ESP of `image` (like `grub-editenv set`) and returns the
/// new block's variables. The block stays 1024 bytes.
pub fn set_grubenv(image: &Path, vars: &[(&str, &str)]) -> Result<GrubEnv, Error> {
    let mut env = read_grubenv(image)?;
    for (n, v) in vars {
        env.set(n, v);
    }
    let block = env
        .to_block()
        .map_err(|m| Error::Other(format!("{}: {m}", image.display())))?;
    let tmp = tempfile_near(image, "grubenv")?;
    std::fs::write(&tmp, &block).map_err(|e| Error::io("set grubenv", &tmp, e))?;
    let result = tools::run(
        "set grubenv",
        tools::cmd("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-i", &esp_arg(image)?])
            .arg(&tmp)
            .arg(ESP_PATH),
    );
    let _ = std::fs::remove_file(&tmp);
    result?;
    Ok(env)
}

/// A scratch file name beside `image` (same file system, unique per process).
fn tempfile_near(image: &Path, what: &str) -> Result<std::path::PathBuf, Error> {
    let dir = image
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = image
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    Ok(dir.join(format!(".{name}.{what}.{}", std::process::id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_block_matches_grub_editenv() {
        let b = GrubEnv::fresh().to_block().unwrap();
        assert_eq!(b.len(), 1024);
        let text = "# GRUB Environment Block\nboot_order=A B\nA_left=3\nB_left=0\n";
        assert_eq!(&b[..text.len()], text.as_bytes());
        assert!(b[text.len()..].iter().all(|&c| c == b'#'));
    }

    #[test]
    fn set_keeps_position_and_appends_new() {
        let mut e = GrubEnv::fresh();
        e.set("A_left", "1");
        e.set("extra", "x");
        let names: Vec<&str> = e.vars().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["boot_order", "A_left", "B_left", "extra"]);
        assert_eq!(e.get("A_left"), Some("1"));
        let back = GrubEnv::parse(&e.to_block().unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn same_length_rewrite_is_what_pid1_does() {
        // PID 1 marks slot B good by rewriting B_left=0 to B_left=3 in place: same block length.
        let mut e = GrubEnv::fresh();
        e.set("boot_order", "B A");
        let before = e.to_block().unwrap();
        e.set("B_left", "3");
        let after = e.to_block().unwrap();
        let diff: Vec<usize> = (0..1024).filter(|&i| before[i] != after[i]).collect();
        assert_eq!(diff.len(), 1, "{diff:?}");
    }

    #[test]
    fn values_with_backslash_and_newline_round_trip() {
        let mut e = GrubEnv::default();
        e.set("k", "a\\b\nc");
        let b = e.to_block().unwrap();
        assert!(b.starts_with(b"# GRUB Environment Block\nk=a\\\\b\\\nc\n#"));
        assert_eq!(GrubEnv::parse(&b).unwrap().get("k"), Some("a\\b\nc"));
    }

    #[test]
    fn overlong_and_malformed_blocks_are_refused() {
        let mut e = GrubEnv::default();
        e.set("big", &"x".repeat(1100));
        assert!(e.to_block().is_err());
        assert!(GrubEnv::parse(&[b'#'; 1024]).is_err());
        assert!(GrubEnv::parse(b"# GRUB Environment Block\n").is_err());
        let mut bad = GrubEnv::default();
        bad.set("a=b", "c");
        assert!(bad.to_block().is_err());
    }

    #[test]
    fn comment_lines_and_padding_are_skipped() {
        let mut b = b"# GRUB Environment Block\n# note\nA_left=2\n".to_vec();
        b.resize(1024, b'#');
        let e = GrubEnv::parse(&b).unwrap();
        assert_eq!(e.vars(), [("A_left".to_owned(), "2".to_owned())]);
    }
}
