//! `bulk`: streams pushing data as fast as they can, one way or both, through a relay as a
//! Hybrid Connections sender (protocol §7.1, binary frames) or over plain TCP (`--direct`, e.g. to
//! `hycod forward` or a peer tunnel). The first byte of each stream tells the `serve-bulk`
//! target what to do ([`Direction::code`]); the target answers [`ACK`] before any data flows, so
//! the stream is established end to end before the measured burst starts (like iperf3's
//! cookie exchange; rathole 0.5's websocket transport drops streams whose first bytes arrive
//! while its data channel is still being set up). Reports Gbit/s and the CPU-seconds per GiB of the
//! processes named by `--cpu-pids` (benchmarking.md rule 3).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRentExt, Splitable};
use serde::Serialize;

use hycod::io::ws_reader::WsEvent;
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::mask_key;
use hycod::proto::ws::OpCode;

use crate::cli::BulkArgs;
use crate::conn::{self, WsHalves};
use crate::failure::Failure;
use crate::procstat::{per_gib, CpuSnapshot, CpuUse};
use crate::target::{Endpoint, TargetError};

/// The byte `serve-bulk` answers to a stream's direction byte.
pub(crate) const ACK: u8 = b'K';

/// Which way a bulk stream's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    /// From the generator to the target.
    Up,
    /// From the target to the generator.
    Down,
    /// Both at once.
    Both,
}

impl Direction {
    /// Parses `up`, `down` or `both`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            "both" => Ok(Self::Both),
            other => Err(format!("direction {other:?} is not up, down or both")),
        }
    }

    /// The first byte of a stream, asking the target to read (`U`), write (`D`) or both (`B`).
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Up => b'U',
            Self::Down => b'D',
            Self::Both => b'B',
        }
    }

    /// The direction a stream's first byte asks for.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            b'U' => Some(Self::Up),
            b'D' => Some(Self::Down),
            b'B' => Some(Self::Both),
            _ => None,
        }
    }

    /// Whether the generator writes.
    pub(crate) fn sends(self) -> bool {
        matches!(self, Self::Up | Self::Both)
    }

    /// Whether the generator reads.
    pub(crate) fn receives(self) -> bool {
        matches!(self, Self::Down | Self::Both)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Both => "both",
        })
    }
}

/// Bytes moved so far by every stream of the run, each way.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub up: Cell<u64>,
    pub down: Cell<u64>,
    pub errors: Cell<u64>,
}

impl Counters {
    fn add(cell: &Cell<u64>, n: usize) {
        cell.set(
            cell.get()
                .saturating_add(u64::try_from(n).unwrap_or(u64::MAX)),
        );
    }
}

/// What a bulk run reports (stdout table and JSON).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BulkReport {
    pub mode: &'static str,
    pub target: String,
    pub direction: Direction,
    pub streams: u32,
    pub chunk: usize,
    /// The measured window as it actually elapsed (warm-up excluded).
    pub measured_secs: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub bytes: u64,
    pub gbit_s: f64,
    /// Streams that failed during the run.
    pub errors: u64,
    pub processes: Vec<CpuUse>,
    pub process_cpu_secs: f64,
    pub process_cpu_secs_per_gib: f64,
    pub generator_cpu_secs: f64,
    pub generator_cpu_secs_per_gib: f64,
}

/// The counters, CPU times and clock at one moment of the run.
pub(crate) struct Snapshot {
    pub at: Instant,
    pub up: u64,
    pub down: u64,
    pub processes: CpuSnapshot,
    pub generator: Duration,
}

