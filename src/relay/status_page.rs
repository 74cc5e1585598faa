//! The relay's "portal view" (docs/operations.md "Status page"): per hybrid connection the
//! listeners attached (each with its worker, connect time, token expiry and the work routed to
//! it), the senders joined now, streams joined, and the rendezvous rate and p50/p99 of the last
//! minute; the requests by status class and the refusals by reason; queues and descriptors.
//! One [`PortalView`] is built per request and shown as HTML (`/`) or JSON (`/status.json`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::metrics::{Refusal, REFUSALS, RENDEZVOUS_SECONDS, REQUESTS, SENDERS, STREAMS};
use super::registry::HybridConnectionStatus;
use crate::metrics::Snapshot;
use crate::status_page::html::{self, Text};
use crate::status_page::window::{Counts, LastMinute, Window};

/// One hybrid connection in the portal view.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EntityView {
    pub path: String,
    pub listeners: usize,
    pub senders: i64,
    pub streams_total: u64,
    /// HTTP requests routed to the listeners attached now.
    pub requests_routed: u64,
    pub rendezvous_last_minute: LastMinute,
    pub listener_details: Vec<super::registry::ListenerStatus>,
}

/// What the relay's status page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PortalView {
    pub namespace: String,
    /// Unix seconds.
    pub generated_at: u64,
    pub hybrid_connections: Vec<EntityView>,
    /// Relayed HTTP requests answered, by status class.
    pub requests: BTreeMap<&'static str, u64>,
    /// Refusals by reason (every reason, zero included).
    pub refusals: BTreeMap<&'static str, u64>,
    pub accept_failures: u64,
    pub control_queue_bytes: usize,
    pub pending_requests: usize,
    pub open_fds: Option<u64>,
    pub fd_limit: Option<u64>,
}

/// The process-wide figures the admin endpoint read for the view.
pub(crate) struct Figures {
    pub accept_failures: u64,
    pub control_queue_bytes: usize,
    pub pending_requests: usize,
    pub open_fds: Option<u64>,
    pub fd_limit: Option<u64>,
}

/// Each hybrid connection's rendezvous histogram as window counts.
pub(crate) fn rendezvous_counts(
    merged: &Snapshot,
    entities: &[HybridConnectionStatus],
) -> HashMap<String, Counts> {
    entities
        .iter()
        .filter_map(|hc| {
            let h = merged.histogram(&RENDEZVOUS_SECONDS, &[&hc.path])?;
            Some((hc.path.clone(), Counts::of(h)))
        })
        .collect()
}

/// Builds the view from the registry's admin view and the merged metrics.
pub(crate) fn build(
    namespace: &str,
    entities: Vec<HybridConnectionStatus>,
    merged: &Snapshot,
    window: &Window,
    figures: Figures,
    (now, wall): (Instant, SystemTime),
) -> PortalView {
    let live = rendezvous_counts(merged, &entities);
    let hybrid_connections = entities
        .into_iter()
        .map(|hc| {
            let path = hc.path.as_str();
            let recent = live
                .get(path)
                .map(|counts| window.recent(path, counts, now));
            EntityView {
                listeners: hc.listener_count,
                senders: merged.gauge(&SENDERS, &[path]).unwrap_or(0),
                streams_total: merged.counter(&STREAMS, &[path]).unwrap_or(0),
                requests_routed: hc.listeners.iter().map(|l| l.requests).sum(),
                rendezvous_last_minute: recent.map(LastMinute::from).unwrap_or_default(),
                listener_details: hc.listeners,
                path: hc.path,
            }
        })
        .collect();
    let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .into_iter()
        .map(|class| (class, merged.counter(&REQUESTS, &[class]).unwrap_or(0)))
        .collect();
    let refusals = Refusal::ALL
        .into_iter()
        .map(|r| {
            let n = merged.counter(&REFUSALS, &[r.as_str()]).unwrap_or(0);
            (r.as_str(), n)
        })
        .collect();
    PortalView {
        namespace: namespace.to_owned(),
        generated_at: html::unix(wall),
        hybrid_connections,
        requests,
        refusals,
        accept_failures: figures.accept_failures,
        control_queue_bytes: figures.control_queue_bytes,
        pending_requests: figures.pending_requests,
        open_fds: figures.open_fds,
        fd_limit: figures.fd_limit,
    }
}

