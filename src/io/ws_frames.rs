//! Building outgoing WebSocket frames into byte vectors (RFC 6455 §5.2), for messages that are
//! assembled before they are written: control-channel JSON, small bodies, close frames.

use crate::proto::ws::close::CloseFrame;
use crate::proto::ws::encode::encode_close;
use crate::proto::ws::frame::FrameHeader;
use crate::proto::ws::{EncodeError, OpCode, MAX_HEADER_LEN};

/// Appends one frame (header + payload, masked with `mask` when given) to `dst`.
pub fn push_frame(
    dst: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len: crate::proto::ws::encode::len_u64(payload.len()),
    };
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let len = header.encode(&mut bytes)?;
    dst.extend_from_slice(&bytes[..len]);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(key) = mask {
        crate::proto::ws::mask::apply_mask(&mut dst[start..], key, 0);
    }
    Ok(())
}

/// Appends a close frame with `code` and `reason` (cut to fit 123 bytes at a char boundary).
pub fn push_close(
    dst: &mut Vec<u8>,
    code: crate::proto::ws::CloseCode,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    let mut end = reason
        .len()
        .min(crate::proto::ws::close::MAX_CLOSE_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    encode_close(dst, &CloseFrame::new(code, &reason[..end]), mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::{CloseCode, Decoder, Event, Limits, Role};

    #[test]
    fn frames_decode_back_in_the_peer_role() {
        let mut wire = Vec::new();
        push_frame(
            &mut wire,
            true,
            OpCode::Text,
            b"{\"a\":1}",
            Some([1, 2, 3, 4]),
        )
        .expect("text");
        push_close(
            &mut wire,
            CloseCode::POLICY_VIOLATION,
            &"x".repeat(300),
            Some([9, 9, 9, 9]),
        )
        .expect("close");
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let (used, event) = decoder.decode(&mut wire).expect("decode");
        match event {
            Some(Event::Data {
                payload,
                message_end: true,
                ..
            }) => {
                assert_eq!(payload, b"{\"a\":1}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let (_, event) = decoder.decode(&mut wire[used..]).expect("decode");
        match event {
            Some(Event::Close(close)) => {
                assert_eq!(close.code, Some(CloseCode::POLICY_VIOLATION));
                assert_eq!(close.reason.len(), 123);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
