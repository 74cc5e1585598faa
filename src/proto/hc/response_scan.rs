//! A direct reader of the `response` texts listeners send (protocol §4.5), for the relay's hot
//! path: one per relayed HTTP request.
//!
//! [`scan`] reads a strict subset of the texts serde reads as a `response`: the envelope
//! `{"response":{…}}`; members among the five known ones, each at most once, the three required
//! ones present; strings without any escape or control character; `statusCode` as three digits
//! 100–999, bare or quoted; `statusDescription` and `responseHeaders` possibly `null`; header
//! values strings. Whatever it reads, it reads as serde does (tested over varied and hostile
//! texts); on anything else it gives up (`None`) and the caller's serde reader decides, so
//! errors and every other answer stay serde's.

use std::borrow::Cow;

use super::json_text::escape_free_len;
use super::response_view::{HeaderPairs, JsonStr, ResponseView};

/// The `response` in `text`, when `text` is one of the shapes this reader knows.
pub(crate) fn scan(text: &str) -> Option<ResponseView<'_>> {
    let mut cursor = Cursor { text, at: 0 };
    cursor.token(b'{')?;
    cursor.token(b'"')?;
    cursor.literal("response\"")?;
    cursor.token(b':')?;
    let view = cursor.members()?;
    cursor.token(b'}')?;
    cursor.skip_whitespace();
    (cursor.at == text.len()).then_some(view)
}

/// A position in the text being read.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Steps over JSON whitespace (the four bytes serde_json skips).
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.as_bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.at).copied()
    }

    /// Consumes `byte` after whitespace.
    fn token(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `word` (`true`, `false`, `null`) after whitespace; whatever follows it is
    /// checked by the caller's next token.
    fn word(&mut self, word: &str) -> Option<()> {
        self.skip_whitespace();
        self.literal(word)
    }

    /// Consumes `bytes` exactly where the cursor is.
    fn literal(&mut self, bytes: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.at..)?;
        rest.starts_with(bytes.as_bytes())
            .then(|| self.at += bytes.len())
    }

    /// A member name of `response`, after whitespace: one of the five, unescaped. A name that
    /// holds no escape and is none of them is not read here, nor is one with an escape.
    fn member(&mut self) -> Option<Member> {
        self.token(b'"')?;
        let (member, name) = match self.text.as_bytes().get(self.at)? {
            b'r' if self.text.as_bytes().get(self.at + 2) == Some(&b'q') => {
                (Member::RequestId, "requestId\"")
            }
            b'r' => (Member::ResponseHeaders, "responseHeaders\""),
            b's' if self.text.as_bytes().get(self.at + 6) == Some(&b'C') => {
                (Member::StatusCode, "statusCode\"")
            }
            b's' => (Member::StatusDescription, "statusDescription\""),
            b'b' => (Member::Body, "body\""),
            _ => return None,
        };
        self.literal(name)?;
        Some(member)
    }

    /// A string after whitespace, without its quotes: one with an escape or a control
    /// character is not read here.
    fn string(&mut self) -> Option<&'a str> {
        self.token(b'"')?;
        let rest = self.text.as_bytes().get(self.at..)?;
        let len = escape_free_len(rest);
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        // Both ends are ASCII bytes of a `str`, so char boundaries.
        let value = self.text.get(self.at..self.at + len)?;
        self.at += len + 1;
        Some(value)
    }

    /// A `null` (`None`) or what `read` reads.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.word("null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// `statusCode`: three digits, the first not 0 (100–999), as a number or a string.
    fn status_code(&mut self) -> Option<u16> {
        let digits = if self.peek()? == b'"' {
            self.string()?.as_bytes()
        } else {
            let digits = self.text.as_bytes().get(self.at..self.at + 3)?;
            self.at += 3;
            // A number goes on while digits, `.`, `e` or `E` follow; only what ends a value may.
            match self.text.as_bytes().get(self.at) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}') => {}
                _ => return None,
            }
            digits
        };
        let [hundreds @ b'1'..=b'9', tens @ b'0'..=b'9', ones @ b'0'..=b'9'] = *digits else {
            return None;
        };
        let digit = |d: u8| u16::from(d - b'0');
        Some(digit(hundreds) * 100 + digit(tens) * 10 + digit(ones))
    }

    /// `responseHeaders`: an object of strings, in wire order, repeated names kept.
    fn headers(&mut self) -> Option<HeaderPairs<'a>> {
        self.token(b'{')?;
        let mut pairs = Vec::new();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(HeaderPairs(pairs));
        }
        loop {
            let name = self.string()?;
            self.token(b':')?;
            let value = self.string()?;
            pairs.push((borrowed(name), borrowed(value)));
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(HeaderPairs(pairs));
                }
                _ => return None,
            }
        }
    }

    /// The `response` object's members.
    fn members(&mut self) -> Option<ResponseView<'a>> {
        self.token(b'{')?;
        let mut request_id = None;
        let mut status_code = None;
        let mut status_description = None;
        let mut response_headers = None;
        let mut body = None;
        loop {
            let member = self.member()?;
            self.token(b':')?;
            match member {
                Member::RequestId if request_id.is_none() => request_id = Some(self.string()?),
                Member::StatusCode if status_code.is_none() => {
                    status_code = Some(self.status_code()?);
                }
                Member::StatusDescription if status_description.is_none() => {
                    status_description = Some(self.nullable(Self::string)?);
                }
                Member::ResponseHeaders if response_headers.is_none() => {
                    response_headers = Some(self.nullable(Self::headers)?);
                }
                Member::Body if body.is_none() => {
                    body = Some(match self.peek()? {
                        b't' => self.word("true").map(|()| true)?,
                        _ => self.word("false").map(|()| false)?,
                    });
                }
                // A member repeated (an error of serde's): not read here.
                _ => return None,
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(ResponseView {
            request_id: borrowed(request_id?),
            status_code: status_code?,
            status_description: status_description.flatten().map(borrowed),
            response_headers: response_headers.flatten(),
            body: body?,
        })
    }
}

/// The members of `response`.
#[derive(Clone, Copy)]
enum Member {
    RequestId,
    StatusCode,
    StatusDescription,
    ResponseHeaders,
    Body,
}

fn borrowed(value: &str) -> JsonStr<'_> {
    JsonStr(Cow::Borrowed(value))
}

/// Whether `text` is read by [`scan`]; when it is, serde must read the same `response`, and
/// the request id must be borrowed: panics otherwise (the oracle of the unit tests and of the
/// `message_readers` fuzz target, [`super::reader_oracle`]).
pub(crate) fn read_as_serde_reads(text: &str) -> bool {
    let scanned = scan(text);
    if let Some(view) = &scanned {
        assert_eq!(
            Some(view),
            super::response_view::serde_response(text).as_ref(),
            "{text:?}"
        );
        assert!(matches!(view.request_id.0, Cow::Borrowed(_)), "{text:?}");
    }
    scanned.is_some()
}

#[cfg(test)]
mod tests;
