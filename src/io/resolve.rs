//! Name resolution that never blocks a worker.
//!
//! `getaddrinfo` blocks its thread for as long as DNS takes (seconds when a server does not
//! answer). A worker thread serves every stream and request of its core, so a [`Resolver`]
//! hands each lookup to a small pool of resolver threads ([`RESOLVER_THREADS`]) and awaits the
//! answer; the worker goes on serving meanwhile. IP literals are parsed in place, answers are
//! cached for [`CACHE_TTL`], and a lookup that takes longer than the resolver's timeout
//! ([`DEFAULT_TIMEOUT`]) fails with [`io::ErrorKind::TimedOut`] (it still fills the cache when
//! it completes). Failures are not cached. Outcomes are counted process-wide for `/metrics`
//! ([`render_metrics`]).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Threads that run blocking lookups, shared by every resolver of the process.
pub const RESOLVER_THREADS: usize = 4;
/// How long a resolved address list is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a lookup may take before it fails (glibc's own per-server timeout is 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking lookup of `host:port`; runs on a resolver thread.
pub type Lookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

type Cache = Mutex<HashMap<(String, u16), (Instant, Addrs)>>;

/// The addresses of one name, in the resolver's order (never empty).
pub type Addrs = Arc<[SocketAddr]>;

/// Resolves host names off the worker thread, with a cache and a timeout. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    lookup: Arc<Lookup>,
    cache: Arc<Cache>,
    timeout: Duration,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Resolver {
    /// The process-wide system resolver (`getaddrinfo`), one cache for every dialer.
    fn default() -> Self {
        static SYSTEM: OnceLock<Resolver> = OnceLock::new();
        SYSTEM
            .get_or_init(|| Self::with_lookup(Arc::new(system_lookup), DEFAULT_TIMEOUT))
            .clone()
    }
}

impl Resolver {
    /// A resolver running `lookup` (e.g. a test's slow resolver) with its own cache.
    pub fn with_lookup(lookup: Arc<Lookup>, timeout: Duration) -> Self {
        Self {
            lookup,
            cache: Arc::new(Mutex::new(HashMap::new())),
            timeout,
        }
    }

    /// The first address of `host:port`; IPv6 literals may be bracketed.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<SocketAddr> {
        Ok(self.resolve_all(host, port).await?[0])
    }

    /// Every address of `host:port` in the system's order of preference (e.g. `localhost` as
    /// `::1` and `127.0.0.1`), for callers that try each in turn.
    pub async fn resolve_all(&self, host: &str, port: u16) -> io::Result<Addrs> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(Arc::from([SocketAddr::new(ip, port)]));
        }
        if let Some(addrs) = self.cached(host, port) {
            METRICS.count(Outcome::Cached);
            return Ok(addrs);
        }
        let (reply, answer) = flume::bounded(1);
        let job = {
            let lookup = Arc::clone(&self.lookup);
            let cache = Arc::clone(&self.cache);
            let host = host.to_owned();
            move || {
                let started = Instant::now();
                let result = lookup(&host, port).and_then(|addrs| {
                    if addrs.is_empty() {
                        Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{host} has no address"),
                        ))
                    } else {
                        Ok(Addrs::from(addrs))
                    }
                });
                METRICS.add_seconds(started.elapsed());
                if let Ok(addrs) = &result {
                    if let Ok(mut cache) = cache.lock() {
                        cache.insert((host, port), (Instant::now(), Arc::clone(addrs)));
                    }
                }
                // The asking task may have timed out and gone; its answer is then unwanted.
                let _ = reply.send(result);
            }
        };
        METRICS.in_flight.fetch_add(1, Ordering::Relaxed);
        let answered = match pool().send(Box::new(job)) {
            Ok(()) => monoio::time::timeout(self.timeout, answer.recv_async()).await,
            Err(_) => Ok(Err(flume::RecvError::Disconnected)),
        };
        METRICS.in_flight.fetch_sub(1, Ordering::Relaxed);
        match answered {
            Ok(Ok(Ok(addrs))) => {
                METRICS.count(Outcome::Resolved);
                Ok(addrs)
            }
            Ok(Ok(Err(error))) => {
                METRICS.count(Outcome::Failed);
                Err(error)
            }
            Ok(Err(flume::RecvError::Disconnected)) => {
                METRICS.count(Outcome::Failed);
                Err(io::Error::other(format!(
                    "resolving {host}: the resolver threads are gone"
                )))
            }
            Err(_) => {
                METRICS.count(Outcome::TimedOut);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("resolving {host} took longer than {:?}", self.timeout),
                ))
            }
        }
    }

    fn cached(&self, host: &str, port: u16) -> Option<Addrs> {
        let cache = self.cache.lock().ok()?;
        let (at, addrs) = cache.get(&(host.to_owned(), port))?;
        (at.elapsed() < CACHE_TTL).then(|| Arc::clone(addrs))
    }
}

/// `getaddrinfo` through the standard library.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

type Job = Box<dyn FnOnce() + Send>;

/// The job queue of the resolver threads, started on first use.
fn pool() -> &'static flume::Sender<Job> {
    static POOL: OnceLock<flume::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = flume::unbounded::<Job>();
        for index in 0..RESOLVER_THREADS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hycod-resolve-{index}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "a resolver thread could not start");
            }
        }
        jobs
    })
}

