//! The daemon's observable state, readable from any thread: the lifecycle [`Phase`] and which
//! control channels are online. `/readyz`, systemd's `READY=1`/`STATUS=` lines and tests wait
//! on it (architecture §3 "Lifecycle"). Changed only when a channel goes online or offline, a
//! hybrid connection is added or removed, or the phase moves — never on the data path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The daemon's lifecycle phase (architecture §3); it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Started; not every hybrid connection has had a listener online yet.
    Starting,
    /// Every hybrid connection has had a listener online (readiness may still flap later).
    Listening,
    /// Stopping: no new work is taken; in-flight streams and requests finish.
    Draining,
    /// Every worker has ended.
    Stopped,
}

impl Phase {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Listening => "listening",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        }
    }
}

/// A callback run (outside the lock) after every change.
type Watcher = Arc<dyn Fn() + Send + Sync>;

/// The phase and the online flags of every channel, by hybrid connection.
pub struct DaemonStatus {
    state: Mutex<State>,
    changed: Condvar,
    watchers: Mutex<Vec<Watcher>>,
}

struct State {
    phase: Phase,
    channels: Vec<Slot>,
    /// Ready even with no channel at all: the daemon serves forwards (and may have no hybrid
    /// connection).
    ready_without_listeners: bool,
    next_slot: u64,
    workers_running: usize,
    /// The forwards accepting now, by name (for the status page).
    forwards: BTreeMap<String, ForwardInfo>,
}

struct Slot {
    id: u64,
    name: String,
    /// The worker that runs the channel.
    worker: usize,
    online: bool,
    last_error: Option<(String, SystemTime)>,
    token_expires_at: Option<SystemTime>,
}

/// One channel as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub worker: usize,
    pub online: bool,
    /// The last failed connect's error text (no secret: the same text is logged) and when.
    pub last_error: Option<(String, SystemTime)>,
    /// When the token of the channel's current (or last) connection expires.
    pub token_expires_at: Option<SystemTime>,
}

/// A forward accepting connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardInfo {
    pub name: String,
    pub listen: SocketAddr,
    pub entity_path: String,
}

impl Default for DaemonStatus {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Starting,
                channels: Vec::new(),
                ready_without_listeners: false,
                next_slot: 0,
                workers_running: 0,
                forwards: BTreeMap::new(),
            }),
            changed: Condvar::new(),
            watchers: Mutex::new(Vec::new()),
        }
    }
}

/// One channel's slot in [`DaemonStatus`].
#[derive(Clone)]
pub struct ChannelStatus {
    all: Arc<DaemonStatus>,
    id: u64,
}

impl ChannelStatus {
    /// Records whether the channel is online and wakes waiters. A removed slot ignores it.
    pub fn set_online(&self, online: bool) {
        self.all.update(|state| {
            match state.channels.iter_mut().find(|slot| slot.id == self.id) {
                Some(slot) if slot.online != online => slot.online = online,
                _ => return false,
            }
            true
        });
    }

    /// Records a failed connect's error text (the same text the log line carries) and when;
    /// only the status page reads it, so nobody is woken.
    pub fn connect_failed(&self, error: &str) {
        let now = SystemTime::now();
        self.all.quietly(self.id, |slot| {
            slot.last_error = Some((error.to_owned(), now));
        });
    }

    /// Records when the token of the live connection expires (at connect and at each renewal).
    pub fn token_expires(&self, at: SystemTime) {
        self.all
            .quietly(self.id, |slot| slot.token_expires_at = Some(at));
    }
}

/// Online and total channel counts of one hybrid connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcReadiness {
    pub name: String,
    pub online: usize,
    pub total: usize,
}

/// Keeps a worker counted in [`DaemonStatus`] while it lives; the last one to drop moves the
/// phase to [`Phase::Stopped`].
pub struct WorkerAlive {
    all: Arc<DaemonStatus>,
}

