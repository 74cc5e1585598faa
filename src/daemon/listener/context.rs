//! What the tasks serving one hybrid connection on one worker share (architecture §1: every
//! accept and request that arrives on a worker's control channel is served on that worker).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use local_sync::mpsc::unbounded;

use super::admission::Admission;
use super::hc_series::{Counter, Gauge, HcSeries, Histogram};
use super::upstream::IdleConnection;
use crate::config::{HttpTarget, Limits, TcpTarget};
use crate::daemon::metrics::{SharedShard, LIMIT_EXCEEDED, RENDEZVOUS_REFUSED};
use crate::io::ws_client::Dialer;
use crate::metrics::{CounterId, MetricDesc};
use crate::proto::hc::channel::{ChannelError, Outbound};
use crate::proto::hc::rendezvous_address::RendezvousPolicy;
use crate::proto::ws::decode::MAX_CONTROL_FRAME_LEN;
use crate::proto::ws::{fresh_mask_key, CloseCode, DataKind, MAX_HEADER_LEN};
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
    /// Idle keep-alive connections to `http_target` (each with its read buffer), most recently
    /// used last.
    pub upstream_pool: RefCell<Vec<IdleConnection>>,
    /// Deadline for the whole upstream exchange; the relay gives up at 60 s (protocol §6.8), so a
    /// slower target is answered with 504 by the daemon itself before that.
    pub upstream_deadline: Duration,
    /// `request_buffer`: how much of a rendezvous request body is held to send it with a
    /// `Content-Length` (0 = always stream).
    pub request_buffer: usize,
    /// This worker's metrics.
    pub metrics: SharedShard,
    /// The ids of this hybrid connection's series in `metrics`.
    pub series: HcSeries,
    /// `[limits]` with this hybrid connection's overrides.
    pub limits: Limits,
    /// Admission of streams and requests against the stream and request maxima.
    pub admission: Admission,
    /// Set once a control channel of this hybrid connection detached (a drain or a reload
    /// removed it): a request rendezvous is closed after its answer instead of being held
    /// (architecture §3 "Detaching").
    pub detached: Cell<bool>,
}

impl HcContext {
    /// Adds `n` to a counter of the request and stream paths (by id after its first record).
    pub fn count(&self, counter: Counter, n: u64) {
        if let Some(id) = self.counter(counter) {
            self.metrics.borrow_mut().inc_by(id, n);
        }
    }

    /// The id of a counter of the request and stream paths, registering it on first use.
    pub fn counter(&self, counter: Counter) -> Option<CounterId> {
        let mut shard = self.metrics.borrow_mut();
        self.series.counter(&mut shard, &self.name, counter)
    }

    /// Records a duration into a histogram (by id after its first record).
    pub fn observe(&self, histogram: Histogram, elapsed: Duration) {
        let mut shard = self.metrics.borrow_mut();
        if let Some(id) = self.series.histogram(&mut shard, &self.name, histogram) {
            shard.observe(id, elapsed);
        }
    }

    /// Adds `delta` to a gauge (by id after its first record).
    pub fn gauge_add(&self, gauge: Gauge, delta: i64) {
        let mut shard = self.metrics.borrow_mut();
        if let Some(id) = self.series.gauge(&mut shard, &self.name, gauge) {
            shard.gauge_add(id, delta);
        }
    }

    /// Adds `n` to the counter `desc` of this hybrid connection with the remaining label values
    /// `rest`, found by value: for rare events labelled with a reason (refusals, reconnects).
    pub fn count_labelled(&self, desc: &'static MetricDesc, rest: &[&str], n: u64) {
        let labels = self.labels(rest);
        let mut shard = self.metrics.borrow_mut();
        if let Ok(id) = shard.counter(desc, &labels) {
            shard.inc_by(id, n);
        }
    }

    /// Whether the rendezvous `address` of a `command` (`accept`, `request`) may be dialed; a
    /// refused one is counted and logged.
    pub fn rendezvous_allowed(&self, command: &str, address: &str) -> bool {
        match self.rendezvous.check(address) {
            Ok(()) => true,
            Err(refused) => {
                self.count_labelled(&RENDEZVOUS_REFUSED, &[command, refused.reason()], 1);
                tracing::warn!(hybrid_connection = %self.name, command, reason = %refused,
                    "rendezvous address refused, not dialed");
                false
            }
        }
    }

