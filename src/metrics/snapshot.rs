//! A point-in-time copy of metrics, taken on a worker and merged off the hot path (architecture
//! §4).
//!
//! A scrape asks every worker for `Shard::snapshot()` and merges the results with
//! [`Snapshot::merge`]: counters and gauges add up, histograms add their counts and sums.
//! A snapshot is `Send`, so it can travel from a worker to the admin endpoint. Families are
//! ordered by name and series by label values, so rendering is deterministic.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::desc::MetricDesc;
use super::error::MergeError;
use super::histogram::LatencyHistogram;

/// The label values of one series, in the order of its descriptor's label names. Shared
/// between a shard and its snapshots, so taking a snapshot copies no strings.
pub(super) type LabelValues = Arc<[String]>;

/// The value of one series.
#[derive(Debug, Clone)]
pub(super) enum SeriesValue {
    Counter(u64),
    Gauge(i64),
    Histogram(LatencyHistogram),
}

impl SeriesValue {
    /// Adds `other` into `self`; `false` if the two are of different kinds.
    fn absorb(&mut self, other: SeriesValue) -> bool {
        match (self, other) {
            (Self::Counter(total), Self::Counter(more)) => *total = total.saturating_add(more),
            (Self::Gauge(total), Self::Gauge(more)) => *total = total.saturating_add(more),
            (Self::Histogram(total), Self::Histogram(more)) => total.add(&more),
            _ => return false,
        }
        true
    }
}

/// One metric family in a snapshot: its descriptor and every series of it.
#[derive(Debug, Clone)]
pub(super) struct Family {
    pub(super) desc: &'static MetricDesc,
    pub(super) series: BTreeMap<LabelValues, SeriesValue>,
}

/// Every series of one or more shards at one point in time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    families: BTreeMap<&'static str, Family>,
}

impl Snapshot {
    /// Adds up snapshots of several shards. Fails only if two of them carry different
    /// descriptors under one metric name.
    pub fn merge(snapshots: impl IntoIterator<Item = Snapshot>) -> Result<Snapshot, MergeError> {
        let mut total = Snapshot::default();
        for snapshot in snapshots {
            total.absorb(snapshot)?;
        }
        Ok(total)
    }

    /// True when no series is registered.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The value of the counter series `desc{label_values}`, if registered.
    pub fn counter(&self, desc: &MetricDesc, label_values: &[&str]) -> Option<u64> {
        match self.series(desc, label_values)? {
            SeriesValue::Counter(value) => Some(*value),
            _ => None,
        }
    }

    /// The value of the gauge series `desc{label_values}`, if registered.
    pub fn gauge(&self, desc: &MetricDesc, label_values: &[&str]) -> Option<i64> {
        match self.series(desc, label_values)? {
            SeriesValue::Gauge(value) => Some(*value),
            _ => None,
        }
    }

