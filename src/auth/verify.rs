//! The relay-side SAS token verifier (protocol §3.4, error texts §3.4 and §8.1).
//!
//! [`Verifier::verify`] applies, in this order:
//!
//! 1. the token parses ([`parse_token`]);
//! 2. a rule named `skn` exists on the entity, an ancestor (on `/` boundaries) or the namespace;
//! 3. the HMAC over the raw `sr` + LF + `se` matches `sig` under that rule's key (constant-time;
//!    most specific level first, the first whose key matches wins);
//! 4. `se` is in the future (less an optional clock skew allowance);
//! 5. the audience (`sr` decoded once) names this namespace or an alias and a covering path;
//! 6. the rule grants the needed right (`Manage` implies `Listen` and `Send`).
//!
//! Failures 1–5 are HTTP 401, failure 6 is 403 (protocol §8.1). No error carries the token, the
//! signature or a key. [`TokenCache`] keeps accepted grants (steps 1–5 without the request path),
//! so a token repeated on many requests pays for parsing, Base64 and the HMAC once.

mod audience;
mod cache;
mod grant;
mod rights;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use crate::auth::sas::{parse_token, TokenError};

pub use cache::TokenCache;
use grant::Grant;
pub use rights::{Right, Rights, Rule, UnknownRight};

/// Azure's limit on shared access rules per level, namespace or entity (protocol §3.4).
pub const MAX_RULES_PER_LEVEL: usize = 12;

/// The longest key name an error message repeats; longer names are cut (protocol §3.2 limit).
const MAX_REPORTED_KEY_NAME: usize = 256;

/// Standard Base64 that also accepts a signature whose `=` padding was dropped.
const SIG_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Where a rule is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleLevel {
    /// On the namespace: valid for every entity.
    Namespace,
    /// On an entity (lower-cased path): valid for it and the entities below it.
    Entity(String),
}

impl fmt::Display for RuleLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleLevel::Namespace => f.write_str("the namespace"),
            RuleLevel::Entity(path) => write!(f, "entity {path:?}"),
        }
    }
}

/// Why a rule could not be added to a [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The rule name is empty.
    EmptyName,
    /// An entity rule was given an empty entity path.
    EmptyEntityPath,
    /// The level already has a rule of this name (names compare ASCII case-insensitively).
    DuplicateName { name: String, level: RuleLevel },
    /// The level already has [`MAX_RULES_PER_LEVEL`] rules.
    TooManyRules { max: usize, level: RuleLevel },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str("shared access rule name is empty"),
            Self::EmptyEntityPath => f.write_str("entity path of a shared access rule is empty"),
            Self::DuplicateName { name, level } => {
                write!(f, "{level} already has a shared access rule named {name:?}")
            }
            Self::TooManyRules { max, level } => {
                write!(
                    f,
                    "{level} already has the maximum of {max} shared access rules"
                )
            }
        }
    }
}

impl std::error::Error for RuleError {}

/// Why a token was refused. Display texts follow the real service where protocol §3.4 records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The request carried no token (the caller passes an empty string).
    MissingToken,
    /// The token is not a well-formed SAS token.
    Malformed(TokenError),
    /// No rule of this name is defined on the entity, its ancestors or the namespace.
    UnknownKeyName { key_name: String },
    /// `sig` is not Base64.
    SignatureNotBase64,
    /// The HMAC does not match.
    InvalidSignature,
    /// `se` (seconds since the Unix epoch) is not in the future.
    Expired { expired_at: u64 },
    /// The decoded `sr` is not an absolute URL with a host.
    AudienceNotUrl,
    /// The audience host is neither the namespace host nor an alias.
    WrongAudienceHost { host: String },
    /// The audience path covers neither the hybrid connection nor the request path.
    WrongAudiencePath { path: String },
    /// The token is valid but its rule lacks the right (HTTP 403).
    MissingRight { needed: Right },
}

impl VerifyError {
    /// The HTTP status the relay answers with: 403 for a missing right, 401 otherwise (§8.1).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MissingRight { .. } => 403,
            _ => 401,
        }
    }

    /// A stable snake_case label for metrics and structured logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed(_) => "malformed_token",
            Self::UnknownKeyName { .. } => "unknown_key_name",
            Self::SignatureNotBase64 => "signature_not_base64",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired { .. } => "expired",
            Self::AudienceNotUrl => "audience_not_url",
            Self::WrongAudienceHost { .. } => "wrong_audience_host",
            Self::WrongAudiencePath { .. } => "wrong_audience_path",
            Self::MissingRight { .. } => "missing_right",
        }
    }
}

