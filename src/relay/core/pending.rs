//! Relayed HTTP requests waiting for their listener's `response` on a control channel
//! (protocol §6.5): each is entered when its `request` is queued and leaves exactly once — taken
//! by the `response` of the listener it was routed to, taken by that listener's departure, or
//! forgotten when the request ends another way (deadline, sender gone). A `response` naming a
//! request routed to another listener, or one no longer waiting, finds nothing.
//!
//! Generic over what a waiting request is reached by (`T`), so the rules are tested without
//! channels; the relay shares one table between its workers behind a mutex.
//!
//! Keyed with the fast, unseeded `FxHash`: every key entered is a request id the relay made from
//! 128 CSPRNG bits ([`ids`](crate::relay::ids)), so no peer can choose keys that collide; a
//! listener only looks ids up (docs/relay.md "Hash maps").

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::relay::registry::ListenerId;

/// One waiting request.
#[derive(Debug)]
struct Waiting<T> {
    listener: ListenerId,
    reply: T,
}

/// The requests waiting for a `response`, by request id.
#[derive(Debug)]
pub struct PendingRequests<T> {
    /// Keys shared with the request's own task, which names its entry to forget it.
    by_id: FxHashMap<Arc<str>, Waiting<T>>,
}

impl<T> Default for PendingRequests<T> {
    fn default() -> Self {
        Self {
            by_id: FxHashMap::default(),
        }
    }
}

impl<T> PendingRequests<T> {
    /// Enters request `id`, routed to `listener`, answered through `reply`.
    pub fn insert(&mut self, id: Arc<str>, listener: ListenerId, reply: T) {
        self.by_id.insert(id, Waiting { listener, reply });
    }

    /// Takes request `id` for a `response` that came from listener `from`: only the listener it
    /// was routed to may answer it.
    pub fn take_answered(&mut self, id: &str, from: ListenerId) -> Option<T> {
        match self.by_id.get(id) {
            Some(waiting) if waiting.listener == from => self.by_id.remove(id).map(|w| w.reply),
            _ => None,
        }
    }

    /// Takes every request routed to `listener`, which is gone.
    pub fn take_listener(&mut self, listener: ListenerId) -> Vec<T> {
        let ids: Vec<Arc<str>> = self
            .by_id
            .iter()
            .filter(|(_, w)| w.listener == listener)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| self.by_id.remove(id))
            .map(|w| w.reply)
            .collect()
    }

    /// Forgets request `id` (it ended another way); unknown ids are ignored.
    pub fn forget(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
