//! `gatewayd`, the RTC Edge gateway daemon.
//!
//! **Owns**: the process: command line, loading the configuration, logging, the tokio runtime, every
//! socket, the clock, signals, and the run loops that drive the sans-IO cores (`edge-sip` on the signalling
//! runtime, `edge-media` on the media thread, `edge-sdp` between them). It is the only gateway crate that runs I/O (the web UI's HTTP server is
//! `edge-http`'s shell, started here).
//!
//! **Never holds**: protocol logic. A SIP or media rule belongs in a core crate, where it is tested
//! without sockets or sleeps; this crate only moves bytes and time between the cores and the OS.

#![forbid(unsafe_code)]

mod anchor;
mod cli;
mod media_shell;
mod sip_shell;
mod tls;
mod trunks;
mod web;

use std::process::ExitCode;

use edge_config::{Config, DEFAULT_ORIGIN};
use tracing_subscriber::EnvFilter;

use crate::cli::{Command, Options};

/// Exit status for a bad command line or configuration (sysexits' EX_USAGE/EX_CONFIG spirit, kept simple).
const EXIT_USAGE: u8 = 2;
/// Exit status when the gateway could not run (a socket would not bind, …).
const EXIT_RUNTIME: u8 = 1;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gatewayd: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match options.command {
        Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!(
                "gatewayd {} (RTC Edge, {})",
                env!("CARGO_PKG_VERSION"),
                target_triple()
            );
            ExitCode::SUCCESS
        }
        Command::PrintDefaultConfig => {
            print!("{}", edge_config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::CheckConfig => match load(&options) {
            Ok((config, origin, _)) => {
                println!(
                    "gatewayd: config OK: {origin} ({} SIP listener(s))",
                    config.sip.listen.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run => match load(&options) {
            Ok((config, origin, tls)) => run(&config, &origin, options.config.as_deref(), tls),
            Err(code) => code,
        },
    }
}

/// The configuration and everything it names (certificates), checked; any error is the operator's and
/// is printed with the file it concerns.
fn load(options: &Options) -> Result<(Config, String, Tls), ExitCode> {
    let (config, origin) = match &options.config {
        Some(path) => match Config::load(path) {
            Ok(c) => (c, path.display().to_string()),
            Err(e) => {
                eprintln!("gatewayd: {e}");
                return Err(ExitCode::from(EXIT_USAGE));
            }
        },
        None => (Config::embedded_default(), DEFAULT_ORIGIN.to_owned()),
    };
    match tls::load(&config).and_then(|listeners| {
        Ok(Tls {
            listeners,
            trunks: tls::trunks(&config)?,
        })
    }) {
        Ok(tls) => Ok((config, origin, tls)),
        Err(e) => {
            eprintln!("gatewayd: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Everything TLS the configuration names, loaded and checked.
struct Tls {
    listeners: Option<tls::TlsConfigs>,
    /// Client TLS per trunk (by index), for the `tls` ones.
    trunks: Vec<Option<tls::TrunkTls>>,
}

fn run(config: &Config, origin: &str, path: Option<&std::path::Path>, tls: Tls) -> ExitCode {
    let logs = std::sync::Arc::new(web::LogRing::default());
    init_logging(config, &logs);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = origin,
        "RTC Edge gatewayd starting"
    );
    // One current-thread runtime runs signalling: SIP is cheap per message and the sans-IO endpoint is
    // single-owner state. Media runs on its own thread (`media_shell`), never through this runtime.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(sip_shell::run(config, path, tls.listeners, tls.trunks, logs)) {
        Ok(stop) => {
            tracing::info!(signal = stop.signal, stats = ?stop.stats, "stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "gatewayd cannot run");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Logs go to stderr (journald, the PID 1 console, or a terminal). `GATEWAYD_LOG` overrides the level.
/// Libraries that log through the `log` crate (rtc-dtls, rustls) come through the same subscriber and
/// filter (tracing-subscriber's `tracing-log` bridge, installed by `init`).
/// The web UI's log page gets the same lines (as the filter passes them) through `logs`.
fn init_logging(config: &Config, logs: &std::sync::Arc<web::LogRing>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("GATEWAYD_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(config.log.level.as_str()));
    // Colour only on a terminal: journald and the serial console get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let ring = config
        .web
        .is_some()
        .then(|| web::RingLayer(std::sync::Arc::clone(logs)));
    // `init` also routes `log` records (rtc-dtls, rustls) through it (the tracing-log feature).
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(ring)
        .init();
}

fn target_triple() -> &'static str {
    if cfg!(all(target_arch = "aarch64", target_env = "musl")) {
        "aarch64-unknown-linux-musl"
    } else if cfg!(all(target_arch = "x86_64", target_env = "musl")) {
        "x86_64-unknown-linux-musl"
    } else if cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_env = "gnu")) {
        "aarch64-unknown-linux-gnu"
    } else {
        std::env::consts::ARCH
    }
}
