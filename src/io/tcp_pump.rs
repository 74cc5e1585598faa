//! Joins a client WebSocket (a listener's rendezvous socket) with a TCP connection (its stream
//! target): protocol §5.3–§5.4, architecture §2 "Stream mode".
//!
//! - relay → target: every data payload chunk, text or binary, goes to the TCP socket straight
//!   from the reader's buffer (no copy, no message assembly, no message boundaries kept).
//! - target → relay: each TCP read (at most [`CHUNK`] bytes) is masked in place and leaves as one
//!   binary message, its header written into [`MAX_HEADER_LEN`] bytes of headroom: one write.
//! - half-close (protocol §5.3): the target's FIN becomes Close(1000), the relay's Close a
//!   `shutdown(Write)`; the other direction flows on. Returns when both directions are done.
//! - one buffer per direction ([`PumpSettings`]); a direction reads again only after its last
//!   chunk was written in full (backpressure). A buffer grown by a full read goes back to its
//!   first size when its side stays quiet ([`super::quiet_release`]).
//! - ends: a frame or message over [`PumpSettings::limits`] → Close(1009); no byte either way for
//!   the idle timeout → Close(1001); a write stalled past the write-stall timeout ends the
//!   stream (docs/reliability.md "Faults"); with a ping interval, no answer to a ping within the
//!   next interval → Close(1001) `keep-alive timeout`; any failure → a close frame (1011 or the
//!   broken rule's code) when the relay socket still works. Pings are answered with pongs.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Split, Splitable,
};

use super::quiet_release::{return_freed_memory_soon, Releasable, RELEASE_AFTER};
use super::read_buf::{grown_capacity, INITIAL_READ_BYTES};
use super::watched_write::WatchedWrite;
use super::ws_reader::{ReadError, WsEvent, WsReader};
use crate::proto::ws::encode::fit_close_reason;
use crate::proto::ws::{
    CloseCode, CloseFrame, DataKind, EncodeError, Encoder, Limits, Role, MAX_HEADER_LEN,
};

/// The largest TCP read forwarded as one message, and the size each direction's buffer grows
/// to. Bridges use 64 KiB (protocol §5.3, §5.4 calls ≤ 64 KiB "a good size"); any message size is
/// valid WebSocket, the .NET SDK sends one message per `Write` of any size, and 256 KiB cuts
/// the system calls of a bulk transfer about fivefold over 64 KiB (docs/performance.md
/// "Optimisations").
pub const CHUNK: usize = 256 * 1024;

/// How long a close frame sent after a failure may take before the socket is dropped anyway.
const FAILURE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Where forwarded bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Payload bytes from the relay written to the TCP target.
    ToTarget,
    /// Bytes read from the TCP target sent to the relay.
    ToRelay,
}

impl Direction {
    /// The `direction` label value of the bytes metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::ToTarget => "to_target",
            Self::ToRelay => "to_relay",
        }
    }
}

/// One end of a pumped stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The relay's WebSocket (and the sender behind it).
    Relay,
    /// The TCP target.
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Relay => "relay",
            Self::Target => "target",
        })
    }
}

/// How a pump ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// Both directions finished cleanly (the relay's Close and the target's FIN); `first` is
    /// the side that finished first.
    Closed { first: Side },
    /// Reading from the relay failed: socket error, end without a close frame, or a broken
    /// protocol rule (answered with that rule's close code).
    RelayRead(ReadError),
    /// Writing to the relay failed.
    RelayWrite(io::Error),
    /// Reading from the target failed (e.g. a reset); the relay got Close(1011).
    TargetRead(io::Error),
    /// Writing to the target failed; the relay got Close(1011).
    TargetWrite(io::Error),
    /// No byte moved either way for this long ([`PumpSettings::idle_timeout`]); the relay got
    /// Close(1001).
    Idle(Duration),
    /// A write to `side` made no progress for `after` ([`PumpSettings::write_stall_timeout`]):
    /// that side stopped reading. The relay got Close(1011) when the target was the one.
    WriteStalled { side: Side, after: Duration },
    /// A keep-alive ping got no answer (nor any other frame) within this interval
    /// ([`PumpSettings::ping_interval`]); the relay got Close(1001).
    KeepaliveTimeout(Duration),
}

