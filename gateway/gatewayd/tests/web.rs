//! The web UI's REST API against the real daemon: every route needs a session, every state change its
//! CSRF token, the 6th wrong password in a minute is refused, a bad update bundle is refused before a
//! byte reaches the agent's folder, configuration changes are validated with the key at fault and
//! applied, and Prometheus can scrape with its token.

#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Gateway, free_tcp_port, free_udp_port, scratch};
use edge_web::{Access, ROUTES};

const PASSWORD: &str = "correct horse battery";
const BOARD: &str = "test-board";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut raw = Vec::new();
    common::retry_interrupted(|| tcp.read_to_end(&mut raw)).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A gateway with the web UI on a free port, its files in a scratch folder.
struct Web {
    port: u16,
    dir: std::path::PathBuf,
    _gw: Gateway,
}

fn start(name: &str) -> Web {
    let dir = scratch(name);
    let (sip, port) = (free_udp_port(), free_tcp_port());
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("board"), format!("{BOARD}\n")).unwrap();
    std::fs::write(dir.join("version"), "1.0.0\n").unwrap();
    let d = dir.display();
    let path = write_config(
        &dir,
        sip,
        port,
        &format!(
            "metrics_token = \"scrape-me-please-0123456789\"\n\n\
             [web.update]\nincoming = \"{d}/incoming\"\nkeys = \"{d}/keys\"\nboard_file = \"{d}/board\"\n\
             version_file = \"{d}/version\"\ncheck_request = \"{d}/check\"\nrollback_request = \"{d}/rollback\"\nagent_config = [\"{d}/update.toml\"]\n"
        ),
    );
    let gw = Gateway::start(&["--config", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the web UI did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Web { port, dir, _gw: gw }
}

/// `gatewayd.toml` in `dir`: SIP on UDP `sip`, the web UI on `port` (plain HTTP on loopback), `web`
/// appended to `[web]`.
fn write_config(dir: &Path, sip: u16, port: u16, web: &str) -> std::path::PathBuf {
    let config = format!(
        "schema = 2\n[sip]\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = {sip}\n\n\
         [web]\naddress = \"127.0.0.1\"\nport = {port}\nhttps = false\nstate_dir = \"{}/state\"\n{web}",
        dir.display()
    );
    let path = dir.join("gatewayd.toml");
    std::fs::write(&path, config).unwrap();
    path
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Sets the first password: (cookie header value, CSRF token).
fn setup(port: u16) -> (String, String) {
    let body = serde_json::json!({ "password": PASSWORD }).to_string();
    let a = http(port, "POST", "/api/setup", &[JSON], body.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    let cookie = a.header("Set-Cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, a.json()["csrf"].as_str().unwrap().to_owned())
}

#[test]
fn every_route_needs_a_session_and_every_change_its_csrf_token() {
    let web = start("routes");
    let port = web.port;
    // First boot: only setup, login and static files answer without a session.
    assert_eq!(
        http(port, "GET", "/api/login", &[], b"").json()["setup_required"],
        true
    );
    let index = http(port, "GET", "/", &[], b"");
    assert_eq!(index.status, 200);
    let csp = index.header("Content-Security-Policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let mut checked = 0;
    for (method, path, access) in ROUTES {
        if *access == Access::Public {
            continue;
        }
        let a = http(port, method, path, &[JSON], b"{}");
        assert_eq!(a.status, 401, "{method} {path} without a session: {}", a.body);
        let forged = http(
            port,
            method,
            path,
            &[JSON, ("Cookie", "edge_session=forged")],
            b"{}",
        );
        assert_eq!(forged.status, 401, "{method} {path} with a forged session");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} routes checked");
    assert_eq!(http(port, "GET", "/api/no-such-route", &[], b"").status, 401);

    let (cookie, csrf) = setup(port);
    assert_eq!(
        http(
            port,
            "POST",
            "/api/setup",
            &[JSON],
            br#"{"password":"another one!!"}"#
        )
        .status,
        409
    );
    fn with<'a>(cookie: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![JSON, ("Cookie", cookie)];
        h.extend_from_slice(extra);
        h
    }
    let mut changes = 0;
    for (method, path, access) in ROUTES {
        if *access == Access::Public || *method == "GET" {
            continue;
        }
        let a = http(port, method, path, &with(&cookie, &[]), b"{}");
        assert_eq!(a.status, 403, "{method} {path} without X-CSRF-Token: {}", a.body);
        let b = http(
            port,
            method,
            path,
            &with(&cookie, &[("X-CSRF-Token", "wrong")]),
            b"{}",
        );
        assert_eq!(b.status, 403, "{method} {path} with a wrong X-CSRF-Token");
        changes += 1;
    }
    assert!(changes >= 10, "only {changes} state changes checked");
    // With the token, the session works.
    let status = http(port, "GET", "/api/status", &with(&cookie, &[]), b"");
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["ready"], true, "{}", status.body);
    assert_eq!(
        http(
            port,
            "POST",
            "/api/logout",
            &with(&cookie, &[("X-CSRF-Token", csrf.as_str())]),
            b""
        )
        .status,
        204
    );
    assert_eq!(
        http(port, "GET", "/api/status", &with(&cookie, &[]), b"").status,
        401
    );
}

#[test]
fn the_sixth_wrong_password_in_a_minute_is_refused() {
    let web = start("lockout");
    let port = web.port;
    setup(port);
    for i in 1..=5 {
        let a = http(
            port,
            "POST",
            "/api/login",
            &[JSON],
            br#"{"password":"wrong guess"}"#,
        );
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    let body = serde_json::json!({ "password": PASSWORD }).to_string();
    let sixth = http(port, "POST", "/api/login", &[JSON], body.as_bytes());
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    let wait: u64 = sixth.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(sixth.json()["error"].as_str().unwrap().contains("too many"));
}

/// A bundle for `board`/`version` signed by `key`, its payload `payload`.
fn bundle(key: &edge_ota::SigningKey, board: &str, version: &str, payload: &[u8]) -> Vec<u8> {
    let manifest = edge_ota::Manifest {
        format: edge_ota::manifest::FORMAT,
        board: board.into(),
        version: edge_ota::Version::parse(version).unwrap(),
        min_version: None,
        created: 1_700_000_000,
        expires: 4_000_000_000,
        payload_size: payload.len() as u64,
        payload_sha256: edge_ota::sha256_hex(payload),
        notes: None,
    };
    let mut out = Vec::new();
    edge_ota::bundle::write(&manifest, key, &[], &mut &payload[..], &mut out, |_| {}).unwrap();
    out
}

fn incoming(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("incoming"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_bad_bundle_is_refused_before_a_byte_reaches_the_agent() {
    let web = start("upload");
    let port = web.port;
    let (cookie, csrf) = setup(port);
    let vendor = edge_ota::SigningKey::generate().unwrap();
    std::fs::write(web.dir.join("keys/vendor.pub"), vendor.public().to_file()).unwrap();
    let stranger = edge_ota::SigningKey::generate().unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let upload = |bytes: &[u8]| {
        http(
            port,
            "POST",
            "/api/update/upload",
            &[
                ("Content-Type", "application/octet-stream"),
                ("Cookie", cookie.as_str()),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            bytes,
        )
    };
    let mut tampered = bundle(&vendor, BOARD, "1.1.0", &payload);
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    for (what, bytes, expect) in [
        ("garbage", b"this is not a bundle at all".repeat(100), "bad magic"),
        (
            "an untrusted key",
            bundle(&stranger, BOARD, "1.1.0", &payload),
            "signature",
        ),
        (
            "another board",
            bundle(&vendor, "other-board", "1.1.0", &payload),
            "board",
        ),
        (
            "an older version",
            bundle(&vendor, BOARD, "0.9.0", &payload),
            "0.9.0",
        ),
        ("a tampered payload", tampered, "payload"),
    ] {
        let a = upload(&bytes);
        assert_eq!(a.status, 422, "{what}: {}", a.body);
        let error = a.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(expect), "{what}: {error}");
        assert!(
            incoming(&web.dir).is_empty(),
            "{what} left {:?}",
            incoming(&web.dir)
        );
    }
    let good = upload(&bundle(&vendor, BOARD, "1.1.0", &payload));
    assert_eq!(good.status, 202, "{}", good.body);
    assert_eq!(good.json()["version"], "1.1.0");
    assert_eq!(incoming(&web.dir), ["upload-1.1.0.bundle"]);

    // "Check for updates": refused while the agent has no server, then a request the agent takes.
    let h = [JSON, ("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let refused = http(port, "POST", "/api/update/check", &h, b"");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(!web.dir.join("check").exists());
    std::fs::write(
        web.dir.join("update.toml"),
        "server = \"http://updates.example.net:8080\"\ntoken = \"device-token\"\n",
    )
    .unwrap();
    let view = http(port, "GET", "/api/update", &h, b"").json();
    assert_eq!(view["server"], "http://updates.example.net:8080");
    assert_eq!(view["uploads"], true);
    let asked = http(port, "POST", "/api/update/check", &h, b"");
    assert_eq!(asked.status, 202, "{}", asked.body);
    assert!(web.dir.join("check").exists());
    // A host that did not boot from an A/B slot has nothing to roll back to (the appliance's agent
    // side is ota/agent/tests/rollback.rs).
    let rollback = http(port, "POST", "/api/update/rollback", &h, b"");
    assert_eq!(rollback.status, 409, "{}", rollback.body);
    assert!(
        rollback.json()["error"].as_str().unwrap().contains("A/B"),
        "{}",
        rollback.body
    );
}

#[test]
fn configuration_is_validated_with_its_key_and_applied() {
    let web = start("config");
    let port = web.port;
    let (cookie, csrf) = setup(port);
    let h = [JSON, ("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let view = http(port, "GET", "/api/config", &h, b"").json();
    let mut config = view["config"].clone();
    assert_eq!(config["web"]["https"], false);
    // A port out of range: refused, with the key, and the file is unchanged.
    let before = std::fs::read_to_string(web.dir.join("gatewayd.toml")).unwrap();
    config["sip"]["listen"][0]["port"] = 70_000.into();
    let a = http(
        port,
        "PUT",
        "/api/config",
        &h,
        serde_json::json!({ "config": config }).to_string().as_bytes(),
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.json()["fields"]["sip.listen[0].port"].is_string(), "{}", a.body);
    assert_eq!(
        std::fs::read_to_string(web.dir.join("gatewayd.toml")).unwrap(),
        before
    );
    // A trunk: saved, and calls start without a restart (the first trunk of a signalling-only gateway).
    let trunk_port = free_udp_port();
    config["sip"]["listen"][0]["port"] = view["config"]["sip"]["listen"][0]["port"].clone();
    config["sip"]["trunk"] =
        serde_json::json!({ "address": "127.0.0.1", "port": trunk_port, "transport": "udp" });
    config["media"] = serde_json::json!({ "port_min": 28500, "port_max": 28599 });
    let a = http(
        port,
        "PUT",
        "/api/config",
        &h,
        serde_json::json!({ "config": config }).to_string().as_bytes(),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["applied"][0], "routing and policy", "{}", a.body);
    let again = http(port, "GET", "/api/config", &h, b"").json();
    assert_eq!(again["config"]["sip"]["trunk"]["port"], trunk_port);
    // The test OPTIONS reaches the trunk's address for real: a UDP socket there answers 200.
    let sock = std::net::UdpSocket::bind(("127.0.0.1", trunk_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let answerer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let (n, from) = common::retry_interrupted(|| sock.recv_from(&mut buf)).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(req.starts_with("OPTIONS "), "{req}");
        let copy = |name: &str| {
            req.lines()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .unwrap()
                .to_owned()
        };
        let resp = format!(
            "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=t1\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            copy("Via"),
            copy("From"),
            copy("To"),
            copy("Call-ID"),
            copy("CSeq")
        );
        sock.send_to(resp.as_bytes(), from).unwrap();
    });
    let t = http(port, "POST", "/api/test-call", &h, b"{}");
    answerer.join().unwrap();
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.json()["status"], 200, "{}", t.body);
    assert_eq!(t.json()["trunk"], "trunk");
    // Export gives the file; import of a broken file names the line.
    let export = http(port, "GET", "/api/config/export", &h, b"");
    assert!(
        export.body.contains(&format!("port = {trunk_port}")),
        "{}",
        export.body
    );
    let bad = http(
        port,
        "POST",
        "/api/config/import",
        &[("Content-Type", "application/toml"), h[1], h[2]],
        b"schema = 2\n[sip]\nlisten = 5\n",
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.json()["error"].as_str().unwrap().contains(":3:"),
        "{}",
        bad.body
    );
}

#[test]
fn prometheus_scrapes_with_its_token() {
    let web = start("metrics");
    let port = web.port;
    assert_eq!(http(port, "GET", "/metrics", &[], b"").status, 401);
    assert_eq!(
        http(port, "GET", "/metrics", &[("Authorization", "Bearer wrong")], b"").status,
        401
    );
    let a = http(
        port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer scrape-me-please-0123456789")],
        b"",
    );
    assert_eq!(a.status, 200);
    for name in [
        "rtcedge_calls_active",
        "rtcedge_registrations",
        "rtcedge_media_packets_total",
        "rtcedge_sip_requests_total",
    ] {
        assert!(
            a.body.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{}",
            a.body
        );
    }
}

#[test]
fn a_web_ui_that_cannot_start_leaves_calls_running() {
    let dir = scratch("web-port-taken");
    let sip = free_udp_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = write_config(&dir, sip, port, "");
    let gw = Gateway::start(&["--config", path.to_str().unwrap()]);
    let resp = common::probe(sip);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    gw.signal("-TERM");
    let (status, stderr) = gw.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the web UI is not running") && stderr.contains(&format!("127.0.0.1:{port}")),
        "{stderr}"
    );
}
