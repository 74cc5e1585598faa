//! Reading WebSocket frames from a socket into a [`ReadBuf`] and decoding them in place.
//!
//! Events are returned as ranges into the reader's buffer rather than as borrowed slices, so a
//! caller can keep the reader while it writes the payload elsewhere (straight from the buffer,
//! see [`WsReader::write_payload`]). The bytes of an event stay in place until the next call to
//! [`WsReader::next_event`].

use std::io;
use std::ops::Range;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::read_buf::{ReadBuf, INITIAL_READ_BYTES};
use crate::proto::ws::{
    CloseCode, CloseFrame, DataKind, Decoder, Event, Limits, Role, WsError, MAX_HEADER_LEN,
};

/// One decoded event; payload positions are ranges into the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A chunk of a data message (see [`Event::Data`]).
    Data {
        kind: DataKind,
        payload: Range<usize>,
        frame_end: bool,
        message_end: bool,
    },
    Ping(Range<usize>),
    Pong(Range<usize>),
    /// The peer's close frame: its code (None when empty) and the range of its reason.
    Close {
        code: Option<CloseCode>,
        reason: Range<usize>,
    },
}

/// Why reading a WebSocket failed.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed.
    Io(io::Error),
    /// The peer broke a protocol rule; fail the connection with `err.close_code()`.
    Protocol(WsError),
    /// The TCP connection ended without a close frame (abnormal closure, 1006).
    Eof,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Eof => f.write_str("connection closed without a close frame"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The read side of one WebSocket connection.
pub struct WsReader<R> {
    io: R,
    buf: ReadBuf,
    decoder: Decoder,
    /// Bytes of the last event that the next call consumes.
    pending: usize,
}

/// The default read buffer: 64 KiB, the message size azbridge uses (protocol §5.3).
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

/// How many bytes the next read may take: when `remaining` payload bytes of the frame in
/// progress are still to come and no unread byte is buffered, just those, so that the read
/// after it starts at the next frame's header; otherwise no limit. Without this, one read that
/// ends mid-frame (the peer's write arrived in pieces) makes every later full-size read span
/// two frames, and a forwarder then writes two frames, or two pieces, per read (relay: two
/// writes per 256 KiB message instead of one; daemon: three writes to the target). A stream
/// of small frames is unaffected: its reads end mid-frame only when the peer's write did.
pub fn aligned_read_limit(remaining: u64, buffered: usize) -> usize {
    if buffered == 0 && remaining > 0 {
        usize::try_from(remaining).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    }
}

impl<R: AsyncReadRent> WsReader<R> {
    /// A reader for `role` over `io`; `leftover` holds bytes read past the handshake. The
    /// buffer starts at [`INITIAL_READ_BYTES`] and grows to `capacity` when a read fills it
    /// (an idle connection keeps little memory; a bulk transfer soon reads `capacity` at once).
    pub fn new(io: R, role: Role, limits: Limits, leftover: &[u8], capacity: usize) -> Self {
        let capacity = capacity.max(leftover.len());
        let mut buf = ReadBuf::growable(INITIAL_READ_BYTES, capacity, MAX_HEADER_LEN);
        buf.extend_from_slice(leftover);
        Self {
            io,
            buf,
            decoder: Decoder::new(role, limits),
            pending: 0,
        }
    }

    /// Decodes the next event, reading from the socket as needed.
    pub async fn next_event(&mut self) -> Result<WsEvent, ReadError> {
        self.buf.consume(self.pending);
        self.pending = 0;
        loop {
            let offset = self.buf.with_front_mut().1;
            let (consumed, event) = self
                .decoder
                .decode(self.buf.data_mut())
                .map_err(ReadError::Protocol)?;
            let end = offset + consumed;
            let range = |len: usize| end - len..end;
            let event = match event {
                None => {
                    self.buf.consume(consumed);
                    let limit =
                        aligned_read_limit(self.decoder.frame_payload_remaining(), self.buf.len());
                    match self.buf.fill_at_most(&mut self.io, limit).await {
                        Ok(0) => return Err(ReadError::Eof),
                        Ok(_) => continue,
                        Err(e) => return Err(ReadError::Io(e)),
                    }
                }
                Some(Event::Data {
                    kind,
                    payload,
                    frame_end,
                    message_end,
                }) => WsEvent::Data {
                    kind,
                    payload: range(payload.len()),
                    frame_end,
                    message_end,
                },
                Some(Event::Ping(p)) => WsEvent::Ping(range(p.len())),
                Some(Event::Pong(p)) => WsEvent::Pong(range(p.len())),
                Some(Event::Close(close)) => WsEvent::Close {
                    code: close.code,
                    reason: range(close.reason.len()),
                },
            };
            self.pending = consumed;
            return Ok(event);
        }
    }

    /// Gives a grown read buffer's memory back ([`ReadBuf::shrink`]); call between events.
    pub fn shrink_buffer(&mut self) {
        self.buf.shrink();
    }

    /// The bytes of a range returned by the last event.
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf.whole()[range]
    }

    /// The last event with its bytes, as the decoder gave it: what a channel's
    /// [`Inbound`](crate::proto::hc::channel::Inbound) takes.
    pub fn view(&self, event: &WsEvent) -> Event<'_> {
        match event {
            WsEvent::Data {
                kind,
                payload,
                frame_end,
                message_end,
            } => Event::Data {
                kind: *kind,
                payload: self.bytes(payload.clone()),
                frame_end: *frame_end,
                message_end: *message_end,
            },
            WsEvent::Ping(payload) => Event::Ping(self.bytes(payload.clone())),
            WsEvent::Pong(payload) => Event::Pong(self.bytes(payload.clone())),
            WsEvent::Close { code, reason } => Event::Close(CloseFrame {
                code: *code,
                reason: self.text(reason.clone()),
            }),
        }
    }

    /// The close reason of a [`WsEvent::Close`] as text (the decoder validated its UTF-8).
    pub fn text(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(self.bytes(range)).unwrap_or_default()
    }

    /// Writes a new frame header in front of the payload `range` of the last event (into bytes
    /// already consumed) and writes header + payload to `out` as one slice, without copying the
    /// payload. `header` is at most [`MAX_HEADER_LEN`] bytes and never longer than the bytes in
    /// front of the payload (the buffer keeps that much headroom).
    pub async fn write_payload<W: AsyncWriteRent>(
        &mut self,
        out: &mut W,
        header: &[u8],
        range: Range<usize>,
    ) -> io::Result<()> {
        let start = range.start.checked_sub(header.len()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no headroom in front of the payload",
            )
        })?;
        self.buf.whole_mut()[start..range.start].copy_from_slice(header);
        let vec = self.buf.take_vec();
        let (result, slice) = out.write_all(vec.slice(start..range.end)).await;
        self.buf.restore_vec(slice.into_inner());
        result.map(|_| ())
    }

    /// Whether the peer's close frame has been received.
    /// The socket itself, e.g. to drain it after a failure so that closing it sends no reset.
    pub fn io_mut(&mut self) -> &mut R {
        &mut self.io
    }

    pub fn close_received(&self) -> bool {
        self.decoder.close_received()
    }
}

