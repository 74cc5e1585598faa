//! The pump over loopback sockets: the test plays the relay (server role: sends unmasked
//! frames, insists on masked ones) and the TCP target.

use std::cell::Cell;
use std::rc::Rc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::{TcpListener, TcpStream};

use super::*;
use crate::proto::ws::encode::{push_close, push_frame};
use crate::proto::ws::{DataKind, OpCode, WsError};

fn run<F: std::future::Future>(f: F) -> F::Output {
    crate::runtime::workers::block_on(f).expect("runtime")
}

fn test_mask() -> Option<[u8; 4]> {
    Some(fastrand::u32(..).to_ne_bytes())
}

/// A connected loopback pair: (the end given to the pump, the end the test drives).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (connected, accepted) = monoio::join!(TcpStream::connect(addr), listener.accept());
    (connected.expect("connect"), accepted.expect("accept").0)
}

/// The relay's end of the rendezvous, as the test drives it.
struct Relay {
    reader: WsReader<OwnedReadHalf<TcpStream>>,
    writer: OwnedWriteHalf<TcpStream>,
}

impl Relay {
    async fn send(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mut frame = Vec::new();
        push_frame(&mut frame, fin, opcode, payload, None).expect("frame");
        self.writer.write_all(frame).await.0.expect("relay send");
    }

    async fn close(&mut self) {
        let mut frame = Vec::new();
        push_close(&mut frame, CloseCode::NORMAL, "Shutdown", None).expect("close");
        self.writer.write_all(frame).await.0.expect("relay close");
    }

    /// The next whole data message.
    async fn message(&mut self) -> (DataKind, Vec<u8>) {
        let mut out = Vec::new();
        loop {
            match self.reader.next_event().await.expect("event") {
                WsEvent::Data {
                    kind,
                    payload,
                    message_end,
                    ..
                } => {
                    out.extend_from_slice(self.reader.bytes(payload));
                    if message_end {
                        return (kind, out);
                    }
                }
                other => panic!("expected data, got {other:?}"),
            }
        }
    }

    async fn expect_close(&mut self) -> Option<CloseCode> {
        match self.reader.next_event().await.expect("close") {
            WsEvent::Close { code, .. } => code,
            other => panic!("expected close, got {other:?}"),
        }
    }
}

/// Bytes forwarded as `on_bytes` reported them: [to_target, to_relay].
type Tally = Rc<[Cell<u64>; 2]>;

/// Starts a pump; returns the relay's end, the target's end, the pump task and its tally.
async fn start() -> (
    Relay,
    TcpStream,
    monoio::task::JoinHandle<PumpReport>,
    Tally,
) {
    let (relay_pumped, relay_side) = pair().await;
    let (target_pumped, target_side) = pair().await;
    let tally: Tally = Rc::new([Cell::new(0), Cell::new(0)]);
    let counted = tally.clone();
    let task = monoio::spawn(async move {
        pump(
            relay_pumped,
            &[],
            target_pumped,
            test_mask,
            move |direction, n| {
                let cell = &counted[usize::from(direction == Direction::ToRelay)];
                cell.set(cell.get() + u64::try_from(n).expect("fits"));
            },
        )
        .await
    });
    let (read, writer) = relay_side.into_split();
    let reader = WsReader::new(read, Role::Server, Limits::default(), &[], CHUNK);
    (Relay { reader, writer }, target_side, task, tally)
}

async fn read_exact(tcp: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (read, buf) = tcp.read(Vec::with_capacity(n - out.len())).await;
        assert!(
            read.expect("target read") > 0,
            "EOF after {} of {n} bytes",
            out.len()
        );
        out.extend_from_slice(&buf);
    }
    out
}

async fn read_eof(tcp: &mut TcpStream) {
    let (read, _) = tcp.read(Vec::with_capacity(16)).await;
    assert_eq!(read.expect("target read"), 0, "expected EOF");
}

#[test]
fn target_fin_becomes_close_1000_and_relay_data_keeps_flowing() {
    run(async {
        let (mut relay, mut target, task, tally) = start().await;
        relay.send(true, OpCode::Binary, b"hello").await;
        relay.send(false, OpCode::Text, b"wo").await;
        relay.send(true, OpCode::Continuation, b"rld").await;
        relay.send(true, OpCode::Binary, b"").await;
        assert_eq!(read_exact(&mut target, 10).await, b"helloworld");
        target
            .write_all(b"reply".to_vec())
            .await
            .0
            .expect("target write");
        assert_eq!(relay.message().await, (DataKind::Binary, b"reply".to_vec()));

        target.shutdown().await.expect("target FIN");
        assert_eq!(relay.expect_close().await, Some(CloseCode::NORMAL));
        relay.send(true, OpCode::Binary, b"late").await;
        assert_eq!(read_exact(&mut target, 4).await, b"late");
        relay.close().await;
        read_eof(&mut target).await;

        let report = task.await;
        assert!(
            matches!(
                report.end,
                PumpEnd::Closed {
                    first: Side::Target
                }
            ),
            "{}",
            report.end
        );
        assert_eq!((report.to_target, report.to_relay), (14, 5));
        assert_eq!((tally[0].get(), tally[1].get()), (14, 5));
    });
}

