//! `[limits]` and file-descriptor exhaustion end to end (docs/reliability.md "Limits"): a real
//! relay and daemon process, senders through the relay. Each test shows what the sender sees when a
//! limit is exceeded, the metric that counts it, and that other work on the same hybrid
//! connection keeps working.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::processes::{
    eventually, open_fds, relayed_get, token, DaemonProcess, GatedUpstream, RelayProcess, Streamer,
    KEY, PATIENCE,
};
use hycod::io::ws_client::{ClientConn, ConnectError};
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRentExt, Splitable};

const PATH: &str = "hyco";

/// The configuration: two workers, JSON logs, an admin endpoint, `[limits]` with `limits`, and
/// one hybrid connection on `relay_url` with `target_lines`.
fn config(relay_url: &str, limits: &str, target_lines: &str) -> String {
    format!(
        r#"[runtime]
workers = 2
[admin]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
[limits]
{limits}
[[hybrid_connection]]
name = "sap"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={PATH}"
relay_url = "{relay_url}"
listeners = 2
{target_lines}
"#
    )
}

/// A relay, an echo target and a daemon with `limits`, its listeners online.
fn stream_setup(limits: &str, dir: &std::path::Path) -> (RelayProcess, DaemonProcess) {
    let relay = RelayProcess::start(&[PATH]);
    let echo = common::processes::tcp_echo();
    let text = config(
        &relay.url,
        limits,
        &format!("target = \"tcp://127.0.0.1:{echo}\""),
    );
    let mut daemon = DaemonProcess::start(dir, &text, None, &[]);
    daemon.wait_listener_online("sap");
    assert!(eventually(PATIENCE, || relay.listener_count(PATH) == 2));
    (relay, daemon)
}

/// Opens a sender stream to `PATH` through the relay.
async fn connect(relay_url: &str) -> Result<ClientConn, ConnectError> {
    let url = format!("{relay_url}/$hc/{PATH}?sb-hc-action=connect");
    let token = token(&hycod::auth::sas::dotnet_resource_uri("localhost", PATH));
    common::dialer()
        .connect(&url, &[("ServiceBusAuthorization", token.expose())], None)
        .await
}

/// The close code the daemon ends `conn` with, after the sender sent `frames` (data is
/// skipped).
async fn close_code_after(conn: ClientConn, frames: Vec<u8>) -> Option<u16> {
    let (read, mut write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        1 << 16,
    );
    if !frames.is_empty() {
        write.write_all(frames).await.0.expect("frames sent");
    }
    loop {
        match monoio::time::timeout(PATIENCE, reader.next_event()).await {
            Ok(Ok(WsEvent::Close { code, .. })) => return code.map(|c| c.as_u16()),
            Ok(Ok(_)) => {}
            other => panic!("no close frame: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
}

/// The status a rejected upgrade failed with.
fn rejected_status(result: Result<ClientConn, ConnectError>) -> (u16, String) {
    match result {
        Err(ConnectError::Rejected {
            status,
            description,
        }) => (status, description),
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(_) => panic!("expected a rejection, the stream was accepted"),
    }
}

#[test]
fn a_stream_over_the_hybrid_connection_maximum_is_rejected_with_503_and_others_keep_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, daemon) = stream_setup("max_streams_per_hybrid_connection = 2", dir.path());
    let first = Streamer::start(&relay.url, PATH);
    let second = Streamer::start(&relay.url, PATH);

    let (status, description) = rejected_status(common::run(connect(&relay.url)));
    assert_eq!(
        (status, description.as_str()),
        (503, "Too many streams in flight")
    );
    assert_eq!(
        daemon.metric_with(
            "hycod_streams_rejected_total",
            &[("reason", "hybrid_connection_limit")]
        ),
        Some(1.0)
    );

    first.keeps_flowing(3);
    second.keeps_flowing(3);
    second.finish();
    let third = Streamer::start(&relay.url, PATH);
    third.keeps_flowing(3);
    first.finish();
    third.finish();
}

#[test]
fn a_stream_over_the_worker_maximum_is_rejected_with_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One worker, so the worker maximum is reached before the hybrid connection's.
    let relay = RelayProcess::start(&[PATH]);
    let echo = common::processes::tcp_echo();
    let text = config(
        &relay.url,
        "max_streams_per_worker = 1",
        &format!("target = \"tcp://127.0.0.1:{echo}\"\nmax_streams = 10"),
    )
    .replace("workers = 2", "workers = 1")
    .replace("listeners = 2", "listeners = 1");
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("sap");
    let held = Streamer::start(&relay.url, PATH);
    let (status, _) = rejected_status(common::run(connect(&relay.url)));
    assert_eq!(status, 503);
    assert_eq!(
        daemon.metric_with(
            "hycod_streams_rejected_total",
            &[("reason", "worker_limit")]
        ),
        Some(1.0)
    );
    held.keeps_flowing(3);
    held.finish();
}

