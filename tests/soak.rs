//! Soak (docs/reliability.md "Soak"): steady checked load (streams both ways and relayed HTTP,
//! every byte verified) through a real `hycod relay` and `hycod run`, with the relay killed
//! (SIGKILL) and restarted on the same address between phases.
//!
//! Asserted: no byte is ever wrong; every stream and request the sender saw complete arrived
//! whole at the target (zero lost bytes); everything a restart cut ended with an error the
//! sender saw, and only exchanges a restart ran through were cut; nothing hung; the daemon
//! comes back after every restart and carries traffic in every phase; after the load stops the
//! daemon's descriptors return to the warmed-up baseline and its RSS grew less than
//! [`RSS_GROWTH_LIMIT_KIB`]. Latency percentiles per phase are printed (`--nocapture`).
//!
//! Not part of the default `cargo test` (it is ignored): `.ci/run` runs it on its own with
//! `cargo test --test soak -- --ignored`, under a time bound.
//!
//! Duration: `HYCOD_SOAK_SECS` (default 24) of load in phases of `HYCOD_SOAK_PHASE_SECS`
//! (default 6), a relay restart between phases; `HYCOD_TEST_SEED` repeats a run. E.g. five
//! minutes: `HYCOD_SOAK_SECS=300 HYCOD_SOAK_PHASE_SECS=30 cargo test --test soak -- --ignored
//! --nocapture`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::checked::{seed, Pool};
use common::checked_senders::Outcome;
use common::checked_targets::{hashing_http_target, SourceSink, TargetReport, UpEnd};
use common::processes::{
    config_text, eventually, http_hybrid_connection, hybrid_connection, DaemonProcess, RelayProcess,
};
use common::procstat::{fd_count, fd_summary, rss_kib, tcp_sockets};
use common::steady_load::{Kind, Load, LoadShape, Restarts, Sample, HUNG};
use hycod::daemon::listener::upstream::MAX_IDLE_CONNECTIONS;

const STREAM_PATH: &str = "soak-streams";
const HTTP_PATH: &str = "soak-http";
/// Worker threads of the daemon (`config_text`).
const DAEMON_WORKERS: usize = 2;
/// Control channels the daemon keeps per hybrid connection (`listeners = 2`).
const LISTENERS: u64 = 2;

/// The warm-up before the baseline is taken.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long the daemon may take to be back on the relay after a restart: its back-off is at
/// most 30 s (protocol §4.9, `proto::hc::backoff`), plus the time to connect.
const RECOVERY_LIMIT: Duration = Duration::from_secs(40);
/// An exchange taking longer counts as hung.
const HANG_LIMIT: Duration = Duration::from_secs(30);
/// RSS may grow this much between the warmed-up baseline and the end.
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn shape(relay_url: &str) -> LoadShape {
    LoadShape {
        relay_url: relay_url.to_owned(),
        stream_path: STREAM_PATH.to_owned(),
        http_path: HTTP_PATH.to_owned(),
        stream_threads: 2,
        streams_per_thread: 4,
        max_stream_bytes: 2 * 1024 * 1024,
        max_body: 256 * 1024,
        http_senders: 4,
        pace: Duration::from_millis(5),
        hang_limit: HANG_LIMIT,
    }
}

/// The daemon's descriptors: idle keep-alive connections to the HTTP target (a pool of at
/// most `MAX_IDLE_CONNECTIONS` per worker) and all others.
#[derive(Debug, Clone, Copy)]
struct Descriptors {
    pooled: usize,
    others: usize,
}

fn descriptors(pid: u32, http_port: u16) -> Descriptors {
    let pooled = tcp_sockets(pid)
        .iter()
        .filter(|s| s.remote_port == http_port)
        .count();
    Descriptors {
        pooled,
        others: fd_count(pid).saturating_sub(pooled),
    }
}

/// Waits until no stream or request is in flight; the daemon's RSS then.
fn idle_rss(daemon: &DaemonProcess) -> u64 {
    assert!(
        eventually(Duration::from_secs(30), || {
            daemon.metric_total("hycod_streams_in_flight") == 0.0
                && daemon.metric_total("hycod_requests_in_flight") == 0.0
        }),
        "the daemon goes idle once the load stops"
    );
    rss_kib(daemon.pid())
}

fn listeners_back(relay: &RelayProcess) -> bool {
    relay.listener_count(STREAM_PATH) == LISTENERS && relay.listener_count(HTTP_PATH) == LISTENERS
}

