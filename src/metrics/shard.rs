//! A worker's own metrics: plain integers and histograms behind index handles (architecture §1,
//! §4).
//!
//! A shard belongs to one worker thread, which uses it through `&mut` (typically
//! `Rc<RefCell<Shard>>`): no atomics and no locks. Series are registered once (startup, reload),
//! which validates the descriptor and label values and returns a `Copy` id; recording through an
//! id is an index into a `Vec`: O(1), no hashing, no allocation. Series are never unregistered,
//! so counters stay monotonic across reloads.
//!
//! An id is only meaningful on the shard that issued it. Each shard carries a process-unique tag
//! (taken from an atomic counter once, at creation) that its ids repeat; recording with another
//! shard's id panics in debug builds and is ignored in release builds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::desc::{MetricDesc, MetricKind};
use super::error::RegisterError;
use super::histogram::LatencyHistogram;
use super::snapshot::{LabelValues, SeriesValue, Snapshot};

/// Hands out shard tags; touched once per `Shard::new`, never when recording.
static NEXT_SHARD_TAG: AtomicU64 = AtomicU64::new(0);

/// A registered counter series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterId(Handle);

/// A registered gauge series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeId(Handle);

/// A registered histogram series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramId(Handle);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle {
    shard: u64,
    index: usize,
}

#[derive(Debug)]
struct Series<T> {
    desc: &'static MetricDesc,
    labels: LabelValues,
    value: T,
}

/// The series registered under one metric name.
#[derive(Debug)]
struct Family {
    desc: &'static MetricDesc,
    series: Vec<(LabelValues, usize)>,
}

impl Family {
    /// The index of the series with exactly these label values.
    fn find(&self, label_values: &[&str]) -> Option<usize> {
        self.series
            .iter()
            .find(|(labels, _)| {
                labels
                    .iter()
                    .map(String::as_str)
                    .eq(label_values.iter().copied())
            })
            .map(|&(_, index)| index)
    }
}

/// The metrics of one worker.
#[derive(Debug)]
pub struct Shard {
    tag: u64,
    /// Each registered name: its descriptor (a different one with the same name is refused)
    /// and its series, as (label values, index into the vector of their kind). Finding a
    /// registered series hashes the name once and compares label values in place: no
    /// allocation, so "register or find" is cheap enough for once-per-request use.
    families: HashMap<&'static str, Family>,
    counters: Vec<Series<u64>>,
    gauges: Vec<Series<i64>>,
    histograms: Vec<Series<LatencyHistogram>>,
    /// How many times a series was registered or looked up by value (see [`Shard::lookups`]).
    lookups: u64,
}

impl Shard {
    /// An empty shard.
    pub fn new() -> Self {
        Self {
            tag: NEXT_SHARD_TAG.fetch_add(1, Ordering::Relaxed),
            families: HashMap::new(),
            counters: Vec::new(),
            gauges: Vec::new(),
            histograms: Vec::new(),
            lookups: 0,
        }
    }

    /// How many times a series was registered or found by its descriptor and label values
    /// since the shard was made. Recording by id never counts here: a hot path that keeps
    /// this figure still is one that does no lookup.
    pub fn lookups(&self) -> u64 {
        self.lookups
    }

    /// Registers (or finds) the counter series `desc{label_values}`, starting at 0.
    pub fn counter(
        &mut self,
        desc: &'static MetricDesc,
        label_values: &[&str],
    ) -> Result<CounterId, RegisterError> {
        let index = self.register(desc, label_values, MetricKind::Counter)?;
        Ok(CounterId(self.handle(index)))
    }

    /// Registers (or finds) the gauge series `desc{label_values}`, starting at 0.
    pub fn gauge(
        &mut self,
        desc: &'static MetricDesc,
        label_values: &[&str],
    ) -> Result<GaugeId, RegisterError> {
        let index = self.register(desc, label_values, MetricKind::Gauge)?;
        Ok(GaugeId(self.handle(index)))
    }

    /// Registers (or finds) the histogram series `desc{label_values}`, empty. Allocates the
    /// histogram's counts here, so recording never allocates.
    pub fn histogram(
        &mut self,
        desc: &'static MetricDesc,
        label_values: &[&str],
    ) -> Result<HistogramId, RegisterError> {
        let index = self.register(desc, label_values, MetricKind::Histogram)?;
        Ok(HistogramId(self.handle(index)))
    }

    /// Adds one to a counter.
    pub fn inc(&mut self, id: CounterId) {
        self.inc_by(id, 1);
    }

    /// Adds `n` to a counter (saturating at `u64::MAX`).
    pub fn inc_by(&mut self, id: CounterId, n: u64) {
        if let Some(series) = slot(self.tag, id.0, &mut self.counters) {
            series.value = series.value.saturating_add(n);
        }
    }

    /// Sets a gauge.
    pub fn gauge_set(&mut self, id: GaugeId, value: i64) {
        if let Some(series) = slot(self.tag, id.0, &mut self.gauges) {
            series.value = value;
        }
    }

