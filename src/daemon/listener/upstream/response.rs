//! Reading the target's response (RFC 9112 §4, §6): the head, then the body de-chunked or
//! length-delimited in place in a [`ReadBuf`] with WebSocket header headroom, so each piece of
//! body can be framed for the relay where it lies (architecture §2: "mask in place into a buffer
//! with header headroom").
//!
//! Like [`crate::io::ws_reader::WsReader`], body pieces are returned as ranges into the
//! reader's buffer; they stay in place until the next call.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::ops::Range;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::io::read_buf::ReadBuf;
use crate::proto::hc::channel::Outbound;
use crate::proto::http1::{
    parse_response_head, response_body_kind, BodyDecoder, BodyError, BodyKind, FramingError,
    HeadError, Limits, ResponseHead,
};
use crate::proto::ws::{DataKind, MAX_HEADER_LEN};

/// Bytes read from the target at a time; also the largest body piece returned.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

/// Why the target's response could not be read.
#[derive(Debug)]
pub enum ResponseError {
    /// The socket failed.
    Io(io::Error),
    /// The target closed the connection before sending a byte of its response.
    ClosedBeforeResponse,
    /// The target closed the connection in the middle of the head.
    ClosedInHead,
    /// The head breaks HTTP/1.1 syntax or a limit.
    Head(HeadError),
    /// The head's `Content-Length` / `Transfer-Encoding` cannot delimit the body.
    Framing(FramingError),
    /// The target answered `101 Switching Protocols`, which the daemon never asks for.
    SwitchingProtocols,
    /// The body is malformed or ended early.
    Body(BodyError),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "reading from the target failed: {e}"),
            Self::ClosedBeforeResponse => {
                f.write_str("the target closed the connection without a response")
            }
            Self::ClosedInHead => {
                f.write_str("the target closed the connection in the middle of its response head")
            }
            Self::Head(e) => write!(f, "the target's response head is invalid: {e}"),
            Self::Framing(e) => write!(f, "the target's response framing is invalid: {e}"),
            Self::SwitchingProtocols => f.write_str("the target answered 101 Switching Protocols"),
            Self::Body(e) => write!(f, "the target's response body broke off: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}

impl ResponseError {
    /// The `[limits]` key a response head exceeded, if that is why it was refused.
    pub fn exceeded_limit(&self) -> Option<&'static str> {
        match self {
            Self::Head(HeadError::HeadTooLarge { .. }) => Some("max_http_head"),
            Self::Head(HeadError::TooManyHeaders { .. }) => Some("max_header_count"),
            _ => None,
        }
    }
}

/// The read half of a connection to the target, with the state of the response being read.
pub struct ResponseReader<R> {
    io: R,
    buf: ReadBuf,
    decoder: BodyDecoder,
    /// Whether any byte of a response arrived on this connection.
    received_any: bool,
    /// Bytes of the last body piece, consumed by the next call.
    pending: usize,
    /// `[limits] max_http_head` and `max_header_count` for response heads.
    head_limits: Limits,
    /// The head said the connection may carry another exchange, and its framing is safe to
    /// reuse (no `Transfer-Encoding` together with `Content-Length`, not close-delimited).
    reusable_framing: bool,
}

impl<R: AsyncReadRent> ResponseReader<R> {
    /// A reader over `io`, with [`READ_BUFFER`] bytes of buffer and the default head limits.
    pub fn new(io: R) -> Self {
        Self::with_limits(io, Limits::default())
    }

    /// A reader over `io` refusing response heads over `head_limits` (answered 502).
    pub fn with_limits(io: R, head_limits: Limits) -> Self {
        Self::with_buffer(io, head_limits, None)
    }

    /// [`ResponseReader::with_limits`] reading into `recycled`, the buffer of an earlier reader
    /// ([`ResponseReader::into_parts`]) when it is large enough for `head_limits`; its unread
    /// bytes, if any, are dropped. Without one (or with one too small) a new buffer is made.
    pub fn with_buffer(io: R, head_limits: Limits, recycled: Option<ReadBuf>) -> Self {
        // A head must fit the buffer whole.
        let capacity = READ_BUFFER.max(head_limits.max_head_bytes);
        let buf = match recycled {
            Some(mut buf) if buf.capacity() >= capacity => {
                buf.consume(buf.len());
                buf
            }
            _ => ReadBuf::new(capacity, MAX_HEADER_LEN),
        };
        Self {
            io,
            buf,
            decoder: BodyDecoder::new(BodyKind::Empty),
            received_any: false,
            pending: 0,
            reusable_framing: false,
            head_limits,
        }
    }

