//! The relay's admin endpoint (docs/metrics.md "Relay admin endpoint"): `/metrics` (Prometheus
//! text: every worker's metrics merged on request, the listeners and queues read at scrape
//! time, the `process_*` metrics and `hycod_build_info`), `/healthz` (every worker answered),
//! `/readyz` (the relay accepts; the body lists the listeners attached per hybrid connection)
//! and `GET /$status`: each hybrid connection with its online listeners, their connect times
//! and counts of streams and requests — what the Azure portal shows after a relay registration
//! is added — and how many `accept` calls failed (e.g. for want of file descriptors).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::net::TcpListener;
use serde::Serialize;

use super::metrics::{scrape_time, ScrapeTime};
use super::registry::HybridConnectionStatus;
use super::shared::{lock, Shared};
use crate::io::admin_http::{self, collect, Reply};
use crate::metrics::process::render_build_info;
use crate::metrics::{render, Snapshot, CONTENT_TYPE};
use crate::runtime::procfs;

#[derive(Serialize)]
struct Status<'a> {
    namespace: &'a str,
    hybrid_connections: Vec<HybridConnectionStatus>,
    accept_failures: u64,
}

/// The `/$status` document.
pub fn status_json(shared: &Shared) -> String {
    let status = Status {
        namespace: &shared.config.namespace,
        hybrid_connections: lock(&shared.registry).status(),
        accept_failures: shared.accept_failures.load(Ordering::Relaxed),
    };
    serde_json::to_string_pretty(&status).unwrap_or_default()
}

/// The workers' metrics merged with the figures read now; `None` when a worker did not
/// answer in time.
async fn merged_metrics(shared: &Shared) -> Option<Snapshot> {
    let mut snapshots = collect(&shared.metrics_requests).await?;
    let (listeners, control_queue_bytes) = {
        let registry = lock(&shared.registry);
        let listeners: Vec<(String, usize)> = registry
            .status()
            .into_iter()
            .map(|hc| (hc.path, hc.listener_count))
            .collect();
        let queued = registry.handles().map(|h| h.queued_bytes()).sum();
        (listeners, queued)
    };
    let figures = ScrapeTime {
        listeners: &listeners,
        control_queue_bytes,
        pending_requests: lock(&shared.pending_requests).len(),
        accept_failures: shared.accept_failures.load(Ordering::Relaxed),
        fd_limit: crate::runtime::fd_limit::soft_limit(),
    };
    match scrape_time(&figures) {
        Ok(now) => snapshots.push(now),
        Err(e) => tracing::warn!(error = %e, "relay scrape-time metrics left out"),
    }
    match Snapshot::merge(snapshots) {
        Ok(merged) => Some(merged),
        Err(e) => {
            tracing::warn!(error = %e, "relay metrics could not be merged");
            None
        }
    }
}

/// The whole `/metrics` body: the merged metrics, the process metrics (left out, with a debug
/// line, where `/proc` cannot be read) and the build info.
fn exposition(merged: &Snapshot) -> String {
    let mut text = render(merged);
    match procfs::read_self() {
        Ok(sample) => text.push_str(&sample.render()),
        Err(e) => tracing::debug!(error = %e, "process metrics left out"),
    }
    text.push_str(&render_build_info(env!("CARGO_PKG_VERSION")));
    text
}

/// `/readyz`: one line per hybrid connection, `PATH N listeners attached`.
fn readiness(shared: &Shared) -> String {
    let mut body = String::new();
    for hc in lock(&shared.registry).status() {
        body.push_str(&format!(
            "{} {} listeners attached\n",
            hc.path, hc.listener_count
        ));
    }
    body
}

/// Serves the admin endpoint.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let head_timeout = shared.config.timeouts.head;
    admin_http::serve(listener, head_timeout, move |head| {
        let shared = shared.clone();
        async move {
            if head.method != "GET" {
                return Reply::text(405, "only GET is served here\n");
            }
            match head.path() {
                "/metrics" => match merged_metrics(&shared).await {
                    Some(merged) => Reply {
                        status: 200,
                        content_type: CONTENT_TYPE,
                        body: exposition(&merged),
                    },
                    None => Reply::text(503, "a worker did not answer\n"),
                },
                "/healthz" => match collect(&shared.metrics_requests).await {
                    Some(_) => Reply::text(200, "ok\n"),
                    None => Reply::text(503, "a worker did not answer\n"),
                },
                "/readyz" => Reply::text(200, readiness(&shared)),
                "/$status" => Reply {
                    status: 200,
                    content_type: "application/json",
                    body: status_json(&shared),
                },
                _ => Reply::text(404, "served here: /metrics /healthz /readyz /$status\n"),
            }
        }
    })
    .await;
}
