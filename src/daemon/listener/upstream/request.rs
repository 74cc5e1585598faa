//! The request the daemon sends to its HTTP target (protocol §6.6, §6.7; RFC 9112 §3, §6, §7.1),
//! sans-I/O: the head bytes and the chunk framing of a streamed body.
//!
//! The relayed `requestHeaders` have already lost `Host`, `Content-Length` and
//! `Transfer-Encoding` (protocol §6.6), so the head written here adds `Host` (the target's own
//! authority) and the body framing the daemon knows: `Content-Length` for a body it holds, or
//! `Transfer-Encoding: chunked` for a body that streams in from a rendezvous (protocol §6.4).

use std::num::NonZeroUsize;

use crate::proto::http1::{write_request_head, ChunkHeader, WriteError, LAST_CHUNK};

/// How the request body is delimited on the wire (RFC 9112 §6.2, §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body and no framing header.
    None,
    /// `Content-Length: n` (also `0` for a method that expects content).
    Length(usize),
    /// `Transfer-Encoding: chunked`: a body of unknown length streamed as it arrives.
    Chunked,
}

impl Framing {
    /// The framing of a body the daemon holds whole: its length, `Content-Length: 0` for an
    /// empty body of a method that defines content (RFC 9110 §8.6: a user agent SHOULD send
    /// it for those), nothing for the others.
    pub fn for_known_body(method: &str, len: usize) -> Self {
        if len > 0 || expects_content(method) {
            Self::Length(len)
        } else {
            Self::None
        }
    }
}

