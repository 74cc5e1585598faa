//! The first steps every WebSocket upgrade on `/$hc/…` with `listen` or `connect` takes
//! (protocol §3.1, §4.1, §7.1): pick the tracking id, resolve the hybrid connection, check the
//! token for the right the action needs, and refuse with the real service's status and text.

use std::net::SocketAddr;
use std::time::SystemTime;

use monoio::io::AsyncWriteRentExt;

use super::auth::{check, error_code, token_of};
use super::respond::{described, handshake_refusal, Tracking};
use super::shared::WorkerCtx;
use crate::auth::verify::{Right, VerifiedToken};
use crate::io::stream::Stream;
use crate::logging::Escaped;
use crate::proto::hc::query::get_query_param;
use crate::proto::ws::handshake::UpgradeRequest;

/// An upgrade that passed the front door.
pub struct Admitted {
    /// The sender's or listener's `sb-hc-id` with the `_G{worker}` suffix, or a fresh id.
    pub tracking_id: String,
    /// The configured hybrid connection path it addresses.
    pub entity: String,
    pub request_path: String,
    pub query: String,
    pub token: VerifiedToken,
    pub now: SystemTime,
}

impl Admitted {
    /// A refusal in the service's shape for a later step (quota, no listener, timeout).
    pub fn refusal(&self, ctx: &WorkerCtx, status: u16, code: &str, text: &str) -> Vec<u8> {
        let tracking = Tracking {
            id: &self.tracking_id,
            namespace: &ctx.shared.config.namespace,
            path: &self.entity,
        };
        handshake_refusal(status, code, &described(text, &tracking, self.now))
    }
}

/// Admits an upgrade needing `needed`, or writes the refusal (404 unknown hybrid connection,
/// 401/403 token) to `stream` and returns `None`.
pub async fn admit(
    ctx: &WorkerCtx,
    stream: &mut Stream,
    upgrade: &UpgradeRequest,
    needed: Right,
    peer: SocketAddr,
) -> Option<Admitted> {
    let shared = &ctx.shared;
    let now = SystemTime::now();
    let request_path = upgrade.head.path().to_owned();
    let query = upgrade.head.query().unwrap_or("").to_owned();
    let tracking_id = get_query_param(&query, "sb-hc-id")
        .map(|id| format!("{id}_G{}", ctx.worker))
        .unwrap_or_else(|| super::ids::tracking_id(ctx.worker));
    let entity = super::resolve_entity(shared, &request_path);
    let tracking_path = entity
        .clone()
        .unwrap_or_else(|| request_path.trim_start_matches("/$hc/").to_owned());
    let tracking = Tracking {
        id: &tracking_id,
        namespace: &shared.config.namespace,
        path: &tracking_path,
    };
    let refusal = match &entity {
        None => {
            tracing::info!(%peer, path = %Escaped(&request_path), action = %needed, "refused: no such hybrid connection");
            Some(handshake_refusal(
                404,
                "EndpointNotFound",
                &described("Endpoint does not exist.", &tracking, now),
            ))
        }
        Some(entity) => {
            let token = token_of(&upgrade.head.headers, &query, false);
            match check(shared, &token, entity, &request_path, needed, now) {
                Ok(token) => {
                    return Some(Admitted {
                        tracking_id: tracking_id.clone(),
                        entity: entity.clone(),
                        request_path,
                        query,
                        token,
                        now,
                    })
                }
                Err(e) => {
                    tracing::info!(%peer, hybrid_connection = %entity, action = %needed, reason = e.as_str(), "refused: token");
                    let text = described(&e.to_string(), &tracking, now);
                    Some(handshake_refusal(e.http_status(), error_code(&e), &text))
                }
            }
        }
    };
    if let Some(out) = refusal {
        let _ = stream.write_all(out).await;
    }
    None
}
