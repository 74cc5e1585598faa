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
use crate::io::admin_http::{self, exposition, Endpoint};
use crate::metrics::Snapshot;
use crate::status_page::window::{Window, SAMPLE_EVERY};

pub(crate) use crate::io::admin_http::{collect, SnapshotRequest};

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

/// What the daemon's admin endpoint gathers.
struct Daemon {
    workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
    status: Arc<DaemonStatus>,
    window: Rc<RefCell<Window>>,
}

impl Endpoint for Daemon {
    type View = DaemonView;

    async fn metrics(&self) -> Option<String> {
        let mut text = exposition(&merged(&self.workers).await?);
        text.push_str(&crate::io::resolve::render_metrics());
        Some(text)
    }

    async fn healthy(&self) -> bool {
        collect(&self.workers).await.is_some()
    }

    fn readiness(&self) -> (u16, String) {
        let mut body = String::new();
        for r in self.status.readiness() {
            body.push_str(&format!(
                "{} {}/{} listeners online\n",
                r.name, r.online, r.total
            ));
        }
        (if self.status.is_ready() { 200 } else { 503 }, body)
    }

    async fn view(&self) -> Option<DaemonView> {
        view(&self.workers, &self.status, &self.window).await
    }

    fn page(view: &DaemonView) -> String {
        status_page::render_html(view)
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
    let daemon = Rc::new(Daemon {
        workers,
        status,
        window,
    });
    admin_http::serve(listener, head_timeout, move |head| {
        let daemon = daemon.clone();
        async move { admin_http::route(&*daemon, &head).await }
    })
    .await;
}
