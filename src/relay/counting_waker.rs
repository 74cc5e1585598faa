//! A waker that counts its wake-ups, for the unit tests of the relay's wake-up primitives
//! (`broadcast`, `handoff`).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Wake, Waker};

/// Counts its wake-ups.
#[derive(Default)]
pub(super) struct Counter(pub(super) AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A fresh counter and a waker that counts into it.
pub(super) fn counted() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (counter.clone(), Waker::from(counter))
}
