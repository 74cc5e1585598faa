//! Relayed HTTP on the service side (protocol §6, §7.2, Appendix A "HTTP"): a sender's request
//! becomes a `request` message — on the control channel when its body is known and at most
//! 64 KiB, otherwise through a request rendezvous where the body streams as one fragmented
//! binary message (§6.1, §6.4). The listener's `response` streams back to the sender with
//! chunked coding as its frames arrive, whether it comes on the control channel or on a
//! rendezvous the listener opened (§6.5). No answer within the deadline gives 504 (§6.8).
//! A rendezvous the relay opened then carries the sender's further requests while it stays
//! open ([`held`](super::held), §6.3 step 5).

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use local_sync::oneshot;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::answer_head::{self, AnswerHead, HeadFailure};
use super::auth::check_cached;
use super::core::admission::check_target;
use super::core::pairing::{self, request_transport, ControlChannelLimits, Transport};
use super::core::{Admitted, Door, Knock, Refusal};
use super::held::{self, Held, RendezvousRead, RendezvousWrite, Reused};
use super::host_check::Addressed;
use super::server::{read_head, HeadDeadline, Incoming};
use super::shared::{
    lock, ControlHandle, QueueError, Rendezvous, ResponseEvent, WorkerCtx, WorkerState,
};
use super::{control, handoff, rendezvous};
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::io::ws_reader::{ReadError, WsEvent, WsReader, DEFAULT_READ_BUFFER};
use crate::logging::Escaped;
use crate::proto::hc::channel::{ChannelError, Inbound, Outbound, Received};
use crate::proto::hc::control_message::ControlMessage;
use crate::proto::hc::headers::request_headers_joined;
use crate::proto::hc::query::{strip_sb_hc_params, Action};
use crate::proto::hc::request_json::{self, RequestMessage};
use crate::proto::hc::response_view::{parse_listener_text, ListenerText, ResponseView};
use crate::proto::http1::{
    request_body_kind, write_chunk, BodyDecoder, BodyKind, RequestHead, LAST_CHUNK,
};
use crate::proto::ws::frame::MAX_HEADER_LEN;
use crate::proto::ws::handshake::write_switching_protocols;
use crate::proto::ws::{CloseCode, DataKind, Limits, Role};
use crate::relay::registry::Work;

/// Serves relayed HTTP requests on one sender connection until it closes.
pub(super) async fn serve(ctx: Rc<WorkerCtx>, incoming: Incoming, peer: SocketAddr) {
    let Incoming {
        mut stream,
        mut buf,
        mut head,
    } = incoming;
    let mut held = None;
    let stopping = ctx.shared.stopping.clone();
    loop {
        let served = {
            let _work = stopping.work();
            serve_one(&ctx, &mut stream, &mut buf, &head, peer, &mut held).await
        };
        match served {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %Escaped(&e), "relayed HTTP connection ended");
                break;
            }
        }
        let timeouts = ctx.shared.config.timeouts;
        let deadline = HeadDeadline::keep_alive(timeouts.keepalive, timeouts.head);
        let stop = Some(&stopping.stop_accepting);
        head = match read_head(&mut stream, &mut buf, deadline, &ctx.state.shedder, stop).await {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = ?e, "no further request");
                if let Some((refusal, answer)) = e.refusal(false) {
                    ctx.state.refused(refusal);
                    let _ = stream.write_all(answer).await;
                }
                break;
            }
        };
    }
    if let Some(held) = held {
        held.release().await;
    }
}

/// An error answer from the relay itself; the connection closes after it, lingering so that
/// an unread request body cannot turn the close into a reset that loses the answer
/// ([`linger`](super::linger)).
async fn fail(ctx: &WorkerCtx, stream: &mut Stream, refusal: &Refusal) -> io::Result<bool> {
    ctx.state.refused_with(refusal);
    ctx.state.metrics.borrow_mut().answered(refusal.status);
    stream.write_all(refusal.http()).await.0?;
    super::linger::linger(stream, super::linger::LingerLimits::default()).await;
    Ok(false)
}

