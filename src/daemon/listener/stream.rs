//! Stream mode (protocol §5, architecture §2): an `accept` from a control channel becomes a TCP
//! connection to the hybrid connection's `target`, joined to a rendezvous WebSocket.
//!
//! The target is connected first, so a target that is down reaches the sender as a rejection
//! status (protocol §5.2, §5.4, §8.5) instead of a stream that is accepted and then dropped. Once
//! both sockets are open, [`crate::io::tcp_pump::pump_with`] moves the bytes.
//!
//! `[limits]`: a stream over `max_streams_per_*` is rejected with 503 before
//! anything is connected; the target connect and the rendezvous take at most
//! `handshake_timeout`; the pump gets the stream buffer, frame, message and idle limits. A
//! target connect that fails for want of file descriptors (EMFILE, ENFILE) is rejected with
//! 503 and logged as an error.
//! When the relay side failed, the target connection ends with a reset, not a FIN
//! ([`super::target_reset`]).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::admission::Exceeded;
use super::context::{Hc, HcContext};
use super::hc_series::{Counter, Gauge, Histogram};
use super::target_reset::TargetHandle;
use crate::config::TcpTarget;
use crate::daemon::metrics::STREAMS_REJECTED;
use crate::io::stream::Stream;
use crate::io::tcp_pump::{pump_with, Direction, PumpEnd, PumpSettings};
use crate::io::ws_client::{ClientConn, ConnectError};
use crate::io::ws_reader::ReadError;
use crate::logging::Escaped;
use crate::proto::hc::control_message::ACCEPT;
use crate::proto::hc::json_headers::JsonHeaders;
use crate::proto::hc::messages::Accept;
use crate::proto::hc::reject::reject_url;
use crate::proto::ws::mask_key;
use crate::proto::ws::WsError;

/// The status a delivered rejection is answered with (protocol §5.2).
const REJECTION_DELIVERED: u16 = 410;

/// The `reason` label of a rendezvous that failed after the target was connected.
const RENDEZVOUS_FAILED: &str = "rendezvous_failed";

/// Serves one `accept` (protocol §4.3) to the end: connects the target, then the rendezvous, and
/// pumps until both sides are done; or rejects it with a status the sender sees.
pub async fn serve_accept(hc: Hc, mut accept: Accept) {
    if !hc.rendezvous_allowed(ACCEPT, &accept.address) {
        return;
    }
    if hc.port_targets.is_some() {
        // Boxed: the azbridge path is the rarer one, and its state inline would make every
        // stream's future larger.
        return Box::pin(crate::daemon::azbridge::listener::serve_accept(hc, accept)).await;
    }
    let started = Instant::now();
    let _admitted = match hc.admission.streams.try_enter() {
        Ok(permit) => permit,
        Err(exceeded) => {
            return Box::pin(reject(&hc, &accept, &Refusal::OverLimit(exceeded))).await
        }
    };
    let target = match connect_target(&hc).await.and_then(Target::new) {
        Ok(target) => target,
        Err(refusal) => return Box::pin(reject(&hc, &accept, &refusal)).await,
    };
    let subprotocol = offered_subprotocol(&accept.connect_headers);
    // The rendezvous handshake and the rejections are boxed: a task's future is as large as
    // its largest state, and these states, the largest, last a moment while the pump lasts
    // the stream's life (docs/performance.md "Memory per idle stream").
    let rendezvous = Box::pin(monoio::time::timeout(
        hc.limits.handshake_timeout,
        hc.dialer.connect(&accept.address, &[], subprotocol),
    ))
    .await
    .unwrap_or(Err(ConnectError::Timeout));
    let rendezvous = match rendezvous {
        Ok(conn) => conn,
        Err(ConnectError::Io(error)) if is_out_of_file_descriptors(&error) => {
            // Closing the target frees the descriptor the rejection needs.
            drop(target);
            return Box::pin(reject(&hc, &accept, &Refusal::NoFileDescriptors(error))).await;
        }
        Err(error) => {
            hc.count_labelled(&STREAMS_REJECTED, &[RENDEZVOUS_FAILED], 1);
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), error = %Escaped(&error),
                "stream dropped: the rendezvous could not be opened");
            return;
        }
    };
    hc.observe(Histogram::Rendezvous, started.elapsed());
    let label = target_label(&hc);
    // Only what the pump and its log lines use is held for the stream's life: the relay's
    // answer head and the accept's address and headers are freed before it starts.
    let ClientConn {
        stream, leftover, ..
    } = rendezvous;
    let id = std::mem::take(&mut accept.id);
    drop(accept);
    join(&hc, &id, target, stream, &leftover, &label).await;
}