impl BulkReport {
    /// The report of the window from `first` to `last`.
    pub(crate) fn new(
        args: &BulkArgs,
        target: String,
        first: &Snapshot,
        last: &Snapshot,
        errors: u64,
    ) -> Self {
        let measured = last.at.saturating_duration_since(first.at).as_secs_f64();
        let bytes_up = last.up.saturating_sub(first.up);
        let bytes_down = last.down.saturating_sub(first.down);
        let bytes = bytes_up.saturating_add(bytes_down);
        let processes = last.processes.since(&first.processes);
        let process_cpu_secs: f64 = processes.iter().map(|p| p.cpu_secs).sum();
        let generator_cpu_secs = last.generator.saturating_sub(first.generator).as_secs_f64();
        Self {
            mode: "bulk",
            target,
            direction: args.direction,
            streams: args.streams,
            chunk: args.chunk,
            measured_secs: measured,
            bytes_up,
            bytes_down,
            bytes,
            gbit_s: if measured > 0.0 {
                bytes as f64 * 8.0 / measured / 1e9
            } else {
                0.0
            },
            errors,
            process_cpu_secs,
            process_cpu_secs_per_gib: per_gib(process_cpu_secs, bytes),
            processes,
            generator_cpu_secs,
            generator_cpu_secs_per_gib: per_gib(generator_cpu_secs, bytes),
        }
    }

    /// The human table.
    pub(crate) fn table(&self) -> String {
        let mut out = format!(
            "hycod-load bulk -> {} ({} {} stream(s), {} B writes, {:.2} s measured)\n\
             throughput  {:.3} Gbit/s ({} B up, {} B down)\n\
             errors      {}\n",
            self.target,
            self.streams,
            self.direction,
            self.chunk,
            self.measured_secs,
            self.gbit_s,
            self.bytes_up,
            self.bytes_down,
            self.errors,
        );
        for p in &self.processes {
            out += &format!(
                "cpu         {} (pid {}): {:.2} CPU-s, {:.3} CPU-s/GiB\n",
                p.name,
                p.pid,
                p.cpu_secs,
                per_gib(p.cpu_secs, self.bytes)
            );
        }
        if !self.processes.is_empty() {
            out += &format!(
                "cpu         processes total: {:.2} CPU-s, {:.3} CPU-s/GiB\n",
                self.process_cpu_secs, self.process_cpu_secs_per_gib
            );
        }
        out += &format!(
            "generator   {:.2} CPU-s, {:.3} CPU-s/GiB\n",
            self.generator_cpu_secs, self.generator_cpu_secs_per_gib
        );
        out
    }
}

/// Yields to the runtime once, so a stream whose writes complete at once cannot starve the
/// controller's timer.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Writes between yields.
const WRITES_PER_YIELD: u32 = 16;

/// One open bulk stream.
enum BulkConn {
    Ws(WsHalves),
    Tcp(monoio::net::TcpStream),
}

/// Opens a stream, sends the direction byte and waits for the target's [`ACK`].
async fn open(
    endpoint: &Endpoint,
    dialer: &hycod::io::ws_client::Dialer,
    direction: Direction,
) -> Result<BulkConn, Failure> {
    match endpoint {
        Endpoint::Relayed {
            relay_url,
            hc,
            token,
            ..
        } => {
            let (mut write, mut reader) = conn::open_ws(dialer, relay_url, hc, token).await?;
            let (sent, _) = write.write_all(frame(&[direction.code()])?).await;
            sent.map_err(|_| Failure::Send)?;
            loop {
                match reader.next_event().await.map_err(|_| Failure::Receive)? {
                    // The target's data may follow the ACK in the same frame (direction `down`
                    // or `both`); those bytes precede the run and are not counted.
                    WsEvent::Data { payload, .. }
                        if reader.bytes(payload.clone()).first() == Some(&ACK) =>
                    {
                        return Ok(BulkConn::Ws((write, reader)))
                    }
                    WsEvent::Data { .. } => return Err(Failure::EchoMismatch),
                    WsEvent::Close { .. } => return Err(Failure::Closed),
                    WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                }
            }
        }
        Endpoint::Direct { addr, .. } => {
            let mut stream = conn::connect(*addr).await?;
            let (sent, _) = stream.write_all(vec![direction.code()]).await;
            sent.map_err(|_| Failure::Send)?;
            let (got, ack) = stream.read_exact(vec![0u8; 1]).await;
            got.map_err(|_| Failure::Receive)?;
            if ack != [ACK] {
                return Err(Failure::EchoMismatch);
            }
            Ok(BulkConn::Tcp(stream))
        }
    }
}

