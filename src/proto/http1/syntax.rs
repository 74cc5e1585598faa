//! Byte classes and list syntax of HTTP/1.1 fields (RFC 9110 §5.5, §5.6.1, §5.6.2).

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2): the bytes a token (method, field name,
/// transfer coding, subprotocol) is made of.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Whether `s` is a token (RFC 9110 §5.6.2): one or more `tchar`.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TCHAR[usize::from(b)])
}

/// Whether every byte of `s` may appear in a field value ([`is_field_value_byte`]).
pub(crate) fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| FIELD_VALUE[usize::from(b)])
}

/// [`is_tchar`] and [`is_field_value_byte`] of every byte, looked up instead of compared: the
/// heads written per relayed request check each of their bytes.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_tchar(b as u8);
        b += 1;
    }
    table
};
const FIELD_VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_field_value_byte(b as u8);
        b += 1;
    }
    table
};

/// Whether `b` may appear inside a field value or a reason phrase (RFC 9110 §5.5, RFC 9112
/// §4): HTAB, SP, visible ASCII and obs-text. Every other control byte, and DEL, may not.
pub(crate) const fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (b >= 0x21 && b <= 0x7e) || b >= 0x80
}

/// Whether `b` could end a line or a string early on a receiver: CR, LF or NUL. These are the
/// bytes of a header injection.
pub(crate) fn is_injection_byte(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0)
}

/// Optional whitespace (RFC 9110 §5.6.3).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims optional whitespace on both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The elements of a comma-separated field value (RFC 9110 §5.6.1), whitespace-trimmed, with
/// empty elements skipped as the RFC requires of recipients. Quoted strings are not special:
/// every list this crate reads (`Connection`, `Upgrade`, `Transfer-Encoding`,
/// `Content-Length`, `Sec-WebSocket-Protocol`) holds tokens only.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether every line of `head` ends with CRLF: a bare LF is a line ending RFC 9112 §2.2 lets
/// a recipient accept, which a strict one refuses (two parsers could see different lines).
pub fn lines_end_with_crlf(head: &[u8]) -> bool {
    // LFs are few (one per line): each is found eight bytes at a time, then checked alone.
    let mut from = 0;
    while let Some(lf) = find_line_feed(head, from) {
        if lf == 0 || head[lf - 1] != b'\r' {
            return false;
        }
        from = lf + 1;
    }
    true
}

