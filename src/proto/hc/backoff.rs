//! Reconnect back-off for listener control channels (protocol §4.9, §8.3, §8.5; architecture §3).
//!
//! Pure arithmetic: the caller passes in the time (`Instant`) and the randomness (`rand01`), so
//! every delay is reproducible in tests.
//!
//! Two ladders share one attempt counter:
//!
//! * **Normal** ([`BackoffClass::Transient`]): full-jitter exponential back-off,
//!   `delay = rand01 × min(cap, base × 2^attempt)` — defaults 1 s and 30 s.
//! * **Long** ([`BackoffClass::Auth`], [`BackoffClass::NotFound`]): for errors an operator must fix
//!   (401/403/404 on listen). `delay = long_base + rand01 × (min(long_cap,
//!   long_base × 2^attempt) − long_base)` — at least 30 s, at most 5 min.
//!
//! [`BackoffClass::TokenExpired`] (close 1008) reconnects at once with a fresh token, but only as
//! the first failure of a series; see [`Backoff::next_delay_for`].
//!
//! The back-off never gives up, including at boot: every call returns a finite delay, however many
//! attempts have failed.

use std::fmt;
use std::time::{Duration, Instant};

/// Default first-step ceiling of the normal ladder.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// Default cap of the normal ladder: the top of the SDKs' ladder (protocol §4.9, §8.3).
pub const DEFAULT_CAP: Duration = Duration::from_secs(30);
/// Default minimum delay of the long ladder (\[INFER\], protocol §8.5 "back off long").
pub const DEFAULT_LONG_BASE: Duration = Duration::from_secs(30);
/// Default cap of the long ladder (\[INFER\], protocol §8.5).
pub const DEFAULT_LONG_CAP: Duration = Duration::from_secs(5 * 60);
/// Default uptime after which a connection counts as healthy and the ladder restarts (\[INFER\]).
pub const DEFAULT_HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Which ladder a failure climbs (protocol §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackoffClass {
    /// Network loss, service error (5xx, close 1011), a gateway going away (close 1001),
    /// timeouts: the normal ladder.
    Transient,
    /// 401/403 on listen: credentials or rights are wrong — long ladder, alert.
    Auth,
    /// 404 on listen: the hybrid connection is missing or disabled — long ladder, alert.
    NotFound,
    /// Close 1008 or a token that expired on our side: reconnect at once with a fresh token.
    TokenExpired,
}

impl BackoffClass {
    /// Whether this class uses the long ladder, i.e. an operator should be alerted (protocol §8.5).
    pub fn is_long(self) -> bool {
        matches!(self, Self::Auth | Self::NotFound)
    }
}

/// The numbers of both ladders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Ceiling of the first normal delay; doubles per attempt.
    pub base: Duration,
    /// Largest normal delay.
    pub cap: Duration,
    /// Smallest long delay, and ceiling of the first one; the ceiling doubles per attempt.
    pub long_base: Duration,
    /// Largest long delay.
    pub long_cap: Duration,
    /// A connection that stayed up at least this long restarts the ladder when it ends.
    pub healthy_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
            long_base: DEFAULT_LONG_BASE,
            long_cap: DEFAULT_LONG_CAP,
            healthy_after: DEFAULT_HEALTHY_AFTER,
        }
    }
}

impl BackoffPolicy {
    /// Checks the rules that keep the back-off from spinning: non-zero bases, caps not below
    /// their bases.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.base.is_zero() {
            return Err(BackoffError::ZeroBase);
        }
        if self.cap < self.base {
            return Err(BackoffError::CapBelowBase {
                base: self.base,
                cap: self.cap,
            });
        }
        if self.long_base.is_zero() {
            return Err(BackoffError::ZeroLongBase);
        }
        if self.long_cap < self.long_base {
            return Err(BackoffError::LongCapBelowLongBase {
                long_base: self.long_base,
                long_cap: self.long_cap,
            });
        }
        Ok(())
    }
}

