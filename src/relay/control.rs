//! The service side of a listener control channel (protocol §4): authentication and registration,
//! then a writer that sends what other tasks queue (each unit uninterrupted, §4.2) and a
//! reader loop that routes `response` messages and bodies, handles `renewToken` (§4.6), answers
//! pings (§4.7) and closes the channel with 1008 when the token expires unrenewed (§8.2).
//!
//! Bounds (docs/relay.md "Limits"): what is queued for the listener is bounded in bytes (work
//! beyond it waits, [`super::control_queue`]) and a write that makes no progress for the write
//! stall timeout ends the channel, so a listener that stops reading is closed instead of
//! growing the relay; a channel that carries no frame
//! for the idle timeout is closed with 1001; a `response` over Azure's control-channel limits
//! (32 KiB of JSON, 64 KiB of body, protocol §6.1) fails its request with 502.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

use super::answer_head::{self, AnswerHead, HeadFailure};
use super::auth::{check, unix_now};
use super::core::{Door, Refusal};
use super::front;
use super::handoff;
use super::shared::{
    lock, ControlCommand, ControlHandle, ControlQueue, QueueError, ResponseEvent, WorkerCtx,
};
use crate::auth::verify::Right;
use crate::io::coalesce::{coalesce, COALESCE_LIMIT};
use crate::io::idle_cut::{count_frame, idle_cut};
use crate::io::stream::Stream;
use crate::io::watched_write::{stalled_write, WatchedWrite};
use crate::io::ws_reader::{ReadError, WsReader, DEFAULT_READ_BUFFER};
use crate::logging::Escaped;
use crate::proto::hc::channel::{reply_code, Inbound, Outbound, Received};
use crate::proto::hc::control_message::ControlMessage;
use crate::proto::hc::response_view::{parse_listener_text, ListenerText, ResponseView};
use crate::proto::ws::handshake::{write_switching_protocols, UpgradeRequest};
use crate::proto::ws::{CloseCode, DataKind, Limits, Role, MAX_HEADER_LEN};

/// Registers and serves one listener control channel until it closes.
pub(super) async fn serve(
    ctx: Rc<WorkerCtx>,
    mut stream: Stream,
    upgrade: UpgradeRequest,
    leftover: Vec<u8>,
    peer: SocketAddr,
) {
    let shared = ctx.shared.clone();
    let Some(admitted) = front::admit(&ctx, &mut stream, &upgrade, Door::Listen, peer).await else {
        return;
    };
    let entity = admitted.entity.clone();
    let tracking_id = admitted.tracking_id.clone();
    let request_path = admitted.request_path.clone();
    let now = admitted.now;
    // Admission through the listen door always verifies a token; without one, nothing is
    // registered.
    let Some(verified) = &admitted.token else {
        return;
    };
    let (handle, queue) = ControlHandle::new(shared.config.control_queue_limit);
    let added =
        lock(&shared.registry).add_listener(&entity, &tracking_id, ctx.worker, now, handle.clone());
    let listener_id = match added {
        Ok(id) => id,
        Err(e) => {
            let refusal = Refusal::listener_not_registered(&e, &admitted.tracked(&ctx));
            tracing::info!(%peer, hybrid_connection = %entity, error = %e, reason = %refusal.reason, "listen refused");
            ctx.state.refused_with(&refusal);
            let _ = stream.write_all(refusal.handshake()).await;
            return;
        }
    };
    let mut out = Vec::new();
    let written = match write_switching_protocols(&mut out, &upgrade.accept_key(), None) {
        Ok(()) => stream.write_all(out).await.0.is_ok(),
        Err(_) => false,
    };
    if !written {
        lock(&shared.registry).remove_listener(&entity, listener_id);
        return;
    }
    lock(&shared.registry).set_token_expiry(&entity, listener_id, verified.expires_at, false);
    tracing::info!(%peer, hybrid_connection = %entity, listener = listener_id, tracking_id = %Escaped(&tracking_id), "listener online");

    let (read, write) = stream.into_split();
    let expiry = Rc::new(Cell::new(verified.expires_at));
    monoio::spawn(expire_unrenewed(handle.downgrade(), expiry.clone()));
    let reader = WsReader::new(
        read,
        Role::Server,
        Limits::default(),
        &leftover,
        DEFAULT_READ_BUFFER,
    );
    let mut channel = Channel {
        ctx: ctx.clone(),
        entity: entity.clone(),
        request_path,
        commands: handle,
        expiry,
        closing: false,
        detached: false,
        frames: Rc::new(Cell::new(0)),
        listener_id,
        outbound: Rc::new(RefCell::new(Outbound::server())),
        body: BodyTarget::None,
    };
    let reason = run_channel(&mut channel, reader, WatchedWrite::new(write), &queue).await;
    tracing::info!(%peer, hybrid_connection = %entity, listener = listener_id, reason = %reason, "listener offline");
    lock(&shared.registry).remove_listener(&entity, listener_id);
    if let BodyTarget::Collect { events, .. } = std::mem::take(&mut channel.body) {
        events.send(ResponseEvent::ListenerGone);
    }
    // A listener that closed with a Close frame detached: the requests it holds may still be
    // answered through their rendezvous (architecture §3 "Detaching"). A channel that broke
    // (a reset, a dead host) fails them at once.
    let gone = lock(&shared.pending_requests).take_listener(listener_id);
    for events in gone {
        events.send(if channel.detached {
            ResponseEvent::ListenerDetached
        } else {
            ResponseEvent::ListenerGone
        });
    }
}

