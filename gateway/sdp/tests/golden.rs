//! Golden scenarios: real-shaped SDPs in, our SDPs and media plans out, compared byte for byte with
//! the files in `tests/golden/expected/` (`UPDATE_GOLDEN=1 cargo test -p edge-sdp` rewrites them;
//! review the diff before committing).

// Helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{SDES_KEY, fixture, golden, golden_plan, lines, local, policy, session, version};
use edge_sdp::{
    Codec, CodecMapping, Direction, DtlsRole, EventMapping, HashAlgorithm, SdesPlan, SdpSession, SrtpSuite,
    TrunkSrtp,
};

/// Lines that must never reach the trunk: WebRTC machinery and the browser's identity.
const NOT_TOWARD_TRUNK: [&str; 14] = [
    "a=ice-",
    "a=fingerprint",
    "a=setup",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=extmap",
    "a=rtcp-fb",
    "a=ssrc",
    "a=msid",
    "a=mid",
    "a=group",
    "a=candidate",
    "a=end-of-candidates",
    "198.51.100.",
];

/// Lines that must never reach the browser: SDES keys, header extensions, the trunk's identity.
const NOT_TOWARD_BROWSER: [&str; 4] = ["a=crypto", "a=extmap", "203.0.113.", "a=ptime"];

fn assert_clean(sdp: &[u8], forbidden: &[&str]) {
    let text = String::from_utf8(sdp.to_vec()).unwrap();
    for f in forbidden {
        assert!(!text.contains(f), "`{f}` must not appear in\n{text}");
    }
}

fn toward_trunk(sdp: &[u8]) {
    assert_clean(sdp, &NOT_TOWARD_TRUNK);
}

fn toward_browser(sdp: &[u8]) {
    assert_clean(sdp, &NOT_TOWARD_BROWSER);
    assert!(lines(sdp).iter().any(|l| l == "a=ice-lite"));
}

/// A call from Chrome 156 answered by an Asterisk-style trunk (PCMU + telephone-event).
fn chrome_call(s: &mut SdpSession) -> (Vec<u8>, Vec<u8>, edge_sdp::MediaPlan) {
    let trunk_offer = s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    let (browser_answer, plan) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    (trunk_offer, browser_answer, plan)
}

#[test]
fn an_opus_phone_with_telephone_event_at_8000_still_gets_dtmf() {
    // baresip (and many phones) answer Opus with only telephone-event/8000: RFC 4733 would have the
    // codec's 48 kHz, but DTMF at 8000 beats none. Chrome offered both rates; it gets the same one.
    let mut s = session();
    s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    let (browser_answer, plan) = s.trunk_answer(&fixture("baresip_answer_opus.sdp")).unwrap();
    toward_browser(&browser_answer);
    let answer = lines(&browser_answer);
    assert!(
        answer
            .iter()
            .any(|l| l.starts_with("m=audio 40000 UDP/TLS/RTP/SAVPF 111 126")),
        "{answer:?}"
    );
    assert!(
        answer.iter().any(|l| l == "a=rtpmap:126 telephone-event/8000"),
        "{answer:?}"
    );
    assert_eq!(plan.codec.codec, Codec::Opus);
    assert_eq!(
        plan.telephone_event,
        Some(EventMapping {
            clock_rate: 8000,
            browser_pt: Some(126),
            trunk_pt: 101,
        })
    );
}

