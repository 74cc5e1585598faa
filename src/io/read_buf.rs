//! A worker-owned read buffer that sans-I/O decoders parse in place (architecture §2).
//!
//! Bytes live in `buf[start..buf.len()]`; `fill` reads more after them, straight from the socket
//! (or from TLS's decrypted output). The first `headroom` bytes are kept free after compaction so
//! a forwarder can write a frame header in front of a payload without moving the payload.
//!
//! A buffer made with [`ReadBuf::growable`] starts small and grows to its full capacity only
//! when a read fills all the space it had ([`grown_capacity`]): an idle stream keeps a few
//! hundred bytes per direction instead of a whole bulk-transfer buffer (the target is at most
//! 16 KiB of daemon memory per idle stream, docs/performance.md), while a bulk transfer reaches
//! full-size reads from its second read on.

use std::io;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;

/// The first size of a [`ReadBuf::growable`] buffer (and of other buffers that grow the same
/// way): enough for control frames, small messages and interactive traffic.
pub const INITIAL_READ_BYTES: usize = 1024;

/// The capacity (bytes for reads, headroom not counted) a growable buffer should have after a
/// read of `read` bytes into `free` bytes of free space, with `capacity` now and `max` at
/// most: the full `max` once a read filled all the free space (more is waiting), else
/// unchanged.
pub fn grown_capacity(capacity: usize, max: usize, free: usize, read: usize) -> usize {
    if free > 0 && read == free && capacity < max {
        max
    } else {
        capacity
    }
}

/// A read buffer with header headroom, of fixed capacity or growing up to a maximum.
#[derive(Debug)]
pub struct ReadBuf {
    /// Valid bytes end at `buf.len()`; spare capacity is where reads land.
    buf: Vec<u8>,
    start: usize,
    headroom: usize,
    /// The capacity (headroom not counted) the buffer may grow to.
    max_capacity: usize,
    /// The capacity it starts with, and goes back to when [`ReadBuf::shrink`]s.
    initial_capacity: usize,
}

impl ReadBuf {
    /// A buffer holding up to `capacity` unread bytes, with `headroom` reserved bytes in front.
    pub fn new(capacity: usize, headroom: usize) -> Self {
        Self::growable(capacity, capacity, headroom)
    }

    /// A buffer of `initial` bytes (at most `max`) that grows to hold up to `max` unread bytes
    /// once a read fills it ([`grown_capacity`]), with `headroom` reserved bytes in front.
    pub fn growable(initial: usize, max: usize, headroom: usize) -> Self {
        let initial = initial.min(max);
        Self {
            buf: Self::empty(headroom, initial),
            start: headroom,
            headroom,
            max_capacity: max,
            initial_capacity: initial,
        }
    }

    /// Storage for `capacity` bytes after `headroom` zeroed bytes.
    fn empty(headroom: usize, capacity: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(headroom + capacity);
        buf.resize(headroom, 0);
        buf
    }

    /// Whether the buffer grew past the capacity it started with.
    pub fn is_grown(&self) -> bool {
        self.capacity() > self.initial_capacity
    }

    /// Gives a grown buffer's memory back: back to the capacity it started with, unread bytes
    /// kept. A buffer whose unread bytes do not fit that capacity stays as it is.
    pub fn shrink(&mut self) {
        if !self.is_grown() || self.len() > self.initial_capacity {
            return;
        }
        let mut smaller = Self::empty(self.headroom, self.initial_capacity);
        smaller.extend_from_slice(self.data());
        self.buf = smaller;
        self.start = self.headroom;
    }

    /// How many unread bytes the buffer can hold now (headroom not counted).
    pub fn capacity(&self) -> usize {
        self.buf.capacity() - self.headroom
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

    /// Whether the buffer has no room for another read even after compaction and growth.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_capacity
    }

