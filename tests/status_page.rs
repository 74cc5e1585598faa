//! The status pages an operator opens in a browser (docs/operations.md "Status page"): a real
//! relay and `hycod run` carry requests and a stream, then headless Chromium loads the admin
//! endpoints' `/` and the test reads the rendered DOM: every registration with its counts,
//! names from configuration shown as text (never markup), no script, and the headers that
//! forbid loading anything else. `/status.json` carries the same figures. Screenshots go to a
//! temporary directory, or to `HYCOD_SCREENSHOT_DIR` (docs/ holds the ones the docs show).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;

use common::chromium::Chromium;
use common::processes::{
    config_text, eventually, forward, http_get, http_hybrid_connection, http_upstream,
    hybrid_connection, relayed_get, tcp_echo, DaemonProcess, RelayProcess, Streamer, KEY, PATIENCE,
};
use common::relay_traffic::RelayWithListeners;
use serde_json::Value;

/// A hybrid connection whose name is markup: the page must show it as text.
const HOSTILE: &str = "<script>alert(1)</script>";

/// Relayed GETs each test sends.
const REQUESTS: usize = 3;

/// The head and body of `GET path` on an admin endpoint.
fn get_with_head(addr: &str, path: &str) -> (String, String) {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut text = String::new();
    tcp.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    (head.to_owned(), body.to_owned())
}

/// The `<tr>` carrying `attribute="value"` in `dom`.
fn row<'a>(dom: &'a str, attribute: &str, value: &str) -> &'a str {
    let marker = format!("<tr {attribute}=\"{value}\">");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no row {marker} in:\n{dom}"));
    let end = dom[start..].find("</tr>").expect("row end") + start;
    &dom[start..end]
}

/// The text of the cell `data-field="field"` in `row`.
fn cell<'a>(row: &'a str, field: &str) -> &'a str {
    let marker = format!("data-field=\"{field}\"");
    let at = row
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in {row}"));
    let open_end = row[at..].find('>').expect("cell open") + at + 1;
    let close = row[open_end..].find("</td>").expect("cell close") + open_end;
    &row[open_end..close]
}

fn screenshot_path(name: &str, fallback: &tempfile::TempDir) -> PathBuf {
    match std::env::var_os("HYCOD_SCREENSHOT_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => fallback.path().join(name),
    }
}

/// Checks what every status page must have: the strict headers, a refresh, no script.
fn assert_safe_page(admin: &str) {
    let (head, body) = get_with_head(admin, "/");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains(
            "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
        "{head}"
    );
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    assert!(body.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(!body.to_ascii_lowercase().contains("<script"), "{body}");
    assert!(
        !body.contains("src=") && !body.contains("<link"),
        "no external asset: {body}"
    );
}

#[test]
fn the_relay_status_page_shows_each_hybrid_connection_with_its_counts_in_a_browser() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let rig = RelayWithListeners::start(&["idle", HOSTILE]);
    let relay = &rig.relay;
    rig.get_orders(REQUESTS);
    let refused = rig.answer("idle", "x");
    assert!(refused.starts_with("HTTP/1.1 502 "), "{refused}");
    let streamer = Streamer::start(&relay.url, "echo");
    streamer.keeps_flowing(2);

    let admin = relay.admin_addr();
    assert_safe_page(admin);
    let dom = chromium.dump_dom(&format!("http://{admin}/"));
    assert!(!dom.contains("<script"), "no script element: {dom}");
    let hostile = row(&dom, "data-hc", "&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(
        hostile.contains("<td class=\"name\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "the name is text: {hostile}"
    );
    let erp = row(&dom, "data-hc", "erp");
    assert_eq!(cell(erp, "listeners"), "2");
    assert_eq!(cell(erp, "requests"), REQUESTS.to_string());
    let echo_row = row(&dom, "data-hc", "echo");
    assert_eq!(cell(echo_row, "listeners"), "2");
    assert_eq!(cell(echo_row, "senders"), "1");
    assert_eq!(cell(echo_row, "streams"), "1");
    assert_ne!(cell(echo_row, "p50"), "—", "a rendezvous was timed");
    assert_eq!(cell(row(&dom, "data-hc", "idle"), "listeners"), "0");
    assert_eq!(
        cell(row(&dom, "data-status", "2xx"), "count"),
        REQUESTS.to_string()
    );
    assert_eq!(cell(row(&dom, "data-reason", "no_listener"), "count"), "1");
    assert_eq!(cell(row(&dom, "data-reason", "unauthorized"), "count"), "0");

    let (status, json) = http_get(admin, "/status.json");
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&json).expect("status.json");
    let by_path = |path: &str| {
        view["hybrid_connections"]
            .as_array()
            .and_then(|hcs| hcs.iter().find(|hc| hc["path"] == path).cloned())
            .unwrap_or_else(|| panic!("{path} in {view}"))
    };
    assert_eq!(by_path("erp")["listeners"], 2);
    assert_eq!(by_path("erp")["requests_routed"], REQUESTS);
    assert_eq!(by_path("echo")["senders"], 1);
    assert_eq!(by_path(HOSTILE)["listeners"], 0);
    assert_eq!(view["refusals"]["no_listener"], 1);
    assert_eq!(view["requests"]["2xx"], REQUESTS);

    let shots = tempfile::tempdir().expect("screenshot dir");
    let shot = screenshot_path("status-page-relay.png", &shots);
    chromium.screenshot(&format!("http://{admin}/"), &shot, (1280, 1100));
    streamer.finish();
}

