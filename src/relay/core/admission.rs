//! Admission: whether a request the relay reads may go on, and to which hybrid connection
//! (protocol §3.1, §4.1, §6, §7.1). The same rules for a listener's `listen`, a sender's
//! `connect` and a relayed HTTP request, which differ only in the right they need, where the
//! token may come from, and how their path names the hybrid connection ([`Door`]).
//!
//! The checks run in this order, the first failing one giving the [`Refusal`]:
//!
//! 1. the request-target ([`check_target`], 400);
//! 2. the hybrid connection: the longest configured path that is a segment prefix of the request
//!    path, case-insensitively (404 `EndpointNotFound`);
//! 3. the token, from `ServiceBusAuthorization`, else `sb-hc-token`, else (relayed HTTP only)
//!    `Authorization` — verified by the caller's function, which holds the keys (401/403). A
//!    sender (`connect`, relayed HTTP) on a hybrid connection configured with
//!    `requires_client_authorization = false` needs none (protocol §7.1, §7.2): its token, if it
//!    brings one, is not read, and its `Authorization` goes to the listener. Listeners always
//!    need a Listen token;
//! 4. for `listen` only: the path is the hybrid connection's own, not one below it (404).
//!
//! Nothing here reads a socket or a clock: the time comes in with the request.

use std::time::SystemTime;

use super::refusal::{Refusal, Tracked};
use crate::auth::sas::decode_query_token;
use crate::auth::verify::{Right, VerifiedToken, VerifyError};
use crate::proto::hc::headers::AuthorizationHeader;
use crate::proto::hc::path::match_entity;
use crate::proto::hc::query::get_query_param;
use crate::proto::hc::request_target::check_request_target;
use crate::proto::http1::Headers;

/// How a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A relayed HTTP request: `/{path}[/suffix]`, needs Send.
    Http,
    /// A listener's control channel: `/$hc/{path}?sb-hc-action=listen`, needs Listen.
    Listen,
    /// A sender's stream: `/$hc/{path}[/suffix]?sb-hc-action=connect`, needs Send.
    Connect,
}

impl Door {
    /// The right the token must grant.
    pub fn right(self) -> Right {
        match self {
            Self::Listen => Right::Listen,
            Self::Http | Self::Connect => Right::Send,
        }
    }

    /// The part of a request path that names a hybrid connection, with its leading `/`.
    fn entity_part(self, request_path: &str) -> Option<&str> {
        match self {
            Self::Http => request_path.starts_with('/').then_some(request_path),
            Self::Listen | Self::Connect => request_path
                .starts_with("/$hc/")
                .then(|| &request_path["/$hc".len()..]),
        }
    }
}

/// What [`Admission::admit`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Knock<'a> {
    pub door: Door,
    /// The request path (no query).
    pub path: &'a str,
    /// The query, empty when there is none.
    pub query: &'a str,
    pub headers: &'a Headers,
    /// The id error texts carry (see [`upgrade_tracking_id`]).
    pub tracking_id: &'a str,
    pub now: SystemTime,
}

/// The token a request presents and what it must grant, for the caller's verifier.
#[derive(Debug, Clone, Copy)]
pub struct TokenCheck<'a> {
    pub token: &'a str,
    pub entity: &'a str,
    pub request_path: &'a str,
    pub needed: Right,
}

/// A request that passed admission.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The configured hybrid connection path it addresses.
    pub entity: String,
    /// The verified token; `None` for an anonymous sender.
    pub token: Option<VerifiedToken>,
    /// Whether the token came from `Authorization`, which is then not forwarded (protocol §2.5).
    pub authorization: AuthorizationHeader,
}

/// The admission rules of one relay: its namespace and configured hybrid connections.
#[derive(Debug, Clone)]
pub struct Admission {
    namespace: String,
    entities: Vec<String>,
    /// The hybrid connections whose senders need no token.
    anonymous_senders: Vec<String>,
}

impl Admission {
    /// Admission to `entities` (the configured spellings) of `namespace`, whose senders need a
    /// token except on `anonymous_senders`.
    pub fn new(
        namespace: &str,
        entities: impl IntoIterator<Item = String>,
        anonymous_senders: &[String],
    ) -> Self {
        Self {
            namespace: namespace.to_owned(),
            entities: entities.into_iter().collect(),
            anonymous_senders: anonymous_senders.to_vec(),
        }
    }

