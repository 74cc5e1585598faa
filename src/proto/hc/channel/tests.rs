//! The channel rules, each with the specific outcome it gives: frames are built with
//! `push_frame`, decoded by the real [`Decoder`] and fed to [`Inbound`].

use super::*;
use crate::proto::hc::messages::MAX_CONTROL_MESSAGE_LEN;
use crate::proto::ws::encode::push_frame;
use crate::proto::ws::{
    CloseCode, DataKind, Decoder, EncodeError, Event, Limits, OpCode, Role, MAX_HEADER_LEN,
};

const KEY: [u8; 4] = [0xA1, 0xB2, 0xC3, 0xD4];

fn key() -> [u8; 4] {
    KEY
}

/// What the channel made of one event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Message(Vec<u8>),
    Partial,
    Body(Vec<u8>, bool),
    Ping { pong: Vec<u8> },
    Pong,
    Close(Option<CloseCode>, String),
    Failed(ChannelError),
}

/// Frames as the relay sends them to the daemon (unmasked), fed to a client channel.
fn feed(frames: &[(bool, OpCode, &[u8])]) -> (Vec<Got>, Outbound) {
    let mut wire = Vec::new();
    for (fin, opcode, payload) in frames {
        push_frame(&mut wire, *fin, *opcode, payload, None).expect("frame");
    }
    let mut outbound = Outbound::client(key);
    let got = feed_wire(&mut wire, Role::Client, &mut outbound);
    (got, outbound)
}

fn feed_wire(wire: &mut [u8], role: Role, outbound: &mut Outbound) -> Vec<Got> {
    let limits = Limits {
        max_message_size: u64::MAX,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(role, limits);
    let mut inbound = Inbound::new();
    let mut got = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let (used, event) = decoder.decode(&mut wire[at..]).expect("valid frames");
        let event = event.expect("whole frames");
        at += used;
        let mut reply = Vec::new();
        got.push(match inbound.receive(event, outbound, &mut reply) {
            Ok(Received::Message(m)) => Got::Message(m.to_vec()),
            Ok(Received::Partial) => Got::Partial,
            Ok(Received::Body { chunk, message_end }) => Got::Body(chunk.to_vec(), message_end),
            Ok(Received::Ping) => Got::Ping { pong: reply },
            Ok(Received::Pong) => Got::Pong,
            Ok(Received::Close(close)) => Got::Close(close.code, close.reason.to_owned()),
            Err(e) => Got::Failed(e),
        });
    }
    got
}

/// Decodes what a client sent, as the relay does: (opcode-like event, payload, masked).
fn sent_by_client(mut wire: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    assert!(
        wire.len() >= 2 && wire[1] & 0x80 != 0,
        "client frames are masked"
    );
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let (used, event) = decoder.decode(&mut wire[at..]).expect("valid");
        out.push(match event.expect("whole") {
            Event::Data {
                kind,
                payload,
                message_end,
                ..
            } => (format!("{kind} fin={message_end}"), payload.to_vec()),
            Event::Ping(p) => ("ping".to_owned(), p.to_vec()),
            Event::Pong(p) => ("pong".to_owned(), p.to_vec()),
            Event::Close(c) => (
                format!("close {:?}", c.code.map(CloseCode::as_u16)),
                c.reason.as_bytes().to_vec(),
            ),
        });
        at += used;
    }
    out
}

#[test]
fn a_control_message_of_exactly_64_kib_is_whole_in_one_frame_or_in_fragments() {
    let exact = vec![b'a'; MAX_CONTROL_MESSAGE_LEN];
    let (got, _) = feed(&[(true, OpCode::Text, &exact)]);
    assert_eq!(got, vec![Got::Message(exact.clone())]);

    let (first, rest) = exact.split_at(40_000);
    let (got, _) = feed(&[
        (false, OpCode::Text, first),
        (true, OpCode::Continuation, rest),
    ]);
    assert_eq!(got, vec![Got::Partial, Got::Message(exact.clone())]);
}

