//! The open-loop schedule (benchmarking.md rule 4): request `i` of a connection has a fixed
//! intended send time, and its latency is measured from that time, not from when it was actually
//! sent, so a stall is charged to every request that had to wait behind it (coordinated-omission
//! correction). Pure: times are offsets from the run's start, passed in by the caller.

use std::time::Duration;

/// What a connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send request now; its latency counts from `intended`.
    Send { intended: Duration },
    /// Nothing is due before this time.
    WaitUntil(Duration),
    /// The run is over for this connection.
    Done,
}

/// One connection's schedule: requests at `offset + i * interval` until `end`; samples whose
/// intended time falls before `warmup_end` are not recorded. `interval == 0` is closed loop
/// (send as soon as the previous answer is in; latency from the actual send).
#[derive(Debug, Clone)]
pub(crate) struct OpenLoop {
    offset: Duration,
    interval: Duration,
    warmup_end: Duration,
    end: Duration,
    sent: u32,
}

impl OpenLoop {
    /// Connection `index` of `connections` sharing a total `rate` (requests per second; `None`
    /// is closed loop): each sends every `connections / rate`, staggered by `1 / rate`.
    pub(crate) fn new(
        index: u32,
        connections: u32,
        rate: Option<f64>,
        warmup_end: Duration,
        end: Duration,
    ) -> Self {
        let (offset, interval) = match rate {
            Some(rate) => (
                Duration::from_secs_f64(f64::from(index) / rate),
                Duration::from_secs_f64(f64::from(connections) / rate),
            ),
            None => (Duration::ZERO, Duration::ZERO),
        };
        Self {
            offset,
            interval,
            warmup_end,
            end,
            sent: 0,
        }
    }

    /// Whether this is a closed-loop schedule.
    pub(crate) fn is_closed(&self) -> bool {
        self.interval.is_zero()
    }

    /// What to do at `now`.
    pub(crate) fn next(&mut self, now: Duration) -> Next {
        let intended = if self.is_closed() {
            now
        } else {
            self.offset + self.interval * self.sent
        };
        if intended >= self.end {
            return Next::Done;
        }
        if intended > now {
            return Next::WaitUntil(intended);
        }
        self.sent = self.sent.saturating_add(1);
        Next::Send { intended }
    }

    /// The latency to record for a request intended at `intended` and answered at `now`, or
    /// `None` when it belongs to the warm-up.
    pub(crate) fn latency(&self, intended: Duration, now: Duration) -> Option<Duration> {
        (intended >= self.warmup_end).then(|| now.saturating_sub(intended))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one connection against a fake clock whose requests take `service(i)`.
    fn simulate(mut schedule: OpenLoop, service: impl Fn(usize) -> Duration) -> Vec<Duration> {
        let mut now = Duration::ZERO;
        let mut samples = Vec::new();
        let mut i = 0;
        loop {
            match schedule.next(now) {
                Next::Done => return samples,
                Next::WaitUntil(t) => now = t,
                Next::Send { intended } => {
                    now += service(i);
                    i += 1;
                    samples.extend(schedule.latency(intended, now));
                }
            }
        }
    }

    #[test]
    fn a_stall_is_charged_to_every_request_queued_behind_it() {
        let ms = Duration::from_millis;
        let schedule = OpenLoop::new(0, 1, Some(1000.0), Duration::ZERO, ms(1000));
        let fast = Duration::from_micros(10);
        let samples = simulate(schedule, |i| if i == 10 { ms(100) } else { fast });
        assert_eq!(samples.len(), 1000, "every intended request is sent");
        let delayed: Vec<Duration> = samples
            .iter()
            .copied()
            .filter(|&l| l > Duration::from_millis(1))
            .collect();
        assert!((99..=101).contains(&delayed.len()), "{}", delayed.len());
        assert!(delayed[0] >= ms(100), "the stalled request itself");
        assert!(
            delayed.windows(2).all(|w| w[0] > w[1]),
            "the queued requests see decreasing latencies"
        );
        assert_eq!(samples[0], fast);
    }

    #[test]
    fn warmup_samples_are_not_recorded() {
        let ms = Duration::from_millis;
        let schedule = OpenLoop::new(0, 1, Some(100.0), ms(500), ms(1000));
        let samples = simulate(schedule, |_| Duration::from_micros(1));
        assert_eq!(samples.len(), 50);
    }

    #[test]
    fn connections_share_the_rate_staggered() {
        let ms = Duration::from_millis;
        let mut second = OpenLoop::new(1, 4, Some(1000.0), Duration::ZERO, ms(10));
        assert_eq!(second.next(Duration::ZERO), Next::WaitUntil(ms(1)));
        assert_eq!(second.next(ms(1)), Next::Send { intended: ms(1) });
        assert_eq!(second.next(ms(1)), Next::WaitUntil(ms(5)));
        assert_eq!(second.next(ms(9)), Next::Send { intended: ms(5) });
        assert_eq!(second.next(ms(9)), Next::Send { intended: ms(9) });
        assert_eq!(second.next(ms(9)), Next::Done);
    }

    #[test]
    fn closed_loop_sends_at_once_and_measures_from_the_send() {
        let ms = Duration::from_millis;
        let mut closed = OpenLoop::new(0, 1, None, Duration::ZERO, ms(10));
        assert!(closed.is_closed());
        assert_eq!(closed.next(ms(3)), Next::Send { intended: ms(3) });
        assert_eq!(closed.latency(ms(3), ms(4)), Some(ms(1)));
        assert_eq!(closed.next(ms(10)), Next::Done);
    }
}
