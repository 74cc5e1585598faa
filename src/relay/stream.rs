//! A sender's WebSocket connect (protocol §7.1, Appendix A "connect"): authenticate, pick a
//! listener, send it `accept` (§4.3), wait for its rendezvous (§5.1) or rejection (§5.2), then
//! join the two sockets (§5.3).

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::io::AsyncWriteRentExt;

use super::core::pairing::subprotocol;
use super::core::{Door, Refusal};
use super::shared::{lock, QueueError, WorkerCtx};
use super::{control, front, pump, rendezvous};
use crate::io::stream::Stream;
use crate::logging::Escaped;
use crate::proto::hc::headers::connect_headers;
use crate::proto::hc::messages::{Accept, RemoteEndpoint};
use crate::proto::hc::query::{strip_sb_hc_params, Action};
use crate::proto::ws::handshake::{write_switching_protocols, UpgradeRequest};
use crate::relay::registry::Work;

/// Serves one sender connect until its stream ends.
pub(super) async fn serve_sender(
    ctx: Rc<WorkerCtx>,
    mut stream: Stream,
    upgrade: UpgradeRequest,
    leftover: Vec<u8>,
    peer: SocketAddr,
) {
    let shared = ctx.shared.clone();
    let _work = shared.stopping.work();
    let Some(admitted) = front::admit(&ctx, &mut stream, &upgrade, Door::Connect, peer).await
    else {
        return;
    };
    let at = admitted.tracked(&ctx);
    let (id, entity, request_path, query) = (
        admitted.tracking_id.clone(),
        admitted.entity.clone(),
        admitted.request_path.clone(),
        admitted.query.clone(),
    );
    let picked = lock(&shared.registry).pick(&entity, Work::Stream, |n| fastrand::usize(..n));
    let handle = match picked {
        Ok((_, handle)) => handle,
        Err(e) => {
            let refusal = Refusal::no_listener_for_stream(&e, &at);
            tracing::info!(%peer, hybrid_connection = %entity, error = %e, reason = %refusal.reason, "connect refused");
            ctx.state.refused_with(&refusal);
            let _ = stream.write_all(refusal.handshake()).await;
            return;
        }
    };

    // The address's id is the secret; `accept.id` stays the sender's tracking id.
    let secret = ctx.state.secret_ids.borrow_mut().next(ctx.worker);
    let secret = match secret {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(%peer, error = %e, "connect refused: no rendezvous id");
            let refusal = Refusal::no_rendezvous_id(&e, Some(&at));
            let _ = stream.write_all(refusal.handshake()).await;
            return;
        }
    };
    let (waiting, _guard) =
        rendezvous::expect(&ctx, secret.clone(), request_path.clone(), Action::Accept);
    let mut address = format!("{}{}?", shared.rendezvous_base(ctx.worker), request_path);
    if let Some(app_query) = strip_sb_hc_params(&query) {
        address.push_str(&app_query);
        address.push('&');
    }
    address.push_str("sb-hc-action=accept&sb-hc-id=");
    address.push_str(&crate::auth::sas::encode_uri_component(&secret));
    let accept = Accept {
        address,
        id: id.clone(),
        connect_headers: connect_headers(&upgrade.head.headers),
        remote_endpoint: Some(RemoteEndpoint {
            address: peer.ip().to_string(),
            port: peer.port(),
        }),
    };
    // A full queue is waited out within the accept timeout (docs/relay.md "Limits").
    let accept_timeout = shared.config.accept_timeout;
    let queued = std::time::Instant::now();
    let unit = control::unit(&accept.to_json(), None);
    let refusal = match handle.send(unit, accept_timeout).await {
        Ok(()) => None,
        Err(QueueError::TimedOut | QueueError::Full) => Some(Refusal::accept_timeout(&at)),
        Err(QueueError::Closed) => Some(Refusal::stream_not_queued(&at)),
    };
    if let Some(refusal) = refusal {
        ctx.state.refused_with(&refusal);
        let _ = stream.write_all(refusal.handshake()).await;
        return;
    }
    let sent = std::time::Instant::now();
    let remaining = accept_timeout.saturating_sub(queued.elapsed());
    let Some(mut listener) = rendezvous::wait(waiting, remaining).await else {
        tracing::info!(%peer, hybrid_connection = %entity, id = %Escaped(&id), "no listener accepted in time");
        let refusal = Refusal::accept_timeout(&at);
        ctx.state.refused_with(&refusal);
        let _ = stream.write_all(refusal.handshake()).await;
        return;
    };
    ctx.state
        .metrics
        .borrow_mut()
        .rendezvous(&entity, sent.elapsed());
    if let Some((status, description)) = listener.rejection.take() {
        tracing::info!(%peer, hybrid_connection = %entity, id = %Escaped(&id), status, "listener rejected the connection");
        let ack = Refusal::rejection_delivered().handshake();
        let _ = listener.stream.write_all(ack).await;
        let refusal = Refusal::rejected(status, &description, &at);
        ctx.state.refused_with(&refusal);
        let _ = stream.write_all(refusal.handshake()).await;
        return;
    }
    let subprotocol = subprotocol(&listener.upgrade.subprotocols, &upgrade.subprotocols);
    let mut to_listener = Vec::new();
    let mut to_sender = Vec::new();
    let written = write_switching_protocols(
        &mut to_listener,
        &listener.upgrade.accept_key(),
        subprotocol,
    )
    .and_then(|()| write_switching_protocols(&mut to_sender, &upgrade.accept_key(), subprotocol));
    if written.is_err() {
        return;
    }
    if listener.stream.write_all(to_listener).await.0.is_err()
        || stream.write_all(to_sender).await.0.is_err()
    {
        return;
    }
    tracing::info!(%peer, hybrid_connection = %entity, id = %Escaped(&id), "stream joined");
    let _sender = SenderGauge::join(&ctx, &entity);
    let joined = pump::join(
        stream,
        &leftover,
        listener.stream,
        &listener.leftover,
        pump::Timeouts {
            write_stall: shared.config.write_stall_timeout,
            idle: shared.config.idle_timeout,
        },
        shared.stopping.close_remaining.fired(),
    )
    .await;
    tracing::info!(hybrid_connection = %entity, id = %Escaped(&id), sender_bytes = joined.a_to_b,
        listener_bytes = joined.b_to_a, write_stalled = joined.write_stalled, idle = joined.idle, "stream closed");
}

/// Counts a joined sender in `hycod_relay_senders` until the stream ends, however it ends.
struct SenderGauge<'a> {
    ctx: &'a WorkerCtx,
    entity: &'a str,
}

impl<'a> SenderGauge<'a> {
    fn join(ctx: &'a WorkerCtx, entity: &'a str) -> Self {
        ctx.state.metrics.borrow_mut().sender_joined(entity, true);
        Self { ctx, entity }
    }
}

impl Drop for SenderGauge<'_> {
    fn drop(&mut self) {
        self.ctx
            .state
            .metrics
            .borrow_mut()
            .sender_joined(self.entity, false);
    }
}
