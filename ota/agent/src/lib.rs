//! The device's update agent: its decisions, as a library (`src/main.rs` and `src/sys/` are the shell).
//!
//! Owns: the agent's settings ([`config`]), what it remembers across reboots and power cuts
//! ([`state`]: the pending testboot, versions that failed here, results not yet delivered, the device
//! id), when to check in ([`schedule`]: interval, backoff, jitter), and what a boot means for a pending
//! update ([`boot`]: committed, retried, rolled back). The check-in messages are `edge_ota::wire`,
//! shared with the server.
//!
//! **Never touches**: files, sockets, block devices, the clock or grubenv: those are the shell's
//! (`sys`), and the bootloader's A/B variables are edited through `edge_init::grubenv` only.
//!
//! Architecture Invariant: a bundle is verified (signature, then policy, then the whole payload's
//! SHA-256) before a byte of it reaches the inactive slot, and the inactive slot has no tries in
//! grubenv while it is being written.

pub mod boot;
pub mod config;
pub mod schedule;
pub mod state;
