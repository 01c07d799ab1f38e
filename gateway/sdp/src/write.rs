//! Writing our SDPs. Every value written is either ours (addresses, credentials, keys) or was checked
//! by the reader to be a token or a line without control characters, so nothing received can inject
//! a line.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::model::{Codec, Direction, Fingerprint, SrtpSuite};
use crate::read::{Payload, Shape};

/// The `a=msid` stream and track ids on the browser leg (RFC 8830): constant, so they name nothing
/// of either side; present so that the browser's `ontrack` event carries a stream.
const MSID: &str = "rtc-edge audio";

/// One payload type of ours to write, with the `a=fmtp` parameters to go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) pt: u8,
    pub(crate) payload: Payload,
    pub(crate) fmtp: Option<String>,
}

/// What the audio m-line of one SDP says.
#[derive(Debug, Clone)]
pub(crate) struct AudioLine<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) payloads: &'a [Written],
    pub(crate) direction: Direction,
}

/// The browser-leg extras (WebRTC profile).
#[derive(Debug, Clone)]
pub(crate) struct WebRtc<'a> {
    pub(crate) ice_ufrag: &'a str,
    pub(crate) ice_pwd: &'a str,
    pub(crate) fingerprint: &'a Fingerprint,
    pub(crate) setup: &'static str,
    pub(crate) bundle: bool,
    pub(crate) rtcp_rsize: bool,
}

/// The trunk-leg extras (RTP/AVP profile).
#[derive(Debug, Clone)]
pub(crate) struct Avp {
    pub(crate) ptime_ms: u32,
    pub(crate) rtcp_mux: bool,
    pub(crate) crypto: Option<(u32, SrtpSuite, [u8; 30])>,
}

/// The profile-specific part of an SDP.
#[derive(Debug, Clone)]
pub(crate) enum Profile<'a> {
    WebRtc(WebRtc<'a>),
    Avp(Avp),
}

/// A whole SDP of ours: the m-lines in `layout` order, the one at `audio` described by `line`, the
/// others rejected (port 0).
#[derive(Debug, Clone)]
pub(crate) struct Doc<'a> {
    pub(crate) session_id: u64,
    pub(crate) layout: &'a [Shape],
    pub(crate) audio: usize,
    pub(crate) line: AudioLine<'a>,
    pub(crate) profile: Profile<'a>,
}

struct Ip(IpAddr);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "IN IP4 {a}"),
            IpAddr::V6(a) => write!(f, "IN IP6 {a}"),
        }
    }
}

impl Doc<'_> {
    /// The SDP text with `o=` version `version`.
    pub(crate) fn render(&self, version: u64) -> Vec<u8> {
        let mut s = String::with_capacity(1024);
        self.write(&mut s, version)
            .expect("writing to a String cannot fail");
        s.into_bytes()
    }

    fn write(&self, s: &mut String, version: u64) -> fmt::Result {
        let addr = self.line.addr;
        let ip = Ip(addr.ip());
        let mid = self.layout.get(self.audio).and_then(|shape| shape.mid.as_deref());
        write!(
            s,
            "v=0\r\no=- {} {version} {ip}\r\ns=-\r\nt=0 0\r\n",
            self.session_id
        )?;
        if let Profile::WebRtc(w) = &self.profile {
            s.push_str("a=ice-lite\r\n");
            if let (true, Some(mid)) = (w.bundle, mid) {
                write!(s, "a=group:BUNDLE {mid}\r\n")?;
            }
        }
        for (index, shape) in self.layout.iter().enumerate() {
            if index != self.audio {
                write!(
                    s,
                    "m={} 0 {} {}\r\nc={ip}\r\n",
                    shape.kind, shape.proto, shape.formats
                )?;
                if let Some(mid) = &shape.mid {
                    write!(s, "a=mid:{mid}\r\n")?;
                }
                continue;
            }
            let proto = match &self.profile {
                Profile::WebRtc(_) => "UDP/TLS/RTP/SAVPF",
                Profile::Avp(Avp { crypto: Some(_), .. }) => "RTP/SAVP",
                Profile::Avp(Avp { crypto: None, .. }) => "RTP/AVP",
            };
            write!(s, "m=audio {} {proto}", addr.port())?;
            for p in self.line.payloads {
                write!(s, " {}", p.pt)?;
            }
            write!(s, "\r\nc={ip}\r\n")?;
            if let Some(mid) = mid {
                write!(s, "a=mid:{mid}\r\n")?;
            }
            match &self.profile {
                Profile::WebRtc(w) => {
                    write!(s, "a={}\r\n", self.line.direction.as_str())?;
                    write!(s, "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n", w.ice_ufrag, w.ice_pwd)?;
                    write!(s, "a=fingerprint:{}\r\na=setup:{}\r\n", w.fingerprint, w.setup)?;
                    s.push_str("a=rtcp-mux\r\n");
                    if w.rtcp_rsize {
                        s.push_str("a=rtcp-rsize\r\n");
                    }
                    self.write_rtpmaps(s)?;
                    write!(s, "a=msid:{MSID}\r\n")?;
                    write!(
                        s,
                        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                        addr.ip(),
                        addr.port()
                    )?;
                    s.push_str("a=end-of-candidates\r\n");
                }
                Profile::Avp(avp) => {
                    self.write_rtpmaps(s)?;
                    if avp.ptime_ms > 0 {
                        write!(s, "a=ptime:{}\r\n", avp.ptime_ms)?;
                    }
                    write!(s, "a={}\r\n", self.line.direction.as_str())?;
                    if avp.rtcp_mux {
                        s.push_str("a=rtcp-mux\r\n");
                    }
                    if let Some((tag, suite, key)) = &avp.crypto {
                        write!(
                            s,
                            "a=crypto:{tag} {} inline:{}\r\n",
                            suite.as_str(),
                            STANDARD.encode(key)
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn write_rtpmaps(&self, s: &mut String) -> fmt::Result {
        for p in self.line.payloads {
            match p.payload {
                Payload::Codec(c @ Codec::Opus) => {
                    write!(
                        s,
                        "a=rtpmap:{} {}/{}/{}\r\n",
                        p.pt,
                        c.encoding_name(),
                        c.clock_rate(),
                        c.channels()
                    )?;
                }
                Payload::Codec(c) => write!(
                    s,
                    "a=rtpmap:{} {}/{}\r\n",
                    p.pt,
                    c.encoding_name(),
                    c.clock_rate()
                )?,
                Payload::Event(rate) => write!(s, "a=rtpmap:{} telephone-event/{rate}\r\n", p.pt)?,
            }
            if let Some(fmtp) = &p.fmtp {
                write!(s, "a=fmtp:{} {fmtp}\r\n", p.pt)?;
            }
        }
        Ok(())
    }
}