/// A `[[forward]]` whose hybrid connection path is markup, on a free local port.
fn hostile_forward(relay_url: &str) -> String {
    format!(
        r#"
[[forward]]
name = "odd"
listen = "127.0.0.1:0"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={HOSTILE}"
relay_url = "{relay_url}"
"#
    )
}

#[test]
fn the_daemon_status_page_shows_each_registration_with_its_counts_in_a_browser() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let relay = RelayProcess::start(&["erp", "echo"]);
    let upstream = http_upstream();
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("temp dir");
    // "ghost" names a hybrid connection the relay does not have: its channel keeps failing.
    let ghost = hybrid_connection("ghost", "ghost", &relay.url, echo)
        .replace("listeners = 2", "listeners = 1");
    let text = config_text(
        "5s",
        &[
            http_hybrid_connection("erp", "erp", &relay.url, upstream),
            hybrid_connection("echo", "echo", &relay.url, echo),
            ghost,
            forward("fwd", "echo", &relay.url),
            hostile_forward(&relay.url),
        ],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    let forwarded = daemon.wait_forward_listening("fwd");
    assert!(
        eventually(PATIENCE, || relay.listener_count("erp") == 2
            && relay.listener_count("echo") == 2),
        "listeners attach: {}",
        relay.status()
    );
    daemon.wait_log("a failed connect of ghost", |l| {
        l["message"] == "control channel connect failed" && l["hybrid_connection"] == "ghost"
    });
    for i in 0..REQUESTS {
        let answer = relayed_get(&relay.url, "erp", &format!("orders/{i}"))
            .recv_timeout(PATIENCE)
            .expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
    let mut client = std::net::TcpStream::connect(forwarded).expect("connect to the forward");
    common::processes::assert_tcp_echo(&mut client, 64 * 1024);
    let streamer = Streamer::start(&relay.url, "echo");
    streamer.keeps_flowing(2);

    let admin = daemon.admin.clone();
    assert_safe_page(&admin);
    let dom = chromium.dump_dom(&format!("http://{admin}/"));
    assert!(!dom.contains("<script"), "no script element: {dom}");
    assert!(
        dom.contains("<span id=\"ready\" class=\"ok\">ready</span>") || dom.contains("not ready")
    );
    let erp = row(&dom, "data-hc", "erp");
    assert_eq!(cell(erp, "listeners"), "2/2");
    assert!(
        cell(erp, "workers").contains("<li data-worker=\"0\">worker 0: 1/1</li>")
            && cell(erp, "workers").contains("<li data-worker=\"1\">worker 1: 1/1</li>"),
        "{erp}"
    );
    assert_eq!(cell(erp, "requests"), REQUESTS.to_string());
    assert_eq!(cell(erp, "reconnects"), "0");
    assert!(cell(erp, "token").starts_with("in "), "{erp}");
    assert_ne!(cell(erp, "p50"), "—", "requests were timed: {erp}");
    assert_eq!(cell(erp, "to-target"), "0 B", "GETs carry no body");
    assert_ne!(cell(erp, "to-relay"), "0 B", "the answers' bodies: {erp}");
    let echo_row = row(&dom, "data-hc", "echo");
    assert_eq!(cell(echo_row, "streams-now"), "1", "{echo_row}");
    // The forward's connection and the streamer's both reached the echo listeners.
    assert_eq!(cell(echo_row, "streams"), "2", "{echo_row}");
    let ghost_row = row(&dom, "data-hc", "ghost");
    assert_eq!(cell(ghost_row, "listeners"), "0/1");
    assert!(
        cell(ghost_row, "last-error").contains("server answered 404"),
        "{ghost_row}"
    );
    assert_eq!(cell(ghost_row, "token"), "—");
    let fwd = row(&dom, "data-forward", "fwd");
    assert_eq!(cell(fwd, "forwarded"), "1");
    assert_eq!(cell(fwd, "to-relay"), "64.0 KiB");
    let odd = row(&dom, "data-forward", "odd");
    assert!(
        odd.contains("<td class=\"text\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "the hybrid connection path is text: {odd}"
    );

    let (status, json) = http_get(&admin, "/status.json");
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&json).expect("status.json");
    let hc = |name: &str| {
        view["hybrid_connections"]
            .as_array()
            .and_then(|hcs| hcs.iter().find(|hc| hc["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in {view}"))
    };
    assert_eq!(hc("erp")["listeners_online"], 2);
    assert_eq!(hc("erp")["requests_answered"], REQUESTS);
    assert_eq!(hc("echo")["streams_in_flight"], 1);
    assert!(hc("ghost")["reconnects"].as_u64().expect("reconnects") >= 1);
    assert!(hc("ghost")["last_connect_error"]["message"]
        .as_str()
        .expect("message")
        .contains("404"));
    assert!(!json.contains(KEY), "no key in status.json");
    let page = http_get(&admin, "/").1;
    assert!(!page.contains(KEY), "no key on the page");

    let shots = tempfile::tempdir().expect("screenshot dir");
    let shot = screenshot_path("status-page-daemon.png", &shots);
    chromium.screenshot(&format!("http://{admin}/"), &shot, (1600, 700));
    streamer.finish();
}
