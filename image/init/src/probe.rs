//! The health probe: one SIP OPTIONS request to gatewayd on loopback, answered `SIP/2.0 200` when the
//! SIP stack is really serving (READY alone only says the listeners are bound).
//!
//! Pure: the request bytes and the check of an answer. The request is a complete RFC 3261 §8.1.1
//! request (Via with a magic-cookie branch and `rport`, Max-Forwards, From tag, To, Call-ID, CSeq,
//! Content-Length), so gatewayd's validation answers it like any peer's.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::net::SocketAddrV4;

/// The OPTIONS request number `n`, sent from `local` to gatewayd at `target`.
pub fn options(local: SocketAddrV4, target: SocketAddrV4, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-edge-init-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:edge-init@{local_ip}>;tag=edge-init-{n}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {n} OPTIONS\r\n\
         Accept: application/sdp\r\n\
         User-Agent: edge-init\r\n\
         Content-Length: 0\r\n\r\n",
        local_ip = local.ip(),
        call_id = call_id(n),
    )
    .into_bytes()
}

fn call_id(n: u32) -> String {
    format!("edge-init-probe-{n}")
}

/// Whether `answer` is a 200 to probe number `n` (any earlier probe's 200 counts too: they all ask the
/// same question of the same daemon).
pub fn is_ok(answer: &[u8]) -> bool {
    answer.starts_with(b"SIP/2.0 200")
        && answer
            .windows(b"edge-init-probe-".len())
            .any(|w| w == b"edge-init-probe-")
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index known-good fixtures; a panic is a failed test"
)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddrV4, SocketAddrV4) {
        (
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap(),
        )
    }

    #[test]
    fn request_is_complete_sip() {
        let (local, target) = addrs();
        let req = String::from_utf8(options(local, target, 7)).unwrap();
        assert!(req.starts_with("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"), "{req}");
        for h in [
            "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-edge-init-7;rport\r\n",
            "Max-Forwards: 70\r\n",
            "From: <sip:edge-init@127.0.0.1>;tag=edge-init-7\r\n",
            "To: <sip:127.0.0.1:5060>\r\n",
            "Call-ID: edge-init-probe-7\r\n",
            "CSeq: 7 OPTIONS\r\n",
        ] {
            assert!(req.contains(h), "{h:?} missing in {req}");
        }
        assert!(req.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn only_a_200_to_our_probe_counts() {
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: edge-init-probe-3\r\nContent-Length: 0\r\n\r\n";
        assert!(is_ok(ok));
        assert!(!is_ok(
            b"SIP/2.0 503 Service Unavailable\r\nCall-ID: edge-init-probe-3\r\n\r\n"
        ));
        assert!(!is_ok(b"SIP/2.0 200 OK\r\nCall-ID: someone-else\r\n\r\n"));
        assert!(!is_ok(b""));
        assert!(!is_ok(b"SIP/2.0 20"));
    }
}
