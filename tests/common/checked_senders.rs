//! Senders of checked data through the relay (the other end of [`super::checked_targets`]):
//!
//! - [`send_stream`]: one WebSocket stream (protocol §5): the [`StreamHeader`], the `up` run in
//!   frames of random size, then Close(1000); at the same time it verifies the `down` run and
//!   waits for the clean close that follows it (protocol §5.3 half-close).
//! - [`HttpSender`]: relayed HTTP requests (protocol §7.2) on one keep-alive connection, a checked
//!   body each way.
//!
//! Every outcome is classified: complete, refused (never started), cut (the sender saw an
//! error) or corrupt (a byte differed: the one outcome that must never happen).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hycod::io::stream::Stream;
use hycod::io::ws_reader::{ReadError, WsEvent, WsReader};
use hycod::proto::http1::chunked_decoder::ChunkedDecoder;
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf, Splitable};

use super::checked::{chunk_len, Checker, Pool, Sent};
use super::checked_targets::StreamHeader;
use super::{dialer, mask};

/// How one checked exchange ended, as its sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything was sent and everything expected arrived, verified.
    Complete {
        /// SHA-256 of the bytes sent, to compare with what the target received.
        up_sha256: String,
        down: u64,
    },
    /// The exchange never started (connect refused, 404 without a listener, 502/503/504).
    Refused(String),
    /// The sender saw an error part-way; `down` bytes arrived and were verified before it.
    Cut { down: u64, error: String },
    /// A byte differed from what the other side sent.
    Corrupt { at: u64 },
}

/// One exchange's outcome and duration.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Streams `header.up_len` bytes to `path` on the relay and verifies `header.down_len` back.
pub(crate) async fn send_stream(
    relay_url: &str,
    path: &str,
    pool: Arc<Pool>,
    header: StreamHeader,
) -> Report {
    let started = Instant::now();
    let outcome = stream_outcome(relay_url, path, pool, header).await;
    Report {
        outcome,
        elapsed: started.elapsed(),
    }
}

async fn stream_outcome(
    relay_url: &str,
    path: &str,
    pool: Arc<Pool>,
    header: StreamHeader,
) -> Outcome {
    let url = format!("{relay_url}/$hc/{path}?sb-hc-action=connect");
    let token = super::processes::token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
    let conn = match dialer()
        .connect(&url, &[("ServiceBusAuthorization", token.expose())], None)
        .await
    {
        Ok(conn) => conn,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let (read, write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * 1024,
    );
    let writer = monoio::spawn(write_up(write, pool.clone(), header));
    let mut checker = Checker::new(pool, header.down_start);
    let down = loop {
        match reader.next_event().await {
            Ok(WsEvent::Data { payload, .. }) => {
                if checker.count() + payload.len() as u64 > header.down_len {
                    break Err(format!("more than {} bytes came back", header.down_len));
                }
                if let Err(m) = checker.check(reader.bytes(payload)) {
                    return Outcome::Corrupt { at: m.at };
                }
            }
            Ok(WsEvent::Ping(_) | WsEvent::Pong(_)) => {}
            Ok(WsEvent::Close { code, reason }) => {
                if code == Some(CloseCode::NORMAL) && checker.count() == header.down_len {
                    break Ok(());
                }
                break Err(format!(
                    "closed with {code:?} {:?} after {} of {} bytes",
                    reader.text(reason),
                    checker.count(),
                    header.down_len
                ));
            }
            Err(e) => break Err(read_error(&e)),
        }
    };
    let (mut write, up) = writer.await;
    let _ = write.shutdown().await;
    match (down, up) {
        (Ok(()), Ok(up_sha256)) => Outcome::Complete {
            up_sha256,
            down: checker.count(),
        },
        (Err(error), _) | (_, Err(error)) => Outcome::Cut {
            down: checker.count(),
            error,
        },
    }
}

fn read_error(e: &ReadError) -> String {
    format!("read: {e}")
}

/// Writes the header, the `up` run in random frames, and Close(1000); the write half back and
/// the SHA-256 of the run, or the write error.
async fn write_up(
    mut write: OwnedWriteHalf<Stream>,
    pool: Arc<Pool>,
    header: StreamHeader,
) -> (OwnedWriteHalf<Stream>, Result<String, String>) {
    let mut rng = fastrand::Rng::with_seed(header.up_start ^ header.id);
    let mut sent = Sent::new(header.up_start);
    let mut frame = Vec::new();
    push_frame(&mut frame, true, OpCode::Binary, &header.encode(), mask()).expect("frame");
    loop {
        let (result, buf) = write.write_all(frame).await;
        if let Err(e) = result {
            return (write, Err(format!("write: {e}")));
        }
        frame = buf;
        frame.clear();
        if sent.count() == header.up_len {
            break;
        }
        let run = pool.run(
            sent.pos(),
            chunk_len(&mut rng, header.up_len - sent.count()),
        );
        push_frame(&mut frame, true, OpCode::Binary, run, mask()).expect("frame");
        sent.record(run);
    }
    push_close(&mut frame, CloseCode::NORMAL, "", mask()).expect("close frame");
    let (result, _) = write.write_all(frame).await;
    if let Err(e) = result {
        return (write, Err(format!("write close: {e}")));
    }
    (write, Ok(sent.finish()))
}

/// What one relayed HTTP request carries: `up_len` pool bytes from `up_start` as its body,
/// and asks for `down_len` from `down_start` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpPlan {
    pub up_start: u64,
    pub up_len: u64,
    pub down_start: u64,
    pub down_len: u64,
}

