//! The daemon's relayed-HTTP mode end to end over real sockets: a raw HTTP/1.1 sender → the
//! in-process relay (2 workers) → a control channel driven like the daemon's driver drives it
//! → `serve_request` → a small upstream HTTP server written here (std threads) — and back.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hycod::config::{Config, HttpTarget};
use hycod::daemon::listener::context::{ControlWriter, Hc, HcContext};
use hycod::daemon::listener::http::serve_request;
use hycod::daemon::metrics::{BYTES, RENDEZVOUS_SECONDS, REQUESTS, REQUESTS_IN_FLIGHT};
use hycod::io::read_buf::ReadBuf;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::metrics::Shard;
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::hc::messages::{Request, Response};
use hycod::proto::http1::{
    parse_request_head, parse_response_head, request_body_kind, response_body_kind, BodyDecoder,
    Headers, Limits as HeadLimits,
};
use hycod::proto::ws::{DataKind, Decoder, Event, Limits, Role};
use hycod::tls::{client_config, server_config, TrustRoots};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};

mod common;

use common::{dialer, run, KEY};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Relay, tokens, runtime

fn relay() -> hycod::relay::RelayHandle {
    let root = format!("root={KEY}");
    let mut flags = vec![
        "--workers",
        "2",
        "--rule",
        &root,
        "--hybrid-connection",
        "hyco",
    ];
    flags.extend_from_slice(common::STRICT_RELAY);
    common::relay(&flags)
}

fn token() -> String {
    common::token_for("root", KEY, "hyco")
}

/// An `http_target` as the configuration parses it.
fn http_target(url: &str) -> HttpTarget {
    let text = format!(
        "[[hybrid_connection]]\nname = \"t\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco\"\nhttp_target = \"{url}\"\n"
    );
    let config = Config::from_toml_str(&text, std::path::Path::new(".")).expect("config");
    config.hybrid_connections[0]
        .http_target
        .clone()
        .expect("http_target")
}

fn context(target: Option<String>, deadline: Duration, tls: TrustRoots) -> Hc {
    Rc::new(HcContext {
        name: "test".into(),
        entity_path: "hyco".into(),
        target: None,
        port_targets: None,
        http_target: target.as_deref().map(http_target),
        dialer: dialer(),
        rendezvous: hycod::proto::hc::rendezvous_address::RendezvousPolicy::new(
            "ws://127.0.0.1",
            &[],
        ),
        // Under the strict relay's idle cut (common::STRICT_RELAY), as the daemon's are.
        stream_ping_interval: Some(Duration::from_secs(1)),
        upstream_tls: client_config(&tls).expect("tls"),
        upstream_pool: RefCell::new(Vec::new()),
        upstream_deadline: deadline,
        request_buffer: hycod::config::DEFAULT_REQUEST_BUFFER,
        metrics: Rc::new(RefCell::new(Shard::new())),
        series: Default::default(),
        limits: hycod::config::Limits::default(),
        admission: hycod::daemon::listener::admission::Admission::standalone(
            &hycod::config::Limits::default(),
        ),
        detached: std::cell::Cell::new(false),
    })
}

fn counter(hc: &Hc, desc: &hycod::metrics::MetricDesc, label: &str) -> u64 {
    hc.metrics
        .borrow()
        .snapshot()
        .counter(desc, &["test", label])
        .unwrap_or(0)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// The upstream HTTP server

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Headers,
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Default)]
struct UpstreamState {
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

struct Upstream {
    addr: SocketAddr,
    state: Arc<UpstreamState>,
}

impl Upstream {
    fn url(&self) -> String {
        format!("http://{}/base/", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// A gate the `/gated` answer waits on before its second chunk.
    fn gate(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        *self.state.gate.lock().expect("lock") = Some(rx);
        tx
    }
}

/// Starts the upstream; `tls` wraps every connection in TLS.
fn upstream(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(UpstreamState::default());
    let shared = state.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let shared = shared.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                None => serve_connection(tcp, &shared),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config).expect("tls");
                    serve_connection(rustls::StreamOwned::new(conn, tcp), &shared)
                }
            });
        }
    });
    Upstream { addr, state }
}

/// Reads more bytes into `buf`; false at EOF or error.
fn fill<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * KIB];
    match s.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn serve_connection<S: Read + Write>(mut s: S, state: &UpstreamState) {
    let mut buf = Vec::new();
    loop {
        let (head, used) = loop {
            if let Some(parsed) =
                parse_request_head(&buf, &HeadLimits::default()).expect("request head")
            {
                break parsed;
            }
            if !fill(&mut s, &mut buf) {
                return;
            }
        };
        let head_text = String::from_utf8_lossy(&buf[..used]).into_owned();
        buf.drain(..used);
        let mut decoder = BodyDecoder::new(request_body_kind(&head).expect("framing"));
        let mut body = Vec::new();
        while !decoder.is_done() {
            let step = decoder.decode(&buf).expect("request body");
            if let Some(payload) = step.payload {
                body.extend_from_slice(payload);
            }
            let consumed = step.consumed;
            buf.drain(..consumed);
            if consumed == 0 && !decoder.is_done() && !fill(&mut s, &mut buf) {
                return;
            }
        }
        let seen = Seen {
            method: head.method.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            head: head_text,
            body,
        };
        state.seen.lock().expect("lock").push(seen.clone());
        if !respond(&mut s, &seen, state) {
            return;
        }
    }
}

