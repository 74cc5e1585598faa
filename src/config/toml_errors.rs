//! Turning the TOML reader's errors into [`ConfigError`]s that name the key path.
//!
//! A document that is not valid TOML has no structure to ask, so for a syntax error [`locate`]
//! maps the reader's byte span to the table header in effect there (`[runtime]`, the n-th
//! `[[hybrid_connection]]`) and the key whose line it falls on; the scan understands headers,
//! bare/quoted/dotted keys, comments and multi-line strings. An error in a valid document (an
//! unknown key, a value of the wrong type) is read with `serde_path_to_error`, which gives its
//! exact path (`hybrid_connection[2].stream_ping_interval`, inline tables included); whether the
//! key is unknown, and which keys the table accepts, come from the serde structs themselves
//! ([`expected_keys`]). The reader's span gives line and column. Only the reader's `message()` is
//! used, never its `Display`, which quotes the offending source line (and could quote a secret),
//! and a string value is taken out of the message.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::error::{ConfigError, Reason};
use super::expected_keys::expected_keys;

/// Reads TOML `text` into `T` (serde structs that reject unknown keys).
pub(super) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    // Parsing as a plain table first separates syntax errors from unknown keys and wrong
    // types, and gives the values a message must not quote.
    let table: toml::Table = text.parse().map_err(|error| syntax_error(text, &error))?;
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|error| value_error::<T>(text, &table, &error))
}

/// A syntax error from parsing the document as plain TOML.
fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let place = locate(text, span_start(error));
    let reason = Reason::TomlSyntax {
        line: place.line,
        column: place.column,
        message: one_line(error.message()),
    };
    ConfigError::new(place.path_or_document(), reason)
}

/// An error from deserializing a syntactically valid document into `T`: an unknown key
/// (`deny_unknown_fields`) or a value of the wrong type.
fn value_error<T: DeserializeOwned>(
    text: &str,
    table: &toml::Table,
    error: &serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let segments: Vec<&Segment> = error.path().iter().collect();
    if let Some((Segment::Map { key }, parent)) = segments.split_last() {
        if let Some(accepted) = expected_keys::<T>(parent) {
            if !accepted.contains(&key.as_str()) {
                let reason = Reason::UnknownKey {
                    key: shown_key(key.as_str()).to_owned(),
                    section: path_text(parent),
                    expected: one_of(accepted),
                };
                return ConfigError::new(path_text(&segments), reason);
            }
        }
    }
    let inner = error.inner();
    let place = locate(text, span_start(inner));
    let mut message = one_line(inner.message());
    if let Some(toml::Value::String(value)) = value_at(table, &segments) {
        // serde quotes a string it did not expect as `string "…"`: it may be a secret.
        message = message.replace(&format!(" {value:?}"), "");
    }
    let reason = Reason::InvalidValue {
        line: place.line,
        column: place.column,
        message,
    };
    let path = path_text(&segments);
    ConfigError::new(
        if path.is_empty() {
            TOP_LEVEL.to_owned()
        } else {
            path
        },
        reason,
    )
}

/// What an error path says for a place outside every key and table.
const TOP_LEVEL: &str = "(top level)";

/// The key path as errors show it: `hybrid_connection[1].target`.
fn path_text(segments: &[&Segment]) -> String {
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Map { key } => {
                let key = shown_key(key);
                let bare = key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let key = if bare && !key.is_empty() {
                    key.to_owned()
                } else {
                    format!("{key:?}")
                };
                path = join(&path, &key);
            }
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    path
}

/// The value the path leads to in the document, if it is there.
fn value_at<'a>(table: &'a toml::Table, segments: &[&Segment]) -> Option<&'a toml::Value> {
    let (first, rest) = segments.split_first()?;
    let Segment::Map { key } = first else {
        return None;
    };
    let mut value = table.get(key)?;
    for segment in rest {
        value = match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(table)) => table.get(key)?,
            (Segment::Seq { index }, toml::Value::Array(array)) => array.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The accepted keys as a sentence part: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("`{key}`")).collect();
    match quoted.as_slice() {
        [] => "no keys here".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        all => format!("one of {}", all.join(", ")),
    }
}

/// `key` as an error path may show it: a key holding `=` may be a pasted connection string and
/// is named by its shape only.
pub(super) fn shown_key(key: &str) -> &str {
    if key.contains('=') {
        REDACTED_KEY.trim_matches('"')
    } else {
        key
    }
}

fn span_start(error: &toml::de::Error) -> usize {
    error.span().map_or(0, |span| span.start)
}

