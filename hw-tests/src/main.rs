//! `edge-hil`: run the appliance scenarios against a board.
//!
//! ```text
//! edge-hil qemu   --board board-config/qemu-x86_64.toml --image <board>.img [--out DIR] [--only 1,2,3,4]
//! edge-hil serial --board board-config/rpi4.toml [--out DIR] [--only 1,2,3]
//! edge-hil ota    --board board-config/qemu-x86_64.toml --image <board>.img --ota-key VENDOR.key
//!                 [--cuts N] [--server-bin PATH]
//! edge-hil relay  HOST:PORT      (used by QEMU's guestfwd: stdin/stdout <-> a TCP connection)
//! ```
//! `ota` runs the OTA scenarios against a real update server (`edge-update-server`, next to this
//! binary unless `--server-bin`), with bundles signed by `--ota-key` (the image must trust its public
//! half: `edge-image --ota-key VENDOR.pub`) and `--cuts` power cuts (default 5).
//! `qemu` boots the image (a copy of it per boot) under TCG; `serial` uses a real board already
//! flashed and powered, through its serial device and address from the board file (scenario 4 needs to
//! rewrite the disk, so it is QEMU-only). Prints each scenario's verdict and timings, the image size and
//! boot-to-ready times against the goals, and exits 1 if any scenario failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use edge_hil::console::Console;
use edge_hil::scenarios::{self, Limits};
use edge_hil::target::{Qemu, QemuSpec, Serial};
use edge_image::disk::Partition;
use edge_image::{Board, SlotContent};

/// Image size goal (issue 6).
const IMAGE_GOAL: u64 = 64 << 20;
/// Boot-to-ready goal under TCG (issue 6).
const BOOT_GOAL: Duration = Duration::from_secs(20);

