//! A latency histogram: HDR counts in microseconds plus an exact sum (architecture §4).
//!
//! Choices, all fixed so every histogram of the process has the same geometry and merges by
//! adding counts:
//! - unit: microseconds; lowest discernible value 1 µs;
//! - precision: [`SIGNIFICANT_FIGURES`] = 3, i.e. a recorded value is known to within 0.1 %;
//! - range: bounded at [`HIGHEST_TRACKABLE_MICROS`] = 1 hour, no auto-resize, so recording never
//!   allocates. Larger values are clamped to 1 hour (they still land above the top bucket of the
//!   ladder, i.e. only in `+Inf`) and zero is clamped to 1 µs. Recording never fails or panics.
//!   The cost is a fixed ~184 KiB of counts per histogram series (per worker);
//! - `_sum` is kept exactly, from the unclamped values (saturating at `u64::MAX` µs), so it is
//!   not affected by clamping or bucket resolution.
//!
//! The Prometheus buckets are the fixed [`BUCKET_LADDER_MICROS`] ladder, computed from the HDR
//! counts at render time. A bucket `le = b` counts every HDR bucket whose lowest value is `<= b`,
//! so values at most 0.1 % above a bound may be counted in it.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Significant decimal figures kept by every latency histogram.
pub const SIGNIFICANT_FIGURES: u8 = 3;

/// The largest recordable latency, in microseconds (1 hour); larger values are clamped to it.
pub const HIGHEST_TRACKABLE_MICROS: u64 = 3_600_000_000;

/// The upper bounds (`le`) of the exposed buckets, in microseconds, ascending; `+Inf` follows.
///
/// 100µs 250µs 500µs 1ms 2.5ms 5ms 10ms 25ms 50ms 100ms 250ms 500ms 1s 2.5s 5s 10s 30s 60s.
pub const BUCKET_LADDER_MICROS: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A latency distribution with fixed geometry; see the module documentation.
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Histogram<u64>,
    sum_micros: u64,
}

impl LatencyHistogram {
    /// An empty histogram. Allocates its whole counts array (~184 KiB) up front.
    pub fn new() -> Self {
        // Invariant: new_with_bounds fails only when low < 1, high < 2 * low or sigfig > 5;
        // the constants (1, 3.6e9, 3) satisfy all three, as a unit test checks.
        let counts = Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_FIGURES)
            .expect("constant histogram bounds are valid");
        Self {
            counts,
            sum_micros: 0,
        }
    }

    /// Records one latency; whole microseconds, clamped as described in the module docs.
    pub fn record(&mut self, elapsed: Duration) {
        self.record_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency given in microseconds. O(1), never allocates, never fails.
    pub fn record_micros(&mut self, micros: u64) {
        self.counts.saturating_record(micros);
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Adds every recorded value of `other` to this histogram.
    pub fn add(&mut self, other: &Self) {
        if self.counts.add(&other.counts).is_err() {
            // Unreachable while every histogram comes from `new` (same geometry, both clamped
            // to the same range); kept as a lossless, non-panicking fallback.
            for value in other.counts.iter_recorded() {
                self.counts
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// The number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.len()
    }

    /// The exact sum of the recorded values, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// The cumulative count of each bound of [`BUCKET_LADDER_MICROS`], in ladder order; the
    /// `+Inf` bucket is [`count`](Self::count).
    pub fn cumulative_buckets(&self) -> [u64; BUCKET_LADDER_MICROS.len()] {
        let tops = BUCKET_LADDER_MICROS.map(|bound| self.counts.highest_equivalent(bound));
        let mut per_bucket = [0u64; BUCKET_LADDER_MICROS.len()];
        let mut bucket = 0;
        for value in self.counts.iter_recorded() {
            // HDR buckets come in ascending order; each belongs to the first ladder bound whose
            // HDR bucket is at or above it (the same rule as `count_between(0, bound)`).
            while bucket < tops.len() && value.value_iterated_to() > tops[bucket] {
                bucket += 1;
            }
            let Some(slot) = per_bucket.get_mut(bucket) else {
                break;
            };
            *slot = slot.saturating_add(value.count_at_value());
        }
        let mut running = 0u64;
        per_bucket.map(|count| {
            running = running.saturating_add(count);
            running
        })
    }

    /// The value at quantile `q` (0.0 ..= 1.0), as the highest value of its HDR bucket.
    pub fn value_at_quantile(&self, q: f64) -> Duration {
        if self.counts.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.counts.value_at_quantile(q))
    }

    /// The p50/p90/p99/p99.9/max summary printed by the demo and the load generator.
    pub fn quantiles(&self) -> Quantiles {
        let max = if self.counts.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.counts.max())
        };
        Quantiles {
            count: self.count(),
            p50: self.value_at_quantile(0.5),
            p90: self.value_at_quantile(0.9),
            p99: self.value_at_quantile(0.99),
            p999: self.value_at_quantile(0.999),
            max,
        }
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("sum_micros", &self.sum_micros)
            .finish()
    }
}

