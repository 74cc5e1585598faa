//! The main thread of `hycod run` (architecture §3 "Lifecycle", docs/operations.md): it turns
//! signals into reloads and drains, and the daemon's status into systemd notifications, by
//! executing what [`Lifecycle`] decides.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::handle::{DaemonHandle, ReloadError, ReloadReport};
use super::lifecycle::{Action, Lifecycle, Observed};
use crate::runtime::signals::{self, Signal};
use crate::runtime::systemd::{Notification, Notifier};

/// How long the watchdog check waits for each worker's answer.
const WORKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What wakes the main loop.
enum Event {
    Signal(Signal),
    StatusChanged,
}

/// Signal handling, installed before the daemon starts so that no signal is missed.
pub(crate) struct Supervisor {
    events: flume::Receiver<Event>,
    sender: flume::Sender<Event>,
}

impl Supervisor {
    /// Catches SIGTERM, SIGINT and SIGHUP from now on.
    pub(crate) fn install() -> io::Result<Self> {
        let (sender, events) = flume::unbounded();
        let signals = sender.clone();
        signals::forward(move |signal| {
            let _ = signals.send(Event::Signal(signal));
        })?;
        Ok(Self { events, sender })
    }

    /// Runs until the daemon has drained (or a second stop signal); the process exit code.
    /// `config_path` is re-read on SIGHUP; `watchdog` is the `WATCHDOG=1` interval.
    pub(crate) fn run(
        self,
        mut handle: DaemonHandle,
        config_path: &Path,
        notifier: &Notifier,
        watchdog: Option<Duration>,
    ) -> u8 {
        let changed = self.sender.clone();
        handle.status.on_change(move || {
            let _ = changed.send(Event::StatusChanged);
        });
        let mut life = Lifecycle::new(watchdog, Instant::now());
        let mut drain_started: Option<Instant> = None;
        let mut actions = life.on_status(&observe(&handle));
        loop {
            while !actions.is_empty() {
                let mut next = Vec::new();
                for action in actions {
                    match action {
                        Action::Notify(notes) => send(notifier, &notes),
                        Action::Reload => {
                            reload(&mut handle, config_path);
                            next.extend(life.on_reloaded());
                        }
                        Action::Drain => {
                            drain_started = Some(Instant::now());
                            start_drain(&mut handle);
                        }
                        Action::Exit(code) => {
                            finish(&mut handle, code, drain_started);
                            return code;
                        }
                    }
                }
                next.extend(life.on_status(&observe(&handle)));
                actions = next;
            }
            let event = match life.next_deadline() {
                Some(deadline) => self.events.recv_deadline(deadline),
                None => self
                    .events
                    .recv()
                    .map_err(|_| flume::RecvTimeoutError::Disconnected),
            };
            actions = match event {
                Ok(Event::Signal(signal)) => {
                    tracing::info!(
                        signal = signal.name(),
                        phase = handle.phase().as_str(),
                        "signal received"
                    );
                    let grace = handle.config().shutdown.grace;
                    life.on_signal(signal, grace, Instant::now())
                }
                Ok(Event::StatusChanged) => life.on_status(&observe(&handle)),
                Err(_) => life.on_tick(Instant::now(), || {
                    handle.workers_responsive(WORKER_ANSWER_TIMEOUT)
                }),
            };
        }
    }
}

fn observe(handle: &DaemonHandle) -> Observed {
    let (online, total) = handle.status.online_count();
    Observed {
        phase: handle.phase(),
        ready: handle.status.is_ready(),
        online,
        total,
    }
}

fn send(notifier: &Notifier, notes: &[Notification]) {
    if let Err(error) = notifier.send(notes) {
        tracing::warn!(%error, "systemd notification not delivered");
    }
}

fn reload(handle: &mut DaemonHandle, config_path: &Path) {
    let started = Instant::now();
    match handle.reload_file(config_path) {
        Ok(report) => log_reload(&report, started.elapsed()),
        Err(error) => {
            // The file the key is in: a drop-in, or the main file.
            let (file, key) = match &error {
                ReloadError::Config(e) => {
                    (e.file.as_deref().unwrap_or(config_path), e.path.clone())
                }
                ReloadError::Tls { path, .. } | ReloadError::Forward { path, .. } => {
                    (config_path, path.clone())
                }
                ReloadError::Draining => (config_path, String::new()),
            };
            tracing::error!(config = %file.display(), key = %key, %error,
                "configuration reload rejected; the running configuration stays in effect");
        }
    }
}

fn log_reload(report: &ReloadReport, took: Duration) {
    for setting in &report.restart_required {
        tracing::warn!(key = setting.key(), "{setting}");
    }
    for name in &report.handover_incomplete {
        tracing::warn!(hybrid_connection = %name,
            "the replaced hybrid connection's new listeners were not all online in time; its old listeners were stopped anyway");
    }
    tracing::info!(
        added = ?report.added,
        removed = ?report.removed,
        changed = ?report.changed,
        unchanged = report.unchanged.len(),
        forwards_added = ?report.forwards.added,
        forwards_removed = ?report.forwards.removed,
        forwards_changed = ?report.forwards.changed,
        forwards_unchanged = report.forwards.unchanged.len(),
        duration_ms = millis(took),
        "configuration reloaded"
    );
}

fn start_drain(handle: &mut DaemonHandle) {
    let grace = handle.config().shutdown.grace;
    let in_flight = handle
        .in_flight(WORKER_ANSWER_TIMEOUT)
        .and_then(|n| u64::try_from(n).ok());
    tracing::info!(
        grace_ms = millis(grace),
        in_flight,
        "draining: listeners stop taking work; streams and requests in flight may finish"
    );
    handle.drain(grace);
}

/// Logs how the daemon ended; after a drain, waits for the worker threads to end.
fn finish(handle: &mut DaemonHandle, code: u8, drain_started: Option<Instant>) {
    match (code, drain_started) {
        (0, Some(started)) => {
            for worker in std::mem::take(&mut handle.workers) {
                let _ = worker.join();
            }
            tracing::info!(drain_ms = millis(started.elapsed()), "drained; exiting");
        }
        (_, Some(started)) => tracing::warn!(
            code,
            drain_ms = millis(started.elapsed()),
            "exiting before the drain completed"
        ),
        (_, None) => tracing::error!(code, "every worker ended unexpectedly; exiting"),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
