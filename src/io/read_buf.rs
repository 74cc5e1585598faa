//! A worker-owned read buffer that sans-I/O decoders parse in place (design.md §2).
//!
//! Bytes live in `buf[start..buf.len()]`; `fill` reads more after them, straight from the socket
//! (or from TLS's decrypted output). The first `headroom` bytes are kept free after compaction so
//! a forwarder can write a frame header in front of a payload without moving the payload.

use std::io;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;

/// A read buffer with fixed capacity and header headroom.
#[derive(Debug)]
pub struct ReadBuf {
    /// Valid bytes end at `buf.len()`; spare capacity is where reads land.
    buf: Vec<u8>,
    start: usize,
    headroom: usize,
}

impl ReadBuf {
    /// A buffer holding up to `capacity` unread bytes, with `headroom` reserved bytes in front.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        let mut buf = Vec::with_capacity(headroom + capacity);
        buf.resize(headroom, 0);
        Self {
            buf,
            start: headroom,
            headroom,
        }
    }

    /// The unread bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The unread bytes, for in-place decoding (unmasking).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// The unread bytes together with the consumed bytes in front of them (at least the
    /// headroom): `(whole, offset_of_unread)`. A forwarder writes a new frame header into the
    /// consumed part right before a payload.
    pub fn with_front_mut(&mut self) -> (&mut [u8], usize) {
        (&mut self.buf[..], self.start)
    }

    /// All bytes from the start of the headroom to the end of the unread bytes.
    pub fn whole(&self) -> &[u8] {
        &self.buf
    }

    /// All bytes from the start of the headroom to the end of the unread bytes, writable.
    pub fn whole_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Appends bytes read elsewhere (e.g. past an HTTP head). Grows the buffer if needed.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Lends the storage to an owned-buffer write (monoio takes buffers by value); give it back
    /// with [`ReadBuf::restore_vec`] before any other call.
    pub fn take_vec(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Takes back the storage lent by [`ReadBuf::take_vec`].
    pub fn restore_vec(&mut self, vec: Vec<u8>) {
        self.buf = vec;
    }

    /// How many unread bytes there are.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether no unread bytes are left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks `n` unread bytes as consumed. `n` larger than [`ReadBuf::len`] is clamped.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.truncate(self.headroom);
            self.start = self.headroom;
        }
    }

    /// Whether the buffer has no room for another read even after compaction.
    pub fn is_full(&self) -> bool {
        self.len() == self.buf.capacity() - self.headroom
    }

    /// Reads once from `io` into the free space; returns the number of bytes read (0 = EOF).
    /// Moves unread bytes to the front first when the free space at the end is exhausted.
    /// A full buffer is an error of kind `OutOfMemory`: the caller's decoder must consume.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.buf.len() == self.buf.capacity() {
            if self.is_full() {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "read buffer full: the decoder consumed nothing",
                ));
            }
            self.buf.copy_within(self.start.., self.headroom);
            let unread = self.buf.len() - self.start;
            self.buf.truncate(self.headroom + unread);
            self.start = self.headroom;
        }
        let mut buf = std::mem::take(&mut self.buf);
        let end = buf.len();
        let total = buf.bytes_total();
        let (result, slice) = io.read(SliceMut::new(buf, end, total)).await;
        self.buf = slice.into_inner();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    #[test]
    fn fills_consumes_and_keeps_headroom_after_compaction() {
        run(async {
            let mut src: &[u8] = b"abcdefghij";
            let mut rb = ReadBuf::new(4, 14);
            assert_eq!(rb.fill(&mut src).await.expect("read"), 4);
            assert_eq!(rb.data(), b"abcd");
            rb.consume(3);
            assert_eq!(rb.data(), b"d");
            assert_eq!(rb.fill(&mut src).await.expect("read"), 3);
            assert_eq!(rb.data(), b"defg");
            let (whole, offset) = rb.with_front_mut();
            assert_eq!(offset, 14);
            assert_eq!(&whole[offset..], b"defg");
            rb.consume(4);
            assert!(rb.is_empty());
            assert_eq!(rb.fill(&mut src).await.expect("read"), 3);
            assert_eq!(rb.data(), b"hij");
            assert_eq!(rb.fill(&mut src).await.expect("read"), 0, "EOF");
        });
    }

    #[test]
    fn a_full_buffer_is_reported_not_overrun() {
        run(async {
            let mut src: &[u8] = b"abcdef";
            let mut rb = ReadBuf::new(2, 0);
            rb.fill(&mut src).await.expect("read");
            assert!(rb.is_full());
            let err = rb.fill(&mut src).await.expect_err("full");
            assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
            assert_eq!(rb.data(), b"ab");
        });
    }

    #[test]
    fn consume_past_the_end_is_clamped() {
        let mut rb = ReadBuf::new(8, 2);
        rb.consume(100);
        assert!(rb.is_empty());
        assert_eq!(rb.with_front_mut().1, 2);
    }
}