const WRONG_AUDIENCE: &str =
    "InvalidAudience: The authorization header contains a token with a wrong audience";

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str(
                "TokenMissingOrInvalid: no ServiceBusAuthorization header and no sb-hc-token query parameter",
            ),
            Self::Malformed(e) => write!(f, "MalformedToken: the SAS token is malformed: {e}"),
            Self::UnknownKeyName { key_name } => write!(
                f,
                "InvalidSignature: The token has an invalid signature (no shared access rule named {key_name:?} applies to this entity)"
            ),
            Self::SignatureNotBase64 => f.write_str(
                "InvalidSignature: The token has an invalid signature (sig is not Base64)",
            ),
            Self::InvalidSignature => f.write_str("InvalidSignature: The token has an invalid signature"),
            Self::Expired { expired_at } => write!(
                f,
                "ExpiredToken: The token is expired. Expiration time: {expired_at} (seconds since the Unix epoch)"
            ),
            Self::AudienceNotUrl => {
                write!(f, "{WRONG_AUDIENCE} (sr is not an absolute URL with a host)")
            }
            Self::WrongAudienceHost { host } => {
                write!(f, "{WRONG_AUDIENCE} (host {host:?} is not this namespace)")
            }
            Self::WrongAudiencePath { path } => write!(
                f,
                "{WRONG_AUDIENCE} (path {path:?} covers neither the hybrid connection nor the request path)"
            ),
            Self::MissingRight { needed } => write!(
                f,
                "Unauthorized access. '{needed}' claim(s) are required to perform this operation."
            ),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// What an accepted token established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The rule that signed the token (its configured spelling).
    pub key_name: String,
    /// Where that rule is defined.
    pub level: RuleLevel,
    /// The rights of that rule.
    pub rights: Rights,
    /// The token's `se`: the relay closes the channel with 1008 after it (protocol §8.2).
    pub expires_at: u64,
}

/// The rules and names of one namespace, checked against tokens (protocol §3.4).
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Lower-cased.
    namespace_host: String,
    /// Lower-cased, IPv6 brackets removed.
    host_aliases: Vec<String>,
    namespace_rules: Vec<Rule>,
    /// Keyed by lower-cased entity path.
    entity_rules: HashMap<String, Vec<Rule>>,
    clock_skew_secs: u64,
    /// Identifies this exact configuration: renewed by every change (a clone keeps it while it
    /// is identical), so a [`TokenCache`] notices that its grants were made under other rules.
    stamp: u64,
}