fn write_chunked<S: Write>(s: &mut S, body: &[u8]) {
    for chunk in body.chunks(16 * KIB) {
        let _ = write!(s, "{:x}\r\n", chunk.len());
        let _ = s.write_all(chunk);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
}

/// Answers by path (after `/base`); false to close the connection.
fn respond<S: Write>(s: &mut S, seen: &Seen, state: &UpstreamState) -> bool {
    let path = seen.target.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/base").unwrap_or(path);
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (action, arg) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let number = || arg.parse::<usize>().expect("number in path");
    let mut out = Vec::new();
    let keep = match action {
        "echo" => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Method: {}\r\n\r\n",
                seen.body.len(),
                seen.method
            );
            out.extend_from_slice(&seen.body);
            true
        }
        "echo-chunked" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            write_chunked(s, &seen.body);
            true
        }
        "bytes" => {
            let body = pattern(number());
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.extend_from_slice(&body);
            true
        }
        "bytes-chunked" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            write_chunked(s, &pattern(number()));
            true
        }
        "status" => {
            let code = number();
            if code == 204 || code == 304 {
                let _ = write!(out, "HTTP/1.1 {code} Custom Reason\r\n\r\n");
            } else {
                let body = format!("status {code}");
                let _ = write!(
                    out,
                    "HTTP/1.1 {code} Custom Reason\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            true
        }
        "multi" => {
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Multi: 1\r\nSet-Cookie: b=2\r\nX-Multi: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
            );
            true
        }
        "hang" => return hang_until_released(state),
        "break" => {
            let n = number();
            let _ = write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 * n);
            out.extend_from_slice(&pattern(n));
            let _ = s.write_all(&out);
            return false;
        }
        "close-after" => {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = s.write_all(&out);
            return false;
        }
        "gated" => {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
            let _ = s.flush();
            let gate = state.gate.lock().expect("lock").take().expect("gate set");
            let _ = gate.recv();
            let _ = s.write_all(b"6\r\nsecond\r\n0\r\n\r\n");
            true
        }
        other => panic!("unknown upstream action {other:?}"),
    };
    let _ = s.write_all(&out);
    let _ = s.flush();
    keep
}

