//! Routing through the real daemon: trunks as UDP sockets of this test, one of them named by DNS
//! (`localhost`), a route choosing by source, OPTIONS monitoring of the named one.
//!
//! Each test's media range lies below Linux's ephemeral ports (32768-60999): a SIP port picked free
//! for it can then never fall inside the range (a configuration the daemon would refuse).

#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Gateway, free_udp_port, retry_interrupted, scratch};

/// Reads what arrives on `sock` for up to `within`, until `want` says it has seen enough.
fn collect(sock: &UdpSocket, within: Duration, mut want: impl FnMut(&[String]) -> bool) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline && !want(&got) {
        if let Ok((n, _)) = retry_interrupted(|| sock.recv_from(&mut buf)) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_default()
        .trim()
}

/// A response to `request` (Via, From, To, Call-ID, CSeq copied; a To-tag added).
fn answer(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for l in request.lines().filter(|l| l.starts_with(&format!("{name}:"))) {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "To: {};tag=carrier\r\nContent-Length: 0\r\n\r\n",
        header(request, "To")
    ));
    out
}

#[test]
fn a_trunk_named_by_dns_is_probed_and_gets_the_calls_its_route_selects() {
    let dir = scratch("routing");
    let gw_port = free_udp_port();
    let pbx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1\"\nport = {}\n\
             [[trunks]]\nname = \"carrier\"\naddress = \"localhost\"\nport = {}\n\
             monitor = {{ interval_s = 1, down_after = 2, up_after = 1 }}\n\
             [[routes]]\nname = \"out\"\nsource = [\"trunk:pbx\"]\ntrunks = [\"carrier\"]\n\
             [media]\nport_min = 28000\nport_max = 28099\n",
            pbx.local_addr().unwrap().port(),
            carrier.local_addr().unwrap().port()
        ),
    )
    .unwrap();
    let gw = Gateway::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[("GATEWAYD_LOG", "info".as_ref())],
    );

    // The carrier is probed with OPTIONS at its DNS name; it answers, so it stays up.
    let probes = collect(&carrier, Duration::from_secs(15), |got| !got.is_empty());
    let Some(probe) = probes.first() else {
        gw.signal("-TERM");
        panic!("no OPTIONS probe reached the carrier:\n{}", gw.wait().1);
    };
    let carrier_port = carrier.local_addr().unwrap().port();
    assert!(
        probe.starts_with(&format!("OPTIONS sip:localhost:{carrier_port} SIP/2.0")),
        "{probe}"
    );
    let gw_addr = ("127.0.0.1", gw_port);
    carrier
        .send_to(answer(probe, "200 OK").as_bytes(), gw_addr)
        .unwrap();

    // The PBX (a trunk) places a call: its route sends it to the carrier, named by its DNS name.
    let pbx_port = pbx.local_addr().unwrap().port();
    let invite = format!(
        "INVITE sip:+4420@127.0.0.1:{gw_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{pbx_port};branch=z9hG4bKpbx1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=p1\r\nTo: <sip:+4420@127.0.0.1>\r\n\
         Call-ID: pbx-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.1:{pbx_port}>\r\nContent-Length: 0\r\n\r\n"
    );
    pbx.send_to(invite.as_bytes(), gw_addr).unwrap();
    let got = collect(&carrier, Duration::from_secs(10), |got| {
        got.iter().any(|m| m.starts_with("INVITE"))
    });
    let b_invite = got
        .iter()
        .find(|m| m.starts_with("INVITE"))
        .expect("the call reached the carrier");
    assert!(
        b_invite.starts_with(&format!("INVITE sip:+4420@localhost:{carrier_port} SIP/2.0")),
        "{b_invite}"
    );
    assert_ne!(
        header(b_invite, "Call-ID"),
        "pbx-call-1",
        "a new dialog toward the carrier"
    );

    // The carrier refuses it; the PBX gets the refusal (503 from a trunk is 480 for the caller).
    carrier
        .send_to(answer(b_invite, "503 Service Unavailable").as_bytes(), gw_addr)
        .unwrap();
    let at_pbx = collect(&pbx, Duration::from_secs(10), |got| {
        got.iter().any(|m| m.starts_with("SIP/2.0 480"))
    });
    assert!(at_pbx.iter().any(|m| m.starts_with("SIP/2.0 480")), "{at_pbx:?}");

    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("trunk=carrier"),
        "the trunk and its address are logged: {stderr}"
    );
}

