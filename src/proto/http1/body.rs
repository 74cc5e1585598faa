//! Streaming body readers for every [`BodyKind`] (RFC 9112 §6): they hand back slices of the
//! caller's buffer, so a body is forwarded as it arrives and never collected whole.

use std::fmt;

use super::chunked_decoder::{ChunkedDecoder, ChunkedError};
use super::framing::BodyKind;

/// What one decode step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// How many input bytes were used (framing and payload); drop them from the buffer.
    pub consumed: usize,
    /// Payload bytes, a slice of the input; never empty when present.
    pub payload: Option<&'a [u8]>,
}

impl Decoded<'_> {
    const NOTHING: Decoded<'static> = Decoded {
        consumed: 0,
        payload: None,
    };
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The chunked coding is malformed.
    Chunked(ChunkedError),
    /// The connection ended `remaining` bytes before the declared `Content-Length`.
    ContentLengthTruncated { remaining: u64 },
    /// The connection ended before the last chunk and trailer section.
    ChunkedTruncated,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chunked(e) => write!(f, "malformed chunked body: {e}"),
            Self::ContentLengthTruncated { remaining } => write!(
                f,
                "connection closed {remaining} bytes before the end of the Content-Length body"
            ),
            Self::ChunkedTruncated => {
                f.write_str("connection closed before the end of the chunked body")
            }
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Chunked(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ChunkedError> for BodyError {
    fn from(e: ChunkedError) -> Self {
        Self::Chunked(e)
    }
}

/// Splits `available` input bytes against a body (or chunk) with `remaining` bytes to go:
/// how many to take, and how many remain after them.
pub(crate) fn take_remaining(remaining: u64, available: usize) -> (usize, u64) {
    // usize is at most 64 bits on every target, so the fallback is never used; were usize
    // wider, `u64::MAX` would still compare correctly.
    let available_u64 = u64::try_from(available).unwrap_or(u64::MAX);
    let take = remaining.min(available_u64);
    // `take <= available`, so it fits in usize and the fallback is never used either.
    (usize::try_from(take).unwrap_or(available), remaining - take)
}

/// Reads a body of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLengthReader {
    remaining: u64,
}

impl ContentLengthReader {
    /// A reader for a body of `len` bytes.
    pub fn new(len: u64) -> Self {
        Self { remaining: len }
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Takes the body bytes at the start of `input`; bytes after the body are not consumed.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        let (take, left) = take_remaining(self.remaining, input.len());
        if take == 0 {
            return Decoded::NOTHING;
        }
        self.remaining = left;
        Decoded {
            consumed: take,
            payload: Some(&input[..take]),
        }
    }
}

/// Reads one body of any [`BodyKind`].
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    Empty,
    ContentLength(ContentLengthReader),
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes; `closed` once it has.
    CloseDelimited {
        closed: bool,
    },
}

impl BodyDecoder {
    /// A reader for a body framed as `kind`.
    pub fn new(kind: BodyKind) -> Self {
        match kind {
            BodyKind::Empty => Self::Empty,
            BodyKind::ContentLength(len) => Self::ContentLength(ContentLengthReader::new(len)),
            BodyKind::Chunked => Self::Chunked(ChunkedDecoder::new()),
            BodyKind::CloseDelimited => Self::CloseDelimited { closed: false },
        }
    }

