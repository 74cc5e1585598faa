//! Streaming decoder of the chunked transfer coding (RFC 9112 §7.1).
//!
//! The decoder never copies or collects the body: each call hands back a slice of the input
//! that is payload, so the caller can forward it straight from its read buffer. Chunk
//! extensions are checked to be field-value bytes and dropped; trailer fields are checked for
//! syntax and dropped (relayed HTTP has no way to carry them, protocol §6.6).

use std::fmt;

use super::body::{take_remaining, Decoded};
use super::syntax::{is_field_value_byte, is_tchar};

/// Cap on the chunk extensions of one chunk-size line.
pub const MAX_CHUNK_EXTENSION_BYTES: usize = 4 * 1024;
/// Cap on the trailer section, including its line endings (as protocol §6.1 caps a head).
pub const MAX_TRAILER_BYTES: usize = 32 * 1024;

/// Why a chunked body is malformed. One variant per RFC 9112 §7.1 rule or limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line has no hex digit before its extension or line end.
    EmptyChunkSize,
    /// A chunk-size holds a byte that is not a hex digit (or whitespace ends it without an
    /// extension following).
    InvalidChunkSize { byte: u8 },
    /// A chunk-size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// A chunk extension holds a control byte.
    InvalidChunkExtension { byte: u8 },
    /// A chunk-size line's extensions exceed [`MAX_CHUNK_EXTENSION_BYTES`].
    ChunkExtensionTooLong { max: usize },
    /// A chunk-size line does not end with CRLF.
    SizeLineNotCrlf,
    /// Chunk data is not followed by CRLF (the chunk is longer than its size says).
    DataNotCrlfTerminated,
    /// A trailer line is not `name ":" value` with a token name and field-value bytes.
    InvalidTrailerField,
    /// A trailer line, or the blank line ending the body, does not end with CRLF.
    TrailerLineNotCrlf,
    /// The trailer section exceeds [`MAX_TRAILER_BYTES`].
    TrailersTooLarge { max: usize },
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyChunkSize => f.write_str("chunk-size line has no size"),
            Self::InvalidChunkSize { byte } => {
                write!(f, "chunk-size holds invalid byte {:?}", char::from(*byte))
            }
            Self::ChunkSizeOverflow => f.write_str("chunk-size does not fit in 64 bits"),
            Self::InvalidChunkExtension { byte } => {
                write!(f, "chunk extension holds control byte {byte:#04x}")
            }
            Self::ChunkExtensionTooLong { max } => {
                write!(f, "chunk extensions longer than {max} bytes")
            }
            Self::SizeLineNotCrlf => f.write_str("chunk-size line does not end with CRLF"),
            Self::DataNotCrlfTerminated => f.write_str("chunk data is not followed by CRLF"),
            Self::InvalidTrailerField => f.write_str("trailer field is malformed"),
            Self::TrailerLineNotCrlf => f.write_str("trailer line does not end with CRLF"),
            Self::TrailersTooLarge { max } => write!(f, "trailer section larger than {max} bytes"),
        }
    }
}

impl std::error::Error for ChunkedError {}

/// Where the decoder is in the chunked grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a chunk-size.
    SizeStart,
    /// Inside the hex digits.
    Size {
        size: u64,
    },
    /// Whitespace after the digits; only an extension may follow.
    SizeSpace {
        size: u64,
    },
    /// Inside `;ext...`, `len` bytes so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// After the CR of the chunk-size line.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data {
        remaining: u64,
    },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line or of the final blank line.
    TrailerStart {
        used: usize,
    },
    TrailerName {
        used: usize,
    },
    TrailerValue {
        used: usize,
    },
    /// After the CR of a trailer line.
    TrailerLf {
        used: usize,
    },
    /// After the CR of the final blank line.
    FinalLf,
    Done,
}

