//! The service side of a listener control channel (protocol §4): authentication and registration,
//! then a writer task that sends what other tasks queue (each unit uninterrupted, §4.2) and a
//! reader loop that routes `response` messages and bodies, handles `renewToken` (§4.6), answers
//! pings (§4.7) and closes the channel with 1008 when the token expires unrenewed (§8.2).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf, Splitable};

use super::auth::{check, unix_now};
use super::front;
use super::shared::{lock, ControlCommand, ControlHandle, ResponseEvent, WorkerCtx};
use crate::auth::verify::Right;
use crate::io::coalesce::{coalesce, COALESCE_LIMIT};
use crate::io::stream::Stream;
use crate::io::ws_frames::{push_close, push_frame};
use crate::io::ws_reader::{ReadError, WsEvent, WsReader, DEFAULT_READ_BUFFER};
use crate::proto::hc::control_message::{parse_control_message, ControlMessage};
use crate::proto::hc::messages::MAX_CONTROL_MESSAGE_LEN;
use crate::proto::ws::handshake::{write_switching_protocols, UpgradeRequest};
use crate::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};
use crate::relay::registry::RegistryError;

/// Registers and serves one listener control channel until it closes.
pub async fn serve(
    ctx: Rc<WorkerCtx>,
    mut stream: Stream,
    upgrade: UpgradeRequest,
    leftover: Vec<u8>,
    peer: SocketAddr,
) {
    let shared = ctx.shared.clone();
    let Some(admitted) = front::admit(&ctx, &mut stream, &upgrade, Right::Listen, peer).await
    else {
        return;
    };
    let entity = admitted.entity.clone();
    let tracking_id = admitted.tracking_id.clone();
    let request_path = admitted.request_path.clone();
    let now = admitted.now;
    let verified = &admitted.token;
    let (commands, queue) = flume::unbounded();
    let handle = ControlHandle {
        commands: commands.clone(),
    };
    let added = lock(&shared.registry).add_listener(&entity, &tracking_id, ctx.worker, now, handle);
    let listener_id = match added {
        Ok(id) => id,
        Err(e) => {
            let (status, code) = match e {
                RegistryError::QuotaExceeded { .. } => (403, "QuotaExceeded"),
                _ => (404, "EndpointNotFound"),
            };
            tracing::info!(%peer, hybrid_connection = %entity, error = %e, "listen refused");
            let _ = stream
                .write_all(admitted.refusal(&ctx, status, code, &e.to_string()))
                .await;
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
    tracing::info!(%peer, hybrid_connection = %entity, listener = listener_id, tracking_id = %tracking_id, "listener online");

    let (read, write) = stream.into_split();
    let close_sent = Rc::new(Cell::new(false));
    let expiry = Rc::new(Cell::new(verified.expires_at));
    monoio::spawn(write_loop(write, queue, close_sent.clone()));
    monoio::spawn(expire_unrenewed(commands.downgrade(), expiry.clone()));
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
        commands,
        expiry,
        close_sent,
        listener_id,
        text: Vec::new(),
        body_target: None,
    };
    let reason = channel.read_loop(reader).await;
    tracing::info!(%peer, hybrid_connection = %entity, listener = listener_id, reason = %reason, "listener offline");
    lock(&shared.registry).remove_listener(&entity, listener_id);
    if let Some(target) = channel.body_target.take() {
        let _ = target.send(ResponseEvent::ListenerGone);
    }
    lock(&shared.pending_requests).retain(|_, pending| {
        if pending.listener == listener_id {
            let _ = pending.events.send(ResponseEvent::ListenerGone);
            false
        } else {
            true
        }
    });
}

/// The reader side of one control channel.
struct Channel {
    ctx: Rc<WorkerCtx>,
    entity: String,
    request_path: String,
    commands: flume::Sender<ControlCommand>,
    expiry: Rc<Cell<u64>>,
    close_sent: Rc<Cell<bool>>,
    listener_id: u64,
    /// The text message being assembled (control messages are at most 64 KiB, protocol §4.2).
    text: Vec<u8>,
    /// Where the body message after a `response` with `"body": true` goes.
    body_target: Option<flume::Sender<ResponseEvent>>,
}

impl Channel {
    /// Reads until the channel ends; returns why it ended.
    async fn read_loop<R: monoio::io::AsyncReadRent>(&mut self, mut reader: WsReader<R>) -> String {
        loop {
            let event = match reader.next_event().await {
                Ok(e) => e,
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
                    if push_frame(&mut out, true, OpCode::Pong, reader.bytes(p), None).is_ok() {
                        let _ = self.commands.send(ControlCommand::Send(out));
                    }
                }
                WsEvent::Pong(_) => {}
                WsEvent::Close { code, .. } => {
                    let code = code.unwrap_or(CloseCode::NORMAL);
                    if !self.close_sent.get() {
                        self.close(code, "");
                    }
                    return format!("listener closed the channel ({code})");
                }
            }
        }
    }

    fn close(&self, code: CloseCode, reason: &str) {
        let _ = self
            .commands
            .send(ControlCommand::Close(code, reason.to_owned()));
    }

    fn on_text(&mut self, text: &[u8]) {
        match parse_control_message(text) {
            Ok(ControlMessage::Response(response)) => {
                let pending = lock(&self.ctx.shared.pending_requests).remove(&response.request_id);
                let Some(pending) = pending else {
                    tracing::debug!(request = %response.request_id, "response for an unknown or finished request");
                    if response.body {
                        self.body_target = None;
                    }
                    return;
                };
                let has_body = response.body;
                let _ = pending.events.send(ResponseEvent::Head(response));
                if has_body {
                    self.body_target = Some(pending.events);
                } else {
                    let _ = pending.events.send(ResponseEvent::End);
                }
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
                tracing::warn!(hybrid_connection = %self.entity, error = %e, "ignored a malformed control message");
            }
        }
    }

    fn on_body(&mut self, chunk: &[u8], message_end: bool) {
        match &self.body_target {
            Some(target) => {
                if !chunk.is_empty() {
                    let _ = target.send(ResponseEvent::Body(Bytes::copy_from_slice(chunk)));
                }
                if message_end {
                    let _ = target.send(ResponseEvent::End);
                    self.body_target = None;
                }
            }
            // hyco-https sends an empty binary message even after `"body": false`
            // (protocol §6.2, §10.6 item 10): drop it silently; log anything else.
            None if chunk.is_empty() => {}
            None => tracing::debug!(
                len = chunk.len(),
                "dropped a binary message no response announced"
            ),
        }
    }
}

/// Writes queued units until every sender is gone or a close frame has been written.
async fn write_loop(
    mut write: OwnedWriteHalf<Stream>,
    queue: flume::Receiver<ControlCommand>,
    close_sent: Rc<Cell<bool>>,
) {
    while let Ok(command) = queue.recv_async().await {
        let first = command_bytes(command, &close_sent);
        // Commands already queued go out in the same write; nothing follows our Close.
        let batch = coalesce(first, COALESCE_LIMIT, || {
            if close_sent.get() {
                return None;
            }
            queue
                .try_recv()
                .ok()
                .map(|command| command_bytes(command, &close_sent))
        });
        if !batch.is_empty() && write.write_all(batch).await.0.is_err() {
            break;
        }
        if close_sent.get() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// The bytes a command puts on the wire: its frames, or our close frame (once; later closes
/// and unencodable ones give nothing).
fn command_bytes(command: ControlCommand, close_sent: &Cell<bool>) -> Vec<u8> {
    match command {
        ControlCommand::Send(bytes) => bytes,
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