    /// Whether any response byte arrived (a pooled connection that failed before that may be
    /// retried on a fresh one).
    pub fn received_any(&self) -> bool {
        self.received_any
    }

    /// Reads the final response head to a `method` request, skipping interim 1xx heads
    /// (RFC 9110 §15.2), and prepares the body reader.
    pub async fn read_head(
        &mut self,
        method: &str,
    ) -> Result<(ResponseHead, BodyKind), ResponseError> {
        loop {
            if let Some((head, used)) = parse_response_head(self.buf.data(), &self.head_limits)
                .map_err(ResponseError::Head)?
            {
                self.buf.consume(used);
                if head.status == 101 {
                    return Err(ResponseError::SwitchingProtocols);
                }
                if head.is_informational() {
                    continue;
                }
                let kind = response_body_kind(method, &head).map_err(ResponseError::Framing)?;
                let both = head.headers.contains("transfer-encoding")
                    && head.headers.contains("content-length");
                self.reusable_framing =
                    head.keep_alive() && kind != BodyKind::CloseDelimited && !both;
                self.decoder = BodyDecoder::new(kind);
                return Ok((head, kind));
            }
            match self.buf.fill(&mut self.io).await {
                Ok(0) if self.received_any => return Err(ResponseError::ClosedInHead),
                Ok(0) => return Err(ResponseError::ClosedBeforeResponse),
                Ok(_) => self.received_any = true,
                Err(e) => return Err(ResponseError::Io(e)),
            }
        }
    }

    /// The next piece of body as a range into the buffer (never empty), or `None` once the
    /// body is complete.
    pub async fn next_piece(&mut self) -> Result<Option<Range<usize>>, ResponseError> {
        self.buf.consume(self.pending);
        self.pending = 0;
        loop {
            if self.decoder.is_done() {
                return Ok(None);
            }
            if !self.buf.is_empty() {
                let offset = self.buf.with_front_mut().1;
                let decoded = self
                    .decoder
                    .decode(self.buf.data())
                    .map_err(ResponseError::Body)?;
                let consumed = decoded.consumed;
                if let Some(payload) = decoded.payload {
                    // Every decoder returns the payload as the last bytes it consumed.
                    let end = offset + consumed;
                    self.pending = consumed;
                    return Ok(Some(end - payload.len()..end));
                }
                self.buf.consume(consumed);
                if consumed > 0 {
                    continue;
                }
            }
            match self.buf.fill(&mut self.io).await {
                Ok(0) => {
                    self.decoder.finish().map_err(ResponseError::Body)?;
                }
                Ok(_) => {}
                Err(e) => return Err(ResponseError::Io(e)),
            }
        }
    }

