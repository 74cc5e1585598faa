//! Spawning pinned worker threads, one monoio runtime each (architecture §1).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::thread::{self, JoinHandle};

use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};

use super::io_driver::{fallback_reason, IoDriver};

/// io_uring submission queue size per worker.
const URING_ENTRIES: u32 = 1024;

/// How many workers to run: `configured`, or one per available core when it is 0.
pub fn worker_count(configured: usize) -> NonZeroUsize {
    NonZeroUsize::new(configured)
        .unwrap_or_else(|| thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
}

/// Runs `make_task(index)` to completion on a fresh monoio runtime in the current thread.
///
/// The runtime uses io_uring when the kernel offers it and epoll otherwise
/// (`MONOIO_FORCE_LEGACY_DRIVER=1` forces epoll, for A/B measurements).
pub fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
    let mut runtime = RuntimeBuilder::<FusionDriver>::new()
        .with_entries(URING_ENTRIES)
        .enable_timer()
        .build()?;
    let driver = match runtime {
        FusionRuntime::Uring(_) => IoDriver::IoUring,
        FusionRuntime::Legacy(_) => IoDriver::Epoll,
    };
    CURRENT_DRIVER.set(Some(driver));
    Ok(runtime.block_on(future))
}

thread_local! {
    /// The driver of the runtime [`block_on`] runs on this thread.
    static CURRENT_DRIVER: Cell<Option<IoDriver>> = const { Cell::new(None) };
}

/// The I/O driver of the runtime running on this thread, `None` outside [`block_on`].
pub fn current_driver() -> Option<IoDriver> {
    CURRENT_DRIVER.get()
}

/// Logs which driver worker `index` got and, for epoll, why (once per worker, at start-up;
/// docs/operations.md).
pub fn log_driver(index: usize) {
    match current_driver() {
        Some(IoDriver::Epoll) => {
            let reason = fallback_reason().unwrap_or(super::io_driver::Fallback::Unknown);
            tracing::warn!(worker = index, driver = IoDriver::Epoll.as_str(),
                fallback = reason.label(), reason = %reason, "worker runs on epoll, not io_uring");
        }
        Some(driver) => tracing::info!(
            worker = index,
            driver = driver.as_str(),
            "worker I/O driver"
        ),
        None => {}
    }
}

/// The CPUs this process may run on, in ascending order: its affinity mask as inherited (e.g.
/// from `taskset` or a cgroup cpuset). Empty when the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    rustix::thread::sched_getaffinity(None).map_or_else(
        |_| Vec::new(),
        |set| {
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect()
        },
    )
}

/// The CPU worker `index` is pinned to: the `index % n`-th of the `n` `allowed` CPUs (so a
/// process started with `taskset -c 1` keeps its workers on CPU 1), or `None` when none is
/// known.
pub fn cpu_for_worker(index: usize, allowed: &[usize]) -> Option<usize> {
    allowed.get(index.checked_rem(allowed.len())?).copied()
}

/// Starts `count` worker threads named `{name}-{index}`; worker `k` is pinned to the CPU
/// [`cpu_for_worker`] picks from the process's [`allowed_cpus`] when pinning is possible (a
/// failed pin is logged and the worker runs unpinned).
pub fn spawn<F, Fut>(
    name: &str,
    count: NonZeroUsize,
    make_task: F,
) -> io::Result<Vec<JoinHandle<()>>>
where
    F: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let allowed = allowed_cpus();
    (0..count.get())
        .map(|index| {
            let make_task = make_task.clone();
            let cpu = cpu_for_worker(index, &allowed);
            thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
                            tracing::warn!(worker = index, cpu, error = ?e, "could not pin worker to a core");
                        }
                    }
                    let task = async move {
                        log_driver(index);
                        make_task(index).await
                    };
                    if let Err(e) = block_on(task) {
                        tracing::error!(worker = index, error = %e, "worker runtime failed to start");
                    }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_one_per_core() {
        let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(worker_count(0).get(), cores);
        assert_eq!(worker_count(3).get(), 3);
    }

    #[test]
    fn workers_are_pinned_within_the_inherited_affinity_mask() {
        // `taskset -c 1`: one allowed CPU, and it is CPU 1, not CPU 0.
        assert_eq!(cpu_for_worker(0, &[1]), Some(1));
        assert_eq!(cpu_for_worker(1, &[1]), Some(1));
        assert_eq!(cpu_for_worker(0, &[2, 5]), Some(2));
        assert_eq!(cpu_for_worker(1, &[2, 5]), Some(5));
        assert_eq!(cpu_for_worker(2, &[2, 5]), Some(2));
        assert_eq!(cpu_for_worker(0, &[]), None, "unknown mask: not pinned");
    }

    #[test]
    fn a_worker_runs_on_a_cpu_the_process_may_use() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty(), "the affinity mask is readable");
        let (tx, rx) = std::sync::mpsc::channel();
        let handles = spawn("pin", NonZeroUsize::MIN, move |_| {
            let tx = tx.clone();
            async move {
                tx.send(allowed_cpus()).expect("receiver alive");
            }
        })
        .expect("spawn");
        for h in handles {
            h.join().expect("worker thread");
        }
        let worker = rx.recv().expect("the worker reported");
        assert_eq!(worker, vec![allowed[0]], "pinned to the first allowed CPU");
    }

    #[test]
    fn every_worker_runs_its_task() {
        let (tx, rx) = std::sync::mpsc::channel();
        let handles = spawn("test", NonZeroUsize::new(3).expect("3 > 0"), move |index| {
            let tx = tx.clone();
            async move {
                // A timeout only works when the worker's runtime has its timer driver.
                let timed =
                    monoio::time::timeout(std::time::Duration::from_secs(5), async {}).await;
                assert!(timed.is_ok());
                tx.send((index, thread::current().name().map(str::to_owned)))
                    .expect("receiver alive");
            }
        })
        .expect("spawn");
        for h in handles {
            h.join().expect("worker thread");
        }
        let mut seen: Vec<_> = rx.try_iter().collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (0, Some("test-0".to_owned())),
                (1, Some("test-1".to_owned())),
                (2, Some("test-2".to_owned()))
            ]
        );
    }
}
