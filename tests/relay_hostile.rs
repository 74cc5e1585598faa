//! Hostile WebSocket input on the relay's control channel (RFC 6455 §5.1, §5.5, §8.1;
//! docs/reliability.md "Hostile input"): a listener that breaks a framing rule is failed with the
//! rule's close code, and the other listeners of the same hybrid connection keep working.

use std::time::Duration;

use hycod::io::stream::Stream;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{CloseCode, OpCode};
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf};

mod common;

use common::{run, KEY};

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

fn relay() -> hycod::relay::RelayHandle {
    common::relay(&[
        "--workers",
        "2",
        "--rule",
        &format!("root={KEY}"),
        "--hybrid-connection",
        "hyco",
    ])
}

type Reader = WsReader<OwnedReadHalf<Stream>>;
type Writer = OwnedWriteHalf<Stream>;

/// Registers a listener on `hyco` (protocol §4.1); returns its control-channel halves.
async fn listen(url: &str) -> (Reader, Writer) {
    common::listen(url, &common::token_for("root", KEY, "hyco")).await
}

/// Sends `bytes` raw on a fresh listener's channel and returns the close code the relay
/// answers with; then checks that a listener registered before it still answers pings and
/// that a new one can register.
fn relay_closes_with(bytes: Vec<u8>) -> Option<CloseCode> {
    let relay = relay();
    run(async move {
        let (mut bystander, mut bystander_write) = listen(&relay.url).await;
        let (mut reader, mut write) = listen(&relay.url).await;
        write.write_all(bytes).await.0.expect("send");
        let code = match monoio::time::timeout(Duration::from_secs(10), reader.next_event()).await {
            Ok(Ok(WsEvent::Close { code, .. })) => code,
            other => panic!("expected a close frame, got {other:?}"),
        };
        let (mut newcomer, mut newcomer_write) = listen(&relay.url).await;
        for (reader, write) in [
            (&mut bystander, &mut bystander_write),
            (&mut newcomer, &mut newcomer_write),
        ] {
            let mut ping = Vec::new();
            push_frame(&mut ping, true, OpCode::Ping, b"still here", Some(MASK)).expect("ping");
            write.write_all(ping).await.0.expect("ping");
            match reader.next_event().await.expect("pong") {
                WsEvent::Pong(payload) => assert_eq!(reader.bytes(payload), b"still here"),
                other => panic!("unexpected {other:?}"),
            }
        }
        code
    })
}

#[test]
fn an_unmasked_client_frame_is_closed_with_1002() {
    let mut frame = Vec::new();
    push_frame(&mut frame, true, OpCode::Ping, b"unmasked", None).expect("frame");
    assert_eq!(relay_closes_with(frame), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn an_unmasked_text_message_is_closed_with_1002() {
    let mut frame = Vec::new();
    push_frame(&mut frame, true, OpCode::Text, b"{\"x\":{}}", None).expect("frame");
    assert_eq!(relay_closes_with(frame), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_control_frame_over_125_bytes_is_closed_with_1002() {
    // A masked ping announcing 126 bytes through the 16-bit length form (§5.5: at most 125).
    let mut frame = vec![0x89, 0x80 | 126, 0x00, 126];
    frame.extend_from_slice(&MASK);
    frame.extend_from_slice(&[b'p'; 126]);
    assert_eq!(relay_closes_with(frame), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_fragmented_control_frame_is_closed_with_1002() {
    let mut frame = Vec::new();
    push_frame(&mut frame, false, OpCode::Ping, b"frag", Some(MASK)).expect("frame");
    assert_eq!(relay_closes_with(frame), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn invalid_utf8_text_on_the_control_channel_is_closed_with_1007() {
    let mut frame = Vec::new();
    push_frame(
        &mut frame,
        true,
        OpCode::Text,
        b"{\"a\":\"\xff\xfe\"}",
        Some(MASK),
    )
    .expect("frame");
    assert_eq!(relay_closes_with(frame), Some(CloseCode::INVALID_PAYLOAD));
}

#[test]
fn an_oversized_length_field_is_closed_with_1009() {
    // A masked binary frame announcing 2^62 bytes (64-bit length form).
    let mut frame = vec![0x82, 0x80 | 127, 0x40, 0, 0, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&MASK);
    assert_eq!(relay_closes_with(frame), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn reserved_bits_are_closed_with_1002() {
    let mut frame = vec![0xC1, 0x80];
    frame.extend_from_slice(&MASK);
    assert_eq!(relay_closes_with(frame), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_control_message_over_64_kib_across_fragments_is_closed_with_1009() {
    let mut frames = Vec::new();
    push_frame(
        &mut frames,
        false,
        OpCode::Text,
        &[b' '; 64 * 1024],
        Some(MASK),
    )
    .expect("frame");
    push_frame(&mut frames, true, OpCode::Continuation, b"{}", Some(MASK)).expect("frame");
    assert_eq!(relay_closes_with(frames), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn a_control_message_of_exactly_64_kib_keeps_the_channel() {
    let relay = relay();
    run(async move {
        let (mut reader, mut write) = listen(&relay.url).await;
        // 64 KiB in two fragments with a ping between them: collected whole (then ignored as an
        // unknown command), the ping answered in the middle.
        let mut json = br#"{"unknown":{}}"#.to_vec();
        json.resize(64 * 1024, b' ');
        let (first, rest) = json.split_at(1000);
        let mut frames = Vec::new();
        push_frame(&mut frames, false, OpCode::Text, first, Some(MASK)).expect("frame");
        push_frame(&mut frames, true, OpCode::Ping, b"mid", Some(MASK)).expect("ping");
        push_frame(&mut frames, true, OpCode::Continuation, rest, Some(MASK)).expect("frame");
        push_frame(&mut frames, true, OpCode::Ping, b"after", Some(MASK)).expect("ping");
        write.write_all(frames).await.0.expect("send");
        for expected in [&b"mid"[..], b"after"] {
            match monoio::time::timeout(Duration::from_secs(10), reader.next_event()).await {
                Ok(Ok(WsEvent::Pong(payload))) => assert_eq!(reader.bytes(payload), expected),
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    })
}