#[test]
fn a_frame_over_max_frame_closes_the_stream_with_1009_and_others_keep_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The streamer's frames are 16 KiB.
    let (relay, daemon) = stream_setup("max_frame = 32768", dir.path());
    let other = Streamer::start(&relay.url, PATH);

    let code = common::run(async {
        let conn = connect(&relay.url).await.expect("stream accepted");
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            true,
            OpCode::Binary,
            &[7u8; 65536],
            common::mask(),
        )
        .expect("frame");
        close_code_after(conn, frame).await
    });
    assert_eq!(code, Some(CloseCode::MESSAGE_TOO_BIG.as_u16()));
    assert!(eventually(PATIENCE, || daemon.metric_with(
        "hycod_limit_exceeded_total",
        &[("limit", "max_frame")]
    ) == Some(1.0)));
    other.keeps_flowing(3);
    other.finish();
}

#[test]
fn a_message_over_max_message_closes_the_stream_with_1009() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, daemon) = stream_setup("max_message = 2048", dir.path());
    let code = common::run(async {
        let conn = connect(&relay.url).await.expect("stream accepted");
        let mut frames = Vec::new();
        for fin in [false, false, true] {
            let opcode = if frames.is_empty() {
                OpCode::Binary
            } else {
                OpCode::Continuation
            };
            push_frame(&mut frames, fin, opcode, &[1u8; 1000], common::mask()).expect("frame");
        }
        close_code_after(conn, frames).await
    });
    assert_eq!(code, Some(CloseCode::MESSAGE_TOO_BIG.as_u16()));
    assert!(eventually(PATIENCE, || daemon.metric_with(
        "hycod_limit_exceeded_total",
        &[("limit", "max_message")]
    ) == Some(1.0)));
}

/// A TCP target that accepts and holds every connection without reading or closing it.
fn silent_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            held.push(conn);
        }
    });
    port
}

#[test]
fn a_half_closed_stream_whose_target_never_closes_ends_after_idle_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = RelayProcess::start(&[PATH]);
    let text = config(
        &relay.url,
        "idle_timeout = \"1s\"",
        &format!("target = \"tcp://127.0.0.1:{}\"", silent_target()),
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("sap");
    let code = common::run(async {
        let conn = connect(&relay.url).await.expect("stream accepted");
        // The sender's Close half-closes the stream; the target never answers with its FIN.
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "", common::mask()).expect("close");
        close_code_after(conn, close).await
    });
    assert_eq!(code, Some(CloseCode::GOING_AWAY.as_u16()));
    let closed = daemon.wait_log("the idle stream closed", |l| {
        l["message"] == "stream closed"
    });
    assert!(
        closed["end"]
            .as_str()
            .is_some_and(|end| end.contains("idle timeout")),
        "{closed}"
    );
    assert_eq!(
        daemon.metric_with("hycod_limit_exceeded_total", &[("limit", "idle_timeout")]),
        Some(1.0)
    );
}

