//! The read side of a request rendezvous (protocol §6.3, §6.4): `request` text messages, and each
//! request's body as one binary message of any size — read into memory up to a limit (so the
//! target gets a `Content-Length`), or streamed to the target in chunks as it arrives.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf};

use super::body_buffer::{BodyBuffer, MIN_CHUNK};
use super::write_within;
use crate::daemon::listener::upstream::{chunked_end, ChunkPrefix};
use crate::io::stream::Stream;
use crate::io::ws_reader::{ReadError, WsEvent, WsReader, DEFAULT_READ_BUFFER};
use crate::proto::hc::channel::{ChannelError, Inbound, Outbound, Received};
use crate::proto::hc::control_message::MessageError;
use crate::proto::hc::received_request::{parse_daemon_message, DaemonMessage, ReceivedRequest};
use crate::proto::ws::{DataKind, Limits, Role};

/// What arrived on a rendezvous between requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A full `request`; when it has a body, the body message comes next.
    Request(ReceivedRequest),
    /// A ping arrived: these are the frames of its pong, to write (empty once this side has
    /// closed; RFC 6455 §5.5.2).
    Pong(Vec<u8>),
    /// The relay closed the rendezvous.
    Closed,
}

/// Why a rendezvous cannot be read any further.
#[derive(Debug)]
pub(crate) enum RendezvousError {
    /// The socket failed, the relay broke the WebSocket rules, or the connection ended.
    Read(ReadError),
    /// Nothing arrived for this long.
    Idle { after: Duration },
    /// A text message is not a valid control message; `text` is kept to answer or count it.
    Unreadable { error: MessageError, text: Vec<u8> },
    /// A channel rule was broken (a text message over 64 KiB).
    Channel(ChannelError),
    /// A control message other than `request` arrived; `text` is kept to count it.
    NotARequest { command: String, text: Vec<u8> },
    /// A binary message arrived where a `request` was expected.
    UnexpectedBinary,
    /// A text message arrived inside a request body.
    UnexpectedText,
    /// The relay closed the rendezvous in the middle of a request body.
    ClosedInBody,
}

impl fmt::Display for RendezvousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "rendezvous read failed: {e}"),
            Self::Idle { after } => write!(f, "rendezvous idle for {after:?}"),
            Self::Unreadable { error, .. } => write!(f, "rendezvous message invalid: {error}"),
            Self::Channel(e) => write!(f, "rendezvous failed: {e}"),
            Self::NotARequest { command, .. } => {
                write!(
                    f,
                    "rendezvous carried a {command:?} message instead of a request"
                )
            }
            Self::UnexpectedBinary => {
                f.write_str("rendezvous carried a binary message where a request was expected")
            }
            Self::UnexpectedText => {
                f.write_str("rendezvous carried a text message inside a request body")
            }
            Self::ClosedInBody => f.write_str("rendezvous closed in the middle of a request body"),
        }
    }
}

impl std::error::Error for RendezvousError {}

