//! RFC 4475 "Session Initiation Protocol (SIP) Torture Test Messages", fed to the SIP core through its
//! public API: the tokenizer ([`Message::parse`]), the UAS checks ([`validate`]) and the [`Endpoint`]
//! (datagram in, datagrams out).
//!
//! The messages are rebuilt from the RFC's definitions (CRLF line ends; the bytes the RFC gives in
//! `<hex>` notation written as `\x..` escapes; its `<repeat>` notation as `str::repeat`). Each test
//! names its RFC section and says, in short, what the RFC expects of an element acting as a UAS.
//!
//! What "answered normally" means here: the endpoint's transaction user is still a stub (OPTIONS →
//! 200, CANCEL/BYE → 481, other methods → 501) and will become the B2BUA, so a valid request is only
//! required to be read and answered with a code that is not one of the malformed-request answers
//! (400, 416, 505), with an INVITE getting `100 Trying` first.
#![allow(clippy::unwrap_used)] // test helpers: an unwrap that fails is a failed assertion, not a crash

use std::time::Instant;

use edge_sip::message::HeaderName;
use edge_sip::transaction::TimerConfig;
use edge_sip::{
    Datagram, Endpoint, EndpointConfig, Message, Method, Outcome, StartLine, Stats, Transmit, Transport,
    validate,
};

// ------------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------------

/// RFC 4475 messages use CRLF line ends; they are written below with LF and converted here. (Where a
/// body holds raw bytes, it is appended after the conversion.)
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    for &b in text {
        assert_ne!(b, b'\r', "write the messages with LF only");
        if b == b'\n' {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b);
        }
    }
    out
}

#[allow(clippy::disallowed_methods)] // the one clock read of this test file: the origin of fake time
fn epoch() -> Instant {
    Instant::now()
}

struct Run {
    outcome: Outcome,
    sent: Vec<Transmit>,
    stats: Stats,
}

/// Feeds `datagram` over UDP to a fresh endpoint; returns what happened and everything it sent.
fn run(datagram: &[u8]) -> Run {
    let mut ep = Endpoint::new(EndpointConfig {
        server: None,
        tag_secret: 4475,
        timers: TimerConfig::default(),
        // Signalling only: without a trunk, INVITEs are answered by the endpoint itself.
        router: None,
    });
    let outcome = ep.handle_datagram(
        epoch(),
        Datagram {
            transport: Transport::Udp,
            local: "192.0.2.1:5060".parse().unwrap(),
            remote: "192.0.2.200:5060".parse().unwrap(),
            payload: datagram,
        },
    );
    let sent = std::iter::from_fn(|| ep.poll_transmit()).collect();
    Run {
        outcome,
        sent,
        stats: ep.stats(),
    }
}

fn status(t: &Transmit) -> (u16, String, Message) {
    let m = Message::parse(&t.payload).unwrap();
    match &m.start {
        StartLine::Response { code, reason } => (*code, reason.clone(), m),
        StartLine::Request { .. } => panic!("sent a request"),
    }
}

/// What the endpoint sent for a request it answered: `100 Trying` first for an INVITE, then exactly one
/// final response, which copies the request's Call-ID and CSeq (§8.2.6.2). Returns the final response.
fn final_response(name: &str, request: &[u8], r: &Run) -> (u16, String, Message) {
    let req = Message::parse(request).unwrap_or_else(|e| panic!("{name}: request unreadable: {e}"));
    let codes: Vec<u16> = r.sent.iter().map(|t| status(t).0).collect();
    let Outcome::Answered { method, code } = &r.outcome else {
        panic!("{name}: not answered: {:?}", r.outcome)
    };
    assert_eq!(Some(method), req.method(), "{name}");
    if *method == Method::Invite {
        assert_eq!(codes, [100, *code], "{name}");
    } else {
        assert_eq!(codes, [*code], "{name}");
    }
    let last = status(r.sent.last().unwrap());
    for h in [HeaderName::CallId, HeaderName::CSeq] {
        assert_eq!(last.2.header(&h), req.header(&h), "{name}: {h:?} not copied");
    }
    last
}

/// A valid request: read and answered normally (not 400/416/505), nothing counted as malformed.
/// Returns the code.
fn assert_answered(name: &str, request: &[u8]) -> u16 {
    let r = run(request);
    let (code, reason, _) = final_response(name, request, &r);
    assert!(
        ![400, 416, 505].contains(&code),
        "{name}: answered {code} {reason}"
    );
    assert_eq!(
        (r.stats.malformed_answered, r.stats.malformed_dropped),
        (0, 0),
        "{name}"
    );
    code
}

/// A request the UAS must reject with `code`; for a 400 the reason phrase names `defect`.
fn assert_rejected(name: &str, request: &[u8], code: u16, defect: &str) -> Message {
    let r = run(request);
    let (got, reason, response) = final_response(name, request, &r);
    assert_eq!(got, code, "{name}: answered {got} {reason}");
    assert!(
        reason.contains(defect),
        "{name}: reason {reason:?} does not name {defect:?}"
    );
    assert_eq!(r.stats.malformed_dropped, 0, "{name}");
    if code != 420 {
        assert_eq!(r.stats.malformed_answered, 1, "{name}");
    }
    response
}

