//! Reading a listener's `response` message (protocol §4.5) without copying its strings: the
//! relay reads one per relayed HTTP request and only turns it into an HTTP head.
//!
//! [`parse_listener_text`] accepts exactly the texts that [`parse_control_message`] reads as a
//! `response` (the same envelope and member rules, through the same serde attributes),
//! borrowing every string that has no escape; the usual shapes are read without serde by
//! [`response_scan`](super::response_scan), as serde reads them. Any other text — another
//! command, or one that is not a valid message — is handed to `parse_control_message`, so its
//! result and error are the ones that function gives.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::control_message::{parse_control_message, ControlMessage, MessageError, RESPONSE};
use super::messages::{Response, MAX_CONTROL_MESSAGE_LEN};

/// A `response` borrowed from the text it was read from, members as in [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseView<'a> {
    #[serde(borrow)]
    pub request_id: JsonStr<'a>,
    #[serde(deserialize_with = "super::messages::deserialize_status_code")]
    pub status_code: u16,
    #[serde(default, borrow)]
    pub status_description: Option<JsonStr<'a>>,
    #[serde(default, borrow)]
    pub response_headers: Option<HeaderPairs<'a>>,
    pub body: bool,
}

impl<'a> ResponseView<'a> {
    /// A view of an owned `response`.
    pub(crate) fn of(response: &'a Response) -> Self {
        Self {
            request_id: JsonStr(Cow::Borrowed(&response.request_id)),
            status_code: response.status_code,
            status_description: response
                .status_description
                .as_deref()
                .map(|d| JsonStr(Cow::Borrowed(d))),
            response_headers: response.response_headers.as_ref().map(|headers| {
                HeaderPairs(
                    headers
                        .iter()
                        .map(|(n, v)| (JsonStr(Cow::Borrowed(n)), JsonStr(Cow::Borrowed(v))))
                        .collect(),
                )
            }),
            body: response.body,
        }
    }
}

/// A JSON string, borrowed when it holds no escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonStr<'a>(pub Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(JsonStrVisitor)
    }
}

struct JsonStrVisitor;

impl<'de> Visitor<'de> for JsonStrVisitor {
    type Value = JsonStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(JsonStr(Cow::Owned(value)))
    }
}

/// `responseHeaders` in wire order, repeated names kept, as [`JsonHeaders`] reads them.
///
/// [`JsonHeaders`]: super::json_headers::JsonHeaders
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderPairs<'a>(pub Vec<(JsonStr<'a>, JsonStr<'a>)>);

impl<'a> HeaderPairs<'a> {
    /// The entries as (name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderPairs<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderPairsVisitor)
    }
}

struct HeaderPairsVisitor;

impl<'de> Visitor<'de> for HeaderPairsVisitor {
    type Value = HeaderPairs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of header name to string value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(pair) = map.next_entry::<JsonStr<'de>, JsonStr<'de>>()? {
            pairs.push(pair);
        }
        Ok(HeaderPairs(pairs))
    }
}

/// A text a listener sent: a `response`, borrowed, or whatever else
/// [`parse_control_message`] makes of it.
#[derive(Debug)]
pub(crate) enum ListenerText<'a> {
    Response(ResponseView<'a>),
    Other(Result<ControlMessage, MessageError>),
}

/// Reads one text message from a listener (protocol §4.2): a `response` without copying its
/// strings, any other text through [`parse_control_message`].
pub(crate) fn parse_listener_text(text: &[u8]) -> ListenerText<'_> {
    match borrowed_response(text) {
        Some(view) => ListenerText::Response(view),
        None => ListenerText::Other(parse_control_message(text)),
    }
}

/// The text as a `response`, when it is a valid one.
fn borrowed_response(text: &[u8]) -> Option<ResponseView<'_>> {
    if text.len() > MAX_CONTROL_MESSAGE_LEN {
        return None;
    }
    // Text that is UTF-8 as a whole is checked once here instead of string by string.
    let text = std::str::from_utf8(text).ok()?;
    super::response_scan::scan(text).or_else(|| serde_response(text))
}

/// The text as a `response` read by serde, when it is a valid one.
pub(super) fn serde_response(text: &str) -> Option<ResponseView<'_>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = deserializer.deserialize_map(ResponseEnvelope).ok()?;
    deserializer.end().ok()?;
    Some(envelope)
}

