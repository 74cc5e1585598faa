//! The daemon's status page (docs/operations.md "Status page"): every hybrid connection with
//! its listeners online per worker, reconnects, the last connect error and when, the token
//! expiry, streams and requests in flight, the request rate and p50/p99 of the last minute and
//! the bytes each way; every forward with its address, connections and bytes. One
//! [`DaemonView`] is built per request from the channel states ([`DaemonStatus`]) and the
//! workers' merged metrics, and shown as HTML (`/`) or JSON (`/status.json`).

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::status::{ChannelView, DaemonStatus, ForwardInfo};
use crate::daemon::metrics::{
    BYTES, FORWARD_BYTES, FORWARD_CONNECTIONS, FORWARD_IN_FLIGHT, RECONNECTS, REQUESTS,
    REQUESTS_IN_FLIGHT, REQUEST_SECONDS, STREAMS_ACCEPTED, STREAMS_IN_FLIGHT,
};
use crate::metrics::Snapshot;
use crate::status_page::html::{self, Text};
use crate::status_page::window::{Counts, LastMinute, Window};

/// Channels of one hybrid connection on one worker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct WorkerChannels {
    pub worker: usize,
    pub online: usize,
    pub total: usize,
}

/// A connect error and when it happened (Unix seconds).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastError {
    pub message: String,
    pub at: u64,
}

/// One hybrid connection on the page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HcView {
    pub name: String,
    pub listeners_online: usize,
    pub listeners_total: usize,
    pub per_worker: Vec<WorkerChannels>,
    pub reconnects: u64,
    pub last_connect_error: Option<LastError>,
    /// The earliest expiry of the tokens of the channels online (Unix seconds).
    pub token_expires_at: Option<u64>,
    pub streams_in_flight: i64,
    pub requests_in_flight: i64,
    pub streams_accepted: u64,
    pub requests_answered: u64,
    pub requests_last_minute: LastMinute,
    pub bytes_to_target: u64,
    pub bytes_to_relay: u64,
}

/// One forward on the page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ForwardView {
    pub name: String,
    pub listen: String,
    pub entity_path: String,
    pub in_flight: i64,
    pub forwarded: u64,
    pub refused: u64,
    pub failed: u64,
    pub bytes_to_relay: u64,
    pub bytes_to_client: u64,
}

/// What the daemon's status page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DaemonView {
    pub version: &'static str,
    pub phase: &'static str,
    pub ready: bool,
    /// Unix seconds.
    pub generated_at: u64,
    pub hybrid_connections: Vec<HcView>,
    pub forwards: Vec<ForwardView>,
}

/// Each hybrid connection's request-latency histogram as window counts.
pub(crate) fn request_counts(merged: &Snapshot, names: &[String]) -> HashMap<String, Counts> {
    names
        .iter()
        .filter_map(|name| {
            let h = merged.histogram(&REQUEST_SECONDS, &[name])?;
            Some((name.clone(), Counts::of(h)))
        })
        .collect()
}