#[test]
fn a_request_over_the_request_maximum_is_answered_503_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = RelayProcess::start(&[PATH]);
    let upstream = GatedUpstream::start();
    let text = config(
        &relay.url,
        "",
        &format!(
            "http_target = \"http://127.0.0.1:{}\"\nmax_requests = 1",
            upstream.port
        ),
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("sap");
    assert!(eventually(PATIENCE, || relay.listener_count(PATH) == 2));

    let held = relayed_get(&relay.url, PATH, "held");
    let arrived = upstream
        .arrived
        .recv_timeout(PATIENCE)
        .expect("first request upstream");
    assert!(arrived.starts_with("GET /held"), "{arrived}");
    let refused = relayed_get(&relay.url, PATH, "refused")
        .recv_timeout(PATIENCE)
        .expect("second answer");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert_eq!(
        daemon.metric_with(
            "hycod_requests_rejected_total",
            &[("reason", "hybrid_connection_limit")]
        ),
        Some(1.0)
    );

    upstream.release_one();
    let answer = held.recv_timeout(PATIENCE).expect("first answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let next = relayed_get(&relay.url, PATH, "next");
    upstream
        .arrived
        .recv_timeout(PATIENCE)
        .expect("third request upstream");
    upstream.release_one();
    let answer = next.recv_timeout(PATIENCE).expect("third answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// An HTTP target answering `/big` with a head of `big_header` bytes and anything else with a
/// small one.
fn head_upstream(big_header: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let answer = if head.starts_with(b"GET /big") {
                format!(
                    "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    "b".repeat(big_header)
                )
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned()
            };
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    port
}

#[test]
fn an_upstream_head_over_max_http_head_is_answered_502_and_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = RelayProcess::start(&[PATH]);
    let port = head_upstream(4096);
    let text = config(
        &relay.url,
        "max_http_head = 2048",
        &format!("http_target = \"http://127.0.0.1:{port}\""),
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("sap");
    assert!(eventually(PATIENCE, || relay.listener_count(PATH) == 2));

    let big = relayed_get(&relay.url, PATH, "big")
        .recv_timeout(PATIENCE)
        .expect("answer");
    assert!(big.starts_with("HTTP/1.1 502"), "{big}");
    assert_eq!(
        daemon.metric_with("hycod_limit_exceeded_total", &[("limit", "max_http_head")]),
        Some(1.0)
    );
    let small = relayed_get(&relay.url, PATH, "small")
        .recv_timeout(PATIENCE)
        .expect("answer");
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
}

/// What [`hold_streams`] reports for each stream it tried to open.
type Opened = Result<(), (u16, String)>;

/// On its own thread, opens up to `count` streams one after another and holds them; each
/// outcome is reported on the returned channel. The streams close when `release` gets a value
/// (or is dropped).
fn hold_streams(relay_url: &str, count: usize) -> (mpsc::Receiver<Opened>, mpsc::Sender<()>) {
    let (report, outcomes) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let url = relay_url.to_owned();
    std::thread::spawn(move || {
        common::run(async move {
            let mut held = Vec::new();
            for _ in 0..count {
                let outcome = match connect(&url).await {
                    Ok(conn) => {
                        held.push(conn);
                        Ok(())
                    }
                    Err(ConnectError::Rejected {
                        status,
                        description,
                    }) => Err((status, description)),
                    Err(other) => Err((0, other.to_string())),
                };
                let rejected = outcome.is_err();
                if report.send(outcome).is_err() || rejected {
                    break;
                }
            }
            // Held until the test lets go; the runtime has nothing else to do meanwhile.
            let _ = released.recv();
            drop(held);
        });
    });
    (outcomes, release)
}

#[test]
fn the_daemon_out_of_file_descriptors_rejects_with_503_logs_emfile_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = RelayProcess::start(&[PATH]);
    let echo = common::processes::tcp_echo();
    let text = config(
        &relay.url,
        "",
        &format!("target = \"tcp://127.0.0.1:{echo}\""),
    );
    let fd_limit = 64;
    let mut daemon = DaemonProcess::start_with_fd_limit(dir.path(), &text, fd_limit);
    let warning = daemon.wait_log("the RLIMIT_NOFILE warning", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("RLIMIT_NOFILE is below what [limits] allows"))
    });
    assert_eq!(
        (warning["limit"].as_u64(), warning["needed"].as_u64()),
        (Some(fd_limit), Some(3 * 1024 + 2 * 1024 + 64)),
        "{warning}"
    );
    daemon.wait_listener_online("sap");
    assert!(eventually(PATIENCE, || relay.listener_count(PATH) == 2));
    let baseline = open_fds(daemon.pid());
    assert!(baseline + 4 < 64, "{baseline} descriptors open at start");

    // Every stream costs the daemon two descriptors (target and rendezvous).
    let (outcomes, release) = hold_streams(&relay.url, 64);
    let mut accepted = 0;
    let rejection = loop {
        match outcomes.recv_timeout(PATIENCE).expect("an outcome") {
            Ok(()) => accepted += 1,
            Err(rejection) => break rejection,
        }
    };
    assert!(accepted >= 2, "only {accepted} streams before exhaustion");
    assert_eq!(
        rejection,
        (503, "Listener is out of file descriptors".to_owned())
    );
    let logged = daemon.wait_log("the EMFILE rejection", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stream rejected: out of file descriptors"))
    });
    assert_eq!(
        (&logged["level"], &logged["errno"]),
        (&"ERROR".into(), &"EMFILE".into()),
        "{logged}"
    );

    release.send(()).expect("holder alive");
    assert!(eventually(PATIENCE, || daemon
        .metric("hycod_streams_in_flight")
        == Some(0.0)));
    assert!(daemon
        .metric_with(
            "hycod_streams_rejected_total",
            &[("reason", "too_many_open_files")]
        )
        .is_some_and(|n| n >= 1.0));
    // Recovery: descriptors are free again and new streams work.
    let after = Streamer::start(&relay.url, PATH);
    after.keeps_flowing(3);
    after.finish();
}

