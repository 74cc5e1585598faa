//! A WebSocket sender (protocol §7.1): connects to `{relay}/$hc/{hc}?sb-hc-action=connect` with its
//! token in `ServiceBusAuthorization`, writes masked binary messages (RFC 6455 §5.3), checks
//! that the echo service's answer comes back byte for byte — frame boundaries carry no meaning
//! (protocol §5.3) — and closes with a close handshake, which the daemon turns into a TCP
//! half-close towards the target and back (§5.4).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, Splitable};

use crate::auth::sas::encode_uri_component;
use crate::io::ws_client::{ConnectError, Dialer};
use crate::io::ws_reader::{ReadError, WsEvent, WsReader, DEFAULT_READ_BUFFER};
use crate::proto::ws::encode::len_u64;
use crate::proto::ws::mask::apply_mask;
use crate::proto::ws::mask_key;
use crate::proto::ws::{
    CloseCode, CloseFrame, DataKind, EncodeError, Encoder, Limits, Role, MAX_HEADER_LEN,
};
use crate::secret::Secret;

/// A stage of a stream's life, for timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Open,
    Echo,
    Close,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "opening the stream",
            Self::Echo => "waiting for the echo",
            Self::Close => "closing the stream",
        })
    }
}

/// Why one stream failed.
#[derive(Debug)]
pub enum StreamFailure {
    /// The connect was refused or failed (e.g. `Rejected { status: 502 }` from the daemon).
    Connect(ConnectError),
    /// A stage took longer than the sender's timeout.
    Timeout { stage: Stage, after: Duration },
    /// A frame could not be encoded.
    Encode(EncodeError),
    /// Writing to the relay failed.
    Send(io::Error),
    /// Reading from the relay failed, or it closed without a close frame.
    Receive(ReadError),
    /// An echoed byte differs from the byte sent at `offset`.
    EchoMismatch { offset: usize },
    /// More bytes came back than were sent.
    EchoTooLong { sent: usize },
    /// The peer closed before everything came back.
    ClosedEarly { received: usize, sent: usize },
}

impl fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect failed: {e}"),
            Self::Timeout { stage, after } => write!(f, "timed out after {after:?} {stage}"),
            Self::Encode(e) => write!(f, "cannot encode a frame: {e}"),
            Self::Send(e) => write!(f, "sending failed: {e}"),
            Self::Receive(e) => write!(f, "receiving failed: {e}"),
            Self::EchoMismatch { offset } => {
                write!(f, "the echo differs from what was sent at byte {offset}")
            }
            Self::EchoTooLong { sent } => {
                write!(f, "more bytes came back than the {sent} sent")
            }
            Self::ClosedEarly { received, sent } => {
                write!(f, "closed after {received} of {sent} echoed bytes")
            }
        }
    }
}

impl std::error::Error for StreamFailure {}

/// Compares echoed bytes, as they arrive in any framing, with the bytes sent.
#[derive(Debug)]
pub struct EchoCheck<'a> {
    sent: &'a [u8],
    received: usize,
}

impl<'a> EchoCheck<'a> {
    /// A check of the echo of `sent`.
    pub fn new(sent: &'a [u8]) -> Self {
        Self { sent, received: 0 }
    }

    /// Checks the next echoed bytes.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<(), StreamFailure> {
        let rest = &self.sent[self.received..];
        if chunk.len() > rest.len() {
            return Err(StreamFailure::EchoTooLong {
                sent: self.sent.len(),
            });
        }
        if let Some(at) = chunk.iter().zip(rest).position(|(a, b)| a != b) {
            return Err(StreamFailure::EchoMismatch {
                offset: self.received + at,
            });
        }
        self.received += chunk.len();
        Ok(())
    }

    /// Whether every byte sent has come back.
    pub fn is_complete(&self) -> bool {
        self.received == self.sent.len()
    }

    /// Bytes verified so far.
    pub fn received(&self) -> usize {
        self.received
    }
}

