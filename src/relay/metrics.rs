//! The relay's metric set (docs/metrics.md "Relay metrics"). Each worker owns one
//! [`WorkerMetrics`]: a [`Shard`] whose series — one set per configured hybrid connection, one
//! per [`Refusal`] and per status class — are registered when the relay starts and recorded by
//! id, with no lock and no allocation. The admin endpoint merges the workers' snapshots with
//! the figures it reads at scrape time ([`scrape_time`]: listeners, queues).

use std::time::Duration;

use rustc_hash::FxHashMap;

use super::core::RefusalReason;
use crate::metrics::{CounterId, GaugeId, HistogramId, RegisterError, Shard, Snapshot};

crate::metrics::metric_set! {
    LISTENERS = gauge("hycod_relay_listeners", ["hybrid_connection"],
        "Listener control channels attached now.");
    SENDERS = gauge("hycod_relay_senders", ["hybrid_connection"],
        "Sender WebSocket streams joined to a listener and open now.");
    STREAMS = counter("hycod_relay_streams_total", ["hybrid_connection"],
        "Sender WebSocket streams joined to a listener.");
    REQUESTS = counter("hycod_relay_requests_total", ["status"],
        "Relayed HTTP requests answered to their sender, by status class (1xx..5xx).");
    REFUSALS = counter("hycod_relay_refusals_total", ["reason"],
        "Connections and requests the relay refused itself, by reason.");
    RENDEZVOUS_SECONDS = histogram("hycod_relay_rendezvous_seconds", ["hybrid_connection"],
        "Time from sending a listener accept or request to its rendezvous connection arriving.");
    CONTROL_QUEUE_BYTES = gauge("hycod_relay_control_queue_bytes", [],
        "Bytes queued for listeners' control channels and not yet written.");
    PENDING_REQUESTS = gauge("hycod_relay_pending_requests", [],
        "Relayed HTTP requests waiting for their listener's response.");
    FD_LIMIT = gauge("hycod_relay_fd_limit", [],
        "The soft RLIMIT_NOFILE: descriptors the relay may hold open (compare process_open_fds).");
    ACCEPT_FAILURES = counter("hycod_relay_accept_failures_total", [],
        "Failed accept calls on the main and rendezvous ports (e.g. out of file descriptors).");
    SHED_CONNECTIONS = counter("hycod_relay_shed_connections_total", [],
        "Idle connections closed to free file descriptors for waiting clients.");
}

/// Why the relay refused a connection or request on its own (not a listener's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The path names no configured hybrid connection (404), or a listener asked for a path
    /// below one.
    UnknownHybridConnection,
    /// With `--namespace`: the `Host` names neither the namespace nor an alias (on a
    /// rendezvous: not the rendezvous host) (404).
    UnknownHost,
    /// No token, or one that is malformed, expired or wrongly signed (401).
    Unauthorized,
    /// A valid token without the right the action needs (403).
    MissingRight,
    /// A listener over the hybrid connection's listener quota (403).
    QuotaExceeded,
    /// A sender or request with no listener online.
    NoListener,
    /// No listener answered an `accept` with its rendezvous in time (504).
    ListenerTimeout,
    /// The listener rejected the sender's connect (its status goes to the sender).
    RejectedByListener,
    /// A malformed head, request-target or upgrade (400, 431).
    BadRequest,
    /// The request head did not arrive in time (408).
    HeadTimeout,
    /// A rendezvous with an unknown, expired or used address (403).
    UnknownRendezvous,
    /// Answered `503` with the spare descriptor while out of file descriptors.
    OutOfDescriptors,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Self::UnknownHybridConnection,
        Self::UnknownHost,
        Self::Unauthorized,
        Self::MissingRight,
        Self::QuotaExceeded,
        Self::NoListener,
        Self::ListenerTimeout,
        Self::RejectedByListener,
        Self::BadRequest,
        Self::HeadTimeout,
        Self::UnknownRendezvous,
        Self::OutOfDescriptors,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownHybridConnection => "unknown_hybrid_connection",
            Self::UnknownHost => "unknown_host",
            Self::Unauthorized => "unauthorized",
            Self::MissingRight => "missing_right",
            Self::QuotaExceeded => "quota_exceeded",
            Self::NoListener => "no_listener",
            Self::ListenerTimeout => "listener_timeout",
            Self::RejectedByListener => "rejected_by_listener",
            Self::BadRequest => "bad_request",
            Self::HeadTimeout => "head_timeout",
            Self::UnknownRendezvous => "unknown_rendezvous",
            Self::OutOfDescriptors => "out_of_descriptors",
        }
    }

    /// The `reason` a refusal of the relay core counts under; `None` for a failure that is
    /// counted only by the request's status (timeouts, a listener gone or misbehaving).
    pub fn of(reason: RefusalReason) -> Option<Self> {
        use RefusalReason as R;
        Some(match reason {
            R::BadRequestTarget | R::BadAction | R::BadBody => Self::BadRequest,
            R::UnknownHost => Self::UnknownHost,
            R::EndpointNotFound | R::ListenBelowEntity => Self::UnknownHybridConnection,
            R::TokenInvalid => Self::Unauthorized,
            R::Forbidden => Self::MissingRight,
            R::QuotaExceeded => Self::QuotaExceeded,
            R::NoListener | R::ListenerWentAway => Self::NoListener,
            R::AcceptTimeout => Self::ListenerTimeout,
            R::Rejected | R::InvalidRejection => Self::RejectedByListener,
            R::RendezvousExpired => Self::UnknownRendezvous,
            R::ListenerNotReading
            | R::NoRendezvousId
            | R::ResponseTimeout
            | R::ListenerGone
            | R::RejectionDelivered
            | R::BodyTimeout
            | R::ListenerClosedDuringBody
            | R::NoResponse
            | R::ResponseTooLarge
            | R::BadResponseHeaders => return None,
        })
    }
}

