//! Independent peers for tests: a browser's STUN checks built with webrtc-rs's `rtc-stun`, and a
//! browser's DTLS with str0m's `dimpl`. The relay benchmark includes this file too (`#[path]`), so it
//! names the crate `edge_media` rather than `crate`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use edge_media::session::{Forward, MediaEvent, MediaSession, Socket};
use edge_media::srtp::{Profile, SrtpContext};

use rtc_stun::attributes::{ATTR_USE_CANDIDATE as RTC_USE_CANDIDATE, ATTR_USERNAME as RTC_USERNAME};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST as RTC_BINDING_REQUEST, Message, Setter, TransactionId};
use rtc_stun::textattrs::TextAttribute;

pub(crate) fn crypto() -> Arc<dyn rtc_crypto::RTCCryptoProvider> {
    rtc_crypto::default_provider().unwrap()
}

/// A Binding request as a browser sends it, built with webrtc-rs's independent STUN codec.
pub(crate) fn stun_request(username: &str, pwd: &str, use_candidate: bool) -> Vec<u8> {
    let mut m = Message::new();
    let provider = crypto();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(RTC_BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(RTC_USERNAME, username.to_owned())),
    ];
    if use_candidate {
        setters.push(Box::new(rtc_stun::attributes::RawAttribute {
            typ: RTC_USE_CANDIDATE,
            length: 0,
            value: vec![],
        }));
    }
    setters.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto()),
    ));
    setters.push(Box::new(FINGERPRINT));
    m.build(&setters).unwrap();
    m.raw
}

/// The independent peer: str0m's `dimpl`, with a certificate of its own.
pub(crate) fn dimpl_peer(active: bool, now: Instant) -> (dimpl::Dtls, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["browser".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .to_vec();
    let mut dtls = dimpl::Dtls::new_12(
        Arc::new(dimpl::Config::default()),
        dimpl::DtlsCertificate {
            certificate: der,
            private_key: key.serialize_der(),
        },
        now,
    );
    dtls.set_active(active);
    (dtls, fingerprint)
}

/// Runs the DTLS handshake between the gateway's session and the browser's `dimpl` (datagrams from
/// `from`) until both sides hold SRTP keys. Returns the browser's (tx, rx) SRTP contexts and the
/// events the session raised on the way. Panics if it does not complete within 20 rounds.
pub(crate) fn dtls_handshake(
    gw: &mut MediaSession,
    now: Instant,
    from: SocketAddr,
    dtls: &mut dimpl::Dtls,
) -> ((SrtpContext, SrtpContext), Vec<MediaEvent>) {
    let mut keys = None;
    let mut events = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..20 {
        dtls.handle_timeout(now).unwrap();
        let mut to_gw = Vec::new();
        loop {
            match dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => to_gw.push(p.to_vec()),
                dimpl::Output::Timeout(_) => break,
                dimpl::Output::KeyingMaterial(k, profile) => keys = Some(srtp_pair(&k, profile)),
                _ => {}
            }
        }
        for mut p in to_gw {
            let n = p.len();
            p.resize(1500, 0);
            assert_eq!(gw.from_browser(now, from, &mut p, n), Forward::Done);
        }
        events.extend(std::iter::from_fn(|| gw.poll_event()));
        while let Some(t) = gw.poll_transmit() {
            assert_eq!((t.from, t.to), (Socket::Browser, from));
            dtls.handle_packet(&t.bytes).unwrap();
        }
        if gw.is_secure()
            && let Some(keys) = keys.take()
        {
            return (keys, events);
        }
    }
    panic!("DTLS did not complete");
}

/// The browser's (tx, rx) SRTP contexts from dimpl's exported keying material (RFC 5764 §4.2: client
/// key, server key, client salt, server salt; the browser here is the DTLS client).
fn srtp_pair(k: &[u8], profile: dimpl::SrtpProfile) -> (SrtpContext, SrtpContext) {
    let profile = match profile {
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Profile::AeadAes128Gcm,
        _ => Profile::Aes128CmHmacSha1_80,
    };
    let (kl, sl) = (profile.key_len(), profile.salt_len());
    let (ck, sk) = (&k[..kl], &k[kl..2 * kl]);
    let (cs, ss) = (&k[2 * kl..2 * kl + sl], &k[2 * kl + sl..2 * (kl + sl)]);
    (
        SrtpContext::new(profile, ck, cs).unwrap(),
        SrtpContext::new(profile, sk, ss).unwrap(),
    )
}

/// The browser's side of the DTLS handshake (dimpl as the client) over a real UDP socket toward the
/// gateway's browser port `gw`, within `wait`; returns the browser's (tx, rx) SRTP contexts. For the
/// daemon's tests, which include this file; `sock` needs a short read timeout.
#[allow(
    dead_code,
    reason = "used by the daemon's tests over real sockets, not by the core's"
)]
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a test peer on a real socket, on real time, with a deadline"
)]
pub(crate) fn udp_handshake(
    sock: &std::net::UdpSocket,
    gw: SocketAddr,
    dtls: &mut dimpl::Dtls,
    wait: std::time::Duration,
) -> (SrtpContext, SrtpContext) {
    let deadline = Instant::now() + wait;
    let mut out = vec![0u8; 4096];
    let mut buf = [0u8; 2048];
    loop {
        assert!(Instant::now() < deadline, "DTLS did not complete");
        dtls.handle_timeout(Instant::now()).unwrap();
        let mut keys = None;
        loop {
            match dtls.poll_output(&mut out) {
                dimpl::Output::Packet(p) => {
                    sock.send_to(p, gw).unwrap();
                }
                dimpl::Output::Timeout(_) => break,
                dimpl::Output::KeyingMaterial(k, profile) => keys = Some(srtp_pair(&k, profile)),
                _ => {}
            }
        }
        if let Some(keys) = keys {
            return keys;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if (20..=63).contains(&buf[0]) => dtls.handle_packet(&buf[..n]).unwrap(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("receiving DTLS: {e}"),
        }
    }
}

/// A 12-byte RTP header plus `payload` in a 1500-byte buffer; returns it and the packet's length.
#[allow(
    dead_code,
    reason = "used by the daemon's tests over real sockets, not by the core's"
)]
pub(crate) fn rtp_packet(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> (Vec<u8>, usize) {
    let mut buf = vec![0u8; 1500];
    buf[0] = 0x80;
    edge_media::rtp::RtpHeader {
        marker: false,
        pt,
        seq,
        ts: u32::from(seq) * 160,
        ssrc,
    }
    .write(&mut buf);
    buf[12..12 + payload.len()].copy_from_slice(payload);
    (buf, 12 + payload.len())
}

/// The next datagram on `sock` (which has a short read timeout) that `wanted` accepts, and its
/// source, within `wait`; others are skipped.
#[allow(
    dead_code,
    reason = "used by the daemon's tests over real sockets, not by the core's"
)]
#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a test peer on a real socket, on real time, with a deadline"
)]
pub(crate) fn recv_until(
    sock: &std::net::UdpSocket,
    what: &str,
    wait: std::time::Duration,
    mut wanted: impl FnMut(&[u8]) -> bool,
) -> (Vec<u8>, SocketAddr) {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if wanted(&buf[..n]) => return (buf[..n].to_vec(), from),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("receiving {what}: {e}"),
        }
    }
}
