//! Writing a `response` (protocol §4.5) straight to its wire text, without serde's map machinery:
//! the listener sends one per relayed request.
//!
//! The output is byte for byte what serde_json writes for the same [`Response`] (members in
//! declaration order, absent optional members omitted, strings escaped as serde_json escapes
//! them): a string that needs no escape is copied as it is, any other is escaped by serde_json.

use super::headers::{join_separator, value_text};
use super::json_headers::JsonHeaders;
use super::messages::Response;

/// The exact wire text `{"response":{…}}` of `response`.
pub(crate) fn encode(response: &Response) -> String {
    let strings = response.request_id.len()
        + response.status_description.as_ref().map_or(0, String::len)
        + response.response_headers.as_ref().map_or(0, |headers| {
            headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 6)
                .sum()
        });
    let mut out = String::with_capacity(strings + 128);
    out.push_str(r#"{"response":{"requestId":"#);
    push_string(&mut out, &response.request_id);
    out.push_str(r#","statusCode":"#);
    push_u16(&mut out, response.status_code);
    if let Some(description) = &response.status_description {
        out.push_str(r#","statusDescription":"#);
        push_string(&mut out, description);
    }
    if let Some(headers) = &response.response_headers {
        out.push_str(r#","responseHeaders":"#);
        push_headers(&mut out, headers);
    }
    out.push_str(if response.body {
        r#","body":true}}"#
    } else {
        r#","body":false}}"#
    });
    out
}

/// The exact wire text of the `response` with `request_id`, `status_code`, `status_description`
/// and, as `responseHeaders`, the fields `headers` (values read as text by [`value_text`]) joined as [`JsonHeaders::append_joined`]
/// joins them (a repeated name, compared case-insensitively, keeps its first spelling and
/// position; its values joined with [`join_separator`]): byte for byte what [`encode`] writes
/// for that [`Response`], without building it.
pub(crate) fn encode_parts(
    request_id: &str,
    status_code: u16,
    status_description: &str,
    headers: &[(&str, &[u8])],
    body: bool,
) -> String {
    let strings = request_id.len()
        + status_description.len()
        + headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum::<usize>();
    let mut out = String::with_capacity(strings + 128);
    out.push_str(r#"{"response":{"requestId":"#);
    push_string(&mut out, request_id);
    out.push_str(r#","statusCode":"#);
    push_u16(&mut out, status_code);
    out.push_str(r#","statusDescription":"#);
    push_string(&mut out, status_description);
    out.push_str(r#","responseHeaders":{"#);
    let mut first = true;
    for (index, (name, value)) in headers.iter().enumerate() {
        let earlier = &headers[..index];
        if earlier
            .iter()
            .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_string(&mut out, name);
        out.push_str(":\"");
        push_value_content(&mut out, value);
        let separator = join_separator(name);
        for (_, later) in headers[index + 1..]
            .iter()
            .filter(|(other, _)| other.eq_ignore_ascii_case(name))
        {
            out.push_str(separator);
            push_value_content(&mut out, later);
        }
        out.push('"');
    }
    out.push_str(if body {
        r#"},"body":true}}"#
    } else {
        r#"},"body":false}}"#
    });
    out
}

fn push_headers(out: &mut String, headers: &JsonHeaders) {
    out.push('{');
    for (index, (name, value)) in headers.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(out, name);
        out.push(':');
        push_string(out, value);
    }
    out.push('}');
}

/// `value` as a JSON string: quoted as it is when no character needs an escape (`"`, `\` or a
/// control character below U+0020), otherwise escaped by serde_json.
fn push_string(out: &mut String, value: &str) {
    if !needs_escape(value.as_bytes()) {
        out.push('"');
        out.push_str(value);
        out.push('"');
        return;
    }
    // Invariant: serialising a `str` with serde_json cannot fail.
    let escaped = serde_json::to_string(value).expect("a string always serialises");
    out.push_str(&escaped);
}

/// A header value as [`value_text`] reads it, escaped as inside a JSON string without the
/// quotes.
fn push_value_content(out: &mut String, value: &[u8]) {
    push_string_content(out, &value_text(value));
}

/// `value` escaped as inside a JSON string, without the quotes (serde_json escapes character by
/// character, so the pieces of a joined value escape to the pieces of its escape).
fn push_string_content(out: &mut String, value: &str) {
    if !needs_escape(value.as_bytes()) {
        out.push_str(value);
        return;
    }
    // Invariant: serialising a `str` with serde_json cannot fail.
    let escaped = serde_json::to_string(value).expect("a string always serialises");
    out.push_str(&escaped[1..escaped.len() - 1]);
}

/// Whether any byte of `value` is one of [`NEEDS_ESCAPE`]: eight bytes at a time (a byte below
/// 0x20, or one equal to `"` or `\` once XORed to zero, sets its high bit in one of the three
/// masks; a set bit can be a false alarm only above a real match, never without one), the rest
/// one by one.
fn needs_escape(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        // Invariant: `chunks_exact(8)` yields slices of exactly 8 bytes.
        let word = u64::from_ne_bytes(word.try_into().expect("an 8-byte chunk"));
        // A byte below `n` (n <= 0x80) sets its high bit in `below(x, n)`.
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        if below(word, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| NEEDS_ESCAPE[usize::from(b)])
}

/// The bytes serde_json escapes inside a string: `"`, `\` and the control bytes below 0x20.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

fn push_u16(out: &mut String, value: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_scan_finds_exactly_the_bytes_the_table_names() {
        for len in [1, 7, 8, 9, 16, 23, 24, 31] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    assert_eq!(
                        needs_escape(&text),
                        NEEDS_ESCAPE[usize::from(byte)],
                        "byte {byte:#x} at {at} of {len}"
                    );
                    // Around bytes that could carry a borrow into their neighbours.
                    for other in [0x00, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xff] {
                        let mut mixed = vec![other; len];
                        mixed[at] = byte;
                        let expected = mixed.iter().any(|&b| NEEDS_ESCAPE[usize::from(b)]);
                        assert_eq!(needs_escape(&mixed), expected, "{mixed:?}");
                    }
                }
            }
        }
    }

    /// What serde_json writes for the same response (the encoding before this writer).
    fn serde_text(response: &Response) -> String {
        #[derive(serde::Serialize)]
        enum Outgoing<'a> {
            #[serde(rename = "response")]
            Response(&'a Response),
        }
        serde_json::to_string(&Outgoing::Response(response)).unwrap()
    }

    #[test]
    fn matches_serde_json_byte_for_byte() {
        let strings = [
            "",
            "OK",
            "a\"b\\c",
            "tab\there\nnew\r\u{0}\u{1f}\u{7f}",
            "ünïcödé ✓ 😀",
            "</script>",
            "\u{8}\u{c}",
        ];
        for (index, text) in strings.iter().enumerate() {
            let headers: JsonHeaders = [("Content-Type", *text), (*text, "v"), ("X-Empty", "")]
                .into_iter()
                .collect();
            for status in [100, 200, 404, 999, 0, 9, 10, 65535] {
                for body in [false, true] {
                    let full = Response {
                        request_id: format!("{text}-{index}"),
                        status_code: status,
                        status_description: Some((*text).to_owned()),
                        response_headers: Some(headers.clone()),
                        body,
                    };
                    assert_eq!(encode(&full), serde_text(&full), "{full:?}");
                    let bare = Response {
                        status_description: None,
                        response_headers: None,
                        ..full.clone()
                    };
                    assert_eq!(encode(&bare), serde_text(&bare), "{bare:?}");
                    let empty_headers = Response {
                        response_headers: Some(JsonHeaders::new()),
                        ..full
                    };
                    assert_eq!(encode(&empty_headers), serde_text(&empty_headers));
                }
            }
        }
    }
}
