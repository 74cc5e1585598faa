//! Joining a sender's socket with a listener's rendezvous socket (protocol §5.3): frames are
//! relayed both ways as they arrive. The relay is the server on both sockets, so it unmasks each
//! payload in place and writes a new, unmasked header into the bytes in front of it: the
//! payload is never copied (architecture §2). Message types and boundaries are kept; frames may
//! be re-split. Each direction builds what it writes on one stateful server-side `Encoder`: the
//! continuation opcodes come from it, and nothing follows a close frame sent to that side.
//! Ping and pong travel end to end (a stream is not a control channel: the relay answers no
//! ping on it). A close frame from one side is forwarded and the other direction keeps flowing
//! until that side closes too (half-close, protocol §5.3, §11 item 4).
//!
//! A direction blocked writing to a side that stopped reading reads nothing, so it would not see
//! the other side leave. A write that makes no progress for the `--write-stall-timeout`
//! therefore ends the stream (docs/reliability.md "Faults"): the other side gets Close(1011)
//! unless it already got a close or is in the middle of a frame, and both sockets are closed.
//! A stream that carries no frame either way for the `--idle-timeout` is cut as Azure's load
//! balancers cut it (docs/relay.md "Idle cut"), and one still open when a stopping relay closes
//! what remains (docs/relay.md "Stopping") is cut the same way: both sides get Close(1001).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};

use crate::io::idle_cut::{count_frame, idle_cut};
use crate::io::stream::Stream;
use crate::io::tcp_pump::CHUNK;
use crate::io::watched_write::{stalled_write, SharedProgress, WatchedWrite};
use crate::io::ws_reader::{ReadError, WsEvent, WsReader};
use crate::proto::ws::close::CloseFrame;
use crate::proto::ws::encode::len_u64;
use crate::proto::ws::{CloseCode, Encoder, Limits, Role, MAX_HEADER_LEN};

/// Each direction's read buffer: one whole frame of the largest size hycod's pumps send
/// (their [`CHUNK`]) with its header, so a bulk transfer needs one read and one write per frame
/// rather than two of each.
const STREAM_READ_BUFFER: usize = CHUNK + MAX_HEADER_LEN;

/// How long the surviving direction may run on after the other side vanished without a close.
const ABANDON_GRACE: Duration = Duration::from_secs(10);

/// How long the close frame sent when the relay ends a stream may take.
const STALL_CLOSE_GRACE: Duration = Duration::from_secs(5);

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

/// What one [`join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Joined {
    /// Payload bytes relayed a→b.
    pub a_to_b: u64,
    /// Payload bytes relayed b→a.
    pub b_to_a: u64,
    /// Whether a write made no progress for the write stall timeout, which ended the stream.
    pub write_stalled: bool,
    /// Whether the stream carried no frame for the idle timeout, which ended it.
    pub idle: bool,
}

/// When [`join`] ends a stream that did not end itself (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timeouts {
    /// A write to either side made no progress this long.
    pub write_stall: Option<Duration>,
    /// No frame either way this long.
    pub idle: Option<Duration>,
}

/// Why [`join`] ended a stream itself.
enum Cut {
    /// The write at this position (0: to b, 1: to a) stalled.
    Stalled(usize),
    Idle,
    /// The relay is stopping.
    Shutdown,
}

