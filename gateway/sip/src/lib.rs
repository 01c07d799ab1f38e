//! RTC Edge SIP core: sans-IO.
//!
//! **Owns**: the SIP message model the rest of the gateway sees ([`message`]), SIP URIs ([`uri`]), the
//! rules for where a response goes ([`via`], RFC 3261 §18.2.2 + RFC 3581), the [`Endpoint`] that turns
//! received datagrams into datagrams to send, and the redaction of personal data in logs ([`pii`]).
//! Callers see only this crate's types, so the tokenizer underneath can change without touching them.
//!
//! **Never touches**: sockets, the clock, threads, randomness sources or the file system. Bytes come in
//! through [`Endpoint::handle_datagram`]; what to send comes out of [`Endpoint::poll_transmit`]. The
//! caller (gatewayd's shell) owns every socket. Secrets (e.g. the key for To-tags) are handed in at
//! construction.
//!
//! # Driving order
//! After every `handle_*` call, drain `poll_transmit` until it returns `None`. The transaction layer
//! (RFC 3261 §17) will add `poll_timeout` and take `now` on each input, keeping this shape.
//!
//! # Bad input
//! Nothing received from the network can make this crate panic: a malformed request that still names
//! its Via, From, To, Call-ID and CSeq is answered `400 Bad Request`; anything else is dropped and
//! counted in [`Stats`].

#![forbid(unsafe_code)]
// Parsers index into byte slices: every index must be checked, so the network can never cause a panic.
// (Tests may index: a panic there is a failed assertion.)
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// A base instant for tests; from there time advances only by arithmetic, never by reading the clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the one clock read in the core's tests: the origin of fake time
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

pub mod b2bua;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod pii;
pub mod ratelimit;
pub mod rewrite;
pub mod router;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;
pub mod via;

pub use endpoint::{Endpoint, EndpointConfig, Outcome, Stats};
pub use message::{HeaderName, Message, Method, ParseError, StartLine};
pub use transport::{Datagram, Transmit, Transport};