/// The status classes counted by [`REQUESTS`]; anything outside 100..=599 counts as `5xx`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One hybrid connection's series.
struct EntitySeries {
    senders: GaugeId,
    streams: CounterId,
    rendezvous: HistogramId,
}

/// One worker's relay metrics.
pub struct WorkerMetrics {
    shard: Shard,
    /// By configured path spelling (what the relay's entity resolution returns).
    /// By configured path, fixed at start (no peer adds a key): the unseeded `FxHash` serves.
    entities: FxHashMap<String, EntitySeries>,
    /// Indexed by `Refusal as usize` ([`Refusal::ALL`] is in declaration order).
    refusals: Vec<CounterId>,
    /// Indexed like [`STATUS_CLASSES`].
    requests: Vec<CounterId>,
    shed: CounterId,
}

impl WorkerMetrics {
    /// Registers every series of a relay serving `paths`, each at zero.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Self, RegisterError> {
        let mut shard = Shard::new();
        let mut entities = FxHashMap::default();
        for path in paths {
            let series = EntitySeries {
                senders: shard.gauge(&SENDERS, &[path])?,
                streams: shard.counter(&STREAMS, &[path])?,
                rendezvous: shard.histogram(&RENDEZVOUS_SECONDS, &[path])?,
            };
            entities.insert(path.to_owned(), series);
        }
        let mut refusals = Vec::with_capacity(Refusal::ALL.len());
        for refusal in Refusal::ALL {
            refusals.push(shard.counter(&REFUSALS, &[refusal.as_str()])?);
        }
        let mut requests = Vec::with_capacity(STATUS_CLASSES.len());
        for class in STATUS_CLASSES {
            requests.push(shard.counter(&REQUESTS, &[class])?);
        }
        let shed = shard.counter(&SHED_CONNECTIONS, &[])?;
        Ok(Self {
            entities,
            refusals,
            requests,
            shed,
            shard,
        })
    }

    /// Counts a refusal.
    pub fn refused(&mut self, refusal: Refusal) {
        if let Some(id) = self.refusals.get(refusal as usize) {
            self.shard.inc(*id);
        }
    }

    /// Counts a relayed HTTP request answered with `status`.
    pub fn answered(&mut self, status: u16) {
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        if let Some(id) = self.requests.get(class) {
            self.shard.inc(*id);
        }
    }

    /// A sender's stream on `entity` was joined to a listener (`true`) or ended (`false`).
    pub fn sender_joined(&mut self, entity: &str, joined: bool) {
        if let Some(series) = self.entities.get(entity) {
            if joined {
                self.shard.inc(series.streams);
            }
            self.shard
                .gauge_add(series.senders, if joined { 1 } else { -1 });
        }
    }

    /// Records how long a rendezvous on `entity` took to arrive.
    pub fn rendezvous(&mut self, entity: &str, elapsed: Duration) {
        if let Some(series) = self.entities.get(entity) {
            self.shard.observe(series.rendezvous, elapsed);
        }
    }

    /// Counts idle connections shed for want of descriptors.
    pub fn shed(&mut self, count: usize) {
        self.shard
            .inc_by(self.shed, u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// A copy of every series, to merge on the admin endpoint.
    pub fn snapshot(&self) -> Snapshot {
        self.shard.snapshot()
    }
}

/// What the admin endpoint reads itself when scraped (not recorded by the workers).
pub struct ScrapeTime<'a> {
    /// Listeners attached now, by hybrid connection path.
    pub listeners: &'a [(String, usize)],
    pub control_queue_bytes: usize,
    pub pending_requests: usize,
    pub accept_failures: u64,
    /// `None`: unlimited (the series is left out).
    pub fd_limit: Option<u64>,
}