impl PumpEnd {
    /// The close frame owed to the relay after a failure, when its socket may still take one.
    fn failure_close(&self) -> Option<(CloseCode, &'static str)> {
        match self {
            Self::Closed { .. } | Self::RelayWrite(_) => None,
            Self::RelayRead(ReadError::Protocol(e)) => Some((e.close_code(), e.as_str())),
            Self::RelayRead(_) => None,
            Self::TargetRead(_) => Some((CloseCode::INTERNAL_ERROR, "target connection failed")),
            Self::TargetWrite(_) => Some((CloseCode::INTERNAL_ERROR, "target connection failed")),
            Self::Idle(_) => Some((CloseCode::GOING_AWAY, "idle timeout")),
            Self::KeepaliveTimeout(_) => Some((CloseCode::GOING_AWAY, "keep-alive timeout")),
            Self::WriteStalled {
                side: Side::Target, ..
            } => Some((CloseCode::INTERNAL_ERROR, "target stopped reading")),
            Self::WriteStalled {
                side: Side::Relay, ..
            } => None,
        }
    }
}

impl fmt::Display for PumpEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed { first } => write!(f, "closed by both sides, {first} first"),
            Self::RelayRead(e) => write!(f, "reading from the relay failed: {e}"),
            Self::RelayWrite(e) => write!(f, "writing to the relay failed: {e}"),
            Self::TargetRead(e) => write!(f, "reading from the target failed: {e}"),
            Self::TargetWrite(e) => write!(f, "writing to the target failed: {e}"),
            Self::Idle(after) => write!(
                f,
                "no byte moved either way for {} ms (idle timeout)",
                after.as_millis()
            ),
            Self::WriteStalled { side, after } => write!(
                f,
                "a write to the {side} made no progress for {} ms (write stall timeout)",
                after.as_millis()
            ),
            Self::KeepaliveTimeout(after) => write!(
                f,
                "the relay side answered no keep-alive ping within {} ms",
                after.as_millis()
            ),
        }
    }
}

/// What a finished pump did.
#[derive(Debug)]
pub struct PumpReport {
    /// Payload bytes written to the target.
    pub to_target: u64,
    /// Bytes read from the target and sent to the relay.
    pub to_relay: u64,
    /// How it ended.
    pub end: PumpEnd,
}

/// Draws a fresh masking key for each frame sent to the relay (RFC 6455 §5.3, §10.3).
pub type MaskSource = fn() -> Option<[u8; 4]>;

/// What one pumped stream may cost (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpSettings {
    /// Bytes of buffer per direction (the largest TCP read forwarded as one message).
    pub buffer: usize,
    /// Frame and message limits for what the relay sends.
    pub limits: Limits,
    /// End the stream when no byte moved either way for this long; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// End the stream when a write to either side made no progress for this long; `None` =
    /// never.
    pub write_stall_timeout: Option<Duration>,
    /// Ping the relay after this much silence from it, and end the stream when the next
    /// interval brings nothing back; `None` = no keep-alive.
    pub ping_interval: Option<Duration>,
}

impl Default for PumpSettings {
    /// [`CHUNK`] per direction, frames and messages of any size (they are streamed chunk by
    /// chunk, never collected), no idle or write stall timeout, no keep-alive.
    fn default() -> Self {
        Self {
            buffer: CHUNK,
            limits: Limits {
                max_frame_size: u64::MAX,
                max_message_size: u64::MAX,
            },
            idle_timeout: None,
            write_stall_timeout: None,
            ping_interval: None,
        }
    }
}

/// [`pump_with`] with the default [`PumpSettings`] (the unit tests' shorthand).
#[cfg(test)]
pub async fn pump<R, T>(
    relay: R,
    leftover: &[u8],
    target: T,
    mask: MaskSource,
    on_bytes: impl Fn(Direction, usize),
) -> PumpReport
where
    R: Split + CancelableAsyncReadRent + AsyncWriteRent,
    T: Split + CancelableAsyncReadRent + AsyncWriteRent,
{
    pump_with(
        relay,
        leftover,
        target,
        mask,
        on_bytes,
        &PumpSettings::default(),
    )
    .await
}