/// The sender's connect URL for hybrid connection `hc` (protocol §7.1).
pub fn connect_url(relay_url: &str, hc: &str, id: &str) -> String {
    format!(
        "{}/$hc/{hc}?sb-hc-action=connect&sb-hc-id={}",
        relay_url.trim_end_matches('/'),
        encode_uri_component(id)
    )
}

/// A finished stream: how long the connect took and how many bytes came back verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub open: Duration,
    pub bytes: usize,
}

/// Opens a stream, sends `payload` as messages of `sizes` bytes, checks the echo and closes.
/// Each stage gets `timeout`.
pub async fn run(
    dialer: &Dialer,
    url: &str,
    token: &Secret,
    payload: &[u8],
    sizes: &[usize],
    timeout: Duration,
) -> Result<StreamStats, StreamFailure> {
    let started = Instant::now();
    let headers = [("ServiceBusAuthorization", token.expose())];
    let conn = monoio::time::timeout(timeout, dialer.connect(url, &headers, None))
        .await
        .map_err(|_| StreamFailure::Timeout {
            stage: Stage::Open,
            after: timeout,
        })?
        .map_err(StreamFailure::Connect)?;
    let open = started.elapsed();
    let (read, mut write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        DEFAULT_READ_BUFFER,
    );
    let mut check = EchoCheck::new(payload);
    let mut encoder = Encoder::new(Role::Client);
    let echo = async {
        let (sent, received) = monoio::join!(
            send_messages(&mut write, &mut encoder, payload, sizes),
            receive_echo(&mut reader, &mut check)
        );
        sent.and(received)
    };
    monoio::time::timeout(timeout, echo)
        .await
        .map_err(|_| StreamFailure::Timeout {
            stage: Stage::Echo,
            after: timeout,
        })??;
    monoio::time::timeout(
        timeout,
        close(&mut write, &mut encoder, &mut reader, payload.len()),
    )
    .await
    .map_err(|_| StreamFailure::Timeout {
        stage: Stage::Close,
        after: timeout,
    })??;
    Ok(StreamStats {
        open,
        bytes: check.received(),
    })
}

/// Splits `payload` into messages of `sizes` bytes; what the sizes leave over is one more.
pub fn messages<'a>(payload: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = payload;
    let mut sizes = sizes.iter();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = sizes.next().map_or(rest.len(), |&s| s.min(rest.len()));
        let (message, after) = rest.split_at(size);
        rest = after;
        Some(message)
    })
}

/// The next frame of `encoder`'s connection: one masked binary message holding `message`
/// (RFC 6455 §5.2, §5.3).
fn frame(encoder: &mut Encoder, message: &[u8]) -> Result<Vec<u8>, StreamFailure> {
    let mask = mask_key();
    let mut header = [0u8; MAX_HEADER_LEN];
    let len = encoder
        .data_header(
            &mut header,
            DataKind::Binary,
            true,
            len_u64(message.len()),
            mask,
        )
        .map_err(StreamFailure::Encode)?;
    let mut frame = Vec::with_capacity(len + message.len());
    frame.extend_from_slice(&header[..len]);
    frame.extend_from_slice(message);
    if let Some(key) = mask {
        apply_mask(&mut frame[len..], key, 0);
    }
    Ok(frame)
}

/// Writes `payload` as binary messages of `sizes` bytes.
async fn send_messages<W: AsyncWriteRent>(
    out: &mut W,
    encoder: &mut Encoder,
    payload: &[u8],
    sizes: &[usize],
) -> Result<(), StreamFailure> {
    for message in messages(payload, sizes) {
        out.write_all(frame(encoder, message)?)
            .await
            .0
            .map_err(StreamFailure::Send)?;
    }
    Ok(())
}