    /// Whether the body is complete; bytes after it belong to the next message.
    pub fn is_done(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::ContentLength(r) => r.is_done(),
            Self::Chunked(d) => d.is_done(),
            Self::CloseDelimited { closed } => *closed,
        }
    }

    /// Decodes from the start of `input`; see [`Decoded`]. Call again with the rest of the
    /// input while `consumed` is non-zero and the body is not done.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, BodyError> {
        match self {
            Self::Empty => Ok(Decoded::NOTHING),
            Self::ContentLength(r) => Ok(r.decode(input)),
            Self::Chunked(d) => Ok(d.decode(input)?),
            Self::CloseDelimited { closed: true } => Ok(Decoded::NOTHING),
            Self::CloseDelimited { closed: false } if input.is_empty() => Ok(Decoded::NOTHING),
            Self::CloseDelimited { closed: false } => Ok(Decoded {
                consumed: input.len(),
                payload: Some(input),
            }),
        }
    }

    /// The peer closed the connection (end of input): completes a close-delimited body, and
    /// reports any other body that is not complete.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self {
            Self::Empty => Ok(()),
            Self::ContentLength(r) if r.is_done() => Ok(()),
            Self::ContentLength(r) => Err(BodyError::ContentLengthTruncated {
                remaining: r.remaining(),
            }),
            Self::Chunked(d) if d.is_done() => Ok(()),
            Self::Chunked(_) => Err(BodyError::ChunkedTruncated),
            Self::CloseDelimited { closed } => {
                *closed = true;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_remaining_splits() {
        assert_eq!(take_remaining(10, 4), (4, 6));
        assert_eq!(take_remaining(4, 10), (4, 0));
        assert_eq!(take_remaining(0, 10), (0, 0));
        assert_eq!(take_remaining(u64::MAX, 3), (3, u64::MAX - 3));
    }

    #[test]
    fn content_length_reader_stops_at_the_length() {
        let mut r = ContentLengthReader::new(5);
        let d = r.decode(b"hel");
        assert_eq!((d.consumed, d.payload), (3, Some(&b"hel"[..])));
        assert_eq!(r.remaining(), 2);
        assert!(!r.is_done());
        let d = r.decode(b"loNEXT");
        assert_eq!((d.consumed, d.payload), (2, Some(&b"lo"[..])));
        assert!(r.is_done());
        assert_eq!(r.decode(b"NEXT"), Decoded::NOTHING);
    }

    #[test]
    fn content_length_reader_byte_by_byte() {
        let input = b"0123456789";
        let mut r = ContentLengthReader::new(10);
        let mut got = Vec::new();
        for b in input.chunks(1) {
            let d = r.decode(b);
            assert_eq!(d.consumed, 1);
            got.extend_from_slice(d.payload.unwrap());
        }
        assert_eq!(got, input);
        assert!(r.is_done());
    }

    #[test]
    fn content_length_reader_ignores_empty_input() {
        let mut r = ContentLengthReader::new(3);
        assert_eq!(r.decode(b""), Decoded::NOTHING);
        assert_eq!(r.remaining(), 3);
    }

    #[test]
    fn body_decoder_per_kind() {
        let mut d = BodyDecoder::new(BodyKind::Empty);
        assert!(d.is_done());
        assert_eq!(d.decode(b"next").unwrap(), Decoded::NOTHING);

        let mut d = BodyDecoder::new(BodyKind::ContentLength(2));
        let step = d.decode(b"abc").unwrap();
        assert_eq!((step.consumed, step.payload), (2, Some(&b"ab"[..])));
        assert!(d.is_done());

        let mut d = BodyDecoder::new(BodyKind::Chunked);
        let step = d.decode(b"1\r\nz\r\n0\r\n\r\n").unwrap();
        assert_eq!((step.consumed, step.payload), (4, Some(&b"z"[..])));
        let step = d.decode(b"\r\n0\r\n\r\n").unwrap();
        assert_eq!(step.consumed, 7);
        assert!(d.is_done());

        let mut d = BodyDecoder::new(BodyKind::CloseDelimited);
        let step = d.decode(b"all of it").unwrap();
        assert_eq!((step.consumed, step.payload), (9, Some(&b"all of it"[..])));
        assert_eq!(d.decode(b"").unwrap(), Decoded::NOTHING);
        assert!(!d.is_done());
        assert_eq!(d.finish(), Ok(()));
        assert!(d.is_done());
        assert_eq!(d.decode(b"late").unwrap(), Decoded::NOTHING);
    }

    #[test]
    fn chunked_errors_pass_through() {
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        assert_eq!(
            d.decode(b"z\r\n"),
            Err(BodyError::Chunked(ChunkedError::InvalidChunkSize {
                byte: b'z'
            }))
        );
    }

    #[test]
    fn finish_reports_truncated_bodies() {
        let mut d = BodyDecoder::new(BodyKind::ContentLength(5));
        d.decode(b"ab").unwrap();
        assert_eq!(
            d.finish(),
            Err(BodyError::ContentLengthTruncated { remaining: 3 })
        );
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        d.decode(b"5\r\nab").unwrap();
        assert_eq!(d.finish(), Err(BodyError::ChunkedTruncated));

        let mut d = BodyDecoder::new(BodyKind::ContentLength(1));
        d.decode(b"a").unwrap();
        assert_eq!(d.finish(), Ok(()));
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        d.decode(b"0\r\n\r\n").unwrap();
        assert_eq!(d.finish(), Ok(()));
        assert_eq!(BodyDecoder::new(BodyKind::Empty).finish(), Ok(()));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            BodyError::ContentLengthTruncated { remaining: 3 }.to_string(),
            "connection closed 3 bytes before the end of the Content-Length body"
        );
        assert_eq!(
            BodyError::Chunked(ChunkedError::SizeLineNotCrlf).to_string(),
            "malformed chunked body: chunk-size line does not end with CRLF"
        );
    }
}
