//! High availability (docs/operations.md "High availability"): several `hycod run` daemons on
//! the same hybrid connections of one `hycod relay`, real processes on loopback.
//!
//! - Spread: the relay picks uniformly among attached listeners (docs/relay.md "Choosing a
//!   listener"), so daemons share streams and requests in proportion to their `listeners`
//!   counts; measured with two and three daemons, each share within 4.5 standard deviations of
//!   the binomial expectation.
//! - Rolling upgrade: each of three daemons in turn gets SIGTERM and is started again while
//!   checked streams and requests flow at a fixed pace; nothing fails, every byte verified.
//! - A host dies: SIGKILL of one daemon of two under the same load; what was in flight on it
//!   fails with a clear error, and nothing started more than 2 s after the death fails.
//! - Relay restart: SIGKILL of the relay and a new one on its address under the same load; the
//!   gap until every listener is back and what failed in it are printed, and nothing started
//!   after the listeners are back fails.
//!
//! Every figure is printed (`--nocapture`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::checked::{seed, Pool};
use common::checked_senders::{send_stream, HttpPlan, HttpSender, Outcome};
use common::checked_targets::{
    hashing_http_target, hashing_http_target_with_latency, SourceSink, StreamHeader, TargetReport,
    UpEnd,
};
use common::fleet::{stop, wait_attached, Member, Plan, HTTP_PATH, STREAM_PATH};
use common::processes::{eventually, RelayProcess, PATIENCE};
use common::steady_load::{Kind, Load, LoadShape, Restarts, Sample};

/// Requests and streams sent to measure the spread.
const SPREAD_REQUESTS: u64 = 400;
const SPREAD_STREAMS: u64 = 160;
/// Concurrent senders of each kind while measuring the spread.
const SPREAD_SENDERS: u64 = 4;
/// A share may differ from its expectation by this many binomial standard deviations.
const SPREAD_SIGMAS: f64 = 4.5;

/// The relay, the checked targets and the plan every daemon is started on.
struct Stage {
    relay: RelayProcess,
    pool: Arc<Pool>,
    target: SourceSink,
    plan: Plan,
    rng: fastrand::Rng,
}

impl Stage {
    /// A relay and targets; the HTTP target answers after `latency`.
    fn new(latency: Duration, grace: &str) -> Self {
        Self::with_relay_flags(latency, grace, &[])
    }

    /// [`Stage::new`] with a relay that can be restarted on its address.
    fn restartable(latency: Duration) -> Self {
        Self::build(latency, "10s", |paths| {
            RelayProcess::start_restartable(paths)
        })
    }

    /// [`Stage::new`] with more `hycod relay` flags.
    fn with_relay_flags(latency: Duration, grace: &str, flags: &[&str]) -> Self {
        Self::build(latency, grace, |paths| {
            RelayProcess::start_with_flags(paths, &[], flags)
        })
    }

    fn build(latency: Duration, grace: &str, relay: impl FnOnce(&[&str]) -> RelayProcess) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed());
        let pool = Pool::new(rng.u64(..));
        let target = SourceSink::start(pool.clone());
        let http_port = if latency.is_zero() {
            hashing_http_target(pool.clone())
        } else {
            hashing_http_target_with_latency(pool.clone(), latency)
        };
        let relay = relay(&[STREAM_PATH, HTTP_PATH]);
        let plan = Plan {
            relay_url: relay.url.clone(),
            stream_port: target.port,
            http_port,
            grace: grace.to_owned(),
        };
        Self {
            relay,
            pool,
            target,
            plan,
            rng,
        }
    }

    /// Starts one daemon per entry of `listeners` and waits until the relay has them all.
    fn fleet(&self, listeners: &[u64]) -> Vec<Member> {
        let members: Vec<Member> = listeners
            .iter()
            .map(|&n| Member::start(&self.plan, n))
            .collect();
        wait_attached(&self.relay, listeners.iter().sum());
        members
    }

    /// Every stream report the target has so far, by stream id.
    fn target_reports(&self, into: &mut HashMap<u64, TargetReport>) {
        into.extend(self.target.reports.try_iter().map(|r| (r.header.id, r)));
    }
}