/// A connected target, wrapped so that the pump dropping its write half sends no FIN: whether
/// the target sees an end of stream or a reset is decided after the pump
/// ([`TargetHandle::finish`]).
pub(crate) struct Target {
    pub stream: Stream,
    pub handle: Option<TargetHandle>,
}

impl Target {
    pub(crate) fn new(tcp: TcpStream) -> Result<Self, Refusal> {
        let handle = TargetHandle::new(&tcp)
            .map_err(|error| tracing::debug!(%error, "no second descriptor of the target socket"))
            .ok();
        let stream = Stream::plain(tcp).map_err(Refusal::Refused)?;
        Ok(Self { stream, handle })
    }
}

/// Joins an open rendezvous (`relay`; `leftover`: its bytes already read) to its connected
/// `target` (`label` names it in the log): counts the stream accepted, pumps until both sides
/// are done, and decides how the target connection ends.
pub(crate) async fn join(
    hc: &HcContext,
    id: &str,
    target: Target,
    relay: Stream,
    leftover: &[u8],
    label: &str,
) {
    let Target {
        stream: target,
        handle,
    } = target;
    hc.count(Counter::StreamsAccepted, 1);
    let _in_flight = InFlight::enter(hc);
    tracing::info!(hybrid_connection = %hc.name, id = %Escaped(id), target = %Escaped(label), "stream accepted");

    let to_target = hc.counter(Counter::Bytes(Direction::ToTarget));
    let to_relay = hc.counter(Counter::Bytes(Direction::ToRelay));
    let on_bytes = |direction: Direction, n: usize| {
        let id = match direction {
            Direction::ToTarget => to_target,
            Direction::ToRelay => to_relay,
        };
        if let Some(id) = id {
            hc.metrics
                .borrow_mut()
                .inc_by(id, u64::try_from(n).unwrap_or(u64::MAX));
        }
    };
    let joined = Instant::now();
    let settings = PumpSettings {
        buffer: hc.limits.stream_buffer / 2,
        limits: hc.limits.websocket(),
        idle_timeout: hc.limits.idle_timeout,
        write_stall_timeout: hc.limits.write_stall_timeout,
        ping_interval: hc.stream_ping_interval,
    };
    let report = pump_with(relay, leftover, target, mask_key, on_bytes, &settings).await;
    if let Some(limit) = exceeded_limit(&report.end) {
        hc.limit_exceeded(limit);
    }
    tracing::info!(hybrid_connection = %hc.name, id = %Escaped(id),
        to_target = report.to_target, to_relay = report.to_relay,
        duration_ms = u64::try_from(joined.elapsed().as_millis()).unwrap_or(u64::MAX),
        end = %report.end, "stream closed");
    if let Some(Err(error)) = handle.map(|h| h.finish(&report.end)) {
        tracing::debug!(hybrid_connection = %hc.name, id = %Escaped(id), error = %Escaped(&error),
            "the target connection could not be reset");
    }
}

/// The `[limits]` key (or `stream_ping_interval`) a pump ended on, if it ended on one.
pub fn exceeded_limit(end: &PumpEnd) -> Option<&'static str> {
    match end {
        PumpEnd::RelayRead(ReadError::Protocol(WsError::FrameTooLarge { .. })) => Some("max_frame"),
        PumpEnd::RelayRead(ReadError::Protocol(WsError::MessageTooLarge { .. })) => {
            Some("max_message")
        }
        PumpEnd::Idle(_) => Some("idle_timeout"),
        PumpEnd::WriteStalled { .. } => Some("write_stall_timeout"),
        PumpEnd::KeepaliveTimeout(_) => Some("stream_ping_interval"),
        _ => None,
    }
}