#[derive(Clone, Copy)]
enum Outcome {
    Cached,
    Resolved,
    Failed,
    TimedOut,
}

/// Process-wide resolution counters (a lookup is rare next to bytes, so atomics suffice).
struct Metrics {
    by_outcome: [AtomicU64; 4],
    lookup_micros: AtomicU64,
    in_flight: AtomicU64,
}

static METRICS: Metrics = Metrics {
    by_outcome: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
    lookup_micros: AtomicU64::new(0),
    in_flight: AtomicU64::new(0),
};

const OUTCOME_LABELS: [&str; 4] = ["cached", "resolved", "failed", "timeout"];

impl Metrics {
    fn count(&self, outcome: Outcome) {
        self.by_outcome[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn add_seconds(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.lookup_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The resolver metrics in Prometheus text format (docs/metrics.md).
pub fn render_metrics() -> String {
    let mut text = String::from(
        "# HELP hycod_name_resolutions_total Host name resolutions of relay, rendezvous, proxy and target hosts, by result.\n\
         # TYPE hycod_name_resolutions_total counter\n",
    );
    for (label, count) in OUTCOME_LABELS.iter().zip(&METRICS.by_outcome) {
        let count = count.load(Ordering::Relaxed);
        text.push_str(&format!(
            "hycod_name_resolutions_total{{result=\"{label}\"}} {count}\n"
        ));
    }
    let seconds = METRICS.lookup_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let in_flight = METRICS.in_flight.load(Ordering::Relaxed);
    text.push_str(&format!(
        "# HELP hycod_name_resolution_seconds_total Time resolver threads spent in lookups.\n\
         # TYPE hycod_name_resolution_seconds_total counter\n\
         hycod_name_resolution_seconds_total {seconds}\n\
         # HELP hycod_name_resolutions_in_flight Lookups being awaited now.\n\
         # TYPE hycod_name_resolutions_in_flight gauge\n\
         hycod_name_resolutions_in_flight {in_flight}\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::runtime::workers::block_on;

    fn counting(calls: Arc<AtomicUsize>, delay: Duration) -> Arc<Lookup> {
        Arc::new(move |_host: &str, port: u16| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(delay);
            Ok(vec![SocketAddr::from(([127, 0, 0, 7], port))])
        })
    }

    #[test]
    fn literals_resolve_in_place_and_names_are_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let resolver =
            Resolver::with_lookup(counting(calls.clone(), Duration::ZERO), DEFAULT_TIMEOUT);
        block_on(async move {
            let v6 = resolver.resolve("[::1]", 8).await.expect("literal");
            assert_eq!(v6, "[::1]:8".parse().expect("addr"));
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            for _ in 0..3 {
                let addr = resolver.resolve("relay.test", 443).await.expect("name");
                assert_eq!(addr, "127.0.0.7:443".parse().expect("addr"));
            }
            assert_eq!(calls.load(Ordering::SeqCst), 1, "answers are cached");
            resolver.resolve("relay.test", 80).await.expect("name");
            assert_eq!(
                calls.load(Ordering::SeqCst),
                2,
                "the port is part of the key"
            );
        })
        .expect("runtime");
    }

    #[test]
    fn a_slow_lookup_times_out_with_timed_out_and_fills_the_cache_later() {
        let calls = Arc::new(AtomicUsize::new(0));
        let resolver = Resolver::with_lookup(
            counting(calls.clone(), Duration::from_millis(300)),
            Duration::from_millis(50),
        );
        block_on(async move {
            let error = resolver
                .resolve("slow.test", 1)
                .await
                .expect_err("times out");
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert!(error
                .to_string()
                .contains("resolving slow.test took longer"));
            let deadline = Instant::now() + Duration::from_secs(5);
            while resolver.cached("slow.test", 1).is_none() {
                assert!(Instant::now() < deadline, "the late answer was not cached");
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
            resolver.resolve("slow.test", 1).await.expect("cached");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        })
        .expect("runtime");
    }

    #[test]
    fn a_name_without_addresses_is_not_found_and_not_cached() {
        let resolver =
            Resolver::with_lookup(Arc::new(|_: &str, _| Ok(Vec::new())), DEFAULT_TIMEOUT);
        block_on(async move {
            let error = resolver.resolve("empty.test", 1).await.expect_err("none");
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
            assert_eq!(error.to_string(), "empty.test has no address");
            assert!(resolver.cached("empty.test", 1).is_none());
        })
        .expect("runtime");
    }

    #[test]
    fn metrics_render_every_result_and_count_cache_hits() {
        let hits = || METRICS.by_outcome[Outcome::Cached as usize].load(Ordering::Relaxed);
        let resolver = Resolver::with_lookup(
            counting(Arc::new(AtomicUsize::new(0)), Duration::ZERO),
            DEFAULT_TIMEOUT,
        );
        let before = hits();
        block_on(async move {
            resolver.resolve("twice.test", 1).await.expect("resolved");
            resolver.resolve("twice.test", 1).await.expect("cached");
        })
        .expect("runtime");
        assert!(hits() > before);
        let text = render_metrics();
        for label in OUTCOME_LABELS {
            assert!(text.contains(&format!(
                "hycod_name_resolutions_total{{result=\"{label}\"}}"
            )));
        }
        assert!(text.contains("hycod_name_resolutions_in_flight "));
    }
}
