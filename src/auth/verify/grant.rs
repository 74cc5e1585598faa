//! What verifying a token for one entity established, and the per-request checks that remain
//! (protocol §3.4 steps 4–6).
//!
//! A [`Grant`] is produced by [`Verifier::establish`](super::Verifier) once the token parsed, its
//! rule was found, its HMAC matched, it was unexpired and its audience host was this namespace.
//! None of that depends on the request, so [`TokenCache`](super::TokenCache) may keep the grant;
//! [`Grant::admit`] then checks, for each request, only the expiry against that request's time,
//! the audience path against the request path and the rights against the operation.

use super::audience;
use super::{Right, VerifiedToken, VerifyError};

/// An accepted signature and audience host for one token and one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    /// What [`Grant::admit`] hands out on success.
    pub(super) token: VerifiedToken,
    /// `se` plus the verifier's clock skew allowance: refused at or after this second.
    pub(super) refused_from: u64,
    /// The audience path, normalised by [`audience::normalize_path`].
    pub(super) audience_path: String,
    /// Whether the audience path covers the entity the grant was made for (then the request path
    /// need not be looked at).
    pub(super) covers_entity: bool,
}

impl Grant {
    /// The per-request rest of [`Verifier::verify`](super::Verifier::verify), in its order: the
    /// expiry (step 4) at `now_unix`, the audience path covering the entity or `request_path`
    /// (step 5), the rule granting `needed` (step 6).
    pub(super) fn admit(
        &self,
        request_path: &str,
        needed: Right,
        now_unix: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        if self.refused_from <= now_unix {
            return Err(VerifyError::Expired {
                expired_at: self.token.expires_at,
            });
        }
        if !self.covers_entity
            && !audience::covers(&self.audience_path, &audience::normalize_path(request_path))
        {
            return Err(VerifyError::WrongAudiencePath {
                path: self.audience_path.clone(),
            });
        }
        if !self.token.rights.grants(needed) {
            return Err(VerifyError::MissingRight { needed });
        }
        Ok(self.token.clone())
    }
}
