//! What a device reads from the network for an update: the bundle header (manifest, signature block,
//! endorsements), the streamed payload check, and the server's check-in answer. Never a panic.
#![no_main]

use edge_ota::{Header, Keyring, PayloadCheck, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::parse(data) {
        // A keyring with the signer in it (so the signature check runs) and one without.
        let _ = h.verify(&Keyring::new(vec![h.signer]));
        let other = PublicKey::from_hex(&"11".repeat(32)).expect("a 32-byte key");
        let _ = h.verify(&Keyring::new(vec![other]));
        let mut check = PayloadCheck::new(&h.manifest);
        let start = usize::try_from(h.payload_offset).unwrap_or(usize::MAX).min(data.len());
        let _ = check.update(&data[start..]);
        let _ = check.finish();
        let _ = h.bundle_len();
    }
    let _ = serde_json::from_slice::<edge_ota::wire::CheckinResponse>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = edge_agent::state::State::parse(text);
    }
});