/// How long a close frame queued as the channel ends may take to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Reads and writes the channel until it ends, whichever way; returns why.
async fn run_channel<R: AsyncReadRent, W: AsyncWriteRent>(
    channel: &mut Channel,
    reader: WsReader<R>,
    mut write: WatchedWrite<W>,
    queue: &ControlQueue,
) -> String {
    let config = &channel.ctx.shared.config;
    let (stall_timeout, idle_timeout) = (config.write_stall_timeout, config.idle_timeout);
    let writes = [write.progress()];
    let frames = channel.frames.clone();
    let outbound = channel.outbound.clone();
    let mut writer = std::pin::pin!(write_loop(&mut write, queue, &outbound, &frames));
    let mut flush_close = false;
    let stopping = channel.ctx.shared.stopping.clone();
    let reason = {
        let commands = channel.commands.clone();
        let reading = channel.read_loop(reader);
        monoio::select! {
            reason = reading => reason,
            () = &mut writer => "the channel could not be written".to_owned(),
            _ = stalled_write(stall_timeout, &writes) => {
                "the listener stopped reading: a write made no progress".to_owned()
            }
            () = idle_cut(idle_timeout, &frames) => {
                commands.close(CloseCode::GOING_AWAY, "idle timeout");
                flush_close = true;
                "no frame for the idle timeout".to_owned()
            }
            why = queue.abort.recv_async() => why.unwrap_or("aborted").to_owned(),
            () = stopping.close_remaining.fired() => {
                commands.close(CloseCode::GOING_AWAY, "relay shutting down");
                flush_close = true;
                "the relay is shutting down".to_owned()
            }
        }
    };
    if flush_close || channel.closing {
        let _ = monoio::time::timeout(CLOSE_GRACE, &mut writer).await;
    }
    reason
}

/// Where the binary message after a `response` goes.
#[derive(Default)]
enum BodyTarget {
    /// No body announced.
    #[default]
    None,
    /// Collected whole (at most the control-channel body limit), then delivered.
    Collect {
        events: handoff::Sender<ResponseEvent>,
        head: Result<AnswerHead, HeadFailure>,
        body: Vec<u8>,
    },
    /// The request is gone or failed: the rest of the message is dropped.
    Discard,
}

/// The reader side of one control channel.
struct Channel {
    ctx: Rc<WorkerCtx>,
    entity: String,
    request_path: String,
    commands: ControlHandle,
    expiry: Rc<Cell<u64>>,
    /// Whether this side asked for the channel to close.
    closing: bool,
    /// Whether the listener closed the channel with a Close frame.
    detached: bool,
    /// Frames read and written, for the idle cut.
    frames: Rc<Cell<u64>>,
    listener_id: u64,
    /// The channel's sending side: the reader builds pongs with it and records the listener's
    /// close in it; the writer builds the close with it and drops whatever may no longer go out.
    outbound: Rc<RefCell<Outbound>>,
    /// Where the body message after a `response` goes.
    body: BodyTarget,
}

