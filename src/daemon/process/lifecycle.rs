//! The decisions of `hycod run`'s main loop, without I/O (architecture §3 "Lifecycle"): which
//! systemd notifications to send, when to reload, drain and exit. Time is passed in; the
//! driver ([`super::supervisor`]) executes the [`Action`]s.
//!
//! Rules:
//! - `READY=1` once, the first time every hybrid connection has a listener online (what
//!   `/readyz` calls ready); `STATUS=` whenever its text changes.
//! - SIGHUP: reload. Once ready has been announced it is wrapped in `RELOADING=1` … `READY=1`
//!   (`Type=notify-reload`); before that, only the reload. Ignored while stopping.
//! - SIGTERM or SIGINT: `STOPPING=1` and drain for `[shutdown] grace`; exit 0 when every worker
//!   has ended. A second one exits at once with 128 + the signal number (the shell's code for
//!   "killed by that signal"). Workers still running [`STOP_MARGIN`] after the grace: exit 2.
//! - Every worker ended without a stop request: exit 2.
//! - `WATCHDOG=1` every watchdog interval, but only when every worker answers.

use std::time::{Duration, Instant};

use super::status::Phase;
use crate::runtime::signals::Signal;
use crate::runtime::systemd::Notification;

/// The exit code of a failure (as every other `hycod` failure, docs/operations.md).
pub(crate) const EXIT_FAILURE: u8 = 2;

/// How long after the grace the workers may take to end before the process exits anyway.
pub(crate) const STOP_MARGIN: Duration = Duration::from_secs(5);

/// What the main loop sees of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub phase: Phase,
    /// Every hybrid connection has a listener online.
    pub ready: bool,
    /// Control channels online.
    pub online: usize,
    /// Control channels configured.
    pub total: usize,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these notifications to the service manager.
    Notify(Vec<Notification>),
    /// Re-read the configuration and apply it, then call [`Lifecycle::on_reloaded`].
    Reload,
    /// Stop taking work and drain for the grace period.
    Drain,
    /// Exit the process with this code.
    Exit(u8),
}

/// The main loop's state.
pub(crate) struct Lifecycle {
    announced_ready: bool,
    last_status: Option<String>,
    /// Set once a stop was requested: exit with a failure when workers still run by then.
    stop_deadline: Option<Instant>,
    watchdog: Option<(Duration, Instant)>,
}

impl Lifecycle {
    /// `watchdog`: the `WATCHDOG=1` interval, if the service manager wants pings.
    pub(crate) fn new(watchdog: Option<Duration>, now: Instant) -> Self {
        Self {
            announced_ready: false,
            last_status: None,
            stop_deadline: None,
            watchdog: watchdog.map(|interval| (interval, now)),
        }
    }

