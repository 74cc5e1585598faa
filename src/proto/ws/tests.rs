//! Codec-level tests: the decoder over whole frame streams fed in every possible way, the
//! encoder's frames decoded back, and one test per decoder rule (RFC 6455 §5, §7.4, §8.1).

use std::ops::Range;

use bytes::BytesMut;

use super::close::{CloseCode, CloseFrame};
use super::decode::{Decoder, Event, MAX_CONTROL_FRAME_LEN};
use super::encode::{encode_close, encode_frame_in_place, encode_ping, encode_pong, Encoder};
use super::error::{EncodeError, WsError};
use super::frame::{encode_frame_header, DataKind, Limits, OpCode, Role, MAX_HEADER_LEN};
use super::mask::apply_mask_reference;

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// One frame on the wire, masked with the reference masker when `mask` is given.
fn frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let payload_len = u64::try_from(payload.len()).expect("fits");
    let n = encode_frame_header(&mut header, fin, opcode, mask, payload_len).expect("encodable");
    let mut out = header[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask_reference(&mut out[start..], key, 0);
    }
    out
}

/// A frame as a client sends it (masked), for a [`Role::Server`] decoder.
fn from_client(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some(KEY))
}

/// A frame as a server sends it (unmasked), for a [`Role::Client`] decoder.
fn from_server(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, None)
}

/// An owned copy of an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Data {
        kind: DataKind,
        payload: Vec<u8>,
        frame_end: bool,
        message_end: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl Owned {
    fn from_event(event: Event<'_>) -> Self {
        match event {
            Event::Data {
                kind,
                payload,
                frame_end,
                message_end,
            } => Self::Data {
                kind,
                payload: payload.to_vec(),
                frame_end,
                message_end,
            },
            Event::Ping(payload) => Self::Ping(payload.to_vec()),
            Event::Pong(payload) => Self::Pong(payload.to_vec()),
            Event::Close(close) => {
                Self::Close(close.code.map(CloseCode::as_u16), close.reason.to_string())
            }
        }
    }
}

fn data(kind: DataKind, payload: &[u8], message_end: bool) -> Owned {
    Owned::Data {
        kind,
        payload: payload.to_vec(),
        frame_end: true,
        message_end,
    }
}

/// Simulates a read buffer: appends each piece, decodes until the decoder asks for more,
/// drops what was consumed. Checks that each payload ends exactly at `consumed`.
fn feed(decoder: &mut Decoder, pieces: &[&[u8]]) -> Result<Vec<Owned>, WsError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            let base = buffer.as_ptr() as usize;
            let (consumed, event) = decoder.decode(&mut buffer)?;
            let Some(event) = event else {
                buffer.drain(..consumed);
                break;
            };
            let payload_start = match event {
                Event::Data { payload, .. } | Event::Ping(payload) | Event::Pong(payload) => {
                    Some((payload.as_ptr() as usize - base, payload.len()))
                }
                Event::Close(_) => None,
            };
            if let Some((start, len)) = payload_start {
                assert_eq!(start + len, consumed, "payload ends at `consumed`");
            }
            events.push(Owned::from_event(event));
            buffer.drain(..consumed);
        }
    }
    assert!(
        buffer.len() < MAX_CONTROL_FRAME_LEN,
        "decoder left {} bytes",
        buffer.len()
    );
    Ok(events)
}

fn decode_whole(role: Role, stream: &[u8]) -> Result<Vec<Owned>, WsError> {
    feed(&mut Decoder::new(role, Limits::default()), &[stream])
}

/// Merges the data chunks of each frame into one event, so differently chunked deliveries of
/// the same stream compare equal.
fn merge_chunks(events: Vec<Owned>) -> Vec<Owned> {
    let mut merged: Vec<Owned> = Vec::new();
    let mut open: Option<(DataKind, Vec<u8>)> = None;
    for event in events {
        match event {
            Owned::Data {
                kind,
                payload,
                frame_end,
                message_end,
            } => {
                let (_, bytes) = open.get_or_insert_with(|| (kind, Vec::new()));
                bytes.extend_from_slice(&payload);
                if frame_end {
                    let (kind, payload) = open.take().expect("open frame");
                    merged.push(Owned::Data {
                        kind,
                        payload,
                        frame_end,
                        message_end,
                    });
                }
            }
            other => merged.push(other),
        }
    }
    assert!(open.is_none(), "stream ended inside a frame");
    merged
}

