//! The web UI's "Roll back" with the real `edge-agent` against a simulated device: the request file
//! is taken within one look (5 s), the other slot gets a one-shot testboot in grubenv, and the agent
//! asks for the reboot.

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    reason = "a test of a process over real files; a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_rollback_request_testboots_the_other_slot_and_reboots() {
    let root = common::scratch("rollback");
    // No update server: the agent only watches for uploads and requests.
    let vendor = edge_ota::SigningKey::generate().unwrap().public().to_file();
    let system = common::device(&root, "dev", "sim-board", "reboot_wait_s = 1\n", &vendor);
    let dir = root.join("dev");
    std::fs::write(dir.join("rollback"), "rollback\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["--system"])
        .arg(&system)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not act on the rollback request within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{said}");
    assert!(
        said.contains("ROLLBACK asked for from the web UI: booting slot B"),
        "{said}"
    );
    let env = String::from_utf8_lossy(&std::fs::read(dir.join("grubenv")).unwrap()).into_owned();
    assert!(
        env.contains("boot_order=B A") && env.contains("B_left=1") && env.contains("A_left=3"),
        "{env}"
    );
    assert!(!dir.join("rollback").exists(), "the request was not taken");
}
