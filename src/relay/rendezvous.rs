//! Rendezvous connections from listeners (protocol §5.1–§5.2, §6.3): handed to the task on this
//! worker that waits for them, or refused with 403 when the address is unknown or used.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRentExt;

use super::respond::handshake_refusal;
use super::shared::{Rendezvous, WaitGuard, WorkerCtx};
use crate::io::stream::Stream;
use crate::proto::hc::query::get_query_param;
use crate::proto::ws::handshake::UpgradeRequest;

/// Hands a listener's rendezvous connection to whoever waits for its `sb-hc-id`.
pub async fn deliver(
    ctx: Rc<WorkerCtx>,
    mut stream: Stream,
    upgrade: UpgradeRequest,
    leftover: Vec<u8>,
    peer: SocketAddr,
) {
    let query = upgrade.head.query().unwrap_or("").to_owned();
    let id = get_query_param(&query, "sb-hc-id")
        .unwrap_or_default()
        .into_owned();
    let waiter = ctx.state.waiting.borrow_mut().remove(&id);
    let Some(waiter) = waiter else {
        tracing::info!(%peer, "rendezvous refused: unknown, expired or used address");
        let out = handshake_refusal(
            403,
            "RendezvousExpired",
            "The rendezvous address is invalid, expired or already used.",
        );
        let _ = stream.write_all(out).await;
        return;
    };
    let rejection = get_query_param(&query, "sb-hc-statusCode").map(|code| {
        let status = code
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=999).contains(s))
            .unwrap_or(400);
        let description = get_query_param(&query, "sb-hc-statusDescription")
            .unwrap_or_default()
            .into_owned();
        (status, description)
    });
    let _ = waiter.send(Rendezvous {
        stream,
        leftover,
        upgrade,
        rejection,
    });
}

/// Registers `id` as awaited on this worker; the guard forgets it when dropped.
pub fn expect(ctx: &WorkerCtx, id: &str) -> (flume::Receiver<Rendezvous>, WaitGuard) {
    let (tx, rx) = flume::bounded(1);
    ctx.state.waiting.borrow_mut().insert(id.to_owned(), tx);
    (
        rx,
        WaitGuard {
            state: ctx.state.clone(),
            id: id.to_owned(),
        },
    )
}

/// Waits up to `timeout` for the rendezvous registered with [`expect`].
pub async fn wait(rx: &flume::Receiver<Rendezvous>, timeout: Duration) -> Option<Rendezvous> {
    monoio::time::timeout(timeout, rx.recv_async())
        .await
        .ok()
        .and_then(Result::ok)
}