#[test]
fn chrome156_calls_out() {
    let mut s = session();
    let (trunk_offer, browser_answer, plan) = chrome_call(&mut s);
    golden("expected/chrome156.trunk_offer.sdp", &trunk_offer);
    golden("expected/chrome156.browser_answer.sdp", &browser_answer);
    golden_plan("expected/chrome156.plan.txt", &plan);
    toward_trunk(&trunk_offer);
    toward_browser(&browser_answer);

    assert_eq!(
        plan.codec,
        CodecMapping {
            codec: Codec::Pcmu,
            clock_rate: 8000,
            channels: 1,
            browser_pt: 0,
            trunk_pt: 0
        }
    );
    assert!(plan.alternatives.is_empty());
    assert_eq!(
        plan.telephone_event,
        Some(EventMapping {
            clock_rate: 8000,
            browser_pt: Some(126),
            trunk_pt: 101
        })
    );
    assert_eq!(plan.browser.dtls_role, DtlsRole::Server);
    assert_eq!(plan.browser.remote_ice_ufrag, "Kq3v");
    assert_eq!(plan.browser.remote_fingerprint.algorithm, HashAlgorithm::Sha256);
    assert_eq!(
        plan.browser.remote_candidates,
        vec![
            "198.51.100.20:50104".parse().unwrap(),
            "198.51.100.21:50105".parse().unwrap()
        ]
    );
    assert_eq!(plan.trunk.remote_rtp, Some("203.0.113.10:17534".parse().unwrap()));
    assert_eq!(
        plan.trunk.remote_rtcp,
        Some("203.0.113.10:17535".parse().unwrap())
    );
    assert_eq!(plan.trunk.ptime_ms, Some(20));
    assert_eq!(
        (plan.browser.direction, plan.trunk.direction),
        (Direction::SendRecv, Direction::SendRecv)
    );
    assert!(!plan.browser.ice_restart && !plan.browser.dtls_restart && plan.browser.rtcp_rsize);
    assert_eq!((version(&trunk_offer), version(&browser_answer)), (1, 1));
}

#[test]
fn hold_and_resume_from_the_browser_keep_the_dtls_role_and_bump_versions() {
    let mut s = session();
    let (first_offer, first_answer, _) = chrome_call(&mut s);

    let hold_offer = s.browser_offer(&fixture("chrome156_offer_hold.sdp")).unwrap();
    golden("expected/hold.trunk_offer.sdp", &hold_offer);
    assert!(lines(&hold_offer).iter().any(|l| l == "a=sendonly"));
    assert_eq!(version(&hold_offer), 2);
    let (hold_answer, plan) = s.trunk_answer(&fixture("asterisk_answer_hold.sdp")).unwrap();
    golden("expected/hold.browser_answer.sdp", &hold_answer);
    assert!(lines(&hold_answer).iter().any(|l| l == "a=recvonly"));
    assert!(lines(&hold_answer).iter().any(|l| l == "a=setup:passive"));
    assert_eq!(version(&hold_answer), 2);
    assert_eq!(
        (plan.browser.direction, plan.trunk.direction),
        (Direction::SendOnly, Direction::RecvOnly)
    );
    assert_eq!(plan.browser.dtls_role, DtlsRole::Server);

    // The same offer again (a refresh): nothing changed, so the versions do not move.
    assert_eq!(
        s.browser_offer(&fixture("chrome156_offer_hold.sdp")).unwrap(),
        hold_offer
    );
    assert_eq!(
        s.trunk_answer(&fixture("asterisk_answer_hold.sdp")).unwrap().0,
        hold_answer
    );

    let resume_offer = s.browser_offer(&fixture("chrome156_offer_resume.sdp")).unwrap();
    assert_eq!(version(&resume_offer), 3);
    let same_as_first = String::from_utf8(first_offer)
        .unwrap()
        .replace("4242424242 1 IN", "4242424242 3 IN");
    assert_eq!(String::from_utf8(resume_offer).unwrap(), same_as_first);
    let (resume_answer, plan) = s.trunk_answer(&fixture("asterisk_answer_resume.sdp")).unwrap();
    let same_as_first = String::from_utf8(first_answer)
        .unwrap()
        .replace("4242424242 1 IN", "4242424242 3 IN");
    assert_eq!(String::from_utf8(resume_answer).unwrap(), same_as_first);
    assert_eq!(
        (plan.browser.direction, plan.trunk.direction),
        (Direction::SendRecv, Direction::SendRecv)
    );
    assert!(!plan.browser.dtls_restart);
}