#[test]
fn a_trunk_name_that_does_not_resolve_is_retried_not_fatal() {
    let dir = scratch("routing-nxdomain");
    let gw_port = free_udp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[trunks]]\nname = \"nowhere\"\naddress = \"no-such-host.invalid\"\n\
             [media]\nport_min = 28100\nport_max = 28199\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[("GATEWAYD_LOG", "info".as_ref())],
    );
    // It runs (answers OPTIONS) although its only trunk has no address yet.
    let resp = common::probe(gw_port);
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("trunk not resolved yet"), "{stderr}");
}

/// An INVITE from the PBX trunk at `from`.
fn pbx_invite(gw_port: u16, from: u16, call_id: &str) -> String {
    format!(
        "INVITE sip:+4420@127.0.0.1:{gw_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{from};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=p1\r\nTo: <sip:+4420@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.1:{from}>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn sighup_applies_a_new_routing_table_without_dropping_the_call_in_progress() {
    let dir = scratch("routing-reload");
    let gw_port = free_udp_port();
    let pbx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (one, two) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let port = |s: &UdpSocket| s.local_addr().unwrap().port();
    let config = |to: &str| {
        format!(
            "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1\"\nport = {}\n\
             [[trunks]]\nname = \"one\"\naddress = \"127.0.0.1\"\nport = {}\nmax_calls = 1\n\
             [[trunks]]\nname = \"two\"\naddress = \"127.0.0.1\"\nport = {}\n\
             [[routes]]\nname = \"out\"\nsource = [\"trunk:pbx\"]\ntrunks = [\"{to}\"]\n\
             [media]\nport_min = 28200\nport_max = 28299\n",
            port(&pbx),
            port(&one),
            port(&two)
        )
    };
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(&cfg, config("one")).unwrap();
    let gw = Gateway::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[("GATEWAYD_LOG", "info".as_ref())],
    );
    let gw_addr = ("127.0.0.1", gw_port);
    let is_invite = |got: &[String]| got.iter().any(|m| m.starts_with("INVITE"));

    // A call goes to trunk one and is answered there.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        pbx.send_to(pbx_invite(gw_port, port(&pbx), "reload-1").as_bytes(), gw_addr)
            .unwrap();
        let got = collect(&one, Duration::from_millis(300), is_invite);
        if let Some(m) = got.into_iter().find(|m| m.starts_with("INVITE")) {
            break m;
        }
        if Instant::now() >= deadline {
            gw.signal("-TERM");
            let (_, stderr) = gw.wait();
            panic!("gatewayd never routed the first call:\n{stderr}");
        }
    };
    let mut ok = answer(&first, "200 OK");
    ok = ok.replace(
        "Content-Length: 0",
        &format!(
            "Contact: <sip:+4420@127.0.0.1:{}>\r\nContent-Length: 0",
            port(&one)
        ),
    );
    one.send_to(ok.as_bytes(), gw_addr).unwrap();
    let at_pbx = collect(&pbx, Duration::from_secs(5), |got| {
        got.iter().any(|m| m.starts_with("SIP/2.0 200"))
    });
    assert!(at_pbx.iter().any(|m| m.starts_with("SIP/2.0 200")), "{at_pbx:?}");

    // The route now names trunk two; SIGHUP. The answered call stays up (no BYE anywhere).
    std::fs::write(&cfg, config("two")).unwrap();
    gw.signal("-HUP");
    std::thread::sleep(Duration::from_millis(300));
    pbx.send_to(pbx_invite(gw_port, port(&pbx), "reload-2").as_bytes(), gw_addr)
        .unwrap();
    let got = collect(&two, Duration::from_secs(5), is_invite);
    assert!(
        is_invite(&got),
        "after the reload the route's new trunk gets the call: {got:?}"
    );
    let at_one = collect(&one, Duration::from_millis(300), |_| false);
    assert!(
        !at_one.iter().any(|m| m.starts_with("BYE")),
        "the first call was not dropped: {at_one:?}"
    );

    // A broken file changes nothing: the running table stays.
    std::fs::write(&cfg, config("nowhere")).unwrap();
    gw.signal("-HUP");
    std::thread::sleep(Duration::from_millis(300));
    let second = header(got.iter().find(|m| m.starts_with("INVITE")).unwrap(), "Call-ID").to_owned();
    pbx.send_to(pbx_invite(gw_port, port(&pbx), "reload-3").as_bytes(), gw_addr)
        .unwrap();
    let new_call = |got: &[String]| {
        got.iter()
            .any(|m| m.starts_with("INVITE") && header(m, "Call-ID") != second)
    };
    let got = collect(&two, Duration::from_secs(5), new_call);
    assert!(
        new_call(&got),
        "the third call went where the second did: {got:?}"
    );

    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("configuration reloaded; calls kept"), "{stderr}");
    assert!(
        stderr.contains("configuration not reloaded") && stderr.contains("no trunk is named \"nowhere\""),
        "{stderr}"
    );
}

