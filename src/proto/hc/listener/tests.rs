//! Manual-clock tests of the listener state machine: no sleeps, no real time. Every instant is
//! `t0 + offset`; jitter comes from a seeded generator that [`Mirror`] replays to know the exact
//! delay the machine must hand out.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::hc::backoff::{Backoff, BackoffClass, BackoffError};

const SEED: u64 = 0x5eed;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn new_machine(t0: Instant) -> ListenerMachine {
    ListenerMachine::new(
        ListenerConfig::default(),
        fastrand::Rng::with_seed(SEED),
        t0,
    )
    .unwrap()
}

/// A machine that went online at `t0` with an hour-long token minted at `t0`.
fn online_at(t0: Instant) -> ListenerMachine {
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    m.on_connected(t0, TokenValidity::minted(t0, mins(60)));
    m
}

/// Replays the machine's back-off with the same seed, so tests know each exact delay.
struct Mirror {
    backoff: Backoff,
    rng: fastrand::Rng,
}

impl Mirror {
    fn new() -> Mirror {
        Mirror {
            backoff: Backoff::from_policy(BackoffPolicy::default()).unwrap(),
            rng: fastrand::Rng::with_seed(SEED),
        }
    }

    fn next(&mut self, class: BackoffClass) -> Duration {
        self.backoff.next_delay_for(class, self.rng.f64())
    }
}

fn reconnect(reason: ReconnectReason, retry_in: Duration) -> Option<Action> {
    Some(Action::Reconnect { reason, retry_in })
}

/// What a simulated driver does with each action.
#[derive(Clone, Copy)]
struct Behaviour {
    /// `Some(failure)`: every connect fails so; `None`: every connect succeeds.
    connect_failure: Option<ConnectFailure>,
    /// Lifetime of the tokens minted for connects and renewals.
    token_lifetime: Duration,
    /// Whether each ping is answered with a pong at once.
    answer_pings: bool,
    /// Whether `RenewToken` is carried out (and reported with `on_renew_sent`).
    renew: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            connect_failure: None,
            token_lifetime: mins(60),
            answer_pings: true,
            renew: true,
        }
    }
}

/// A driver on a manual clock: sleeps to each deadline, executes what is due, and checks on
/// every step that `next_deadline` tells exactly when the next action becomes due.
struct Driver {
    t0: Instant,
    now: Instant,
    machine: ListenerMachine,
    behaviour: Behaviour,
    /// Every action with its offset from `t0`.
    log: Vec<(Duration, Action)>,
}

impl Driver {
    fn new(t0: Instant, behaviour: Behaviour) -> Driver {
        Driver {
            t0,
            now: t0,
            machine: new_machine(t0),
            behaviour,
            log: Vec::new(),
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    /// Advances the clock deadline by deadline up to `t0 + until`.
    fn run_until(&mut self, until: Duration) {
        let end = self.at(until);
        self.drain();
        while let Some(deadline) = self.machine.next_deadline() {
            if deadline > end {
                break;
            }
            let probe = (deadline - ms(1)).max(self.now);
            assert_eq!(
                self.machine.poll_action(probe),
                None,
                "an action came before next_deadline {:?}",
                deadline - self.t0
            );
            self.now = deadline;
            let before = self.log.len();
            self.drain();
            assert!(
                self.log.len() > before,
                "nothing was due at next_deadline {:?}",
                deadline - self.t0
            );
        }
        self.now = end;
        self.drain();
    }

    /// Executes every action due now.
    fn drain(&mut self) {
        for _ in 0..16 {
            let Some(action) = self.machine.poll_action(self.now) else {
                if let Some(deadline) = self.machine.next_deadline() {
                    assert!(
                        deadline > self.now,
                        "poll_action gave nothing but a deadline is due"
                    );
                }
                return;
            };
            self.log.push((self.now - self.t0, action));
            self.execute(action);
        }
        panic!("more than 16 actions due at one instant");
    }

    fn execute(&mut self, action: Action) {
        let b = self.behaviour;
        match action {
            Action::Connect => match b.connect_failure {
                Some(failure) => self.machine.on_connect_failed(self.now, failure),
                None => self
                    .machine
                    .on_connected(self.now, TokenValidity::minted(self.now, b.token_lifetime)),
            },
            Action::SendPing if b.answer_pings => self.machine.on_inbound_traffic(self.now),
            Action::RenewToken if b.renew => self
                .machine
                .on_renew_sent(TokenValidity::minted(self.now, b.token_lifetime)),
            Action::SendPing | Action::RenewToken | Action::Reconnect { .. } => {}
        }
    }

    /// The offsets at which `wanted` was executed.
    fn times_of(&self, wanted: Action) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|(_, a)| *a == wanted)
            .map(|(t, _)| *t)
            .collect()
    }
}

