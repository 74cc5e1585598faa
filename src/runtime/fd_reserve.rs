//! One spare file descriptor, so that a daemon out of descriptors can still tell the sender
//! why (docs/reliability.md "File descriptor exhaustion").
//!
//! Rejecting a stream (protocol §5.2) takes a new socket to the relay. When the stream failed
//! because the process hit RLIMIT_NOFILE (EMFILE), that socket would fail too, and the sender
//! would wait for the relay's timeout instead of seeing 503. The daemon therefore holds one
//! descriptor (`/dev/null`) from start-up; [`release`] closes it just before such a rejection
//! and [`hold`] takes it again afterwards (when descriptors are free again).

use std::fs::File;
use std::io;
use std::sync::{Mutex, PoisonError};

/// The spare descriptor, shared by all workers.
static SPARE: Mutex<Option<File>> = Mutex::new(None);

/// Opens the spare descriptor unless it is held already.
pub fn hold() -> io::Result<()> {
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.is_none() {
        *spare = Some(File::open("/dev/null")?);
    }
    Ok(())
}

/// Closes the spare descriptor, freeing one slot; whether one was held.
pub fn release() -> bool {
    SPARE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_is_released_once_and_held_again() {
        hold().expect("open /dev/null");
        assert!(release());
        assert!(!release(), "nothing left to release");
        hold().expect("open /dev/null");
        hold().expect("holding twice keeps one");
        assert!(release());
    }
}