impl Channel {
    /// Reads until the channel ends, every frame through the channel layer's [`Inbound`];
    /// returns why it ended.
    async fn read_loop<R: AsyncReadRent>(&mut self, mut reader: WsReader<R>) -> String {
        let mut inbound = Inbound::new();
        let mut reply = Vec::new();
        loop {
            let event = match reader.next_event().await {
                Ok(e) => {
                    count_frame(&self.frames);
                    e
                }
                Err(ReadError::Protocol(e)) => {
                    self.close(e.close_code(), e.as_str());
                    return format!("protocol error: {e}");
                }
                Err(e) => return e.to_string(),
            };
            let received = inbound.receive(
                reader.view(&event),
                &mut self.outbound.borrow_mut(),
                &mut reply,
            );
            match received {
                Ok(Received::Message(text)) => self.on_text(text),
                Ok(Received::Body { chunk, message_end }) => self.on_body(chunk, message_end),
                Ok(Received::Ping) => {
                    let pong = std::mem::take(&mut reply);
                    if !pong.is_empty() && self.commands.send_reply(pong) == Err(QueueError::Full) {
                        return "the listener does not read its control channel".to_owned();
                    }
                }
                Ok(Received::Partial | Received::Pong) => {}
                Ok(Received::Close(close)) => {
                    let code = reply_code(close.code);
                    // No more work for it from now on, not only once the reply went out.
                    lock(&self.ctx.shared.registry).remove_listener(&self.entity, self.listener_id);
                    self.detached = true;
                    self.close(code, "");
                    return format!("listener closed the channel ({code})");
                }
                Err(e) => {
                    let reason = e.to_string();
                    self.close(e.close_code(), &reason);
                    return reason;
                }
            }
        }
    }

    fn close(&mut self, code: CloseCode, reason: &str) {
        self.closing = true;
        self.commands.close(code, reason);
    }

    fn on_text(&mut self, text: &[u8]) {
        let parsed = match parse_listener_text(text) {
            ListenerText::Response(response) => return self.on_response(&response, text.len()),
            ListenerText::Other(parsed) => parsed,
        };
        match parsed {
            Ok(ControlMessage::Response(response)) => {
                self.on_response(&ResponseView::of(&response), text.len());
            }
            Ok(ControlMessage::RenewToken(renew)) => {
                let token = renew.token_as_header_value();
                let now = SystemTime::now();
                match check(
                    &self.ctx.shared,
                    token.expose(),
                    &self.entity,
                    &self.request_path,
                    Right::Listen,
                    now,
                ) {
                    Ok(v) => {
                        tracing::info!(hybrid_connection = %self.entity, expires_at = v.expires_at, "token renewed");
                        self.expiry.set(v.expires_at);
                        lock(&self.ctx.shared.registry).set_token_expiry(
                            &self.entity,
                            self.listener_id,
                            v.expires_at,
                            true,
                        );
                    }
                    Err(e) => {
                        tracing::info!(hybrid_connection = %self.entity, reason = e.as_str(), "token renewal rejected");
                        self.close(
                            CloseCode::POLICY_VIOLATION,
                            &format!("renewToken rejected: {e}"),
                        );
                    }
                }
            }
            Ok(other) => {
                tracing::debug!(command = other.command(), "ignored a control message");
            }
            Err(e) => {
                tracing::warn!(hybrid_connection = %self.entity, error = %Escaped(&e), "ignored a malformed control message");
            }
        }
    }

    /// Routes a `response` of `json_len` bytes to its pending request: whole when it has no
    /// body, else once its body is collected; refused when over Azure's limits.
    fn on_response(&mut self, response: &ResponseView<'_>, json_len: usize) {
        let pending = lock(&self.ctx.shared.pending_requests)
            .take_answered(&response.request_id, self.listener_id);
        let Some(events) = pending else {
            tracing::debug!(request = %Escaped(&*response.request_id), "response for an unknown or finished request, or one routed to another listener");
            if response.body {
                self.body = BodyTarget::Discard;
            }
            return;
        };
        let limit = self.ctx.shared.config.control_channel_json_limit;
        if json_len > limit {
            tracing::info!(hybrid_connection = %self.entity, json_len, limit, "response refused: JSON over the control-channel limit");
            events.send(ResponseEvent::TooLarge(
                "The listener's response headers exceed the control channel's 32 KB limit.",
            ));
            if response.body {
                self.body = BodyTarget::Discard;
            }
            return;
        }
        let head = answer_head::prepare(response, &self.ctx.shared.via);
        if response.body {
            self.body = BodyTarget::Collect {
                events,
                head,
                body: Vec::new(),
            };
        } else {
            events.send(ResponseEvent::Complete(head, Bytes::new()));
        }
    }

