//! The listener control-channel state machine, sans-I/O (protocol §4.1, §4.6–§4.9, §8.2–§8.5,
//! Appendix B; architecture §3).
//!
//! One [`ListenerMachine`] looks after ONE control channel: it decides when to connect, when to
//! ping, when to renew the token, when the channel is dead, and how long to wait before the next
//! attempt. It never touches a socket or a clock: the driver passes `now` into every call,
//! executes the [`Action`]s, reports what happened, and sleeps until [`ListenerMachine::next_deadline`].
//!
//! ```text
//!  new ──Connect──▶ Connecting ──on_connected──▶ Online ──on_closed / keep-alive / expiry──┐
//!                      │  ▲                        │ SendPing, RenewToken                    │
//!      on_connect_failed│  │Connect                 ▼                                        │
//!      / connect timeout▼  │                                                                 │
//!                  WaitingToReconnect ◀──────────────Reconnect { reason, retry_in }──────────┘
//!  shutdown() from anywhere ──▶ Stopped
//! ```

mod reason;
mod token;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use crate::proto::hc::backoff::{Backoff, BackoffError, BackoffPolicy};

pub use reason::{ConnectFailure, ReconnectReason};
pub use token::{renew_after, TokenValidity, MIN_RENEW_AFTER_ISSUE, RENEW_BEFORE_EXPIRY};

/// Default keep-alive ping interval (protocol §4.7 \[INFER\]).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default limit for one connect attempt (protocol §8.3, .NET `OperationTimeout`; \[INFER\]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A channel without inbound traffic for this many ping intervals is dead (protocol §4.7
/// \[INFER\]).
pub const KEEPALIVE_MISSED_PINGS: u32 = 2;

/// Timer settings of one control channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Interval between keep-alive pings on a live channel.
    pub ping_interval: Duration,
    /// Longest time one connect attempt may take.
    pub connect_timeout: Duration,
    /// Reconnect back-off ladders.
    pub backoff: BackoffPolicy,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            ping_interval: DEFAULT_PING_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            backoff: BackoffPolicy::default(),
        }
    }
}

impl ListenerConfig {
    /// How long a live channel may stay silent before it counts as dead:
    /// `KEEPALIVE_MISSED_PINGS × ping_interval`.
    pub fn keepalive_timeout(&self) -> Duration {
        self.ping_interval.saturating_mul(KEEPALIVE_MISSED_PINGS)
    }

    /// Checks the rules that keep the machine from spinning.
    pub fn validate(&self) -> Result<(), ListenerConfigError> {
        if self.ping_interval.is_zero() {
            return Err(ListenerConfigError::ZeroPingInterval);
        }
        if self.connect_timeout.is_zero() {
            return Err(ListenerConfigError::ZeroConnectTimeout);
        }
        self.backoff
            .validate()
            .map_err(ListenerConfigError::Backoff)
    }
}

/// A [`ListenerConfig`] the machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerConfigError {
    /// `ping_interval` is zero: the machine would ping without pause.
    ZeroPingInterval,
    /// `connect_timeout` is zero: every attempt would time out at once.
    ZeroConnectTimeout,
    /// The back-off policy is invalid.
    Backoff(BackoffError),
}

impl fmt::Display for ListenerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroPingInterval => {
                f.write_str("listener ping_interval: must be greater than zero")
            }
            Self::ZeroConnectTimeout => {
                f.write_str("listener connect_timeout: must be greater than zero")
            }
            Self::Backoff(e) => write!(f, "listener {e}"),
        }
    }
}

impl std::error::Error for ListenerConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backoff(e) => Some(e),
            Self::ZeroPingInterval | Self::ZeroConnectTimeout => None,
        }
    }
}

/// What the channel is doing, for `/readyz`, the admin view and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// Opening the channel (also before the very first attempt at boot).
    Connecting { since: Instant },
    /// Registered with the relay since this instant.
    Online { since: Instant },
    /// Waiting out the back-off; the next attempt starts at `until`.
    WaitingToReconnect { until: Instant },
    /// [`ListenerMachine::shutdown`] was called; nothing more will happen.
    Stopped,
}

