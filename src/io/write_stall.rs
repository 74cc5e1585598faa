//! Noticing a write that makes no progress (docs/reliability.md "Faults"): a peer
//! that stops reading blocks a pump's write to it, and a pump blocked in that write reads
//! nothing else, so it cannot see the other side leave (the relay's Close, a sender's
//! departure). Every write operation is timed: one `write(2)` / `writev(2)` (or TLS write)
//! completes as soon as the peer takes any byte, so an operation pending for the
//! `write_stall_timeout` means no progress for that long, and the stream ends.
//!
//! Sans-I/O: [`WriteProgress`] records when an operation began and [`check`] decides, with the
//! time passed in, whether one stalled or when to look again. The socket side is
//! [`crate::io::watched_write`].

use std::time::{Duration, Instant};

/// The write operation of one socket that is waiting for the peer, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteProgress {
    pending_since: Option<Instant>,
}

impl WriteProgress {
    /// A write operation was handed to the socket at `now`.
    pub(crate) fn started(&mut self, now: Instant) {
        self.pending_since = Some(now);
    }

    /// The operation completed (bytes taken, or an error): the peer is not holding it back.
    pub(crate) fn finished(&mut self) {
        self.pending_since = None;
    }

    /// Whether an operation is waiting; one abandoned mid-way stays pending, which marks the
    /// socket as in the middle of a frame.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending_since.is_some()
    }

    /// How long the pending operation has waited at `now` (zero when none is pending).
    pub(crate) fn waited(&self, now: Instant) -> Duration {
        self.pending_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StallCheck {
    /// The write at this position of the checked ones made no progress for the limit.
    Stalled(usize),
    /// Nothing stalled yet; no write can reach the limit before this much time has passed.
    RecheckAfter(Duration),
}

/// Checks `writes` at `now` against `limit`. The first write whose operation has waited at
/// least `limit` is stalled; otherwise the answer is the time until the oldest pending
/// operation reaches the limit, or the whole `limit` when none is pending (an operation that
/// starts later reaches it later still).
pub(crate) fn check(
    writes: impl IntoIterator<Item = WriteProgress>,
    limit: Duration,
    now: Instant,
) -> StallCheck {
    let mut recheck = limit;
    for (index, write) in writes.into_iter().enumerate() {
        if !write.is_pending() {
            continue;
        }
        let waited = write.waited(now);
        if waited >= limit {
            return StallCheck::Stalled(index);
        }
        recheck = recheck.min(limit - waited);
    }
    StallCheck::RecheckAfter(recheck)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    fn pending_since(at: Instant) -> WriteProgress {
        let mut write = WriteProgress::default();
        write.started(at);
        write
    }

    #[test]
    fn no_pending_write_never_stalls_and_is_checked_again_after_the_whole_limit() {
        let now = Instant::now();
        let mut done = pending_since(now);
        done.finished();
        assert!(!done.is_pending());
        assert_eq!(
            check([WriteProgress::default(), done], LIMIT, now + LIMIT * 10),
            StallCheck::RecheckAfter(LIMIT)
        );
    }

    #[test]
    fn a_write_pending_for_less_than_the_limit_is_checked_again_when_it_would_reach_it() {
        let start = Instant::now();
        let write = pending_since(start);
        assert_eq!(
            write.waited(start + Duration::from_secs(45)),
            Duration::from_secs(45)
        );
        assert_eq!(
            check([write], LIMIT, start + Duration::from_secs(45)),
            StallCheck::RecheckAfter(Duration::from_secs(15))
        );
    }

    #[test]
    fn a_write_pending_for_the_limit_is_stalled() {
        let start = Instant::now();
        assert_eq!(
            check([pending_since(start)], LIMIT, start + LIMIT),
            StallCheck::Stalled(0)
        );
    }

    #[test]
    fn progress_restarts_the_clock() {
        let start = Instant::now();
        let mut write = pending_since(start);
        write.finished();
        write.started(start + Duration::from_secs(59));
        assert_eq!(
            check([write], LIMIT, start + Duration::from_secs(61)),
            StallCheck::RecheckAfter(Duration::from_secs(58))
        );
    }

    #[test]
    fn the_stalled_write_is_named_and_the_oldest_pending_one_sets_the_recheck() {
        let start = Instant::now();
        let older = pending_since(start);
        let newer = pending_since(start + Duration::from_secs(30));
        assert_eq!(
            check(
                [WriteProgress::default(), newer, older],
                LIMIT,
                start + Duration::from_secs(50)
            ),
            StallCheck::RecheckAfter(Duration::from_secs(10))
        );
        assert_eq!(
            check(
                [WriteProgress::default(), newer, older],
                LIMIT,
                start + LIMIT
            ),
            StallCheck::Stalled(2)
        );
    }

    #[test]
    fn a_clock_before_the_start_counts_as_no_wait() {
        let start = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            check(
                [pending_since(start)],
                LIMIT,
                start - Duration::from_secs(5)
            ),
            StallCheck::RecheckAfter(LIMIT)
        );
    }
}
