//! The driver of one listener control channel (architecture §3, protocol §4, Appendix B): it
//! executes what the sans-I/O [`ListenerMachine`] decides — connect, ping, renew, reconnect — and
//! dispatches `accept` and `request` messages to tasks on this worker.
//!
//! Stopping a channel (drain, or its hybrid connection removed or replaced by a reload) detaches
//! it at once (architecture §3 "Detaching"): its Close goes out after what is queued, so the relay
//! stops sending it work; the requests that came on it and are still being served answer through
//! their rendezvous `address` instead (protocol §6.5), and what the relay sent before it saw the
//! Close is still read and served until the relay's own Close arrives.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use local_sync::oneshot;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};

use super::context::{ControlQueue, ControlWriter, Hc, SpareUnits};
use super::hc_series::{Gauge, Histogram};
use super::{http, overload, stream, unreadable};
use crate::auth::connection_string::Credential;
use crate::auth::sas::parse_token;
use crate::daemon::metrics::{RECONNECTS, TOKEN_RENEWALS};
use crate::daemon::process::status::ChannelStatus;
use crate::daemon::tracker::Tracker;
use crate::io::coalesce::{coalesce, COALESCE_LIMIT};
use crate::io::stream::Stream;
use crate::io::ws_client::ConnectError;
use crate::io::ws_reader::{ReadError, WsReader, DEFAULT_READ_BUFFER};
use crate::logging::Escaped;
use crate::proto::hc::channel::{reply_code, ChannelError, Inbound, Outbound, Received};
use crate::proto::hc::control_message::ControlMessage;
use crate::proto::hc::identity::{CLIENT_AGENT, RELAY_USER_AGENT};
use crate::proto::hc::listener::{
    Action, ConnectFailure, ListenerConfig, ListenerMachine, TokenValidity,
};
use crate::proto::hc::messages::RenewToken;
use crate::proto::hc::received_request::{parse_daemon_message, DaemonMessage, ReceivedRequest};
use crate::proto::ws::{CloseCode, Limits, Role, MAX_HEADER_LEN};
use crate::proxy::ProxyError;
use crate::secret::Secret;

/// The largest request body the control channel may carry (protocol §6.1, §9).
const CONTROL_BODY_LIMIT: usize = 64 * 1024;

/// What one control channel needs besides its hybrid connection's context.
pub(crate) struct ChannelSpec {
    /// `wss://{namespace}` or the self-hosted `relay_url`, without a trailing `/`.
    pub relay_base: String,
    /// The namespace host tokens are scoped to.
    pub namespace_host: String,
    pub credential: Credential,
    pub token_ttl: Duration,
    /// This channel's tracking id (`sb-hc-id`), kept across reconnects (protocol §4.9).
    pub tracking_id: String,
    pub listener: ListenerConfig,
    /// The worker's streams and requests in flight (a drain waits for them).
    pub work: Tracker,
}

/// How long a stopping channel waits for the relay's Close after sending its own, and for its
/// close frame to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token for the control channel and how long it is valid (protocol §3.3, §8.4).
fn token(spec: &ChannelSpec, entity: &str, now: Instant) -> (Secret, TokenValidity) {
    let minted_expiry = unix_now() + spec.token_ttl.as_secs();
    let token = spec
        .credential
        .token(&spec.namespace_host, entity, minted_expiry);
    let validity = match &spec.credential {
        Credential::KeyPair { .. } => TokenValidity::minted(now, spec.token_ttl),
        Credential::Signature(fixed) => {
            let expiry = parse_token(fixed.expose()).map_or(0, |t| t.expiry());
            TokenValidity::fixed_at_unix(now, unix_now(), expiry)
        }
    };
    (token, validity)
}

/// The wall-clock time of a monotonic `at` (for the status page).
fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    let moved = match at.checked_duration_since(now) {
        Some(ahead) => wall.checked_add(ahead),
        None => wall.checked_sub(now.saturating_duration_since(at)),
    };
    moved.unwrap_or(wall)
}

/// What the reader task of connection number `.0` tells the driver: the relay closed the
/// channel (with this code) or the connection broke (None).
struct ReaderEnd(u64, Option<u16>);

