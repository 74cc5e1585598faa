//! The official Node SDK as sender into the hycod listener daemon (protocol §10): hyco-ws
//! `relayedConnect` streams and plain Node HTTP requests go through `hycod relay` to
//! `hycod run`, which forwards them to an on-prem service written here (`interop/upstream.rs`):
//! a TCP echo target in stream mode (protocol §5.4), an HTTP server answering like
//! `node/https-listener.js` in HTTP mode (protocol §6.6, §6.7).
//!
//! The scripts verify what they can themselves; these tests check every reported size and hash
//! again, and what the target, the daemon's log and its metrics say about the same traffic.
//!
//! Without node/npm the tests print a skip message and pass, except under `CI=true`.

#[path = "interop/content.rs"]
mod content;
#[path = "interop/daemon.rs"]
mod daemon;
#[path = "interop/fields.rs"]
mod fields;
// Shared with tests/interop.rs, which uses the Node-listener half of it.
#[allow(dead_code)]
#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/http_checks.rs"]
mod http_checks;
#[path = "interop/upstream.rs"]
mod upstream;

use std::time::Duration;

use serde_json::Value;

use content::{content, sha256_hex};
use daemon::{Daemon, Forward};
use fields::{str_field, u64_field, usize_of};
use harness::{node_project, Relay};
use http_checks::HttpScenario;
use upstream::{EchoTarget, HttpUpstream};

/// Hybrid connection of the stream-mode tests.
const STREAM_HC: &str = "daemon-stream";
/// Hybrid connection of the HTTP-mode tests.
const HTTP_HC: &str = "daemon-http";

/// How long the target and the daemon may take to report the end of streams the senders saw
/// closed.
const END_REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Message sizes of the single stream: empty messages, the WebSocket length-encoding edges
/// (125/126, 65535/65536) and 1 MiB messages; 3,639,204 bytes in all.
const STREAM_SIZES: [usize; 14] = [
    0, 1, 125, 126, 65535, 65536, 1048576, 0, 7, 1048575, 262144, 1048576, 100000, 3,
];
/// Concurrent senders, and the message sizes each one sends (266,537 bytes per sender).
const CONCURRENT_SENDERS: usize = 32;
const CONCURRENT_SIZES: [usize; 5] = [0, 1, 1000, 65536, 200000];

fn sizes_arg(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What sender `sender` sends: its messages back to back (`ws-stream-sender.js`).
fn stream_content(sender: usize, sizes: &[usize]) -> Vec<u8> {
    sizes
        .iter()
        .enumerate()
        .flat_map(|(k, &len)| content(&format!("stream/s{sender}/m{k}"), len))
        .collect()
}

/// Runs `ws-stream-sender.js` with `senders` senders of `sizes` through a daemon forwarding to
/// an echo target, and checks the scripts' report, the target's, the daemon's log and metrics.
fn stream_echo(senders: usize, sizes: &[usize]) {
    let Some(node) = node_project() else { return };
    let echo = EchoTarget::start();
    let mut relay = Relay::start_with_flags(&[STREAM_HC], daemon::STRICT_RELAY);
    let mut daemon = Daemon::start(&relay, STREAM_HC, &Forward::Stream(echo.addr));

    let args = [
        "--senders".to_owned(),
        senders.to_string(),
        "--sizes".to_owned(),
        sizes_arg(sizes),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = relay
        .run(node, "ws-stream-sender.js", STREAM_HC, &args)
        .expect_success();

    let per_sender = sizes.iter().sum::<usize>();
    let per_sender_u64 = u64::try_from(per_sender).expect("fits");
    let streams = run.events("stream");
    assert_eq!(streams.len(), senders, "stream lines: {streams:?}");
    for sender in 0..senders {
        let line = by_sender(&streams, sender);
        let expected = sha256_hex(&stream_content(sender, sizes));
        assert_eq!(usize_of(u64_field(line, "messages")), sizes.len(), "{line}");
        assert_eq!(u64_field(line, "len"), per_sender_u64, "{line}");
        assert_eq!(
            str_field(line, "sha256"),
            expected,
            "sent content of {line}"
        );
        assert_eq!(u64_field(line, "echo_len"), per_sender_u64, "{line}");
        assert_eq!(str_field(line, "echo_sha256"), expected, "echo of {line}");
        // Sender-initiated close, answered by the daemon once the target closed its side too;
        // ws 1.1.5 reports 1006 when no close frame came back.
        let closed = by_sender(&run.events("closed"), sender);
        assert_eq!(str_field(closed, "initiator"), "sender", "{closed}");
        assert_eq!(u64_field(closed, "code"), 1000, "{closed}");
    }
    let summary = run.single("summary");
    let senders_u64 = u64::try_from(senders).expect("fits");
    assert_eq!(u64_field(summary, "senders"), senders_u64, "{summary}");
    assert_eq!(
        u64_field(summary, "bytes"),
        senders_u64 * per_sender_u64,
        "{summary}"
    );
    assert_eq!(u64_field(summary, "verified"), senders_u64, "{summary}");
    assert_eq!(u64_field(summary, "clean_closes"), senders_u64, "{summary}");

    // The target saw one connection per sender, all of its bytes, and the half-close that the
    // sender's close became (protocol §5.4).
    for report in echo.wait_for_reports(senders, END_REPORT_TIMEOUT) {
        assert_eq!(report.bytes, per_sender_u64, "{report:?}");
        assert!(report.saw_eof, "the target saw no half-close: {report:?}");
    }
    for line in daemon.wait_for_log("stream closed", senders, END_REPORT_TIMEOUT) {
        assert_eq!(u64_field(&line, "to_target"), per_sender_u64, "{line}");
        assert_eq!(u64_field(&line, "to_relay"), per_sender_u64, "{line}");
    }
    let hc = ("hybrid_connection", STREAM_HC);
    let total = f64::from(u32::try_from(senders * per_sender).expect("fits"));
    let accepted = daemon.metric("hycod_streams_accepted_total", &[hc]);
    assert_eq!(accepted, f64::from(u32::try_from(senders).expect("fits")));
    assert_eq!(daemon.metric("hycod_streams_rejected_total", &[hc]), 0.0);
    let to_target = daemon.metric("hycod_bytes_total", &[hc, ("direction", "to_target")]);
    assert_eq!(to_target, total, "bytes forwarded to the target");
    let to_relay = daemon.metric("hycod_bytes_total", &[hc, ("direction", "to_relay")]);
    assert_eq!(to_relay, total, "bytes forwarded to the relay");
    daemon.assert_running();
    relay.assert_running();
}

fn by_sender<'a>(lines: &[&'a Value], sender: usize) -> &'a Value {
    let sender = u64::try_from(sender).expect("fits");
    let found: Vec<&&Value> = lines
        .iter()
        .filter(|line| line.get("sender").and_then(Value::as_u64) == Some(sender))
        .collect();
    assert_eq!(found.len(), 1, "lines of sender {sender}: {lines:?}");
    found[0]
}

