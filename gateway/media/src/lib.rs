//! RTC Edge media core (work in progress; see ARCHITECTURE.md).

#![forbid(unsafe_code)]
// Packet code indexes fixed-layout headers right after checking their length; the `media_packet` fuzz
// target feeds every parser here arbitrary bytes to prove that no packet can make it panic.

/// A base instant for tests; from there time advances only by arithmetic, never by reading the clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the one clock read in the core's tests: the origin of fake time
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

pub mod dtls;
pub mod ice;
pub mod rtp;
pub mod session;
pub mod srtp;
#[cfg(test)]
mod testkit;
// The test kit names this crate as the relay benchmark (which includes it) does.
#[cfg(test)]
extern crate self as edge_media;
