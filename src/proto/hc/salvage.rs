//! What can still be answered of an `accept` or `request` the listener could not read
//! (a member of the wrong type, a missing required member): the rendezvous address to reject
//! an accept through, or the id to answer a request with. The .NET contract marks almost every
//! member optional (`ListenerCommand.cs`), so a service message the typed parser refuses is
//! rare; when it happens the sender must get an answer instead of a timeout.
//!
//! Used only on the error path; it reads the text into a JSON tree once. A message too long to
//! be read at all still names its command in its first bytes ([`command_at_start`]).

use serde_json::{Map, Value};

use super::control_message::{ACCEPT, REQUEST};

/// The parts of an unreadable command that can carry an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Salvaged {
    /// [`ACCEPT`] or [`REQUEST`].
    pub command: &'static str,
    /// The command's `address`, when it is a string.
    pub address: Option<String>,
    /// The command's `id`, when it is a string.
    pub id: Option<String>,
}

/// Reads `address` and `id` out of a text message whose single command is `accept` or
/// `request`; `None` for anything else (not JSON, another command, not an object).
pub(crate) fn salvage(text: &[u8]) -> Option<Salvaged> {
    let envelope: Map<String, Value> = serde_json::from_slice(text).ok()?;
    let mut commands = envelope.iter();
    let (name, body) = commands.next()?;
    if commands.next().is_some() {
        return None;
    }
    let command = match name.as_str() {
        ACCEPT => ACCEPT,
        REQUEST => REQUEST,
        _ => return None,
    };
    let body = body.as_object()?;
    let text_member = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(Salvaged {
        command,
        address: text_member("address"),
        id: text_member("id"),
    })
}

/// The command the first bytes of a control message name (`{"accept"`, `{"request"`, JSON
/// whitespace allowed), for a message over the size limit that is never parsed; `None` for
/// anything else.
pub(crate) fn command_at_start(start: &[u8]) -> Option<&'static str> {
    let rest = start.trim_ascii_start().strip_prefix(b"{")?;
    let name = rest.trim_ascii_start().strip_prefix(b"\"")?;
    [ACCEPT, REQUEST].into_iter().find(|command| {
        name.strip_prefix(command.as_bytes())
            .is_some_and(|after| after.first() == Some(&b'"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_id_are_read_from_an_unreadable_accept_or_request() {
        assert_eq!(
            salvage(br#"{"accept":{"address":"wss://g/$hc/h?sb-hc-action=accept","id":7}}"#),
            Some(Salvaged {
                command: ACCEPT,
                address: Some("wss://g/$hc/h?sb-hc-action=accept".into()),
                id: None,
            })
        );
        assert_eq!(
            salvage(br#"{"request":{"id":"r2","method":["GET"]}}"#),
            Some(Salvaged {
                command: REQUEST,
                address: None,
                id: Some("r2".into()),
            })
        );
    }

    #[test]
    fn other_texts_salvage_nothing() {
        for text in [
            &br#"not json"#[..],
            br#"{"response":{"requestId":"r"}}"#,
            br#"{"accept":"x"}"#,
            br#"{"accept":{},"request":{}}"#,
            br#"[]"#,
        ] {
            assert_eq!(salvage(text), None, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn the_command_of_a_message_is_read_from_its_first_bytes() {
        assert_eq!(command_at_start(br#"{"request":{"id":"r"#), Some(REQUEST));
        assert_eq!(command_at_start(b" \n{ \"accept\" :{"), Some(ACCEPT));
        assert_eq!(command_at_start(br#"{"requests":{"#), None);
        assert_eq!(command_at_start(br#"{"response":{"#), None);
        assert_eq!(command_at_start(br#"{"request"#), None);
        assert_eq!(command_at_start(b"not json"), None);
        assert_eq!(command_at_start(b""), None);
    }
}