/// A multi-frame client stream: a text message in three fragments with a code point split
/// between fragments and a ping in between, a 300-byte binary frame (16-bit length), an empty
/// binary message, a pong and a close with a reason.
fn sample_stream() -> (Vec<u8>, Vec<Owned>) {
    let text = "héllo €𝄞 wörld".as_bytes();
    let (a, rest) = text.split_at(8); // inside "€"
    let (b, c) = rest.split_at(4); // inside "𝄞"
    let binary: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
    let mut close_payload = 1001u16.to_be_bytes().to_vec();
    close_payload.extend_from_slice("bye ✓".as_bytes());
    let frames = [
        from_client(false, OpCode::Text, a),
        from_client(true, OpCode::Ping, b"are you there"),
        from_client(false, OpCode::Continuation, b),
        from_client(true, OpCode::Continuation, c),
        from_client(true, OpCode::Binary, &binary),
        from_client(true, OpCode::Binary, b""),
        from_client(true, OpCode::Pong, b""),
        from_client(true, OpCode::Close, &close_payload),
    ];
    let expected = vec![
        data(DataKind::Text, a, false),
        Owned::Ping(b"are you there".to_vec()),
        data(DataKind::Text, b, false),
        data(DataKind::Text, c, true),
        data(DataKind::Binary, &binary, true),
        data(DataKind::Binary, b"", true),
        Owned::Pong(Vec::new()),
        Owned::Close(Some(1001), "bye ✓".to_string()),
    ];
    (frames.concat(), expected)
}

#[test]
fn a_whole_stream_decodes_in_order() {
    let (stream, expected) = sample_stream();
    assert_eq!(decode_whole(Role::Server, &stream), Ok(expected));
}

#[test]
fn every_split_point_gives_the_same_events() {
    let (stream, expected) = sample_stream();
    for cut in 0..=stream.len() {
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let events = feed(&mut decoder, &[&stream[..cut], &stream[cut..]]).expect("valid");
        assert_eq!(merge_chunks(events), expected, "cut {cut}");
    }
}

#[test]
fn byte_by_byte_feeding_gives_the_same_events() {
    let (stream, expected) = sample_stream();
    let pieces: Vec<&[u8]> = stream.chunks(1).collect();
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let events = feed(&mut decoder, &pieces).expect("valid");
    assert_eq!(merge_chunks(events), expected);
}

#[test]
fn random_piece_sizes_give_the_same_events() {
    let (stream, expected) = sample_stream();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let mut pieces = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.usize(0..=rest.len().min(40)));
            pieces.push(piece);
            rest = tail;
        }
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let events = feed(&mut decoder, &pieces).expect("valid");
        assert_eq!(merge_chunks(events), expected);
    }
}

#[test]
fn all_length_forms_decode_for_both_roles() {
    let mut rng = fastrand::Rng::with_seed(1);
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
        let mut payload = vec![0u8; len];
        rng.fill(&mut payload);
        for (role, wire) in [
            (Role::Server, from_client(true, OpCode::Binary, &payload)),
            (Role::Client, from_server(true, OpCode::Binary, &payload)),
        ] {
            assert_eq!(
                decode_whole(role, &wire),
                Ok(vec![data(DataKind::Binary, &payload, true)]),
                "len {len} {role:?}"
            );
        }
    }
}

