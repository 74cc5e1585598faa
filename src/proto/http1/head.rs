//! Request and response heads (RFC 9112 §2–§5), parsed push-style over `httparse` with named
//! limits (protocol §6.1: 32 KB of header metadata).
//!
//! The parsers take whatever bytes have arrived so far and answer "need more" (`Ok(None)`), a
//! complete owned head with its length, or the rule the bytes break. They keep no state between
//! calls: the caller keeps the bytes and calls again when more have arrived.

use std::fmt;
use std::mem::MaybeUninit;

use super::headers::Headers;

/// Default cap on a head's size: protocol §6.1's 32 KB of header metadata.
pub(crate) const DEFAULT_MAX_HEAD_BYTES: usize = 32 * 1024;
/// Default cap on the number of header fields in one head.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 100;

/// Header slots parsed on the stack; larger `max_headers` use a heap buffer.
const STACK_HEADER_SLOTS: usize = 128;

/// What a head may cost before it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes from the start line through the blank line ending the head.
    pub max_head_bytes: usize,
    /// Header fields, duplicates counted.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// The protocol version of a message (RFC 9112 §2.3); `httparse` accepts no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as written on the wire, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }

    fn from_minor(minor: Option<u8>) -> Self {
        match minor {
            Some(0) => Self::Http10,
            _ => Self::Http11,
        }
    }
}

/// A parsed request line and header section (RFC 9112 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent (origin-form `/path?query` in practice).
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    /// The target up to (not including) the first `?`.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target after the first `?`, if there is one (possibly empty).
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// Whether the connection stays open after this exchange (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

impl fmt::Debug for RequestHead {
    /// The query is not printed: it may carry a token (`sb-hc-token`, protocol §3.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = self.query().map(|_| crate::secret::REDACTED);
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("path", &self.path())
            .field("query", &query)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .finish()
    }
}

/// A parsed status line and header section (RFC 9112 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    /// The reason phrase; empty when absent or not valid text.
    pub reason: String,
    pub headers: Headers,
}

impl ResponseHead {
    /// Whether this is an interim (1xx) response that a final response will follow
    /// (RFC 9110 §15.2). `101 Switching Protocols` is 1xx too, but ends HTTP on the connection.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Whether the connection stays open after this exchange (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// RFC 9112 §9.3: `close` ends any connection; HTTP/1.1 persists by default, HTTP/1.0 only
/// with `keep-alive`.
fn keep_alive(version: Version, headers: &Headers) -> bool {
    if headers.has_token("connection", "close") {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => headers.has_token("connection", "keep-alive"),
    }
}

/// Why bytes are not a valid head. Each variant is one syntax rule (RFC 9112) or one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head (or the part received so far) is larger than `max_head_bytes`.
    HeadTooLarge { max: usize },
    /// The head has more than `max_headers` fields.
    TooManyHeaders { max: usize },
    /// The method is not a token (RFC 9112 §3.1).
    InvalidMethod,
    /// The request-target holds a byte not allowed there (RFC 9112 §3.2).
    InvalidTarget,
    /// The version is not `HTTP/1.0` or `HTTP/1.1` (RFC 9112 §2.3).
    InvalidVersion,
    /// The status code is not three digits, or the status line is malformed (RFC 9112 §4).
    InvalidStatusLine,
    /// A field name is empty or not a token, or a line has no colon (RFC 9112 §5).
    InvalidHeaderName,
    /// A field value holds a control byte (RFC 9110 §5.5).
    InvalidHeaderValue,
    /// A line does not end with CRLF (or a bare LF) (RFC 9112 §2.2).
    InvalidLineEnding,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge { max } => write!(f, "HTTP head larger than {max} bytes"),
            Self::TooManyHeaders { max } => {
                write!(f, "HTTP head has more than {max} header fields")
            }
            Self::InvalidMethod => f.write_str("HTTP method is not a token"),
            Self::InvalidTarget => f.write_str("HTTP request-target holds an invalid byte"),
            Self::InvalidVersion => f.write_str("HTTP version is not HTTP/1.0 or HTTP/1.1"),
            Self::InvalidStatusLine => f.write_str("HTTP status line is malformed"),
            Self::InvalidHeaderName => f.write_str("HTTP header name is empty or not a token"),
            Self::InvalidHeaderValue => f.write_str("HTTP header value holds a control byte"),
            Self::InvalidLineEnding => f.write_str("HTTP head line does not end with CRLF"),
        }
    }
}