/// The index of the first LF in `bytes` at or after `from`: eight bytes at a time, the rest one
/// by one. In a word read little-endian and XORed with LFs, an LF is a zero byte and sets its
/// high bit in the mask; a borrow carries only towards later bytes, so a set bit can be a false
/// alarm only after a real LF, and the lowest set bit names the first one.
fn find_line_feed(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);
    let rest = bytes.get(from..)?;
    let mut start = 0;
    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        // Invariant: `chunks_exact(8)` yields slices of exactly 8 bytes.
        let word = u64::from_le_bytes(word.try_into().expect("an 8-byte chunk")) ^ LFS;
        let found = word.wrapping_sub(ONES) & !word & HIGHS;
        if found != 0 {
            // The lowest set bit is a high bit, 8 × index + 7: the index is below 8.
            return Some(from + start + (found.trailing_zeros() / 8) as usize);
        }
        start += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|at| from + start + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_line_feeds_are_found() {
        assert!(lines_end_with_crlf(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!lines_end_with_crlf(b"GET / HTTP/1.1\nHost: x\r\n\r\n"));
        assert!(!lines_end_with_crlf(b"GET / HTTP/1.1\r\nHost: x\r\n\n"));
        assert!(!lines_end_with_crlf(b"\n"));
    }

    #[test]
    fn counted_line_ends_agree_with_a_byte_by_byte_scan() {
        let reference = |head: &[u8]| {
            let mut prev = 0u8;
            head.iter().all(|&b| {
                let ok = b != b'\n' || prev == b'\r';
                prev = b;
                ok
            })
        };
        // Every string of up to 8 bytes over CR, LF and one other byte.
        for len in 0..=8u32 {
            for n in 0..3usize.pow(len) {
                let head: Vec<u8> = (0..len)
                    .map(|i| [b'\r', b'\n', b'a'][n / 3usize.pow(i) % 3])
                    .collect();
                assert_eq!(lines_end_with_crlf(&head), reference(&head), "{head:?}");
            }
        }
        // Longer heads, read eight bytes at a time: an LF at every position, with and without
        // its CR, and random strings over the three bytes.
        for len in 1..=80 {
            for at in 0..len {
                let mut head = vec![b'a'; len];
                head[at] = b'\n';
                assert!(!lines_end_with_crlf(&head), "bare LF at {at} of {len}");
                if at > 0 {
                    head[at - 1] = b'\r';
                    assert!(lines_end_with_crlf(&head), "CRLF at {at} of {len}");
                }
            }
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..100);
            let head: Vec<u8> = (0..len)
                .map(|_| [b'\r', b'\n', b'a', b'a'][rng.usize(..4)])
                .collect();
            assert_eq!(lines_end_with_crlf(&head), reference(&head), "{head:?}");
        }
    }

    #[test]
    fn line_feeds_are_found_from_any_start() {
        let naive = |bytes: &[u8], from: usize| (from..bytes.len()).find(|&i| bytes[i] == b'\n');
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..5_000 {
            let len = rng.usize(0..40);
            // LFs next to bytes one above and below, which a borrow could mistake for one.
            let bytes: Vec<u8> = (0..len)
                .map(|_| [b'\n', 0x09, 0x0b, 0x8a, b'a'][rng.usize(..5)])
                .collect();
            for from in 0..=len + 1 {
                assert_eq!(
                    find_line_feed(&bytes, from),
                    naive(&bytes, from),
                    "{bytes:?} from {from}"
                );
            }
        }
    }

    #[test]
    fn byte_tables_agree_with_the_byte_classes() {
        for b in 0..=255u8 {
            assert_eq!(is_token(&[b]), is_tchar(b), "{b}");
            assert_eq!(is_field_value(&[b]), is_field_value_byte(b), "{b}");
        }
        assert!(!is_token(b""));
        assert!(is_field_value(b""));
    }

    #[test]
    fn tokens() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET", true),
            (b"Sec-WebSocket-Key", true),
            (b"0", true),
            (b"x!#$%&'*+-.^_`|~9", true),
            (b"", false),
            (b"a b", false),
            (b"a:b", false),
            (b"a\r", false),
            (b"caf\xc3\xa9", false),
            (b"(comment)", false),
        ];
        for (input, expected) in cases {
            assert_eq!(
                is_token(input),
                *expected,
                "{:?}",
                input.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn field_value_bytes() {
        for b in [b'\t', b' ', b'a', b'~', 0x80, 0xff] {
            assert!(is_field_value_byte(b), "{b:#x}");
        }
        for b in [0u8, 0x01, b'\r', b'\n', 0x1f, 0x7f] {
            assert!(!is_field_value_byte(b), "{b:#x}");
        }
    }

    #[test]
    fn injection_bytes() {
        for b in [b'\r', b'\n', 0] {
            assert!(is_injection_byte(b));
        }
        for b in [b'\t', b' ', b'a', 0x7f, 0x01] {
            assert!(!is_injection_byte(b));
        }
    }

    #[test]
    fn trims_optional_whitespace() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn splits_lists_and_skips_empty_elements() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"keep-alive, Upgrade", &[b"keep-alive", b"Upgrade"]),
            (b" , ,a,,\tb ,", &[b"a", b"b"]),
            (b"", &[]),
            (b"single", &[b"single"]),
        ];
        for (input, expected) in cases {
            let got: Vec<&[u8]> = list_elements(input).collect();
            assert_eq!(&got, expected);
        }
    }
}
