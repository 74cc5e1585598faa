//! Target `ws_decoder`: arbitrary bytes into [`Decoder`] in both roles (RFC 6455 §5), fed at
//! fuzzer-chosen split points.
//!
//! Oracles: no panic; `consumed` never exceeds the buffer and every payload lies inside the
//! consumed prefix, ending exactly at `consumed` (the decoder's contract); after an error every
//! later call returns the same error; and feeding the bytes in pieces gives the same frames,
//! control events and outcome as feeding them at once (a differential check of the streaming
//! state: mask phase, UTF-8 state, message length).

use hycod::proto::ws::{CloseCode, DataKind, Decoder, Event, Limits, Role, WsError};

use super::pieces::{piece_lengths, split_control};

/// What a decoding run observed, with data chunks merged per frame so runs fed in different
/// pieces compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Frame {
        kind: DataKind,
        payload: Vec<u8>,
        message_end: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<CloseCode>, Vec<u8>),
    /// The payload of a frame still incomplete at the end of the input.
    Partial(Vec<u8>),
    Failed(WsError),
}

/// Control byte: bit 0 role (server/client), bit 1 small limits; the second byte seeds the
/// split pattern; the rest is the wire.
pub fn check(data: &[u8]) {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let Some((split_seed, wire)) = split_control(rest) else {
        return;
    };
    let role = if control & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = if control & 2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_frame_size: 64,
            max_message_size: 100,
        }
    };
    let whole = run(role, limits, wire, &[wire.len()]);
    let split = run(role, limits, wire, &piece_lengths(wire.len(), split_seed));
    assert_eq!(whole, split, "one-shot and split decoding differ");
}

fn run(role: Role, limits: Limits, wire: &[u8], pieces: &[usize]) -> Vec<Seen> {
    let mut decoder = Decoder::new(role, limits);
    let mut seen = Vec::new();
    let mut frame = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    for &len in pieces {
        pending.extend_from_slice(&wire[offset..offset + len]);
        offset += len;
        if let Err(err) = drain(&mut decoder, &mut pending, &mut seen, &mut frame) {
            assert_eq!(
                decoder.decode(&mut pending),
                Err(err),
                "an error must repeat"
            );
            // The close code mapping must exist for every error.
            let _ = err.close_code();
            seen.push(Seen::Failed(err));
            return seen;
        }
    }
    if !frame.is_empty() {
        seen.push(Seen::Partial(frame));
    }
    seen
}

/// Decodes every event in `pending`, dropping consumed bytes.
fn drain(
    decoder: &mut Decoder,
    pending: &mut Vec<u8>,
    seen: &mut Vec<Seen>,
    frame: &mut Vec<u8>,
) -> Result<(), WsError> {
    loop {
        let len = pending.len();
        let base = pending.as_ptr() as usize;
        let (consumed, event) = decoder.decode(pending)?;
        assert!(consumed <= len, "consumed {consumed} of {len} bytes");
        let Some(event) = event else {
            pending.drain(..consumed);
            return Ok(());
        };
        let payload: &[u8] = match &event {
            Event::Data { payload, .. } | Event::Ping(payload) | Event::Pong(payload) => payload,
            Event::Close(close) => close.reason.as_bytes(),
        };
        // Payloads end exactly at `consumed`; a close reason lies inside its payload.
        let start = (payload.as_ptr() as usize).wrapping_sub(base);
        let end = start.wrapping_add(payload.len());
        let inside = if matches!(event, Event::Close(_)) {
            start <= end && end <= consumed
        } else {
            start <= end && end == consumed
        };
        assert!(
            inside || payload.is_empty() && matches!(event, Event::Close(_)),
            "payload at {start}..{end} is not inside the consumed {consumed} bytes"
        );
        match event {
            Event::Data {
                kind,
                payload,
                frame_end,
                message_end,
            } => {
                frame.extend_from_slice(payload);
                if frame_end {
                    seen.push(Seen::Frame {
                        kind,
                        payload: std::mem::take(frame),
                        message_end,
                    });
                } else {
                    assert!(!message_end, "message end inside a frame");
                }
            }
            Event::Ping(payload) => seen.push(Seen::Ping(payload.to_vec())),
            Event::Pong(payload) => seen.push(Seen::Pong(payload.to_vec())),
            Event::Close(close) => {
                assert!(decoder.close_received());
                seen.push(Seen::Close(close.code, close.reason.as_bytes().to_vec()));
            }
        }
        assert!(consumed > 0, "an event without progress");
        pending.drain(..consumed);
    }
}