impl std::error::Error for HeadError {}

fn map_httparse(e: httparse::Error, limits: &Limits, method_parsed: bool) -> HeadError {
    match e {
        httparse::Error::HeaderName => HeadError::InvalidHeaderName,
        httparse::Error::HeaderValue => HeadError::InvalidHeaderValue,
        httparse::Error::NewLine => HeadError::InvalidLineEnding,
        httparse::Error::Status => HeadError::InvalidStatusLine,
        // httparse reports a bad method and a bad target alike; the method is set once parsed.
        httparse::Error::Token if method_parsed => HeadError::InvalidTarget,
        httparse::Error::Token => HeadError::InvalidMethod,
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders {
            max: limits.max_headers,
        },
        httparse::Error::Version => HeadError::InvalidVersion,
    }
}

/// Turns `httparse`'s borrowed fields into an owned list.
fn owned_headers(parsed: &[httparse::Header<'_>]) -> Headers {
    let name_bytes = parsed.iter().map(|h| h.name.len()).sum();
    let value_bytes = parsed.iter().map(|h| h.value.len()).sum();
    let mut headers = Headers::with_capacity(parsed.len(), name_bytes, value_bytes);
    for h in parsed {
        headers.push(h.name, h.value);
    }
    headers
}

/// What to do with a parse that did not complete: wait for more, or refuse a head that can no
/// longer fit.
fn incomplete<T>(buf: &[u8], limits: &Limits) -> Result<Option<T>, HeadError> {
    if buf.len() >= limits.max_head_bytes {
        return Err(HeadError::HeadTooLarge {
            max: limits.max_head_bytes,
        });
    }
    Ok(None)
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((head, len)))`: the head is `buf[..len]`; the
/// body (if any) starts at `buf[len]`.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    if limits.max_headers <= STACK_HEADER_SLOTS {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_HEADER_SLOTS];
        parse_request_in(buf, window, limits, &mut slots[..limits.max_headers])
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); limits.max_headers];
        parse_request_in(buf, window, limits, &mut slots)
    }
}

fn parse_request_in<'b>(
    buf: &[u8],
    window: &'b [u8],
    limits: &Limits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let status = req
        .parse_with_uninit_headers(window, slots)
        .map_err(|e| map_httparse(e, limits, req.method.is_some()))?;
    let httparse::Status::Complete(len) = status else {
        return incomplete(buf, limits);
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        // httparse sets both before reporting a complete head.
        return Err(HeadError::InvalidMethod);
    };
    let head = RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: Version::from_minor(req.version),
        headers: owned_headers(req.headers),
    };
    Ok(Some((head, len)))
}

/// Parses a response head from the start of `buf`; results as for [`parse_request_head`].
/// Interim (1xx) heads are returned like any other; see [`ResponseHead::is_informational`].
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    if limits.max_headers <= STACK_HEADER_SLOTS {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_HEADER_SLOTS];
        parse_response_in(buf, window, limits, &mut slots[..limits.max_headers])
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); limits.max_headers];
        parse_response_in(buf, window, limits, &mut slots)
    }
}

fn parse_response_in<'b>(
    buf: &[u8],
    window: &'b [u8],
    limits: &Limits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut res = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, window, slots)
        .map_err(|e| map_httparse(e, limits, false))?;
    let httparse::Status::Complete(len) = status else {
        return incomplete(buf, limits);
    };
    let Some(status) = res.code else {
        // httparse sets the code before reporting a complete head.
        return Err(HeadError::InvalidStatusLine);
    };
    let head = ResponseHead {
        version: Version::from_minor(res.version),
        status,
        reason: res.reason.unwrap_or_default().to_owned(),
        headers: owned_headers(res.headers),
    };
    Ok(Some((head, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"POST /hyco/api/orders?top=5&x HTTP/1.1\r\n\
        Host: relay.example\r\n\
        Content-Type: application/json\r\n\
        X-Dup: a\r\n\
        x-dup: b\r\n\
        0: Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Content-Length: 2\r\n\r\n{}";

    const RESPONSE: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nVia: 1.1 x\r\n\r\n";

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn default_limits_match_spec() {
        let l = Limits::default();
        assert_eq!(l.max_head_bytes, 32 * 1024);
        assert_eq!(l.max_headers, 100);
    }

    #[test]
    fn parses_a_request_head() {
        let (head, len) = parse_request_head(REQUEST, &limits()).unwrap().unwrap();
        assert_eq!(len, REQUEST.len() - 2);
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/hyco/api/orders?top=5&x");
        assert_eq!(head.path(), "/hyco/api/orders");
        assert_eq!(head.query(), Some("top=5&x"));
        assert_eq!(head.version, Version::Http11);
        let names: Vec<&str> = head.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "Host",
                "Content-Type",
                "X-Dup",
                "x-dup",
                "0",
                "Content-Length"
            ]
        );
        assert_eq!(
            head.headers.get("0"),
            Some(&b"Sec-WebSocket-Extensions: permessage-deflate"[..])
        );
        assert!(head.keep_alive());
    }

    #[test]
    fn request_without_query() {
        let (head, _) = parse_request_head(b"GET / HTTP/1.0\r\n\r\n", &limits())
            .unwrap()
            .unwrap();
        assert_eq!(head.path(), "/");
        assert_eq!(head.query(), None);
        assert_eq!(head.version, Version::Http10);
        assert!(head.headers.is_empty());
    }

    #[test]
    fn parses_a_response_head() {
        let (head, len) = parse_response_head(RESPONSE, &limits()).unwrap().unwrap();
        assert_eq!(len, RESPONSE.len());
        assert_eq!(head.status, 404);
        assert_eq!(head.reason, "Not Found");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.headers.get("via"), Some(&b"1.1 x"[..]));
        assert!(!head.is_informational());
    }

    #[test]
    fn response_without_reason() {
        let (head, _) = parse_response_head(b"HTTP/1.1 204\r\n\r\n", &limits())
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 204);
        assert_eq!(head.reason, "");
    }

    #[test]
    fn informational_responses() {
        for (status, expected) in [(100, true), (101, true), (199, true), (200, false)] {
            let head = ResponseHead {
                version: Version::Http11,
                status,
                reason: String::new(),
                headers: Headers::new(),
            };
            assert_eq!(head.is_informational(), expected, "{status}");
        }
    }

    #[test]
    fn byte_by_byte_request_needs_more_until_complete() {
        let head_len = REQUEST.len() - 2;
        for end in 0..head_len {
            assert_eq!(
                parse_request_head(&REQUEST[..end], &limits()),
                Ok(None),
                "prefix of {end} bytes"
            );
        }
        let (_, len) = parse_request_head(&REQUEST[..head_len], &limits())
            .unwrap()
            .unwrap();
        assert_eq!(len, head_len);
    }

    #[test]
    fn byte_by_byte_response_needs_more_until_complete() {
        for end in 0..RESPONSE.len() {
            assert_eq!(parse_response_head(&RESPONSE[..end], &limits()), Ok(None));
        }
        assert!(parse_response_head(RESPONSE, &limits()).unwrap().is_some());
    }

    #[test]
    fn request_errors() {
        let cases: &[(&[u8], HeadError)] = &[
            (b"GE(T / HTTP/1.1\r\n\r\n", HeadError::InvalidMethod),
            (b"GET /a\x01b HTTP/1.1\r\n\r\n", HeadError::InvalidTarget),
            (b"GET / HTTP/2.0\r\n\r\n", HeadError::InvalidVersion),
            (
                b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
                HeadError::InvalidHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\n: x\r\n\r\n",
                HeadError::InvalidHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nA: x\x01y\r\n\r\n",
                HeadError::InvalidHeaderValue,
            ),
            (
                b"GET / HTTP/1.1\r\nA: x\rB: y\r\n\r\n",
                HeadError::InvalidHeaderValue,
            ),
            (b"GET / HTTP/1.1\rX", HeadError::InvalidLineEnding),
            (
                b"GET / HTTP/1.1\r\nA: x\r\n\rX",
                HeadError::InvalidLineEnding,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_request_head(input, &limits()),
                Err(*expected),
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn response_errors() {
        let cases: &[(&[u8], HeadError)] = &[
            (b"HTTP/1.1 20 OK\r\n\r\n", HeadError::InvalidStatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", HeadError::InvalidStatusLine),
            (b"HTTP/3 200 OK\r\n\r\n", HeadError::InvalidVersion),
            (
                b"HTTP/1.1 200 OK\r\n(x): y\r\n\r\n",
                HeadError::InvalidHeaderName,
            ),
            (
                b"HTTP/1.1 200 OK\r\nx: \x00\r\n\r\n",
                HeadError::InvalidHeaderValue,
            ),
            (
                b"HTTP/1.1 200 OK\r\nx: y\r\n folded\r\n\r\n",
                HeadError::InvalidHeaderName,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_response_head(input, &limits()),
                Err(*expected),
                "{}",
                input.escape_ascii()
            );
        }
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let ok = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\n\r\n";
        assert!(parse_request_head(ok, &limits).unwrap().is_some());
        let over = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(
            parse_request_head(over, &limits),
            Err(HeadError::TooManyHeaders { max: 2 })
        );
        let over = b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(
            parse_response_head(over, &limits),
            Err(HeadError::TooManyHeaders { max: 2 })
        );
    }

    #[test]
    fn many_headers_beyond_the_stack_slots() {
        let limits = Limits {
            max_headers: 300,
            max_head_bytes: 64 * 1024,
        };
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            req.extend_from_slice(format!("h{i}: {i}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let (head, len) = parse_request_head(&req, &limits).unwrap().unwrap();
        assert_eq!(len, req.len());
        assert_eq!(head.headers.len(), 300);
        assert_eq!(head.headers.get("h299"), Some(&b"299"[..]));
        let (head, _) =
            parse_response_head(&[b"HTTP/1.1 200 OK\r\n", &req[16..]].concat(), &limits)
                .unwrap()
                .unwrap();
        assert_eq!(head.headers.len(), 300);
    }

    #[test]
    fn head_too_large() {
        let limits = Limits {
            max_head_bytes: 32,
            ..Limits::default()
        };
        // Exactly at the limit: accepted.
        let exact = b"GET / HTTP/1.1\r\nA: 123456789\r\n\r\n";
        assert_eq!(exact.len(), 32);
        assert!(parse_request_head(exact, &limits).unwrap().is_some());
        // One byte more, complete: refused.
        let over = b"GET / HTTP/1.1\r\nA: 1234567890\r\n\r\n";
        assert_eq!(
            parse_request_head(over, &limits),
            Err(HeadError::HeadTooLarge { max: 32 })
        );
        // Incomplete and already at the limit: refused without waiting for more.
        let partial = &over[..32];
        assert_eq!(
            parse_request_head(partial, &limits),
            Err(HeadError::HeadTooLarge { max: 32 })
        );
        // Incomplete and below the limit: need more.
        assert_eq!(parse_request_head(&over[..31], &limits), Ok(None));
        let over = b"HTTP/1.1 200 OK\r\nA: 1234567890\r\n\r\n";
        assert_eq!(
            parse_response_head(over, &limits),
            Err(HeadError::HeadTooLarge { max: 32 })
        );
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (input, expected) in cases {
            let (head, _) = parse_request_head(input, &limits()).unwrap().unwrap();
            assert_eq!(head.keep_alive(), *expected, "{}", input.escape_ascii());
        }
        let (head, _) = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n", &limits())
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive());
    }

    #[test]
    fn debug_hides_query_and_credentials() {
        let raw = b"GET /hc?sb-hc-token=SECRET HTTP/1.1\r\nServiceBusAuthorization: SECRET\r\n\r\n";
        let (head, _) = parse_request_head(raw, &limits()).unwrap().unwrap();
        let printed = format!("{head:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("/hc"), "{printed}");
    }

    #[test]
    fn errors_display_the_rule() {
        assert_eq!(
            HeadError::HeadTooLarge { max: 10 }.to_string(),
            "HTTP head larger than 10 bytes"
        );
        assert_eq!(
            HeadError::TooManyHeaders { max: 3 }.to_string(),
            "HTTP head has more than 3 header fields"
        );
    }
}
