//! What the web UI's REST API takes from an admin's browser and turns into a configuration: the JSON
//! of `PUT /api/config` to TOML text, read back as `gatewayd.toml`; a `network.toml` as PID 1 reads
//! it. Never a panic; TOML written from JSON that reads as a configuration reads the same again.
#![no_main]

use edge_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(text) = edge_config::json::to_toml(&json) {
            if let Ok(config) = Config::parse(&text, "fuzz") {
                let again = edge_config::json::to_toml(&edge_config::json::to_json(&text).unwrap()).unwrap();
                assert_eq!(Config::parse(&again, "again").unwrap(), config);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = edge_config::json::to_json(text);
        let base = edge_init::config::NetworkConfig::default();
        if let Ok(n) = base.with_override(text, "network.toml") {
            assert_eq!(base.with_override(&n.to_network_toml(), "again").unwrap(), n);
        }
    }
});
