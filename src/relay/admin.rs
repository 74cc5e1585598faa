//! The read-only admin view (`GET /$status`): each hybrid connection with its online
//! listeners, their connect times and counts of streams and requests — what the Azure portal
//! shows after a relay registration is added.

use std::sync::Arc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;
use serde::Serialize;

use super::registry::HybridConnectionStatus;
use super::server::read_head;
use super::shared::{lock, Shared};
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::proto::http1::write_response_head;

#[derive(Serialize)]
struct Status<'a> {
    namespace: &'a str,
    hybrid_connections: Vec<HybridConnectionStatus>,
}

/// The `/$status` document.
pub fn status_json(shared: &Shared) -> String {
    let status = Status {
        namespace: &shared.config.namespace,
        hybrid_connections: lock(&shared.registry).status(),
    };
    serde_json::to_string_pretty(&status).unwrap_or_default()
}

/// Serves the admin view, one request per connection.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        monoio::spawn(async move {
            let Ok(mut stream) = Stream::plain(tcp) else {
                return;
            };
            let mut buf = ReadBuf::new(8 * 1024, 0);
            let Ok(Some(head)) = read_head(&mut stream, &mut buf).await else {
                return;
            };
            let (status, body) = if head.method == "GET" && head.path() == "/$status" {
                (200, status_json(&shared))
            } else {
                (404, "{\"error\":\"only GET /$status is served here\"}".to_owned())
            };
            let len = body.len().to_string();
            let mut out = Vec::new();
            let headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", len.as_str()),
                ("Connection", "close"),
            ];
            if write_response_head(&mut out, status, crate::proto::http1::reason_phrase(status), headers).is_ok() {
                out.extend_from_slice(body.as_bytes());
                let _ = stream.write_all(out).await;
            }
        });
    }
}
