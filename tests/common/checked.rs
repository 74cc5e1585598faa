//! Checked data for the "nothing lost" and soak tests (docs/reliability.md): every byte a test
//! sends is a run of one shared random [`Pool`], so the receiver can compare each byte it gets with
//! the byte it should have got (a `memcmp`, fast even in a debug build) and both sides keep a
//! SHA-256 and a count of what they sent or received, compared at the end.

use std::sync::Arc;

use ring::digest::{Context, SHA256};

/// Pool length: longer than the largest HTTP body (8 MiB) and not a power of two, so runs of
/// the usual chunk sizes never line up with its end.
pub(crate) const POOL_LEN: usize = 8 * 1024 * 1024 + 13;

/// The largest chunk (one WebSocket frame or one socket write) the tests send.
pub(crate) const MAX_CHUNK: usize = 256 * 1024;

/// Random bytes that every checked stream and body is cut from, cyclically.
pub(crate) struct Pool {
    bytes: Vec<u8>,
}

impl Pool {
    pub(crate) fn new(seed: u64) -> Arc<Self> {
        let mut bytes = vec![0u8; POOL_LEN];
        fastrand::Rng::with_seed(seed).fill(&mut bytes);
        Arc::new(Self { bytes })
    }

    /// The bytes at stream position `pos` (taken modulo the pool), at most `max` of them and
    /// never past the pool's end: the caller loops for more.
    pub(crate) fn run(&self, pos: u64, max: usize) -> &[u8] {
        let at = usize::try_from(pos % POOL_LEN as u64).expect("below POOL_LEN");
        let len = max.min(POOL_LEN - at);
        &self.bytes[at..at + len]
    }

    /// A random starting position in the pool.
    pub(crate) fn random_start(rng: &mut fastrand::Rng) -> u64 {
        rng.u64(..POOL_LEN as u64)
    }
}

/// The hex SHA-256 of `len` pool bytes from `start` (what a sender of that run sent).
pub(crate) fn sha256_of_run(pool: &Pool, start: u64, len: u64) -> String {
    let mut sent = Sent::new(start);
    let mut left = len;
    while left > 0 {
        let max = usize::try_from(left.min(MAX_CHUNK as u64)).expect("chunk fits usize");
        let run = pool.run(sent.pos(), max);
        sent.record(run);
        left -= run.len() as u64;
    }
    sent.finish()
}

/// What a sender sent so far: its position in the pool, a count and a running SHA-256.
pub(crate) struct Sent {
    start: u64,
    count: u64,
    sha: Context,
}

impl Sent {
    pub(crate) fn new(start: u64) -> Self {
        Self {
            start,
            count: 0,
            sha: Context::new(&SHA256),
        }
    }

    /// The pool position of the next byte to send.
    pub(crate) fn pos(&self) -> u64 {
        self.start + self.count
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Records `bytes` (a run just sent).
    pub(crate) fn record(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.count += bytes.len() as u64;
    }

    /// The hex SHA-256 of everything recorded.
    pub(crate) fn finish(self) -> String {
        hex(self.sha.finish().as_ref())
    }
}

/// The first received byte that differs from what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// Its offset in the stream or body.
    pub at: u64,
}

/// A receiver's check of a run that starts at pool position `start`.
pub(crate) struct Checker {
    pool: Arc<Pool>,
    received: Sent,
}

impl Checker {
    pub(crate) fn new(pool: Arc<Pool>, start: u64) -> Self {
        Self {
            pool,
            received: Sent::new(start),
        }
    }

    /// Bytes received and verified so far.
    pub(crate) fn count(&self) -> u64 {
        self.received.count()
    }

    /// Checks `data`, the next bytes received, against the pool; on a difference nothing of
    /// `data` is counted.
    pub(crate) fn check(&mut self, mut data: &[u8]) -> Result<(), Mismatch> {
        while !data.is_empty() {
            let expected = self.pool.run(self.received.pos(), data.len());
            let (got, rest) = data.split_at(expected.len());
            if got != expected {
                let offset = got
                    .iter()
                    .zip(expected)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(Mismatch {
                    at: self.received.count() + offset as u64,
                });
            }
            self.received.record(got);
            data = rest;
        }
        Ok(())
    }

    /// The hex SHA-256 of everything verified.
    pub(crate) fn finish(self) -> String {
        self.received.finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random chunk length for a sender with `left` (> 0) bytes to go: log-uniform in
/// `1..=MAX_CHUNK`, cut to `left`.
pub(crate) fn chunk_len(rng: &mut fastrand::Rng, left: u64) -> usize {
    let cap = usize::try_from(left.min(MAX_CHUNK as u64)).expect("chunk fits usize");
    // Mostly small writes with a long tail up to MAX_CHUNK: log-uniform sizes.
    let bits = rng.u32(0..=18);
    let len = rng.usize(1..=(1usize << bits).min(MAX_CHUNK));
    len.min(cap).max(1)
}

/// A log-uniform size in `0..=max` (small and large bodies alike).
pub(crate) fn body_len(rng: &mut fastrand::Rng, max: u64) -> u64 {
    let bits = rng.u32(0..=max.ilog2() + 1);
    rng.u64(0..=(1u64 << bits).min(max))
}

/// The run's random seed: `HYCOD_TEST_SEED` when set, otherwise a fresh one; printed so a
/// failing run can be repeated.
pub(crate) fn seed() -> u64 {
    let seed = std::env::var("HYCOD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed} (HYCOD_TEST_SEED={seed} repeats this run)");
    seed
}