/// Nothing can be answered: dropped, nothing sent, counted.
fn assert_dropped(name: &str, datagram: &[u8]) {
    let r = run(datagram);
    assert!(
        matches!(r.outcome, Outcome::Dropped(_)),
        "{name}: {:?}",
        r.outcome
    );
    assert!(r.sent.is_empty(), "{name}: sent {} datagrams", r.sent.len());
    assert_eq!(r.stats.malformed_dropped, 1, "{name}");
}

/// A response with no client transaction: read (when `readable`), then silently discarded.
fn assert_response_discarded(name: &str, datagram: &[u8], readable: bool) {
    assert_eq!(Message::parse(datagram).is_ok(), readable, "{name}");
    let r = run(datagram);
    assert!(r.sent.is_empty(), "{name}: sent {} datagrams", r.sent.len());
    if readable {
        assert_eq!(r.outcome, Outcome::Absorbed, "{name}");
        assert_eq!(r.stats.stray_responses, 1, "{name}");
    } else {
        assert!(
            matches!(r.outcome, Outcome::Dropped(_)),
            "{name}: {:?}",
            r.outcome
        );
        assert_eq!(r.stats.malformed_dropped, 1, "{name}");
    }
}

fn parsed(bytes: &[u8]) -> Message {
    let mut m = Message::parse(bytes).unwrap();
    m.frame_datagram_body().unwrap();
    m
}

fn values(m: &Message, name: &HeaderName) -> Vec<String> {
    m.values(name).map(str::to_owned).collect()
}

// ------------------------------------------------------------------------------------------------
// 3.1.1 Valid messages
// ------------------------------------------------------------------------------------------------

