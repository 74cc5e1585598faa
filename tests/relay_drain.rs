//! `hycod relay` stopped as an operator stops it (docs/relay.md "Stopping"): a real relay
//! process signalled with SIGTERM while a stream or a relayed HTTP request is in flight between
//! a real daemon and a real sender. It stops accepting at once, lets the work in flight finish
//! within `--shutdown-grace` (default 30 s), closes what is left with 1001, and exits 0.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::processes::{
    config_text, eventually, hybrid_connection, relayed_get, tcp_echo, DaemonProcess, Ending,
    GatedUpstream, NotifySocket, Progress, RelayProcess, Streamer, KEY, PATIENCE,
};
use hycod::proto::ws::CloseCode;

/// A daemon listening on `hyco` at `relay` with one hybrid connection section, ready.
fn daemon(dir: &std::path::Path, section: String) -> DaemonProcess {
    let mut notify = NotifySocket::bind(dir);
    let daemon = DaemonProcess::start(
        dir,
        &config_text("20s", &[section]),
        Some(&notify.path),
        &[],
    );
    notify.wait_line("READY=1");
    daemon
}

/// A daemon relaying `hyco` at `relay` to a TCP echo target, and a stream through them that is
/// already flowing; the directory and daemon must live as long as the stream.
fn flowing_echo_stream(relay: &RelayProcess) -> (tempfile::TempDir, DaemonProcess, Streamer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon(
        dir.path(),
        hybrid_connection("echo", "hyco", &relay.url, tcp_echo()),
    );
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(3);
    (dir, daemon, streamer)
}

/// Whether a new TCP connection to the relay's main port is refused.
fn refuses_connections(relay: &RelayProcess) -> bool {
    TcpStream::connect(relay.url.trim_start_matches("ws://")).is_err()
}

#[test]
fn sigterm_lets_the_stream_in_flight_finish_refuses_new_connections_and_exits_0() {
    let mut relay = RelayProcess::start(&["hyco"]);
    let (_dir, _daemon, streamer) = flowing_echo_stream(&relay);

    let sigterm = Instant::now();
    relay.signal("TERM");
    assert!(
        eventually(PATIENCE, || refuses_connections(&relay)),
        "the main port closed"
    );
    streamer.keeps_flowing(10);
    match streamer.finish() {
        Progress::Finished {
            sent,
            verified,
            clean,
        } => {
            assert!(clean, "the stream closed cleanly");
            assert_eq!(sent, verified);
        }
        other => panic!("{other:?}"),
    }
    let status = relay.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        sigterm.elapsed() < Duration::from_secs(30),
        "within the default grace"
    );
}

#[test]
fn sigterm_with_an_endless_stream_closes_it_with_1001_when_the_grace_ends_and_exits_0() {
    let mut relay = RelayProcess::start_with_flags(&["hyco"], &[], &["--shutdown-grace", "1s"]);
    let (_dir, _daemon, streamer) = flowing_echo_stream(&relay);

    let sigterm = Instant::now();
    relay.signal("TERM");
    let ended = streamer.wait_end(PATIENCE);
    let took = sigterm.elapsed();
    assert!(
        matches!(ended, Progress::Finished { clean: false, .. }),
        "{ended:?}"
    );
    assert_eq!(
        streamer.ending(),
        Some(Ending::Closed(Some(CloseCode::GOING_AWAY)))
    );
    assert!(
        took >= Duration::from_secs(1),
        "not before the grace: {took:?}"
    );
    let status = relay.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigterm_lets_the_request_in_flight_be_answered_then_exits_0() {
    let mut relay = RelayProcess::start(&["hyco"]);
    let upstream = GatedUpstream::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let _daemon = daemon(
        dir.path(),
        format!(
            "[[hybrid_connection]]\nname = \"web\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco\"\nrelay_url = \"{}\"\nhttp_target = \"http://127.0.0.1:{}/\"\n",
            relay.url, upstream.port
        ),
    );
    let held = relayed_get(&relay.url, "hyco", "slow");
    let first_line = upstream
        .arrived
        .recv_timeout(PATIENCE)
        .expect("the request arrived");
    assert_eq!(first_line, "GET /slow HTTP/1.1");

    relay.signal("TERM");
    assert!(
        eventually(PATIENCE, || refuses_connections(&relay)),
        "the main port closed"
    );
    upstream.release_one();
    let answer = held
        .recv_timeout(PATIENCE)
        .expect("the held request's answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("\r\n4\r\ndone\r\n0\r\n\r\n"),
        "the whole body: {answer}"
    );
    let status = relay.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_second_sigterm_exits_at_once_with_143() {
    let mut relay = RelayProcess::start(&["hyco"]);
    let (_dir, _daemon, streamer) = flowing_echo_stream(&relay);
    relay.signal("TERM");
    assert!(
        eventually(PATIENCE, || refuses_connections(&relay)),
        "draining"
    );
    streamer.keeps_flowing(3);
    relay.signal("TERM");
    let status = relay.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(143), "{status:?}");
}
