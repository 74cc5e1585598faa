//! The front door of every WebSocket upgrade on `/$hc/…` with `listen` or `connect`: picks the
//! tracking id, runs the [admission](super::core::admission) rules and writes their refusal.

use std::net::SocketAddr;
use std::time::SystemTime;

use monoio::io::AsyncWriteRentExt;

use super::auth::check;
use super::core::admission::upgrade_tracking_id;
use super::core::{Door, Knock, Refusal, RefusalReason, Tracked};
use super::shared::WorkerCtx;
use crate::auth::verify::VerifiedToken;
use crate::io::stream::Stream;
use crate::logging::Escaped;
use crate::proto::ws::handshake::UpgradeRequest;

/// An upgrade that passed the front door.
pub(super) struct Admitted {
    /// The sender's or listener's `sb-hc-id` with the `_G{worker}` suffix, or a fresh id.
    pub tracking_id: String,
    /// The configured hybrid connection path it addresses.
    pub entity: String,
    pub request_path: String,
    pub query: String,
    /// `None` for an anonymous sender.
    pub token: Option<VerifiedToken>,
    pub now: SystemTime,
}

impl Admitted {
    /// Where a later refusal (no listener, timeout) is tracked.
    pub(super) fn tracked<'a>(&'a self, ctx: &'a WorkerCtx) -> Tracked<'a> {
        ctx.shared
            .admission
            .tracked(&self.tracking_id, &self.entity, self.now)
    }
}

/// Admits an upgrade through `door`, or writes the refusal to `stream` and returns `None`.
pub(super) async fn admit(
    ctx: &WorkerCtx,
    stream: &mut Stream,
    upgrade: &UpgradeRequest,
    door: Door,
    peer: SocketAddr,
) -> Option<Admitted> {
    let shared = &ctx.shared;
    let now = SystemTime::now();
    let request_path = upgrade.head.path().to_owned();
    let query = upgrade.head.query().unwrap_or("").to_owned();
    let tracking_id = upgrade_tracking_id(&query, ctx.worker)
        .unwrap_or_else(|| super::ids::tracking_id(ctx.worker));
    let knock = Knock {
        door,
        path: &request_path,
        query: &query,
        headers: &upgrade.head.headers,
        tracking_id: &tracking_id,
        now,
    };
    let admitted = shared.admission.admit(&knock, |c| {
        check(shared, c.token, c.entity, c.request_path, c.needed, now)
    });
    match admitted {
        Ok(admitted) => Some(Admitted {
            tracking_id,
            entity: admitted.entity,
            request_path,
            query,
            token: admitted.token,
            now,
        }),
        Err(refusal) => {
            let entity = shared.admission.resolve(door, &request_path).unwrap_or("");
            log_refusal(&refusal, peer, &request_path, entity, door);
            ctx.state.refused_with(&refusal);
            let _ = stream.write_all(refusal.handshake()).await;
            None
        }
    }
}

/// One log line per refused upgrade.
fn log_refusal(refusal: &Refusal, peer: SocketAddr, path: &str, entity: &str, door: Door) {
    let action = door.right();
    match refusal.reason {
        RefusalReason::EndpointNotFound => {
            tracing::info!(%peer, path = %Escaped(path), %action, "refused: no such hybrid connection");
        }
        RefusalReason::TokenInvalid | RefusalReason::Forbidden => {
            let reason = refusal.detail.unwrap_or(refusal.reason.as_str());
            tracing::info!(%peer, hybrid_connection = %entity, %action, reason, "refused: token");
        }
        _ => {
            tracing::info!(%peer, hybrid_connection = %entity, reason = %refusal.reason, "listen refused");
        }
    }
}
