//! `idle`: opens `--connections` echo streams (relayed sender WebSockets, protocol §7.1, or plain
//! TCP), checks each with an echo (one byte, or `--echo-bytes`) so the far end has its upstream
//! connection, holds them all, and reports the resident memory (`VmRSS`) each costs the process
//! `--rss-pid`.

use std::fmt;
use std::time::Instant;

use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use serde::Serialize;

use hycod::io::ws_client::Dialer;
use hycod::io::ws_reader::WsEvent;
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::mask_key;
use hycod::proto::ws::OpCode;

use crate::cli::IdleArgs;
use crate::conn::{self, WsHalves};
use crate::failure::Failure;
use crate::procstat::vm_rss_kib;
use crate::target::{Endpoint, TargetError};

/// The byte each stream echoes once.
const PROBE: u8 = b'.';

/// A held stream: kept open, never used again; dropping it closes the stream.
enum Held {
    Ws {
        _halves: WsHalves,
    },
    Tcp {
        _halves: (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>),
    },
}

/// What an idle run reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdleReport {
    pub mode: &'static str,
    pub target: String,
    pub connections: u32,
    pub opened: u32,
    pub failed: u32,
    pub open_secs: f64,
    pub nofile_limit: Option<u64>,
    pub rss_pid: Option<u32>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after − before) / opened.
    pub rss_per_stream_kib: Option<f64>,
}

impl IdleReport {
    /// The memory each opened stream cost, from the RSS before and after.
    pub(crate) fn per_stream(before: Option<u64>, after: Option<u64>, opened: u32) -> Option<f64> {
        let (before, after) = (before?, after?);
        (opened > 0).then(|| (after as f64 - before as f64) / f64::from(opened))
    }

    /// The human table.
    pub(crate) fn table(&self) -> String {
        let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
        format!(
            "hycod-load idle -> {} ({} streams asked, open-file limit {})\n\
             streams     {} open and echoing, {} failed, opened in {:.2} s\n\
             rss         pid {}: {} before, {} after, {} per stream\n",
            self.target,
            self.connections,
            self.nofile_limit
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            self.opened,
            self.failed,
            self.open_secs,
            self.rss_pid.map_or("-".to_owned(), |p| p.to_string()),
            kib(self.rss_before_kib),
            kib(self.rss_after_kib),
            self.rss_per_stream_kib
                .map_or("-".to_owned(), |v| format!("{v:.2} KiB")),
        )
    }
}

/// The `len` bytes a stream sends and expects back: `.` first (the probe), then a pattern
/// that a shifted or dropped byte does not repeat.
fn echo_payload(len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| PROBE.wrapping_add((i % 251) as u8))
        .collect()
}

/// The largest message a relayed stream sends for the echo.
const ECHO_FRAME: usize = 64 * 1024;

async fn open_one(endpoint: &Endpoint, dialer: &Dialer, echo_bytes: u32) -> Result<Held, Failure> {
    let payload = echo_payload(echo_bytes);
    match endpoint {
        Endpoint::Relayed {
            relay_url,
            hc,
            token,
            ..
        } => {
            let (mut write, mut reader) = conn::open_ws(dialer, relay_url, hc, token).await?;
            let send = async {
                for chunk in payload.chunks(ECHO_FRAME) {
                    let mut frame = Vec::with_capacity(chunk.len() + 14);
                    push_frame(&mut frame, true, OpCode::Binary, chunk, mask_key())
                        .map_err(|_| Failure::Encode)?;
                    let (sent, _) = write.write_all(frame).await;
                    sent.map_err(|_| Failure::Send)?;
                }
                Ok::<(), Failure>(())
            };
            let receive = async {
                let mut got = 0;
                while got < payload.len() {
                    match reader.next_event().await.map_err(|_| Failure::Receive)? {
                        WsEvent::Data { payload: range, .. } => {
                            let bytes = reader.bytes(range);
                            let expected = payload.get(got..got + bytes.len());
                            if expected != Some(bytes) {
                                return Err(Failure::EchoMismatch);
                            }
                            got += bytes.len();
                        }
                        WsEvent::Close { .. } => return Err(Failure::Closed),
                        WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                    }
                }
                Ok(())
            };
            let (sent, received) = monoio::join!(send, receive);
            sent?;
            received?;
            Ok(Held::Ws {
                _halves: (write, reader),
            })
        }
        Endpoint::Direct { addr, .. } => {
            let stream = conn::connect(*addr).await?;
            let (mut read_half, mut write_half) = stream.into_split();
            let len = payload.len();
            let send = async {
                let (sent, _) = write_half.write_all(payload.clone()).await;
                sent.map_err(|_| Failure::Send)
            };
            let receive = async {
                let (got, back) = read_half.read_exact(vec![0u8; len]).await;
                got.map_err(|_| Failure::Receive)?;
                Ok(back)
            };
            let (sent, received) = monoio::join!(send, receive);
            sent?;
            if received? != payload {
                return Err(Failure::EchoMismatch);
            }
            Ok(Held::Tcp {
                _halves: (read_half, write_half),
            })
        }
    }
}

