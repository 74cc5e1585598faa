//! Nothing lost (docs/reliability.md): checked data through a real `hycod relay` and `hycod run`,
//! every byte verified.
//!
//! - Streams (protocol §5): 32 concurrent streams carry 1 GiB in all, both directions at once and
//!   independent (the target verifies what the senders send while it sends its own data back),
//!   in chunks of random size from 1 B to 256 KiB. Each side compares every byte with what the
//!   other sent and keeps a SHA-256 and a count; the test compares them.
//! - Relayed HTTP (protocol §6, §7.2): requests with random body sizes up to 8 MiB each way
//!   (control-channel and rendezvous bodies alike), each body verified the same way.
//!
//! The seed is printed; `HYCOD_TEST_SEED=N` repeats a run. Totals are printed (run with
//! `--nocapture` to see them).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::checked::{body_len, seed, sha256_of_run, Pool};
use common::checked_senders::{send_stream, HttpPlan, HttpSender, Outcome, Report};
use common::checked_targets::{hashing_http_target, SourceSink, StreamHeader, UpEnd};
use common::processes::{
    config_text, http_hybrid_connection, hybrid_connection, DaemonProcess, RelayProcess,
};

const MIB: u64 = 1024 * 1024;

/// Concurrent streams.
const STREAMS: u64 = 32;
/// Bytes per stream, both directions together (32 × 32 MiB = 1 GiB in all).
const STREAM_BYTES: u64 = 32 * MIB;
/// Client threads, each a monoio runtime running its share of the streams.
const CLIENT_THREADS: u64 = 2;

/// Relayed HTTP requests, and how many senders send them at once.
const HTTP_REQUESTS: u64 = 256;
const HTTP_SENDERS: u64 = 8;
/// The largest body either way.
const MAX_BODY: u64 = 8 * MIB;

/// Longest a whole run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn figures(what: &str, bytes: u64, count: u64, elapsed: Duration) {
    let mib = bytes as f64 / MIB as f64;
    println!(
        "{what}: {bytes} bytes ({mib:.1} MiB) verified over {count}, {:.1} s, {:.1} MiB/s",
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64()
    );
}

#[test]
fn every_streamed_byte_arrives_intact_both_ways() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = Pool::new(rng.u64(..));
    let target = SourceSink::start(pool.clone());
    // Strict but for the idle cut, which is longer: under load a busy stream of this test can
    // move no frame for seconds, starved of CPU (docs/relay.md "The daemon's suites against
    // the strict relay"); the keep-alives are checked by the other suites.
    let relay = RelayProcess::start_with_flags(&["lossless"], &[], &["--idle-timeout", "60s"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text(
            "5s",
            &[hybrid_connection(
                "streams",
                "lossless",
                &relay.url,
                target.port,
            )],
        ),
        None,
        &[],
    );
    daemon.wait_listener_online("streams");

    let headers: Vec<StreamHeader> = (0..STREAMS)
        .map(|id| {
            let up_len = rng.u64(1..STREAM_BYTES);
            StreamHeader {
                id,
                up_start: Pool::random_start(&mut rng),
                up_len,
                down_start: Pool::random_start(&mut rng),
                down_len: STREAM_BYTES - up_len,
            }
        })
        .collect();
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let mine: Vec<StreamHeader> = headers
                .iter()
                .copied()
                .filter(|h| h.id % CLIENT_THREADS == t)
                .collect();
            let (url, pool) = (relay.url.clone(), pool.clone());
            std::thread::spawn(move || run_streams(&url, &pool, mine))
        })
        .collect();
    let reports: Vec<(StreamHeader, Report)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let elapsed = started.elapsed();

    let mut at_target = HashMap::new();
    while at_target.len() < reports.len() {
        let report = target
            .reports
            .recv_timeout(Duration::from_secs(30))
            .expect("the target reports every stream");
        at_target.insert(report.header.id, report);
    }
    let mut verified = 0;
    for (header, report) in &reports {
        let Outcome::Complete { up_sha256, down } = &report.outcome else {
            panic!(
                "stream {} did not complete: {:?}",
                header.id, report.outcome
            );
        };
        let seen = &at_target[&header.id];
        assert_eq!(seen.header, *header, "the target got the stream's header");
        assert_eq!(
            seen.end,
            UpEnd::Eof,
            "stream {} ended cleanly at the target",
            header.id
        );
        assert_eq!(
            seen.received, header.up_len,
            "stream {}: every byte up",
            header.id
        );
        assert_eq!(
            &seen.sha256, up_sha256,
            "stream {}: SHA-256 of the bytes up",
            header.id
        );
        assert_eq!(
            *up_sha256,
            sha256_of_run(&pool, header.up_start, header.up_len),
            "the sender sent its run"
        );
        assert_eq!(seen.written, header.down_len);
        assert_eq!(seen.write_error, None);
        assert_eq!(
            *down, header.down_len,
            "stream {}: every byte down",
            header.id
        );
        verified += seen.received + down;
    }
    assert!(
        verified >= 1024 * MIB,
        "at least 1 GiB verified, got {verified}"
    );
    figures(
        &format!("streams ({STREAMS} concurrent)"),
        verified,
        STREAMS,
        elapsed,
    );
}