/// Pumps bytes between the client WebSocket `relay` (`leftover`: bytes read past its handshake)
/// and the TCP connection `target` until both directions are done, one side fails, or the
/// stream idles for `settings.idle_timeout`, or a write stalls for
/// `settings.write_stall_timeout`. `on_bytes` is told of every forwarded chunk as it
/// goes (for live metrics).
pub async fn pump_with<R, T>(
    relay: R,
    leftover: &[u8],
    target: T,
    mask: MaskSource,
    on_bytes: impl Fn(Direction, usize),
    settings: &PumpSettings,
) -> PumpReport
where
    R: Split + CancelableAsyncReadRent + AsyncWriteRent,
    T: Split + CancelableAsyncReadRent + AsyncWriteRent,
{
    let (relay_read, relay_write) = relay.into_split();
    let (target_read, target_write) = target.into_split();
    // A first-size buffer's reads are never cancelled; a grown one's are, after a quiet second.
    let relay_read = Releasable::new(relay_read, RELEASE_AFTER, INITIAL_READ_BYTES);
    let target_read = Releasable::new(target_read, RELEASE_AFTER, INITIAL_READ_BYTES);
    let target_write = WatchedWrite::new(target_write);
    let relay_write = WatchedWrite::new(relay_write);
    // The watched writes and the side each one goes to.
    let writes = [target_write.progress(), relay_write.progress()];
    let written_to = [Side::Target, Side::Relay];
    let writer = RelayWriter::new(relay_write, mask);
    // Room for one whole frame of `settings.buffer` bytes with its header: one write per frame.
    let mut reader = WsReader::new(
        relay_read,
        Role::Client,
        settings.limits,
        leftover,
        settings.buffer.saturating_add(MAX_HEADER_LEN),
    );
    let to_target = Cell::new(0u64);
    let to_relay = Cell::new(0u64);
    let last_moved = Cell::new(settings.idle_timeout.map(|_| Instant::now()));
    let count = |direction: Direction, n: usize| {
        if last_moved.get().is_some() {
            last_moved.set(Some(Instant::now()));
        }
        let total = match direction {
            Direction::ToTarget => &to_target,
            Direction::ToRelay => &to_relay,
        };
        total.set(
            total
                .get()
                .saturating_add(u64::try_from(n).unwrap_or(u64::MAX)),
        );
        on_bytes(direction, n);
    };
    // When the relay was last heard from (any frame), `None` once it closed; kept only with a
    // keep-alive.
    let heard = settings
        .ping_interval
        .map(|_| Cell::new(Some(Instant::now())));
    let both = async {
        let mut down = std::pin::pin!(relay_to_target(
            &mut reader,
            target_write,
            &writer,
            &count,
            heard.as_ref()
        ));
        let mut up = std::pin::pin!(target_to_relay(
            target_read,
            &writer,
            &count,
            settings.buffer
        ));
        monoio::select! {
            done = &mut down => match done {
                Ok(()) => up.await.err().unwrap_or(PumpEnd::Closed { first: Side::Relay }),
                Err(end) => {
                    if let Some((code, reason)) = end.failure_close() {
                        // The other direction may be in the middle of a frame: the close goes
                        // out after it, and nothing after the close.
                        monoio::select! {
                            () = Box::pin(writer.close_when_free(code, reason)) => {}
                            _ = &mut up => {}
                        }
                    }
                    end
                }
            },
            done = &mut up => match done {
                Ok(()) => down.await.err().unwrap_or(PumpEnd::Closed { first: Side::Target }),
                Err(end) => end,
            },
        }
    };
    let end = monoio::select! {
        end = both => end,
        end = timers::run(timers::Timers {
            idle: settings.idle_timeout,
            last_moved: &last_moved,
            stall: settings.write_stall_timeout,
            writes: &writes,
            written_to: &written_to,
            ping_interval: settings.ping_interval,
            heard: heard.as_ref(),
            writer: &writer,
        }) => end,
    };
    if let Some((code, reason)) = end.failure_close() {
        // Boxed, like every failure path: the pump's future is as large as its largest
        // state, and each stream holds one for its whole life.
        Box::pin(writer.close_after_failure(code, reason)).await;
        if let PumpEnd::RelayRead(ReadError::Protocol(_)) = end {
            // Unread bytes at close(2) turn our FIN into a reset, which may destroy the close
            // frame before the relay reads it: read until the relay closes (RFC 6455 §7.1.1).
            let drained =
                monoio::time::timeout(FAILURE_CLOSE_GRACE, drain(reader.io_mut().get_mut()));
            let _ = Box::pin(drained).await;
        }
    }
    PumpReport {
        to_target: to_target.get(),
        to_relay: to_relay.get(),
        end,
    }
}

/// Reads and discards until end of stream or an error.
async fn drain<R: AsyncReadRent>(io: &mut R) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (read, back) = io.read(buf).await;
        buf = back;
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
    }
}