#[test]
fn first_connect_is_due_at_boot() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.state(), ListenerState::Connecting { since: t0 });
    assert_eq!(m.next_deadline(), Some(t0));
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    assert_eq!(m.poll_action(t0), None, "each action is returned once");
    assert_eq!(m.state(), ListenerState::Connecting { since: t0 });
    assert_eq!(m.next_deadline(), Some(t0 + DEFAULT_CONNECT_TIMEOUT));
}

#[test]
fn connect_marks_the_attempt_start_at_the_poll_instant() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0 + secs(5)), Some(Action::Connect));
    assert_eq!(
        m.state(),
        ListenerState::Connecting {
            since: t0 + secs(5)
        }
    );
    assert_eq!(
        m.next_deadline(),
        Some(t0 + secs(5) + DEFAULT_CONNECT_TIMEOUT)
    );
}

#[test]
fn full_lifecycle() {
    let t0 = Instant::now();
    let mut d = Driver::new(t0, Behaviour::default());
    d.run_until(mins(100));
    assert_eq!(d.log[0], (Duration::ZERO, Action::Connect));
    assert_eq!(d.machine.state(), ListenerState::Online { since: t0 });
    assert!(d.machine.state().is_online());
    assert_eq!(d.times_of(Action::RenewToken), [mins(48), mins(96)]);
    assert_eq!(d.times_of(Action::SendPing).len(), 200, "one ping per 30 s");

    // The relay recycles the channel (close 1011) after a healthy period: first step of the
    // normal ladder.
    let closed_at = d.at(mins(100));
    d.machine.on_closed(closed_at, Some(1011));
    assert_eq!(d.machine.next_deadline(), Some(closed_at));
    let Some(Action::Reconnect { reason, retry_in }) = d.machine.poll_action(closed_at) else {
        panic!("expected a reconnect");
    };
    assert_eq!(reason, ReconnectReason::Closed1011);
    assert_eq!(retry_in, Mirror::new().next(BackoffClass::Transient));
    assert!(retry_in <= secs(1));
    assert_eq!(
        d.machine.state(),
        ListenerState::WaitingToReconnect {
            until: closed_at + retry_in
        }
    );
    assert_eq!(d.machine.next_deadline(), Some(closed_at + retry_in));

    d.run_until(mins(101));
    assert_eq!(
        d.machine.state(),
        ListenerState::Online {
            since: closed_at + retry_in
        }
    );
    assert_eq!(
        d.times_of(Action::Connect),
        [Duration::ZERO, mins(100) + retry_in]
    );

    d.machine.shutdown();
    assert_eq!(d.machine.state(), ListenerState::Stopped);
    assert_eq!(d.machine.next_deadline(), None);
    assert_eq!(d.machine.poll_action(d.at(mins(500))), None);
}

#[test]
fn pings_follow_the_interval_while_pongs_arrive() {
    let t0 = Instant::now();
    let mut d = Driver::new(t0, Behaviour::default());
    d.run_until(mins(5));
    let expected: Vec<Duration> = (1..=10).map(|i| secs(30 * i)).collect();
    assert_eq!(d.times_of(Action::SendPing), expected);
    assert!(d.machine.state().is_online());
}

