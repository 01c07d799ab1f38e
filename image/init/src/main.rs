//! `edge-init`: the appliance's PID 1 (issue 6). Being written: see image/README.md.
fn main() {}