/// A process-wide unique [`Verifier::stamp`].
fn fresh_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Verifier {
    /// A verifier for `namespace_host` with no rules, no aliases and no clock skew allowance.
    pub fn new(namespace_host: &str) -> Verifier {
        Verifier {
            namespace_host: audience::normalize_host(namespace_host),
            host_aliases: Vec::new(),
            namespace_rules: Vec::new(),
            entity_rules: HashMap::new(),
            clock_skew_secs: 0,
            stamp: fresh_stamp(),
        }
    }

    /// Also accepts tokens whose audience host is `alias` (e.g. `127.0.0.1`, `localhost`).
    pub fn add_host_alias(&mut self, alias: &str) {
        let alias = audience::normalize_host(alias);
        if !self.host_aliases.contains(&alias) {
            self.host_aliases.push(alias);
            self.stamp = fresh_stamp();
        }
    }

    /// Accepts tokens up to `secs` seconds after their `se`.
    pub fn set_clock_skew_secs(&mut self, secs: u64) {
        self.clock_skew_secs = secs;
        self.stamp = fresh_stamp();
    }

    /// Adds a rule valid for every entity.
    pub fn add_namespace_rule(&mut self, rule: Rule) -> Result<(), RuleError> {
        self.stamp = fresh_stamp();
        push_rule(&mut self.namespace_rules, rule, RuleLevel::Namespace)
    }

    /// Adds a rule valid for `entity_path` and the entities below it.
    pub fn add_entity_rule(&mut self, entity_path: &str, rule: Rule) -> Result<(), RuleError> {
        let key = entity_key(entity_path);
        if key.is_empty() {
            return Err(RuleError::EmptyEntityPath);
        }
        let level = RuleLevel::Entity(key.clone());
        self.stamp = fresh_stamp();
        push_rule(self.entity_rules.entry(key).or_default(), rule, level)
    }

    /// Checks `token` for an operation needing `needed` on the hybrid connection `entity_path`.
    ///
    /// `token` is the token text (already [`decode_query_token`](crate::auth::sas::decode_query_token)d
    /// if it came from the query); pass `""` when the request carried none. `request_path` is the
    /// path of the request target as received (`/$hc/hyco/suffix`, `/hyco/x?q`; the query and a
    /// leading `$hc` segment are ignored). `now_unix` is seconds since the Unix epoch.
    pub fn verify(
        &self,
        token: &str,
        entity_path: &str,
        request_path: &str,
        needed: Right,
        now_unix: u64,
    ) -> Result<VerifiedToken, VerifyError> {
        self.establish(token, entity_path, now_unix)?
            .admit(request_path, needed, now_unix)
    }

    /// Steps 1–5 of [`verify`](Self::verify) except the request-path half of step 5: everything
    /// that depends only on `token`, `entity_path` and this configuration. Step 4 (expiry) runs
    /// here too, in its place, so that errors come in the documented order; [`Grant::admit`]
    /// repeats it against the time of each later request.
    fn establish(
        &self,
        token: &str,
        entity_path: &str,
        now_unix: u64,
    ) -> Result<Grant, VerifyError> {
        if token.is_empty() {
            return Err(VerifyError::MissingToken);
        }
        let parsed = parse_token(token).map_err(VerifyError::Malformed)?;

        let candidates = self.rules_named(parsed.key_name(), entity_path);
        if candidates.is_empty() {
            return Err(VerifyError::UnknownKeyName {
                key_name: parsed
                    .key_name()
                    .chars()
                    .take(MAX_REPORTED_KEY_NAME)
                    .collect(),
            });
        }
        let tag = SIG_BASE64
            .decode(parsed.signature().expose())
            .map_err(|_| VerifyError::SignatureNotBase64)?;
        let message = parsed.string_to_sign();
        let (level, rule) = candidates
            .into_iter()
            .find(|(_, rule)| rule.signed(message.as_bytes(), &tag))
            .ok_or(VerifyError::InvalidSignature)?;

        let refused_from = parsed.expiry().saturating_add(self.clock_skew_secs);
        if refused_from <= now_unix {
            return Err(VerifyError::Expired {
                expired_at: parsed.expiry(),
            });
        }

        let audience =
            audience::parse_audience(parsed.resource()).ok_or(VerifyError::AudienceNotUrl)?;
        if audience.host != self.namespace_host && !self.host_aliases.contains(&audience.host) {
            return Err(VerifyError::WrongAudienceHost {
                host: audience.host,
            });
        }
        let covers_entity =
            audience::covers(&audience.path, &audience::normalize_path(entity_path));

        Ok(Grant {
            token: VerifiedToken {
                key_name: rule.name().to_owned(),
                level,
                rights: rule.rights(),
                expires_at: parsed.expiry(),
            },
            refused_from,
            audience_path: audience.path,
            covers_entity,
        })
    }

    /// The rules named `name` that apply to `entity_path`, most specific level first: the entity,
    /// its ancestors on `/` boundaries, then the namespace.
    fn rules_named(&self, name: &str, entity_path: &str) -> Vec<(RuleLevel, &Rule)> {
        let mut found = Vec::new();
        let key = entity_key(entity_path);
        let mut level: &str = &key;
        while !level.is_empty() {
            if let Some(rule) = self.entity_rules.get(level).and_then(|r| find(r, name)) {
                found.push((RuleLevel::Entity(level.to_owned()), rule));
            }
            level = level.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
        if let Some(rule) = find(&self.namespace_rules, name) {
            found.push((RuleLevel::Namespace, rule));
        }
        found
    }
}

/// The map key of an entity: lower-cased, surrounding `/`s removed.
fn entity_key(entity_path: &str) -> String {
    entity_path.trim_matches('/').to_ascii_lowercase()
}

fn find<'r>(rules: &'r [Rule], name: &str) -> Option<&'r Rule> {
    rules.iter().find(|r| r.name().eq_ignore_ascii_case(name))
}

fn push_rule(rules: &mut Vec<Rule>, rule: Rule, level: RuleLevel) -> Result<(), RuleError> {
    if rule.name().is_empty() {
        return Err(RuleError::EmptyName);
    }
    if find(rules, rule.name()).is_some() {
        return Err(RuleError::DuplicateName {
            name: rule.name().to_owned(),
            level,
        });
    }
    if rules.len() >= MAX_RULES_PER_LEVEL {
        return Err(RuleError::TooManyRules {
            max: MAX_RULES_PER_LEVEL,
            level,
        });
    }
    rules.push(rule);
    Ok(())
}

#[cfg(test)]
mod tests;