/// `/hang`: never answers; the connection closes when the test drops the gate's sender.
fn hang_until_released(state: &UpstreamState) -> bool {
    let gate = state.gate.lock().expect("lock").take();
    if let Some(gate) = gate {
        let _ = gate.recv();
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The daemon side: a control channel driven as the daemon's driver drives it

/// Reads one whole data message; `None` when the channel ends.
async fn read_message<R: AsyncReadRent>(reader: &mut WsReader<R>) -> Option<(DataKind, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        match reader.next_event().await.ok()? {
            WsEvent::Data {
                kind,
                payload,
                message_end,
                ..
            } => {
                out.extend_from_slice(reader.bytes(payload));
                if message_end {
                    return Some((kind, out));
                }
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Close { .. } => return None,
        }
    }
}

/// Registers a listener for `hc` and serves every request it receives; returns the number of
/// units queued on the control channel so far.
async fn start_daemon(relay_url: &str, hc: Hc) -> Rc<Cell<usize>> {
    let conn = dialer()
        .connect(
            &format!("{relay_url}/$hc/hyco?sb-hc-action=listen"),
            &[("ServiceBusAuthorization", &token())],
            None,
        )
        .await
        .expect("listener registered");
    let (read, mut write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * KIB,
    );
    let (control, mut queue) = ControlWriter::new();
    let units = Rc::new(Cell::new(0));
    let counted = units.clone();
    monoio::spawn(async move {
        while let Some(unit) = queue.recv().await {
            counted.set(counted.get() + 1);
            if write.write_all(unit).await.0.is_err() {
                return;
            }
        }
    });
    monoio::spawn(async move {
        while let Some((_, text)) = read_message(&mut reader).await {
            let Ok(ControlMessage::Request(request)) = parse_control_message(&text) else {
                continue;
            };
            let body = if request.has_body() {
                Some(read_message(&mut reader).await.expect("body message").1)
            } else {
                None
            };
            monoio::spawn(serve_request(hc.clone(), request, body, control.clone()));
        }
    });
    units
}

// ---------------------------------------------------------------------------------------------
// The sender

struct Answer {
    status: u16,
    reason: String,
    headers: Headers,
    body: Vec<u8>,
    complete: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {}\r\n",
        token()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads a response head from `tcp`.
async fn read_answer_head(
    tcp: &mut monoio::net::TcpStream,
    buf: &mut ReadBuf,
) -> hycod::proto::http1::ResponseHead {
    loop {
        if let Some((head, used)) =
            parse_response_head(buf.data(), &HeadLimits::default()).expect("head")
        {
            buf.consume(used);
            return head;
        }
        assert!(
            buf.fill(tcp).await.expect("read") > 0,
            "closed before the head"
        );
    }
}

/// Sends one request to the relay and reads the whole answer.
async fn send(addr: SocketAddr, bytes: Vec<u8>) -> Answer {
    let mut tcp = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    let mut buf = ReadBuf::new(MIB, 0);
    send_on(&mut tcp, &mut buf, bytes).await
}

/// Sends one request on a kept-alive connection and reads the whole answer.
async fn send_on(tcp: &mut monoio::net::TcpStream, buf: &mut ReadBuf, bytes: Vec<u8>) -> Answer {
    tcp.write_all(bytes).await.0.expect("send");
    let head = read_answer_head(tcp, buf).await;
    let mut decoder = BodyDecoder::new(response_body_kind("GET", &head).expect("framing"));
    let mut body = Vec::new();
    let mut complete = true;
    while !decoder.is_done() {
        if !buf.is_empty() {
            let step = decoder.decode(buf.data()).expect("body");
            if let Some(payload) = step.payload {
                body.extend_from_slice(payload);
            }
            let used = step.consumed;
            buf.consume(used);
            if used > 0 {
                continue;
            }
        }
        if buf.fill(tcp).await.unwrap_or(0) == 0 {
            complete = decoder.finish().is_ok();
            break;
        }
    }
    Answer {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        body,
        complete,
    }
}

const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn methods_and_small_bodies_round_trip_on_the_control_channel() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let units = start_daemon(&relay.url, hc.clone()).await;
        let mut expected_seen = 0;
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for size in [0, KIB] {
                let body = pattern(size);
                let before = units.get();
                let answer = send(
                    relay.local_addr,
                    request(
                        method,
                        "/hyco/echo?q=1&x=%2F+y&&z",
                        &[("X-Multi", "a"), ("X-Multi", "b"), ("X-Custom", "v")],
                        &body,
                    ),
                )
                .await;
                assert_eq!(
                    (answer.status, answer.reason.as_str()),
                    (200, "OK"),
                    "{method} {size}"
                );
                assert_eq!(
                    sha256(&answer.body),
                    sha256(&body),
                    "{method} {size}: echoed body"
                );
                assert_eq!(answer.header("x-method").as_deref(), Some(method));
                assert!(answer.header("via").is_some(), "the relay adds Via");
                assert_eq!(
                    units.get(),
                    before + 1,
                    "{method} {size}: answered on the control channel"
                );

                let seen = up.seen();
                expected_seen += 1;
                assert_eq!(seen.len(), expected_seen);
                let got = seen.last().expect("seen");
                assert_eq!(got.method, method);
                assert_eq!(got.target, "/base/echo?q=1&x=%2F+y&&z", "query byte-exact");
                assert_eq!(
                    got.header("host"),
                    Some(up.addr.to_string()),
                    "the target's own Host"
                );
                assert_eq!(got.headers.count("host"), 1);
                assert_eq!(got.header("x-multi").as_deref(), Some("a, b"));
                assert_eq!(got.header("x-custom").as_deref(), Some("v"));
                assert!(got.header("servicebusauthorization").is_none());
                assert!(got.header("transfer-encoding").is_none());
                let expected_length = if size > 0 || method == "POST" || method == "PUT" {
                    Some(size.to_string())
                } else {
                    None
                };
                assert_eq!(
                    got.header("content-length"),
                    expected_length,
                    "{method} {size}"
                );
                assert_eq!(sha256(&got.body), sha256(&body));
            }
        }
        assert_eq!(
            up.connections(),
            1,
            "one keep-alive connection served every request"
        );
        assert_eq!(hc.upstream_pool.borrow().len(), 1);
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 8);
        let snapshot = hc.metrics.borrow().snapshot();
        assert_eq!(snapshot.gauge(&REQUESTS_IN_FLIGHT, &["test"]), Some(0));
        assert_eq!(counter(&hc, &BYTES, "to_target"), 4 * KIB as u64);
        assert_eq!(counter(&hc, &BYTES, "to_relay"), 4 * KIB as u64);
    });
}

#[test]
fn large_bodies_stream_through_rendezvous_both_ways() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let units = start_daemon(&relay.url, hc.clone()).await;
        for size in [100 * KIB, 8 * MIB] {
            let body = pattern(size);
            let before = units.get();
            let answer = send(relay.local_addr, request("POST", "/hyco/echo", &[], &body)).await;
            assert_eq!(answer.status, 200);
            assert!(answer.complete);
            assert_eq!(answer.body.len(), size);
            assert_eq!(sha256(&answer.body), sha256(&body), "{size} bytes echoed");
            assert_eq!(
                units.get(),
                before,
                "request and answer went through the rendezvous"
            );
            let seen = up.seen();
            let got = seen.last().expect("seen");
            assert_eq!(
                got.header("content-length"),
                Some(size.to_string()),
                "held within request_buffer and sent with its length"
            );
            assert!(got.header("transfer-encoding").is_none());
            assert_eq!(
                sha256(&got.body),
                sha256(&body),
                "{size} bytes reached the target"
            );
        }
        for size in [100 * KIB, 8 * MIB] {
            let before = units.get();
            let answer = send(
                relay.local_addr,
                request("GET", &format!("/hyco/bytes/{size}"), &[], &[]),
            )
            .await;
            assert_eq!(answer.status, 200);
            assert_eq!(
                sha256(&answer.body),
                sha256(&pattern(size)),
                "{size} bytes upgraded"
            );
            assert_eq!(
                units.get(),
                before,
                "answered through the request's address"
            );
        }
        let large_in_small_out = send(
            relay.local_addr,
            request("PUT", "/hyco/status/201", &[], &pattern(MIB)),
        )
        .await;
        assert_eq!(
            (
                large_in_small_out.status,
                large_in_small_out.body.as_slice()
            ),
            (201, &b"status 201"[..])
        );
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 5);
        assert_eq!(counter(&hc, &REQUESTS, "aborted"), 0);
    });
}

