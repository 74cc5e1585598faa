//! Reading HTTP/1.1 messages off a socket for the demo's sample upstream (requests) and its
//! HTTP senders (responses): heads through the sans-I/O parsers (RFC 9112 §2–§5), bodies framed
//! as RFC 9112 §6 says and collected whole up to a limit (the demo's bodies are small).

use std::fmt;
use std::io;

use monoio::io::AsyncReadRent;

use crate::io::read_buf::ReadBuf;
use crate::proto::http1::{
    parse_request_head, parse_response_head, BodyDecoder, BodyError, BodyKind, FramingError,
    HeadError, Limits, RequestHead, ResponseHead,
};

/// Read buffers of the demo's HTTP connections (a head must fit; bodies stream through).
pub const BUFFER_BYTES: usize = 64 * 1024;

/// Why a message could not be read.
#[derive(Debug)]
pub enum HttpIoError {
    /// The socket failed.
    Io(io::Error),
    /// The peer closed the connection inside a head.
    ClosedInHead,
    /// The head breaks a rule.
    Head(HeadError),
    /// The head's framing fields cannot delimit a body.
    Framing(FramingError),
    /// The body breaks its framing (e.g. ends early).
    Body(BodyError),
    /// The body is longer than the reader accepts.
    BodyTooLarge { limit: usize },
}

impl fmt::Display for HttpIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "socket error: {e}"),
            Self::ClosedInHead => f.write_str("connection closed before a complete head"),
            Self::Head(e) => write!(f, "malformed head: {e}"),
            Self::Framing(e) => write!(f, "unusable body framing: {e}"),
            Self::Body(e) => write!(f, "malformed body: {e}"),
            Self::BodyTooLarge { limit } => write!(f, "body longer than {limit} bytes"),
        }
    }
}

impl std::error::Error for HttpIoError {}

/// Reads the next request head; `Ok(None)` when the peer closed before sending a byte of it.
pub async fn read_request_head<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut ReadBuf,
) -> Result<Option<RequestHead>, HttpIoError> {
    read_head(stream, buf, |bytes| {
        parse_request_head(bytes, &Limits::default())
    })
    .await
}

/// Reads the next final response head, skipping interim (1xx) ones (RFC 9110 §15.2).
pub async fn read_response_head<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut ReadBuf,
) -> Result<ResponseHead, HttpIoError> {
    loop {
        let head = read_head(stream, buf, |bytes| {
            parse_response_head(bytes, &Limits::default())
        })
        .await?
        .ok_or(HttpIoError::ClosedInHead)?;
        if !head.is_informational() {
            return Ok(head);
        }
    }
}

async fn read_head<S, T>(
    stream: &mut S,
    buf: &mut ReadBuf,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, HeadError>,
) -> Result<Option<T>, HttpIoError>
where
    S: AsyncReadRent,
{
    loop {
        if let Some((head, len)) = parse(buf.data()).map_err(HttpIoError::Head)? {
            buf.consume(len);
            return Ok(Some(head));
        }
        match buf.fill(stream).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(HttpIoError::ClosedInHead),
            Ok(_) => {}
            Err(e) => return Err(HttpIoError::Io(e)),
        }
    }
}

/// Reads a whole body framed as `kind`; bytes after it stay in `buf` for the next message.
pub async fn read_body<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut ReadBuf,
    kind: BodyKind,
    limit: usize,
) -> Result<Vec<u8>, HttpIoError> {
    let mut decoder = BodyDecoder::new(kind);
    let mut body = Vec::new();
    loop {
        while !decoder.is_done() && !buf.is_empty() {
            let decoded = decoder.decode(buf.data()).map_err(HttpIoError::Body)?;
            if let Some(payload) = decoded.payload {
                if payload.len() > limit - body.len() {
                    return Err(HttpIoError::BodyTooLarge { limit });
                }
                body.extend_from_slice(payload);
            }
            let consumed = decoded.consumed;
            buf.consume(consumed);
            if consumed == 0 {
                break;
            }
        }
        if decoder.is_done() {
            return Ok(body);
        }
        match buf.fill(stream).await {
            Ok(0) => {
                decoder.finish().map_err(HttpIoError::Body)?;
                return Ok(body);
            }
            Ok(_) => {}
            Err(e) => return Err(HttpIoError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use monoio::io::AsyncWriteRentExt;
    use monoio::net::{TcpListener, TcpStream};

    use super::*;

    fn run<F: Future>(future: F) -> F::Output {
        crate::runtime::workers::block_on(future).expect("runtime")
    }

    /// A socket whose peer has written `wire` and closed.
    async fn socket_fed_with(wire: &'static [u8]) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writer = monoio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let _ = tcp.write_all(wire).await;
        });
        let (tcp, _) = listener.accept().await.expect("accept");
        writer.await;
        tcp
    }

    #[test]
    fn keep_alive_requests_are_read_one_after_the_other() {
        run(async {
            let mut tcp = socket_fed_with(
                b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n",
            )
            .await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let first = read_request_head(&mut tcp, &mut buf).await.expect("head");
            assert_eq!(first.map(|h| h.target).as_deref(), Some("/a"));
            let body = read_body(&mut tcp, &mut buf, BodyKind::ContentLength(3), 10).await;
            assert_eq!(body.expect("body"), b"abc");
            let second = read_request_head(&mut tcp, &mut buf).await.expect("head");
            assert_eq!(second.map(|h| h.target).as_deref(), Some("/b"));
            let end = read_request_head(&mut tcp, &mut buf)
                .await
                .expect("clean end");
            assert!(end.is_none());
        });
    }

    #[test]
    fn chunked_responses_after_an_interim_one_are_collected() {
        run(async {
            let mut tcp = socket_fed_with(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
            .await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let head = read_response_head(&mut tcp, &mut buf).await.expect("head");
            assert_eq!(head.status, 200);
            let body = read_body(&mut tcp, &mut buf, BodyKind::Chunked, 10).await;
            assert_eq!(body.expect("body"), b"abcde");
        });
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        run(async {
            let mut tcp = socket_fed_with(b"0123456789").await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let error = read_body(&mut tcp, &mut buf, BodyKind::ContentLength(10), 4).await;
            assert!(
                matches!(error, Err(HttpIoError::BodyTooLarge { limit: 4 })),
                "{error:?}"
            );
        });
    }

    #[test]
    fn a_truncated_body_is_reported() {
        run(async {
            let mut tcp = socket_fed_with(b"abc").await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let error = read_body(&mut tcp, &mut buf, BodyKind::ContentLength(5), 10).await;
            assert!(
                matches!(
                    error,
                    Err(HttpIoError::Body(BodyError::ContentLengthTruncated {
                        remaining: 2
                    }))
                ),
                "{error:?}"
            );
        });
    }

    #[test]
    fn a_connection_closed_inside_a_head_is_reported() {
        run(async {
            let mut tcp = socket_fed_with(b"HTTP/1.1 200 OK\r\nConte").await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let error = read_response_head(&mut tcp, &mut buf).await;
            assert!(matches!(error, Err(HttpIoError::ClosedInHead)), "{error:?}");
        });
    }

    #[test]
    fn a_malformed_head_is_reported() {
        run(async {
            let mut tcp = socket_fed_with(b"NOT HTTP\r\n\r\n").await;
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let error = read_response_head(&mut tcp, &mut buf).await;
            assert!(matches!(error, Err(HttpIoError::Head(_))), "{error:?}");
        });
    }
}
