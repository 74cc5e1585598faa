//! The series a hybrid connection records on every stream and request, held by id (architecture
//! §4, docs/metrics.md).
//!
//! [`HcSeries`] keeps one slot per series of the request and stream paths. A slot is filled the
//! first time its series is recorded (registering it in the worker's shard, so a family stays
//! absent from the scrape until it happens) and every later record is an index into the shard:
//! no hashing, no label comparison, no allocation. Series labelled with a reason from an open
//! set (refusals, reconnects, limits) are rare events and stay registered by value when counted.

use std::cell::Cell;

use super::http::policy::{status_class, ABORTED};
use crate::daemon::metrics::{
    BYTES, CONTROL_CONNECT_SECONDS, LISTENER_ONLINE, RENDEZVOUS_SECONDS, REQUESTS,
    REQUESTS_IN_FLIGHT, REQUEST_BODY_BUFFERED, REQUEST_SECONDS, STREAMS_ACCEPTED,
    STREAMS_IN_FLIGHT, TARGET_CONNECT_SECONDS, TARGET_FIRST_BYTE_SECONDS,
};
use crate::io::tcp_pump::Direction;
use crate::metrics::{CounterId, GaugeId, HistogramId, MetricDesc, RegisterError, Shard};

/// A counter series of the request and stream paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `hycod_streams_accepted_total`.
    StreamsAccepted,
    /// `hycod_bytes_total{direction}`.
    Bytes(Direction),
    /// `hycod_requests_total{status}` of a request answered with this status (its class).
    Answered(u16),
    /// `hycod_requests_total{status="aborted"}`.
    Aborted,
}

/// Slots: streams accepted, two directions, aborted, then the status classes 1xx … 9xx.
const COUNTER_SLOTS: usize = 4 + 9;

impl Counter {
    fn slot(self) -> usize {
        match self {
            Self::StreamsAccepted => 0,
            Self::Bytes(Direction::ToTarget) => 1,
            Self::Bytes(Direction::ToRelay) => 2,
            Self::Aborted => 3,
            // The classes of `status_class`: 1xx … 8xx by their digit, anything else 9xx.
            Self::Answered(status) => match status / 100 {
                class @ 1..=8 => 3 + usize::from(class),
                _ => 3 + 9,
            },
        }
    }

    fn register(self, shard: &mut Shard, hc: &str) -> Result<CounterId, RegisterError> {
        match self {
            Self::StreamsAccepted => shard.counter(&STREAMS_ACCEPTED, &[hc]),
            Self::Bytes(direction) => shard.counter(&BYTES, &[hc, direction.label()]),
            Self::Answered(status) => shard.counter(&REQUESTS, &[hc, status_class(status)]),
            Self::Aborted => shard.counter(&REQUESTS, &[hc, ABORTED]),
        }
    }
}

/// A gauge series of a hybrid connection (its only label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    ListenerOnline,
    StreamsInFlight,
    RequestsInFlight,
    RequestBodyBuffered,
}

impl Gauge {
    fn desc(self) -> &'static MetricDesc {
        match self {
            Self::ListenerOnline => &LISTENER_ONLINE,
            Self::StreamsInFlight => &STREAMS_IN_FLIGHT,
            Self::RequestsInFlight => &REQUESTS_IN_FLIGHT,
            Self::RequestBodyBuffered => &REQUEST_BODY_BUFFERED,
        }
    }
}

/// A latency histogram of a hybrid connection (its only label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Histogram {
    ControlConnect,
    Rendezvous,
    TargetConnect,
    TargetFirstByte,
    Request,
}

impl Histogram {
    fn desc(self) -> &'static MetricDesc {
        match self {
            Self::ControlConnect => &CONTROL_CONNECT_SECONDS,
            Self::Rendezvous => &RENDEZVOUS_SECONDS,
            Self::TargetConnect => &TARGET_CONNECT_SECONDS,
            Self::TargetFirstByte => &TARGET_FIRST_BYTE_SECONDS,
            Self::Request => &REQUEST_SECONDS,
        }
    }
}