#[test]
fn a_keep_alive_senders_later_requests_ride_the_rendezvous_its_large_request_opened() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let units = start_daemon(&relay.url, hc.clone()).await;
        let mut tcp = monoio::net::TcpStream::connect(relay.local_addr)
            .await
            .expect("connect");
        let mut buf = ReadBuf::new(MIB, 0);
        let before = units.get();
        let large = pattern(100 * KIB);
        let answer = send_on(
            &mut tcp,
            &mut buf,
            request("POST", "/hyco/echo", &[], &large),
        )
        .await;
        assert_eq!((answer.status, sha256(&answer.body)), (200, sha256(&large)));
        let answer = send_on(
            &mut tcp,
            &mut buf,
            request("GET", "/hyco/echo?n=2", &[], &[]),
        )
        .await;
        assert_eq!(answer.status, 200);
        let small = pattern(KIB);
        let answer = send_on(
            &mut tcp,
            &mut buf,
            request("POST", "/hyco/echo", &[], &small),
        )
        .await;
        assert_eq!((answer.status, sha256(&answer.body)), (200, sha256(&small)));
        let answer = send_on(
            &mut tcp,
            &mut buf,
            request("GET", &format!("/hyco/bytes/{MIB}"), &[], &[]),
        )
        .await;
        assert_eq!(
            (answer.status, sha256(&answer.body)),
            (200, sha256(&pattern(MIB)))
        );
        let answer = send_on(
            &mut tcp,
            &mut buf,
            request("PUT", "/hyco/status/201", &[], &large),
        )
        .await;
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (201, &b"status 201"[..])
        );
        assert_eq!(
            units.get(),
            before,
            "every answer went over the rendezvous, none on the control channel"
        );
        let opened = hc
            .metrics
            .borrow()
            .snapshot()
            .histogram(&RENDEZVOUS_SECONDS, &["test"])
            .map_or(0, |h| h.count());
        assert_eq!(opened, 1, "one rendezvous carried all five requests");
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 5);
        let targets: Vec<String> = up.seen().iter().map(|s| s.target.clone()).collect();
        assert_eq!(
            targets,
            [
                "/base/echo",
                "/base/echo?n=2",
                "/base/echo",
                &format!("/base/bytes/{MIB}"),
                "/base/status/201"
            ]
        );
    });
}

#[test]
fn chunked_upstream_responses_are_dechunked() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let units = start_daemon(&relay.url, hc.clone()).await;
        for (size, on_control) in [
            (0, true),
            (10 * KIB, true),
            (64_000, true),
            (64_001, false),
            (3 * MIB, false),
        ] {
            let before = units.get();
            let answer = send(
                relay.local_addr,
                request("GET", &format!("/hyco/bytes-chunked/{size}"), &[], &[]),
            )
            .await;
            assert_eq!(answer.status, 200);
            assert!(answer.complete);
            assert_eq!(sha256(&answer.body), sha256(&pattern(size)), "{size}");
            assert_eq!(
                units.get() == before + 1,
                on_control,
                "{size} bytes on the control channel?"
            );
        }
        let body = pattern(200 * KIB);
        let echoed = send(
            relay.local_addr,
            request("POST", "/hyco/echo-chunked", &[], &body),
        )
        .await;
        assert_eq!(sha256(&echoed.body), sha256(&body));
    });
}

#[test]
fn the_head_goes_out_before_a_slow_body_is_complete() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let units = start_daemon(&relay.url, hc.clone()).await;
        let gate = up.gate();
        let mut tcp = monoio::net::TcpStream::connect(relay.local_addr)
            .await
            .expect("connect");
        tcp.write_all(request("GET", "/hyco/gated", &[], &[]))
            .await
            .0
            .expect("send");
        let mut buf = ReadBuf::new(MIB, 0);
        let head = read_answer_head(&mut tcp, &mut buf).await;
        assert_eq!(
            head.status, 200,
            "the head arrived while the target still holds its body"
        );
        assert_eq!(
            units.get(),
            0,
            "streamed through a rendezvous after the gather window"
        );
        gate.send(()).expect("release the body");
        let mut decoder = BodyDecoder::new(response_body_kind("GET", &head).expect("framing"));
        let mut body = Vec::new();
        while !decoder.is_done() {
            let step = decoder.decode(buf.data()).expect("body");
            body.extend_from_slice(step.payload.unwrap_or_default());
            let used = step.consumed;
            buf.consume(used);
            if used == 0 && !decoder.is_done() {
                assert!(buf.fill(&mut tcp).await.expect("read") > 0);
            }
        }
        assert_eq!(body, b"firstsecond");
    });
}

#[test]
fn multi_value_response_headers_are_joined_and_hop_by_hop_ones_dropped() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        let answer = send(relay.local_addr, request("GET", "/hyco/multi", &[], &[])).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"ok");
        assert_eq!(answer.header("x-multi").as_deref(), Some("1, 2"));
        assert_eq!(answer.header("set-cookie").as_deref(), Some("a=1, b=2"));
        assert!(answer.header("x-hop").is_none(), "named by Connection");
        assert!(answer.header("keep-alive").is_none());
        assert_eq!(answer.headers.count("x-multi"), 1);
    });
}