async fn receive_echo<R: monoio::io::AsyncReadRent>(
    reader: &mut WsReader<R>,
    check: &mut EchoCheck<'_>,
) -> Result<(), StreamFailure> {
    while !check.is_complete() {
        match reader.next_event().await.map_err(StreamFailure::Receive)? {
            WsEvent::Data { payload, .. } => check.accept(reader.bytes(payload))?,
            WsEvent::Close { .. } => {
                return Err(StreamFailure::ClosedEarly {
                    received: check.received(),
                    sent: check.sent.len(),
                })
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
        }
    }
    Ok(())
}

/// Sends a close frame and waits for the peer's (no data may arrive in between).
async fn close<W: AsyncWriteRent, R: monoio::io::AsyncReadRent>(
    out: &mut W,
    encoder: &mut Encoder,
    reader: &mut WsReader<R>,
    sent: usize,
) -> Result<(), StreamFailure> {
    let mut frame = Vec::new();
    encoder
        .close(
            &mut frame,
            &CloseFrame::new(CloseCode::NORMAL, "demo done"),
            mask_key(),
        )
        .map_err(StreamFailure::Encode)?;
    out.write_all(frame).await.0.map_err(StreamFailure::Send)?;
    loop {
        match reader.next_event().await.map_err(StreamFailure::Receive)? {
            WsEvent::Close { .. } => return Ok(()),
            WsEvent::Data { payload, .. } if !payload.is_empty() => {
                return Err(StreamFailure::EchoTooLong { sent })
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_in_any_framing_pass() {
        let sent = b"hello, relay";
        let mut check = EchoCheck::new(sent);
        check.accept(b"hel").expect("first part");
        check.accept(b"").expect("empty frame");
        assert!(!check.is_complete());
        check.accept(b"lo, relay").expect("rest");
        assert!(check.is_complete());
        assert_eq!(check.received(), sent.len());
    }

    #[test]
    fn a_wrong_byte_is_reported_at_its_offset() {
        let mut check = EchoCheck::new(b"abcdef");
        check.accept(b"abc").expect("first part");
        let failure = check.accept(b"dXf");
        assert!(
            matches!(failure, Err(StreamFailure::EchoMismatch { offset: 4 })),
            "{failure:?}"
        );
    }

    #[test]
    fn extra_bytes_are_reported() {
        let mut check = EchoCheck::new(b"ab");
        let failure = check.accept(b"abc");
        assert!(
            matches!(failure, Err(StreamFailure::EchoTooLong { sent: 2 })),
            "{failure:?}"
        );
    }

    #[test]
    fn connect_urls_follow_the_sender_template() {
        assert_eq!(
            connect_url("ws://127.0.0.1:9/", "tcp-echo", "demo 1"),
            "ws://127.0.0.1:9/$hc/tcp-echo?sb-hc-action=connect&sb-hc-id=demo%201"
        );
    }

    #[test]
    fn payloads_split_into_messages_of_the_given_sizes() {
        let payload: Vec<u8> = (0..=255).collect();
        let lengths: Vec<usize> = messages(&payload, &[1, 100]).map(<[u8]>::len).collect();
        assert_eq!(lengths, [1, 100, 155]);
        let lengths: Vec<usize> = messages(&payload, &[200, 100]).map(<[u8]>::len).collect();
        assert_eq!(lengths, [200, 56]);
        assert_eq!(messages(&[], &[1]).count(), 0);
        assert_eq!(
            messages(&payload, &[1, 100]).collect::<Vec<_>>().concat(),
            payload
        );
    }

    #[test]
    fn frames_are_masked_binary_messages() {
        use crate::proto::ws::{DataKind, Decoder, Event};
        let mut wire = frame(&mut Encoder::new(Role::Client), b"payload").expect("frame");
        assert_eq!(wire[1] & 0x80, 0x80, "the mask bit is set");
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let (_, event) = decoder.decode(&mut wire).expect("a valid client frame");
        match event {
            Some(Event::Data {
                kind: DataKind::Binary,
                payload,
                message_end: true,
                ..
            }) => assert_eq!(payload, b"payload"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
