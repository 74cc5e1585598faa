//! Closing a sender's connection after an error answer without destroying the answer
//! (RFC 9112 §9.6, "tear-down"; protocol §7.2 error statuses).
//!
//! When the relay answers a request early (no listener, no such hybrid connection, a refused
//! token) the sender may still be sending its body. Closing a socket whose receive queue holds
//! unread bytes makes the kernel send a reset instead of a FIN, and a reset that reaches the
//! sender before it read the answer discards the answer there: the sender sees "connection
//! reset" instead of, say, 502 NoListener. So the relay half-closes first (its answer and FIN
//! go out in order), then reads and discards what the sender still sends until the sender
//! closes, or for at most [`LINGER_TIME`] and [`LINGER_BYTES`], and only then closes.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};

/// How long the relay waits for the sender to stop sending after an error answer.
pub(super) const LINGER_TIME: Duration = Duration::from_secs(2);
/// How many bytes it reads and discards at most before it closes anyway.
pub(super) const LINGER_BYTES: u64 = 8 << 20;

/// The bounds of one lingering close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LingerLimits {
    pub time: Duration,
    pub bytes: u64,
}

impl Default for LingerLimits {
    fn default() -> Self {
        Self {
            time: LINGER_TIME,
            bytes: LINGER_BYTES,
        }
    }
}

/// How a lingering close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LingerEnd {
    /// The sender closed its side after `discarded` more bytes: a clean close.
    PeerClosed { discarded: u64 },
    /// The sender kept sending past the byte limit.
    ByteLimit,
    /// The sender neither closed nor stopped within the time limit.
    TimeLimit,
    /// The half-close or a read failed (the sender is gone).
    Failed,
}

/// Half-closes `stream` and discards what the sender still sends, within `limits`; the caller
/// drops (closes) the stream afterwards.
pub(super) async fn linger<S: AsyncReadRent + AsyncWriteRent>(
    stream: &mut S,
    limits: LingerLimits,
) -> LingerEnd {
    if stream.shutdown().await.is_err() {
        return LingerEnd::Failed;
    }
    let drain = async {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut discarded = 0u64;
        loop {
            buf.clear();
            let (result, back) = stream.read(buf).await;
            buf = back;
            match result {
                Ok(0) => return LingerEnd::PeerClosed { discarded },
                Ok(n) => {
                    discarded += n as u64;
                    if discarded > limits.bytes {
                        return LingerEnd::ByteLimit;
                    }
                }
                Err(_) => return LingerEnd::Failed,
            }
        }
    };
    monoio::time::timeout(limits.time, drain)
        .await
        .unwrap_or(LingerEnd::TimeLimit)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::Shutdown;

    use monoio::io::AsyncWriteRentExt;
    use monoio::net::TcpListener;

    use super::*;

    /// The body the tests' senders send: fits in the loopback socket buffers, so it sits
    /// there unread.
    const BODY: usize = 64 * 1024;

    /// A server that answers without reading the request body, then lingers (or just closes);
    /// the client reads only after that. The client's view of the answer and how the linger
    /// ended.
    fn answer_early(lingering: bool, limits: LingerLimits) -> (String, Option<LingerEnd>) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().expect("addr");
        let (sent_tx, sent) = std::sync::mpsc::channel();
        let (closing_tx, closing) = std::sync::mpsc::channel();
        let client = std::thread::spawn(move || {
            let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
            let mut request = b"POST /x HTTP/1.1\r\n\r\n".to_vec();
            request.resize(request.len() + BODY, b'b');
            tcp.write_all(&request).expect("request sent");
            sent_tx.send(()).expect("server waits");
            closing.recv().expect("server closes");
            let mut answer = Vec::new();
            let got = tcp.read_to_end(&mut answer).map(|_| answer);
            let _ = tcp.shutdown(Shutdown::Both);
            match got {
                Ok(answer) => String::from_utf8_lossy(&answer).into_owned(),
                Err(e) => format!("error: {}", e.kind()),
            }
        });
        let end = crate::runtime::workers::block_on(async move {
            std_listener.set_nonblocking(true).expect("nonblocking");
            let listener = TcpListener::from_std(std_listener).expect("listener");
            let (mut stream, _) = listener.accept().await.expect("accept");
            sent.recv().expect("client sent");
            let answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n".to_vec();
            let (written, _) = stream.write_all(answer).await;
            written.expect("answer");
            if lingering {
                closing_tx.send(()).expect("client waits");
                Some(linger(&mut stream, limits).await)
            } else {
                drop(stream);
                closing_tx.send(()).expect("client waits");
                None
            }
        })
        .expect("runtime");
        (client.join().expect("client"), end)
    }

    #[test]
    fn without_lingering_unread_bytes_reset_the_connection_and_lose_the_answer() {
        let (answer, _) = answer_early(false, LingerLimits::default());
        assert!(!answer.starts_with("HTTP/1.1 502"), "{answer}");
    }

    #[test]
    fn lingering_delivers_the_answer_and_ends_when_the_sender_closes() {
        let (answer, end) = answer_early(true, LingerLimits::default());
        assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway"), "{answer}");
        assert!(
            matches!(end, Some(LingerEnd::PeerClosed { discarded }) if discarded > 0),
            "{end:?}"
        );
    }

    #[test]
    fn lingering_stops_at_the_byte_limit() {
        let limits = LingerLimits {
            time: Duration::from_secs(30),
            bytes: 1024,
        };
        let (_, end) = answer_early(true, limits);
        assert_eq!(end, Some(LingerEnd::ByteLimit));
    }

    #[test]
    fn lingering_stops_at_the_time_limit_when_the_sender_stays_silent() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().expect("addr");
        // Connected, sends nothing, never closes until the test ends.
        let silent = std::net::TcpStream::connect(addr).expect("connect");
        let end = crate::runtime::workers::block_on(async move {
            std_listener.set_nonblocking(true).expect("nonblocking");
            let listener = TcpListener::from_std(std_listener).expect("listener");
            let (mut stream, _) = listener.accept().await.expect("accept");
            let limits = LingerLimits {
                time: Duration::from_millis(100),
                bytes: LINGER_BYTES,
            };
            linger(&mut stream, limits).await
        })
        .expect("runtime");
        drop(silent);
        assert_eq!(end, LingerEnd::TimeLimit);
    }
}
