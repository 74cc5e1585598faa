//! Target `control_json`: arbitrary bytes as a control-channel text message (protocol §4.2).
//!
//! Oracles: no panic; a message that parses is written back with its `to_json` and parsed
//! again to the same value (the writer and the reader agree, protocol §4.3–§4.6).

use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};

/// Parse, and on success round-trip.
pub fn check(data: &[u8]) {
    let Ok(message) = parse_control_message(data) else {
        return;
    };
    let text = match &message {
        ControlMessage::Accept(accept) => accept.to_json(),
        ControlMessage::Request(request) => request.to_json(),
        ControlMessage::Response(response) => response.to_json(),
        ControlMessage::RenewToken(renew) => renew.to_json().expose().to_owned(),
        ControlMessage::Unknown(_) => return,
    };
    let again = parse_control_message(text.as_bytes());
    assert_eq!(again.as_ref(), Ok(&message), "round trip through {text}");
}