#[test]
fn relay_close_half_closes_the_target_and_target_data_keeps_flowing() {
    run(async {
        let (mut relay, mut target, task, _) = start().await;
        relay.send(true, OpCode::Binary, b"request").await;
        relay.close().await;
        assert_eq!(read_exact(&mut target, 7).await, b"request");
        read_eof(&mut target).await;
        target
            .write_all(b"answer after EOF".to_vec())
            .await
            .0
            .expect("write");
        assert_eq!(relay.message().await.1, b"answer after EOF");
        drop(target);
        assert_eq!(relay.expect_close().await, Some(CloseCode::NORMAL));
        let report = task.await;
        assert!(
            matches!(report.end, PumpEnd::Closed { first: Side::Relay }),
            "{}",
            report.end
        );
        assert_eq!((report.to_target, report.to_relay), (7, 16));
    });
}

#[test]
fn pings_from_the_relay_get_masked_pongs() {
    run(async {
        let (mut relay, target, task, _) = start().await;
        relay.send(true, OpCode::Ping, b"are you there").await;
        // The relay end decodes as a server: an unmasked pong would be a protocol error.
        match relay.reader.next_event().await.expect("pong") {
            WsEvent::Pong(p) => assert_eq!(relay.reader.bytes(p), b"are you there"),
            other => panic!("expected pong, got {other:?}"),
        }
        drop(target);
        assert_eq!(relay.expect_close().await, Some(CloseCode::NORMAL));
        relay.close().await;
        assert!(matches!(
            task.await.end,
            PumpEnd::Closed {
                first: Side::Target
            }
        ));
    });
}

#[test]
fn each_target_read_becomes_one_binary_message_of_at_most_a_chunk() {
    run(async {
        let (mut relay, mut target, task, _) = start().await;
        // Over three chunks: at least four messages, none larger than a chunk.
        let total = 3 * CHUNK + CHUNK / 8;
        let sent: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let writer = monoio::spawn(async move {
            target.write_all(sent).await.0.expect("write");
            target.shutdown().await.expect("FIN");
            target
        });
        let mut received = Vec::new();
        let mut messages = 0;
        while received.len() < total {
            let (kind, message) = relay.message().await;
            assert_eq!(kind, DataKind::Binary);
            assert!(
                !message.is_empty() && message.len() <= CHUNK,
                "{} bytes",
                message.len()
            );
            received.extend_from_slice(&message);
            messages += 1;
        }
        assert!(messages >= 4, "{messages} messages for {total} bytes");
        assert!(received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8));
        assert_eq!(relay.expect_close().await, Some(CloseCode::NORMAL));
        relay.close().await;
        drop(writer.await);
        assert_eq!(task.await.to_relay, u64::try_from(total).expect("fits"));
    });
}

#[test]
fn a_protocol_error_from_the_relay_is_answered_with_its_close_code() {
    run(async {
        let (mut relay, mut target, task, _) = start().await;
        // A server must not mask (RFC 6455 §5.1).
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            true,
            OpCode::Binary,
            b"masked",
            Some([1, 2, 3, 4]),
        )
        .expect("frame");
        relay.writer.write_all(frame).await.0.expect("send");
        assert_eq!(relay.expect_close().await, Some(CloseCode::PROTOCOL_ERROR));
        let report = task.await;
        assert!(
            matches!(
                report.end,
                PumpEnd::RelayRead(ReadError::Protocol(WsError::MaskedServerFrame))
            ),
            "{}",
            report.end
        );
        read_eof(&mut target).await;
    });
}

#[test]
fn a_relay_that_vanishes_ends_the_pump_and_the_target_connection() {
    run(async {
        let (relay, mut target, task, _) = start().await;
        drop(relay);
        let report = task.await;
        assert!(
            matches!(report.end, PumpEnd::RelayRead(ReadError::Eof)),
            "{}",
            report.end
        );
        read_eof(&mut target).await;
    });
}

