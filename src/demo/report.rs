//! The demo's printed output: what it started, what it sent and how that went (status counts,
//! verified bytes, the latency histogram's p50/p90/p99/p99.9/max), the daemon's metrics URL,
//! and, with `--keep-running`, how to poke the running system by hand. Pure text building.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::erp;
use super::metrics_probe::{DaemonCounts, ProbeError};
use super::setup::{HTTP_HC, STREAM_HC};
use super::traffic::{Failures, HttpResults, StreamResults, TrafficResults, STREAM_PARALLEL};
use super::workload;
use crate::daemon::process::status::HcReadiness;
use crate::metrics::Quantiles;
use crate::secret::Secret;

/// What the demo started, and where.
#[derive(Debug, Clone)]
pub struct Started {
    pub relay_url: String,
    pub relay_admin: Option<SocketAddr>,
    pub daemon_workers: usize,
    pub daemon_admin: Option<SocketAddr>,
    pub listeners: Vec<HcReadiness>,
    pub upstream: SocketAddr,
    pub echo: SocketAddr,
}

impl Started {
    /// `http://{admin}/metrics`, when the daemon serves its admin endpoint.
    pub fn metrics_url(&self) -> Option<String> {
        self.daemon_admin.map(|a| format!("http://{a}/metrics"))
    }
}

/// The heading and the "Started" section.
pub(crate) fn started(s: &Started) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "hycod demo: a relay, the listener daemon and two on-prem services in one process, on loopback only\n"
    );
    let _ = writeln!(out, "Started");
    let relay_status = s
        .relay_admin
        .map(|a| format!("  (status: http://{a}/$status)"))
        .unwrap_or_default();
    let _ = writeln!(out, "  relay             {}{relay_status}", s.relay_url);
    let online: Vec<String> = s
        .listeners
        .iter()
        .map(|r| format!("{} {}/{}", r.name, r.online, r.total))
        .collect();
    let _ = writeln!(
        out,
        "  listener daemon   {} workers; listeners online: {}",
        s.daemon_workers,
        online.join(", ")
    );
    let _ = writeln!(
        out,
        "  sample ERP API    http://{}{}/  <- hybrid connection {HTTP_HC}",
        s.upstream,
        erp::BASE_PATH
    );
    let _ = writeln!(
        out,
        "  TCP echo service  tcp://{}  <- hybrid connection {STREAM_HC}",
        s.echo
    );
    out
}

/// The results: requests, streams, metrics URL and the verdict.
pub(crate) fn results(
    started: &Started,
    traffic: &TrafficResults,
    metrics: Option<&Result<DaemonCounts, ProbeError>>,
) -> String {
    let mut out = String::new();
    http_section(&mut out, &traffic.http);
    stream_section(&mut out, &traffic.streams);
    let _ = writeln!(out);
    match (started.metrics_url(), metrics) {
        (Some(url), Some(Ok(counts))) => {
            let _ = writeln!(
                out,
                "Daemon metrics      {url}  ({} samples; it counted {} relayed requests and {} accepted streams)",
                counts.samples, counts.requests, counts.streams_accepted
            );
        }
        (Some(url), Some(Err(e))) => {
            let _ = writeln!(out, "Daemon metrics      {url}  (not readable: {e})");
        }
        (Some(url), None) => {
            let _ = writeln!(out, "Daemon metrics      {url}");
        }
        (None, _) => {
            let _ = writeln!(out, "Daemon metrics      (admin endpoint off)");
        }
    }
    let _ = writeln!(out);
    verdict(&mut out, traffic);
    out
}

fn http_section(out: &mut String, http: &HttpResults) {
    let _ = writeln!(
        out,
        "\nRelayed HTTP requests (sender -> relay -> daemon -> sample ERP API, and back)"
    );
    let _ = writeln!(
        out,
        "  requests          {} sent of {} over {} keep-alive connections in {} ({}/s)",
        http.sent,
        http.planned,
        http.connections,
        seconds(http.elapsed),
        per_second(http.sent, http.elapsed)
    );
    let mix = workload::mix(http.planned);
    let _ = writeln!(
        out,
        "  mix               {} POST /{HTTP_HC}/api/bapi, {} GET /{HTTP_HC}/api/materials/{{id}}; {} with bodies over 64 KiB (rendezvous)",
        mix.posts, mix.gets, mix.large
    );
    let statuses: Vec<String> = http
        .statuses
        .iter()
        .map(|(status, n)| format!("{n} x {status}"))
        .collect();
    let statuses = if statuses.is_empty() {
        "none received".to_owned()
    } else {
        statuses.join(", ")
    };
    let _ = writeln!(out, "  status            {statuses}");
    let _ = writeln!(
        out,
        "  latency           {}",
        histogram(&http.latency.quantiles())
    );
}

