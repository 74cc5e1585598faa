//! The daemon's admin endpoint (architecture §4): `/metrics` (Prometheus text, every worker's
//! shard merged on request, off the data path), `/healthz` (every worker answered) and
//! `/readyz` (200 only when each hybrid connection has a listener online). `/metrics` also
//! carries the `process_*` metrics, read from `/proc` at scrape time, and `hycod_build_info`.

use monoio::net::TcpListener;
use std::sync::Arc;

use super::status::DaemonStatus;
use crate::io::admin_http::{self, Reply};
use crate::metrics::process::render_build_info;
use crate::metrics::{render, Snapshot, CONTENT_TYPE};
use crate::runtime::procfs;

pub use crate::io::admin_http::{collect, SnapshotRequest};

/// The whole `/metrics` body: the workers' merged metrics, the process metrics (left out,
/// with a debug line, where `/proc` cannot be read) and the build info.
fn exposition(merged: &Snapshot) -> String {
    let mut text = render(merged);
    match procfs::read_self() {
        Ok(sample) => text.push_str(&sample.render()),
        Err(e) => tracing::debug!(error = %e, "process metrics left out"),
    }
    text.push_str(&render_build_info(env!("CARGO_PKG_VERSION")));
    text.push_str(&crate::io::resolve::render_metrics());
    text
}

/// Serves the admin endpoint.
pub async fn serve(
    listener: TcpListener,
    head_timeout: std::time::Duration,
    workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
    status: Arc<DaemonStatus>,
) {
    admin_http::serve(listener, head_timeout, move |head| {
        let workers = workers.clone();
        let status = status.clone();
        async move {
            if head.method != "GET" {
                return Reply::text(405, "only GET is served here\n");
            }
            match head.path() {
                "/metrics" => match collect(&workers).await.map(Snapshot::merge) {
                    Some(Ok(merged)) => Reply::new(200, CONTENT_TYPE, exposition(&merged)),
                    _ => Reply::text(503, "a worker did not answer\n"),
                },
                "/healthz" => match collect(&workers).await {
                    Some(_) => Reply::text(200, "ok\n"),
                    None => Reply::text(503, "a worker did not answer\n"),
                },
                "/readyz" => {
                    let mut body = String::new();
                    for r in status.readiness() {
                        body.push_str(&format!(
                            "{} {}/{} listeners online\n",
                            r.name, r.online, r.total
                        ));
                    }
                    Reply::text(if status.is_ready() { 200 } else { 503 }, body)
                }
                _ => Reply::text(404, "served here: /metrics /healthz /readyz\n"),
            }
        }
    })
    .await;
}