/// Sends `count` small checked requests from [`SPREAD_SENDERS`] threads; all must complete.
fn send_requests(stage: &mut Stage, count: u64) {
    let senders: Vec<_> = (0..SPREAD_SENDERS)
        .map(|s| {
            let (url, pool, seed) = (
                stage.relay.url.clone(),
                stage.pool.clone(),
                stage.rng.u64(..),
            );
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut sender = HttpSender::new(&url, HTTP_PATH, pool, seed);
                for i in 0..count / SPREAD_SENDERS {
                    let plan = HttpPlan {
                        up_start: Pool::random_start(&mut rng),
                        up_len: rng.u64(0..2048),
                        down_start: Pool::random_start(&mut rng),
                        down_len: rng.u64(0..2048),
                    };
                    let report = sender.send(plan);
                    assert!(
                        matches!(report.outcome, Outcome::Complete { .. }),
                        "request {i} of sender {s}: {report:?}"
                    );
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("sender");
    }
}

/// Sends `count` small checked streams from [`SPREAD_SENDERS`] concurrent tasks; all must
/// complete.
fn send_streams(stage: &mut Stage, count: u64) {
    let (url, pool, seed) = (
        stage.relay.url.clone(),
        stage.pool.clone(),
        stage.rng.u64(..),
    );
    common::run(async move {
        let ids = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..SPREAD_SENDERS)
            .map(|t| {
                let (url, pool, ids) = (url.clone(), pool.clone(), ids.clone());
                monoio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(seed ^ t);
                    for _ in 0..count / SPREAD_SENDERS {
                        let header = StreamHeader {
                            id: ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                            up_start: Pool::random_start(&mut rng),
                            up_len: rng.u64(1..4096),
                            down_start: Pool::random_start(&mut rng),
                            down_len: rng.u64(1..4096),
                        };
                        let report = send_stream(&url, STREAM_PATH, pool.clone(), header).await;
                        assert!(
                            matches!(report.outcome, Outcome::Complete { .. }),
                            "stream {}: {report:?}",
                            header.id
                        );
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

/// Checks that daemons with `listeners` control channels each share the work as the counts
/// say; prints the measured split.
fn spread(listeners: &[u64]) {
    let mut stage = Stage::new(Duration::ZERO, "5s");
    let members = stage.fleet(listeners);
    let started = Instant::now();
    send_requests(&mut stage, SPREAD_REQUESTS);
    send_streams(&mut stage, SPREAD_STREAMS);
    let elapsed = started.elapsed();
    // A daemon counts a request once its answer is written: the last ones may still be counting.
    let totals = |members: &[Member]| {
        members
            .iter()
            .map(Member::served)
            .fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1))
    };
    assert!(
        eventually(PATIENCE, || totals(&members)
            == (SPREAD_REQUESTS as f64, SPREAD_STREAMS as f64)),
        "the daemons counted every request and stream: {:?}",
        totals(&members)
    );
    let all: u64 = listeners.iter().sum();
    println!(
        "spread over {} daemons with listeners {listeners:?}: {SPREAD_REQUESTS} requests and {SPREAD_STREAMS} streams in {:.2} s",
        members.len(),
        elapsed.as_secs_f64()
    );
    for (i, member) in members.iter().enumerate() {
        let (requests, streams) = member.served();
        let expected = member.listeners as f64 / all as f64;
        let tolerance = |n: u64| SPREAD_SIGMAS * (expected * (1.0 - expected) / n as f64).sqrt();
        let (request_share, stream_share) = (
            requests / SPREAD_REQUESTS as f64,
            streams / SPREAD_STREAMS as f64,
        );
        println!(
            "  daemon {i} (listeners = {}): requests {requests} ({:.1} %), streams {streams} ({:.1} %); expected {:.1} % ± {:.1} / {:.1} points",
            member.listeners,
            request_share * 100.0,
            stream_share * 100.0,
            expected * 100.0,
            tolerance(SPREAD_REQUESTS) * 100.0,
            tolerance(SPREAD_STREAMS) * 100.0,
        );
        assert!(
            (request_share - expected).abs() <= tolerance(SPREAD_REQUESTS),
            "daemon {i}'s share of requests {request_share:.3} is {expected:.3} ± {:.3}",
            tolerance(SPREAD_REQUESTS)
        );
        assert!(
            (stream_share - expected).abs() <= tolerance(SPREAD_STREAMS),
            "daemon {i}'s share of streams {stream_share:.3} is {expected:.3} ± {:.3}",
            tolerance(SPREAD_STREAMS)
        );
    }
}

#[test]
fn two_daemons_share_the_work_as_their_listener_counts_say() {
    spread(&[1, 3]);
}

#[test]
fn three_daemons_share_the_work_as_their_listener_counts_say() {
    spread(&[1, 2, 3]);
}

/// The load of the rolling-upgrade and host-death tests: checked streams and requests at a
/// fixed pace (each loop waits `PACE` after each exchange), bodies and streams up to 128 KiB so
/// both the control channel and rendezvous carry requests.
fn steady_shape(relay_url: &str) -> LoadShape {
    LoadShape {
        relay_url: relay_url.to_owned(),
        stream_path: STREAM_PATH.to_owned(),
        http_path: HTTP_PATH.to_owned(),
        stream_threads: 1,
        streams_per_thread: 3,
        max_stream_bytes: 128 * 1024,
        max_body: 128 * 1024,
        http_senders: 4,
        pace: PACE,
        hang_limit: Duration::from_secs(20),
    }
}

/// The pause after each exchange of one load loop.
const PACE: Duration = Duration::from_millis(10);
/// How long the HTTP target takes to answer: requests are in flight at any moment.
const TARGET_LATENCY: Duration = Duration::from_millis(50);

/// What the samples of a run show.
#[derive(Debug, Default)]
struct Tally {
    streams: u64,
    requests: u64,
    bytes_verified: u64,
    failed: Vec<String>,
}

/// Counts `samples`; a complete stream counts only if the target received all its bytes
/// (SHA-256 compared), so a stream is verified end to end.
fn tally(samples: &[Sample], at_target: &HashMap<u64, TargetReport>) -> Tally {
    let mut t = Tally::default();
    for sample in samples {
        match (&sample.report.outcome, sample.kind) {
            (Outcome::Complete { up_sha256, down }, Kind::Stream(header)) => {
                t.streams += 1;
                match at_target.get(&header.id) {
                    Some(r)
                        if r.end == UpEnd::Eof
                            && r.received == header.up_len
                            && &r.sha256 == up_sha256 =>
                    {
                        t.bytes_verified += header.up_len + down;
                    }
                    other => t.failed.push(format!(
                        "stream {header:?} complete at the sender, at the target: {other:?}"
                    )),
                }
            }
            (Outcome::Complete { down, .. }, Kind::Http(plan)) => {
                t.requests += 1;
                t.bytes_verified += plan.up_len + down;
            }
            (outcome, Kind::Stream(header)) => {
                t.streams += 1;
                t.failed.push(format!("stream {}: {outcome:?}", header.id));
            }
            (outcome, Kind::Http(plan)) => {
                t.requests += 1;
                t.failed.push(format!(
                    "request {plan:?} after {:?} (restarts {}..{}): {outcome:?}",
                    sample.report.elapsed, sample.phase_start, sample.phase_end
                ));
            }
        }
    }
    t
}

#[test]
fn a_rolling_restart_of_three_daemons_under_load_loses_nothing() {
    let mut stage = Stage::new(TARGET_LATENCY, "10s");
    let mut members = stage.fleet(&[2, 2, 2]);
    let restarts = Arc::new(Restarts::default());
    let load = Load::start(
        steady_shape(&stage.relay.url),
        stage.pool.clone(),
        restarts.clone(),
        Arc::new(AtomicU64::new(0)),
        stage.rng.u64(..),
    );
    let started = Instant::now();
    let mut drains = Vec::new();
    for (i, member) in members.iter_mut().enumerate() {
        // Each daemon is busy when it is stopped.
        let busy = |m: &Member| m.served().0 >= 5.0 && m.served().1 >= 2.0;
        assert!(eventually(PATIENCE, || busy(member)), "daemon {i} serves");
        restarts.begin();
        let stopped = Instant::now();
        stop(member, Duration::from_secs(15));
        drains.push(stopped.elapsed());
        member.start_again(&stage.plan);
        wait_attached(&stage.relay, 6);
        restarts.end();
    }
    let last = members.len() - 1;
    assert!(
        eventually(PATIENCE, || members[last].served().0 >= 5.0),
        "the last daemon serves again after its restart"
    );
    let samples = load.stop();
    let elapsed = started.elapsed();
    let mut at_target = HashMap::new();
    stage.target_reports(&mut at_target);
    let t = tally(&samples, &at_target);
    println!(
        "rolling restart of 3 daemons (listeners = 2 each) in {:.2} s: drains {:?}; {} streams and {} requests, {} failed; {} bytes verified",
        elapsed.as_secs_f64(),
        drains.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect::<Vec<_>>(),
        t.streams,
        t.requests,
        t.failed.len(),
        t.bytes_verified
    );
    assert!(t.streams > 0 && t.requests > 0, "the load ran: {t:?}");
    assert_eq!(
        t.failed,
        Vec::<String>::new(),
        "nothing fails during a rolling restart"
    );
}

/// How long after a host's death every new exchange must succeed.
const RECOVERY_GOAL: Duration = Duration::from_secs(2);
/// The relay's accept timeout in the host-death test: a stream whose `accept` went to the dead
/// daemon fails after it (504).
const ACCEPT_TIMEOUT: &str = "3s";

#[test]
fn a_dead_daemon_fails_only_what_was_in_flight_on_it() {
    let mut stage =
        Stage::with_relay_flags(TARGET_LATENCY, "10s", &["--accept-timeout", ACCEPT_TIMEOUT]);
    let mut members = stage.fleet(&[2, 2]);
    let load = Load::start(
        steady_shape(&stage.relay.url),
        stage.pool.clone(),
        Arc::new(Restarts::default()),
        Arc::new(AtomicU64::new(0)),
        stage.rng.u64(..),
    );
    let busy = |m: &Member| m.served().0 >= 5.0 && m.served().1 >= 2.0;
    assert!(
        eventually(PATIENCE, || members.iter().all(busy)),
        "both daemons serve"
    );
    let died = Instant::now();
    members[0].daemon.signal("KILL");
    members[0].daemon.wait_exit(PATIENCE);
    assert!(
        eventually(PATIENCE, || stage.relay.listener_count(STREAM_PATH) == 2
            && stage.relay.listener_count(HTTP_PATH) == 2),
        "the relay drops the dead daemon's listeners"
    );
    let detected = died.elapsed();
    // The measurement window: the load runs on for twice the goal after the death, plus the
    // accept timeout, so a stream offered to the dead daemon has ended too.
    let window = RECOVERY_GOAL * 2 + Duration::from_secs(3);
    std::thread::sleep(window.saturating_sub(died.elapsed()));
    let survivor = members[1].served();
    let samples = load.stop();
    let mut at_target = HashMap::new();
    stage.target_reports(&mut at_target);
    let t = tally(&samples, &at_target);
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.report.outcome, Outcome::Complete { .. }))
        .collect();
    // When each failure started, in ms relative to the death (negative: before it).
    let offset_ms = |s: &Sample| {
        if s.started >= died {
            (s.started - died).as_secs_f64() * 1000.0
        } else {
            -(died - s.started).as_secs_f64() * 1000.0
        }
    };
    let last_failure = failed
        .iter()
        .map(|s| offset_ms(s))
        .fold(f64::NEG_INFINITY, f64::max);
    let late: Vec<String> = failed
        .iter()
        .filter(|s| s.started > died + RECOVERY_GOAL)
        .map(|s| format!("{s:?}"))
        .collect();
    println!(
        "kill -9 of 1 of 2 daemons (listeners = 2 each): relay dropped its listeners {:.0} ms after the death; {} streams and {} requests in {:.1} s, {} failed ({} requests, {} streams), the last failure started {:.0} ms after the death; the survivor served {} requests and {} streams in total",
        detected.as_secs_f64() * 1000.0,
        t.streams,
        t.requests,
        window.as_secs_f64(),
        failed.len(),
        failed.iter().filter(|s| matches!(s.kind, Kind::Http(_))).count(),
        failed.iter().filter(|s| matches!(s.kind, Kind::Stream(_))).count(),
        last_failure,
        survivor.0,
        survivor.1,
    );
    for s in &failed {
        println!(
            "  failed: {:?}, started {:.0} ms after the death, took {:?}",
            s.report.outcome,
            offset_ms(s),
            s.report.elapsed
        );
    }
    assert_eq!(
        late,
        Vec::<String>::new(),
        "nothing started more than 2 s after the death fails"
    );
    for s in &failed {
        let clear = match &s.report.outcome {
            // 404: the relay picked a dead channel just before it saw the reset (docs/relay.md
            // "Admission and pairing", rule 5); 502: a request waiting on it; 504: a stream whose
            // `accept` it never read.
            Outcome::Refused(status) => ["404", "502", "504"].iter().any(|c| status.contains(c)),
            Outcome::Cut { error, .. } => error != common::steady_load::HUNG,
            _ => false,
        };
        assert!(clear, "a failure says what happened: {s:?}");
    }
}

#[test]
fn a_relay_restart_is_a_gap_the_daemons_close_by_reconnecting() {
    let mut stage = Stage::restartable(TARGET_LATENCY);
    let members = stage.fleet(&[2, 2]);
    let restarts = Arc::new(Restarts::default());
    let load = Load::start(
        steady_shape(&stage.relay.url),
        stage.pool.clone(),
        restarts.clone(),
        Arc::new(AtomicU64::new(0)),
        stage.rng.u64(..),
    );
    let busy = |m: &Member| m.served().0 >= 5.0 && m.served().1 >= 2.0;
    assert!(
        eventually(PATIENCE, || members.iter().all(busy)),
        "both daemons serve"
    );
    restarts.begin();
    let killed = Instant::now();
    stage.relay.restart();
    let listening = killed.elapsed();
    restarts.end();
    wait_attached(&stage.relay, 4);
    let back = Instant::now();
    let gap = back - killed;
    let served_then = members[0].served().0 + members[1].served().0;
    assert!(
        eventually(PATIENCE, || members[0].served().0 + members[1].served().0
            >= served_then + 20.0),
        "requests flow again"
    );
    let samples = load.stop();
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.report.outcome, Outcome::Complete { .. }))
        .collect();
    let cut = failed.iter().filter(|s| s.started < killed).count();
    println!(
        "relay restart (SIGKILL, 2 daemons × 2 listeners): the relay listened again after {:.0} ms, every listener was back after {:.0} ms; {} exchanges, {} failed: {cut} in flight at the kill, {} started in the gap",
        listening.as_secs_f64() * 1000.0,
        gap.as_secs_f64() * 1000.0,
        samples.len(),
        failed.len(),
        failed.len() - cut,
    );
    let late: Vec<String> = failed
        .iter()
        .filter(|s| s.started >= back)
        .map(|s| format!("{s:?}"))
        .collect();
    assert_eq!(
        late,
        Vec::<String>::new(),
        "nothing started after the listeners were back fails"
    );
}