/// Stops the reader and writer tasks of one connection when dropped: each task awaits its own
/// receiver, which completes (with an error, nothing is ever sent) once its sender is gone.
/// Single-threaded oneshots: the tasks poll their receiver at every event and unit, and a poll
/// is a state check, not a lock.
struct StopSignal {
    _reader: oneshot::Sender<()>,
    _writer: oneshot::Sender<()>,
}

/// The receivers of a [`StopSignal`], for the reader and the writer task.
type StopReceivers = (oneshot::Receiver<()>, oneshot::Receiver<()>);

impl StopSignal {
    fn new() -> (Self, StopReceivers) {
        let (reader, reader_stopped) = oneshot::channel();
        let (writer, writer_stopped) = oneshot::channel();
        let signal = Self {
            _reader: reader,
            _writer: writer,
        };
        (signal, (reader_stopped, writer_stopped))
    }
}

/// One live connection: its writer queue and the signal that stops its tasks.
struct Live {
    writer: ControlWriter,
    stop: StopSignal,
    written: monoio::task::JoinHandle<()>,
}

impl Live {
    /// Stops the reader, lets the writer flush what is queued and send its close frame.
    async fn close(self) {
        drop(self.stop);
        let _ = monoio::time::timeout(CLOSE_TIMEOUT, self.written).await;
    }
}

/// What the reader needs to hand out work: where to count it.
#[derive(Clone)]
struct Dispatch {
    /// The worker's streams and requests.
    work: Tracker,
}

impl Dispatch {
    /// Spawns a request's task, counted as work. `future` holds the request's state machine
    /// boxed ([`serve_request`]): a request's state is several KiB, and unboxed the task and the
    /// tracker would each move it whole (docs/performance.md "Optimisations").
    fn spawn_request(&self, future: impl Future<Output = ()> + 'static) {
        monoio::spawn(self.work.track(future));
    }
}

