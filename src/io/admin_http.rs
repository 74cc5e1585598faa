//! A minimal HTTP/1.1 server for read-only admin endpoints (the daemon's `/metrics`,
//! `/healthz`, `/readyz`; the relay's `/$status`): one request per connection, answered by a
//! handler and closed. Not for the data path.

use std::future::Future;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;

use super::accept_backoff::{resource_errno, AcceptBackoff};
use super::read_buf::ReadBuf;
use super::stream::Stream;
use crate::proto::http1::{
    parse_request_head, reason_phrase, write_response_head, Limits, RequestHead,
};

/// The largest admin request head read.
const MAX_HEAD: usize = 8 * 1024;

/// A handler's answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Serves `listener` forever, one task per connection.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
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
            let Some(head) = read_head(&mut stream).await else {
                return;
            };
            let reply = handler(head).await;
            let len = reply.body.len().to_string();
            let headers = [
                ("Content-Type", reply.content_type),
                ("Content-Length", len.as_str()),
                ("Connection", "close"),
            ];
            let mut out = Vec::with_capacity(128 + reply.body.len());
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
