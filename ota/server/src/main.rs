//! `edge-update-server --config FILE [--listen ADDR]`: the shell around [`Service`]. It owns the command
//! line, logging and the clock; `edge_http::server` serves the service (one thread per connection,
//! over rustls 0.23 when `tls_cert`/`tls_key` are set, plain TCP otherwise, with a loud warning).
//!
//! The first line on stdout is `listening on https://ADDR` (or `http://`), with the bound port when
//! `listen` asks for port 0.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the shell: it owns the sockets and the clock the library never touches"
)]

use std::io::{self, IsTerminal, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use edge_update_server::config::TlsFiles;
use edge_update_server::{Config, Request, Response, Service};
use rustls::ServerConfig;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: edge-update-server --config FILE [--listen ADDR]

  --config FILE   the server's TOML configuration
  --listen ADDR   listen here instead of the file's `listen` (port 0: any free port)

Logging: EDGE_UPDATE_SERVER_LOG (an EnvFilter, default \"info\") on stderr.";

const EXIT_USAGE: u8 = 2;
const EXIT_RUNTIME: u8 = 1;

struct Options {
    config: PathBuf,
    listen: Option<SocketAddr>,
}

fn parse_args() -> Result<Option<Options>, String> {
    use lexopt::prelude::*;
    let mut config = None;
    let mut listen = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            Short('l') | Long("listen") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let text = value.to_string_lossy();
                listen = Some(
                    text.parse()
                        .map_err(|e| format!("--listen {text:?} is not an address:port ({e})"))?,
                );
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let config = config.ok_or("--config is required")?;
    Ok(Some(Options { config, listen }))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("edge-update-server: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let filter = std::env::var("EDGE_UPDATE_SERVER_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr)
        .init();

    let mut config = match Config::load(&options.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(listen) = options.listen {
        config.listen = listen;
    }
    let tls = match config.tls.as_ref().map(tls_config).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (service, notes) = match Service::open(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edge-update-server: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    for note in notes {
        tracing::warn!("{note}");
    }
    match run(&Arc::new(service), tls.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(service: &Arc<Service>, tls: Option<&Arc<ServerConfig>>) -> Result<(), String> {
    let listen = service.config().listen;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() {
        tracing::warn!(
            %addr,
            "NO TLS: serving PLAIN HTTP. Device and admin tokens and bundles cross the network in clear; \
             set tls_cert and tls_key for anything but a lab"
        );
    }
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, store = %service.config().store.display(), "listening");

    let shell = Arc::new(Shell(Arc::clone(service)));
    Err(edge_http::server::serve_listener(&listener, tls, &shell, "update-server").to_string())
}

/// The service with the clock: the library never reads it.
struct Shell(Arc<Service>);

impl edge_http::Handler for Shell {
    fn handle(&self, req: &Request, body: &mut dyn Read) -> Response {
        self.0.handle(req, body, unix_now())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    edge_http::server::tls_config(&files.cert, &files.key)
}