#[test]
fn browser_ice_restart_is_reported_and_our_sdp_does_not_change() {
    let mut s = session();
    let (first_offer, first_answer, _) = chrome_call(&mut s);
    let offer = s
        .browser_offer(&fixture("chrome156_offer_ice_restart.sdp"))
        .unwrap();
    assert_eq!(
        offer, first_offer,
        "the trunk sees nothing of a browser ICE restart"
    );
    let (answer, plan) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    assert_eq!(answer, first_answer);
    assert!(plan.browser.ice_restart && !plan.browser.dtls_restart);
    assert_eq!(plan.browser.remote_ice_ufrag, "Zr8w");
}

#[test]
fn pbx_calls_a_browser_and_holds() {
    let mut s = session();
    let browser_offer = s.trunk_offer(&fixture("pbx_offer.sdp")).unwrap();
    golden("expected/pbx.browser_offer.sdp", &browser_offer);
    toward_browser(&browser_offer);
    assert!(lines(&browser_offer).iter().any(|l| l == "a=setup:actpass"));
    let (trunk_answer, plan) = s.browser_answer(&fixture("chrome156_answer.sdp")).unwrap();
    golden("expected/pbx.trunk_answer.sdp", &trunk_answer);
    golden_plan("expected/pbx.plan.txt", &plan);
    toward_trunk(&trunk_answer);
    // The trunk's offer order picks the codec; every codec both sides took is usable.
    assert_eq!(
        plan.codec,
        CodecMapping {
            codec: Codec::Pcma,
            clock_rate: 8000,
            channels: 1,
            browser_pt: 8,
            trunk_pt: 8
        }
    );
    let alternatives: Vec<(Codec, u8, u8)> = plan
        .alternatives
        .iter()
        .map(|m| (m.codec, m.browser_pt, m.trunk_pt))
        .collect();
    assert_eq!(
        alternatives,
        vec![(Codec::Pcmu, 0, 0), (Codec::Opus, 107, 107), (Codec::G722, 9, 9)]
    );
    assert_eq!(
        plan.telephone_event,
        Some(EventMapping {
            clock_rate: 8000,
            browser_pt: Some(101),
            trunk_pt: 101
        })
    );
    assert_eq!(
        plan.browser.dtls_role,
        DtlsRole::Server,
        "Chrome answered a=setup:active"
    );
    assert_eq!(plan.trunk.remote_rtp, Some("203.0.113.10:24580".parse().unwrap()));

    // The PBX holds with c=0.0.0.0: the browser is told we only send, with the DTLS role kept.
    let hold_offer = s.trunk_offer(&fixture("pbx_offer_hold.sdp")).unwrap();
    golden("expected/pbx_hold.browser_offer.sdp", &hold_offer);
    assert!(lines(&hold_offer).iter().any(|l| l == "a=setup:passive"));
    assert!(lines(&hold_offer).iter().any(|l| l == "a=sendonly"));
    assert_eq!(version(&hold_offer), 2);
    let (hold_answer, plan) = s.browser_answer(&fixture("chrome156_answer_hold.sdp")).unwrap();
    golden("expected/pbx_hold.trunk_answer.sdp", &hold_answer);
    assert_eq!(version(&hold_answer), 2);
    assert_eq!(plan.trunk.remote_rtp, None);
    assert_eq!(plan.trunk.remote_rtcp, None);
    assert_eq!(
        (plan.trunk.direction, plan.browser.direction),
        (Direction::SendOnly, Direction::RecvOnly)
    );
    assert_eq!(plan.codec.codec, Codec::Pcma);
    assert!(!plan.browser.dtls_restart);
}

