//! The listener daemon (design.md §1–§3): per-worker context, metrics and the data paths.

pub mod context;
pub mod metrics;
pub mod stream;
