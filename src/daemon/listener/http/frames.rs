//! The frames of a whole answer, sans-I/O: a `response` JSON text message and, when it has a
//! body, exactly one binary message (protocol §4.2, §6.2), masked as a client must (RFC 6455
//! §5.3) with a fresh key per frame from the caller.
//!
//! On the control channel such a pair is queued as one unit so nothing can come between the
//! `response` and its body (protocol §4.2).

use crate::proto::hc::messages::Response;
use crate::proto::ws::encode::push_frame;
use crate::proto::ws::{EncodeError, OpCode};

/// Appends `response` as one text frame, then `body` as one binary frame when
/// `response.body` is set (an absent body then counts as empty). Each frame is masked with a
/// key drawn from `next_key`.
pub fn push_answer(
    dst: &mut Vec<u8>,
    response: &Response,
    body: &[u8],
    mut next_key: impl FnMut() -> Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    push_frame(
        dst,
        true,
        OpCode::Text,
        response.to_json().as_bytes(),
        next_key(),
    )?;
    if response.body {
        push_frame(dst, true, OpCode::Binary, body, next_key())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hc::control_message::{parse_control_message, ControlMessage};
    use crate::proto::ws::{DataKind, Decoder, Event, Limits, Role};

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
        let mut keys = [[1, 2, 3, 4], [5, 6, 7, 8]].into_iter();
        let mut wire = Vec::new();
        push_answer(&mut wire, &response(true), b"hello", || keys.next()).unwrap();
        assert!(keys.next().is_none(), "one key per frame");
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
        push_answer(&mut wire, &response(true), b"", || Some([9, 9, 9, 9])).unwrap();
        let got = frames(wire);
        assert_eq!(got[1], (DataKind::Binary, Vec::new()));
    }

    #[test]
    fn an_answer_without_a_body_is_only_the_text_message() {
        let mut wire = Vec::new();
        push_answer(&mut wire, &response(false), b"ignored", || {
            Some([9, 9, 9, 9])
        })
        .unwrap();
        let got = frames(wire);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, DataKind::Text);
    }

    #[test]
    fn frames_are_masked() {
        let mut wire = Vec::new();
        push_answer(&mut wire, &response(false), b"", || Some([1, 1, 1, 1])).unwrap();
        assert_eq!(wire[1] & 0x80, 0x80, "MASK bit set");
    }
}
