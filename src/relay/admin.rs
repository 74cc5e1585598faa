//! The read-only admin view (`GET /$status`): each hybrid connection with its online
//! listeners, their connect times and counts of streams and requests — what the Azure portal
//! shows after a relay registration is added — and how many `accept` calls failed (e.g. for
//! want of file descriptors).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use monoio::net::TcpListener;
use serde::Serialize;

use super::registry::HybridConnectionStatus;
use super::shared::{lock, Shared};
use crate::io::admin_http::{self, Reply};

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

/// Serves the admin view.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let head_timeout = shared.config.timeouts.head;
    admin_http::serve(listener, head_timeout, move |head| {
        let shared = shared.clone();
        async move {
            if head.method == "GET" && head.path() == "/$status" {
                Reply {
                    status: 200,
                    content_type: "application/json",
                    body: status_json(&shared),
                }
            } else {
                Reply::text(404, "only GET /$status is served here\n")
            }
        }
    })
    .await;
}
