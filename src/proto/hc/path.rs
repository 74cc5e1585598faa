//! Relay request paths and the listener's upstream paths.
//!
//! * WebSocket URLs are `/$hc/{entity path}[/{suffix}]` (protocol §2.2).
//! * A request path belongs to the configured hybrid connection whose entity path is the longest
//!   case-insensitive segment-prefix of it (protocol Appendix A).
//! * A relayed HTTP `requestTarget` is `/{entity path}{suffix}[?query]`; the listener maps it onto
//!   its upstream base path by replacing the entity-path prefix and keeping the query byte-exact
//!   (protocol §6.7).

use std::fmt;

use percent_encoding::percent_decode_str;

/// The fixed first segment of every WebSocket URL path, with its slashes (protocol §2.2). Every SDK
/// sends the `$` unescaped.
pub const WEBSOCKET_PATH_PREFIX: &str = "/$hc/";

/// Splits a request-target into its path and its query (the text after the first `?`, without
/// the `?`; `None` when there is no `?`).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// The part of a WebSocket URL path after `/$hc`: `/{entity path}[/{suffix}]`, starting with `/`
/// (protocol §2.2).
#[cfg(test)]
pub fn websocket_entity_path(path: &str) -> Result<&str, PathError> {
    match path.strip_prefix(WEBSOCKET_PATH_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(&path[WEBSOCKET_PATH_PREFIX.len() - 1..]),
        _ => Err(PathError::NotAHybridConnectionPath),
    }
}

/// A configured hybrid connection that a request path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityMatch<'p> {
    /// The index of the matching entity path in the list given to [`match_entity`].
    pub index: usize,
    /// What follows the entity path in the request path: empty, or starting with `/`. Still
    /// percent-encoded, exactly as received.
    pub suffix: &'p str,
}

/// Finds the hybrid connection a request path belongs to (protocol Appendix A): the longest of
/// `entity_paths` that is a segment-prefix of `path`.
///
/// `path` starts with `/` and has no query (for WebSocket URLs, the part after `/$hc`). Segments are compared after percent-decoding the request's
/// segment, ASCII case-insensitively; a request segment never matches across a `/` of the
/// entity path. Entity paths are given decoded, without leading or trailing `/` (the .NET SDK
/// refuses such names); an empty entity path or one with a leading or trailing `/` never
/// matches. On a tie (entity paths that differ only in case) the first one wins.
pub fn match_entity<'p, S: AsRef<str>>(
    path: &'p str,
    entity_paths: &[S],
) -> Option<EntityMatch<'p>> {
    let mut best: Option<(usize, usize)> = None;
    for (index, entity_path) in entity_paths.iter().enumerate() {
        let Some(len) = matched_len(path, entity_path.as_ref()) else {
            continue;
        };
        let longer = match best {
            Some((_, best_len)) => len > best_len,
            None => true,
        };
        if longer {
            best = Some((index, len));
        }
    }
    best.map(|(index, len)| EntityMatch {
        index,
        suffix: &path[len..],
    })
}

/// How many bytes of `path` the entity path covers, ending on a segment boundary.
fn matched_len(path: &str, entity_path: &str) -> Option<usize> {
    if entity_path.is_empty() || entity_path.starts_with('/') || entity_path.ends_with('/') {
        return None;
    }
    let mut request_segments = path.strip_prefix('/')?.split('/');
    let mut len = 0;
    for wanted in entity_path.split('/') {
        let segment = request_segments.next()?;
        if !segment_matches(segment, wanted) {
            return None;
        }
        // Each segment is preceded by exactly one `/`.
        len += 1 + segment.len();
    }
    Some(len)
}

/// Compares a percent-encoded request segment with a decoded entity segment, without allocating.
fn segment_matches(encoded: &str, wanted: &str) -> bool {
    let mut decoded = percent_decode_str(encoded);
    let mut wanted = wanted.bytes();
    loop {
        match (decoded.next(), wanted.next()) {
            (None, None) => return true,
            (Some(got), Some(want)) if got.eq_ignore_ascii_case(&want) => {}
            _ => return false,
        }
    }
}

