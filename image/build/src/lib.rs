//! `edge-image`: the board files and the appliance image builder (issue 6).
//!
//! **Owns**: the board-file schema (`board-config/*.toml`, [`board::Board`]), and every step that turns a
//! board into `<board>.img`: building `edge-init` and `gatewayd` for the board's target, fetching the
//! Debian kernel (and arm64 GRUB) packages into `$HOME/.cache/rtc-edge/debs`, the initramfs, the slot
//! squashfs, GRUB with the A/B script, grubenv, the ESP, the data partition and the GPT. The contract
//! with PID 1, GRUB and the HIL harness is "Interfaces" in `image/README.md`.
//!
//! **Never touches**: anything needing root — no loop devices, no mounts, no `sudo` (the one exception
//! is `dpkg --add-architecture arm64`, only when arm64 packages are needed and apt does not know the
//! architecture yet, and it says so); the network beyond `apt-get download`; the sources of `edge-init`,
//! `gatewayd` or the HIL harness; the host's real disks. Everything is written under the output folder
//! and the package cache.
//!
//! The library API the HIL harness uses is small:
//! - [`board::Board::load`] / [`board::Board::named`]: a validated board;
//! - [`build::build_image`] with [`build::BuildOptions`]: a whole image;
//! - [`slot::build_slot`] (and [`slot::SlotContent::from_image`]): one slot squashfs from given files;
//! - [`disk::write_partition`] / [`disk::read_partition`]: bytes into or out of a named partition;
//! - [`grubenv::read_grubenv`] / [`grubenv::set_grubenv`]: the boot-counting variables on an image's ESP.

#![forbid(unsafe_code)]

pub mod board;
pub mod build;
pub mod configs;
pub mod disk;
pub mod grubenv;
pub mod slot;

mod cpio;
mod debs;
mod tar;
mod tools;

use std::path::{Path, PathBuf};

pub use board::{Board, BoardError};
pub use build::{BuildOptions, BuildReport, build_image, put_data_files};
pub use disk::{Partition, read_partition, write_partition};
pub use grubenv::{GrubEnv, read_grubenv, set_grubenv};
pub use slot::{SlotContent, build_slot};

/// Why building or editing an image failed. Each message says which step failed and, for a command,
/// the command line and what it wrote to stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The board file was refused.
    #[error(transparent)]
    Board(#[from] BoardError),
    /// Host tools are missing; each is named with the Debian package that provides it.
    #[error(
        "missing host tools: {}; install them with: apt-get install {}",
        .0.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", "),
        packages(.0)
    )]
    MissingTools(Vec<(String, String)>),
    /// A command failed.
    #[error("{step}: `{command}` failed ({status}){}", tail(.stderr))]
    Command {
        /// The build step.
        step: String,
        /// The command line.
        command: String,
        /// Exit status or spawn error.
        status: String,
        /// What it wrote to stderr (the end of it).
        stderr: String,
    },
    /// A file operation failed.
    #[error("{step}: {}: {source}", .path.display())]
    Io {
        /// The build step.
        step: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Anything else, with its explanation.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(step: &str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            step: step.to_owned(),
            path: path.to_owned(),
            source,
        }
    }
}

fn packages(missing: &[(String, String)]) -> String {
    let mut p: Vec<&str> = missing.iter().map(|(_, p)| p.as_str()).collect();
    p.sort_unstable();
    p.dedup();
    p.join(" ")
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let keep = &lines[lines.len().saturating_sub(40)..];
    format!(":\n  {}", keep.join("\n  "))
}