#[test]
fn statuses_and_reasons_pass_through() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        for code in [201u16, 204, 302, 404, 418, 500, 502, 503, 504] {
            let answer = send(
                relay.local_addr,
                request("GET", &format!("/hyco/status/{code}"), &[], &[]),
            )
            .await;
            assert_eq!(answer.status, code);
            assert_eq!(answer.reason, "Custom Reason");
            let expected = if code == 204 {
                String::new()
            } else {
                format!("status {code}")
            };
            assert_eq!(String::from_utf8_lossy(&answer.body), expected);
        }
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 2);
        assert_eq!(counter(&hc, &REQUESTS, "3xx"), 1);
        assert_eq!(counter(&hc, &REQUESTS, "4xx"), 2);
        assert_eq!(counter(&hc, &REQUESTS, "5xx"), 4);
    });
}

#[test]
fn a_target_that_is_down_gives_502() {
    let relay = relay();
    let unused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", unused.local_addr().expect("addr"));
    drop(unused);
    let hc = context(Some(url), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        let answer = send(relay.local_addr, request("POST", "/hyco/x", &[], b"data")).await;
        assert_eq!(
            (answer.status, answer.reason.as_str()),
            (502, "Bad Gateway")
        );
        let text = String::from_utf8_lossy(&answer.body);
        assert!(text.contains("could not reach its HTTP target"), "{text}");
        assert!(
            !text.contains("127.0.0.1"),
            "no internal address in the answer: {text}"
        );
        assert_eq!(counter(&hc, &REQUESTS, "5xx"), 1);
    });
}

#[test]
fn a_target_that_hangs_gives_504_within_the_deadline() {
    let relay = relay();
    let up = upstream(None);
    let release = up.gate();
    let hc = context(
        Some(up.url()),
        Duration::from_millis(500),
        TrustRoots::WebPki,
    );
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        let started = Instant::now();
        let answer = send(relay.local_addr, request("GET", "/hyco/hang", &[], &[])).await;
        assert_eq!(
            (answer.status, answer.reason.as_str()),
            (504, "Gateway Timeout")
        );
        assert!(String::from_utf8_lossy(&answer.body).contains("did not respond in time"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "long before the relay's 60 s"
        );
        assert_eq!(counter(&hc, &REQUESTS, "5xx"), 1);
        assert_eq!(
            hc.upstream_pool.borrow().len(),
            0,
            "a timed-out connection is not reused"
        );
    });
    drop(release);
}

#[test]
fn a_body_that_breaks_off_ends_the_senders_response_as_broken() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        let small = send(
            relay.local_addr,
            request("GET", "/hyco/break/1000", &[], &[]),
        )
        .await;
        assert_eq!(
            small.status, 502,
            "nothing was sent yet, so the daemon answers itself"
        );
        assert!(small.complete);
        let large = send(
            relay.local_addr,
            request("GET", "/hyco/break/400000", &[], &[]),
        )
        .await;
        assert_eq!(large.status, 200);
        assert!(!large.complete, "the sender sees the body break off");
        assert!(large.body.len() <= 400_000);
        assert_eq!(large.body, pattern(400_000)[..large.body.len()]);
        assert_eq!(counter(&hc, &REQUESTS, "5xx"), 1);
        assert_eq!(counter(&hc, &REQUESTS, "aborted"), 1);
    });
}

/// Blocks until the newest pooled upstream connection has something to read (here: the
/// target's FIN), peeking without consuming.
fn wait_until_pooled_connection_readable(hc: &HcContext) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let pool = hc.upstream_pool.borrow();
    let stream = pool.last().expect("a pooled connection");
    // SAFETY: the pooled stream owns the descriptor and outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let mut poll = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    rustix::event::poll(&mut poll, None).expect("poll");
}

#[test]
fn a_pooled_connection_the_target_closed_is_not_reused_even_for_post() {
    let relay = relay();
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, hc.clone()).await;
        let first = send(
            relay.local_addr,
            request("GET", "/hyco/close-after", &[], &[]),
        )
        .await;
        assert_eq!(first.status, 200);
        assert_eq!(
            hc.upstream_pool.borrow().len(),
            1,
            "kept: the target did not say close"
        );
        wait_until_pooled_connection_readable(&hc);
        let post = send(
            relay.local_addr,
            request("POST", "/hyco/echo", &[], b"once"),
        )
        .await;
        assert_eq!(
            post.status, 200,
            "sent on a new connection, not the closed one"
        );
        assert_eq!(post.body, b"once");
        assert_eq!(up.connections(), 2);
        assert_eq!(up.seen().iter().filter(|s| s.method == "POST").count(), 1);
    });
}