/// Runs `headers`' streams concurrently on one monoio runtime; each header with its report.
fn run_streams(
    url: &str,
    pool: &Arc<Pool>,
    headers: Vec<StreamHeader>,
) -> Vec<(StreamHeader, Report)> {
    common::run(async {
        let tasks: Vec<_> = headers
            .into_iter()
            .map(|header| {
                let (url, pool) = (url.to_owned(), pool.clone());
                let task = monoio::spawn(async move {
                    monoio::time::timeout(RUN_LIMIT, send_stream(&url, "lossless", pool, header))
                        .await
                        .expect("the stream ends within the run limit")
                });
                (header, task)
            })
            .collect();
        let mut reports = Vec::new();
        for (header, task) in tasks {
            reports.push((header, task.await));
        }
        reports
    })
}

#[test]
fn every_relayed_http_body_arrives_intact_both_ways() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = Pool::new(rng.u64(..));
    let port = hashing_http_target(pool.clone());
    let relay = RelayProcess::start(&["lossless-http"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text(
            "5s",
            &[http_hybrid_connection(
                "bodies",
                "lossless-http",
                &relay.url,
                port,
            )],
        ),
        None,
        &[],
    );
    daemon.wait_listener_online("bodies");

    // The edges first (empty, the control-channel limit of 64 000 B either side, the
    // largest), then log-uniform sizes.
    let edges = [0, 1, 63_999, 64_000, 64_001, 65_536, MAX_BODY];
    let plans: Vec<HttpPlan> = (0..HTTP_REQUESTS)
        .map(|i| {
            let pick = |rng: &mut fastrand::Rng, k: u64| {
                usize::try_from(k)
                    .ok()
                    .and_then(|k| edges.get(k))
                    .copied()
                    .unwrap_or_else(|| body_len(rng, MAX_BODY))
            };
            let up_len = pick(&mut rng, i);
            let down_len = pick(&mut rng, (i + 3) % HTTP_REQUESTS);
            HttpPlan {
                up_start: Pool::random_start(&mut rng),
                up_len,
                down_start: Pool::random_start(&mut rng),
                down_len,
            }
        })
        .collect();
    let started = Instant::now();
    let senders: Vec<_> = (0..HTTP_SENDERS)
        .map(|s| {
            let mine: Vec<HttpPlan> = plans
                .iter()
                .copied()
                .skip(usize::try_from(s).expect("small"))
                .step_by(usize::try_from(HTTP_SENDERS).expect("small"))
                .collect();
            let mut sender = HttpSender::new(&relay.url, "lossless-http", pool.clone(), seed ^ s);
            std::thread::spawn(move || {
                mine.into_iter()
                    .map(|plan| (plan, sender.send(plan)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let reports: Vec<(HttpPlan, Report)> = senders
        .into_iter()
        .flat_map(|t| t.join().expect("sender thread"))
        .collect();
    let elapsed = started.elapsed();

    let mut verified = 0;
    for (plan, report) in &reports {
        match &report.outcome {
            Outcome::Complete { down, .. } => {
                assert_eq!(*down, plan.down_len);
                verified += plan.up_len + down;
            }
            other => panic!("request {plan:?} failed: {other:?}"),
        }
    }
    assert_eq!(reports.len() as u64, HTTP_REQUESTS);
    figures(
        &format!("relayed HTTP ({HTTP_SENDERS} senders)"),
        verified,
        HTTP_REQUESTS,
        elapsed,
    );
}