/// Whether two request paths name the same resource byte for byte once percent-decoded (a
/// client may re-encode a URL it was handed, e.g. `%7E` as `~`).
pub fn same_decoded_path(a: &str, b: &str) -> bool {
    percent_decode_str(a).eq(percent_decode_str(b))
}

/// Maps a relayed `requestTarget` onto the upstream (protocol §6.7): strips the leading
/// `/{entity path}` (case-insensitively, on a segment boundary, as [`match_entity`] compares),
/// appends the rest of the path to `upstream_base_path` and keeps the query as received.
///
/// `upstream_base_path` is the path of the configured upstream URL, e.g. `/ErpConnect/`; an
/// empty one means `/`. A trailing `/` on it is not doubled. When the target is exactly the
/// entity path, the result is the base path itself.
///
/// Whatever the relay forwards, the result stays under the base path: dot segments after the
/// entity path are removed as RFC 3986 §5.2.4 does, `%2E` spellings (any case) included, and
/// one that would climb above the entity path — or a dot segment hidden behind an encoded
/// `/` or a `\` that a target might split on — is [`PathError::DotSegments`]. A `#` is
/// [`PathError::Fragment`]; raw non-ASCII bytes are percent-encoded.
pub fn upstream_target(
    request_target: &str,
    entity_path: &str,
    upstream_base_path: &str,
) -> Result<String, PathError> {
    if !request_target.starts_with('/') {
        return Err(PathError::TargetNotOriginForm);
    }
    if request_target.contains('#') {
        return Err(PathError::Fragment);
    }
    let (path, query) = split_target(request_target);
    let Some(len) = matched_len(path, entity_path) else {
        return Err(PathError::TargetOutsideEntity {
            entity_path: entity_path.to_owned(),
        });
    };
    let suffix = remove_dot_segments(&path[len..])?;
    let suffix = suffix.as_ref();
    let base = if upstream_base_path.is_empty() {
        "/"
    } else {
        upstream_base_path
    };
    let mut target = String::with_capacity(base.len() + request_target.len());
    if suffix.is_empty() {
        target.push_str(base);
    } else {
        target.push_str(base.strip_suffix('/').unwrap_or(base));
        target.push_str(suffix);
    }
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    if !target.is_ascii() {
        target = encode_non_ascii(&target);
    }
    Ok(target)
}

/// What one path segment is once percent-decoded.
enum Segment {
    /// `.`
    Current,
    /// `..`
    Parent,
    /// Anything else.
    Plain,
}