#[test]
fn https_targets_are_verified_and_used() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    let relay = relay();
    let up = upstream(Some(
        server_config(&cert_path, &key_path).expect("server tls"),
    ));
    let url = format!("https://127.0.0.1:{}/base/", up.addr.port());
    let trusting = context(
        Some(url.clone()),
        DEADLINE,
        TrustRoots::CaFile(cert_path.clone()),
    );
    let distrusting = context(Some(url), DEADLINE, TrustRoots::WebPki);
    run(async move {
        start_daemon(&relay.url, trusting.clone()).await;
        let body = pattern(200 * KIB);
        let answer = send(relay.local_addr, request("POST", "/hyco/echo", &[], &body)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(sha256(&answer.body), sha256(&body));
        let small = send(relay.local_addr, request("GET", "/hyco/bytes/10", &[], &[])).await;
        assert_eq!(small.body, pattern(10));

        let (control, mut queue) = ControlWriter::new();
        serve_request(
            distrusting,
            full_request("GET", "/hyco/bytes/1", &[]),
            None,
            control,
        )
        .await;
        let (response, _) = answer_in(queue.try_recv().expect("one unit"));
        assert_eq!(
            response.status_code, 502,
            "an untrusted certificate is a bad gateway"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// serve_request called directly with a crafted request

fn full_request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        address: Some("ws://127.0.0.1:9/$hc/hyco?sb-hc-action=request&sb-hc-id=x".into()),
        id: Some("crafted_G0".into()),
        request_target: Some(target.into()),
        method: Some(method.into()),
        remote_endpoint: None,
        request_headers: Some(headers.iter().copied().collect()),
        body: Some(false),
    }
}

/// Decodes one control-channel unit as the relay does: the `response` and its body.
fn answer_in(mut unit: Vec<u8>) -> (Response, Vec<u8>) {
    let mut decoder = Decoder::new(Role::Server, Limits::default());
    let mut messages = Vec::new();
    let mut at = 0;
    while at < unit.len() {
        let (used, event) = decoder.decode(&mut unit[at..]).expect("masked frames");
        if let Some(Event::Data {
            payload,
            message_end: true,
            ..
        }) = event
        {
            messages.push(payload.to_vec());
        }
        at += used;
    }
    let ControlMessage::Response(response) = parse_control_message(&messages[0]).expect("json")
    else {
        panic!("expected a response");
    };
    assert_eq!(messages.len(), if response.body { 2 } else { 1 });
    let body = messages.get(1).cloned().unwrap_or_default();
    (response, body)
}

#[test]
fn crlf_in_a_relayed_header_value_never_reaches_the_target() {
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let (control, mut queue) = ControlWriter::new();
        let evil = full_request(
            "GET",
            "/hyco/echo",
            &[("X-Ok", "fine"), ("X-Evil", "a\r\nInjected: yes")],
        );
        serve_request(hc.clone(), evil, None, control).await;
        let (response, body) = answer_in(queue.try_recv().expect("one unit"));
        assert_eq!(response.request_id, "crafted_G0");
        assert_eq!(response.status_code, 400);
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("X-Evil") && !text.contains("Injected"),
            "{text}"
        );
        assert!(queue.try_recv().is_err(), "exactly one unit");
        assert_eq!(up.connections(), 0, "nothing reached the target");
        assert_eq!(counter(&hc, &REQUESTS, "4xx"), 1);

        let (control, mut queue) = ControlWriter::new();
        let lf_only = full_request("GET", "/hyco/echo", &[("X-Evil", "a\nInjected: yes")]);
        serve_request(hc.clone(), lf_only, None, control).await;
        assert_eq!(
            answer_in(queue.try_recv().expect("unit")).0.status_code,
            400
        );

        let (control, mut queue) = ControlWriter::new();
        serve_request(
            hc.clone(),
            full_request("GET", "/hyco/echo", &[("X-Ok", "fine")]),
            None,
            control,
        )
        .await;
        let (response, _) = answer_in(queue.try_recv().expect("unit"));
        assert_eq!(response.status_code, 200);
        let seen = up.seen();
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].head.contains("Injected"));
        assert_eq!(seen[0].header("x-ok").as_deref(), Some("fine"));
    });
}

#[test]
fn no_http_target_gives_501() {
    let hc = context(None, DEADLINE, TrustRoots::WebPki);
    run(async move {
        let (control, mut queue) = ControlWriter::new();
        serve_request(
            hc.clone(),
            full_request("GET", "/hyco/x", &[]),
            None,
            control,
        )
        .await;
        let (response, body) = answer_in(queue.try_recv().expect("one unit"));
        assert_eq!(response.status_code, 501);
        assert_eq!(
            response.status_description.as_deref(),
            Some("Not Implemented")
        );
        assert!(String::from_utf8_lossy(&body).contains("no http_target"));
        assert_eq!(counter(&hc, &REQUESTS, "5xx"), 1);
    });
}

#[test]
fn a_request_outside_the_hybrid_connection_path_gives_400() {
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let (control, mut queue) = ControlWriter::new();
        serve_request(
            hc.clone(),
            full_request("GET", "/other/x", &[]),
            None,
            control,
        )
        .await;
        assert_eq!(
            answer_in(queue.try_recv().expect("unit")).0.status_code,
            400
        );
        assert_eq!(up.connections(), 0);
    });
}

// ---------------------------------------------------------------------------------------------
// A held rendezvous, served by a hand-made relay side