/// The reader's messages may span lines ("invalid table header\nexpected `.`, `]`").
fn one_line(message: &str) -> String {
    message.trim().replace('\n', "; ")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Where a byte offset lies in a TOML document.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Place {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The table in effect, e.g. `hybrid_connection[1]`; empty at the top level.
    pub table: String,
    /// The key whose line (or multi-line value) holds the offset, if any.
    pub key: Option<String>,
}

impl Place {
    fn path(&self) -> String {
        match &self.key {
            Some(key) => join(&self.table, key),
            None => self.table.clone(),
        }
    }

    /// The key path, or a description of the position when it is outside every key and table.
    fn path_or_document(&self) -> String {
        let path = self.path();
        if path.is_empty() {
            TOP_LEVEL.to_owned()
        } else {
            path
        }
    }
}

/// Finds the table header and key in effect at `offset` (clamped to the text).
pub(super) fn locate(text: &str, offset: usize) -> Place {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut key = None;
    let mut open_multiline: Option<&'static str> = None;
    let mut array_counts: HashMap<String, usize> = HashMap::new();
    let mut line_start = 0;
    let mut line_number = 1;
    for line in text.split_inclusive('\n') {
        let line_end = line_start + line.len();
        if let Some(delimiter) = open_multiline {
            if line.matches(delimiter).count() % 2 == 1 {
                open_multiline = None;
            }
        } else {
            let trimmed = line.trim_start();
            if let Some(parts) = header(trimmed, "[[", "]]") {
                if let Some((last, parents)) = parts.split_last() {
                    let parent = in_arrays(parents, &array_counts);
                    let index = array_counts.entry(parts.join(".")).or_insert(0);
                    table = join(&parent, &format!("{last}[{index}]"));
                    *index += 1;
                }
                key = None;
            } else if let Some(parts) = header(trimmed, "[", "]") {
                table = in_arrays(&parts, &array_counts);
                key = None;
            } else if let Some((found, value)) = leading_key(trimmed) {
                key = Some(found);
                open_multiline = opens_multiline(value);
            }
        }
        if offset < line_end || line_end == text.len() {
            let column = text
                .get(line_start..offset)
                .map_or(0, |before| before.chars().count())
                + 1;
            return Place {
                line: line_number,
                column,
                table,
                key,
            };
        }
        line_start = line_end;
        line_number += 1;
    }
    Place {
        line: line_number,
        column: 1,
        table,
        key,
    }
}

/// The dotted parts of a `[name]` / `[[name]]` header line.
fn header<'a>(line: &'a str, open: &str, close: &str) -> Option<Vec<&'a str>> {
    let inner = line.strip_prefix(open)?;
    let (parts, rest) = key_parts(inner)?;
    rest.trim_start().strip_prefix(close)?;
    Some(parts)
}

/// Joins header parts into a path, giving each prefix that names an array of tables the index
/// of its latest element: `[hybrid_connection.x]` after two `[[hybrid_connection]]` is
/// `hybrid_connection[1].x`.
fn in_arrays(parts: &[&str], array_counts: &HashMap<String, usize>) -> String {
    let mut path = String::new();
    for (i, part) in parts.iter().enumerate() {
        path = join(&path, part);
        if let Some(count) = array_counts.get(&parts[..=i].join(".")) {
            path.push_str(&format!("[{}]", count.saturating_sub(1)));
        }
    }
    path
}

/// `key = value` at the start of a line: the (dotted) key and the text after `=`.
fn leading_key(line: &str) -> Option<(String, &str)> {
    let (parts, rest) = key_parts(line)?;
    let value = rest.trim_start().strip_prefix('=')?;
    Some((parts.join("."), value))
}

/// What an error path shows instead of a quoted key containing `=`.
const REDACTED_KEY: &str = "\"<quoted key with =>\"";

/// Parses `part(.part)*` where a part is a bare key or a quoted key; returns the parts (quoted
/// ones with their quotes) and the text after the key.
fn key_parts(mut text: &str) -> Option<(Vec<&str>, &str)> {
    let mut parts = Vec::new();
    loop {
        text = text.trim_start();
        let len = match text.chars().next()? {
            quote @ ('"' | '\'') => text[1..].find(quote)? + 2,
            _ => text
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(text.len()),
        };
        if len == 0 {
            return None;
        }
        let part = &text[..len];
        // No hycod key holds `=`; a quoted one that does may be a pasted connection string,
        // and the path ends up in error messages (found by the `config` fuzz target).
        let quoted = part.starts_with(['"', '\'']);
        parts.push(if quoted && part.contains('=') {
            REDACTED_KEY
        } else {
            part
        });
        text = text[len..].trim_start();
        match text.strip_prefix('.') {
            Some(rest) => text = rest,
            None => return Some((parts, text)),
        }
    }
}

