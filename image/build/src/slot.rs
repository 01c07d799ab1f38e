//! A slot: the read-only squashfs holding kernel, initramfs and rootfs (image/README.md "Slot squashfs").
//!
//! ```text
//! /boot/vmlinuz  /boot/initrd.img  /usr/bin/gatewayd  /usr/bin/edge-agent
//! /etc/rtc-edge/version  /etc/rtc-edge/board  /etc/rtc-edge/gatewayd.toml  /etc/rtc-edge/init.toml
//! /etc/rtc-edge/update.toml  /etc/rtc-edge/ota-keys/<id>.pub
//! ```
//! Built with `mksquashfs -comp xz -all-root -mkfs-time 0 -all-time 0`: the same files give the same bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::disk::{Partition, read_partition};
use crate::tools;

/// What goes into a slot. The HIL harness can take a built image's slot ([`SlotContent::from_image`]),
/// change `gatewayd`, a config or the version, and write it to the other slot with [`build_slot`] and
/// [`crate::disk::write_partition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotContent {
    /// The kernel image (`/boot/vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs (`/boot/initrd.img`).
    pub initrd: PathBuf,
    /// The static `gatewayd` binary (`/usr/bin/gatewayd`).
    pub gatewayd: PathBuf,
    /// The image version: one line, no spaces (`/etc/rtc-edge/version`).
    pub version: String,
    /// `/etc/rtc-edge/gatewayd.toml`.
    pub gatewayd_toml: String,
    /// `/etc/rtc-edge/init.toml`.
    pub init_toml: String,
    /// The static update agent (`/usr/bin/edge-agent`), if the slot has one.
    pub agent: Option<PathBuf>,
    /// The board's name (`/etc/rtc-edge/board`): the agent refuses bundles for other boards.
    pub board: String,
    /// `/etc/rtc-edge/update.toml`: the agent's defaults (the data partition's copy wins).
    pub update_toml: String,
    /// The OTA public keys the agent trusts (`/etc/rtc-edge/ota-keys/<name>`): (file name, text).
    pub ota_keys: Vec<(String, String)>,
}

impl SlotContent {
    /// Unpacks slot `slot` of the image file `image` into `work` (created; emptied first) and describes
    /// its content, so a test can change part of it and build another slot.
    pub fn from_image(image: &Path, slot: Partition, work: &Path) -> Result<Self, Error> {
        if !matches!(slot, Partition::SlotA | Partition::SlotB) {
            return Err(Error::Other(format!("{slot} is not a slot")));
        }
        tools::check(tools::EDIT_TOOLS)?;
        let step = "unpack slot";
        let _ = fs::remove_dir_all(work);
        fs::create_dir_all(work).map_err(|e| Error::io(step, work, e))?;
        let sqfs = work.join(format!("{slot}.squashfs"));
        fs::write(&sqfs, read_partition(image, slot)?).map_err(|e| Error::io(step, &sqfs, e))?;
        let root = work.join("root");
        tools::run(
            step,
            tools::cmd("unsquashfs")
                .args(["-no-progress", "-no-xattrs", "-d"])
                .arg(&root)
                .arg(&sqfs),
        )?;
        let _ = fs::remove_file(&sqfs);
        let read = |p: &str| {
            let path = root.join(p);
            fs::read_to_string(&path).map_err(|e| Error::io(step, &path, e))
        };
        Ok(Self {
            kernel: root.join("boot/vmlinuz"),
            initrd: root.join("boot/initrd.img"),
            gatewayd: root.join("usr/bin/gatewayd"),
            version: read("etc/rtc-edge/version")?.trim_end().to_owned(),
            gatewayd_toml: read("etc/rtc-edge/gatewayd.toml")?,
            init_toml: read("etc/rtc-edge/init.toml")?,
            agent: Some(root.join("usr/bin/edge-agent")).filter(|p| p.exists()),
            board: read("etc/rtc-edge/board")
                .map(|b| b.trim().to_owned())
                .unwrap_or_default(),
            update_toml: read("etc/rtc-edge/update.toml").unwrap_or_default(),
            ota_keys: {
                let mut keys = Vec::new();
                if let Ok(entries) = fs::read_dir(root.join("etc/rtc-edge/ota-keys")) {
                    for e in entries.flatten() {
                        let text =
                            fs::read_to_string(e.path()).map_err(|err| Error::io(step, &e.path(), err))?;
                        keys.push((e.file_name().to_string_lossy().into_owned(), text));
                    }
                }
                keys.sort();
                keys
            },
        })
    }
}

