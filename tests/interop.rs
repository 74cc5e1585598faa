//! Interop of `hycod relay` with the official Azure Relay Node SDKs, `hyco-ws` 1.0.5 and
//! `hyco-https` 1.4.5 (protocol §10, docs/relay.md).
//!
//! Each test starts its own relay on port 0 and the Node scripts of `tests/interop/node/`
//! (their header comments describe what each prints). The scripts verify what they can
//! themselves; these tests check every reported size, hash, status and header again,
//! recomputing the expected content hashes in Rust (`content.rs`).
//!
//! Without node/npm the tests print a skip message and pass, except under `CI=true`.

#[path = "interop/content.rs"]
mod content;
#[path = "interop/fields.rs"]
mod fields;
// Shared with tests/interop_daemon.rs, which uses the daemon half of it.
#[allow(dead_code)]
#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/http_checks.rs"]
mod http_checks;

use std::time::Duration;

use serde_json::Value;

use content::{content, sha256_hex, text_content};
use fields::{str_field, u64_field, usize_of};
use harness::{node_project, Relay, ScriptRun};
use http_checks::HttpScenario;

/// Hybrid connection for hyco-ws (WebSocket) listeners. hyco-ws ignores `request` and
/// hyco-https crashes on `accept` (protocol §10.4 #8, #9), so the two never share one.
const WS_HC: &str = "interop-ws";
/// Hybrid connection for hyco-https (HTTP) listeners.
const HTTP_HC: &str = "interop-http";

/// How long a listener may take to report stream closes after its sender finished.
const CLOSE_REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Binary sizes of the echo test: the WebSocket length-encoding edges (125/126, 65535/65536)
/// and large messages.
const ECHO_SIZES: [u64; 8] = [0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20];
/// Text sizes of the echo test (type must survive the relay).
const ECHO_TEXT_SIZES: [u64; 2] = [0, 1024];
/// Concurrent senders and the sizes each one sends (ws-sender.js defaults).
const CONCURRENT_SENDERS: u64 = 64;
const CONCURRENT_SIZES: [u64; 4] = [100, 1000, 10000, 100000];

/// Checks one `echo` line: label, type and length as planned, hashes of the sent content and of
/// the echo both equal to the recomputed content hash.
fn assert_echo(line: &Value, sender: u64, label: &str, kind: &str, len: u64) {
    assert_eq!(u64_field(line, "sender"), sender, "sender of {line}");
    assert_eq!(str_field(line, "label"), label, "label of {line}");
    assert_eq!(str_field(line, "type"), kind, "type of {line}");
    assert_eq!(str_field(line, "echo_type"), kind, "echo type of {line}");
    assert_eq!(u64_field(line, "len"), len, "length of {line}");
    assert_eq!(u64_field(line, "echo_len"), len, "echo length of {line}");
    let expected = if kind == "binary" {
        sha256_hex(&content(label, usize_of(len)))
    } else {
        sha256_hex(&text_content(label, usize_of(len)))
    };
    assert_eq!(
        str_field(line, "sha256"),
        expected,
        "sent content of {line}"
    );
    assert_eq!(
        str_field(line, "echo_sha256"),
        expected,
        "echoed content of {line}"
    );
}

/// Checks the sender-side `closed` line of `sender`.
fn assert_sender_closed(run: &ScriptRun, sender: u64, initiator: &str) {
    let closes: Vec<&Value> = run
        .events("closed")
        .into_iter()
        .filter(|line| line.get("sender").and_then(Value::as_u64) == Some(sender))
        .collect();
    assert_eq!(closes.len(), 1, "closes of sender {sender}: {closes:?}");
    assert_eq!(
        str_field(closes[0], "initiator"),
        initiator,
        "{}",
        closes[0]
    );
    // 1000 on the sender means the close handshake completed and the relay then closed TCP
    // (ws 1.1.5 reports 1006 otherwise); for a listener-initiated close it is also the code
    // the listener sent, passed through (protocol §8.2: 1000 = listener closed the socket).
    assert_eq!(u64_field(closes[0], "code"), 1000, "{}", closes[0]);
}

