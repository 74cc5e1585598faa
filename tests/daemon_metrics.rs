//! What an operator scrapes and reads from `hycod run` (architecture §4, docs/metrics.md):
//! `/metrics` parsed by an independent Prometheus parser counts exactly the relayed requests
//! a test sent and carries plausible process metrics; JSON log lines carry one line per
//! request and per listener event, and never a key, a token or a query string.

mod common;

use std::time::SystemTime;

use common::processes::{
    config_text, http_get, http_upstream, relayed_get, DaemonProcess, RelayProcess, KEY, PATIENCE,
};
use serde_json::Value;

/// Relayed requests each test sends.
const REQUESTS: usize = 37;

/// An application query that must never reach a log line.
const APP_SECRET: &str = "hunter2";

/// A `[[hybrid_connection]]` forwarding relayed HTTP to `upstream`.
fn http_hybrid_connection(relay_url: &str, upstream: u16) -> String {
    format!(
        r#"
[[hybrid_connection]]
name = "erp"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=erp"
relay_url = "{relay_url}"
http_target = "http://127.0.0.1:{upstream}/base"
listeners = 2
"#
    )
}

/// A running relay, HTTP upstream and `hycod run` with both listeners online, after
/// [`REQUESTS`] relayed GETs were answered 200.
struct Served {
    _relay: RelayProcess,
    _dir: tempfile::TempDir,
    daemon: DaemonProcess,
    /// The first `listener online` log line.
    online: Value,
}

fn serve_requests() -> Served {
    let relay = RelayProcess::start(&["erp"]);
    let upstream = http_upstream();
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config_text("5s", &[http_hybrid_connection(&relay.url, upstream)]);
    // The per-request line is logged at debug level (src/daemon/listener/http.rs); everything else at
    // info, as configured.
    let env = [("RUST_LOG", "info,hycod::daemon::http=debug")];
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &env);
    let online = daemon.wait_listener_online("erp");
    daemon.wait_listener_online("erp");
    for i in 0..REQUESTS {
        let answer = relayed_get(
            &relay.url,
            "erp",
            &format!("api/orders?secret={APP_SECRET}&n={i}"),
        )
        .recv_timeout(PATIENCE)
        .expect("an answer");
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "request {i}: {answer}"
        );
    }
    Served {
        _relay: relay,
        _dir: dir,
        daemon,
        online,
    }
}

fn scrape(admin: &str) -> prometheus_parse::Scrape {
    let (status, text) = http_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name} is not a single value: {other:?}"),
        })
        .collect();
    assert_eq!(matching.len(), 1, "{name}{labels:?}: {matching:?}");
    matching[0]
}

#[test]
fn metrics_count_every_relayed_request_and_report_the_process() {
    let served = serve_requests();
    let scrape = scrape(&served.daemon.admin);
    let erp = [("hybrid_connection", "erp")];
    #[allow(clippy::cast_precision_loss)]
    let sent = REQUESTS as f64;

    assert_eq!(value(&scrape, "hycod_request_seconds_count", &erp), sent);
    let buckets = scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(b)
                if s.metric == "hycod_request_seconds"
                    && s.labels.get("hybrid_connection") == Some("erp") =>
            {
                Some(b.clone())
            }
            _ => None,
        })
        .expect("the request histogram's buckets");
    let all = buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .expect("+Inf bucket");
    assert_eq!(all.count, sent);
    assert_eq!(
        value(
            &scrape,
            "hycod_requests_total",
            &[("hybrid_connection", "erp"), ("status", "2xx")]
        ),
        sent
    );
    assert_eq!(
        value(&scrape, "hycod_target_first_byte_seconds_count", &erp),
        sent
    );

    assert!(value(&scrape, "process_resident_memory_bytes", &[]) > 1024.0 * 1024.0);
    assert!(value(&scrape, "process_open_fds", &[]) > 3.0);
    assert!(value(&scrape, "process_cpu_seconds_total", &[]) >= 0.0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = value(&scrape, "process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "started {started}, now {now}"
    );
    assert_eq!(
        value(
            &scrape,
            "hycod_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[test]
fn json_logs_carry_requests_and_listener_events_but_no_secret() {
    let mut served = serve_requests();
    let online = &served.online;
    assert_eq!(online["level"], "INFO");
    assert!(online["timestamp"].is_string(), "{online}");
    assert!(
        online["tracking_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{online}"
    );
    let mut requests = Vec::new();
    for _ in 0..REQUESTS {
        requests.push(
            served
                .daemon
                .wait_log("a request line", |l| l["message"] == "request served"),
        );
    }
    let first = &requests[0];
    assert_eq!(first["level"], "DEBUG");
    assert_eq!(first["hybrid_connection"], "erp");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/erp/api/orders");
    assert_eq!(first["status"], 200);
    assert_eq!(first["outcome"], "2xx");
    assert!(first["latency_ms"].is_u64(), "{first}");
    assert!(first["timestamp"].is_string(), "{first}");

    let text = served.daemon.logs_text();
    for line in text.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
    for secret in [
        KEY,
        "SharedAccessSignature",
        "sig=",
        "sb-hc-token",
        APP_SECRET,
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} appears in the logs:\n{text}"
        );
    }
}