#[test]
fn late_poll_schedules_the_next_ping_from_the_late_one() {
    let t0 = Instant::now();
    let mut m = online_at(t0);
    assert_eq!(m.next_deadline(), Some(t0 + secs(30)));
    m.on_inbound_traffic(t0 + secs(40));
    assert_eq!(m.poll_action(t0 + secs(45)), Some(Action::SendPing));
    assert_eq!(
        m.poll_action(t0 + secs(45)),
        None,
        "no burst of missed pings"
    );
    assert_eq!(m.next_deadline(), Some(t0 + secs(75)));
}

#[test]
fn silent_channel_dies_exactly_two_intervals_after_the_last_traffic() {
    let t0 = Instant::now();
    let mut m = online_at(t0);
    assert_eq!(m.poll_action(t0 + secs(30)), Some(Action::SendPing));
    assert_eq!(m.next_deadline(), Some(t0 + secs(60)));
    assert_eq!(m.poll_action(t0 + secs(60) - ms(1)), None);
    let expected = Mirror::new().next(BackoffClass::Transient);
    assert_eq!(
        m.poll_action(t0 + secs(60)),
        reconnect(ReconnectReason::KeepaliveTimeout, expected)
    );
    assert_eq!(
        m.state(),
        ListenerState::WaitingToReconnect {
            until: t0 + secs(60) + expected
        }
    );
}

#[test]
fn any_inbound_traffic_keeps_the_channel_alive() {
    let t0 = Instant::now();
    let mut m = online_at(t0);
    m.on_inbound_traffic(t0 + secs(50));
    m.on_inbound_traffic(t0 + secs(10));
    assert_eq!(m.poll_action(t0 + secs(30)), Some(Action::SendPing));
    assert_eq!(m.poll_action(t0 + secs(60)), Some(Action::SendPing));
    assert_eq!(m.poll_action(t0 + secs(90)), Some(Action::SendPing));
    assert_eq!(
        m.next_deadline(),
        Some(t0 + secs(110)),
        "an older report does not move the last traffic back"
    );
    assert_eq!(m.poll_action(t0 + secs(110) - ms(1)), None);
    assert!(matches!(
        m.poll_action(t0 + secs(110)),
        Some(Action::Reconnect {
            reason: ReconnectReason::KeepaliveTimeout,
            ..
        })
    ));
}

#[test]
fn keepalive_timeout_follows_the_configured_interval() {
    let t0 = Instant::now();
    let config = ListenerConfig {
        ping_interval: secs(10),
        ..ListenerConfig::default()
    };
    assert_eq!(config.keepalive_timeout(), secs(20));
    let mut m = ListenerMachine::new(config, fastrand::Rng::with_seed(SEED), t0).unwrap();
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    m.on_connected(t0, TokenValidity::minted(t0, mins(60)));
    assert_eq!(m.poll_action(t0 + secs(10)), Some(Action::SendPing));
    assert_eq!(m.poll_action(t0 + secs(20) - ms(1)), None);
    assert!(matches!(
        m.poll_action(t0 + secs(20)),
        Some(Action::Reconnect {
            reason: ReconnectReason::KeepaliveTimeout,
            ..
        })
    ));
}

#[test]
fn hour_token_is_renewed_at_forty_eight_minutes() {
    let t0 = Instant::now();
    let mut d = Driver::new(t0, Behaviour::default());
    d.run_until(mins(48) - ms(1));
    assert!(d.times_of(Action::RenewToken).is_empty());
    d.run_until(mins(48));
    assert_eq!(d.times_of(Action::RenewToken), [mins(48)]);
}

#[test]
fn three_minute_token_is_renewed_one_minute_after_each_issue() {
    let t0 = Instant::now();
    let mut d = Driver::new(
        t0,
        Behaviour {
            token_lifetime: mins(3),
            ..Behaviour::default()
        },
    );
    d.run_until(mins(4));
    assert_eq!(
        d.times_of(Action::RenewToken),
        [mins(1), mins(2), mins(3), mins(4)]
    );
    assert!(d.machine.state().is_online());
}