#[test]
fn one_byte_over_64_kib_fails_with_message_too_large_and_1009() {
    let over = vec![b'a'; MAX_CONTROL_MESSAGE_LEN + 1];
    let (got, _) = feed(&[(true, OpCode::Text, &over)]);
    let err = ChannelError::MessageTooLarge {
        len: MAX_CONTROL_MESSAGE_LEN + 1,
        max: MAX_CONTROL_MESSAGE_LEN,
    };
    assert_eq!(got, vec![Got::Failed(err)]);
    assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn fragments_crossing_64_kib_fail_on_the_crossing_fragment_and_stay_failed() {
    let full = vec![b'a'; MAX_CONTROL_MESSAGE_LEN];
    let err = ChannelError::MessageTooLarge {
        len: MAX_CONTROL_MESSAGE_LEN + 1,
        max: MAX_CONTROL_MESSAGE_LEN,
    };
    let (got, _) = feed(&[
        (false, OpCode::Text, &full),
        (false, OpCode::Continuation, b"x"),
        (true, OpCode::Continuation, b"y"),
        (true, OpCode::Ping, b"p"),
    ]);
    assert_eq!(
        got,
        vec![
            Got::Partial,
            Got::Failed(err),
            Got::Failed(err),
            Got::Failed(err)
        ]
    );
}

#[test]
fn the_limit_counts_the_whole_message_not_each_fragment() {
    let half = vec![b'a'; MAX_CONTROL_MESSAGE_LEN / 2];
    let (got, _) = feed(&[
        (false, OpCode::Text, &half),
        (false, OpCode::Continuation, &half),
        (true, OpCode::Continuation, b"!"),
    ]);
    assert_eq!(
        got[2],
        Got::Failed(ChannelError::MessageTooLarge {
            len: MAX_CONTROL_MESSAGE_LEN + 1,
            max: MAX_CONTROL_MESSAGE_LEN
        })
    );
}

#[test]
fn a_ping_between_fragments_is_answered_and_the_message_still_assembles() {
    let (got, _) = feed(&[
        (false, OpCode::Text, b"{\"accept\":"),
        (true, OpCode::Ping, b"hb"),
        (true, OpCode::Pong, b"unsolicited"),
        (true, OpCode::Continuation, b"{}}"),
        (true, OpCode::Text, b"{}"),
    ]);
    let Got::Ping { pong } = &got[1] else {
        panic!("expected a ping, got {got:?}");
    };
    assert_eq!(
        sent_by_client(pong.clone()),
        vec![("pong".into(), b"hb".to_vec())]
    );
    assert_eq!(got[0], Got::Partial);
    assert_eq!(got[2], Got::Pong);
    assert_eq!(got[3], Got::Message(b"{\"accept\":{}}".to_vec()));
    assert_eq!(
        got[4],
        Got::Message(b"{}".to_vec()),
        "the next message starts empty"
    );
}

#[test]
fn binary_chunks_pass_through_uncollected_and_unlimited() {
    let big = vec![7u8; MAX_CONTROL_MESSAGE_LEN + 10];
    let (got, _) = feed(&[
        (false, OpCode::Binary, &big),
        (true, OpCode::Continuation, b""),
    ]);
    assert_eq!(
        got,
        vec![Got::Body(big, false), Got::Body(Vec::new(), true)]
    );
}

#[test]
fn nothing_is_sent_after_this_side_closed() {
    let mut out = Outbound::client(key);
    let mut wire = Vec::new();
    out.close(&mut wire, CloseCode::NORMAL, "bye")
        .expect("first close");
    assert!(out.close_sent());
    let mut more = Vec::new();
    assert_eq!(
        out.message(&mut more, DataKind::Text, b"{}"),
        Err(ChannelError::SendAfterClose)
    );
    assert_eq!(out.ping(&mut more), Err(ChannelError::SendAfterClose));
    assert_eq!(out.pong(&mut more, b"x"), Err(ChannelError::SendAfterClose));
    assert_eq!(
        out.close(&mut more, CloseCode::GOING_AWAY, ""),
        Err(ChannelError::SendAfterClose)
    );
    let mut buf = vec![0u8; MAX_HEADER_LEN + 3];
    let payload = MAX_HEADER_LEN..MAX_HEADER_LEN + 3;
    assert_eq!(
        out.data_in_place(&mut buf, payload, DataKind::Binary, true),
        Err(ChannelError::SendAfterClose)
    );
    assert_eq!(out.check_open(), Err(ChannelError::SendAfterClose));
    assert!(more.is_empty(), "nothing was written");
    assert_eq!(
        sent_by_client(wire),
        vec![("close Some(1000)".into(), b"bye".to_vec())]
    );
}

#[test]
fn a_ping_after_this_side_closed_goes_unanswered() {
    let mut wire = Vec::new();
    push_frame(&mut wire, true, OpCode::Ping, b"late", None).expect("ping");
    let mut out = Outbound::client(key);
    out.close(&mut Vec::new(), CloseCode::NORMAL, "")
        .expect("close");
    let got = feed_wire(&mut wire, Role::Client, &mut out);
    assert_eq!(got, vec![Got::Ping { pong: Vec::new() }]);
}

#[test]
fn after_the_peers_close_only_the_closing_reply_is_sent() {
    let mut wire = Vec::new();
    crate::proto::ws::encode::push_close(&mut wire, CloseCode::POLICY_VIOLATION, "expired", None)
        .expect("close");
    let mut out = Outbound::client(key);
    let got = feed_wire(&mut wire, Role::Client, &mut out);
    assert_eq!(
        got,
        vec![Got::Close(
            Some(CloseCode::POLICY_VIOLATION),
            "expired".into()
        )]
    );
    assert!(out.close_received());
    let mut more = Vec::new();
    assert_eq!(
        out.message(&mut more, DataKind::Text, b"{}"),
        Err(ChannelError::SendAfterPeerClose)
    );
    assert_eq!(
        out.pong(&mut more, b""),
        Err(ChannelError::SendAfterPeerClose)
    );
    assert!(more.is_empty());
    let code = reply_code(Some(CloseCode::POLICY_VIOLATION));
    out.close(&mut more, code, "").expect("the reply");
    assert_eq!(
        sent_by_client(more),
        vec![("close Some(1008)".into(), Vec::new())]
    );
    assert_eq!(
        out.close(&mut Vec::new(), CloseCode::NORMAL, ""),
        Err(ChannelError::SendAfterClose)
    );
}

#[test]
fn close_codes_echo_the_peer_and_cut_the_reason_at_a_character_boundary() {
    assert_eq!(
        reply_code(Some(CloseCode::GOING_AWAY)),
        CloseCode::GOING_AWAY
    );
    assert_eq!(reply_code(None), CloseCode::NORMAL);
    assert_eq!(
        ChannelError::SendAfterClose.close_code(),
        CloseCode::INTERNAL_ERROR
    );
    let mut out = Outbound::server();
    let mut wire = Vec::new();
    let reason = format!("{}€tail", "r".repeat(121));
    out.close(&mut wire, CloseCode::MESSAGE_TOO_BIG, &reason)
        .expect("close");
    assert_eq!(wire[1] & 0x80, 0, "server frames are unmasked");
    let mut decoder = Decoder::new(Role::Client, Limits::default());
    match decoder.decode(&mut wire).expect("valid").1 {
        Some(Event::Close(close)) => {
            assert_eq!(close.code, Some(CloseCode::MESSAGE_TOO_BIG));
            assert_eq!(close.reason, "r".repeat(121), "the 3-byte € does not fit");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn client_frames_are_masked_with_a_key_per_frame_and_messages_are_sequenced() {
    let mut out = Outbound::client(key);
    let mut wire = Vec::new();
    out.message(&mut wire, DataKind::Text, b"{\"response\":{}}")
        .expect("text");
    assert_eq!(&wire[2..6], KEY, "the key from MaskKeys");
    out.data(&mut wire, DataKind::Binary, b"ab", false)
        .expect("first fragment");
    assert_eq!(
        out.message(&mut wire.clone(), DataKind::Text, b"{}"),
        Err(ChannelError::Encode(EncodeError::MessageKindChanged {
            started: DataKind::Binary,
            requested: DataKind::Text
        })),
        "no text message inside a binary one"
    );
    out.ping(&mut wire)
        .expect("a ping may come between fragments");
    out.data(&mut wire, DataKind::Binary, b"cd", true)
        .expect("last fragment");
    assert_eq!(
        sent_by_client(wire),
        vec![
            ("text fin=true".into(), b"{\"response\":{}}".to_vec()),
            ("binary fin=false".into(), b"ab".to_vec()),
            ("ping".into(), Vec::new()),
            ("binary fin=true".into(), b"cd".to_vec()),
        ]
    );
}

#[test]
fn a_frame_built_in_place_is_the_same_as_one_appended() {
    let mut out = Outbound::client(key);
    let mut buf = vec![0u8; MAX_HEADER_LEN];
    buf.extend_from_slice(b"payload");
    let end = buf.len();
    let frame = out
        .data_in_place(&mut buf, MAX_HEADER_LEN..end, DataKind::Binary, true)
        .expect("in place");
    let mut appended = Vec::new();
    Outbound::client(key)
        .message(&mut appended, DataKind::Binary, b"payload")
        .expect("appended");
    assert_eq!(&buf[frame], &appended[..]);
}

/// The command an [`Inbound`] read from the start of the message that failed it.
fn oversized_command_of(frames: &[(bool, OpCode, &[u8])]) -> Option<&'static str> {
    let mut wire = Vec::new();
    for (fin, opcode, payload) in frames {
        push_frame(&mut wire, *fin, *opcode, payload, None).expect("frame");
    }
    let limits = Limits {
        max_message_size: u64::MAX,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(Role::Client, limits);
    let mut inbound = Inbound::new();
    let mut outbound = Outbound::client(key);
    let mut at = 0;
    while at < wire.len() {
        let (used, event) = decoder.decode(&mut wire[at..]).expect("valid frames");
        at += used;
        let received =
            inbound.receive(event.expect("whole frames"), &mut outbound, &mut Vec::new());
        if let Err(e) = received {
            assert!(matches!(e, ChannelError::MessageTooLarge { .. }), "{e}");
            return inbound.oversized_command();
        }
    }
    panic!("the message was not too large");
}

#[test]
fn an_oversized_message_keeps_the_command_its_first_bytes_name() {
    let mut request = br#"{"request":{"id":"r","requestHeaders":{"X":""#.to_vec();
    request.resize(MAX_CONTROL_MESSAGE_LEN + 1, b'x');
    assert_eq!(
        oversized_command_of(&[(true, OpCode::Text, &request)]),
        Some("request")
    );
    let mut accept = br#" {"accept":{"address":""#.to_vec();
    accept.resize(MAX_CONTROL_MESSAGE_LEN, b'x');
    assert_eq!(
        oversized_command_of(&[
            (false, OpCode::Text, &accept),
            (true, OpCode::Continuation, b"x"),
        ]),
        Some("accept")
    );
    let other = vec![b'a'; MAX_CONTROL_MESSAGE_LEN + 1];
    assert_eq!(oversized_command_of(&[(true, OpCode::Text, &other)]), None);
    assert_eq!(Inbound::new().oversized_command(), None);
}
