//! Steady checked load for the soak: stream loops (each a checked stream after the other) and
//! relayed-HTTP loops, each exchange recorded with the phases it started and ended in, until
//! stopped. The test marks each relay restart in a [`Restarts`] before the kill and after the
//! relay is back, so an exchange a restart may have cut shows `phase_end > phase_start`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checked::{body_len, Pool};
use super::checked_senders::{send_stream, HttpPlan, HttpSender, Outcome, Report};
use super::checked_targets::StreamHeader;

/// What the load consists of.
#[derive(Debug, Clone)]
pub(crate) struct LoadShape {
    pub relay_url: String,
    pub stream_path: String,
    pub http_path: String,
    /// Client threads for streams, and concurrent stream loops on each.
    pub stream_threads: u64,
    pub streams_per_thread: u64,
    /// Largest stream run each way and largest HTTP body each way.
    pub max_stream_bytes: u64,
    pub max_body: u64,
    /// HTTP sender threads.
    pub http_senders: u64,
    /// The pause between two exchanges of one loop (after a refusal: ten times as long).
    pub pace: Duration,
    /// An exchange taking longer counts as hung.
    pub hang_limit: Duration,
}

/// Relay restarts begun (counted before the kill) and done (after the relay is back).
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    begun: AtomicUsize,
    done: AtomicUsize,
}

impl Restarts {
    pub(crate) fn begin(&self) {
        self.begun.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn end(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    /// The phase an exchange starting now belongs to: restarts done.
    fn phase_at_start(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// The phase an exchange ending now reached: restarts begun.
    fn phase_at_end(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }
}

/// Which kind of exchange a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Stream(StreamHeader),
    Http(HttpPlan),
}

/// One finished exchange.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub kind: Kind,
    /// Restarts done when it started.
    pub phase_start: usize,
    /// Restarts begun when it ended: greater than `phase_start` when a restart ran through it.
    pub phase_end: usize,
    /// When it started.
    pub started: Instant,
    pub report: Report,
}

/// Running load; [`Load::stop`] ends it and hands back every sample.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// Shared by every loop.
#[derive(Clone)]
struct Ctx {
    shape: Arc<LoadShape>,
    pool: Arc<Pool>,
    restarts: Arc<Restarts>,
    ids: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Ctx {
    fn record(&self, kind: Kind, phase_start: usize, report: Report) -> Duration {
        let pause = match report.outcome {
            Outcome::Refused(_) => self.shape.pace * 10,
            _ => self.shape.pace,
        };
        let sample = Sample {
            kind,
            phase_start,
            phase_end: self.restarts.phase_at_end(),
            started: Instant::now() - report.elapsed,
            report,
        };
        self.samples.lock().expect("samples").push(sample);
        pause
    }
}

impl Load {
    /// Starts the loops; `ids` numbers the streams (unique across loads sharing it).
    pub(crate) fn start(
        shape: LoadShape,
        pool: Arc<Pool>,
        restarts: Arc<Restarts>,
        ids: Arc<AtomicU64>,
        seed: u64,
    ) -> Self {
        let ctx = Ctx {
            shape: Arc::new(shape),
            pool,
            restarts,
            ids,
            stop: Arc::new(AtomicBool::new(false)),
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        let mut threads = Vec::new();
        for t in 0..ctx.shape.stream_threads {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || {
                super::run(async move {
                    let loops: Vec<_> = (0..ctx.shape.streams_per_thread)
                        .map(|k| monoio::spawn(stream_loop(ctx.clone(), seed ^ (t << 32) ^ k)))
                        .collect();
                    for l in loops {
                        l.await;
                    }
                });
            }));
        }
        for s in 0..ctx.shape.http_senders {
            let ctx = ctx.clone();
            threads.push(std::thread::spawn(move || http_loop(ctx, seed ^ (s << 48))));
        }
        Self {
            stop: ctx.stop,
            threads,
            samples: ctx.samples,
        }
    }

    /// Stops every loop after its current exchange; every sample.
    pub(crate) fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("load thread");
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

async fn stream_loop(ctx: Ctx, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let path = ctx.shape.stream_path.clone();
    while !ctx.stop.load(Ordering::SeqCst) {
        let header = StreamHeader {
            id: ctx.ids.fetch_add(1, Ordering::SeqCst),
            up_start: Pool::random_start(&mut rng),
            up_len: body_len(&mut rng, ctx.shape.max_stream_bytes),
            down_start: Pool::random_start(&mut rng),
            down_len: body_len(&mut rng, ctx.shape.max_stream_bytes),
        };
        let phase_start = ctx.restarts.phase_at_start();
        let sent = send_stream(&ctx.shape.relay_url, &path, ctx.pool.clone(), header);
        let report = match monoio::time::timeout(ctx.shape.hang_limit, sent).await {
            Ok(report) => report,
            Err(_) => Report {
                outcome: Outcome::Cut {
                    down: 0,
                    error: HUNG.to_owned(),
                },
                elapsed: ctx.shape.hang_limit,
            },
        };
        let pause = ctx.record(Kind::Stream(header), phase_start, report);
        monoio::time::sleep(pause).await;
    }
}

/// The error of an exchange that did not end within the hang limit.
pub(crate) const HUNG: &str = "hung";

fn http_loop(ctx: Ctx, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sender = HttpSender::new(
        &ctx.shape.relay_url,
        &ctx.shape.http_path,
        ctx.pool.clone(),
        seed,
    );
    sender.io_timeout = ctx.shape.hang_limit;
    let mut last_phase = ctx.restarts.phase_at_start();
    while !ctx.stop.load(Ordering::SeqCst) {
        let plan = HttpPlan {
            up_start: Pool::random_start(&mut rng),
            up_len: body_len(&mut rng, ctx.shape.max_body),
            down_start: Pool::random_start(&mut rng),
            down_len: body_len(&mut rng, ctx.shape.max_body),
        };
        let phase_start = ctx.restarts.phase_at_start();
        if phase_start != last_phase {
            // A connection from before a restart is dead; not a failure of this request.
            sender.disconnect();
            last_phase = phase_start;
        }
        let report = sender.send(plan);
        let pause = ctx.record(Kind::Http(plan), phase_start, report);
        std::thread::sleep(pause);
    }
}
