//! `hycod-load`: the bundled load generator (issue 6, docs/benchmarking.md rule 4). Open-loop
//! echo round trips over relayed WebSocket streams (spec §7.1) or plain TCP, and relayed
//! (§7.2) or direct HTTP requests; latencies from the intended send time into HDR histograms.

mod cli;
mod conn;
mod cpu;
mod failure;
mod open_loop;
mod report;
mod results;
mod run;
mod serve;
mod svg;
mod target;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use cli::{Cli, Command, Common};
use conn::Workload;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::ServeEcho { listen } => {
            serve::serve(listen, serve::echo).map_err(|e| e.to_string())
        }
        Command::ServeHttp { listen } => {
            serve::serve(listen, serve::http).map_err(|e| e.to_string())
        }
        Command::Stream { common, size } => {
            load(&common, "stream", "tcp", move || Workload::Echo {
                payload: Rc::new(
                    (0..size)
                        .map(|i| u8::try_from(i % 251).unwrap_or(0))
                        .collect(),
                ),
            })
        }
        Command::Http {
            common,
            method,
            body_size,
            headers,
            path,
        } => load(&common, "http", "http", move || Workload::Http {
            method: method.clone(),
            body: Rc::new(vec![b'x'; body_size]),
            headers,
            path: path.clone(),
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hycod-load: {message}");
            ExitCode::from(2)
        }
    }
}

fn load(
    common: &Common,
    mode: &str,
    scheme: &'static str,
    make_workload: impl Fn() -> Workload + Send + Sync + 'static,
) -> Result<(), String> {
    common.validate().map_err(|e| e.to_string())?;
    let progress = Arc::new(run::Progress::default());
    let reporter = std::io::stderr().is_terminal().then(|| {
        let progress = Arc::clone(&progress);
        let total = common.warmup + common.duration;
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = 0;
            while started.elapsed() < total {
                std::thread::sleep(Duration::from_secs(1));
                let done = progress.done.load(Ordering::Relaxed);
                eprintln!(
                    "{:>4.0} s  {} /s  {} done  {} errors",
                    started.elapsed().as_secs_f64(),
                    done - last,
                    done,
                    progress.errors.load(Ordering::Relaxed)
                );
                last = done;
            }
        })
    });
    let cpu_before = cpu::process_cpu_time();
    let results = run::run(common, scheme, make_workload, Arc::clone(&progress))
        .map_err(|e| e.to_string())?;
    let cpu = cpu::process_cpu_time().saturating_sub(cpu_before);
    if let Some(reporter) = reporter {
        let _ = reporter.join();
    }
    let target = common
        .direct
        .clone()
        .map(|d| format!("direct {d}"))
        .or_else(|| {
            common.relay.as_ref().map(|r| {
                format!(
                    "relay {r} hc {}",
                    common.hybrid_connection.as_deref().unwrap_or("")
                )
            })
        })
        .unwrap_or_default();
    let sent = progress.done.load(Ordering::Relaxed) + progress.errors.load(Ordering::Relaxed);
    let summary = report::Summary::new(
        mode,
        &target,
        common,
        &results,
        common.duration,
        (cpu, sent),
    );
    print!("{}", summary.table());
    if let Some(path) = &common.json {
        let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &common.plot {
        let title = format!("hycod-load {mode} {target}: latency by percentile");
        std::fs::write(path, svg::render(&results.latency, &title))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
