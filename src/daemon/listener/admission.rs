//! Admission of relayed streams and requests against `[limits]`
//! (docs/configuration.md `[limits]`). Counting only: no sockets, no clocks.
//!
//! Each kind of work (streams, requests) is counted twice:
//! - per hybrid connection, over all workers, in one [`SharedCount`] (an atomic touched once when
//!   work starts and once when it ends) that every worker's context for that hybrid connection
//!   shares: the configured maximum holds exactly, however the relay spreads work over the
//!   control channels;
//! - per worker, over all hybrid connections, in a [`WorkerCount`] that only that worker's
//!   thread touches.
//!
//! Work is admitted only when both counts are below their maxima; the [`Permit`] it gets gives
//! both units back when dropped, also when its task is cancelled. A reload that replaces a
//! hybrid connection starts a fresh shared count: work admitted under the old settings keeps
//! its permits and is no longer counted against the new maximum.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::Limits;

/// In-flight work of one kind on one hybrid connection, shared by all workers.
#[derive(Debug, Default)]
pub struct SharedCount(AtomicUsize);

impl SharedCount {
    /// Work counted now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Takes one unit if fewer than `max` are taken.
    fn try_take(&self, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < max).then_some(now + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// In-flight work of one kind on one worker, over all hybrid connections.
pub type WorkerCount = Rc<Cell<usize>>;

/// Which maximum refused a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The hybrid connection's maximum (`max_*_per_hybrid_connection`, or its override).
    HybridConnection { max: usize },
    /// The worker's maximum (`max_*_per_worker`).
    Worker { max: usize },
}

impl Exceeded {
    /// The `reason` label of the rejected-streams and rejected-requests metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::HybridConnection { .. } => "hybrid_connection_limit",
            Self::Worker { .. } => "worker_limit",
        }
    }
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HybridConnection { max } => {
                write!(f, "the hybrid connection already has {max} in flight")
            }
            Self::Worker { max } => write!(f, "the worker already has {max} in flight"),
        }
    }
}

impl std::error::Error for Exceeded {}

/// Admission for one kind of work on one hybrid connection on one worker.
#[derive(Debug)]
pub struct Gate {
    hybrid_connection: Arc<SharedCount>,
    hybrid_connection_max: usize,
    worker: WorkerCount,
    worker_max: usize,
}

impl Gate {
    /// A gate over the shared and the worker count with their maxima.
    pub fn new(
        hybrid_connection: Arc<SharedCount>,
        hybrid_connection_max: usize,
        worker: WorkerCount,
        worker_max: usize,
    ) -> Self {
        Self {
            hybrid_connection,
            hybrid_connection_max,
            worker,
            worker_max,
        }
    }

    /// A permit, or the maximum that is reached. The worker's maximum is checked first: it
    /// costs no atomic operation.
    pub fn try_enter(&self) -> Result<Permit, Exceeded> {
        let on_worker = self.worker.get();
        if on_worker >= self.worker_max {
            return Err(Exceeded::Worker {
                max: self.worker_max,
            });
        }
        if !self.hybrid_connection.try_take(self.hybrid_connection_max) {
            return Err(Exceeded::HybridConnection {
                max: self.hybrid_connection_max,
            });
        }
        self.worker.set(on_worker + 1);
        Ok(Permit {
            hybrid_connection: self.hybrid_connection.clone(),
            worker: self.worker.clone(),
        })
    }
}

/// One admitted stream or request; gives its units back when dropped.
#[derive(Debug)]
pub struct Permit {
    hybrid_connection: Arc<SharedCount>,
    worker: WorkerCount,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.hybrid_connection.give_back();
        self.worker.set(self.worker.get().saturating_sub(1));
    }
}

/// The counts of one hybrid connection shared by all workers (held by its plan).
#[derive(Debug, Default)]
pub struct HcCounts {
    /// Streams being set up or pumped.
    pub streams: Arc<SharedCount>,
    /// Requests being served (a rendezvous session counts as one).
    pub requests: Arc<SharedCount>,
}