#[test]
#[ignore = "about 45 s of load on every core; run with `cargo test --test soak -- --ignored`"]
fn a_soak_with_relay_restarts_loses_nothing_and_stays_flat() {
    let total = Duration::from_secs(env_secs("HYCOD_SOAK_SECS", 24));
    let phase_len = Duration::from_secs(env_secs("HYCOD_SOAK_PHASE_SECS", 6).max(1));
    let phases = usize::try_from((total.as_secs() / phase_len.as_secs()).max(2)).expect("small");
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = Pool::new(rng.u64(..));
    let target = SourceSink::start(pool.clone());
    let http_port = hashing_http_target(pool.clone());
    let mut relay = RelayProcess::start_restartable(&[STREAM_PATH, HTTP_PATH]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text(
            "5s",
            &[
                hybrid_connection("streams", STREAM_PATH, &relay.url, target.port),
                http_hybrid_connection("http", HTTP_PATH, &relay.url, http_port),
            ],
        ),
        None,
        &[],
    );
    daemon.wait_listener_online("streams");
    daemon.wait_listener_online("http");
    assert!(eventually(RECOVERY_LIMIT, || listeners_back(&relay)));

    let restarts = Arc::new(Restarts::default());
    let ids = Arc::new(AtomicU64::new(0));
    let warm = Load::start(
        shape(&relay.url),
        pool.clone(),
        restarts.clone(),
        ids.clone(),
        rng.u64(..),
    );
    // The soak's clock: the warm-up is a stretch of load of a set length.
    std::thread::sleep(WARM_UP);
    let warm_samples = warm.stop();
    let failed: Vec<&Sample> = warm_samples
        .iter()
        .filter(|s| !matches!(s.report.outcome, Outcome::Complete { .. }))
        .collect();
    assert!(
        failed.is_empty(),
        "without restarts everything completes: {failed:?}"
    );
    let rss_start = idle_rss(&daemon);
    let fds_start = descriptors(daemon.pid(), http_port);

    let started = Instant::now();
    let load = Load::start(
        shape(&relay.url),
        pool.clone(),
        restarts.clone(),
        ids,
        rng.u64(..),
    );
    let mut recoveries = Vec::new();
    for p in 0..phases {
        // The soak's clock: each phase is a stretch of load of a set length.
        std::thread::sleep(phase_len);
        if p + 1 < phases {
            restarts.begin();
            let restarted = Instant::now();
            relay.restart();
            restarts.end();
            assert!(
                eventually(RECOVERY_LIMIT, || listeners_back(&relay)),
                "the daemon is back on the relay after restart {}; logs:\n{}",
                p + 1,
                daemon.logs_text()
            );
            recoveries.push(restarted.elapsed());
        }
    }
    let samples = load.stop();
    let elapsed = started.elapsed();
    let rss_end = idle_rss(&daemon);
    let fds_back = eventually(Duration::from_secs(30), || {
        descriptors(daemon.pid(), http_port).others <= fds_start.others
    });
    let fds_end = descriptors(daemon.pid(), http_port);

    let at_target: HashMap<u64, TargetReport> = target
        .reports
        .try_iter()
        .map(|r| (r.header.id, r))
        .collect();
    let verdict = judge(&samples, &at_target, phases);
    println!(
        "soak: {:.1} s, {phases} phases, {} relay restarts (SIGKILL), recovery {:?}",
        elapsed.as_secs_f64(),
        phases - 1,
        recoveries
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    verdict.print();
    println!(
        "daemon: descriptors {} + {} pooled at start, {} + {} pooled at end; RSS {rss_start} KiB at start, {rss_end} KiB at end",
        fds_start.others, fds_start.pooled, fds_end.others, fds_end.pooled
    );

    assert_eq!(
        verdict.corrupt,
        Vec::<String>::new(),
        "no byte is ever wrong"
    );
    assert_eq!(
        verdict.lost,
        Vec::<String>::new(),
        "nothing complete is missing bytes"
    );
    assert_eq!(verdict.hung, Vec::<String>::new(), "nothing hangs");
    assert_eq!(
        verdict.truncated_at_target,
        Vec::<String>::new(),
        "no cut stream looks complete to the target"
    );
    assert_eq!(
        verdict.cut_without_restart,
        Vec::<String>::new(),
        "only restarts cut exchanges"
    );
    for (p, stats) in verdict.phases.iter().enumerate() {
        assert!(
            stats.streams_complete > 0 && stats.http_complete > 0,
            "phase {p} carried streams and requests: {stats:?}"
        );
    }
    assert!(
        fds_back,
        "descriptors back to the baseline {fds_start:?}, still {fds_end:?}: {}",
        fd_summary(daemon.pid())
    );
    assert!(
        fds_end.pooled <= DAEMON_WORKERS * MAX_IDLE_CONNECTIONS,
        "the keep-alive pool is bounded: {fds_end:?}"
    );
    assert!(
        rss_end <= rss_start + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_start} KiB to {rss_end} KiB"
    );
}

/// Per-phase counts and latencies (ms) of complete exchanges.
#[derive(Debug, Default)]
struct PhaseStats {
    streams_complete: u64,
    streams_cut: u64,
    streams_refused: u64,
    http_complete: u64,
    http_cut: u64,
    http_refused: u64,
    bytes_verified: u64,
    stream_ms: Vec<u64>,
    http_ms: Vec<u64>,
}