#[test]
fn token_already_past_its_renewal_point_is_renewed_at_once() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    let connected = t0 + secs(90);
    m.on_connected(connected, TokenValidity::minted(t0, mins(3)));
    assert_eq!(m.next_deadline(), Some(t0 + mins(1)));
    assert_eq!(m.poll_action(connected), Some(Action::RenewToken));
    assert_eq!(m.poll_action(connected), None, "one request per token");
}

#[test]
fn renewal_comes_before_a_ping_due_at_the_same_instant() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    m.on_connected(t0, TokenValidity::minted(t0 - secs(30), mins(3)));
    m.on_inbound_traffic(t0 + secs(30));
    assert_eq!(m.poll_action(t0 + secs(30)), Some(Action::RenewToken));
    assert_eq!(m.poll_action(t0 + secs(30)), Some(Action::SendPing));
}

#[test]
fn unrenewed_token_expires_on_our_side() {
    let t0 = Instant::now();
    let mut d = Driver::new(
        t0,
        Behaviour {
            token_lifetime: mins(3),
            renew: false,
            ..Behaviour::default()
        },
    );
    d.run_until(mins(3));
    assert_eq!(d.times_of(Action::RenewToken), [mins(1)]);
    assert!(d.log.contains(&(
        mins(3),
        Action::Reconnect {
            reason: ReconnectReason::TokenExpired,
            retry_in: Duration::ZERO
        }
    )));
    assert_eq!(d.times_of(Action::Connect), [Duration::ZERO, mins(3)]);
}

