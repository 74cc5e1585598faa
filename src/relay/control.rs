//! The service side of a listener control channel (protocol §4): authentication and registration,
//! then a writer that sends what other tasks queue (each unit uninterrupted, §4.2) and a
//! reader loop that routes `response` messages and bodies, handles `renewToken` (§4.6), answers
//! pings (§4.7) and closes the channel with 1008 when the token expires unrenewed (§8.2).
//!
//! Bounds (docs/relay.md "Limits"): what is queued for the listener is bounded in bytes and a
//! write that makes no progress for the write stall timeout ends the channel, so a listener
//! that stops reading is closed instead of growing the relay; a channel that carries no frame
//! for the idle timeout is closed with 1001; a `response` over Azure's control-channel limits
//! (32 KiB of JSON, 64 KiB of body, protocol §6.1) fails its request with 502.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

use super::auth::{check, unix_now};
use super::core::{Door, Refusal};
use super::front;
use super::shared::{
    lock, ControlCommand, ControlHandle, ControlQueue, QueueError, ResponseEvent, WorkerCtx,
};
use crate::auth::verify::Right;
use crate::io::coalesce::{coalesce, COALESCE_LIMIT};
use crate::io::idle_cut::{count_frame, idle_cut};
use crate::io::stream::Stream;
use crate::io::watched_write::{stalled_write, WatchedWrite};
use crate::io::ws_reader::{ReadError, WsEvent, WsReader, DEFAULT_READ_BUFFER};
use crate::logging::Escaped;
use crate::proto::hc::control_message::{parse_control_message, ControlMessage};
use crate::proto::hc::messages::{Response, MAX_CONTROL_MESSAGE_LEN};
use crate::proto::ws::encode::{push_close, push_frame};
use crate::proto::ws::handshake::{write_switching_protocols, UpgradeRequest};
use crate::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};

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
        frames: Rc::new(Cell::new(0)),
        listener_id,
        text: Vec::new(),
        body: BodyTarget::None,
    };
    let reason = run_channel(&mut channel, reader, WatchedWrite::new(write), &queue).await;
    tracing::info!(%peer, hybrid_connection = %entity, listener = listener_id, reason = %reason, "listener offline");
    lock(&shared.registry).remove_listener(&entity, listener_id);
    if let BodyTarget::Collect { events, .. } = std::mem::take(&mut channel.body) {
        let _ = events.try_send(ResponseEvent::ListenerGone);
    }
    let gone = lock(&shared.pending_requests).take_listener(listener_id);
    for events in gone {
        let _ = events.try_send(ResponseEvent::ListenerGone);
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
    let close_sent = Cell::new(false);
    let mut writer = std::pin::pin!(write_loop(&mut write, queue, &close_sent, &frames));
    let mut flush_close = false;
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
        events: flume::Sender<ResponseEvent>,
        response: Response,
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
    /// Frames read and written, for the idle cut.
    frames: Rc<Cell<u64>>,
    listener_id: u64,
    /// The text message being assembled (control messages are at most 64 KiB, protocol §4.2).
    text: Vec<u8>,
    /// Where the body message after a `response` goes.
    body: BodyTarget,
}