/// The subprotocol to offer on the rendezvous: the first entry of the sender's
/// `Sec-WebSocket-Protocol`, as .NET and hyco-ws choose by default (protocol §5.1). Extensions are
/// never offered, so the relayed stream carries plain frames.
pub fn offered_subprotocol(connect_headers: &JsonHeaders) -> Option<&str> {
    connect_headers
        .get("Sec-WebSocket-Protocol")?
        .split(',')
        .map(str::trim)
        .find(|protocol| !protocol.is_empty())
}

/// Why a stream is refused before the rendezvous (protocol §5.2, §8.5).
#[derive(Debug)]
pub enum Refusal {
    /// The hybrid connection has no `target`.
    NoTarget,
    /// The target's host name did not resolve to an address.
    Unresolvable(io::Error),
    /// The target refused the connection or could not be reached.
    Refused(io::Error),
    /// The target did not accept within `handshake_timeout`.
    Timeout(Duration),
    /// A stream maximum of `[limits]` is reached.
    OverLimit(Exceeded),
    /// The process has no file descriptor left for the target connection (EMFILE, ENFILE).
    NoFileDescriptors(io::Error),
    /// The `accept` could not be read (a member of the wrong type or missing).
    Unreadable,
}

impl Refusal {
    /// The status the sender's upgrade fails with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoTarget => 501,
            Self::Unresolvable(_) | Self::Refused(_) | Self::Unreadable => 502,
            Self::Timeout(_) => 504,
            Self::OverLimit(_) | Self::NoFileDescriptors(_) => 503,
        }
    }

    /// The reason phrase the sender sees. It names no address: the sender learns that the
    /// target failed, not where it lives.
    pub fn description(&self) -> &'static str {
        match self {
            Self::NoTarget => "No TCP target configured",
            Self::Unresolvable(_) => "TCP target address could not be resolved",
            Self::Refused(_) => "TCP target refused the connection",
            Self::Timeout(_) => "TCP target did not answer in time",
            Self::OverLimit(_) => "Too many streams in flight",
            Self::NoFileDescriptors(_) => "Listener is out of file descriptors",
            Self::Unreadable => "Listener could not read the accept",
        }
    }

    /// The `reason` label of the rejected-streams metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoTarget => "no_target",
            Self::Unresolvable(_) => "target_unresolvable",
            Self::Refused(_) => "target_refused",
            Self::Timeout(_) => "target_timeout",
            Self::OverLimit(exceeded) => exceeded.reason(),
            Self::NoFileDescriptors(_) => "too_many_open_files",
            Self::Unreadable => "unreadable_accept",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTarget => f.write_str("no TCP target is configured"),
            Self::Unresolvable(e) => write!(f, "the TCP target address did not resolve: {e}"),
            Self::Refused(e) => write!(f, "the TCP target could not be connected: {e}"),
            Self::Timeout(after) => write!(
                f,
                "the TCP target did not accept within {} ms",
                after.as_millis()
            ),
            Self::OverLimit(exceeded) => write!(f, "stream limit reached: {exceeded}"),
            Self::NoFileDescriptors(e) => write!(
                f,
                "no file descriptor left for the TCP target connection: {e}"
            ),
            Self::Unreadable => f.write_str("the accept message could not be read"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Connects the hybrid connection's target with `TCP_NODELAY`; records the connect time.
async fn connect_target(hc: &HcContext) -> Result<TcpStream, Refusal> {
    let target = hc.target.as_ref().ok_or(Refusal::NoTarget)?;
    connect_tcp(hc, target).await
}

/// Connects `target` with `TCP_NODELAY` within `handshake_timeout`; records the connect time.
pub(crate) async fn connect_tcp(hc: &HcContext, target: &TcpTarget) -> Result<TcpStream, Refusal> {
    let addr = hc
        .dialer
        .resolver
        .resolve(&target.host, target.port)
        .await
        .map_err(Refusal::Unresolvable)?;
    let started = Instant::now();
    let timeout = hc.limits.handshake_timeout;
    let tcp = monoio::time::timeout(timeout, TcpStream::connect_addr(addr))
        .await
        .map_err(|_| Refusal::Timeout(timeout))?
        .map_err(|e| {
            if is_out_of_file_descriptors(&e) {
                Refusal::NoFileDescriptors(e)
            } else {
                Refusal::Refused(e)
            }
        })?;
    tcp.set_nodelay(true).map_err(Refusal::Refused)?;
    if let Err(error) = crate::io::loopback::bound_receive_buffer(&tcp, addr) {
        tracing::debug!(%addr, %error, "receive buffer not bounded");
    }
    hc.observe(Histogram::TargetConnect, started.elapsed());
    Ok(tcp)
}

/// Whether `error` is EMFILE (this process's descriptor limit) or ENFILE (the system's).
pub fn is_out_of_file_descriptors(error: &io::Error) -> bool {
    let code = error.raw_os_error();
    code == Some(rustix::io::Errno::MFILE.raw_os_error())
        || code == Some(rustix::io::Errno::NFILE.raw_os_error())
}

/// Delivers a rejection through the reject URL (protocol §5.2): the relay answers 410 and fails
/// the sender's upgrade with `refusal`'s status and description.
pub(crate) async fn reject(hc: &HcContext, accept: &Accept, refusal: &Refusal) {
    hc.count_labelled(&STREAMS_REJECTED, &[refusal.reason()], 1);
    let status = refusal.status();
    if let Refusal::NoFileDescriptors(error) = refusal {
        let errno = crate::io::accept_backoff::resource_errno(error).unwrap_or("EMFILE");
        tracing::error!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), target = %target_label(hc),
            status, errno, reason = %refusal,
            "stream rejected: out of file descriptors; raise LimitNOFILE or lower [limits] max_streams_*");
    } else {
        tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), target = %target_label(hc),
            status, reason = %refusal, "stream rejected");
    }
    // Out of descriptors: the rejection's socket takes the spare one (runtime::fd_reserve).
    let spare_released =
        matches!(refusal, Refusal::NoFileDescriptors(_)) && crate::runtime::fd_reserve::release();
    deliver_rejection(hc, accept, refusal).await;
    if spare_released {
        if let Err(error) = crate::runtime::fd_reserve::hold() {
            tracing::debug!(%error, "the spare file descriptor is not free yet");
        }
    }
}

