//! The first steps every WebSocket upgrade on `/$hc/…` with `listen` or `connect` takes
//! (protocol §3.1, §4.1, §7.1): pick the tracking id, resolve the hybrid connection, check the
//! token for the right the action needs (none for a sender where anonymous senders are
//! allowed), and refuse with the real service's status and text.

use std::net::SocketAddr;
use std::time::SystemTime;

use monoio::io::AsyncWriteRentExt;

use super::auth::{check, error_code, sender_needs_token, token_of};
use super::metrics::Refusal;
use super::respond::{described, handshake_refusal, Tracking};
use super::shared::WorkerCtx;
use crate::auth::verify::{Right, VerifiedToken, VerifyError};
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

/// Admits a listener's control channel (a Listen token, always), with its verified token; or
/// writes the refusal to `stream` and returns `None`.
pub async fn admit_listener(
    ctx: &WorkerCtx,
    stream: &mut Stream,
    upgrade: &UpgradeRequest,
    peer: SocketAddr,
) -> Option<(Admitted, VerifiedToken)> {
    admit(
        ctx,
        stream,
        upgrade,
        Right::Listen,
        peer,
        |entity, path, now| {
            let token = token_of(
                &upgrade.head.headers,
                upgrade.head.query().unwrap_or(""),
                false,
            );
            check(&ctx.shared, &token, entity, path, Right::Listen, now)
        },
    )
    .await
}

/// Admits a sender's connect: a Send token, unless its hybrid connection takes anonymous
/// senders ([`sender_needs_token`]); or writes the refusal to `stream` and returns `None`.
pub async fn admit_sender(
    ctx: &WorkerCtx,
    stream: &mut Stream,
    upgrade: &UpgradeRequest,
    peer: SocketAddr,
) -> Option<Admitted> {
    let admitted = admit(
        ctx,
        stream,
        upgrade,
        Right::Send,
        peer,
        |entity, path, now| {
            if !sender_needs_token(&ctx.shared.config, entity) {
                return Ok(());
            }
            let token = token_of(
                &upgrade.head.headers,
                upgrade.head.query().unwrap_or(""),
                false,
            );
            check(&ctx.shared, &token, entity, path, Right::Send, now).map(drop)
        },
    )
    .await;
    admitted.map(|(admitted, ())| admitted)
}

/// Resolves the hybrid connection and runs `authorize(entity, request_path, now)` for `needed`;
/// writes the refusal (404 unknown hybrid connection, 401/403 token) to `stream` and returns
/// `None` when either fails.
async fn admit<T>(
    ctx: &WorkerCtx,
    stream: &mut Stream,
    upgrade: &UpgradeRequest,
    needed: Right,
    peer: SocketAddr,
    authorize: impl FnOnce(&str, &str, SystemTime) -> Result<T, VerifyError>,
) -> Option<(Admitted, T)> {
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
            ctx.state.refused(Refusal::UnknownHybridConnection);
            handshake_refusal(
                404,
                "EndpointNotFound",
                &described("Endpoint does not exist.", &tracking, now),
            )
        }
        Some(entity) => match authorize(entity, &request_path, now) {
            Ok(granted) => {
                let admitted = Admitted {
                    tracking_id: tracking_id.clone(),
                    entity: entity.clone(),
                    request_path,
                    query,
                    now,
                };
                return Some((admitted, granted));
            }
            Err(e) => {
                tracing::info!(%peer, hybrid_connection = %entity, action = %needed, reason = e.as_str(), "refused: token");
                ctx.state
                    .refused(Refusal::for_token_status(e.http_status()));
                let text = described(&e.to_string(), &tracking, now);
                handshake_refusal(e.http_status(), error_code(&e), &text)
            }
        },
    };
    let _ = stream.write_all(refusal).await;
    None
}
