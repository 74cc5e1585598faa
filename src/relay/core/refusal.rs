//! Every answer with which the relay itself refuses or fails a request (docs/relay.md "Error
//! answers"): its [`RefusalReason`] (a label for logs and metrics), HTTP status, Azure-style
//! `code` and text. The constructors here are the only place these triples are written; the
//! drivers render a [`Refusal`] as a handshake refusal (WebSocket upgrades) or an HTTP error
//! (relayed HTTP) with [`Refusal::handshake`] or [`Refusal::http`].
//!
//! Texts that name a hybrid connection carry the service's tracking suffix
//! ([`Tracked::describe`]); texts about the sender's own bytes (request-target, body framing) or
//! about one listener's misbehaviour on its socket do not, exactly as the relay answered before
//! this table existed.

use std::fmt;
use std::time::SystemTime;

use crate::auth::verify::VerifyError;
use crate::relay::registry::RegistryError;
use crate::relay::respond::{described, handshake_refusal, http_error, Tracking};

/// Why the relay refused or failed a request; one label per rule, stable for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The request-target has a dot segment, a `#` or a byte outside visible ASCII.
    BadRequestTarget,
    /// A `/$hc/` upgrade without a valid `sb-hc-action`.
    BadAction,
    /// The `Host` names neither the namespace nor an alias (or, for a rendezvous, not the
    /// rendezvous host), or is missing or repeated, on a relay given `--namespace`.
    UnknownHost,
    /// No configured hybrid connection matches the path.
    EndpointNotFound,
    /// The token is missing, malformed, signed with an unknown or wrong key, expired, or names
    /// another audience.
    TokenInvalid,
    /// The token is valid but its rule lacks the right.
    Forbidden,
    /// A listener asked to listen on a path below a hybrid connection.
    ListenBelowEntity,
    /// The hybrid connection already has its quota of listeners.
    QuotaExceeded,
    /// No listener is online for the hybrid connection.
    NoListener,
    /// The picked listener's control channel closed before the work could be queued on it.
    ListenerWentAway,
    /// The picked listener does not read its control channel (its queue is full).
    ListenerNotReading,
    /// The operating system's random generator failed: no rendezvous id.
    NoRendezvousId,
    /// No listener accepted a stream within the accept timeout.
    AcceptTimeout,
    /// The listener did not answer a relayed HTTP request within the deadline.
    ResponseTimeout,
    /// The listener's control channel closed before it answered.
    ListenerGone,
    /// The listener rejected the stream (its own status and description).
    Rejected,
    /// The listener rejected the stream with a status outside 400–599.
    InvalidRejection,
    /// A listener's rejection was delivered: its rendezvous is answered 410.
    RejectionDelivered,
    /// A rendezvous for an address that is unknown, expired or already used.
    RendezvousExpired,
    /// The request body's framing is broken.
    BadBody,
    /// The request body paused longer than the body idle timeout.
    BodyTimeout,
    /// The listener closed its rendezvous while the request body streamed to it.
    ListenerClosedDuringBody,
    /// The listener closed its rendezvous without a `response`.
    NoResponse,
    /// A `response` over Azure's limits: on the control channel 32 KiB of JSON or 64 KiB of
    /// body, on a rendezvous a control message over 64 KiB.
    ResponseTooLarge,
    /// The listener's response headers carry CR/LF or an invalid name.
    BadResponseHeaders,
}

impl RefusalReason {
    /// Every reason, for tables and tests.
    pub const ALL: [Self; 25] = [
        Self::BadRequestTarget,
        Self::BadAction,
        Self::UnknownHost,
        Self::EndpointNotFound,
        Self::TokenInvalid,
        Self::Forbidden,
        Self::ListenBelowEntity,
        Self::QuotaExceeded,
        Self::NoListener,
        Self::ListenerWentAway,
        Self::ListenerNotReading,
        Self::NoRendezvousId,
        Self::AcceptTimeout,
        Self::ResponseTimeout,
        Self::ListenerGone,
        Self::Rejected,
        Self::InvalidRejection,
        Self::RejectionDelivered,
        Self::RendezvousExpired,
        Self::BadBody,
        Self::BodyTimeout,
        Self::ListenerClosedDuringBody,
        Self::NoResponse,
        Self::ResponseTooLarge,
        Self::BadResponseHeaders,
    ];

