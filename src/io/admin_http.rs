//! A minimal HTTP/1.1 server for read-only admin endpoints (the daemon's and the relay's `/`,
//! `/status.json`, `/metrics`, `/healthz`, `/readyz`; the relay's `/$status`): one request per
//! connection, answered by a handler and closed. Not for the data path. A head that is not
//! complete within the head timeout gets 408 and the connection closes; no body is ever read,
//! and there is no keep-alive, so the head timeout bounds every connection. [`route`] answers
//! the paths both endpoints serve alike from what an [`Endpoint`] gathers.

use std::future::Future;
use std::time::Duration;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;

use super::accept_backoff::{resource_errno, AcceptBackoff};
use super::read_buf::ReadBuf;
use super::stream::Stream;
use crate::metrics::process::render_build_info;
use crate::metrics::{render, Snapshot, CONTENT_TYPE};
use crate::proto::http1::{
    parse_request_head, reason_phrase, write_response_head, Limits, RequestHead,
};
use crate::runtime::procfs;
use crate::status_page::html;

/// The largest admin request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a worker may take to hand over its metrics snapshot before the worker counts as
/// not answering (`/metrics` and `/healthz` then answer 503).
const WORKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks a worker for a copy of its metrics.
pub(crate) type SnapshotRequest = flume::Sender<Snapshot>;

/// Collects one snapshot from every worker, one after the other; `None` when one did not
/// answer within [`WORKER_ANSWER_TIMEOUT`].
pub(crate) async fn collect(workers: &[flume::Sender<SnapshotRequest>]) -> Option<Vec<Snapshot>> {
    let mut out = Vec::with_capacity(workers.len());
    for worker in workers {
        let (tx, rx) = flume::bounded(1);
        worker.send(tx).ok()?;
        let snapshot = monoio::time::timeout(WORKER_ANSWER_TIMEOUT, rx.recv_async())
            .await
            .ok()?
            .ok()?;
        out.push(snapshot);
    }
    Some(out)
}

/// A handler's answer.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Header fields beyond `Content-Type`, `Content-Length` and `Connection`.
    pub headers: &'static [(&'static str, &'static str)],
}

impl Reply {
    /// A plain-text answer.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// A `200` JSON document.
    pub(crate) fn json(body: String) -> Self {
        Self::new(200, "application/json", body)
    }

    /// An answer of `content_type` without further header fields.
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            headers: &[],
        }
    }
}

/// What an admin endpoint gathers for [`route`].
pub(crate) trait Endpoint {
    /// The status page's data (`/status.json`).
    type View: serde::Serialize;
    /// The paths only this endpoint serves (for the 404 text), each after a space.
    const OWN_PATHS: &'static str = "";

    /// The `/metrics` body; `None` when a worker did not answer in time.
    async fn metrics(&self) -> Option<String>;
    /// Whether every worker answered.
    async fn healthy(&self) -> bool;
    /// `/readyz`: the status and the body.
    fn readiness(&self) -> (u16, String);
    /// The status page's view now; `None` when a worker did not answer in time.
    async fn view(&self) -> Option<Self::View>;
    /// The status page of `view` as HTML.
    fn page(view: &Self::View) -> String;
    /// The answer to a path only this endpoint serves.
    fn own(&self, _path: &str) -> Option<Reply> {
        None
    }
}

