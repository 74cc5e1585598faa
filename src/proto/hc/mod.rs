//! (filled in by its own change)

pub mod backoff;
pub mod listener;
