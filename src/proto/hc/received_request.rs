//! A `request` message (protocol §4.4) as the daemon keeps it while serving it: one owned copy
//! of the message text, its strings kept as ranges of that copy. The daemon reads one per
//! relayed HTTP request and serves it in a task of its own, after the control reader's buffer
//! has been reused, so the request owns its text.
//!
//! [`parse_daemon_message`] reads the shape relays write with [`scan_request`] (a strict subset
//! of JSON, which serde_json reads to the same request); any other text is read by
//! [`parse_control_message`], so its result and error are the ones that function gives.

use std::ops::Range;

use super::control_message::{parse_control_message, ControlMessage, MessageError};
use super::messages::{Request, MAX_CONTROL_MESSAGE_LEN};
use super::request_scan::{scan_request, Scanned};

/// A `request`, members as in [`Request`] except `remoteEndpoint`, which the daemon does not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceivedRequest {
    /// The message text the spans point into (empty for a request made from a [`Request`]).
    text: Box<str>,
    address: Option<Text>,
    id: Option<Text>,
    request_target: Option<Text>,
    method: Option<Text>,
    request_headers: Option<HeaderList>,
    body: Option<bool>,
}

/// The relayed headers in wire order: ranges of the message text (the scanner's list, kept as
/// it is), or strings of their own (a request made from a [`Request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeaderList {
    Spans(Vec<(Range<usize>, Range<usize>)>),
    Owned(Vec<(Box<str>, Box<str>)>),
}

/// One string member: a range of the message text, or a string of its own (a request made from
/// a [`Request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text {
    Span(Range<usize>),
    Owned(Box<str>),
}

impl ReceivedRequest {
    fn resolve<'s>(&'s self, text: &'s Text) -> &'s str {
        match text {
            Text::Span(range) => self.span(range),
            Text::Owned(owned) => owned,
        }
    }

    fn span(&self, range: &Range<usize>) -> &str {
        // Spans are ranges the scanner found inside quotes of this very text (ASCII bytes, so
        // character boundaries): `get` always finds them.
        self.text.get(range.clone()).unwrap_or_default()
    }

    fn member<'s>(&'s self, member: &'s Option<Text>) -> Option<&'s str> {
        member.as_ref().map(|text| self.resolve(text))
    }

    /// The request-rendezvous URL (`sb-hc-action=request`).
    pub(crate) fn address(&self) -> Option<&str> {
        self.member(&self.address)
    }

    /// The request id, echoed as `response.requestId`.
    pub(crate) fn id(&self) -> Option<&str> {
        self.member(&self.id)
    }

    /// Path and query beginning with `/{HC path}` (protocol §2.4).
    pub(crate) fn request_target(&self) -> Option<&str> {
        self.member(&self.request_target)
    }

    /// The HTTP method.
    pub(crate) fn method(&self) -> Option<&str> {
        self.member(&self.method)
    }

    /// The relayed headers in wire order, repeated names kept (none when absent).
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        let (spans, owned): (&[_], &[_]) = match &self.request_headers {
            Some(HeaderList::Spans(spans)) => (spans, &[]),
            Some(HeaderList::Owned(owned)) => (&[], owned),
            None => (&[], &[]),
        };
        let spans = spans
            .iter()
            .map(|(name, value)| (self.span(name), self.span(value)));
        let owned = owned.iter().map(|(name, value)| (&**name, &**value));
        spans.chain(owned)
    }

    /// Whether this is the rendezvous-only notice, as [`Request::is_rendezvous_notice`].
    pub(crate) fn is_rendezvous_notice(&self) -> bool {
        self.body.is_none() && self.method.is_none()
    }

    /// Whether one binary body message follows this request (`"body": true`).
    pub(crate) fn has_body(&self) -> bool {
        self.body == Some(true)
    }
}

impl From<Request> for ReceivedRequest {
    fn from(request: Request) -> Self {
        let owned = |member: Option<String>| member.map(|s| Text::Owned(s.into_boxed_str()));
        Self {
            text: Box::default(),
            address: owned(request.address),
            id: owned(request.id),
            request_target: owned(request.request_target),
            method: owned(request.method),
            request_headers: request.request_headers.map(|headers| {
                HeaderList::Owned(
                    headers
                        .iter()
                        .map(|(name, value)| (name.into(), value.into()))
                        .collect(),
                )
            }),
            body: request.body,
        }
    }
}