/// Handles one request; returns whether the connection may carry another.
async fn serve_one(
    ctx: &Rc<WorkerCtx>,
    stream: &mut Stream,
    buf: &mut ReadBuf,
    head: &RequestHead,
    peer: SocketAddr,
    held: &mut Option<Held>,
) -> io::Result<bool> {
    let shared = ctx.shared.clone();
    let now = SystemTime::now();
    if let Some(names) = &shared.host_names {
        if let Err(description) = names.check(&head.headers, Addressed::Namespace) {
            tracing::info!(%peer, error = %Escaped(&description), "request refused: Host");
            return fail(ctx, stream, &Refusal::unknown_host(description)).await;
        }
    }
    if let Err(refusal) = check_target(&head.target) {
        tracing::info!(%peer, error = %refusal.text, "request refused: request-target");
        return fail(ctx, stream, &refusal).await;
    }
    let tracking_id = super::ids::tracking_id(ctx.worker);
    // Split once: the admission and the `request` message both read them.
    let (path, raw_query) = (head.path(), head.query());
    let knock = Knock {
        door: Door::Http,
        path,
        query: raw_query.unwrap_or(""),
        headers: &head.headers,
        tracking_id: &tracking_id,
        now,
    };
    let admitted = shared.admission.admit(&knock, |c| {
        check_cached(ctx, c.token, c.entity, c.request_path, c.needed, now)
    });
    let Admitted {
        entity,
        authorization,
        ..
    } = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            if let Some(reason) = refusal.detail {
                let entity = shared.admission.resolve(Door::Http, path);
                tracing::info!(%peer, hybrid_connection = entity.unwrap_or(""), reason, "request refused");
            }
            return fail(ctx, stream, &refusal).await;
        }
    };
    let at = shared.admission.tracked(&tracking_id, &entity, now);
    let kind = match request_body_kind(head) {
        Ok(kind) => kind,
        Err(e) => return fail(ctx, stream, &Refusal::bad_body(&e)).await,
    };
    // Content-Length next to Transfer-Encoding may be a smuggling attempt: the connection
    // closes after this response (RFC 9112 §6.1).
    let ambiguous_framing =
        head.headers.contains("transfer-encoding") && head.headers.contains("content-length");
    // A rendezvous an earlier request of this sender opened serves this one if still open.
    let reused = match held.take() {
        Some(h) => h.reuse(&entity).await,
        None => None,
    };
    let route = if let Some(reused) = reused {
        lock(&shared.registry).count_work(&entity, reused.listener, Work::Request);
        Route::Held(reused)
    } else {
        let picked = lock(&shared.registry).pick(&entity, Work::Request, |n| fastrand::usize(..n));
        match picked {
            Ok((listener_id, handle)) => Route::Listener(listener_id, handle),
            Err(e) => return fail(ctx, stream, &Refusal::no_listener_for_request(&e, &at)).await,
        }
    };
    if head.headers.has_token("expect", "100-continue") {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
            .await
            .0?;
    }

    // The request id, which a `response` must name, is also the rendezvous address's secret.
    let id = ctx.state.secret_ids.borrow_mut().next(ctx.worker);
    let id = match id {
        Ok(id) => id,
        Err(e) => return fail(ctx, stream, &Refusal::no_rendezvous_id(&e, None)).await,
    };
    let rendezvous_path = ["/$hc/", entity.as_str()].concat();
    let address = [
        &*shared.rendezvous_base(ctx.worker),
        &rendezvous_path,
        "?sb-hc-action=request&sb-hc-id=",
        &crate::auth::sas::encode_uri_component_borrowed(&id),
    ]
    .concat();
    let query = raw_query.and_then(strip_sb_hc_params);
    let mut request_headers = request_headers_joined(&head.headers, authorization);
    request_headers.push(("Host", Cow::Borrowed(&shared.config.namespace)));
    let mut full = RequestMessage {
        address: Some(&address),
        id: &id,
        path,
        query: query.as_deref(),
        method: &head.method,
        remote: peer,
        headers: &request_headers,
        body: kind != BodyKind::Empty,
    };

    let deadline = shared.config.http_deadline;
    let body_idle = shared.config.timeouts.body_idle;
    let is_head = head.method.eq_ignore_ascii_case("HEAD");
    let keep_alive = head.keep_alive() && !ambiguous_framing;

    let listener = match &route {
        Route::Held(reused) => reused.listener,
        Route::Listener(id, _) => *id,
    };
    let outcome = match route {
        Route::Held(mut reused) => {
            // No rendezvous waits at this address: the request travels on the held one.
            full.address = None;
            let json = request_json::encode(&full);
            let mut out = Outbound::server();
            let streamed = stream_request(
                &mut reused.write,
                &mut out,
                stream,
                buf,
                kind,
                &json,
                body_idle,
            );
            if let Err(failure) = streamed.await {
                abort_rendezvous(&mut reused.write, &mut out, &failure).await;
                return fail_body(ctx, stream, failure).await;
            }
            let mut reader = reused.reader;
            match monoio::time::timeout(deadline, reader.next_event()).await {
                Err(_) => Outcome::TimedOut,
                Ok(first) => Outcome::Rendezvous {
                    io: (reused.write, reader),
                    first: Some(first),
                    holdable: true,
                },
            }
        }
        Route::Listener(listener_id, handle) => {
            // One event per request: the complete response, a refusal, or the listener's
            // departure.
            let (events_tx, mut events) = handoff::channel();
            lock(&shared.pending_requests).insert(id.clone(), listener_id, events_tx);
            let _pending = PendingGuard {
                ctx: ctx.clone(),
                id: id.clone(),
            };
            let (waiting, _wait_guard) =
                rendezvous::expect(ctx, id.clone(), rendezvous_path, Action::Request);
            let json = request_json::encode(&full);
            let limits = ControlChannelLimits {
                body: shared.config.control_channel_body_limit,
                json: shared.config.control_channel_json_limit,
            };
            if let Transport::ControlChannel { body_len: len } =
                request_transport(kind, json.len(), limits)
            {
                let body = match read_whole_body(stream, buf, len, body_idle).await {
                    Ok(body) => body,
                    Err(failure) => return fail_body(ctx, stream, failure).await,
                };
                let body = Some(&body[..]).filter(|body| !body.is_empty());
                let queued = std::time::Instant::now();
                if let Err(refusal) =
                    queue_for_listener(&handle, control::unit(&json, body), deadline).await
                {
                    return fail(ctx, stream, &refusal).await;
                }
                let patience = deadline.saturating_sub(queued.elapsed());
                await_response(&mut events, waiting, patience).await
            } else {
                let notice = request_json::encode_notice(&address, &id);
                let queued = std::time::Instant::now();
                if let Err(refusal) =
                    queue_for_listener(&handle, control::unit(&notice, None), deadline).await
                {
                    return fail(ctx, stream, &refusal).await;
                }
                let sent = std::time::Instant::now();
                match rendezvous::wait(waiting, deadline.saturating_sub(queued.elapsed())).await {
                    None => Outcome::TimedOut,
                    Some(rdv) => {
                        ctx.state
                            .metrics
                            .borrow_mut()
                            .rendezvous(&entity, sent.elapsed());
                        let mut io = open_rendezvous(rdv).await?;
                        let mut out = Outbound::server();
                        let streamed = stream_request(
                            &mut io.0, &mut out, stream, buf, kind, &json, body_idle,
                        );
                        if let Err(failure) = streamed.await {
                            abort_rendezvous(&mut io.0, &mut out, &failure).await;
                            return fail_body(ctx, stream, failure).await;
                        }
                        Outcome::Rendezvous {
                            io,
                            first: None,
                            holdable: true,
                        }
                    }
                }
            }
        }
    };

    match outcome {
        Outcome::TimedOut => fail(ctx, stream, &Refusal::response_timeout(&at)).await,
        Outcome::ListenerGone => fail(ctx, stream, &Refusal::listener_gone(&at)).await,
        Outcome::TooLarge(text) => fail(ctx, stream, &Refusal::response_too_large(text, &at)).await,
        Outcome::Control(head, body) => {
            let head = accept_head(&ctx.state, stream, head).await?;
            let body_follows = head.body;
            let mut out = head.finish(keep_alive);
            if body_follows && !is_head {
                write_chunk(&mut out, &body);
                out.extend_from_slice(LAST_CHUNK);
            }
            stream.write_all(out).await.0?;
            Ok(keep_alive)
        }
        Outcome::Rendezvous {
            io: (mut write, mut reader),
            first,
            holdable,
        } => {
            let answer = Answer {
                state: &ctx.state,
                request_id: &id,
                via: &shared.via,
                idle: deadline,
                is_head,
                keep_alive,
            };
            let ended = relay_rendezvous_response(stream, &mut reader, first, &answer).await?;
            match ended {
                RendezvousAnswer::Complete if pairing::holdable(holdable, true, keep_alive) => {
                    *held = Some(Held::hold(write, reader, &entity, listener));
                    Ok(true)
                }
                RendezvousAnswer::Complete => {
                    held::close(&mut write).await;
                    Ok(keep_alive)
                }
                RendezvousAnswer::Broken => {
                    held::close(&mut write).await;
                    Ok(false)
                }
                RendezvousAnswer::Failed(e, head_sent) => {
                    tracing::info!(error = %e, "the listener broke the rendezvous's rules");
                    held::close_with(&mut write, e.close_code(), &e.to_string()).await;
                    if !head_sent {
                        let refusal = Refusal::response_over_message_limit();
                        ctx.state.metrics.borrow_mut().answered(refusal.status);
                        stream.write_all(refusal.http()).await.0?;
                    }
                    Ok(false)
                }
                RendezvousAnswer::NoResponse => {
                    held::close(&mut write).await;
                    ctx.state.metrics.borrow_mut().answered(502);
                    stream.write_all(Refusal::no_response().http()).await.0?;
                    Ok(false)
                }
            }
        }
    }
}