#[test]
fn a_target_reset_closes_the_relay_with_1011() {
    run(async {
        let (mut relay, mut target, task, _) = start().await;
        relay.send(true, OpCode::Binary, &[7u8; 100]).await;
        assert_eq!(read_exact(&mut target, 1).await, [7]);
        // Closing with unread bytes in the receive queue makes the kernel send a reset.
        drop(target);
        assert_eq!(relay.expect_close().await, Some(CloseCode::INTERNAL_ERROR));
        let report = task.await;
        assert!(
            matches!(report.end, PumpEnd::TargetRead(_)),
            "{}",
            report.end
        );
    });
}

#[test]
fn leftover_bytes_from_the_handshake_are_forwarded_first() {
    run(async {
        let (relay_pumped, relay_side) = pair().await;
        let (target_pumped, mut target) = pair().await;
        let mut leftover = Vec::new();
        push_frame(&mut leftover, true, OpCode::Binary, b"early", None).expect("frame");
        let task = monoio::spawn(async move {
            pump(relay_pumped, &leftover, target_pumped, test_mask, |_, _| {}).await
        });
        assert_eq!(read_exact(&mut target, 5).await, b"early");
        drop(relay_side);
        assert!(matches!(task.await.end, PumpEnd::RelayRead(ReadError::Eof)));
    });
}

#[test]
fn end_descriptions_say_which_side_did_what() {
    assert_eq!(
        PumpEnd::Closed { first: Side::Relay }.to_string(),
        "closed by both sides, relay first"
    );
    assert_eq!(
        PumpEnd::TargetRead(io::Error::from(io::ErrorKind::ConnectionReset)).to_string(),
        "reading from the target failed: connection reset"
    );
    assert_eq!(
        PumpEnd::WriteStalled {
            side: Side::Target,
            after: Duration::from_secs(60)
        }
        .to_string(),
        "a write to the target made no progress for 60000 ms (write stall timeout)"
    );
    assert_eq!(Direction::ToTarget.label(), "to_target");
    assert_eq!(Direction::ToRelay.label(), "to_relay");
}

