//! A one-shot broadcast across threads: every [`Broadcast::fired`] completes once
//! [`Broadcast::fire`] ran. Each idle connection of every worker awaits one between two
//! requests, so a wait costs a flag check, and while pending one waker slot under a mutex
//! (no allocation once the slots exist), given back when the wait ends.
//!
//! `fire` sets the flag before it takes the wakers under the same mutex a wait registers under:
//! a wait either finds the flag set or has its waker taken and woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::shared::lock;

/// The broadcast; see the module docs.
#[derive(Default)]
pub struct Broadcast {
    fired: AtomicBool,
    waiting: Mutex<Slots>,
}

/// Wakers of pending waits, by slot; freed slots are reused.
#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Broadcast {
    /// Fires it (again: nothing happens).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let mut waiting = lock(&self.waiting);
            waiting.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Completes once it has fired.
    pub fn fired(&self) -> Fired<'_> {
        Fired {
            broadcast: self,
            slot: None,
        }
    }
}

/// Completes once its [`Broadcast`] has fired; gives its slot back when dropped.
pub struct Fired<'a> {
    broadcast: &'a Broadcast,
    slot: Option<usize>,
}

impl Future for Fired<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let broadcast = self.broadcast;
        if broadcast.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut waiting = lock(&broadcast.waiting);
        // Checked again under the lock: `fire` sets the flag before it takes the wakers.
        if broadcast.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        match self.slot {
            Some(slot) => {
                if let Some(entry) = waiting.wakers.get_mut(slot) {
                    // Polled again by the same task, as a `select!` does: the waker is kept.
                    if !entry.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *entry = Some(cx.waker().clone());
                    }
                }
            }
            None => {
                let waker = Some(cx.waker().clone());
                let slot = match waiting.free.pop() {
                    Some(slot) => {
                        if let Some(entry) = waiting.wakers.get_mut(slot) {
                            *entry = waker;
                        }
                        slot
                    }
                    None => {
                        waiting.wakers.push(waker);
                        waiting.wakers.len() - 1
                    }
                };
                drop(waiting);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Fired<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut waiting = lock(&self.broadcast.waiting);
            if let Some(entry) = waiting.wakers.get_mut(slot) {
                *entry = None;
            }
            waiting.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::counting_waker::counted;
    use super::*;

    #[test]
    fn a_wait_begun_after_the_fire_completes_at_once() {
        let broadcast = Broadcast::default();
        broadcast.fire();
        broadcast.fire();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::pin!(broadcast.fired()).poll(&mut cx).is_ready());
    }

    #[test]
    fn pending_waits_are_woken_once_by_the_fire_and_then_complete() {
        let broadcast = Broadcast::default();
        let (first_count, first_waker) = counted();
        let (second_count, second_waker) = counted();
        let mut first = Box::pin(broadcast.fired());
        let mut second = Box::pin(broadcast.fired());
        assert!(first
            .as_mut()
            .poll(&mut Context::from_waker(&first_waker))
            .is_pending());
        assert!(second
            .as_mut()
            .poll(&mut Context::from_waker(&second_waker))
            .is_pending());
        // Polled again, the wait keeps its slot and its newest waker.
        assert!(second
            .as_mut()
            .poll(&mut Context::from_waker(&second_waker))
            .is_pending());
        assert_eq!(lock(&broadcast.waiting).wakers.len(), 2);
        broadcast.fire();
        assert_eq!(first_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_ready());
        assert!(second.as_mut().poll(&mut cx).is_ready());
        broadcast.fire();
        assert_eq!(first_count.0.load(Ordering::SeqCst), 1, "woken once");
    }

    #[test]
    fn a_dropped_wait_gives_its_slot_back_and_is_not_woken() {
        let broadcast = Broadcast::default();
        let (count, waker) = counted();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            let mut wait = Box::pin(broadcast.fired());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(lock(&broadcast.waiting).wakers.len(), 1, "one slot reused");
        broadcast.fire();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_fire_on_another_thread_wakes_a_pending_wait() {
        let broadcast = Arc::new(Broadcast::default());
        let (count, waker) = counted();
        let mut wait = Box::pin(broadcast.fired());
        assert!(wait
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        let firing = broadcast.clone();
        std::thread::spawn(move || firing.fire())
            .join()
            .expect("the firing thread");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(wait
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready());
    }
}
