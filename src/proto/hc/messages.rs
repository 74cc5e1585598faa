//! The JSON bodies of the control-channel and rendezvous commands, both directions:
//! `accept` (protocol §4.3), `request` (protocol §4.4), `response` (protocol §4.5) and `renewToken`
//! (protocol §4.6).
//!
//! Field names are the wire's camelCase names. Unknown members are ignored and `\/` escapes are
//! accepted (protocol §4.2); absent optional members are omitted when writing, as .NET does.
//! Reading a whole text message (the envelope with its single command key) is
//! [`super::control_message::parse_control_message`]; each type here writes its own envelope with
//! `to_json`.

use std::fmt;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json_headers::JsonHeaders;
use super::lenient_endpoint::lenient_endpoint;
use crate::secret::Secret;

/// Control-channel messages are limited to 64 KiB: the .NET listener assembles each one in a fixed
/// buffer of that size (protocol §4.2).
pub const MAX_CONTROL_MESSAGE_LEN: usize = 64 * 1024;

/// The lowest status code a `response` may carry (.NET's setter accepts 100–999, protocol §4.5).
pub const MIN_STATUS_CODE: u16 = 100;

/// The highest status code a `response` may carry (protocol §4.5).
pub const MAX_STATUS_CODE: u16 = 999;

/// The sender's address as the service saw it (`remoteEndpoint`, protocol §4.3, §4.4). Both
/// members are optional, as in the .NET contract (`ListenerCommand.Endpoint`: `IsRequired =
/// false`, `EmitDefaultValue = false`): an absent or `null` one reads as empty / 0 and is
/// omitted when writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEndpoint {
    /// The sender's IP address as text; empty when the service gave none.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub address: String,
    /// The sender's TCP port; 0 when the service gave none.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub port: u16,
}

/// `accept` (service → listener): a sender opened a WebSocket and this listener was picked
/// (protocol §4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accept {
    /// The rendezvous URL, used verbatim to accept or to build the reject URL (protocol §5).
    pub address: String,
    /// The connection id (the sender's `sb-hc-id` or one made by the service); empty when
    /// absent (it only names the stream in logs).
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// The sender's upgrade headers, multi-value headers joined. An absent or `null` member reads
    /// as an empty map.
    #[serde(default, deserialize_with = "null_as_empty_headers")]
    pub connect_headers: JsonHeaders,
    /// The sender's address, when the service supplies it; one of another shape reads as absent.
    #[serde(
        default,
        deserialize_with = "lenient_endpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_endpoint: Option<RemoteEndpoint>,
}

impl Accept {
    /// The exact wire text `{"accept":{…}}`, an absent `remoteEndpoint` omitted.
    pub fn to_json(&self) -> String {
        encode(&Outgoing::Accept(self))
    }
}

/// `request` (service → listener): one relayed HTTP request, or a notice to fetch it over a
/// rendezvous (protocol §4.4). Every member is optional on the wire, so every field is an `Option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The request-rendezvous URL (`sb-hc-action=request`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The request id, echoed as `response.requestId`. Not required on a notice (protocol §11 item
    /// 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Path and query beginning with `/{HC path}`, `sb-hc-*` parameters removed (protocol §2.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_target: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The sender's address, when the service supplies it; one of another shape reads as absent.
    #[serde(
        default,
        deserialize_with = "lenient_endpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_endpoint: Option<RemoteEndpoint>,
    /// The sender's headers after filtering (protocol §6.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<JsonHeaders>,
    /// Whether exactly one binary body message follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<bool>,
}

impl Request {
    /// Whether this is the rendezvous-only notice (shape (b) of protocol §4.4): neither `body` nor
    /// `method` is present, so the listener must connect to `address` to receive the request.
    pub fn is_rendezvous_notice(&self) -> bool {
        self.body.is_none() && self.method.is_none()
    }

    /// Whether one binary body message follows this request (`"body": true`).
    pub fn has_body(&self) -> bool {
        self.body == Some(true)
    }

