//! `edge-hil`: the hardware-in-loop harness (issue 6). Being written: see hw-tests/README.md.
