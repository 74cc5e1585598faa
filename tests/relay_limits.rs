//! The relay's bounds against hostile or broken peers, over real sockets (docs/relay.md
//! "Timeouts", "Limits", "Idle cut", "Strict HTTP/1.1"): slow and idle clients are timed out,
//! malformed HTTP is refused, Azure's control-channel size limits fail a request, a listener
//! that stops reading is closed, and the connections around each of them keep working.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hycod::io::ws_client::ConnectError;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::hc::messages::Request;
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRentExt, Splitable};

mod common;

use common::{dialer, mask, open_rendezvous, read_message, run, token_for, Reader, Writer, KEY};

/// A relay serving `hyco` with the `root` rule and these extra flags.
fn relay(extra: &[&str]) -> hycod::relay::RelayHandle {
    let rule = format!("root={KEY}");
    let mut flags = vec![
        "--workers",
        "2",
        "--rule",
        &rule,
        "--hybrid-connection",
        "hyco",
    ];
    flags.extend_from_slice(extra);
    common::relay(&flags)
}

fn token() -> String {
    token_for("root", KEY, "hyco")
}

async fn listen(url: &str) -> (Reader, Writer) {
    common::listen(url, &token()).await
}

/// Sends `request` raw from a blocking thread and reads until the relay closes (or 15 s pass);
/// returns what arrived and how long the relay took to close.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> (String, Duration) {
    let (tx, rx) = flume::bounded(1);
    std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let started = Instant::now();
        tcp.write_all(&request).expect("send");
        let mut got = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tcp.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "the relay neither answered nor closed: {e}; got {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(300)])
                ),
            }
        }
        let _ = tx.send((
            String::from_utf8_lossy(&got).into_owned(),
            started.elapsed(),
        ));
    });
    rx.recv_async().await.expect("sender thread")
}

/// A masked text frame.
fn text_frame(json: &str) -> Vec<u8> {
    let mut out = Vec::new();
    push_frame(&mut out, true, OpCode::Text, json.as_bytes(), mask()).expect("frame");
    out
}

/// A `response` for `id` with one extra header `x-fill` of `fill` bytes, and `body` (as one
/// masked binary message) when given.
fn response(id: &str, fill: usize, body: Option<&[u8]>) -> Vec<u8> {
    let json = format!(
        "{{\"response\":{{\"requestId\":\"{id}\",\"statusCode\":200,\"responseHeaders\":{{\"x-fill\":\"{}\"}},\"body\":{}}}}}",
        "f".repeat(fill),
        body.is_some()
    );
    let mut out = text_frame(&json);
    if let Some(body) = body {
        push_frame(&mut out, true, OpCode::Binary, body, mask()).expect("frame");
    }
    out
}