impl ListenerState {
    /// Whether the channel is registered with the relay.
    pub fn is_online(&self) -> bool {
        matches!(self, Self::Online { .. })
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open the control channel (protocol §4.1) with a freshly minted token.
    Connect,
    /// Send a WebSocket Ping on the live channel (protocol §4.7).
    SendPing,
    /// Mint a new token, send `renewToken` (protocol §4.6), then call
    /// [`ListenerMachine::on_renew_sent`].
    RenewToken,
    /// Give up the current channel or attempt (close it if still open) and count `reason`; the
    /// next [`Action::Connect`] follows after `retry_in`.
    Reconnect {
        reason: ReconnectReason,
        retry_in: Duration,
    },
}

/// The live part of an online channel.
#[derive(Debug, Clone, Copy)]
struct Live {
    since: Instant,
    last_inbound: Instant,
    next_ping: Instant,
    token: TokenValidity,
    renewal_requested: bool,
}

impl Live {
    fn renewal_due_at(&self) -> Option<Instant> {
        if self.renewal_requested {
            None
        } else {
            self.token.renew_at()
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    /// `started` is false until `poll_action` has handed out `Connect`.
    Connecting {
        since: Instant,
        started: bool,
    },
    Online(Live),
    Waiting {
        until: Instant,
    },
    Stopped,
}

/// The state machine of one listener control channel (its states: module docs).
///
/// Driver contract:
///
/// * Loop: `while let Some(action) = m.poll_action(now) { execute(action) }`, then sleep until
///   `m.next_deadline()` or until an event arrives, whichever is first. Each action is returned
///   once; `poll_action` returning `Connect` marks the attempt as started at that `now`.
/// * [`Action::Reconnect`] means: drop the current channel or connect attempt if there still is
///   one, count `reconnects_total{reason = reason.as_str()}`, log `retry_in`. Every failed attempt
///   and every lost channel yields exactly one `Reconnect`, also when the driver reported the
///   failure itself, so counting happens in one place. The following `Connect` comes when due.
/// * Report events only for the channel or attempt of the latest `Connect`; events that do not
///   fit the current state (a close after the machine already gave the channel up) are ignored.
///
/// \[INFER\] decisions, beyond those in [`backoff`](crate::proto::hc::backoff) and `token`:
///
/// * Keep-alive (protocol §4.7): a WebSocket Ping every `ping_interval` (default 30 s, as azbridge;
///   protocol §11 item 12 asks for ≤ 60 s) counted from the last ping sent, so a late poll does not
///   cause a burst. Any inbound frame (Pong, Ping, data, control message) proves the channel
///   alive; none for `2 × ping_interval` means the channel is dead → `KeepaliveTimeout`.
/// * Connect timeout: an attempt that neither succeeds nor fails within `connect_timeout`
///   (default 60 s, the .NET SDK's `OperationTimeout`, protocol §8.3) is abandoned →
///   `ConnectTimeout`, so a black-holed address cannot stall the listener forever.
/// * Token expiry seen on our side (no renewal went out in time, or a ready-made token that
///   cannot be renewed): the machine gives the channel up at `se` (`TokenExpired`) instead of
///   waiting for the relay's 1008; it climbs the same ladder as 1008.
/// * When several things are due at once: dead channel, then expired token, then renewal, then
///   ping.
#[derive(Debug, Clone)]
pub struct ListenerMachine {
    config: ListenerConfig,
    backoff: Backoff,
    rng: fastrand::Rng,
    stage: Stage,
    /// A `Reconnect` caused by a reported event, due at the instant of that event.
    announcement: Option<(Instant, Action)>,
}

impl ListenerMachine {
    /// A machine that wants to connect at `now` (the first [`Action::Connect`] is due at once).
    /// `rng` supplies the back-off jitter; seed it in tests.
    pub fn new(
        config: ListenerConfig,
        rng: fastrand::Rng,
        now: Instant,
    ) -> Result<ListenerMachine, ListenerConfigError> {
        config.validate()?;
        let backoff = Backoff::from_policy(config.backoff).map_err(ListenerConfigError::Backoff)?;
        Ok(ListenerMachine {
            config,
            backoff,
            rng,
            stage: Stage::Connecting {
                since: now,
                started: false,
            },
            announcement: None,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ListenerConfig {
        &self.config
    }

    /// What the channel is doing.
    pub fn state(&self) -> ListenerState {
        match self.stage {
            Stage::Connecting { since, .. } => ListenerState::Connecting { since },
            Stage::Online(live) => ListenerState::Online { since: live.since },
            Stage::Waiting { until } => ListenerState::WaitingToReconnect { until },
            Stage::Stopped => ListenerState::Stopped,
        }
    }

    /// The handshake succeeded (`101`, protocol §4.1); the channel runs on `token`.
    pub fn on_connected(&mut self, now: Instant, token: TokenValidity) {
        if let Stage::Connecting { started: true, .. } = self.stage {
            self.backoff.on_connected(now);
            self.stage = Stage::Online(Live {
                since: now,
                last_inbound: now,
                next_ping: later(now, self.config.ping_interval),
                token,
                renewal_requested: false,
            });
        }
    }

    /// The connect attempt failed (protocol §4.1, §8.1).
    pub fn on_connect_failed(&mut self, now: Instant, failure: ConnectFailure) {
        if let Stage::Connecting { started: true, .. } = self.stage {
            self.announce(now, ReconnectReason::from_failure(failure));
        }
    }

    /// The channel (or the attempt) ended; `close_code` is the code of the relay's close frame,
    /// `None` if none arrived (protocol §4.8, §8.2).
    pub fn on_closed(&mut self, now: Instant, close_code: Option<u16>) {
        let reason = ReconnectReason::from_close(close_code);
        match self.stage {
            Stage::Connecting { started: true, .. } => self.announce(now, reason),
            Stage::Online(_) => {
                self.backoff.on_disconnected(now);
                self.announce(now, reason);
            }
            Stage::Connecting { started: false, .. } | Stage::Waiting { .. } | Stage::Stopped => {}
        }
    }

    /// A frame of any kind arrived on the live channel (protocol §4.7).
    pub fn on_inbound_traffic(&mut self, now: Instant) {
        if let Stage::Online(live) = &mut self.stage {
            live.last_inbound = live.last_inbound.max(now);
        }
    }

    /// A `renewToken` carrying a token of this validity went out (protocol §4.6). Success has no
    /// reply; a rejection arrives as close 1008.
    pub fn on_renew_sent(&mut self, token: TokenValidity) {
        if let Stage::Online(live) = &mut self.stage {
            live.token = token;
            live.renewal_requested = false;
        }
    }

    /// Stops the machine: no further actions, no deadline; later events are ignored.
    pub fn shutdown(&mut self) {
        self.stage = Stage::Stopped;
        self.announcement = None;
    }

    /// The next action due at `now`, if any. Call until it returns `None`.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        if let Some((_, action)) = self.announcement.take() {
            return Some(action);
        }
        match self.stage {
            Stage::Stopped => None,
            Stage::Connecting {
                since,
                started: false,
            } => (now >= since).then(|| self.start_connect(now)),
            Stage::Connecting {
                since,
                started: true,
            } => (now >= later(since, self.config.connect_timeout))
                .then(|| self.give_up(now, ReconnectReason::ConnectTimeout)),
            Stage::Waiting { until } => (now >= until).then(|| self.start_connect(now)),
            Stage::Online(live) => self.poll_online(now, live),
        }
    }

    /// When [`poll_action`](Self::poll_action) will next return an action; `None` when only an
    /// event can change that (or the machine is stopped). An instant at or before `now` means an
    /// action is due already.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some((at, _)) = self.announcement {
            return Some(at);
        }
        match self.stage {
            Stage::Stopped => None,
            Stage::Connecting {
                since,
                started: false,
            } => Some(since),
            Stage::Connecting {
                since,
                started: true,
            } => Some(later(since, self.config.connect_timeout)),
            Stage::Waiting { until } => Some(until),
            Stage::Online(live) => {
                let mut deadline = self
                    .dead_at(&live)
                    .min(live.token.expires_at())
                    .min(live.next_ping);
                if let Some(renew_at) = live.renewal_due_at() {
                    deadline = deadline.min(renew_at);
                }
                Some(deadline)
            }
        }
    }

    fn poll_online(&mut self, now: Instant, live: Live) -> Option<Action> {
        if now >= self.dead_at(&live) {
            self.backoff.on_disconnected(now);
            return Some(self.give_up(now, ReconnectReason::KeepaliveTimeout));
        }
        if now >= live.token.expires_at() {
            self.backoff.on_disconnected(now);
            return Some(self.give_up(now, ReconnectReason::TokenExpired));
        }
        let Stage::Online(live) = &mut self.stage else {
            return None;
        };
        if live.renewal_due_at().is_some_and(|at| now >= at) {
            live.renewal_requested = true;
            return Some(Action::RenewToken);
        }
        if now >= live.next_ping {
            live.next_ping = later(now, self.config.ping_interval);
            return Some(Action::SendPing);
        }
        None
    }

    fn dead_at(&self, live: &Live) -> Instant {
        later(live.last_inbound, self.config.keepalive_timeout())
    }

    fn start_connect(&mut self, now: Instant) -> Action {
        self.stage = Stage::Connecting {
            since: now,
            started: true,
        };
        Action::Connect
    }

    /// Moves to `WaitingToReconnect` and returns the `Reconnect` that says so.
    fn give_up(&mut self, now: Instant, reason: ReconnectReason) -> Action {
        let retry_in = self
            .backoff
            .next_delay_for(reason.backoff_class(), self.rng.f64());
        self.stage = Stage::Waiting {
            until: later(now, retry_in),
        };
        Action::Reconnect { reason, retry_in }
    }

    /// [`give_up`](Self::give_up) for a reported event: the `Reconnect` is handed out by the
    /// next `poll_action`.
    fn announce(&mut self, now: Instant, reason: ReconnectReason) {
        let action = self.give_up(now, reason);
        self.announcement = Some((now, action));
    }
}

/// About a century: beyond any timer this daemon sets, and within `Instant`'s range.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `at + wait`, with absurdly long waits cut to [`FAR_FUTURE`] so the addition cannot overflow.
fn later(at: Instant, wait: Duration) -> Instant {
    // Invariant: on Linux an `Instant` is a timespec with 64-bit seconds, so adding at most a
    // century to a current instant succeeds; the fallback is unreachable in practice.
    at.checked_add(wait.min(FAR_FUTURE)).unwrap_or(at)
}