/// Relayed HTTP requests to one hybrid connection over a keep-alive connection (reopened
/// after an error or a `Connection: close`).
pub(crate) struct HttpSender {
    addr: String,
    path: String,
    token: String,
    pool: Arc<Pool>,
    conn: Option<BufReader<TcpStream>>,
    rng: fastrand::Rng,
    /// Timeout on each socket read and write.
    pub io_timeout: Duration,
}

impl HttpSender {
    pub(crate) fn new(relay_url: &str, path: &str, pool: Arc<Pool>, seed: u64) -> Self {
        let token =
            super::processes::token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
        Self {
            addr: relay_url.trim_start_matches("ws://").to_owned(),
            path: path.to_owned(),
            token: token.expose().to_owned(),
            pool,
            conn: None,
            rng: fastrand::Rng::with_seed(seed),
            io_timeout: Duration::from_secs(60),
        }
    }

    /// Drops the keep-alive connection; the next request opens a new one.
    pub(crate) fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Sends one request and checks its answer.
    pub(crate) fn send(&mut self, plan: HttpPlan) -> Report {
        let started = Instant::now();
        let outcome = match self.exchange(plan) {
            Ok(outcome) => outcome,
            Err(outcome) => {
                self.conn = None;
                outcome
            }
        };
        Report {
            outcome,
            elapsed: started.elapsed(),
        }
    }