#[test]
fn fixed_token_is_never_renewed_and_expires_at_se() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    m.on_connected(t0, TokenValidity::fixed_at_unix(t0, 1_000, 1_600));
    let mut now = t0;
    while let Some(deadline) = m.next_deadline() {
        now = deadline;
        match m.poll_action(now) {
            Some(Action::SendPing) => m.on_inbound_traffic(now),
            Some(Action::Reconnect { reason, retry_in }) => {
                assert_eq!(reason, ReconnectReason::TokenExpired);
                assert_eq!(retry_in, Duration::ZERO);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(now, t0 + mins(10));
}

#[test]
fn close_codes_pick_reason_label_and_backoff() {
    let cases = [
        (
            Some(1008),
            ReconnectReason::Closed1008,
            "closed_1008",
            BackoffClass::TokenExpired,
        ),
        (
            Some(1001),
            ReconnectReason::Closed1001,
            "closed_1001",
            BackoffClass::Transient,
        ),
        (
            Some(1011),
            ReconnectReason::Closed1011,
            "closed_1011",
            BackoffClass::Transient,
        ),
        (
            Some(1000),
            ReconnectReason::ClosedOther,
            "closed_other",
            BackoffClass::Transient,
        ),
        (
            None,
            ReconnectReason::ConnectionLost,
            "connection_lost",
            BackoffClass::Transient,
        ),
    ];
    for (code, reason, label, class) in cases {
        let t0 = Instant::now();
        let mut m = online_at(t0);
        let closed = t0 + secs(5);
        m.on_closed(closed, code);
        let expected = Mirror::new().next(class);
        assert_eq!(
            m.poll_action(closed),
            reconnect(reason, expected),
            "{code:?}"
        );
        assert_eq!(reason.as_str(), label);
        assert_eq!(m.next_deadline(), Some(closed + expected), "{code:?}");
        match class {
            BackoffClass::TokenExpired => assert_eq!(expected, Duration::ZERO),
            BackoffClass::NotFound => assert_eq!(expected, secs(30)),
            _ => assert!(expected <= secs(1), "{code:?}"),
        }
    }
}

#[test]
fn connect_failures_pick_reason_label_and_backoff() {
    let cases = [
        (
            ConnectFailure::Status(401),
            ReconnectReason::Http401,
            "http_401",
        ),
        (
            ConnectFailure::Status(403),
            ReconnectReason::Http403,
            "http_403",
        ),
        (
            ConnectFailure::Status(404),
            ReconnectReason::Http404,
            "http_404",
        ),
        (
            ConnectFailure::Status(500),
            ReconnectReason::Http5xx,
            "http_5xx",
        ),
        (
            ConnectFailure::Status(429),
            ReconnectReason::HttpOther,
            "http_other",
        ),
        (ConnectFailure::Io, ReconnectReason::IoError, "io_error"),
        (
            ConnectFailure::Handshake,
            ReconnectReason::HandshakeError,
            "handshake_error",
        ),
    ];
    for (failure, reason, label) in cases {
        let t0 = Instant::now();
        let mut m = new_machine(t0);
        assert_eq!(m.poll_action(t0), Some(Action::Connect));
        m.on_connect_failed(t0 + secs(2), failure);
        let expected = Mirror::new().next(reason.backoff_class());
        assert_eq!(
            m.poll_action(t0 + secs(2)),
            reconnect(reason, expected),
            "{failure:?}"
        );
        assert_eq!(reason.as_str(), label);
        if reason.needs_operator() {
            assert_eq!(expected, secs(30), "long back-off for {failure:?}");
        } else {
            assert!(expected <= secs(1), "normal back-off for {failure:?}");
        }
    }
}

#[test]
fn long_backoff_grows_to_five_minutes_and_stays() {
    let t0 = Instant::now();
    let mut d = Driver::new(
        t0,
        Behaviour {
            connect_failure: Some(ConnectFailure::Status(404)),
            ..Behaviour::default()
        },
    );
    d.run_until(mins(120));
    let mut mirror = Mirror::new();
    let delays: Vec<Duration> = d
        .log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Reconnect { reason, retry_in } => {
                assert_eq!(*reason, ReconnectReason::Http404);
                Some(*retry_in)
            }
            _ => None,
        })
        .collect();
    assert!(delays.len() > 20);
    for delay in delays {
        assert_eq!(delay, mirror.next(BackoffClass::NotFound));
        assert!(delay >= secs(30) && delay <= mins(5));
    }
}

#[test]
fn close_during_the_handshake_counts_as_a_failed_attempt() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    m.on_closed(t0 + secs(1), Some(1011));
    assert!(matches!(
        m.poll_action(t0 + secs(1)),
        Some(Action::Reconnect {
            reason: ReconnectReason::Closed1011,
            ..
        })
    ));
}

#[test]
fn hanging_connect_times_out() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    assert_eq!(m.poll_action(t0), Some(Action::Connect));
    assert_eq!(m.poll_action(t0 + DEFAULT_CONNECT_TIMEOUT - ms(1)), None);
    let expected = Mirror::new().next(BackoffClass::Transient);
    assert_eq!(
        m.poll_action(t0 + DEFAULT_CONNECT_TIMEOUT),
        reconnect(ReconnectReason::ConnectTimeout, expected)
    );
}

#[test]
fn unreachable_relay_is_retried_forever_from_boot() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    let mut mirror = Mirror::new();
    let mut now = t0;
    for attempt in 0..1000 {
        assert_eq!(
            m.poll_action(now),
            Some(Action::Connect),
            "attempt {attempt}"
        );
        m.on_connect_failed(now, ConnectFailure::Io);
        let expected = mirror.next(BackoffClass::Transient);
        assert_eq!(
            m.poll_action(now),
            reconnect(ReconnectReason::IoError, expected)
        );
        assert!(expected <= secs(30));
        assert_eq!(m.next_deadline(), Some(now + expected));
        now += expected;
    }
    assert_eq!(m.poll_action(now), Some(Action::Connect));
}

