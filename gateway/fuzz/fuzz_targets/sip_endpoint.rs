//! The stateless endpoint on arbitrary datagrams: never a panic, at most one response per datagram,
//! and every response it sends is itself a readable SIP response.
#![no_main]

use edge_sip::message::{Message, StartLine};
use edge_sip::{Datagram, Endpoint, EndpointConfig, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ep = Endpoint::new(EndpointConfig { server: Some("fuzz".into()), tag_secret: 7 });
    ep.handle_datagram(Datagram {
        transport: Transport::Udp,
        local: "192.0.2.1:5060".parse().expect("literal address"),
        remote: "198.51.100.7:40000".parse().expect("literal address"),
        payload: data,
    });
    if let Some(t) = ep.poll_transmit() {
        let r = Message::parse(&t.payload).expect("our responses parse");
        assert!(matches!(r.start, StartLine::Response { .. }));
    }
    assert!(ep.poll_transmit().is_none());
});