/// Sends `refusal` through the reject URL and checks the relay's 410.
async fn deliver_rejection(hc: &HcContext, accept: &Accept, refusal: &Refusal) {
    if !hc.rendezvous_allowed(ACCEPT, &accept.address) {
        return;
    }
    let status = refusal.status();
    let url = match reject_url(&accept.address, status, refusal.description()) {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), error = %Escaped(&error),
                "rejection not sent: the accept address cannot carry it");
            return;
        }
    };
    let answer = monoio::time::timeout(
        hc.limits.handshake_timeout,
        hc.dialer.connect(&url, &[], None),
    )
    .await
    .unwrap_or(Err(ConnectError::Timeout));
    match answer {
        Err(ConnectError::Rejected { status, .. }) if status == REJECTION_DELIVERED => {}
        Err(error) => {
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), error = %Escaped(&error),
            "rejection not delivered")
        }
        Ok(_) => tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id),
            "the relay opened a socket for a rejection; closed it"),
    }
}

/// The configured target for log lines.
fn target_label(hc: &HcContext) -> String {
    hc.target
        .as_ref()
        .map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Holds one unit of the in-flight gauge; released on drop, also when the task is cancelled.
struct InFlight<'a> {
    hc: &'a HcContext,
}

impl<'a> InFlight<'a> {
    fn enter(hc: &'a HcContext) -> Self {
        hc.gauge_add(Gauge::StreamsInFlight, 1);
        Self { hc }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.hc.gauge_add(Gauge::StreamsInFlight, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::tcp_pump::Side;

    fn headers(protocol: Option<&str>) -> JsonHeaders {
        let mut headers = JsonHeaders::new();
        headers.push("Host", "ns.servicebus.windows.net");
        if let Some(protocol) = protocol {
            headers.push("sec-websocket-protocol", protocol);
        }
        headers
    }

    #[test]
    fn the_default_stream_buffer_is_one_pump_chunk_per_direction() {
        // `[limits] stream_buffer` is split over the two directions; its default matches the
        // pump's own default so a stream from a default configuration pumps like `PumpSettings::default()`.
        assert_eq!(
            crate::config::limits::DEFAULT_STREAM_BUFFER / 2,
            crate::io::tcp_pump::CHUNK
        );
    }

    #[test]
    fn the_first_offered_subprotocol_is_chosen() {
        let h = headers(Some("azbridge, other"));
        assert_eq!(offered_subprotocol(&h), Some("azbridge"));
        let h = headers(Some(" , second ,third"));
        assert_eq!(offered_subprotocol(&h), Some("second"));
    }

    #[test]
    fn no_subprotocol_is_offered_when_the_sender_offered_none() {
        assert_eq!(offered_subprotocol(&headers(None)), None);
        assert_eq!(offered_subprotocol(&headers(Some(" , "))), None);
    }

    #[test]
    fn refusals_map_to_the_status_the_sender_sees() {
        let io = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let cases = [
            (Refusal::NoTarget, 501, "no_target"),
            (Refusal::Unresolvable(io()), 502, "target_unresolvable"),
            (Refusal::Refused(io()), 502, "target_refused"),
            (
                Refusal::Timeout(Duration::from_secs(1)),
                504,
                "target_timeout",
            ),
            (
                Refusal::OverLimit(Exceeded::HybridConnection { max: 1 }),
                503,
                "hybrid_connection_limit",
            ),
            (
                Refusal::OverLimit(Exceeded::Worker { max: 1 }),
                503,
                "worker_limit",
            ),
            (
                Refusal::NoFileDescriptors(io::Error::from_raw_os_error(24)),
                503,
                "too_many_open_files",
            ),
            (Refusal::Unreadable, 502, "unreadable_accept"),
        ];
        for (refusal, status, reason) in cases {
            assert_eq!(
                (refusal.status(), refusal.reason()),
                (status, reason),
                "{refusal}"
            );
            assert!(reject_url(
                "ws://r/$hc/h?sb-hc-action=accept",
                status,
                refusal.description()
            )
            .is_ok());
        }
    }

    #[test]
    fn refusal_descriptions_name_no_address() {
        let refused = Refusal::Refused(io::Error::other("10.0.0.7:3300 refused"));
        assert_eq!(refused.description(), "TCP target refused the connection");
        assert_eq!(
            refused.to_string(),
            "the TCP target could not be connected: 10.0.0.7:3300 refused"
        );
        assert_eq!(
            Refusal::Timeout(Duration::from_secs(10)).to_string(),
            "the TCP target did not accept within 10000 ms"
        );
    }

    #[test]
    fn an_unresolvable_target_is_refused_as_unresolvable() {
        let resolver = crate::io::resolve::Resolver::default();
        let found = crate::runtime::workers::block_on(async move {
            (
                resolver.resolve("no such host", 1).await.is_err(),
                resolver.resolve("[::1]", 3300).await.expect("literal"),
            )
        })
        .expect("runtime");
        assert_eq!(found, (true, "[::1]:3300".parse().expect("addr")));
    }

    #[test]
    fn emfile_and_enfile_are_out_of_file_descriptors() {
        assert!(is_out_of_file_descriptors(&io::Error::from_raw_os_error(
            24
        )));
        assert!(is_out_of_file_descriptors(&io::Error::from_raw_os_error(
            23
        )));
        assert!(!is_out_of_file_descriptors(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }

    #[test]
    fn pump_ends_name_the_limit_they_exceeded() {
        let protocol = |e| PumpEnd::RelayRead(ReadError::Protocol(e));
        assert_eq!(
            exceeded_limit(&protocol(WsError::FrameTooLarge { len: 9, max: 8 })),
            Some("max_frame")
        );
        assert_eq!(
            exceeded_limit(&protocol(WsError::MessageTooLarge { len: 9, max: 8 })),
            Some("max_message")
        );
        assert_eq!(
            exceeded_limit(&PumpEnd::Idle(Duration::from_secs(1))),
            Some("idle_timeout")
        );
        for side in [Side::Target, Side::Relay] {
            assert_eq!(
                exceeded_limit(&PumpEnd::WriteStalled {
                    side,
                    after: Duration::from_secs(1)
                }),
                Some("write_stall_timeout")
            );
        }
        assert_eq!(
            exceeded_limit(&PumpEnd::KeepaliveTimeout(Duration::from_secs(1))),
            Some("stream_ping_interval")
        );
        assert_eq!(exceeded_limit(&PumpEnd::RelayRead(ReadError::Eof)), None);
    }
}