#[test]
fn repeated_1008_falls_back_to_the_normal_ladder() {
    let t0 = Instant::now();
    let mut m = online_at(t0);
    let mut mirror = Mirror::new();
    m.on_closed(t0 + secs(1), Some(1008));
    assert_eq!(
        m.poll_action(t0 + secs(1)),
        reconnect(ReconnectReason::Closed1008, Duration::ZERO),
        "first 1008: reconnect at once"
    );
    mirror.next(BackoffClass::TokenExpired);
    assert_eq!(m.poll_action(t0 + secs(1)), Some(Action::Connect));
    m.on_connected(t0 + secs(1), TokenValidity::minted(t0 + secs(1), mins(60)));
    m.on_closed(t0 + secs(2), Some(1008));
    let expected = mirror.next(BackoffClass::TokenExpired);
    assert!(expected > Duration::ZERO);
    assert_eq!(
        m.poll_action(t0 + secs(2)),
        reconnect(ReconnectReason::Closed1008, expected)
    );
}

/// Fails `failures` connects, then stays online for `uptime`, then sees close 1011; returns the
/// delay handed out for that close and the one the mirror computes.
fn delay_after_uptime(failures: u32, uptime: Duration) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    let mut mirror = Mirror::new();
    let mut now = t0;
    for _ in 0..failures {
        assert_eq!(m.poll_action(now), Some(Action::Connect));
        m.on_connect_failed(now, ConnectFailure::Io);
        let Some(Action::Reconnect { retry_in, .. }) = m.poll_action(now) else {
            panic!("expected a reconnect");
        };
        mirror.next(BackoffClass::Transient);
        now += retry_in;
    }
    assert_eq!(m.poll_action(now), Some(Action::Connect));
    m.on_connected(now, TokenValidity::minted(now, mins(60)));
    mirror.backoff.on_connected(now);
    let mut t = now;
    while t < now + uptime {
        t = (t + secs(30)).min(now + uptime);
        m.on_inbound_traffic(t);
        while m.poll_action(t).is_some() {}
    }
    m.on_closed(now + uptime, Some(1011));
    mirror.backoff.on_disconnected(now + uptime);
    let Some(Action::Reconnect { retry_in, .. }) = m.poll_action(now + uptime) else {
        panic!("expected a reconnect");
    };
    (retry_in, mirror.next(BackoffClass::Transient))
}

#[test]
fn healthy_period_resets_the_ladder() {
    let (got, expected) = delay_after_uptime(6, secs(60));
    assert_eq!(got, expected);
    assert!(got <= secs(1), "first step again after a healthy minute");
}

#[test]
fn short_connection_keeps_climbing_the_ladder() {
    let (got, expected) = delay_after_uptime(6, secs(60) - ms(1));
    assert_eq!(got, expected);
    let (reset, _) = delay_after_uptime(6, secs(60));
    assert_ne!(got, reset, "the ceiling is 30 s, not 1 s");
}

#[test]
fn events_that_do_not_fit_the_state_are_ignored() {
    let t0 = Instant::now();
    let mut m = new_machine(t0);
    m.on_connected(t0, TokenValidity::minted(t0, mins(60)));
    m.on_connect_failed(t0, ConnectFailure::Io);
    m.on_closed(t0, Some(1011));
    assert_eq!(m.state(), ListenerState::Connecting { since: t0 });
    assert_eq!(
        m.poll_action(t0),
        Some(Action::Connect),
        "no connect was started yet"
    );

    m.on_connect_failed(t0 + secs(1), ConnectFailure::Io);
    let Some(Action::Reconnect { retry_in, .. }) = m.poll_action(t0 + secs(1)) else {
        panic!("expected a reconnect");
    };
    let waiting = m.state();
    let until = t0 + secs(1) + retry_in;
    assert_eq!(waiting, ListenerState::WaitingToReconnect { until });
    m.on_closed(t0 + secs(1), None);
    m.on_connect_failed(t0 + secs(1), ConnectFailure::Io);
    m.on_connected(t0 + secs(1), TokenValidity::minted(t0, mins(60)));
    m.on_inbound_traffic(t0 + secs(1));
    m.on_renew_sent(TokenValidity::minted(t0, mins(60)));
    assert_eq!(m.state(), waiting);
    assert_eq!(m.next_deadline(), Some(until));
    assert_eq!(m.poll_action(t0 + secs(1)), None);
}

