//! What the tasks serving one hybrid connection on one worker share (architecture §1: every
//! accept and request that arrives on a worker's control channel is served on that worker).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::admission::Admission;
use crate::config::{HttpTarget, Limits, TcpTarget};
use crate::daemon::metrics::{SharedShard, LIMIT_EXCEEDED, RENDEZVOUS_REFUSED};
use crate::io::stream::Stream;
use crate::io::ws_client::Dialer;
use crate::metrics::{CounterId, GaugeId, HistogramId, MetricDesc, RegisterError};
use crate::proto::hc::rendezvous_address::RendezvousPolicy;
use crate::tls::ClientConfig;

/// One hybrid connection as seen by one worker.
pub struct HcContext {
    /// The configured `name` (metric and log label).
    pub name: String,
    /// The hybrid connection path.
    pub entity_path: String,
    /// Where relayed WebSocket streams go.
    pub target: Option<TcpTarget>,
    /// `Some` when the senders are azbridge: its `targets` (port name → target); `target`
    /// takes the other port names.
    pub port_targets: Option<BTreeMap<String, TcpTarget>>,
    /// Where relayed HTTP requests go.
    pub http_target: Option<HttpTarget>,
    /// Opens rendezvous sockets to the relay (same TLS trust and proxy as the control channel).
    pub dialer: Dialer,
    /// Which rendezvous addresses may be dialed (the relay's own domain, `rendezvous_hosts`).
    pub rendezvous: RendezvousPolicy,
    /// `stream_ping_interval`: keep-alive pings on each relayed stream; `None` = off.
    pub stream_ping_interval: Option<Duration>,
    /// TLS trust for an `https` `http_target` (webpki roots).
    pub upstream_tls: Arc<ClientConfig>,
    /// Idle keep-alive connections to `http_target`, most recently used last.
    pub upstream_pool: RefCell<Vec<Stream>>,
    /// Deadline for the whole upstream exchange; the relay gives up at 60 s (protocol §6.8), so a
    /// slower target is answered with 504 by the daemon itself before that.
    pub upstream_deadline: Duration,
    /// `request_buffer`: how much of a rendezvous request body is held to send it with a
    /// `Content-Length` (0 = always stream).
    pub request_buffer: usize,
    /// This worker's metrics.
    pub metrics: SharedShard,
    /// `[limits]` with this hybrid connection's overrides.
    pub limits: Limits,
    /// Admission of streams and requests against the stream and request maxima.
    pub admission: Admission,
}

impl HcContext {
    /// A counter of this hybrid connection with the remaining label values.
    pub fn counter(
        &self,
        desc: &'static MetricDesc,
        rest: &[&str],
    ) -> Result<CounterId, RegisterError> {
        let labels = self.labels(rest);
        self.metrics.borrow_mut().counter(desc, &labels)
    }

    /// A gauge of this hybrid connection.
    pub fn gauge(&self, desc: &'static MetricDesc) -> Result<GaugeId, RegisterError> {
        self.metrics.borrow_mut().gauge(desc, &[self.name.as_str()])
    }

    /// A histogram of this hybrid connection.
    pub fn histogram(&self, desc: &'static MetricDesc) -> Result<HistogramId, RegisterError> {
        self.metrics
            .borrow_mut()
            .histogram(desc, &[self.name.as_str()])
    }

    /// Adds `n` to a counter (registering it on first use).
    pub fn count(&self, desc: &'static MetricDesc, rest: &[&str], n: u64) {
        if let Ok(id) = self.counter(desc, rest) {
            self.metrics.borrow_mut().inc_by(id, n);
        }
    }

    /// Records a duration into a histogram (registering it on first use).
    pub fn observe(&self, desc: &'static MetricDesc, elapsed: Duration) {
        if let Ok(id) = self.histogram(desc) {
            self.metrics.borrow_mut().observe(id, elapsed);
        }
    }

    /// Adds `delta` to a gauge (registering it on first use).
    pub fn gauge_add(&self, desc: &'static MetricDesc, delta: i64) {
        if let Ok(id) = self.gauge(desc) {
            self.metrics.borrow_mut().gauge_add(id, delta);
        }
    }

    /// Whether the rendezvous `address` of a `command` (`accept`, `request`) may be dialed; a
    /// refused one is counted and logged.
    pub fn rendezvous_allowed(&self, command: &str, address: &str) -> bool {
        match self.rendezvous.check(address) {
            Ok(()) => true,
            Err(refused) => {
                self.count(&RENDEZVOUS_REFUSED, &[command, refused.reason()], 1);
                tracing::warn!(hybrid_connection = %self.name, command, reason = %refused,
                    "rendezvous address refused, not dialed");
                false
            }
        }
    }

    /// Counts one piece of work that exceeded `limit` (a `[limits]` key).
    pub fn limit_exceeded(&self, limit: &str) {
        self.count(&LIMIT_EXCEEDED, &[limit], 1);
    }

    /// The label values: this hybrid connection's name, then `rest` (inline, no allocation for
    /// up to four values: recorded once or more per request).
    fn labels<'a>(&'a self, rest: &[&'a str]) -> smallvec::SmallVec<[&'a str; 4]> {
        let mut labels = smallvec::SmallVec::with_capacity(1 + rest.len());
        labels.push(self.name.as_str());
        labels.extend_from_slice(rest);
        labels
    }
}

/// Queues units of pre-encoded (masked) frames for one control channel's writer task. Each
/// unit is written uninterrupted: a `response` and its body can never be split (protocol §4.2).
#[derive(Clone)]
pub struct ControlWriter {
    units: flume::Sender<Vec<u8>>,
}

impl ControlWriter {
    /// A writer and the queue its writer task drains.
    pub fn new() -> (Self, flume::Receiver<Vec<u8>>) {
        let (units, queue) = flume::unbounded();
        (Self { units }, queue)
    }

    /// Queues one unit; false when the channel is gone.
    pub fn send_unit(&self, frames: Vec<u8>) -> bool {
        self.units.send(frames).is_ok()
    }
}

/// Shared handle to a hybrid connection's per-worker context.
pub type Hc = Rc<HcContext>;
