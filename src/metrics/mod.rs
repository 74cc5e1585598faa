//! Metrics: per-worker shards, snapshots merged on scrape, Prometheus text (architecture §1, §4).
//!
//! - [`MetricDesc`]: a `static` descriptor per family (name, help, kind, label names).
//! - [`Shard`]: owned by one worker (`&mut` or `Rc<RefCell<_>>`, no atomics, no locks). Series
//!   are registered once and return `Copy` ids; recording is O(1) and never allocates or fails.
//! - [`Snapshot`]: a `Send` copy of a shard taken on its worker; [`Snapshot::merge`] adds the
//!   snapshots of every worker off the hot path.
//! - [`render`] / [`PrometheusText`]: the text exposition format 0.0.4, times in seconds.
//! - [`process`]: `process_*` metrics parsed from `proc(5)` text, and `hycod_build_info`.
//! - [`LatencyHistogram`]: HDR histogram in microseconds (3 significant figures, clamped at
//!   1 hour) with an exact sum and p50/p90/p99/p99.9/max [`Quantiles`] for human summaries.

/// Declares a metric set: a `pub static` [`MetricDesc`] per entry,
/// `NAME = counter|gauge|histogram("family_name", ["label", …], "help");`, and `ALL`, every
/// descriptor of the set in order (for the documentation tests).
macro_rules! metric_set {
    ($($name:ident = $kind:ident($metric:literal, [$($label:literal),* $(,)?], $help:literal);)*) => {
        $(
            pub static $name: $crate::metrics::MetricDesc =
                $crate::metrics::MetricDesc::$kind($metric, $help, &[$($label),*]);
        )*
        /// Every descriptor, for documentation tests.
        pub static ALL: &[&$crate::metrics::MetricDesc] = &[$(&$name),*];
    };
}
pub(crate) use metric_set;

mod desc;
mod error;
mod histogram;
pub mod process;
mod render;
mod shard;
mod snapshot;

pub use desc::{MetricDesc, MetricKind, HISTOGRAM_NAME_SUFFIX};
pub use error::{MergeError, RegisterError};
pub use histogram::{
    LatencyHistogram, Quantiles, BUCKET_LADDER_MICROS, HIGHEST_TRACKABLE_MICROS,
    SIGNIFICANT_FIGURES,
};
pub use render::{render, PrometheusText, CONTENT_TYPE};
pub use shard::{CounterId, GaugeId, HistogramId, Shard};
pub use snapshot::Snapshot;
