//! `edge-image`: builds `<out>/<board>.img` for one board (see the `edge_image` crate docs).

use std::path::PathBuf;
use std::process::ExitCode;

use edge_image::board::{Board, board_dir};
use edge_image::build::{BuildOptions, build_image};

const USAGE: &str = "\
Usage: edge-image --board NAME|FILE [--out DIR] [--test-hooks] [--version V] [--ota-key FILE]... [--quiet]

Builds <out>/<board>.img (GPT: esp, slotA, slotB, data) rootless, offline apart from fetching Debian
packages into $HOME/.cache/rtc-edge/debs. Contract: image/README.md \"Interfaces\".

Options:
  -b, --board NAME|FILE  board-config/<NAME>.toml, or a path to a board file
  -o, --out DIR          output folder (default: $CARGO_TARGET_DIR/images)
      --test-hooks       add appl.testhooks=1 to the kernel command line (HIL images)
      --version V        image version (default: <crate version>+g<commit>[.dirty])
      --ota-key FILE     an OTA public key (edge-ota keygen) the update agent trusts; repeatable
  -q, --quiet            no progress lines (the summary is still printed)
  -h, --help             this help

Environment: CARGO_TARGET_DIR (where the binaries are built), SOURCE_DATE_EPOCH (timestamps on the
ESP and data file systems; default 1980-01-01).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("edge-image: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    use lexopt::prelude::*;

    let mut board = None;
    let mut opts = BuildOptions::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('b') | Long("board") => board = Some(parser.value().map_err(|e| e.to_string())?),
            Short('o') | Long("out") => {
                opts.out_dir = PathBuf::from(parser.value().map_err(|e| e.to_string())?);
            }
            Long("test-hooks") => opts.test_hooks = true,
            Long("version") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                opts.version = Some(v.into_string().map_err(|_| "--version is not UTF-8".to_owned())?);
            }
            Long("ota-key") => opts
                .ota_keys
                .push(PathBuf::from(parser.value().map_err(|e| e.to_string())?)),
            Short('q') | Long("quiet") => opts.progress = false,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    let board = board.ok_or_else(|| format!("--board is required\n\n{USAGE}"))?;
    let path = PathBuf::from(&board);
    let path = if path.extension().is_some_and(|e| e == "toml") || path.components().count() > 1 {
        path
    } else {
        board_dir().join(format!("{}.toml", board.to_string_lossy()))
    };
    let board = Board::load(&path).map_err(|e| e.to_string())?;
    let report = build_image(&board, &opts).map_err(|e| e.to_string())?;
    println!("{report}");
    Ok(())
}