    /// Counts one piece of work that exceeded `limit` (a `[limits]` key).
    pub fn limit_exceeded(&self, limit: &str) {
        self.count_labelled(&LIMIT_EXCEEDED, &[limit], 1);
    }

    /// The label values: this hybrid connection's name, then `rest` (inline, no allocation for
    /// up to four values).
    fn labels<'a>(&'a self, rest: &[&'a str]) -> smallvec::SmallVec<[&'a str; 4]> {
        let mut labels = smallvec::SmallVec::with_capacity(1 + rest.len());
        labels.push(self.name.as_str());
        labels.extend_from_slice(rest);
        labels
    }
}

/// The sending side of one control channel connection: frames are built by the channel's
/// [`Outbound`] (masked, sequenced, nothing after a close) and queued in units for the writer
/// task. Each unit is written uninterrupted: a `response` and its body can never be split
/// (protocol §4.2). Building and queueing happen together, so the queue's order is the order the
/// [`Outbound`] saw, and once a close is queued nothing more is. The writer task runs on the
/// same worker as every sender, so the queue is a single-threaded channel: no lock and no atomic
/// per unit.
#[derive(Clone)]
pub struct ControlWriter {
    units: unbounded::Tx<Vec<u8>>,
    outbound: Rc<RefCell<Outbound>>,
    spare: SpareUnits,
}

/// Buffers of units the writer task has written, for the next units: a `response` and its body
/// are built into one of these instead of a new allocation. At most [`SpareUnits::KEPT`]
/// buffers of at most [`SpareUnits::LARGEST`] bytes each are kept.
#[derive(Clone, Default)]
pub struct SpareUnits(Rc<RefCell<Vec<Vec<u8>>>>);

impl SpareUnits {
    /// How many buffers are kept.
    pub const KEPT: usize = 4;
    /// The largest buffer kept, in bytes of capacity.
    pub const LARGEST: usize = 16 * 1024;

    /// An empty buffer with room for `capacity` bytes: a kept one when there is one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let Some(mut unit) = self.0.borrow_mut().pop() else {
            return Vec::with_capacity(capacity);
        };
        unit.reserve(capacity);
        unit
    }

    /// Keeps `unit`'s buffer (emptied) for a later unit, unless it is too large or enough are
    /// kept.
    pub fn give(&self, mut unit: Vec<u8>) {
        let mut spare = self.0.borrow_mut();
        if unit.capacity() <= Self::LARGEST && spare.len() < Self::KEPT {
            unit.clear();
            spare.push(unit);
        }
    }
}

/// The receiving end of a [`ControlWriter`]'s queue.
pub type ControlQueue = unbounded::Rx<Vec<u8>>;

impl ControlWriter {
    /// A writer and the queue its writer task drains.
    pub fn new() -> (Self, ControlQueue) {
        let (units, queue) = unbounded::channel();
        let outbound = Rc::new(RefCell::new(Outbound::client(fresh_mask_key)));
        let spare = SpareUnits::default();
        (
            Self {
                units,
                outbound,
                spare,
            },
            queue,
        )
    }

    /// Where the writer task gives back the buffers of written units.
    pub fn spare_units(&self) -> &SpareUnits {
        &self.spare
    }

    /// The channel's sending side, which its reader also drives (pongs, the peer's close).
    pub fn outbound(&self) -> &Rc<RefCell<Outbound>> {
        &self.outbound
    }

    /// Builds one unit (of about `capacity` bytes) with the channel's [`Outbound`] and queues
    /// it whole.
    pub fn send_with(
        &self,
        capacity: usize,
        build: impl FnOnce(&mut Outbound, &mut Vec<u8>) -> Result<(), ChannelError>,
    ) -> Result<(), ChannelError> {
        let mut unit = self.spare.take(capacity);
        build(&mut self.outbound.borrow_mut(), &mut unit)?;
        self.units
            .send(unit)
            .map_err(|_| ChannelError::SendAfterClose)
    }

    /// Queues one control message (a text message); false when the channel is closed or gone.
    pub fn send_text(&self, json: &[u8]) -> bool {
        self.send_with(json.len() + MAX_HEADER_LEN, |out, unit| {
            out.message(unit, DataKind::Text, json)
        })
        .is_ok()
    }

