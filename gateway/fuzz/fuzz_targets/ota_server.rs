//! What the update server reads from devices and operators: HTTP request heads and check-in JSON.
//! Never a panic.
#![no_main]

use edge_update_server::CheckinRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edge_http::head::parse_head(data);
    let _ = serde_json::from_slice::<CheckinRequest>(data);
});
