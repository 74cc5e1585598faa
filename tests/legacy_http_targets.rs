//! HTTP targets that only read `Content-Length` bodies, behind a real `hycod run` and a real
//! `hycod relay` on loopback. The relay drops the sender's `Content-Length` (protocol §6.6) and
//! delivers a body over 64 KiB through a rendezvous in the pieces it read, so without request
//! buffering such a body reaches the target chunked, in small chunks. With `request_buffer`
//! (default 8 MiB) the daemon sends it with `Content-Length`; a longer body still streams,
//! chunked in chunks of at least 16 KiB.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::processes::{
    config_text, eventually, http_hybrid_connection, token, DaemonProcess, RelayProcess, PATIENCE,
};

/// How the daemon framed one request body, as the target saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    Length(usize),
    /// The sizes of the chunks, in order (the last chunk, of size 0, not included).
    Chunked(Vec<usize>),
}

/// One request as the target received it.
#[derive(Debug, Clone)]
struct Seen {
    framing: Framing,
    body: Vec<u8>,
}

/// A target like Python's `http.server` or an older application server: it reads a body only
/// by its `Content-Length`. A chunked body is refused with `411 Length Required` unless
/// `accept_chunked`, in which case it is decoded and its chunk sizes recorded. Every request
/// is answered `200` with `x-received: LEN SHA256-HEX`.
fn length_only_target(accept_chunked: bool) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let record = record.clone();
            std::thread::spawn(move || serve(conn, accept_chunked, &record));
        }
    });
    (port, seen)
}

fn serve(conn: TcpStream, accept_chunked: bool, record: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = Some(v.trim().parse::<usize>().expect("a numeric Content-Length"));
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let (framing, body) = match (length, chunked) {
            (Some(len), false) => {
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                (Framing::Length(len), body)
            }
            (None, true) if accept_chunked => {
                let Some((sizes, body)) = read_chunked(&mut reader) else {
                    return;
                };
                (Framing::Chunked(sizes), body)
            }
            (None, true) => {
                let _ = writer.write_all(
                    b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            (None, false) => (Framing::Length(0), Vec::new()),
            (Some(_), true) => panic!("both Content-Length and chunked"),
        };
        let answer = format!("x-received: {} {}\r\n", body.len(), sha256_hex(&body));
        record.lock().expect("record").push(Seen { framing, body });
        let response = format!("HTTP/1.1 200 OK\r\n{answer}Content-Length: 0\r\n\r\n");
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Decodes a chunked body (no extensions, no trailers): the chunk sizes and the body.
fn read_chunked<R: BufRead>(reader: &mut R) -> Option<(Vec<usize>, Vec<u8>)> {
    let mut sizes = Vec::new();
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.trim_end(), 16).expect("a chunk-size line");
        if size == 0 {
            let mut end = String::new();
            reader.read_line(&mut end).ok()?;
            assert_eq!(end, "\r\n", "no trailers");
            return Some((sizes, body));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
        assert_eq!(&crlf, b"\r\n");
        sizes.push(size);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// POSTs `body` through the relay with a `Content-Length`, written in 1 KiB pieces (so the
/// relay reads and relays it in small pieces); returns the raw answer.
fn relayed_post(relay_url: &str, path: &str, body: &[u8]) -> String {
    let addr = relay_url.trim_start_matches("ws://");
    let token = token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
    let head = format!(
        "POST /{path}/upload HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token.expose(),
        body.len()
    );
    let mut tcp = TcpStream::connect(addr).expect("connect to the relay");
    tcp.set_nodelay(true).expect("nodelay");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    tcp.write_all(head.as_bytes()).expect("head");
    for piece in body.chunks(1024) {
        tcp.write_all(piece).expect("body");
    }
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
}

/// A relay, a length-only target and a daemon whose hybrid connection `legacy` has `extra`
/// keys; the daemon's listeners are online when this returns.
fn setup(accept_chunked: bool, extra: &str) -> Setup {
    let relay = RelayProcess::start(&["legacy"]);
    let (port, seen) = length_only_target(accept_chunked);
    let dir = tempfile::tempdir().expect("tempdir");
    let hc = http_hybrid_connection("legacy", "legacy", &relay.url, port) + extra;
    let daemon = DaemonProcess::start(dir.path(), &config_text("5s", &[hc]), None, &[]);
    assert!(eventually(PATIENCE, || relay.listener_count("legacy") == 2));
    Setup {
        relay,
        daemon,
        seen,
        _dir: dir,
    }
}

struct Setup {
    relay: RelayProcess,
    daemon: DaemonProcess,
    seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

fn assert_received(answer: &str, body: &[u8]) {
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{} B: {}",
        body.len(),
        answer.lines().next().unwrap_or_default()
    );
    let expected = format!("x-received: {} {}", body.len(), sha256_hex(body));
    assert!(
        answer.to_ascii_lowercase().contains(&expected),
        "{} B: the target got another body: {answer}",
        body.len()
    );
}

#[test]
fn a_length_only_target_receives_empty_100_kib_and_5_mib_posts_intact() {
    let setup = setup(false, "");
    for len in [0, 100 * 1024, 5 * 1024 * 1024] {
        let body = pattern(len);
        let answer = relayed_post(&setup.relay.url, "legacy", &body);
        assert_received(&answer, &body);
        let seen = setup.seen.lock().expect("seen").pop().expect("a request");
        assert_eq!(seen.framing, Framing::Length(len));
        assert!(seen.body == body);
    }
    assert_eq!(
        setup.daemon.metric_with(
            "hycod_request_body_buffered_bytes",
            &[("hybrid_connection", "legacy")]
        ),
        Some(0.0),
        "every buffered byte is released when its request ends"
    );
}

/// Asserts that every chunk but the last is at least 16 KiB.
fn assert_large_chunks(sizes: &[usize]) {
    let (_, all_but_last) = sizes.split_last().expect("at least one chunk");
    let small: Vec<_> = all_but_last.iter().filter(|s| **s < 16 * 1024).collect();
    assert!(
        small.is_empty(),
        "{} of {} chunks under 16 KiB: {small:?}",
        small.len(),
        sizes.len()
    );
}

#[test]
fn a_body_longer_than_request_buffer_streams_chunked_in_chunks_of_at_least_16_kib() {
    let setup = setup(true, "");
    let body = pattern(20 * 1024 * 1024);
    let answer = relayed_post(&setup.relay.url, "legacy", &body);
    assert_received(&answer, &body);
    let seen = setup.seen.lock().expect("seen").pop().expect("a request");
    let Framing::Chunked(sizes) = seen.framing else {
        panic!("a 20 MiB body is streamed, not held: {:?}", seen.framing);
    };
    assert_large_chunks(&sizes);
    assert!(
        sizes[0] > 8 * 1024 * 1024,
        "the first chunk is the buffered 8 MiB: {}",
        sizes[0]
    );
    assert_eq!(sizes.iter().sum::<usize>(), body.len());
}

#[test]
fn request_buffer_zero_always_streams_in_chunks_of_at_least_16_kib() {
    let setup = setup(true, "request_buffer = 0\n");
    let body = pattern(300 * 1024);
    let answer = relayed_post(&setup.relay.url, "legacy", &body);
    assert_received(&answer, &body);
    let seen = setup.seen.lock().expect("seen").pop().expect("a request");
    let Framing::Chunked(sizes) = seen.framing else {
        panic!("request_buffer = 0 streams: {:?}", seen.framing);
    };
    assert!(sizes.len() > 1, "{sizes:?}");
    assert_large_chunks(&sizes);
}
