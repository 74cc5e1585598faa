//! Shedding idle connections when the process runs out of descriptors: a connection that waits
//! for a request head and has not received a byte of it for [`SHED_MIN_IDLE`] (a fresh one, or
//! a kept-alive one between requests) holds a descriptor and does nothing with it. When
//! `accept` fails with EMFILE while a client waits, the worker [`Shedder::shed`]s them, so that
//! the descriptors go to clients that are trying to send something (docs/relay.md "Out of
//! descriptors"). A connection younger than that is left alone: its head may be on its way.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// How long a connection must have waited without a byte before it may be shed.
pub(super) const SHED_MIN_IDLE: Duration = Duration::from_secs(1);

/// One idle wait.
struct Waiter {
    since: Instant,
    waker: Option<Waker>,
    shed: bool,
}

/// One worker's idle connections.
#[derive(Default)]
pub struct Shedder {
    next_key: Cell<u64>,
    /// Keyed by a counter of this worker, with the unseeded `FxHash` (no peer chooses a key).
    waiting: RefCell<FxHashMap<u64, Waiter>>,
}

impl Shedder {
    /// Ends every idle wait that began at least `min_idle` before `now`; how many.
    pub fn shed(&self, min_idle: Duration, now: Instant) -> usize {
        let mut count = 0;
        for waiter in self.waiting.borrow_mut().values_mut() {
            if waiter.shed || now.saturating_duration_since(waiter.since) < min_idle {
                continue;
            }
            waiter.shed = true;
            count += 1;
            if let Some(waker) = waiter.waker.take() {
                waker.wake();
            }
        }
        count
    }

    /// A future that completes when the worker sheds this wait, begun now.
    pub fn idle(&self) -> Shed<'_> {
        let key = self.next_key.get();
        self.next_key.set(key.wrapping_add(1));
        let waiter = Waiter {
            since: Instant::now(),
            waker: None,
            shed: false,
        };
        self.waiting.borrow_mut().insert(key, waiter);
        Shed { shedder: self, key }
    }
}

/// Completes when its [`Shedder`] sheds it; forgets its registration when dropped.
pub struct Shed<'a> {
    shedder: &'a Shedder,
    key: u64,
}

impl Future for Shed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiting = self.shedder.waiting.borrow_mut();
        match waiting.get_mut(&self.key) {
            Some(waiter) if !waiter.shed => {
                waiter.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

impl Drop for Shed<'_> {
    fn drop(&mut self) {
        self.shedder.waiting.borrow_mut().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_ends_every_wait_idle_long_enough_once() {
        let shedder = Shedder::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::pin::pin!(shedder.idle());
        let mut second = Box::pin(shedder.idle());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        let later = Instant::now() + SHED_MIN_IDLE;
        assert_eq!(shedder.shed(SHED_MIN_IDLE, later), 2);
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        drop(second);
        assert_eq!(shedder.shed(SHED_MIN_IDLE, later), 0, "shed once");
    }

    #[test]
    fn a_wait_younger_than_the_minimum_is_left_alone_and_a_dropped_one_forgotten() {
        let shedder = Shedder::default();
        let mut cx = Context::from_waker(Waker::noop());
        let now = Instant::now();
        let mut wait = Box::pin(shedder.idle());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert_eq!(shedder.shed(SHED_MIN_IDLE, now), 0);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        drop(wait);
        assert_eq!(shedder.shed(Duration::ZERO, now + SHED_MIN_IDLE), 0);
    }
}
