//! `--find-max`: the highest open-loop rate a path sustains with p99 under a bound and no
//! errors. The rate doubles from `--rate` until a step fails, then bisects between the last
//! passing and the first failing rate for `--refine-steps` steps. Pure: the caller runs each
//! try and reports whether it passed.
//!
//! A step is a rate; it passes when any of its tries passes. A failed try is re-run up to
//! `--step-retries` times before the step counts as failed: on a shared machine a single
//! 1–20 ms wake-up (benchmarking.md, "Rules") pushes one short try's p99 over the bound, and
//! noise only ever adds latency, so a later passing try at the same rate is the truer figure.

use crate::cli::MAX_RATE;

/// The search state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateSearch {
    /// The rate to try next.
    pub rate: f64,
    /// The highest rate that passed so far.
    pub best: Option<f64>,
    /// The lowest rate that failed so far.
    failed: Option<f64>,
    refine_left: u32,
    /// Re-runs allowed after a failed try of one step.
    retries: u32,
    /// Failed tries of the current step so far.
    failed_tries: u32,
    /// Steps that needed at least one re-run.
    retried_steps: u32,
}

/// Whether a try sustained its rate: p99 under the bound, no errors, and at least 95 % of
/// the intended requests answered (a generator that falls behind does not pass).
pub(crate) fn passed(
    p99_us: u64,
    max_p99_us: u64,
    errors: u64,
    achieved: f64,
    intended: f64,
) -> bool {
    p99_us < max_p99_us && errors == 0 && achieved >= 0.95 * intended
}

impl RateSearch {
    /// Starts at `rate`, refining `refine_steps` times after the first failure and re-running
    /// a failed try up to `retries` times.
    pub(crate) fn new(rate: f64, refine_steps: u32, retries: u32) -> Self {
        Self {
            rate,
            best: None,
            failed: None,
            refine_left: refine_steps,
            retries,
            failed_tries: 0,
            retried_steps: 0,
        }
    }

    /// How many steps needed a re-run (whatever their final outcome).
    pub(crate) fn retried_steps(&self) -> u32 {
        self.retried_steps
    }

    /// The 1-based number of the next try of the current step (1 for a fresh step).
    pub(crate) fn attempt(&self) -> u32 {
        self.failed_tries.saturating_add(1)
    }

    /// Records the outcome of a try at `self.rate`; the next rate to try (the same rate for
    /// a re-run), or None when the search is over.
    pub(crate) fn next(&mut self, passed: bool) -> Option<f64> {
        if !passed && self.failed_tries < self.retries {
            if self.failed_tries == 0 {
                self.retried_steps = self.retried_steps.saturating_add(1);
            }
            self.failed_tries += 1;
            return Some(self.rate);
        }
        self.failed_tries = 0;
        if passed {
            self.best = Some(self.rate);
        } else {
            self.failed = Some(self.rate);
        }
        let next = match (self.best, self.failed) {
            (Some(best), None) => {
                if best >= MAX_RATE {
                    return None;
                }
                (best * 2.0).min(MAX_RATE)
            }
            (None, Some(_)) => return None,
            (Some(best), Some(failed)) => {
                if self.refine_left == 0 {
                    return None;
                }
                self.refine_left -= 1;
                let middle = ((best + failed) / 2.0).round();
                if middle <= best || middle >= failed {
                    return None;
                }
                middle
            }
            (None, None) => return None,
        };
        self.rate = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_doubles_then_bisects() {
        let mut s = RateSearch::new(1000.0, 2, 0);
        assert_eq!(s.next(true), Some(2000.0));
        assert_eq!(s.next(true), Some(4000.0));
        assert_eq!(s.next(false), Some(3000.0));
        assert_eq!(s.next(true), Some(3500.0));
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, Some(3000.0));
        assert_eq!(s.retried_steps(), 0);
    }

    #[test]
    fn a_failing_first_step_ends_with_no_rate() {
        let mut s = RateSearch::new(1000.0, 4, 0);
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, None);
    }

    #[test]
    fn the_rate_never_passes_the_bound() {
        let mut s = RateSearch::new(MAX_RATE * 0.75, 4, 0);
        assert_eq!(s.next(true), Some(MAX_RATE));
        assert_eq!(s.next(true), None);
    }

    #[test]
    fn one_noisy_try_does_not_end_the_doubling() {
        let mut s = RateSearch::new(1000.0, 0, 1);
        assert_eq!(s.next(true), Some(2000.0));
        assert_eq!(s.attempt(), 1);
        assert_eq!(s.next(false), Some(2000.0), "the failed try is re-run");
        assert_eq!(s.attempt(), 2);
        assert_eq!(
            s.next(true),
            Some(4000.0),
            "the re-run passed: keep doubling"
        );
        assert_eq!(s.attempt(), 1);
        assert_eq!(s.best, Some(2000.0));
        assert_eq!(s.retried_steps(), 1);
    }

    #[test]
    fn a_step_fails_only_when_every_try_fails() {
        let mut s = RateSearch::new(1000.0, 1, 2);
        assert_eq!(s.next(true), Some(2000.0));
        assert_eq!(s.next(false), Some(2000.0));
        assert_eq!(s.next(false), Some(2000.0));
        assert_eq!(
            s.next(false),
            Some(1500.0),
            "three failed tries fail the step"
        );
        assert_eq!(s.best, Some(1000.0));
        assert_eq!(s.retried_steps(), 1);
    }

    #[test]
    fn every_retried_step_is_counted_once() {
        let mut s = RateSearch::new(1000.0, 1, 1);
        assert_eq!(s.next(false), Some(1000.0));
        assert_eq!(s.next(true), Some(2000.0));
        assert_eq!(s.next(false), Some(2000.0));
        assert_eq!(s.next(false), Some(1500.0));
        assert_eq!(s.next(false), Some(1500.0));
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, Some(1000.0));
        assert_eq!(s.retried_steps(), 3);
    }

    #[test]
    fn a_first_step_that_fails_every_try_ends_with_no_rate() {
        let mut s = RateSearch::new(1000.0, 4, 1);
        assert_eq!(s.next(false), Some(1000.0));
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, None);
        assert_eq!(s.retried_steps(), 1);
    }

    #[test]
    fn bisection_stops_when_no_rate_lies_between() {
        let mut s = RateSearch::new(1.0, 5, 0);
        assert_eq!(s.next(true), Some(2.0));
        assert_eq!(s.next(false), None, "1.5 rounds to 2, which already failed");
        assert_eq!(s.best, Some(1.0));
    }

    #[test]
    fn a_step_passes_only_under_the_p99_bound_without_errors_at_rate() {
        assert!(passed(4999, 5000, 0, 1000.0, 1000.0));
        assert!(!passed(5000, 5000, 0, 1000.0, 1000.0));
        assert!(!passed(100, 5000, 1, 1000.0, 1000.0));
        assert!(!passed(100, 5000, 0, 900.0, 1000.0));
    }
}