/// The ids of one hybrid connection's series on one worker, each filled on first record.
#[derive(Debug, Default)]
pub struct HcSeries {
    counters: [Cell<Option<CounterId>>; COUNTER_SLOTS],
    gauges: [Cell<Option<GaugeId>>; 4],
    histograms: [Cell<Option<HistogramId>>; 5],
}

impl HcSeries {
    /// The id of `counter` in `shard`, registering it for hybrid connection `hc` on first use.
    pub fn counter(&self, shard: &mut Shard, hc: &str, counter: Counter) -> Option<CounterId> {
        cached(&self.counters[counter.slot()], || {
            counter.register(shard, hc)
        })
    }

    /// The id of `gauge` in `shard`, registering it for hybrid connection `hc` on first use.
    pub fn gauge(&self, shard: &mut Shard, hc: &str, gauge: Gauge) -> Option<GaugeId> {
        cached(&self.gauges[gauge as usize], || {
            shard.gauge(gauge.desc(), &[hc])
        })
    }

    /// The id of `histogram` in `shard`, registering it for hybrid connection `hc` on first use.
    pub fn histogram(
        &self,
        shard: &mut Shard,
        hc: &str,
        histogram: Histogram,
    ) -> Option<HistogramId> {
        let slot = &self.histograms[histogram as usize];
        cached(slot, || shard.histogram(histogram.desc(), &[hc]))
    }
}

/// The id in `slot`, or the one `register` returns (kept in `slot`). A refused registration is
/// a programming error in a static descriptor (`every_descriptor_is_valid` checks them) and
/// records nothing.
fn cached<Id: Copy>(
    slot: &Cell<Option<Id>>,
    register: impl FnOnce() -> Result<Id, RegisterError>,
) -> Option<Id> {
    if let Some(id) = slot.get() {
        return Some(id);
    }
    let id = register().ok()?;
    slot.set(Some(id));
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_lands_in_the_series_of_its_class() {
        let series = HcSeries::default();
        let mut shard = Shard::new();
        for status in [101, 200, 204, 301, 404, 503, 600, 799, 800, 900, 999, 0, 42] {
            let id = series.counter(&mut shard, "hc", Counter::Answered(status));
            shard.inc(id.expect("registered"));
        }
        let aborted = series.counter(&mut shard, "hc", Counter::Aborted);
        shard.inc(aborted.expect("registered"));
        let snapshot = shard.snapshot();
        let count = |class: &str| snapshot.counter(&REQUESTS, &["hc", class]);
        assert_eq!(count("1xx"), Some(1));
        assert_eq!(count("2xx"), Some(2));
        assert_eq!(count("3xx"), Some(1));
        assert_eq!(count("4xx"), Some(1));
        assert_eq!(count("5xx"), Some(1));
        assert_eq!(count("6xx"), Some(1));
        assert_eq!(count("7xx"), Some(1));
        assert_eq!(count("8xx"), Some(1));
        // As `status_class` labels them: 9xx and anything below 100.
        assert_eq!(count("9xx"), Some(4));
        assert_eq!(count("aborted"), Some(1));
    }

    #[test]
    fn a_series_exists_only_once_recorded() {
        let series = HcSeries::default();
        let mut shard = Shard::new();
        series.gauge(&mut shard, "hc", Gauge::StreamsInFlight);
        series.histogram(&mut shard, "hc", Histogram::Rendezvous);
        series.counter(&mut shard, "hc", Counter::Bytes(Direction::ToRelay));
        let snapshot = shard.snapshot();
        assert_eq!(snapshot.gauge(&STREAMS_IN_FLIGHT, &["hc"]), Some(0));
        assert!(snapshot.histogram(&RENDEZVOUS_SECONDS, &["hc"]).is_some());
        assert_eq!(snapshot.counter(&BYTES, &["hc", "to_relay"]), Some(0));
        assert_eq!(snapshot.counter(&BYTES, &["hc", "to_target"]), None);
        assert_eq!(snapshot.gauge(&REQUESTS_IN_FLIGHT, &["hc"]), None);
        assert!(snapshot.histogram(&REQUEST_SECONDS, &["hc"]).is_none());
    }
}