/// 3.1.1.1 "A Short Tortuous INVITE" (wsinv): folding everywhere, LWS around colons and slashes, an
/// empty Subject, short and long names mixed, leading zeros, unknown headers (one whose value would be
/// invalid as generic-params): every element must treat it as well formed; a UAS ignores the unknown
/// fields.
fn wsinv() -> Vec<u8> {
    crlf(
        b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_1_1_wsinv() {
    let m = parsed(&wsinv());
    assert_eq!(
        m.header(&HeaderName::To),
        Some("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    );
    assert_eq!(
        m.header(&HeaderName::From),
        Some("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8")
    );
    assert_eq!(m.header(&HeaderName::CSeq), Some("0009 INVITE"));
    assert_eq!(m.header(&HeaderName::Other("s".into())), Some(""));
    assert_eq!(
        m.header(&HeaderName::Other("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        values(&m, &HeaderName::Via),
        [
            "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
            "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8",
            "SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        ]
    );
    assert_eq!(m.body.len(), 150);
    assert_answered("wsinv", &wsinv());
}

/// 3.1.1.2 "Wide Range of Valid Characters" (intmeth): an unknown method made of every non-alphanumeric
/// token character, unusual but legal Request-URI user and password, quoted-pairs of BEL, NUL and DEL in
/// a display name, UTF-8 in a parameter and in an extension header. Endpoints answer 501 listing the
/// methods they understand in Allow.
fn intmeth() -> Vec<u8> {
    crlf(b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb
Content-Length: 0

")
}

#[test]
fn s3_1_1_2_intmeth() {
    let m = parsed(&intmeth());
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Other(method.into())));
    assert_eq!(
        m.header(&HeaderName::Other("extensionHeader-!.%*+_`'~".into())),
        Some("\u{feff}大停電")
    );
    assert!(
        m.header(&HeaderName::From)
            .unwrap()
            .contains("\"работающий\";tag=")
    );
    assert!(
        m.header(&HeaderName::To)
            .unwrap()
            .starts_with("\"BEL:\\\u{7} NUL:\\\0 DEL:\\\u{7f}\" <")
    );
    let r = run(&intmeth());
    let (code, _, response) = final_response("intmeth", &intmeth(), &r);
    assert_eq!(code, 501);
    assert!(response.header(&HeaderName::Allow).is_some());
}

/// 3.1.1.3 "Valid Use of the % Escaping Mechanism" (esc01): escapes in the Request-URI user part
/// (`sips%3Auser%40example.com`), in From/To user parts and in Contact URI parameters. Well formed.
fn esc01() -> Vec<u8> {
    crlf(
        b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_1_3_esc01() {
    let m = parsed(&esc01());
    assert_eq!(
        m.header(&HeaderName::CallId),
        Some("esc01.239409asdfakjkn23onasd0-3234")
    );
    assert_eq!(m.header(&HeaderName::ContentType), Some("application/sdp"));
    assert_answered("esc01", &esc01());
}

/// 3.1.1.4 "Escaped Nulls in URIs" (escnull): `%00` in user parts; a REGISTER with two distinct
/// contacts. Parsers must accept it.
fn escnull() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

",
    )
}

#[test]
fn s3_1_1_4_escnull() {
    let m = parsed(&escnull());
    assert_eq!(
        values(&m, &HeaderName::Contact),
        ["<sip:%00@host5.example.com>", "<sip:%00%00@host5.example.com>"]
    );
    assert_answered("escnull", &escnull());
}

/// 3.1.1.5 "Use of % When It Is Not an Escape" (esc02): `RE%47IST%45R` is an unknown method, not
/// REGISTER; `C%6Fntact` is an unknown header, so there are two Contact values, not three. An endpoint
/// rejects it with 501.
fn esc02() -> Vec<u8> {
    crlf(
        b"RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

",
    )
}

#[test]
fn s3_1_1_5_esc02() {
    let m = parsed(&esc02());
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_eq!(values(&m, &HeaderName::Contact).len(), 2);
    assert_eq!(
        m.header(&HeaderName::Other("C%6Fntact".into())),
        Some("<sip:alias2@host2.example.com>")
    );
    let r = run(&esc02());
    assert_eq!(final_response("esc02", &esc02(), &r).0, 501);
}

/// 3.1.1.6 "Action Must Be Taken When Display Name Lacks LWS Before <" (lwsdisp): `caller<sip:…>` is a
/// known grammar bug; elements should accept it.
fn lwsdisp() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

",
    )
}

#[test]
fn s3_1_1_6_lwsdisp() {
    assert_answered("lwsdisp", &lwsdisp());
}

/// 3.1.1.7 "Long Values in Header Fields" (longreq): long display name, URI parameters, tag, Call-ID,
/// unknown header; 34 Via values in every mix of case, compact form and spacing around the colon.
/// Well formed.
fn longreq() -> Vec<u8> {
    let mut text = format!(
        "INVITE sip:user@example.com SIP/2.0
To: \"I have a user name of {extreme} proportion\"<sip:user@example.com:6000;unknownparam1=very{long20}value;longparam{name25}=shortvalue;very{long25}ParameterNameWithNoValue>
F: sip:{caller}@example.net;tag=12{n982}424;unknownheaderparam{name20}=unknowheaderparam{value15};unknownValueless{paramname10}
Call-ID: longreq.one{really20}longcallid
CSeq: 3882340 INVITE
Unknown-{cap_long20}-Name: unknown-{long20}-value; unknown-{long20}-parameter-name = unknown-{long20}-parameter-value
Via: SIP/2.0/TCP sip33.example.com
v: SIP/2.0/TCP sip32.example.com
V: SIP/2.0/TCP sip31.example.com
Via: SIP/2.0/TCP sip30.example.com
ViA: SIP/2.0/TCP sip29.example.com
VIa: SIP/2.0/TCP sip28.example.com
VIA: SIP/2.0/TCP sip27.example.com
via: SIP/2.0/TCP sip26.example.com
viA: SIP/2.0/TCP sip25.example.com
vIa: SIP/2.0/TCP sip24.example.com
vIA: SIP/2.0/TCP sip23.example.com
V :  SIP/2.0/TCP sip22.example.com
v :  SIP/2.0/TCP sip21.example.com
V  : SIP/2.0/TCP sip20.example.com
v  : SIP/2.0/TCP sip19.example.com
Via : SIP/2.0/TCP sip18.example.com
Via  : SIP/2.0/TCP sip17.example.com
",
        extreme = "extreme".repeat(10),
        long20 = "long".repeat(20),
        name25 = "name".repeat(25),
        long25 = "long".repeat(25),
        caller = "amazinglylongcallername".repeat(5),
        n982 = "982".repeat(50),
        name20 = "name".repeat(20),
        value15 = "value".repeat(15),
        paramname10 = "paramname".repeat(10),
        really20 = "really".repeat(20),
        cap_long20 = "Long".repeat(20),
    );
    for n in (1..=16).rev() {
        text.push_str(&format!("Via: SIP/2.0/TCP sip{n}.example.com\n"));
    }
    text.push_str(&format!(
        "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very{}branchvalue
Max-Forwards: 70
Contact: <sip:{}@host5.example.net>
Content-Type: application/sdp
l: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
        "long".repeat(50),
        "amazinglylongcallername".repeat(5),
    ));
    crlf(text.as_bytes())
}

#[test]
fn s3_1_1_7_longreq() {
    let m = parsed(&longreq());
    let vias = values(&m, &HeaderName::Via);
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0], "SIP/2.0/TCP sip33.example.com");
    assert_eq!(vias[32], "SIP/2.0/TCP sip1.example.com");
    assert!(
        m.header(&HeaderName::From)
            .unwrap()
            .contains(&format!("tag=12{}424;", "982".repeat(50)))
    );
    assert_eq!(m.body.len(), 150);
    assert_answered("longreq", &longreq());
}

/// 3.1.1.8 "Extra Trailing Octets in a UDP Datagram" (dblreq): a REGISTER with Content-Length 0 followed
/// by octets that look like an INVITE. The REGISTER is handled normally; the rest is noise to ignore.
fn dblreq() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0


INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_1_8_dblreq() {
    let m = parsed(&dblreq());
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body.is_empty(), "the trailing octets are not a body");
    let r = run(&dblreq());
    // One answer, to the REGISTER (final_response checks its CSeq and Call-ID), none to the noise.
    let (code, _, _) = final_response("dblreq", &dblreq(), &r);
    assert!(![400, 416, 505].contains(&code));
    assert_eq!(r.stats.requests, 1);
}

/// 3.1.1.9 "Semicolon-Separated Parameters in URI User Part" (semiuri): the Request-URI user part is
/// `user;par=u%40example.net`. Well formed.
fn semiuri() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

",
    )
}

#[test]
fn s3_1_1_9_semiuri() {
    let m = parsed(&semiuri());
    assert_eq!(values(&m, &HeaderName::Accept).len(), 6);
    let StartLine::Request { uri, .. } = &m.start else {
        panic!()
    };
    let uri = edge_sip::uri::SipUri::parse(uri).unwrap();
    assert_eq!(
        (uri.user, uri.host),
        (Some("user;par=u%40example.net"), "example.com")
    );
    assert_answered("semiuri", &semiuri());
}