/// Decodes one chunked body. After an error the decoder is spent.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: State::SizeStart,
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the start of `input`.
    ///
    /// Stops right after the first run of payload bytes (returned as a slice of `input`), at
    /// the end of the body, or at the end of `input`. `consumed` bytes of `input` have been
    /// used; bytes after the end of the body are never consumed.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Data { remaining } => {
                    let rest = &input[pos..];
                    let (take, left) = take_remaining(remaining, rest.len());
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    return Ok(Decoded {
                        consumed: pos + take,
                        payload: Some(&rest[..take]),
                    });
                }
                state => {
                    self.state = step(state, input[pos])?;
                    pos += 1;
                }
            }
        }
        Ok(Decoded {
            consumed: pos,
            payload: None,
        })
    }
}

/// The state after one framing (non-data) byte.
fn step(state: State, b: u8) -> Result<State, ChunkedError> {
    match state {
        State::SizeStart => match b {
            b';' | b'\r' => Err(ChunkedError::EmptyChunkSize),
            b'\n' => Err(ChunkedError::SizeLineNotCrlf),
            _ => match hex_value(b) {
                Some(v) => Ok(State::Size { size: v }),
                None => Err(ChunkedError::InvalidChunkSize { byte: b }),
            },
        },
        State::Size { size } => match b {
            b';' => Ok(State::Extension { size, len: 0 }),
            b' ' | b'\t' => Ok(State::SizeSpace { size }),
            b'\r' => Ok(State::SizeLf { size }),
            b'\n' => Err(ChunkedError::SizeLineNotCrlf),
            _ => {
                let digit = hex_value(b).ok_or(ChunkedError::InvalidChunkSize { byte: b })?;
                if size > u64::MAX >> 4 {
                    return Err(ChunkedError::ChunkSizeOverflow);
                }
                Ok(State::Size {
                    size: size << 4 | digit,
                })
            }
        },
        State::SizeSpace { size } => match b {
            b' ' | b'\t' => Ok(State::SizeSpace { size }),
            b';' => Ok(State::Extension { size, len: 0 }),
            _ => Err(ChunkedError::InvalidChunkSize { byte: b }),
        },
        State::Extension { size, len } => match b {
            b'\r' => Ok(State::SizeLf { size }),
            b'\n' => Err(ChunkedError::SizeLineNotCrlf),
            _ if !is_field_value_byte(b) => Err(ChunkedError::InvalidChunkExtension { byte: b }),
            _ if len >= MAX_CHUNK_EXTENSION_BYTES => Err(ChunkedError::ChunkExtensionTooLong {
                max: MAX_CHUNK_EXTENSION_BYTES,
            }),
            _ => Ok(State::Extension { size, len: len + 1 }),
        },
        State::SizeLf { size } => match b {
            b'\n' if size == 0 => Ok(State::TrailerStart { used: 0 }),
            b'\n' => Ok(State::Data { remaining: size }),
            _ => Err(ChunkedError::SizeLineNotCrlf),
        },
        State::DataCr => match b {
            b'\r' => Ok(State::DataLf),
            _ => Err(ChunkedError::DataNotCrlfTerminated),
        },
        State::DataLf => match b {
            b'\n' => Ok(State::SizeStart),
            _ => Err(ChunkedError::DataNotCrlfTerminated),
        },
        State::TrailerStart { used } => {
            let used = count_trailer_byte(used)?;
            match b {
                b'\r' => Ok(State::FinalLf),
                b'\n' => Err(ChunkedError::TrailerLineNotCrlf),
                _ if is_tchar(b) => Ok(State::TrailerName { used }),
                _ => Err(ChunkedError::InvalidTrailerField),
            }
        }
        State::TrailerName { used } => {
            let used = count_trailer_byte(used)?;
            match b {
                b':' => Ok(State::TrailerValue { used }),
                _ if is_tchar(b) => Ok(State::TrailerName { used }),
                _ => Err(ChunkedError::InvalidTrailerField),
            }
        }
        State::TrailerValue { used } => {
            let used = count_trailer_byte(used)?;
            match b {
                b'\r' => Ok(State::TrailerLf { used }),
                b'\n' => Err(ChunkedError::TrailerLineNotCrlf),
                _ if is_field_value_byte(b) => Ok(State::TrailerValue { used }),
                _ => Err(ChunkedError::InvalidTrailerField),
            }
        }
        State::TrailerLf { used } => {
            let used = count_trailer_byte(used)?;
            match b {
                b'\n' => Ok(State::TrailerStart { used }),
                _ => Err(ChunkedError::TrailerLineNotCrlf),
            }
        }
        State::FinalLf => match b {
            b'\n' => Ok(State::Done),
            _ => Err(ChunkedError::TrailerLineNotCrlf),
        },
        // `decode` handles data runs and the end itself and never steps these states.
        State::Data { .. } | State::Done => Ok(state),
    }
}