#[test]
fn the_relay_out_of_file_descriptors_pauses_accepting_and_serves_queued_connections_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = RelayProcess::start_with_fd_limit(&[PATH], 64);
    let echo = common::processes::tcp_echo();
    let text = config(
        &relay.url,
        "",
        &format!("target = \"tcp://127.0.0.1:{echo}\""),
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("sap");
    assert!(eventually(PATIENCE, || relay.listener_count(PATH) == 2));

    // Idle connections take every descriptor the relay has left; the rest wait in the backlog.
    let before = open_fds(relay.pid());
    let addr = relay.url.trim_start_matches("ws://").to_owned();
    let hogs: Vec<_> = (0..80)
        .map(|_| std::net::TcpStream::connect(&addr).expect("queued at least"))
        .collect();
    assert!(eventually(PATIENCE, || open_fds(relay.pid()) >= 63));

    // Once descriptors are free again, a sender is served. (One arriving while they are short
    // is answered 503 at once: tests/relay_limits.rs "out_of_descriptors_*".) The relay frees a
    // hog's descriptor only when it reads that hog's end, which on a loaded machine can come
    // after the sender's connection: so the sender waits until the descriptors are back.
    drop(hogs);
    assert!(
        eventually(PATIENCE, || open_fds(relay.pid()) <= before + 2),
        "the relay kept {} descriptors, {before} before the idle connections",
        open_fds(relay.pid())
    );
    let url = relay.url.clone();
    let sender = std::thread::spawn(move || Streamer::start(&url, PATH));
    let sender = sender.join().expect("the sender is served");
    sender.keeps_flowing(3);
    sender.finish();

    let failures = relay.status()["accept_failures"].as_u64().expect("count");
    assert!(failures >= 1, "no accept failure counted");
    // Backing off, not spinning: a spinning loop fails millions of times in this window.
    assert!(
        failures < 1000,
        "{failures} accept failures: the loop spins"
    );
}
