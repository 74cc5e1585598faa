//! What a real `hycod relay` logs (docs/relay.md "Logs"): refusals with their reason, protocol
//! errors, listeners coming and going, running out of descriptors — never a key or a token —
//! and that a peer's `sb-hc-id` cannot forge a line in the relay's or the daemon's text log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

use common::logged_relay::{upgrade, LogLines, LoggedRelay};
use common::processes::{hybrid_connection, tcp_echo};
use common::{token_for, KEY};

const WRONG_KEY: &str = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";

fn relay_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--hybrid-connection",
        "hc1",
        "--rule",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(format!("root={KEY}"));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn start(extra: &[&str]) -> LoggedRelay {
    let args = relay_args(extra);
    LoggedRelay::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The first JSON log line whose `message` is `message` and that satisfies `also`.
fn json_line(relay: &LoggedRelay, message: &str, also: impl Fn(&Value) -> bool) -> Value {
    let line = relay.wait_line(message, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == message && also(&v))
    });
    serde_json::from_str(&line).expect("json")
}

/// Sends raw bytes and reads the whole answer (the relay closes after an error).
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.write_all(bytes).expect("send");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
}

#[test]
fn refusals_protocol_errors_and_listeners_are_logged_without_tokens() {
    let relay = start(&["--log-format", "json"]);
    let good = token_for("root", KEY, "hc1");
    let forged = token_for("root", WRONG_KEY, "hc1");

    let (status, _) = upgrade(relay.addr(), "/$hc/hc1?sb-hc-action=listen", &forged);
    assert_eq!(status, 401);
    let line = json_line(&relay, "refused: token", |v| {
        v["reason"] == "invalid_signature"
    });
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["hybrid_connection"], "hc1");
    assert_eq!(line["action"], "Listen");

    let (status, _) = upgrade(relay.addr(), "/$hc/nope?sb-hc-action=connect", &good);
    assert_eq!(status, 404);
    json_line(&relay, "refused: no such hybrid connection", |v| {
        v["path"] == "/$hc/nope"
    });

    let answer = raw(relay.addr(), b"GET /hc1/x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    json_line(&relay, "request refused", |v| {
        v["reason"] == "missing_token"
    });

    let answer = raw(
        relay.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    json_line(&relay, "no valid request head", |v| v["error"].is_string());

    let (status, _) = upgrade(relay.addr(), "/$hc/hc1?sb-hc-action=dance", &good);
    assert_eq!(status, 400);
    json_line(
        &relay,
        "refused an upgrade without a valid sb-hc-action",
        |_| true,
    );

    let (status, listener) = upgrade(
        relay.addr(),
        "/$hc/hc1?sb-hc-action=listen&sb-hc-id=lsn-1",
        &good,
    );
    assert_eq!(status, 101);
    let online = json_line(&relay, "listener online", |v| {
        v["hybrid_connection"] == "hc1"
    });
    assert_eq!(online["tracking_id"], "lsn-1_G0");
    drop(listener);
    json_line(&relay, "listener offline", |v| {
        v["hybrid_connection"] == "hc1"
    });

    let log = relay.lines().join("\n");
    for secret in [
        KEY,
        good.as_str(),
        forged.as_str(),
        sig(&good),
        sig(&forged),
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the relay's log:\n{log}"
        );
    }
}

/// The signature of a SAS token.
fn sig(token: &str) -> &str {
    token
        .split('&')
        .find_map(|part| part.strip_prefix("sig="))
        .expect("sig")
}

#[test]
fn running_out_of_descriptors_is_logged_as_emfile() {
    let args = relay_args(&["--log-format", "json"]);
    let relay = LoggedRelay::try_start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
        Some(48),
    )
    .unwrap_or_else(|r| panic!("relay refused: {}", r.stderr));
    let hogs: Vec<_> = (0..64)
        .map(|_| TcpStream::connect(relay.addr()).expect("queued at least"))
        .collect();
    let line = json_line(
        &relay,
        "accept failed: out of file descriptors; pausing accepts",
        |_| true,
    );
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["errno"], "EMFILE");
    drop(hogs);
}

/// A `hycod run` child with a text log.
struct TextDaemon {
    child: std::process::Child,
    log: LogLines,
}

impl TextDaemon {
    fn start(dir: &std::path::Path, hybrid_connection: &str) -> Self {
        let config = dir.join("hycod.toml");
        std::fs::write(
            &config,
            format!("[runtime]\nworkers = 1\n[log]\nformat = \"text\"\n{hybrid_connection}"),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hycod"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hycod run starts");
        let (log, _) = LogLines::follow(child.stderr.take().expect("stderr"));
        Self { child, log }
    }
}

impl Drop for TextDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a peer's `sb-hc-id` tries to start a log line with.
const FORGED: &str = "FORGED-LINE ERROR token accepted for admin";

/// CR LF, the forged line and an ANSI colour, percent-encoded for a query: the relay decodes it
/// into the tracking id it logs and hands to the daemon as the accept id.
const FORGING_ID: &str = "x%0D%0AFORGED-LINE%20ERROR%20token%20accepted%20for%20admin%1B%5B31m";

/// [`FORGING_ID`] as an escaped log shows it.
fn escaped_id() -> String {
    format!("x\\r\\n{FORGED}\\u{{1b}}[31m")
}

fn assert_no_forged_line(who: &str, lines: &[String]) {
    for line in lines {
        assert!(
            !line.starts_with("FORGED") && !line.contains('\u{1b}') && !line.contains('\r'),
            "the {who}'s log has a forged line or a raw control: {line:?}"
        );
    }
}

#[test]
fn a_crlf_in_a_peers_id_cannot_forge_a_line_in_the_relay_log() {
    let relay = start(&["--log-format", "text", "--accept-timeout", "1s"]);
    let token = token_for("root", KEY, "hc1");
    let (status, _listener) = upgrade(
        relay.addr(),
        &format!("/$hc/hc1?sb-hc-action=listen&sb-hc-id={FORGING_ID}"),
        &token,
    );
    assert_eq!(status, 101);
    let online = relay.wait_line("listener online", |l| l.contains("listener online"));
    assert!(online.contains(&escaped_id()), "{online}");
    // The raw listener never accepts: the sender's id is logged when it times out.
    let (status, _sender) = upgrade(
        relay.addr(),
        &format!("/$hc/hc1?sb-hc-action=connect&sb-hc-id={FORGING_ID}"),
        &token,
    );
    assert_eq!(status, 504);
    let timed_out = relay.wait_line("the accept timeout", |l| {
        l.contains("no listener accepted in time")
    });
    assert!(timed_out.contains(&escaped_id()), "{timed_out}");
    assert_no_forged_line("relay", &relay.lines());
}

#[test]
fn a_crlf_in_a_senders_id_cannot_forge_a_line_in_the_daemon_log() {
    let relay = start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = TextDaemon::start(
        dir.path(),
        &hybrid_connection("sap", "hc1", &relay.url, tcp_echo()),
    );
    daemon
        .log
        .wait_line("the listener online", |l| l.contains("listener online"));
    let (status, _sender) = upgrade(
        relay.addr(),
        &format!("/$hc/hc1?sb-hc-action=connect&sb-hc-id={FORGING_ID}"),
        &token_for("root", KEY, "hc1"),
    );
    assert_eq!(status, 101, "the stream is relayed");
    let accepted = daemon
        .log
        .wait_line("stream accepted", |l| l.contains("stream accepted"));
    assert!(accepted.contains(&escaped_id()), "{accepted}");
    assert_no_forged_line("daemon", &daemon.log.lines());
}