#[test]
fn sdes_trunk_offer() {
    let mut s = SdpSession::new(local(), policy(TrunkSrtp::Sdes));
    let browser_offer = s.trunk_offer(&fixture("pbx_offer_sdes.sdp")).unwrap();
    golden("expected/sdes_in.browser_offer.sdp", &browser_offer);
    toward_browser(&browser_offer);
    let (trunk_answer, plan) = s.browser_answer(&fixture("chrome156_answer_g711.sdp")).unwrap();
    golden("expected/sdes_in.trunk_answer.sdp", &trunk_answer);
    toward_trunk(&trunk_answer);
    // The trunk's first line uses a suite we do not have; tag 2 is answered with our key.
    assert!(
        lines(&trunk_answer).iter().any(
            |l| l == "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:Z2F0ZXdheS1zZGVzLWtleS1hbmQtc2FsdC0wMTIz"
        )
    );
    let remote_key: [u8; 30] = *b"=-n@%^x!Bjufr9)?,#5h\\`=&]{qiPQ";
    assert_eq!(
        plan.trunk.sdes,
        Some(SdesPlan {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            remote_key,
            local_key: SDES_KEY,
            tag: 2
        })
    );
}

#[test]
fn sdes_browser_offer() {
    let mut s = SdpSession::new(local(), policy(TrunkSrtp::Sdes));
    let trunk_offer = s.browser_offer(&fixture("chrome156_offer.sdp")).unwrap();
    golden("expected/sdes_out.trunk_offer.sdp", &trunk_offer);
    toward_trunk(&trunk_offer);
    let (browser_answer, plan) = s.trunk_answer(&fixture("trunk_answer_sdes.sdp")).unwrap();
    golden("expected/sdes_out.browser_answer.sdp", &browser_answer);
    toward_browser(&browser_answer);
    let sdes = plan.trunk.sdes.unwrap();
    assert_eq!((sdes.tag, sdes.local_key), (1, SDES_KEY));
    assert_eq!(plan.codec.codec, Codec::Pcma);
}

#[test]
fn chrome_2026_numbering_changes_nothing_toward_the_trunk() {
    let mut s = session();
    let trunk_offer = s.browser_offer(&fixture("chrome2026_offer.sdp")).unwrap();
    // Byte-identical to what Chrome 156's numbering produced: the trunk's numbers are ours.
    golden("expected/chrome156.trunk_offer.sdp", &trunk_offer);
    let (browser_answer, plan) = s.trunk_answer(&fixture("trunk_answer_g722.sdp")).unwrap();
    golden("expected/chrome2026.browser_answer.sdp", &browser_answer);
    assert_eq!(
        plan.codec,
        CodecMapping {
            codec: Codec::G722,
            clock_rate: 8000,
            channels: 1,
            browser_pt: 9,
            trunk_pt: 9
        }
    );
    assert_eq!(
        plan.alternatives
            .iter()
            .map(|m| (m.browser_pt, m.trunk_pt))
            .collect::<Vec<_>>(),
        vec![(0, 0)]
    );
    assert_eq!(
        plan.telephone_event,
        Some(EventMapping {
            clock_rate: 8000,
            browser_pt: Some(36),
            trunk_pt: 101
        })
    );
    assert_eq!(
        plan.trunk.remote_rtcp,
        Some("203.0.113.10:20011".parse().unwrap()),
        "a=rtcp wins over port + 1"
    );
}

