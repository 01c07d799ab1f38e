//! Refusals, typed by who is at fault, and the state rules around them (out of order, cancelled
//! offers, DTLS roles, restarts).

// Helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fixture, local, policy, session, version};
use edge_sdp::{DtlsRole, Incompatible, LocalMedia, SdpError, SdpSession, TrunkSrtp};

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// `text` with the first occurrence of `from` replaced by `to` (which must occur).
fn edit(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "fixture lacks `{from}`");
    text.replacen(from, to, 1).into_bytes()
}

/// The 1-based line number of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.split("\r\n").position(|l| l.starts_with(prefix)).unwrap() + 1
}

fn incompatible(r: Result<impl std::fmt::Debug, SdpError>) -> Incompatible {
    match r {
        Err(SdpError::PeerIncompatible(why)) => why,
        other => panic!("expected PeerIncompatible, got {other:?}"),
    }
}

fn misbehaved(r: Result<impl std::fmt::Debug, SdpError>) -> (usize, String) {
    match r {
        Err(SdpError::PeerMisbehaved { line, what }) => (line, what),
        other => panic!("expected PeerMisbehaved, got {other:?}"),
    }
}

#[test]
fn no_common_codec() {
    let chrome = text("chrome156_offer.sdp");
    // Only red and CN left: nothing we carry.
    let only_red = edit(
        &chrome,
        "UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "UDP/TLS/RTP/SAVPF 63 13",
    );
    assert_eq!(
        incompatible(session().browser_offer(&only_red)),
        Incompatible::NoCommonCodec
    );

    // The trunk answers with a codec we did not offer.
    let mut s = session();
    s.browser_offer(chrome.as_bytes()).unwrap();
    let g729 = edit(
        &text("asterisk_answer_pcmu.sdp"),
        "RTP/AVP 0 101",
        "RTP/AVP 18 101",
    );
    assert_eq!(incompatible(s.trunk_answer(&g729)), Incompatible::NoCommonCodec);

    // The trunk offers only G.729.
    let pbx = edit(
        &text("pbx_offer.sdp"),
        "RTP/AVP 8 0 107 9 18 101 13",
        "RTP/AVP 18 101",
    );
    assert_eq!(
        incompatible(session().trunk_offer(&pbx)),
        Incompatible::NoCommonCodec
    );

    // A policy that allows nothing the browser offered.
    let mut narrow = policy(TrunkSrtp::Off);
    narrow.codecs = vec![edge_sdp::Codec::Pcma];
    let pcmu_only = edit(
        &chrome,
        "UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "UDP/TLS/RTP/SAVPF 0 126",
    );
    assert_eq!(
        incompatible(SdpSession::new(local(), narrow).browser_offer(&pcmu_only)),
        Incompatible::NoCommonCodec
    );
}

#[test]
fn browser_offer_without_webrtc_essentials() {
    let chrome = text("chrome156_offer.sdp");
    let fingerprint_line = chrome
        .split("\r\n")
        .find(|l| l.starts_with("a=fingerprint"))
        .unwrap()
        .to_owned();
    let no_fp = edit(&chrome, &format!("{fingerprint_line}\r\n"), "");
    assert_eq!(
        incompatible(session().browser_offer(&no_fp)),
        Incompatible::NoFingerprint
    );
    let no_ufrag = edit(&chrome, "a=ice-ufrag:Kq3v\r\n", "");
    assert_eq!(
        incompatible(session().browser_offer(&no_ufrag)),
        Incompatible::NoIceCredentials
    );
    let no_mux = edit(&chrome, "a=rtcp-mux\r\n", "");
    assert_eq!(
        incompatible(session().browser_offer(&no_mux)),
        Incompatible::NoRtcpMux
    );
    let avp = edit(&chrome, "UDP/TLS/RTP/SAVPF", "RTP/AVP");
    assert_eq!(
        incompatible(session().browser_offer(&avp)),
        Incompatible::NotSavpf("RTP/AVP".into())
    );
    let holdconn = edit(&chrome, "a=setup:actpass", "a=setup:holdconn");
    assert_eq!(
        incompatible(session().browser_offer(&holdconn)),
        Incompatible::DtlsRole
    );
    let no_audio = edit(&chrome, "m=audio 50104", "m=video 50104");
    assert_eq!(
        incompatible(session().browser_offer(&no_audio)),
        Incompatible::NoAudio
    );
}

