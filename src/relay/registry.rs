//! Which listeners are online on which hybrid connection (protocol Appendix A, §9).
//!
//! The registry is shared by every relay worker behind one mutex; it is touched only when a
//! control channel opens or closes and once per sender connect or HTTP request (to pick a
//! listener), never per frame. It is generic over the handle used to reach a listener's control
//! channel, so the rules here are tested without sockets.
//!
//! Keyed with the unseeded `FxHash`: the keys are the configured paths, fixed when the relay
//! starts; peers only look paths up (docs/relay.md "Hash maps").

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use rustc_hash::FxHashMap;
use serde::Serialize;

/// The Azure quota of concurrent listeners per hybrid connection (protocol §9).
pub const DEFAULT_MAX_LISTENERS: usize = 25;

/// Identifies one registered control channel for its whole life.
pub type ListenerId = u64;

/// What kind of work a listener was picked for; counted per listener for the admin view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Stream,
    Request,
}

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// No hybrid connection with this path is configured (protocol §4.1: 404 "Endpoint does not
    /// exist").
    UnknownHybridConnection,
    /// The hybrid connection already has its quota of listeners (protocol §9, §11 item 3).
    QuotaExceeded { max: usize },
    /// The hybrid connection exists but no listener is online (protocol §7.1, §11 item 1).
    NoListener,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownHybridConnection => f.write_str("Endpoint does not exist."),
            Self::QuotaExceeded { max } => write!(
                f,
                "Quota exceeded: MaximumListenersPerEndpoint is {max} for this hybrid connection."
            ),
            Self::NoListener => f.write_str("There are no listeners connected for the endpoint."),
        }
    }
}

impl std::error::Error for RegistryError {}

/// One online listener: its control-channel handle and what the admin view shows of it.
#[derive(Debug)]
struct Listener<H> {
    id: ListenerId,
    tracking_id: String,
    worker: usize,
    connected_at: SystemTime,
    streams: u64,
    requests: u64,
    token_expires_at: u64,
    renewals: u64,
    handle: H,
}

impl<H> Listener<H> {
    fn count(&mut self, work: Work) {
        match work {
            Work::Stream => self.streams += 1,
            Work::Request => self.requests += 1,
        }
    }
}

#[derive(Debug)]
struct HybridConnection<H> {
    path: String,
    listeners: Vec<Listener<H>>,
}

/// The listeners of every configured hybrid connection.
#[derive(Debug)]
pub struct Registry<H> {
    by_path: FxHashMap<String, HybridConnection<H>>,
    max_listeners: usize,
    next_id: ListenerId,
}

/// The admin view of one hybrid connection (what the Azure portal shows).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HybridConnectionStatus {
    pub path: String,
    pub listener_count: usize,
    pub listeners: Vec<ListenerStatus>,
}

/// The admin view of one listener.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListenerStatus {
    pub id: ListenerId,
    pub tracking_id: String,
    pub worker: usize,
    /// Seconds since the Unix epoch.
    pub connected_at: u64,
    pub streams: u64,
    pub requests: u64,
    /// The `se` of the channel's current token (seconds since the Unix epoch).
    pub token_expires_at: u64,
    /// How many `renewToken` messages the relay accepted on this channel.
    pub renewals: u64,
}

/// Registry keys: hybrid connection paths compare case-insensitively (protocol Appendix A).
fn key(path: &str) -> Cow<'_, str> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(path.to_ascii_lowercase())
    } else {
        Cow::Borrowed(path)
    }
}

