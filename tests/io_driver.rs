//! Which I/O driver each worker of `hycod run` got, as an operator sees it (docs/operations.md
//! "I/O driver", docs/metrics.md): one start-up log line per worker and
//! `hycod_worker_info{worker, driver, fallback}` = 1, with epoll forced by
//! `MONOIO_FORCE_LEGACY_DRIVER=1` and with the default.

mod common;

use common::processes::{config_text, hybrid_connection, tcp_echo, DaemonProcess, RelayProcess};
use serde_json::Value;

/// The daemon's worker count (`config_text`).
const WORKERS: usize = 2;

/// Starts a relay and `hycod run` with `MONOIO_FORCE_LEGACY_DRIVER` set to `force`.
fn start(force: &str) -> (RelayProcess, tempfile::TempDir, DaemonProcess) {
    let relay = RelayProcess::start(&["erp"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config_text(
        "5s",
        &[hybrid_connection("erp", "erp", &relay.url, tcp_echo())],
    );
    let env = [("MONOIO_FORCE_LEGACY_DRIVER", force)];
    let daemon = DaemonProcess::start(dir.path(), &text, None, &env);
    (relay, dir, daemon)
}

/// The start-up line of each worker, in worker order.
fn driver_lines(daemon: &mut DaemonProcess) -> Vec<Value> {
    (0..WORKERS)
        .map(|worker| {
            daemon.wait_log("a worker's driver line", |l| {
                l["worker"] == worker
                    && (l["message"] == "worker I/O driver"
                        || l["message"] == "worker runs on epoll, not io_uring")
            })
        })
        .collect()
}

#[test]
fn forced_epoll_is_logged_with_its_reason_and_labelled_per_worker() {
    let (_relay, _dir, mut daemon) = start("1");
    for line in driver_lines(&mut daemon) {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["driver"], "epoll", "{line}");
        assert_eq!(line["fallback"], "forced", "{line}");
        let reason = line["reason"].as_str().expect("a reason");
        assert!(reason.contains("MONOIO_FORCE_LEGACY_DRIVER"), "{line}");
    }
    let samples = daemon.samples("hycod_worker_info");
    assert_eq!(samples.len(), WORKERS, "{samples:?}");
    for worker in ["0", "1"] {
        let labels = [
            ("worker", worker),
            ("driver", "epoll"),
            ("fallback", "forced"),
        ];
        assert_eq!(daemon.metric_with("hycod_worker_info", &labels), Some(1.0));
    }
}

#[test]
fn the_default_is_io_uring_wherever_the_kernel_grants_a_ring() {
    // Asked of the kernel independently of the daemon: may this process set up a ring?
    let ring_granted = io_uring::IoUring::new(2).is_ok();
    let (_relay, _dir, mut daemon) = start("0");
    for line in driver_lines(&mut daemon) {
        if ring_granted {
            assert_eq!(line["level"], "INFO", "{line}");
            assert_eq!(line["driver"], "io_uring", "{line}");
        } else {
            assert_eq!(line["driver"], "epoll", "{line}");
            assert_ne!(line["fallback"], "forced", "{line}");
        }
    }
    let driver = if ring_granted { "io_uring" } else { "epoll" };
    let samples = daemon.samples("hycod_worker_info");
    assert_eq!(samples.len(), WORKERS, "{samples:?}");
    for worker in ["0", "1"] {
        let labels = [("worker", worker), ("driver", driver)];
        assert_eq!(
            daemon.metric_with("hycod_worker_info", &labels),
            Some(1.0),
            "{samples:?}"
        );
        if ring_granted {
            let labels = [("worker", worker), ("fallback", "none")];
            assert_eq!(daemon.metric_with("hycod_worker_info", &labels), Some(1.0));
        }
    }
}
