//! Running a load: `--threads` OS threads, one monoio runtime each, each driving its share of
//! the connections; results merged at the end.
//!
//! Open loop: one pacer thread walks the whole [`OpenLoop`] schedule (request `j` at `j / rate`,
//! for connection `j % connections`, which is each connection's own staggered schedule) and
//! hands each intended send time to its connection over a channel. It sleeps with
//! `std::thread::sleep` (hrtimer, ~50 µs slack) because monoio's timer wheel ticks in whole
//! milliseconds, which would add up to 1 ms of the generator's own lateness to every sample.
//! A busy connection finds its due times queued, so a stall is charged to every request behind
//! it (coordinated-omission correction). Closed loop needs no pacer.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Common;
use crate::conn::{self, Workload};
use crate::failure::Failure;
use crate::open_loop::{Next, OpenLoop};
use crate::results::Results;
use crate::target::{Endpoint, TargetError};

/// Round trips and errors so far, for the progress line.
#[derive(Default)]
pub(crate) struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Where a connection's intended send times come from.
enum Due {
    /// Open loop: from the pacer thread, until it hangs up.
    Paced(flume::Receiver<Duration>),
    /// Closed loop: as soon as the previous answer is in.
    Closed(OpenLoop),
}

impl Due {
    async fn next(&mut self, start: Instant) -> Option<Duration> {
        match self {
            Due::Paced(times) => times.recv_async().await.ok(),
            Due::Closed(schedule) => match schedule.next(start.elapsed()) {
                Next::Send { intended } => Some(intended),
                Next::WaitUntil(_) | Next::Done => None,
            },
        }
    }
}

/// Walks the open-loop schedule from `start`, sending each intended time to connection
/// `j % senders.len()`; returns when the schedule ends (dropping the senders ends the
/// connections).
fn pace(mut schedule: OpenLoop, start: Instant, senders: Vec<flume::Sender<Duration>>) {
    let mut j = 0usize;
    loop {
        match schedule.next(start.elapsed()) {
            Next::Done => return,
            Next::WaitUntil(at) => std::thread::sleep(at.saturating_sub(start.elapsed())),
            Next::Send { intended } => {
                if let Some(sender) = senders.get(j % senders.len()) {
                    let _ = sender.send(intended);
                }
                j = j.wrapping_add(1);
            }
        }
    }
}

/// Drives one connection until its due times end.
async fn drive(
    endpoint: Rc<Endpoint>,
    workload: Rc<Workload>,
    mut due: Due,
    schedule: OpenLoop,
    start: Instant,
    timeout: Duration,
    progress: Arc<Progress>,
) -> Results {
    let mut results = Results::default();
    let mut conn = None;
    loop {
        let Some(intended) = due.next(start).await else {
            return results;
        };
        let outcome = monoio::time::timeout(timeout, async {
            let open = match &mut conn {
                Some(open) => open,
                None => conn.insert(conn::open(&endpoint, &workload).await?),
            };
            open.round_trip(&workload).await
        })
        .await
        .unwrap_or(Err(Failure::Timeout));
        let recorded = schedule.latency(intended, start.elapsed());
        match outcome {
            Ok(bytes) => {
                progress.done.fetch_add(1, Ordering::Relaxed);
                if let Some(latency) = recorded {
                    results.latency.record(latency);
                    results.ok += 1;
                    results.bytes += bytes;
                }
            }
            Err(kind) => {
                conn = None;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if recorded.is_some() {
                    results.error(kind);
                }
            }
        }
    }
}

/// Runs the load of `common` for `workload` (`scheme` of `--direct`: `tcp` or `http`) and
/// returns the merged results, updating `progress` as it goes.
pub(crate) fn run(
    common: &Common,
    scheme: &'static str,
    make_workload: impl Fn() -> Workload + Send + Sync + 'static,
    progress: Arc<Progress>,
) -> Result<Results, TargetError> {
    crate::target::resolve(&common.target, scheme)?;
    let start = Instant::now();
    let make_workload = Arc::new(make_workload);
    let rate = (!common.closed_loop).then_some(common.rate);
    let end = common.warmup + common.duration;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..common.connections).map(|_| flume::unbounded()).unzip();
    let mut receivers: Vec<Option<flume::Receiver<Duration>>> =
        receivers.into_iter().map(Some).collect();
    let pacer = rate.map(|_| {
        let schedule = OpenLoop::new(0, 1, rate, common.warmup, end);
        std::thread::spawn(move || pace(schedule, start, senders))
    });
    let threads: Vec<_> = (0..common.threads)
        .map(|thread| {
            let step = usize::try_from(common.threads).unwrap_or(1);
            let first = usize::try_from(thread).unwrap_or(0);
            let mine: Vec<(u32, Option<flume::Receiver<Duration>>)> = (first..receivers.len())
                .step_by(step)
                .map(|i| (u32::try_from(i).unwrap_or(0), receivers[i].take()))
                .collect();
            let common = common.clone();
            let make_workload = Arc::clone(&make_workload);
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                hycod::runtime::workers::block_on(async move {
                    let endpoint = crate::target::resolve(&common.target, scheme).ok()?;
                    let workload = Rc::new(make_workload());
                    let tasks: Vec<_> = mine
                        .into_iter()
                        .map(|(index, paced)| {
                            let schedule =
                                OpenLoop::new(index, common.connections, rate, common.warmup, end);
                            let due = match paced {
                                Some(times) if rate.is_some() => Due::Paced(times),
                                _ => Due::Closed(schedule.clone()),
                            };
                            monoio::spawn(drive(
                                Rc::clone(&endpoint),
                                Rc::clone(&workload),
                                due,
                                schedule,
                                start,
                                common.timeout,
                                Arc::clone(&progress),
                            ))
                        })
                        .collect();
                    let mut merged = Results::default();
                    for task in tasks {
                        merged.merge(&task.await);
                    }
                    Some(merged)
                })
                .ok()
                .flatten()
            })
        })
        .collect();
    let mut results = Results::default();
    if let Some(pacer) = pacer {
        if pacer.join().is_err() {
            results.error(Failure::Pacer);
        }
    }
    for thread in threads {
        match thread.join() {
            Ok(Some(part)) => results.merge(&part),
            _ => results.error(Failure::Thread),
        }
    }
    Ok(results)
}
