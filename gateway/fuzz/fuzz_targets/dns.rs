//! The DNS SRV reader on arbitrary answers: never a panic, bounded output, and a record it picks is
//! one it read.
#![no_main]

use edge_routing::dns::{parse_srv, pick};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data.first().map_or(0, |b| u16::from(*b) << 8 | 0x34);
    for name in ["_sip._udp.pbx.example.com", "a"] {
        if let Ok(records) = parse_srv(data, id, name) {
            assert!(records.len() <= 32);
            for r in &records {
                assert!(r.target.len() <= 255 && r.addresses.len() <= 8);
            }
            for random in [0, 1, u64::MAX] {
                if let Some(p) = pick(&records, random) {
                    assert!(records.contains(p));
                }
            }
        }
    }
});
