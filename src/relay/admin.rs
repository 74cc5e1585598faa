//! The relay's admin endpoint (docs/metrics.md "Relay admin endpoint"): the status page `/` and
//! its data `/status.json` ([`status_page`](super::status_page)), `/metrics` (Prometheus
//! text: every worker's metrics merged on request, the listeners and queues read at scrape
//! time, the `process_*` metrics and `hycod_build_info`), `/healthz` (every worker answered),
//! `/readyz` (the relay accepts; the body lists the listeners attached per hybrid connection)
//! and `GET /$status`: each hybrid connection with its online listeners, their connect times
//! and counts of streams and requests — what the Azure portal shows after a relay registration
//! is added — and how many `accept` calls failed (e.g. for want of file descriptors).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use monoio::net::TcpListener;
use serde::Serialize;

use super::metrics::{scrape_time, ScrapeTime};
use super::registry::HybridConnectionStatus;
use super::shared::{lock, Shared};
use super::status_page::{self, Figures, PortalView};
use crate::io::admin_http::{self, collect, exposition, Endpoint, Reply};
use crate::metrics::Snapshot;
use crate::runtime::procfs;
use crate::status_page::window::{Window, SAMPLE_EVERY};

#[derive(Serialize)]
struct Status<'a> {
    namespace: &'a str,
    hybrid_connections: Vec<HybridConnectionStatus>,
    accept_failures: u64,
}

/// The `/$status` document.
pub(crate) fn status_json(shared: &Shared) -> String {
    let status = Status {
        namespace: &shared.config.namespace,
        hybrid_connections: lock(&shared.registry).status(),
        accept_failures: shared.accept_failures.load(Ordering::Relaxed),
    };
    serde_json::to_string_pretty(&status).unwrap_or_default()
}

/// What the admin endpoint reads itself: the registry's admin view and the process-wide
/// figures.
fn read_now(shared: &Shared) -> (Vec<HybridConnectionStatus>, Figures) {
    let (entities, control_queue_bytes) = {
        let registry = lock(&shared.registry);
        let queued = registry.handles().map(|h| h.queued_bytes()).sum();
        (registry.status(), queued)
    };
    let figures = Figures {
        accept_failures: shared.accept_failures.load(Ordering::Relaxed),
        control_queue_bytes,
        pending_requests: lock(&shared.pending_requests).len(),
        open_fds: procfs::read_self().ok().map(|sample| sample.open_fds),
        fd_limit: crate::runtime::fd_limit::soft_limit(),
    };
    (entities, figures)
}

/// The workers' metrics merged; `None` when a worker did not answer in time.
async fn workers_merged(shared: &Shared) -> Option<Snapshot> {
    let snapshots = collect(&shared.metrics_requests).await?;
    match Snapshot::merge(snapshots) {
        Ok(merged) => Some(merged),
        Err(e) => {
            tracing::warn!(error = %e, "relay metrics could not be merged");
            None
        }
    }
}

/// The workers' metrics merged with the figures read now.
async fn merged_metrics(shared: &Shared) -> Option<Snapshot> {
    let workers = workers_merged(shared).await?;
    let (entities, figures) = read_now(shared);
    let listeners: Vec<(String, usize)> = entities
        .into_iter()
        .map(|hc| (hc.path, hc.listener_count))
        .collect();
    let now = ScrapeTime {
        listeners: &listeners,
        control_queue_bytes: figures.control_queue_bytes,
        pending_requests: figures.pending_requests,
        accept_failures: figures.accept_failures,
        fd_limit: figures.fd_limit,
    };
    match scrape_time(&now).map(|now| Snapshot::merge([workers, now])) {
        Ok(Ok(merged)) => Some(merged),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "relay metrics could not be merged");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "relay scrape-time metrics could not be registered");
            None
        }
    }
}

/// The portal view now; `None` when a worker did not answer in time.
async fn portal_view(shared: &Shared, window: &RefCell<Window>) -> Option<PortalView> {
    let merged = workers_merged(shared).await?;
    let (entities, figures) = read_now(shared);
    Some(status_page::build(
        &shared.config.namespace,
        entities,
        &merged,
        &window.borrow(),
        figures,
        (Instant::now(), SystemTime::now()),
    ))
}

/// Samples the rendezvous histograms every [`SAMPLE_EVERY`] for the page's last minute.
async fn sample_forever(shared: Arc<Shared>, window: Rc<RefCell<Window>>) {
    loop {
        if let Some(merged) = workers_merged(&shared).await {
            let entities = lock(&shared.registry).status();
            let counts = status_page::rendezvous_counts(&merged, &entities);
            window.borrow_mut().push(Instant::now(), counts);
        }
        monoio::time::sleep(SAMPLE_EVERY).await;
    }
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

/// What the relay's admin endpoint gathers.
struct Relay {
    shared: Arc<Shared>,
    window: Rc<RefCell<Window>>,
}

impl Endpoint for Relay {
    type View = PortalView;
    const OWN_PATHS: &'static str = " /$status";

    async fn metrics(&self) -> Option<String> {
        Some(exposition(&merged_metrics(&self.shared).await?))
    }

    async fn healthy(&self) -> bool {
        collect(&self.shared.metrics_requests).await.is_some()
    }

    fn readiness(&self) -> (u16, String) {
        (200, readiness(&self.shared))
    }

    async fn view(&self) -> Option<PortalView> {
        portal_view(&self.shared, &self.window).await
    }

    fn page(view: &PortalView) -> String {
        status_page::render_html(view)
    }

    fn own(&self, path: &str) -> Option<Reply> {
        (path == "/$status").then(|| Reply::json(status_json(&self.shared)))
    }
}

/// Serves the admin endpoint.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let head_timeout = shared.config.timeouts.head;
    let window = Rc::new(RefCell::new(Window::default()));
    monoio::spawn(sample_forever(shared.clone(), window.clone()));
    let relay = Rc::new(Relay { shared, window });
    admin_http::serve(listener, head_timeout, move |head| {
        let relay = relay.clone();
        async move { admin_http::route(&*relay, &head).await }
    })
    .await;
}