#[test]
fn malformed_sdp_names_the_line() {
    let chrome = text("chrome156_offer.sdp");
    let m = line_of(&chrome, "m=audio");
    let (line, what) = misbehaved(session().browser_offer(&edit(&chrome, "m=audio 50104", "m=audio 650104")));
    assert_eq!(line, m, "{what}");
    let rtpmap = line_of(&chrome, "a=rtpmap:111");
    let (line, what) =
        misbehaved(session().browser_offer(&edit(&chrome, "a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus")));
    assert_eq!(line, rtpmap, "{what}");
    assert!(what.contains("a=rtpmap"), "{what}");
    let (line, _) = misbehaved(session().browser_offer(&edit(&chrome, "v=0\r\n", "")));
    assert_eq!(line, 1);
    let (line, _) = misbehaved(session().browser_offer(&edit(&chrome, "c=IN IP4 198.51.100.20\r\n", "")));
    assert_eq!(line, m, "no c= for the m-line");
    let no_m = chrome.split("m=audio").next().unwrap().to_owned();
    let (line, what) = misbehaved(session().browser_offer(no_m.as_bytes()));
    assert_eq!(line, line_of(&chrome, "m=audio"), "{what}");
    let mut not_utf8 = fixture("chrome156_offer.sdp");
    not_utf8[10] = 0xff; // inside the o= line (line 2)
    assert_eq!(misbehaved(session().browser_offer(&not_utf8)).0, 2);

    let asterisk = text("asterisk_answer_pcmu.sdp");
    let mut s = session();
    s.browser_offer(chrome.as_bytes()).unwrap();
    let (line, what) =
        misbehaved(s.trunk_answer(&edit(&asterisk, "c=IN IP4 203.0.113.10", "c=IN IP4 203.0.113")));
    assert_eq!(line, line_of(&asterisk, "c="), "{what}");
}

