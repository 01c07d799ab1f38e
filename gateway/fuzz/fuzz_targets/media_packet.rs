//! Every media-plane parser with arbitrary datagrams: a call's demultiplexer on both legs (STUN, DTLS,
//! SRTP, RTP, RTCP), the ICE-lite STUN codec, SRTP/SRTCP unprotect, RTCP translation — never a panic;
//! and SRTP protect → unprotect round-trips any RTP packet.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_media::dtls::{DtlsIdentity, DtlsRole, FingerprintHash};
use edge_media::ice::IceLite;
use edge_media::rtp::{RtpHeader, translate_rtcp};
use edge_media::session::{Direction, MediaSession, Negotiated, SessionConfig};
use edge_media::srtp::{Profile, SrtpContext};
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static DtlsIdentity {
    static ID: OnceLock<DtlsIdentity> = OnceLock::new();
    ID.get_or_init(|| DtlsIdentity::generate().expect("certificate generation works"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else { return };
    #[allow(clippy::disallowed_methods)] // fuzz harness: the origin of time for this input
    let now = Instant::now();
    let from: SocketAddr = "192.0.2.10:50000".parse().expect("literal address");
    let mut buf = [0u8; 1600];
    let len = data.len().min(1500);
    buf[..len].copy_from_slice(&data[..len]);
    match selector % 5 {
        0 | 1 => {
            let neg = Negotiated {
                browser_ufrag: "brws".into(),
                browser_fingerprint: (FingerprintHash::Sha256, vec![0; 32]),
                dtls_role: if selector & 0x80 != 0 { DtlsRole::Client } else { DtlsRole::Server },
                trunk_rtp: Some("198.51.100.20:4000".parse().expect("literal address")),
                trunk_rtcp: None,
                trunk_rtcp_mux: selector & 0x40 != 0,
                trunk_sdes: (selector & 0x20 != 0).then(|| (Profile::Aes128CmHmacSha1_80, vec![1; 30], vec![2; 30])),
                codec: (8000, 0, 0),
                alternatives: Vec::new(),
                telephone_event: Some((126, 101, 8000)),
                browser_direction: Direction::SendRecv,
                trunk_direction: Direction::SendRecv,
                ptime: Duration::from_millis(20),
            };
            let config = SessionConfig {
                ice_ufrag: "gwu".into(),
                ice_pwd: "gw-password-0123456789".into(),
                ssrcs: (1, 2),
                initial_seqs: (3, 4),
                inactivity_timeout: Duration::from_secs(60),
                hold_timeout: Duration::from_secs(600),
            };
            let mut s = MediaSession::new(now, identity(), config, neg).expect("valid session");
            // Several datagrams: split the input on a marker byte.
            for (i, chunk) in data.split(|b| *b == 0xa5).enumerate() {
                let n = chunk.len().min(1500);
                buf[..n].copy_from_slice(&chunk[..n]);
                let t = now + Duration::from_millis(i as u64 * 20);
                if selector % 5 == 0 {
                    let _ = s.from_browser(t, from, &mut buf, n);
                } else {
                    let _ = s.from_trunk(t, from, i % 2 == 1, &mut buf, n);
                }
                s.handle_timeout(t);
                while s.poll_transmit().is_some() {}
                while s.poll_event().is_some() {}
            }
        }
        2 => {
            let mut ice = IceLite::new("gwu", "gw-password-0123456789", "brws");
            let mut out = [0u8; 256];
            let _ = ice.handle(now, from, &buf[..len], &mut out);
        }
        3 => {
            let profile = if selector & 0x80 != 0 { Profile::AeadAes128Gcm } else { Profile::Aes128CmHmacSha1_80 };
            let mut rx = SrtpContext::new(profile, &[7; 16], &[9; 14]).expect("key lengths fit");
            let _ = rx.unprotect_rtp(&mut buf[..len].to_vec());
            let _ = rx.unprotect_rtcp(&mut buf[..len].to_vec());
            let _ = translate_rtcp(&mut buf, len, 1, 2, Some(3), 4, |t| t.wrapping_add(5));
        }
        _ => {
            // Round trip: whatever RTP packet we protect, the peer context unprotects to the same bytes.
            if RtpHeader::parse(&buf[..len]).is_none() || edge_media::srtp::rtp_header_len(&buf[..len]).is_none() {
                return;
            }
            let profile = if selector & 0x80 != 0 { Profile::AeadAes128Gcm } else { Profile::Aes128CmHmacSha1_80 };
            let mut tx = SrtpContext::new(profile, &[7; 16], &[9; 14]).expect("key lengths fit");
            let mut rx = SrtpContext::new(profile, &[7; 16], &[9; 14]).expect("key lengths fit");
            let original = buf[..len].to_vec();
            let n = tx.protect_rtp(&mut buf, len).expect("room for the tag");
            let back = rx.unprotect_rtp(&mut buf[..n]).expect("our own packet authenticates");
            assert_eq!(&buf[..back], &original[..]);
        }
    }
});