/// 3.1.1.10 "Varied and Unknown Transport Types" (transports): Via values with UDP, SCTP, TLS, an
/// unknown transport and TCP. Parsers must accept it; elements process it normally.
fn transports() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

",
    )
}

#[test]
fn s3_1_1_10_transports() {
    let m = parsed(&transports());
    let kinds: Vec<String> = values(&m, &HeaderName::Via)
        .iter()
        .map(|v| edge_sip::via::Via::parse(v).unwrap().transport.to_owned())
        .collect();
    assert_eq!(kinds, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_answered("transports", &transports());
}

/// The binary body part of mpart01: a DER-encoded PKCS#7 signature (342 octets, NULs included).
const MPART01_SIGNATURE: &str = "\
3082015206092a864886f70d010702a08201433082013f0201013109300706052b0e03021a300b06092a864886f70d01\
0701318201203082011c020101307c3070310b3009060355040613025553311330110603550408130a43616c69666f72\
6e69613111300f0603550407130853616e204a6f7365310e300c060355040a1305736970697431293027060355040b13\
205369706974205465737420436572746966696361746520417574686f7269747902080195007102330113300706052b\
0e03021a300d06092a864886f70d01010105000481808ef466f948f0522dd2e5978e9d95aae9f2fe15a06659716292e8\
da2aa8d8350a68ceffae3cbd2bff1675ddd5648e593dd64728f26220f7e941749e330d9a15edabdb93d10c42102e7b72\
89d29cc0c9ae2efbc7c0cff9172f3b027e4fc027e1546de4b6aa3abb3e66cccb5dd6c64b8383149cb8e6ff182d944fe5\
7b65bc99d005";

/// 3.1.1.11 "Multipart MIME Message" (mpart01): a MESSAGE whose second body part is binary and holds
/// NUL octets. Receivers must frame it properly; parsers must accept it even if the application does not
/// support the body.
fn mpart01() -> Vec<u8> {
    let mut m = crlf(b"MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=7a9cbec02ceef655
Date: Sat, 15 Oct 2005 04:44:56 GMT
User-Agent: SIPimp.org/0.2.5 (curses)
Content-Length: 553

--7a9cbec02ceef655
Content-Type: text/plain
Content-Transfer-Encoding: binary

Hello
--7a9cbec02ceef655
Content-Type: application/octet-stream
Content-Transfer-Encoding: binary

");
    let hex = MPART01_SIGNATURE.as_bytes();
    for pair in hex.chunks(2) {
        m.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
    }
    m.extend_from_slice(b"\r\n--7a9cbec02ceef655--\r\n");
    m
}

#[test]
fn s3_1_1_11_mpart01() {
    let m = parsed(&mpart01());
    assert_eq!(m.body.len(), 553);
    assert!(m.body.contains(&0), "the binary part keeps its NULs");
    // 553 octets are exactly the two parts and the closing delimiter line: nothing cut, nothing left.
    assert!(m.body.ends_with(b"\r\n--7a9cbec02ceef655--\r\n"));
    assert_eq!(
        m.body.len(),
        mpart01().len() - mpart01().windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4
    );
    assert_answered("mpart01", &mpart01());
}

/// 3.1.1.12 "Unusual Reason Phrase" (unreason): a 200 whose reason phrase holds non-ASCII UTF-8. A
/// parser must accept it; with no client transaction for it, a UAS discards it.
fn unreason() -> Vec<u8> {
    crlf(
        "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"
        .as_bytes(),
    )
}

#[test]
fn s3_1_1_12_unreason() {
    let m = parsed(&unreason());
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 200,
            reason: "= 2**3 * 5**2 но сто девяносто девять - простое".into()
        }
    );
    assert_eq!(m.body.len(), 154);
    assert_response_discarded("unreason", &unreason(), true);
}

/// 3.1.1.13 "Empty Reason Phrase" (noreason): `SIP/2.0 100 ` with the SP but no phrase. A parser must
/// accept it.
fn noreason() -> Vec<u8> {
    crlf(
        b"SIP/2.0 100\x20
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

",
    )
}

#[test]
fn s3_1_1_13_noreason() {
    let m = parsed(&noreason());
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 100,
            reason: String::new()
        }
    );
    assert_response_discarded("noreason", &noreason(), true);
}

// ------------------------------------------------------------------------------------------------
// 3.1.2 Invalid messages
// ------------------------------------------------------------------------------------------------

/// 3.1.2.1 "Extraneous Header Field Separators" (badinv01): `;;,;,,` in Via, `;;;;` in Contact. An
/// element should respond 400.
fn badinv01() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: \"Joe\" <sip:joe@example.org>;;;;
Content-Length: 152
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_1_badinv01() {
    assert_rejected("badinv01", &badinv01(), 400, "Via");
    // The Contact on its own is rejected too.
    let contact_only = String::from_utf8(badinv01())
        .unwrap()
        .replace(";;,;,,", ";branch=z9hG4bKbadinv01");
    assert_rejected("badinv01 (Contact)", contact_only.as_bytes(), 400, "Contact");
}

