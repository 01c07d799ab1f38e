//! RTC Edge media core (work in progress; see ARCHITECTURE.md).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod srtp;