/// The page.
pub(crate) fn render_html(view: &PortalView) -> String {
    let now = html::at_unix(view.generated_at);
    let mut b = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = write!(
        b,
        "<h1>hycod relay — {ns}</h1>\n<p class=\"meta\">{at} · refreshes every {r} s · \
<a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a></p>\n",
        ns = Text(&view.namespace),
        at = html::utc(now),
        r = html::REFRESH_SECONDS,
    );
    b.push_str(
        "<h2>Hybrid connections</h2>\n<table id=\"hybrid-connections\"><thead><tr>\
<th class=\"name\">hybrid connection</th><th>listeners</th><th>senders now</th>\
<th>streams joined</th><th>requests routed</th><th>rendezvous/s (1 min)</th>\
<th>p50</th><th>p99</th></tr></thead><tbody>\n",
    );
    for hc in &view.hybrid_connections {
        let class = if hc.listeners == 0 { "bad" } else { "ok" };
        let recent = &hc.rendezvous_last_minute;
        let _ = writeln!(
            b,
            "<tr data-hc=\"{p}\"><td class=\"name\">{p}</td>\
<td data-field=\"listeners\" class=\"{class}\">{l}</td><td data-field=\"senders\">{s}</td>\
<td data-field=\"streams\">{st}</td><td data-field=\"requests\">{rq}</td>\
<td data-field=\"rate\">{rate:.2}</td><td data-field=\"p50\">{p50}</td>\
<td data-field=\"p99\">{p99}</td></tr>",
            p = Text(&hc.path),
            l = hc.listeners,
            s = hc.senders,
            st = hc.streams_total,
            rq = hc.requests_routed,
            rate = recent.per_second,
            p50 = html::optional_latency(recent.p50_seconds),
            p99 = html::optional_latency(recent.p99_seconds),
        );
    }
    b.push_str("</tbody></table>\n");

    b.push_str(
        "<h2>Listeners attached</h2>\n<table id=\"listeners\"><thead><tr>\
<th class=\"name\">hybrid connection</th><th>id</th><th>worker</th>\
<th class=\"name\">tracking id</th><th>connected</th><th>token expires</th>\
<th>streams</th><th>requests</th><th>renewals</th></tr></thead><tbody>\n",
    );
    for hc in &view.hybrid_connections {
        for l in &hc.listener_details {
            let _ = writeln!(
                b,
                "<tr data-hc=\"{p}\"><td class=\"name\">{p}</td><td>{id}</td><td>{w}</td>\
<td class=\"text\">{t}</td><td>{c}</td><td>{e}</td><td>{s}</td><td>{r}</td><td>{n}</td></tr>",
                p = Text(&hc.path),
                id = l.id,
                w = l.worker,
                t = Text(&l.tracking_id),
                c = html::ago(html::at_unix(l.connected_at), now),
                e = if l.token_expires_at == 0 {
                    "—".to_owned()
                } else {
                    html::until(html::at_unix(l.token_expires_at), now)
                },
                s = l.streams,
                r = l.requests,
                n = l.renewals,
            );
        }
    }
    b.push_str("</tbody></table>\n");

    b.push_str(
        "<h2>Requests by status</h2>\n<table id=\"requests\"><thead><tr><th class=\"name\">status</th><th>requests</th></tr></thead><tbody>\n",
    );
    for (class, n) in &view.requests {
        let _ = writeln!(
            b,
            "<tr data-status=\"{class}\"><td class=\"name\">{class}</td><td data-field=\"count\">{n}</td></tr>"
        );
    }
    b.push_str("</tbody></table>\n");

    b.push_str(
        "<h2>Refusals by reason</h2>\n<table id=\"refusals\"><thead><tr><th class=\"name\">reason</th><th>refusals</th></tr></thead><tbody>\n",
    );
    for (reason, n) in &view.refusals {
        let class = if *n > 0 { "warn" } else { "muted" };
        let _ = writeln!(
            b,
            "<tr data-reason=\"{reason}\"><td class=\"name\">{reason}</td><td data-field=\"count\" class=\"{class}\">{n}</td></tr>"
        );
    }
    b.push_str("</tbody></table>\n");

    let fds = match (view.open_fds, view.fd_limit) {
        (Some(open), Some(limit)) => format!("{open} of {limit}"),
        (Some(open), None) => format!("{open} (no limit)"),
        _ => "—".to_owned(),
    };
    let _ = writeln!(
        b,
        "<h2>Process</h2>\n<table id=\"process\"><tbody>\
<tr><td class=\"name\">open file descriptors</td><td data-field=\"fds\">{fds}</td></tr>\
<tr><td class=\"name\">failed accepts</td><td data-field=\"accept-failures\">{af}</td></tr>\
<tr><td class=\"name\">control-channel queues</td><td data-field=\"queued\">{q}</td></tr>\
<tr><td class=\"name\">requests awaiting a response</td><td data-field=\"pending\">{p}</td></tr>\
</tbody></table>",
        af = view.accept_failures,
        q = html::bytes(u64::try_from(view.control_queue_bytes).unwrap_or(u64::MAX)),
        p = view.pending_requests,
    );
    html::page(&format!("hycod relay — {}", view.namespace), &b)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::relay::metrics::WorkerMetrics;
    use crate::relay::registry::ListenerStatus;

    fn entity(path: &str, listeners: usize) -> HybridConnectionStatus {
        HybridConnectionStatus {
            path: path.to_owned(),
            listener_count: listeners,
            listeners: (0..listeners)
                .map(|i| ListenerStatus {
                    id: i as u64 + 1,
                    tracking_id: format!("t{i}_G0"),
                    worker: i,
                    connected_at: 1_000,
                    streams: 2,
                    requests: 3,
                    token_expires_at: 4_600,
                    renewals: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn names_from_configuration_render_as_text() {
        let hostile = "<script>alert(1)</script>";
        let metrics = WorkerMetrics::new([hostile]).expect("metrics");
        let view = build(
            "ns\"><b>x</b>",
            vec![entity(hostile, 1)],
            &metrics.snapshot(),
            &Window::default(),
            Figures {
                accept_failures: 0,
                control_queue_bytes: 0,
                pending_requests: 0,
                open_fds: Some(10),
                fd_limit: Some(1024),
            },
            (Instant::now(), html::at_unix(1_060)),
        );
        let page = render_html(&view);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>x"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<td data-field=\"listeners\" class=\"ok\">1</td>"));
        assert!(page.contains("<td>in 59 min</td>"), "{page}");
    }

    #[test]
    fn the_view_carries_counts_from_the_metrics() {
        let mut metrics = WorkerMetrics::new(["a", "b"]).expect("metrics");
        metrics.sender_joined("a", true);
        metrics.refused(Refusal::NoListener);
        metrics.answered(200);
        metrics.rendezvous("a", Duration::from_millis(2));
        let view = build(
            "ns",
            vec![entity("a", 2), entity("b", 0)],
            &metrics.snapshot(),
            &Window::default(),
            Figures {
                accept_failures: 7,
                control_queue_bytes: 0,
                pending_requests: 0,
                open_fds: None,
                fd_limit: None,
            },
            (Instant::now(), html::at_unix(1_060)),
        );
        let a = &view.hybrid_connections[0];
        assert_eq!((a.listeners, a.senders, a.streams_total), (2, 1, 1));
        assert_eq!(a.requests_routed, 6);
        assert_eq!(a.rendezvous_last_minute.count, 1);
        assert_eq!(view.refusals["no_listener"], 1);
        assert_eq!(view.refusals["unauthorized"], 0);
        assert_eq!(view.requests["2xx"], 1);
        let page = render_html(&view);
        assert!(page.contains("<td data-field=\"listeners\" class=\"bad\">0</td>"));
        assert!(page.contains("<td data-field=\"accept-failures\">7</td>"));
    }
}