fn assert_summary(run: &ScriptRun, senders: u64, messages: u64) {
    let summary = run.single("summary");
    assert_eq!(u64_field(summary, "senders"), senders, "{summary}");
    assert_eq!(u64_field(summary, "messages"), messages, "{summary}");
    assert_eq!(u64_field(summary, "verified"), messages, "{summary}");
    assert_eq!(u64_field(summary, "clean_closes"), senders, "{summary}");
}

/// A listener's view of a close the sender started: the relay forwards the sender's 1000, or
/// reports 1001 "sender closed the connection" itself (protocol §5.3; pass-through is §11 #4).
fn assert_peer_close_code(line: &Value) {
    let code = u64_field(line, "code");
    assert!(
        code == 1000 || code == 1001,
        "listener saw close code {code}, expected 1000 or 1001: {line}"
    );
}

#[test]
fn ws_echo_of_messages_from_0_bytes_to_4_mib() {
    let Some(node) = node_project() else { return };
    let mut relay = Relay::start(&[WS_HC]);
    let mut listener = relay.listener(node, "ws-listener.js", WS_HC);

    let run = relay
        .run(node, "ws-sender.js", WS_HC, &["sizes"])
        .expect_success();

    let echoes = run.events("echo");
    let planned: Vec<(String, &str, u64)> = ECHO_SIZES
        .iter()
        .map(|&len| (format!("ws/sizes/{len}"), "binary", len))
        .chain(
            ECHO_TEXT_SIZES
                .iter()
                .map(|&len| (format!("ws-text/sizes/{len}"), "text", len)),
        )
        .collect();
    assert_eq!(echoes.len(), planned.len(), "echo lines: {echoes:?}");
    for (line, (label, kind, len)) in echoes.iter().zip(&planned) {
        assert_echo(line, 0, label, kind, *len);
    }
    assert_sender_closed(&run, 0, "sender");
    assert_summary(&run, 1, 10);
    listener.assert_running();
    relay.assert_running();
}

#[test]
fn ws_64_concurrent_senders() {
    let Some(node) = node_project() else { return };
    let mut relay = Relay::start(&[WS_HC]);
    let mut listener = relay.listener(node, "ws-listener.js", WS_HC);

    let run = relay
        .run(node, "ws-sender.js", WS_HC, &["concurrent"])
        .expect_success();

    let echoes = run.events("echo");
    for sender in 0..CONCURRENT_SENDERS {
        let mine: Vec<&&Value> = echoes
            .iter()
            .filter(|line| line.get("sender").and_then(Value::as_u64) == Some(sender))
            .collect();
        assert_eq!(
            mine.len(),
            CONCURRENT_SIZES.len(),
            "echoes of sender {sender}"
        );
        for (line, &len) in mine.iter().zip(&CONCURRENT_SIZES) {
            let label = format!("ws/concurrent/s{sender}/{len}");
            assert_echo(line, sender, &label, "binary", len);
        }
        assert_sender_closed(&run, sender, "sender");
    }
    let messages = CONCURRENT_SENDERS * u64::try_from(CONCURRENT_SIZES.len()).expect("4 fits");
    assert_summary(&run, CONCURRENT_SENDERS, messages);

    let senders = usize_of(CONCURRENT_SENDERS);
    let opens = listener.wait_for_events("open", senders, CLOSE_REPORT_TIMEOUT);
    assert_eq!(opens.len(), senders, "listener opens: {opens:?}");
    let closes = listener.wait_for_events("closed", senders, CLOSE_REPORT_TIMEOUT);
    for close in &closes {
        assert_eq!(str_field(close, "initiator"), "peer", "{close}");
        assert_peer_close_code(close);
    }
    listener.assert_running();
    relay.assert_running();
}