impl RendezvousError {
    /// The text message that was not a usable `request`, for answering and counting it.
    pub(crate) fn unusable_text(&self) -> Option<&[u8]> {
        match self {
            Self::Unreadable { text, .. } | Self::NotARequest { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Why streaming a request body to the target stopped.
#[derive(Debug)]
pub(crate) enum PumpError {
    /// The relay side failed: the request cannot be completed or answered.
    Relay(RendezvousError),
    /// Writing to the target failed or stalled; its response may still come.
    Upstream(io::Error),
}

impl fmt::Display for PumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Relay(e) => e.fmt(f),
            Self::Upstream(e) => write!(f, "writing the request body to the target failed: {e}"),
        }
    }
}

impl std::error::Error for PumpError {}

/// A request body read into memory by [`RendezvousReader::buffer_body`].
pub(crate) enum Buffered {
    /// The whole body: it can be sent with `Content-Length`.
    Whole(BodyBuffer),
    /// Its start, longer than the limit; the rest of the body message is still unread.
    Overflowed(BodyBuffer),
}

/// Writes `pending` as one chunk (nothing when it is empty) within `idle`; `any_chunk` records
/// that a chunk went out.
async fn flush<W: AsyncWriteRent>(
    pending: &mut BodyBuffer,
    out: &mut W,
    any_chunk: &mut bool,
    idle: Duration,
) -> Result<(), PumpError> {
    let first = !*any_chunk;
    let mut wrote = false;
    write_within(idle, async {
        wrote = pending.write_chunk(out, first).await?;
        Ok(())
    })
    .await
    .map_err(PumpError::Upstream)?;
    *any_chunk |= wrote;
    Ok(())
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// The read half of a request rendezvous.
pub(crate) struct RendezvousReader<R = OwnedReadHalf<Stream>> {
    reader: WsReader<R>,
    /// Assembles `request` messages (control frames may come between their fragments).
    inbound: Inbound,
    /// The rendezvous's sending side, shared with its writer: it builds the pongs and learns of
    /// the relay's close.
    outbound: Rc<RefCell<Outbound>>,
}

impl<R: AsyncReadRent> RendezvousReader<R> {
    /// A reader over `read`; `leftover` holds bytes read past the handshake; `outbound` is the
    /// sending side shared with the rendezvous's writer. A body message may be of any size
    /// (protocol §6.4): the reader never collects one.
    pub(crate) fn new(read: R, leftover: &[u8], outbound: Rc<RefCell<Outbound>>) -> Self {
        let limits = Limits {
            max_message_size: u64::MAX,
            ..Limits::default()
        };
        Self {
            reader: WsReader::new(read, Role::Client, limits, leftover, DEFAULT_READ_BUFFER),
            inbound: Inbound::new(),
            outbound,
        }
    }

    /// The next frame (or chunk of one) within `idle`. The relay's close is recorded in the
    /// sending side, also where it ends a body.
    async fn event(&mut self, idle: Duration) -> Result<WsEvent, RendezvousError> {
        let event = match monoio::time::timeout(idle, self.reader.next_event()).await {
            Ok(event) => event.map_err(RendezvousError::Read)?,
            Err(_) => return Err(RendezvousError::Idle { after: idle }),
        };
        if matches!(event, WsEvent::Close { .. }) {
            self.outbound.borrow_mut().on_close_received();
        }
        Ok(event)
    }

    /// The next request, ping or close, waiting at most `idle` for each frame.
    pub(crate) async fn next(&mut self, idle: Duration) -> Result<Incoming, RendezvousError> {
        loop {
            let event = self.event(idle).await?;
            let mut pong = Vec::new();
            let received = self.inbound.receive(
                self.reader.view(&event),
                &mut self.outbound.borrow_mut(),
                &mut pong,
            );
            match received.map_err(RendezvousError::Channel)? {
                Received::Message(text) => {
                    return match parse_daemon_message(text) {
                        Ok(DaemonMessage::Request(request)) => Ok(Incoming::Request(request)),
                        Ok(DaemonMessage::Other(other)) => Err(RendezvousError::NotARequest {
                            command: other.command().to_owned(),
                            text: text.to_vec(),
                        }),
                        Err(error) => Err(RendezvousError::Unreadable {
                            error,
                            text: text.to_vec(),
                        }),
                    };
                }
                Received::Body { .. } => return Err(RendezvousError::UnexpectedBinary),
                Received::Ping => return Ok(Incoming::Pong(pong)),
                Received::Partial | Received::Pong => {}
                Received::Close(_) => return Ok(Incoming::Closed),
            }
        }
    }

    /// The command named by the first bytes of a message that failed the rendezvous for being
    /// over 64 KiB ([`Inbound::oversized_command`]).
    pub(crate) fn oversized_command(&self) -> Option<&'static str> {
        self.inbound.oversized_command()
    }

    /// Reads the body message that follows a `request` with `"body": true` into memory until
    /// it ends ([`Buffered::Whole`]) or holds more than `limit` bytes
    /// ([`Buffered::Overflowed`]: the rest is still to be read, by [`Self::pump_body`]). The
    /// buffer holds at most `limit` bytes plus the frame that overflowed it. Pings in the body
    /// are not answered.
    pub(crate) async fn buffer_body(
        &mut self,
        limit: usize,
        idle: Duration,
    ) -> Result<Buffered, RendezvousError> {
        let mut held = BodyBuffer::default();
        loop {
            match self.event(idle).await? {
                WsEvent::Data {
                    kind: DataKind::Binary,
                    payload,
                    message_end,
                    ..
                } => {
                    held.extend_capped(self.reader.bytes(payload), limit);
                    if message_end {
                        return Ok(Buffered::Whole(held));
                    }
                    if held.len() > limit {
                        return Ok(Buffered::Overflowed(held));
                    }
                }
                WsEvent::Data { .. } => return Err(RendezvousError::UnexpectedText),
                WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                WsEvent::Close { .. } => return Err(RendezvousError::ClosedInBody),
            }
        }
    }

    /// Streams the body message that follows a `request` with `"body": true` to `out` with
    /// the chunked transfer coding, `first` (body bytes already read) in front. Chunks are at
    /// least [`MIN_CHUNK`] bytes except the last: small frames are gathered, and a frame that
    /// is a chunk on its own is written from where it was read with its chunk prefix in front
    /// (no copy). Returns the body's length. The request head must already have been written.
    /// Reads from the relay may stall for `relay_idle`, writes to the target for
    /// `target_idle`. Pings in the body are not answered (the write half is busy with the
    /// response).
    pub(crate) async fn pump_body<W: AsyncWriteRent>(
        &mut self,
        out: &mut W,
        first: BodyBuffer,
        relay_idle: Duration,
        target_idle: Duration,
    ) -> Result<u64, PumpError> {
        let mut pending = first;
        let mut sent = len_u64(pending.len());
        let mut any_chunk = false;
        if pending.len() >= MIN_CHUNK {
            flush(&mut pending, out, &mut any_chunk, target_idle).await?;
        }
        loop {
            match self.event(relay_idle).await.map_err(PumpError::Relay)? {
                WsEvent::Data {
                    kind: DataKind::Binary,
                    payload,
                    message_end,
                    ..
                } => {
                    sent = sent.saturating_add(len_u64(payload.len()));
                    match NonZeroUsize::new(payload.len()) {
                        Some(size) if pending.is_empty() && size.get() >= MIN_CHUNK => {
                            let prefix = ChunkPrefix::new(!any_chunk, size);
                            let write = self.reader.write_payload(out, prefix.as_bytes(), payload);
                            write_within(target_idle, write)
                                .await
                                .map_err(PumpError::Upstream)?;
                            any_chunk = true;
                        }
                        Some(_) => {
                            pending.extend(self.reader.bytes(payload));
                            if pending.len() >= MIN_CHUNK {
                                flush(&mut pending, out, &mut any_chunk, target_idle).await?;
                            }
                        }
                        None => {}
                    }
                    if message_end {
                        flush(&mut pending, out, &mut any_chunk, target_idle).await?;
                        let end = out.write_all(chunked_end(any_chunk));
                        write_within(target_idle, async { end.await.0.map(|_| ()) })
                            .await
                            .map_err(PumpError::Upstream)?;
                        return Ok(sent);
                    }
                }
                WsEvent::Data { .. } => {
                    return Err(PumpError::Relay(RendezvousError::UnexpectedText))
                }
                WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                WsEvent::Close { .. } => {
                    return Err(PumpError::Relay(RendezvousError::ClosedInBody))
                }
            }
        }
    }

    /// Reads and discards the body message that follows a `request` with `"body": true`, so
    /// the rendezvous can carry the next request after an answer the daemon gave itself.
    pub(crate) async fn drain_body(&mut self, idle: Duration) -> Result<(), RendezvousError> {
        loop {
            match self.event(idle).await? {
                WsEvent::Data {
                    kind: DataKind::Binary,
                    message_end,
                    ..
                } => {
                    if message_end {
                        return Ok(());
                    }
                }
                WsEvent::Data { .. } => return Err(RendezvousError::UnexpectedText),
                WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                WsEvent::Close { .. } => return Err(RendezvousError::ClosedInBody),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::test_support::read_to_end;
    use crate::proto::hc::messages::MAX_CONTROL_MESSAGE_LEN;
    use crate::proto::http1::{BodyDecoder, BodyKind};
    use crate::proto::ws::encode::{push_close, push_frame};
    use crate::proto::ws::{CloseCode, OpCode};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    const IDLE: Duration = Duration::from_secs(5);

    fn client() -> Rc<RefCell<Outbound>> {
        Rc::new(RefCell::new(Outbound::client(|| [1, 2, 3, 4])))
    }

    /// Frames as the relay sends them (unmasked).
    fn wire(frames: &[(bool, OpCode, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (fin, opcode, payload) in frames {
            push_frame(&mut out, *fin, *opcode, payload, None).unwrap();
        }
        out
    }

    const REQUEST: &[u8] = br#"{"request":{"address":"ws://r/$hc/hyco?sb-hc-action=request","id":"r1","requestTarget":"/hyco/x","method":"POST","requestHeaders":{},"body":true}}"#;

    #[test]
    fn a_fragmented_request_with_a_ping_in_between_is_read_whole() {
        let (a, b) = REQUEST.split_at(40);
        let bytes = wire(&[
            (false, OpCode::Text, a),
            (true, OpCode::Ping, b"p"),
            (true, OpCode::Pong, b"q"),
            (true, OpCode::Continuation, b),
        ]);
        run(async {
            let mut reader = RendezvousReader::new(&bytes[..], &[], client());
            let Incoming::Pong(pong) = reader.next(IDLE).await.unwrap() else {
                panic!("a ping comes back as its pong");
            };
            let mut expected = Vec::new();
            client().borrow_mut().pong(&mut expected, b"p").unwrap();
            assert_eq!(pong, expected, "the pong, masked with the key");
            match reader.next(IDLE).await.unwrap() {
                Incoming::Request(request) => {
                    assert_eq!(request.id(), Some("r1"));
                    assert!(request.has_body());
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }

    #[test]
    fn bytes_read_past_the_handshake_come_first() {
        let bytes = wire(&[(true, OpCode::Text, REQUEST)]);
        let (leftover, rest) = bytes.split_at(10);
        run(async {
            let mut reader = RendezvousReader::new(rest, leftover, client());
            assert!(matches!(
                reader.next(IDLE).await.unwrap(),
                Incoming::Request(_)
            ));
        });
    }

    #[test]
    fn a_close_ends_the_rendezvous() {
        let mut bytes = Vec::new();
        push_close(&mut bytes, CloseCode::NORMAL, "", None).unwrap();
        run(async {
            let mut reader = RendezvousReader::new(&bytes[..], &[], client());
            assert_eq!(reader.next(IDLE).await.unwrap(), Incoming::Closed);
        });
    }

    #[test]
    fn anything_but_a_request_is_refused() {
        run(async {
            let binary = wire(&[(true, OpCode::Binary, b"x")]);
            let err = RendezvousReader::new(&binary[..], &[], client())
                .next(IDLE)
                .await
                .unwrap_err();
            assert!(matches!(err, RendezvousError::UnexpectedBinary), "{err}");

            let accept = wire(&[(
                true,
                OpCode::Text,
                br#"{"accept":{"address":"a","id":"i"}}"#,
            )]);
            let err = RendezvousReader::new(&accept[..], &[], client())
                .next(IDLE)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, RendezvousError::NotARequest { command, text }
                    if command == "accept" && err.unusable_text() == Some(text.as_slice())),
                "{err}"
            );

            let junk = wire(&[(true, OpCode::Text, b"{not json")]);
            let err = RendezvousReader::new(&junk[..], &[], client())
                .next(IDLE)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, RendezvousError::Unreadable { error: MessageError::NotJson { .. }, text }
                    if text == b"{not json"),
                "{err}"
            );

            let eof = RendezvousReader::new(&[][..], &[], client())
                .next(IDLE)
                .await
                .unwrap_err();
            assert!(
                matches!(eof, RendezvousError::Read(ReadError::Eof)),
                "{eof}"
            );
        });
    }

    #[test]
    fn a_request_larger_than_64_kib_fails_the_rendezvous_before_it_is_collected() {
        let big = vec![b' '; MAX_CONTROL_MESSAGE_LEN];
        let bytes = wire(&[
            (false, OpCode::Text, &big),
            (true, OpCode::Continuation, b"{}"),
        ]);
        run(async {
            let err = RendezvousReader::new(&bytes[..], &[], client())
                .next(IDLE)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    RendezvousError::Channel(ChannelError::MessageTooLarge {
                        len,
                        max: MAX_CONTROL_MESSAGE_LEN,
                    }) if len == MAX_CONTROL_MESSAGE_LEN + 2
                ),
                "{err}"
            );
        });
    }

    /// Pumps the body message in `bytes` and returns what the target received, decoded.
    async fn pump(bytes: &[u8]) -> (Result<u64, PumpError>, Vec<u8>, Vec<u8>) {
        let (mut near, far) = monoio::net::UnixStream::pair().unwrap();
        let mut reader = RendezvousReader::new(bytes, &[], client());
        let result = reader
            .pump_body(&mut near, BodyBuffer::default(), IDLE, IDLE)
            .await;
        drop(near);
        let raw = read_to_end(far).await;
        let mut decoder = BodyDecoder::new(BodyKind::Chunked);
        let mut body = Vec::new();
        let mut input = &raw[..];
        while !decoder.is_done() && !input.is_empty() {
            let step = decoder.decode(input).unwrap();
            body.extend_from_slice(step.payload.unwrap_or_default());
            input = &input[step.consumed..];
        }
        (result, raw, body)
    }

    #[test]
    fn a_fragmented_body_is_streamed_as_chunks() {
        let bytes = wire(&[
            (false, OpCode::Binary, b"hello "),
            (false, OpCode::Continuation, b""),
            (true, OpCode::Ping, b"ignored"),
            (false, OpCode::Continuation, &[b'x'; 70_000]),
            (true, OpCode::Continuation, b"!"),
        ]);
        run(async {
            let (result, raw, body) = pump(&bytes).await;
            assert_eq!(result.unwrap(), 6 + 70_000 + 1);
            assert!(raw.ends_with(b"\r\n0\r\n\r\n"));
            assert_eq!(body, [&b"hello "[..], &[b'x'; 70_000], b"!"].concat());
        });
    }

    #[test]
    fn an_empty_body_message_is_an_empty_chunked_body() {
        let bytes = wire(&[(true, OpCode::Binary, b"")]);
        run(async {
            let (result, raw, _) = pump(&bytes).await;
            assert_eq!(result.unwrap(), 0);
            assert_eq!(raw, b"0\r\n\r\n");
        });
    }

    #[test]
    fn a_body_that_the_relay_breaks_off_is_a_relay_error() {
        run(async {
            let mut closed = wire(&[(false, OpCode::Binary, b"part")]);
            push_close(&mut closed, CloseCode::GOING_AWAY, "", None).unwrap();
            let (result, _, _) = pump(&closed).await;
            assert!(matches!(
                result,
                Err(PumpError::Relay(RendezvousError::ClosedInBody))
            ));

            let text = wire(&[(true, OpCode::Text, b"{}")]);
            let (result, _, _) = pump(&text).await;
            assert!(matches!(
                result,
                Err(PumpError::Relay(RendezvousError::UnexpectedText))
            ));

            let cut = wire(&[(false, OpCode::Binary, b"part")]);
            let (result, _, _) = pump(&cut).await;
            assert!(matches!(
                result,
                Err(PumpError::Relay(RendezvousError::Read(ReadError::Eof)))
            ));
        });
    }

    #[test]
    fn small_frames_are_gathered_into_chunks_of_at_least_16_kib() {
        let piece = [b'y'; 1000];
        let mut frames = vec![(false, OpCode::Binary, &piece[..])];
        frames.extend(std::iter::repeat_n(
            (false, OpCode::Continuation, &piece[..]),
            39,
        ));
        frames.push((true, OpCode::Continuation, b"!"));
        let bytes = wire(&frames);
        run(async {
            let (result, raw, body) = pump(&bytes).await;
            assert_eq!(result.unwrap(), 40_001);
            assert_eq!(body.len(), 40_001);
            // 17 frames make the first chunk (17,000 B), 17 the second, then 6,001 B.
            assert!(raw.starts_with(b"4268\r\n"), "{:?}", &raw[..8]);
            let second = 6 + 17_000 + 2;
            assert_eq!(&raw[second..second + 6], b"4268\r\n");
        });
    }

    #[test]
    fn a_body_is_held_whole_within_the_limit_and_its_start_beyond_it() {
        let bytes = wire(&[
            (false, OpCode::Binary, b"abc"),
            (true, OpCode::Ping, b"p"),
            (true, OpCode::Continuation, b"def"),
        ]);
        run(async {
            let mut reader = RendezvousReader::new(&bytes[..], &[], client());
            match reader.buffer_body(6, IDLE).await.unwrap() {
                Buffered::Whole(held) => assert_eq!(held.data(), b"abcdef"),
                Buffered::Overflowed(_) => panic!("6 bytes fit a limit of 6"),
            }
            let mut reader = RendezvousReader::new(&bytes[..], &[], client());
            let Buffered::Overflowed(first) = reader.buffer_body(2, IDLE).await.unwrap() else {
                panic!("3 bytes do not fit a limit of 2");
            };
            assert_eq!(first.data(), b"abc");
            let (mut near, far) = monoio::net::UnixStream::pair().unwrap();
            let sent = reader
                .pump_body(&mut near, first, IDLE, IDLE)
                .await
                .unwrap();
            drop(near);
            assert_eq!(sent, 6);
            assert_eq!(read_to_end(far).await, b"6\r\nabcdef\r\n0\r\n\r\n");
        });
    }

    #[test]
    fn a_body_the_relay_closes_while_it_is_buffered_is_closed_in_body() {
        let mut closed = wire(&[(false, OpCode::Binary, b"part")]);
        push_close(&mut closed, CloseCode::GOING_AWAY, "", None).unwrap();
        run(async {
            let mut reader = RendezvousReader::new(&closed[..], &[], client());
            assert!(matches!(
                reader.buffer_body(100, IDLE).await,
                Err(RendezvousError::ClosedInBody)
            ));
        });
    }

    #[test]
    fn a_body_can_be_drained_to_reach_the_next_request() {
        let mut bytes = wire(&[
            (false, OpCode::Binary, b"skip"),
            (true, OpCode::Continuation, b"me"),
        ]);
        bytes.extend(wire(&[(true, OpCode::Text, REQUEST)]));
        run(async {
            let mut reader = RendezvousReader::new(&bytes[..], &[], client());
            reader.drain_body(IDLE).await.unwrap();
            assert!(matches!(
                reader.next(IDLE).await.unwrap(),
                Incoming::Request(_)
            ));
        });
    }
}