    /// Whether a stop was requested.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop_deadline.is_some()
    }

    /// The daemon's state (may be) changed.
    pub(crate) fn on_status(&mut self, observed: &Observed) -> Vec<Action> {
        if observed.phase == Phase::Stopped {
            let code = if self.is_stopping() { 0 } else { EXIT_FAILURE };
            return vec![Action::Exit(code)];
        }
        let mut notes = Vec::new();
        if observed.ready && !self.announced_ready && !self.is_stopping() {
            self.announced_ready = true;
            notes.push(Notification::Ready);
        }
        let status = status_text(observed);
        if self.last_status.as_deref() != Some(status.as_str()) {
            self.last_status = Some(status.clone());
            notes.push(Notification::Status(status));
        }
        notify(notes)
    }

    /// A signal arrived; `grace` is the configured `[shutdown] grace`.
    pub(crate) fn on_signal(
        &mut self,
        signal: Signal,
        grace: Duration,
        now: Instant,
    ) -> Vec<Action> {
        match signal {
            Signal::Hangup if self.is_stopping() => Vec::new(),
            Signal::Hangup if self.announced_ready => {
                vec![
                    Action::Notify(vec![Notification::Reloading]),
                    Action::Reload,
                ]
            }
            Signal::Hangup => vec![Action::Reload],
            Signal::Terminate | Signal::Interrupt if self.is_stopping() => {
                let code = 128 + signal.number();
                vec![Action::Exit(u8::try_from(code).unwrap_or(EXIT_FAILURE))]
            }
            Signal::Terminate | Signal::Interrupt => {
                self.stop_deadline = Some(now + grace + STOP_MARGIN);
                vec![Action::Notify(vec![Notification::Stopping]), Action::Drain]
            }
        }
    }

    /// A reload finished (applied or rejected: either way the daemon runs a valid config).
    pub(crate) fn on_reloaded(&mut self) -> Vec<Action> {
        if self.announced_ready {
            vec![Action::Notify(vec![Notification::Ready])]
        } else {
            Vec::new()
        }
    }

    /// When [`Lifecycle::on_tick`] is due next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let watchdog = self.watchdog.map(|(_, due)| due);
        match (watchdog, self.stop_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed. `workers_answer` is asked only when a watchdog ping is due.
    pub(crate) fn on_tick(
        &mut self,
        now: Instant,
        workers_answer: impl FnOnce() -> bool,
    ) -> Vec<Action> {
        if self.stop_deadline.is_some_and(|deadline| now >= deadline) {
            return vec![Action::Exit(EXIT_FAILURE)];
        }
        match self.watchdog {
            Some((interval, due)) if now >= due => {
                self.watchdog = Some((interval, now + interval));
                if workers_answer() {
                    vec![Action::Notify(vec![Notification::Watchdog])]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }
}

fn notify(notes: Vec<Notification>) -> Vec<Action> {
    if notes.is_empty() {
        Vec::new()
    } else {
        vec![Action::Notify(notes)]
    }
}

/// The `STATUS=` text: `n/m listeners online`, prefixed while draining.
pub(crate) fn status_text(observed: &Observed) -> String {
    let counts = format!("{}/{} listeners online", observed.online, observed.total);
    match observed.phase {
        Phase::Draining => format!("draining: {counts}"),
        _ => counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(phase: Phase, online: usize, total: usize) -> Observed {
        Observed {
            phase,
            ready: online > 0,
            online,
            total,
        }
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn ready_is_announced_once_with_the_status() {
        let mut life = Lifecycle::new(None, Instant::now());
        assert_eq!(
            life.on_status(&observed(Phase::Starting, 0, 2)),
            vec![Action::Notify(vec![Notification::Status(
                "0/2 listeners online".into()
            )])]
        );
        assert_eq!(
            life.on_status(&observed(Phase::Listening, 1, 2)),
            vec![Action::Notify(vec![
                Notification::Ready,
                Notification::Status("1/2 listeners online".into())
            ])]
        );
        assert_eq!(
            life.on_status(&observed(Phase::Listening, 0, 2)),
            vec![Action::Notify(vec![Notification::Status(
                "0/2 listeners online".into()
            )])]
        );
        assert_eq!(
            life.on_status(&observed(Phase::Listening, 2, 2)),
            vec![Action::Notify(vec![Notification::Status(
                "2/2 listeners online".into()
            )])],
            "no second READY=1"
        );
    }

    #[test]
    fn an_unchanged_status_is_not_repeated() {
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_status(&observed(Phase::Listening, 2, 2));
        assert!(life.on_status(&observed(Phase::Listening, 2, 2)).is_empty());
    }

    #[test]
    fn a_reload_after_ready_is_wrapped_in_reloading_and_ready() {
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_status(&observed(Phase::Listening, 1, 1));
        assert_eq!(
            life.on_signal(Signal::Hangup, GRACE, Instant::now()),
            vec![
                Action::Notify(vec![Notification::Reloading]),
                Action::Reload
            ]
        );
        assert_eq!(
            life.on_reloaded(),
            vec![Action::Notify(vec![Notification::Ready])]
        );
    }

    #[test]
    fn a_reload_before_ready_sends_no_notification() {
        let mut life = Lifecycle::new(None, Instant::now());
        assert_eq!(
            life.on_signal(Signal::Hangup, GRACE, Instant::now()),
            vec![Action::Reload]
        );
        assert!(life.on_reloaded().is_empty());
    }

    #[test]
    fn the_first_stop_signal_drains_and_the_drained_daemon_exits_0() {
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_status(&observed(Phase::Listening, 1, 1));
        assert_eq!(
            life.on_signal(Signal::Terminate, GRACE, Instant::now()),
            vec![Action::Notify(vec![Notification::Stopping]), Action::Drain]
        );
        assert!(life.is_stopping());
        assert_eq!(
            life.on_status(&observed(Phase::Draining, 0, 1)),
            vec![Action::Notify(vec![Notification::Status(
                "draining: 0/1 listeners online".into()
            )])]
        );
        assert_eq!(
            life.on_status(&observed(Phase::Stopped, 0, 1)),
            vec![Action::Exit(0)]
        );
    }

    #[test]
    fn a_second_stop_signal_exits_at_once_with_128_plus_its_number() {
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_signal(Signal::Interrupt, GRACE, Instant::now());
        assert_eq!(
            life.on_signal(Signal::Interrupt, GRACE, Instant::now()),
            vec![Action::Exit(130)]
        );
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_signal(Signal::Interrupt, GRACE, Instant::now());
        assert_eq!(
            life.on_signal(Signal::Terminate, GRACE, Instant::now()),
            vec![Action::Exit(143)]
        );
    }

    #[test]
    fn hangup_is_ignored_while_stopping_and_ready_is_not_announced() {
        let mut life = Lifecycle::new(None, Instant::now());
        let _ = life.on_signal(Signal::Terminate, GRACE, Instant::now());
        assert!(life
            .on_signal(Signal::Hangup, GRACE, Instant::now())
            .is_empty());
        assert_eq!(
            life.on_status(&observed(Phase::Draining, 1, 1)),
            vec![Action::Notify(vec![Notification::Status(
                "draining: 1/1 listeners online".into()
            )])],
            "no READY=1 while stopping"
        );
    }

    #[test]
    fn workers_ending_on_their_own_is_a_failure() {
        let mut life = Lifecycle::new(None, Instant::now());
        assert_eq!(
            life.on_status(&observed(Phase::Stopped, 0, 1)),
            vec![Action::Exit(EXIT_FAILURE)]
        );
    }

    #[test]
    fn workers_outliving_the_grace_by_the_margin_force_an_exit() {
        let start = Instant::now();
        let mut life = Lifecycle::new(None, start);
        assert_eq!(life.next_deadline(), None);
        let _ = life.on_signal(Signal::Terminate, GRACE, start);
        let deadline = start + GRACE + STOP_MARGIN;
        assert_eq!(life.next_deadline(), Some(deadline));
        assert!(life
            .on_tick(deadline - Duration::from_millis(1), || true)
            .is_empty());
        assert_eq!(
            life.on_tick(deadline, || true),
            vec![Action::Exit(EXIT_FAILURE)]
        );
    }

    #[test]
    fn the_watchdog_pings_only_when_every_worker_answers() {
        let start = Instant::now();
        let interval = Duration::from_secs(15);
        let mut life = Lifecycle::new(Some(interval), start);
        assert_eq!(life.next_deadline(), Some(start));
        assert_eq!(
            life.on_tick(start, || true),
            vec![Action::Notify(vec![Notification::Watchdog])]
        );
        assert_eq!(life.next_deadline(), Some(start + interval));
        assert!(
            life.on_tick(start + Duration::from_secs(1), || panic!("not due"))
                .is_empty(),
            "workers are not asked before the ping is due"
        );
        assert!(
            life.on_tick(start + interval, || false).is_empty(),
            "no ping for unresponsive workers"
        );
        assert_eq!(
            life.on_tick(start + interval * 2, || true),
            vec![Action::Notify(vec![Notification::Watchdog])]
        );
    }
}