impl Channel {
    /// Reads until the channel ends; returns why it ended.
    async fn read_loop<R: AsyncReadRent>(&mut self, mut reader: WsReader<R>) -> String {
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
            match event {
                WsEvent::Data {
                    kind: DataKind::Text,
                    payload,
                    message_end,
                    ..
                } => {
                    if self.text.len() + payload.len() > MAX_CONTROL_MESSAGE_LEN {
                        self.close(CloseCode::MESSAGE_TOO_BIG, "control message over 64 KiB");
                        return "control message over 64 KiB".to_owned();
                    }
                    self.text.extend_from_slice(reader.bytes(payload));
                    if message_end {
                        let text = std::mem::take(&mut self.text);
                        self.on_text(&text);
                    }
                }
                WsEvent::Data {
                    kind: DataKind::Binary,
                    payload,
                    message_end,
                    ..
                } => self.on_body(reader.bytes(payload), message_end),
                WsEvent::Ping(p) => {
                    let mut out = Vec::new();
                    if push_frame(&mut out, true, OpCode::Pong, reader.bytes(p), None).is_ok()
                        && self.commands.send(out) == Err(QueueError::Full)
                    {
                        return "the listener does not read its control channel".to_owned();
                    }
                }
                WsEvent::Pong(_) => {}
                WsEvent::Close { code, .. } => {
                    let code = code.unwrap_or(CloseCode::NORMAL);
                    self.close(code, "");
                    return format!("listener closed the channel ({code})");
                }
            }
        }
    }

    fn close(&mut self, code: CloseCode, reason: &str) {
        self.closing = true;
        self.commands.close(code, reason);
    }

    fn on_text(&mut self, text: &[u8]) {
        match parse_control_message(text) {
            Ok(ControlMessage::Response(response)) => self.on_response(response, text.len()),
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
    fn on_response(&mut self, response: Response, json_len: usize) {
        let pending = lock(&self.ctx.shared.pending_requests)
            .take_answered(&response.request_id, self.listener_id);
        let Some(events) = pending else {
            tracing::debug!(request = %Escaped(&response.request_id), "response for an unknown or finished request, or one routed to another listener");
            if response.body {
                self.body = BodyTarget::Discard;
            }
            return;
        };
        let limit = self.ctx.shared.config.control_channel_json_limit;
        if json_len > limit {
            tracing::info!(hybrid_connection = %self.entity, json_len, limit, "response refused: JSON over the control-channel limit");
            let _ = events.try_send(ResponseEvent::TooLarge(
                "The listener's response headers exceed the control channel's 32 KB limit.",
            ));
            if response.body {
                self.body = BodyTarget::Discard;
            }
            return;
        }
        if response.body {
            self.body = BodyTarget::Collect {
                events,
                response,
                body: Vec::new(),
            };
        } else {
            let _ = events.try_send(ResponseEvent::Complete(response, Bytes::new()));
        }
    }

    fn on_body(&mut self, chunk: &[u8], message_end: bool) {
        let limit = self.ctx.shared.config.control_channel_body_limit;
        match &mut self.body {
            BodyTarget::Collect { body, .. } if body.len() + chunk.len() <= limit => {
                body.extend_from_slice(chunk);
                if message_end {
                    if let BodyTarget::Collect {
                        events,
                        response,
                        body,
                    } = std::mem::take(&mut self.body)
                    {
                        let _ = events.try_send(ResponseEvent::Complete(response, body.into()));
                    }
                }
            }
            BodyTarget::Collect { events, .. } => {
                tracing::info!(hybrid_connection = %self.entity, limit, "response refused: body over the control-channel limit");
                let _ = events.try_send(ResponseEvent::TooLarge(
                    "The listener's response body exceeds the control channel's 64 KB limit.",
                ));
                self.body = if message_end {
                    BodyTarget::None
                } else {
                    BodyTarget::Discard
                };
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
    close_sent: &Cell<bool>,
    frames: &Cell<u64>,
) {
    while let Ok(command) = queue.commands.recv_async().await {
        let mut counted = 0;
        let first = command_bytes(command, close_sent, &mut counted);
        // Commands already queued go out in the same write; nothing follows our Close.
        let batch = coalesce(first, COALESCE_LIMIT, || {
            if close_sent.get() {
                return None;
            }
            queue
                .commands
                .try_recv()
                .ok()
                .map(|command| command_bytes(command, close_sent, &mut counted))
        });
        count_frame(frames);
        let written = batch.is_empty() || write.write_all(batch).await.0.is_ok();
        queue.queued.fetch_sub(counted, Ordering::Relaxed);
        if !written || close_sent.get() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// The bytes a command puts on the wire: its frames (added to `counted`), or our close frame
/// (once; later closes and unencodable ones give nothing).
fn command_bytes(command: ControlCommand, close_sent: &Cell<bool>, counted: &mut usize) -> Vec<u8> {
    match command {
        ControlCommand::Send(bytes) => {
            *counted += bytes.len();
            bytes
        }
        ControlCommand::Close(code, reason) => {
            if close_sent.replace(true) {
                return Vec::new();
            }
            let mut out = Vec::new();
            if push_close(&mut out, code, &reason, None).is_err() {
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