/// Where a request goes: over the sender's held rendezvous, or to a listener picked afresh.
enum Route {
    Held(Reused),
    Listener(u64, ControlHandle),
}

/// Removes the pending entry when the request ends, however it ends.
struct PendingGuard {
    ctx: Rc<WorkerCtx>,
    id: Arc<str>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.ctx.shared.pending_requests).forget(&self.id);
    }
}

type RendezvousIo = (RendezvousWrite, RendezvousRead);

enum Outcome {
    TimedOut,
    ListenerGone,
    /// The control-channel response broke Azure's limits.
    TooLarge(&'static str),
    Control(Result<AnswerHead, HeadFailure>, Bytes),
    /// The answer comes on a rendezvous; `first` is an event already read from it.
    Rendezvous {
        io: RendezvousIo,
        first: Option<Result<WsEvent, ReadError>>,
        /// Whether the relay opened it, so it may carry the sender's next request.
        holdable: bool,
    },
}

/// Completes the listener's rendezvous handshake and splits it for reading and writing.
async fn open_rendezvous(rdv: Rendezvous) -> io::Result<RendezvousIo> {
    use monoio::io::Splitable;
    let Rendezvous {
        mut stream,
        leftover,
        upgrade,
        ..
    } = rdv;
    let mut out = Vec::new();
    write_switching_protocols(&mut out, &upgrade.accept_key(), None)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(out).await.0?;
    let (read, write) = stream.into_split();
    let limits = Limits {
        max_message_size: u64::MAX,
        ..Limits::default()
    };
    Ok((
        write,
        WsReader::new(read, Role::Server, limits, &leftover, DEFAULT_READ_BUFFER),
    ))
}

/// Queues `unit` for the picked listener, waiting at most `deadline` while its queue is full
/// (docs/relay.md "Limits"); the refusal for the sender when it cannot.
async fn queue_for_listener(
    handle: &ControlHandle,
    unit: Vec<u8>,
    deadline: Duration,
) -> Result<(), Refusal> {
    match handle.send(unit, deadline).await {
        Ok(()) => Ok(()),
        Err(QueueError::TimedOut | QueueError::Full) => Err(Refusal::request_not_queued(true)),
        Err(QueueError::Closed) => Err(Refusal::request_not_queued(false)),
    }
}

/// Waits for the listener's answer on the control channel or on a rendezvous it opens; a
/// listener that detached meanwhile may still answer on the rendezvous until the deadline.
async fn await_response(
    events: &mut handoff::Receiver<ResponseEvent>,
    mut waiting: oneshot::Receiver<Rendezvous>,
    deadline: Duration,
) -> Outcome {
    let until = monoio::time::Instant::now() + deadline;
    let first = monoio::time::timeout_at(until, async {
        monoio::select! {
            e = &mut *events => Ok(e),
            r = &mut waiting => Err(r),
        }
    })
    .await;
    let rendezvous = match first {
        Err(_) => return Outcome::TimedOut,
        Ok(Ok(Ok(ResponseEvent::Complete(response, body)))) => {
            return Outcome::Control(response, body)
        }
        Ok(Ok(Ok(ResponseEvent::TooLarge(text)))) => return Outcome::TooLarge(text),
        Ok(Ok(Ok(ResponseEvent::ListenerDetached))) => {
            match monoio::time::timeout_at(until, waiting).await {
                Err(_) => return Outcome::ListenerGone,
                Ok(rendezvous) => rendezvous,
            }
        }
        Ok(Ok(_)) => return Outcome::ListenerGone,
        Ok(Err(rendezvous)) => rendezvous,
    };
    // A rendezvous the listener opened to answer is closed after the answer: hyco-https never
    // reads one, so no further request may go there (protocol §10.3).
    match rendezvous {
        Ok(rdv) => match open_rendezvous(rdv).await {
            Ok(io) => Outcome::Rendezvous {
                io,
                first: None,
                holdable: false,
            },
            Err(_) => Outcome::ListenerGone,
        },
        Err(_) => Outcome::ListenerGone,
    }
}

/// Why a request body could not be passed on.
#[derive(Debug)]
enum BodyFailure {
    /// The sender's connection failed or closed early.
    Sender(io::Error),
    /// The body paused longer than the body idle timeout.
    TimedOut,
    /// The body's framing is broken (e.g. a malformed chunk).
    Malformed(String),
    /// Writing to the listener's rendezvous failed.
    Listener(io::Error),
}

/// Tells the sender why its body was refused (400, 408), or ends when it is gone.
async fn fail_body(ctx: &WorkerCtx, stream: &mut Stream, failure: BodyFailure) -> io::Result<bool> {
    match failure {
        BodyFailure::Malformed(e) => fail(ctx, stream, &Refusal::bad_body(&e)).await,
        BodyFailure::TimedOut => fail(ctx, stream, &Refusal::body_timeout()).await,
        BodyFailure::Listener(e) => {
            tracing::debug!(error = %e, "rendezvous write failed during a request body");
            fail(ctx, stream, &Refusal::listener_closed_during_body()).await
        }
        BodyFailure::Sender(e) => Err(e),
    }
}

/// Ends a request rendezvous whose body did not arrive whole: the listener gets a close frame
/// in the middle of the body message, so the request can never look complete upstream
/// (1001: the sender went away, as Azure closes it, protocol §6.3).
async fn abort_rendezvous(
    rdv: &mut monoio::io::OwnedWriteHalf<Stream>,
    out: &mut Outbound,
    failure: &BodyFailure,
) {
    if matches!(failure, BodyFailure::Listener(_)) {
        return;
    }
    let mut close = Vec::new();
    if out
        .close(&mut close, CloseCode::GOING_AWAY, "request body aborted")
        .is_ok()
    {
        let _ = monoio::time::timeout(Duration::from_secs(5), rdv.write_all(close)).await;
    }
}

/// Reads more of the body into `buf` within `idle`; the count read (0 at EOF).
async fn fill_body(
    stream: &mut Stream,
    buf: &mut ReadBuf,
    idle: Duration,
) -> Result<usize, BodyFailure> {
    match monoio::time::timeout(idle, buf.fill(stream)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(BodyFailure::Sender(e)),
        Err(_) => Err(BodyFailure::TimedOut),
    }
}

/// Reads a body of exactly `len` bytes (at most the control-channel limit) into memory.
async fn read_whole_body(
    stream: &mut Stream,
    buf: &mut ReadBuf,
    len: usize,
    idle: Duration,
) -> Result<Vec<u8>, BodyFailure> {
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        if buf.is_empty() && fill_body(stream, buf, idle).await? == 0 {
            return Err(BodyFailure::Sender(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body truncated",
            )));
        }
        let take = (len - body.len()).min(buf.len());
        body.extend_from_slice(&buf.data()[..take]);
        buf.consume(take);
    }
    Ok(body)
}