/// The closing delimiter when a value opens a multi-line string it does not close on this line.
fn opens_multiline(value: &str) -> Option<&'static str> {
    ["\"\"\"", "'''"]
        .into_iter()
        .find(|delimiter| value.trim_start().starts_with(delimiter))
        .filter(|delimiter| value.matches(delimiter).count() % 2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_of(text: &str, needle: &str) -> Place {
        let offset = text.find(needle).expect("needle in text");
        locate(text, offset)
    }

    #[test]
    fn top_level_key() {
        let text = "bogus = 1\n";
        let place = place_of(text, "1");
        assert_eq!(place.table, "");
        assert_eq!(place.key.as_deref(), Some("bogus"));
        assert_eq!((place.line, place.column), (1, 9));
    }

    #[test]
    fn key_in_a_table() {
        let text = "[runtime]\nworkers = \"4\"\n";
        let place = place_of(text, "\"4\"");
        assert_eq!(place.path(), "runtime.workers");
        assert_eq!((place.line, place.column), (2, 11));
    }

    #[test]
    fn arrays_of_tables_are_counted() {
        let text = "[[hybrid_connection]]\nname = \"a\"\n\n[[hybrid_connection]]\nname = \"b\"\ntarget = 5\n";
        assert_eq!(place_of(text, "5").path(), "hybrid_connection[1].target");
        assert_eq!(place_of(text, "\"a\"").path(), "hybrid_connection[0].name");
    }

    #[test]
    fn a_header_line_has_no_key() {
        let text = "[runtime]\nworkers = 1\n[[hybrid_connection]]\n";
        let place = place_of(text, "[[hybrid");
        assert_eq!(place.path(), "hybrid_connection[0]");
    }

    #[test]
    fn headers_with_spaces_and_quotes() {
        let text = "[ log ]\nlevel = 1\n[[ \"hybrid_connection\" ]]\nx = 2\n";
        assert_eq!(place_of(text, "1").path(), "log.level");
        assert_eq!(place_of(text, "2").path(), "\"hybrid_connection\"[0].x");
    }

    #[test]
    fn dotted_and_quoted_keys() {
        let text = "runtime.workers = 1\n\"quoted key\" = 2\n";
        assert_eq!(place_of(text, "1").path(), "runtime.workers");
        assert_eq!(place_of(text, "2").path(), "\"quoted key\"");
    }

    #[test]
    fn quoted_keys_with_equals_are_redacted() {
        let text = "\"x;SharedAccessKey=abc\".y = 1\n";
        assert_eq!(place_of(text, "1").path(), "\"<quoted key with =>\".y");
    }

    #[test]
    fn multiline_strings_are_skipped() {
        let text = "[a]\ns = \"\"\"\n[not_a_header]\nx = 1\n\"\"\"\ny = 2\n";
        assert_eq!(place_of(text, "x = 1").path(), "a.s");
        assert_eq!(place_of(text, "2").path(), "a.y");
    }

    #[test]
    fn multiline_array_continuation_belongs_to_its_key() {
        let text = "[a]\nlist = [\n  1,\n  \"two\",\n]\n";
        assert_eq!(place_of(text, "\"two\"").path(), "a.list");
    }

    #[test]
    fn comments_are_not_keys() {
        let text = "# workers = 1\n[runtime]\n# comment\n";
        assert_eq!(place_of(text, "workers").path(), "");
        assert_eq!(place_of(text, "# comment").path(), "runtime");
    }

    #[test]
    fn offset_at_end_of_text() {
        let text = "[runtime]\nworkers = ";
        let place = locate(text, text.len());
        assert_eq!(place.path(), "runtime.workers");
        assert_eq!((place.line, place.column), (2, 11));
    }

    fn value_error_of(text: &str) -> ConfigError {
        parse::<crate::config::raw::RawConfig>(text)
            .err()
            .expect("an error")
    }

    #[test]
    fn a_string_value_is_left_out_of_the_message() {
        let error = value_error_of("[[hybrid_connection]]\nlisteners = \"s3cr\\\"et\"\n");
        assert_eq!(error.path, "hybrid_connection[0].listeners");
        assert_eq!(
            error.reason.to_string(),
            "invalid type: string, expected usize (line 2, column 13)"
        );
    }

    #[test]
    fn an_unknown_key_in_an_inline_table_and_in_a_dotted_key() {
        for text in ["runtime = { workerz = 1 }\n", "runtime.workerz = 1\n"] {
            let error = value_error_of(text);
            assert_eq!(error.path, "runtime.workerz");
            assert_eq!(
                error.reason,
                Reason::UnknownKey {
                    key: "workerz".into(),
                    section: "runtime".into(),
                    expected: "`workers`".into(),
                }
            );
        }
    }

    #[test]
    fn a_quoted_key_is_named_with_its_quotes_and_one_holding_equals_by_its_shape() {
        let error = value_error_of("\"two words\" = 1\n");
        assert_eq!(error.path, "\"two words\"");
        let error = value_error_of("\"x;SharedAccessKey=abc\" = 1\n");
        assert_eq!(error.path, "\"<quoted key with =>\"");
    }

    #[test]
    fn accepted_keys_read_as_a_sentence() {
        assert_eq!(one_of(&[]), "no keys here");
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b"]), "`a` or `b`");
        assert_eq!(one_of(&["a", "b", "c"]), "one of `a`, `b`, `c`");
    }
}