    /// The exact wire text `{"request":{…}}`, absent members omitted.
    pub fn to_json(&self) -> String {
        encode(&Outgoing::Request(self))
    }
}

/// `response` (listener → service): the answer to one `request` (protocol §4.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The `id` of the request being answered.
    pub request_id: String,
    /// The HTTP status, 100–999. Read from a JSON number or a numeric string (protocol §11 item
    /// 15), always written as a number.
    #[serde(deserialize_with = "deserialize_status_code")]
    pub status_code: u16,
    /// The reason phrase the sender sees; absent means the standard phrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    /// Headers for the sender's response (protocol §6.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<JsonHeaders>,
    /// Whether one binary body message follows. Required (protocol §4.5).
    pub body: bool,
}

impl Response {
    /// The exact wire text `{"response":{…}}`, absent members omitted.
    pub fn to_json(&self) -> String {
        super::response_json::encode(self)
    }
}

/// `renewToken` (listener → service): replaces the control channel's credential (protocol §4.6).
/// The token is a [`Secret`], so `Debug` never shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RenewToken {
    /// The token exactly as it would appear in `ServiceBusAuthorization`.
    #[serde(deserialize_with = "deserialize_secret")]
    pub token: Secret,
}

/// The prefix of a token that was URL-encoded as a whole (protocol §11 item 14).
const ENCODED_SAS_PREFIX: &str = "SharedAccessSignature%20";

impl RenewToken {
    /// The exact wire text `{"renewToken":{"token":"…"}}`. It contains the token, so it is
    /// returned as a [`Secret`]; `.expose()` it only to write it to the socket.
    pub fn to_json(&self) -> Secret {
        let wire = RenewTokenWire {
            token: self.token.expose(),
        };
        Secret::new(encode(&Outgoing::RenewToken(wire)))
    }

    /// The token as `ServiceBusAuthorization` would carry it. The SDKs send the raw token, but
    /// the article calls it URL-encoded, so a token that starts with `SharedAccessSignature%20`
    /// is percent-decoded once (protocol §11 item 14); any other token is returned unchanged.
    pub fn token_as_header_value(&self) -> Secret {
        let raw = self.token.expose();
        if !raw.starts_with(ENCODED_SAS_PREFIX) {
            return self.token.clone();
        }
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        Secret::new(decoded.into_owned())
    }
}

/// What `renewToken` looks like on the wire, borrowing the token instead of copying it.
#[derive(Serialize)]
struct RenewTokenWire<'a> {
    token: &'a str,
}