    /// Adds `delta` (possibly negative) to a gauge, saturating at the `i64` bounds.
    pub fn gauge_add(&mut self, id: GaugeId, delta: i64) {
        if let Some(series) = slot(self.tag, id.0, &mut self.gauges) {
            series.value = series.value.saturating_add(delta);
        }
    }

    /// Records a latency (whole microseconds; clamped, never fails).
    pub fn observe(&mut self, id: HistogramId, elapsed: Duration) {
        if let Some(series) = slot(self.tag, id.0, &mut self.histograms) {
            series.value.record(elapsed);
        }
    }

    /// Records a latency given in microseconds (clamped, never fails).
    pub fn observe_micros(&mut self, id: HistogramId, micros: u64) {
        if let Some(series) = slot(self.tag, id.0, &mut self.histograms) {
            series.value.record_micros(micros);
        }
    }

    /// A copy of every series, taken on the worker; merging and rendering happen elsewhere.
    /// Costs one histogram copy per histogram series plus a map insertion per series.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for s in &self.counters {
            snapshot.insert(s.desc, s.labels.clone(), SeriesValue::Counter(s.value));
        }
        for s in &self.gauges {
            snapshot.insert(s.desc, s.labels.clone(), SeriesValue::Gauge(s.value));
        }
        for s in &self.histograms {
            let value = SeriesValue::Histogram(s.value.clone());
            snapshot.insert(s.desc, s.labels.clone(), value);
        }
        snapshot
    }

    fn handle(&self, index: usize) -> Handle {
        Handle {
            shard: self.tag,
            index,
        }
    }

    /// Validates and registers a series, returning its index in the vector of its kind.
    fn register(
        &mut self,
        desc: &'static MetricDesc,
        label_values: &[&str],
        requested: MetricKind,
    ) -> Result<usize, RegisterError> {
        self.lookups += 1;
        let metric = desc.name;
        if desc.kind != requested {
            return Err(RegisterError::KindMismatch {
                metric,
                declared: desc.kind,
                requested,
            });
        }
        let family = self.families.get(metric);
        match family {
            // The same static descriptor (the usual case) needs no field-by-field comparison.
            Some(family) if !std::ptr::eq(family.desc, desc) && family.desc != desc => {
                return Err(RegisterError::ConflictingDescriptor { metric });
            }
            Some(_) => {}
            None => desc.validate()?,
        }
        if label_values.len() != desc.label_names.len() {
            return Err(RegisterError::LabelArity {
                metric,
                expected: desc.label_names.len(),
                got: label_values.len(),
            });
        }
        if let Some(index) = family.and_then(|family| family.find(label_values)) {
            return Ok(index);
        }
        let labels: LabelValues = label_values.iter().map(|v| v.to_string()).collect();
        let index = match desc.kind {
            MetricKind::Counter => push(&mut self.counters, desc, &labels, 0),
            MetricKind::Gauge => push(&mut self.gauges, desc, &labels, 0),
            MetricKind::Histogram => {
                push(&mut self.histograms, desc, &labels, LatencyHistogram::new())
            }
        };
        self.families
            .entry(metric)
            .or_insert_with(|| Family {
                desc,
                series: Vec::new(),
            })
            .series
            .push((labels, index));
        Ok(index)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::new()
    }
}

fn push<T>(
    series: &mut Vec<Series<T>>,
    desc: &'static MetricDesc,
    labels: &LabelValues,
    value: T,
) -> usize {
    series.push(Series {
        desc,
        labels: Arc::clone(labels),
        value,
    });
    series.len() - 1
}