/// Sends the full request (its JSON is `json`) on the rendezvous, streaming the sender's body
/// as one binary message fragmented as it arrives (protocol §6.3, §6.4). The closing frame goes
/// only after the whole body arrived intact.
async fn stream_request(
    rdv: &mut monoio::io::OwnedWriteHalf<Stream>,
    out: &mut Outbound,
    stream: &mut Stream,
    buf: &mut ReadBuf,
    kind: BodyKind,
    json: &str,
    idle: Duration,
) -> Result<(), BodyFailure> {
    let encode_failed = |e: ChannelError| BodyFailure::Listener(io::Error::other(e));
    let mut frames = Vec::with_capacity(json.len() + MAX_HEADER_LEN);
    out.message(&mut frames, DataKind::Text, json.as_bytes())
        .map_err(encode_failed)?;
    rdv.write_all(frames)
        .await
        .0
        .map_err(BodyFailure::Listener)?;
    if kind == BodyKind::Empty {
        return Ok(());
    }
    let mut decoder = BodyDecoder::new(kind);
    loop {
        while !buf.is_empty() && !decoder.is_done() {
            let decoded = decoder
                .decode(buf.data())
                .map_err(|e| BodyFailure::Malformed(e.to_string()))?;
            let consumed = decoded.consumed;
            let mut frame = Vec::new();
            if let Some(payload) = decoded.payload {
                out.data(&mut frame, DataKind::Binary, payload, false)
                    .map_err(encode_failed)?;
            }
            buf.consume(consumed);
            if !frame.is_empty() {
                rdv.write_all(frame)
                    .await
                    .0
                    .map_err(BodyFailure::Listener)?;
            }
            if consumed == 0 {
                break;
            }
        }
        if decoder.is_done() {
            break;
        }
        if fill_body(stream, buf, idle).await? == 0 {
            decoder.finish().map_err(|e| {
                BodyFailure::Sender(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))
            })?;
            break;
        }
    }
    let mut last = Vec::with_capacity(MAX_HEADER_LEN);
    out.data(&mut last, DataKind::Binary, &[], true)
        .map_err(encode_failed)?;
    rdv.write_all(last).await.0.map_err(BodyFailure::Listener)?;
    Ok(())
}

