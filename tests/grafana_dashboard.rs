//! `dist/grafana-dashboard.json` (docs/metrics.md "Grafana dashboard") is importable JSON whose
//! queries name only metrics hycod exports: the descriptors of `src/daemon/metrics.rs` (with the
//! `_bucket`, `_sum` and `_count` series of histograms), the `process_*` metrics and
//! `hycod_build_info`.

use std::collections::BTreeSet;

use hycod::daemon::metrics::ALL;
use hycod::metrics::process::{render_build_info, ProcessSample};
use hycod::metrics::MetricKind;
use serde_json::Value;

fn dashboard() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/grafana-dashboard.json"
    ))
    .expect("the dashboard file");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every sample name `/metrics` can carry.
fn exported_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for desc in ALL {
        names.insert(desc.name.to_owned());
        if desc.kind == MetricKind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{}{suffix}", desc.name));
            }
        }
    }
    let process = ProcessSample {
        resident_memory_bytes: 0,
        open_fds: 0,
        cpu_seconds: 0.0,
        start_time_seconds: 0.0,
    }
    .render()
        + &render_build_info("0");
    for line in process.lines().filter(|l| !l.starts_with('#')) {
        names.insert(line.split(['{', ' ']).next().unwrap_or_default().to_owned());
    }
    names
}

/// The identifiers in a PromQL expression that look like hycod or process metric names.
fn referenced_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("hycod_") || word.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Every PromQL expression: panel targets and template variable queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("vars") {
        out.push(
            variable["definition"]
                .as_str()
                .expect("definition")
                .to_owned(),
        );
    }
    out
}

#[test]
fn the_dashboard_is_importable_with_a_prometheus_input() {
    let dashboard = dashboard();
    assert_eq!(dashboard["schemaVersion"], 39);
    let input = &dashboard["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS");
    assert_eq!(input["pluginId"], "prometheus");
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "{panel}");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        }
    }
}

#[test]
fn the_dashboard_references_only_exported_metrics() {
    let exported = exported_names();
    let mut referenced = BTreeSet::new();
    for expr in expressions(&dashboard()) {
        for name in referenced_names(&expr) {
            assert!(
                exported.contains(&name),
                "{name} (in `{expr}`) is not exported"
            );
            referenced.insert(name);
        }
    }
    for wanted in [
        "hycod_listener_online",
        "hycod_reconnects_total",
        "hycod_request_seconds_bucket",
        "hycod_requests_total",
        "hycod_streams_in_flight",
        "hycod_streams_accepted_total",
        "hycod_streams_rejected_total",
        "hycod_bytes_total",
        "hycod_forward_connections_total",
        "hycod_forward_in_flight",
        "hycod_forward_bytes_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(referenced.contains(wanted), "no panel shows {wanted}");
    }
}

#[test]
fn an_invented_name_is_caught() {
    let exported = exported_names();
    let names = referenced_names("rate(hycod_requests_totals[5m]) + process_rss_bytes");
    assert_eq!(names, ["hycod_requests_totals", "process_rss_bytes"]);
    assert!(names.iter().all(|n| !exported.contains(n)));
}
