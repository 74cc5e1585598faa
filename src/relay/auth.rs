//! Token checks on the relay's front door (protocol §3.1, §3.4): who needs a token, where it is
//! taken from and how a refusal is answered.

use std::time::SystemTime;

use crate::auth::sas::decode_query_token;
use crate::auth::verify::{Right, VerifiedToken, VerifyError};
use crate::proto::hc::query::get_query_param;
use crate::proto::http1::Headers;
use crate::relay::config::RelayConfig;
use crate::relay::shared::{Shared, WorkerCtx};

/// Whether a sender on `entity` (a configured hybrid connection's path) must present a token
/// with the Send right: unless the hybrid connection is configured with
/// `requires_client_authorization = false` (protocol §7.1, §7.2). Such a sender's token, if it
/// brings one, is not read: the relay does not authenticate it, end-to-end authorisation is the
/// listener's business. Listeners always need a Listen token.
pub fn sender_needs_token(config: &RelayConfig, entity: &str) -> bool {
    !config
        .anonymous_senders
        .iter()
        .any(|path| path.eq_ignore_ascii_case(entity))
}

/// Seconds since the Unix epoch.
pub fn unix_now(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The token of a request: the `ServiceBusAuthorization` header, else the `sb-hc-token` query
/// parameter (decoded once), else — for relayed HTTP only — `Authorization` (protocol §3.1).
pub fn token_of(headers: &Headers, query: &str, allow_authorization: bool) -> String {
    if let Some(v) = headers.get("servicebusauthorization") {
        return String::from_utf8_lossy(v).into_owned();
    }
    if let Some(v) = get_query_param(query, "sb-hc-token") {
        return decode_query_token(&v).map_or_else(|_| v.clone().into_owned(), |t| t.into_owned());
    }
    if allow_authorization {
        if let Some(v) = headers.get("authorization") {
            return String::from_utf8_lossy(v).into_owned();
        }
    }
    String::new()
}

/// Verifies `token` for `needed` on `entity`, as seen from `request_path`.
pub fn check(
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
pub fn check_cached(
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

/// The Azure-style error code for a refused token (protocol §3.4, §7.2).
pub fn error_code(e: &VerifyError) -> &'static str {
    if e.http_status() == 403 {
        "Forbidden"
    } else {
        "TokenMissingOrInvalid"
    }
}
