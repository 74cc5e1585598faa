//! Pieces of JSON text written straight into a `String`, for the control messages written once
//! per relayed request: each piece is byte for byte what serde_json writes for the same value.
//!
//! A string that holds no character needing an escape (`"`, `\` or a control character below
//! U+0020; serde_json escapes nothing else) is copied as it is; any other is escaped by
//! serde_json itself, so the two can never differ.

/// Appends `value` as a quoted JSON string.
pub(crate) fn push_string(out: &mut String, value: &str) {
    out.push('"');
    push_string_contents(out, value);
    out.push('"');
}

/// Appends `value` escaped as the inside of a JSON string, without the quotes: so a string made
/// of several pieces is written without joining them first.
pub(crate) fn push_string_contents(out: &mut String, value: &str) {
    if !needs_escape(value.as_bytes()) {
        out.push_str(value);
        return;
    }
    // Invariant: serialising a `str` with serde_json cannot fail, and its text is the string
    // in quotes.
    let quoted = serde_json::to_string(value).expect("a string always serialises");
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Appends `{"name":"value",…}` of `members`, in their order.
pub(crate) fn push_object<'a>(out: &mut String, members: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (index, (name, value)) in members.enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(out, name);
        out.push(':');
        push_string(out, value);
    }
    out.push('}');
}

/// Appends `value` in decimal.
pub(crate) fn push_u16(out: &mut String, value: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        // `rest % 10` is a single digit.
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

/// Whether any byte of `value` is one of [`NEEDS_ESCAPE`].
fn needs_escape(value: &[u8]) -> bool {
    escape_free_len(value) < value.len()
}

/// The length of the longest prefix of `value` free of [`NEEDS_ESCAPE`] bytes (all of it when it
/// holds none): eight bytes at a time, the rest one by one. In a word read little-endian, a byte
/// below 0x20, or one equal to `"` or `\` once XORed to zero, sets its high bit in one of the
/// three masks; a borrow carries only towards later bytes, so a set bit can be a false alarm
/// only after a real match, and the lowest set bit names the first match.
pub(crate) fn escape_free_len(value: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut start = 0;
    let mut words = value.chunks_exact(8);
    for word in &mut words {
        // Invariant: `chunks_exact(8)` yields slices of exactly 8 bytes.
        let word = u64::from_le_bytes(word.try_into().expect("an 8-byte chunk"));
        // A byte below `n` (n <= 0x80) sets its high bit in `below(x, n)`.
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = below(word, 0x20) | below(quote, 1) | below(backslash, 1);
        if found != 0 {
            // The lowest set bit is a high bit, 8 × index + 7: the index is below 8.
            return start + (found.trailing_zeros() / 8) as usize;
        }
        start += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
        .map_or(value.len(), |at| start + at)
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

    #[test]
    fn the_escape_free_prefix_ends_at_the_first_byte_the_table_names() {
        for len in [0, 1, 7, 8, 9, 16, 17, 24, 33] {
            for at in 0..len {
                for byte in [0x00, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xff] {
                    for second in [None, Some(at + 1), Some(at + 8), Some(len - 1)] {
                        let mut text = vec![b'a'; len];
                        if let Some(second) = second.filter(|&s| s > at && s < len) {
                            text[second] = b'"';
                        }
                        text[at] = byte;
                        let expected = text
                            .iter()
                            .position(|&b| NEEDS_ESCAPE[usize::from(b)])
                            .unwrap_or(len);
                        assert_eq!(escape_free_len(&text), expected, "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_escape_free_length_is_where_the_table_finds_the_first_byte() {
        let reference = |text: &[u8]| {
            text.iter()
                .position(|&b| NEEDS_ESCAPE[usize::from(b)])
                .unwrap_or(text.len())
        };
        for len in [0, 1, 7, 8, 9, 16, 23, 24, 31] {
            assert_eq!(escape_free_len(&vec![b'a'; len]), len);
            for at in 0..len {
                for byte in 0..=255u8 {
                    for other in [b'a', 0x00, 0x1f, 0x20, 0x21, b'"', 0x7f, 0x80, 0xff] {
                        let mut mixed = vec![other; len];
                        mixed[at] = byte;
                        assert_eq!(escape_free_len(&mixed), reference(&mixed), "{mixed:?}");
                        // A second match later never moves the first.
                        if at + 1 < len {
                            mixed[len - 1] = b'\\';
                            assert_eq!(escape_free_len(&mixed), reference(&mixed), "{mixed:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "wss://g:443/$hc/hyco?sb-hc-action=request&sb-hc-id=1",
            "quote \" and backslash \\ and slash /",
            "tab\tnewline\ncarriage\rnul\0bell\u{7}escape\u{1b}del\u{7f}",
            "non-ASCII: é ü 日本 😀 and U+2028 \u{2028}",
            "sixteen bytes ok\"sixteen bytes ok",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every single byte below 0x80, alone and at each offset of a longer string.
        for b in 0u8..0x80 {
            let c = char::from(b);
            samples.push(c.to_string());
            for at in [0, 15, 16, 17, 31, 40] {
                let mut s = "x".repeat(40);
                s.insert(at, c);
                samples.push(s);
            }
        }
        for sample in &samples {
            let mut out = String::new();
            push_string(&mut out, sample);
            assert_eq!(out, serde_json::to_string(sample).unwrap(), "{sample:?}");
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0u16, 7, 10, 99, 100, 443, 9999, 10000, 65535] {
            let mut out = String::new();
            push_u16(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