#[test]
fn a_16_mib_frame_is_delivered_in_chunks_as_bytes_arrive() {
    let len = 16 << 20;
    let mut payload = vec![0u8; len];
    fastrand::Rng::with_seed(3).fill(&mut payload);
    let wire = from_client(true, OpCode::Binary, &payload);
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut buffer = vec![0u8; 65537];
    let mut received = Vec::with_capacity(len);
    let mut chunks = 0;
    // An odd buffer size exercises every mask phase at chunk starts.
    let mut pos = 0;
    let mut filled = 0;
    loop {
        let take = (buffer.len() - filled).min(wire.len() - pos);
        buffer[filled..filled + take].copy_from_slice(&wire[pos..pos + take]);
        pos += take;
        filled += take;
        let (consumed, event) = decoder.decode(&mut buffer[..filled]).expect("valid");
        match event {
            Some(Event::Data {
                payload: chunk,
                frame_end,
                message_end,
                ..
            }) => {
                received.extend_from_slice(chunk);
                chunks += 1;
                assert_eq!(frame_end, message_end);
                buffer.copy_within(consumed..filled, 0);
                filled -= consumed;
                if frame_end {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(chunks >= len / 65537, "{chunks} chunks");
    assert!(received == payload, "payload differs");
}

#[test]
fn a_data_header_without_payload_bytes_is_consumed_without_an_event() {
    let wire = from_server(true, OpCode::Binary, b"abc");
    let mut decoder = Decoder::new(Role::Client, Limits::default());
    let mut header = wire[..2].to_vec();
    assert_eq!(decoder.decode(&mut header), Ok((2, None)));
    let mut rest = wire[2..].to_vec();
    let (consumed, event) = decoder.decode(&mut rest).expect("valid");
    assert_eq!(consumed, 3);
    assert_eq!(
        event.map(Owned::from_event),
        Some(data(DataKind::Binary, b"abc", true))
    );
}

#[test]
fn a_control_frame_is_only_delivered_whole() {
    let wire = from_client(true, OpCode::Ping, b"0123456789");
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    for cut in 0..wire.len() {
        let mut partial = wire[..cut].to_vec();
        assert_eq!(decoder.decode(&mut partial), Ok((0, None)), "cut {cut}");
    }
    let mut whole = wire.clone();
    assert_eq!(
        decoder.decode(&mut whole),
        Ok((wire.len(), Some(Event::Ping(b"0123456789"))))
    );
}

#[test]
fn continuation_frames_carry_the_message_kind() {
    let stream = [
        from_server(false, OpCode::Binary, b"ab"),
        from_server(false, OpCode::Continuation, b"cd"),
        from_server(true, OpCode::Continuation, b""),
    ]
    .concat();
    let mut decoder = Decoder::new(Role::Client, Limits::default());
    let mut buf = stream.clone();
    let (n, _) = decoder.decode(&mut buf).expect("valid");
    assert_eq!(decoder.message_in_progress(), Some(DataKind::Binary));
    let events = feed(&mut decoder, &[&stream[n..]]).expect("valid");
    assert_eq!(
        events,
        [
            data(DataKind::Binary, b"cd", false),
            data(DataKind::Binary, b"", true)
        ]
    );
    assert_eq!(decoder.message_in_progress(), None);
}

#[test]
fn text_split_inside_code_points_across_chunks_is_accepted() {
    let text = "€𝄞ü".as_bytes();
    let wire = from_client(true, OpCode::Text, text);
    let pieces: Vec<&[u8]> = wire.chunks(1).collect();
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let events = feed(&mut decoder, &pieces).expect("valid");
    assert!(events.len() > 1, "delivered in several chunks");
    assert_eq!(merge_chunks(events), [data(DataKind::Text, text, true)]);
}

#[test]
fn close_frames_decode_with_and_without_code() {
    assert_eq!(
        decode_whole(Role::Client, &from_server(true, OpCode::Close, b"")),
        Ok(vec![Owned::Close(None, String::new())])
    );
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"app reason");
    let mut decoder = Decoder::new(Role::Client, Limits::default());
    let events = feed(&mut decoder, &[&from_server(true, OpCode::Close, &payload)]);
    assert_eq!(
        events,
        Ok(vec![Owned::Close(Some(4000), "app reason".to_string())])
    );
    assert!(decoder.close_received());
}

// --- one test per decoder rule -------------------------------------------------------------

fn decode_error(role: Role, limits: Limits, stream: &[u8]) -> WsError {
    feed(&mut Decoder::new(role, limits), &[stream]).expect_err("must be rejected")
}

fn server_error(stream: &[u8]) -> WsError {
    decode_error(Role::Server, Limits::default(), stream)
}

#[test]
fn rule_reserved_bits() {
    let mut wire = from_client(true, OpCode::Binary, b"x");
    wire[0] |= 0x40;
    assert_eq!(server_error(&wire), WsError::ReservedBitsSet { rsv: 0b100 });
}

#[test]
fn rule_unknown_opcode() {
    let mut wire = from_client(true, OpCode::Binary, b"x");
    wire[0] = 0x80 | 0x3;
    assert_eq!(server_error(&wire), WsError::UnknownOpcode { opcode: 0x3 });
}

#[test]
fn rule_control_frame_fragmented() {
    let wire = from_client(false, OpCode::Ping, b"x");
    assert_eq!(
        server_error(&wire),
        WsError::FragmentedControlFrame {
            opcode: OpCode::Ping
        }
    );
}

#[test]
fn rule_control_frame_too_large() {
    let wire = from_client(true, OpCode::Pong, &[0; 126]);
    assert_eq!(
        server_error(&wire),
        WsError::ControlFrameTooLarge {
            opcode: OpCode::Pong
        }
    );
}

#[test]
fn rule_continuation_without_message() {
    let wire = from_client(true, OpCode::Continuation, b"x");
    assert_eq!(server_error(&wire), WsError::ContinuationWithoutMessage);
}

#[test]
fn rule_new_data_frame_while_message_in_progress() {
    let wire = [
        from_client(false, OpCode::Text, b"a"),
        from_client(true, OpCode::Binary, b"b"),
    ]
    .concat();
    assert_eq!(
        server_error(&wire),
        WsError::MessageInProgress {
            started: DataKind::Text,
            opcode: OpCode::Binary
        }
    );
}

#[test]
fn rule_non_minimal_length() {
    let wire = [0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4];
    assert_eq!(
        server_error(&wire),
        WsError::NonMinimalLength {
            len: 5,
            length_bytes: 2
        }
    );
    let wire = [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4];
    assert_eq!(
        server_error(&wire),
        WsError::NonMinimalLength {
            len: 256,
            length_bytes: 8
        }
    );
}

#[test]
fn rule_length_msb_set() {
    let wire = [0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(server_error(&wire), WsError::LengthMsbSet);
}

#[test]
fn rule_frame_too_large() {
    let limits = Limits {
        max_frame_size: 100,
        max_message_size: 1000,
    };
    let ok = from_client(true, OpCode::Binary, &[0; 100]);
    assert!(feed(&mut Decoder::new(Role::Server, limits), &[&ok]).is_ok());
    let wire = from_client(true, OpCode::Binary, &[0; 101]);
    assert_eq!(
        decode_error(Role::Server, limits, &wire[..8]),
        WsError::FrameTooLarge { len: 101, max: 100 },
        "rejected from the header alone"
    );
}

#[test]
fn rule_message_too_large_across_fragments() {
    let limits = Limits {
        max_frame_size: 100,
        max_message_size: 250,
    };
    let wire = [
        from_client(false, OpCode::Binary, &[0; 100]),
        from_client(true, OpCode::Ping, b""),
        from_client(false, OpCode::Continuation, &[0; 100]),
        from_client(true, OpCode::Continuation, &[0; 51]),
    ]
    .concat();
    assert_eq!(
        decode_error(Role::Server, limits, &wire),
        WsError::MessageTooLarge { len: 251, max: 250 }
    );
    let fits = [
        from_client(false, OpCode::Binary, &[0; 100]),
        from_client(true, OpCode::Continuation, &[0; 100]),
        from_client(true, OpCode::Binary, &[0; 100]),
    ]
    .concat();
    assert!(
        feed(&mut Decoder::new(Role::Server, limits), &[&fits]).is_ok(),
        "the count restarts with each message"
    );
}

#[test]
fn rule_invalid_utf8_in_text() {
    let wire = [
        from_client(false, OpCode::Text, b"ok "),
        from_client(true, OpCode::Continuation, &[b'x', 0xFF]),
    ]
    .concat();
    assert_eq!(server_error(&wire), WsError::InvalidUtf8 { offset: 4 });
}

#[test]
fn rule_invalid_utf8_split_between_fragments() {
    let wire = [
        from_client(false, OpCode::Text, &[b'a', 0xE2, 0x82]),
        from_client(true, OpCode::Continuation, b"Z"),
    ]
    .concat();
    assert_eq!(server_error(&wire), WsError::InvalidUtf8 { offset: 1 });
}

#[test]
fn rule_incomplete_utf8_at_message_end() {
    let wire = [
        from_client(false, OpCode::Text, b"a"),
        from_client(true, OpCode::Continuation, &[0xE2, 0x82]),
    ]
    .concat();
    assert_eq!(server_error(&wire), WsError::IncompleteUtf8);
}

#[test]
fn binary_messages_are_not_utf8_checked() {
    let wire = from_client(true, OpCode::Binary, &[0xFF, 0xE2]);
    assert_eq!(
        decode_whole(Role::Server, &wire),
        Ok(vec![data(DataKind::Binary, &[0xFF, 0xE2], true)])
    );
}

#[test]
fn rule_close_payload_of_one_byte() {
    let wire = from_client(true, OpCode::Close, &[3]);
    assert_eq!(server_error(&wire), WsError::ClosePayloadTooShort);
}

#[test]
fn rule_invalid_close_code() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let wire = from_client(true, OpCode::Close, &code.to_be_bytes());
        assert_eq!(
            server_error(&wire),
            WsError::InvalidCloseCode { code },
            "{code}"
        );
    }
    for code in [1000u16, 1011, 1014, 3000, 4999] {
        let wire = from_client(true, OpCode::Close, &code.to_be_bytes());
        assert_eq!(
            decode_whole(Role::Server, &wire),
            Ok(vec![Owned::Close(Some(code), String::new())]),
            "{code}"
        );
    }
}

#[test]
fn rule_close_reason_not_utf8() {
    let wire = from_client(true, OpCode::Close, &[0x03, 0xE8, 0xC3]);
    assert_eq!(server_error(&wire), WsError::InvalidCloseReason);
}

#[test]
fn rule_frame_after_close() {
    let wire = [
        from_client(true, OpCode::Close, &[0x03, 0xE8]),
        from_client(true, OpCode::Binary, b"late"),
    ]
    .concat();
    assert_eq!(server_error(&wire), WsError::FrameAfterClose);
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let close = from_client(true, OpCode::Close, b"");
    assert!(feed(&mut decoder, &[&close]).is_ok());
    assert_eq!(decoder.decode(&mut []), Ok((0, None)), "no bytes, no error");
    assert_eq!(
        decoder.decode(&mut [0x89]),
        Err(WsError::FrameAfterClose),
        "even one byte of a later frame is an error"
    );
}

#[test]
fn rule_server_rejects_unmasked_frames() {
    let wire = from_server(true, OpCode::Binary, b"x");
    assert_eq!(server_error(&wire), WsError::UnmaskedClientFrame);
    let ping = from_server(true, OpCode::Ping, b"");
    assert_eq!(server_error(&ping), WsError::UnmaskedClientFrame);
}

#[test]
fn rule_client_rejects_masked_frames() {
    let wire = from_client(true, OpCode::Binary, b"x");
    assert_eq!(
        decode_error(Role::Client, Limits::default(), &wire),
        WsError::MaskedServerFrame
    );
}

#[test]
fn errors_are_sticky() {
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut bad = from_server(true, OpCode::Binary, b"x");
    assert_eq!(decoder.decode(&mut bad), Err(WsError::UnmaskedClientFrame));
    let mut good = from_client(true, OpCode::Binary, b"x");
    assert_eq!(decoder.decode(&mut good), Err(WsError::UnmaskedClientFrame));
}

// --- encoder -------------------------------------------------------------------------------

#[test]
fn in_place_frames_decode_back_for_every_length_form() {
    let mut rng = fastrand::Rng::with_seed(9);
    for len in [0usize, 125, 126, 65535, 65536, 300_000] {
        for (sender, receiver, mask) in [
            (Role::Client, Role::Server, Some(KEY)),
            (Role::Server, Role::Client, None),
        ] {
            let mut payload = vec![0u8; len];
            rng.fill(&mut payload);
            let mut buf = vec![0u8; MAX_HEADER_LEN];
            buf.extend_from_slice(&payload);
            let mut encoder = Encoder::new(sender);
            let payload_range = MAX_HEADER_LEN..buf.len();
            let range = encoder
                .data_in_place(&mut buf, payload_range, DataKind::Binary, true, mask)
                .expect("encodable");
            assert_eq!(range.end, buf.len());
            assert_eq!(
                decode_whole(receiver, &buf[range]),
                Ok(vec![data(DataKind::Binary, &payload, true)]),
                "len {len} {sender:?}"
            );
        }
    }
}

#[test]
fn in_place_uses_only_the_headroom_it_needs() {
    let mut buf = vec![0xEE; 20];
    let range = encode_frame_in_place(&mut buf, 10..15, true, OpCode::Text, None).expect("fits");
    assert_eq!(range, 8..15);
    assert_eq!(buf[..8], [0xEE; 8], "bytes before the header untouched");
    assert_eq!(buf[8..10], [0x81, 5]);
}

#[test]
fn in_place_rejects_too_little_headroom_without_touching_the_buffer() {
    let mut buf = vec![7u8; 10];
    let before = buf.clone();
    assert_eq!(
        encode_frame_in_place(&mut buf, 5..10, true, OpCode::Binary, Some(KEY)),
        Err(EncodeError::HeadroomTooSmall {
            needed: 6,
            available: 5
        })
    );
    assert_eq!(buf, before);
    assert_eq!(
        encode_frame_in_place(&mut buf, 8..11, true, OpCode::Binary, None),
        Err(EncodeError::PayloadOutOfBounds {
            start: 8,
            end: 11,
            buf_len: 10
        })
    );
    assert_eq!(
        encode_frame_in_place(
            &mut buf,
            Range { start: 8, end: 7 },
            true,
            OpCode::Binary,
            None
        ),
        Err(EncodeError::PayloadOutOfBounds {
            start: 8,
            end: 7,
            buf_len: 10
        })
    );
}

#[test]
fn encoder_sequences_fragments_and_keeps_the_kind() {
    let mut encoder = Encoder::new(Role::Server);
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encoder
        .data_header(&mut header, DataKind::Text, false, 1, None)
        .expect("first");
    assert_eq!(header[..n], [0x01, 1]);
    assert_eq!(encoder.message_in_progress(), Some(DataKind::Text));
    assert_eq!(
        encoder.data_header(&mut header, DataKind::Binary, true, 1, None),
        Err(EncodeError::MessageKindChanged {
            started: DataKind::Text,
            requested: DataKind::Binary
        })
    );
    let n = encoder
        .data_header(&mut header, DataKind::Text, true, 0, None)
        .expect("last");
    assert_eq!(header[..n], [0x80, 0], "final continuation");
    assert_eq!(encoder.message_in_progress(), None);
    let n = encoder
        .data_header(&mut header, DataKind::Binary, true, 2, None)
        .expect("next message");
    assert_eq!(header[..n], [0x82, 2]);
}

#[test]
fn encoder_enforces_the_role_masking_rule() {
    let mut header = [0u8; MAX_HEADER_LEN];
    let mut client = Encoder::new(Role::Client);
    assert_eq!(
        client.data_header(&mut header, DataKind::Binary, true, 0, None),
        Err(EncodeError::MaskRequired)
    );
    assert_eq!(
        client.ping(&mut Vec::new(), b"", None),
        Err(EncodeError::MaskRequired)
    );
    let mut server = Encoder::new(Role::Server);
    assert_eq!(
        server.data_in_place(&mut [0; 20], 14..20, DataKind::Binary, true, Some(KEY)),
        Err(EncodeError::MaskForbidden)
    );
    assert_eq!(
        server.pong(&mut Vec::new(), b"", Some(KEY)),
        Err(EncodeError::MaskForbidden)
    );
}

#[test]
fn encoder_refuses_to_send_after_close() {
    let mut encoder = Encoder::new(Role::Server);
    let mut out = Vec::new();
    encoder
        .close(
            &mut out,
            &CloseFrame::new(CloseCode::NORMAL, "Shutdown"),
            None,
        )
        .expect("close");
    assert!(encoder.close_sent());
    let len = out.len();
    assert_eq!(
        encoder.ping(&mut out, b"", None),
        Err(EncodeError::SendAfterClose)
    );
    assert_eq!(
        encoder.data_header(&mut [0; MAX_HEADER_LEN], DataKind::Binary, true, 0, None),
        Err(EncodeError::SendAfterClose)
    );
    assert_eq!(
        encoder.close(&mut out, &CloseFrame::new(CloseCode::NORMAL, ""), None),
        Err(EncodeError::SendAfterClose)
    );
    assert_eq!(out.len(), len, "nothing written after close");
}

#[test]
fn control_frames_encode_into_vec_and_bytes_mut_and_decode_back() {
    let mut vec_out = Vec::new();
    encode_ping(&mut vec_out, b"hb", Some(KEY)).expect("ping");
    encode_pong(&mut vec_out, b"hb", Some(KEY)).expect("pong");
    let close = CloseFrame::new(CloseCode::GOING_AWAY, "Shutdown");
    encode_close(&mut vec_out, &close, Some(KEY)).expect("close");
    let mut bytes_out = BytesMut::new();
    encode_ping(&mut bytes_out, b"hb", Some(KEY)).expect("ping");
    encode_pong(&mut bytes_out, b"hb", Some(KEY)).expect("pong");
    encode_close(&mut bytes_out, &close, Some(KEY)).expect("close");
    assert_eq!(vec_out, bytes_out.as_ref());
    assert_eq!(
        decode_whole(Role::Server, &vec_out),
        Ok(vec![
            Owned::Ping(b"hb".to_vec()),
            Owned::Pong(b"hb".to_vec()),
            Owned::Close(Some(1001), "Shutdown".to_string()),
        ])
    );
    let mut unmasked = Vec::new();
    encode_close(&mut unmasked, &CloseFrame::new(CloseCode::NORMAL, ""), None).expect("close");
    assert_eq!(unmasked, [0x88, 2, 0x03, 0xE8]);
}

#[test]
fn control_frames_over_125_bytes_are_refused() {
    let mut out = Vec::new();
    assert_eq!(
        encode_ping(&mut out, &[0; 126], None),
        Err(EncodeError::ControlPayloadTooLarge {
            opcode: OpCode::Ping,
            len: 126
        })
    );
    assert!(encode_pong(&mut out, &[0; 125], None).is_ok());
    assert_eq!(out.len(), 127);
}

#[test]
fn a_full_destination_is_reported() {
    let mut storage = [0u8; 3];
    let mut dst: &mut [u8] = &mut storage;
    assert_eq!(
        encode_ping(&mut dst, b"ab", None),
        Err(EncodeError::DestinationTooSmall {
            needed: 4,
            available: 3
        })
    );
}

#[test]
fn a_streamed_frame_header_with_payload_masked_in_pieces_decodes() {
    let mut payload = vec![0u8; 200_001];
    fastrand::Rng::with_seed(11).fill(&mut payload);
    let mut encoder = Encoder::new(Role::Client);
    let mut header = [0u8; MAX_HEADER_LEN];
    let payload_len = u64::try_from(payload.len()).expect("fits");
    let n = encoder
        .data_header(&mut header, DataKind::Binary, true, payload_len, Some(KEY))
        .expect("header");
    let mut wire = header[..n].to_vec();
    let mut offset = 0;
    for piece in payload.chunks(4099) {
        let mut piece = piece.to_vec();
        super::mask::apply_mask(&mut piece, KEY, offset);
        offset += piece.len();
        wire.extend_from_slice(&piece);
    }
    assert_eq!(
        decode_whole(Role::Server, &wire),
        Ok(vec![data(DataKind::Binary, &payload, true)])
    );
}

#[test]
fn frame_payload_remaining_counts_down_to_the_frame_end() {
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    assert_eq!(decoder.frame_payload_remaining(), 0, "before any frame");
    let mut stream = from_client(true, OpCode::Binary, &[9u8; 300]);
    // Header (2 + 2 length + 4 mask bytes) and the first 100 payload bytes.
    let (consumed, event) = decoder.decode(&mut stream[..108]).expect("decode");
    assert!(matches!(event, Some(Event::Data { payload, .. }) if payload.len() == 100));
    assert_eq!(consumed, 108);
    assert_eq!(decoder.frame_payload_remaining(), 200);
    let (_, event) = decoder.decode(&mut stream[108..]).expect("decode");
    assert!(matches!(
        event,
        Some(Event::Data {
            frame_end: true,
            ..
        })
    ));
    assert_eq!(decoder.frame_payload_remaining(), 0, "between frames");
}

#[test]
fn pushed_frames_decode_back_in_the_peer_role_with_the_reason_cut_at_123_bytes() {
    use super::encode::{push_close, push_frame};
    let mut wire = Vec::new();
    push_frame(
        &mut wire,
        true,
        OpCode::Text,
        b"{\"a\":1}",
        Some([1, 2, 3, 4]),
    )
    .expect("text");
    // 122 ASCII bytes then a 2-byte character: the cut falls before the character.
    let reason = format!("{}é{}", "x".repeat(122), "y".repeat(100));
    push_close(
        &mut wire,
        CloseCode::POLICY_VIOLATION,
        &reason,
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
        }) => assert_eq!(payload, b"{\"a\":1}"),
        other => panic!("unexpected {other:?}"),
    }
    let (_, event) = decoder.decode(&mut wire[used..]).expect("decode");
    match event {
        Some(Event::Close(close)) => {
            assert_eq!(close.code, Some(CloseCode::POLICY_VIOLATION));
            assert_eq!(close.reason, "x".repeat(122));
        }
        other => panic!("unexpected {other:?}"),
    }
}