/// A back-off policy that would make the reconnect loop spin or shrink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffError {
    /// `base` is zero: every normal delay would be zero (a reconnect storm).
    ZeroBase,
    /// `cap` is below `base`.
    CapBelowBase { base: Duration, cap: Duration },
    /// `long_base` is zero: 401/403/404 would be retried at once.
    ZeroLongBase,
    /// `long_cap` is below `long_base`.
    LongCapBelowLongBase {
        long_base: Duration,
        long_cap: Duration,
    },
}

impl fmt::Display for BackoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroBase => f.write_str("backoff base: must be greater than zero"),
            Self::CapBelowBase { base, cap } => {
                write!(f, "backoff cap: {cap:?} is below the base {base:?}")
            }
            Self::ZeroLongBase => f.write_str("backoff long_base: must be greater than zero"),
            Self::LongCapBelowLongBase {
                long_base,
                long_cap,
            } => write!(
                f,
                "backoff long_cap: {long_cap:?} is below the long_base {long_base:?}"
            ),
        }
    }
}

impl std::error::Error for BackoffError {}

/// The back-off state of one control channel: the policy, the attempt counter, and when the
/// current connection came up.
///
/// \[INFER\] decisions (protocol §4.9 gives the SDKs' ladder 0, 1, 2, 5, 10, 30 s; for errors an
/// operator must fix the sources only say "back off long, alert", with no numbers):
///
/// * Full jitter replaces the SDKs' fixed ladder so that many listeners (every worker of every
///   daemon on the hybrid connection) do not reconnect in lock-step after a relay restart. The
///   cap of 30 s keeps the top of the SDKs' ladder.
/// * The long ladder starts at 30 s (never hammer a namespace that answers 401/403/404) and is
///   capped at 5 min, so a fixed credential or re-created hybrid connection is picked up within
///   minutes without a restart. Unlike the .NET SDK, a 404 does not stop the listener (protocol
///   §4.9): the daemon must never give up.
/// * The attempt counter resets only after a connection stayed up for `healthy_after` (default
///   60 s = two keep-alive intervals), not on every successful connect as the SDKs do, so a relay
///   that accepts and immediately drops the channel still meets a growing delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    connected_at: Option<Instant>,
}

impl Backoff {
    /// A back-off with this normal ladder and the default long ladder and healthy period.
    pub fn new(base: Duration, cap: Duration) -> Result<Backoff, BackoffError> {
        Self::from_policy(BackoffPolicy {
            base,
            cap,
            ..BackoffPolicy::default()
        })
    }

    /// A back-off with every number given.
    pub fn from_policy(policy: BackoffPolicy) -> Result<Backoff, BackoffError> {
        policy.validate()?;
        Ok(Backoff {
            policy,
            attempt: 0,
            connected_at: None,
        })
    }

    /// The policy in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next delay of the normal ladder: `rand01 × min(cap, base × 2^attempt)`.
    pub fn next_delay(&mut self, rand01: f64) -> Duration {
        self.next_delay_for(BackoffClass::Transient, rand01)
    }

    /// The next delay for a failure of this class, then one more attempt is counted.
    ///
    /// `rand01` is a uniform random number in `[0, 1]`; values outside are clamped and NaN counts
    /// as 0. [`BackoffClass::TokenExpired`] gives zero when it is the first failure since the last
    /// reset (protocol §8.5: "mint a new token, reconnect at once"), and the normal ladder
    /// otherwise (\[INFER\]: a relay that keeps answering 1008, e.g. because of clock skew, must
    /// not cause a reconnect storm).
    pub fn next_delay_for(&mut self, class: BackoffClass, rand01: f64) -> Duration {
        let fraction = clamp_unit(rand01);
        let p = &self.policy;
        let delay = match class {
            BackoffClass::Transient => full_jitter(p.base, p.cap, self.attempt, fraction),
            BackoffClass::TokenExpired if self.attempt == 0 => Duration::ZERO,
            BackoffClass::TokenExpired => full_jitter(p.base, p.cap, self.attempt, fraction),
            BackoffClass::Auth | BackoffClass::NotFound => {
                let ceiling = ceiling(p.long_base, p.long_cap, self.attempt);
                p.long_base + (ceiling - p.long_base).mul_f64(fraction)
            }
        };
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Restarts both ladders at their first step.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A connection came up at `now`.
    pub fn on_connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection ended at `now`; if it had stayed up for `healthy_after`, the ladder
    /// restarts.
    pub fn on_disconnected(&mut self, now: Instant) {
        if let Some(since) = self.connected_at.take() {
            if now.saturating_duration_since(since) >= self.policy.healthy_after {
                self.reset();
            }
        }
    }
}

/// `min(cap, base × 2^attempt)`, saturating instead of overflowing.
fn ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt)).min(cap)
}