/// The envelope `{"response":{…}}` and nothing else (protocol §4.2: a single key).
struct ResponseEnvelope;

impl<'de> Visitor<'de> for ResponseEnvelope {
    type Value = ResponseView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with the single key `response`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let command = map.next_key::<JsonStr<'de>>()?;
        if command.as_deref() != Some(RESPONSE) {
            return Err(de::Error::custom("not a response"));
        }
        let view = map.next_value::<ResponseView<'de>>()?;
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("more than one command"));
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owned parse's answer for `text`, as a view when it is a `response`.
    fn owned(text: &str) -> Result<ControlMessage, MessageError> {
        parse_control_message(text.as_bytes())
    }

    #[test]
    fn responses_read_as_the_owned_parse_reads_them() {
        let texts = [
            r#"{"response":{"requestId":"r1","statusCode":200,"body":true}}"#,
            r#"{"response":{"requestId":"r1","statusCode":"201","statusDescription":"Created","responseHeaders":{"Content-Type":"text/plain","content-type":"x"},"body":false}}"#,
            r#" {"response" : {"requestId":"a\/b\"c","statusCode":204,"statusDescription":null,"responseHeaders":null,"body":false,"extra":{"x":[1]}}} "#,
            r#"{"respon\u0073e":{"requestId":"r","statusCode":999,"responseHeaders":{"X-\u00e9":"caf\u00e9"},"body":true}}"#,
            r#"{"response":{"body":true,"statusCode":100,"requestId":"r"}}"#,
        ];
        for text in texts {
            let ListenerText::Response(view) = parse_listener_text(text.as_bytes()) else {
                panic!("{text}");
            };
            let Ok(ControlMessage::Response(response)) = owned(text) else {
                panic!("{text}");
            };
            assert_eq!(view, ResponseView::of(&response), "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"response":{"requestId":"r1","statusCode":200,"responseHeaders":{"A":"b"},"body":true}}"#;
        let ListenerText::Response(view) = parse_listener_text(text.as_bytes()) else {
            panic!("{text}");
        };
        assert!(matches!(view.request_id.0, Cow::Borrowed(_)));
        let headers = view.response_headers.expect("headers");
        assert!(matches!(headers.0[0].1 .0, Cow::Borrowed(_)));
    }

    #[test]
    fn everything_else_gets_the_owned_parse_result() {
        let padding = " ".repeat(MAX_CONTROL_MESSAGE_LEN);
        let too_large =
            format!(r#"{{"response":{{"requestId":"r","statusCode":200,"body":true}}}}{padding}"#);
        let texts = [
            r#"{"renewToken":{"token":"SharedAccessSignature sr=a&sig=b"}}"#,
            r#"{"request":{"address":"ws://a"}}"#,
            r#"{"injectFault":{}}"#,
            r#"{"response":{"requestId":"r","statusCode":200,"body":true},"response":{}}"#,
            r#"{"response":{"requestId":"r","statusCode":200,"body":true}"#,
            r#"{"response":{"requestId":"r","statusCode":200,"body":true}} x"#,
            r#"{"response":{"requestId":"r","statusCode":"20","body":true}}"#,
            r#"{"response":{"requestId":"r","statusCode":200}}"#,
            r#"{"response":{"requestId":"r","requestId":"s","statusCode":200,"body":true}}"#,
            r#"{"response":{"requestId":"r","statusCode":200,"responseHeaders":{"A":1},"body":true}}"#,
            r#"{"response":{"requestId":7,"statusCode":200,"body":true}}"#,
            r#"{"Response":{"requestId":"r","statusCode":200,"body":true}}"#,
            "[]",
            "{}",
            "",
            too_large.as_str(),
        ];
        for text in texts {
            match parse_listener_text(text.as_bytes()) {
                ListenerText::Other(result) => assert_eq!(result, owned(text), "{text}"),
                ListenerText::Response(view) => panic!("{text}: {view:?}"),
            }
        }
        let not_utf8 = b"{\"response\":{\"requestId\":\"\xff\",\"statusCode\":200,\"body\":true}}";
        assert!(matches!(
            parse_listener_text(not_utf8),
            ListenerText::Other(Err(MessageError::NotJson { .. }))
        ));
    }
}