    /// Whether units may still be queued: false once this side's close was built (the channel
    /// is detaching or closed) or the relay's close was answered.
    pub fn is_open(&self) -> bool {
        self.outbound.borrow().check_open().is_ok()
    }

    /// Queues frames the channel's [`Outbound`] built (a pong) while the channel is open.
    pub fn send_built(&self, frames: Vec<u8>) -> bool {
        !frames.is_empty()
            && self.outbound.borrow().check_open().is_ok()
            && self.units.send(frames).is_ok()
    }

    /// Queues this side's close frame; nothing is queued after it. False when a close was
    /// already queued or the channel is gone.
    pub fn send_close(&self, code: CloseCode, reason: &str) -> bool {
        self.send_with(MAX_CONTROL_FRAME_LEN, |out, unit| {
            out.close(unit, code, reason)
        })
        .is_ok()
    }

    /// This side's close frame, for the writer task to write after the queue; `None` when a
    /// close was already built.
    pub fn close_frame(&self, code: CloseCode, reason: &str) -> Option<Vec<u8>> {
        let mut frame = Vec::with_capacity(MAX_CONTROL_FRAME_LEN);
        self.outbound
            .borrow_mut()
            .close(&mut frame, code, reason)
            .ok()?;
        Some(frame)
    }
}

/// Shared handle to a hybrid connection's per-worker context.
pub type Hc = Rc<HcContext>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SpareUnits;

    #[test]
    fn spare_units_are_given_back_empty_and_only_while_few_and_small() {
        let spare = SpareUnits::default();
        let fresh = spare.take(100);
        assert!(fresh.is_empty() && fresh.capacity() >= 100);
        let mut written = Vec::with_capacity(2000);
        written.extend_from_slice(b"frames");
        let at = written.as_ptr();
        spare.give(written);
        let reused = spare.take(10);
        assert_eq!(
            (reused.as_ptr(), reused.len()),
            (at, 0),
            "the same buffer, emptied"
        );
        assert!(spare.take(3000).capacity() >= 3000, "a buffer made anew");
        spare.give(Vec::with_capacity(SpareUnits::LARGEST + 1));
        assert_eq!(spare.0.borrow().len(), 0, "too large to keep");
        for _ in 0..=SpareUnits::KEPT {
            spare.give(Vec::with_capacity(8));
        }
        assert_eq!(spare.0.borrow().len(), SpareUnits::KEPT);
        let grown = spare.take(SpareUnits::LARGEST);
        assert!(grown.is_empty() && grown.capacity() >= SpareUnits::LARGEST);
    }

    use super::super::hc_series::{Counter, Gauge, Histogram};
    use crate::daemon::metrics::{BYTES, REQUESTS, REQUESTS_IN_FLIGHT, REQUEST_SECONDS};
    use crate::daemon::test_support::context;
    use crate::io::tcp_pump::Direction;

    /// What the relayed-request path records for one request.
    fn record_one_request(hc: &super::HcContext) {
        hc.gauge_add(Gauge::RequestsInFlight, 1);
        hc.observe(Histogram::TargetFirstByte, Duration::from_micros(300));
        hc.count(Counter::Answered(200), 1);
        hc.observe(Histogram::Request, Duration::from_micros(900));
        hc.count(Counter::Bytes(Direction::ToTarget), 1024);
        hc.count(Counter::Bytes(Direction::ToRelay), 20);
        hc.gauge_add(Gauge::RequestsInFlight, -1);
    }

    #[test]
    fn a_request_after_the_first_records_by_id_without_a_lookup() {
        let hc = context(None);
        record_one_request(&hc);
        let after_first = hc.metrics.borrow().lookups();
        for _ in 0..3 {
            record_one_request(&hc);
        }
        assert_eq!(hc.metrics.borrow().lookups(), after_first);
        let snapshot = hc.metrics.borrow().snapshot();
        assert_eq!(snapshot.counter(&REQUESTS, &["test", "2xx"]), Some(4));
        assert_eq!(snapshot.counter(&BYTES, &["test", "to_target"]), Some(4096));
        assert_eq!(snapshot.gauge(&REQUESTS_IN_FLIGHT, &["test"]), Some(0));
        let latency = snapshot
            .histogram(&REQUEST_SECONDS, &["test"])
            .expect("histogram");
        assert_eq!(latency.count(), 4);
    }
}
