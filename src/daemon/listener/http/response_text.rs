//! A `response` (protocol §4.5) as the wire text it is sent as, with the two facts the listener
//! still needs from it: its status and whether a body message follows. The target's response
//! head is written straight to this text ([`ResponseText::for_head`]); the daemon's own answers
//! are encoded from their [`Response`] ([`ResponseText::of`]).

use std::fmt;

use crate::proto::hc::headers::response_headers_kept;
use crate::proto::hc::messages::Response;
use crate::proto::hc::response_json::encode_parts;
use crate::proto::http1::{reason_phrase, ResponseHead};

/// How the text of every `response` ends, by the value of `body`.
const BODY_TRUE_END: &str = r#""body":true}}"#;
const BODY_FALSE_END: &str = r#""body":false}}"#;

/// A `response`'s exact wire text `{"response":{…}}`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ResponseText {
    text: String,
    status: u16,
    body: bool,
}

impl ResponseText {
    /// The text of `response`.
    pub(crate) fn of(response: &Response) -> Self {
        Self {
            text: response.to_json(),
            status: response.status_code,
            body: response.body,
        }
    }

    /// The `response` for the target's `head` (protocol §4.5, §6.6): its status and reason
    /// phrase, its headers without hop-by-hop ones and with repeated fields joined.
    /// `statusDescription` is always sent: the target's phrase, or the standard one when it gave
    /// none (an empty string for a code without one), as the .NET listener's
    /// `StatusDescription` getter does (docs/architecture.md "`statusDescription`").
    pub(crate) fn for_head(request_id: &str, head: &ResponseHead, body: bool) -> Self {
        let description = if head.reason.is_empty() {
            reason_phrase(head.status)
        } else {
            head.reason.as_str()
        };
        let headers = response_headers_kept(&head.headers);
        Self {
            text: encode_parts(request_id, head.status, description, &headers, body),
            status: head.status,
            body,
        }
    }

    /// The wire text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Whether one binary body message follows.
    pub(crate) fn body(&self) -> bool {
        self.body
    }

    /// Sets `body`: the text's last member is rewritten.
    pub(crate) fn set_body(&mut self, body: bool) {
        if body == self.body {
            return;
        }
        let (old, new) = if body {
            (BODY_FALSE_END, BODY_TRUE_END)
        } else {
            (BODY_TRUE_END, BODY_FALSE_END)
        };
        debug_assert!(self.text.ends_with(old));
        self.text.truncate(self.text.len() - old.len());
        self.text.push_str(new);
        self.body = body;
    }
}

impl fmt::Debug for ResponseText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hc::headers::response_headers_to_json;
    use crate::proto::http1::{parse_response_head, Limits};

    fn head(text: &[u8]) -> ResponseHead {
        parse_response_head(text, &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    /// The `response` built as a [`Response`] (the listener's way before writing it directly).
    fn built(request_id: &str, head: &ResponseHead, body: bool) -> Response {
        let description = if head.reason.is_empty() {
            reason_phrase(head.status).to_owned()
        } else {
            head.reason.clone()
        };
        Response {
            request_id: request_id.to_owned(),
            status_code: head.status,
            status_description: Some(description),
            response_headers: Some(response_headers_to_json(&head.headers)),
            body,
        }
    }

    #[test]
    fn a_head_is_written_byte_for_byte_as_its_built_response_encodes() {
        let heads: [&[u8]; 6] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 404 \r\n\r\n",
            b"HTTP/1.1 299 \r\n\r\n",
            b"HTTP/1.1 418 Short And Stout\r\nX-A: 1\r\nConnection: close, X-Hop\r\nX-Hop: h\r\nx-a: 2\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nX-A: 3\r\n\r\n",
            b"HTTP/1.1 200 \"Quoted\\\" Phrase\r\nSet-Cookie: a=1\r\nCookie: x\r\ncookie: y\r\nX-Q: \"q\" \\ z\r\nX-Q: \"\r\nX-Latin: caf\xe9\r\nX-Empty:\r\nX-Empty: \r\n\r\n",
            b"HTTP/1.1 500 Server Error\r\nConnection: X-B\r\nX-B: dropped\r\nX-C: kept\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTE: trailers\r\n\r\n",
        ];
        for text in heads {
            let head = head(text);
            for (id, body) in [("r1", true), ("id\u{1}\"\\", false)] {
                let expected = built(id, &head, body);
                let written = ResponseText::for_head(id, &head, body);
                assert_eq!(written.text(), expected.to_json());
                assert_eq!(written.status(), expected.status_code);
                assert_eq!(written.body(), body);
                assert_eq!(written, ResponseText::of(&expected));
            }
        }
    }

    #[test]
    fn the_response_carries_status_reason_and_filtered_joined_headers() {
        let head = head(b"HTTP/1.1 418 Short And Stout\r\nX-A: 1\r\nConnection: close, X-Hop\r\nX-Hop: h\r\nX-A: 2\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n");
        let text = ResponseText::for_head("r1", &head, true);
        assert_eq!(
            text.text(),
            r#"{"response":{"requestId":"r1","statusCode":418,"statusDescription":"Short And Stout","responseHeaders":{"X-A":"1, 2"},"body":true}}"#
        );
    }

    #[test]
    fn an_empty_reason_is_sent_as_the_standard_phrase() {
        let text = ResponseText::for_head("r1", &head(b"HTTP/1.1 404 \r\n\r\n"), false);
        assert!(text.text().contains(r#""statusDescription":"Not Found""#));
        assert!(!text.body());
        let text = ResponseText::for_head("r1", &head(b"HTTP/1.1 299 \r\n\r\n"), false);
        assert!(text.text().contains(r#""statusDescription":"""#));
    }

    #[test]
    fn setting_body_rewrites_the_text_as_encoding_it_would() {
        let head = head(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        let mut text = ResponseText::for_head("r1", &head, false);
        for body in [true, true, false, false, true] {
            text.set_body(body);
            assert_eq!(text, ResponseText::for_head("r1", &head, body));
        }
    }
}
