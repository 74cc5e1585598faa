//! azbridge on the other end of a relayed stream (protocol §5.5; bytes and rules in
//! [`crate::proto::azbridge`]), the thin I/O around the preamble:
//!
//! - listener side (`peer = "azbridge"` on a hybrid connection, for `azbridge -L` senders):
//!   the rendezvous is accepted first, because the port name travels inside the stream; the
//!   preamble is read within `handshake_timeout`, the port name picks the target (`targets`,
//!   else `target`), the target is connected, and only then is `[1, 0, 0]` sent, so a sender
//!   whose target is down or unknown gets no acknowledgement and closes, as azbridge's own
//!   listener makes it do. Refusals are counted in `hycod_streams_rejected_total`.
//! - sender side (`peer = "azbridge"` on a forward, for `azbridge -T` listeners): the preamble
//!   is written as one binary message, and the stream goes through only on `[1, 0, 0]`.
//!
//! Both sides read the preamble or its answer out of whole frames; the pump that carries the
//! rest starts at the next frame, and payload that followed in the same frame goes first.

use std::fmt;
use std::io;
use std::time::Duration;

use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;

use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::proto::azbridge::{collect, CollectError, Collected};
use crate::proto::ws::encode::fit_close_reason;
use crate::proto::ws::mask_key;
use crate::proto::ws::{CloseCode, CloseFrame, DataKind, Encoder, MAX_HEADER_LEN};

pub(crate) mod listener;
pub(crate) mod sender;

/// The most bytes read while looking for a preamble or its answer: the frames that carry them
/// are small (azbridge writes 4 bytes, then the name, then the answer, each as its own
/// message), so a stream that needs more is not speaking the protocol.
const MAX_PREFIX_BUFFER: usize = 64 * 1024 + MAX_HEADER_LEN;

/// Why the bytes at the start of a stream could not be read.
#[derive(Debug)]
pub(crate) enum PrefixError {
    /// The frames are not a preamble (or answer) azbridge writes.
    Protocol(CollectError),
    /// More than [`MAX_PREFIX_BUFFER`] bytes came without completing it.
    TooLarge,
    /// The connection ended before it was complete.
    Eof,
    /// The socket failed.
    Io(io::Error),
    /// It did not arrive within this long.
    Timeout(Duration),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => e.fmt(f),
            Self::TooLarge => write!(f, "no complete preamble in {MAX_PREFIX_BUFFER} bytes"),
            Self::Eof => f.write_str("the stream ended before the preamble was complete"),
            Self::Io(e) => write!(f, "reading the preamble failed: {e}"),
            Self::Timeout(after) => write!(f, "no preamble within {} ms", after.as_millis()),
        }
    }
}

impl std::error::Error for PrefixError {}

/// The wanted bytes, and the raw bytes read past them.
pub(crate) struct Prefix {
    /// What [`collect`] found.
    pub collected: Collected,
    /// Everything read, indexed by `collected`'s ranges.
    pub raw: Vec<u8>,
}

impl Prefix {
    /// Stream payload that followed the wanted bytes in their frame.
    pub(crate) fn rest(&self) -> &[u8] {
        &self.raw[self.collected.rest.clone()]
    }

    /// Raw WebSocket bytes after the frame that completed the wanted bytes.
    pub(crate) fn leftover(&self) -> &[u8] {
        &self.raw[self.collected.consumed..]
    }
}

/// Reads `stream` (after `leftover`, bytes already read past the handshake) until `wanted`
/// payload bytes are complete in whole frames, within `timeout`.
pub(crate) async fn read_prefix(
    stream: &mut Stream,
    leftover: &[u8],
    wanted: fn(&[u8]) -> usize,
    timeout: Duration,
) -> Result<Prefix, PrefixError> {
    let reading = async {
        let mut buf = ReadBuf::new(MAX_PREFIX_BUFFER, 0);
        buf.extend_from_slice(leftover);
        loop {
            if let Some(collected) = collect(buf.data(), wanted).map_err(PrefixError::Protocol)? {
                return Ok(Prefix {
                    collected,
                    raw: buf.data().to_vec(),
                });
            }
            if buf.is_full() {
                return Err(PrefixError::TooLarge);
            }
            if buf.fill(stream).await.map_err(PrefixError::Io)? == 0 {
                return Err(PrefixError::Eof);
            }
        }
    };
    monoio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(PrefixError::Timeout(timeout)))
}

/// Writes `payload` as one masked binary message (the daemon is the WebSocket client), the
/// next frame of `encoder`'s connection.
pub(crate) async fn write_message(
    stream: &mut Stream,
    encoder: &mut Encoder,
    payload: &[u8],
) -> io::Result<()> {
    let mut frame = vec![0u8; MAX_HEADER_LEN];
    frame.extend_from_slice(payload);
    let range = encoder
        .data_in_place(
            &mut frame,
            MAX_HEADER_LEN..MAX_HEADER_LEN + payload.len(),
            DataKind::Binary,
            true,
            mask_key(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    stream.write_all(frame.slice(range)).await.0.map(|_| ())
}

/// Ends the stream with a Close carrying `code` and `reason`, best effort; nothing when
/// `encoder`'s connection sent its close already.
pub(crate) async fn close(
    stream: &mut Stream,
    encoder: &mut Encoder,
    code: CloseCode,
    reason: &str,
) {
    let mut frame = Vec::new();
    let close = CloseFrame::new(code, fit_close_reason(reason));
    if encoder.close(&mut frame, &close, mask_key()).is_ok() {
        let _ = stream.write_all(frame).await;
    }
}
