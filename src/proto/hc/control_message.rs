//! Reading one control-channel or rendezvous text message (protocol §4.2).
//!
//! A message is one JSON object whose single top-level key names the command: `accept`,
//! `request`, `response` or `renewToken`. Unknown commands (such as .NET's debug-only
//! `injectFault`) are returned as [`ControlMessage::Unknown`] so the caller can log and ignore
//! them; unknown members inside a known command are ignored. The envelope is read in one pass
//! straight into the typed command, without an intermediate JSON tree.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::messages::{Accept, RenewToken, Request, Response, MAX_CONTROL_MESSAGE_LEN};

/// The command key of an `accept` message (protocol §4.3).
pub const ACCEPT: &str = "accept";
/// The command key of a `request` message (protocol §4.4).
pub const REQUEST: &str = "request";
/// The command key of a `response` message (protocol §4.5).
pub const RESPONSE: &str = "response";
/// The command key of a `renewToken` message (protocol §4.6).
pub const RENEW_TOKEN: &str = "renewToken";

/// What the detail of a malformed `renewToken` says: serde's own text could quote the value.
const RENEW_TOKEN_SHAPE: &str = "expected an object with a string member `token`";

/// One parsed text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Service → listener: open (or reject) an accept rendezvous (protocol §4.3).
    Accept(Accept),
    /// Service → listener: a relayed HTTP request or a rendezvous notice (protocol §4.4).
    Request(Request),
    /// Listener → service: the answer to a request (protocol §4.5).
    Response(Response),
    /// Listener → service: a new token for the control channel (protocol §4.6).
    RenewToken(RenewToken),
    /// A well-formed message with a command this crate does not know; log and ignore it
    /// (protocol §4.2). Holds the command name.
    Unknown(String),
}

impl ControlMessage {
    /// The top-level key the message arrived under.
    pub fn command(&self) -> &str {
        match self {
            Self::Accept(_) => ACCEPT,
            Self::Request(_) => REQUEST,
            Self::Response(_) => RESPONSE,
            Self::RenewToken(_) => RENEW_TOKEN,
            Self::Unknown(name) => name,
        }
    }
}

/// Why a text message is not a valid control message. None of the texts quote a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// The message is longer than the 64 KiB control-message limit (protocol §4.2).
    TooLarge { len: usize, max: usize },
    /// The message is not well-formed JSON (or has text after the JSON value).
    NotJson { detail: String },
    /// The JSON value is not an object.
    NotAnObject,
    /// The object is empty: it names no command.
    NoCommand,
    /// The object has more than one top-level key (protocol §4.2: a single key names the message).
    MultipleCommands { first: String, second: String },
    /// A known command whose body does not have the required shape.
    InvalidField {
        command: &'static str,
        detail: String,
    },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => write!(
                f,
                "control message of {len} bytes exceeds the limit of {max} bytes"
            ),
            Self::NotJson { detail } => write!(f, "control message is not valid JSON: {detail}"),
            Self::NotAnObject => f.write_str("control message is not a JSON object"),
            Self::NoCommand => f.write_str("control message is an empty object, naming no command"),
            Self::MultipleCommands { first, second } => write!(
                f,
                "control message has more than one top-level key: {first:?} and {second:?}"
            ),
            Self::InvalidField { command, detail } => {
                write!(f, "invalid {command:?} message: {detail}")
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// Parses one text message received on a control channel or a request rendezvous (protocol §4.2).
pub fn parse_control_message(text: &[u8]) -> Result<ControlMessage, MessageError> {
    if text.len() > MAX_CONTROL_MESSAGE_LEN {
        return Err(MessageError::TooLarge {
            len: text.len(),
            max: MAX_CONTROL_MESSAGE_LEN,
        });
    }
    // Text that is UTF-8 as a whole (every valid message) is checked once here instead of
    // string by string; serde_json reads both kinds of input alike, errors included.
    match std::str::from_utf8(text) {
        Ok(text) => parse_from(serde_json::Deserializer::from_str(text)),
        Err(_) => parse_from(serde_json::Deserializer::from_slice(text)),
    }
}

fn parse_from<'de, R: serde_json::de::Read<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
) -> Result<ControlMessage, MessageError> {
    let mut problem = None;
    let parsed = EnvelopeSeed {
        problem: &mut problem,
    }
    .deserialize(&mut deserializer)
    .and_then(|message| deserializer.end().map(|()| message));
    parsed.map_err(|err| classify(err, problem))
}

