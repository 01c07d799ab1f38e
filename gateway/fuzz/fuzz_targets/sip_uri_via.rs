//! URI and Via readers, and response routing from any Via: never a panic.
#![no_main]

use edge_sip::uri::SipUri;
use edge_sip::via::Via;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = SipUri::parse(s);
        if let Ok(v) = Via::parse(s) {
            let (_, rewritten) = v.response_route("[2001:db8::7]:4000".parse().expect("literal address"));
            Via::parse(&rewritten).expect("a rewritten Via reads back");
        }
    }
});
