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

/// Whether serde_json would escape a byte of `bytes`. Checked 16 bytes at a time without an
/// early exit inside a block, which the compiler turns into vector compares.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &b| any | escaped(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| escaped(b))
}

#[cfg(test)]
mod tests {
    use super::*;

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