/// Turns serde_json's error into the rule that was broken. Syntax and end-of-input errors mean
/// the text is not JSON, wherever they happened. A data error is the rule recorded by the
/// envelope visitor, or, when it recorded none, the top-level value was not an object.
fn classify(err: serde_json::Error, problem: Option<MessageError>) -> MessageError {
    if err.is_syntax() || err.is_eof() || err.is_io() {
        return MessageError::NotJson {
            detail: err.to_string(),
        };
    }
    problem.unwrap_or(MessageError::NotAnObject)
}

/// Reads the envelope and records which rule failed, since a generic serde error cannot carry it.
struct EnvelopeSeed<'p> {
    problem: &'p mut Option<MessageError>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = ControlMessage;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl EnvelopeSeed<'_> {
    fn fail<E: de::Error>(self, problem: MessageError) -> E {
        let err = E::custom(&problem);
        *self.problem = Some(problem);
        err
    }

    /// Reads the command's body as `T`; a failure is recorded as `InvalidField` (it is reported
    /// only if it turns out to be a data error, see [`classify`]).
    fn body<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        command: &'static str,
    ) -> Result<T, A::Error> {
        map.next_value::<T>().inspect_err(|err| {
            let detail = if command == RENEW_TOKEN {
                RENEW_TOKEN_SHAPE.to_owned()
            } else {
                err.to_string()
            };
            *self.problem = Some(MessageError::InvalidField { command, detail });
        })
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = ControlMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a single command key")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<ControlMessage, A::Error> {
        let Some(command) = map.next_key::<Command>()? else {
            return Err(self.fail(MessageError::NoCommand));
        };
        let message = match command {
            Command::Accept => ControlMessage::Accept(self.body(&mut map, ACCEPT)?),
            Command::Request => ControlMessage::Request(self.body(&mut map, REQUEST)?),
            Command::Response => ControlMessage::Response(self.body(&mut map, RESPONSE)?),
            Command::RenewToken => ControlMessage::RenewToken(self.body(&mut map, RENEW_TOKEN)?),
            Command::Unknown(command) => {
                map.next_value::<IgnoredAny>()?;
                ControlMessage::Unknown(command)
            }
        };
        if let Some(second) = map.next_key::<String>()? {
            // Read the rest first, so text that is not JSON at all is reported as such.
            map.next_value::<IgnoredAny>()?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            let first = message.command().to_owned();
            return Err(self.fail(MessageError::MultipleCommands { first, second }));
        }
        Ok(message)
    }
}

/// The top-level key: one of the four known commands (read without allocating), or another.
enum Command {
    Accept,
    Request,
    Response,
    RenewToken,
    Unknown(String),
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CommandVisitor)
    }
}

struct CommandVisitor;

