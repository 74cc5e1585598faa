//! [`Escaped`]: a peer-supplied string made safe for a log line.
//!
//! A sender's `sb-hc-id`, a request path, a header value or a close reason is written into log
//! lines as data. In a text log a raw CR or LF would end the line and let the peer forge the
//! next one, and terminal control sequences would reach whoever reads the log. Wrapped in
//! [`Escaped`], such a value prints with `\` as `\\`, CR, LF and tab as `\r`, `\n`, `\t`, and
//! every other control character, line or paragraph separator and bidirectional-text control as
//! `\u{XX}`; everything else prints unchanged, without allocating. JSON logs escape on their own
//! and show the same escaped text.

use std::fmt::{self, Write};

/// Displays its value with control characters escaped; use it for every string a peer chose.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// Whether `c` could break a log line, move the cursor, change colours or reorder text.
fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\\' => self.0.write_str("\\\\")?,
                '\r' => self.0.write_str("\\r")?,
                '\n' => self.0.write_str("\\n")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        Escaped(text).to_string()
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            escaped("sap-gw_G1 /hc/a?b=c é 東京"),
            "sap-gw_G1 /hc/a?b=c é 東京"
        );
    }

    #[test]
    fn line_breaks_cannot_start_a_new_line() {
        let forged = escaped("id\r\n2026-01-01T00:00:00Z ERROR forged");
        assert_eq!(forged, "id\\r\\n2026-01-01T00:00:00Z ERROR forged");
        assert!(!forged.contains(['\r', '\n']));
    }

    #[test]
    fn terminal_and_bidi_controls_are_escaped() {
        assert_eq!(escaped("\u{1b}[31mred\u{7}"), "\\u{1b}[31mred\\u{7}");
        assert_eq!(escaped("\u{9b}2J\u{0}\t"), "\\u{9b}2J\\u{0}\\t");
        assert_eq!(escaped("a\u{202e}b\u{2028}c"), "a\\u{202e}b\\u{2028}c");
    }

    #[test]
    fn a_backslash_is_doubled_so_escapes_cannot_be_faked() {
        assert_eq!(escaped("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn any_display_value_is_escaped() {
        let error = format!("bad header {:?}", 1);
        assert_eq!(
            Escaped(format_args!("{error}\n!")).to_string(),
            "bad header 1\\n!"
        );
    }
}
