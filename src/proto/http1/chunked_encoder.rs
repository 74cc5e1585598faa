//! Writing the chunked transfer coding (RFC 9112 §7.1).
//!
//! A chunk is `{size in hex}\r\n`, the data, `\r\n`; the body ends with `0\r\n\r\n`. The header
//! is built on the stack so the data can be written from where it already is (e.g. with a
//! vectored write) instead of being copied behind it.

use std::num::NonZeroUsize;

/// The longest chunk header: 16 hex digits (a 64-bit size) and CRLF.
pub(crate) const MAX_CHUNK_HEADER_LEN: usize = 18;
/// Follows the data of every chunk.
pub const CHUNK_DATA_END: &[u8] = b"\r\n";
/// Ends a chunked body (a last chunk without extensions and an empty trailer section).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The header line of one data chunk. The size is non-zero: a zero size would end the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    bytes: [u8; MAX_CHUNK_HEADER_LEN],
    len: usize,
}

impl ChunkHeader {
    /// The header for a chunk of `size` data bytes.
    pub fn new(size: NonZeroUsize) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        let mut n = size.get();
        let mut count = 0;
        while n != 0 {
            digits[count] = HEX[n & 0xf];
            n >>= 4;
            count += 1;
        }
        let mut bytes = [0u8; MAX_CHUNK_HEADER_LEN];
        for (slot, digit) in bytes.iter_mut().zip(digits[..count].iter().rev()) {
            *slot = *digit;
        }
        bytes[count] = b'\r';
        bytes[count + 1] = b'\n';
        Self {
            bytes,
            len: count + 2,
        }
    }

    /// The header as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl AsRef<[u8]> for ChunkHeader {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Appends one whole chunk (header, `data`, CRLF). Empty `data` writes nothing, since an empty
/// chunk would end the body.
pub fn write_chunk(dst: &mut Vec<u8>, data: &[u8]) {
    let Some(size) = NonZeroUsize::new(data.len()) else {
        return;
    };
    let header = ChunkHeader::new(size);
    dst.reserve(header.as_bytes().len() + data.len() + CHUNK_DATA_END.len());
    dst.extend_from_slice(header.as_bytes());
    dst.extend_from_slice(data);
    dst.extend_from_slice(CHUNK_DATA_END);
}

/// Appends the end of a chunked body.
pub fn write_last_chunk(dst: &mut Vec<u8>) {
    dst.extend_from_slice(LAST_CHUNK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::body::BodyDecoder;
    use crate::proto::http1::framing::BodyKind;

    fn header(size: usize) -> Vec<u8> {
        ChunkHeader::new(NonZeroUsize::new(size).unwrap())
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn headers_are_lowercase_hex_without_padding() {
        let cases: &[(usize, &[u8])] = &[
            (1, b"1\r\n"),
            (10, b"a\r\n"),
            (16, b"10\r\n"),
            (255, b"ff\r\n"),
            (8192, b"2000\r\n"),
            (0x1234_5678, b"12345678\r\n"),
        ];
        for (size, expected) in cases {
            assert_eq!(header(*size), *expected, "{size}");
        }
    }

    #[test]
    fn largest_header_fits() {
        let h = header(usize::MAX);
        assert_eq!(h.len(), 2 * std::mem::size_of::<usize>() + 2);
        assert!(h.len() <= MAX_CHUNK_HEADER_LEN);
        assert!(h.starts_with(b"ff"));
    }

    #[test]
    fn writes_chunks_and_the_end() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, b" world");
        write_last_chunk(&mut out);
        assert_eq!(out, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    }

    #[test]
    fn round_trips_through_the_decoder() {
        let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let mut wire = Vec::new();
        for piece in data.chunks(4093) {
            write_chunk(&mut wire, piece);
        }
        write_last_chunk(&mut wire);
        let mut dec = BodyDecoder::new(BodyKind::Chunked);
        let mut input = wire.as_slice();
        let mut out = Vec::new();
        while !dec.is_done() {
            let d = dec.decode(input).unwrap();
            out.extend_from_slice(d.payload.unwrap_or_default());
            input = &input[d.consumed..];
        }
        assert!(input.is_empty());
        assert_eq!(out, data);
    }
}
