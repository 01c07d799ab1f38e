//! Independent peers for tests: a browser's STUN checks built with webrtc-rs's `rtc-stun`, and a
//! browser's DTLS with str0m's `dimpl`.

use std::sync::Arc;
use std::time::Instant;

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