/// Keeps one control channel online until `shutdown` fires (never gives up, protocol §4.9).
pub(crate) async fn run(
    hc: Hc,
    spec: ChannelSpec,
    status: ChannelStatus,
    shutdown: flume::Receiver<()>,
) {
    let rng = fastrand::Rng::new();
    let Ok(mut machine) = ListenerMachine::new(spec.listener, rng, Instant::now()) else {
        tracing::error!(hybrid_connection = %hc.name, "invalid listener timing configuration");
        return;
    };
    let last_inbound = Rc::new(Cell::new(Instant::now()));
    let dispatch = Dispatch {
        work: spec.work.clone(),
    };
    let (ended_tx, ended) = flume::unbounded::<ReaderEnd>();
    let mut live: Option<Live> = None;
    let mut generation = 0u64;
    loop {
        machine.on_inbound_traffic(last_inbound.get());
        let now = Instant::now();
        while let Some(action) = machine.poll_action(now) {
            match action {
                Action::Connect => {
                    live = None;
                    generation += 1;
                    let started = Instant::now();
                    let reader = (&last_inbound, &ended_tx, generation, &dispatch);
                    let attempt = connect(&hc, &spec, reader);
                    let outcome = monoio::select! {
                        outcome = monoio::time::timeout(spec.listener.connect_timeout, attempt) => outcome,
                        _ = shutdown.recv_async() => {
                            machine.shutdown();
                            status.set_online(false);
                            return;
                        }
                    };
                    // A connect that outlives the timeout is abandoned; the machine reports it
                    // as `connect_timeout` on the next poll.
                    let Ok(outcome) = outcome else { break };
                    match outcome {
                        Ok((new_live, validity)) => {
                            hc.observe(Histogram::ControlConnect, started.elapsed());
                            status.token_expires(wall_clock(validity.expires_at()));
                            machine.on_connected(Instant::now(), validity);
                            last_inbound.set(Instant::now());
                            live = Some(new_live);
                            status.set_online(true);
                            hc.gauge_add(Gauge::ListenerOnline, 1);
                            tracing::info!(hybrid_connection = %hc.name, tracking_id = %spec.tracking_id, "listener online");
                        }
                        Err(e) => {
                            let failure = match &e {
                                ConnectError::Rejected { status, .. } => {
                                    ConnectFailure::Status(*status)
                                }
                                ConnectError::Handshake(_) => ConnectFailure::Handshake,
                                ConnectError::Proxy(ProxyError::AuthenticationRequired {
                                    ..
                                }) => ConnectFailure::ProxyAuth,
                                _ => ConnectFailure::Io,
                            };
                            tracing::warn!(hybrid_connection = %hc.name, error = %Escaped(&e), "control channel connect failed");
                            status.connect_failed(&Escaped(&e).to_string());
                            machine.on_connect_failed(Instant::now(), failure);
                        }
                    }
                }
                Action::SendPing => {
                    if let Some(l) = &live {
                        let _ = l
                            .writer
                            .send_with(MAX_HEADER_LEN, |out, unit| out.ping(unit));
                    }
                }
                Action::RenewToken => {
                    let (fresh, validity) = token(&spec, &hc.entity_path, Instant::now());
                    let sent = live.as_ref().is_some_and(|l| {
                        let json = RenewToken { token: fresh }.to_json();
                        l.writer.send_text(json.expose().as_bytes())
                    });
                    let result = if sent { "sent" } else { "failed" };
                    hc.count_labelled(&TOKEN_RENEWALS, &[result], 1);
                    if sent {
                        status.token_expires(wall_clock(validity.expires_at()));
                        machine.on_renew_sent(validity);
                        tracing::info!(hybrid_connection = %hc.name, "token renewed on the live channel");
                    }
                }
                Action::Reconnect { reason, retry_in } => {
                    if live.take().is_some() {
                        hc.gauge_add(Gauge::ListenerOnline, -1);
                    }
                    status.set_online(false);
                    hc.count_labelled(&RECONNECTS, &[reason.as_str()], 1);
                    tracing::warn!(hybrid_connection = %hc.name, reason = reason.as_str(), retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX), "listener offline, reconnecting");
                }
            }
        }
        let wait = machine
            .next_deadline()
            .map_or(Duration::from_secs(60), |d| {
                d.saturating_duration_since(Instant::now())
            });
        monoio::select! {
            _ = monoio::time::sleep(wait) => {}
            end = ended.recv_async() => {
                if let Ok(ReaderEnd(ended_generation, code)) = end {
                    if live.is_some() && ended_generation == generation {
                        machine.on_closed(Instant::now(), code);
                    }
                }
            }
            _ = shutdown.recv_async() => {
                machine.shutdown();
                status.set_online(false);
                if let Some(live) = live.take() {
                    hc.gauge_add(Gauge::ListenerOnline, -1);
                    stop(&hc, &spec, live, (&ended, generation)).await;
                }
                return;
            }
        }
    }
}

/// Detaches a live channel that was told to stop (architecture §3 "Detaching"): queues its
/// Close, which makes every later answer of a request that came on it go through the request's
/// rendezvous ([`ControlWriter::is_open`]); serves what the relay sent before it saw the Close
/// until the relay's Close arrives (at most [`CLOSE_TIMEOUT`]); then ends its tasks.
async fn stop(
    hc: &Hc,
    spec: &ChannelSpec,
    live: Live,
    (ended, generation): (&flume::Receiver<ReaderEnd>, u64),
) {
    hc.detached.set(true);
    live.writer.send_close(CloseCode::NORMAL, "");
    let reader_ended = async {
        while let Ok(ReaderEnd(ended_generation, _)) = ended.recv_async().await {
            if ended_generation == generation {
                break;
            }
        }
    };
    let _ = monoio::time::timeout(CLOSE_TIMEOUT, reader_ended).await;
    live.close().await;
    tracing::info!(hybrid_connection = %hc.name, tracking_id = %spec.tracking_id,
        reason = "stopped", "listener offline");
}

/// The reader's share of the driver: its activity clock, where it reports its end (with its
/// connection number), and how it hands out work.
type ReaderLinks<'a> = (
    &'a Rc<Cell<Instant>>,
    &'a flume::Sender<ReaderEnd>,
    u64,
    &'a Dispatch,
);

