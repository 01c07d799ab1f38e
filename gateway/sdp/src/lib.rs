//! RTC Edge SDP layer (work in progress; see ARCHITECTURE.md).

#![forbid(unsafe_code)]
