//! Real peers: SIPp's built-in `uac` scenario calls through gatewayd to SIPp's `uas` scenario acting as
//! the trunk (INVITE → 180 → 200 → ACK → BYE → 200). Every call must complete and none may be left.
//!
//! Needs `sipp` (Debian package `sip-tester`); `.ci/run` installs it. Without it the test says so loudly
//! and does nothing.

// The test drives real processes on loopback in real time.
#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Gateway, free_tcp_port, free_udp_port, probe, scratch};

const CALLS: u32 = 100;

fn have_sipp() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn sipp_uac_through_the_gateway_to_sipp_uas_over_udp_completes_every_call() {
    calls_through_the_gateway("udp");
}

/// The same with the trunk on TCP: the gateway opens the connection itself and keeps using it.
#[test]
fn sipp_uac_through_the_gateway_to_sipp_uas_over_tcp_completes_every_call() {
    calls_through_the_gateway("tcp");
}

fn calls_through_the_gateway(trunk_transport: &str) {
    if !have_sipp() {
        eprintln!(
            "\n*** SKIPPED SIPp calls through the gateway (trunk over {trunk_transport}): `sipp` is not installed \
             (apt-get install sip-tester; .ci/run does this). ***\n"
        );
        return;
    }
    let dir = scratch(&format!("sipp-{trunk_transport}"));
    let (gw_port, uas_port, uac_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let gw_tcp_port = free_tcp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1\"\nport = {gw_tcp_port}\n\
             [sip.trunk]\naddress = \"127.0.0.1\"\nport = {uas_port}\ntransport = \"{trunk_transport}\"\n\
             [sip.limits]\nper_source_rate = 0\n\
             [[routes]]\nname = \"phones\"\nsource = [\"peer\"]\ntrunks = [\"trunk\"]\n"
        ),
    )
    .unwrap();
    // All SIPp calls come from one address at 20/s, the default per-source limit: a load test turns the
    // limiter off rather than measure it.
    let gw = Gateway::start(&["--config", cfg.to_str().unwrap()]);
    probe(gw_port);

    let sipp = |args: &[String]| {
        Command::new("sipp")
            .current_dir(&dir)
            .args(args)
            .args(["-nostdin", "-timeout", "120s", "-timeout_error", "-trace_err"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let s = |v: &str| v.to_owned();
    let uas_transport = if trunk_transport == "tcp" { "t1" } else { "u1" };
    let uas = sipp(&[
        s("-sn"),
        s("uas"),
        s("-t"),
        s(uas_transport),
        s("-i"),
        s("127.0.0.1"),
        s("-p"),
        uas_port.to_string(),
        s("-m"),
        CALLS.to_string(),
    ]);
    let started = Instant::now();
    let uac = sipp(&[
        s("-sn"),
        s("uac"),
        format!("127.0.0.1:{gw_port}"),
        s("-i"),
        s("127.0.0.1"),
        s("-p"),
        uac_port.to_string(),
        s("-m"),
        CALLS.to_string(),
        s("-r"),
        s("20"),
        s("-l"),
        s("10"),
    ]);
    let uac_out = uac.wait_with_output().unwrap();
    let uas_out = uas.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let errors: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();

    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    let report = format!(
        "uac: {:?} {}\nuas: {:?} {}\nsipp error logs:\n{}\ngatewayd:\n{}",
        uac_out.status,
        String::from_utf8_lossy(&uac_out.stderr),
        uas_out.status,
        String::from_utf8_lossy(&uas_out.stderr),
        errors.join("\n"),
        stderr
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        uac_out.status.success(),
        "SIPp uac reported failed calls\n{report}"
    );
    assert!(
        uas_out.status.success(),
        "SIPp uas reported failed calls\n{report}"
    );
    assert_eq!(status.code(), Some(0), "{report}");
    let started_calls = stderr.matches("call started").count();
    let answered = stderr.matches("call answered").count();
    let ended_by_bye = stderr.matches("reason=BYE from A").count();
    assert_eq!(
        (started_calls, answered, ended_by_bye),
        (100, 100, 100),
        "{report}"
    );
    assert!(
        stderr.contains("stopping signal=\"SIGTERM\" active_calls=0"),
        "calls left behind:\n{report}"
    );
    eprintln!(
        "{CALLS} calls through the gateway in {:.1} s",
        elapsed.as_secs_f64()
    );
}
