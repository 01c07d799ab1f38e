//! RTC Edge media core (work in progress; see ARCHITECTURE.md).

#![forbid(unsafe_code)]
