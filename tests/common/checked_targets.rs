//! Targets behind the daemon that check what arrives and send checked data back (std threads,
//! a thread per connection):
//!
//! - [`SourceSink`], a `target` for stream mode: each connection starts with a
//!   [`StreamHeader`]; the target verifies the `up` run that follows while it writes the `down`
//!   run in random chunk sizes, and shuts its side down only after the sender's end arrived, so
//!   a sender that sees the clean end knows the target saw all of its bytes.
//! - [`hashing_http_target`], an `http_target`: verifies each request body against the run
//!   its `x-check-up` header names and answers 200 with `x-received: COUNT SHA256` and the run
//!   `x-check-down` names as the body (422 and `x-mismatch` when the body differs). Request
//!   bodies may be `Content-Length` or chunked (the daemon streams rendezvous bodies chunked).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hycod::proto::http1::{BodyDecoder, BodyKind};

use super::checked::{chunk_len, Checker, Pool, Sent};

/// What a stream sender announces in its first 40 bytes (five little-endian u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamHeader {
    pub id: u64,
    pub up_start: u64,
    pub up_len: u64,
    pub down_start: u64,
    pub down_len: u64,
}

impl StreamHeader {
    pub(crate) const LEN: usize = 40;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let fields = [
            self.id,
            self.up_start,
            self.up_len,
            self.down_start,
            self.down_len,
        ];
        for (slot, value) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8; Self::LEN]) -> Self {
        let mut fields = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        let mut next = || fields.next().expect("five fields");
        Self {
            id: next(),
            up_start: next(),
            up_len: next(),
            down_start: next(),
            down_len: next(),
        }
    }
}

/// How the `up` run ended at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpEnd {
    /// A clean end of stream (FIN).
    Eof,
    /// A socket error (e.g. a reset).
    Error(String),
    /// More bytes arrived than announced.
    Overrun,
    /// A byte differed from what the sender sent.
    Corrupt { at: u64 },
}

/// What the stream target saw on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetReport {
    pub header: StreamHeader,
    /// `up` bytes received and verified.
    pub received: u64,
    /// SHA-256 of them.
    pub sha256: String,
    pub end: UpEnd,
    /// `down` bytes written, and the write error if writing stopped early.
    pub written: u64,
    pub write_error: Option<String>,
}

/// The stream target: its port and every connection's report.
pub(crate) struct SourceSink {
    pub port: u16,
    pub reports: mpsc::Receiver<TargetReport>,
}

impl SourceSink {
    pub(crate) fn start(pool: Arc<Pool>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (pool, tx) = (pool.clone(), tx.clone());
                std::thread::spawn(move || serve_stream(conn, pool, tx));
            }
        });
        Self { port, reports }
    }
}

fn serve_stream(mut conn: TcpStream, pool: Arc<Pool>, reports: mpsc::Sender<TargetReport>) {
    let mut raw = [0u8; StreamHeader::LEN];
    if conn.read_exact(&mut raw).is_err() {
        return;
    }
    let header = StreamHeader::decode(&raw);
    let writer = {
        let conn = conn.try_clone().expect("clone");
        let pool = pool.clone();
        std::thread::spawn(move || write_run(conn, &pool, header.down_start, header.down_len))
    };
    let mut checker = Checker::new(pool, header.up_start);
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match conn.read(&mut buf) {
            Ok(0) => break UpEnd::Eof,
            Ok(n) => {
                if checker.count() + n as u64 > header.up_len {
                    break UpEnd::Overrun;
                }
                if let Err(m) = checker.check(&buf[..n]) {
                    break UpEnd::Corrupt { at: m.at };
                }
            }
            Err(e) => break UpEnd::Error(e.kind().to_string()),
        }
    };
    let (written, write_error) = writer.join().expect("writer thread");
    let received = checker.count();
    let _ = reports.send(TargetReport {
        header,
        received,
        sha256: checker.finish(),
        end,
        written,
        write_error,
    });
    let _ = conn.shutdown(Shutdown::Write);
}

/// Writes `len` pool bytes from `start` in random chunk sizes; bytes written and the error.
fn write_run(mut conn: TcpStream, pool: &Pool, start: u64, len: u64) -> (u64, Option<String>) {
    let mut rng = fastrand::Rng::with_seed(start ^ len);
    let mut sent = Sent::new(start);
    while sent.count() < len {
        let run = pool.run(sent.pos(), chunk_len(&mut rng, len - sent.count()));
        if let Err(e) = conn.write_all(run) {
            return (sent.count(), Some(e.kind().to_string()));
        }
        sent.record(run);
    }
    (sent.count(), None)
}

/// Parses `"START"` or `"START LEN"` header values.
fn numbers(value: &str) -> Vec<u64> {
    value
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The HTTP target: returns its port. Keep-alive connections, `Content-Length` bodies.
pub(crate) fn hashing_http_target(pool: Arc<Pool>) -> u16 {
    hashing_http_target_with_latency(pool, Duration::ZERO)
}

/// [`hashing_http_target`] that answers each request `latency` after its body arrived, like a
/// backend that takes time to compute its answer (so requests are in flight at any moment).
pub(crate) fn hashing_http_target_with_latency(pool: Arc<Pool>, latency: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut reader =
                    BufReader::with_capacity(64 * 1024, conn.try_clone().expect("clone"));
                let mut writer = conn;
                while serve_http(&mut reader, &mut writer, &pool, latency).is_some() {}
            });
        }
    });
    port
}

/// Serves one request; `None` when the connection is done.
fn serve_http(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    pool: &Arc<Pool>,
    latency: Duration,
) -> Option<()> {
    let (mut length, mut chunked, mut up, mut down) = (0u64, false, 0u64, (0u64, 0u64));
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if first {
            first = false;
            continue;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            "x-check-up" => up = *numbers(value).first()?,
            "x-check-down" => {
                let n = numbers(value);
                down = (*n.first()?, *n.get(1)?);
            }
            _ => {}
        }
    }
    let mut checker = Checker::new(pool.clone(), up);
    let mut mismatch = None;
    let mut decoder = BodyDecoder::new(if chunked {
        BodyKind::Chunked
    } else {
        BodyKind::ContentLength(length)
    });
    while !decoder.is_done() {
        let buf = reader.fill_buf().ok()?;
        if buf.is_empty() {
            return None;
        }
        let decoded = decoder.decode(buf).ok()?;
        if let (None, Some(payload)) = (mismatch, decoded.payload) {
            mismatch = checker.check(payload).err();
        }
        let consumed = decoded.consumed;
        reader.consume(consumed);
    }
    // The backend's own latency: a fixed pause before it answers.
    std::thread::sleep(latency);
    let head = match mismatch {
        Some(m) => format!(
            "HTTP/1.1 422 Mismatch\r\nx-mismatch: {}\r\nContent-Length: 0\r\n\r\n",
            m.at
        ),
        None => {
            let count = checker.count();
            format!(
                "HTTP/1.1 200 OK\r\nx-received: {count} {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                checker.finish(),
                down.1
            )
        }
    };
    writer.write_all(head.as_bytes()).ok()?;
    if mismatch.is_none() {
        let (written, error) = write_run(writer.try_clone().ok()?, pool, down.0, down.1);
        if error.is_some() || written != down.1 {
            return None;
        }
    }
    Some(())
}