/// Opens the control channel and starts its reader and writer tasks.
async fn connect(
    hc: &Hc,
    spec: &ChannelSpec,
    (last_inbound, ended, generation, dispatch): ReaderLinks<'_>,
) -> Result<(Live, TokenValidity), ConnectError> {
    let (token, validity) = token(spec, &hc.entity_path, Instant::now());
    let url = format!(
        "{}/$hc/{}?sb-hc-action=listen&sb-hc-id={}",
        spec.relay_base, hc.entity_path, spec.tracking_id
    );
    let conn = hc
        .dialer
        .connect(
            &url,
            &[
                ("ServiceBusAuthorization", token.expose()),
                (RELAY_USER_AGENT, CLIENT_AGENT),
            ],
            None,
        )
        .await?;
    let (read, write) = conn.stream.into_split();
    let (writer, queue) = ControlWriter::new();
    let (stop_tx, (reader_stop, writer_stop)) = StopSignal::new();
    let outbound = writer.outbound().clone();
    let spare = writer.spare_units().clone();
    let written = monoio::spawn(write_loop(write, (queue, spare), writer_stop, outbound));
    let reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        DEFAULT_READ_BUFFER,
    );
    monoio::spawn(read_loop(
        hc.clone(),
        reader,
        writer.clone(),
        last_inbound.clone(),
        (ended.clone(), generation),
        dispatch.clone(),
        reader_stop,
    ));
    Ok((
        Live {
            writer,
            stop: stop_tx,
            written,
        },
        validity,
    ))
}

/// Writes queued units until the channel is replaced or stopped, giving their buffers back to
/// `spare`; then writes what is still queued (answers of finished requests) and closes it
/// (1000) unless a close went out already.
async fn write_loop(
    mut write: OwnedWriteHalf<Stream>,
    (mut queue, spare): (ControlQueue, SpareUnits),
    mut stopped: oneshot::Receiver<()>,
    outbound: Rc<RefCell<Outbound>>,
) {
    loop {
        let unit = monoio::select! {
            unit = queue.recv() => unit,
            _ = &mut stopped => break,
        };
        let Some(unit) = unit else { break };
        let batch = coalesce(unit, COALESCE_LIMIT, || queue.try_recv().ok());
        let (written, batch) = write.write_all(batch).await;
        if written.is_err() {
            return;
        }
        spare.give(batch);
    }
    while let Ok(unit) = queue.try_recv() {
        if write.write_all(unit).await.0.is_err() {
            return;
        }
    }
    let mut close = Vec::new();
    let closed = outbound
        .borrow_mut()
        .close(&mut close, CloseCode::NORMAL, "");
    if closed.is_ok() {
        let _ = write.write_all(close).await;
    }
    let _ = write.shutdown().await;
}

/// Reads the channel through its [`Inbound`]: dispatches work, answers pings, answers the
/// relay's close, fails the channel on a broken rule (an oversized control message: 1009, and
/// counted as unusable), and reports the end.
async fn read_loop(
    hc: Hc,
    mut reader: WsReader<OwnedReadHalf<Stream>>,
    writer: ControlWriter,
    last_inbound: Rc<Cell<Instant>>,
    (ended, generation): (flume::Sender<ReaderEnd>, u64),
    work: Dispatch,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut inbound = Inbound::new();
    let mut reply = Vec::new();
    let mut pending: Option<(ReceivedRequest, Vec<u8>)> = None;
    let code = loop {
        let event = monoio::select! {
            e = reader.next_event() => e,
            _ = &mut stopped => return,
        };
        last_inbound.set(Instant::now());
        let event = match event {
            Ok(e) => e,
            Err(ReadError::Protocol(e)) => {
                tracing::warn!(hybrid_connection = %hc.name, error = %Escaped(&e), "relay broke the WebSocket protocol");
                break None;
            }
            Err(_) => break None,
        };
        let received = inbound.receive(
            reader.view(&event),
            &mut writer.outbound().borrow_mut(),
            &mut reply,
        );
        match received {
            Ok(Received::Message(text)) => {
                if let Some((request, _)) = pending.take() {
                    let problem = "another text message came instead of its body";
                    unreadable::refuse_request(&hc, request, &problem, &writer, &work.work);
                }
                dispatch(&hc, text, &writer, &mut pending, &work);
            }
            Ok(Received::Body { chunk, message_end }) => {
                // The body of the preceding `request` (protocol §4.2); the control channel carries
                // at most 64 KiB of body (§6.1), a larger one is refused with its request.
                let Some((_, body)) = pending.as_mut() else {
                    continue;
                };
                if body.len() + chunk.len() > CONTROL_BODY_LIMIT {
                    if let Some((request, _)) = pending.take() {
                        let problem = "request body over 64 KiB on the control channel";
                        unreadable::refuse_request(&hc, request, &problem, &writer, &work.work);
                    }
                    continue;
                }
                body.extend_from_slice(chunk);
                if message_end {
                    if let Some((request, body)) = pending.take() {
                        serve_request(&hc, request, Some(body), &writer, &work);
                    }
                }
            }
            Ok(Received::Ping) => {
                writer.send_built(std::mem::take(&mut reply));
            }
            Ok(Received::Partial | Received::Pong) => {}
            Ok(Received::Close(close)) => {
                tracing::info!(hybrid_connection = %hc.name, code = close.code.map(|c| c.as_u16()), reason = close.reason, "relay closed the control channel");
                writer.send_close(reply_code(close.code), "");
                break close.code.map(|c| c.as_u16());
            }
            Err(e) => {
                tracing::warn!(hybrid_connection = %hc.name, error = %e, "control channel failed");
                if let ChannelError::MessageTooLarge { .. } = e {
                    unreadable::count_oversized(&hc, inbound.oversized_command());
                }
                writer.send_close(e.close_code(), &e.to_string());
                break None;
            }
        }
    };
    let _ = ended.send(ReaderEnd(generation, code));
}