/// The series an id points at, if the id was issued by the shard tagged `tag`.
fn slot<T>(tag: u64, handle: Handle, series: &mut [Series<T>]) -> Option<&mut Series<T>> {
    debug_assert_eq!(
        handle.shard, tag,
        "metric id used on a shard that did not issue it"
    );
    if handle.shard != tag {
        return None;
    }
    series.get_mut(handle.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQUESTS: MetricDesc =
        MetricDesc::counter("requests_total", "Requests.", &["hc", "result"]);
    static IN_FLIGHT: MetricDesc = MetricDesc::gauge("in_flight", "In flight.", &["hc"]);
    static LATENCY: MetricDesc = MetricDesc::histogram("latency_seconds", "Latency.", &["hc"]);
    static REQUESTS_AGAIN: MetricDesc =
        MetricDesc::counter("requests_total", "Other help.", &["hc", "result"]);
    static BAD_NAME: MetricDesc = MetricDesc::counter("bad-name", "Bad.", &[]);

    #[test]
    fn counters_gauges_and_histograms_record() {
        let mut shard = Shard::new();
        let ok = shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        let in_flight = shard.gauge(&IN_FLIGHT, &["a"]).unwrap();
        let latency = shard.histogram(&LATENCY, &["a"]).unwrap();
        shard.inc(ok);
        shard.inc_by(ok, 4);
        shard.gauge_add(in_flight, 3);
        shard.gauge_add(in_flight, -5);
        shard.observe(latency, Duration::from_millis(2));
        shard.observe_micros(latency, 7);
        let snapshot = shard.snapshot();
        assert_eq!(snapshot.counter(&REQUESTS, &["a", "ok"]), Some(5));
        assert_eq!(snapshot.gauge(&IN_FLIGHT, &["a"]), Some(-2));
        let histogram = snapshot.histogram(&LATENCY, &["a"]).unwrap();
        assert_eq!(histogram.count(), 2);
        assert_eq!(histogram.sum_micros(), 2_007);
        shard.gauge_set(in_flight, 9);
        assert_eq!(shard.snapshot().gauge(&IN_FLIGHT, &["a"]), Some(9));
    }

    #[test]
    fn counters_and_gauges_saturate() {
        let mut shard = Shard::new();
        let c = shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        let g = shard.gauge(&IN_FLIGHT, &["a"]).unwrap();
        shard.inc_by(c, u64::MAX);
        shard.inc(c);
        shard.gauge_set(g, i64::MIN);
        shard.gauge_add(g, -1);
        let snapshot = shard.snapshot();
        assert_eq!(snapshot.counter(&REQUESTS, &["a", "ok"]), Some(u64::MAX));
        assert_eq!(snapshot.gauge(&IN_FLIGHT, &["a"]), Some(i64::MIN));
    }

    #[test]
    fn huge_latencies_saturate_instead_of_panicking() {
        let mut shard = Shard::new();
        let latency = shard.histogram(&LATENCY, &["a"]).unwrap();
        shard.observe(latency, Duration::MAX);
        shard.observe_micros(latency, u64::MAX);
        let snapshot = shard.snapshot();
        let histogram = snapshot.histogram(&LATENCY, &["a"]).unwrap();
        assert_eq!(histogram.count(), 2);
        assert_eq!(histogram.sum_micros(), u64::MAX);
    }

    #[test]
    fn registering_twice_returns_the_same_series() {
        let mut shard = Shard::new();
        let first = shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        let again = shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        let other = shard.counter(&REQUESTS, &["a", "refused"]).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
        shard.inc(first);
        shard.inc(again);
        assert_eq!(shard.snapshot().counter(&REQUESTS, &["a", "ok"]), Some(2));
        assert_eq!(
            shard.snapshot().counter(&REQUESTS, &["a", "refused"]),
            Some(0)
        );
    }

    #[test]
    fn label_values_are_compared_one_by_one_not_joined() {
        let mut shard = Shard::new();
        let split_late = shard.counter(&REQUESTS, &["ab", "c"]).unwrap();
        let split_early = shard.counter(&REQUESTS, &["a", "bc"]).unwrap();
        assert_ne!(split_late, split_early);
        assert_eq!(shard.counter(&REQUESTS, &["a", "bc"]).unwrap(), split_early);
    }

    #[test]
    fn label_arity_mismatch_is_refused_at_registration() {
        let mut shard = Shard::new();
        assert_eq!(
            shard.counter(&REQUESTS, &["a"]),
            Err(RegisterError::LabelArity {
                metric: "requests_total",
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            shard.histogram(&LATENCY, &["a", "b"]),
            Err(RegisterError::LabelArity {
                metric: "latency_seconds",
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn kind_mismatch_is_refused() {
        let mut shard = Shard::new();
        assert_eq!(
            shard.counter(&IN_FLIGHT, &["a"]),
            Err(RegisterError::KindMismatch {
                metric: "in_flight",
                declared: MetricKind::Gauge,
                requested: MetricKind::Counter
            })
        );
        assert_eq!(
            shard.gauge(&LATENCY, &["a"]),
            Err(RegisterError::KindMismatch {
                metric: "latency_seconds",
                declared: MetricKind::Histogram,
                requested: MetricKind::Gauge
            })
        );
    }

    #[test]
    fn a_second_descriptor_with_the_same_name_is_refused() {
        let mut shard = Shard::new();
        shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        assert_eq!(
            shard.counter(&REQUESTS_AGAIN, &["a", "ok"]),
            Err(RegisterError::ConflictingDescriptor {
                metric: "requests_total"
            })
        );
    }

    #[test]
    fn invalid_descriptors_are_refused() {
        let mut shard = Shard::new();
        assert_eq!(
            shard.counter(&BAD_NAME, &[]),
            Err(RegisterError::InvalidMetricName { metric: "bad-name" })
        );
        assert!(shard.snapshot().is_empty());
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn another_shards_id_is_ignored_in_release_builds() {
        let mut first = Shard::new();
        let mut second = Shard::new();
        let foreign = first.counter(&REQUESTS, &["a", "ok"]).unwrap();
        second.counter(&REQUESTS, &["a", "ok"]).unwrap();
        second.inc(foreign);
        assert_eq!(second.snapshot().counter(&REQUESTS, &["a", "ok"]), Some(0));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "metric id used on a shard that did not issue it")]
    fn another_shards_id_panics_in_debug_builds() {
        let mut first = Shard::new();
        let mut second = Shard::new();
        let foreign = first.counter(&REQUESTS, &["a", "ok"]).unwrap();
        second.counter(&REQUESTS, &["a", "ok"]).unwrap();
        second.inc(foreign);
    }
}
