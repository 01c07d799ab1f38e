//! The endpoint on arbitrary datagrams, then on its timers: never a panic, and every message it sends is
//! itself a readable SIP response.
#![no_main]

use edge_sip::message::{Message, StartLine};
use edge_sip::transaction::TimerConfig;
use edge_sip::{Datagram, Endpoint, EndpointConfig, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ep = Endpoint::new(EndpointConfig { server: Some("fuzz".into()), tag_secret: 7, timers: TimerConfig::default(), router: None });
    // libFuzzer targets may read the clock: this is the origin of fake time, advanced by arithmetic.
    let t0 = std::time::Instant::now();
    ep.handle_datagram(t0, Datagram {
        transport: Transport::Udp,
        local: "192.0.2.1:5060".parse().expect("literal address"),
        remote: "198.51.100.7:40000".parse().expect("literal address"),
        payload: data,
    });
    let mut check = |ep: &mut Endpoint| {
        while let Some(t) = ep.poll_transmit() {
            let r = Message::parse(&t.payload).expect("our responses parse");
            assert!(matches!(r.start, StartLine::Response { .. }));
        }
    };
    check(&mut ep);
    // Run every timer to the end: all transactions must terminate.
    ep.handle_timeout(t0 + std::time::Duration::from_secs(300));
    check(&mut ep);
    assert_eq!(ep.transactions(), 0, "a transaction outlived its timers");
});