fn stream_section(out: &mut String, streams: &StreamResults) {
    let _ = writeln!(
        out,
        "\nWebSocket streams (sender -> relay -> daemon -> TCP echo service, and back)"
    );
    let _ = writeln!(
        out,
        "  streams           {} completed of {}, up to {} at a time, in {}",
        streams.completed,
        streams.planned,
        STREAM_PARALLEL.min(streams.planned),
        seconds(streams.elapsed)
    );
    let not_started = streams
        .planned
        .saturating_sub(streams.completed + streams.failures.count);
    if not_started > 0 {
        let _ = writeln!(
            out,
            "  not started       {not_started} (sending stopped at the first failure)"
        );
    }
    let _ = writeln!(
        out,
        "  bytes verified    {} bytes echoed back identical to those sent",
        grouped(streams.bytes_verified)
    );
    let _ = writeln!(
        out,
        "  open latency      {}",
        histogram(&streams.open_latency.quantiles())
    );
}

fn verdict(out: &mut String, traffic: &TrafficResults) {
    if traffic.passed() {
        let _ = writeln!(
            out,
            "Result: OK. Every response matched the sample service's answer, every echo matched."
        );
        return;
    }
    let failed = traffic.http.failures.count + traffic.streams.failures.count;
    let _ = writeln!(
        out,
        "Result: FAILED ({failed} failures; sending stopped at the first)"
    );
    failures(out, &traffic.http.failures);
    failures(out, &traffic.streams.failures);
}

fn failures(out: &mut String, failures: &Failures) {
    for failure in &failures.shown {
        let _ = writeln!(out, "  {failure}");
    }
    let more = failures.count - failures.shown.len();
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more");
    }
}

/// The latency histogram as a line of quantiles.
pub(crate) fn histogram(q: &Quantiles) -> String {
    if q.count == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
        millis(q.p50),
        millis(q.p90),
        millis(q.p99),
        millis(q.p999),
        millis(q.max),
        q.count
    )
}

/// Ready-made tokens for poking the running demo by hand.
pub(crate) struct PokeTokens {
    /// For `/{HTTP_HC}/...` requests.
    pub http: Secret,
    /// For `/$hc/{STREAM_HC}` connects.
    pub stream: Secret,
    /// How long they stay valid.
    pub valid_for: Duration,
}

/// How to poke the system by hand while it keeps running.
pub(crate) fn poke(relay: SocketAddr, tokens: &PokeTokens, metrics_url: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nEverything keeps running; press Ctrl-C to stop. Try (tokens valid for {} h):",
        tokens.valid_for.as_secs() / 3600
    );
    let http = tokens.http.expose();
    let _ = writeln!(
        out,
        "  curl -sS -X POST 'http://{relay}/{HTTP_HC}/api/bapi' \\\n    -H 'ServiceBusAuthorization: {http}' \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"function\":\"BAPI_MATERIAL_AVAILABILITY\",\"material\":\"M-000042\",\"plant\":\"1000\",\"quantity\":3}}'"
    );
    let _ = writeln!(
        out,
        "  curl -sS 'http://{relay}/{HTTP_HC}/api/materials/M-000042?plant=2000' \\\n    -H 'ServiceBusAuthorization: {http}'"
    );
    let _ = writeln!(
        out,
        "  websocat -b -H 'ServiceBusAuthorization: {}' \\\n    'ws://{relay}/$hc/{STREAM_HC}?sb-hc-action=connect'   # what you type comes back",
        tokens.stream.expose()
    );
    if let Some(url) = metrics_url {
        let _ = writeln!(out, "  curl -sS {url}");
    }
    out
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn per_second(n: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_owned();
    }
    let n = f64::from(u32::try_from(n).unwrap_or(u32::MAX));
    format!("{:.0}", n / secs)
}