/// Why an idle run failed.
#[derive(Debug)]
pub(crate) enum IdleError {
    Target(TargetError),
    Dialer(Failure),
    Runtime(std::io::Error),
}

impl fmt::Display for IdleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Target(e) => e.fmt(f),
            Self::Dialer(e) => write!(f, "cannot build the WebSocket client: {e}"),
            Self::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
        }
    }
}

impl std::error::Error for IdleError {}

/// Opens, holds and measures the streams, then closes them.
pub(crate) fn run(args: &IdleArgs) -> Result<IdleReport, IdleError> {
    let nofile_limit = crate::fd_limit::raise_nofile();
    let endpoint = crate::target::resolve(&args.target, "tcp").map_err(IdleError::Target)?;
    let rss = || args.rss_pid.and_then(vm_rss_kib);
    hycod::runtime::workers::block_on(async {
        let dialer = std::rc::Rc::new(conn::dialer(&endpoint).map_err(IdleError::Dialer)?);
        let rss_before_kib = rss();
        let started = Instant::now();
        let mut held = Vec::new();
        let mut failed = 0u32;
        let mut remaining = args.connections;
        while remaining > 0 {
            let batch = remaining.min(args.parallel);
            remaining -= batch;
            let tasks: Vec<_> = (0..batch)
                .map(|_| {
                    let endpoint = std::rc::Rc::clone(&endpoint);
                    let dialer = std::rc::Rc::clone(&dialer);
                    let timeout = args.timeout;
                    let echo_bytes = args.echo_bytes;
                    monoio::spawn(async move {
                        monoio::time::timeout(timeout, open_one(&endpoint, &dialer, echo_bytes))
                            .await
                            .unwrap_or(Err(Failure::Timeout))
                    })
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(stream) => held.push(stream),
                    Err(_) => failed += 1,
                }
            }
        }
        let open_secs = started.elapsed().as_secs_f64();
        monoio::time::sleep(args.quiet_for).await;
        let rss_after_kib = rss();
        let opened = u32::try_from(held.len()).unwrap_or(u32::MAX);
        drop(held);
        Ok(IdleReport {
            mode: "idle",
            target: crate::target::describe(&args.target),
            connections: args.connections,
            opened,
            failed,
            open_secs,
            nofile_limit,
            rss_pid: args.rss_pid,
            rss_before_kib,
            rss_after_kib,
            rss_per_stream_kib: IdleReport::per_stream(rss_before_kib, rss_after_kib, opened),
        })
    })
    .map_err(IdleError::Runtime)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_per_stream_is_the_delta_over_the_streams() {
        assert_eq!(
            IdleReport::per_stream(Some(1000), Some(3000), 1000),
            Some(2.0)
        );
        assert_eq!(
            IdleReport::per_stream(Some(1000), Some(900), 100),
            Some(-1.0)
        );
        assert_eq!(IdleReport::per_stream(None, Some(3000), 10), None);
        assert_eq!(IdleReport::per_stream(Some(1), Some(3000), 0), None);
    }
}