/// The counts of one worker, over all hybrid connections.
#[derive(Debug, Default, Clone)]
pub struct WorkerCounts {
    /// Streams being set up or pumped on this worker.
    pub streams: WorkerCount,
    /// Requests being served on this worker.
    pub requests: WorkerCount,
}

/// Both gates of one hybrid connection on one worker.
#[derive(Debug)]
pub struct Admission {
    /// Relayed WebSocket streams.
    pub streams: Gate,
    /// Relayed HTTP requests.
    pub requests: Gate,
}

impl Admission {
    /// The gates of a hybrid connection with `limits`, over its shared `counts` and the
    /// worker's `worker` counts.
    pub fn new(limits: &Limits, counts: &HcCounts, worker: &WorkerCounts) -> Self {
        Self {
            streams: Gate::new(
                counts.streams.clone(),
                limits.max_streams_per_hybrid_connection.get(),
                worker.streams.clone(),
                limits.max_streams_per_worker.get(),
            ),
            requests: Gate::new(
                counts.requests.clone(),
                limits.max_requests_per_hybrid_connection.get(),
                worker.requests.clone(),
                limits.max_requests_per_worker.get(),
            ),
        }
    }

    /// Gates with counts of their own (one hybrid connection on one worker, e.g. in tests).
    pub fn standalone(limits: &Limits) -> Self {
        Self::new(limits, &HcCounts::default(), &WorkerCounts::default())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    fn gate(hc_max: usize, worker_max: usize) -> Gate {
        Gate::new(Arc::default(), hc_max, WorkerCount::default(), worker_max)
    }

    #[test]
    fn the_hybrid_connection_maximum_refuses_the_next_one() {
        let gate = gate(2, 10);
        let first = gate.try_enter().expect("first");
        let _second = gate.try_enter().expect("second");
        assert_eq!(
            gate.try_enter().unwrap_err(),
            Exceeded::HybridConnection { max: 2 }
        );
        drop(first);
        assert!(gate.try_enter().is_ok(), "a released unit is free again");
    }

    #[test]
    fn the_worker_maximum_refuses_the_next_one() {
        let gate = gate(10, 1);
        let permit = gate.try_enter().expect("first");
        assert_eq!(gate.try_enter().unwrap_err(), Exceeded::Worker { max: 1 });
        assert_eq!(gate.hybrid_connection.get(), 1, "a refusal takes nothing");
        drop(permit);
        assert_eq!((gate.hybrid_connection.get(), gate.worker.get()), (0, 0));
    }

    #[test]
    fn workers_share_the_hybrid_connection_count() {
        let shared = Arc::new(SharedCount::default());
        let worker_a = Gate::new(shared.clone(), 3, WorkerCount::default(), 10);
        let worker_b = Gate::new(shared.clone(), 3, WorkerCount::default(), 10);
        let _a1 = worker_a.try_enter().expect("a1");
        let _a2 = worker_a.try_enter().expect("a2");
        let _b1 = worker_b.try_enter().expect("b1");
        assert_eq!(
            worker_b.try_enter().unwrap_err(),
            Exceeded::HybridConnection { max: 3 }
        );
        assert_eq!(shared.get(), 3);
    }

    #[test]
    fn hybrid_connections_share_the_worker_count() {
        let worker = WorkerCounts::default();
        let limits = Limits {
            max_streams_per_worker: NonZeroUsize::MIN,
            ..Limits::default()
        };
        let first = Admission::new(&limits, &HcCounts::default(), &worker);
        let second = Admission::new(&limits, &HcCounts::default(), &worker);
        let _stream = first.streams.try_enter().expect("first stream");
        assert_eq!(
            second.streams.try_enter().unwrap_err(),
            Exceeded::Worker { max: 1 }
        );
        assert!(
            second.requests.try_enter().is_ok(),
            "requests are counted apart from streams"
        );
    }

    #[test]
    fn reasons_name_the_limit() {
        assert_eq!(
            Exceeded::HybridConnection { max: 1 }.reason(),
            "hybrid_connection_limit"
        );
        assert_eq!(Exceeded::Worker { max: 1 }.reason(), "worker_limit");
        assert_eq!(
            Exceeded::Worker { max: 7 }.to_string(),
            "the worker already has 7 in flight"
        );
    }
}
