//! Request body bytes the daemon holds (protocol §6.4; nginx's `proxy_request_buffering on`):
//! a whole body kept to send it with `Content-Length`, or the pieces of a streamed body
//! gathered into chunks of at least [`MIN_CHUNK`] bytes. Room for the chunk-size line is kept
//! in front of the bytes, so a chunk goes to the target in one write without another copy.

use std::io;
use std::num::NonZeroUsize;

use monoio::buf::IoBuf;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use crate::daemon::listener::upstream::request::MAX_CHUNK_PREFIX_LEN;
use crate::daemon::listener::upstream::ChunkPrefix;

/// The smallest chunk a streamed request body is sent in (except its last one): relays send
/// a body in frames of a few hundred bytes, and a chunk per frame costs the target a parse
/// and a read per frame.
pub(crate) const MIN_CHUNK: usize = 16 * 1024;

/// Room in front of the bytes for the longest chunk prefix.
const HEADROOM: usize = MAX_CHUNK_PREFIX_LEN;

/// A buffer that grew past this after a chunk went out is given back: the large buffer of a
/// body that outgrew `request_buffer` is not kept for the rest of the stream.
const KEEP_CAPACITY: usize = 4 * MIN_CHUNK;

/// Body bytes with room for a chunk prefix in front.
pub(crate) struct BodyBuffer {
    bytes: Vec<u8>,
}

impl Default for BodyBuffer {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BodyBuffer {
    /// An empty buffer with room for `capacity` body bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(HEADROOM + capacity);
        bytes.resize(HEADROOM, 0);
        Self { bytes }
    }

    /// The body bytes held.
    #[cfg(test)]
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[HEADROOM..]
    }

    /// How many body bytes are held.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - HEADROOM
    }

    /// Whether no body byte is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends body bytes.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// Appends body bytes, growing the allocation geometrically but never past `limit` body
    /// bytes unless `data` itself needs more (a body held up to a limit does not get twice
    /// the limit's memory from doubling).
    pub(crate) fn extend_capped(&mut self, data: &[u8], limit: usize) {
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            let doubled = self.bytes.capacity().saturating_mul(2);
            let capped = doubled.min(HEADROOM.saturating_add(limit)).max(needed);
            self.bytes.reserve_exact(capped - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
    }

    /// Writes the held bytes to `out` as they are (a `Content-Length` body) and keeps them, so
    /// the body can be sent again on a fresh connection.
    pub(crate) async fn write_whole<W: AsyncWriteRent>(&mut self, out: &mut W) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.bytes);
        let (result, slice) = out.write_all(bytes.slice(HEADROOM..)).await;
        self.bytes = slice.into_inner();
        result.map(|_| ())
    }

    /// Writes the held bytes to `out` as one chunk (`first` when no chunk precedes it) and
    /// empties the buffer; nothing is written when it is empty. Returns whether a chunk went
    /// out.
    pub(crate) async fn write_chunk<W: AsyncWriteRent>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> io::Result<bool> {
        let Some(size) = NonZeroUsize::new(self.len()) else {
            return Ok(false);
        };
        let prefix = ChunkPrefix::new(first, size);
        let start = HEADROOM - prefix.as_bytes().len();
        self.bytes[start..HEADROOM].copy_from_slice(prefix.as_bytes());
        let bytes = std::mem::take(&mut self.bytes);
        let (result, slice) = out.write_all(bytes.slice(start..)).await;
        let mut bytes = slice.into_inner();
        if bytes.capacity() > HEADROOM + KEEP_CAPACITY {
            bytes = Vec::with_capacity(HEADROOM + 2 * MIN_CHUNK);
        }
        bytes.resize(HEADROOM, 0);
        self.bytes = bytes;
        result.map(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::test_support::read_to_end;
    use crate::proto::http1::{BodyDecoder, BodyKind};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn chunks_carry_their_prefix_and_decode_back() {
        let wire = run(async {
            let (near, far) = monoio::net::UnixStream::pair().expect("pair");
            let reading = monoio::spawn(read_to_end(far));
            let mut near = near;
            let mut buffer = BodyBuffer::with_capacity(8);
            assert!(!buffer.write_chunk(&mut near, true).await.expect("empty"));
            buffer.extend(b"hello ");
            buffer.extend(b"world");
            assert_eq!(buffer.data(), b"hello world");
            assert!(buffer.write_chunk(&mut near, true).await.expect("write"));
            assert!(buffer.is_empty());
            buffer.extend(&[7u8; 300]);
            assert!(buffer.write_chunk(&mut near, false).await.expect("write"));
            near.write_all(crate::daemon::listener::upstream::chunked_end(true))
                .await
                .0
                .expect("end");
            drop(near);
            reading.await
        });
        assert!(wire.starts_with(b"b\r\nhello world\r\n12c\r\n"));
        let mut decoder = BodyDecoder::new(BodyKind::Chunked);
        let mut body = Vec::new();
        let mut input = &wire[..];
        while !decoder.is_done() {
            let step = decoder.decode(input).expect("valid chunked body");
            body.extend_from_slice(step.payload.unwrap_or_default());
            input = &input[step.consumed..];
        }
        assert_eq!(body, [&b"hello world"[..], &[7u8; 300]].concat());
    }

    #[test]
    fn a_whole_body_is_written_as_is_and_kept_for_a_retry() {
        let wire = run(async {
            let (near, far) = monoio::net::UnixStream::pair().expect("pair");
            let reading = monoio::spawn(read_to_end(far));
            let mut near = near;
            let mut buffer = BodyBuffer::default();
            buffer.extend(b"abc");
            buffer.write_whole(&mut near).await.expect("write");
            buffer.write_whole(&mut near).await.expect("again");
            assert_eq!(buffer.data(), b"abc");
            drop(near);
            reading.await
        });
        assert_eq!(wire, b"abcabc");
    }

    #[test]
    fn a_large_buffer_is_given_back_after_its_chunk() {
        run(async {
            let (near, far) = monoio::net::UnixStream::pair().expect("pair");
            let reading = monoio::spawn(read_to_end(far));
            let mut near = near;
            let mut buffer = BodyBuffer::with_capacity(1 << 20);
            buffer.extend(&vec![1u8; 1 << 20]);
            buffer.write_chunk(&mut near, true).await.expect("write");
            assert!(buffer.bytes.capacity() <= HEADROOM + KEEP_CAPACITY);
            drop(near);
            assert_eq!(reading.await.len(), (1 << 20) + "100000\r\n".len());
        });
    }
}