    /// A stable snake_case label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequestTarget => "bad_request_target",
            Self::BadAction => "bad_action",
            Self::UnknownHost => "unknown_host",
            Self::EndpointNotFound => "endpoint_not_found",
            Self::TokenInvalid => "token_invalid",
            Self::Forbidden => "forbidden",
            Self::ListenBelowEntity => "listen_below_entity",
            Self::QuotaExceeded => "quota_exceeded",
            Self::NoListener => "no_listener",
            Self::ListenerWentAway => "listener_went_away",
            Self::ListenerNotReading => "listener_not_reading",
            Self::NoRendezvousId => "no_rendezvous_id",
            Self::AcceptTimeout => "accept_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::ListenerGone => "listener_gone",
            Self::Rejected => "rejected",
            Self::InvalidRejection => "invalid_rejection",
            Self::RejectionDelivered => "rejection_delivered",
            Self::RendezvousExpired => "rendezvous_expired",
            Self::BadBody => "bad_body",
            Self::BodyTimeout => "body_timeout",
            Self::ListenerClosedDuringBody => "listener_closed_during_body",
            Self::NoResponse => "no_response",
            Self::ResponseTooLarge => "response_too_large",
            Self::BadResponseHeaders => "bad_response_headers",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request was refused with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub status: u16,
    /// The JSON error `code`.
    pub code: &'static str,
    /// The description (reason phrase of a handshake refusal, `message` of the JSON body).
    pub text: String,
    /// The finer cause where there is one: the token check's label (`expired`,
    /// `invalid_signature`, …), for logs.
    pub detail: Option<&'static str>,
}

impl Refusal {
    fn new(
        reason: RefusalReason,
        status: u16,
        code: &'static str,
        text: impl Into<String>,
    ) -> Self {
        Self {
            reason,
            status,
            code,
            text: text.into(),
            detail: None,
        }
    }

    /// The refusal of a WebSocket upgrade: the text is also the reason phrase.
    pub fn handshake(&self) -> Vec<u8> {
        handshake_refusal(self.status, self.code, &self.text)
    }

    /// The refusal of a relayed HTTP request; the connection closes after it.
    pub fn http(&self) -> Vec<u8> {
        http_error(self.status, self.code, &self.text, false)
    }

    /// A request-target the relay does not route (`error` says why).
    pub fn bad_request_target(error: &impl fmt::Display) -> Self {
        Self::new(
            RefusalReason::BadRequestTarget,
            400,
            "BadRequest",
            error.to_string(),
        )
    }

    /// An upgrade whose `sb-hc-action` is missing or unknown (`error` says which).
    pub fn bad_action(error: &impl fmt::Display) -> Self {
        Self::new(
            RefusalReason::BadAction,
            400,
            "BadRequest",
            error.to_string(),
        )
    }

    /// A `Host` this relay does not serve (`description` says which).
    pub fn unknown_host(description: String) -> Self {
        Self::new(
            RefusalReason::UnknownHost,
            404,
            "EndpointNotFound",
            description,
        )
    }