/// Methods whose requests normally carry content (RFC 9110 §9.3.3, §9.3.4; RFC 5789).
fn expects_content(method: &str) -> bool {
    ["POST", "PUT", "PATCH"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Whether a request may be sent again after a connection failure (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Appends the request head: `{method} {target} HTTP/1.1`, `Host`, the relayed `headers` in
/// order, then the framing header. Every name and value is checked by the head writer, so CR,
/// LF or NUL can never reach the target; on error `dst` is unchanged.
pub(crate) fn write_head(
    dst: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    framing: Framing,
) -> Result<(), WriteError> {
    let length;
    let framing_field = match framing {
        Framing::None => None,
        Framing::Length(len) => {
            length = len.to_string();
            Some(("Content-Length", length.as_str()))
        }
        Framing::Chunked => Some(("Transfer-Encoding", "chunked")),
    };
    let fields = std::iter::once(("Host", host))
        .chain(headers.iter().copied())
        .chain(framing_field);
    write_request_head(dst, method, target, fields)
}

/// The bytes written in front of one chunk of a streamed body: the CRLF that ends the previous
/// chunk's data (unless this is the first chunk), then the chunk-size line. Writing the CRLF
/// here lets each chunk go out as one contiguous slice, prefix + data, with no copy of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPrefix {
    bytes: [u8; MAX_CHUNK_PREFIX_LEN],
    len: usize,
}

/// CRLF plus the longest chunk-size line.
pub(crate) const MAX_CHUNK_PREFIX_LEN: usize =
    2 + crate::proto::http1::chunked_encoder::MAX_CHUNK_HEADER_LEN;

const CRLF: &[u8] = b"\r\n";

impl ChunkPrefix {
    /// The prefix of a chunk of `size` bytes; `first` when no chunk precedes it.
    pub fn new(first: bool, size: NonZeroUsize) -> Self {
        let header = ChunkHeader::new(size);
        let mut bytes = [0u8; MAX_CHUNK_PREFIX_LEN];
        let mut len = 0;
        if !first {
            bytes[..CRLF.len()].copy_from_slice(CRLF);
            len = CRLF.len();
        }
        let header = header.as_bytes();
        bytes[len..len + header.len()].copy_from_slice(header);
        len += header.len();
        Self { bytes, len }
    }

    /// The prefix as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What ends a streamed body: the CRLF after the last chunk's data (when there was a chunk),
/// the last chunk and an empty trailer section (RFC 9112 §7.1).
pub fn chunked_end(any_chunk: bool) -> &'static [u8] {
    if any_chunk {
        b"\r\n0\r\n\r\n"
    } else {
        LAST_CHUNK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::{
        parse_request_head, request_body_kind, BodyDecoder, BodyKind, Limits,
    };

    fn head(method: &str, headers: &[(&str, &str)], framing: Framing) -> Vec<u8> {
        let mut out = Vec::new();
        write_head(
            &mut out,
            method,
            "/base/x?a=1&b",
            "up.local:8080",
            headers,
            framing,
        )
        .expect("valid head");
        out
    }

    #[test]
    fn head_has_host_first_then_relayed_headers_then_framing() {
        let out = head(
            "POST",
            &[("X-Multi", "a, b"), ("Accept", "*/*")],
            Framing::Length(5),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /base/x?a=1&b HTTP/1.1\r\nHost: up.local:8080\r\nX-Multi: a, b\r\nAccept: */*\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn chunked_framing_parses_back_as_chunked() {
        let out = head("PUT", &[], Framing::Chunked);
        let (parsed, _) = parse_request_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(request_body_kind(&parsed), Ok(BodyKind::Chunked));
        assert_eq!(parsed.headers.get("host"), Some(&b"up.local:8080"[..]));
    }

    #[test]
    fn no_framing_writes_no_length() {
        let out = head("GET", &[], Framing::None);
        let (parsed, _) = parse_request_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(request_body_kind(&parsed), Ok(BodyKind::Empty));
        assert!(!parsed.headers.contains("content-length"));
    }

    #[test]
    fn known_bodies_get_a_length_and_empty_ones_only_when_the_method_expects_content() {
        assert_eq!(Framing::for_known_body("POST", 3), Framing::Length(3));
        assert_eq!(Framing::for_known_body("GET", 3), Framing::Length(3));
        assert_eq!(Framing::for_known_body("post", 0), Framing::Length(0));
        assert_eq!(Framing::for_known_body("PUT", 0), Framing::Length(0));
        assert_eq!(Framing::for_known_body("PATCH", 0), Framing::Length(0));
        assert_eq!(Framing::for_known_body("GET", 0), Framing::None);
        assert_eq!(Framing::for_known_body("DELETE", 0), Framing::None);
    }

    #[test]
    fn header_injection_is_refused_and_nothing_is_written() {
        let mut out = b"keep".to_vec();
        let err = write_head(
            &mut out,
            "GET",
            "/x",
            "h",
            &[("X-Evil", "a\r\nInjected: 1")],
            Framing::None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            WriteError::HeaderInjection {
                name: "X-Evil".into()
            }
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn invalid_method_and_target_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            write_head(&mut out, "GE T", "/x", "h", &[], Framing::None),
            Err(WriteError::InvalidMethod {
                method: "GE T".into()
            })
        );
        assert_eq!(
            write_head(&mut out, "GET", "/x y", "h", &[], Framing::None),
            Err(WriteError::InvalidTarget)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn idempotent_methods_follow_rfc_9110() {
        for m in ["GET", "head", "PUT", "DELETE", "OPTIONS", "TRACE"] {
            assert!(is_idempotent(m), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "FOO"] {
            assert!(!is_idempotent(m), "{m}");
        }
    }

    #[test]
    fn chunk_prefixes_and_end_decode_as_one_chunked_body() {
        let chunks: [&[u8]; 3] = [b"hello", &[7u8; 300], b"!"];
        let mut wire = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let size = NonZeroUsize::new(chunk.len()).unwrap();
            wire.extend_from_slice(ChunkPrefix::new(i == 0, size).as_bytes());
            wire.extend_from_slice(chunk);
        }
        wire.extend_from_slice(chunked_end(true));
        let mut decoder = BodyDecoder::new(BodyKind::Chunked);
        let mut body = Vec::new();
        let mut input = &wire[..];
        while !decoder.is_done() {
            let step = decoder.decode(input).unwrap();
            body.extend_from_slice(step.payload.unwrap_or_default());
            input = &input[step.consumed..];
        }
        assert!(input.is_empty());
        assert_eq!(body, chunks.concat());
    }

    #[test]
    fn an_empty_streamed_body_is_just_the_last_chunk() {
        assert_eq!(chunked_end(false), b"0\r\n\r\n");
        let mut decoder = BodyDecoder::new(BodyKind::Chunked);
        let step = decoder.decode(chunked_end(false)).unwrap();
        assert_eq!((step.consumed, step.payload), (5, None));
        assert!(decoder.is_done());
    }

    #[test]
    fn chunk_prefix_of_the_first_chunk_has_no_crlf() {
        let size = NonZeroUsize::new(0x1a).unwrap();
        assert_eq!(ChunkPrefix::new(true, size).as_bytes(), b"1a\r\n");
        assert_eq!(ChunkPrefix::new(false, size).as_bytes(), b"\r\n1a\r\n");
        let max = ChunkPrefix::new(false, NonZeroUsize::MAX);
        assert_eq!(max.as_bytes().len(), MAX_CHUNK_PREFIX_LEN);
    }
}
