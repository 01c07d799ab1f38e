//! PID 1's SNTP reply check, and sd_notify datagrams: never a panic on any bytes.
#![no_main]

use std::time::Duration;

use edge_init::notify::Notification;
use edge_init::sntp::{parse_reply, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let nonce = 0x0123_4567_89ab_cdef;
    let _ = request(nonce);
    // As is, and with the request's nonce echoed in the originate field (so more replies pass the
    // first check and reach the time arithmetic).
    let _ = parse_reply(data, nonce);
    if data.len() >= 48 {
        let mut echoed = data.to_vec();
        echoed[24..32].copy_from_slice(&request(nonce)[40..48]);
        if let Ok(reply) = parse_reply(&echoed, nonce) {
            let _ = reply.time_at_arrival(Duration::from_millis(u64::from(data[0])));
        }
    }
    let _ = Notification::parse(data);
});
