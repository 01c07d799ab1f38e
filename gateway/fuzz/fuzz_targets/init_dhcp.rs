//! PID 1's DHCP client fed server replies: never a panic, and it only ever asks to send DHCP messages
//! and apply leases with sane lifetimes. The input is cut into replies (a length byte, then that many
//! bytes); each gets the transaction id and hardware address of the client's last request, so that
//! replies pass the client's first checks and reach the option parser and the state machine.
#![no_main]

use std::time::Duration;

use edge_init::dhcp::{Client, Output};
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fuzz_target!(|data: &[u8]| {
    let mut now = Duration::ZERO;
    let mut client = Client::new(MAC, 0x1234_5678, now);
    let mut last_sent: Vec<u8> = Vec::new();
    let mut remember = |out: Vec<Output>, last: &mut Vec<u8>| {
        for o in out {
            if let Output::Send { packet, .. } = o {
                assert!(packet.len() >= 240, "a DHCP message has the fixed header and the cookie");
                *last = packet;
            }
        }
    };
    remember(client.poll(now), &mut last_sent);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let take = (usize::from(len) * 4).min(tail.len());
        let (reply, after) = tail.split_at(take);
        rest = after;
        let mut packet = reply.to_vec();
        if packet.len() >= 34 && last_sent.len() >= 8 {
            packet[4..8].copy_from_slice(&last_sent[4..8]);
            packet[28..34].copy_from_slice(&MAC);
        }
        remember(client.handle(now, &packet), &mut last_sent);
        now += Duration::from_millis(u64::from(len) * 97);
        let due = client.poll_timeout();
        if due <= now {
            remember(client.poll(now), &mut last_sent);
        }
    }
});
