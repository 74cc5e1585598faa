//! Token checks against the relay's keys (protocol §3.4), for the
//! [admission](super::core::admission) rules, which say where the token is taken from.

use std::time::SystemTime;

use crate::auth::verify::{Right, VerifiedToken, VerifyError};
use crate::relay::shared::{Shared, WorkerCtx};

/// Seconds since the Unix epoch.
pub(super) fn unix_now(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies `token` for `needed` on `entity`, as seen from `request_path`.
pub(super) fn check(
    shared: &Shared,
    token: &str,
    entity: &str,
    request_path: &str,
    needed: Right,
    now: SystemTime,
) -> Result<VerifiedToken, VerifyError> {
    shared
        .verifier
        .verify(token, entity, request_path, needed, unix_now(now))
}

/// [`check`] through this worker's cache of accepted tokens: same result, but a token this
/// worker accepted before for `entity` skips parsing, Base64 and the HMAC. For relayed HTTP
/// requests, which repeat one token on many requests.
pub(super) fn check_cached(
    ctx: &WorkerCtx,
    token: &str,
    entity: &str,
    request_path: &str,
    needed: Right,
    now: SystemTime,
) -> Result<VerifiedToken, VerifyError> {
    ctx.state.token_cache.borrow_mut().verify(
        &ctx.shared.verifier,
        token,
        entity,
        request_path,
        needed,
        unix_now(now),
    )
}
