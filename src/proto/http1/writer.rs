//! Writing request and response heads (RFC 9112 §3, §4, §5), always as HTTP/1.1.
//!
//! Header names and values written here often come from untrusted JSON (relayed
//! `requestHeaders` / `responseHeaders`, protocol §6.6), so every part of a head is checked before
//! a byte is written: CR, LF or NUL anywhere would let a peer inject lines (header injection,
//! response splitting). On error `dst` is left as it was.

use std::fmt;

use super::syntax::{is_field_value, is_field_value_byte, is_injection_byte, is_tchar, is_token};

const DIGITS: &[u8; 10] = b"0123456789";

/// Why a head cannot be written. Values are never included: they may be credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The method is not a token (RFC 9112 §3.1).
    InvalidMethod { method: String },
    /// The request-target is empty or holds whitespace or a control byte (RFC 9112 §3.2).
    InvalidTarget,
    /// The status code is not three digits (RFC 9110 §15).
    InvalidStatus { status: u16 },
    /// The reason phrase holds CR, LF, NUL or another control byte (RFC 9112 §4).
    InvalidReason,
    /// A header name or value holds CR, LF or NUL.
    HeaderInjection { name: String },
    /// A header name is empty or not a token (RFC 9110 §5.1).
    InvalidHeaderName { name: String },
    /// A header value holds a control byte other than HTAB (RFC 9110 §5.5).
    InvalidHeaderValue { name: String },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMethod { method } => write!(f, "HTTP method {method:?} is not a token"),
            Self::InvalidTarget => {
                f.write_str("HTTP request-target is empty or holds whitespace or a control byte")
            }
            Self::InvalidStatus { status } => {
                write!(f, "HTTP status {status} is not a three-digit code")
            }
            Self::InvalidReason => f.write_str("HTTP reason phrase holds a control byte"),
            Self::HeaderInjection { name } => {
                write!(f, "header {name:?}: name or value holds CR, LF or NUL")
            }
            Self::InvalidHeaderName { name } => {
                write!(f, "header name {name:?} is empty or not a token")
            }
            Self::InvalidHeaderValue { name } => {
                write!(f, "header {name:?}: value holds a control byte")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// Appends `{method} {target} HTTP/1.1`, the header fields and the blank line.
pub fn write_request_head<I, N, V>(
    dst: &mut Vec<u8>,
    method: &str,
    target: &str,
    headers: I,
) -> Result<(), WriteError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    if !is_token(method.as_bytes()) {
        return Err(WriteError::InvalidMethod {
            method: method.to_owned(),
        });
    }
    if target.is_empty() || !target.bytes().all(is_target_byte) {
        return Err(WriteError::InvalidTarget);
    }
    let start = dst.len();
    dst.extend_from_slice(method.as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    finish_head(dst, start, headers)
}

/// Appends `HTTP/1.1 {status} {reason}`, the header fields and the blank line. `reason` may be
/// empty.
pub fn write_response_head<I, N, V>(
    dst: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: I,
) -> Result<(), WriteError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    if !(100..=999).contains(&status) {
        return Err(WriteError::InvalidStatus { status });
    }
    if !is_field_value(reason.as_bytes()) {
        return Err(WriteError::InvalidReason);
    }
    let start = dst.len();
    dst.extend_from_slice(b"HTTP/1.1 ");
    // `status` is 100..=999, so each quotient below is a single digit.
    for digit in [status / 100, status / 10 % 10, status % 10] {
        dst.push(DIGITS[usize::from(digit)]);
    }
    dst.push(b' ');
    dst.extend_from_slice(reason.as_bytes());
    dst.extend_from_slice(b"\r\n");
    finish_head(dst, start, headers)
}

/// Appends the header fields and the blank line; on error truncates `dst` back to `start`.
fn finish_head<I, N, V>(dst: &mut Vec<u8>, start: usize, headers: I) -> Result<(), WriteError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if let Err(e) = check_field(name, value) {
            dst.truncate(start);
            return Err(e);
        }
        dst.extend_from_slice(name.as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    Ok(())
}

