//! Which control channels are online, readable from any thread: `/readyz`, systemd's
//! `STATUS=` line and tests wait on it (design.md §3 "Lifecycle"). Changed only when a channel
//! goes online or offline, never on the data path.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The online flags of every channel, by hybrid connection.
#[derive(Default)]
pub struct DaemonStatus {
    channels: Mutex<Vec<(String, bool)>>,
    changed: Condvar,
}

/// One channel's slot in [`DaemonStatus`].
#[derive(Clone)]
pub struct ChannelStatus {
    all: Arc<DaemonStatus>,
    index: usize,
}

impl ChannelStatus {
    /// Records whether the channel is online and wakes waiters.
    pub fn set_online(&self, online: bool) {
        let mut channels = self.all.lock();
        if let Some(slot) = channels.get_mut(self.index) {
            slot.1 = online;
        }
        drop(channels);
        self.all.changed.notify_all();
    }
}

/// Online and total channel counts of one hybrid connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcReadiness {
    pub name: String,
    pub online: usize,
    pub total: usize,
}

impl DaemonStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, bool)>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a channel of hybrid connection `name`, offline.
    pub fn add_channel(self: &Arc<Self>, name: &str) -> ChannelStatus {
        let mut channels = self.lock();
        channels.push((name.to_owned(), false));
        ChannelStatus {
            all: self.clone(),
            index: channels.len() - 1,
        }
    }

    /// Per hybrid connection, in configuration order.
    pub fn readiness(&self) -> Vec<HcReadiness> {
        let mut out: Vec<HcReadiness> = Vec::new();
        for (name, online) in self.lock().iter() {
            match out.iter_mut().find(|r| &r.name == name) {
                Some(r) => {
                    r.total += 1;
                    r.online += usize::from(*online);
                }
                None => out.push(HcReadiness {
                    name: name.clone(),
                    online: usize::from(*online),
                    total: 1,
                }),
            }
        }
        out
    }

    /// Ready: every hybrid connection has at least one channel online.
    pub fn is_ready(&self) -> bool {
        let readiness = self.readiness();
        !readiness.is_empty() && readiness.iter().all(|r| r.online > 0)
    }

    /// Waits until every channel is online; false on timeout.
    pub fn wait_all_online(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut channels = self.lock();
        loop {
            if !channels.is_empty() && channels.iter().all(|(_, online)| *online) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            channels = self
                .changed
                .wait_timeout(channels, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_one_online_channel_per_hybrid_connection() {
        let status = Arc::new(DaemonStatus::default());
        let a1 = status.add_channel("a");
        let _a2 = status.add_channel("a");
        let b1 = status.add_channel("b");
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
        assert!(!status.wait_all_online(Duration::ZERO));
    }

    #[test]
    fn waiters_wake_when_the_last_channel_comes_online() {
        let status = Arc::new(DaemonStatus::default());
        let c = status.add_channel("a");
        let waiter = {
            let status = status.clone();
            std::thread::spawn(move || status.wait_all_online(Duration::from_secs(10)))
        };
        c.set_online(true);
        assert!(waiter.join().expect("thread"));
    }
}