/// 3.1.2.2 "Content Length Larger Than Message" (clerr): Content-Length 9999 over UDP. The element
/// should respond 400.
fn clerr() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.155
s=-
c=IN IP4 192.0.2.155
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_2_clerr() {
    assert_rejected("clerr", &clerr(), 400, "Content-Length");
}

/// 3.1.2.3 "Negative Content-Length" (ncl): Content-Length -999. An element should respond with an
/// error (and never use the value as a count or index).
fn ncl() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.53
s=-
c=IN IP4 192.0.2.53
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_3_ncl() {
    assert_rejected("ncl", &ncl(), 400, "Content-Length");
    // The RFC's other example of a non-numeric value.
    let five = String::from_utf8(ncl()).unwrap().replace("-999", "five");
    assert_rejected("ncl (five)", five.as_bytes(), 400, "Content-Length");
}

/// 3.1.2.4 "Request Scalar Fields with Overlarge Values" (scalar02): CSeq > 2^32-1, Max-Forwards > 255,
/// huge Expires and Contact expires. Respond 400 because of the CSeq.
fn scalar02() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0

",
    )
}

#[test]
fn s3_1_2_4_scalar02() {
    assert_rejected("scalar02", &scalar02(), 400, "CSeq");
}

/// 3.1.2.5 "Response Scalar Fields with Overlarge Values" (scalarlg): a 503 with a CSeq > 2^32-1, a huge
/// Retry-After and a four-digit warn-code. The receiver simply discards it.
fn scalarlg() -> Vec<u8> {
    crlf(
        b"SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture \"In Progress\"
Content-Length: 0

",
    )
}

#[test]
fn s3_1_2_5_scalarlg() {
    assert_response_discarded("scalarlg", &scalarlg(), true);
}

/// 3.1.2.6 "Unterminated Quoted String in Display Name" (quotbal): the To display name never closes its
/// quote. The element should return 400.
fn quotbal() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
To: \"Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: 152

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_6_quotbal() {
    assert_rejected("quotbal", &quotbal(), 400, "To");
    // The RFC's example of an inference that must not be made: still an unterminated quote.
    let tricky = String::from_utf8(quotbal()).unwrap().replace(
        "To: \"Mr. J. User <sip:j.user@example.com>",
        "To: \"Mr J. User <sip:j.user@example.com> <sip:realj@example.net>",
    );
    assert_rejected("quotbal (two URIs)", tricky.as_bytes(), 400, "To");
}

/// 3.1.2.7 "<> Enclosing Request-URI" (ltgtruri): `INVITE <sip:user@example.com> SIP/2.0`. Reasonable
/// to always reject with 400 (not 416: `<sip` is no scheme at all).
fn ltgtruri() -> Vec<u8> {
    crlf(
        b"INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 159

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=3149328700 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_7_ltgtruri() {
    assert_rejected("ltgtruri", &ltgtruri(), 400, "Request-URI");
}

/// 3.1.2.8 "Malformed SIP Request-URI (embedded LWS)" (lwsruri): `sip:user@example.com; lr`. The
/// element should respond 400.
fn lwsruri() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: 159

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=3149328700 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_8_lwsruri() {
    assert_rejected("lwsruri", &lwsruri(), 400, "Request-URI");
}

/// 3.1.2.9 "Multiple SP Separating Request-Line Elements" (lwsstart): acceptable to reject as
/// malformed (a liberal element may ignore the extra SP). We reject: 400.
fn lwsstart() -> Vec<u8> {
    crlf(
        b"INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_9_lwsstart() {
    assert_rejected("lwsstart", &lwsstart(), 400, "Request-Line");
}

/// 3.1.2.10 "SP Characters at End of Request-Line" (trws): acceptable to reject as malformed. We
/// reject: 400 (not 505: the version is fine, the line is not).
fn trws() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:remote-target@example.com SIP/2.0\x20\x20
Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0

",
    )
}

#[test]
fn s3_1_2_10_trws() {
    assert_rejected("trws", &trws(), 400, "Request-Line");
}

/// 3.1.2.11 "Escaped Headers in SIP Request-URI" (escruri): `?Route=%3Csip:example.com%3E` in the
/// Request-URI, where headers are not allowed. Acceptable to reject with 400.
fn escruri() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=341518
Max-Forwards: 7
Contact: <sip:caller@host39923.example.net>
Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5
CSeq: 149209342 INVITE
Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_11_escruri() {
    assert_rejected("escruri", &escruri(), 400, "Request-URI");
}

/// 3.1.2.12 "Invalid Time Zone in Date Header Field" (baddate): `EST` instead of `GMT`. An element should
/// not reject it unless it uses the Date; we do not, so the field is ignored and the request answered.
fn baddate() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=2234923
Max-Forwards: 70
Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234
CSeq: 1392934 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Date: Fri, 01 Jan 2010 16:00:00 EST
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_12_baddate() {
    assert_eq!(validate::check_request(&parsed(&baddate()), &[]), Ok(()));
    assert_answered("baddate", &baddate());
}

/// 3.1.2.13 "Failure to Enclose name-addr URI in <>" (regbadct): a Contact URI with an escaped header
/// outside `<>`. Reasonable to respond 400.
fn regbadct() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=998332
Max-Forwards: 70
Call-ID: regbadct.k345asrl3fdbv@10.0.0.1
CSeq: 1 REGISTER
Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw
Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E
l: 0

",
    )
}

