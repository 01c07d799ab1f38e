//! The real binary over real HTTPS: signed bundles made with `edge-ota`, a certificate from `rcgen`, a
//! rustls client trusting only that certificate.

// This test is the device and the operator: it owns sockets and a process, which only a shell and its
// tests may; a failed unwrap is a failed test.
#![allow(clippy::disallowed_types, clippy::disallowed_methods, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use edge_ota::{Header, Manifest, SigningKey, Version};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_edge-update-server");
const BOARD: &str = "qemu-x86_64";
const ADMIN: &str = "adm-7f3c9";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-update-server-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bundle of `payload` signed by `key`.
fn bundle(key: &SigningKey, version: &str, payload: &[u8]) -> Vec<u8> {
    let m = Manifest {
        format: edge_ota::manifest::FORMAT,
        board: BOARD.into(),
        version: Version::parse(version).unwrap(),
        min_version: None,
        created: 1_700_000_000,
        // Far enough ahead for the machine's clock.
        expires: 4_000_000_000,
        payload_size: payload.len() as u64,
        payload_sha256: edge_ota::sha256_hex(payload),
        notes: Some(format!("release {version}")),
    };
    let mut b = Header::sign(&m, key, &[]);
    b.extend_from_slice(payload);
    b
}

/// The server process; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let log = dir.join(format!("server-{}.log", std::fs::read_dir(dir).unwrap().count()));
        let mut child = Command::new(BIN)
            .args(["--config", "server.toml", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("EDGE_UPDATE_SERVER_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| {
                panic!(
                    "first line {line:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Self { child, addr, log }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// An HTTPS connection trusting only the test's certificate.
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buffered: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr, cert: &CertificateDer<'static>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self {
            tls: rustls::StreamOwned::new(conn, tcp),
            buffered: Vec::new(),
        }
    }

    /// Reads more bytes, retrying reads a signal interrupted.
    fn fill(&mut self) -> usize {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.tls.read(&mut buf) {
                Ok(n) => {
                    self.buffered.extend_from_slice(&buf[..n]);
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.write(head.as_bytes());
        self.write(body);
        self.reply(method)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next response (an interim `1xx` one included) to a `method` request.
    fn reply(&mut self, method: &str) -> Reply {
        let end = loop {
            if let Some(at) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(self.fill() > 0, "connection closed inside a response head");
        };
        let head = String::from_utf8(self.buffered[..end].to_vec()).unwrap();
        self.buffered.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = if method == "HEAD" || status < 200 {
            0
        } else {
            reply
                .header("Content-Length")
                .unwrap_or_else(|| panic!("no Content-Length: {reply:?}"))
                .parse()
                .unwrap()
        };
        while self.buffered.len() < len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        let body = self.buffered.drain(..len).collect();
        Reply { body, ..reply }
    }
}

/// The device and the operator.
struct Client {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = vec![("Connection", "close")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        headers.extend_from_slice(extra);
        Conn::open(self.addr, &self.cert).send(method, path, &headers, body)
    }

    fn checkin(&self, body: &Value) -> Reply {
        self.call(
            "POST",
            "/v1/checkin",
            Some("tok1"),
            &[],
            body.to_string().as_bytes(),
        )
    }

    fn upload(&self, channel_and_query: &str, bundle: &[u8]) -> Reply {
        let path = format!("/v1/admin/bundles/{channel_and_query}");
        self.call("PUT", &path, Some(ADMIN), &[], bundle)
    }

    fn fleet(&self) -> Value {
        let r = self.call("GET", "/v1/fleet", Some(ADMIN), &[], b"");
        assert_eq!(r.status, 200);
        r.json()
    }
}

fn device(id: &str, version: &str, results: Value) -> Value {
    let mut checkin = json!({"device": id, "board": BOARD, "channel": "stable", "version": version,
                             "slot": "A", "state": "idle"});
    checkin["results"] = results;
    checkin
}

fn release<'a>(fleet: &'a Value, version: &str) -> &'a Value {
    fleet["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("no release {version} in {fleet}"))
}

fn leftovers(store: &Path) -> Vec<String> {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect()
}

#[test]
fn serves_devices_and_the_operator_over_https() {
    let dir = scratch("https");
    let key = SigningKey::generate().unwrap();
    std::fs::write(dir.join("trusted.pub"), key.public().to_file()).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("server.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        dir.join("server.toml"),
        "listen = \"127.0.0.1:8443\"\nstore = \"store\"\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n\
         device_tokens = [\"tok1\", \"tok2\"]\nadmin_token = \"adm-7f3c9\"\ncheckin_interval_s = 60\n\
         keys = [\"trusted.pub\"]\n[pause]\nmin_failures = 2\nfailure_percent = 20\n",
    )
    .unwrap();
    let store = dir.join("store");
    let server = Server::start(&dir);
    let c = Client {
        addr: server.addr,
        cert: ck.cert.der().clone(),
    };

    // Uploads: a good one; a tampered and an untrusted one refused, leaving nothing behind.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let good = bundle(&key, "1.0.1", &payload);
    let r = c.upload("stable?percent=100", &good);
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["version"], "1.0.1");
    assert_eq!(r.json()["size"], good.len());
    let mut tampered = bundle(&key, "1.0.2", &payload);
    *tampered.last_mut().unwrap() ^= 0x55;
    let r = c.upload("stable", &tampered);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("SHA-256"),
        "{}",
        r.json()
    );
    let stranger = SigningKey::generate().unwrap();
    let r = c.upload("stable", &bundle(&stranger, "1.0.2", b"evil"));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("signature"),
        "{}",
        r.json()
    );
    assert_eq!(
        c.call("PUT", "/v1/admin/bundles/stable", Some("tok1"), &[], &good)
            .status,
        401
    );
    assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
    assert!(!store.join(BOARD).join("stable/1.0.2.bundle").exists());

    // Check-ins: a token is needed; an older device is offered 1.0.1.
    let r = c.call(
        "POST",
        "/v1/checkin",
        None,
        &[],
        device("dev-1", "1.0.0", json!([])).to_string().as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        c.call("POST", "/v1/checkin", Some("tok1"), &[], b"{\"device\":")
            .status,
        400
    );
    assert_eq!(c.call("GET", "/v1/checkin", Some("tok1"), &[], b"").status, 405);
    assert_eq!(c.call("GET", "/v1/nothing", Some("tok1"), &[], b"").status, 404);
    // A body announced but never sent costs nothing (tiny_http 0.12 allocated it, and aborted).
    let mut conn = Conn::open(server.addr, &c.cert);
    conn.write(b"POST /v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n");
    let r = conn.reply("POST");
    assert_eq!((r.status, r.header("Connection")), (401, Some("close")));
    drop(conn);
    let r = c.checkin(&device("dev-1", "1.0.0+g12ab", json!([])));
    assert_eq!(r.status, 200);
    let reply = r.json();
    assert_eq!(reply["next_checkin_s"], 60);
    let url = format!("/v1/bundles/{BOARD}/stable/1.0.1.bundle");
    assert_eq!(
        reply["update"],
        json!({"version": "1.0.1", "url": url, "size": good.len()})
    );

    // Downloads: whole, a range, a resume from the middle, and past the end.
    let r = c.call("GET", &url, Some("tok2"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert!(r.body == good, "the whole bundle");
    let r = c.call("GET", &url, Some("tok1"), &[("Range", "bytes=0-99")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 0-99/{}", good.len()).as_str())
    );
    assert!(r.body == good[..100]);
    let mid = good.len() / 2 + 3;
    let first = c.call(
        "GET",
        &url,
        Some("tok1"),
        &[("Range", &format!("bytes=0-{}", mid - 1))],
        b"",
    );
    let rest = c.call(
        "GET",
        &url,
        Some("tok1"),
        &[("Range", &format!("bytes={mid}-"))],
        b"",
    );
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.header("Content-Range"),
        Some(format!("bytes {mid}-{}/{}", good.len() - 1, good.len()).as_str())
    );
    assert!([first.body, rest.body].concat() == good, "resumed download");
    let r = c.call(
        "GET",
        &url,
        Some("tok1"),
        &[("Range", &format!("bytes={}-", good.len()))],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(c.call("GET", &url, None, &[], b"").status, 401);
    assert_eq!(
        c.call(
            "GET",
            &format!("/v1/bundles/{BOARD}/stable/9.9.9.bundle"),
            Some("tok1"),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        c.call(
            "GET",
            "/v1/bundles/%2e%2e/stable/state.json",
            Some("tok1"),
            &[],
            b""
        )
        .status,
        404
    );

    // Several requests on one connection.
    let mut conn = Conn::open(server.addr, &c.cert);
    for range in ["bytes=10-19", "bytes=-5"] {
        let r = conn.send(
            "GET",
            &url,
            &[("Authorization", "Bearer tok1"), ("Range", range)],
            b"",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body.len(), if range == "bytes=-5" { 5 } else { 10 });
    }

    // The device installed it and says so (twice: delivery is at least once); it is up to date.
    let installed = json!([{"id": "r-1700000000-1", "version": "1.0.1", "outcome": "installed",
                            "reason": "", "log": "", "at": 1_700_000_000}]);
    for _ in 0..2 {
        let r = c.checkin(&device("dev-1", "1.0.1+g34cd", installed.clone()));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["update"], Value::Null);
    }
    let fleet = c.fleet();
    let dev = &fleet["devices"][0];
    assert_eq!(
        (dev["device"].as_str(), dev["version"].as_str()),
        (Some("dev-1"), Some("1.0.1+g34cd"))
    );
    assert_eq!(dev["results"].as_array().unwrap().len(), 1);
    assert_eq!(dev["results"][0]["outcome"], "installed");
    assert!(dev["last_seen"].as_u64().unwrap() > 1_700_000_000);
    let r101 = release(&fleet, "1.0.1");
    assert_eq!(
        (r101["installed"].as_u64(), r101["offered"].as_u64()),
        (Some(1), Some(1))
    );

    // 1.0.2 fails on two devices: it pauses itself and is offered to nobody.
    // Uploaded as curl does for large files: `Expect: 100-continue`, the body after `100 Continue`.
    // A refusal comes before it, and the body is never sent.
    let second = bundle(&key, "1.0.2", b"second payload");
    let expect = |token: &str| {
        format!(
            "PUT /v1/admin/bundles/stable HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            second.len()
        )
    };
    let mut conn = Conn::open(server.addr, &c.cert);
    conn.write(expect("tok1").as_bytes());
    assert_eq!(conn.reply("PUT").status, 401);
    let mut conn = Conn::open(server.addr, &c.cert);
    conn.write(expect(ADMIN).as_bytes());
    assert_eq!(conn.reply("PUT").status, 100);
    conn.write(&second);
    assert_eq!(conn.reply("PUT").status, 201);
    drop(conn);
    assert_eq!(
        c.checkin(&device("dev-3", "1.0.1", json!([]))).json()["update"]["version"],
        "1.0.2"
    );
    for (dev, outcome) in [("dev-a", "rolled-back"), ("dev-b", "failed")] {
        let results = json!([{"id": format!("{dev}-1"), "version": "1.0.2", "outcome": outcome,
                              "reason": "gatewayd never became healthy"}]);
        let r = c.checkin(&device(dev, "1.0.1", results));
        assert_eq!(
            r.json()["update"],
            Value::Null,
            "{dev} is never offered what failed on it"
        );
    }
    assert_eq!(
        c.checkin(&device("dev-3", "1.0.1", json!([]))).json()["update"],
        Value::Null
    );
    let fleet = c.fleet();
    let r102 = release(&fleet, "1.0.2");
    assert_eq!(
        (r102["paused"].as_bool(), r102["failures"].as_u64()),
        (Some(true), Some(2))
    );
    assert!(
        r102["paused_reason"].as_str().unwrap().contains("automatically"),
        "{r102}"
    );

    // The operator resumes it at 100 %.
    let r = c.call(
        "POST",
        "/v1/admin/rollout",
        Some(ADMIN),
        &[],
        br#"{"board":"qemu-x86_64","channel":"stable","version":"1.0.2","paused":false}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["paused"], false);
    assert_eq!(
        c.checkin(&device("dev-3", "1.0.1", json!([]))).json()["update"]["version"],
        "1.0.2"
    );

    // The page escapes what devices send.
    assert_eq!(
        c.checkin(&device("<script>alert(1)</script>", "1.0.0", json!([])))
            .status,
        200
    );
    assert_eq!(c.call("GET", "/", None, &[], b"").status, 401);
    let page = c.call("GET", &format!("/?token={ADMIN}"), None, &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.header("Content-Type").unwrap().starts_with("text/html"));
    let page = String::from_utf8(page.body).unwrap();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("dev-1") && page.contains("1.0.2"));

    // A restart finds the bundles, rollouts, counts and devices again.
    let log = server.log.clone();
    drop(server);
    let server = Server::start(&dir);
    let c = Client {
        addr: server.addr,
        cert: c.cert,
    };
    let fleet = c.fleet();
    assert_eq!(fleet["devices"].as_array().unwrap().len(), 5, "{fleet}");
    let r102 = release(&fleet, "1.0.2");
    assert_eq!(
        (
            r102["paused"].as_bool(),
            r102["percent"].as_u64(),
            r102["failures"].as_u64()
        ),
        (Some(false), Some(100), Some(2))
    );
    assert_eq!(
        c.checkin(&device("dev-1", "1.0.1", json!([]))).json()["update"]["version"],
        "1.0.2"
    );
    let first_log = std::fs::read_to_string(log).unwrap();
    assert!(first_log.contains("paused automatically"), "{first_log}");
    assert!(!first_log.contains(ADMIN), "no token in the log");
}