#[test]
fn a_target_that_stops_reading_ends_the_pump_after_the_write_stall_timeout() {
    run(async {
        let stall = Duration::from_millis(200);
        let (relay_pumped, relay_side) = pair().await;
        let (target_pumped, _target_never_reads) = pair().await;
        let settings = PumpSettings {
            write_stall_timeout: Some(stall),
            ..PumpSettings::default()
        };
        let task = monoio::spawn(async move {
            pump_with(
                relay_pumped,
                &[],
                target_pumped,
                test_mask,
                |_, _| {},
                &settings,
            )
            .await
        });
        let (read, mut writer) = relay_side.into_split();
        // The relay sends until every buffer on the way to the silent target is full.
        monoio::spawn(async move {
            let mut frame = Vec::new();
            push_frame(&mut frame, true, OpCode::Binary, &[7u8; 64 * 1024], None).expect("frame");
            loop {
                let (sent, back) = writer.write_all(frame).await;
                frame = back;
                if sent.is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let report = task.await;
        assert!(
            matches!(
                report.end,
                PumpEnd::WriteStalled {
                    side: Side::Target,
                    after
                } if after == stall
            ),
            "{}",
            report.end
        );
        assert!(started.elapsed() >= stall);
        assert!(report.to_target > 0, "bytes flowed before the stall");
        let mut reader = WsReader::new(read, Role::Server, Limits::default(), &[], CHUNK);
        match reader.next_event().await.expect("close") {
            WsEvent::Close { code, reason } => {
                assert_eq!(code, Some(CloseCode::INTERNAL_ERROR));
                assert_eq!(reader.text(reason), "target stopped reading");
            }
            other => panic!("expected close, got {other:?}"),
        }
    });
}

#[test]
fn nothing_reaches_the_relay_after_the_pumps_own_close() {
    run(async {
        let (pumped, relay_side) = pair().await;
        let (pumped_read, pumped_write) = pumped.into_split();
        let writer = RelayWriter::new(pumped_write, test_mask);
        writer
            .close_after_failure(CloseCode::GOING_AWAY, "idle timeout")
            .await;
        assert!(writer.close_sent());
        writer
            .send_control(|encoder, out, mask| encoder.ping(out, b"late", mask))
            .await
            .expect("a ping after the close is dropped, not an error");
        let mut buf = vec![0u8; MAX_HEADER_LEN];
        buf.extend_from_slice(b"late data");
        let (sent, _) = writer
            .send_data(buf, MAX_HEADER_LEN..MAX_HEADER_LEN + 9)
            .await;
        sent.expect("data after the close is dropped, not an error");
        writer
            .close_after_failure(CloseCode::INTERNAL_ERROR, "again")
            .await;
        drop((writer, pumped_read));

        let (read, _) = relay_side.into_split();
        let mut reader = WsReader::new(read, Role::Server, Limits::default(), &[], CHUNK);
        match reader.next_event().await.expect("the close frame") {
            WsEvent::Close { code, reason } => {
                assert_eq!(code, Some(CloseCode::GOING_AWAY));
                assert_eq!(reader.text(reason), "idle timeout");
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
        let after = reader.next_event().await;
        assert!(
            matches!(after, Err(ReadError::Eof)),
            "expected the end of the stream, got {after:?}"
        );
    });
}

/// Runs a pump with `settings` between fresh loopback pairs; returns the relay's end (as a
/// server-role reader and a write half), the target's end and the pump's task.
async fn start_with(
    settings: PumpSettings,
) -> (
    WsReader<OwnedReadHalf<TcpStream>>,
    OwnedWriteHalf<TcpStream>,
    TcpStream,
    monoio::task::JoinHandle<PumpReport>,
) {
    let (relay_pumped, relay_side) = pair().await;
    let (target_pumped, target) = pair().await;
    let task = monoio::spawn(async move {
        pump_with(
            relay_pumped,
            &[],
            target_pumped,
            test_mask,
            |_, _| {},
            &settings,
        )
        .await
    });
    let (read, write) = relay_side.into_split();
    let reader = WsReader::new(read, Role::Server, Limits::default(), &[], CHUNK);
    (reader, write, target, task)
}

#[test]
fn a_stream_without_traffic_ends_after_the_idle_timeout_with_1001() {
    run(async {
        let idle = Duration::from_millis(150);
        let settings = PumpSettings {
            idle_timeout: Some(idle),
            write_stall_timeout: Some(Duration::from_secs(60)),
            ..PumpSettings::default()
        };
        let started = Instant::now();
        let (mut reader, _write, _target, task) = start_with(settings).await;
        match reader.next_event().await.expect("close") {
            WsEvent::Close { code, reason } => {
                assert_eq!(code, Some(CloseCode::GOING_AWAY));
                assert_eq!(reader.text(reason), "idle timeout");
            }
            other => panic!("expected close, got {other:?}"),
        }
        let report = task.await;
        assert!(
            matches!(report.end, PumpEnd::Idle(after) if after == idle),
            "{}",
            report.end
        );
        assert!(started.elapsed() >= idle);
    });
}

#[test]
fn a_relay_that_answers_no_ping_ends_the_stream_after_the_next_interval() {
    run(async {
        let interval = Duration::from_millis(100);
        let settings = PumpSettings {
            ping_interval: Some(interval),
            idle_timeout: Some(Duration::from_secs(60)),
            write_stall_timeout: Some(Duration::from_secs(60)),
            ..PumpSettings::default()
        };
        let started = Instant::now();
        let (mut reader, _write, _target, task) = start_with(settings).await;
        assert!(matches!(
            reader.next_event().await.expect("ping"),
            WsEvent::Ping(_)
        ));
        assert!(started.elapsed() >= interval, "pinged after the interval");
        match reader.next_event().await.expect("close") {
            WsEvent::Close { code, reason } => {
                assert_eq!(code, Some(CloseCode::GOING_AWAY));
                assert_eq!(reader.text(reason), "keep-alive timeout");
            }
            other => panic!("expected close, got {other:?}"),
        }
        let report = task.await;
        assert!(
            matches!(report.end, PumpEnd::KeepaliveTimeout(after) if after == interval),
            "{}",
            report.end
        );
        assert!(started.elapsed() >= interval * 2);
    });
}

#[test]
fn a_relay_that_answers_pings_keeps_the_stream() {
    run(async {
        let interval = Duration::from_millis(50);
        let settings = PumpSettings {
            ping_interval: Some(interval),
            ..PumpSettings::default()
        };
        let (mut reader, mut write, mut target, task) = start_with(settings).await;
        for _ in 0..4 {
            let WsEvent::Ping(payload) = reader.next_event().await.expect("ping") else {
                panic!("expected a ping");
            };
            let mut pong = Vec::new();
            push_frame(&mut pong, true, OpCode::Pong, reader.bytes(payload), None).expect("pong");
            write.write_all(pong).await.0.expect("pong sent");
        }
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Binary, b"still here", None).expect("frame");
        write.write_all(frame).await.0.expect("data sent");
        assert_eq!(read_exact(&mut target, 10).await, b"still here");
        drop(write);
        drop(reader);
        assert!(matches!(task.await.end, PumpEnd::RelayRead(_)));
    });
}