#[cfg(test)]
mod tests {
    use monoio::buf::IoBufMut;
    use monoio::BufResult;

    use super::*;
    use crate::proto::ws::encode::push_frame;
    use crate::proto::ws::OpCode;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// Gives at most `caps[k]` bytes on read `k`, then as many as asked.
    struct Chunky {
        data: Vec<u8>,
        caps: Vec<usize>,
    }

    impl AsyncReadRent for Chunky {
        async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
            let asked = buf.bytes_total();
            let cap = if self.caps.is_empty() {
                usize::MAX
            } else {
                self.caps.remove(0)
            };
            let n = asked.min(cap).min(self.data.len());
            // SAFETY: `n` is at most the buffer's free space, and the bytes are initialised
            // by the copy before `set_init` declares them.
            unsafe {
                std::ptr::copy_nonoverlapping(self.data.as_ptr(), buf.write_ptr(), n);
                buf.set_init(n);
            }
            self.data.drain(..n);
            (Ok(n), buf)
        }

        async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
            (Ok(0), buf)
        }
    }

    #[test]
    fn reads_stop_at_the_frame_end_only_when_nothing_is_buffered() {
        assert_eq!(aligned_read_limit(100_000, 0), 100_000);
        assert_eq!(aligned_read_limit(5, 0), 5, "a small rest too");
        assert_eq!(aligned_read_limit(100_000, 3), usize::MAX, "bytes buffered");
        assert_eq!(aligned_read_limit(0, 0), usize::MAX, "between frames");
    }

    #[test]
    fn after_a_short_read_the_next_frame_arrives_in_one_piece() {
        run(async {
            const PAYLOAD: usize = 64 * 1024;
            let mut data = Vec::new();
            for byte in [1u8, 2, 3] {
                push_frame(&mut data, true, OpCode::Binary, &[byte; PAYLOAD], None).expect("frame");
            }
            let frame_len = data.len() / 3;
            // The first read fills the small initial buffer (which then grows), the second
            // ends mid-frame.
            let io = Chunky {
                data,
                caps: vec![usize::MAX, 1000],
            };
            // Room for exactly one whole frame, as the pumps size it.
            let mut reader = WsReader::new(io, Role::Client, Limits::default(), &[], frame_len);
            let mut chunks = Vec::new();
            for _ in 0..5 {
                match reader.next_event().await.expect("event") {
                    WsEvent::Data {
                        payload, frame_end, ..
                    } => chunks.push((reader.bytes(payload.clone())[0], payload.len(), frame_end)),
                    other => panic!("expected data, got {other:?}"),
                }
            }
            let header = frame_len - PAYLOAD;
            let first = INITIAL_READ_BYTES - header;
            assert_eq!(
                chunks,
                vec![
                    (1, first, false),
                    (1, 1000, false),
                    (1, PAYLOAD - first - 1000, true),
                    (2, PAYLOAD, true),
                    (3, PAYLOAD, true)
                ]
            );
        });
    }
}