/// Reads the next control message, which must be a `request`.
async fn next_request(control: &mut Reader) -> Request {
    let (kind, text) = read_message(control).await;
    assert_eq!(kind, DataKind::Text);
    match parse_control_message(&text).expect("json") {
        ControlMessage::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// Answers requests on `hyco` with 200 and no body, on the control channel or on the
/// rendezvous each came through; sends each answered request's target to `seen`.
async fn answer_requests(mut control: Reader, mut write: Writer, seen: flume::Sender<String>) {
    loop {
        let notice = next_request(&mut control).await;
        if notice.is_rendezvous_notice() {
            let seen = seen.clone();
            monoio::spawn(async move {
                let (mut reader, mut rdv, full) = open_rendezvous(&notice).await;
                if full.body == Some(true) {
                    read_message(&mut reader).await;
                }
                let id = full.id.clone().expect("id");
                let _ = seen.send(full.request_target.unwrap_or_default());
                rdv.write_all(response(&id, 1, None))
                    .await
                    .0
                    .expect("answer");
                let _ = reader.next_event().await;
            });
            continue;
        }
        if notice.body == Some(true) {
            read_message(&mut control).await;
        }
        let id = notice.id.clone().expect("id");
        let _ = seen.send(notice.request_target.unwrap_or_default());
        write
            .write_all(response(&id, 1, None))
            .await
            .0
            .expect("answer");
    }
}

/// `POST /hyco/{path}` with these framing headers and this body, authorised.
fn post(path: &str, framing: &str, body: &str) -> String {
    format!(
        "POST /hyco/{path} HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: {}\r\n{framing}\r\n{body}",
        token()
    )
}

fn get(path: &str) -> String {
    format!(
        "GET /hyco/{path} HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: {}\r\n\r\n",
        token()
    )
}

/// `GET /hyco/{path}` asking the relay to close after the answer.
fn get_once(path: &str) -> String {
    get(path).replace("Host: x\r\n", "Host: x\r\nConnection: close\r\n")
}

/// The start of an answer, for assertion messages.
fn start(answer: &str) -> &str {
    &answer[..answer.len().min(300)]
}

#[test]
fn a_slow_request_head_gets_408_after_the_head_timeout() {
    let relay = relay(&["--head-timeout", "1s", "--admin", "127.0.0.1:0"]);
    run(async move {
        let partial = b"GET /hyco/x HTTP/1.1\r\nHost: x\r\n".to_vec();
        let (answer, took) = exchange(relay.local_addr, partial.clone()).await;
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{}",
            start(&answer)
        );
        assert!(answer.contains("RequestTimeout"), "{}", start(&answer));
        assert!(took >= Duration::from_secs(1), "{took:?}");
        // The admin port the same.
        let admin = relay.admin_addr.expect("admin");
        let (answer, took) = exchange(admin, partial).await;
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{}",
            start(&answer)
        );
        assert!(took >= Duration::from_secs(1), "{took:?}");
        // Nothing at all within the head timeout: 408 as well.
        let (answer, _) = exchange(relay.local_addr, Vec::new()).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{}", start(&answer));
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let relay = relay(&["--keepalive-timeout", "1s", "--head-timeout", "10s"]);
    run(async move {
        let (control, write) = listen(&relay.url).await;
        let (seen, _requests) = flume::unbounded();
        monoio::spawn(answer_requests(control, write, seen));
        let (answer, took) = exchange(relay.local_addr, get("idle").into_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            start(&answer)
        );
        assert!(!answer.contains("Connection: close"), "{}", start(&answer));
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{}", start(&answer));
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(8),
            "closed after {took:?}"
        );
    });
}

#[test]
fn a_request_body_that_pauses_gets_408_after_the_body_idle_timeout() {
    let relay = relay(&["--body-idle-timeout", "1s"]);
    run(async move {
        let (control, write) = listen(&relay.url).await;
        let (seen, requests) = flume::unbounded();
        monoio::spawn(answer_requests(control, write, seen));
        let request = post("slow", "Content-Length: 10\r\n", "only5");
        let (answer, took) = exchange(relay.local_addr, request.into_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{}",
            start(&answer)
        );
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(requests.try_recv().is_err(), "the listener got the request");
    });
}

#[test]
fn bare_line_feeds_in_a_request_head_are_refused_with_400() {
    let relay = relay(&[]);
    run(async move {
        let request = get("lf").replace("\r\n", "\n");
        let (answer, _) = exchange(relay.local_addr, request.into_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{}",
            start(&answer)
        );
        assert!(answer.contains("CRLF"), "{}", start(&answer));
    });
}

#[test]
fn content_length_with_chunked_closes_after_the_response_and_the_pipelined_request_is_not_served() {
    let relay = relay(&[]);
    run(async move {
        let (control, write) = listen(&relay.url).await;
        let (seen, requests) = flume::unbounded();
        monoio::spawn(answer_requests(control, write, seen));
        let mut pipelined = post(
            "first",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        );
        pipelined.push_str(&get("second"));
        let (answer, _) = exchange(relay.local_addr, pipelined.into_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            start(&answer)
        );
        assert!(
            answer.contains("Connection: close\r\n"),
            "{}",
            start(&answer)
        );
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{}", start(&answer));
        assert_eq!(requests.recv_async().await.expect("first"), "/hyco/first");
        assert!(
            requests.try_recv().is_err(),
            "the pipelined request was served"
        );
    });
}

#[test]
fn a_malformed_chunked_body_gets_400_and_the_listener_sees_an_aborted_request() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, _write) = listen(&relay.url).await;
        let request = post(
            "chunks",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\nZZ\r\n",
        );
        let sender = monoio::spawn(exchange(relay.local_addr, request.into_bytes()));
        let notice = next_request(&mut control).await;
        assert!(notice.is_rendezvous_notice());
        let (mut reader, _rdv, full) = open_rendezvous(&notice).await;
        assert_eq!(full.body, Some(true));
        let mut body = Vec::new();
        let close = loop {
            match reader.next_event().await {
                Ok(WsEvent::Data {
                    payload,
                    message_end,
                    ..
                }) => {
                    assert!(!message_end, "the malformed body looked complete upstream");
                    body.extend_from_slice(reader.bytes(payload));
                }
                Ok(WsEvent::Close { code, .. }) => break code,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("expected a close frame, got {e}"),
            }
        };
        assert_eq!(body, b"hello");
        assert_eq!(close, Some(CloseCode::GOING_AWAY));
        let (answer, _) = sender.await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{}",
            start(&answer)
        );
    });
}