#[test]
fn s3_1_2_13_regbadct() {
    assert_rejected("regbadct", &regbadct(), 400, "Contact");
}

/// 3.1.2.14 "Spaces within addr-spec" (badaspec): `< sip:t.watson@example.org >`. Parsers must not
/// break; reasonable to reject with 400.
fn badaspec() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423
To: \"Watson, Thomas\" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0

",
    )
}

#[test]
fn s3_1_2_14_badaspec() {
    assert_rejected("badaspec", &badaspec(), 400, "To");
}

/// 3.1.2.15 "Non-token Characters in Display Name" (baddn): unquoted `Bell, Alexander`. Reasonable to
/// always reject with 400.
fn baddn() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0

",
    )
}

#[test]
fn s3_1_2_15_baddn() {
    assert_rejected("baddn", &baddn(), 400, "From");
}

/// 3.1.2.16 "Unknown Protocol Version" (badvers): `SIP/7.0` in the Request-Line (and the Via). The
/// element should respond 505.
fn badvers() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0

",
    )
}

#[test]
fn s3_1_2_16_badvers() {
    let response = assert_rejected("badvers", &badvers(), 505, "Version Not Supported");
    // The response goes back along the request's Via, as written.
    assert!(
        response
            .header(&HeaderName::Via)
            .unwrap()
            .starts_with("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
    );
}

/// 3.1.2.17 "Start Line and CSeq Method Mismatch" (mismatch01): OPTIONS with `CSeq: 8 INVITE`. Any
/// element responds 400.
fn mismatch01() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

",
    )
}

#[test]
fn s3_1_2_17_mismatch01() {
    assert_rejected("mismatch01", &mismatch01(), 400, "CSeq");
}

/// 3.1.2.18 "Unknown Method with CSeq Method Mismatch" (mismatch02): `NEWMETHOD` with `CSeq: 8 INVITE`.
/// 501 is preferred, 400 acceptable. (We answer 400: the CSeq check runs before method dispatch.)
fn mismatch02() -> Vec<u8> {
    crlf(
        b"NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: 138

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
c=IN IP4 192.0.2.1
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_1_2_18_mismatch02() {
    let r = run(&mismatch02());
    let (code, reason, _) = final_response("mismatch02", &mismatch02(), &r);
    assert!(
        code == 501 || (code == 400 && reason.contains("CSeq")),
        "{code} {reason}"
    );
}

/// 3.1.2.19 "Overlarge Response Code" (bigcode): `SIP/2.0 4294967301 …`. The element simply drops it.
fn bigcode() -> Vec<u8> {
    crlf(
        b"SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

",
    )
}

#[test]
fn s3_1_2_19_bigcode() {
    assert_response_discarded("bigcode", &bigcode(), false);
}

// ------------------------------------------------------------------------------------------------
// 3.2 Transaction layer, 3.3 application layer, 3.4 backward compatibility (as they apply to a UAS)
// ------------------------------------------------------------------------------------------------

/// 3.2.1 "Missing Transaction Identifier" (badbranch): `branch=z9hG4bK` with nothing after the cookie.
/// A parser must not break; the element may reject it with 400 or fall back to RFC 2543 matching. We
/// fall back, so it is answered normally.
fn badbranch() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK
Accept: application/sdp
Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n
CSeq: 8 OPTIONS
l: 0

",
    )
}

#[test]
fn s3_2_1_badbranch() {
    assert_answered("badbranch", &badbranch());
}

/// 3.3.1 "Missing Required Header Fields" (insuf): no Call-ID, From or To. The element must not break;
/// ideally it answers 400, but a response must copy those fields (RFC 3261 §8.2.6.2), so this UAS drops
/// the request and counts it.
fn insuf() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 152

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.95
s=-
c=IN IP4 192.0.2.95
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_3_1_insuf() {
    assert!(validate::answerable(&parsed(&insuf())).is_err());
    assert_dropped("insuf", &insuf());
}

/// 3.3.2 "Request-URI with Unknown Scheme" (unkscm): a parser accepts it; the element rejects it with
/// 416 Unsupported URI Scheme.
fn unkscm() -> Vec<u8> {
    crlf(
        b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

",
    )
}

#[test]
fn s3_3_2_unkscm() {
    assert_rejected("unkscm", &unkscm(), 416, "Unsupported URI Scheme");
}

/// 3.3.3 "Request-URI with Known but Atypical Scheme" (novelsc): `soap.beep://…`. An element that will
/// never accept the scheme treats it as unknown: 416.
fn novelsc() -> Vec<u8> {
    crlf(
        b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: novelsc.asdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

",
    )
}

#[test]
fn s3_3_3_novelsc() {
    assert_rejected("novelsc", &novelsc(), 416, "Unsupported URI Scheme");
}

/// 3.3.4 "Unknown URI Schemes in Header Fields" (unksm2): `isbn:`, `http:` and `name:` URIs in To, From
/// and Contact. Syntactically valid: parsers must not fail. (Only a registrar, which this UAS is not,
/// would reject it, for its non-SIP address of record.)
fn unksm2() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0

",
    )
}

#[test]
fn s3_3_4_unksm2() {
    assert_eq!(validate::check_request(&parsed(&unksm2()), &[]), Ok(()));
    assert_answered("unksm2", &unksm2());
}

