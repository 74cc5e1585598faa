//! How a message's body is delimited (RFC 9112 §6), decided from its head.
//!
//! Only the `chunked` transfer coding is supported, in both directions: the relayed-HTTP path
//! drops `Transfer-Encoding` when it re-frames a body (protocol §6.6), so a body still carrying
//! another coding (e.g. `gzip, chunked`) could not be passed on faithfully and is refused
//! (RFC 9112 §6.1 lets a server answer 501 to a coding it does not understand).
//!
//! When both `Transfer-Encoding: chunked` and `Content-Length` are present, chunked wins
//! (RFC 9112 §6.3 item 3); such a message may be a smuggling attempt, so the caller must not
//! reuse the connection after it.

use std::fmt;

use super::head::{RequestHead, ResponseHead, Version};
use super::headers::Headers;
use super::syntax::list_elements;

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (also `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes (never 0; that is `Empty`).
    ContentLength(u64),
    /// The chunked transfer coding (RFC 9112 §7.1).
    Chunked,
    /// Everything until the server closes the connection (responses only, RFC 9112 §6.3
    /// item 8).
    CloseDelimited,
}

/// Why a head's framing fields cannot delimit a body. One variant per RFC 9112 §6 rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// A `Content-Length` value is not a run of decimal digits (RFC 9110 §8.6).
    InvalidContentLength,
    /// A `Content-Length` value does not fit in 64 bits.
    ContentLengthOverflow,
    /// `Content-Length` values differ (RFC 9112 §6.3 item 5).
    ConflictingContentLength,
    /// An HTTP/1.0 message carries `Transfer-Encoding` (RFC 9112 §6.1: framing is faulty).
    TransferEncodingInHttp10,
    /// `Transfer-Encoding` is present but lists no coding.
    EmptyTransferEncoding,
    /// A transfer coding other than `chunked` is applied (see the module comment).
    UnsupportedTransferCoding { coding: String },
    /// `chunked` is applied more than once (RFC 9112 §6.1).
    ChunkedAppliedTwice,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidContentLength => f.write_str("Content-Length is not a decimal number"),
            Self::ContentLengthOverflow => f.write_str("Content-Length does not fit in 64 bits"),
            Self::ConflictingContentLength => f.write_str("Content-Length values differ"),
            Self::TransferEncodingInHttp10 => {
                f.write_str("Transfer-Encoding is not allowed in an HTTP/1.0 message")
            }
            Self::EmptyTransferEncoding => f.write_str("Transfer-Encoding lists no coding"),
            Self::UnsupportedTransferCoding { coding } => {
                write!(
                    f,
                    "Transfer-Encoding {coding:?} is not supported (only chunked)"
                )
            }
            Self::ChunkedAppliedTwice => f.write_str("Transfer-Encoding applies chunked twice"),
        }
    }
}

impl std::error::Error for FramingError {}

/// The body framing of a request (RFC 9112 §6.3 items 3–6): chunked, a length, or none.
pub fn request_body_kind(head: &RequestHead) -> Result<BodyKind, FramingError> {
    framed_by_fields(head.version, &head.headers).map(|kind| kind.unwrap_or(BodyKind::Empty))
}

/// The body framing of a response to a `request_method` request (RFC 9112 §6.3 items 1–8).
///
/// Responses to `HEAD`, 1xx, 204 and 304 have no body whatever their fields say; neither has a
/// 2xx answer to `CONNECT` (the connection becomes a tunnel, which this crate never asks for).
pub fn response_body_kind(
    request_method: &str,
    head: &ResponseHead,
) -> Result<BodyKind, FramingError> {
    let status = head.status;
    if request_method == "HEAD"
        || head.is_informational()
        || status == 204
        || status == 304
        || (request_method == "CONNECT" && (200..300).contains(&status))
    {
        return Ok(BodyKind::Empty);
    }
    framed_by_fields(head.version, &head.headers)
        .map(|kind| kind.unwrap_or(BodyKind::CloseDelimited))
}

/// Framing from `Transfer-Encoding` / `Content-Length`; `None` when neither is present.
fn framed_by_fields(version: Version, headers: &Headers) -> Result<Option<BodyKind>, FramingError> {
    if headers.contains("transfer-encoding") {
        if version == Version::Http10 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        check_transfer_codings(headers)?;
        return Ok(Some(BodyKind::Chunked));
    }
    match content_length(headers)? {
        None => Ok(None),
        Some(0) => Ok(Some(BodyKind::Empty)),
        Some(len) => Ok(Some(BodyKind::ContentLength(len))),
    }
}

/// Accepts exactly one `chunked` coding across all `Transfer-Encoding` fields.
fn check_transfer_codings(headers: &Headers) -> Result<(), FramingError> {
    let mut chunked_seen = false;
    for coding in headers.get_all("transfer-encoding").flat_map(list_elements) {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(FramingError::UnsupportedTransferCoding {
                coding: String::from_utf8_lossy(coding).into_owned(),
            });
        }
        if chunked_seen {
            return Err(FramingError::ChunkedAppliedTwice);
        }
        chunked_seen = true;
    }
    if !chunked_seen {
        return Err(FramingError::EmptyTransferEncoding);
    }
    Ok(())
}

/// The single length that all `Content-Length` fields and list elements agree on.
fn content_length(headers: &Headers) -> Result<Option<u64>, FramingError> {
    let mut agreed = None;
    for field in headers.get_all("content-length") {
        let mut elements = list_elements(field).peekable();
        if elements.peek().is_none() {
            return Err(FramingError::InvalidContentLength);
        }
        for element in elements {
            let len = parse_decimal(element)?;
            match agreed {
                Some(previous) if previous != len => {
                    return Err(FramingError::ConflictingContentLength)
                }
                _ => agreed = Some(len),
            }
        }
    }
    Ok(agreed)
}

/// `1*DIGIT` as a u64; no sign, no whitespace inside.
fn parse_decimal(digits: &[u8]) -> Result<u64, FramingError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::InvalidContentLength);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(d - b'0')))
            .ok_or(FramingError::ContentLengthOverflow)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields<'a> = &'a [(&'a str, &'a str)];
    type Expected = Result<BodyKind, FramingError>;

    fn request(version: Version, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "POST".into(),
            target: "/".into(),
            version,
            headers: headers.iter().copied().collect(),
        }
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            version: Version::Http11,
            status,
            reason: String::new(),
            headers: headers.iter().copied().collect(),
        }
    }

    #[test]
    fn request_framing() {
        use BodyKind::*;
        let cases: &[(Fields, Expected)] = &[
            (&[], Ok(Empty)),
            (&[("Content-Length", "0")], Ok(Empty)),
            (&[("Content-Length", "42")], Ok(ContentLength(42))),
            (&[("Content-Length", "42, 42")], Ok(ContentLength(42))),
            (
                &[("content-length", "7"), ("Content-Length", "7")],
                Ok(ContentLength(7)),
            ),
            (&[("Content-Length", "007")], Ok(ContentLength(7))),
            (
                &[("Content-Length", "18446744073709551615")],
                Ok(ContentLength(u64::MAX)),
            ),
            (&[("Transfer-Encoding", "chunked")], Ok(Chunked)),
            (&[("Transfer-Encoding", "Chunked")], Ok(Chunked)),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
                Ok(Chunked),
            ),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "x")],
                Ok(Chunked),
            ),
            (
                &[("Content-Length", "1"), ("Content-Length", "2")],
                Err(FramingError::ConflictingContentLength),
            ),
            (
                &[("Content-Length", "1, 2")],
                Err(FramingError::ConflictingContentLength),
            ),
            (
                &[("Content-Length", "")],
                Err(FramingError::InvalidContentLength),
            ),
            (
                &[("Content-Length", "+5")],
                Err(FramingError::InvalidContentLength),
            ),
            (
                &[("Content-Length", "-1")],
                Err(FramingError::InvalidContentLength),
            ),
            (
                &[("Content-Length", "1 2")],
                Err(FramingError::InvalidContentLength),
            ),
            (
                &[("Content-Length", "0x10")],
                Err(FramingError::InvalidContentLength),
            ),
            (
                &[("Content-Length", "18446744073709551616")],
                Err(FramingError::ContentLengthOverflow),
            ),
            (
                &[("Transfer-Encoding", "gzip, chunked")],
                Err(FramingError::UnsupportedTransferCoding {
                    coding: "gzip".into(),
                }),
            ),
            (
                &[("Transfer-Encoding", "chunked, identity")],
                Err(FramingError::UnsupportedTransferCoding {
                    coding: "identity".into(),
                }),
            ),
            (
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Err(FramingError::ChunkedAppliedTwice),
            ),
            (
                &[("Transfer-Encoding", " , ")],
                Err(FramingError::EmptyTransferEncoding),
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                request_body_kind(&request(Version::Http11, headers)),
                *expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_in_http10_is_faulty() {
        let req = request(Version::Http10, &[("Transfer-Encoding", "chunked")]);
        assert_eq!(
            request_body_kind(&req),
            Err(FramingError::TransferEncodingInHttp10)
        );
        let mut res = response(200, &[("Transfer-Encoding", "chunked")]);
        res.version = Version::Http10;
        assert_eq!(
            response_body_kind("GET", &res),
            Err(FramingError::TransferEncodingInHttp10)
        );
        let req = request(Version::Http10, &[("Content-Length", "3")]);
        assert_eq!(request_body_kind(&req), Ok(BodyKind::ContentLength(3)));
    }

    #[test]
    fn response_framing() {
        use BodyKind::*;
        let cl = &[("Content-Length", "10")][..];
        let te = &[("Transfer-Encoding", "chunked")][..];
        let cases: &[(&str, u16, Fields, Expected)] = &[
            ("GET", 200, &[], Ok(CloseDelimited)),
            ("GET", 200, cl, Ok(ContentLength(10))),
            ("GET", 200, te, Ok(Chunked)),
            ("GET", 404, &[("Content-Length", "0")], Ok(Empty)),
            ("HEAD", 200, cl, Ok(Empty)),
            ("HEAD", 200, te, Ok(Empty)),
            ("GET", 100, cl, Ok(Empty)),
            ("GET", 101, te, Ok(Empty)),
            ("GET", 204, cl, Ok(Empty)),
            ("GET", 304, cl, Ok(Empty)),
            ("CONNECT", 200, cl, Ok(Empty)),
            ("CONNECT", 407, cl, Ok(ContentLength(10))),
            (
                "GET",
                200,
                &[("Content-Length", "1"), ("Content-Length", "2")],
                Err(FramingError::ConflictingContentLength),
            ),
            (
                "GET",
                200,
                &[("Transfer-Encoding", "gzip")],
                Err(FramingError::UnsupportedTransferCoding {
                    coding: "gzip".into(),
                }),
            ),
        ];
        for (method, status, headers, expected) in cases {
            assert_eq!(
                response_body_kind(method, &response(*status, headers)),
                *expected,
                "{method} {status} {headers:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_coding() {
        let e = FramingError::UnsupportedTransferCoding {
            coding: "gzip".into(),
        };
        assert_eq!(
            e.to_string(),
            "Transfer-Encoding \"gzip\" is not supported (only chunked)"
        );
    }
}