/// A real DNS server (dnsmasq) serves `_sip._udp.pbx.test` → `sip1.pbx.test:<port>` with its A record:
/// a trunk named `pbx.test` without a port is found there (RFC 3263: SRV first).
#[test]
fn a_trunk_named_without_a_port_is_found_by_dns_srv() {
    if std::process::Command::new("dnsmasq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "\n*** SKIPPED DNS SRV trunk test: `dnsmasq` is not installed (apt-get install dnsmasq-base; .ci/run does this). ***\n"
        );
        return;
    }
    let dir = scratch("routing-srv");
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let carrier_port = carrier.local_addr().unwrap().port();
    let dns_port = free_udp_port();
    let mut dnsmasq = std::process::Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            &format!("--port={dns_port}"),
            &format!("--srv-host=_sip._udp.pbx.test,sip1.pbx.test,{carrier_port},0,10"),
            "--host-record=sip1.pbx.test,127.0.0.1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let gw_port = free_udp_port();
    let cfg = dir.join("gatewayd.toml");
    std::fs::write(
        &cfg,
        format!(
            "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {gw_port}\n\
             [[trunks]]\nname = \"carrier\"\naddress = \"pbx.test\"\n\
             monitor = {{ interval_s = 1 }}\n\
             [routing]\ndns_server = \"127.0.0.1:{dns_port}\"\n\
             [media]\nport_min = 28300\nport_max = 28399\n"
        ),
    )
    .unwrap();
    // dnsmasq binds within milliseconds; a first lookup that misses it is retried every 10 s, so give
    // it a moment rather than wait for the retry.
    std::thread::sleep(Duration::from_millis(300));
    let gw = Gateway::start_with_env(
        &["--config", cfg.to_str().unwrap()],
        &[("GATEWAYD_LOG", "info".as_ref())],
    );
    let probes = collect(&carrier, Duration::from_secs(15), |got| !got.is_empty());
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let probe = probes
        .first()
        .unwrap_or_else(|| panic!("no probe reached the SRV target:\n{stderr}"));
    assert!(probe.starts_with("OPTIONS sip:pbx.test SIP/2.0"), "{probe}");
    assert!(
        stderr.contains(&format!("trunk=carrier address=127.0.0.1:{carrier_port}")),
        "the SRV record's port and the target's A record: {stderr}"
    );
}