/// 3.3.5 "Proxy-Require and Require" (bext01): unknown option tags in both. A UAS answers 420 Bad
/// Extension listing the Require tags in Unsupported (Proxy-Require is for proxies).
fn bext01() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: bext01.0ha0isndaksdj
Require: nothingSupportsThis, nothingSupportsThisEither
Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis
CSeq: 8 OPTIONS
Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw
Content-Length: 0

",
    )
}

#[test]
fn s3_3_5_bext01() {
    let response = assert_rejected("bext01", &bext01(), 420, "Bad Extension");
    assert_eq!(
        response.header(&HeaderName::Other("Unsupported".into())),
        Some("nothingSupportsThis, nothingSupportsThisEither")
    );
}

/// 3.3.6 "Unknown Content-Type" (invut): an INVITE whose body is `application/unknownformat`. Valid; an
/// endpoint rejects it with 415 Unsupported Media Type. Until the B2BUA serves INVITE, the endpoint
/// answers every INVITE 501, which comes first (RFC 3261 §8.2.1 before §8.2.3).
fn invut() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
Contact: <sip:caller@host5.example.net>
To: sip:j.user@example.com
From: sip:caller@example.net;tag=8392034
Max-Forwards: 70
Call-ID: invut.0ha0isndaksdjadsfij34n23d
CSeq: 235448 INVITE
Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw
Content-Type: application/unknownformat
Content-Length: 40

<audio>
 <pcmu port=\"443\"/>
</audio>
",
    )
}

#[test]
fn s3_3_6_invut() {
    let code = assert_answered("invut", &invut());
    assert!(code == 415 || code == 501, "{code}");
}

/// 3.3.7 "Unknown Authorization Scheme" (regaut01): a REGISTER whose Authorization uses an unknown
/// scheme. Well formed; a registrar ignores or challenges it, an endpoint that is no registrar rejects
/// the method (405 suggested). Never a 400.
fn regaut01() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=87321hj23128
Max-Forwards: 8
Call-ID: regaut01.0ha0isndaksdj
CSeq: 9338 REGISTER
Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw
Authorization: NoOneKnowsThisScheme opaque-data=here
Content-Length:0

",
    )
}

#[test]
fn s3_3_7_regaut01() {
    assert_answered("regaut01", &regaut01());
}

/// 3.3.8 "Multiple Values in Single Value Required Fields" (multi01): two each of CSeq, Call-ID, To,
/// From and Max-Forwards. The element responds 400.
fn multi01() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: 154
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.25
s=-
c=IN IP4 192.0.2.25
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC

",
    )
}

#[test]
fn s3_3_8_multi01() {
    assert_rejected("multi01", &multi01(), 400, "more than one");
}

/// 3.3.9 "Multiple Content-Length Values" (mcl01): Content-Length 13 and 5. The framing is unknown: the
/// element responds with an error (over UDP the rest of the datagram is discarded).
fn mcl01() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: sip:user@example.com
From: sip:other@example.net;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain

There's no way to know how many octets are supposed to be here.
",
    )
}

#[test]
fn s3_3_9_mcl01() {
    assert_rejected("mcl01", &mcl01(), 400, "Content-Length");
}

/// 3.3.10 "200 OK Response with Broadcast Via Header Field Value" (bcast): a second Via to
/// 255.255.255.255. Well formed; an endpoint simply discards it (and never forwards anything to the
/// broadcast address).
fn bcast() -> Vec<u8> {
    crlf(
        b"SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_3_10_bcast() {
    assert_response_discarded("bcast", &bcast(), true);
}

/// 3.3.11 "Max-Forwards of Zero" (zeromf): legal. A proxy answers 483; an endpoint processes it as if
/// Max-Forwards were still positive.
fn zeromf() -> Vec<u8> {
    crlf(
        b"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=3ghsd41
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
Content-Length: 0

",
    )
}

#[test]
fn s3_3_11_zeromf() {
    assert_ne!(assert_answered("zeromf", &zeromf()), 483);
}

/// 3.3.12 "REGISTER with a Contact Header Parameter" (cparam01): in `sip:…;unknownparam` without `<>`,
/// the parameter belongs to the Contact, not the URI. The REGISTER should succeed (at a registrar):
/// nothing malformed here.
fn cparam01() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe
To: sip:watson@example.com
Call-ID: cparam01.70710@saturn.example.com
CSeq: 2 REGISTER
Contact: sip:+19725552222@gw1.example.net;unknownparam
l: 0

",
    )
}

#[test]
fn s3_3_12_cparam01() {
    assert_eq!(validate::check_request(&parsed(&cparam01()), &[]), Ok(()));
    assert_answered("cparam01", &cparam01());
}

/// 3.3.13 "REGISTER with a url-parameter" (cparam02): the same parameter inside `<>`, so it belongs to
/// the URI. The REGISTER should succeed (at a registrar): nothing malformed here.
fn cparam02() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=838293
To: sip:watson@example.com
Call-ID: cparam02.70710@saturn.example.com
CSeq: 3 REGISTER
Contact: <sip:+19725552222@gw1.example.net;unknownparam>
l: 0

",
    )
}

#[test]
fn s3_3_13_cparam02() {
    assert_eq!(validate::check_request(&parsed(&cparam02()), &[]), Ok(()));
    assert_answered("cparam02", &cparam02());
}

