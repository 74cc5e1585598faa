//! The workers' side of the relay's stop sequence ([`drain`](super::core::drain) decides it):
//! two one-shot broadcasts the workers await — stop accepting, close what remains — and the
//! counts of work and connections in flight, which wake the process's main thread when one of
//! them reaches zero during a stop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::broadcast::Broadcast;
use super::core::drain::InFlight;
use crate::runtime::signals::Signal;

/// What wakes the main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A signal arrived.
    Signal(Signal),
    /// A count reached zero while stopping.
    Counts,
}

/// The stop sequence as the workers see it.
pub struct Stopping {
    /// Fired when the main port must stop accepting and idle connections close.
    pub stop_accepting: Broadcast,
    /// Fired when what is still open must close (1001 to WebSocket peers).
    pub close_remaining: Broadcast,
    stopping: AtomicBool,
    work: AtomicUsize,
    connections: AtomicUsize,
    wake: flume::Sender<Wake>,
}

impl Stopping {
    /// The shared state and the main thread's end of its wake-ups.
    pub fn new() -> (Arc<Self>, flume::Receiver<Wake>) {
        let (wake, woken) = flume::unbounded();
        let stopping = Self {
            stop_accepting: Broadcast::default(),
            close_remaining: Broadcast::default(),
            stopping: AtomicBool::new(false),
            work: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            wake,
        };
        (Arc::new(stopping), woken)
    }

    /// Hands a caught signal to the main thread.
    pub fn signal(&self, signal: Signal) {
        let _ = self.wake.send(Wake::Signal(signal));
    }

    /// Starts the stop: the main port stops accepting, idle connections close.
    pub fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_accepting.fire();
    }

    /// What is in flight now.
    pub fn in_flight(&self) -> InFlight {
        InFlight {
            work: self.work.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
        }
    }

    /// Counts a stream or relayed HTTP request until the guard drops.
    pub fn work(self: &Arc<Self>) -> InFlightGuard {
        InFlightGuard::new(self.clone(), Counter::Work)
    }

    /// Counts a connection until the guard drops.
    pub fn connection(self: &Arc<Self>) -> InFlightGuard {
        InFlightGuard::new(self.clone(), Counter::Connections)
    }

    fn counter(&self, which: Counter) -> &AtomicUsize {
        match which {
            Counter::Work => &self.work,
            Counter::Connections => &self.connections,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Work,
    Connections,
}

/// One unit of [`Stopping::work`] or [`Stopping::connection`]; wakes the main thread when it
/// was the last one during a stop.
pub struct InFlightGuard {
    stopping: Arc<Stopping>,
    which: Counter,
}

impl InFlightGuard {
    fn new(stopping: Arc<Stopping>, which: Counter) -> Self {
        stopping.counter(which).fetch_add(1, Ordering::SeqCst);
        Self { stopping, which }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let before = self
            .stopping
            .counter(self.which)
            .fetch_sub(1, Ordering::SeqCst);
        if before == 1 && self.stopping.stopping.load(Ordering::SeqCst) {
            let _ = self.stopping.wake.send(Wake::Counts);
        }
    }
}