#[test]
fn trunk_profiles_and_crypto() {
    let pbx = text("pbx_offer.sdp");
    let sdes = text("pbx_offer_sdes.sdp");
    assert_eq!(
        incompatible(session().trunk_offer(sdes.as_bytes())),
        Incompatible::SrtpNotConfigured
    );
    let mut required = SdpSession::new(local(), policy(TrunkSrtp::Sdes));
    assert_eq!(
        incompatible(required.trunk_offer(pbx.as_bytes())),
        Incompatible::SrtpRequired
    );
    let only_32 = edit(
        &sdes,
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32",
    );
    assert_eq!(
        incompatible(required.trunk_offer(&only_32)),
        Incompatible::NoUsableCrypto
    );
    let avpf = edit(&pbx, "RTP/AVP", "RTP/AVPF");
    assert_eq!(
        incompatible(session().trunk_offer(&avpf)),
        Incompatible::TrunkProfile("RTP/AVPF".into())
    );
    let host = edit(&pbx, "c=IN IP4 203.0.113.10", "c=IN IP4 pbx.example.com");
    assert_eq!(
        incompatible(session().trunk_offer(&host)),
        Incompatible::ConnectionAddress("pbx.example.com".into())
    );

    // SDES required, the trunk answers plain RTP.
    let mut s = SdpSession::new(local(), policy(TrunkSrtp::Sdes));
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    assert_eq!(
        incompatible(s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp"))),
        Incompatible::SrtpRequired
    );

    // SDES configured but the caller forgot the key: our fault, not the peer's.
    let keyless = LocalMedia {
        sdes_key: None,
        ..local()
    };
    let mut s = SdpSession::new(keyless, policy(TrunkSrtp::Sdes));
    assert_eq!(
        s.browser_offer(&fixture("chrome156_offer.sdp")),
        Err(SdpError::MissingSdesKey)
    );
}

#[test]
fn a_second_audio_m_line_is_chosen_when_the_first_is_unusable() {
    // "Best effort SRTP": an RTP/SAVP m-line first, then the same audio as RTP/AVP.
    let sdes = text("pbx_offer_sdes.sdp");
    let (head, media) = sdes.split_at(sdes.find("m=audio").unwrap());
    let plain = media
        .replace("RTP/SAVP", "RTP/AVP")
        .replace("m=audio 26000", "m=audio 26010");
    let plain: String = plain
        .split("\r\n")
        .filter(|l| !l.starts_with("a=crypto"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let both = format!("{head}{media}{plain}");
    let mut s = session();
    s.trunk_offer(both.as_bytes()).unwrap();
    let (answer, plan) = s.browser_answer(&fixture("chrome156_answer_g711.sdp")).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let m: Vec<&str> = answer.split("\r\n").filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m,
        vec!["m=audio 0 RTP/SAVP 0 8 101", "m=audio 30000 RTP/AVP 0 8 101"]
    );
    assert_eq!(plan.trunk.remote_rtp, Some("203.0.113.10:26010".parse().unwrap()));
    assert!(plan.trunk.sdes.is_none());
}

#[test]
fn calls_out_of_order() {
    let mut s = session();
    assert!(matches!(
        s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")),
        Err(SdpError::OutOfOrder {
            call: "trunk_answer",
            ..
        })
    ));
    assert!(matches!(
        s.browser_answer(&fixture("chrome156_answer.sdp")),
        Err(SdpError::OutOfOrder { .. })
    ));
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    assert!(matches!(
        s.browser_offer(&fixture("chrome156_offer.sdp")),
        Err(SdpError::OutOfOrder { .. })
    ));
    assert!(matches!(
        s.trunk_offer(&fixture("pbx_offer.sdp")),
        Err(SdpError::OutOfOrder { .. })
    ));
    assert!(matches!(
        s.browser_answer(&fixture("chrome156_answer.sdp")),
        Err(SdpError::OutOfOrder { .. })
    ));
    // The wrong answer did not consume the offer in flight.
    s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
}

#[test]
fn a_cancelled_offer_leaves_the_session_and_bumps_the_next_version() {
    let mut s = session();
    let first = s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    s.cancel_offer(); // the trunk said 488
    let again = s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    assert_eq!(
        (version(&first), version(&again)),
        (1, 2),
        "a refused SDP's version is never reused"
    );
    s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    s.cancel_offer(); // nothing in flight: no effect
    s.trunk_offer(&fixture("pbx_offer_hold.sdp")).unwrap();
}

#[test]
fn an_answer_error_ends_the_exchange() {
    let mut s = session();
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    assert!(s.trunk_answer(b"garbage").is_err());
    assert!(matches!(
        s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")),
        Err(SdpError::OutOfOrder { .. })
    ));
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
}

#[test]
fn answers_must_mirror_the_offer() {
    let mut s = session();
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    let asterisk = text("asterisk_answer_pcmu.sdp");
    let two = format!("{asterisk}m=video 0 RTP/AVP 31\r\n");
    let (_, what) = misbehaved(s.trunk_answer(two.as_bytes()));
    assert!(what.contains("2 m= lines"), "{what}");

    let mut s = session();
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    let rejected = edit(&asterisk, "m=audio 17534", "m=audio 0");
    assert_eq!(
        incompatible(s.trunk_answer(&rejected)),
        Incompatible::AudioRejected
    );

    let mut s = session();
    s.trunk_offer(&fixture("pbx_offer.sdp")).unwrap();
    let actpass = edit(&text("chrome156_answer.sdp"), "a=setup:active", "a=setup:actpass");
    let (line, _) = misbehaved(s.browser_answer(&actpass));
    assert_eq!(line, line_of(&text("chrome156_answer.sdp"), "a=setup"));
}

#[test]
fn dtls_roles() {
    // A browser offering passive makes us the client, and we stay the client.
    let passive = edit(&text("chrome156_offer.sdp"), "a=setup:actpass", "a=setup:passive");
    let mut s = session();
    s.browser_offer(&passive).unwrap();
    let (answer, plan) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    assert!(String::from_utf8(answer).unwrap().contains("a=setup:active\r\n"));
    assert_eq!(plan.browser.dtls_role, DtlsRole::Client);
    let offer = s.trunk_offer(&fixture("pbx_offer_hold.sdp")).unwrap();
    assert!(String::from_utf8(offer).unwrap().contains("a=setup:active\r\n"));

    // The browser answering passive: we become the client.
    let mut s = session();
    s.trunk_offer(&fixture("pbx_offer.sdp")).unwrap();
    let passive = edit(&text("chrome156_answer.sdp"), "a=setup:active", "a=setup:passive");
    assert_eq!(
        s.browser_answer(&passive).unwrap().1.browser.dtls_role,
        DtlsRole::Client
    );
    // Our next offer says active; an answer that also says active is a role conflict.
    let offer = s.trunk_offer(&fixture("pbx_offer_hold.sdp")).unwrap();
    assert!(String::from_utf8(offer).unwrap().contains("a=setup:active\r\n"));
    assert_eq!(
        incompatible(s.browser_answer(&fixture("chrome156_answer_hold.sdp"))),
        Incompatible::DtlsRole
    );
}

#[test]
fn a_new_browser_fingerprint_is_a_dtls_restart() {
    let mut s = session();
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    let chrome = text("chrome156_offer.sdp");
    let fingerprint_line = chrome
        .split("\r\n")
        .find(|l| l.starts_with("a=fingerprint"))
        .unwrap()
        .to_owned();
    let new_cert = format!("a=fingerprint:sha-256 {}", vec!["5A"; 32].join(":"));
    s.browser_offer(&edit(&chrome, &fingerprint_line, &new_cert))
        .unwrap();
    let (_, plan) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    assert!(plan.browser.dtls_restart && !plan.browser.ice_restart);
    assert_eq!(plan.browser.remote_fingerprint.value, vec![0x5a; 32]);
    assert_eq!(plan.browser.dtls_role, DtlsRole::Server);
}

#[test]
fn errors_read_well() {
    let e = SdpError::PeerMisbehaved {
        line: 7,
        what: "a=rtpmap must be `<pt> <encoding>/<clock rate>[/<channels>]`".into(),
    };
    assert_eq!(
        e.to_string(),
        "the peer's SDP is malformed: line 7: a=rtpmap must be `<pt> <encoding>/<clock rate>[/<channels>]`"
    );
    let e = SdpError::from(Incompatible::NoCommonCodec);
    assert_eq!(
        e.to_string(),
        "the peer's SDP is well-formed but cannot be honoured: no codec is allowed by the policy and supported by both legs"
    );
}
