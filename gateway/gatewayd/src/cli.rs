//! The command line.

use std::ffi::OsString;
use std::path::PathBuf;

pub(crate) const USAGE: &str = "\
Usage: gatewayd [--config FILE] [--check-config]
       gatewayd --print-default-config | --version | --help

Runs the RTC Edge WebRTC-to-SIP gateway. Without --config it runs the embedded default
configuration (SIP over UDP and TCP on 127.0.0.1:5060, WebSocket on 127.0.0.1:5066);
see --print-default-config.

Options:
  -c, --config FILE          Configuration file (TOML)
      --check-config         Validate the configuration and exit (0 = valid)
      --print-default-config Print the embedded default configuration and exit
  -V, --version              Print the version and exit
  -h, --help                 Print this help and exit

Environment:
  GATEWAYD_LOG               Log filter overriding log.level (e.g. \"debug\", \"info,edge_sip=trace\")

Stops cleanly on SIGINT or SIGTERM (exit status 0).";

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Run,
    CheckConfig,
    PrintDefaultConfig,
    Version,
    Help,
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) command: Command,
    pub(crate) config: Option<PathBuf>,
}

/// Parses `args` (the first item is the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(args);
    let mut options = Options {
        command: Command::Run,
        config: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('c') | Long("config") => options.config = Some(parser.value()?.into()),
            Long("check-config") => options.command = Command::CheckConfig,
            Long("print-default-config") => options.command = Command::PrintDefaultConfig,
            Short('V') | Long("version") => options.command = Command::Version,
            Short('h') | Long("help") => options.command = Command::Help,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, lexopt::Error> {
        parse(
            std::iter::once("gatewayd")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn commands_and_config() {
        assert_eq!(
            p(&[]).unwrap(),
            Options {
                command: Command::Run,
                config: None
            }
        );
        assert_eq!(
            p(&["-c", "/etc/x.toml", "--check-config"]).unwrap(),
            Options {
                command: Command::CheckConfig,
                config: Some("/etc/x.toml".into())
            }
        );
        assert_eq!(p(&["--config=/a"]).unwrap().config, Some("/a".into()));
        assert_eq!(p(&["-V"]).unwrap().command, Command::Version);
        assert_eq!(
            p(&["--print-default-config"]).unwrap().command,
            Command::PrintDefaultConfig
        );
        assert!(p(&["--frobnicate"]).is_err());
        assert!(p(&["--config"]).is_err());
        assert!(p(&["stray"]).is_err());
    }
}