#[test]
fn daemon_ws_stream_echo_through_official_sender() {
    stream_echo(1, &STREAM_SIZES);
}

#[test]
fn daemon_ws_32_concurrent_official_senders() {
    stream_echo(CONCURRENT_SENDERS, &CONCURRENT_SIZES);
}

/// Runs the `http-sender.js` scenarios one after another through one daemon forwarding to
/// `http://UPSTREAM/{hc}`, so the upstream sees the request-target the Node listener would
/// (protocol §6.7: the entity path is replaced by the base path, here the same), and checks them.
/// The Node SDK listener `benches/compare.sh` measures `hycod run` against relays streams the
/// official sender opens to a TCP target, bytes intact both ways (the peer of the per-role
/// comparison must do the same job as the daemon).
#[test]
fn bench_sdk_listener_relays_official_streams_to_a_tcp_target() {
    let Some(node) = node_project() else { return };
    let echo = EchoTarget::start();
    let relay = Relay::start(&[STREAM_HC]);
    let ws = format!("{STREAM_HC}={}", echo.addr);
    let _listener = relay.bench_listener(node, &["--ws", &ws]);
    let senders = 4;
    let sizes = sizes_arg(&CONCURRENT_SIZES);
    let run = relay
        .run(
            node,
            "ws-stream-sender.js",
            STREAM_HC,
            &["--senders", &senders.to_string(), "--sizes", &sizes],
        )
        .expect_success();
    let per_sender = u64::try_from(CONCURRENT_SIZES.iter().sum::<usize>()).expect("fits");
    let summary = run.single("summary");
    assert_eq!(u64_field(summary, "verified"), senders, "{summary}");
    assert_eq!(
        u64_field(summary, "bytes"),
        senders * per_sender,
        "{summary}"
    );
    let reports = echo.wait_for_reports(usize_of(senders), END_REPORT_TIMEOUT);
    for report in reports {
        assert_eq!(report.bytes, per_sender, "{report:?}");
    }
}

fn http_scenarios(scenarios: &[HttpScenario]) {
    let Some(node) = node_project() else { return };
    let upstream = HttpUpstream::start();
    let mut relay = Relay::start_with_flags(&[HTTP_HC], daemon::STRICT_RELAY);
    let base = format!("http://{}/{HTTP_HC}", upstream.addr);
    let mut daemon = Daemon::start(&relay, HTTP_HC, &Forward::Http(base));
    for &scenario in scenarios {
        let run = relay
            .run(node, "http-sender.js", HTTP_HC, &[scenario.name()])
            .expect_success();
        let responses = scenario.responses(&run);
        scenario.check(&responses, HTTP_HC);
        // The upstream answered each request exactly once, with the body the sender sent.
        let seen = upstream.seen();
        assert_eq!(seen.len(), responses.len(), "{scenario:?}: {seen:?}");
        for (request, response) in seen.iter().zip(&responses) {
            assert_eq!(request.method, str_field(response, "method"), "{request:?}");
            assert_eq!(request.target, str_field(response, "x_url"), "{request:?}");
            assert_eq!(
                u64::try_from(request.body_len).expect("fits"),
                u64_field(response, "req_len"),
                "{request:?}"
            );
        }
    }
    daemon.assert_running();
    relay.assert_running();
}

#[test]
fn daemon_http_bodies_0_1k_100k_5m_both_ways() {
    http_scenarios(&[HttpScenario::Bodies]);
}

#[test]
fn daemon_http_multi_value_headers_query_and_statuses() {
    http_scenarios(&[
        HttpScenario::MultiHeader,
        HttpScenario::Query,
        HttpScenario::Statuses,
    ]);
}