/// Relays frames between `a` and `b` until both directions are closed, or until `timeouts`
/// or `shutdown` end the stream.
pub(super) async fn join(
    a: Stream,
    a_leftover: &[u8],
    b: Stream,
    b_leftover: &[u8],
    timeouts: Timeouts,
    shutdown: impl std::future::Future<Output = ()>,
) -> Joined {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let mut a_write = WatchedWrite::new(a_write);
    let mut b_write = WatchedWrite::new(b_write);
    // Position 0 is written a→b, position 1 b→a.
    let writes = [b_write.progress(), a_write.progress()];
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
    let a_to_b = Direction::default();
    let b_to_a = Direction::default();
    let frames = Cell::new(0u64);
    let cut = {
        let mut forward_a = std::pin::pin!(forward(a_reader, &mut b_write, &a_to_b, &frames));
        let mut forward_b = std::pin::pin!(forward(b_reader, &mut a_write, &b_to_a, &frames));
        let both = async {
            monoio::select! {
                end = &mut forward_a => finish_other(end, &mut forward_b).await,
                end = &mut forward_b => finish_other(end, &mut forward_a).await,
            }
        };
        monoio::select! {
            () = both => None,
            index = stalled_write(timeouts.write_stall, &writes) => Some(Cut::Stalled(index)),
            () = idle_cut(timeouts.idle, &frames) => Some(Cut::Idle),
            () = shutdown => Some(Cut::Shutdown),
        }
    };
    match &cut {
        None => {}
        Some(Cut::Stalled(index)) => {
            tracing::debug!(
                stalled = if *index == 0 { "a" } else { "b" },
                "relayed stream ended: a write made no progress"
            );
            // The side that still reads gets a close.
            let (other, told, progress) = if *index == 0 {
                (&mut a_write, &b_to_a, &writes[1])
            } else {
                (&mut b_write, &a_to_b, &writes[0])
            };
            let reason = "peer stopped reading";
            tell_close(other, told, progress, CloseCode::INTERNAL_ERROR, reason).await;
        }
        Some(cut @ (Cut::Idle | Cut::Shutdown)) => {
            let reason = if matches!(cut, Cut::Idle) {
                "idle timeout"
            } else {
                "relay shutting down"
            };
            tracing::debug!(reason, "relayed stream ended by the relay");
            let to_a = tell_close(
                &mut a_write,
                &b_to_a,
                &writes[1],
                CloseCode::GOING_AWAY,
                reason,
            );
            let to_b = tell_close(
                &mut b_write,
                &a_to_b,
                &writes[0],
                CloseCode::GOING_AWAY,
                reason,
            );
            monoio::join!(to_a, to_b);
        }
    }
    Joined {
        a_to_b: a_to_b.relayed.get(),
        b_to_a: b_to_a.relayed.get(),
        write_stalled: matches!(cut, Some(Cut::Stalled(_))),
        idle: matches!(cut, Some(Cut::Idle)),
    }
}

/// Sends a close frame to the side written through `write`, unless it has one already
/// (`told`'s encoder refuses a second) or is in the middle of a frame (`progress`); bounded by
/// [`STALL_CLOSE_GRACE`].
async fn tell_close<W: AsyncWriteRent>(
    write: &mut W,
    told: &Direction,
    progress: &SharedProgress,
    code: CloseCode,
    reason: &str,
) {
    if progress.get().is_pending() {
        return;
    }
    let mut out = Vec::new();
    if told.close(&mut out, CloseFrame::new(code, reason)) {
        let _ = monoio::time::timeout(STALL_CLOSE_GRACE, write.write_all(out)).await;
    }
}

/// What one direction did so far, readable after it was abandoned.
struct Direction {
    /// Payload bytes relayed.
    relayed: Cell<u64>,
    /// Every frame written to the writing side: forwarded data keeps its message sequencing,
    /// and nothing follows a close frame that went (or was being written) there.
    encoder: RefCell<Encoder>,
}

impl Default for Direction {
    fn default() -> Self {
        Self {
            relayed: Cell::new(0),
            encoder: RefCell::new(Encoder::new(Role::Server)),
        }
    }
}

impl Direction {
    /// Appends the close frame for the writing side to `out`; false when one went already.
    fn close(&self, out: &mut Vec<u8>, frame: CloseFrame<'_>) -> bool {
        self.encoder.borrow_mut().close(out, &frame, None).is_ok()
    }
}

async fn finish_other<F>(first: End, other: &mut std::pin::Pin<&mut F>)
where
    F: std::future::Future<Output = End>,
{
    match first {
        End::Closed => {
            other.await;
        }
        End::Abandoned => {
            let _ = monoio::time::timeout(ABANDON_GRACE, other).await;
        }
    }
}

