//! A simulated device for the agent's process tests: slots, grubenv, data folder and kernel command
//! line as files, used through `edge-agent --system FILE`.

#![allow(
    dead_code,
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    reason = "test helpers over real files; each test binary uses a subset"
)]

use std::path::{Path, PathBuf};

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-agent-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A grubenv block (1024 bytes, `#`-padded) holding `vars`.
pub(crate) fn grubenv(vars: &str) -> Vec<u8> {
    let mut b = format!("# GRUB Environment Block\n{vars}").into_bytes();
    b.resize(1024, b'#');
    b
}

/// One simulated device on slot A running 1.0.0 (grubenv: A committed, B empty) with `update_toml` as
/// its agent settings; returns its `--system` file.
pub(crate) fn device(root: &Path, id: &str, board: &str, update_toml: &str, key_pub: &str) -> PathBuf {
    let dir = root.join(id);
    let etc = dir.join("slot/etc/rtc-edge");
    std::fs::create_dir_all(etc.join("ota-keys")).unwrap();
    std::fs::write(etc.join("board"), format!("{board}\n")).unwrap();
    std::fs::write(etc.join("version"), "1.0.0\n").unwrap();
    std::fs::write(etc.join("ota-keys/vendor.pub"), key_pub).unwrap();
    let data_etc = dir.join("data/etc/rtc-edge");
    std::fs::create_dir_all(&data_etc).unwrap();
    std::fs::write(data_etc.join("update.toml"), update_toml).unwrap();
    std::fs::write(dir.join("part2"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(dir.join("part3"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(
        dir.join("grubenv"),
        grubenv("boot_order=A B\nA_left=3\nB_left=0\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("cmdline"),
        format!(
            "quiet appl.slot=A appl.root={} appl.esp=none appl.data=none\n",
            dir.join("part2").display()
        ),
    )
    .unwrap();
    let system = dir.join("system.toml");
    std::fs::write(
        &system,
        format!(
            "cmdline = \"{d}/cmdline\"\nslot_dir = \"{d}/slot\"\ndata_dir = \"{d}/data\"\ngrubenv = \"{d}/grubenv\"\n\
             reboot = \"exit\"\nprogress = \"{d}/progress\"\ngatewayd_status = \"{d}/gatewayd.status\"\n\
             check_request = \"{d}/check\"\nrollback_request = \"{d}/rollback\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    system
}
