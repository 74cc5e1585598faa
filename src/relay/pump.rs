//! Joining a sender's socket with a listener's rendezvous socket (spec §5.3): frames are
//! relayed both ways as they arrive. The relay is the server on both sockets, so it unmasks each
//! payload in place and writes a new, unmasked header into the bytes in front of it: the
//! payload is never copied (design.md §2). Message types and boundaries are kept; frames may be
//! re-split. Ping and pong travel end to end. A close frame from one side is forwarded and the
//! other direction keeps flowing until that side closes too (half-close, spec §5.3, §11 item 4).

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

use crate::io::stream::Stream;
use crate::io::tcp_pump::CHUNK;
use crate::io::ws_frames::{push_close, push_frame};
use crate::io::ws_reader::{ReadError, WsEvent, WsReader};
use crate::proto::ws::frame::FrameHeader;
use crate::proto::ws::{CloseCode, Limits, OpCode, Role, MAX_HEADER_LEN};

/// Each direction's read buffer: one whole frame of the largest size hycod's pumps send
/// (their [`CHUNK`]) with its header, so a bulk transfer needs one read and one write per frame
/// rather than two of each.
const STREAM_READ_BUFFER: usize = CHUNK + MAX_HEADER_LEN;

/// How long the surviving direction may run on after the other side vanished without a close.
const ABANDON_GRACE: Duration = Duration::from_secs(10);

/// Limits for relayed streams: frames up to 16 MiB, messages unbounded (they are streamed,
/// never collected).
fn forward_limits() -> Limits {
    Limits {
        max_message_size: u64::MAX,
        ..Limits::default()
    }
}

/// How one direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The reading side sent a close frame (forwarded).
    Closed,
    /// The reading side vanished or broke the protocol; the writing side was told.
    Abandoned,
}

/// Relays frames between `a` and `b` until both directions are closed; returns the payload
/// bytes relayed a→b and b→a.
pub async fn join(a: Stream, a_leftover: &[u8], b: Stream, b_leftover: &[u8]) -> (u64, u64) {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let a_reader = WsReader::new(
        a_read,
        Role::Server,
        forward_limits(),
        a_leftover,
        STREAM_READ_BUFFER,
    );
    let b_reader = WsReader::new(
        b_read,
        Role::Server,
        forward_limits(),
        b_leftover,
        STREAM_READ_BUFFER,
    );
    let mut a_to_b = std::pin::pin!(forward(a_reader, b_write));
    let mut b_to_a = std::pin::pin!(forward(b_reader, a_write));
    monoio::select! {
        (end, ab) = &mut a_to_b => (ab, finish_other(end, &mut b_to_a).await),
        (end, ba) = &mut b_to_a => (finish_other(end, &mut a_to_b).await, ba),
    }
}

async fn finish_other<F>(first: End, other: &mut std::pin::Pin<&mut F>) -> u64
where
    F: std::future::Future<Output = (End, u64)>,
{
    match first {
        End::Closed => other.await.1,
        End::Abandoned => monoio::time::timeout(ABANDON_GRACE, other)
            .await
            .map_or(0, |(_, n)| n),
    }
}

/// Relays one direction; returns how it ended and the payload bytes relayed.
async fn forward<R: AsyncReadRent, W: AsyncWriteRent>(
    mut reader: WsReader<R>,
    mut writer: W,
) -> (End, u64) {
    let mut relayed = 0u64;
    let mut in_message = false;
    loop {
        let event = match reader.next_event().await {
            Ok(event) => event,
            Err(e) => {
                let (code, reason) = match &e {
                    ReadError::Protocol(p) => (p.close_code(), p.as_str()),
                    _ => (CloseCode::GOING_AWAY, "peer disconnected"),
                };
                tracing::debug!(error = %e, "relayed stream side ended abnormally");
                let mut out = Vec::new();
                if push_close(&mut out, code, reason, None).is_ok() {
                    let _ = writer.write_all(out).await;
                }
                return (End::Abandoned, relayed);
            }
        };
        let control = match event {
            WsEvent::Data {
                kind,
                payload,
                message_end,
                ..
            } => {
                if payload.is_empty() && !message_end {
                    continue;
                }
                let header = FrameHeader {
                    fin: message_end,
                    opcode: if in_message {
                        OpCode::Continuation
                    } else {
                        kind.opcode()
                    },
                    mask: None,
                    payload_len: crate::proto::ws::encode::len_u64(payload.len()),
                };
                in_message = !message_end;
                let mut bytes = [0u8; MAX_HEADER_LEN];
                let Ok(len) = header.encode(&mut bytes) else {
                    return (End::Abandoned, relayed);
                };
                relayed += crate::proto::ws::encode::len_u64(payload.len());
                if reader
                    .write_payload(&mut writer, &bytes[..len], payload)
                    .await
                    .is_err()
                {
                    return (End::Abandoned, relayed);
                }
                continue;
            }
            WsEvent::Ping(p) => (OpCode::Ping, p),
            WsEvent::Pong(p) => (OpCode::Pong, p),
            WsEvent::Close { code, reason } => {
                let mut out = Vec::new();
                let encoded = match code {
                    Some(code) => push_close(&mut out, code, reader.text(reason), None),
                    None => push_frame(&mut out, true, OpCode::Close, &[], None),
                };
                if encoded.is_ok() {
                    let _ = writer.write_all(out).await;
                }
                return (End::Closed, relayed);
            }
        };
        let mut out = Vec::new();
        if push_frame(&mut out, true, control.0, reader.bytes(control.1), None).is_err()
            || writer.write_all(out).await.0.is_err()
        {
            return (End::Abandoned, relayed);
        }
    }
}
