//! The on-prem services the daemon forwards to in the interop tests, on std threads, ports from
//! 0: a TCP echo target for stream mode (protocol §5.4) and an HTTP/1.1 server for HTTP mode that
//! answers exactly as `node/https-listener.js` does, so the unchanged `http-sender.js`
//! scenarios can run against the daemon. Each reports what it saw on a channel.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::content::{content, sha256_hex};

/// Longest request head the HTTP upstream reads.
const HEAD_LIMIT: usize = 64 * 1024;
/// Most header fields in one request head.
const MAX_HEADERS: usize = 64;

/// What the echo target saw on one connection.
#[derive(Debug)]
pub(crate) struct EchoReport {
    /// Bytes read and written back.
    pub bytes: u64,
    /// Whether the connection ended with the daemon's half-close (end of file while the echo
    /// target could still write), rather than an error.
    pub saw_eof: bool,
}

/// A TCP echo target: every connection gets its bytes back until end of file, then the target
/// shuts down its side too.
pub(crate) struct EchoTarget {
    pub addr: SocketAddr,
    reports: Receiver<EchoReport>,
}

impl EchoTarget {
    pub(crate) fn start() -> EchoTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo target");
        let addr = listener.local_addr().expect("echo target address");
        let (sender, reports) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sender = sender.clone();
                thread::spawn(move || {
                    let _ = sender.send(echo(conn));
                });
            }
        });
        EchoTarget { addr, reports }
    }

    /// Waits for `count` connections to end; returns their reports.
    pub(crate) fn wait_for_reports(&self, count: usize, timeout: Duration) -> Vec<EchoReport> {
        collect(
            &self.reports,
            count,
            timeout,
            "echo target connections ended",
        )
    }
}

fn echo(mut conn: TcpStream) -> EchoReport {
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => {
                // Half-closed by the daemon: everything has been echoed, close our side too.
                let _ = conn.shutdown(Shutdown::Write);
                return EchoReport {
                    bytes,
                    saw_eof: true,
                };
            }
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
                bytes += u64::try_from(n).expect("read sizes fit in u64");
            }
            Err(_) => break,
        }
    }
    EchoReport {
        bytes,
        saw_eof: false,
    }
}

/// One request the HTTP upstream answered.
#[derive(Debug)]
pub(crate) struct SeenRequest {
    pub method: String,
    /// The request-target as received.
    pub target: String,
    pub body_len: usize,
}

/// An HTTP/1.1 upstream answering like `node/https-listener.js`:
///
/// * status: request header `x-want-status` (default 200), with the reason phrase Node's
///   `http.STATUS_CODES` has for it (what hyco-https sends as `statusDescription`);
/// * body: the request body (echo), or `content("response/N", N)` for `x-want-len: N`;
/// * headers: `x-method`, `x-url` (the request-target), `x-body-sha256`, `x-body-len` of the
///   request body, and `x-multi` when the request had it (several fields joined with `", "`,
///   as Node's `req.headers` joins them).
///
/// Connections are kept alive until the daemon closes them.
pub(crate) struct HttpUpstream {
    pub addr: SocketAddr,
    seen: Receiver<SeenRequest>,
}

impl HttpUpstream {
    pub(crate) fn start() -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP upstream");
        let addr = listener.local_addr().expect("HTTP upstream address");
        let (sender, seen) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sender = sender.clone();
                thread::spawn(move || serve(conn, &sender));
            }
        });
        HttpUpstream { addr, seen }
    }

    /// Every request answered so far (none are waited for).
    pub(crate) fn seen(&self) -> Vec<SeenRequest> {
        self.seen.try_iter().collect()
    }
}