/// Relays one direction, keeping `done` up to date; returns how it ended.
async fn forward<R: AsyncReadRent, W: AsyncWriteRent>(
    mut reader: WsReader<R>,
    writer: &mut W,
    done: &Direction,
    frames: &Cell<u64>,
) -> End {
    loop {
        let event = match reader.next_event().await {
            Ok(event) => {
                count_frame(frames);
                event
            }
            Err(e) => {
                let (code, reason) = match &e {
                    ReadError::Protocol(p) => (p.close_code(), p.as_str()),
                    _ => (CloseCode::GOING_AWAY, "peer disconnected"),
                };
                tracing::debug!(error = %e, "relayed stream side ended abnormally");
                let mut out = Vec::new();
                if done.close(&mut out, CloseFrame::new(code, reason)) {
                    let _ = writer.write_all(out).await;
                }
                return End::Abandoned;
            }
        };
        let mut out = Vec::new();
        let encoded = match event {
            WsEvent::Data {
                kind,
                payload,
                message_end,
                ..
            } => {
                if payload.is_empty() && !message_end {
                    continue;
                }
                let payload_len = len_u64(payload.len());
                let mut bytes = [0u8; MAX_HEADER_LEN];
                let header = done.encoder.borrow_mut().data_header(
                    &mut bytes,
                    kind,
                    message_end,
                    payload_len,
                    None,
                );
                let Ok(len) = header else {
                    return End::Abandoned;
                };
                done.relayed
                    .set(done.relayed.get().saturating_add(payload_len));
                if reader
                    .write_payload(writer, &bytes[..len], payload)
                    .await
                    .is_err()
                {
                    return End::Abandoned;
                }
                continue;
            }
            WsEvent::Ping(p) => done
                .encoder
                .borrow_mut()
                .ping(&mut out, reader.bytes(p), None),
            WsEvent::Pong(p) => done
                .encoder
                .borrow_mut()
                .pong(&mut out, reader.bytes(p), None),
            WsEvent::Close { code, reason } => {
                let reason = reader.text(reason);
                if done.close(&mut out, CloseFrame { code, reason }) {
                    let _ = writer.write_all(out).await;
                }
                return End::Closed;
            }
        };
        if encoded.is_err() || writer.write_all(out).await.0.is_err() {
            return End::Abandoned;
        }
    }
}

#[cfg(test)]
mod tests {
    use monoio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::proto::ws::encode::push_frame;
    use crate::proto::ws::OpCode;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// A connected loopback pair: (the end given to `join`, the end the test drives).
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (connected, accepted) = monoio::join!(TcpStream::connect(addr), listener.accept());
        let joined = Stream::plain(accepted.expect("accept").0).expect("stream");
        (joined, connected.expect("connect"))
    }

    #[test]
    fn a_side_that_stops_reading_ends_the_join_and_the_other_side_gets_1011() {
        run(async {
            let stall = Duration::from_millis(200);
            let (a, sender) = pair().await;
            let (b, _listener_never_reads) = pair().await;
            let timeouts = Timeouts {
                write_stall: Some(stall),
                idle: None,
            };
            let joined = monoio::spawn(async move {
                join(a, &[], b, &[], timeouts, std::future::pending()).await
            });
            let (read, mut write) = sender.into_split();
            // The sender sends (masked, as a client must) until every buffer towards the
            // silent listener is full.
            monoio::spawn(async move {
                loop {
                    let mut frame = Vec::new();
                    push_frame(
                        &mut frame,
                        true,
                        OpCode::Binary,
                        &[7u8; 64 * 1024],
                        Some([1, 2, 3, 4]),
                    )
                    .expect("frame");
                    if write.write_all(frame).await.0.is_err() {
                        return;
                    }
                }
            });
            let joined = joined.await;
            assert!(joined.write_stalled);
            assert!(joined.a_to_b > 0, "bytes flowed before the stall");
            let mut reader = WsReader::new(read, Role::Client, forward_limits(), &[], 1024);
            match reader.next_event().await.expect("close") {
                WsEvent::Close { code, reason } => {
                    assert_eq!(code, Some(CloseCode::INTERNAL_ERROR));
                    assert_eq!(reader.text(reason), "peer stopped reading");
                }
                other => panic!("expected close, got {other:?}"),
            }
        });
    }
}
