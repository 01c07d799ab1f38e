//! Staged rollout with real processes: the update server (its binary) and ten simulated devices, each
//! the real `edge-agent` running on this host against files (slots, grubenv, data folder) through
//! `--system`. At 50 %, exactly the devices the rule selects install; the others are left alone.

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    reason = "a test of processes over real sockets; a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

mod common;

use common::scratch;

const TOKEN: &str = "sim-device-token";
const ADMIN: &str = "sim-admin-token";
const BOARD: &str = "sim-board";

struct Server {
    child: Child,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// One HTTPS request as the admin; returns status and body.
    fn admin(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN}\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        s.flush().unwrap();
        let mut raw = Vec::new();
        loop {
            let mut buf = [0u8; 8192];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A server closing without close_notify ends the body too.
                Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

fn start_server(bin: &Path, dir: &Path) -> (Server, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let ca = dir.join("server.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = dir.join("server.key");
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let config = dir.join("update-server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             device_tokens = [\"{TOKEN}\"]\nadmin_token = \"{ADMIN}\"\ncheckin_interval_s = 60\n",
            dir.join("store").display(),
            ca.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        Server {
            child,
            port,
            tls: Arc::new(tls),
        },
        ca,
    )
}

/// The rollout rule, computed here from its definition (ota/server/README.md), not from the server.
fn selected(device: &str, version: &str, percent: u64) -> bool {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{device}\n{version}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(first) % 100 < percent
}

/// One simulated device checking in with the server on `port`.
fn device(root: &Path, id: &str, port: u16, ca: &Path, key_pub: &str) -> PathBuf {
    let update = format!(
        "server = \"https://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nca = \"{}\"\ndevice_id = \"{id}\"\n\
         reboot_wait_s = 1\n",
        ca.display()
    );
    common::device(root, id, BOARD, &update, key_pub)
}

#[test]
fn half_the_fleet_updates_exactly_as_the_rule_selects() {
    let agent = Path::new(env!("CARGO_BIN_EXE_edge-agent"));
    let server_bin = agent.with_file_name("edge-update-server");
    if !server_bin.exists() {
        eprintln!(
            "\n*** SKIPPED half_the_fleet_updates_exactly_as_the_rule_selects: {} is not built. \
             `cargo test --workspace` builds it; alone: `cargo build -p edge-update-server` first. ***\n",
            server_bin.display()
        );
        return;
    }
    let root = scratch("rollout");
    let (server, ca) = start_server(&server_bin, &root);

    // The vendor signs 1.1.0 for the board; published at 50 %.
    let key = edge_ota::SigningKey::generate().unwrap();
    let mut payload = vec![0u8; 300 * 1024];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = u8::try_from(i * 7 % 251).unwrap();
    }
    let version = "1.1.0";
    let manifest = edge_ota::Manifest {
        format: edge_ota::manifest::FORMAT,
        board: BOARD.into(),
        version: edge_ota::Version::parse(version).unwrap(),
        min_version: None,
        created: 1_700_000_000,
        expires: 4_000_000_000,
        payload_size: payload.len() as u64,
        payload_sha256: edge_ota::sha256_hex(&payload),
        notes: None,
    };
    let mut bundle = Vec::new();
    edge_ota::bundle::write(&manifest, &key, &[], &mut &payload[..], &mut bundle, |_| {}).unwrap();
    let (status, body) = server.admin("PUT", "/v1/admin/bundles/stable?percent=50", &bundle);
    assert_eq!(status, 201, "{body}");

    let ids: Vec<String> = (1..=10).map(|i| format!("sim-{i:02}")).collect();
    let expected: Vec<&String> = ids.iter().filter(|id| selected(id, version, 50)).collect();
    assert!(
        !expected.is_empty() && expected.len() < ids.len(),
        "ten ids should split at 50 %: {expected:?}"
    );
    // The first selected device has calls up (gatewayd's status as PID 1 writes it): its reboot into
    // the testboot waits for them, here at most 1 s.
    let busy = expected[0].clone();
    for id in &ids {
        let system = device(&root, id, server.port, &ca, &key.public().to_file());
        if *id == busy {
            std::fs::write(
                root.join(id).join("gatewayd.status"),
                "calls: 2, ending: 0, registered: 1\n",
            )
            .unwrap();
        }
        let out = Command::new(agent)
            .args(["once", "--system"])
            .arg(&system)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{id}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = root.join(id);
        let slot = std::fs::read(dir.join("part3")).unwrap();
        let env = std::fs::read(dir.join("grubenv")).unwrap();
        let env = String::from_utf8_lossy(&env);
        if expected.contains(&id) {
            assert_eq!(
                &slot[..payload.len()],
                &payload[..],
                "{id}: slot B holds 1.1.0\n{said}"
            );
            assert!(
                env.contains("boot_order=B A") && env.contains("B_left=1"),
                "{id}: testboot armed\n{env}"
            );
            let state = std::fs::read_to_string(dir.join("data/ota/state.toml")).unwrap();
            assert!(
                state.contains("version = \"1.1.0\"") && state.contains("armed = true"),
                "{state}"
            );
        } else {
            assert!(
                slot.iter().all(|&b| b == 0),
                "{id}: not selected, slot B untouched\n{said}"
            );
            assert!(
                env.contains("boot_order=A B") && env.contains("B_left=0"),
                "{id}: {env}"
            );
            assert!(!said.contains("downloading"), "{id}: {said}");
        }
    }
    let (status, fleet) = server.admin("GET", "/v1/fleet", b"");
    assert_eq!(status, 200, "{fleet}");
    for id in &ids {
        assert!(fleet.contains(&format!("\"{id}\"")), "{id} checked in: {fleet}");
    }
}
