//! Running the senders on one monoio runtime on the calling thread: first the relayed HTTP
//! requests, [`HTTP_CONNECTIONS`] keep-alive connections in parallel, then the streams,
//! [`STREAM_PARALLEL`] at a time. Every latency goes into a [`LatencyHistogram`]. The first
//! failure stops further sending (what is in flight completes), so a broken path ends the demo
//! within one timeout instead of one timeout per request.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::credentials::sender_token;
use super::error::DemoError;
use super::http_sender::{self, RequestFailure};
use super::setup::{HTTP_HC, STREAM_HC};
use super::stream_sender::{self, StreamFailure};
use super::workload::{self, Planned, Workload, STREAM_MESSAGE_SIZES};
use crate::io::ws_client::Dialer;
use crate::metrics::LatencyHistogram;
use crate::secret::Secret;
use crate::tls::{client_config, TrustRoots};

/// Keep-alive connections sending HTTP requests at the same time.
pub(crate) const HTTP_CONNECTIONS: usize = 4;

/// Streams open at the same time.
pub(crate) const STREAM_PARALLEL: usize = 4;

/// How long a sender waits for a response, or for each stage of a stream. Longer than the
/// relay's deadline, so a listener that does not answer shows as the relay's 504.
pub(crate) const SENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Lifetime of the senders' tokens.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Failures kept for the report (the rest are only counted).
pub(crate) const FAILURES_SHOWN: usize = 5;

/// What to send, and where.
pub(crate) struct TrafficPlan {
    /// The relay's main address (HTTP senders connect here).
    pub relay: SocketAddr,
    /// `ws://ADDR` (stream senders connect here).
    pub relay_url: String,
    pub key: Secret,
    pub requests: usize,
    pub streams: usize,
    /// When the tokens start to count.
    pub now: SystemTime,
}

/// One failed request or stream.
#[derive(Debug)]
pub enum Failure {
    Request {
        index: usize,
        method: &'static str,
        target: String,
        failure: RequestFailure,
    },
    Stream {
        index: usize,
        failure: StreamFailure,
    },
}

impl Failure {
    fn index(&self) -> usize {
        match self {
            Self::Request { index, .. } | Self::Stream { index, .. } => *index,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request {
                index,
                method,
                target,
                failure,
            } => write!(f, "request #{index} {method} {target}: {failure}"),
            Self::Stream { index, failure } => write!(f, "stream #{index}: {failure}"),
        }
    }
}

/// The first failures (by index) and how many there were.
#[derive(Debug, Default)]
pub struct Failures {
    pub shown: Vec<Failure>,
    pub count: usize,
}

impl Failures {
    /// Counts a failure, keeping it if it is among the first by index.
    pub fn push(&mut self, failure: Failure) {
        self.count += 1;
        self.shown.push(failure);
        self.shown.sort_by_key(Failure::index);
        self.shown.truncate(FAILURES_SHOWN);
    }

    fn merge(&mut self, other: Failures) {
        let only_counted = other.count - other.shown.len();
        for failure in other.shown {
            self.push(failure);
        }
        self.count += only_counted;
    }
}

/// What the HTTP senders did.
#[derive(Debug, Default)]
pub struct HttpResults {
    pub planned: usize,
    /// Requests sent (fewer than planned after a failure).
    pub sent: usize,
    /// Of those, how many had bodies over 64 KiB (rendezvous path).
    pub large: usize,
    pub connections: usize,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, usize>,
    /// Whole-request latency as the sender sees it, for every response received.
    pub latency: LatencyHistogram,
    pub elapsed: Duration,
    pub failures: Failures,
}

impl HttpResults {
    fn merge(&mut self, lane: HttpResults) {
        self.sent += lane.sent;
        self.large += lane.large;
        for (status, n) in lane.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.latency.add(&lane.latency);
        self.failures.merge(lane.failures);
    }
}

/// What the stream senders did.
#[derive(Debug, Default)]
pub struct StreamResults {
    pub planned: usize,
    /// Streams that echoed everything and closed cleanly.
    pub completed: usize,
    /// Bytes that came back and matched.
    pub bytes_verified: usize,
    /// Time to open a stream (sender connect until 101, through relay and daemon).
    pub open_latency: LatencyHistogram,
    pub elapsed: Duration,
    pub failures: Failures,
}

impl StreamResults {
    fn merge(&mut self, lane: StreamResults) {
        self.completed += lane.completed;
        self.bytes_verified += lane.bytes_verified;
        self.open_latency.add(&lane.open_latency);
        self.failures.merge(lane.failures);
    }
}

/// Everything the senders did.
#[derive(Debug, Default)]
pub struct TrafficResults {
    pub http: HttpResults,
    pub streams: StreamResults,
}

impl TrafficResults {
    /// Whether every request and stream succeeded.
    pub fn passed(&self) -> bool {
        self.http.failures.count == 0
            && self.streams.failures.count == 0
            && self.http.sent == self.http.planned
            && self.streams.completed == self.streams.planned
    }
}

/// Sends everything in `plan`; returns when all senders are done.
pub(crate) fn run(plan: &TrafficPlan) -> Result<TrafficResults, DemoError> {
    let tls = client_config(&TrustRoots::WebPki).map_err(DemoError::SenderTls)?;
    let dialer = Dialer {
        tls,
        proxy: None,
        connect_timeout: SENDER_TIMEOUT,
        resolver: Default::default(),
    };
    crate::runtime::workers::block_on(async {
        let stop = Rc::new(Cell::new(false));
        let http = run_http(plan, stop.clone()).await;
        let streams = run_streams(plan, &dialer, stop).await;
        TrafficResults { http, streams }
    })
    .map_err(DemoError::SenderRuntime)
}

