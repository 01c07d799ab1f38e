//! A minimal deterministic ustar writer for GRUB's memdisk (`boot/grub/grub.cfg`): owner 0:0, mtime 0.
//! `grub-mkstandalone` builds the same memdisk with the build's timestamps in it; writing it here and
//! calling `grub-mkimage` makes the EFI binary reproducible.

/// A tar archive of `files` (path, content), with their parent directories, ending in two zero blocks.
pub(crate) fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut dirs: Vec<String> = Vec::new();
    for (path, _) in files {
        let mut acc = String::new();
        for part in path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            acc.push_str(part);
            acc.push('/');
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    let mut out = Vec::new();
    for d in &dirs {
        out.extend_from_slice(&header(d, 0o755, 0, b'5'));
    }
    for (path, data) in files {
        out.extend_from_slice(&header(path, 0o644, data.len(), b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn header(name: &str, mode: u32, size: usize, kind: u8) -> [u8; 512] {
    assert!(name.len() < 100, "memdisk paths are short");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0); // uid
    octal(&mut h, 116, 8, 0); // gid
    octal(&mut h, 124, 12, size as u64);
    octal(&mut h, 136, 12, 0); // mtime
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_has_dirs_file_checksums_and_end_blocks() {
        let a = archive(&[("boot/grub/grub.cfg", b"set timeout=0\n")]);
        assert_eq!(
            a.len(),
            512 * 3 + 512 + 1024,
            "2 dirs, 1 header, 1 data block, 2 end blocks"
        );
        assert_eq!(&a[..6], b"boot/\0");
        assert_eq!(&a[512..523], b"boot/grub/\0");
        assert_eq!(&a[1024..1043], b"boot/grub/grub.cfg\0");
        assert_eq!(a[1024 + 156], b'0');
        assert_eq!(&a[1024 + 124..1024 + 135], b"00000000016");
        assert_eq!(&a[1536..1550], b"set timeout=0\n");
        for block in [0, 512, 1024] {
            let h = &a[block..block + 512];
            let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
            let sum: u32 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) })
                .sum();
            assert_eq!(stored, sum);
        }
        assert!(a[a.len() - 1024..].iter().all(|&b| b == 0));
    }
}