struct Args {
    mode: String,
    board: PathBuf,
    image: Option<PathBuf>,
    out: PathBuf,
    only: Vec<u8>,
    ota_key: Option<PathBuf>,
    server_bin: Option<PathBuf>,
    cuts: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: edge-hil qemu|serial --board FILE [--image IMG] [--out DIR] [--only 1,2]")?;
    if !["qemu", "serial", "ota"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}: qemu, serial, ota or relay"));
    }
    let (mut board, mut image, mut out, mut only) = (None, None, None, Vec::new());
    let (mut ota_key, mut server_bin, mut cuts) = (None, None, 5);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--board" => board = Some(PathBuf::from(value()?)),
            "--image" => image = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--ota-key" => ota_key = Some(PathBuf::from(value()?)),
            "--server-bin" => server_bin = Some(PathBuf::from(value()?)),
            "--cuts" => cuts = value()?.parse().map_err(|_| "--cuts: not a number".to_owned())?,
            "--only" => {
                only = value()?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .map_err(|_| format!("--only: {n:?} is not a scenario number"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let board = board.ok_or("--board FILE is required")?;
    let out = out.unwrap_or_else(|| {
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
        target.join("hil")
    });
    Ok(Args {
        mode,
        board,
        image,
        out,
        only,
        ota_key,
        server_bin,
        cuts,
    })
}

/// One line of the report.
struct Outcome {
    n: u8,
    title: &'static str,
    result: Result<String, String>,
}

/// Copies stdin to a TCP connection to `addr` and the connection to stdout (QEMU's `guestfwd=...-cmd:`
/// runs one per guest connection).
#[allow(
    clippy::disallowed_types,
    reason = "the relay is a real connection to the host's server"
)]
fn relay(addr: &str) -> ExitCode {
    let Ok(conn) = std::net::TcpStream::connect(addr) else {
        return ExitCode::FAILURE;
    };
    let Ok(mut up) = conn.try_clone() else {
        return ExitCode::FAILURE;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // Standard output unbuffered (Rust's is line-buffered: TLS records would wait for a newline):
    // the same descriptor, duplicated into a File.
    use std::os::fd::AsFd;
    let Ok(out) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return ExitCode::FAILURE;
    };
    let mut down = conn;
    let _ = std::io::copy(&mut down, &mut std::fs::File::from(out));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("relay") {
        return relay(argv.get(2).map_or("", String::as_str));
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edge-hil: {e}");
            return ExitCode::from(2);
        }
    };
    let board = match Board::load(&args.board) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("edge-hil: {e}");
            return ExitCode::from(2);
        }
    };
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let out = args.out.join(&board.name);
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "edge-hil: board {} ({}), output in {}",
        board.name,
        board.description,
        out.display()
    );
    let outcomes = match args.mode.as_str() {
        "qemu" => {
            let Some(image) = args.image.as_deref() else {
                eprintln!(
                    "edge-hil: qemu needs --image <board>.img (cargo run -p edge-image -- --board ... --test-hooks)"
                );
                return ExitCode::from(2);
            };
            match qemu_spec(&board) {
                Ok(spec) => run_qemu(&spec, image, &out, &wanted),
                Err(e) => {
                    eprintln!("edge-hil: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        "ota" => {
            let (Some(image), Some(key)) = (args.image.as_deref(), args.ota_key.as_deref()) else {
                eprintln!("edge-hil: ota needs --image <board>.img and --ota-key VENDOR.key");
                return ExitCode::from(2);
            };
            let me = std::env::current_exe().unwrap_or_default();
            let server = args
                .server_bin
                .clone()
                .unwrap_or_else(|| me.with_file_name("edge-update-server"));
            match qemu_spec(&board) {
                Ok(spec) => edge_hil::ota::run(&edge_hil::ota::OtaRun {
                    spec: &spec,
                    image,
                    key_file: key,
                    server_bin: &server,
                    relay: &me,
                    out: &out,
                    cuts: args.cuts,
                })
                .into_iter()
                .map(|(n, title, result)| Outcome { n, title, result })
                .collect(),
                Err(e) => {
                    eprintln!("edge-hil: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => run_serial(&board, &out, &wanted),
    };
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    println!("\nedge-hil results for {}:", board.name);
    for o in &outcomes {
        match &o.result {
            Ok(figures) => println!("  {}. {:<58} pass  {figures}", o.n, o.title),
            Err(e) => println!("  {}. {:<58} FAIL\n{}", o.n, o.title, indent(e)),
        }
    }
    println!(
        "{} {}: {} passed, {failed} failed",
        if args.mode == "ota" { "ota" } else { "hil" },
        board.name,
        outcomes.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn qemu_spec(board: &Board) -> Result<QemuSpec, String> {
    let q = board.hil.qemu.as_ref().ok_or_else(|| {
        format!(
            "board {} has no [hil.qemu] section: it is not a QEMU board",
            board.name
        )
    })?;
    Ok(QemuSpec {
        binary: q.binary.clone(),
        machine: vec!["-M".into(), q.machine.clone(), "-cpu".into(), q.cpu.clone()],
        memory_mib: q.memory_mib,
        firmware_code: q.firmware_code.clone(),
        firmware_vars: q.firmware_vars.clone(),
    })
}

fn run_qemu(spec: &QemuSpec, image: &Path, out: &Path, wanted: &dyn Fn(u8) -> bool) -> Vec<Outcome> {
    let limits = Limits::default();
    let mut outcomes = Vec::new();
    match std::fs::metadata(image) {
        Ok(m) => println!(
            "image {}: {:.1} MiB (goal ≤ {} MiB: {})",
            image.display(),
            m.len() as f64 / f64::from(1 << 20),
            IMAGE_GOAL >> 20,
            if m.len() <= IMAGE_GOAL { "met" } else { "MISSED" }
        ),
        Err(e) => {
            outcomes.push(Outcome {
                n: 0,
                title: "image",
                result: Err(format!("{}: {e}", image.display())),
            });
            return outcomes;
        }
    }
    // Scenarios 1-3 on one boot, in order: each starts from the state the previous one left.
    if wanted(1) || wanted(2) || wanted(3) {
        println!("boot 1: scenarios 1-3");
        match Qemu::boot(spec, image, &out.join("boot1")) {
            Err(e) => outcomes.push(Outcome {
                n: 1,
                title: "boots to ready, SIP OPTIONS answered 200",
                result: Err(e.to_string()),
            }),
            Ok(mut q) => {
                three_scenarios(&q.console, q.sip, limits, wanted, &mut outcomes);
                q.stop();
            }
        }
    }
    if wanted(4) {
        println!("boot 2: scenario 4");
        let title = "slot B never ready: tried, fails, next boot is slot A";
        let result = prepare_bad_slot_b(image, &out.join("boot2")).and_then(|disk| {
            let mut q = Qemu::boot(spec, &disk, &out.join("boot2")).map_err(|e| e.to_string())?;
            let r = scenarios::failed_slot_falls_back(&q.console, q.sip, limits).map_err(|e| e.to_string());
            q.stop();
            let ready = r?;
            let env = edge_image::read_grubenv(&q.disk).map_err(|e| e.to_string())?;
            let (a, b) = (env.get("A_left").unwrap_or("?"), env.get("B_left").unwrap_or("?"));
            if b != "0" || a != "3" {
                return Err(format!(
                    "grubenv after the fallback: A_left={a} B_left={b}, expected 3 and 0"
                ));
            }
            Ok(format!(
                "fell back in {:.1} s; grubenv A_left={a} B_left={b}",
                ready.host_elapsed.as_secs_f64()
            ))
        });
        outcomes.push(Outcome { n: 4, title, result });
    }
    outcomes
}

fn three_scenarios(
    console: &Console,
    sip: edge_hil::sip::SipAddr,
    limits: Limits,
    wanted: &dyn Fn(u8) -> bool,
    outcomes: &mut Vec<Outcome>,
) {
    let first = scenarios::boots_to_ready(console, sip, limits);
    let booted = first.is_ok();
    outcomes.push(Outcome {
        n: 1,
        title: "boots to ready, SIP OPTIONS answered 200",
        result: first.map(|r| boot_figures(&r)).map_err(|e| e.to_string()),
    });
    if !booted {
        return;
    }
    if wanted(2) {
        let r = scenarios::service_watchdog_restarts_gatewayd(console, sip, limits);
        outcomes.push(Outcome {
            n: 2,
            title: "gatewayd stopped: PID 1 restarts it, ready again",
            result: r
                .map(|d| format!("ready again {:.1} s after the stop", d.as_secs_f64()))
                .map_err(|e| e.to_string()),
        });
    }
    if wanted(3) {
        let r = scenarios::hardware_watchdog_resets_the_board(console, sip, limits);
        outcomes.push(Outcome {
            n: 3,
            title: "PID 1 stops petting: the watchdog resets, boots again",
            result: r
                .map(|(reset, ready)| {
                    format!(
                        "reset {:.1} s after petting stopped, ready again after {:.1} s",
                        reset.as_secs_f64(),
                        ready.as_secs_f64()
                    )
                })
                .map_err(|e| e.to_string()),
        });
    }
}

fn boot_figures(r: &scenarios::Ready) -> String {
    let goal = if r.host_elapsed <= BOOT_GOAL {
        "met"
    } else {
        "MISSED"
    };
    format!(
        "boot-to-ready {:.1} s from power-on (goal ≤ {} s: {goal}), PID 1 {} ms, slot {}",
        r.host_elapsed.as_secs_f64(),
        BOOT_GOAL.as_secs(),
        r.boot_ms.map_or("?".into(), |m| m.to_string()),
        r.slot
    )
}

/// A copy of `image` whose slot B holds the same system with a gatewayd configuration it refuses (so
/// it never becomes ready) and a short ready timeout, first in the boot order with one try.
fn prepare_bad_slot_b(image: &Path, work: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let disk = work.join("prepared.img");
    std::fs::copy(image, &disk).map_err(|e| format!("copying {}: {e}", image.display()))?;
    let mut content =
        SlotContent::from_image(&disk, Partition::SlotA, &work.join("slot")).map_err(|e| e.to_string())?;
    content.version = format!("{}-never-ready", content.version);
    // A listener on port 70000: gatewayd refuses the file and exits at every start.
    content.gatewayd_toml =
        "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"0.0.0.0\"\nport = 70000\n".into();
    content.init_toml = scenarios::shorter_ready_timeout(&content.init_toml, 15);
    let squashfs = work.join("slotB.squashfs");
    edge_image::build_slot(&content, &squashfs).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&squashfs).map_err(|e| format!("{}: {e}", squashfs.display()))?;
    edge_image::write_partition(&disk, Partition::SlotB, &bytes).map_err(|e| e.to_string())?;
    edge_image::set_grubenv(&disk, &[("boot_order", "B A"), ("B_left", "1")]).map_err(|e| e.to_string())?;
    Ok(disk)
}

fn run_serial(board: &Board, out: &Path, wanted: &dyn Fn(u8) -> bool) -> Vec<Outcome> {
    let Some(s) = board.hil.serial.as_ref() else {
        return vec![Outcome {
            n: 0,
            title: "serial connection",
            result: Err(format!("board {} has no [hil.serial] section", board.name)),
        }];
    };
    let sip = std::net::SocketAddr::new(s.address, board.gatewayd.sip_probe_port);
    let device = s.device.to_string_lossy();
    let target = match Serial::open(&device, s.baud, sip, &out.join("serial")) {
        Ok(t) => t,
        Err(e) => {
            return vec![Outcome {
                n: 0,
                title: "serial connection",
                result: Err(e.to_string()),
            }];
        }
    };
    println!("power-cycle or reset the board now: waiting for its ready line on {device}");
    let mut outcomes = Vec::new();
    three_scenarios(
        &target.console,
        target.sip,
        Limits::default(),
        wanted,
        &mut outcomes,
    );
    outcomes
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("       {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ready_timeout_changes() {
        let t = "[watchdog]\ndevice = \"/dev/watchdog\"\n[gatewayd]\nready_timeout_s = 30\nsip_probe_port = 5060\n";
        assert_eq!(
            scenarios::shorter_ready_timeout(t, 15),
            "[watchdog]\ndevice = \"/dev/watchdog\"\n[gatewayd]\nready_timeout_s = 15\nsip_probe_port = 5060\n"
        );
    }
}
