//! The write side of a request rendezvous (protocol §6.3 step 4, §6.4): the `response` text
//! message, then its body as ONE binary message — first frame binary FIN=0, continuation frames,
//! a final continuation FIN=1 that may be empty — streamed as the target's body arrives. Every
//! frame is built by the rendezvous's [`Outbound`] (shared with its reader): masked with a fresh
//! key (RFC 6455 §5.3: the daemon is the client), and nothing after a close.

use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf};

use super::write_within;
use crate::daemon::listener::http::frames::push_answer;
use crate::daemon::listener::http::response_text::ResponseText;
use crate::daemon::listener::upstream::ResponseReader;
use crate::io::stream::Stream;
use crate::proto::hc::channel::{ChannelError, Outbound};
use crate::proto::ws::{CloseCode, DataKind, MAX_HEADER_LEN};

/// The write half of a request rendezvous.
pub(crate) struct RendezvousWriter<W = OwnedWriteHalf<Stream>> {
    io: W,
    /// The longest a write may stall before the rendezvous is given up.
    idle: Duration,
    outbound: Rc<RefCell<Outbound>>,
}

fn encode_failed(e: ChannelError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl<W: AsyncWriteRent> RendezvousWriter<W> {
    /// A writer over `io` whose writes may stall for at most `idle`, building its frames with
    /// `outbound` (the rendezvous's sending side, shared with its reader).
    pub(crate) fn new(io: W, idle: Duration, outbound: Rc<RefCell<Outbound>>) -> Self {
        Self { io, idle, outbound }
    }

    async fn write(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let io = &mut self.io;
        write_within(
            self.idle,
            async move { io.write_all(bytes).await.0.map(|_| ()) },
        )
        .await
    }

    /// Builds frames of about `capacity` bytes with the rendezvous's [`Outbound`] and writes
    /// them.
    async fn send_with(
        &mut self,
        capacity: usize,
        build: impl FnOnce(&mut Outbound, &mut Vec<u8>) -> Result<(), ChannelError>,
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(capacity);
        build(&mut self.outbound.borrow_mut(), &mut out).map_err(encode_failed)?;
        self.write(out).await
    }

    /// A whole answer in one write: `response` and, when it announces one, `body` as a single
    /// binary frame.
    pub(crate) async fn send_answer(
        &mut self,
        response: &ResponseText,
        body: &[u8],
    ) -> io::Result<()> {
        self.send_with(body.len() + 512, |out, dst| {
            push_answer(out, dst, response, body)
        })
        .await
    }

    /// The `response` message of a streamed answer; its body frames follow.
    pub(crate) async fn send_head(&mut self, response: &ResponseText) -> io::Result<()> {
        let json = response.text();
        self.send_with(json.len() + MAX_HEADER_LEN, |out, dst| {
            out.message(dst, DataKind::Text, json.as_bytes())
        })
        .await
    }

    /// The next body frame (FIN=0) from bytes held elsewhere (copied and masked).
    pub(crate) async fn send_body_copy(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.send_with(bytes.len() + MAX_HEADER_LEN, |out, dst| {
            out.data(dst, DataKind::Binary, bytes, false)
        })
        .await
    }

    /// The next body frame (FIN=0) from the target's body piece `range`, framed and masked in
    /// place in the reader's buffer (no copy). After an error the reader must not be used.
    pub(crate) async fn send_body_in_place<R: AsyncReadRent>(
        &mut self,
        reader: &mut ResponseReader<R>,
        range: Range<usize>,
    ) -> io::Result<()> {
        let write = reader.write_as_frame(&mut self.io, range, &self.outbound, false);
        write_within(self.idle, write).await
    }

    /// Ends the body message with an empty FIN frame (a continuation, or an empty binary
    /// message when no body frame was sent).
    pub(crate) async fn end_body(&mut self) -> io::Result<()> {
        self.send_with(MAX_HEADER_LEN, |out, dst| {
            out.data(dst, DataKind::Binary, &[], true)
        })
        .await
    }

    /// Writes frames the rendezvous's [`Outbound`] built (a ping's pong) while it is open.
    pub(crate) async fn send_built(&mut self, frames: Vec<u8>) -> io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        self.outbound.borrow().check_open().map_err(encode_failed)?;
        self.write(frames).await
    }

    /// Sends a close frame; the caller drops the connection after it.
    pub(crate) async fn close(&mut self, code: CloseCode, reason: &str) -> io::Result<()> {
        self.send_with(MAX_HEADER_LEN + 2 + reason.len(), |out, dst| {
            out.close(dst, code, reason)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::test_support::read_to_end;
    use crate::proto::hc::control_message::{parse_control_message, ControlMessage};
    use crate::proto::hc::messages::Response;
    use crate::proto::ws::{DataKind, Decoder, Event, Limits, Role};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// What the relay sees: (opcode-ish kind, fin, payload) per frame, or the close code.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Data {
            kind: DataKind,
            fin: bool,
            payload: Vec<u8>,
        },
        Pong(Vec<u8>),
        Close(Option<u16>),
    }

    async fn written(
        f: impl AsyncFnOnce(&mut RendezvousWriter<monoio::net::UnixStream>),
    ) -> Vec<Seen> {
        let (near, far) = monoio::net::UnixStream::pair().unwrap();
        let outbound = Rc::new(RefCell::new(Outbound::client(|| [1, 2, 3, 4])));
        let mut writer = RendezvousWriter::new(near, Duration::from_secs(5), outbound);
        f(&mut writer).await;
        drop(writer);
        let mut wire = read_to_end(far).await;
        let mut decoder = Decoder::new(Role::Server, Limits::default());
        let mut seen = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let (used, event) = decoder.decode(&mut wire[at..]).unwrap();
            match event {
                Some(Event::Data {
                    kind,
                    payload,
                    message_end,
                    ..
                }) => seen.push(Seen::Data {
                    kind,
                    fin: message_end,
                    payload: payload.to_vec(),
                }),
                Some(Event::Pong(p)) => seen.push(Seen::Pong(p.to_vec())),
                Some(Event::Close(close)) => seen.push(Seen::Close(close.code.map(|c| c.as_u16()))),
                other => panic!("unexpected {other:?}"),
            }
            at += used;
        }
        seen
    }

    fn response() -> Response {
        Response {
            request_id: "r1".into(),
            status_code: 200,
            status_description: None,
            response_headers: None,
            body: true,
        }
    }

    fn data(kind: DataKind, fin: bool, payload: &[u8]) -> Seen {
        Seen::Data {
            kind,
            fin,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_streamed_body_is_one_fragmented_binary_message() {
        let seen = run(written(async |w| {
            w.send_head(&ResponseText::of(&response())).await.unwrap();
            w.send_body_copy(b"abc").await.unwrap();
            w.send_body_copy(b"").await.unwrap();
            w.send_body_copy(b"def").await.unwrap();
            w.end_body().await.unwrap();
        }));
        assert_eq!(seen.len(), 4);
        match &seen[0] {
            Seen::Data {
                kind: DataKind::Text,
                fin: true,
                payload,
            } => {
                assert!(
                    matches!(parse_control_message(payload), Ok(ControlMessage::Response(r)) if r == response())
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(seen[1], data(DataKind::Binary, false, b"abc"));
        assert_eq!(seen[2], data(DataKind::Binary, false, b"def"));
        assert_eq!(seen[3], data(DataKind::Binary, true, b""));
    }

    #[test]
    fn a_body_without_frames_ends_as_an_empty_binary_message() {
        let seen = run(written(async |w| {
            w.send_head(&ResponseText::of(&response())).await.unwrap();
            w.end_body().await.unwrap();
            w.send_head(&ResponseText::of(&response())).await.unwrap();
            w.send_body_copy(b"x").await.unwrap();
            w.end_body().await.unwrap();
        }));
        assert_eq!(seen[1], data(DataKind::Binary, true, b""));
        assert_eq!(seen[3], data(DataKind::Binary, false, b"x"));
        assert_eq!(seen[4], data(DataKind::Binary, true, b""));
    }

    #[test]
    fn whole_answers_pongs_and_closes() {
        let seen = run(written(async |w| {
            w.send_answer(&ResponseText::of(&response()), b"body")
                .await
                .unwrap();
            let mut pong = Vec::new();
            w.outbound.borrow_mut().pong(&mut pong, b"p").unwrap();
            w.send_built(pong).await.unwrap();
            w.close(CloseCode::INTERNAL_ERROR, "broke").await.unwrap();
        }));
        assert_eq!(seen[1], data(DataKind::Binary, true, b"body"));
        assert_eq!(seen[2], Seen::Pong(b"p".to_vec()));
        assert_eq!(seen[3], Seen::Close(Some(1011)));
    }
}