    fn connect(&mut self) -> Result<&mut BufReader<TcpStream>, Outcome> {
        if self.conn.is_none() {
            let tcp = TcpStream::connect(&self.addr)
                .map_err(|e| Outcome::Refused(format!("connect: {e}")))?;
            tcp.set_read_timeout(Some(self.io_timeout))
                .expect("timeout");
            tcp.set_write_timeout(Some(self.io_timeout))
                .expect("timeout");
            self.conn = Some(BufReader::with_capacity(64 * 1024, tcp));
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    fn exchange(&mut self, plan: HttpPlan) -> Result<Outcome, Outcome> {
        let head = format!(
            "POST /{}/check HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nx-check-up: {}\r\nx-check-down: {} {}\r\n\r\n",
            self.path, self.token, plan.up_len, plan.up_start, plan.down_start, plan.down_len
        );
        let pool = self.pool.clone();
        let mut rng = fastrand::Rng::with_seed(self.rng.u64(..));
        let conn = self.connect()?;
        let cut = |stage: &str, e: std::io::Error| Outcome::Cut {
            down: 0,
            error: format!("{stage}: {e}"),
        };
        conn.get_mut()
            .write_all(head.as_bytes())
            .map_err(|e| cut("send head", e))?;
        let mut sent = Sent::new(plan.up_start);
        while sent.count() < plan.up_len {
            let run = pool.run(sent.pos(), chunk_len(&mut rng, plan.up_len - sent.count()));
            conn.get_mut()
                .write_all(run)
                .map_err(|e| cut("send body", e))?;
            sent.record(run);
        }
        let up_sha256 = sent.finish();
        let answer = read_head(conn).map_err(|e| cut("read head", e))?;
        if answer.status != 200 {
            let refused = Outcome::Refused(format!("status {}", answer.status));
            return if answer.status == 422 {
                Ok(Outcome::Corrupt {
                    at: answer.mismatch.unwrap_or(0),
                })
            } else {
                Err(refused)
            };
        }
        if answer.received != Some((plan.up_len, up_sha256.clone())) {
            return Ok(Outcome::Corrupt { at: 0 });
        }
        let mut checker = Checker::new(pool, plan.down_start);
        let body = if answer.chunked {
            read_chunked(conn, &mut checker, plan.down_len)
        } else {
            read_sized(
                conn,
                &mut checker,
                answer.length.unwrap_or(0),
                plan.down_len,
            )
        };
        match body {
            Ok(()) if checker.count() == plan.down_len => {}
            Ok(()) => {
                return Err(Outcome::Cut {
                    down: checker.count(),
                    error: format!("body ended after {} of {}", checker.count(), plan.down_len),
                })
            }
            Err(BodyFailure::Corrupt(at)) => return Ok(Outcome::Corrupt { at }),
            Err(BodyFailure::Cut(error)) => {
                return Err(Outcome::Cut {
                    down: checker.count(),
                    error,
                })
            }
        }
        if answer.close {
            self.conn = None;
        }
        Ok(Outcome::Complete {
            up_sha256,
            down: checker.count(),
        })
    }
}

/// The parts of a response head the sender checks.
struct Answer {
    status: u16,
    chunked: bool,
    length: Option<u64>,
    close: bool,
    received: Option<(u64, String)>,
    mismatch: Option<u64>,
}

fn read_head(conn: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
    let mut answer = Answer {
        status: 0,
        chunked: false,
        length: None,
        close: false,
        received: None,
        mismatch: None,
    };
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(eof());
    }
    answer.status = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, line.clone()))?;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(eof());
        }
        if line == "\r\n" {
            return Ok(answer);
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "transfer-encoding" => answer.chunked = value.eq_ignore_ascii_case("chunked"),
            "content-length" => answer.length = value.parse().ok(),
            "connection" => answer.close = value.eq_ignore_ascii_case("close"),
            "x-mismatch" => answer.mismatch = value.parse().ok(),
            "x-received" => {
                answer.received = value
                    .split_once(' ')
                    .and_then(|(n, sha)| Some((n.parse().ok()?, sha.to_owned())));
            }
            _ => {}
        }
    }
}

enum BodyFailure {
    Cut(String),
    Corrupt(u64),
}

fn read_chunked(
    conn: &mut BufReader<TcpStream>,
    checker: &mut Checker,
    expected: u64,
) -> Result<(), BodyFailure> {
    let mut decoder = ChunkedDecoder::new();
    while !decoder.is_done() {
        let buf = conn
            .fill_buf()
            .map_err(|e| BodyFailure::Cut(format!("read body: {e}")))?;
        if buf.is_empty() {
            return Err(BodyFailure::Cut("body ended before its last chunk".into()));
        }
        let decoded = decoder
            .decode(buf)
            .map_err(|e| BodyFailure::Cut(format!("chunked: {e}")))?;
        if let Some(payload) = decoded.payload {
            if checker.count() + payload.len() as u64 > expected {
                return Err(BodyFailure::Cut(format!(
                    "more than {expected} bytes came back"
                )));
            }
            checker
                .check(payload)
                .map_err(|m| BodyFailure::Corrupt(m.at))?;
        }
        let consumed = decoded.consumed;
        conn.consume(consumed);
    }
    Ok(())
}

fn read_sized(
    conn: &mut BufReader<TcpStream>,
    checker: &mut Checker,
    length: u64,
    expected: u64,
) -> Result<(), BodyFailure> {
    if length != expected {
        return Err(BodyFailure::Cut(format!(
            "length {length}, expected {expected}"
        )));
    }
    let mut buf = vec![0u8; 64 * 1024];
    while checker.count() < length {
        let want = usize::try_from(length - checker.count())
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = conn
            .read(&mut buf[..want])
            .map_err(|e| BodyFailure::Cut(format!("read body: {e}")))?;
        if n == 0 {
            return Err(BodyFailure::Cut("body ended early".into()));
        }
        checker
            .check(&buf[..n])
            .map_err(|m| BodyFailure::Corrupt(m.at))?;
    }
    Ok(())
}