/// `fraction × ceiling(...)`: AWS's "full jitter".
fn full_jitter(base: Duration, cap: Duration, attempt: u32, fraction: f64) -> Duration {
    ceiling(base, cap, attempt).mul_f64(fraction)
}

/// Clamps to `[0, 1]`; NaN becomes 0 so that `Duration::mul_f64` cannot panic.
fn clamp_unit(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn default_backoff() -> Backoff {
        Backoff::from_policy(BackoffPolicy::default()).unwrap()
    }

    #[test]
    fn normal_ladder_doubles_up_to_the_cap_with_full_jitter() {
        let mut b = default_backoff();
        let maxima: Vec<Duration> = (0..8).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            maxima,
            [1, 2, 4, 8, 16, 30, 30, 30].map(secs).to_vec(),
            "rand01 = 1.0 gives the cap-limited ceiling"
        );
        b.reset();
        for _ in 0..8 {
            assert_eq!(b.next_delay(0.0), Duration::ZERO, "rand01 = 0.0 gives zero");
        }
    }

    #[test]
    fn jitter_scales_the_ceiling_linearly() {
        let mut b = default_backoff();
        b.next_delay(0.5);
        b.next_delay(0.5);
        assert_eq!(b.next_delay(0.25), secs(1), "0.25 × 4 s");
        assert_eq!(b.next_delay(0.5), secs(4), "0.5 × 8 s");
    }

    #[test]
    fn out_of_range_randomness_is_clamped() {
        let mut b = default_backoff();
        assert_eq!(b.next_delay(7.0), secs(1));
        assert_eq!(b.next_delay(-3.0), Duration::ZERO);
        assert_eq!(b.next_delay(f64::NAN), Duration::ZERO);
        assert_eq!(b.next_delay(f64::INFINITY), secs(8));
    }

    #[test]
    fn never_gives_up_after_a_thousand_failures() {
        let mut b = default_backoff();
        for _ in 0..1000 {
            b.next_delay(0.3);
        }
        assert_eq!(b.attempt(), 1000);
        assert_eq!(b.next_delay(1.0), secs(30));
        assert_eq!(b.next_delay_for(BackoffClass::Auth, 1.0), secs(300));
    }

    #[test]
    fn attempt_counter_saturates_instead_of_overflowing() {
        let mut b = default_backoff();
        b.attempt = u32::MAX;
        assert_eq!(b.next_delay(1.0), secs(30));
        assert_eq!(b.attempt(), u32::MAX);
    }

    #[test]
    fn long_ladder_is_at_least_thirty_seconds_and_at_most_five_minutes() {
        for class in [BackoffClass::Auth, BackoffClass::NotFound] {
            let mut low = default_backoff();
            let mut high = default_backoff();
            let lows: Vec<Duration> = (0..6).map(|_| low.next_delay_for(class, 0.0)).collect();
            let highs: Vec<Duration> = (0..6).map(|_| high.next_delay_for(class, 1.0)).collect();
            assert_eq!(lows, [30; 6].map(secs).to_vec(), "{class:?}");
            assert_eq!(
                highs,
                [30, 60, 120, 240, 300, 300].map(secs).to_vec(),
                "{class:?}"
            );
        }
    }

    #[test]
    fn long_ladder_jitter_lies_between_base_and_ceiling() {
        let mut b = default_backoff();
        b.next_delay_for(BackoffClass::Auth, 0.0);
        assert_eq!(b.next_delay_for(BackoffClass::Auth, 0.5), secs(45));
    }

    #[test]
    fn token_expired_is_immediate_only_as_the_first_failure() {
        let mut b = default_backoff();
        assert_eq!(
            b.next_delay_for(BackoffClass::TokenExpired, 1.0),
            Duration::ZERO
        );
        assert_eq!(b.next_delay_for(BackoffClass::TokenExpired, 1.0), secs(2));
        assert_eq!(b.next_delay_for(BackoffClass::TokenExpired, 1.0), secs(4));
    }

    #[test]
    fn healthy_connection_resets_the_ladder() {
        let t0 = Instant::now();
        let mut b = default_backoff();
        for _ in 0..5 {
            b.next_delay(1.0);
        }
        b.on_connected(t0);
        b.on_disconnected(t0 + DEFAULT_HEALTHY_AFTER);
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(1.0), secs(1));
    }

    #[test]
    fn short_lived_connection_keeps_climbing() {
        let t0 = Instant::now();
        let mut b = default_backoff();
        for _ in 0..5 {
            b.next_delay(1.0);
        }
        b.on_connected(t0);
        b.on_disconnected(t0 + DEFAULT_HEALTHY_AFTER - Duration::from_millis(1));
        assert_eq!(b.attempt(), 5);
        assert_eq!(b.next_delay(1.0), secs(30));
    }

    #[test]
    fn disconnect_without_connect_changes_nothing() {
        let t0 = Instant::now();
        let mut b = default_backoff();
        b.next_delay(1.0);
        b.on_disconnected(t0 + secs(3600));
        assert_eq!(b.attempt(), 1);
    }

    #[test]
    fn reset_restarts_the_ladder() {
        let mut b = default_backoff();
        for _ in 0..4 {
            b.next_delay(1.0);
        }
        b.reset();
        assert_eq!(b.next_delay(1.0), secs(1));
    }

    #[test]
    fn new_keeps_default_long_ladder() {
        let b = Backoff::new(Duration::from_millis(100), secs(5)).unwrap();
        assert_eq!(b.policy().base, Duration::from_millis(100));
        assert_eq!(b.policy().cap, secs(5));
        assert_eq!(b.policy().long_base, DEFAULT_LONG_BASE);
        assert_eq!(b.policy().long_cap, DEFAULT_LONG_CAP);
        assert_eq!(b.policy().healthy_after, DEFAULT_HEALTHY_AFTER);
    }

    #[test]
    fn zero_base_is_rejected() {
        assert_eq!(
            Backoff::new(Duration::ZERO, secs(30)).unwrap_err(),
            BackoffError::ZeroBase
        );
    }

    #[test]
    fn cap_below_base_is_rejected() {
        assert_eq!(
            Backoff::new(secs(10), secs(5)).unwrap_err(),
            BackoffError::CapBelowBase {
                base: secs(10),
                cap: secs(5)
            }
        );
    }

    #[test]
    fn zero_long_base_is_rejected() {
        let policy = BackoffPolicy {
            long_base: Duration::ZERO,
            ..BackoffPolicy::default()
        };
        assert_eq!(
            Backoff::from_policy(policy).unwrap_err(),
            BackoffError::ZeroLongBase
        );
    }

    #[test]
    fn long_cap_below_long_base_is_rejected() {
        let policy = BackoffPolicy {
            long_cap: secs(10),
            ..BackoffPolicy::default()
        };
        assert_eq!(
            Backoff::from_policy(policy).unwrap_err(),
            BackoffError::LongCapBelowLongBase {
                long_base: secs(30),
                long_cap: secs(10)
            }
        );
    }

    #[test]
    fn errors_name_the_offending_field() {
        assert!(BackoffError::ZeroBase.to_string().contains("base"));
        assert!(BackoffError::CapBelowBase {
            base: secs(2),
            cap: secs(1)
        }
        .to_string()
        .starts_with("backoff cap:"));
        assert!(BackoffError::ZeroLongBase
            .to_string()
            .starts_with("backoff long_base:"));
        assert!(BackoffError::LongCapBelowLongBase {
            long_base: secs(2),
            long_cap: secs(1)
        }
        .to_string()
        .starts_with("backoff long_cap:"));
    }

    #[test]
    fn only_auth_and_not_found_are_long() {
        assert!(BackoffClass::Auth.is_long());
        assert!(BackoffClass::NotFound.is_long());
        assert!(!BackoffClass::Transient.is_long());
        assert!(!BackoffClass::TokenExpired.is_long());
    }
}