/// `1234567` as `1,234,567`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::http_sender::RequestFailure;
    use crate::demo::traffic::Failure;
    use crate::metrics::LatencyHistogram;

    fn started() -> Started {
        Started {
            relay_url: "ws://127.0.0.1:1000".into(),
            relay_admin: Some("127.0.0.1:1001".parse().expect("addr")),
            daemon_workers: 2,
            daemon_admin: Some("127.0.0.1:1002".parse().expect("addr")),
            listeners: vec![HcReadiness {
                name: "erp-api".into(),
                online: 2,
                total: 2,
            }],
            upstream: "127.0.0.1:1003".parse().expect("addr"),
            echo: "127.0.0.1:1004".parse().expect("addr"),
        }
    }

    fn passing() -> TrafficResults {
        let mut traffic = TrafficResults::default();
        traffic.http.planned = 300;
        traffic.http.sent = 300;
        traffic.http.connections = 4;
        traffic.http.statuses.insert(200, 300);
        for micros in 1..=300 {
            traffic.http.latency.record_micros(micros * 5);
        }
        traffic.http.elapsed = Duration::from_millis(500);
        traffic.streams.planned = 5;
        traffic.streams.completed = 5;
        traffic.streams.bytes_verified = 1_234_567;
        traffic
    }

    #[test]
    fn the_started_section_lists_every_address() {
        let text = super::started(&started());
        for needle in [
            "ws://127.0.0.1:1000",
            "http://127.0.0.1:1001/$status",
            "erp-api 2/2",
            "http://127.0.0.1:1003/ErpConnect/",
            "tcp://127.0.0.1:1004",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn a_passing_run_shows_counts_quantiles_metrics_and_ok() {
        let counts = Ok(DaemonCounts {
            requests: 300.0,
            streams_accepted: 5.0,
            samples: 40,
        });
        let text = results(&started(), &passing(), Some(&counts));
        for needle in [
            "300 sent of 300",
            "300 x 200",
            "p50 0.750 ms",
            "p90 1.350 ms",
            "p99 1.485 ms",
            "p99.9 1.500 ms",
            "max 1.500 ms",
            "1,234,567 bytes",
            "5 completed of 5",
            "http://127.0.0.1:1002/metrics",
            "counted 300 relayed requests and 5 accepted streams",
            "Result: OK",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn a_failing_run_lists_its_failures() {
        let mut traffic = passing();
        traffic.http.statuses.insert(502, 1);
        traffic.http.failures.push(Failure::Request {
            index: 7,
            method: "GET",
            target: "/erp-api/api/materials/M-000007?plant=4000".into(),
            failure: RequestFailure::Status {
                expected: 200,
                got: 502,
            },
        });
        traffic.streams.completed = 0;
        let text = results(&started(), &traffic, None);
        assert!(text.contains("1 x 502"), "{text}");
        assert!(
            text.contains("not started       5 (sending stopped"),
            "{text}"
        );
        assert!(text.contains("Result: FAILED (1 failures"), "{text}");
        assert!(text.contains("request #7 GET"), "{text}");
        assert!(!text.contains("Result: OK"), "{text}");
    }

    #[test]
    fn empty_histograms_say_so() {
        assert_eq!(
            histogram(&LatencyHistogram::new().quantiles()),
            "no samples"
        );
    }

    #[test]
    fn poke_lines_carry_the_tokens_and_the_metrics_url() {
        let tokens = PokeTokens {
            http: Secret::new("SharedAccessSignature sr=a&sig=b&se=1&skn=root"),
            stream: Secret::new("SharedAccessSignature sr=c&sig=d&se=1&skn=root"),
            valid_for: Duration::from_secs(24 * 3600),
        };
        let text = poke(
            "127.0.0.1:1000".parse().expect("addr"),
            &tokens,
            Some("http://127.0.0.1:1002/metrics"),
        );
        assert!(text.contains("tokens valid for 24 h"), "{text}");
        assert!(text
            .contains("'ServiceBusAuthorization: SharedAccessSignature sr=a&sig=b&se=1&skn=root'"));
        assert!(text.contains("curl -sS -X POST 'http://127.0.0.1:1000/erp-api/api/bapi'"));
        assert!(text.contains("'ServiceBusAuthorization: SharedAccessSignature sr=c&sig=d"));
        assert!(text.contains("'ws://127.0.0.1:1000/$hc/tcp-echo?sb-hc-action=connect'"));
        assert!(text.contains("curl -sS http://127.0.0.1:1002/metrics"));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