#[test]
fn shutdown_stops_everything_including_a_pending_reconnect() {
    let t0 = Instant::now();
    let mut m = online_at(t0);
    m.on_closed(t0 + secs(1), Some(1011));
    m.shutdown();
    assert_eq!(m.state(), ListenerState::Stopped);
    assert_eq!(m.next_deadline(), None);
    assert_eq!(m.poll_action(t0 + mins(60)), None);
    m.on_connected(t0 + secs(2), TokenValidity::minted(t0, mins(60)));
    m.on_closed(t0 + secs(2), Some(1011));
    assert_eq!(m.state(), ListenerState::Stopped);
    assert_eq!(m.poll_action(t0 + mins(60)), None);
}

#[test]
fn next_deadline_is_exact_under_random_events() {
    let t0 = Instant::now();
    let mut chaos = fastrand::Rng::with_seed(7);
    let failures = [
        ConnectFailure::Io,
        ConnectFailure::Status(401),
        ConnectFailure::Status(404),
        ConnectFailure::Status(503),
        ConnectFailure::Handshake,
    ];
    let closes = [None, Some(1001), Some(1008), Some(1011), Some(1000)];
    let mut d = Driver::new(
        t0,
        Behaviour {
            token_lifetime: mins(4),
            ..Behaviour::default()
        },
    );
    let mut offset = Duration::ZERO;
    for _ in 0..2000 {
        offset += ms(chaos.u64(1..120_000));
        d.behaviour.connect_failure = chaos
            .bool()
            .then(|| failures[chaos.usize(..failures.len())]);
        d.behaviour.answer_pings = chaos.u8(..10) != 0;
        d.behaviour.renew = chaos.u8(..10) != 0;
        d.run_until(offset);
        if chaos.u8(..4) == 0 {
            d.machine
                .on_closed(d.now, closes[chaos.usize(..closes.len())]);
            d.drain();
        }
    }
    let reconnects = d
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Reconnect { .. }))
        .count();
    assert!(reconnects > 100, "the scenario exercised reconnects");
    assert!(!d.times_of(Action::RenewToken).is_empty());
}

#[test]
fn zero_ping_interval_is_rejected() {
    let config = ListenerConfig {
        ping_interval: Duration::ZERO,
        ..ListenerConfig::default()
    };
    let err =
        ListenerMachine::new(config, fastrand::Rng::with_seed(SEED), Instant::now()).unwrap_err();
    assert_eq!(err, ListenerConfigError::ZeroPingInterval);
    assert!(err.to_string().contains("ping_interval"));
}

#[test]
fn zero_connect_timeout_is_rejected() {
    let config = ListenerConfig {
        connect_timeout: Duration::ZERO,
        ..ListenerConfig::default()
    };
    let err =
        ListenerMachine::new(config, fastrand::Rng::with_seed(SEED), Instant::now()).unwrap_err();
    assert_eq!(err, ListenerConfigError::ZeroConnectTimeout);
    assert!(err.to_string().contains("connect_timeout"));
}

#[test]
fn invalid_backoff_is_rejected() {
    let config = ListenerConfig {
        backoff: BackoffPolicy {
            base: Duration::ZERO,
            ..BackoffPolicy::default()
        },
        ..ListenerConfig::default()
    };
    let err =
        ListenerMachine::new(config, fastrand::Rng::with_seed(SEED), Instant::now()).unwrap_err();
    assert_eq!(err, ListenerConfigError::Backoff(BackoffError::ZeroBase));
    assert!(err.to_string().contains("base"));
    assert!(std::error::Error::source(&err).is_some());
}
