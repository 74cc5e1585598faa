//! The sender's response head made from a listener's `response` (protocol §4.5, §6.6), sans-I/O:
//! the listener's status, description and headers, `Via`, and chunked framing when a body
//! follows. It is made where the `response` is read (the control channel's task or the
//! rendezvous reader), from the message's borrowed text, and finished by the request's task,
//! which alone knows whether the sender's connection stays open.

use crate::proto::hc::headers::{response_pairs_for_sender, HeaderError};
use crate::proto::hc::response_view::ResponseView;
use crate::proto::http1::{reason_phrase, write_response_head, WriteError};

/// Room for a typical response head and the first chunk of a small body, so the buffer the
/// head is written into does not grow while the answer is put together.
const HEAD_CAPACITY: usize = 4096;

/// A response head without its blank line: the status line and every field but `Connection`.
#[derive(Debug)]
pub(crate) struct AnswerHead {
    bytes: Vec<u8>,
    /// The listener's status code.
    pub status: u16,
    /// Whether a body follows (chunked).
    pub body: bool,
}

/// Why a `response` gives no head.
#[derive(Debug)]
pub(crate) enum HeadFailure {
    /// The listener's headers would inject lines or are not valid fields: the sender gets 502.
    Refused(HeaderError),
    /// The head cannot be written even without the reason phrase.
    Unwritable(WriteError),
}

/// The head for `response`; `via` is the relay's `Via` value (`1.1 {namespace}`).
pub(crate) fn prepare(response: &ResponseView<'_>, via: &str) -> Result<AnswerHead, HeadFailure> {
    let status = response.status_code;
    let reason = response
        .status_description
        .as_deref()
        .unwrap_or_else(|| reason_phrase(status));
    // Borrowed from the response: no field is copied before it is written.
    let kept = match &response.response_headers {
        Some(headers) => response_pairs_for_sender(headers.iter()).map_err(HeadFailure::Refused)?,
        None => Vec::new(),
    };
    let framing: (&str, &str) = if response.body {
        ("Transfer-Encoding", "chunked")
    } else {
        ("Content-Length", "0")
    };
    let fields = || kept.iter().copied().chain([("Via", via), framing]);
    let mut bytes = Vec::with_capacity(HEAD_CAPACITY);
    write_response_head(&mut bytes, status, reason, fields())
        .or_else(|_| write_response_head(&mut bytes, status, "", fields()))
        .map_err(HeadFailure::Unwritable)?;
    // The blank line goes after `Connection`, which `finish` adds.
    bytes.truncate(bytes.len() - 2);
    Ok(AnswerHead {
        bytes,
        status,
        body: response.body,
    })
}

impl AnswerHead {
    /// The whole head: `Connection: close` when the sender's connection ends after this
    /// answer, then the blank line. Body bytes may be appended to it.
    pub(crate) fn finish(self, keep_alive: bool) -> Vec<u8> {
        let mut bytes = self.bytes;
        if !keep_alive {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hc::response_view::{parse_listener_text, ListenerText};

    fn head(text: &str, keep_alive: bool) -> Result<String, String> {
        let ListenerText::Response(view) = parse_listener_text(text.as_bytes()) else {
            panic!("{text}");
        };
        match prepare(&view, "1.1 ns.example") {
            Ok(head) => Ok(String::from_utf8(head.finish(keep_alive)).unwrap()),
            Err(HeadFailure::Refused(e)) => Err(format!("refused: {e}")),
            Err(HeadFailure::Unwritable(e)) => Err(format!("unwritable: {e}")),
        }
    }

    #[test]
    fn heads_carry_status_headers_via_and_framing() {
        assert_eq!(
            head(
                r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"Content-Type":"text/plain","Content-Length":"5","Connection":"x-drop","X-Drop":"1"},"body":true}}"#,
                true
            ),
            Ok("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nVia: 1.1 ns.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned())
        );
        assert_eq!(
            head(
                r#"{"response":{"requestId":"r","statusCode":"404","statusDescription":"Gone Fishing","body":false}}"#,
                false
            ),
            Ok("HTTP/1.1 404 Gone Fishing\r\nVia: 1.1 ns.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned())
        );
    }

    #[test]
    fn a_bad_description_is_dropped_and_bad_headers_are_refused() {
        assert_eq!(
            head(
                r#"{"response":{"requestId":"r","statusCode":200,"statusDescription":"a\u0001b","body":false}}"#,
                true
            ),
            Ok("HTTP/1.1 200 \r\nVia: 1.1 ns.example\r\nContent-Length: 0\r\n\r\n".to_owned())
        );
        let refused = head(
            r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"X-A":"1\r\nX-B: 2"},"body":false}}"#,
            true,
        );
        assert!(
            matches!(&refused, Err(e) if e.starts_with("refused")),
            "{refused:?}"
        );
    }
}