/// Accepts the daemon's rendezvous WebSocket on `listener` (the relay's side of protocol §6.3).
async fn accept_rendezvous(
    listener: &monoio::net::TcpListener,
) -> (
    WsReader<monoio::io::OwnedReadHalf<monoio::net::TcpStream>>,
    monoio::io::OwnedWriteHalf<monoio::net::TcpStream>,
    String,
) {
    use hycod::proto::ws::handshake::{parse_upgrade_request, write_switching_protocols};
    let (mut tcp, _) = listener.accept().await.expect("accept");
    let mut buf = ReadBuf::new(64 * KIB, 0);
    let (upgrade, used) = loop {
        if let Some(parsed) =
            parse_upgrade_request(buf.data(), &HeadLimits::default()).expect("upgrade")
        {
            break parsed;
        }
        assert!(buf.fill(&mut tcp).await.expect("read") > 0);
    };
    buf.consume(used);
    let target = match upgrade.query() {
        Some(query) => format!("{}?{query}", upgrade.path()),
        None => upgrade.path().to_owned(),
    };
    let mut out = Vec::new();
    write_switching_protocols(&mut out, &upgrade.accept_key(), None).expect("101");
    tcp.write_all(out).await.0.expect("101");
    let (read, write) = tcp.into_split();
    let limits = Limits {
        max_message_size: u64::MAX,
        ..Limits::default()
    };
    (
        WsReader::new(read, Role::Server, limits, buf.data(), 64 * KIB),
        write,
        target,
    )
}

/// Frames the relay sends (unmasked).
fn relay_frames(frames: &[(bool, hycod::proto::ws::OpCode, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (fin, opcode, payload) in frames {
        hycod::proto::ws::encode::push_frame(&mut out, *fin, *opcode, payload, None)
            .expect("frame");
    }
    out
}

fn request_json(id: &str, method: &str, target: &str, headers: &str, body: bool) -> String {
    format!(
        r#"{{"request":{{"address":"ws://unused/$hc/hyco?sb-hc-action=request","id":"{id}","requestTarget":"{target}","method":"{method}","requestHeaders":{headers},"body":{body}}}}}"#
    )
}

/// Reads the `response` message and, when announced, its body message.
async fn read_response<R: AsyncReadRent>(reader: &mut WsReader<R>) -> (Response, Vec<u8>) {
    let (kind, text) = read_message(reader).await.expect("response");
    assert_eq!(kind, DataKind::Text);
    let ControlMessage::Response(response) = parse_control_message(&text).expect("json") else {
        panic!("expected a response");
    };
    let body = if response.body {
        let (kind, body) = read_message(reader).await.expect("body");
        assert_eq!(kind, DataKind::Binary);
        body
    } else {
        Vec::new()
    };
    (response, body)
}

#[test]
fn a_held_rendezvous_serves_further_requests_until_the_relay_closes_it() {
    use hycod::proto::ws::OpCode;
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = format!(
            "ws://{}/$hc/hyco?sb-hc-action=request&sb-hc-id=abc_G1",
            listener.local_addr().expect("addr")
        );
        let notice = Request {
            address: Some(address),
            id: Some("abc_G1".into()),
            ..Request::default()
        };
        let (control, mut queue) = ControlWriter::new();
        let served = monoio::spawn(serve_request(hc.clone(), notice, None, control));
        let (mut reader, mut writer, target) = accept_rendezvous(&listener).await;
        assert_eq!(
            target, "/$hc/hyco?sb-hc-action=request&sb-hc-id=abc_G1",
            "connected verbatim"
        );

        // 1: a body in fragments, echoed.
        let first = request_json(
            "r1",
            "POST",
            "/hyco/echo?a=1",
            r#"{"X-Multi":"a, b"}"#,
            true,
        );
        let frames = relay_frames(&[
            (true, OpCode::Text, first.as_bytes()),
            (false, OpCode::Binary, b"hello "),
            (true, OpCode::Ping, b"in the body"),
            (true, OpCode::Continuation, b"world"),
        ]);
        writer.write_all(frames).await.0.expect("send");
        let (response, body) = read_response(&mut reader).await;
        assert_eq!(
            (response.request_id.as_str(), response.status_code),
            ("r1", 200)
        );
        assert_eq!(body, b"hello world");

        // A ping between requests is answered.
        writer
            .write_all(relay_frames(&[(true, OpCode::Ping, b"alive")]))
            .await
            .0
            .expect("ping");
        match reader.next_event().await.expect("pong") {
            WsEvent::Pong(payload) => assert_eq!(reader.bytes(payload), b"alive"),
            other => panic!("unexpected {other:?}"),
        }

        // 2: refused with 400; its body is drained so the rendezvous stays in step.
        let evil = request_json(
            "r2",
            "PUT",
            "/hyco/echo",
            r#"{"X-Evil":"a\r\nInjected: 1"}"#,
            true,
        );
        let frames = relay_frames(&[
            (true, OpCode::Text, evil.as_bytes()),
            (true, OpCode::Binary, b"never forwarded"),
        ]);
        writer.write_all(frames).await.0.expect("send");
        let (response, _) = read_response(&mut reader).await;
        assert_eq!(
            (response.request_id.as_str(), response.status_code),
            ("r2", 400)
        );

        // 3: no body.
        let third = request_json("r3", "GET", "/hyco/bytes/5", "{}", false);
        writer
            .write_all(relay_frames(&[(true, OpCode::Text, third.as_bytes())]))
            .await
            .0
            .expect("send");
        let (response, body) = read_response(&mut reader).await;
        assert_eq!(
            (response.request_id.as_str(), response.status_code),
            ("r3", 200)
        );
        assert_eq!(body, pattern(5));

        // The relay closes: the daemon answers the close and stops.
        let mut close = Vec::new();
        hycod::proto::ws::encode::push_close(
            &mut close,
            hycod::proto::ws::CloseCode::NORMAL,
            "",
            None,
        )
        .expect("close");
        writer.write_all(close).await.0.expect("close");
        match reader.next_event().await.expect("close back") {
            WsEvent::Close { code, .. } => {
                assert_eq!(code, Some(hycod::proto::ws::CloseCode::NORMAL))
            }
            other => panic!("unexpected {other:?}"),
        }
        served.await;
        assert!(queue.try_recv().is_err(), "nothing on the control channel");
        let seen = up.seen();
        assert_eq!(
            seen.len(),
            2,
            "the refused request never reached the target"
        );
        assert_eq!(seen[0].target, "/base/echo?a=1");
        assert_eq!(seen[0].header("x-multi").as_deref(), Some("a, b"));
        assert_eq!(seen[0].header("content-length").as_deref(), Some("11"));
        assert!(seen[0].header("transfer-encoding").is_none());
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 2);
        assert_eq!(counter(&hc, &REQUESTS, "4xx"), 1);
    });
}

