//! RTC Edge SDP layer: translates offers and answers between the browser leg (WebRTC profile) and the
//! trunk leg (RTP/AVP profile) of one call, sans-IO.
//!
//! **Owns**: reading peers' SDP (strictly, with line numbers in every error), writing ours, the
//! codec choice and the payload-type numbers of each leg, the DTLS role, the `o=` version of each leg,
//! and the [`MediaPlan`] the media core runs on. One [`SdpSession`] per call.
//!
//! **Never touches**: sockets, the clock, randomness, SIP, packets. Every random value (ICE ufrag and
//! password, SDES key, `o=` session id) and every address and port is handed in by the caller in
//! [`LocalMedia`]. Never copies the other leg's addresses, ports, ICE credentials, fingerprints,
//! keys or `o=` line across: each SDP we write describes the gateway (media anchoring).
//!
//! # Entry points
//! ```text
//! browser calls out:  browser_offer(browser SDP) -> trunk offer
//!                     trunk_answer(trunk SDP)    -> browser answer + MediaPlan
//! trunk calls in:     trunk_offer(trunk SDP)     -> browser offer        (also a late offer in a 2xx)
//!                     browser_answer(browser SDP)-> trunk answer + MediaPlan
//! ```
//! Re-offers (hold, resume, refresh, ICE restart; re-INVITE or UPDATE, either way) are the same calls
//! on the same session. One offer is in flight at a time; calling out of order is
//! [`SdpError::OutOfOrder`]. When the other side refuses a relayed offer (488, 491, …) call
//! [`SdpSession::cancel_offer`]: the last completed exchange stays in force. An error from an
//! answer ends the exchange the same way.
//!
//! # What is negotiated
//! - Toward the trunk: `RTP/AVP` (or `RTP/SAVP` + one `a=crypto`, RFC 4568, with
//!   [`TrunkSrtp::Sdes`]), our `c=`/port, `a=ptime` from the policy, and nothing of WebRTC (no ICE,
//!   DTLS, rtcp-mux, extmap, rtcp-fb, ssrc, msid, mid or BUNDLE lines).
//! - Toward the browser: `UDP/TLS/RTP/SAVPF`, `a=ice-lite`, our ICE credentials, one host candidate
//!   and `a=end-of-candidates` (JsSIP does not trickle), our fingerprint, `a=rtcp-mux`, BUNDLE with
//!   the audio mid, `a=msid` (so the browser's track event has a stream); no `a=crypto`, no `a=extmap`
//!   (so the browser sends plain RTP headers).
//! - Codecs ([`Codec`]: opus, G.722, PCMU, PCMA; no transcoding, so both legs end up on shared ones):
//!   offers list the policy's codecs in the policy's order among those the offerer offered; answers
//!   list those the answerer accepted, in its order. Codecs are matched by encoding name
//!   (case-insensitive), clock rate and channels, never by number: each leg keeps its own numbers
//!   ([`CodecMapping`]). Static numbers 0/8/9 are the only fixed ones toward the trunk; opus and
//!   `telephone-event` get dynamic ones that never collide with a number the leg already used.
//!   Red, CN, video and data m-lines are dropped from offers and answered with port 0.
//! - `telephone-event` (`0-16`) at 8000 Hz with the 8 kHz codecs and at 48000 Hz with opus, when the
//!   policy allows it and the offerer offered it at that rate (toward the trunk, 8000 Hz is offered
//!   whenever an 8 kHz codec is, because the gateway may itself send DTMF there).
//! - DTLS: a browser offering `actpass` or `active` makes us the server (`a=setup:passive`),
//!   `passive` makes us the client; in our own offers we say `actpass` until a role is chosen, then
//!   that role, on every later SDP (RFC 8842 §5.5).
//!
//! Checked against a real Chromium 156 (headless, `RTCPeerConnection`): it accepted our answers (with
//! and without a rejected video m-line), our offer, and our hold re-offer keeping `a=setup:passive`,
//! and its `track` events carried a stream. The SDPs it sent are the `chrome156_captured_*` fixtures.
//!
//! # Directions and hold
//! A [`Direction`] is always from the point of view of the SDP's writer. The direction we write
//! toward one leg is the one the other leg wrote (a browser `a=sendonly` hold becomes our
//! `a=sendonly` toward the trunk). A trunk's `c=0.0.0.0` (RFC 2543 hold) counts as "does not receive".
//! The plan's directions are the negotiated ones per leg.
//!
//! # Versions, ports, restarts
//! Each leg's `o=` version starts at 1 and increments by one only when the SDP we send on that leg
//! differs from the previous one (RFC 3264 §8); ports and credentials are those of [`LocalMedia`]
//! for the whole call. A browser re-offer with new ICE credentials or a new fingerprint is reported
//! in [`BrowserPlan::ice_restart`] / [`BrowserPlan::dtls_restart`] with the new values.
//!
//! # Bad input
//! Every SDP is untrusted. Malformed → [`SdpError::PeerMisbehaved`] with the line number; well-formed
//! but unusable → [`SdpError::PeerIncompatible`] (answer 488). Work is bounded: at most
//! [`MAX_SDP_BYTES`] bytes, [`MAX_LINES`] lines of [`MAX_LINE_BYTES`] bytes, [`MAX_MEDIA`] m-lines
//! and [`MAX_FORMATS`] formats per m-line; every step is linear. Nothing in this crate indexes a
//! slice unchecked (`clippy::indexing_slicing` is denied) and the `sdp` fuzz target drives all four
//! entry points with arbitrary bytes.
//!
//! # Why our own parser
//! webrtc-rs's `rtc-sdp` 0.21.1 was evaluated first: it round-trips Chrome's offer faithfully and
//! refuses an unknown line without panicking, but its errors carry no line number (and sometimes
//! name the wrong line: a bad `z=` is reported as `` `t=…` ``), it accepts what we must refuse
//! (`c=IN IP4 not-an-ip`, `a=rtpmap:abc`, `m=audio 4000 RTP/AVP foo bar`, no `c=` at all), it has
//! no bound on line length or m-line count (100,000 m-lines parse), and it pulls `url` (with ICU),
//! `rand`, `getrandom` and `nix` into a core that must not read randomness or the clock (its JSEP
//! constructor reads `SystemTime::now`). Every attribute we use would still need a strict reader of
//! our own. This crate's reader is ≈800 lines without tests: the RFC 8866 line grammar (`parse`),
//! then typed readers (`read`) for exactly the attributes the gateway interprets; attributes it does
//! not use are never interpreted.

#![forbid(unsafe_code)]
// The API is what the media and call cores build on: every public item says what it is.
#![deny(missing_docs)]
// Readers walk untrusted text: every index must be checked, so no SDP can cause a panic.
// (Tests may index: a panic there is a failed assertion.)
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod error;
mod model;
mod parse;
mod plan;
mod read;
mod session;
mod write;

pub use error::{Incompatible, SdpError};
pub use model::{
    Codec, CodecPolicy, Direction, DtlsRole, Fingerprint, HashAlgorithm, LocalMedia, SrtpSuite, TrunkSrtp,
};
pub use parse::{MAX_FORMATS, MAX_LINE_BYTES, MAX_LINES, MAX_MEDIA, MAX_SDP_BYTES};
pub use plan::{BrowserPlan, CodecMapping, EventMapping, MediaPlan, SdesPlan, TrunkPlan};
pub use session::SdpSession;
