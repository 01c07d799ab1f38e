//! `edge-init`'s decisions, as a library: the sans-IO cores PID 1 runs (`src/main.rs` and `sys` are the
//! shell that makes the system calls). A library so that the network-facing parsers among them — DHCP
//! and SNTP replies, sd_notify datagrams, the SIP probe's answer — have fuzz targets
//! (`gateway/fuzz`: `init_dhcp`, `init_sntp`, `init_notify`), like every parser that faces the network.
//!
//! **Never touches**: sockets, files, the clock or any system call: time and bytes come in as values.

pub mod cmdline;
pub mod config;
pub mod dhcp;
pub mod grubenv;
pub mod keeper;
pub mod lines;
pub mod modules;
pub mod netlink;
pub mod notify;
pub mod probe;
pub mod sntp;
pub mod supervisor;
