//! `/modules.list` in the initramfs: one `/mods/<file>.ko` per line, dependencies first, optional
//! module parameters after a space (`/mods/i6300esb.ko heartbeat=10`).
//!
//! Pure: text in, the modules to load in order. Blank lines and `#` comments are skipped.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The `.ko` file.
    pub path: String,
    /// Parameters for `finit_module` (may be empty).
    pub params: String,
}

impl Module {
    /// The file name without directory or `.ko`, for messages.
    pub fn name(&self) -> &str {
        let file = self.path.rsplit('/').next().unwrap_or(&self.path);
        file.strip_suffix(".ko").unwrap_or(file)
    }
}

/// The modules listed in `text`, in order.
pub fn parse(text: &str) -> Vec<Module> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (path, params) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            Module {
                path: path.to_owned(),
                params: params.trim().to_owned(),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_parameters() {
        let m = parse(
            "/mods/virtio_blk.ko\n\n# comment\n/mods/i6300esb.ko heartbeat=10  nowayout=0\n  /mods/squashfs.ko\r\n",
        );
        assert_eq!(
            m,
            [
                Module {
                    path: "/mods/virtio_blk.ko".into(),
                    params: String::new()
                },
                Module {
                    path: "/mods/i6300esb.ko".into(),
                    params: "heartbeat=10  nowayout=0".into()
                },
                Module {
                    path: "/mods/squashfs.ko".into(),
                    params: String::new()
                },
            ]
        );
        assert_eq!(m[1].name(), "i6300esb");
        assert!(parse("").is_empty());
    }

    #[test]
    fn names() {
        let m = |p: &str| Module {
            path: p.into(),
            params: String::new(),
        };
        assert_eq!(m("nls_cp437.ko").name(), "nls_cp437");
        assert_eq!(m("/mods/x").name(), "x");
    }
}