/// relay → target: payload chunks straight from the read buffer; pongs for pings; the relay's
/// Close half-closes the TCP socket. Every frame read sets `heard` (when keeping alive), the
/// Close clears it.
async fn relay_to_target<R, T, W>(
    reader: &mut WsReader<Releasable<R>>,
    mut target: T,
    writer: &RelayWriter<W>,
    count: &impl Fn(Direction, usize),
    heard: Option<&Cell<Option<Instant>>>,
) -> Result<(), PumpEnd>
where
    R: CancelableAsyncReadRent,
    T: AsyncWriteRent,
    W: AsyncWriteRent,
{
    loop {
        let event = match reader.next_event().await {
            Ok(event) => event,
            Err(ReadError::Io(_)) if reader.io_mut().take_released() => {
                reader.shrink_buffer();
                return_freed_memory_soon();
                continue;
            }
            Err(e) => return Err(PumpEnd::RelayRead(e)),
        };
        if let Some(heard) = heard {
            let closing = matches!(event, WsEvent::Close { .. });
            heard.set((!closing).then(Instant::now));
        }
        match event {
            WsEvent::Data { payload, .. } => {
                let n = payload.len();
                if n == 0 {
                    continue;
                }
                reader
                    .write_payload(&mut target, &[], payload)
                    .await
                    .map_err(PumpEnd::TargetWrite)?;
                count(Direction::ToTarget, n);
            }
            WsEvent::Ping(payload) => {
                let payload = reader.bytes(payload);
                writer
                    .send_control(|encoder, out, mask| encoder.pong(out, payload, mask))
                    .await
                    .map_err(PumpEnd::RelayWrite)?;
            }
            WsEvent::Pong(_) => {}
            WsEvent::Close { .. } => {
                target.shutdown().await.map_err(PumpEnd::TargetWrite)?;
                return Ok(());
            }
        }
    }
}

/// target → relay: one masked binary message per TCP read of at most `chunk` bytes; the
/// target's FIN becomes Close(1000). The buffer starts small, grows to `chunk` once a read fills
/// it, and goes back to its first size when the target is quiet ([`Releasable`]).
async fn target_to_relay<T, W>(
    mut target: Releasable<T>,
    writer: &RelayWriter<W>,
    count: &impl Fn(Direction, usize),
    chunk: usize,
) -> Result<(), PumpEnd>
where
    T: CancelableAsyncReadRent,
    W: AsyncWriteRent,
{
    const PAYLOAD_START: usize = MAX_HEADER_LEN;
    let first = INITIAL_READ_BYTES.min(chunk);
    let fresh = || {
        let mut buf = Vec::with_capacity(PAYLOAD_START + first);
        buf.resize(PAYLOAD_START, 0);
        buf
    };
    let mut room = first;
    let mut buf = fresh();
    loop {
        let (read, slice) = target
            .read(SliceMut::new(buf, PAYLOAD_START, PAYLOAD_START + room))
            .await;
        buf = slice.into_inner();
        let n = match read {
            Ok(n) => n,
            Err(_) if target.take_released() => {
                room = first;
                buf = fresh();
                return_freed_memory_soon();
                continue;
            }
            Err(e) => return Err(PumpEnd::TargetRead(e)),
        };
        let grown = grown_capacity(room, chunk, room, n);
        if grown > room {
            room = grown;
            buf.reserve_exact(PAYLOAD_START + room - buf.len());
        }
        if n == 0 {
            let normal = CloseFrame::new(CloseCode::NORMAL, "");
            writer
                .send_control(|encoder, out, mask| encoder.close(out, &normal, mask))
                .await
                .map_err(PumpEnd::RelayWrite)?;
            return Ok(());
        }
        let (sent, back) = writer
            .send_data(buf, PAYLOAD_START..PAYLOAD_START + n)
            .await;
        buf = back;
        sent.map_err(PumpEnd::RelayWrite)?;
        buf.truncate(PAYLOAD_START);
        count(Direction::ToRelay, n);
    }
}