/// A human summary of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantiles {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl fmt::Display for Quantiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={:?} p90={:?} p99={:?} p99.9={:?} max={:?}",
            self.count, self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_bounds_build_a_histogram() {
        let h = Histogram::<u64>::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_FIGURES);
        assert!(h.is_ok());
    }

    #[test]
    fn ladder_is_strictly_ascending_and_below_the_clamp() {
        assert!(BUCKET_LADDER_MICROS.windows(2).all(|w| w[0] < w[1]));
        let h = LatencyHistogram::new();
        let top = BUCKET_LADDER_MICROS[BUCKET_LADDER_MICROS.len() - 1];
        // A clamped value must not fall into the last finite bucket.
        assert!(
            h.counts.lowest_equivalent(HIGHEST_TRACKABLE_MICROS) > h.counts.highest_equivalent(top)
        );
    }

    #[test]
    fn huge_values_saturate_instead_of_panicking() {
        let mut h = LatencyHistogram::new();
        h.record_micros(u64::MAX);
        h.record(Duration::MAX);
        h.record_micros(0);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum_micros(), u64::MAX);
        let q = h.quantiles();
        assert!(q.max >= Duration::from_micros(HIGHEST_TRACKABLE_MICROS));
        assert!(q.max <= Duration::from_micros(HIGHEST_TRACKABLE_MICROS * 1001 / 1000));
        // Clamped values are above every finite bucket: only the zero is counted there.
        assert_eq!(h.cumulative_buckets(), [1; BUCKET_LADDER_MICROS.len()]);
    }

    #[test]
    fn buckets_are_cumulative_and_match_count_between() {
        let mut h = LatencyHistogram::new();
        let values = [
            0,
            1,
            99,
            100,
            101,
            250,
            999,
            1_000,
            1_001,
            42_000,
            2_500_000,
            59_999_999,
            61_000_000,
            3_599_000_000,
        ];
        for v in values {
            h.record_micros(v);
        }
        let buckets = h.cumulative_buckets();
        for (i, &bound) in BUCKET_LADDER_MICROS.iter().enumerate() {
            assert_eq!(buckets[i], h.counts.count_between(0, bound), "le={bound}");
            let exact = values.iter().filter(|&&v| v <= bound).count();
            assert_eq!(buckets[i], u64::try_from(exact).unwrap(), "le={bound}");
        }
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn boundary_resolution_is_within_a_tenth_of_a_percent() {
        let mut h = LatencyHistogram::new();
        // 2_501 µs shares an HDR bucket with 2_500 µs (resolution 2 µs at this magnitude).
        h.record_micros(2_501);
        h.record_micros(2_503);
        let buckets = h.cumulative_buckets();
        assert_eq!(buckets[4], 1, "le=2.5ms");
    }

    #[test]
    fn sum_is_exact() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_nanos(1_999));
        h.record_micros(12_345_678);
        assert_eq!(h.sum_micros(), 1 + 12_345_678);
    }

    #[test]
    fn add_combines_counts_and_sums() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record_micros(10);
        b.record_micros(20);
        b.record_micros(u64::MAX);
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum_micros(), u64::MAX);
        assert_eq!(a.value_at_quantile(0.0), Duration::from_micros(10));
    }

    #[test]
    fn quantiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for v in 1..=10_000 {
            h.record_micros(v);
        }
        let q = h.quantiles();
        assert_eq!(q.count, 10_000);
        let within_resolution = |got: Duration, want_micros: u64| {
            got.abs_diff(Duration::from_micros(want_micros))
                <= Duration::from_micros(want_micros / 1000)
        };
        assert!(within_resolution(q.p50, 5_000), "{q}");
        assert!(within_resolution(q.p90, 9_000), "{q}");
        assert!(within_resolution(q.p99, 9_900), "{q}");
        assert!(within_resolution(q.p999, 9_990), "{q}");
        assert!(within_resolution(q.max, 10_000), "{q}");
        assert_eq!(
            q.to_string(),
            format!(
                "n=10000 p50={:?} p90={:?} p99={:?} p99.9={:?} max={:?}",
                q.p50, q.p90, q.p99, q.p999, q.max
            )
        );
    }

    #[test]
    fn empty_histogram_reports_zeroes() {
        let h = LatencyHistogram::new();
        let q = h.quantiles();
        assert_eq!(q.count, 0);
        assert_eq!(q.max, Duration::ZERO);
        assert_eq!(q.p50, Duration::ZERO);
        assert_eq!(h.cumulative_buckets(), [0; BUCKET_LADDER_MICROS.len()]);
    }
}
