//! The relay's phases after SIGTERM or SIGINT (docs/relay.md "Stopping"), like the daemon's
//! drain (docs/operations.md "Drain"):
//!
//! ```text
//!  Serving ──stop signal──▶ Draining ──no work in flight, or the grace ends──▶ Closing ──▶ Exit(0)
//!                            StopAccepting                   CloseRemaining     every connection
//!                                                                                closed, or CLOSE_MARGIN
//!  a second stop signal in Draining or Closing ──▶ Exit(128 + signal)
//! ```
//!
//! * **Draining:** the main port stops accepting and idle connections close; streams and
//!   requests in flight (the *work*) go on, and so do the rendezvous ports and control channels
//!   they need.
//! * **Closing:** what is still open gets Close 1001 (WebSocket peers: control channels and
//!   streams) or is closed (HTTP connections); the process exits once every connection is gone,
//!   or [`CLOSE_MARGIN`] after Closing began.
//!
//! The driver passes the time and the counts in and carries out the [`Action`]s; it calls
//! [`Drain::poll`] when a count changes or [`Drain::next_deadline`] passes.

use std::time::{Duration, Instant};

/// `--shutdown-grace`'s default, as the daemon's `[shutdown] grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long the close frames of Closing may take before the process exits anyway.
pub const CLOSE_MARGIN: Duration = Duration::from_secs(2);

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop accepting on the main port and close idle connections; work in flight goes on.
    StopAccepting,
    /// Close what is still open: 1001 to WebSocket peers, HTTP connections closed.
    CloseRemaining,
    /// Exit the process with this code.
    Exit(u8),
}

/// What the driver counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    /// Streams and relayed HTTP requests being served.
    pub work: usize,
    /// Open connections of any kind (control channels, senders, rendezvous).
    pub connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining { until: Instant },
    Closing { until: Instant },
    Exited,
}

/// The relay's stop sequence.
#[derive(Debug)]
pub struct Drain {
    grace: Duration,
    phase: Phase,
}

impl Drain {
    /// A serving relay that will drain for `grace`.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            phase: Phase::Serving,
        }
    }

    /// Whether a stop signal arrived.
    pub fn is_stopping(&self) -> bool {
        self.phase != Phase::Serving
    }

    /// SIGTERM or SIGINT (`signal` is its number) arrived at `now`.
    pub fn on_stop_signal(&mut self, signal: i32, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Serving => {
                self.phase = Phase::Draining {
                    until: now + self.grace,
                };
                vec![Action::StopAccepting]
            }
            Phase::Draining { .. } | Phase::Closing { .. } => {
                self.phase = Phase::Exited;
                let code = u8::try_from(128 + signal).unwrap_or(u8::MAX);
                vec![Action::Exit(code)]
            }
            Phase::Exited => Vec::new(),
        }
    }

    /// Looks at the counts at `now`: the next step, if one is due.
    pub fn poll(&mut self, counts: InFlight, now: Instant) -> Option<Action> {
        match self.phase {
            Phase::Draining { until } if counts.work == 0 || now >= until => {
                self.phase = Phase::Closing {
                    until: now + CLOSE_MARGIN,
                };
                Some(Action::CloseRemaining)
            }
            Phase::Closing { until } if counts.connections == 0 || now >= until => {
                self.phase = Phase::Exited;
                Some(Action::Exit(0))
            }
            _ => None,
        }
    }

    /// When [`Drain::poll`] must be called even if no count changes.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { until } | Phase::Closing { until } => Some(until),
            Phase::Serving | Phase::Exited => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(work: usize, connections: usize) -> InFlight {
        InFlight { work, connections }
    }

    #[test]
    fn sigterm_stops_accepting_and_exits_0_once_the_work_and_connections_are_done() {
        let t0 = Instant::now();
        let mut d = Drain::new(Duration::from_secs(30));
        assert_eq!(d.poll(counts(0, 0), t0), None, "serving: nothing to do");
        assert_eq!(d.next_deadline(), None);
        assert_eq!(d.on_stop_signal(15, t0), vec![Action::StopAccepting]);
        assert!(d.is_stopping());
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(d.poll(counts(2, 5), t0 + Duration::from_secs(1)), None);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(d.poll(counts(0, 3), t1), Some(Action::CloseRemaining));
        assert_eq!(d.next_deadline(), Some(t1 + CLOSE_MARGIN));
        assert_eq!(d.poll(counts(0, 1), t1), None);
        assert_eq!(d.poll(counts(0, 0), t1), Some(Action::Exit(0)));
        assert_eq!(d.poll(counts(0, 0), t1), None, "exits once");
    }

    #[test]
    fn the_grace_ends_the_drain_with_work_in_flight_and_the_close_margin_ends_closing() {
        let t0 = Instant::now();
        let mut d = Drain::new(Duration::from_secs(1));
        let _ = d.on_stop_signal(15, t0);
        assert_eq!(d.poll(counts(1, 2), t0 + Duration::from_millis(999)), None);
        let end = t0 + Duration::from_secs(1);
        assert_eq!(d.poll(counts(1, 2), end), Some(Action::CloseRemaining));
        assert_eq!(
            d.poll(counts(1, 2), end + CLOSE_MARGIN),
            Some(Action::Exit(0))
        );
    }

    #[test]
    fn a_second_stop_signal_exits_at_once_with_128_plus_its_number() {
        let t0 = Instant::now();
        let mut d = Drain::new(Duration::from_secs(30));
        let _ = d.on_stop_signal(2, t0);
        assert_eq!(d.on_stop_signal(15, t0), vec![Action::Exit(143)]);
        assert_eq!(d.on_stop_signal(15, t0), vec![], "already exited");
        let mut d = Drain::new(Duration::from_secs(30));
        let _ = d.on_stop_signal(15, t0);
        let _ = d.poll(counts(0, 1), t0);
        assert_eq!(
            d.on_stop_signal(2, t0),
            vec![Action::Exit(130)],
            "also while closing"
        );
    }
}
