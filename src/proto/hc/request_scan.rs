//! Reading a `request` message (protocol §4.4) in one pass without serde_json, for the shape
//! relays write: the daemon reads one per relayed HTTP request.
//!
//! The scanner reads a strict subset of what [`super::control_message::parse_control_message`]
//! accepts as a `request`: the single key `request`; the members `address`, `id`,
//! `requestTarget` and `method` as strings, `requestHeaders` as an object of strings, `body` as
//! `true` or `false`, and `remoteEndpoint` as an object of strings and integers (read, then
//! dropped), each at most once and in any order; strings without an escape or a control
//! character; JSON whitespace between tokens. Anything else — `null`, another member, an
//! escape, a repeated member, text after the object — is `None`: the caller hands such a text to
//! serde_json, which gives its own answer. For every text the scanner reads, serde_json reads the
//! same request (tested against it over valid, altered and truncated texts).

use std::ops::Range;

use super::json_text::escape_free_len;

/// The members of a scanned `request`, as byte ranges of the text (quotes left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    pub address: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    pub request_target: Option<Range<usize>>,
    pub method: Option<Range<usize>>,
    pub request_headers: Option<Vec<(Range<usize>, Range<usize>)>>,
    pub body: Option<bool>,
}

/// Scans `text` as a `request` message of the shape in the module docs; `None` for any other.
pub(crate) fn scan_request(text: &str) -> Option<Scanned> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        at: 0,
    };
    scanner.expect(b'{')?;
    let command = scanner.string()?;
    if scanner.slice(command) != b"request" {
        return None;
    }
    scanner.expect(b':')?;
    let request = scanner.request()?;
    scanner.expect(b'}')?;
    scanner.skip_whitespace();
    (scanner.at == scanner.bytes.len()).then_some(request)
}

/// A position in the text being scanned.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Whether the next byte after whitespace is `byte`; consumed when it is.
    fn take(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.bytes.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn slice(&self, range: Range<usize>) -> &[u8] {
        self.bytes.get(range).unwrap_or_default()
    }

    /// A string without escapes and control characters: its range inside the quotes.
    fn string(&mut self) -> Option<Range<usize>> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start + escape_free_len(self.bytes.get(start..)?);
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        Some(start..end)
    }

    /// `true` or `false`.
    fn boolean(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let rest = self.bytes.get(self.at..)?;
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.at += len;
        Some(value)
    }

    /// A non-negative integer of at most nine digits, without a leading zero.
    fn integer(&mut self) -> Option<()> {
        self.skip_whitespace();
        let rest = self.bytes.get(self.at..)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 || (digits > 1 && rest.first() == Some(&b'0')) {
            return None;
        }
        self.at += digits;
        Some(())
    }

    /// The members of an object after its `{`, each read by `member` after its name and
    /// colon, through the closing `}`.
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, Range<usize>) -> Option<()>,
    ) -> Option<()> {
        if self.take(b'}') {
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            member(self, name)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The body of the `request` command.
    fn request(&mut self) -> Option<Scanned> {
        self.expect(b'{')?;
        let mut request = Scanned::default();
        let mut seen_endpoint = false;
        self.members(|scanner, name| match scanner.slice(name) {
            b"address" => once(&mut request.address, scanner.string()?),
            b"id" => once(&mut request.id, scanner.string()?),
            b"requestTarget" => once(&mut request.request_target, scanner.string()?),
            b"method" => once(&mut request.method, scanner.string()?),
            b"requestHeaders" => once(&mut request.request_headers, scanner.headers()?),
            b"body" => once(&mut request.body, scanner.boolean()?),
            b"remoteEndpoint" if !seen_endpoint => {
                seen_endpoint = true;
                scanner.endpoint()
            }
            _ => None,
        })?;
        Some(request)
    }

    /// `requestHeaders`: an object of strings, in order, repeated names kept.
    fn headers(&mut self) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        self.expect(b'{')?;
        let mut headers = Vec::new();
        self.members(|scanner, name| {
            headers.push((name, scanner.string()?));
            Some(())
        })?;
        Some(headers)
    }

    /// `remoteEndpoint`: an object whose members are strings or integers.
    fn endpoint(&mut self) -> Option<()> {
        self.expect(b'{')?;
        self.members(|scanner, _| {
            scanner.skip_whitespace();
            match scanner.bytes.get(scanner.at)? {
                b'"' => scanner.string().map(drop),
                _ => scanner.integer(),
            }
        })
    }
}

/// Sets a member read for the first time; a repeated member is `None` (serde refuses it).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}