    /// Whether the body has been read to its end: the piece [`ResponseReader::next_piece`]
    /// returned last (if any) was its last, and the next call returns `None`.
    pub fn is_body_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// The bytes of a range returned by [`ResponseReader::next_piece`].
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf.whole()[range]
    }

    /// Frames the body piece `range` in place as the next frame of a binary message, built by
    /// `outbound` (header written into the consumed bytes in front of it, payload masked), and
    /// writes the frame to `out` as one slice: the body bytes are never copied.
    pub async fn write_as_frame<W: AsyncWriteRent>(
        &mut self,
        out: &mut W,
        range: Range<usize>,
        outbound: &RefCell<Outbound>,
        fin: bool,
    ) -> io::Result<()> {
        let frame = outbound
            .borrow_mut()
            .data_in_place(self.buf.whole_mut(), range, DataKind::Binary, fin)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let vec = self.buf.take_vec();
        let (result, slice) = out.write_all(vec.slice(frame)).await;
        self.buf.restore_vec(slice.into_inner());
        result.map(|_| ())
    }

    /// Whether the connection may carry another exchange: the head allowed it, the body is
    /// complete and nothing was received past it.
    pub fn is_reusable(&self) -> bool {
        self.reusable_framing && self.decoder.is_done() && self.buf.len() == self.pending
    }

    /// The read half and the buffer, the last body piece consumed: after a reusable exchange
    /// ([`ResponseReader::is_reusable`]) the buffer is empty, ready for the connection's next
    /// reader ([`ResponseReader::with_buffer`]).
    pub fn into_parts(mut self) -> (R, ReadBuf) {
        self.buf.consume(self.pending);
        (self.io, self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// Delivers its bytes one per read, to exercise every split point.
    struct Trickle<'a>(&'a [u8]);

    impl AsyncReadRent for Trickle<'_> {
        async fn read<T: monoio::buf::IoBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
            let (mut one, rest) = self.0.split_at(self.0.len().min(1));
            self.0 = rest;
            one.read(buf).await
        }

        async fn readv<T: monoio::buf::IoVecBufMut>(
            &mut self,
            buf: T,
        ) -> monoio::BufResult<usize, T> {
            let (mut one, rest) = self.0.split_at(self.0.len().min(1));
            self.0 = rest;
            one.readv(buf).await
        }
    }

    /// Reads a whole response from `wire`, once in as few reads as possible and once a byte
    /// per read; both must agree.
    async fn read_all(wire: &[u8], method: &str) -> Result<(u16, Vec<u8>, bool), ResponseError> {
        let whole = read_from(wire, method).await;
        let trickled = read_from(Trickle(wire), method).await;
        assert_eq!(format!("{whole:?}"), format!("{trickled:?}"));
        whole
    }

    async fn read_from<R: AsyncReadRent>(
        io: R,
        method: &str,
    ) -> Result<(u16, Vec<u8>, bool), ResponseError> {
        read_with(io, method, None).await
    }

    /// Reads a whole response from `io` into the buffer `recycled` (a new one when `None`).
    async fn read_with<R: AsyncReadRent>(
        io: R,
        method: &str,
        recycled: Option<ReadBuf>,
    ) -> Result<(u16, Vec<u8>, bool), ResponseError> {
        let mut reader = ResponseReader::with_buffer(io, Limits::default(), recycled);
        let (head, _) = reader.read_head(method).await?;
        let mut body = Vec::new();
        while let Some(range) = reader.next_piece().await? {
            body.extend_from_slice(reader.bytes(range));
        }
        Ok((head.status, body, reader.is_reusable()))
    }

    #[test]
    fn content_length_bodies_are_read_and_the_connection_is_reusable() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let (status, body, reusable) = run(read_all(wire, "GET")).unwrap();
        assert_eq!(
            (status, body.as_slice(), reusable),
            (200, &b"hello"[..], true)
        );
    }

    #[test]
    fn chunked_bodies_are_dechunked() {
        let wire = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n";
        let (status, body, reusable) = run(read_all(wire, "POST")).unwrap();
        assert_eq!(
            (status, body.as_slice(), reusable),
            (201, &b"abcde"[..], true)
        );
    }

    #[test]
    fn interim_heads_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (status, body, reusable) = run(read_all(wire, "DELETE")).unwrap();
        assert_eq!((status, body.len(), reusable), (204, 0, true));
    }

    #[test]
    fn switching_protocols_is_refused() {
        let wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        assert!(matches!(
            run(read_all(wire, "GET")),
            Err(ResponseError::SwitchingProtocols)
        ));
    }

    #[test]
    fn close_delimited_bodies_end_at_eof_and_are_not_reusable() {
        let wire = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
        let (_, body, reusable) = run(read_all(wire, "GET")).unwrap();
        assert_eq!((body.as_slice(), reusable), (&b"until the end"[..], false));
    }

    #[test]
    fn connection_close_and_http_1_0_are_not_reusable() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
        assert!(!run(read_all(close, "GET")).unwrap().2);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
        assert!(!run(read_all(old, "GET")).unwrap().2);
        let old_keep = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
        assert!(run(read_all(old_keep, "GET")).unwrap().2);
    }

    #[test]
    fn chunked_with_content_length_is_not_reusable() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        let (_, body, reusable) = run(read_all(wire, "GET")).unwrap();
        assert_eq!((body.as_slice(), reusable), (&b"a"[..], false));
    }

    #[test]
    fn bytes_past_the_response_make_the_connection_unusable() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n";
        assert!(!run(read_from(wire, "GET")).unwrap().2);
    }

    #[test]
    fn head_responses_have_no_body() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        let (_, body, reusable) = run(read_all(wire, "HEAD")).unwrap();
        assert_eq!((body.len(), reusable), (0, true));
    }

    #[test]
    fn eof_before_any_byte_differs_from_eof_in_the_head() {
        match run(read_all(b"", "GET")) {
            Err(ResponseError::ClosedBeforeResponse) => {}
            other => panic!("unexpected {other:?}"),
        }
        match run(read_all(b"HTTP/1.1 200 OK\r\n", "GET")) {
            Err(ResponseError::ClosedInHead) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_truncated_body_is_an_error() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        match run(read_all(wire, "GET")) {
            Err(ResponseError::Body(BodyError::ContentLengthTruncated { remaining: 7 })) => {}
            other => panic!("unexpected {other:?}"),
        }
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab";
        match run(read_all(chunked, "GET")) {
            Err(ResponseError::Body(BodyError::ChunkedTruncated)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_heads_and_framing_are_errors() {
        match run(read_all(b"HTTP/1.1 2x0 OK\r\n\r\n", "GET")) {
            Err(ResponseError::Head(HeadError::InvalidStatusLine)) => {}
            other => panic!("unexpected {other:?}"),
        }
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        match run(read_all(gzip, "GET")) {
            Err(ResponseError::Framing(FramingError::UnsupportedTransferCoding { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_recycled_buffer_reads_the_next_response_like_a_new_one() {
        run(async {
            let first: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
            let mut reader = ResponseReader::new(first);
            reader.read_head("GET").await.unwrap();
            let range = reader.next_piece().await.unwrap().unwrap();
            assert_eq!(reader.bytes(range), b"hello");
            assert!(
                reader.is_body_done(),
                "a length-delimited body ends with its last byte"
            );
            assert_eq!(reader.next_piece().await.unwrap(), None);
            assert!(reader.is_reusable());
            let (_, buf) = reader.into_parts();
            assert!(buf.is_empty(), "the last piece is consumed");
            let second: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
            let (status, body, reusable) = read_with(second, "GET", Some(buf)).await.unwrap();
            assert_eq!((status, body.as_slice(), reusable), (404, &b"no"[..], true));
        });
    }

    #[test]
    fn a_recycled_buffer_drops_its_unread_bytes_and_a_small_one_is_replaced() {
        run(async {
            let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
            let mut stale = ReadBuf::new(READ_BUFFER, MAX_HEADER_LEN);
            stale.extend_from_slice(b"HTTP/1.1 500 Stale\r\n\r\n");
            let (status, body, _) = read_with(wire, "GET", Some(stale)).await.unwrap();
            assert_eq!((status, body.as_slice()), (200, &b"x"[..]));
            let small = ReadBuf::new(16, MAX_HEADER_LEN);
            let reader = ResponseReader::with_buffer(wire, Limits::default(), Some(small));
            assert!(reader.buf.capacity() >= READ_BUFFER);
        });
    }

    #[test]
    fn pieces_are_framed_in_place_with_masking() {
        run(async {
            let wire: &[u8] =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
            let mut reader = ResponseReader::new(wire);
            reader.read_head("GET").await.unwrap();
            let range = reader.next_piece().await.unwrap().unwrap();
            assert!(!reader.is_body_done(), "the last chunk is still to be read");
            let (mut near, far) = monoio::net::UnixStream::pair().unwrap();
            let outbound = RefCell::new(Outbound::client(|| [1, 2, 3, 4]));
            reader
                .write_as_frame(&mut near, range, &outbound, false)
                .await
                .unwrap();
            drop(near);
            let mut out = crate::daemon::test_support::read_to_end(far).await;
            let mut decoder = crate::proto::ws::Decoder::new(
                crate::proto::ws::Role::Server,
                crate::proto::ws::Limits::default(),
            );
            let total = out.len();
            let (used, event) = decoder.decode(&mut out).unwrap();
            assert_eq!(used, total);
            match event {
                Some(crate::proto::ws::Event::Data {
                    payload,
                    message_end: false,
                    ..
                }) => {
                    assert_eq!(payload, b"hello")
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(reader.next_piece().await.unwrap(), None);
            assert!(reader.is_reusable());
        });
    }
}
