//! What the relay accepts as a request-target before it resolves a hybrid connection or checks a
//! token against the path (docs/security.md).
//!
//! A target is refused, never passed on, when it holds
//! * a dot segment (`.` or `..`) in its path, also percent-encoded in any case (`%2e`, `%2E.`)
//!   and also where a segment decodes to several (`..%2f`, `..%5c`): the entity and the token
//!   would otherwise be checked on a path that a target resolves elsewhere (RFC 3986 §5.2.4);
//! * a `#` (a fragment is never sent on the wire, RFC 9112 §3.2);
//! * a byte outside printable ASCII (RFC 3986 has no raw non-ASCII characters).

use std::fmt;

use percent_encoding::percent_decode_str;

/// Why a request-target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// The path has a `.` or `..` segment (possibly percent-encoded).
    DotSegment,
    /// The target has a `#`.
    Fragment,
    /// The target has a byte that is not printable ASCII.
    NotAscii,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DotSegment => "the request path has a '.' or '..' segment",
            Self::Fragment => "the request-target has a fragment ('#')",
            Self::NotAscii => "the request-target has a byte that is not printable ASCII",
        })
    }
}

impl std::error::Error for TargetError {}

/// Checks a request-target (`path[?query]`) as received.
pub(crate) fn check_request_target(target: &str) -> Result<(), TargetError> {
    if let Some(b) = target
        .bytes()
        .find(|b| !(0x21..0x7f).contains(b) || *b == b'#')
    {
        return Err(if b == b'#' {
            TargetError::Fragment
        } else {
            TargetError::NotAscii
        });
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path.split('/').any(is_dot_segment) {
        return Err(TargetError::DotSegment);
    }
    Ok(())
}

/// Whether a raw segment decodes to `.` or `..`, or to text that a `/` or `\` in it splits into
/// such a part.
fn is_dot_segment(raw: &str) -> bool {
    if !raw.contains('.') && !raw.contains('%') {
        return false;
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    decoded
        .split(|b| *b == b'/' || *b == b'\\')
        .any(|part| part == b"." || part == b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for target in [
            "/hc1/../hc2base/secret",
            "/hc1/%2e%2e/%2e%2e/admin",
            "/hc1/%2E%2e/admin",
            "/hc1/.%2E/admin",
            "/hc1/x/../y",
            "/hc1/./x",
            "/hc1/%2e",
            "/hc1/..",
            "/hc1/..%2fhc2",
            "/hc1/..%2Fhc2",
            "/hc1/x%2f..%2fy",
            "/hc1/..%5chc2",
            "/hc1/..\\hc2",
            "/$hc/hc1/../hc2?sb-hc-action=connect",
        ] {
            assert_eq!(
                check_request_target(target),
                Err(TargetError::DotSegment),
                "{target}"
            );
        }
    }

    #[test]
    fn dots_that_are_not_segments_and_dots_in_the_query_pass() {
        for target in [
            "/hc1/file.txt",
            "/hc1/.well-known/x",
            "/hc1/...",
            "/hc1/..a",
            "/hc1/a..",
            "/hc1/%2e%2e%2e",
            "/hc1/x?path=../../etc",
            "/hc1/x?a=%2e%2e",
            "/hc1/%41",
            "/hc1//x",
        ] {
            assert_eq!(check_request_target(target), Ok(()), "{target}");
        }
    }

    #[test]
    fn fragments_and_raw_non_ascii_are_refused() {
        assert_eq!(
            check_request_target("/hc1/x#frag"),
            Err(TargetError::Fragment)
        );
        assert_eq!(
            check_request_target("/hc1/x?a=1#f"),
            Err(TargetError::Fragment)
        );
        assert_eq!(
            check_request_target("/hc1/gr\u{fc}\u{df}e"),
            Err(TargetError::NotAscii)
        );
        assert_eq!(
            check_request_target("/hc1/a\u{7f}"),
            Err(TargetError::NotAscii)
        );
        assert_eq!(check_request_target("/hc1/gr%C3%BC"), Ok(()));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            TargetError::DotSegment.to_string(),
            "the request path has a '.' or '..' segment"
        );
    }
}