#[test]
fn a_notice_whose_rendezvous_cannot_be_opened_is_counted_as_aborted() {
    let hc = context(
        Some("http://127.0.0.1:9/".into()),
        DEADLINE,
        TrustRoots::WebPki,
    );
    let unused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!(
        "ws://{}/$hc/hyco?sb-hc-action=request",
        unused.local_addr().expect("addr")
    );
    drop(unused);
    run(async move {
        let (control, mut queue) = ControlWriter::new();
        let notice = Request {
            address: Some(address),
            ..Request::default()
        };
        serve_request(hc.clone(), notice, None, control).await;
        assert!(queue.try_recv().is_err());
        assert_eq!(counter(&hc, &REQUESTS, "aborted"), 1);
    });
}

/// Like the .NET listener (HybridHttpConnection.cs `CloseAsync`: `NormalClosure`), the daemon
/// closes a request rendezvous with 1000 soon after its response, not with 1002 a minute later.
#[test]
fn a_request_rendezvous_is_closed_with_1000_soon_after_the_response() {
    use hycod::proto::ws::OpCode;
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let notice = Request {
            address: Some(format!(
                "ws://{}/$hc/hyco?sb-hc-action=request&sb-hc-id=n1",
                listener.local_addr().expect("addr")
            )),
            id: Some("n1".into()),
            ..Request::default()
        };
        let (control, _queue) = ControlWriter::new();
        let served = monoio::spawn(serve_request(hc.clone(), notice, None, control));
        let (mut reader, mut writer, _) = accept_rendezvous(&listener).await;
        let only = request_json("n1", "GET", "/hyco/bytes/3", "{}", false);
        writer
            .write_all(relay_frames(&[(true, OpCode::Text, only.as_bytes())]))
            .await
            .0
            .expect("send");
        let (response, body) = read_response(&mut reader).await;
        assert_eq!((response.status_code, body.len()), (200, 3));
        let answered = Instant::now();
        let next = monoio::time::timeout(Duration::from_secs(10), reader.next_event())
            .await
            .expect("the daemon closes the rendezvous within 10 s");
        match next.expect("close frame") {
            WsEvent::Close { code, .. } => {
                assert_eq!(code, Some(hycod::proto::ws::CloseCode::NORMAL))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            answered.elapsed() < Duration::from_secs(5),
            "closed after {:?}",
            answered.elapsed()
        );
        served.await;
        assert_eq!(counter(&hc, &REQUESTS, "2xx"), 1);
        assert_eq!(counter(&hc, &REQUESTS, "aborted"), 0);
    });
}

/// Whatever the relay forwards, the target sees no path outside its `http_target` base: dot
/// segments (also `%2E`, any case) that climb above the hybrid connection path, dot segments
/// behind an encoded separator, and fragments are answered 400 without reaching the target;
/// dot segments inside the base are resolved and raw non-ASCII bytes are percent-encoded.
#[test]
fn request_targets_never_leave_the_http_target_base() {
    let up = upstream(None);
    let hc = context(Some(up.url()), DEADLINE, TrustRoots::WebPki);
    run(async move {
        for evil in [
            "/hyco/../other/secret",
            "/hyco/%2e%2e/%2e%2e/admin",
            "/hyco/%2E%2e/admin",
            "/hyco/a/../../admin",
            "/hyco/..%2fadmin",
            "/hyco/..%5cadmin",
            "/hyco/x#fragment",
        ] {
            let (control, mut queue) = ControlWriter::new();
            serve_request(hc.clone(), full_request("GET", evil, &[]), None, control).await;
            let (response, _) = answer_in(queue.try_recv().expect("one unit"));
            assert_eq!(response.status_code, 400, "{evil}");
        }
        assert_eq!(up.connections(), 0, "nothing reached the target");
        for (target, upstream) in [
            ("/hyco/a/./b/../../echo?q=../x", "/base/echo?q=../x"),
            ("/hyco/echo/caf\u{e9}", "/base/echo/caf%C3%A9"),
        ] {
            let (control, mut queue) = ControlWriter::new();
            serve_request(hc.clone(), full_request("GET", target, &[]), None, control).await;
            let (response, _) = answer_in(queue.try_recv().expect("one unit"));
            assert_eq!(response.status_code, 200, "{target}");
            assert_eq!(up.seen().last().expect("seen").target, upstream);
        }
    });
}