async fn run_http(plan: &TrafficPlan, stop: Rc<Cell<bool>>) -> HttpResults {
    let lanes = HTTP_CONNECTIONS.min(plan.requests);
    let token = Rc::new(sender_token(&plan.key, HTTP_HC, plan.now, TOKEN_TTL));
    let workload = Rc::new(Workload::new());
    let started = Instant::now();
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let indices = (lane..plan.requests).step_by(lanes);
            monoio::spawn(http_lane(
                indices,
                workload.clone(),
                plan.relay,
                token.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut results = HttpResults {
        planned: plan.requests,
        connections: lanes,
        ..HttpResults::default()
    };
    for task in tasks {
        results.merge(task.await);
    }
    results.elapsed = started.elapsed();
    results
}

async fn http_lane(
    indices: impl Iterator<Item = usize>,
    workload: Rc<Workload>,
    relay: SocketAddr,
    token: Rc<Secret>,
    stop: Rc<Cell<bool>>,
) -> HttpResults {
    let mut results = HttpResults::default();
    let mut connection = None;
    for index in indices {
        if stop.get() {
            break;
        }
        let Planned { request, expected } = workload.planned(index);
        let outcome = http_sender::send(
            &mut connection,
            relay,
            &request,
            &expected,
            HTTP_HC,
            &token,
            SENDER_TIMEOUT,
        )
        .await;
        results.sent += 1;
        results.large += usize::from(request.is_large());
        if let Some(status) = outcome.status {
            *results.statuses.entry(status).or_default() += 1;
            results.latency.record(outcome.latency);
        }
        if let Err(failure) = outcome.result {
            stop.set(true);
            results.failures.push(Failure::Request {
                index,
                method: request.method,
                target: request.sender_target(HTTP_HC),
                failure,
            });
        }
    }
    results
}

async fn run_streams(plan: &TrafficPlan, dialer: &Dialer, stop: Rc<Cell<bool>>) -> StreamResults {
    let lanes = STREAM_PARALLEL.min(plan.streams);
    let token = Rc::new(sender_token(&plan.key, STREAM_HC, plan.now, TOKEN_TTL));
    let started = Instant::now();
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let indices = (lane..plan.streams).step_by(lanes);
            monoio::spawn(stream_lane(
                indices,
                dialer.clone(),
                plan.relay_url.clone(),
                token.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut results = StreamResults {
        planned: plan.streams,
        ..StreamResults::default()
    };
    for task in tasks {
        results.merge(task.await);
    }
    results.elapsed = started.elapsed();
    results
}

async fn stream_lane(
    indices: impl Iterator<Item = usize>,
    dialer: Dialer,
    relay_url: String,
    token: Rc<Secret>,
    stop: Rc<Cell<bool>>,
) -> StreamResults {
    let mut results = StreamResults::default();
    for index in indices {
        if stop.get() {
            break;
        }
        let url = stream_sender::connect_url(&relay_url, STREAM_HC, &format!("demo-{index}"));
        let payload = workload::stream_payload(index);
        let outcome = stream_sender::run(
            &dialer,
            &url,
            &token,
            &payload,
            &STREAM_MESSAGE_SIZES,
            SENDER_TIMEOUT,
        )
        .await;
        match outcome {
            Ok(stats) => {
                results.completed += 1;
                results.bytes_verified += stats.bytes;
                results.open_latency.record(stats.open);
            }
            Err(failure) => {
                stop.set(true);
                results.failures.push(Failure::Stream { index, failure });
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_failure(index: usize) -> Failure {
        Failure::Stream {
            index,
            failure: StreamFailure::EchoTooLong { sent: 1 },
        }
    }

    #[test]
    fn failures_keep_the_first_few_by_index_and_count_all() {
        let mut a = Failures::default();
        for index in [9, 3, 7, 1, 5, 11] {
            a.push(stream_failure(index));
        }
        assert_eq!(a.count, 6);
        let mut b = Failures::default();
        for index in [0, 2, 4, 6, 8, 10, 12] {
            b.push(stream_failure(index));
        }
        a.merge(b);
        assert_eq!(a.count, 13);
        let shown: Vec<usize> = a.shown.iter().map(Failure::index).collect();
        assert_eq!(shown, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn failures_name_the_request_and_the_rule() {
        let failure = Failure::Request {
            index: 17,
            method: "POST",
            target: "/erp-api/api/bapi".into(),
            failure: RequestFailure::Status {
                expected: 200,
                got: 502,
            },
        };
        assert_eq!(
            failure.to_string(),
            "request #17 POST /erp-api/api/bapi: status 502, expected 200"
        );
    }

    #[test]
    fn a_run_passes_only_when_everything_planned_succeeded() {
        let mut results = TrafficResults::default();
        assert!(results.passed());
        results.http.planned = 2;
        results.http.sent = 1;
        assert!(!results.passed(), "a request was not sent");
        results.http.sent = 2;
        assert!(results.passed());
        results.streams.planned = 1;
        assert!(!results.passed(), "a stream did not complete");
        results.streams.completed = 1;
        results.streams.failures.push(stream_failure(0));
        assert!(!results.passed(), "a stream failed");
    }
}
