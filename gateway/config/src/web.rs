//! `[web]`: the local web UI and REST API. Absent: no web UI.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::{HeaderText, Port};

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// The address the UI listens on.
    #[serde(default = "WebConfig::default_address")]
    pub address: IpAddr,
    /// Its TCP port.
    #[serde(default = "WebConfig::default_port")]
    pub port: Port,
    /// HTTPS (the default). Plain HTTP only on a loopback address, unless `allow_http`.
    #[serde(default = "crate::yes")]
    pub https: bool,
    /// Serve plain HTTP on a non-loopback address anyway (passwords cross the network in clear).
    #[serde(default)]
    pub allow_http: bool,
    /// The UI's certificate chain (PEM); without it, a self-signed one is made in `state_dir`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// Where the UI keeps the admin password's hash, generated certificates and call records
    /// (default: `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/rtc-edge`, else `~/.local/state/rtc-edge`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// A bearer token Prometheus may scrape `/metrics` with (without it, `/metrics` needs a session).
    #[serde(default)]
    pub metrics_token: Option<HeaderText>,
    /// The appliance's network and time settings file (PID 1's `network.toml`); without it the UI
    /// cannot change them (an ordinary host's network is not ours).
    #[serde(default)]
    pub network_file: Option<PathBuf>,
    /// Where the UI saves the configuration (default: the file gatewayd runs from). The appliance
    /// runs from a read-only slot file until the data partition holds its own copy: that copy is
    /// written here, and applied from here.
    #[serde(default)]
    pub save_to: Option<PathBuf>,
    /// `[web.update]`: the OTA agent's files; without them the UI cannot install updates.
    #[serde(default)]
    pub update: Option<WebUpdate>,
}

/// `[web.update]`: where the update agent looks, for bundles uploaded through the UI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebUpdate {
    /// The folder the agent takes uploaded bundles from (a bundle is written under another name,
    /// then renamed in).
    pub incoming: PathBuf,
    /// The folder of trusted vendor keys (`*.pub`); an upload is checked against them first.
    pub keys: PathBuf,
    /// The file naming this device's board.
    pub board_file: PathBuf,
    /// The file holding the running version (an upload must be newer).
    pub version_file: PathBuf,
    /// The agent's progress file (JSON).
    #[serde(default)]
    pub progress: Option<PathBuf>,
    /// The file that asks the agent to check in now ("Check for updates"); without it the UI cannot.
    #[serde(default)]
    pub check_request: Option<PathBuf>,
    /// The file that asks the agent to boot the other slot ("Roll back"); without it the UI cannot.
    #[serde(default)]
    pub rollback_request: Option<PathBuf>,
    /// The agent's settings files, the first that exists wins (the UI shows its update server).
    #[serde(default)]
    pub agent_config: Vec<PathBuf>,
}

impl WebConfig {
    fn default_address() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn default_port() -> Port {
        Port::new(8443).expect("8443 is a valid port")
    }
}