/// Counts the answer's status and hands its head back; when the listener's headers are
/// refused, the sender gets 502 instead and the error ends its connection.
async fn accept_head(
    state: &WorkerState,
    stream: &mut Stream,
    head: Result<AnswerHead, HeadFailure>,
) -> io::Result<AnswerHead> {
    match head {
        Ok(head) => {
            state.metrics.borrow_mut().answered(head.status);
            Ok(head)
        }
        Err(HeadFailure::Refused(e)) => {
            // CR/LF or an invalid name from the listener never reaches the sender.
            tracing::warn!(error = %Escaped(&e), "listener response headers refused");
            state.metrics.borrow_mut().answered(502);
            stream
                .write_all(Refusal::bad_response_headers().http())
                .await
                .0?;
            Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        }
        Err(HeadFailure::Unwritable(e)) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        }
    }
}

/// What a rendezvous answer is relayed with, fixed per request.
struct Answer<'a> {
    /// Where the answer's status is counted.
    state: &'a WorkerState,
    /// The request's secret id, which the `response` must name.
    request_id: &'a str,
    /// The relay's `Via` value.
    via: &'a str,
    /// The longest wait for the next frame.
    idle: Duration,
    is_head: bool,
    keep_alive: bool,
}

/// How the answer on a rendezvous ended.
enum RendezvousAnswer {
    /// `response` and body relayed whole.
    Complete,
    /// The head went to the sender, the body broke off.
    Broken,
    /// No usable `response` came.
    NoResponse,
    /// The listener broke a channel rule (a `response` over 64 KiB); whether the head had
    /// gone to the sender.
    Failed(ChannelError, bool),
}

