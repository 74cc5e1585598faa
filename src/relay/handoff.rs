//! A one-value handoff between two tasks that may run on different workers: a relayed HTTP
//! request's task waits for the one event its listener's control channel has for it (the
//! response, a refusal, the listener's departure), and that channel is served by whichever
//! worker accepted the listener.
//!
//! Contract: [`Sender::send`] takes the sender, so at most one value passes. The [`Receiver`]
//! completes with the value once it is sent, or with [`Closed`] once the sender is dropped
//! without sending. A value sent after the receiver is gone is dropped with the last handle.
//!
//! One allocation per handoff and a mutex taken per send, poll and drop, instead of a general
//! channel's queue and waiter hooks; a receiver polled again by the same task keeps its waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::shared::lock;

/// A new handoff: the sending and the receiving handle.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (
        Sender {
            slot: Some(slot.clone()),
        },
        Receiver { slot },
    )
}

/// What both handles share.
struct Slot<T> {
    /// The value sent and not yet received.
    value: Option<T>,
    /// The receiver's task, while it waits.
    waker: Option<Waker>,
    /// The sender sent or is gone: no value comes after this.
    closed: bool,
}

/// The sending handle: sends one value, or closes the handoff when dropped.
pub(crate) struct Sender<T> {
    /// `None` once sent or closed.
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Sender<T> {
    /// Hands `value` over and wakes the receiver.
    pub(crate) fn send(mut self, value: T) {
        self.finish(Some(value));
    }

    /// Leaves `value` (if any) in the slot, closes it and wakes the receiver; once only.
    fn finish(&mut self, value: Option<T>) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let waker = {
            let mut slot = lock(&slot);
            slot.value = value;
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// The receiving handle: a future of the value.
pub(crate) struct Receiver<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Ok(value));
        }
        if slot.closed {
            return Poll::Ready(Err(Closed));
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    /// Gives the waiting task's waker back, so a later send wakes nothing.
    fn drop(&mut self) {
        lock(&self.slot).waker = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::counting_waker::counted;
    use super::*;

    fn poll<T>(rx: &mut Receiver<T>, waker: &Waker) -> Poll<Result<T, Closed>> {
        Pin::new(rx).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_value_sent_before_the_first_poll_is_received() {
        let (tx, mut rx) = channel();
        tx.send(7);
        assert_eq!(poll(&mut rx, Waker::noop()), Poll::Ready(Ok(7)));
    }

    #[test]
    fn a_waiting_receiver_is_woken_once_by_the_send_and_gets_the_value() {
        let (tx, mut rx) = channel();
        let (count, waker) = counted();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        // Polled again by the same task, as a `select!` does: nothing changes.
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        tx.send("event");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &waker), Poll::Ready(Ok("event")));
    }

    #[test]
    fn a_sender_dropped_unsent_closes_the_handoff_and_wakes_the_receiver() {
        let (tx, mut rx) = channel::<u8>();
        let (count, waker) = counted();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &waker), Poll::Ready(Err(Closed)));
    }

    #[test]
    fn the_newest_task_polling_is_the_one_woken() {
        let (tx, mut rx) = channel();
        let (first, first_waker) = counted();
        let (second, second_waker) = counted();
        assert_eq!(poll(&mut rx, &first_waker), Poll::Pending);
        assert_eq!(poll(&mut rx, &second_waker), Poll::Pending);
        tx.send(1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_wakes_nothing_and_drops_the_value() {
        let (tx, mut rx) = channel();
        let (count, waker) = counted();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        drop(rx);
        let value = Arc::new(());
        tx.send(value.clone());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(Arc::strong_count(&value), 1, "the sent value was dropped");
    }

    #[test]
    fn a_send_on_another_thread_wakes_a_waiting_receiver() {
        let (tx, mut rx) = channel();
        let (count, waker) = counted();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        std::thread::spawn(move || tx.send(String::from("far")))
            .join()
            .expect("the sending thread");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &waker), Poll::Ready(Ok("far".to_owned())));
    }
}
