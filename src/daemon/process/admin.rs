//! The daemon's admin endpoint (architecture §4): the status page `/` and its data
//! `/status.json` ([`status_page`](super::status_page)), `/metrics` (Prometheus text, every
//! worker's shard merged on request, off the data path), `/healthz` (every worker answered) and
//! `/readyz` (200 only when each hybrid connection has a listener online). `/metrics` also
//! carries the `process_*` metrics, read from `/proc` at scrape time, and `hycod_build_info`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use monoio::net::TcpListener;

use super::status::DaemonStatus;
use super::status_page::{self, DaemonView};
use crate::io::admin_http::{self, Reply};
use crate::metrics::process::render_build_info;
use crate::metrics::{render, Snapshot, CONTENT_TYPE};
use crate::runtime::procfs;
use crate::status_page::html;
use crate::status_page::window::{Window, SAMPLE_EVERY};

pub(crate) use crate::io::admin_http::{collect, SnapshotRequest};

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

/// The workers' metrics merged; `None` when a worker did not answer in time.
async fn merged(workers: &[flume::Sender<SnapshotRequest>]) -> Option<Snapshot> {
    match Snapshot::merge(collect(workers).await?) {
        Ok(merged) => Some(merged),
        Err(e) => {
            tracing::warn!(error = %e, "the workers' metrics could not be merged");
            None
        }
    }
}

/// The status page's view now; `None` when a worker did not answer in time.
async fn view(
    workers: &[flume::Sender<SnapshotRequest>],
    status: &DaemonStatus,
    window: &RefCell<Window>,
) -> Option<DaemonView> {
    let merged = merged(workers).await?;
    Some(status_page::build(
        status,
        &merged,
        &window.borrow(),
        (Instant::now(), SystemTime::now()),
    ))
}

/// Samples the request-latency histograms every [`SAMPLE_EVERY`] for the page's last minute.
async fn sample_forever(
    workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
    status: Arc<DaemonStatus>,
    window: Rc<RefCell<Window>>,
) {
    loop {
        if let Some(merged) = merged(&workers).await {
            let mut names: Vec<String> = status.channels().into_iter().map(|c| c.name).collect();
            names.dedup();
            let counts = status_page::request_counts(&merged, &names);
            window.borrow_mut().push(Instant::now(), counts);
        }
        monoio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Serves the admin endpoint.
pub(crate) async fn serve(
    listener: TcpListener,
    head_timeout: std::time::Duration,
    workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
    status: Arc<DaemonStatus>,
) {
    let window = Rc::new(RefCell::new(Window::default()));
    monoio::spawn(sample_forever(
        workers.clone(),
        status.clone(),
        window.clone(),
    ));
    admin_http::serve(listener, head_timeout, move |head| {
        let workers = workers.clone();
        let status = status.clone();
        let window = window.clone();
        async move {
            if head.method != "GET" {
                return Reply::text(405, "only GET is served here\n");
            }
            match head.path() {
                "/metrics" => match merged(&workers).await {
                    Some(merged) => Reply::new(200, CONTENT_TYPE, exposition(&merged)),
                    None => Reply::text(503, "a worker did not answer\n"),
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
                "/" => match view(&workers, &status, &window).await {
                    Some(view) => Reply {
                        headers: html::HEADERS,
                        ..Reply::new(200, html::CONTENT_TYPE, status_page::render_html(&view))
                    },
                    None => Reply::text(503, "a worker did not answer\n"),
                },
                "/status.json" => match view(&workers, &status, &window).await {
                    Some(view) => {
                        Reply::json(serde_json::to_string_pretty(&view).unwrap_or_default())
                    }
                    None => Reply::text(503, "a worker did not answer\n"),
                },
                _ => Reply::text(
                    404,
                    "served here: / /status.json /metrics /healthz /readyz\n",
                ),
            }
        }
    })
    .await;
}
