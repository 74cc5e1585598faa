//! Rendezvous connections from listeners (protocol §5.1–§5.2, §6.3): handed to the task on this
//! worker that waits for them, or refused with 403 when the address is unknown or used. A
//! rendezvous matches only when its secret `sb-hc-id` names a waiter and its path and action
//! are the ones handed out ([`rendezvous_matches`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use local_sync::oneshot;
use monoio::io::AsyncWriteRentExt;

use super::core::pairing::{rejection_of, rendezvous_matches, Expected};
use super::core::Refusal;
use super::shared::{Rendezvous, WaitGuard, Waiter, WorkerCtx};
use crate::io::stream::Stream;
use crate::proto::hc::query::{get_query_param, Action};
use crate::proto::ws::handshake::UpgradeRequest;

/// Hands a listener's rendezvous connection (`action` is `accept` or `request`) to whoever
/// waits for its `sb-hc-id`, path and action.
pub(super) async fn deliver(
    ctx: Rc<WorkerCtx>,
    mut stream: Stream,
    upgrade: UpgradeRequest,
    leftover: Vec<u8>,
    peer: SocketAddr,
    action: Action,
) {
    let query = upgrade.head.query().unwrap_or("").to_owned();
    let id = get_query_param(&query, "sb-hc-id")
        .unwrap_or_default()
        .into_owned();
    let waiter = {
        let mut waiting = ctx.state.waiting.borrow_mut();
        let matches = waiting
            .get(id.as_str())
            .is_some_and(|w| rendezvous_matches(&w.expected, upgrade.head.path(), action));
        if matches {
            waiting.remove(id.as_str())
        } else {
            None
        }
    };
    let Some(Waiter { tx: waiter, .. }) = waiter else {
        tracing::info!(%peer, "rendezvous refused: unknown, expired or used address");
        let refusal = Refusal::rendezvous_expired();
        ctx.state.refused_with(&refusal);
        let _ = stream.write_all(refusal.handshake()).await;
        return;
    };
    let _ = waiter.send(Rendezvous {
        stream,
        leftover,
        upgrade,
        rejection: rejection_of(&query),
    });
}

/// Registers a rendezvous with secret `id` on `path` (`/$hc/…`, as handed out) for `action` as
/// awaited on this worker; the guard forgets it when dropped.
pub(super) fn expect(
    ctx: &WorkerCtx,
    id: Arc<str>,
    path: String,
    action: Action,
) -> (oneshot::Receiver<Rendezvous>, WaitGuard) {
    let (tx, rx) = oneshot::channel();
    let waiter = Waiter {
        tx,
        expected: Expected { path, action },
    };
    ctx.state.waiting.borrow_mut().insert(id.clone(), waiter);
    (
        rx,
        WaitGuard {
            state: ctx.state.clone(),
            id,
        },
    )
}

/// Waits up to `timeout` for the rendezvous registered with [`expect`].
pub(super) async fn wait(
    rx: oneshot::Receiver<Rendezvous>,
    timeout: Duration,
) -> Option<Rendezvous> {
    monoio::time::timeout(timeout, rx)
        .await
        .ok()
        .and_then(Result::ok)
}