impl Visitor<'_> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Command, E> {
        Ok(match name {
            ACCEPT => Command::Accept,
            REQUEST => Command::Request,
            RESPONSE => Command::Response,
            RENEW_TOKEN => Command::RenewToken,
            _ => Command::Unknown(name.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ControlMessage, MessageError> {
        parse_control_message(text.as_bytes())
    }

    #[test]
    fn each_known_command_parses_to_its_variant() {
        let accept = parse(r#"{"accept":{"address":"ws://a?x","id":"i","connectHeaders":{}}}"#);
        assert!(
            matches!(accept, Ok(ControlMessage::Accept(ref a)) if a.id == "i"),
            "{accept:?}"
        );
        let request = parse(r#"{"request":{"address":"ws://a?x"}}"#);
        assert!(
            matches!(request, Ok(ControlMessage::Request(ref r)) if r.is_rendezvous_notice()),
            "{request:?}"
        );
        let response = parse(r#"{"response":{"requestId":"r","statusCode":"204","body":false}}"#);
        assert!(
            matches!(response, Ok(ControlMessage::Response(ref r)) if r.status_code == 204),
            "{response:?}"
        );
        let renew = parse(r#"{"renewToken":{"token":"SharedAccessSignature sr=a&sig=b"}}"#);
        assert!(
            matches!(renew, Ok(ControlMessage::RenewToken(ref t)) if t.token.expose() == "SharedAccessSignature sr=a&sig=b"),
            "{renew:?}"
        );
    }

    #[test]
    fn command_names_the_top_level_key() {
        assert_eq!(parse(r#"{"request":{}}"#).unwrap().command(), "request");
        assert_eq!(
            parse(r#"{"injectFault":{}}"#).unwrap().command(),
            "injectFault"
        );
    }

    #[test]
    fn unknown_command_is_returned_for_logging() {
        assert_eq!(
            parse(r#"{"injectFault":{"delay":"00:00:01","nested":[{"a":null}]}}"#),
            Ok(ControlMessage::Unknown("injectFault".into()))
        );
        assert_eq!(
            parse(r#"{"ping":42}"#),
            Ok(ControlMessage::Unknown("ping".into()))
        );
    }

    #[test]
    fn command_keys_are_case_sensitive() {
        assert_eq!(
            parse(r#"{"Accept":{"address":"a","id":"i"}}"#),
            Ok(ControlMessage::Unknown("Accept".into()))
        );
    }

    #[test]
    fn escaped_slashes_and_whitespace_are_accepted() {
        let message = parse(
            "\r\n {\"accept\" : {\"address\":\"wss:\\/\\/g:443\\/$hc\\/hyco?sb-hc-action=accept\",\"id\":\"a\\/b\"}} \n",
        );
        let Ok(ControlMessage::Accept(accept)) = message else {
            panic!("{message:?}");
        };
        assert_eq!(accept.address, "wss://g:443/$hc/hyco?sb-hc-action=accept");
        assert_eq!(accept.id, "a/b");
    }

    #[test]
    fn unknown_members_inside_a_command_are_ignored() {
        let message = parse(
            r#"{"response":{"requestId":"r","statusCode":200,"body":true,"traceParent":{"x":[1]}}}"#,
        );
        assert!(
            matches!(message, Ok(ControlMessage::Response(_))),
            "{message:?}"
        );
    }

    #[test]
    fn message_over_64_kib_is_too_large() {
        let padding = " ".repeat(MAX_CONTROL_MESSAGE_LEN);
        let text = format!(r#"{{"request":{{}}}}{padding}"#);
        assert_eq!(
            parse(&text),
            Err(MessageError::TooLarge {
                len: text.len(),
                max: 64 * 1024
            })
        );
    }

    #[test]
    fn message_of_exactly_64_kib_is_accepted() {
        let head = r#"{"request":{}}"#;
        let text = format!("{head}{}", " ".repeat(MAX_CONTROL_MESSAGE_LEN - head.len()));
        assert_eq!(text.len(), MAX_CONTROL_MESSAGE_LEN);
        assert!(matches!(parse(&text), Ok(ControlMessage::Request(_))));
    }

    #[test]
    fn malformed_json_is_not_json() {
        for text in [
            "",
            "{",
            r#"{"accept":"#,
            r#"{"accept":{"address":"a","id":"i"}"#,
            r#"{"request":{}} trailing"#,
            r#"{"request":{"method":"GET",}}"#,
            "{'request':{}}",
        ] {
            assert!(
                matches!(parse(text), Err(MessageError::NotJson { .. })),
                "{text:?}: {:?}",
                parse(text)
            );
        }
        assert!(matches!(
            parse_control_message(b"{\"request\":{\"method\":\"\xff\"}}"),
            Err(MessageError::NotJson { .. })
        ));
    }

    /// Valid UTF-8 is read with the `str` reader; the byte reader it replaces gives the same
    /// answer, errors included.
    #[test]
    fn str_and_byte_readers_agree() {
        for text in [
            r#"{"request":{"address":"wss:\/\/g\/x","id":"r","requestTarget":"/h/\u00e9",
                "method":"POST","remoteEndpoint":{"address":"a","port":1},
                "requestHeaders":{"A":"1","a":"2"},"body":true}}"#,
            r#"{"request":{"id":"a","id":"b"}}"#,
            r#"{"request":{"body":"yes"}}"#,
            r#"{"request":{"method":"\ud800"}}"#,
            "{\"request\":{\"method\":\"a\u{1}b\"}}",
            r#"{"response":{"requestId":"r","statusCode":"20","body":false}}"#,
            r#"{"accept":{"id":"i"}}"#,
            r#"{"renewToken":{"token":1}}"#,
            r#"{"x":{},"y":1}"#,
            r#"{"request":{}} x"#,
            "[]",
            "{",
            "",
        ] {
            let by_str = parse_from(serde_json::Deserializer::from_str(text));
            let by_bytes = parse_from(serde_json::Deserializer::from_slice(text.as_bytes()));
            assert_eq!(by_str, by_bytes, "{text}");
            assert_eq!(parse(text), by_bytes, "{text}");
        }
    }

    #[test]
    fn non_object_json_is_not_an_object() {
        for text in ["[]", r#"["accept"]"#, "42", r#""accept""#, "null", "true"] {
            assert_eq!(parse(text), Err(MessageError::NotAnObject), "{text}");
        }
    }

    #[test]
    fn empty_object_has_no_command() {
        assert_eq!(parse("{}"), Err(MessageError::NoCommand));
        assert_eq!(parse(" { } "), Err(MessageError::NoCommand));
    }

    #[test]
    fn two_top_level_keys_are_multiple_commands() {
        assert_eq!(
            parse(r#"{"request":{},"accept":{"address":"a","id":"i"}}"#),
            Err(MessageError::MultipleCommands {
                first: "request".into(),
                second: "accept".into()
            })
        );
        assert_eq!(
            parse(r#"{"injectFault":{},"request":{}}"#),
            Err(MessageError::MultipleCommands {
                first: "injectFault".into(),
                second: "request".into()
            })
        );
        assert_eq!(
            parse(r#"{"request":{},"request":{}}"#),
            Err(MessageError::MultipleCommands {
                first: "request".into(),
                second: "request".into()
            })
        );
    }

    #[test]
    fn syntax_error_after_the_first_command_is_not_json() {
        assert!(matches!(
            parse(r#"{"request":{},"accept":{"#),
            Err(MessageError::NotJson { .. })
        ));
    }

    #[test]
    fn malformed_command_body_is_an_invalid_field_of_that_command() {
        let cases = [
            (
                r#"{"accept":{"id":"i"}}"#,
                ACCEPT,
                "missing field `address`",
            ),
            (r#"{"accept":"wss://a"}"#, ACCEPT, "invalid type"),
            (
                r#"{"accept":{"address":"a","id":"i","connectHeaders":"x"}}"#,
                ACCEPT,
                "invalid type",
            ),
            (r#"{"request":{"body":"yes"}}"#, REQUEST, "invalid type"),
            (
                r#"{"request":{"requestHeaders":{"X-A":["1","2"]}}}"#,
                REQUEST,
                "invalid type",
            ),
            (
                r#"{"response":{"requestId":"r","statusCode":"OK","body":false}}"#,
                RESPONSE,
                "HTTP status code",
            ),
            (
                r#"{"response":{"requestId":"r","statusCode":200}}"#,
                RESPONSE,
                "missing field `body`",
            ),
            (r#"{"renewToken":{}}"#, RENEW_TOKEN, RENEW_TOKEN_SHAPE),
        ];
        for (text, expected_command, detail_part) in cases {
            match parse(text) {
                Err(MessageError::InvalidField { command, detail }) => {
                    assert_eq!(command, expected_command, "{text}");
                    assert!(detail.contains(detail_part), "{text}: {detail}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_renew_token_never_quotes_the_token() {
        let secret = "SharedAccessSignature sr=a&sig=TOPSECRET";
        for text in [
            format!(r#"{{"renewToken":{{"token":["{secret}"]}}}}"#),
            format!(r#"{{"renewToken":{{"token":"{secret}","token":"{secret}"}}}}"#),
            format!(r#"{{"renewToken":"{secret}"}}"#),
        ] {
            let err = parse(&text).unwrap_err();
            assert_eq!(
                err,
                MessageError::InvalidField {
                    command: RENEW_TOKEN,
                    detail: RENEW_TOKEN_SHAPE.into()
                },
                "{text}"
            );
            assert!(!err.to_string().contains("TOPSECRET"));
            assert!(!format!("{err:?}").contains("TOPSECRET"));
        }
    }

    #[test]
    fn errors_display_the_rule_and_the_offending_key() {
        assert_eq!(
            MessageError::TooLarge {
                len: 70000,
                max: 65536
            }
            .to_string(),
            "control message of 70000 bytes exceeds the limit of 65536 bytes"
        );
        assert_eq!(
            MessageError::MultipleCommands {
                first: "request".into(),
                second: "accept".into()
            }
            .to_string(),
            r#"control message has more than one top-level key: "request" and "accept""#
        );
        assert_eq!(
            MessageError::InvalidField {
                command: RESPONSE,
                detail: "missing field `body`".into()
            }
            .to_string(),
            r#"invalid "response" message: missing field `body`"#
        );
        assert_eq!(
            MessageError::NotAnObject.to_string(),
            "control message is not a JSON object"
        );
        assert_eq!(
            MessageError::NoCommand.to_string(),
            "control message is an empty object, naming no command"
        );
    }
}
