//! The relay's admin endpoint (docs/metrics.md "Relay metrics"): after real traffic from
//! `hycod run` listeners and senders, `/metrics` parsed by an independent Prometheus parser
//! counts exactly the requests, streams and refusals the test caused; `/healthz` and `/readyz`
//! answer like the daemon's.

mod common;

use std::io::{Read, Write};

use common::processes::{eventually, http_get, RelayProcess, Streamer, PATIENCE};
use common::relay_traffic::RelayWithListeners;
use prometheus_parse::{Labels, Scrape, Value};

/// Relayed GETs answered 200.
const REQUESTS: usize = 5;

fn scrape(admin: &str) -> Scrape {
    let (status, text) = http_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("prometheus text")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && has(&s.labels, labels))
        .and_then(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            _ => None,
        })
}

/// The `+Inf` bucket (the observation count) of histogram `name` with `labels`.
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && has(&s.labels, labels))
        .and_then(|s| match &s.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count),
            _ => None,
        })
}

fn has(have: &Labels, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| have.get(k) == Some(*v))
}

/// One raw request to the relay; the whole answer.
fn raw(relay_url: &str, request: &str) -> String {
    let mut tcp = std::net::TcpStream::connect(relay_url.trim_start_matches("ws://"))
        .expect("connect to the relay");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    tcp.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
}

#[test]
fn relay_metrics_count_requests_streams_and_refusals_from_real_traffic() {
    let rig = RelayWithListeners::start(&["idle"]);
    let relay = &rig.relay;
    rig.get_orders(REQUESTS);
    let unknown = rig.answer("nosuch", "x");
    assert!(unknown.starts_with("HTTP/1.1 404 "), "{unknown}");
    let no_token = raw(
        &relay.url,
        "GET /erp/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(no_token.starts_with("HTTP/1.1 401 "), "{no_token}");
    let no_listener = rig.answer("idle", "x");
    assert!(no_listener.starts_with("HTTP/1.1 502 "), "{no_listener}");
    let malformed = raw(&relay.url, "GET /erp/x HTTP/1.1\nHost: x\n\n");
    assert!(malformed.starts_with("HTTP/1.1 400 "), "{malformed}");

    let streamer = Streamer::start(&relay.url, "echo");
    streamer.keeps_flowing(3);
    let admin = relay.admin_addr();
    let during = scrape(admin);
    let hc = |name| [("hybrid_connection", name)];
    assert_eq!(
        value(&during, "hycod_relay_senders", &hc("echo")),
        Some(1.0)
    );
    assert_eq!(
        value(&during, "hycod_relay_streams_total", &hc("echo")),
        Some(1.0)
    );
    assert_eq!(
        histogram_count(&during, "hycod_relay_rendezvous_seconds", &hc("echo")),
        Some(1.0)
    );
    assert!(matches!(
        streamer.finish(),
        common::processes::Progress::Finished { clean: true, .. }
    ));
    assert!(
        eventually(PATIENCE, || value(
            &scrape(admin),
            "hycod_relay_senders",
            &hc("echo")
        ) == Some(0.0)),
        "the sender gauge drops when the stream ends"
    );

    let after = scrape(admin);
    let status = |class| [("status", class)];
    assert_eq!(
        value(&after, "hycod_relay_requests_total", &status("2xx")),
        Some(REQUESTS as f64)
    );
    assert_eq!(
        value(&after, "hycod_relay_requests_total", &status("4xx")),
        Some(2.0),
        "404 unknown hybrid connection and 401 without a token"
    );
    assert_eq!(
        value(&after, "hycod_relay_requests_total", &status("5xx")),
        Some(1.0),
        "502 without a listener"
    );
    let reason = |r| [("reason", r)];
    for (r, n) in [
        ("unknown_hybrid_connection", 1.0),
        ("unauthorized", 1.0),
        ("no_listener", 1.0),
        ("bad_request", 1.0),
        ("missing_right", 0.0),
        ("quota_exceeded", 0.0),
        ("listener_timeout", 0.0),
        ("rejected_by_listener", 0.0),
        ("head_timeout", 0.0),
        ("unknown_rendezvous", 0.0),
        ("out_of_descriptors", 0.0),
    ] {
        assert_eq!(
            value(&after, "hycod_relay_refusals_total", &reason(r)),
            Some(n),
            "{r}"
        );
    }
    assert_eq!(
        value(&after, "hycod_relay_listeners", &hc("erp")),
        Some(2.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_listeners", &hc("echo")),
        Some(2.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_listeners", &hc("idle")),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_pending_requests", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_control_queue_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_accept_failures_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&after, "hycod_relay_shed_connections_total", &[]),
        Some(0.0)
    );
    let fds = value(&after, "process_open_fds", &[]).expect("process_open_fds");
    let max_fds = value(&after, "hycod_relay_fd_limit", &[]).expect("hycod_relay_fd_limit");
    assert!(fds > 10.0 && fds < max_fds, "{fds} of {max_fds}");
    assert_eq!(value(&after, "hycod_build_info", &[]), Some(1.0));
}

#[test]
fn relay_health_readiness_and_unknown_paths_answer_like_the_daemon() {
    let relay = RelayProcess::start(&["a", "b"]);
    let admin = relay.admin_addr();
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(
        http_get(admin, "/readyz"),
        (
            200,
            "a 0 listeners attached\nb 0 listeners attached\n".to_owned()
        )
    );
    let (status, body) = http_get(admin, "/nothing");
    assert_eq!(status, 404);
    assert_eq!(
        body,
        "served here: / /status.json /metrics /healthz /readyz /$status\n"
    );
    let mut tcp = std::net::TcpStream::connect(admin).expect("connect");
    tcp.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert_eq!(relay.listener_count("a"), 0, "/$status still answers");
}

#[test]
fn every_relay_series_and_refusal_reason_is_documented() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    for desc in hycod::relay::metrics::ALL {
        assert!(
            docs.contains(&format!("| `{}` | {} |", desc.name, desc.kind.as_str())),
            "{} is not in docs/metrics.md's relay table",
            desc.name
        );
    }
    for refusal in hycod::relay::metrics::Refusal::ALL {
        assert!(
            docs.contains(&format!("| `{}` |", refusal.as_str())),
            "reason {} is not in docs/metrics.md",
            refusal.as_str()
        );
    }
}