impl Drop for WorkerAlive {
    fn drop(&mut self) {
        self.all.update(|state| {
            state.workers_running = state.workers_running.saturating_sub(1);
            if state.workers_running == 0 {
                state.phase = Phase::Stopped;
            }
            true
        });
    }
}

impl DaemonStatus {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change`; when it reports a change, moves Starting → Listening once ready,
    /// wakes waiters and runs the watchers.
    fn update(&self, change: impl FnOnce(&mut State) -> bool) {
        let mut state = self.lock();
        if !change(&mut state) {
            return;
        }
        if state.phase == Phase::Starting && ready(&state) {
            state.phase = Phase::Listening;
        }
        drop(state);
        self.changed.notify_all();
        let watchers = self
            .watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for watcher in watchers {
            watcher();
        }
    }

    /// Changes slot `id` without waking waiters or watchers (nothing they wait on changed).
    fn quietly(&self, id: u64, change: impl FnOnce(&mut Slot)) {
        if let Some(slot) = self.lock().channels.iter_mut().find(|slot| slot.id == id) {
            change(slot);
        }
    }

    /// Runs `watcher` after every change (from whichever thread made it).
    pub fn on_change(&self, watcher: impl Fn() + Send + Sync + 'static) {
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Arc::new(watcher));
    }

    /// Adds a channel of hybrid connection `name`, run by `worker`, offline.
    pub fn add_channel(self: &Arc<Self>, name: &str, worker: usize) -> ChannelStatus {
        let mut id = 0;
        self.update(|state| {
            id = state.next_slot;
            state.next_slot += 1;
            state.channels.push(Slot {
                id,
                name: name.to_owned(),
                worker,
                online: false,
                last_error: None,
                token_expires_at: None,
            });
            true
        });
        ChannelStatus {
            all: self.clone(),
            id,
        }
    }

    /// Forgets these channels (their hybrid connection was removed or replaced); later
    /// `set_online` calls on them are ignored.
    pub fn remove_channels(&self, channels: &[ChannelStatus]) {
        self.update(|state| {
            let before = state.channels.len();
            state
                .channels
                .retain(|slot| !channels.iter().any(|c| c.id == slot.id));
            state.channels.len() != before
        });
    }

    /// Counts one more running worker ([`WorkerAlive`] uncounts it).
    pub fn worker_alive(self: &Arc<Self>) -> WorkerAlive {
        self.update(|state| {
            state.workers_running += 1;
            false
        });
        WorkerAlive { all: self.clone() }
    }

    /// Whether a daemon without any control channel counts as ready: true while it serves
    /// forwards, whose sockets are listening from the start. Call it once every hybrid
    /// connection's channels have been added.
    pub fn set_ready_without_listeners(&self, ready_without_listeners: bool) {
        self.update(|state| {
            state.ready_without_listeners = ready_without_listeners;
            true
        });
    }

    /// Every channel, in the order they were added.
    pub fn channels(&self) -> Vec<ChannelView> {
        self.lock()
            .channels
            .iter()
            .map(|slot| ChannelView {
                name: slot.name.clone(),
                worker: slot.worker,
                online: slot.online,
                last_error: slot.last_error.clone(),
                token_expires_at: slot.token_expires_at,
            })
            .collect()
    }

    /// Records a forward that accepts connections now (replacing one of the same name).
    pub fn forward_started(&self, forward: ForwardInfo) {
        self.lock().forwards.insert(forward.name.clone(), forward);
    }

    /// Forgets a forward that stopped accepting.
    pub fn forward_stopped(&self, name: &str) {
        self.lock().forwards.remove(name);
    }

    /// The forwards accepting now, by name.
    pub fn forwards(&self) -> Vec<ForwardInfo> {
        self.lock().forwards.values().cloned().collect()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// Moves the phase forward to `phase` (never backwards).
    pub fn advance_phase(&self, phase: Phase) {
        self.update(|state| {
            if phase <= state.phase {
                return false;
            }
            state.phase = phase;
            true
        });
    }

    /// Per hybrid connection, in the order they were added.
    pub fn readiness(&self) -> Vec<HcReadiness> {
        readiness(&self.lock().channels)
    }

    /// Channels online and channels configured, over every hybrid connection.
    pub fn online_count(&self) -> (usize, usize) {
        let state = self.lock();
        let online = state.channels.iter().filter(|slot| slot.online).count();
        (online, state.channels.len())
    }

    /// Ready: every hybrid connection has at least one channel online (with no hybrid
    /// connection: the daemon serves forwards).
    pub fn is_ready(&self) -> bool {
        ready(&self.lock())
    }

    /// Waits until every channel is online; false on timeout.
    pub fn wait_all_online(&self, timeout: Duration) -> bool {
        self.wait(timeout, |state| {
            !state.channels.is_empty() && state.channels.iter().all(|slot| slot.online)
        })
    }

    /// Waits until each of `channels` is online (or was removed); false on timeout.
    pub fn wait_channels_online(&self, channels: &[ChannelStatus], timeout: Duration) -> bool {
        self.wait(timeout, |state| {
            state
                .channels
                .iter()
                .filter(|slot| channels.iter().any(|c| c.id == slot.id))
                .all(|slot| slot.online)
        })
    }

    /// Waits until the phase is `phase` or later; false on timeout.
    pub fn wait_phase(&self, phase: Phase, timeout: Duration) -> bool {
        self.wait(timeout, |state| state.phase >= phase)
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

fn readiness(channels: &[Slot]) -> Vec<HcReadiness> {
    let mut out: Vec<HcReadiness> = Vec::new();
    for slot in channels {
        match out.iter_mut().find(|r| r.name == slot.name) {
            Some(r) => {
                r.total += 1;
                r.online += usize::from(slot.online);
            }
            None => out.push(HcReadiness {
                name: slot.name.clone(),
                online: usize::from(slot.online),
                total: 1,
            }),
        }
    }
    out
}

fn ready(state: &State) -> bool {
    let readiness = readiness(&state.channels);
    if readiness.is_empty() {
        return state.ready_without_listeners;
    }
    readiness.iter().all(|r| r.online > 0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn without_channels_only_a_daemon_serving_forwards_is_ready() {
        let status = Arc::new(DaemonStatus::default());
        assert!(!status.is_ready());
        status.set_ready_without_listeners(true);
        assert!(status.is_ready());
        assert_eq!(status.phase(), Phase::Listening);
        let channel = status.add_channel("a", 0);
        assert!(
            !status.is_ready(),
            "a hybrid connection needs its listener even next to forwards"
        );
        channel.set_online(true);
        assert!(status.is_ready());
    }

    #[test]
    fn ready_needs_one_online_channel_per_hybrid_connection() {
        let status = Arc::new(DaemonStatus::default());
        let a1 = status.add_channel("a", 0);
        let _a2 = status.add_channel("a", 0);
        let b1 = status.add_channel("b", 0);
        assert!(!status.is_ready());
        a1.set_online(true);
        assert!(!status.is_ready());
        b1.set_online(true);
        assert!(status.is_ready());
        assert_eq!(
            status.readiness(),
            vec![
                HcReadiness {
                    name: "a".into(),
                    online: 1,
                    total: 2
                },
                HcReadiness {
                    name: "b".into(),
                    online: 1,
                    total: 1
                },
            ]
        );
        assert_eq!(status.online_count(), (2, 3));
        assert!(!status.wait_all_online(Duration::ZERO));
    }

    #[test]
    fn waiters_wake_when_the_last_channel_comes_online() {
        let status = Arc::new(DaemonStatus::default());
        let c = status.add_channel("a", 0);
        let waiter = {
            let status = status.clone();
            std::thread::spawn(move || status.wait_all_online(Duration::from_secs(10)))
        };
        c.set_online(true);
        assert!(waiter.join().expect("thread"));
    }

    #[test]
    fn the_phase_becomes_listening_when_first_ready_and_stays() {
        let status = Arc::new(DaemonStatus::default());
        let a = status.add_channel("a", 0);
        assert_eq!(status.phase(), Phase::Starting);
        a.set_online(true);
        assert_eq!(status.phase(), Phase::Listening);
        a.set_online(false);
        assert_eq!(status.phase(), Phase::Listening);
    }

    #[test]
    fn the_phase_never_moves_backwards() {
        let status = Arc::new(DaemonStatus::default());
        status.advance_phase(Phase::Draining);
        status.advance_phase(Phase::Listening);
        assert_eq!(status.phase(), Phase::Draining);
        let a = status.add_channel("a", 0);
        a.set_online(true);
        assert_eq!(status.phase(), Phase::Draining);
    }

    #[test]
    fn the_last_worker_to_end_stops_the_daemon() {
        let status = Arc::new(DaemonStatus::default());
        let first = status.worker_alive();
        let second = status.worker_alive();
        drop(first);
        assert_eq!(status.phase(), Phase::Starting);
        let waiter = {
            let status = status.clone();
            std::thread::spawn(move || status.wait_phase(Phase::Stopped, Duration::from_secs(10)))
        };
        drop(second);
        assert!(waiter.join().expect("thread"));
        assert_eq!(status.phase(), Phase::Stopped);
    }

    #[test]
    fn removed_channels_leave_readiness_and_ignore_updates() {
        let status = Arc::new(DaemonStatus::default());
        let old = status.add_channel("a", 0);
        let new = status.add_channel("a", 0);
        old.set_online(true);
        assert!(!status.wait_channels_online(std::slice::from_ref(&new), Duration::ZERO));
        status.remove_channels(std::slice::from_ref(&old));
        old.set_online(true);
        assert_eq!(status.online_count(), (0, 1));
        assert!(!status.is_ready());
        new.set_online(true);
        assert!(status.wait_channels_online(&[new, old], Duration::ZERO));
    }

    #[test]
    fn errors_and_token_expiries_are_kept_per_channel_without_waking_anyone() {
        let status = Arc::new(DaemonStatus::default());
        let calls = Arc::new(AtomicUsize::new(0));
        {
            let calls = calls.clone();
            status.on_change(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            });
        }
        let a = status.add_channel("a", 1);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        a.connect_failed("refused");
        a.token_expires(at);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the add woke watchers"
        );
        let view = &status.channels()[0];
        assert_eq!(
            (view.name.as_str(), view.worker, view.online),
            ("a", 1, false)
        );
        assert_eq!(
            view.last_error.as_ref().map(|e| e.0.as_str()),
            Some("refused")
        );
        assert_eq!(view.token_expires_at, Some(at));
        status.remove_channels(std::slice::from_ref(&a));
        a.connect_failed("ignored");
        assert!(status.channels().is_empty());
    }

    #[test]
    fn forwards_are_listed_by_name_while_they_accept() {
        let status = DaemonStatus::default();
        let forward = |name: &str| ForwardInfo {
            name: name.to_owned(),
            listen: "127.0.0.1:1".parse().expect("addr"),
            entity_path: "hc".to_owned(),
        };
        status.forward_started(forward("b"));
        status.forward_started(forward("a"));
        status.forward_stopped("b");
        assert_eq!(status.forwards(), vec![forward("a")]);
    }

    #[test]
    fn watchers_run_on_every_change_but_not_on_repeats() {
        let status = Arc::new(DaemonStatus::default());
        let calls = Arc::new(AtomicUsize::new(0));
        {
            let calls = calls.clone();
            status.on_change(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            });
        }
        let a = status.add_channel("a", 0);
        a.set_online(true);
        a.set_online(true);
        a.set_online(false);
        status.advance_phase(Phase::Draining);
        status.advance_phase(Phase::Draining);
        // add, online, offline, the move to Listening rode on "online", draining.
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
