//! The SIP tokenizer and every accessor on its result, and the digest challenge parser: never a panic,
//! whatever the bytes.
#![no_main]

use edge_sip::digest::{self, Challenge, Credentials};
use edge_sip::message::{HeaderName, Message, header_param};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // One WWW-Authenticate value, and the same cut into several header values at newlines.
        if let Ok(c) = Challenge::parse(text) {
            let creds = Credentials {
                username: "u",
                password: "p",
            };
            let auth = digest::authorization(&c, &creds, "INVITE", "sip:a@b", "cnonce", 1);
            assert!(
                !auth.chars().any(char::is_control),
                "no control character leaves a challenge"
            );
        }
        let _ = digest::best(text.split('\n'));
    }
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
