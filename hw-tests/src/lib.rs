//! `edge-hil`: the hardware-in-loop harness. It boots a board's image — under QEMU here (TCG, a per-test
//! copy of the disk and firmware variables, the serial console on a pty read with `serialport`, SIP
//! forwarded from 127.0.0.1, user networking fenced with `restrict=on`) or on a real board over its
//! serial device and network address from the board file — and runs the appliance scenarios against it.
//!
//! Owns: starting and stopping targets, reading and typing on their consoles, the SIP probe, the
//! scenarios and their timings. Never touches: the image's contents (the image builder, `edge-image`,
//! makes and edits images) or anything outside 127.0.0.1 (QEMU targets) / the board's own address.

pub mod console;
pub mod ota;
pub mod scenarios;
pub mod sip;
pub mod target;
