//! "The last minute" from cumulative latency histograms: the admin endpoint samples each
//! series' bucket counts every [`SAMPLE_EVERY`] and keeps a minute of samples (a few hundred
//! bytes per series, never the histograms themselves); a page compares the live histogram with
//! the newest sample at least a minute old (or the oldest there is, right after start) and
//! reports the count, the rate and p50/p99 estimated from the buckets the way Prometheus'
//! `histogram_quantile` does (linear within a bucket; above the top bound, the top bound).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::metrics::{LatencyHistogram, BUCKET_LADDER_MICROS};

/// How often the admin endpoint takes a sample.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The span the page reports on.
pub(crate) const SPAN: Duration = Duration::from_secs(60);

/// One series' counts at one moment: the ladder's cumulative buckets and the total count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    cumulative: [u64; BUCKET_LADDER_MICROS.len()],
    total: u64,
}

impl Counts {
    pub(crate) fn of(histogram: &LatencyHistogram) -> Self {
        Self {
            cumulative: histogram.cumulative_buckets(),
            total: histogram.count(),
        }
    }

    /// What was recorded between `earlier` and `self` (a series that restarted counts from
    /// zero: nothing is subtracted below zero).
    fn since(&self, earlier: &Counts) -> Counts {
        let mut cumulative = self.cumulative;
        for (now, then) in cumulative.iter_mut().zip(earlier.cumulative) {
            *now = now.saturating_sub(then);
        }
        Counts {
            cumulative,
            total: self.total.saturating_sub(earlier.total),
        }
    }

    /// The `q` quantile (0..=1) estimated from the buckets; `None` without observations.
    fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = q * self.total as f64;
        let mut below = 0u64;
        let mut lower = 0u64;
        for (bound, cumulative) in BUCKET_LADDER_MICROS.iter().zip(self.cumulative) {
            if cumulative as f64 >= rank && cumulative > below {
                let in_bucket = (cumulative - below) as f64;
                let fraction = (rank - below as f64) / in_bucket;
                let micros = lower as f64 + (bound - lower) as f64 * fraction.clamp(0.0, 1.0);
                return Some(Duration::from_micros(micros.round() as u64));
            }
            below = cumulative;
            lower = *bound;
        }
        BUCKET_LADDER_MICROS
            .last()
            .map(|top| Duration::from_micros(*top))
    }
}

/// What the last minute (or the shorter time since the first sample) saw of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recent {
    /// The time actually covered.
    pub span: Duration,
    pub count: u64,
    pub per_second: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// [`Recent`] as the JSON documents carry it: seconds as numbers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct LastMinute {
    /// Seconds actually covered (shorter right after start).
    pub span_seconds: f64,
    pub count: u64,
    pub per_second: f64,
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

impl From<Recent> for LastMinute {
    fn from(r: Recent) -> Self {
        Self {
            span_seconds: r.span.as_secs_f64(),
            count: r.count,
            per_second: r.per_second,
            p50_seconds: r.p50.map(|d| d.as_secs_f64()),
            p99_seconds: r.p99.map(|d| d.as_secs_f64()),
        }
    }
}

/// Samples of several series (keyed by name), the newest last.
#[derive(Debug, Default)]
pub(crate) struct Window {
    samples: VecDeque<(Instant, HashMap<String, Counts>)>,
}

impl Window {
    /// Adds a sample taken `at`, and forgets samples that a later one has made unnecessary (the
    /// newest sample at least [`SPAN`] old is kept).
    pub(crate) fn push(&mut self, at: Instant, series: HashMap<String, Counts>) {
        self.samples.push_back((at, series));
        while self.samples.len() > 1 {
            let second_oldest = self.samples[1].0;
            if at.saturating_duration_since(second_oldest) >= SPAN {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// The last minute of series `key`, whose live counts at `now` are `live`.
    pub(crate) fn recent(&self, key: &str, live: &Counts, now: Instant) -> Recent {
        let baseline = self
            .samples
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= SPAN)
            .or_else(|| self.samples.front());
        let zero = Counts {
            cumulative: [0; BUCKET_LADDER_MICROS.len()],
            total: 0,
        };
        let (span, delta) = match baseline {
            Some((at, series)) => (
                now.saturating_duration_since(*at),
                live.since(series.get(key).unwrap_or(&zero)),
            ),
            None => (Duration::ZERO, *live),
        };
        let per_second = if span.is_zero() {
            0.0
        } else {
            delta.total as f64 / span.as_secs_f64()
        };
        Recent {
            span,
            count: delta.total,
            per_second,
            p50: delta.quantile(0.5),
            p99: delta.quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_micros: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for v in values_micros {
            h.record_micros(*v);
        }
        h
    }

    fn sample(key: &str, h: &LatencyHistogram) -> HashMap<String, Counts> {
        HashMap::from([(key.to_owned(), Counts::of(h))])
    }

    #[test]
    fn only_what_came_after_the_minute_old_sample_counts() {
        let start = Instant::now();
        let mut window = Window::default();
        let mut h = histogram(&[5_000_000; 10]);
        window.push(start, sample("a", &h));
        for v in [2_000u64; 100] {
            h.record_micros(v);
        }
        window.push(start + SPAN, sample("a", &h));
        for v in [200u64; 30] {
            h.record_micros(v);
        }
        let now = start + SPAN + Duration::from_secs(30);
        let recent = window.recent("a", &Counts::of(&h), now);
        // The baseline is the sample taken at `start` (the newest at least a minute old): the
        // 130 later values count, the 10 slow ones before do not.
        assert_eq!(recent.count, 130);
        assert_eq!(recent.span, Duration::from_secs(90));
        assert!((recent.per_second - 130.0 / 90.0).abs() < 1e-9);
        // 2 ms values fall in the (1 ms, 2.5 ms] bucket; p50 interpolates inside it.
        let p50 = recent.p50.expect("p50");
        assert!(
            p50 > Duration::from_millis(1) && p50 <= Duration::from_micros(2_500),
            "{p50:?}"
        );
        let p99 = recent.p99.expect("p99");
        assert!(p99 <= Duration::from_micros(2_500), "{p99:?}");
    }

    #[test]
    fn samples_older_than_needed_are_dropped() {
        let start = Instant::now();
        let mut window = Window::default();
        for i in 0..20 {
            window.push(start + SAMPLE_EVERY * i, HashMap::new());
        }
        // 19 × 10 s in: the sample at 130 s is the newest at least 60 s old; older ones go.
        assert_eq!(
            window.samples.front().map(|s| s.0),
            Some(start + SAMPLE_EVERY * 13)
        );
    }

    #[test]
    fn without_observations_there_are_no_quantiles() {
        let start = Instant::now();
        let mut window = Window::default();
        window.push(start, HashMap::new());
        let recent = window.recent("a", &Counts::of(&LatencyHistogram::new()), start);
        assert_eq!(recent.count, 0);
        assert_eq!(recent.per_second, 0.0);
        assert_eq!(recent.p50, None);
        // A series first seen after the sample counts from zero.
        let h = histogram(&[100, 100]);
        let recent = window.recent("a", &Counts::of(&h), start + Duration::from_secs(2));
        assert_eq!(recent.count, 2);
        assert_eq!(recent.per_second, 1.0);
    }

    #[test]
    fn values_above_the_top_bucket_report_the_top_bound() {
        let h = histogram(&[120_000_000; 3]);
        let counts = Counts::of(&h);
        assert_eq!(counts.quantile(0.5), Some(Duration::from_secs(60)));
    }
}
