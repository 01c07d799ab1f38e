//! The SDP layer on arbitrary bytes, through all four entry points: on fresh sessions (as an offer, and
//! as the answer to a real offer), as a re-offer on an established call, and as a conversation (the
//! input split at NUL bytes, the first piece choosing where each later piece goes).
//!
//! Properties: never a panic; and every offer we write is one we accept ourselves (the trunk offer as
//! a trunk's offer, the browser offer as a browser's), so what we send is well-formed and bounded.
#![no_main]

use edge_sdp::{Codec, CodecPolicy, Fingerprint, HashAlgorithm, LocalMedia, SdpSession, TrunkSrtp};
use libfuzzer_sys::fuzz_target;

const CHROME_OFFER: &[u8] = include_bytes!("../seeds/sdp/chrome156_offer.sdp");
const CHROME_ANSWER: &[u8] = include_bytes!("../seeds/sdp/chrome156_answer.sdp");
const TRUNK_ANSWER: &[u8] = include_bytes!("../seeds/sdp/asterisk_answer_pcmu.sdp");
const TRUNK_OFFER: &[u8] = include_bytes!("../seeds/sdp/pbx_offer.sdp");
const TRUNK_OFFER_SDES: &[u8] = include_bytes!("../seeds/sdp/pbx_offer_sdes.sdp");

fn session(srtp: TrunkSrtp) -> SdpSession {
    let local = LocalMedia {
        browser_addr: "192.0.2.1:40000".parse().expect("literal address"),
        trunk_addr: "192.0.2.2:30000".parse().expect("literal address"),
        ice_ufrag: "fuzz".into(),
        ice_pwd: "fuzzfuzzfuzzfuzzfuzzfuzz".into(),
        fingerprint: Fingerprint { algorithm: HashAlgorithm::Sha256, value: vec![7; 32] },
        session_id: 1,
        sdes_key: Some([9; 30]),
    };
    let policy = CodecPolicy {
        codecs: vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
        ptime_ms: 20,
        telephone_event: true,
        trunk_srtp: srtp,
    };
    SdpSession::new(local, policy)
}

/// Our trunk offer must be an acceptable trunk offer.
fn check_trunk_offer(srtp: TrunkSrtp, offer: &[u8]) {
    if let Err(e) = session(srtp).trunk_offer(offer) {
        panic!("we refuse our own trunk offer: {e}\n{}", String::from_utf8_lossy(offer));
    }
}

/// Our browser offer must be an acceptable browser offer.
fn check_browser_offer(srtp: TrunkSrtp, offer: &[u8]) {
    if let Err(e) = session(srtp).browser_offer(offer) {
        panic!("we refuse our own browser offer: {e}\n{}", String::from_utf8_lossy(offer));
    }
}

fuzz_target!(|data: &[u8]| {
    for srtp in [TrunkSrtp::Off, TrunkSrtp::Sdes] {
        let mut s = session(srtp);
        if let Ok(offer) = s.browser_offer(data) {
            check_trunk_offer(srtp, &offer);
            let _ = s.trunk_answer(data);
        }
        let mut s = session(srtp);
        if let Ok(offer) = s.trunk_offer(data) {
            check_browser_offer(srtp, &offer);
            let _ = s.browser_answer(data);
        }
        let mut s = session(srtp);
        s.browser_offer(CHROME_OFFER).expect("the Chrome seed is accepted");
        let _ = s.trunk_answer(data);
        let mut s = session(srtp);
        let trunk_offer = if srtp == TrunkSrtp::Off { TRUNK_OFFER } else { TRUNK_OFFER_SDES };
        s.trunk_offer(trunk_offer).expect("the PBX seed is accepted");
        let _ = s.browser_answer(data);
    }

    // Re-offers on an established call, either way.
    let mut s = session(TrunkSrtp::Off);
    s.browser_offer(CHROME_OFFER).expect("the Chrome seed is accepted");
    s.trunk_answer(TRUNK_ANSWER).expect("the Asterisk seed is accepted");
    if let Ok(offer) = s.browser_offer(data) {
        check_trunk_offer(TrunkSrtp::Off, &offer);
        let _ = s.trunk_answer(TRUNK_ANSWER);
    }
    if let Ok(offer) = s.trunk_offer(data) {
        check_browser_offer(TrunkSrtp::Off, &offer);
        let _ = s.browser_answer(CHROME_ANSWER);
    }

    // A conversation.
    let mut pieces = data.split(|&b| b == 0);
    let ops = pieces.next().unwrap_or_default();
    let mut s = session(TrunkSrtp::Off);
    for op in ops.iter().take(16) {
        let piece = pieces.next().unwrap_or_default();
        match op % 5 {
            0 => {
                if let Ok(offer) = s.browser_offer(piece) {
                    check_trunk_offer(TrunkSrtp::Off, &offer);
                }
            }
            1 => drop(s.trunk_answer(piece)),
            2 => {
                if let Ok(offer) = s.trunk_offer(piece) {
                    check_browser_offer(TrunkSrtp::Off, &offer);
                }
            }
            3 => drop(s.browser_answer(piece)),
            _ => s.cancel_offer(),
        }
    }
});