/// Routes one control message (protocol §4.3, §4.4); what cannot be used is answered where
/// possible and counted ([`unreadable`]).
fn dispatch(
    hc: &Hc,
    text: &[u8],
    writer: &ControlWriter,
    pending: &mut Option<(ReceivedRequest, Vec<u8>)>,
    work: &Dispatch,
) {
    match parse_daemon_message(text) {
        Ok(DaemonMessage::Other(ControlMessage::Accept(accept))) => {
            monoio::spawn(
                work.work
                    .track(Box::pin(stream::serve_accept(hc.clone(), accept))),
            );
        }
        Ok(DaemonMessage::Request(request)) => {
            if request.has_body() {
                *pending = Some((request, Vec::new()));
            } else {
                serve_request(hc, request, None, writer, work);
            }
        }
        Ok(DaemonMessage::Other(other)) => {
            let command = other.command().to_owned();
            unreadable::answer(
                hc,
                text,
                &format!("unexpected command {command:?}"),
                writer,
                &work.work,
            );
        }
        Err(e) => unreadable::answer(hc, text, &e, writer, &work.work),
    }
}

/// Serves a complete request (with its body, if it had one).
fn serve_request(
    hc: &Hc,
    request: ReceivedRequest,
    body: Option<Vec<u8>>,
    writer: &ControlWriter,
    work: &Dispatch,
) {
    match hc.admission.requests.try_enter() {
        Ok(permit) => {
            // Made in its box (`Box::write` into fresh memory, not built on the stack and
            // copied in): the request's future is kilobytes, and awaiting it moves only the
            // pointer.
            let serving = Box::into_pin(Box::write(
                Box::new_uninit(),
                http::serve_received(hc.clone(), request, body, writer.clone()),
            ));
            work.spawn_request(async move {
                serving.await;
                drop(permit);
            });
        }
        Err(exceeded) => overload::refuse_request(hc, &request, writer, exceeded, &work.work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::lazy_timeout::poll_once;

    #[test]
    fn dropping_the_stop_signal_stops_both_tasks_and_not_before() {
        crate::runtime::workers::block_on(async {
            let (signal, (mut reader, mut writer)) = StopSignal::new();
            let empty = |r: &mut oneshot::Receiver<()>| {
                matches!(r.try_recv(), Err(oneshot::error::TryRecvError::Empty))
            };
            assert!(empty(&mut reader) && empty(&mut writer), "not stopped yet");
            let (mut reader, mut writer) = (std::pin::pin!(reader), std::pin::pin!(writer));
            // Both wait (their wakers registered) before the signal goes.
            assert!(poll_once(reader.as_mut()).await.is_none(), "reader waits");
            assert!(poll_once(writer.as_mut()).await.is_none(), "writer waits");
            drop(signal);
            assert!(
                reader.await.is_err() && writer.await.is_err(),
                "both stopped"
            );
        })
        .expect("runtime");
    }
}
