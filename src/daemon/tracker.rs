//! Counting units of work on one worker — control channels, streams, requests — so that a drain
//! can wait until they are all done (architecture §3 "Lifecycle": "drain streams and requests up to
//! a grace deadline").
//!
//! Bookkeeping happens once per unit (when it starts and when it ends), never on the data path.
//! A [`Tracker`] lives on one worker thread (`Rc`, no atomics).

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Counts units of work in progress; [`Tracker::idle`] waits until there are none.
#[derive(Clone, Default)]
pub(super) struct Tracker {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    count: Cell<usize>,
    idle_waiters: RefCell<Vec<Waker>>,
}

/// One unit of work; the count drops when it is dropped (also when its task is cancelled).
pub(super) struct TrackerGuard {
    inner: Rc<Inner>,
}

impl Tracker {
    /// Starts one unit of work.
    pub(super) fn enter(&self) -> TrackerGuard {
        self.inner.count.set(self.inner.count.get() + 1);
        TrackerGuard {
            inner: self.inner.clone(),
        }
    }

    /// Units in progress now.
    pub(super) fn count(&self) -> usize {
        self.inner.count.get()
    }

    /// `future`, counted as one unit of work from now until it completes or is dropped.
    pub(super) fn track<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        let guard = self.enter();
        async move {
            let _guard = guard;
            future.await
        }
    }

    /// Completes when no unit of work is in progress (at once if none is).
    pub(super) fn idle(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.inner.count.get() == 0 {
                return Poll::Ready(());
            }
            let mut waiters = self.inner.idle_waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        let left = self.inner.count.get().saturating_sub(1);
        self.inner.count.set(left);
        if left == 0 {
            let waiters = std::mem::take(&mut *self.inner.idle_waiters.borrow_mut());
            for waker in waiters {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Wake};

    use super::*;

    struct Flag(std::sync::atomic::AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn flag() -> (Arc<Flag>, Waker) {
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    #[test]
    fn counts_units_until_their_guards_drop() {
        let tracker = Tracker::default();
        let a = tracker.enter();
        let b = tracker.clone().enter();
        assert_eq!(tracker.count(), 2);
        drop(a);
        assert_eq!(tracker.count(), 1);
        drop(b);
        assert_eq!(tracker.count(), 0);
    }

    #[test]
    fn idle_is_ready_at_once_without_work() {
        let tracker = Tracker::default();
        let (_, waker) = flag();
        let mut idle = pin!(tracker.idle());
        assert!(idle
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
    }

    #[test]
    fn idle_wakes_when_the_last_unit_ends() {
        let tracker = Tracker::default();
        let first = tracker.enter();
        let second = tracker.enter();
        let (woken, waker) = flag();
        let mut idle = pin!(tracker.idle());
        let mut cx = Context::from_waker(&waker);
        assert!(idle.as_mut().poll(&mut cx).is_pending());
        assert!(idle.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            tracker.inner.idle_waiters.borrow().len(),
            1,
            "one waker kept"
        );
        drop(first);
        assert!(!woken.0.load(std::sync::atomic::Ordering::SeqCst));
        drop(second);
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(idle.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_tracked_future_counts_while_it_runs_and_when_dropped_unfinished() {
        let tracker = Tracker::default();
        let (_, waker) = flag();
        let mut cx = Context::from_waker(&waker);
        let done = tracker.track(async { 7 });
        assert_eq!(tracker.count(), 1);
        let mut done = pin!(done);
        assert_eq!(done.as_mut().poll(&mut cx), Poll::Ready(7));
        assert_eq!(tracker.count(), 0);
        let never = tracker.track(std::future::pending::<()>());
        assert_eq!(tracker.count(), 1);
        drop(never);
        assert_eq!(tracker.count(), 0);
    }
}