/// The envelope of an outgoing message: a single key naming the command (protocol §4.2).
#[derive(Serialize)]
enum Outgoing<'a> {
    #[serde(rename = "accept")]
    Accept(&'a Accept),
    #[serde(rename = "request")]
    Request(&'a Request),
    #[serde(rename = "renewToken")]
    RenewToken(RenewTokenWire<'a>),
}

fn encode(message: &Outgoing<'_>) -> String {
    // Invariant: every type reachable from `Outgoing` serialises only strings, numbers, booleans
    // and maps with string keys, and no `Serialize` impl here returns an error, so serde_json
    // cannot fail.
    serde_json::to_string(message).expect("control messages always serialise")
}

fn null_as_empty_headers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<JsonHeaders, D::Error> {
    Ok(Option::<JsonHeaders>::deserialize(deserializer)?.unwrap_or_default())
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_zero(port: &u16) -> bool {
    *port == 0
}

fn deserialize_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

pub(crate) fn deserialize_status_code<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<u16, D::Error> {
    deserializer.deserialize_any(StatusCodeVisitor)
}

/// Reads `statusCode` from a JSON number or from a string of exactly three ASCII digits
/// (protocol §4.5, §11 item 15), within 100–999.
struct StatusCodeVisitor;

impl StatusCodeVisitor {
    fn in_range<E: de::Error>(self, value: u64, unexpected: Unexpected<'_>) -> Result<u16, E> {
        match u16::try_from(value) {
            Ok(code) if (MIN_STATUS_CODE..=MAX_STATUS_CODE).contains(&code) => Ok(code),
            _ => Err(E::invalid_value(unexpected, &self)),
        }
    }
}

impl<'de> Visitor<'de> for StatusCodeVisitor {
    type Value = u16;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an HTTP status code {MIN_STATUS_CODE}-{MAX_STATUS_CODE} as a number or a string of three digits"
        )
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u16, E> {
        self.in_range(value, Unexpected::Unsigned(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u16, E> {
        match u64::try_from(value) {
            Ok(unsigned) => self.in_range(unsigned, Unexpected::Signed(value)),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(value), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u16, E> {
        let three_digits = value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit());
        match value.parse::<u64>() {
            Ok(number) if three_digits => self.in_range(number, Unexpected::Str(value)),
            _ => Err(E::invalid_value(Unexpected::Str(value), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> JsonHeaders {
        pairs.iter().copied().collect()
    }

    #[test]
    fn accept_deserialises_camel_case_members() {
        let accept: Accept = serde_json::from_str(
            r#"{"address":"wss:\/\/g1:443\/$hc\/hyco?sb-hc-action=accept&sb-hc-id=x_G1","id":"x_G1",
                "connectHeaders":{"Sec-WebSocket-Key":"k","X-Tenant":"blue"},
                "remoteEndpoint":{"address":"203.0.113.7","port":51234},"futureMember":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(
            accept,
            Accept {
                address: "wss://g1:443/$hc/hyco?sb-hc-action=accept&sb-hc-id=x_G1".into(),
                id: "x_G1".into(),
                connect_headers: headers(&[("Sec-WebSocket-Key", "k"), ("X-Tenant", "blue")]),
                remote_endpoint: Some(RemoteEndpoint {
                    address: "203.0.113.7".into(),
                    port: 51234
                }),
            }
        );
    }

    #[test]
    fn accept_without_or_with_null_connect_headers_has_an_empty_map() {
        let absent: Accept = serde_json::from_str(r#"{"address":"ws://a?x","id":"i"}"#).unwrap();
        assert!(absent.connect_headers.is_empty());
        assert_eq!(absent.remote_endpoint, None);
        let null: Accept =
            serde_json::from_str(r#"{"address":"ws://a?x","id":"i","connectHeaders":null}"#)
                .unwrap();
        assert!(null.connect_headers.is_empty());
    }

    /// `remoteEndpoint.address` and `.port` are optional in the .NET contract
    /// (ListenerCommand.cs `Endpoint`); an accept or request without either is still served.
    #[test]
    fn remote_endpoint_members_are_optional() {
        for endpoint in [
            r#"{"address":"203.0.113.7"}"#,
            r#"{"port":51234}"#,
            r#"{}"#,
            r#"{"address":null,"port":null,"family":"v4"}"#,
            r#"{"port":"not a number"}"#,
            r#""203.0.113.7:5""#,
        ] {
            let text = format!(r#"{{"address":"ws://a?x","id":"i","remoteEndpoint":{endpoint}}}"#);
            let accept: Accept =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(accept.id, "i");
            let text = format!(r#"{{"id":"r","method":"GET","remoteEndpoint":{endpoint}}}"#);
            let request: Request =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(request.id.as_deref(), Some("r"));
        }
        let accept: Accept = serde_json::from_str(
            r#"{"address":"ws://a?x","id":"i","remoteEndpoint":{"address":"203.0.113.7"}}"#,
        )
        .unwrap();
        let endpoint = format!("{:?}", accept.remote_endpoint.expect("endpoint"));
        assert!(
            endpoint.contains("203.0.113.7") && endpoint.contains("port: 0"),
            "{endpoint}"
        );
    }

    #[test]
    fn accept_requires_an_address_and_reads_a_missing_id_as_empty() {
        let err = serde_json::from_str::<Accept>(r#"{"id":"i"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `address`"), "{err}");
        let accept: Accept = serde_json::from_str(r#"{"address":"ws://a"}"#).unwrap();
        assert_eq!(accept.id, "");
    }

    #[test]
    fn accept_serialises_in_wire_shape() {
        let accept = Accept {
            address: "ws://127.0.0.1:9/$hc/hyco?sb-hc-action=accept&sb-hc-id=a".into(),
            id: "a".into(),
            connect_headers: headers(&[
                ("Sec-WebSocket-Key", "k"),
                ("Sec-WebSocket-Version", "13"),
            ]),
            remote_endpoint: Some(RemoteEndpoint {
                address: "127.0.0.1".into(),
                port: 4000,
            }),
        };
        assert_eq!(
            accept.to_json(),
            r#"{"accept":{"address":"ws://127.0.0.1:9/$hc/hyco?sb-hc-action=accept&sb-hc-id=a","id":"a","connectHeaders":{"Sec-WebSocket-Key":"k","Sec-WebSocket-Version":"13"},"remoteEndpoint":{"address":"127.0.0.1","port":4000}}}"#
        );
        let without_endpoint = Accept {
            remote_endpoint: None,
            connect_headers: JsonHeaders::new(),
            ..accept
        };
        assert_eq!(
            without_endpoint.to_json(),
            r#"{"accept":{"address":"ws://127.0.0.1:9/$hc/hyco?sb-hc-action=accept&sb-hc-id=a","id":"a","connectHeaders":{}}}"#
        );
    }

    #[test]
    fn full_request_deserialises_and_is_not_a_notice() {
        let request: Request = serde_json::from_str(
            r#"{"address":"wss://g/$hc/hyco?sb-hc-action=request","id":"r1","requestTarget":"/hyco/sap?client=100",
                "method":"POST","remoteEndpoint":{"address":"198.51.100.23","port":60412},
                "requestHeaders":{"Content-Type":"application/json"},"body":true}"#,
        )
        .unwrap();
        assert!(!request.is_rendezvous_notice());
        assert!(request.has_body());
        assert_eq!(request.method.as_deref(), Some("POST"));
        assert_eq!(
            request.request_target.as_deref(),
            Some("/hyco/sap?client=100")
        );
        assert_eq!(
            request.request_headers,
            Some(headers(&[("Content-Type", "application/json")]))
        );
        assert_eq!(request.remote_endpoint.map(|e| e.port), Some(60412));
    }

    #[test]
    fn request_without_body_and_method_is_a_rendezvous_notice() {
        let notice: Request =
            serde_json::from_str(r#"{"address":"wss://g/$hc/hyco?sb-hc-action=request"}"#).unwrap();
        assert!(notice.is_rendezvous_notice());
        assert!(!notice.has_body());
        assert_eq!(notice.id, None);
    }

    #[test]
    fn request_with_either_body_or_method_is_not_a_notice() {
        let body_only: Request = serde_json::from_str(r#"{"address":"a","body":false}"#).unwrap();
        assert!(!body_only.is_rendezvous_notice());
        assert!(!body_only.has_body());
        let method_only: Request =
            serde_json::from_str(r#"{"address":"a","method":"GET"}"#).unwrap();
        assert!(!method_only.is_rendezvous_notice());
    }

    #[test]
    fn request_serialises_omitting_absent_members() {
        let notice = Request {
            address: Some("ws://r/$hc/h?sb-hc-action=request&sb-hc-id=1".into()),
            id: Some("1".into()),
            ..Request::default()
        };
        assert_eq!(
            notice.to_json(),
            r#"{"request":{"address":"ws://r/$hc/h?sb-hc-action=request&sb-hc-id=1","id":"1"}}"#
        );
        let full = Request {
            request_target: Some("/h/x?a=1".into()),
            method: Some("GET".into()),
            request_headers: Some(headers(&[("Accept", "*/*")])),
            body: Some(false),
            ..notice
        };
        assert_eq!(
            full.to_json(),
            r#"{"request":{"address":"ws://r/$hc/h?sb-hc-action=request&sb-hc-id=1","id":"1","requestTarget":"/h/x?a=1","method":"GET","requestHeaders":{"Accept":"*/*"},"body":false}}"#
        );
    }

    #[test]
    fn response_reads_status_code_from_number_or_numeric_string() {
        for text in [
            r#"{"requestId":"r","statusCode":200,"body":false}"#,
            r#"{"requestId":"r","statusCode":"200","body":false}"#,
        ] {
            let response: Response = serde_json::from_str(text).unwrap();
            assert_eq!(response.status_code, 200, "{text}");
            assert_eq!(response.response_headers, None);
            assert_eq!(response.status_description, None);
        }
    }

    #[test]
    fn response_status_code_outside_100_to_999_or_malformed_is_rejected() {
        for code in [
            "99", "1000", "-200", "0", "200.0", "\"20\"", "\"2000\"", "\" 200\"", "\"abc\"",
            "\"+20\"", "true", "null", "70000",
        ] {
            let text = format!(r#"{{"requestId":"r","statusCode":{code},"body":false}}"#);
            let err = serde_json::from_str::<Response>(&text).unwrap_err();
            assert!(err.is_data(), "{code}: {err}");
            assert!(
                err.to_string().contains("HTTP status code"),
                "{code}: {err}"
            );
        }
        for code in ["100", "999", "\"100\"", "\"999\""] {
            let text = format!(r#"{{"requestId":"r","statusCode":{code},"body":false}}"#);
            assert!(serde_json::from_str::<Response>(&text).is_ok(), "{code}");
        }
    }

    #[test]
    fn response_requires_request_id_status_code_and_body() {
        for (text, field) in [
            (r#"{"statusCode":200,"body":true}"#, "requestId"),
            (r#"{"requestId":"r","body":true}"#, "statusCode"),
            (r#"{"requestId":"r","statusCode":200}"#, "body"),
        ] {
            let err = serde_json::from_str::<Response>(text).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("missing field `{field}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn response_always_serialises_status_code_as_a_number() {
        let response: Response = serde_json::from_str(
            r#"{"requestId":"r1","statusCode":"201","statusDescription":"Created","responseHeaders":{"Content-Type":"text/plain"},"body":true}"#,
        )
        .unwrap();
        assert_eq!(
            response.to_json(),
            r#"{"response":{"requestId":"r1","statusCode":201,"statusDescription":"Created","responseHeaders":{"Content-Type":"text/plain"},"body":true}}"#
        );
        let bare = Response {
            status_description: None,
            response_headers: None,
            body: false,
            ..response
        };
        assert_eq!(
            bare.to_json(),
            r#"{"response":{"requestId":"r1","statusCode":201,"body":false}}"#
        );
    }

    #[test]
    fn renew_token_debug_redacts_and_json_is_a_secret() {
        let token = "SharedAccessSignature sr=http%3A%2F%2Fns%2Fhyco%2F&sig=abc%2B&se=1&skn=k";
        let renew = RenewToken {
            token: Secret::new(token),
        };
        assert!(!format!("{renew:?}").contains("sig="));
        let json = renew.to_json();
        assert!(!format!("{json:?}").contains("sig="));
        assert_eq!(
            json.expose(),
            format!(r#"{{"renewToken":{{"token":"{token}"}}}}"#)
        );
    }

    #[test]
    fn renew_token_deserialises_into_a_secret() {
        let renew: RenewToken =
            serde_json::from_str(r#"{"token":"SharedAccessSignature sr=a&sig=b","extra":1}"#)
                .unwrap();
        assert_eq!(renew.token.expose(), "SharedAccessSignature sr=a&sig=b");
    }

    #[test]
    fn renew_token_decodes_a_token_encoded_as_a_whole_once() {
        let encoded = RenewToken {
            token: Secret::new("SharedAccessSignature%20sr%3Dhttp%253A%252F%252Fns%26sig%3Dx"),
        };
        assert_eq!(
            encoded.token_as_header_value().expose(),
            "SharedAccessSignature sr=http%3A%2F%2Fns&sig=x"
        );
        let raw = RenewToken {
            token: Secret::new("SharedAccessSignature sr=http%3A%2F%2Fns&sig=x"),
        };
        assert_eq!(
            raw.token_as_header_value().expose(),
            "SharedAccessSignature sr=http%3A%2F%2Fns&sig=x"
        );
    }
}
