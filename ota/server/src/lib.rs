//! The RTC Edge update server: stores signed update bundles per board and channel, answers device
//! check-ins with the update each device should install, rolls releases out to a growing share of the
//! fleet, pauses a release by itself when devices report too many failures, and shows the fleet as JSON
//! and as one HTML page. The HTTP API is the contract with the device agent: `README.md` writes it down.
//!
//! Devices verify bundles themselves; the server is not trusted. It parses bundle headers only to index
//! them, and verifies uploads against `keys` when the configuration names some, to catch an operator's
//! mistake before a device has to.
//!
//! This library owns the fleet's rules ([`fleet`]: [`bucket`], the offer, the automatic pause), the JSON
//! bodies ([`api`]), the configuration ([`config`]), the store folder ([`store`]), the HTTP semantics over plain values ([`service`]) and the page ([`html`]). The binary
//! (`src/main.rs`) is the shell: the command line, logging, the clock, the sockets and TLS.
//!
//! HTTP and TLS are `edge-http`'s (its crate doc says why not `tiny_http`): the binary serves the
//! service with `edge_http::server`, over rustls 0.23 when the configuration names `tls_cert` and
//! `tls_key`, over plain TCP otherwise.
//!
//! It must never: read the clock or own a socket (time is a parameter; the shell owns every socket), or
//! trust a device's input (every peer value is bounded, escaped in HTML, and can only fail its own
//! request). Only [`store`] touches the disk (and [`config`], to read its file and the key files it
//! names).
//!
//! Architecture Invariant: nothing in this library reads the clock or opens a socket; a device is
//! offered a release only by [`fleet::Fleet::checkin`], and only if [`bucket`] puts it in the rollout.

pub mod api;
pub mod config;
pub mod fleet;
pub mod html;
pub mod service;
pub mod store;

pub use api::{
    CheckinRequest, CheckinResponse, DeviceView, ErrorBody, FleetView, InstallResult, Offer, Outcome,
    Progress, RolloutRequest,
};
pub use config::{Config, ConfigError};
pub use fleet::{Fleet, PausePolicy, Release, bucket, in_rollout};
pub use service::{Body, Request, Response, Service};
