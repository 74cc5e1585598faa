//! Audience matching: is a token's `sr` valid for this namespace and path? (protocol §3.4)
//!
//! The producers disagree on the resource URI they sign (scheme `http`/`https`/`sb`/`ws`/`wss`,
//! with or without port, with or without a trailing `/`, with or without the `$hc/` segment), so
//! the verifier compares only host and path, leniently:
//!
//! * the host must be the namespace host or a configured alias, ASCII case-insensitively;
//! * paths are compared after [`normalize_path`]; a token path covers itself and everything
//!   below it, on `/` boundaries, ASCII case-insensitively; an empty token path is namespace-wide.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use url::Url;

/// The host and path a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Audience {
    /// Lower-cased, IPv6 brackets removed.
    pub(super) host: String,
    /// Normalised by [`normalize_path`].
    pub(super) path: String,
}

/// Parses the decoded `sr` value; `None` when it is not an absolute URL with a host.
pub(super) fn parse_audience(resource: &str) -> Option<Audience> {
    let url = Url::parse(resource).ok()?;
    let host = normalize_host(url.host_str()?);
    if host.is_empty() {
        return None;
    }
    Some(Audience {
        host,
        path: normalize_path(url.path()),
    })
}

/// Lower-cases a host and removes the brackets of an IPv6 literal.
pub(super) fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Reduces a path for comparison: query dropped, percent-decoded, leading `/`s removed, a leading
/// `$hc` segment removed (listen/connect URLs carry it, some signers keep it), one trailing `/`
/// removed. `"/$hc/hyco/"` → `"hyco"`; `"/"` → `""`.
pub(super) fn normalize_path(raw: &str) -> String {
    let without_query = raw.split_once('?').map_or(raw, |(path, _)| path);
    let decoded: Cow<'_, str> = percent_decode_str(without_query).decode_utf8_lossy();
    let mut path = decoded.trim_start_matches('/');
    if let Some(rest) = strip_hc_segment(path) {
        path = rest;
    }
    path.strip_suffix('/').unwrap_or(path).to_owned()
}

/// `"$hc"` → `""`, `"$hc/x"` → `"x"`, anything else → `None` (ASCII case-insensitive).
fn strip_hc_segment(path: &str) -> Option<&str> {
    const HC: &str = "$hc";
    let head = path.get(..HC.len())?;
    if !head.eq_ignore_ascii_case(HC) {
        return None;
    }
    let rest = path.get(HC.len()..)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

/// Whether `scope` (a normalised token path) covers `target` (a normalised path): equal, or a
/// prefix ending on a `/` boundary, ASCII case-insensitively. An empty scope covers everything.
pub(super) fn covers(scope: &str, target: &str) -> bool {
    if scope.is_empty() {
        return true;
    }
    let (scope, target) = (scope.as_bytes(), target.as_bytes());
    match target.get(..scope.len()) {
        Some(head) if head.eq_ignore_ascii_case(scope) => {
            matches!(target.get(scope.len()), None | Some(b'/'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_audience_ignores_scheme_port_query_and_fragment() {
        for sr in [
            "http://contoso.servicebus.windows.net/hyco",
            "https://contoso.servicebus.windows.net:443/hyco/",
            "sb://Contoso.ServiceBus.Windows.Net/hyco",
            "wss://contoso.servicebus.windows.net:443/$hc/hyco?sb-hc-action=listen",
            "ws://contoso.servicebus.windows.net/hyco#frag",
        ] {
            assert_eq!(
                parse_audience(sr),
                Some(Audience {
                    host: "contoso.servicebus.windows.net".into(),
                    path: "hyco".into()
                }),
                "{sr}"
            );
        }
    }

    #[test]
    fn parse_audience_rejects_relative_and_hostless_uris() {
        assert_eq!(parse_audience("contoso.servicebus.windows.net/hyco"), None);
        assert_eq!(parse_audience("sb:hyco"), None);
        assert_eq!(parse_audience("sb:///hyco"), None);
        assert_eq!(parse_audience(""), None);
    }

    #[test]
    fn parse_audience_strips_ipv6_brackets() {
        let audience = parse_audience("http://[::1]:9000/hyco").unwrap();
        assert_eq!(audience.host, "::1");
    }

    #[test]
    fn normalize_path_cases() {
        let cases = [
            ("", ""),
            ("/", ""),
            ("/hyco", "hyco"),
            ("/hyco/", "hyco"),
            ("/hyco//", "hyco/"),
            ("/$hc/hyco", "hyco"),
            ("/$HC/hyco/x?sb-hc-action=connect", "hyco/x"),
            ("/$hc", ""),
            ("/$hcx/hyco", "$hcx/hyco"),
            ("/a%20b/c", "a b/c"),
            ("hyco", "hyco"),
        ];
        for (raw, normalized) in cases {
            assert_eq!(normalize_path(raw), normalized, "{raw:?}");
        }
    }

    #[test]
    fn covers_on_segment_boundaries_case_insensitively() {
        assert!(covers("", "anything/at/all"));
        assert!(covers("hyco", "hyco"));
        assert!(covers("hyco", "HYCO"));
        assert!(covers("hyco", "hyco/suffix"));
        assert!(covers("a/b", "a/b/c"));
        assert!(!covers("hy", "hyco"));
        assert!(!covers("hyco", "hyco2"));
        assert!(!covers("hyco/suffix", "hyco"));
        assert!(!covers("a/b", "a/bc"));
        assert!(!covers("hyco", ""));
    }

    #[test]
    fn covers_does_not_panic_on_multibyte_text() {
        assert!(!covers("é", "e"));
        assert!(!covers("ab", "aé"));
        assert!(covers("é", "é/x"));
    }
}
