//! What one worker thread measured, merged across threads at the end.

use std::collections::BTreeMap;

use hycod::metrics::LatencyHistogram;

use crate::failure::Failure;

/// Latencies, successes, bytes and errors by kind.
#[derive(Debug, Default, Clone)]
pub(crate) struct Results {
    pub latency: LatencyHistogram,
    /// Successful round trips recorded (after the warm-up).
    pub ok: u64,
    /// Payload bytes sent plus received by recorded round trips.
    pub bytes: u64,
    /// Failures after the warm-up, by kind.
    pub errors: BTreeMap<Failure, u64>,
}

impl Results {
    /// Counts one failure of `kind`.
    pub(crate) fn error(&mut self, kind: Failure) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.latency.add(&other.latency);
        self.ok += other.ok;
        self.bytes += other.bytes;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
    }

    /// All failures.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_everything() {
        let mut a = Results::default();
        a.latency.record_micros(5);
        a.ok = 1;
        a.bytes = 10;
        a.error(Failure::Timeout);
        let mut b = Results::default();
        b.latency.record_micros(7);
        b.ok = 2;
        b.bytes = 1;
        b.error(Failure::Timeout);
        b.error(Failure::Connect);
        a.merge(&b);
        assert_eq!(a.latency.count(), 2);
        assert_eq!((a.ok, a.bytes), (3, 11));
        assert_eq!(a.errors.get(&Failure::Timeout), Some(&2));
        assert_eq!(a.error_count(), 3);
    }
}
