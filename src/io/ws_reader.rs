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
    CloseCode, DataKind, Decoder, Event, Limits, Role, WsError, MAX_HEADER_LEN,
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

/// The default read buffer: 64 KiB, the message size the spec's bridges use (§5.3).
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

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
                    match self.buf.fill(&mut self.io).await {
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

    /// The bytes of a range returned by the last event.
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf.whole()[range]
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