/// Builds the view from the channel states and the workers' merged metrics.
pub(crate) fn build(
    status: &DaemonStatus,
    merged: &Snapshot,
    window: &Window,
    (now, wall): (Instant, SystemTime),
) -> DaemonView {
    let channels = status.channels();
    let mut names: Vec<String> = Vec::new();
    for c in &channels {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    let live = request_counts(merged, &names);
    let hybrid_connections = names
        .iter()
        .map(|name| {
            let mine: Vec<&ChannelView> = channels.iter().filter(|c| &c.name == name).collect();
            let hc = |desc| merged.counter_sum(desc, &[name.as_str()]);
            let recent = live
                .get(name)
                .map(|counts| window.recent(name, counts, now));
            HcView {
                name: name.clone(),
                listeners_online: mine.iter().filter(|c| c.online).count(),
                listeners_total: mine.len(),
                per_worker: per_worker(&mine),
                reconnects: hc(&RECONNECTS),
                last_connect_error: mine
                    .iter()
                    .filter_map(|c| c.last_error.as_ref())
                    .max_by_key(|(_, at)| *at)
                    .map(|(message, at)| LastError {
                        message: message.clone(),
                        at: html::unix(*at),
                    }),
                token_expires_at: mine
                    .iter()
                    .filter(|c| c.online)
                    .filter_map(|c| c.token_expires_at)
                    .min()
                    .map(html::unix),
                streams_in_flight: merged.gauge(&STREAMS_IN_FLIGHT, &[name]).unwrap_or(0),
                requests_in_flight: merged.gauge(&REQUESTS_IN_FLIGHT, &[name]).unwrap_or(0),
                streams_accepted: hc(&STREAMS_ACCEPTED),
                requests_answered: hc(&REQUESTS),
                requests_last_minute: recent.map(LastMinute::from).unwrap_or_default(),
                bytes_to_target: merged.counter(&BYTES, &[name, "to_target"]).unwrap_or(0),
                bytes_to_relay: merged.counter(&BYTES, &[name, "to_relay"]).unwrap_or(0),
            }
        })
        .collect();
    let forwards = status
        .forwards()
        .into_iter()
        .map(|f| forward_view(f, merged))
        .collect();
    DaemonView {
        version: env!("CARGO_PKG_VERSION"),
        phase: status.phase().as_str(),
        ready: status.is_ready(),
        generated_at: html::unix(wall),
        hybrid_connections,
        forwards,
    }
}

fn per_worker(channels: &[&ChannelView]) -> Vec<WorkerChannels> {
    let mut out: Vec<WorkerChannels> = Vec::new();
    for c in channels {
        match out.iter_mut().find(|w| w.worker == c.worker) {
            Some(w) => {
                w.total += 1;
                w.online += usize::from(c.online);
            }
            None => out.push(WorkerChannels {
                worker: c.worker,
                online: usize::from(c.online),
                total: 1,
            }),
        }
    }
    out.sort_by_key(|w| w.worker);
    out
}

fn forward_view(f: ForwardInfo, merged: &Snapshot) -> ForwardView {
    let name = f.name.as_str();
    let result = |r| {
        merged
            .counter(&FORWARD_CONNECTIONS, &[name, r])
            .unwrap_or(0)
    };
    ForwardView {
        in_flight: merged.gauge(&FORWARD_IN_FLIGHT, &[name]).unwrap_or(0),
        forwarded: result("forwarded"),
        refused: result("refused"),
        failed: result("failed"),
        bytes_to_relay: merged
            .counter(&FORWARD_BYTES, &[name, "to_relay"])
            .unwrap_or(0),
        bytes_to_client: merged
            .counter(&FORWARD_BYTES, &[name, "to_client"])
            .unwrap_or(0),
        listen: f.listen.to_string(),
        entity_path: f.entity_path,
        name: f.name,
    }
}

/// The page.
pub(crate) fn render_html(view: &DaemonView) -> String {
    let now = html::at_unix(view.generated_at);
    let mut b = String::with_capacity(8 * 1024);
    let (ready_class, ready) = if view.ready {
        ("ok", "ready")
    } else {
        ("bad", "not ready")
    };
    // Writing into a String cannot fail.
    let _ = write!(
        b,
        "<h1>hycod {v}</h1>\n<p class=\"meta\"><span id=\"phase\">{phase}</span> · \
<span id=\"ready\" class=\"{ready_class}\">{ready}</span> · {at} · refreshes every {r} s · \
<a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a> · \
<a href=\"/readyz\">readyz</a></p>\n",
        v = Text(view.version),
        phase = view.phase,
        at = html::utc(now),
        r = html::REFRESH_SECONDS,
    );
    b.push_str(
        "<h2>Hybrid connections</h2>\n<table id=\"hybrid-connections\"><thead><tr>\
<th class=\"name\">hybrid connection</th><th>listeners online</th><th>per worker</th>\
<th>reconnects</th><th class=\"name\">last connect error</th><th>token expires</th>\
<th>streams now</th><th>requests now</th><th>requests/s (1 min)</th><th>p50</th><th>p99</th>\
<th>requests</th><th>streams</th><th>bytes to target</th><th>bytes to relay</th>\
</tr></thead><tbody>\n",
    );
    if view.hybrid_connections.is_empty() {
        b.push_str("<tr><td class=\"text muted\" colspan=\"15\">none configured</td></tr>\n");
    }
    for hc in &view.hybrid_connections {
        let online_class = if hc.listeners_online == 0 {
            "bad"
        } else if hc.listeners_online < hc.listeners_total {
            "warn"
        } else {
            "ok"
        };
        let mut workers = String::from("<ul class=\"plain\">");
        for w in &hc.per_worker {
            let _ = write!(
                workers,
                "<li data-worker=\"{}\">worker {}: {}/{}</li>",
                w.worker, w.worker, w.online, w.total
            );
        }
        workers.push_str("</ul>");
        let error = match &hc.last_connect_error {
            Some(e) => format!(
                "<span class=\"bad\">{}</span><br><span class=\"muted\">{}</span>",
                Text(&e.message),
                html::ago(html::at_unix(e.at), now)
            ),
            None => "<span class=\"muted\">none</span>".to_owned(),
        };
        let token = hc
            .token_expires_at
            .map_or_else(|| "—".to_owned(), |at| html::until(html::at_unix(at), now));
        let recent = &hc.requests_last_minute;
        let _ = writeln!(
            b,
            "<tr data-hc=\"{n}\"><td class=\"name\">{n}</td>\
<td data-field=\"listeners\" class=\"{online_class}\">{on}/{total}</td>\
<td data-field=\"workers\">{workers}</td><td data-field=\"reconnects\">{rc}</td>\
<td data-field=\"last-error\" class=\"text\">{error}</td><td data-field=\"token\">{token}</td>\
<td data-field=\"streams-now\">{sn}</td><td data-field=\"requests-now\">{rn}</td>\
<td data-field=\"rate\">{rate:.2}</td><td data-field=\"p50\">{p50}</td>\
<td data-field=\"p99\">{p99}</td><td data-field=\"requests\">{rq}</td>\
<td data-field=\"streams\">{st}</td><td data-field=\"to-target\">{tt}</td>\
<td data-field=\"to-relay\">{tr}</td></tr>",
            n = Text(&hc.name),
            on = hc.listeners_online,
            total = hc.listeners_total,
            rc = hc.reconnects,
            sn = hc.streams_in_flight,
            rn = hc.requests_in_flight,
            rate = recent.per_second,
            p50 = html::optional_latency(recent.p50_seconds),
            p99 = html::optional_latency(recent.p99_seconds),
            rq = hc.requests_answered,
            st = hc.streams_accepted,
            tt = html::bytes(hc.bytes_to_target),
            tr = html::bytes(hc.bytes_to_relay),
        );
    }
    b.push_str("</tbody></table>\n");

    b.push_str(
        "<h2>Forwards</h2>\n<table id=\"forwards\"><thead><tr>\
<th class=\"name\">forward</th><th class=\"name\">listening</th><th class=\"name\">hybrid connection</th>\
<th>connections now</th><th>forwarded</th><th>refused</th><th>failed</th>\
<th>bytes to relay</th><th>bytes to client</th></tr></thead><tbody>\n",
    );
    if view.forwards.is_empty() {
        b.push_str("<tr><td class=\"text muted\" colspan=\"9\">none configured</td></tr>\n");
    }
    for f in &view.forwards {
        let _ = writeln!(
            b,
            "<tr data-forward=\"{n}\"><td class=\"name\">{n}</td><td class=\"text\">{l}</td>\
<td class=\"text\">{e}</td><td data-field=\"in-flight\">{i}</td>\
<td data-field=\"forwarded\">{fw}</td><td data-field=\"refused\">{rf}</td>\
<td data-field=\"failed\">{fl}</td><td data-field=\"to-relay\">{tr}</td>\
<td data-field=\"to-client\">{tc}</td></tr>",
            n = Text(&f.name),
            l = Text(&f.listen),
            e = Text(&f.entity_path),
            i = f.in_flight,
            fw = f.forwarded,
            rf = f.refused,
            fl = f.failed,
            tr = html::bytes(f.bytes_to_relay),
            tc = html::bytes(f.bytes_to_client),
        );
    }
    b.push_str("</tbody></table>\n");
    html::page(&format!("hycod {} — status", view.version), &b)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::Shard;

    #[test]
    fn channels_errors_and_metrics_come_together_per_hybrid_connection() {
        let status = Arc::new(DaemonStatus::default());
        let a0 = status.add_channel("a", 0);
        let a1 = status.add_channel("a", 1);
        let _b0 = status.add_channel("b", 0);
        a0.set_online(true);
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000);
        a0.token_expires(expiry);
        a1.connect_failed("relay answered 401 <b>Unauthorized</b>");
        let mut shard = Shard::new();
        let reconnect_io = shard.counter(&RECONNECTS, &["a", "io_error"]).expect("id");
        let reconnect_lost = shard
            .counter(&RECONNECTS, &["a", "connection_lost"])
            .expect("id");
        shard.inc_by(reconnect_io, 2);
        shard.inc(reconnect_lost);
        let ok = shard.counter(&REQUESTS, &["a", "2xx"]).expect("id");
        shard.inc_by(ok, 4);
        let to_target = shard.counter(&BYTES, &["a", "to_target"]).expect("id");
        shard.inc_by(to_target, 2048);
        let latency = shard.histogram(&REQUEST_SECONDS, &["a"]).expect("id");
        shard.observe(latency, Duration::from_millis(3));
        let view = build(
            &status,
            &shard.snapshot(),
            &Window::default(),
            (
                Instant::now(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(4_000),
            ),
        );
        assert_eq!(view.phase, "starting");
        assert!(!view.ready);
        let a = &view.hybrid_connections[0];
        assert_eq!((a.listeners_online, a.listeners_total), (1, 2));
        assert_eq!(
            a.per_worker,
            vec![
                WorkerChannels {
                    worker: 0,
                    online: 1,
                    total: 1
                },
                WorkerChannels {
                    worker: 1,
                    online: 0,
                    total: 1
                }
            ]
        );
        assert_eq!(a.reconnects, 3);
        assert_eq!(a.requests_answered, 4);
        assert_eq!(a.bytes_to_target, 2048);
        assert_eq!(a.token_expires_at, Some(5_000));
        assert_eq!(a.requests_last_minute.count, 1);
        let error = a.last_connect_error.as_ref().expect("error");
        assert_eq!(error.message, "relay answered 401 <b>Unauthorized</b>");
        let b = &view.hybrid_connections[1];
        assert_eq!((b.listeners_online, b.reconnects), (0, 0));
        let page = render_html(&view);
        assert!(page.contains("relay answered 401 &lt;b&gt;Unauthorized&lt;/b&gt;"));
        assert!(!page.contains("<b>Unauthorized"));
        assert!(
            page.contains("<td data-field=\"token\">in 16 min</td>"),
            "{page}"
        );
        assert!(page.contains("<li data-worker=\"1\">worker 1: 0/1</li>"));
    }
}