#[test]
fn a_listener_rejecting_with_101_gives_the_sender_502() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, _write) = listen(&relay.url).await;
        let connect = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
        let t = token();
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t)], None)
                .await
        });
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("json") else {
            panic!("expected accept");
        };
        let reject = hycod::proto::hc::reject::reject_url(&accept.address, 101, "Switching")
            .expect("reject url");
        match dialer().connect(&reject, &[], None).await {
            Err(ConnectError::Rejected { status, .. }) => assert_eq!(status, 410),
            other => panic!("expected 410, got {:?}", other.map(|_| ())),
        }
        match sender.await {
            Err(ConnectError::Rejected {
                status,
                description,
            }) => {
                assert_eq!(status, 502);
                assert!(description.contains("invalid status"), "{description}");
            }
            other => panic!("expected 502, got {:?}", other.map(|_| ())),
        }
    });
}

/// Sends `GET /hyco/size` and answers it on the control channel with `fill` bytes of header
/// and `body`; returns the sender's answer.
async fn control_channel_answer(fill: usize, body: Option<&[u8]>) -> String {
    let relay = relay(&[]);
    let (mut control, mut write) = listen(&relay.url).await;
    let sender = monoio::spawn(exchange(relay.local_addr, get_once("size").into_bytes()));
    let request = next_request(&mut control).await;
    let id = request.id.expect("id");
    write
        .write_all(response(&id, fill, body))
        .await
        .0
        .expect("answer");
    sender.await.0
}

#[test]
fn a_control_channel_response_body_over_64_kib_fails_the_request_with_502() {
    run(async {
        let at_limit = vec![b'b'; 64 * 1024];
        let answer = control_channel_answer(1, Some(&at_limit)).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            start(&answer)
        );
        let over = vec![b'b'; 64 * 1024 + 1];
        let answer = control_channel_answer(1, Some(&over)).await;
        assert!(
            answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "{}",
            start(&answer)
        );
        assert!(answer.contains("64 KB"), "{}", start(&answer));
    });
}

#[test]
fn a_control_channel_response_json_over_32_kib_fails_the_request_with_502() {
    run(async {
        let answer = control_channel_answer(31 * 1024, None).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            start(&answer)
        );
        let answer = control_channel_answer(32 * 1024, Some(b"x")).await;
        assert!(
            answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "{}",
            start(&answer)
        );
        assert!(answer.contains("32 KB"), "{}", start(&answer));
    });
}

#[test]
fn a_request_whose_json_exceeds_32_kib_goes_through_a_rendezvous() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, _write) = listen(&relay.url).await;
        // 20,000 quotes: a 20 KB head whose JSON escapes to over 40 KB.
        let quotes = "\"".repeat(20_000);
        let request = format!(
            "GET /hyco/quoted HTTP/1.1\r\nHost: x\r\nConnection: close\r\nServiceBusAuthorization: {}\r\nX-Quotes: {quotes}\r\n\r\n",
            token()
        );
        let sender = monoio::spawn(exchange(relay.local_addr, request.into_bytes()));
        let notice = next_request(&mut control).await;
        assert!(
            notice.is_rendezvous_notice(),
            "a request with over 32 KB of JSON came on the control channel"
        );
        let (mut reader, mut rdv, full) = open_rendezvous(&notice).await;
        let headers = full.request_headers.expect("headers");
        assert_eq!(headers.get("X-Quotes"), Some(quotes.as_str()));
        let id = full.id.expect("id");
        rdv.write_all(response(&id, 1, None))
            .await
            .0
            .expect("answer");
        let _ = reader.next_event().await;
        let (answer, _) = sender.await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            start(&answer)
        );
    });
}

