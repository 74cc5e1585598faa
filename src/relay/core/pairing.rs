//! Pairing: which listener gets a sender's stream or request, which way the request travels,
//! and which connection may answer it (protocol §4.3, §5, §6, §9; docs/relay.md).
//!
//! * **Picking.** A stream or a request that no held rendezvous carries goes to one of the
//!   hybrid connection's online listeners picked uniformly at random
//!   ([`Registry::pick`](crate::relay::registry::Registry::pick) with the relay's random
//!   chooser; protocol §9 "random order, best-effort fair"). Nothing is sticky: two requests of
//!   one sender may go to two listeners.
//! * **Held rendezvous.** A request rendezvous the relay opened for a sender, after a complete
//!   response on a keep-alive connection, carries that sender's next request if it is for the
//!   same hybrid connection and the listener has sent nothing since but a ping or hyco-https's
//!   empty binary message ([`held_verdict`]); otherwise it is given up and a listener is picked.
//! * **Transport.** A request without a body or with a `Content-Length` up to the control
//!   channel's body limit, whose `request` JSON is within the JSON limit, goes on the control
//!   channel; anything else through a rendezvous ([`request_transport`], protocol §6.1).
//! * **Answers.** Only the listener a request was routed to may answer it on its control channel
//!   ([`PendingRequests`](super::pending::PendingRequests)); a rendezvous matches only the
//!   secret id, path (percent-decoded) and action the relay handed out ([`rendezvous_matches`]).

use crate::proto::hc::path::same_decoded_path;
use crate::proto::hc::query::{get_query_param, Action};
use crate::proto::http1::BodyKind;

/// Which way a relayed HTTP request travels to its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `request` and a body of this many bytes on the control channel.
    ControlChannel { body_len: usize },
    /// A `request` notice on the control channel; the listener opens a rendezvous, where the
    /// request and its body stream.
    Rendezvous,
}

/// The control channel's limits for a relayed request (protocol §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlChannelLimits {
    /// The largest body that travels on the control channel.
    pub body: usize,
    /// The largest `request` JSON that travels on the control channel.
    pub json: usize,
}

/// How a request with body `kind` and `request` JSON of `json_len` bytes travels.
pub fn request_transport(
    kind: BodyKind,
    json_len: usize,
    limits: ControlChannelLimits,
) -> Transport {
    let body_len = match kind {
        BodyKind::Empty => Some(0),
        BodyKind::ContentLength(n) => usize::try_from(n).ok().filter(|n| *n <= limits.body),
        BodyKind::Chunked | BodyKind::CloseDelimited => None,
    };
    match body_len {
        Some(body_len) if json_len <= limits.json => Transport::ControlChannel { body_len },
        _ => Transport::Rendezvous,
    }
}

/// What the listener sent on a held rendezvous since its last response, as far as the
/// watcher has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldSeen {
    /// Nothing yet.
    Nothing,
    /// A ping (answered with a pong before the rendezvous is used).
    Ping,
    /// An empty, final binary message: hyco-https sends one even after `"body": false`
    /// (protocol §6.2).
    EmptyBinary,
    /// Anything else: data, a close, an error, or the watcher is gone.
    Other,
}

/// Whether a held rendezvous of hybrid connection `held_entity` may carry the next request,
/// for `entity`, given what its listener sent since the last response.
pub fn held_verdict(held_entity: &str, entity: &str, seen: HeldSeen) -> bool {
    held_entity.eq_ignore_ascii_case(entity) && seen != HeldSeen::Other
}

/// Whether a rendezvous answered on a keep-alive connection may be held for the sender's next
/// request: only one the relay opened (a rendezvous the listener opened to answer is closed
/// after the answer: hyco-https never reads one, protocol §10.3), with a complete response.
pub fn holdable(relay_opened: bool, complete: bool, keep_alive: bool) -> bool {
    relay_opened && complete && keep_alive
}

/// What the relay expects at a rendezvous address it handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The path (`/$hc/…`) as handed out.
    pub path: String,
    pub action: Action,
}

/// Whether a rendezvous arriving on `path` with `action` is the one `expected` (its secret id
/// already matched): same action, same path once percent-decoded.
pub fn rendezvous_matches(expected: &Expected, path: &str, action: Action) -> bool {
    expected.action == action && same_decoded_path(&expected.path, path)
}

/// A listener's rejection carried on its rendezvous query (protocol §5.2): the status (a number
/// outside 100–999 or none at all counts as 400) and the description; `None` when it accepts.
pub fn rejection_of(query: &str) -> Option<(u16, String)> {
    let code = get_query_param(query, "sb-hc-statusCode")?;
    let status = code
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(400);
    let description = get_query_param(query, "sb-hc-statusDescription")
        .unwrap_or_default()
        .into_owned();
    Some((status, description))
}

/// The subprotocol of a joined stream: the listener's first, if the sender offered it
/// (protocol §5.1, §10.6 item 4); none otherwise.
pub fn subprotocol<'a>(listener: &'a [String], sender: &[String]) -> Option<&'a str> {
    listener
        .first()
        .filter(|p| sender.iter().any(|o| o == *p))
        .map(String::as_str)
}