/// A masked binary frame carrying `payload` (protocol §7.1: the sender masks, RFC 6455 §5.3).
fn frame(payload: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    push_frame(&mut out, true, OpCode::Binary, payload, mask_key()).map_err(|_| Failure::Encode)?;
    Ok(out)
}

/// Writes `chunk` again and again until `end`, counting `counted` bytes per write.
async fn push<W: AsyncWriteRentExt>(
    mut write: W,
    chunk: Vec<u8>,
    counted: usize,
    end: Instant,
    counters: Rc<Counters>,
) {
    let mut chunk = chunk;
    let mut writes = 0u32;
    while Instant::now() < end {
        let (sent, back) = write.write_all(chunk).await;
        chunk = back;
        if sent.is_err() {
            counters.errors.set(counters.errors.get() + 1);
            return;
        }
        Counters::add(&counters.up, counted);
        writes = writes.wrapping_add(1);
        if writes.is_multiple_of(WRITES_PER_YIELD) {
            YieldNow(false).await;
        }
    }
}

/// Reads plain TCP until `end`, counting the bytes.
async fn pull_tcp<R: AsyncReadRent>(mut read: R, end: Instant, counters: Rc<Counters>) {
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < end {
        let (got, back) = read.read(buf).await;
        buf = back;
        match got {
            Ok(0) | Err(_) => {
                counters.errors.set(counters.errors.get() + 1);
                return;
            }
            Ok(n) => Counters::add(&counters.down, n),
        }
    }
}

/// Reads WebSocket data until `end`, counting the payload bytes.
async fn pull_ws(
    mut reader: hycod::io::ws_reader::WsReader<
        monoio::io::OwnedReadHalf<hycod::io::stream::Stream>,
    >,
    end: Instant,
    counters: Rc<Counters>,
) {
    while Instant::now() < end {
        match reader.next_event().await {
            Ok(WsEvent::Data { payload, .. }) => Counters::add(&counters.down, payload.len()),
            Ok(WsEvent::Ping(_) | WsEvent::Pong(_)) => {}
            Ok(WsEvent::Close { .. }) | Err(_) => {
                counters.errors.set(counters.errors.get() + 1);
                return;
            }
        }
    }
}

/// Keeps `half` of a stream open (unused) until the run ends.
async fn hold<T>(half: T) {
    let _half = half;
    std::future::pending::<()>().await;
}

/// Starts the tasks of one open stream.
fn start(
    conn: BulkConn,
    args: &BulkArgs,
    end: Instant,
    counters: &Rc<Counters>,
) -> Result<(), Failure> {
    let direction = args.direction;
    let payload = vec![0x5a_u8; args.chunk];
    match conn {
        BulkConn::Ws((write, reader)) => {
            if direction.sends() {
                let frame = frame(&payload)?;
                monoio::spawn(push(write, frame, args.chunk, end, Rc::clone(counters)));
            } else {
                monoio::spawn(hold(write));
            }
            if direction.receives() {
                monoio::spawn(pull_ws(reader, end, Rc::clone(counters)));
            } else {
                monoio::spawn(hold(reader));
            }
        }
        BulkConn::Tcp(stream) => {
            let (read, write) = stream.into_split();
            if direction.sends() {
                monoio::spawn(push(write, payload, args.chunk, end, Rc::clone(counters)));
            } else {
                monoio::spawn(hold(write));
            }
            if direction.receives() {
                monoio::spawn(pull_tcp(read, end, Rc::clone(counters)));
            } else {
                monoio::spawn(hold(read));
            }
        }
    }
    Ok(())
}

