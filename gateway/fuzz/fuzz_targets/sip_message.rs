//! The SIP tokenizer and every accessor on its result: never a panic, whatever the bytes.
#![no_main]

use edge_sip::message::{HeaderName, Message, header_param};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut m) = Message::parse(data) {
        let _ = m.method();
        for name in [HeaderName::Via, HeaderName::From, HeaderName::To, HeaderName::Require, HeaderName::Contact] {
            for v in m.values(&name) {
                let _ = header_param(v, "tag");
            }
        }
        let before = m.body.len();
        if m.frame_datagram_body().is_ok() {
            assert!(m.body.len() <= before, "framing never grows the body");
        }
    }
});