/// Checks one field: injection bytes first (the rule that matters most), then the grammar.
pub(crate) fn check_field(name: &str, value: &[u8]) -> Result<(), WriteError> {
    // A token name and a field value hold no CR, LF or NUL: nothing below can fail.
    if is_token(name.as_bytes()) && is_field_value(value) {
        return Ok(());
    }
    if name
        .bytes()
        .chain(value.iter().copied())
        .any(is_injection_byte)
    {
        return Err(WriteError::HeaderInjection {
            name: name.to_owned(),
        });
    }
    if !name.bytes().all(is_tchar) || name.is_empty() {
        return Err(WriteError::InvalidHeaderName {
            name: name.to_owned(),
        });
    }
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err(WriteError::InvalidHeaderValue {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Bytes a request-target may hold: visible ASCII (RFC 3986 characters and `%` escapes) and
/// obs-text seen in the wild; never whitespace or control bytes.
fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::head::{parse_request_head, parse_response_head, Limits};

    const NO_HEADERS: [(&str, &str); 0] = [];

    #[test]
    fn writes_a_request_head() {
        let mut out = b"prefix".to_vec();
        write_request_head(
            &mut out,
            "POST",
            "/api/orders?top=5",
            [("Host", "sap.local:8080"), ("Content-Length", "2")],
        )
        .unwrap();
        assert_eq!(
            out,
            b"prefixPOST /api/orders?top=5 HTTP/1.1\r\nHost: sap.local:8080\r\nContent-Length: 2\r\n\r\n"
        );
        let (head, len) = parse_request_head(&out[6..], &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(len, out.len() - 6);
        assert_eq!(head.target, "/api/orders?top=5");
    }

    #[test]
    fn writes_a_response_head() {
        let mut out = Vec::new();
        let headers: Vec<(String, Vec<u8>)> = vec![
            ("Content-Type".into(), b"text/plain".to_vec()),
            ("X-Bin".into(), b"caf\xc3\xa9\tok".to_vec()),
        ];
        write_response_head(
            &mut out,
            404,
            "Not Found",
            headers.iter().map(|(n, v)| (n, v)),
        )
        .unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-Bin: caf\xc3\xa9\tok\r\n\r\n"
        );
        let (head, _) = parse_response_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.headers.get("x-bin"), Some(&b"caf\xc3\xa9\tok"[..]));
    }

    #[test]
    fn empty_reason_and_no_headers() {
        let mut out = Vec::new();
        write_response_head(&mut out, 599, "", NO_HEADERS).unwrap();
        assert_eq!(out, b"HTTP/1.1 599 \r\n\r\n");
    }

    #[test]
    fn writes_parsed_headers_back() {
        let raw = b"GET / HTTP/1.1\r\nA: 1\r\na: 2\r\n0: x\r\n\r\n";
        let (head, _) = parse_request_head(raw, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        write_request_head(&mut out, &head.method, &head.target, &head.headers).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn request_line_errors() {
        let cases: &[(&str, &str, WriteError)] = &[
            ("", "/", WriteError::InvalidMethod { method: "".into() }),
            (
                "GE T",
                "/",
                WriteError::InvalidMethod {
                    method: "GE T".into(),
                },
            ),
            (
                "GET\r\n",
                "/",
                WriteError::InvalidMethod {
                    method: "GET\r\n".into(),
                },
            ),
            ("GET", "", WriteError::InvalidTarget),
            ("GET", "/a b", WriteError::InvalidTarget),
            ("GET", "/a\r\nX: y", WriteError::InvalidTarget),
            ("GET", "/a\0", WriteError::InvalidTarget),
            ("GET", "/a\t", WriteError::InvalidTarget),
        ];
        for (method, target, expected) in cases {
            let mut out = b"keep".to_vec();
            assert_eq!(
                write_request_head(&mut out, method, target, NO_HEADERS),
                Err(expected.clone()),
                "{method:?} {target:?}"
            );
            assert_eq!(out, b"keep");
        }
    }

    #[test]
    fn status_line_errors() {
        let cases: &[(u16, &str, WriteError)] = &[
            (99, "x", WriteError::InvalidStatus { status: 99 }),
            (1000, "x", WriteError::InvalidStatus { status: 1000 }),
            (200, "OK\r\nSet-Cookie: a=b", WriteError::InvalidReason),
            (200, "O\nK", WriteError::InvalidReason),
            (200, "O\0K", WriteError::InvalidReason),
            (200, "O\x7fK", WriteError::InvalidReason),
        ];
        for (status, reason, expected) in cases {
            let mut out = b"keep".to_vec();
            assert_eq!(
                write_response_head(&mut out, *status, reason, NO_HEADERS),
                Err(expected.clone()),
                "{status} {reason:?}"
            );
            assert_eq!(out, b"keep");
        }
    }

    #[test]
    fn header_errors_leave_dst_unchanged() {
        let cases: &[(&str, &[u8], WriteError)] = &[
            (
                "X",
                b"a\r\nInjected: 1",
                WriteError::HeaderInjection { name: "X".into() },
            ),
            (
                "X",
                b"a\nb",
                WriteError::HeaderInjection { name: "X".into() },
            ),
            (
                "X",
                b"a\rb",
                WriteError::HeaderInjection { name: "X".into() },
            ),
            (
                "X",
                b"a\0b",
                WriteError::HeaderInjection { name: "X".into() },
            ),
            (
                "X\r\nY",
                b"v",
                WriteError::HeaderInjection {
                    name: "X\r\nY".into(),
                },
            ),
            (
                "X\0",
                b"v",
                WriteError::HeaderInjection { name: "X\0".into() },
            ),
            ("", b"v", WriteError::InvalidHeaderName { name: "".into() }),
            (
                "X Y",
                b"v",
                WriteError::InvalidHeaderName { name: "X Y".into() },
            ),
            (
                "X:",
                b"v",
                WriteError::InvalidHeaderName { name: "X:".into() },
            ),
            (
                "é",
                b"v",
                WriteError::InvalidHeaderName { name: "é".into() },
            ),
            (
                "X",
                b"a\x01b",
                WriteError::InvalidHeaderValue { name: "X".into() },
            ),
            (
                "X",
                b"a\x7fb",
                WriteError::InvalidHeaderValue { name: "X".into() },
            ),
        ];
        for (name, value, expected) in cases {
            let fields = [("Good", &b"1"[..]), (*name, *value)];
            let mut out = b"keep".to_vec();
            assert_eq!(
                write_response_head(&mut out, 200, "OK", fields),
                Err(expected.clone()),
                "{name:?}"
            );
            assert_eq!(out, b"keep");
            assert_eq!(
                write_request_head(&mut out, "GET", "/", fields),
                Err(expected.clone()),
                "{name:?}"
            );
            assert_eq!(out, b"keep");
        }
    }

    #[test]
    fn errors_never_show_values() {
        let err = write_request_head(
            &mut Vec::new(),
            "GET",
            "/",
            [(
                "ServiceBusAuthorization",
                "SharedAccessSignature sig=SECRET\r\n",
            )],
        )
        .unwrap_err();
        assert_eq!(
            err,
            WriteError::HeaderInjection {
                name: "ServiceBusAuthorization".into()
            }
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(
            err.to_string(),
            "header \"ServiceBusAuthorization\": name or value holds CR, LF or NUL"
        );
    }
}