/// 3.3.14 "REGISTER with a URL Escaped Header" (regescrt): a Contact URI with an escaped Route header,
/// correctly inside `<>` (compare regbadct). The REGISTER should succeed (at a registrar).
fn regescrt() -> Vec<u8> {
    crlf(
        b"REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=8
Max-Forwards: 70
Call-ID: regescrt.k345asrl3fdbv@192.0.2.1
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>
L:0

",
    )
}

#[test]
fn s3_3_14_regescrt() {
    assert_eq!(validate::check_request(&parsed(&regescrt()), &[]), Ok(()));
    assert_answered("regescrt", &regescrt());
}

/// 3.3.15 "Unacceptable Accept Offering" (sdp01): an INVITE whose Accept excludes application/sdp. The
/// recipient may answer 406 (with Warning 399) or 400 (every UA supporting INVITE supports SDP). Until
/// the B2BUA serves INVITE, the endpoint answers every INVITE 501 first.
fn sdp01() -> Vec<u8> {
    crlf(
        b"INVITE sip:user@example.com SIP/2.0
To: sip:j_user@example.com
Contact: <sip:caller@host15.example.net>
From: sip:caller@example.net;tag=234
Max-Forwards: 5
Call-ID: sdp01.ndaksdj9342dasdd
Accept: text/nobodyKnowsThis
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw
Content-Length: 150
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
",
    )
}

#[test]
fn s3_3_15_sdp01() {
    let r = run(&sdp01());
    let (code, reason, _) = final_response("sdp01", &sdp01(), &r);
    assert!([400, 406, 501].contains(&code), "{code} {reason}");
    assert_eq!(r.stats.malformed_dropped, 0);
}

/// 3.4.1 "INVITE with RFC 2543 Syntax" (inv2543): no Via branch, no From tag, no Content-Length (the body
/// is the rest of the datagram), no Max-Forwards. Elements wanting backward compatibility accept it.
fn inv2543() -> Vec<u8> {
    crlf(
        b"INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0
",
    )
}

#[test]
fn s3_4_1_inv2543() {
    let m = parsed(&inv2543());
    assert!(m.body.starts_with(b"v=0\r\n") && m.body.ends_with(b"m=audio 49217 RTP/AVP 0\r\n"));
    assert_answered("inv2543", &inv2543());
}

// ------------------------------------------------------------------------------------------------
// Robustness: no torture message, nor any cut or LF-only rewrite of one, makes the core panic.
// ------------------------------------------------------------------------------------------------

fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("wsinv", wsinv()),
        ("intmeth", intmeth()),
        ("esc01", esc01()),
        ("escnull", escnull()),
        ("esc02", esc02()),
        ("lwsdisp", lwsdisp()),
        ("longreq", longreq()),
        ("dblreq", dblreq()),
        ("semiuri", semiuri()),
        ("transports", transports()),
        ("mpart01", mpart01()),
        ("unreason", unreason()),
        ("noreason", noreason()),
        ("badinv01", badinv01()),
        ("clerr", clerr()),
        ("ncl", ncl()),
        ("scalar02", scalar02()),
        ("scalarlg", scalarlg()),
        ("quotbal", quotbal()),
        ("ltgtruri", ltgtruri()),
        ("lwsruri", lwsruri()),
        ("lwsstart", lwsstart()),
        ("trws", trws()),
        ("escruri", escruri()),
        ("baddate", baddate()),
        ("regbadct", regbadct()),
        ("badaspec", badaspec()),
        ("baddn", baddn()),
        ("badvers", badvers()),
        ("mismatch01", mismatch01()),
        ("mismatch02", mismatch02()),
        ("bigcode", bigcode()),
        ("badbranch", badbranch()),
        ("insuf", insuf()),
        ("unkscm", unkscm()),
        ("novelsc", novelsc()),
        ("unksm2", unksm2()),
        ("bext01", bext01()),
        ("invut", invut()),
        ("regaut01", regaut01()),
        ("multi01", multi01()),
        ("mcl01", mcl01()),
        ("bcast", bcast()),
        ("zeromf", zeromf()),
        ("cparam01", cparam01()),
        ("cparam02", cparam02()),
        ("regescrt", regescrt()),
        ("sdp01", sdp01()),
        ("inv2543", inv2543()),
    ]
}

/// Everything the core does with one datagram, for the panic sweep.
fn exercise(bytes: &[u8]) {
    if let Ok(mut m) = Message::parse(bytes) {
        let _ = m.frame_datagram_body();
        let _ = validate::answerable(&m);
        let _ = validate::check_request(&m, &["timer"]);
        let _ = Message::parse(&m.encode());
    }
}

#[test]
fn no_cut_of_any_torture_message_panics() {
    for (_, bytes) in all() {
        for cut in 0..=bytes.len() {
            exercise(&bytes[..cut]);
            exercise(&bytes[cut..]);
        }
        // The whole endpoint on a sample of cuts (every cut would be slow in debug builds).
        for cut in (0..=bytes.len()).step_by(13) {
            let _ = run(&bytes[..cut]);
        }
    }
}

#[test]
fn lf_only_and_bare_cr_rewrites_do_not_panic() {
    for (_, bytes) in all() {
        let lf: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
        let cr: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        for variant in [lf, cr] {
            exercise(&variant);
            let _ = run(&variant);
        }
    }
}
