//! A timeout whose timer is made only when it is needed.
//!
//! [`within`] gives the result of `monoio::time::timeout`: the future's output, or `Elapsed` once
//! it has been pending for the whole limit. It polls the future once first; only a future that
//! is not ready then gets a timer, which lives in a box. A write that the socket takes at once,
//! or a read whose bytes are already buffered, therefore arms no timer, and the future awaiting
//! [`within`] does not hold monoio's `Sleep` (640 bytes, 128-aligned: it would make that future
//! and every future around it larger, and they are copied whole when a task is set up,
//! docs/performance.md "Instructions per relayed request").

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use monoio::time::error::Elapsed;

/// `future`'s output, or `Elapsed` when it is still pending `limit` after its first poll.
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    if let Some(output) = poll_once(future.as_mut()).await {
        return Ok(output);
    }
    // Boxed: only a future that has to wait gets the timer, and the state of the futures that
    // await this one stays free of it.
    Box::pin(monoio::time::timeout(limit, future)).await
}

/// Polls `future` once: its output when it is ready. When it is not, it has registered the
/// current task's waker, as any poll would, and must be polled again until done.
pub(crate) async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn run<F: Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// Pending for its first `pending` polls (waking itself each time), then ready with 7.
    struct ReadyAfter {
        pending: u32,
    }

    impl Future for ReadyAfter {
        type Output = u32;

        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<u32> {
            if self.pending == 0 {
                return Poll::Ready(7);
            }
            self.pending -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_ready_future_gives_its_output() {
        let limit = Duration::ZERO;
        assert_eq!(run(within(limit, ReadyAfter { pending: 0 })), Ok(7));
    }

    #[test]
    fn a_future_that_waits_gives_its_output_within_the_limit() {
        let limit = Duration::from_secs(5);
        assert_eq!(run(within(limit, ReadyAfter { pending: 3 })), Ok(7));
    }

    #[test]
    fn a_future_still_pending_at_the_limit_times_out() {
        let started = Instant::now();
        let limit = Duration::from_millis(20);
        let result = run(within(limit, std::future::pending::<()>()));
        assert!(result.is_err());
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn the_output_wins_over_an_elapsed_limit_as_with_monoio_timeout() {
        // Ready at the poll after the timer was armed with no time left: `timeout` polls the
        // future before its timer.
        assert_eq!(
            run(within(Duration::ZERO, ReadyAfter { pending: 1 })),
            Ok(7)
        );
    }
}
