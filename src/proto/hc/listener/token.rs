//! When the control channel's token must be renewed, and when it expires (protocol §4.6, §8.4).
//!
//! Times are `Instant`s: the driver mints a token at a known instant with a known lifetime, so no
//! wall clock is needed; [`TokenValidity::fixed_at_unix`] converts the `se` of a ready-made token.
//!
//! \[INFER\] renewal point (protocol §8.4 recommends "~80 % of lifetime or 5 min before `se`,
//! whichever is earlier"; the SDKs renew at the nominal expiry and rely on a grace period we do not
//! want to depend on):
//!
//! ```text
//! renew_at = issued_at + max(min(80 % × lifetime, lifetime − 5 min), min(1 min, lifetime / 2))
//! ```
//!
//! * A 60 min token (the SDK default) is renewed after 48 min, 12 min before it expires.
//! * A token whose lifetime is 5 min or less would get "5 min before expiry" at or before its
//!   issue; the floor `min(1 min, lifetime / 2)` then applies, so a 3 min token is renewed 1 min
//!   after issue (not at once: that would renew continuously), a 30 s token after 15 s.
//! * A renewal point already in the past (the connect took longer than the time left) is due at
//!   once.

use std::time::{Duration, Instant};

use super::later;

/// Share of the lifetime after which a token is renewed: 4/5 = 80 % (protocol §8.4 \[INFER\]).
const RENEW_NUMERATOR: u32 = 4;
const RENEW_DENOMINATOR: u32 = 5;
/// Renew at the latest this long before expiry (protocol §8.4 \[INFER\]).
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Never renew earlier than this long after issue (or half the lifetime, if shorter) (\[INFER\]).
pub const MIN_RENEW_AFTER_ISSUE: Duration = Duration::from_secs(60);

/// The validity of the token a control channel was opened or renewed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenValidity {
    expires_at: Instant,
    /// `None` for a token this daemon cannot re-mint.
    renew_at: Option<Instant>,
}

impl TokenValidity {
    /// A token the daemon minted itself (connection string with `SharedAccessKey`), issued at
    /// `issued_at` with `se = issue + lifetime`; it is renewed on the live channel.
    pub fn minted(issued_at: Instant, lifetime: Duration) -> TokenValidity {
        TokenValidity {
            expires_at: later(issued_at, lifetime),
            renew_at: Some(later(issued_at, renew_after(lifetime))),
        }
    }

    /// A ready-made token (connection string with `SharedAccessSignature`): used as-is, never
    /// renewed (protocol §3.5).
    pub fn fixed(expires_at: Instant) -> TokenValidity {
        TokenValidity {
            expires_at,
            renew_at: None,
        }
    }

    /// [`TokenValidity::fixed`] for a token whose `se` is `expiry_unix_secs`, given that the
    /// wall clock read `now_unix_secs` at the monotonic instant `now`. An `se` in the past gives
    /// `now`.
    pub fn fixed_at_unix(now: Instant, now_unix_secs: u64, expiry_unix_secs: u64) -> TokenValidity {
        let left = Duration::from_secs(expiry_unix_secs.saturating_sub(now_unix_secs));
        TokenValidity::fixed(later(now, left))
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// When the token should be replaced on the live channel; `None` if it cannot be.
    pub fn renew_at(&self) -> Option<Instant> {
        self.renew_at
    }
}

/// How long after issue a token of this lifetime is renewed (module docs).
pub fn renew_after(lifetime: Duration) -> Duration {
    let share = lifetime / RENEW_DENOMINATOR * RENEW_NUMERATOR;
    let margin = lifetime.saturating_sub(RENEW_BEFORE_EXPIRY);
    let floor = MIN_RENEW_AFTER_ISSUE.min(lifetime / 2);
    share.min(margin).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn hour_token_renews_at_forty_eight_minutes() {
        assert_eq!(renew_after(mins(60)), mins(48));
    }

    #[test]
    fn ten_minute_token_renews_five_minutes_before_expiry() {
        assert_eq!(renew_after(mins(10)), mins(5));
    }

    #[test]
    fn three_minute_token_renews_one_minute_after_issue() {
        assert_eq!(renew_after(mins(3)), mins(1));
    }

    #[test]
    fn very_short_token_renews_at_half_its_lifetime() {
        assert_eq!(
            renew_after(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn day_token_renews_at_eighty_percent() {
        assert_eq!(renew_after(mins(24 * 60)), mins(24 * 48));
    }

    #[test]
    fn minted_token_carries_both_instants() {
        let t0 = Instant::now();
        let token = TokenValidity::minted(t0, mins(60));
        assert_eq!(token.expires_at(), t0 + mins(60));
        assert_eq!(token.renew_at(), Some(t0 + mins(48)));
    }

    #[test]
    fn fixed_token_is_never_renewed() {
        let t0 = Instant::now();
        let token = TokenValidity::fixed(t0 + mins(5));
        assert_eq!(token.renew_at(), None);
        assert_eq!(token.expires_at(), t0 + mins(5));
    }

    #[test]
    fn fixed_at_unix_converts_the_remaining_time() {
        let t0 = Instant::now();
        let token = TokenValidity::fixed_at_unix(t0, 1_700_000_000, 1_700_003_600);
        assert_eq!(token.expires_at(), t0 + mins(60));
        let past = TokenValidity::fixed_at_unix(t0, 1_700_000_000, 1_600_000_000);
        assert_eq!(past.expires_at(), t0);
    }
}