/// Why a bulk run failed.
#[derive(Debug)]
pub(crate) enum BulkError {
    Target(TargetError),
    /// A stream could not be opened.
    Open {
        stream: u32,
        failure: Failure,
    },
    Runtime(std::io::Error),
}

impl fmt::Display for BulkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Target(e) => e.fmt(f),
            Self::Open { stream, failure } => {
                write!(f, "stream {stream} could not be opened: {failure}")
            }
            Self::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
        }
    }
}

impl std::error::Error for BulkError {}

/// Runs a bulk load and reports it.
pub(crate) fn run(args: &BulkArgs) -> Result<BulkReport, BulkError> {
    let endpoint = crate::target::resolve(&args.target, "tcp").map_err(BulkError::Target)?;
    let pids = args.cpu_pids.clone();
    let snapshot = |counters: &Counters| Snapshot {
        at: Instant::now(),
        up: counters.up.get(),
        down: counters.down.get(),
        processes: CpuSnapshot::take(&pids),
        generator: crate::cpu::process_cpu_time(),
    };
    hycod::runtime::workers::block_on(async {
        let dialer =
            conn::dialer(&endpoint).map_err(|failure| BulkError::Open { stream: 0, failure })?;
        let mut conns = Vec::new();
        for stream in 0..args.streams {
            conns.push(
                open(&endpoint, &dialer, args.direction)
                    .await
                    .map_err(|failure| BulkError::Open { stream, failure })?,
            );
        }
        let counters = Rc::new(Counters::default());
        let end = Instant::now() + args.warmup + args.duration;
        for (stream, conn) in (0..).zip(conns) {
            start(conn, args, end, &counters)
                .map_err(|failure| BulkError::Open { stream, failure })?;
        }
        monoio::time::sleep(args.warmup).await;
        let first = snapshot(&counters);
        monoio::time::sleep(args.duration).await;
        let last = snapshot(&counters);
        Ok(BulkReport::new(
            args,
            crate::target::describe(&args.target),
            &first,
            &last,
            counters.errors.get(),
        ))
    })
    .map_err(BulkError::Runtime)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn directions_parse_and_round_trip_through_their_codes() {
        for (text, direction) in [
            ("up", Direction::Up),
            ("down", Direction::Down),
            ("both", Direction::Both),
        ] {
            assert_eq!(Direction::parse(text), Ok(direction));
            assert_eq!(Direction::from_code(direction.code()), Some(direction));
            assert_eq!(direction.to_string(), text);
        }
        assert!(Direction::parse("sideways").is_err());
        assert_eq!(Direction::from_code(b'x'), None);
        assert!(Direction::Up.sends() && !Direction::Up.receives());
        assert!(!Direction::Down.sends() && Direction::Down.receives());
        assert!(Direction::Both.sends() && Direction::Both.receives());
    }

    #[test]
    fn the_report_counts_only_the_measured_window() {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            args: BulkArgs,
        }
        let args =
            T::parse_from(["t", "--direct", "tcp://127.0.0.1:1", "--direction", "both"]).args;
        let at = Instant::now();
        let first = Snapshot {
            at,
            up: 1000,
            down: 500,
            processes: CpuSnapshot::take(&[]),
            generator: Duration::from_secs(1),
        };
        let gib = 1024 * 1024 * 1024;
        let last = Snapshot {
            at: at + Duration::from_secs(2),
            up: 1000 + gib,
            down: 500 + gib,
            processes: CpuSnapshot::take(&[]),
            generator: Duration::from_secs(2),
        };
        let report = BulkReport::new(&args, "t".to_owned(), &first, &last, 0);
        assert_eq!(
            (report.bytes_up, report.bytes_down, report.bytes),
            (gib, gib, 2 * gib)
        );
        assert!((report.gbit_s - 2.0 * gib as f64 * 8.0 / 2.0 / 1e9).abs() < 1e-9);
        assert!((report.generator_cpu_secs_per_gib - 0.5).abs() < 1e-9);
        assert!(report.table().contains("Gbit/s"), "{}", report.table());
    }
}