    /// Reads once from `io` into the free space; returns the number of bytes read (0 = EOF).
    /// Moves unread bytes to the front first when the free space at the end is exhausted; a
    /// growable buffer that is full grows instead, and one whose last read filled all its free
    /// space grows before the next. A buffer full at its maximum is an error of kind
    /// `OutOfMemory`: the caller's decoder must consume.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        self.fill_at_most(io, usize::MAX).await
    }

    /// [`ReadBuf::fill`] reading at most `limit` bytes (e.g. to stop at a frame boundary).
    pub async fn fill_at_most<R: AsyncReadRent>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        if self.buf.len() == self.buf.capacity() {
            if self.is_full() {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "read buffer full: the decoder consumed nothing",
                ));
            }
            if self.len() == self.capacity() {
                self.grow();
            } else {
                self.compact();
            }
        }
        let mut buf = std::mem::take(&mut self.buf);
        let end = buf.len();
        let total = buf.bytes_total().min(end.saturating_add(limit));
        let (result, slice) = io.read(SliceMut::new(buf, end, total)).await;
        self.buf = slice.into_inner();
        if let Ok(read) = result {
            if grown_capacity(self.capacity(), self.max_capacity, total - end, read)
                > self.capacity()
            {
                self.grow();
            }
        }
        result
    }

    /// Moves the unread bytes to the front, right after the headroom.
    fn compact(&mut self) {
        self.buf.copy_within(self.start.., self.headroom);
        let unread = self.buf.len() - self.start;
        self.buf.truncate(self.headroom + unread);
        self.start = self.headroom;
    }

    /// Grows to the maximum capacity (compacting first, so only unread bytes are copied).
    fn grow(&mut self) {
        self.compact();
        let wanted = self.headroom + self.max_capacity;
        self.buf.reserve_exact(wanted - self.buf.len());
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
    fn growth_happens_only_after_a_read_that_filled_all_free_space() {
        assert_eq!(grown_capacity(1024, 65536, 1024, 1024), 65536);
        assert_eq!(
            grown_capacity(1024, 65536, 1024, 1023),
            1024,
            "room was left"
        );
        assert_eq!(
            grown_capacity(1024, 65536, 0, 0),
            1024,
            "no free space, no read"
        );
        assert_eq!(
            grown_capacity(65536, 65536, 100, 100),
            65536,
            "already at the maximum"
        );
    }

    #[test]
    fn a_growable_buffer_starts_small_and_grows_when_a_read_fills_it() {
        run(async {
            let data: Vec<u8> = (0..=255).cycle().take(100).collect();
            let mut src: &[u8] = &data;
            let mut rb = ReadBuf::growable(8, 64, 14);
            assert_eq!(rb.capacity(), 8);
            assert_eq!(rb.fill(&mut src).await.expect("read"), 8);
            assert!(rb.capacity() >= 64, "a full read grows the buffer");
            assert_eq!(rb.fill(&mut src).await.expect("read"), 56);
            assert_eq!(rb.data(), &data[..64]);
            assert_eq!(rb.with_front_mut().1, 14, "headroom kept");
            assert!(rb.is_full());
            let err = rb.fill(&mut src).await.expect_err("full at the maximum");
            assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        });
    }

    #[test]
    fn a_growable_buffer_stays_small_while_reads_leave_room() {
        run(async {
            let mut rb = ReadBuf::growable(16, 1024, 0);
            for _ in 0..3 {
                let mut src: &[u8] = b"ping";
                assert_eq!(rb.fill(&mut src).await.expect("read"), 4);
                rb.consume(4);
            }
            assert_eq!(rb.capacity(), 16);
        });
    }

    #[test]
    fn a_grown_buffer_shrinks_back_keeping_its_unread_bytes_and_headroom() {
        run(async {
            let data: Vec<u8> = (0..=255).cycle().take(100).collect();
            let mut src: &[u8] = &data;
            let mut rb = ReadBuf::growable(8, 64, 14);
            assert!(!rb.is_grown());
            rb.fill(&mut src).await.expect("read");
            rb.fill(&mut src).await.expect("read");
            assert!(rb.is_grown());
            rb.consume(60);
            rb.shrink();
            assert!(!rb.is_grown());
            assert_eq!(rb.capacity(), 8);
            assert_eq!(rb.data(), &data[60..64], "unread bytes kept");
            assert_eq!(rb.with_front_mut().1, 14, "headroom kept");
            assert_eq!(rb.fill(&mut src).await.expect("read"), 4);
            assert_eq!(rb.data(), &data[60..68]);
        });
    }

    #[test]
    fn a_buffer_whose_unread_bytes_do_not_fit_its_first_size_stays_grown() {
        run(async {
            let mut src: &[u8] = &[7u8; 64];
            let mut rb = ReadBuf::growable(8, 64, 0);
            rb.fill(&mut src).await.expect("read");
            rb.fill(&mut src).await.expect("read");
            rb.consume(50);
            rb.shrink();
            assert!(rb.is_grown(), "14 unread bytes do not fit 8");
            assert_eq!(rb.data(), &[7u8; 14]);
        });
    }

    #[test]
    fn a_full_growable_buffer_grows_instead_of_failing() {
        run(async {
            let mut rb = ReadBuf::growable(4, 8, 2);
            rb.extend_from_slice(b"abcd");
            assert_eq!(rb.len(), rb.capacity(), "no free space left");
            let mut src: &[u8] = b"efgh";
            assert_eq!(rb.fill(&mut src).await.expect("read"), 4);
            assert_eq!(rb.data(), b"abcdefgh");
        });
    }

    #[test]
    fn a_limited_fill_reads_no_more_than_asked() {
        run(async {
            let mut src: &[u8] = b"abcdefghij";
            let mut rb = ReadBuf::new(8, 2);
            assert_eq!(rb.fill_at_most(&mut src, 3).await.expect("read"), 3);
            assert_eq!(rb.data(), b"abc");
            assert_eq!(rb.fill_at_most(&mut src, 100).await.expect("read"), 5);
            assert_eq!(rb.data(), b"abcdefgh");
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