#[test]
fn ws_clean_close_initiated_by_sender_and_by_listener() {
    let Some(node) = node_project() else { return };
    let mut relay = Relay::start(&[WS_HC]);
    let mut listener = relay.listener(node, "ws-listener.js", WS_HC);

    let run = relay
        .run(node, "ws-sender.js", WS_HC, &["close"])
        .expect_success();

    let echoes = run.events("echo");
    assert_eq!(echoes.len(), 2, "echo lines: {echoes:?}");
    assert_echo(echoes[0], 0, "ws/close/0", "binary", 16);
    assert_echo(echoes[1], 1, "ws/close/1", "binary", 16);
    assert_sender_closed(&run, 0, "sender");
    assert_sender_closed(&run, 1, "listener");
    assert_summary(&run, 2, 2);

    let closes = listener.wait_for_events("closed", 2, CLOSE_REPORT_TIMEOUT);
    let by_conn = |conn: u64| {
        closes
            .iter()
            .find(|line| line.get("conn").and_then(Value::as_u64) == Some(conn))
            .unwrap_or_else(|| panic!("no close of stream {conn} in {closes:?}"))
    };
    let first = by_conn(0);
    assert_eq!(str_field(first, "initiator"), "peer", "{first}");
    assert_peer_close_code(first);
    let second = by_conn(1);
    assert_eq!(str_field(second, "initiator"), "listener", "{second}");
    // The listener's own code; 1006 would mean no close frame came back through the relay.
    assert_eq!(u64_field(second, "code"), 1000, "{second}");
    listener.assert_running();
    relay.assert_running();
}

/// Runs one http-sender.js scenario against a hyco-https listener and checks the answers.
fn http_scenario(scenario: HttpScenario) {
    let Some(node) = node_project() else { return };
    let mut relay = Relay::start(&[HTTP_HC]);
    let mut listener = relay.listener(node, "https-listener.js", HTTP_HC);
    let run = relay
        .run(node, "http-sender.js", HTTP_HC, &[scenario.name()])
        .expect_success();
    scenario.check(&scenario.responses(&run), HTTP_HC);
    listener.assert_running();
    relay.assert_running();
}

#[test]
fn http_get_and_post_bodies_0_1k_100k_5m_both_ways() {
    http_scenario(HttpScenario::Bodies);
}

#[test]
fn http_multi_value_request_header_arrives_comma_joined() {
    http_scenario(HttpScenario::MultiHeader);
}

#[test]
fn http_query_strings_preserved_and_sb_hc_parameters_stripped() {
    http_scenario(HttpScenario::Query);
}

#[test]
fn http_non_200_statuses_from_the_listener() {
    // hyco-https sends the standard reason as statusDescription; the relay passes it on
    // (protocol §4.5).
    http_scenario(HttpScenario::Statuses);
}

/// Runs one auth-failures.js case and checks the status the SDK observed.
fn auth_failure(case: &str, hc: &str, sdk: &str, status: u64) {
    let Some(node) = node_project() else { return };
    let mut relay = Relay::start(&[hc]);
    let run = relay
        .run(node, "auth-failures.js", hc, &[case])
        .expect_success();
    let line = run.single("auth-failure");
    assert_eq!(str_field(line, "case"), case, "{line}");
    assert_eq!(str_field(line, "sdk"), sdk, "{line}");
    assert_eq!(u64_field(line, "status"), status, "{line}");
    relay.assert_running();
}

#[test]
fn listener_token_signed_with_wrong_key_is_refused_with_401() {
    auth_failure("wrong-key", WS_HC, "hyco-ws", 401);
}

#[test]
fn listener_expired_token_is_refused_with_401() {
    auth_failure("expired", HTTP_HC, "hyco-https", 401);
}

#[test]
fn send_only_token_used_to_listen_is_refused_with_403() {
    auth_failure("send-only-listen", WS_HC, "hyco-ws", 403);
}
