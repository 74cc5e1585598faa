//! Running a load: `--threads` OS threads, one monoio runtime each, each driving its share of
//! the connections on the [`OpenLoop`] schedule; results merged at the end.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Common;
use crate::conn::{self, Workload};
use crate::open_loop::{Next, OpenLoop};
use crate::results::Results;
use crate::target::{Endpoint, TargetError};

/// Round trips and errors so far, for the progress line.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Drives one connection until its schedule ends.
async fn drive(
    endpoint: Rc<Endpoint>,
    workload: Rc<Workload>,
    mut schedule: OpenLoop,
    start: Instant,
    timeout: Duration,
    progress: Arc<Progress>,
) -> Results {
    let mut results = Results::default();
    let mut conn = None;
    loop {
        let intended = match schedule.next(start.elapsed()) {
            Next::Done => return results,
            Next::WaitUntil(at) => {
                monoio::time::sleep(at.saturating_sub(start.elapsed())).await;
                continue;
            }
            Next::Send { intended } => intended,
        };
        let outcome = monoio::time::timeout(timeout, async {
            let open = match &mut conn {
                Some(open) => open,
                None => conn.insert(conn::open(&endpoint, &workload).await?),
            };
            open.round_trip(&workload).await
        })
        .await
        .unwrap_or(Err("timeout"));
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
pub fn run(
    common: &Common,
    scheme: &'static str,
    make_workload: impl Fn() -> Workload + Send + Sync + 'static,
    progress: Arc<Progress>,
) -> Result<Results, TargetError> {
    crate::target::resolve(common, scheme)?;
    let start = Instant::now();
    let make_workload = Arc::new(make_workload);
    let rate = (!common.closed_loop).then_some(common.rate);
    let end = common.warmup + common.duration;
    let threads: Vec<_> = (0..common.threads)
        .map(|thread| {
            let common = common.clone();
            let make_workload = Arc::clone(&make_workload);
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                hycod::runtime::workers::block_on(async move {
                    let endpoint = crate::target::resolve(&common, scheme).ok()?;
                    let workload = Rc::new(make_workload());
                    let tasks: Vec<_> = (thread..common.connections)
                        .step_by(usize::try_from(common.threads).unwrap_or(1))
                        .map(|index| {
                            let schedule =
                                OpenLoop::new(index, common.connections, rate, common.warmup, end);
                            monoio::spawn(drive(
                                Rc::clone(&endpoint),
                                Rc::clone(&workload),
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
    for thread in threads {
        match thread.join() {
            Ok(Some(part)) => results.merge(&part),
            _ => results.error("thread"),
        }
    }
    Ok(results)
}
