//! The running daemon against a relay scripted by the test ([`common::scripted_relay`]): what
//! it puts on the wire when it registers and sends (ids, client agent), how it treats service
//! messages that the official SDKs accept but ours never sends (partial `remoteEndpoint`,
//! malformed members), and which rendezvous addresses it refuses to dial.

use std::path::Path;
use std::time::{Duration, Instant};

use hycod::config::Config;
use hycod::daemon::{self, DaemonHandle, DaemonOptions};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};

mod common;

use common::processes::{forward, http_get, http_upstream, tcp_echo, KEY};
use common::scripted_relay::{Dialed, Frame, ScriptedRelay};

const WAIT: Duration = Duration::from_secs(10);

fn start(relay_url: &str, extra: &str) -> DaemonHandle {
    let echo = tcp_echo();
    let http = http_upstream();
    let text = format!(
        r#"
[runtime]
workers = 1
[admin]
listen = "127.0.0.1:0"
[[hybrid_connection]]
name = "hyco"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco"
relay_url = "{relay_url}"
target = "tcp://127.0.0.1:{echo}"
http_target = "http://127.0.0.1:{http}/"
listeners = 1
{extra}
"#
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    daemon::start(&config, DaemonOptions::default()).expect("daemon")
}

/// The daemon's listen connection on `relay`.
fn control(relay: &ScriptedRelay) -> Dialed {
    relay
        .next_action("listen", WAIT)
        .expect("the daemon registers a listener")
}

/// `hycod_unusable_messages_total` for `command`.
fn unusable(handle: &DaemonHandle, command: &str) -> f64 {
    metric(
        handle,
        "hycod_unusable_messages_total",
        &[("command", command)],
    )
}

/// The request rendezvous address `relay` hands out for request `id` on `hyco`.
fn request_address(relay: &ScriptedRelay, id: &str) -> String {
    format!(
        "{}/$hc/hyco?sb-hc-action=request&sb-hc-id={id}",
        relay.url()
    )
}

/// Sends a rendezvous notice for request `id` on `listen` and returns the request rendezvous the
/// daemon opens for it.
fn notice(relay: &ScriptedRelay, listen: &mut Dialed, id: &str) -> Dialed {
    let address = request_address(relay, id);
    listen.conn().send_text(&format!(
        r#"{{"request":{{"address":"{address}","id":"{id}"}}}}"#
    ));
    relay
        .next_action("request", WAIT)
        .expect("the daemon opens the request rendezvous")
}

/// A GUID in its 8-4-4-4-12 hex form (what `Guid.ToString()` gives).
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The sum of `metric`'s samples whose labels include every pair of `labels`.
fn metric(handle: &DaemonHandle, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let admin = handle.admin_addr.expect("admin").to_string();
    let (_, text) = http_get(&admin, "/metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn listener_and_sender_ids_are_guids_and_the_client_agent_names_hycod() {
    let relay = ScriptedRelay::start();
    let forward = forward("out", "hyco", &relay.url());
    let handle = start(&relay.url(), &forward);
    let agent = format!("hycod/{}", env!("CARGO_PKG_VERSION"));
    let listen = control(&relay);
    let id = listen.query("sb-hc-id").expect("sb-hc-id");
    assert!(is_guid(id), "listener id {id}");
    assert_eq!(listen.header("Relay-User-Agent"), Some(agent.as_str()));

    let local = handle.forward_addr("out").expect("forward port");
    let _app = std::net::TcpStream::connect(local).expect("connect the forward");
    let sender = relay
        .next_action("connect", WAIT)
        .expect("the forward opens a sender stream");
    let id = sender.query("sb-hc-id").expect("sb-hc-id");
    assert!(is_guid(id), "sender id {id}");
    assert_eq!(sender.header("Relay-User-Agent"), Some(agent.as_str()));
}

#[test]
fn an_accept_or_request_without_remote_endpoint_port_is_served() {
    let relay = ScriptedRelay::start();
    let _handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let address = format!("{}/$hc/hyco?sb-hc-action=accept&sb-hc-id=a1", relay.url());
    listen.conn().send_text(&format!(
        r#"{{"accept":{{"address":"{address}","id":"a1","connectHeaders":{{}},"remoteEndpoint":{{"address":"203.0.113.9"}},"future":true}}}}"#
    ));
    let rendezvous = relay
        .next_action("accept", WAIT)
        .expect("the accept is served");
    assert!(rendezvous.conn.is_some(), "accepted, not rejected");

    listen.conn().send_text(
        r#"{"request":{"id":"r1","requestTarget":"/hyco/x","method":"GET","remoteEndpoint":{"port":5},"requestHeaders":{},"body":false}}"#,
    );
    let text = listen.conn().next_text(WAIT).expect("a response");
    let Ok(ControlMessage::Response(response)) = parse_control_message(text.as_bytes()) else {
        panic!("expected a response: {text}");
    };
    assert_eq!(
        (response.request_id.as_str(), response.status_code),
        ("r1", 200)
    );
}

#[test]
fn service_messages_the_daemon_cannot_use_are_answered_and_counted() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let address = format!("{}/$hc/hyco?sb-hc-action=accept&sb-hc-id=a2", relay.url());
    listen
        .conn()
        .send_text(&format!(r#"{{"accept":{{"address":"{address}","id":7}}}}"#));
    let rejection = relay
        .next_action("accept", WAIT)
        .expect("the unusable accept is rejected through its address");
    assert!(rejection.conn.is_none());
    assert_eq!(rejection.query("sb-hc-statusCode"), Some("502"));

    listen
        .conn()
        .send_text(r#"{"request":{"id":"r2","method":["GET"],"requestTarget":"/hyco/x"}}"#);
    let text = listen.conn().next_text(WAIT).expect("a response");
    let Ok(ControlMessage::Response(response)) = parse_control_message(text.as_bytes()) else {
        panic!("expected a response: {text}");
    };
    assert_eq!(
        (response.request_id.as_str(), response.status_code),
        ("r2", 502)
    );

    let until = Instant::now() + WAIT;
    while (unusable(&handle, "accept"), unusable(&handle, "request")) != (1.0, 1.0)
        && Instant::now() < until
    {
        std::thread::park_timeout(Duration::from_millis(20));
    }
    assert_eq!(
        (unusable(&handle, "accept"), unusable(&handle, "request")),
        (1.0, 1.0)
    );
}

#[test]
fn an_accept_naming_a_foreign_host_is_never_dialed_and_is_counted() {
    let relay = ScriptedRelay::start();
    let rogue = ScriptedRelay::start_on("127.0.0.2");
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    for (action, message) in [
        (
            "accept",
            format!(
                r#"{{"accept":{{"address":"{}/$hc/hyco?sb-hc-action=accept&sb-hc-id=x","id":"x","connectHeaders":{{}}}}}}"#,
                rogue.url()
            ),
        ),
        (
            "request",
            format!(
                r#"{{"request":{{"address":"{}/$hc/hyco?sb-hc-action=request&sb-hc-id=y","id":"y"}}}}"#,
                rogue.url()
            ),
        ),
    ] {
        listen.conn().send_text(&message);
        let refused = || {
            metric(
                &handle,
                "hycod_rendezvous_refused_total",
                &[("reason", "foreign_host"), ("command", action)],
            )
        };
        let until = Instant::now() + WAIT;
        while refused() < 1.0 && Instant::now() < until {
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert_eq!(refused(), 1.0, "{action}");
    }
    assert!(
        rogue.next(Duration::from_millis(500)).is_none(),
        "the rogue host was dialed"
    );
    // A rendezvous on the relay's own host is still served.
    listen.conn().send_text(&format!(
        r#"{{"accept":{{"address":"{}/$hc/hyco?sb-hc-action=accept&sb-hc-id=z","id":"z","connectHeaders":{{}}}}}}"#,
        relay.url()
    ));
    assert!(relay
        .next_action("accept", WAIT)
        .is_some_and(|d| d.conn.is_some()));
}

const MIB: usize = 1024 * 1024;

/// Reads binary messages until `len` payload bytes arrived; their concatenation.
fn read_binary(conn: &mut common::scripted_relay::Conn, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        match conn.next_frame(WAIT) {
            Some(Frame::Binary(bytes)) => got.extend_from_slice(&bytes),
            Some(Frame::Ping(_) | Frame::Pong(_)) => {}
            other => panic!("after {} bytes: {other:?}", got.len()),
        }
    }
    got
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A .NET sender writes one message per `Write`, so a 20 MiB write is one 20 MiB frame; the
/// listener and the forward carry it instead of failing the stream with 1009.
#[test]
fn a_single_20_mib_frame_passes_the_listener_and_the_forward() {
    let relay = ScriptedRelay::start();
    let forward = forward("out", "hyco", &relay.url());
    let handle = start(&relay.url(), &forward);
    let payload = pattern(20 * MIB);

    let mut listen = control(&relay);
    listen.conn().send_text(&format!(
        r#"{{"accept":{{"address":"{}/$hc/hyco?sb-hc-action=accept&sb-hc-id=big","id":"big","connectHeaders":{{}}}}}}"#,
        relay.url()
    ));
    let mut rendezvous = relay.next_action("accept", WAIT).expect("accepted");
    let writing = rendezvous.conn().send_binary_in_background(payload.clone());
    let echoed = read_binary(rendezvous.conn(), payload.len());
    writing.join().expect("written");
    assert!(echoed == payload, "the echo of the 20 MiB frame differs");

    let local = handle.forward_addr("out").expect("forward port");
    let mut app = std::net::TcpStream::connect(local).expect("connect the forward");
    let mut sender = relay.next_action("connect", WAIT).expect("sender stream");
    let writing = sender.conn().send_binary_in_background(payload.clone());
    let mut got = vec![0u8; payload.len()];
    app.set_read_timeout(Some(WAIT)).expect("timeout");
    std::io::Read::read_exact(&mut app, &mut got).expect("the forward delivers 20 MiB");
    writing.join().expect("written");
    assert!(got == payload, "the forwarded 20 MiB frame differs");
}

/// `[[forward]] stream_ping_interval`: an idle forwarded stream is pinged; a relay side that
/// stops answering gets Close(1001) and the local connection is closed.
#[test]
fn a_forwarded_stream_is_pinged_and_closed_when_pongs_stop() {
    let relay = ScriptedRelay::start();
    // Every test forward pings after 1 s of silence (under the strict relay's idle cut).
    let forward = forward("out", "hyco", &relay.url());
    assert!(forward.contains("\nstream_ping_interval = \"1s\"\n"));
    let handle = start(&relay.url(), &forward);
    let local = handle.forward_addr("out").expect("forward port");
    let mut app = std::net::TcpStream::connect(local).expect("connect the forward");
    let mut sender = relay.next_action("connect", WAIT).expect("sender stream");
    let conn = sender.conn();
    let opened = Instant::now();
    for round in 0..2 {
        match conn.next_frame(Duration::from_secs(3)) {
            Some(Frame::Ping(payload)) => conn.send_pong(&payload),
            other => panic!("round {round}: expected a ping, got {other:?}"),
        }
    }
    let answered = opened.elapsed();
    assert!(
        answered >= Duration::from_millis(1800) && answered < Duration::from_secs(4),
        "two pings took {answered:?} at a 1 s interval"
    );
    // No more pongs: the next ping goes unanswered and the stream is closed with 1001.
    let until = Instant::now() + Duration::from_secs(5);
    let code = loop {
        match conn.next_frame(until.saturating_duration_since(Instant::now())) {
            Some(Frame::Ping(_)) => {}
            Some(Frame::Close(code)) => break code,
            other => panic!("expected ping or close, got {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    app.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut app, &mut byte);
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the local connection stays open: {read:?}"
    );
    assert_eq!(
        metric(
            &handle,
            "hycod_forward_connections_total",
            &[("result", "forwarded")]
        ),
        1.0
    );
}

/// Control messages are collected up to 64 KiB (protocol §4.2, docs/architecture.md "One channel
/// layer"): a `request` of exactly 64 KiB is served; one byte more fails the channel with 1009
/// and the daemon registers again.
#[test]
fn a_control_message_over_64_kib_closes_the_channel_with_1009_and_the_daemon_registers_again() {
    const LIMIT: usize = 64 * 1024;
    let relay = ScriptedRelay::start();
    let _handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    listen.conn().send_text(&padded_request("exact", LIMIT));
    let text = listen.conn().next_text(WAIT).expect("a response");
    let Ok(ControlMessage::Response(response)) = parse_control_message(text.as_bytes()) else {
        panic!("expected a response: {text}");
    };
    assert_eq!(
        (response.request_id.as_str(), response.status_code),
        ("exact", 200)
    );

    listen.conn().send_text(&padded_request("over", LIMIT + 1));
    assert_eq!(close_code(listen.conn()), Some(1009));
    control(&relay);
}

/// A `request` control message padded with spaces to `len` bytes.
fn padded_request(id: &str, len: usize) -> String {
    let json = format!(
        r#"{{"request":{{"id":"{id}","requestTarget":"/hyco/x","method":"GET","requestHeaders":{{}},"body":false}}}}"#
    );
    format!("{json}{}", " ".repeat(len - json.len()))
}

/// The close code of the next close frame on `conn`; panics on a text frame (an answer).
fn close_code(conn: &mut common::scripted_relay::Conn) -> Option<u16> {
    let until = Instant::now() + WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match conn.next_frame(left) {
            Some(Frame::Close(code)) => return code,
            Some(Frame::Text(text)) => panic!("the oversized message was answered: {text:?}"),
            Some(_) => {}
            None => panic!("the daemon sent no close frame"),
        }
    }
}

#[test]
fn a_control_message_over_64_kib_is_counted_as_unusable_under_the_command_it_starts_with() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    listen
        .conn()
        .send_text(&padded_request("over", 64 * 1024 + 1));
    assert_eq!(close_code(listen.conn()), Some(1009));
    assert_eq!(unusable(&handle, "request"), 1.0);
}

#[test]
fn a_request_over_64_kib_on_a_request_rendezvous_closes_it_with_1009_and_is_counted() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let mut rendezvous = notice(&relay, &mut listen, "big");
    rendezvous
        .conn()
        .send_text(&padded_request("big", 64 * 1024 + 1));
    assert_eq!(close_code(rendezvous.conn()), Some(1009));
    assert_eq!(unusable(&handle, "request"), 1.0);
}

#[test]
fn a_malformed_request_on_a_request_rendezvous_is_answered_502_and_counted() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let mut rendezvous = notice(&relay, &mut listen, "n1");
    rendezvous
        .conn()
        .send_text(r#"{"request":{"id":"n1","method":["GET"],"requestTarget":"/hyco/x"}}"#);
    let text = rendezvous.conn().next_text(WAIT).expect("a response");
    let Ok(ControlMessage::Response(response)) = parse_control_message(text.as_bytes()) else {
        panic!("expected a response: {text}");
    };
    assert_eq!(
        (
            response.request_id.as_str(),
            response.status_code,
            response.status_description.as_deref()
        ),
        ("n1", 502, Some("Bad Gateway"))
    );
    assert_eq!(
        rendezvous.conn().next_frame(WAIT),
        Some(Frame::Close(Some(1000)))
    );
    assert_eq!(unusable(&handle, "request"), 1.0);
}

#[test]
fn another_command_on_a_request_rendezvous_closes_it_with_1002_and_is_counted() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let mut rendezvous = notice(&relay, &mut listen, "n2");
    rendezvous
        .conn()
        .send_text(r#"{"accept":{"address":"wss://x/$hc/hyco","id":"a"}}"#);
    assert_eq!(
        rendezvous.conn().next_frame(WAIT),
        Some(Frame::Close(Some(1002)))
    );
    assert_eq!(unusable(&handle, "accept"), 1.0);
}

/// The next `response` on `conn` as (request id, status).
fn next_response(conn: &mut common::scripted_relay::Conn) -> (String, u16) {
    let response = whole_response(conn);
    (response.request_id, response.status_code)
}

#[test]
fn a_control_channel_request_whose_body_is_over_64_kib_or_missing_is_answered_502_and_counted() {
    let relay = ScriptedRelay::start();
    let handle = start(&relay.url(), "");
    let mut listen = control(&relay);
    let request = |id: &str| {
        format!(
            r#"{{"request":{{"id":"{id}","requestTarget":"/hyco/x","method":"POST","requestHeaders":{{}},"body":true}}}}"#
        )
    };
    listen.conn().send_text(&request("big"));
    listen.conn().send_binary(&vec![b'x'; 64 * 1024 + 1]);
    assert_eq!(next_response(listen.conn()), ("big".to_owned(), 502));

    // A request whose body message never comes: the next text message arrives instead.
    listen.conn().send_text(&request("bodiless"));
    listen.conn().send_text(
        r#"{"request":{"id":"after","requestTarget":"/hyco/x","method":"GET","requestHeaders":{},"body":false}}"#,
    );
    let mut answers = [next_response(listen.conn()), next_response(listen.conn())];
    answers.sort();
    assert_eq!(
        answers,
        [("after".to_owned(), 200), ("bodiless".to_owned(), 502)]
    );
    assert_eq!(unusable(&handle, "request"), 2.0);
}

/// The whole `response` in the next text message on `conn`, skipping control frames.
fn whole_response(conn: &mut common::scripted_relay::Conn) -> hycod::proto::hc::messages::Response {
    let text = conn.next_text(WAIT).expect("a response");
    match parse_control_message(text.as_bytes()) {
        Ok(ControlMessage::Response(response)) => response,
        _ => panic!("expected a response: {text}"),
    }
}

/// A detaching daemon (architecture §3 "Detaching") has sent its Close on the control channel
/// and still serves what the relay sent before it saw that Close. Its own refusals then go
/// through the request's rendezvous like every other answer: a request over `max_requests`
/// gets its 503 there, an unreadable one its 502, each rendezvous then closed with 1000.
#[test]
fn refusals_in_the_detach_window_go_through_the_requests_rendezvous() {
    let relay = ScriptedRelay::start();
    let mut handle = start(&relay.url(), "max_requests = 1\n");
    let mut listen = control(&relay);
    let address = |id: &str| request_address(&relay, id);
    // The one request permit, held: a rendezvous notice whose request never comes.
    let _held = notice(&relay, &mut listen, "held");

    handle.drain(WAIT);
    let close = loop {
        match listen.conn().next_frame(WAIT) {
            Some(Frame::Ping(_) | Frame::Pong(_)) => {}
            other => break other,
        }
    };
    assert_eq!(close, Some(Frame::Close(Some(1000))), "the daemon detaches");
    // The relay sent these before it read the Close.
    listen.conn().send_text(&format!(
        r#"{{"request":{{"address":"{}","id":"over","requestTarget":"/hyco/x","method":"GET","requestHeaders":{{}},"body":false}}}}"#,
        address("over")
    ));
    listen.conn().send_text(&format!(
        r#"{{"request":{{"address":"{}","id":"bad","method":["GET"],"requestTarget":"/hyco/x"}}}}"#,
        address("bad")
    ));

    let mut answered = Vec::new();
    for _ in 0..2 {
        let mut rendezvous = relay
            .next_action("request", Duration::from_secs(2))
            .expect("a refusal comes through its request's rendezvous");
        let id = rendezvous.query("sb-hc-id").expect("sb-hc-id").to_owned();
        let response = whole_response(rendezvous.conn());
        assert_eq!(response.request_id, id);
        assert_eq!(
            rendezvous.conn().next_frame(WAIT),
            Some(Frame::Close(Some(1000))),
            "{id}: the rendezvous closes after the refusal"
        );
        answered.push((id, response.status_code, response.status_description));
    }
    answered.sort();
    assert_eq!(
        answered,
        [
            ("bad".to_owned(), 502, Some("Bad Gateway".to_owned())),
            (
                "over".to_owned(),
                503,
                Some("Too many requests in flight".to_owned())
            ),
        ]
    );
}
