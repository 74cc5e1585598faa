//! A bounded cache of accepted tokens, one per relay worker (protocol §3.4 checks, made cheap for
//! the repeated token of relayed HTTP requests).
//!
//! Every relayed HTTP request carries its token, usually the same one on thousands of requests.
//! [`TokenCache::verify`] gives exactly the answer of [`Verifier::verify`] but remembers, for a
//! token text and an entity, the [`Grant`] that parsing, Base64 and the HMAC established; a later
//! request with the same token for the same entity only runs [`Grant::admit`] (expiry against its
//! own time, audience path, rights).
//!
//! Sans-I/O: the time is a parameter.

use std::collections::HashMap;
use std::fmt;

use super::{Grant, Right, VerifiedToken, Verifier, VerifyError};

/// Accepted tokens of one worker, bounded. Not shared between threads.
///
/// Rules of the cache:
///
/// * The key is the exact token text plus the exact entity path (which rules apply depends on the
///   entity, so a grant is never reused for another one: that request is verified in full and
///   gets the same error as without the cache).
/// * Only tokens that were accepted are kept. A forged or otherwise refused token pays the full
///   price every time and never enters, so it cannot evict anything.
/// * At most `capacity` entries (default [`TokenCache::DEFAULT_CAPACITY`]); inserting into a full
///   cache clears it. Filling it takes that many distinct valid tokens, which only key holders can
///   mint; after a clear each live token costs one full verification again. This is simpler than
///   LRU bookkeeping on the hot path and bounds memory just as well.
/// * Tokens longer than [`TokenCache::MAX_TOKEN_LEN`] are verified but not kept (bounds memory).
/// * An entry found expired is removed.
/// * The grants belong to one verifier configuration: when the verifier passed in has another
///   stamp (another verifier, or rules, aliases or clock skew changed), the cache is cleared.
/// * Tokens are secrets: the cache's `Debug` shows only counts. Lookups use the standard keyed
///   (randomly seeded SipHash) hash map, so which stored token a guess is compared with is not
///   under a caller's control.
pub struct TokenCache {
    capacity: usize,
    /// The [`Verifier`] stamp the grants were made under.
    stamp: Option<u64>,
    /// Keyed by [`lookup_key`].
    grants: HashMap<String, Grant>,
    /// Reused buffer for the lookup key, so that a hit allocates nothing for the lookup.
    key: String,
    hits: u64,
    misses: u64,
}

impl TokenCache {
    /// Entries per worker unless told otherwise.
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// Longer tokens are verified in full every time and never kept.
    pub const MAX_TOKEN_LEN: usize = 4096;

    /// An empty cache holding at most [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries.
    pub fn new() -> TokenCache {
        TokenCache::with_capacity(TokenCache::DEFAULT_CAPACITY)
    }

    /// An empty cache holding at most `capacity` entries; a `capacity` of 0 keeps nothing.
    pub fn with_capacity(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            stamp: None,
            grants: HashMap::new(),
            key: String::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The number of tokens kept.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Checks answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Checks that ran the full verification (refused ones included).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.grants.clear();
    }

    /// [`Verifier::verify`] with the same arguments and the same result, answered from the cache
    /// when this token was accepted for this entity before.
    pub fn verify(
        &mut self,
        verifier: &Verifier,
        token: &str,
        entity_path: &str,
        request_path: &str,
        needed: Right,
        now_unix: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        if self.stamp != Some(verifier.stamp) {
            self.grants.clear();
            self.stamp = Some(verifier.stamp);
        }
        if token.is_empty() || token.len() > Self::MAX_TOKEN_LEN {
            self.misses += 1;
            return verifier.verify(token, entity_path, request_path, needed, now_unix);
        }
        lookup_key(&mut self.key, token, entity_path);
        if let Some(grant) = self.grants.get(self.key.as_str()) {
            self.hits += 1;
            let admitted = grant.admit(request_path, needed, now_unix);
            if let Err(VerifyError::Expired { .. }) = admitted {
                self.grants.remove(self.key.as_str());
            }
            return admitted;
        }
        self.misses += 1;
        let grant = verifier.establish(token, entity_path, now_unix)?;
        let admitted = grant.admit(request_path, needed, now_unix)?;
        if self.capacity > 0 {
            if self.grants.len() >= self.capacity {
                self.grants.clear();
            }
            self.grants.insert(self.key.clone(), grant);
        }
        Ok(admitted)
    }
}

impl Default for TokenCache {
    fn default() -> TokenCache {
        TokenCache::new()
    }
}

/// Counts only: the keys are tokens.
impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.grants.len())
            .field("capacity", &self.capacity)
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

/// Writes into `key` the unambiguous map key of (`token`, `entity_path`): the entity's length in
/// bytes, `:`, the entity, then the token.
fn lookup_key(key: &mut String, token: &str, entity_path: &str) {
    use std::fmt::Write as _;
    key.clear();
    // Writing into a String cannot fail.
    let _ = write!(key, "{}:", entity_path.len());
    key.push_str(entity_path);
    key.push_str(token);
}

#[cfg(test)]
mod tests;