    /// Whether a sender on `entity` must present a token with the Send right.
    pub fn sender_needs_token(&self, entity: &str) -> bool {
        !self
            .anonymous_senders
            .iter()
            .any(|path| path.eq_ignore_ascii_case(entity))
    }

    /// The namespace host name, for error texts and `Via`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The configured hybrid connection a request path through `door` addresses.
    pub fn resolve(&self, door: Door, request_path: &str) -> Option<&str> {
        let path = door.entity_part(request_path)?;
        match_entity(path, &self.entities).map(|m| self.entities[m.index].as_str())
    }

    /// Where an error about `path` (a hybrid connection, or what the request asked for) is
    /// tracked.
    pub fn tracked<'a>(&'a self, id: &'a str, path: &'a str, now: SystemTime) -> Tracked<'a> {
        Tracked {
            id,
            namespace: &self.namespace,
            path,
            now,
        }
    }

    /// Admits `knock` or says why not; `verify` checks a token against the keys.
    pub fn admit(
        &self,
        knock: &Knock<'_>,
        verify: impl FnOnce(&TokenCheck<'_>) -> Result<VerifiedToken, VerifyError>,
    ) -> Result<Admitted, Refusal> {
        let door = knock.door;
        let Some(entity) = self.resolve(door, knock.path) else {
            let asked = match door {
                Door::Http => knock.path.trim_start_matches('/'),
                Door::Listen | Door::Connect => knock.path.trim_start_matches("/$hc/"),
            };
            let at = self.tracked(knock.tracking_id, asked, knock.now);
            return Err(Refusal::endpoint_not_found(&at));
        };
        if door != Door::Listen && !self.sender_needs_token(entity) {
            return Ok(Admitted {
                entity: entity.to_owned(),
                token: None,
                authorization: AuthorizationHeader::Forward,
            });
        }
        let at = self.tracked(knock.tracking_id, entity, knock.now);
        let (token, authorization) = token_of(knock.headers, knock.query, door == Door::Http);
        let check = TokenCheck {
            token: &token,
            entity,
            request_path: knock.path,
            needed: door.right(),
        };
        let token = verify(&check).map_err(|e| Refusal::token(&e, &at))?;
        if door == Door::Listen && !is_own_path(knock.path, entity) {
            return Err(Refusal::listen_below_entity(&at));
        }
        Ok(Admitted {
            entity: entity.to_owned(),
            token: Some(token),
            authorization,
        })
    }
}

/// Refuses a request-target the relay does not route: a dot segment, a `#`, a raw non-ASCII
/// byte (400 `BadRequest`).
pub fn check_target(target: &str) -> Result<(), Refusal> {
    check_request_target(target).map_err(|e| Refusal::bad_request_target(&e))
}

/// The tracking id of an upgrade that names its own `sb-hc-id`: that id with the `_G{worker}`
/// role suffix (protocol §7.3); `None` when it names none (the caller makes a fresh one).
pub fn upgrade_tracking_id(query: &str, worker: usize) -> Option<String> {
    get_query_param(query, "sb-hc-id").map(|id| format!("{id}_G{worker}"))
}

/// The token of a request: the `ServiceBusAuthorization` header, else the `sb-hc-token` query
/// parameter (decoded once), else — when `allow_authorization` — `Authorization` (protocol
/// §3.1); empty when there is none. Also whether it came from `Authorization`.
pub fn token_of(
    headers: &Headers,
    query: &str,
    allow_authorization: bool,
) -> (String, AuthorizationHeader) {
    if let Some(v) = headers.get("servicebusauthorization") {
        return (lossy_text(v), AuthorizationHeader::Forward);
    }
    if let Some(v) = get_query_param(query, "sb-hc-token") {
        let token =
            decode_query_token(&v).map_or_else(|_| v.clone().into_owned(), |t| t.into_owned());
        return (token, AuthorizationHeader::Forward);
    }
    if allow_authorization {
        if let Some(v) = headers.get("authorization") {
            return (lossy_text(v), AuthorizationHeader::Strip);
        }
    }
    (String::new(), AuthorizationHeader::Forward)
}

/// `String::from_utf8_lossy(value)`, through the word-at-a-time UTF-8 check when the value is
/// valid (a token always is).
fn lossy_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}

/// Whether `request_path` (`/$hc/…`) is `entity`'s own path, not one below it.
fn is_own_path(request_path: &str, entity: &str) -> bool {
    request_path
        .strip_prefix("/$hc")
        .and_then(|rest| match_entity(rest, &[entity]))
        .is_some_and(|m| m.suffix.is_empty())
}