/// Reads `response` + body from a rendezvous (starting with `first`, an event already read)
/// and relays them to the sender. The caller closes or holds the rendezvous.
async fn relay_rendezvous_response<R: AsyncReadRent>(
    stream: &mut Stream,
    reader: &mut WsReader<R>,
    mut first: Option<Result<WsEvent, ReadError>>,
    answer: &Answer<'_>,
) -> io::Result<RendezvousAnswer> {
    let mut inbound = Inbound::new();
    // The relay answers no ping while it relays an answer: the pongs the layer builds are
    // dropped, from a channel side of their own.
    let mut unanswered = Outbound::server();
    let mut pongs = Vec::new();
    let mut responded = false;
    loop {
        let event = match first.take() {
            Some(event) => event,
            None => match monoio::time::timeout(answer.idle, reader.next_event()).await {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        let Ok(event) = event else {
            break;
        };
        pongs.clear();
        let received = inbound.receive(reader.view(&event), &mut unanswered, &mut pongs);
        match received {
            Ok(Received::Message(text)) if !responded => {
                let parsed = parse_listener_text(text);
                let response = match parsed {
                    ListenerText::Response(view) => view,
                    ListenerText::Other(Ok(ControlMessage::Response(ref owned))) => {
                        ResponseView::of(owned)
                    }
                    ListenerText::Other(_) => break,
                };
                if *response.request_id != *answer.request_id {
                    tracing::info!(request = %Escaped(&*response.request_id), "a rendezvous answered another request");
                    break;
                }
                let head = answer_head::prepare(&response, answer.via);
                let head = accept_head(answer.state, stream, head).await?;
                let body_follows = head.body;
                stream.write_all(head.finish(answer.keep_alive)).await.0?;
                if !body_follows {
                    return Ok(RendezvousAnswer::Complete);
                }
                responded = true;
            }
            Ok(Received::Body { chunk, message_end }) if responded => {
                if !answer.is_head {
                    // The last chunk of the body travels with the end of the body.
                    let mut out = Vec::with_capacity(chunk.len() + 16 + LAST_CHUNK.len());
                    write_chunk(&mut out, chunk);
                    if message_end {
                        out.extend_from_slice(LAST_CHUNK);
                    }
                    if !out.is_empty() {
                        stream.write_all(out).await.0?;
                    }
                }
                if message_end {
                    return Ok(RendezvousAnswer::Complete);
                }
            }
            Ok(Received::Close(_)) => break,
            Err(e) => return Ok(RendezvousAnswer::Failed(e, responded)),
            Ok(_) => {}
        }
    }
    Ok(if responded {
        RendezvousAnswer::Broken
    } else {
        RendezvousAnswer::NoResponse
    })
}
