//! Shared by the integration tests: the gateway's side of a call, the policy, and golden files.
// Each test binary uses a subset of these.
#![allow(dead_code)]
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use edge_sdp::{Codec, CodecPolicy, Fingerprint, HashAlgorithm, LocalMedia, SdpSession, TrunkSrtp};

/// Our SDES key in the tests: 30 recognisable bytes.
pub(crate) const SDES_KEY: [u8; 30] = *b"gateway-sdes-key-and-salt-0123";

pub(crate) fn local() -> LocalMedia {
    LocalMedia {
        browser_addr: "192.0.2.1:40000".parse().unwrap(),
        trunk_addr: "192.0.2.2:30000".parse().unwrap(),
        ice_ufrag: "gwUf".into(),
        ice_pwd: "gatewayIcePassword0123456".into(),
        fingerprint: Fingerprint {
            algorithm: HashAlgorithm::Sha256,
            value: (0..32).collect(),
        },
        session_id: 4_242_424_242,
        sdes_key: Some(SDES_KEY),
    }
}

pub(crate) fn policy(trunk_srtp: TrunkSrtp) -> CodecPolicy {
    CodecPolicy {
        codecs: vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
        ptime_ms: 20,
        telephone_event: true,
        trunk_srtp,
    }
}

pub(crate) fn session() -> SdpSession {
    SdpSession::new(local(), policy(TrunkSrtp::Off))
}

fn path(name: &str) -> PathBuf {
    // The runtime value first: cargo sets it for the test process. The compile-time one is wrong when
    // a target dir shared between checkouts (as CI keeps one) hands this binary to another clone.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/golden")
        .join(name)
}

/// A fixture's bytes.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Compares `actual` with the golden file byte for byte; `UPDATE_GOLDEN=1` rewrites the file instead.
pub(crate) fn golden(name: &str, actual: &[u8]) {
    let p = path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&p)
        .unwrap_or_else(|e| panic!("golden {name}: {e} (run with UPDATE_GOLDEN=1 to create it)"));
    if expected != actual {
        panic!(
            "golden {name} differs (UPDATE_GOLDEN=1 rewrites it after review)\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }
}

/// A plan's golden text.
pub(crate) fn golden_plan(name: &str, plan: &edge_sdp::MediaPlan) {
    golden(name, format!("{plan:#?}\n").as_bytes());
}

/// The value of the `o=` version of an SDP we wrote.
pub(crate) fn version(sdp: &[u8]) -> u64 {
    let text = std::str::from_utf8(sdp).unwrap();
    let o = text.lines().find(|l| l.starts_with("o=")).unwrap();
    o.split(' ').nth(2).unwrap().parse().unwrap()
}

/// Lines of an SDP we wrote.
pub(crate) fn lines(sdp: &[u8]) -> Vec<String> {
    std::str::from_utf8(sdp)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