    fn on_body(&mut self, chunk: &[u8], message_end: bool) {
        let limit = self.ctx.shared.config.control_channel_body_limit;
        match &mut self.body {
            BodyTarget::Collect { body, .. } if body.len() + chunk.len() <= limit => {
                body.extend_from_slice(chunk);
                if message_end {
                    if let BodyTarget::Collect { events, head, body } =
                        std::mem::take(&mut self.body)
                    {
                        events.send(ResponseEvent::Complete(head, body.into()));
                    }
                }
            }
            BodyTarget::Collect { .. } => {
                tracing::info!(hybrid_connection = %self.entity, limit, "response refused: body over the control-channel limit");
                let rest = if message_end {
                    BodyTarget::None
                } else {
                    BodyTarget::Discard
                };
                if let BodyTarget::Collect { events, .. } = std::mem::replace(&mut self.body, rest)
                {
                    events.send(ResponseEvent::TooLarge(
                        "The listener's response body exceeds the control channel's 64 KB limit.",
                    ));
                }
            }
            BodyTarget::Discard => {
                if message_end {
                    self.body = BodyTarget::None;
                }
            }
            // hyco-https sends an empty binary message even after `"body": false`
            // (protocol §6.2, §10.6 item 10): drop it silently; log anything else.
            BodyTarget::None if chunk.is_empty() => {}
            BodyTarget::None => tracing::debug!(
                len = chunk.len(),
                "dropped a binary message no response announced"
            ),
        }
    }
}

/// Writes queued units until a close frame has been written or a write fails; each batch
/// counts as a frame for the idle cut and leaves the queued-bytes count when written.
async fn write_loop<W: AsyncWriteRent>(
    write: &mut W,
    queue: &ControlQueue,
    outbound: &RefCell<Outbound>,
    frames: &Cell<u64>,
) {
    while let Ok(command) = queue.commands.recv_async().await {
        let mut counted = 0;
        let first = command_bytes(command, outbound, &mut counted);
        // Commands already queued go out in the same write; nothing follows our Close.
        let batch = coalesce(first, COALESCE_LIMIT, || {
            if outbound.borrow().close_sent() {
                return None;
            }
            queue
                .commands
                .try_recv()
                .ok()
                .map(|command| command_bytes(command, outbound, &mut counted))
        });
        count_frame(frames);
        let written = batch.is_empty() || write.write_all(batch).await.0.is_ok();
        queue.written(counted);
        if !written || outbound.borrow().close_sent() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// The bytes a command puts on the wire (queued ones are added to `counted`): its frames until
/// our close frame went, that close frame once, nothing after it (the channel layer's rule).
/// Units queued before the listener's Close was read still go out ahead of our reply, as
/// RFC 6455 §5.5.1 allows: a detaching listener may still take them (architecture §3
/// "Detaching"); the registry gives it nothing new from its Close on.
fn command_bytes(
    command: ControlCommand,
    outbound: &RefCell<Outbound>,
    counted: &mut usize,
) -> Vec<u8> {
    match command {
        ControlCommand::Send(bytes) => {
            *counted += bytes.len();
            if outbound.borrow().close_sent() {
                Vec::new()
            } else {
                bytes
            }
        }
        ControlCommand::Close(code, reason) => {
            let mut out = Vec::new();
            if outbound
                .borrow_mut()
                .close(&mut out, code, &reason)
                .is_err()
            {
                out.clear();
            }
            out
        }
    }
}

/// Closes the channel with 1008 once the token's expiry passes unrenewed (protocol §4.6, §8.2).
async fn expire_unrenewed(commands: flume::WeakSender<ControlCommand>, expiry: Rc<Cell<u64>>) {
    loop {
        let now = unix_now(SystemTime::now());
        let until = expiry.get();
        if now >= until {
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(ControlCommand::Close(
                    CloseCode::POLICY_VIOLATION,
                    "The token has expired.".to_owned(),
                ));
            }
            return;
        }
        if commands.upgrade().is_none() {
            return;
        }
        // Wake at the expiry (re-read then, a renewal may have moved it), at least every minute
        // so a closed channel's watcher ends soon.
        let wait = (until - now).min(60);
        monoio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// One unit for a listener's control channel, built by the channel layer (the relay's frames
/// are unmasked): the `json` message and, when given, `body` as the binary message after it
/// (protocol §4.2). The listener's writer checks the channel is still open before it writes it.
pub(super) fn unit(json: &str, body: Option<&[u8]>) -> Vec<u8> {
    let body_len = body.map_or(0, <[u8]>::len);
    let mut unit = Vec::with_capacity(json.len() + body_len + 2 * MAX_HEADER_LEN);
    let mut out = Outbound::server();
    // A fresh server-side channel encodes any text and binary message: nothing can fail.
    let _ = out.message(&mut unit, DataKind::Text, json.as_bytes());
    if let Some(body) = body {
        let _ = out.message(&mut unit, DataKind::Binary, body);
    }
    unit
}
