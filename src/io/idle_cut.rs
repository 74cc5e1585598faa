//! Cutting a connection that carried no frame for a while, as Azure's load balancers drop TCP
//! connections idle for about four minutes (protocol §9, docs/relay.md "Idle cut").
//!
//! The hot path only counts frames (one `Cell` increment, no clock read); [`IdleWatch`] looks at
//! the count every eighth of the limit, with the time passed in, and reports the connection idle
//! once the count has not moved for the whole limit. A connection is therefore cut between the
//! limit and an eighth more. [`idle_cut`] drives it with a timer.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How many looks per limit.
const LOOKS_PER_LIMIT: u32 = 8;

/// Watches a frame count for a standstill of `limit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleWatch {
    limit: Duration,
    seen: u64,
    since: Instant,
}

impl IdleWatch {
    /// Starts watching at `now` with the count at `count`.
    pub(crate) fn new(limit: Duration, count: u64, now: Instant) -> Self {
        Self {
            limit,
            seen: count,
            since: now,
        }
    }

    /// Looks at the count at `now`: `None` when it has not moved for the limit (idle), else
    /// how long until the next look.
    pub(crate) fn look(&mut self, count: u64, now: Instant) -> Option<Duration> {
        if count != self.seen {
            self.seen = count;
            self.since = now;
        }
        let idle_for = now.saturating_duration_since(self.since);
        if idle_for >= self.limit {
            return None;
        }
        let step = (self.limit / LOOKS_PER_LIMIT).max(Duration::from_millis(1));
        Some(step.min(self.limit - idle_for))
    }
}

/// Completes once `frames` has not moved for `limit`; never when `limit` is `None`.
pub(crate) async fn idle_cut(limit: Option<Duration>, frames: &Cell<u64>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    let mut watch = IdleWatch::new(limit, frames.get(), Instant::now());
    while let Some(wait) = watch.look(frames.get(), Instant::now()) {
        monoio::time::sleep(wait).await;
    }
}

/// Counts one frame on `frames`.
pub(crate) fn count_frame(frames: &Cell<u64>) {
    frames.set(frames.get().wrapping_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(240);

    #[test]
    fn a_count_that_stands_still_for_the_limit_is_idle() {
        let start = Instant::now();
        let mut watch = IdleWatch::new(LIMIT, 5, start);
        assert_eq!(watch.look(5, start), Some(LIMIT / 8));
        assert_eq!(
            watch.look(5, start + Duration::from_secs(230)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(watch.look(5, start + LIMIT), None);
    }

    #[test]
    fn a_frame_restarts_the_clock() {
        let start = Instant::now();
        let mut watch = IdleWatch::new(LIMIT, 0, start);
        assert!(watch.look(1, start + Duration::from_secs(200)).is_some());
        assert!(watch.look(1, start + LIMIT).is_some());
        assert_eq!(watch.look(1, start + Duration::from_secs(440)), None);
    }

    #[test]
    fn the_timer_fires_only_after_the_limit() {
        let frames = Cell::new(0);
        let limit = Duration::from_millis(80);
        crate::runtime::workers::block_on(async {
            let started = Instant::now();
            idle_cut(Some(limit), &frames).await;
            assert!(started.elapsed() >= limit);
        })
        .expect("runtime");
    }
}