/// What the samples show.
#[derive(Debug, Default)]
struct Verdict {
    phases: Vec<PhaseStats>,
    corrupt: Vec<String>,
    lost: Vec<String>,
    hung: Vec<String>,
    cut_without_restart: Vec<String>,
    /// Streams the target saw end cleanly (FIN) short of their length: a cut that looks
    /// like a complete upload.
    truncated_at_target: Vec<String>,
    /// Cut streams whose target saw a clean end of stream (FIN), all bytes in.
    cut_seen_as_fin_by_target: u64,
    cut_seen_as_error_by_target: u64,
    /// How many refusals and cuts gave each error (numbers stripped).
    reasons: HashMap<String, u64>,
}

fn judge(samples: &[Sample], at_target: &HashMap<u64, TargetReport>, phases: usize) -> Verdict {
    let mut v = Verdict {
        phases: (0..phases).map(|_| PhaseStats::default()).collect(),
        ..Verdict::default()
    };
    for sample in samples {
        let stats = &mut v.phases[sample.phase_start];
        let what = format!("{sample:?}");
        let is_stream = matches!(sample.kind, Kind::Stream(_));
        if let Outcome::Refused(error) | Outcome::Cut { error, .. } = &sample.report.outcome {
            let kind = if is_stream { "stream" } else { "HTTP" };
            let error = error.split(" TrackingId").next().unwrap_or_default();
            *v.reasons.entry(format!("{kind}: {error}")).or_default() += 1;
        }
        match &sample.report.outcome {
            Outcome::Corrupt { .. } => v.corrupt.push(what),
            Outcome::Refused(_) if is_stream => stats.streams_refused += 1,
            Outcome::Refused(_) => stats.http_refused += 1,
            Outcome::Cut { error, .. } => {
                if error == HUNG || sample.report.elapsed >= HANG_LIMIT {
                    v.hung.push(what.clone());
                }
                if sample.phase_end == sample.phase_start {
                    v.cut_without_restart.push(what.clone());
                }
                if let Kind::Stream(header) = sample.kind {
                    stats.streams_cut += 1;
                    match at_target.get(&header.id).map(|r| &r.end) {
                        Some(UpEnd::Eof) if at_target[&header.id].received < header.up_len => v
                            .truncated_at_target
                            .push(format!("{what}; target: {:?}", at_target[&header.id])),
                        Some(UpEnd::Eof) => v.cut_seen_as_fin_by_target += 1,
                        Some(UpEnd::Error(_)) => v.cut_seen_as_error_by_target += 1,
                        Some(UpEnd::Corrupt { .. } | UpEnd::Overrun) => {
                            v.corrupt.push(format!("at the target: {what}"))
                        }
                        None => {}
                    }
                } else {
                    stats.http_cut += 1;
                }
            }
            Outcome::Complete { up_sha256, down } => {
                let ms = u64::try_from(sample.report.elapsed.as_millis()).unwrap_or(u64::MAX);
                match sample.kind {
                    Kind::Stream(header) => {
                        let whole = at_target.get(&header.id).is_some_and(|r| {
                            r.end == UpEnd::Eof
                                && r.received == header.up_len
                                && &r.sha256 == up_sha256
                        });
                        if !whole {
                            v.lost
                                .push(format!("{what}; target: {:?}", at_target.get(&header.id)));
                        }
                        stats.streams_complete += 1;
                        stats.bytes_verified += header.up_len + down;
                        stats.stream_ms.push(ms);
                    }
                    Kind::Http(plan) => {
                        stats.http_complete += 1;
                        stats.bytes_verified += plan.up_len + down;
                        stats.http_ms.push(ms);
                    }
                }
            }
        }
    }
    v
}

/// The `percent`th percentile of `values` (nearest rank); 0 when there are none.
fn percentile(values: &mut [u64], percent: usize) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (values.len() * percent)
        .div_ceil(100)
        .clamp(1, values.len());
    values[rank - 1]
}

impl Verdict {
    fn print(&self) {
        println!(
            "| phase | streams ok/cut/refused | HTTP ok/cut/refused | MiB verified | stream p50/p99 ms | HTTP p50/p99 ms |"
        );
        println!("|---|---|---|---|---|---|");
        let mut total = 0;
        for (p, s) in self.phases.iter().enumerate() {
            let (mut sm, mut hm) = (s.stream_ms.clone(), s.http_ms.clone());
            total += s.bytes_verified;
            println!(
                "| {p} | {}/{}/{} | {}/{}/{} | {:.1} | {}/{} | {}/{} |",
                s.streams_complete,
                s.streams_cut,
                s.streams_refused,
                s.http_complete,
                s.http_cut,
                s.http_refused,
                s.bytes_verified as f64 / 1048576.0,
                percentile(&mut sm, 50),
                percentile(&mut sm, 99),
                percentile(&mut hm, 50),
                percentile(&mut hm, 99),
            );
        }
        println!(
            "bytes verified: {total}; cut streams the target saw end with an error: {}, with FIN after all bytes: {}, with FIN short of them: {}",
            self.cut_seen_as_error_by_target, self.cut_seen_as_fin_by_target, self.truncated_at_target.len()
        );
        let mut reasons: Vec<_> = self.reasons.iter().collect();
        reasons.sort();
        for (reason, n) in reasons {
            println!("  {n} × {reason}");
        }
    }
}