    /// The counter series of `desc` whose first label values are `prefix`, added up (e.g. one
    /// hybrid connection's reconnects over every reason); 0 when there is none.
    pub fn counter_sum(&self, desc: &MetricDesc, prefix: &[&str]) -> u64 {
        let Some(family) = self.families.get(desc.name) else {
            return 0;
        };
        family
            .series
            .iter()
            .filter(|(labels, _)| {
                labels.len() >= prefix.len() && labels.iter().zip(prefix).all(|(l, p)| l == p)
            })
            .filter_map(|(_, value)| match value {
                SeriesValue::Counter(n) => Some(*n),
                _ => None,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// The histogram series `desc{label_values}`, if registered.
    pub fn histogram(&self, desc: &MetricDesc, label_values: &[&str]) -> Option<&LatencyHistogram> {
        match self.series(desc, label_values)? {
            SeriesValue::Histogram(histogram) => Some(histogram),
            _ => None,
        }
    }

    /// Every series of the histogram family `desc` added together (e.g. a latency summary over
    /// all hybrid connections), if the family is registered.
    pub fn histogram_total(&self, desc: &MetricDesc) -> Option<LatencyHistogram> {
        let family = self.families.get(desc.name)?;
        let mut total: Option<LatencyHistogram> = None;
        for value in family.series.values() {
            if let SeriesValue::Histogram(histogram) = value {
                match total.as_mut() {
                    Some(total) => total.add(histogram),
                    None => total = Some(histogram.clone()),
                }
            }
        }
        total
    }

    /// The families, ordered by name.
    pub(super) fn families(&self) -> impl Iterator<Item = &Family> {
        self.families.values()
    }

    /// Sets one series; used by `Shard::snapshot`, whose series are unique by construction.
    pub(super) fn insert(
        &mut self,
        desc: &'static MetricDesc,
        labels: LabelValues,
        value: SeriesValue,
    ) {
        self.families
            .entry(desc.name)
            .or_insert_with(|| Family {
                desc,
                series: BTreeMap::new(),
            })
            .series
            .insert(labels, value);
    }

    fn absorb(&mut self, other: Snapshot) -> Result<(), MergeError> {
        for (name, family) in other.families {
            let mine = match self.families.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(family);
                    continue;
                }
                Entry::Occupied(slot) => slot.into_mut(),
            };
            if mine.desc != family.desc {
                return Err(MergeError::ConflictingDescriptor { metric: name });
            }
            for (labels, value) in family.series {
                match mine.series.entry(labels) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(mut slot) => {
                        if !slot.get_mut().absorb(value) {
                            return Err(MergeError::ConflictingDescriptor { metric: name });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn series(&self, desc: &MetricDesc, label_values: &[&str]) -> Option<&SeriesValue> {
        let family = self.families.get(desc.name)?;
        family
            .series
            .iter()
            .find(|(labels, _)| {
                labels
                    .iter()
                    .map(String::as_str)
                    .eq(label_values.iter().copied())
            })
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::shard::Shard;

    static REQUESTS: MetricDesc =
        MetricDesc::counter("requests_total", "Requests.", &["hc", "result"]);
    static REQUESTS_OTHER_HELP: MetricDesc =
        MetricDesc::counter("requests_total", "Other help.", &["hc", "result"]);
    static IN_FLIGHT: MetricDesc = MetricDesc::gauge("in_flight", "In flight.", &["hc"]);
    static LATENCY: MetricDesc = MetricDesc::histogram("latency_seconds", "Latency.", &["hc"]);

    /// What one worker does: a fixed script of recordings over two hybrid connections.
    fn record_script(shard: &mut Shard, hcs: &[&str], step: u64) {
        for (i, hc) in hcs.iter().enumerate() {
            let offset = u64::try_from(i).unwrap() + step;
            let ok = shard.counter(&REQUESTS, &[hc, "ok"]).unwrap();
            let in_flight = shard.gauge(&IN_FLIGHT, &[hc]).unwrap();
            let latency = shard.histogram(&LATENCY, &[hc]).unwrap();
            shard.inc_by(ok, 3 + offset);
            shard.gauge_add(in_flight, 2 - i64::try_from(offset).unwrap());
            for micros in [40, 900 * offset, 12_000 + offset, 3_000_000 * offset] {
                shard.observe_micros(latency, micros);
            }
        }
    }

    fn assert_same(merged: &Snapshot, single: &Snapshot) {
        for hc in ["a", "b", "c"] {
            assert_eq!(
                merged.counter(&REQUESTS, &[hc, "ok"]),
                single.counter(&REQUESTS, &[hc, "ok"]),
                "{hc}"
            );
            assert_eq!(
                merged.gauge(&IN_FLIGHT, &[hc]),
                single.gauge(&IN_FLIGHT, &[hc]),
                "{hc}"
            );
            let m = merged.histogram(&LATENCY, &[hc]).map(|h| {
                (
                    h.count(),
                    h.sum_micros(),
                    h.cumulative_buckets(),
                    h.quantiles(),
                )
            });
            let s = single.histogram(&LATENCY, &[hc]).map(|h| {
                (
                    h.count(),
                    h.sum_micros(),
                    h.cumulative_buckets(),
                    h.quantiles(),
                )
            });
            assert_eq!(m, s, "{hc}");
        }
        assert_eq!(
            super::super::render(merged),
            super::super::render(single),
            "rendered text"
        );
    }

    #[test]
    fn merging_two_shards_equals_recording_everything_in_one() {
        let mut first = Shard::new();
        let mut second = Shard::new();
        let mut single = Shard::new();
        record_script(&mut first, &["a", "b"], 1);
        record_script(&mut second, &["b", "c"], 5);
        record_script(&mut single, &["a", "b"], 1);
        record_script(&mut single, &["b", "c"], 5);
        let merged = Snapshot::merge([first.snapshot(), second.snapshot()]).unwrap();
        let single = single.snapshot();
        assert_same(&merged, &single);
        assert_eq!(merged.counter(&REQUESTS, &["b", "ok"]), Some(5 + 8));
        assert_eq!(
            merged
                .histogram(&LATENCY, &["b"])
                .map(LatencyHistogram::count),
            Some(8)
        );
    }

    #[test]
    fn merging_nothing_is_empty_and_merging_one_is_identity() {
        assert!(Snapshot::merge([]).unwrap().is_empty());
        let mut shard = Shard::new();
        record_script(&mut shard, &["a"], 2);
        let merged = Snapshot::merge([shard.snapshot()]).unwrap();
        assert_same(&merged, &shard.snapshot());
    }

    #[test]
    fn conflicting_descriptors_are_refused() {
        let mut first = Shard::new();
        let mut second = Shard::new();
        first.counter(&REQUESTS, &["a", "ok"]).unwrap();
        second.counter(&REQUESTS_OTHER_HELP, &["a", "ok"]).unwrap();
        let result = Snapshot::merge([first.snapshot(), second.snapshot()]);
        assert_eq!(
            result.map(|_| ()),
            Err(MergeError::ConflictingDescriptor {
                metric: "requests_total"
            })
        );
    }

    #[test]
    fn series_of_different_kinds_are_refused() {
        let labels: LabelValues = Arc::from(vec!["a".to_string(), "ok".to_string()]);
        let mut first = Snapshot::default();
        first.insert(&REQUESTS, labels.clone(), SeriesValue::Counter(1));
        let mut second = Snapshot::default();
        second.insert(&REQUESTS, labels, SeriesValue::Gauge(1));
        assert_eq!(
            Snapshot::merge([first, second]).map(|_| ()),
            Err(MergeError::ConflictingDescriptor {
                metric: "requests_total"
            })
        );
    }

    #[test]
    fn histogram_total_adds_every_series_of_a_family() {
        let mut shard = Shard::new();
        let a = shard.histogram(&LATENCY, &["a"]).unwrap();
        let b = shard.histogram(&LATENCY, &["b"]).unwrap();
        shard.observe(a, Duration::from_millis(1));
        shard.observe(b, Duration::from_millis(3));
        let total = shard.snapshot().histogram_total(&LATENCY).unwrap();
        assert_eq!(total.count(), 2);
        assert_eq!(total.sum_micros(), 4_000);
        assert!(Snapshot::default().histogram_total(&LATENCY).is_none());
    }

    #[test]
    fn lookups_check_kind_and_labels() {
        let mut shard = Shard::new();
        shard.counter(&REQUESTS, &["a", "ok"]).unwrap();
        let snapshot = shard.snapshot();
        assert_eq!(snapshot.counter(&REQUESTS, &["a", "ok"]), Some(0));
        assert_eq!(snapshot.counter(&REQUESTS, &["a", "no"]), None);
        assert_eq!(snapshot.gauge(&REQUESTS, &["a", "ok"]), None);
        assert!(snapshot.histogram(&REQUESTS, &["a", "ok"]).is_none());
        assert_eq!(snapshot.gauge(&IN_FLIGHT, &["a"]), None);
    }

    #[test]
    fn snapshots_are_send() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        assert_send(&Shard::new().snapshot());
    }
}