#[test]
fn trunk_numbers_are_kept_toward_the_browser_unless_invalid_there() {
    let mut s = session();
    let browser_offer = s.trunk_offer(&fixture("trunk_offer_odd_numbers.sdp")).unwrap();
    golden("expected/odd_numbers.browser_offer.sdp", &browser_offer);
    // opus keeps 100; telephone-event's 70 collides with RTCP under rtcp-mux and becomes 96.
    assert!(lines(&browser_offer).contains(&"m=audio 40000 UDP/TLS/RTP/SAVPF 100 0 96".to_owned()));
    let chrome_answer = String::from_utf8(fixture("chrome156_answer.sdp"))
        .unwrap()
        .replace("UDP/TLS/RTP/SAVPF 107 9 0 8 101", "UDP/TLS/RTP/SAVPF 100 0 96")
        .replace(
            "a=rtpmap:107 opus/48000/2\r\na=fmtp:107 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\n",
            "a=rtpmap:100 opus/48000/2\r\na=fmtp:100 minptime=10;useinbandfec=1\r\n",
        )
        .replace(
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            "a=rtpmap:96 telephone-event/48000\r\n",
        );
    let (trunk_answer, plan) = s.browser_answer(chrome_answer.as_bytes()).unwrap();
    golden("expected/odd_numbers.trunk_answer.sdp", &trunk_answer);
    assert_eq!(
        plan.codec,
        CodecMapping {
            codec: Codec::Opus,
            clock_rate: 48_000,
            channels: 2,
            browser_pt: 100,
            trunk_pt: 100
        }
    );
    assert_eq!(
        plan.telephone_event,
        Some(EventMapping {
            clock_rate: 48_000,
            browser_pt: Some(96),
            trunk_pt: 70
        })
    );
    assert!(plan.trunk.rtcp_mux);
    assert_eq!(plan.trunk.remote_rtcp, plan.trunk.remote_rtp);
}

#[test]
fn a_video_m_line_is_rejected_in_place_and_kept_in_later_offers() {
    let mut s = session();
    let trunk_offer = s.browser_offer(&fixture("chrome156_offer_video.sdp")).unwrap();
    golden("expected/chrome156.trunk_offer.sdp", &trunk_offer);
    let (browser_answer, _) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    golden("expected/video.browser_answer.sdp", &browser_answer);
    assert!(lines(&browser_answer).contains(&"m=video 0 UDP/TLS/RTP/SAVPF 96 97".to_owned()));
    assert!(lines(&browser_answer).contains(&"a=group:BUNDLE 0".to_owned()));
    // A later offer toward the browser keeps both m-lines, in order (RFC 3264 §8).
    let browser_offer = s.trunk_offer(&fixture("pbx_offer_hold.sdp")).unwrap();
    golden("expected/video.browser_offer.sdp", &browser_offer);
    let m_lines: Vec<String> = lines(&browser_offer)
        .into_iter()
        .filter(|l| l.starts_with("m="))
        .collect();
    // telephone-event keeps the number the browser gave it (126), not the trunk's 101.
    assert_eq!(
        m_lines,
        vec![
            "m=audio 40000 UDP/TLS/RTP/SAVPF 8 126",
            "m=video 0 UDP/TLS/RTP/SAVPF 96 97"
        ]
    );
}

/// SDPs captured from a real Chromium 156 (headless, `RTCPeerConnection` with one audio transceiver),
/// addresses moved to documentation ranges: the captured offer gives the same trunk offer as the
/// reconstructed one, and the captured answer (to our offer, which Chromium accepted) gives a
/// recvonly trunk answer (the transceiver had no track to send).
#[test]
fn chrome156_captured() {
    let mut s = session();
    let trunk_offer = s.browser_offer(&fixture("chrome156_captured_offer.sdp")).unwrap();
    golden("expected/chrome156.trunk_offer.sdp", &trunk_offer);
    let (_, plan) = s.trunk_answer(&fixture("asterisk_answer_pcmu.sdp")).unwrap();
    assert_eq!(
        plan.browser.remote_candidates,
        vec![
            "198.51.100.30:56387".parse().unwrap(),
            "[2001:db8::30]:38581".parse().unwrap()
        ]
    );

    let mut s = session();
    let browser_offer = s.trunk_offer(&fixture("pbx_offer.sdp")).unwrap();
    golden("expected/pbx.browser_offer.sdp", &browser_offer);
    let (trunk_answer, plan) = s
        .browser_answer(&fixture("chrome156_captured_answer.sdp"))
        .unwrap();
    golden("expected/captured.trunk_answer.sdp", &trunk_answer);
    toward_trunk(&trunk_answer);
    assert_eq!(plan.browser.dtls_role, DtlsRole::Server);
    assert_eq!(
        (plan.browser.direction, plan.trunk.direction),
        (Direction::RecvOnly, Direction::SendOnly)
    );
}