/// The relay socket's write half, shared by both directions. A direction takes it for one
/// whole frame and puts it back, so frames never interleave (RFC 6455 §5.4) and a pong can go
/// out while the other direction waits on its TCP read. The half travels through a channel
/// that holds at most that one value: receiving it is taking the turn. Every frame is built
/// on one client-side [`Encoder`] while the turn is held: it masks each frame with a fresh key
/// and refuses anything after our close frame (RFC 6455 §5.5.1), which is then dropped.
struct RelayWriter<W> {
    put_back: flume::Sender<W>,
    take: flume::Receiver<W>,
    encoder: RefCell<Encoder>,
    mask: MaskSource,
}

impl<W: AsyncWriteRent> RelayWriter<W> {
    fn new(half: W, mask: MaskSource) -> Self {
        let (put_back, take) = flume::unbounded();
        // The receiver lives in `take`, so sending cannot fail.
        let _ = put_back.send(half);
        Self {
            put_back,
            take,
            encoder: RefCell::new(Encoder::new(Role::Client)),
            mask,
        }
    }

    /// Whether our close frame went (or is being written) to the relay.
    fn close_sent(&self) -> bool {
        self.encoder.borrow().close_sent()
    }

    /// Turns `buf[payload]` (with [`MAX_HEADER_LEN`] bytes of headroom before it) into one
    /// binary message in place when its turn comes and writes it; gives `buf` back. After our
    /// close the payload is dropped (`Ok`): only after a failure close, since otherwise the
    /// direction that sends data also sends the close.
    async fn send_data(
        &self,
        mut buf: Vec<u8>,
        payload: Range<usize>,
    ) -> (io::Result<()>, Vec<u8>) {
        let Ok(mut half) = self.take.recv_async().await else {
            return (Err(io::Error::from(io::ErrorKind::BrokenPipe)), buf);
        };
        let encoded = self.encoder.borrow_mut().data_in_place(
            &mut buf,
            payload,
            DataKind::Binary,
            true,
            (self.mask)(),
        );
        let frame = match encoded {
            Ok(frame) => frame,
            Err(e) => {
                let _ = self.put_back.send(half);
                return (refused(e), buf);
            }
        };
        let (written, slice) = half.write_all(buf.slice(frame)).await;
        let _ = self.put_back.send(half);
        (written.map(|_| ()), slice.into_inner())
    }

    /// Builds one control frame with `build` when its turn comes and writes it; after our
    /// close nothing is written (`Ok`).
    async fn send_control(
        &self,
        build: impl FnOnce(&mut Encoder, &mut Vec<u8>, Option<[u8; 4]>) -> Result<(), EncodeError>,
    ) -> io::Result<()> {
        let Ok(mut half) = self.take.recv_async().await else {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        };
        let mut frame = Vec::with_capacity(MAX_HEADER_LEN);
        if let Err(e) = build(&mut self.encoder.borrow_mut(), &mut frame, (self.mask)()) {
            let _ = self.put_back.send(half);
            return refused(e);
        }
        let (written, _) = half.write_all(frame).await;
        let _ = self.put_back.send(half);
        written.map(|_| ())
    }

    /// Sends a close frame after a failure, if the socket is not in the middle of another
    /// frame (a half-written frame cannot be followed by anything) and no Close went out yet.
    async fn close_after_failure(&self, code: CloseCode, reason: &str) {
        let Ok(half) = self.take.try_recv() else {
            return;
        };
        self.write_close(half, code, reason).await;
    }

    /// Sends a close frame after a failure once the other direction has finished the frame it
    /// is writing, unless a Close went out already.
    async fn close_when_free(&self, code: CloseCode, reason: &str) {
        let Ok(half) = self.take.recv_async().await else {
            return;
        };
        self.write_close(half, code, reason).await;
    }

    /// Writes our Close (within [`FAILURE_CLOSE_GRACE`]) unless one went already, and gives
    /// the half back.
    async fn write_close(&self, mut half: W, code: CloseCode, reason: &str) {
        let mut close = Vec::new();
        let frame = CloseFrame::new(code, fit_close_reason(reason));
        let encoded = self
            .encoder
            .borrow_mut()
            .close(&mut close, &frame, (self.mask)());
        if encoded.is_ok() {
            let _ = monoio::time::timeout(FAILURE_CLOSE_GRACE, half.write_all(close)).await;
        }
        let _ = self.put_back.send(half);
    }
}

/// A frame the encoder refused: dropped without error after our close, otherwise a write
/// failure.
fn refused(e: EncodeError) -> io::Result<()> {
    match e {
        EncodeError::SendAfterClose => Ok(()),
        e => Err(io::Error::other(e)),
    }
}

mod timers;

#[cfg(test)]
mod tests;