/// The scrape-time figures as a snapshot, to merge with the workers' ones.
pub fn scrape_time(figures: &ScrapeTime<'_>) -> Result<Snapshot, RegisterError> {
    let mut shard = Shard::new();
    for (path, count) in figures.listeners {
        let id = shard.gauge(&LISTENERS, &[path])?;
        shard.gauge_set(id, i64::try_from(*count).unwrap_or(i64::MAX));
    }
    let id = shard.gauge(&CONTROL_QUEUE_BYTES, &[])?;
    shard.gauge_set(
        id,
        i64::try_from(figures.control_queue_bytes).unwrap_or(i64::MAX),
    );
    let id = shard.gauge(&PENDING_REQUESTS, &[])?;
    shard.gauge_set(
        id,
        i64::try_from(figures.pending_requests).unwrap_or(i64::MAX),
    );
    if let Some(limit) = figures.fd_limit {
        let id = shard.gauge(&FD_LIMIT, &[])?;
        shard.gauge_set(id, i64::try_from(limit).unwrap_or(i64::MAX));
    }
    let id = shard.counter(&ACCEPT_FAILURES, &[])?;
    shard.inc_by(id, figures.accept_failures);
    Ok(shard.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_is_valid() {
        for desc in ALL {
            desc.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", desc.name));
        }
    }

    #[test]
    fn every_series_exists_at_zero_from_the_start() {
        let metrics = WorkerMetrics::new(["a", "B"]).expect("registers");
        let snapshot = metrics.snapshot();
        for path in ["a", "B"] {
            assert_eq!(snapshot.gauge(&SENDERS, &[path]), Some(0));
            assert_eq!(snapshot.counter(&STREAMS, &[path]), Some(0));
            assert_eq!(
                snapshot
                    .histogram(&RENDEZVOUS_SECONDS, &[path])
                    .map(|h| h.count()),
                Some(0)
            );
        }
        for refusal in Refusal::ALL {
            assert_eq!(snapshot.counter(&REFUSALS, &[refusal.as_str()]), Some(0));
        }
        for class in STATUS_CLASSES {
            assert_eq!(snapshot.counter(&REQUESTS, &[class]), Some(0));
        }
    }

    #[test]
    fn records_land_in_their_series() {
        let mut metrics = WorkerMetrics::new(["a"]).expect("registers");
        metrics.refused(Refusal::NoListener);
        metrics.refused(Refusal::NoListener);
        metrics.refused(Refusal::Unauthorized);
        metrics.answered(200);
        metrics.answered(204);
        metrics.answered(504);
        metrics.answered(99);
        metrics.answered(999);
        metrics.sender_joined("a", true);
        metrics.sender_joined("a", true);
        metrics.sender_joined("a", false);
        metrics.sender_joined("not configured", true);
        metrics.rendezvous("a", Duration::from_millis(3));
        metrics.shed(4);
        let s = metrics.snapshot();
        assert_eq!(s.counter(&REFUSALS, &["no_listener"]), Some(2));
        assert_eq!(s.counter(&REFUSALS, &["unauthorized"]), Some(1));
        assert_eq!(s.counter(&REQUESTS, &["2xx"]), Some(2));
        assert_eq!(s.counter(&REQUESTS, &["1xx"]), Some(1));
        assert_eq!(s.counter(&REQUESTS, &["5xx"]), Some(2));
        assert_eq!(s.counter(&STREAMS, &["a"]), Some(2));
        assert_eq!(s.gauge(&SENDERS, &["a"]), Some(1));
        let rendezvous = s.histogram(&RENDEZVOUS_SECONDS, &["a"]).expect("series");
        assert_eq!(rendezvous.count(), 1);
        assert_eq!(s.counter(&SHED_CONNECTIONS, &[]), Some(4));
    }

    #[test]
    fn refusals_are_listed_in_declaration_order() {
        for (index, refusal) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(refusal as usize, index, "{refusal:?}");
        }
    }

    #[test]
    fn core_refusals_map_to_their_reasons() {
        use crate::relay::core::RefusalReason as R;
        assert_eq!(Refusal::of(R::TokenInvalid), Some(Refusal::Unauthorized));
        assert_eq!(Refusal::of(R::Forbidden), Some(Refusal::MissingRight));
        assert_eq!(
            Refusal::of(R::ListenBelowEntity),
            Some(Refusal::UnknownHybridConnection)
        );
        assert_eq!(
            Refusal::of(R::InvalidRejection),
            Some(Refusal::RejectedByListener)
        );
        assert_eq!(
            Refusal::of(R::ResponseTimeout),
            None,
            "counted by its status"
        );
        let counted: std::collections::HashSet<_> = R::ALL
            .into_iter()
            .filter_map(Refusal::of)
            .map(|r| r as usize)
            .collect();
        let from_outside = [Refusal::HeadTimeout, Refusal::OutOfDescriptors];
        assert_eq!(
            counted.len() + from_outside.len(),
            Refusal::ALL.len(),
            "every reason but the head reader's and the spare descriptor's comes from the core"
        );
    }
}