/// Answers `head` from `endpoint`: only `GET`; `/`, `/status.json`, `/metrics`, `/healthz`,
/// `/readyz` and the endpoint's own paths; 503 where a worker did not answer.
pub(crate) async fn route<E: Endpoint>(endpoint: &E, head: &RequestHead) -> Reply {
    let silent = || Reply::text(503, "a worker did not answer\n");
    if head.method != "GET" {
        return Reply::text(405, "only GET is served here\n");
    }
    match head.path() {
        "/metrics" => endpoint
            .metrics()
            .await
            .map_or_else(silent, |text| Reply::new(200, CONTENT_TYPE, text)),
        "/healthz" if endpoint.healthy().await => Reply::text(200, "ok\n"),
        "/healthz" => silent(),
        "/readyz" => {
            let (status, body) = endpoint.readiness();
            Reply::text(status, body)
        }
        "/" => endpoint.view().await.map_or_else(silent, |view| Reply {
            headers: html::HEADERS,
            ..Reply::new(200, html::CONTENT_TYPE, E::page(&view))
        }),
        "/status.json" => endpoint.view().await.map_or_else(silent, |view| {
            Reply::json(serde_json::to_string_pretty(&view).unwrap_or_default())
        }),
        path => endpoint.own(path).unwrap_or_else(|| {
            Reply::text(
                404,
                format!(
                    "served here: / /status.json /metrics /healthz /readyz{}\n",
                    E::OWN_PATHS
                ),
            )
        }),
    }
}

/// The `/metrics` body for `merged`: its text, the process metrics (left out, with a debug
/// line, where `/proc` cannot be read) and the build info.
pub(crate) fn exposition(merged: &Snapshot) -> String {
    let mut text = render(merged);
    match procfs::read_self() {
        Ok(sample) => text.push_str(&sample.render()),
        Err(e) => tracing::debug!(error = %e, "process metrics left out"),
    }
    text.push_str(&render_build_info(env!("CARGO_PKG_VERSION")));
    text
}

/// Serves `listener` forever, one task per connection; a client gets `head_timeout` to send
/// its request head.
pub(crate) async fn serve<F, Fut>(listener: TcpListener, head_timeout: Duration, handler: F)
where
    F: Fn(RequestHead) -> Fut + Clone + 'static,
    Fut: Future<Output = Reply> + 'static,
{
    let mut backoff = AcceptBackoff::default();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => {
                backoff.on_success();
                tcp
            }
            Err(e) => {
                if let Some(pause) = backoff.on_error(&e) {
                    tracing::warn!(error = %e, errno = resource_errno(&e).unwrap_or("other"),
                        "admin endpoint accept failed; pausing accepts");
                    monoio::time::sleep(pause).await;
                }
                continue;
            }
        };
        let handler = handler.clone();
        monoio::spawn(async move {
            let Ok(mut stream) = Stream::plain(tcp) else {
                return;
            };
            let reply = match monoio::time::timeout(head_timeout, read_head(&mut stream)).await {
                Ok(Some(head)) => handler(head).await,
                Ok(None) => return,
                Err(_) => Reply::text(408, "the request head did not arrive in time\n"),
            };
            let len = reply.body.len().to_string();
            let fixed = [
                ("Content-Type", reply.content_type),
                ("Content-Length", len.as_str()),
                ("Connection", "close"),
            ];
            let headers = fixed.into_iter().chain(reply.headers.iter().copied());
            let mut out = Vec::with_capacity(256 + reply.body.len());
            if write_response_head(&mut out, reply.status, reason_phrase(reply.status), headers)
                .is_ok()
            {
                out.extend_from_slice(reply.body.as_bytes());
                let _ = stream.write_all(out).await;
            }
        });
    }
}

async fn read_head(stream: &mut Stream) -> Option<RequestHead> {
    let mut buf = ReadBuf::new(MAX_HEAD, 0);
    let limits = Limits {
        max_head_bytes: MAX_HEAD,
        ..Limits::default()
    };
    loop {
        if let Some((head, _)) = parse_request_head(buf.data(), &limits).ok()? {
            return Some(head);
        }
        if buf.fill(stream).await.ok()? == 0 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn a_head_not_complete_within_the_head_timeout_gets_408_and_the_connection_closes() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().expect("addr");
        std_listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            crate::runtime::workers::block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                serve(listener, Duration::from_millis(300), |_| async {
                    Reply::text(200, "ok\n")
                })
                .await;
            })
        });
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        slow.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .expect("partial head");
        let started = std::time::Instant::now();
        let mut answer = String::new();
        slow.read_to_string(&mut answer)
            .expect("answer, then close");
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        let mut quick = std::net::TcpStream::connect(addr).expect("connect");
        quick
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("head");
        let mut answer = String::new();
        quick.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
}
