//! The frames of a whole answer, sans-I/O: a `response` JSON text message and, when it has a
//! body, exactly one binary message (protocol §4.2, §6.2), built by the channel's
//! [`Outbound`] (masked as a client must, RFC 6455 §5.3).
//!
//! On the control channel such a pair is queued as one unit so nothing can come between the
//! `response` and its body (protocol §4.2).

use super::response_text::ResponseText;
use crate::proto::hc::channel::{ChannelError, Outbound};
use crate::proto::ws::DataKind;

/// Appends `response` as one text frame, then `body` as one binary frame when
/// `response` announces one (an absent body then counts as empty).
pub(crate) fn push_answer(
    out: &mut Outbound,
    dst: &mut Vec<u8>,
    response: &ResponseText,
    body: &[u8],
) -> Result<(), ChannelError> {
    out.message(dst, DataKind::Text, response.text().as_bytes())?;
    if response.body() {
        out.message(dst, DataKind::Binary, body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hc::control_message::{parse_control_message, ControlMessage};
    use crate::proto::hc::messages::Response;
    use crate::proto::ws::{Decoder, Event, Limits, Role};

    fn client() -> Outbound {
        Outbound::client(|| [1, 2, 3, 4])
    }

    fn response(body: bool) -> Response {
        Response {
            request_id: "r1".into(),
            status_code: 200,
            status_description: Some("OK".into()),
            response_headers: None,
            body,
        }
    }

    /// Decodes `wire` as the relay does; returns (kind, payload, masked) per frame.
    fn frames(mut wire: Vec<u8>) -> Vec<(DataKind, Vec<u8>)> {
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let mut out = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let (used, event) = decoder.decode(&mut wire[at..]).unwrap();
            match event {
                Some(Event::Data {
                    kind,
                    payload,
                    message_end: true,
                    ..
                }) => out.push((kind, payload.to_vec())),
                other => panic!("unexpected {other:?}"),
            }
            at += used;
        }
        out
    }

    #[test]
    fn an_answer_with_a_body_is_text_then_one_binary_message() {
        let mut wire = Vec::new();
        push_answer(
            &mut client(),
            &mut wire,
            &ResponseText::of(&response(true)),
            b"hello",
        )
        .unwrap();
        let got = frames(wire);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, DataKind::Text);
        match parse_control_message(&got[0].1).unwrap() {
            ControlMessage::Response(r) => assert_eq!(r, response(true)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(got[1], (DataKind::Binary, b"hello".to_vec()));
    }

    #[test]
    fn an_empty_body_is_still_one_binary_message_when_announced() {
        let mut wire = Vec::new();
        push_answer(
            &mut client(),
            &mut wire,
            &ResponseText::of(&response(true)),
            b"",
        )
        .unwrap();
        let got = frames(wire);
        assert_eq!(got[1], (DataKind::Binary, Vec::new()));
    }

    #[test]
    fn an_answer_without_a_body_is_only_the_text_message() {
        let mut wire = Vec::new();
        push_answer(
            &mut client(),
            &mut wire,
            &ResponseText::of(&response(false)),
            b"ignored",
        )
        .unwrap();
        let got = frames(wire);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, DataKind::Text);
    }

    #[test]
    fn frames_are_masked() {
        let mut wire = Vec::new();
        push_answer(
            &mut client(),
            &mut wire,
            &ResponseText::of(&response(false)),
            b"",
        )
        .unwrap();
        assert_eq!(wire[1] & 0x80, 0x80, "MASK bit set");
    }
}