/// Pings `listener` until a write fails, never reading; returns the error and the bytes sent.
async fn ping_without_reading(mut write: Writer) -> (std::io::Error, u64) {
    let mut batch = Vec::new();
    for _ in 0..1000 {
        push_frame(&mut batch, true, OpCode::Ping, &[b'p'; 125], mask()).expect("ping");
    }
    let mut sent = 0u64;
    loop {
        let (written, back) = write.write_all(batch).await;
        batch = back;
        match written {
            Ok(n) => sent += n as u64,
            Err(e) => return (e, sent),
        }
        assert!(
            sent < 200 << 20,
            "the relay took 200 MB of pings from a listener that reads nothing"
        );
    }
}

#[test]
fn a_listener_that_pings_without_reading_is_closed_and_other_listeners_keep_working() {
    let relay = relay(&["--write-stall-timeout", "10m"]);
    run(async move {
        let (mut bystander, mut bystander_write) = listen(&relay.url).await;
        let (_never_read, write) = listen(&relay.url).await;
        let (error, sent) =
            monoio::time::timeout(Duration::from_secs(60), ping_without_reading(write))
                .await
                .expect("closed within a minute");
        assert!(
            matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ),
            "{error}"
        );
        assert!(sent > 1 << 20, "closed after only {sent} bytes");
        let mut ping = Vec::new();
        push_frame(&mut ping, true, OpCode::Ping, b"still here", mask()).expect("ping");
        bystander_write.write_all(ping).await.0.expect("ping");
        match bystander.next_event().await.expect("pong") {
            WsEvent::Pong(payload) => assert_eq!(bystander.bytes(payload), b"still here"),
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// The bytes the relay holds queued for control channels, from its `/metrics`.
fn control_queue_bytes(admin: &str) -> f64 {
    let (status, body) = common::processes::http_get(admin, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix("hycod_relay_control_queue_bytes "))
        .and_then(|value| value.trim().parse().ok())
        .expect("hycod_relay_control_queue_bytes in the scrape")
}

#[test]
fn a_listener_that_reads_slower_than_requests_arrive_keeps_its_channel_and_answers_them_all() {
    // 100 requests of 60 KiB on the control channel: far more than the 1 MiB the relay queues
    // for a listener plus what the sockets between them hold. The listener reads nothing until
    // the queue is full (or a sender got an answer), then reads and answers everything.
    let relay = relay(&["--admin", "127.0.0.1:0"]);
    let admin = relay.admin_addr.expect("admin address").to_string();
    run(async move {
        let (control, write) = listen(&relay.url).await;
        let body = "b".repeat(60 * 1024);
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let senders: Vec<_> = (0..100)
            .map(|n| {
                let framing = format!("Content-Length: {}\r\nConnection: close\r\n", body.len());
                let request = post(&format!("busy/{n}"), &framing, &body).into_bytes();
                let answered = answered.clone();
                let addr = relay.local_addr;
                monoio::spawn(async move {
                    let (answer, _) = exchange(addr, request).await;
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    answer
                })
            })
            .collect();
        let (full_tx, full) = flume::bounded(1);
        let early = answered.clone();
        std::thread::spawn(move || {
            let filled = common::processes::eventually(Duration::from_secs(30), || {
                early.load(std::sync::atomic::Ordering::SeqCst) > 0
                    || control_queue_bytes(&admin) >= 900.0 * 1024.0
            });
            let _ = full_tx.send(filled);
        });
        assert!(
            full.recv_async().await.expect("poller"),
            "the queue never filled and no sender was answered"
        );
        let (seen_tx, seen) = flume::unbounded();
        monoio::spawn(answer_requests(control, write, seen_tx));
        let mut statuses = std::collections::BTreeMap::<String, usize>::new();
        for sender in senders {
            let answer = sender.await;
            let status = answer.lines().next().unwrap_or("no answer").to_owned();
            *statuses.entry(status).or_default() += 1;
        }
        assert_eq!(
            statuses,
            [("HTTP/1.1 200 OK".to_owned(), 100)].into(),
            "every request answered by the listener"
        );
        assert_eq!(seen.len(), 100, "the listener saw every request");
    });
}

/// Waits for the close frame the relay sends on `reader`, skipping data; its code and reason.
async fn close_of(reader: &mut Reader) -> (Option<CloseCode>, String) {
    loop {
        match reader.next_event().await.expect("event") {
            WsEvent::Close { code, reason } => return (code, reader.text(reason).to_owned()),
            _ => continue,
        }
    }
}

#[test]
fn the_idle_cut_closes_a_silent_control_channel_with_1001_but_not_a_pinging_one() {
    let relay = relay(&["--idle-timeout", "1s"]);
    run(async move {
        let started = Instant::now();
        let (mut pinging, mut pinging_write) = listen(&relay.url).await;
        let (mut silent, _silent_write) = listen(&relay.url).await;
        let keep_alive = monoio::spawn(async move {
            for n in 0..12u8 {
                let mut ping = Vec::new();
                push_frame(&mut ping, true, OpCode::Ping, &[n], mask()).expect("ping");
                pinging_write.write_all(ping).await.0.expect("ping");
                match pinging.next_event().await.expect("pong") {
                    WsEvent::Pong(payload) => assert_eq!(pinging.bytes(payload), [n]),
                    other => panic!("unexpected {other:?}"),
                }
                monoio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        let (code, reason) = close_of(&mut silent).await;
        assert_eq!(
            (code, reason.as_str()),
            (Some(CloseCode::GOING_AWAY), "idle timeout")
        );
        assert!(started.elapsed() >= Duration::from_secs(1));
        keep_alive.await;
    });
}

#[test]
fn the_idle_cut_closes_a_silent_stream_on_both_sides_with_1001() {
    let relay = relay(&["--idle-timeout", "1s"]);
    run(async move {
        let (mut control, mut control_write) = listen(&relay.url).await;
        // The listener's control channel stays alive through its pings while the stream idles:
        // they start at once and go on until the end, however slowly the steps between run.
        let stop_pinging = Rc::new(Cell::new(false));
        let stop = stop_pinging.clone();
        let pinging = monoio::spawn(async move {
            while !stop.get() {
                let mut ping = Vec::new();
                push_frame(&mut ping, true, OpCode::Ping, b"cc", mask()).expect("ping");
                control_write.write_all(ping).await.0.expect("ping");
                monoio::time::sleep(Duration::from_millis(250)).await;
            }
            control_write
        });
        // The stream's idle clock cannot start before its sender connects.
        let started = Instant::now();
        let connect = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
        let t = token();
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t)], None)
                .await
        });
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("json") else {
            panic!("expected accept");
        };
        let rdv = dialer()
            .connect(&accept.address, &[], None)
            .await
            .expect("rendezvous");
        let sender = sender.await.expect("sender connected");
        for conn in [sender, rdv] {
            let (read, _write) = conn.stream.into_split();
            let mut reader =
                WsReader::new(read, Role::Client, Limits::default(), &conn.leftover, 1024);
            let (code, reason) = close_of(&mut reader).await;
            assert_eq!(
                (code, reason.as_str()),
                (Some(CloseCode::GOING_AWAY), "idle timeout")
            );
        }
        assert!(started.elapsed() >= Duration::from_secs(1));
        let (code, _) = monoio::time::timeout(Duration::from_millis(300), close_of(&mut control))
            .await
            .map_or((None, String::new()), |c| c);
        assert_eq!(code, None, "the pinging control channel was cut");
        stop_pinging.set(true);
        let _control_write = pinging.await;
    });
}

/// The ids of the listeners online on `path` at the relay process.
fn listener_ids(relay: &common::processes::RelayProcess, path: &str) -> Vec<u64> {
    let status = relay.status();
    let mut ids: Vec<u64> = status["hybrid_connections"]
        .as_array()
        .and_then(|hcs| hcs.iter().find(|hc| hc["path"] == path))
        .and_then(|hc| hc["listeners"].as_array())
        .map(|ls| ls.iter().filter_map(|l| l["id"].as_u64()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[test]
fn the_daemons_control_channel_pings_keep_its_listeners_through_a_short_idle_cut() {
    use common::processes::{
        config_text, eventually, hybrid_connection, tcp_echo, DaemonProcess, RelayProcess, PATIENCE,
    };
    let relay = RelayProcess::start_with_flags(&["kept", "cut"], &[], &["--idle-timeout", "2s"]);
    let echo = tcp_echo();
    // Pinging every second keeps `kept` alive; pinging every 5 s leaves `cut` idle for 2 s.
    let kept = hybrid_connection("kept", "kept", &relay.url, echo);
    let cut = hybrid_connection("cut", "cut", &relay.url, echo)
        .replace("\nping_interval = \"1s\"", "\nping_interval = \"5s\"");
    let dir = tempfile::tempdir().expect("dir");
    let _daemon = DaemonProcess::start(dir.path(), &config_text("1s", &[kept, cut]), None, &[]);
    assert!(eventually(PATIENCE, || relay.listener_count("kept") == 2
        && relay.listener_count("cut") == 2));
    let (kept_before, cut_before) = (listener_ids(&relay, "kept"), listener_ids(&relay, "cut"));
    // The listeners of `cut` are cut (the daemon reconnects them later).
    assert!(eventually(PATIENCE, || {
        !listener_ids(&relay, "cut")
            .iter()
            .any(|id| cut_before.contains(id))
    }));
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        listener_ids(&relay, "kept"),
        kept_before,
        "a pinging listener was cut"
    );
}

/// Sends `GET /hyco/x` to `addr` and returns the status line of the answer (within 20 s).
fn status_line_of_a_new_sender(addr: &str) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    tcp.write_all(b"GET /hyco/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tcp.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("the new sender got no answer: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Whether the relay closed `conn` (EOF or reset), without waiting.
fn closed_by_relay(conn: &TcpStream) -> bool {
    let mut conn = conn;
    conn.set_nonblocking(true).expect("nonblocking");
    !matches!(conn.read(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[test]
fn out_of_descriptors_the_relay_sheds_idle_connections_and_a_new_sender_is_served() {
    use common::processes::{eventually, open_fds, RelayProcess, PATIENCE};
    let relay = RelayProcess::start_with_fd_limit(&["hyco"], 64);
    let addr = relay.url.trim_start_matches("ws://").to_owned();
    // Idle connections (no byte sent) take every descriptor the relay has.
    let idle: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The relay is out of descriptors (or already shed idle connections to get some back).
    assert!(eventually(PATIENCE, || open_fds(relay.pid()) >= 63
        || idle.iter().any(closed_by_relay)));
    // Idle long enough to be shed (the relay leaves connections younger than a second alone).
    std::thread::sleep(Duration::from_millis(1500));
    // Answered, not left in the backlog: served (no token: 401) once the shed connections are
    // closed, or 503 from the spare descriptor when it came first (another worker held the
    // idle connections, or they were not closed yet).
    let line = status_line_of_a_new_sender(&addr);
    assert!(
        line.starts_with("HTTP/1.1 401 ") || line.starts_with("HTTP/1.1 503 "),
        "{line}"
    );
    assert!(
        idle.iter().any(closed_by_relay),
        "no idle connection was closed"
    );
}

#[test]
fn out_of_descriptors_with_nothing_idle_new_clients_get_503_from_the_spare_descriptor() {
    use common::processes::RelayProcess;
    let paths = ["a", "b", "c", "d"];
    let relay = RelayProcess::start_with_fd_limit(&paths, 64);
    let addr = relay.url.trim_start_matches("ws://").to_owned();
    let url = relay.url.clone();
    // Registered listeners hold their descriptors and are not idle: nothing to shed. They are
    // added one by one until the relay answers one with 503.
    let refused = run(async move {
        let mut listeners = Vec::new();
        for n in 0..100 {
            let path = paths[n % paths.len()];
            let target = format!("{url}/$hc/{path}?sb-hc-action=listen");
            let token = token_for("root", KEY, path);
            match dialer()
                .connect(&target, &[("ServiceBusAuthorization", &token)], None)
                .await
            {
                Ok(conn) => listeners.push(conn),
                Err(ConnectError::Rejected { status, .. }) => return (status, listeners),
                Err(e) => panic!("listener {n}: {e}"),
            }
        }
        panic!("100 listeners and no refusal");
    });
    assert_eq!(refused.0, 503);
    assert!(refused.1.len() > 20, "only {} listeners", refused.1.len());
    let line = status_line_of_a_new_sender(&addr);
    assert!(line.starts_with("HTTP/1.1 503 "), "{line}");
}

#[test]
fn the_relay_raises_its_soft_descriptor_limit_to_the_hard_limit() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(4096)
        .min(4096);
    let limit = rustix::process::Rlimit {
        current: Some(128),
        maximum: Some(hard),
    };
    let rule = format!("root={KEY}");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hycod"));
    command
        .args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--hybrid-connection",
            "hyco",
        ])
        .args(["--rule", &rule])
        .stdout(std::process::Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit(2), a
    // plain system call that is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn().expect("relay starts");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines.next().expect("a line").expect("text");
    assert!(listening.starts_with("listening "), "{listening}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let _ = child.kill();
    let _ = child.wait();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers,
        [hard.to_string(), hard.to_string()],
        "{open_files}"
    );
}

/// A `response` on a rendezvous is a control message like any other (docs/architecture.md "One
/// channel layer"): one of exactly 64 KiB is relayed; one byte more fails the rendezvous with
/// 1009 and the sender gets `502 ListenerFailed`.
#[test]
fn a_rendezvous_response_over_64_kib_is_closed_with_1009_and_the_sender_gets_502() {
    const LIMIT: usize = 64 * 1024;
    let relay = relay(&[]);
    run(async move {
        let (mut control, _write) = listen(&relay.url).await;
        for (len, status) in [(LIMIT, "HTTP/1.1 200 OK\r\n"), (LIMIT + 1, "HTTP/1.1 502 ")] {
            // A head whose JSON escapes to over 32 KB goes through a rendezvous.
            let quotes = "\"".repeat(20_000);
            let request = format!(
                "GET /hyco/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nServiceBusAuthorization: {}\r\nX-Quotes: {quotes}\r\n\r\n",
                token()
            );
            let sender = monoio::spawn(exchange(relay.local_addr, request.into_bytes()));
            let notice = next_request(&mut control).await;
            assert!(notice.is_rendezvous_notice());
            let (mut reader, mut rdv, full) = open_rendezvous(&notice).await;
            let id = full.id.expect("id");
            let json = |fill: usize| {
                format!(
                    "{{\"response\":{{\"requestId\":\"{id}\",\"statusCode\":200,\"responseHeaders\":{{\"x-fill\":\"{}\"}},\"body\":false}}}}",
                    "f".repeat(fill)
                )
            };
            let text = json(len - json(0).len());
            assert_eq!(text.len(), len);
            let (first, rest) = text.as_bytes().split_at(1000);
            let mut frames = Vec::new();
            push_frame(&mut frames, false, OpCode::Text, first, mask()).expect("frame");
            push_frame(&mut frames, true, OpCode::Continuation, rest, mask()).expect("frame");
            rdv.write_all(frames).await.0.expect("answer");
            let (code, _) = close_of(&mut reader).await;
            let (answer, _) = sender.await;
            assert!(answer.starts_with(status), "{len}: {}", start(&answer));
            if len > LIMIT {
                assert_eq!(code, Some(CloseCode::MESSAGE_TOO_BIG));
                assert!(answer.contains("64 KB"), "{}", start(&answer));
            } else {
                assert_eq!(code, Some(CloseCode::NORMAL));
            }
        }
    });
}