/// Checks an image version: 1-64 characters of `A-Z a-z 0-9 . _ + ~ -` (it is printed in console lines
/// as `version=<v>`, so no spaces).
pub fn check_version(v: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "version \"{v}\": use 1-64 characters of A-Z a-z 0-9 . _ + ~ -"
        )))
    }
}

/// Builds the slot squashfs `out` from `content` and returns its size in bytes. A scratch tree is made
/// beside `out` and removed afterwards.
pub fn build_slot(content: &SlotContent, out: &Path) -> Result<u64, Error> {
    check_version(&content.version)?;
    tools::check(&[("mksquashfs", "squashfs-tools")])?;
    let step = "slot squashfs";
    let tree = out.with_extension("tree");
    let _ = fs::remove_dir_all(&tree);
    let put = |rel: &str, data: Result<Vec<u8>, (PathBuf, std::io::Error)>, mode: u32| -> Result<(), Error> {
        let data = data.map_err(|(p, e)| Error::io(step, &p, e))?;
        let path = tree.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(step, dir, e))?;
        }
        fs::write(&path, data).map_err(|e| Error::io(step, &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(step, &path, e))
    };
    let file = |p: &Path| fs::read(p).map_err(|e| (p.to_owned(), e));
    put("boot/vmlinuz", file(&content.kernel), 0o644)?;
    put("boot/initrd.img", file(&content.initrd), 0o644)?;
    put("usr/bin/gatewayd", file(&content.gatewayd), 0o755)?;
    if let Some(agent) = &content.agent {
        put("usr/bin/edge-agent", file(agent), 0o755)?;
    }
    put(
        "etc/rtc-edge/board",
        Ok(format!("{}\n", content.board).into_bytes()),
        0o644,
    )?;
    put(
        "etc/rtc-edge/update.toml",
        Ok(content.update_toml.clone().into_bytes()),
        0o644,
    )?;
    for (name, text) in &content.ota_keys {
        if name.contains('/') || !name.ends_with(".pub") {
            return Err(Error::Other(format!(
                "OTA key file name {name:?}: use <name>.pub"
            )));
        }
        put(
            &format!("etc/rtc-edge/ota-keys/{name}"),
            Ok(text.clone().into_bytes()),
            0o644,
        )?;
    }
    put(
        "etc/rtc-edge/version",
        Ok(format!("{}\n", content.version).into_bytes()),
        0o644,
    )?;
    put(
        "etc/rtc-edge/gatewayd.toml",
        Ok(content.gatewayd_toml.clone().into_bytes()),
        0o644,
    )?;
    put(
        "etc/rtc-edge/init.toml",
        Ok(content.init_toml.clone().into_bytes()),
        0o644,
    )?;
    set_dir_modes(&tree)?;
    let _ = fs::remove_file(out);
    let result = tools::run(
        step,
        tools::cmd("mksquashfs")
            .arg(&tree)
            .arg(out)
            .args([
                "-noappend",
                "-comp",
                "xz",
                "-all-root",
                "-no-xattrs",
                "-quiet",
                "-no-progress",
            ])
            .args(["-mkfs-time", "0", "-all-time", "0"]),
    );
    let _ = fs::remove_dir_all(&tree);
    result?;
    let len = fs::metadata(out).map_err(|e| Error::io(step, out, e))?.len();
    Ok(len)
}

/// Every folder 0755 whatever the umask.
fn set_dir_modes(dir: &Path) -> Result<(), Error> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("slot squashfs", dir, e))?;
    for entry in fs::read_dir(dir).map_err(|e| Error::io("slot squashfs", dir, e))? {
        let path = entry.map_err(|e| Error::io("slot squashfs", dir, e))?.path();
        if path.is_dir() {
            set_dir_modes(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_one_word() {
        assert!(check_version("0.1.0+g1a2b3c4.dirty").is_ok());
        assert!(check_version("2025.11~rc1").is_ok());
        assert!(check_version("").is_err());
        assert!(check_version("1.0 beta").is_err());
        assert!(check_version("1.0\n").is_err());
        assert!(check_version(&"9".repeat(65)).is_err());
    }
}