    /// No hybrid connection at this path.
    pub fn endpoint_not_found(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::EndpointNotFound,
            404,
            "EndpointNotFound",
            at.describe("Endpoint does not exist."),
        )
    }

    /// The token was refused: 403 `Forbidden` for a missing right, else 401.
    pub fn token(error: &VerifyError, at: &Tracked<'_>) -> Self {
        let text = at.describe(&error.to_string());
        let refusal = match error.http_status() {
            403 => Self::new(RefusalReason::Forbidden, 403, "Forbidden", text),
            status => Self::new(
                RefusalReason::TokenInvalid,
                status,
                "TokenMissingOrInvalid",
                text,
            ),
        };
        Self {
            detail: Some(error.as_str()),
            ..refusal
        }
    }

    /// A listen on a path below the hybrid connection's own.
    pub fn listen_below_entity(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::ListenBelowEntity,
            404,
            "EndpointNotFound",
            at.describe("Endpoint does not exist."),
        )
    }

    /// A listener the registry did not take: over the quota (403) or unknown (404).
    pub fn listener_not_registered(error: &RegistryError, at: &Tracked<'_>) -> Self {
        let text = at.describe(&error.to_string());
        match error {
            RegistryError::QuotaExceeded { .. } => {
                Self::new(RefusalReason::QuotaExceeded, 403, "QuotaExceeded", text)
            }
            _ => Self::new(
                RefusalReason::EndpointNotFound,
                404,
                "EndpointNotFound",
                text,
            ),
        }
    }

    /// No listener could be picked for a sender's stream: 404 (the service's answer to a
    /// connect without a listener).
    pub fn no_listener_for_stream(error: &RegistryError, at: &Tracked<'_>) -> Self {
        let text = at.describe(&error.to_string());
        match error {
            RegistryError::NoListener => {
                Self::new(RefusalReason::NoListener, 404, "NoListener", text)
            }
            _ => Self::new(
                RefusalReason::EndpointNotFound,
                404,
                "EndpointNotFound",
                text,
            ),
        }
    }

    /// No listener could be picked for a relayed HTTP request: 502 when none is online.
    pub fn no_listener_for_request(error: &RegistryError, at: &Tracked<'_>) -> Self {
        match error {
            RegistryError::NoListener => Self::new(
                RefusalReason::NoListener,
                502,
                "NoListener",
                at.describe("There are no listeners connected for the endpoint."),
            ),
            _ => Self::new(
                RefusalReason::EndpointNotFound,
                404,
                "EndpointNotFound",
                at.describe(&error.to_string()),
            ),
        }
    }

    /// The `accept` could not be queued on the picked listener's channel: answered as if no
    /// listener were online (404).
    pub fn stream_not_queued(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::ListenerWentAway,
            404,
            "NoListener",
            at.describe("There are no listeners connected for the endpoint."),
        )
    }

    /// A relayed HTTP request's `request` could not be queued on the picked listener's channel.
    pub fn request_not_queued(full: bool) -> Self {
        if full {
            Self::new(
                RefusalReason::ListenerNotReading,
                502,
                "ListenerFailed",
                "The listener does not read its control channel.",
            )
        } else {
            Self::new(
                RefusalReason::ListenerWentAway,
                502,
                "NoListener",
                "The listener went away.",
            )
        }
    }

    /// No secret id for a rendezvous address (`error` says why); described for a stream,
    /// plain for a relayed HTTP request.
    pub fn no_rendezvous_id(error: &impl fmt::Display, at: Option<&Tracked<'_>>) -> Self {
        let text = error.to_string();
        let text = match at {
            Some(at) => at.describe(&text),
            None => text,
        };
        Self::new(RefusalReason::NoRendezvousId, 500, "InternalError", text)
    }

    /// No listener accepted the stream within the accept timeout.
    pub fn accept_timeout(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::AcceptTimeout,
            504,
            "GatewayTimeout",
            at.describe(
                "None of the connected listeners accepted the connection within the allowed timeout.",
            ),
        )
    }

    /// The listener did not answer a relayed HTTP request within the deadline.
    pub fn response_timeout(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::ResponseTimeout,
            504,
            "GatewayTimeout",
            at.describe("The request was routed to the listener but the listener did not respond in the required time."),
        )
    }

    /// The listener's control channel closed before it answered.
    pub fn listener_gone(at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::ListenerGone,
            502,
            "ListenerGone",
            at.describe("The listener disconnected before it responded."),
        )
    }

    /// The listener's rejection of a stream, passed on to the sender: its status and
    /// description verbatim when the status is an error (4xx, 5xx), else 502. Anything else
    /// would tell the sender its handshake went on (1xx: `101` is the upgrade itself) or
    /// succeeded (2xx), or redirect it (3xx), none of which a rejection means.
    pub fn rejected(status: u16, description: &str, at: &Tracked<'_>) -> Self {
        if (400..=599).contains(&status) {
            Self::new(RefusalReason::Rejected, status, "Rejected", description)
        } else {
            Self::new(
                RefusalReason::InvalidRejection,
                502,
                "ListenerFailed",
                at.describe("The listener rejected the connection with an invalid status."),
            )
        }
    }

    /// The answer to the rendezvous that carried a listener's rejection.
    pub fn rejection_delivered() -> Self {
        Self::new(
            RefusalReason::RejectionDelivered,
            410,
            "Gone",
            "The rejection was delivered to the sender.",
        )
    }

    /// A rendezvous nobody waits for.
    pub fn rendezvous_expired() -> Self {
        Self::new(
            RefusalReason::RendezvousExpired,
            403,
            "RendezvousExpired",
            "The rendezvous address is invalid, expired or already used.",
        )
    }

    /// A request body whose framing is broken (`error` says how), or whose kind cannot be told.
    pub fn bad_body(error: &impl fmt::Display) -> Self {
        Self::new(RefusalReason::BadBody, 400, "BadRequest", error.to_string())
    }

    /// A request body that paused longer than the body idle timeout.
    pub fn body_timeout() -> Self {
        Self::new(
            RefusalReason::BodyTimeout,
            408,
            "RequestTimeout",
            "The request body paused longer than the body idle timeout.",
        )
    }

    /// The listener closed its rendezvous while the request body streamed to it.
    pub fn listener_closed_during_body() -> Self {
        Self::new(
            RefusalReason::ListenerClosedDuringBody,
            502,
            "ListenerFailed",
            "The listener closed the rendezvous during the request body.",
        )
    }

    /// The listener closed its rendezvous without a `response`.
    pub fn no_response() -> Self {
        Self::new(
            RefusalReason::NoResponse,
            502,
            "ListenerFailed",
            "The listener closed the rendezvous without a response.",
        )
    }

    /// A control-channel `response` over Azure's limits (`text` names which).
    pub fn response_too_large(text: &str, at: &Tracked<'_>) -> Self {
        Self::new(
            RefusalReason::ResponseTooLarge,
            502,
            "ListenerFailed",
            at.describe(text),
        )
    }

    /// A `response` on a rendezvous over the 64 KiB control-message limit (the rendezvous is
    /// closed with 1009).
    pub fn response_over_message_limit() -> Self {
        Self::new(
            RefusalReason::ResponseTooLarge,
            502,
            "ListenerFailed",
            "The listener's response exceeds the 64 KB message limit.",
        )
    }

    /// The listener's response headers cannot go to the sender.
    pub fn bad_response_headers() -> Self {
        Self::new(
            RefusalReason::BadResponseHeaders,
            502,
            "ListenerFailed",
            "The listener's response headers are invalid.",
        )
    }
}

/// Where a refusal happened, for the service's tracking suffix: the tracking id, namespace,
/// the hybrid connection (or the path asked for), and the time.
#[derive(Debug, Clone, Copy)]
pub struct Tracked<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub path: &'a str,
    pub now: SystemTime,
}

impl Tracked<'_> {
    /// `{description} TrackingId:…, SystemTracker:sb://{namespace}/{path}, Timestamp:…`.
    pub fn describe(&self, description: &str) -> String {
        let tracking = Tracking {
            id: self.id,
            namespace: self.namespace,
            path: self.path,
        };
        described(description, &tracking, self.now)
    }
}
