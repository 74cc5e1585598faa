//! `--find-max`: the highest open-loop rate a path sustains with p99 under a bound and no
//! errors. The rate doubles from `--rate` until a step fails, then bisects between the last
//! passing and the first failing rate for `--refine-steps` steps. Pure: the caller runs each
//! step and reports whether it passed.

use crate::cli::MAX_RATE;

/// The search state.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSearch {
    /// The rate to try next.
    pub rate: f64,
    /// The highest rate that passed so far.
    pub best: Option<f64>,
    /// The lowest rate that failed so far.
    failed: Option<f64>,
    refine_left: u32,
}

/// Whether a step sustained its rate: p99 under the bound, no errors, and at least 95 % of
/// the intended requests answered (a generator that falls behind does not pass).
pub fn passed(p99_us: u64, max_p99_us: u64, errors: u64, achieved: f64, intended: f64) -> bool {
    p99_us < max_p99_us && errors == 0 && achieved >= 0.95 * intended
}

impl RateSearch {
    /// Starts at `rate`, refining `refine_steps` times after the first failure.
    pub fn new(rate: f64, refine_steps: u32) -> Self {
        Self {
            rate,
            best: None,
            failed: None,
            refine_left: refine_steps,
        }
    }

    /// Records the outcome of the step at `self.rate`; the next rate to try, or None when the
    /// search is over.
    pub fn next(&mut self, passed: bool) -> Option<f64> {
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
                ((best + failed) / 2.0).round()
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
        let mut s = RateSearch::new(1000.0, 2);
        assert_eq!(s.next(true), Some(2000.0));
        assert_eq!(s.next(true), Some(4000.0));
        assert_eq!(s.next(false), Some(3000.0));
        assert_eq!(s.next(true), Some(3500.0));
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, Some(3000.0));
    }

    #[test]
    fn a_failing_first_step_ends_with_no_rate() {
        let mut s = RateSearch::new(1000.0, 4);
        assert_eq!(s.next(false), None);
        assert_eq!(s.best, None);
    }

    #[test]
    fn the_rate_never_passes_the_bound() {
        let mut s = RateSearch::new(MAX_RATE * 0.75, 4);
        assert_eq!(s.next(true), Some(MAX_RATE));
        assert_eq!(s.next(true), None);
    }

    #[test]
    fn a_step_passes_only_under_the_p99_bound_without_errors_at_rate() {
        assert!(passed(4999, 5000, 0, 1000.0, 1000.0));
        assert!(!passed(5000, 5000, 0, 1000.0, 1000.0));
        assert!(!passed(100, 5000, 1, 1000.0, 1000.0));
        assert!(!passed(100, 5000, 0, 900.0, 1000.0));
    }
}