/// One text message for the daemon: a `request`, or any other command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DaemonMessage {
    Request(ReceivedRequest),
    /// Never [`ControlMessage::Request`].
    Other(ControlMessage),
}

/// Reads one text message received on a control channel or a request rendezvous (protocol
/// §4.2): a `request` of the shape relays write by [`scan_request`], any other text through
/// [`parse_control_message`].
pub(crate) fn parse_daemon_message(text: &[u8]) -> Result<DaemonMessage, MessageError> {
    if let Some(request) = scanned_request(text) {
        return Ok(DaemonMessage::Request(request));
    }
    Ok(match parse_control_message(text)? {
        ControlMessage::Request(request) => DaemonMessage::Request(request.into()),
        other => DaemonMessage::Other(other),
    })
}

/// The text as a `request`, when the scanner reads it.
fn scanned_request(text: &[u8]) -> Option<ReceivedRequest> {
    if text.len() > MAX_CONTROL_MESSAGE_LEN {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let Scanned {
        address,
        id,
        request_target,
        method,
        request_headers,
        body,
    } = scan_request(text)?;
    Some(ReceivedRequest {
        text: text.into(),
        address: address.map(Text::Span),
        id: id.map(Text::Span),
        request_target: request_target.map(Text::Span),
        method: method.map(Text::Span),
        request_headers: request_headers.map(HeaderList::Spans),
        body,
    })
}

/// The request as serde's owned [`Request`] would hold it (`remoteEndpoint` is not kept).
fn as_request(request: &ReceivedRequest) -> Request {
    Request {
        address: request.address().map(str::to_owned),
        id: request.id().map(str::to_owned),
        request_target: request.request_target().map(str::to_owned),
        method: request.method().map(str::to_owned),
        remote_endpoint: None,
        request_headers: request
            .request_headers
            .as_ref()
            .map(|_| request.headers().collect()),
        body: request.body,
    }
}

/// `parse_daemon_message` against `parse_control_message` on `text`: the same request, the
/// same other command, the same error; panics where they differ (the oracle of the unit tests
/// and of the `message_readers` fuzz target, [`super::reader_oracle`]).
pub(crate) fn read_as_serde_reads(text: &[u8]) -> Option<ReceivedRequest> {
    let shown = String::from_utf8_lossy(text);
    let old = parse_control_message(text);
    let new = parse_daemon_message(text);
    match (old, new) {
        (Ok(ControlMessage::Request(old)), Ok(DaemonMessage::Request(new))) => {
            let old = Request {
                remote_endpoint: None,
                ..old
            };
            assert_eq!(as_request(&new), old, "{shown}");
            assert_eq!(new.is_rendezvous_notice(), old.is_rendezvous_notice());
            assert_eq!(new.has_body(), old.has_body());
            Some(new)
        }
        (Ok(old), Ok(DaemonMessage::Other(new))) => {
            assert_eq!(new, old, "{shown}");
            assert!(!matches!(new, ControlMessage::Request(_)), "{shown}");
            None
        }
        (Err(old), Err(new)) => {
            assert_eq!(new, old, "{shown}");
            None
        }
        (old, new) => panic!("{shown}: {old:?} / {new:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owned `Request` the old reading made of `request`, `remoteEndpoint` dropped.
    fn is_spanned(request: &ReceivedRequest) -> bool {
        let members = [
            &request.address,
            &request.id,
            &request.request_target,
            &request.method,
        ];
        let headers_spanned = !matches!(request.request_headers, Some(HeaderList::Owned(_)));
        headers_spanned
            && members
                .into_iter()
                .flatten()
                .all(|text| matches!(text, Text::Span(_)))
    }

    const FULL: &str = r#"{"request":{"address":"wss://g/$hc/hyco?sb-hc-action=request&sb-hc-id=1","id":"1","requestTarget":"/hyco/api?x=1","method":"POST","remoteEndpoint":{"address":"127.0.0.1","port":40000},"requestHeaders":{"Content-Type":"application/octet-stream","X-A":"1","x-a":"2"},"body":true}}"#;

    #[test]
    fn requests_read_as_the_owned_parse_reads_them() {
        let texts = [
            FULL,
            r#"{"request":{"address":"wss://g/$hc/hyco?sb-hc-action=request"}}"#,
            r#"{"request":{}}"#,
            r#" {"request" : {"id":"a\/b\"c","method":"GET","requestTarget":"/h/\u00e9","body":false} } "#,
            r#"{"requ\u0065st":{"id":"r","method":"GET","requestHeaders":{"X-\u00e9":"caf\u00e9","B":""}}}"#,
            r#"{"request":{"id":null,"address":null,"method":null,"requestTarget":null,"requestHeaders":null,"body":null,"remoteEndpoint":null}}"#,
            r#"{"request":{"id":"r","method":"GET","body":false,"extra":{"deep":[[1,{"a":null}]]},"remoteEndpoint":"1.2.3.4:5"}}"#,
            r#"{"request":{"id":"r","method":"GET","remoteEndpoint":{"address":7,"port":"x"},"requestHeaders":{}}}"#,
            r#"{"request":{"id":"r","method":"GET","remoteEndpoint":[["a"],{"b":1}]}}"#,
            r#"{"request":{"body":true,"method":"PUT","id":"\ud83d\ude00","requestTarget":"/h"}}"#,
            "{\"request\":{\"id\":\"\u{e9}\u{1F600}\",\"method\":\"GET\",\"requestHeaders\":{\"A\":\"\u{e9}\"}}}",
            r#"{"request":{"id":"r","method":"GET","requestHeaders":{"A":"a\u0000b","B\r\n":"c"}}}"#,
        ];
        for text in texts {
            assert!(read_as_serde_reads(text.as_bytes()).is_some(), "{text}");
        }
    }

    #[test]
    fn the_shape_relays_write_is_scanned_into_spans() {
        let request = read_as_serde_reads(FULL.as_bytes()).expect("a request");
        assert!(is_spanned(&request));
        assert_eq!(
            request.address(),
            Some("wss://g/$hc/hyco?sb-hc-action=request&sb-hc-id=1")
        );
        assert_eq!(request.id(), Some("1"));
        assert_eq!(request.method(), Some("POST"));
        assert_eq!(request.request_target(), Some("/hyco/api?x=1"));
        let headers: Vec<_> = request.headers().collect();
        assert_eq!(
            headers,
            [
                ("Content-Type", "application/octet-stream"),
                ("X-A", "1"),
                ("x-a", "2")
            ]
        );
        for text in [
            r#"{"request":{}}"#,
            r#"{"request":{"address":"wss://g/$hc/hyco?sb-hc-action=request"}}"#,
            " {\"request\" :\t{ \"body\" : false ,\r\n\"method\":\"GET\" , \"id\":\"\" } } \n",
            r#"{"request":{"body":true,"requestHeaders":{},"method":"PUT","id":"r","requestTarget":"/h"}}"#,
            r#"{"request":{"id":"r","method":"GET","remoteEndpoint":{}}}"#,
            r#"{"request":{"id":"r","method":"GET","remoteEndpoint":{"port":0,"address":"::1","family":"x","port":65536}}}"#,
            r#"{"request":{"id":"r","method":"GET","requestHeaders":{"A":"","":"b","A":"c"}}}"#,
            "{\"request\":{\"id\":\"\u{e9}\u{1F600}\",\"method\":\"G\u{7f}T\",\"requestHeaders\":{\"A\":\"\u{e9}\"}}}",
        ] {
            let request = read_as_serde_reads(text.as_bytes()).expect("a request");
            assert!(is_spanned(&request), "{text}");
        }
    }

    #[test]
    fn other_shapes_of_a_request_are_read_by_serde_json() {
        for text in [
            r#"{"request":{"id":"a\/b","method":"GET"}}"#,
            r#"{"requ\u0065st":{"id":"r"}}"#,
            r#"{"request":{"id":null,"method":"GET"}}"#,
            r#"{"request":{"id":"r","method":"GET","extra":1}}"#,
            r#"{"request":{"id":"r","remoteEndpoint":{"address":"a","port":1.5}}}"#,
            r#"{"request":{"id":"r","remoteEndpoint":{"address":"a","port":-1}}}"#,
            r#"{"request":{"id":"r","remoteEndpoint":{"port":0123}}}"#,
            r#"{"request":{"id":"r","remoteEndpoint":null}}"#,
            r#"{"request":{"id":"r","remoteEndpoint":"1.2.3.4:5"}}"#,
        ] {
            let parsed = parse_daemon_message(text.as_bytes());
            if let Ok(DaemonMessage::Request(request)) = &parsed {
                assert!(!is_spanned(request), "{text}");
            }
            read_as_serde_reads(text.as_bytes());
        }
        let escaped =
            read_as_serde_reads(br#"{"request":{"id":"a\/b","method":"GET"}}"#).expect("request");
        assert_eq!(escaped.id(), Some("a/b"));
        assert!(matches!(escaped.id, Some(Text::Owned(_))));
    }

    #[test]
    fn everything_else_gets_the_owned_parse_result() {
        let padding = " ".repeat(MAX_CONTROL_MESSAGE_LEN);
        let too_large = format!("{FULL}{padding}");
        let deep_endpoint = format!(
            r#"{{"request":{{"id":"r","method":"GET","remoteEndpoint":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let deep_unknown = format!(
            r#"{{"request":{{"id":"r","method":"GET","other":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let texts = [
            r#"{"accept":{"address":"ws://a?x","id":"i","connectHeaders":{}}}"#,
            r#"{"response":{"requestId":"r","statusCode":200,"body":true}}"#,
            r#"{"renewToken":{"token":"SharedAccessSignature sr=a&sig=b"}}"#,
            r#"{"injectFault":{}}"#,
            r#"{"Request":{"id":"r"}}"#,
            r#"{"request":{"id":"r"},"request":{}}"#,
            r#"{"request":{"id":"r"},"accept":{"address":"a"}}"#,
            r#"{"request":{"id":"r"}"#,
            r#"{"request":{"id":"r"}} x"#,
            r#"{"request":{"id":"a","id":"b"}}"#,
            r#"{"request":{"id":7}}"#,
            r#"{"request":{"body":"yes"}}"#,
            r#"{"request":{"method":"\ud800"}}"#,
            "{\"request\":{\"method\":\"a\u{1}b\"}}",
            r#"{"request":{"requestHeaders":{"X-A":["1","2"]}}}"#,
            r#"{"request":{"requestHeaders":{"X-A":1}}}"#,
            r#"{"request":{"requestHeaders":["a","b"]}}"#,
            r#"{"request":{"requestHeaders":{"A":"1","A":"2"}}}"#,
            r#"{"request":[]}"#,
            r#"{"request":"x"}"#,
            r#"{"request":{"id":"r",}}"#,
            "{'request':{}}",
            "[]",
            "{}",
            "",
            too_large.as_str(),
            deep_endpoint.as_str(),
            deep_unknown.as_str(),
        ];
        for text in texts {
            read_as_serde_reads(text.as_bytes());
        }
        for text in [
            &b"{\"request\":{\"id\":\"\xff\",\"method\":\"GET\"}}"[..],
            b"{\"request\":{\"id\":\"r\",\"method\":\"GET\",\"x\":\"\xc3\"}}",
            b"\xef\xbb\xbf{\"request\":{}}",
        ] {
            read_as_serde_reads(text);
        }
    }

    /// Every prefix of a valid request (truncated input) and every single-byte change to it
    /// gets the owned parse's answer.
    #[test]
    fn truncated_and_altered_requests_get_the_owned_parse_result() {
        let text = FULL.as_bytes();
        for end in 0..text.len() {
            read_as_serde_reads(&text[..end]);
        }
        for at in 0..text.len() {
            for byte in [
                b'"', b'\\', b'{', b'}', b',', b':', b' ', b'x', b'1', 0, 0xff,
            ] {
                let mut altered = text.to_vec();
                altered[at] = byte;
                read_as_serde_reads(&altered);
            }
        }
    }

    #[test]
    fn a_request_made_from_an_owned_one_reads_the_same() {
        let Ok(ControlMessage::Request(owned)) = parse_control_message(FULL.as_bytes()) else {
            panic!("a request");
        };
        let made = ReceivedRequest::from(owned.clone());
        assert_eq!(
            as_request(&made),
            Request {
                remote_endpoint: None,
                ..owned
            }
        );
        assert!(!made.is_rendezvous_notice());
        assert!(made.has_body());
        let empty = ReceivedRequest::from(Request::default());
        assert_eq!(empty.headers().count(), 0);
        assert!(empty.is_rendezvous_notice());
    }
}