fn count_trailer_byte(used: usize) -> Result<usize, ChunkedError> {
    if used >= MAX_TRAILER_BYTES {
        return Err(ChunkedError::TrailersTooLarge {
            max: MAX_TRAILER_BYTES,
        });
    }
    Ok(used + 1)
}

fn hex_value(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns the payload, the bytes left after
    /// the body, and whether the body was complete.
    fn decode_in_pieces(
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Vec<u8>, bool), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for part in input.chunks(piece) {
            pending.extend_from_slice(part);
            loop {
                let d = dec.decode(&pending)?;
                if let Some(p) = d.payload {
                    assert!(!p.is_empty(), "empty payload slices are never returned");
                    body.extend_from_slice(p);
                }
                let consumed = d.consumed;
                pending.drain(..consumed);
                if dec.is_done() || consumed == 0 || pending.is_empty() {
                    break;
                }
            }
        }
        Ok((body, pending, dec.is_done()))
    }

    #[test]
    fn decodes_valid_bodies_fed_in_any_piece_size() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
            (b"005\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5;name=value\r\nhello\r\n0;last\r\n\r\n", b"hello"),
            (b"5 ; a=\"q s\" ;b\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other:\r\n\r\n",
                b"abc",
            ),
            (b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r"),
        ];
        for (input, expected) in cases {
            for piece in [1, 2, 3, 7, input.len()] {
                let (body, left, done) = decode_in_pieces(input, piece).unwrap();
                assert_eq!(body, *expected, "{} piece {piece}", input.escape_ascii());
                assert!(left.is_empty());
                assert!(done, "{}", input.escape_ascii());
            }
        }
    }

    #[test]
    fn payload_is_a_slice_of_the_input() {
        let input = b"5\r\nhello\r\n0\r\n\r\n";
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(input).unwrap();
        assert_eq!(d.consumed, 8);
        let payload = d.payload.unwrap();
        assert_eq!(payload, b"hello");
        assert!(std::ptr::eq(payload.as_ptr(), input[3..].as_ptr()));
        let d = dec.decode(&input[8..]).unwrap();
        assert_eq!(d.consumed, 7);
        assert_eq!(d.payload, None);
        assert!(dec.is_done());
    }

    #[test]
    fn large_chunk_arrives_in_parts() {
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"10\r\n0123").unwrap();
        assert_eq!((d.consumed, d.payload), (8, Some(&b"0123"[..])));
        let d = dec.decode(b"456789abcdef\r\n0\r\n\r\n").unwrap();
        assert_eq!((d.consumed, d.payload), (12, Some(&b"456789abcdef"[..])));
        assert!(!dec.is_done());
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let input = b"2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        for piece in [1, 5, input.len()] {
            let (body, left, done) = decode_in_pieces(input, piece).unwrap();
            assert_eq!(body, b"ab");
            assert!(done);
            assert_eq!(left, b"GET / HTTP/1.1\r\n");
        }
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"0\r\n\r\n").unwrap();
        assert!(dec.is_done());
        assert_eq!(d.consumed, 5);
        let d = dec.decode(b"more").unwrap();
        assert_eq!((d.consumed, d.payload), (0, None));
    }

    #[test]
    fn incomplete_body_is_not_done() {
        for input in [
            &b"5\r\nhel"[..],
            b"5\r\nhello\r\n",
            b"0\r\n",
            b"0\r\nX: y\r\n",
        ] {
            let (_, _, done) = decode_in_pieces(input, 1).unwrap();
            assert!(!done, "{}", input.escape_ascii());
        }
    }

    #[test]
    fn largest_chunk_size_is_accepted() {
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!(d.payload, Some(&b"ab"[..]));
        let mut dec = ChunkedDecoder::new();
        assert!(dec.decode(b"0000000000000000000000001\r\n").is_ok());
    }

    #[test]
    fn rule_violations() {
        let long_ext = [
            b"1;".as_slice(),
            &[b'x'; MAX_CHUNK_EXTENSION_BYTES + 1],
            b"\r\n",
        ]
        .concat();
        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.resize(MAX_TRAILER_BYTES + 10, b'v');
        let cases: Vec<(&[u8], ChunkedError)> = vec![
            (b"\r\n", ChunkedError::EmptyChunkSize),
            (b";ext\r\n", ChunkedError::EmptyChunkSize),
            (b"g\r\n", ChunkedError::InvalidChunkSize { byte: b'g' }),
            (b"-1\r\n", ChunkedError::InvalidChunkSize { byte: b'-' }),
            (b"0x5\r\n", ChunkedError::InvalidChunkSize { byte: b'x' }),
            (
                b"5 \r\nhello",
                ChunkedError::InvalidChunkSize { byte: b'\r' },
            ),
            (b"5 5\r\n", ChunkedError::InvalidChunkSize { byte: b'5' }),
            (b"10000000000000000\r\n", ChunkedError::ChunkSizeOverflow),
            (
                b"1;a\x00\r\n",
                ChunkedError::InvalidChunkExtension { byte: 0 },
            ),
            (
                b"1;a\x7f\r\n",
                ChunkedError::InvalidChunkExtension { byte: 0x7f },
            ),
            (
                &long_ext,
                ChunkedError::ChunkExtensionTooLong {
                    max: MAX_CHUNK_EXTENSION_BYTES,
                },
            ),
            (b"5\nhello", ChunkedError::SizeLineNotCrlf),
            (b"\n", ChunkedError::SizeLineNotCrlf),
            (b"5\rxhello", ChunkedError::SizeLineNotCrlf),
            (b"1;ext\n", ChunkedError::SizeLineNotCrlf),
            (b"5\r\nhelloX\r\n", ChunkedError::DataNotCrlfTerminated),
            (
                b"5\r\nhello\n0\r\n\r\n",
                ChunkedError::DataNotCrlfTerminated,
            ),
            (b"5\r\nhello\rX", ChunkedError::DataNotCrlfTerminated),
            (b"0\r\n: v\r\n\r\n", ChunkedError::InvalidTrailerField),
            (
                b"0\r\nBad Name: v\r\n\r\n",
                ChunkedError::InvalidTrailerField,
            ),
            (b"0\r\n folded\r\n\r\n", ChunkedError::InvalidTrailerField),
            (b"0\r\nNoColon\r\n\r\n", ChunkedError::InvalidTrailerField),
            (b"0\r\nX: a\x01b\r\n\r\n", ChunkedError::InvalidTrailerField),
            (b"0\r\nX: v\n\r\n", ChunkedError::TrailerLineNotCrlf),
            (b"0\r\nX: v\rY", ChunkedError::TrailerLineNotCrlf),
            (b"0\r\n\n", ChunkedError::TrailerLineNotCrlf),
            (b"0\r\n\rX", ChunkedError::TrailerLineNotCrlf),
            (
                &long_trailer,
                ChunkedError::TrailersTooLarge {
                    max: MAX_TRAILER_BYTES,
                },
            ),
        ];
        for (input, expected) in &cases {
            for piece in [1, input.len()] {
                assert_eq!(
                    decode_in_pieces(input, piece),
                    Err(*expected),
                    "{} piece {piece}",
                    input.escape_ascii()
                );
            }
        }
    }

    #[test]
    fn errors_name_the_byte() {
        assert_eq!(
            ChunkedError::InvalidChunkSize { byte: b'g' }.to_string(),
            "chunk-size holds invalid byte 'g'"
        );
        assert_eq!(
            ChunkedError::InvalidChunkExtension { byte: 0 }.to_string(),
            "chunk extension holds control byte 0x00"
        );
    }
}