/// Classifies a raw segment; a segment that decodes to several parts around a `/` or `\`
/// with a dot segment among them is refused: it is no dot segment to RFC 3986, but a target
/// that decodes first would climb with it.
fn classify(raw: &str) -> Result<Segment, PathError> {
    if !raw.contains(['.', '%', '\\']) {
        return Ok(Segment::Plain);
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    match decoded.as_slice() {
        b"." => return Ok(Segment::Current),
        b".." => return Ok(Segment::Parent),
        _ => {}
    }
    let hidden = decoded
        .split(|b| *b == b'/' || *b == b'\\')
        .any(|part| part == b"." || part == b"..");
    if hidden {
        Err(PathError::DotSegments)
    } else {
        Ok(Segment::Plain)
    }
}

/// RFC 3986 §5.2.4 on `suffix` (empty, or starting with `/`), with the entity path as the
/// floor: a `..` with nothing left to remove is [`PathError::DotSegments`]. A path ending in a
/// dot segment keeps its trailing `/`, as the RFC's algorithm does.
fn remove_dot_segments(suffix: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    let Some(rest) = suffix.strip_prefix('/') else {
        return Ok(suffix.into());
    };
    if !suffix.contains(['.', '%', '\\']) {
        return Ok(suffix.into());
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut changed = false;
    let mut segments = rest.split('/').peekable();
    while let Some(raw) = segments.next() {
        match classify(raw)? {
            Segment::Plain => {
                kept.push(raw);
                continue;
            }
            Segment::Current => {}
            Segment::Parent => {
                kept.pop().ok_or(PathError::DotSegments)?;
            }
        }
        changed = true;
        if segments.peek().is_none() {
            kept.push("");
        }
    }
    if !changed {
        return Ok(suffix.into());
    }
    let mut out = String::with_capacity(suffix.len());
    for segment in kept {
        out.push('/');
        out.push_str(segment);
    }
    Ok(out.into())
}

/// Percent-encodes every byte of `text` outside ASCII (RFC 3986 §2.1: URIs carry no raw
/// non-ASCII characters).
fn encode_non_ascii(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() * 2);
    for &byte in text.as_bytes() {
        if byte.is_ascii() {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// A WebSocket URL path that does not start with `/$hc/{entity path}` (protocol §2.2).
    NotAHybridConnectionPath,
    /// A `requestTarget` that is not a path starting with `/` (protocol §4.4: RFC 7230 origin
    /// form).
    TargetNotOriginForm,
    /// A `requestTarget` that does not start with `/{entity path}` (protocol §4.4, §6.7).
    TargetOutsideEntity { entity_path: String },
    /// A `requestTarget` whose dot segments climb above the entity path, or hide behind an
    /// encoded separator.
    DotSegments,
    /// A `requestTarget` with a fragment (`#`), which is never sent on the wire.
    Fragment,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAHybridConnectionPath => write!(
                f,
                "path does not start with {WEBSOCKET_PATH_PREFIX}{{entity path}}"
            ),
            Self::TargetNotOriginForm => f.write_str("requestTarget does not start with /"),
            Self::TargetOutsideEntity { entity_path } => write!(
                f,
                "requestTarget does not start with the hybrid connection path /{entity_path}"
            ),
            Self::DotSegments => f.write_str(
                "requestTarget has a dot segment that climbs above the hybrid connection path \
                 or hides behind an encoded separator",
            ),
            Self::Fragment => f.write_str("requestTarget has a fragment ('#')"),
        }
    }
}

impl std::error::Error for PathError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_target_separates_at_the_first_question_mark() {
        assert_eq!(split_target("/a/b?x=1?y"), ("/a/b", Some("x=1?y")));
        assert_eq!(split_target("/a?"), ("/a", Some("")));
        assert_eq!(split_target("/a"), ("/a", None));
    }

    #[test]
    fn websocket_entity_path_strips_the_hc_segment() {
        assert_eq!(websocket_entity_path("/$hc/hyco"), Ok("/hyco"));
        assert_eq!(websocket_entity_path("/$hc/hyco/sap/x"), Ok("/hyco/sap/x"));
    }

    #[test]
    fn websocket_entity_path_requires_the_hc_segment_and_an_entity() {
        for path in [
            "/hyco",
            "/$hc",
            "/$hc/",
            "$hc/hyco",
            "/%24hc/hyco",
            "/$hcx/hyco",
            "/$HC/hyco",
        ] {
            assert_eq!(
                websocket_entity_path(path),
                Err(PathError::NotAHybridConnectionPath),
                "{path}"
            );
        }
    }

    #[test]
    fn match_entity_picks_the_longest_segment_prefix() {
        let entities = ["a", "a/b", "a/b/c/d", "other"];
        let cases = [
            ("/a", Some((0, ""))),
            ("/a/", Some((0, "/"))),
            ("/a/x", Some((0, "/x"))),
            ("/a/b", Some((1, ""))),
            ("/a/b/c", Some((1, "/c"))),
            ("/a/b/c/d/e", Some((2, "/e"))),
            ("/a/bc", Some((0, "/bc"))),
            ("/ab", None),
            ("/other/a/b", Some((3, "/a/b"))),
            ("/", None),
            ("", None),
            ("//a", None),
            ("a", None),
        ];
        for (path, expected) in cases {
            let got = match_entity(path, &entities).map(|m| (m.index, m.suffix));
            assert_eq!(got, expected, "{path}");
        }
    }

    #[test]
    fn match_entity_is_case_insensitive_and_keeps_the_suffix_as_received() {
        let entities = ["Hyco"];
        let matched = match_entity("/hYCO/Sub/Path", &entities).unwrap();
        assert_eq!(
            matched,
            EntityMatch {
                index: 0,
                suffix: "/Sub/Path"
            }
        );
    }

    #[test]
    fn match_entity_decodes_request_segments() {
        let entities = ["my hc", "a/b"];
        assert_eq!(
            match_entity("/my%20hc/x", &entities).map(|m| m.index),
            Some(0)
        );
        assert_eq!(
            match_entity("/%61/%62/x", &entities).map(|m| m.suffix),
            Some("/x")
        );
        assert_eq!(match_entity("/a%2Fb/x", &entities), None);
    }

    #[test]
    fn match_entity_ignores_malformed_entity_paths() {
        for entity in ["", "/a", "a/"] {
            assert_eq!(match_entity("/a/b", &[entity]), None, "{entity:?}");
        }
    }

    #[test]
    fn match_entity_prefers_the_first_of_equal_matches() {
        let entities = ["HYCO", "hyco"];
        assert_eq!(match_entity("/hyco", &entities).map(|m| m.index), Some(0));
    }

    #[test]
    fn match_entity_handles_multi_segment_entity_names() {
        let entities = ["microsoft.hybridcompute/machines/abc/1/v2"];
        let matched = match_entity("/microsoft.hybridcompute/machines/abc/1/v2/ws", &entities);
        assert_eq!(matched.map(|m| m.suffix), Some("/ws"));
    }

    #[test]
    fn same_decoded_path_compares_after_decoding_and_keeps_case() {
        assert!(same_decoded_path("/$hc/hyco/a~b", "/$hc/hyco/a%7Eb"));
        assert!(same_decoded_path("/$hc/hyco", "/$hc/hyco"));
        assert!(!same_decoded_path("/$hc/hyco", "/$hc/HYCO"));
        assert!(!same_decoded_path("/$hc/hyco", "/$hc/hyco/x"));
    }

    #[test]
    fn upstream_target_follows_the_example_of_spec_6_7() {
        let path = upstream_target("/hyco/api/orders?top=5", "hyco", "/ErpConnect/").unwrap();
        assert_eq!(path, "/ErpConnect/api/orders?top=5");
        assert_eq!(
            format!("http://sap-ecs.local:8080{path}"),
            "http://sap-ecs.local:8080/ErpConnect/api/orders?top=5"
        );
    }

    #[test]
    fn upstream_target_table() {
        let cases = [
            ("/hyco/api?x", "hyco", "/base", "/base/api?x"),
            ("/hyco/api", "hyco", "/base/", "/base/api"),
            ("/hyco", "hyco", "/base/", "/base/"),
            ("/hyco", "hyco", "/base", "/base"),
            ("/hyco?a=1", "hyco", "/base", "/base?a=1"),
            ("/hyco/", "hyco", "/base", "/base/"),
            ("/hyco/x", "hyco", "", "/x"),
            ("/hyco", "hyco", "", "/"),
            ("/hyco/x", "hyco", "/", "/x"),
            ("/HYCO/Api/Orders", "hyco", "/b", "/b/Api/Orders"),
            ("/a/b/c?q", "a/b", "/up", "/up/c?q"),
            ("/hyco//x", "hyco", "/b", "/b//x"),
            (
                "/hyco/x?%2f%3A+a=%20&&",
                "hyco",
                "/b",
                "/b/x?%2f%3A+a=%20&&",
            ),
            ("/hyco/x?", "hyco", "/b", "/b/x?"),
            ("/hyco/x%2Fy", "hyco", "/b", "/b/x%2Fy"),
        ];
        for (target, entity, base, expected) in cases {
            assert_eq!(
                upstream_target(target, entity, base).as_deref(),
                Ok(expected),
                "{target} {entity} {base}"
            );
        }
    }

    #[test]
    fn upstream_target_outside_the_entity_is_rejected() {
        for target in ["/hycox/api", "/other/hyco", "/", "/?hyco"] {
            assert_eq!(
                upstream_target(target, "hyco", "/b"),
                Err(PathError::TargetOutsideEntity {
                    entity_path: "hyco".into()
                }),
                "{target}"
            );
        }
    }

    #[test]
    fn upstream_target_must_be_origin_form() {
        for target in ["hyco/api", "", "http://ns/hyco/api", "*"] {
            assert_eq!(
                upstream_target(target, "hyco", "/b"),
                Err(PathError::TargetNotOriginForm),
                "{target}"
            );
        }
    }

    #[test]
    fn path_errors_name_the_path() {
        assert_eq!(
            PathError::TargetOutsideEntity {
                entity_path: "hyco".into()
            }
            .to_string(),
            "requestTarget does not start with the hybrid connection path /hyco"
        );
        assert_eq!(
            PathError::NotAHybridConnectionPath.to_string(),
            "path does not start with /$hc/{entity path}"
        );
        assert_eq!(
            PathError::TargetNotOriginForm.to_string(),
            "requestTarget does not start with /"
        );
    }

    /// Whatever the relay forwards, the upstream path stays under the base: dot segments are
    /// removed (RFC 3986 §5.2.4), also percent-encoded in any case, and one that would climb
    /// above the hybrid connection's path is refused.
    #[test]
    fn dot_segments_never_leave_the_base_path() {
        for target in [
            "/hyco/../other/secret",
            "/hyco/%2e%2e/%2e%2e/admin",
            "/hyco/%2E%2e/admin",
            "/hyco/.%2E/admin",
            "/hyco/a/../../x",
            "/hyco/..",
            "/hyco/../hyco/x",
            "/hyco/..%2fx",
            "/hyco/..%2Fx",
            "/hyco/x%2f..%2f..%2fy",
            "/hyco/..%5cx",
            "/hyco/..\\x",
        ] {
            let err = upstream_target(target, "hyco", "/base/").expect_err(target);
            assert!(
                err.to_string().contains("above the hybrid connection path"),
                "{target}: {err}"
            );
        }
    }

    #[test]
    fn dot_segments_inside_the_base_are_resolved_and_the_query_kept() {
        let cases = [
            ("/hyco/a/./b/../c?q=../x", "/base/a/c?q=../x"),
            ("/hyco/a/%2e/b/%2E%2E/c", "/base/a/c"),
            ("/hyco/a/..", "/base/"),
            ("/hyco/a/b/.", "/base/a/b/"),
            ("/hyco/.well-known/x", "/base/.well-known/x"),
            ("/hyco/...", "/base/..."),
            ("/hyco/a..b", "/base/a..b"),
        ];
        for (target, expected) in cases {
            assert_eq!(
                upstream_target(target, "hyco", "/base/").as_deref(),
                Ok(expected),
                "{target}"
            );
        }
    }

    #[test]
    fn fragments_are_refused_and_raw_non_ascii_is_percent_encoded() {
        let err = upstream_target("/hyco/x#frag", "hyco", "/base/").expect_err("fragment");
        assert!(err.to_string().contains("fragment"), "{err}");
        assert_eq!(
            upstream_target("/hyco/caf\u{e9}?q=\u{fc}", "hyco", "/base/").as_deref(),
            Ok("/base/caf%C3%A9?q=%C3%BC")
        );
    }
}