/// Serves requests on one connection until it closes or sends something unreadable.
fn serve(conn: TcpStream, seen: &Sender<SeenRequest>) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut writer = write_half;
    while let Some(request) = read_request(&mut reader) {
        let response = answer(&request);
        // Reported before answering, so a sender holding the answer finds the report.
        let _ = seen.send(SeenRequest {
            method: request.method,
            target: request.target,
            body_len: request.body.len(),
        });
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

struct Request {
    method: String,
    target: String,
    /// Header fields by lower-case name, values in arrival order.
    headers: HashMap<String, Vec<String>>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// Reads one request; `None` at end of file or on anything malformed.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if reader.read_until(b'\n', &mut head).ok()? == 0 || head.len() > HEAD_LIMIT {
            return None;
        }
        if head[before..] == *b"\r\n" && before > 0 {
            break;
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    if !parsed.parse(&head).ok()?.is_complete() {
        return None;
    }
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    for field in parsed.headers.iter() {
        let value = String::from_utf8(field.value.to_vec()).ok()?;
        headers
            .entry(field.name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|values| values.iter().any(|v| v.eq_ignore_ascii_case("chunked")));
    // Bodies the daemon streams in from a rendezvous come chunked (protocol §6.4).
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let len: usize = match headers.get("content-length") {
            Some(values) => values.first()?.trim().parse().ok()?,
            None => 0,
        };
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Request {
        method: parsed.method?.to_owned(),
        target: parsed.path?.to_owned(),
        headers,
        body,
    })
}

/// A chunked body (RFC 9112 §7.1): size lines in hex (extensions ignored), data, CRLF; then
/// the last chunk and trailer fields up to an empty line.
fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let size_text = line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        if size == 0 {
            break;
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
        if crlf != *b"\r\n" {
            return None;
        }
    }
    loop {
        let mut trailer = String::new();
        if reader.read_line(&mut trailer).ok()? == 0 {
            return None;
        }
        if trailer == "\r\n" {
            return Some(body);
        }
    }
}

/// The response bytes for `request`, as `https-listener.js` would answer it.
fn answer(request: &Request) -> Vec<u8> {
    let status: u16 = request
        .header("x-want-status")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(200);
    let body = match request
        .header("x-want-len")
        .and_then(|s| s.trim().parse::<usize>().ok())
    {
        Some(len) => content(&format!("response/{len}"), len),
        None => request.body.clone(),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nx-method: {}\r\nx-url: {}\r\nx-body-sha256: {}\r\n\
         x-body-len: {}\r\n",
        reason_phrase(status),
        request.method,
        request.target,
        sha256_hex(&request.body),
        request.body.len()
    );
    if let Some(values) = request.headers.get("x-multi") {
        head.push_str(&format!("x-multi: {}\r\n", values.join(", ")));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Node's `http.STATUS_CODES` for the statuses the scenarios use.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Receives `count` items before `timeout`, or panics naming `what`.
fn collect<T: std::fmt::Debug>(
    from: &Receiver<T>,
    count: usize,
    timeout: Duration,
    what: &str,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match from.recv_timeout(left) {
            Ok(item) => out.push(item),
            Err(why) => panic!(
                "only {} of {count} {what} within {timeout:?} ({why:?}): {out:?}",
                out.len()
            ),
        }
    }
    out
}

#[test]
fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
    let wire = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nx-trailer: y\r\n\r\nrest";
    let mut reader = BufReader::new(&wire[..]);
    assert_eq!(read_chunked(&mut reader), Some(b"hello!".to_vec()));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("read");
    assert_eq!(rest, b"rest");
    assert_eq!(
        read_chunked(&mut BufReader::new(&b"5\r\nhelloXX"[..])),
        None
    );
}

#[test]
fn answers_mimic_the_node_https_listener() {
    let wire = b"POST /hc/p?q=1 HTTP/1.1\r\nHost: h\r\nx-multi: a\r\nx-multi: b\r\n\
        x-want-status: 418\r\nContent-Length: 3\r\n\r\nabc";
    let request = read_request(&mut BufReader::new(&wire[..])).expect("a request");
    let text = String::from_utf8(answer(&request)).expect("text");
    assert!(text.starts_with("HTTP/1.1 418 I'm a teapot\r\n"), "{text}");
    assert!(text.contains("\r\nx-method: POST\r\n"), "{text}");
    assert!(text.contains("\r\nx-url: /hc/p?q=1\r\n"), "{text}");
    assert!(text.contains("\r\nx-multi: a, b\r\n"), "{text}");
    assert!(text.contains("\r\nx-body-len: 3\r\n"), "{text}");
    assert!(text.contains(&format!("\r\nx-body-sha256: {}\r\n", sha256_hex(b"abc"))));
    assert!(text.ends_with("\r\ncontent-length: 3\r\n\r\nabc"), "{text}");
}
