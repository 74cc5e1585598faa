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
/// `path` starts with `/` and has no query (for WebSocket URLs, pass the result of
/// [`websocket_entity_path`]). Segments are compared after percent-decoding the request's
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
/// appends the rest of the path to `upstream_base_path` and keeps the query byte-exact.
///
/// `upstream_base_path` is the path of the configured upstream URL, e.g. `/ErpConnect/`; an
/// empty one means `/`. A trailing `/` on it is not doubled. When the target is exactly the
/// entity path, the result is the base path itself.
pub fn upstream_target(
    request_target: &str,
    entity_path: &str,
    upstream_base_path: &str,
) -> Result<String, PathError> {
    if !request_target.starts_with('/') {
        return Err(PathError::TargetNotOriginForm);
    }
    let (path, query) = split_target(request_target);
    let Some(len) = matched_len(path, entity_path) else {
        return Err(PathError::TargetOutsideEntity {
            entity_path: entity_path.to_owned(),
        });
    };
    let suffix = &path[len..];
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
    Ok(target)
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
}
