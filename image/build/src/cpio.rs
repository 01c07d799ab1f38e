//! A deterministic cpio "newc" writer for the initramfs: entries sorted by path, owner 0:0, mtime 0,
//! inode numbers counted in that order — the same bytes for the same files on every build.

use std::collections::BTreeMap;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    CharDevice { major: u32, minor: u32 },
}

/// An archive being assembled.
#[derive(Debug, Default)]
pub(crate) struct Cpio {
    entries: BTreeMap<String, (u32, Kind)>,
}

impl Cpio {
    /// A directory (`path` without a leading `/`), with permission bits `perm`.
    pub(crate) fn dir(&mut self, path: &str, perm: u32) {
        self.entries.insert(clean(path), (0o040_000 | perm, Kind::Dir));
    }

    /// A regular file.
    pub(crate) fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) {
        self.entries
            .insert(clean(path), (0o100_000 | perm, Kind::File(data)));
    }

    /// A character device node (no root needed: it is only bytes in the archive).
    pub(crate) fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entries
            .insert(clean(path), (0o020_000 | perm, Kind::CharDevice { major, minor }));
    }

    /// The archive. Sorting by path puts every directory before its content.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, (mode, kind))) in (1u32..).zip(&self.entries) {
            let (nlink, data, rdev): (u32, &[u8], (u32, u32)) = match kind {
                Kind::Dir => (2, &[], (0, 0)),
                Kind::File(d) => (1, d, (0, 0)),
                Kind::CharDevice { major, minor } => (1, &[], (*major, *minor)),
            };
            header(&mut out, ino, *mode, nlink, data.len(), rdev, path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, size: usize, rdev: (u32, u32), name: &str) {
    let size = u32::try_from(size).expect("initramfs members are far below 4 GiB");
    let namesize = u32::try_from(name.len() + 1).expect("paths are short");
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
    // namesize, check
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(entry: &[u8], i: usize) -> u32 {
        let at = 6 + 8 * i;
        u32::from_str_radix(std::str::from_utf8(&entry[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn entries_are_sorted_owned_by_root_at_time_zero() {
        let mut c = Cpio::default();
        c.file("/init", 0o755, b"ELF!".to_vec());
        c.dir("/mods", 0o755);
        c.file("/mods/a.ko", 0o644, vec![1, 2, 3]);
        c.char_device("/dev/console", 0o600, 5, 1);
        c.dir("/dev", 0o755);
        let b = c.to_bytes();
        assert_eq!(b.len() % 4, 0);
        // First entry: "dev", a directory.
        assert_eq!(&b[..6], b"070701");
        assert_eq!(field(&b, 1), 0o040_755);
        assert_eq!(
            (field(&b, 2), field(&b, 3), field(&b, 5)),
            (0, 0, 0),
            "uid, gid, mtime"
        );
        assert_eq!(field(&b, 11), 4, "namesize of \"dev\\0\"");
        assert_eq!(&b[110..114], b"dev\0");
        let names: Vec<usize> = [
            "dev\0",
            "dev/console\0",
            "init\0",
            "mods\0",
            "mods/a.ko\0",
            "TRAILER!!!\0",
        ]
        .iter()
        .map(|n| b.windows(n.len()).position(|w| w == n.as_bytes()).unwrap())
        .collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted: {names:?}");
        // The device node carries its numbers in rdev.
        let dev = names[1] - 110;
        assert_eq!((field(&b[dev..], 9), field(&b[dev..], 10)), (5, 1));
        // Same input, same bytes.
        assert_eq!(b, c.to_bytes());
    }

    #[test]
    fn file_data_is_padded_to_four_bytes() {
        let mut c = Cpio::default();
        c.file("a", 0o644, vec![9; 5]);
        let b = c.to_bytes();
        // 110-byte header + "a\0" = 112 (aligned), 5 data bytes + 3 padding, then the trailer.
        assert_eq!(&b[112..117], &[9; 5]);
        assert_eq!(&b[117..120], &[0; 3]);
        assert_eq!(&b[120..126], b"070701");
    }
}