impl<H: Clone> Registry<H> {
    /// A registry serving exactly `paths`, each admitting up to `max_listeners` listeners.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>, max_listeners: usize) -> Self {
        let by_path = paths
            .into_iter()
            .map(|p| {
                let hc = HybridConnection {
                    path: p.to_owned(),
                    listeners: Vec::new(),
                };
                (key(p).into_owned(), hc)
            })
            .collect();
        Self {
            by_path,
            max_listeners,
            next_id: 1,
        }
    }

    /// The configured path spellings, for matching request URLs against them.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.by_path.values().map(|hc| hc.path.as_str())
    }

    /// Registers a control channel that passed authentication (protocol §4.1).
    pub fn add_listener(
        &mut self,
        path: &str,
        tracking_id: &str,
        worker: usize,
        now: SystemTime,
        handle: H,
    ) -> Result<ListenerId, RegistryError> {
        let hc = self
            .by_path
            .get_mut(&*key(path))
            .ok_or(RegistryError::UnknownHybridConnection)?;
        if hc.listeners.len() >= self.max_listeners {
            return Err(RegistryError::QuotaExceeded {
                max: self.max_listeners,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        hc.listeners.push(Listener {
            id,
            tracking_id: tracking_id.to_owned(),
            worker,
            connected_at: now,
            streams: 0,
            requests: 0,
            token_expires_at: 0,
            renewals: 0,
            handle,
        });
        Ok(id)
    }

    /// Records a channel's token expiry; `renewed` counts it as a renewal (protocol §4.6).
    pub fn set_token_expiry(&mut self, path: &str, id: ListenerId, expires_at: u64, renewed: bool) {
        let listener = self
            .by_path
            .get_mut(&*key(path))
            .and_then(|hc| hc.listeners.iter_mut().find(|l| l.id == id));
        if let Some(listener) = listener {
            listener.token_expires_at = expires_at;
            listener.renewals += u64::from(renewed);
        }
    }

    /// Forgets a control channel; unknown ids are ignored (a channel may close twice).
    pub fn remove_listener(&mut self, path: &str, id: ListenerId) {
        if let Some(hc) = self.by_path.get_mut(&*key(path)) {
            hc.listeners.retain(|l| l.id != id);
        }
    }

    /// Picks a listener for new work: `choose(n)` returns an index below `n` (random in the
    /// relay, protocol §9 "random order, best-effort fair"; deterministic in tests).
    pub fn pick(
        &mut self,
        path: &str,
        work: Work,
        choose: impl FnOnce(usize) -> usize,
    ) -> Result<(ListenerId, H), RegistryError> {
        let hc = self
            .by_path
            .get_mut(&*key(path))
            .ok_or(RegistryError::UnknownHybridConnection)?;
        if hc.listeners.is_empty() {
            return Err(RegistryError::NoListener);
        }
        let n = hc.listeners.len();
        let listener = &mut hc.listeners[choose(n) % n];
        listener.count(work);
        Ok((listener.id, listener.handle.clone()))
    }

    /// Counts work a listener took without being picked (a request over a rendezvous it
    /// holds); unknown paths and ids are ignored (the listener may be gone).
    pub fn count_work(&mut self, path: &str, id: ListenerId, work: Work) {
        let listener = self
            .by_path
            .get_mut(&*key(path))
            .and_then(|hc| hc.listeners.iter_mut().find(|l| l.id == id));
        if let Some(listener) = listener {
            listener.count(work);
        }
    }

    /// Every online listener's handle.
    pub fn handles(&self) -> impl Iterator<Item = &H> {
        self.by_path
            .values()
            .flat_map(|hc| hc.listeners.iter().map(|l| &l.handle))
    }

    /// The admin view, sorted by path.
    pub fn status(&self) -> Vec<HybridConnectionStatus> {
        let mut out: Vec<_> = self
            .by_path
            .values()
            .map(|hc| HybridConnectionStatus {
                path: hc.path.clone(),
                listener_count: hc.listeners.len(),
                listeners: hc
                    .listeners
                    .iter()
                    .map(|l| ListenerStatus {
                        id: l.id,
                        tracking_id: l.tracking_id.clone(),
                        worker: l.worker,
                        connected_at: l
                            .connected_at
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs()),
                        streams: l.streams,
                        requests: l.requests,
                        token_expires_at: l.token_expires_at,
                        renewals: l.renewals,
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn unknown_path_is_endpoint_does_not_exist() {
        let mut r: Registry<u8> = Registry::new(["hyco"], 25);
        assert_eq!(
            r.add_listener("other", "L1", 0, at(1), 1),
            Err(RegistryError::UnknownHybridConnection)
        );
        assert_eq!(
            r.pick("other", Work::Stream, |_| 0).unwrap_err(),
            RegistryError::UnknownHybridConnection
        );
    }

    #[test]
    fn paths_match_case_insensitively() {
        let mut r: Registry<u8> = Registry::new(["Hyco"], 25);
        r.add_listener("HYCO", "L1", 0, at(1), 7)
            .expect("registered");
        assert_eq!(r.pick("hyco", Work::Stream, |_| 0).map(|(_, h)| h), Ok(7));
    }

    #[test]
    fn the_26th_listener_exceeds_the_quota() {
        let mut r: Registry<u8> = Registry::new(["hyco"], DEFAULT_MAX_LISTENERS);
        for i in 0..25 {
            r.add_listener("hyco", "L", 0, at(1), i)
                .expect("within quota");
        }
        assert_eq!(
            r.add_listener("hyco", "L", 0, at(1), 99),
            Err(RegistryError::QuotaExceeded { max: 25 })
        );
        assert!(RegistryError::QuotaExceeded { max: 25 }
            .to_string()
            .contains("MaximumListenersPerEndpoint"));
    }

    #[test]
    fn removing_frees_a_slot_and_no_listener_is_reported() {
        let mut r: Registry<u8> = Registry::new(["hyco"], 1);
        let id = r
            .add_listener("hyco", "L1", 0, at(1), 1)
            .expect("registered");
        r.remove_listener("hyco", id);
        r.remove_listener("hyco", id);
        assert_eq!(
            r.pick("hyco", Work::Request, |_| 0).unwrap_err(),
            RegistryError::NoListener
        );
        r.add_listener("hyco", "L2", 1, at(2), 2)
            .expect("slot free again");
    }

    #[test]
    fn pick_spreads_by_the_chooser_and_counts_work() {
        let mut r: Registry<&str> = Registry::new(["hyco"], 25);
        r.add_listener("hyco", "A", 0, at(10), "a").expect("a");
        let b = r.add_listener("hyco", "B", 1, at(20), "b").expect("b");
        r.set_token_expiry("hyco", b, 99, true);
        assert_eq!(
            r.pick("hyco", Work::Stream, |n| n - 1).map(|(_, h)| h),
            Ok("b")
        );
        assert_eq!(
            r.pick("hyco", Work::Request, |_| 0).map(|(_, h)| h),
            Ok("a")
        );
        assert_eq!(
            r.pick("hyco", Work::Request, |_| 7).map(|(_, h)| h),
            Ok("b")
        );
        let status = r.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].listener_count, 2);
        let b = &status[0].listeners[1];
        assert_eq!(
            (
                b.tracking_id.as_str(),
                b.worker,
                b.connected_at,
                b.streams,
                b.requests
            ),
            ("B", 1, 20, 1, 1)
        );
    }
}
