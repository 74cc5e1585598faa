//! `hycod-load`: the bundled load generator (docs/benchmarking.md rule 4). Open-loop
//! echo round trips over relayed WebSocket streams (protocol §7.1) or plain TCP, and relayed
//! (§7.2) or direct HTTP requests; latencies from the intended send time into HDR histograms.
//! Also bulk throughput with the CPU cost of the processes under test, idle streams with the
//! memory each costs, and a search for the highest rate held under a p99 bound.

mod bulk;
mod cli;
mod conn;
mod cpu;
mod failure;
mod fd_limit;
mod find_max;
mod idle;
mod open_loop;
mod procstat;
mod proxy;
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
        Command::ServeHttp {
            listen,
            response_size: None,
        } => serve::serve(listen, serve::http).map_err(|e| e.to_string()),
        Command::ServeHttp {
            response_size: Some(size),
            ..
        } if size > serve::MAX_RESPONSE_SIZE => Err(format!(
            "--response-size {size} is more than the {} allowed",
            serve::MAX_RESPONSE_SIZE
        )),
        Command::ServeHttp {
            listen,
            response_size: Some(size),
        } => {
            let response = Rc::new(serve::fixed_response(size));
            serve::serve(listen, move |stream| {
                serve::http_fixed(stream, Rc::clone(&response))
            })
            .map_err(|e| e.to_string())
        }
        Command::ServeBulk { listen } => {
            serve::serve(listen, serve::bulk).map_err(|e| e.to_string())
        }
        Command::Bulk { args } => args
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|()| bulk::run(&args).map_err(|e| e.to_string()))
            .and_then(|report| {
                print!("{}", report.table());
                write_json(args.json.as_deref(), &report)
            }),
        Command::Idle { args } => args
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|()| idle::run(&args).map_err(|e| e.to_string()))
            .and_then(|report| {
                print!("{}", report.table());
                write_json(args.json.as_deref(), &report)
            }),
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

/// Writes `value` as pretty JSON to `path`, when given.
fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// The JSON of a `--find-max` search: every step and the highest passing rate.
#[derive(serde::Serialize)]
struct FindMax {
    mode: String,
    target: String,
    max_p99_us: u64,
    /// The highest rate that passed (None when even `--rate` failed).
    max_rate: Option<f64>,
    /// Re-runs allowed after a failed try (`--step-retries`).
    step_retries: u32,
    /// Steps (rates) that needed at least one re-run.
    retried_steps: u32,
    /// Every try, in order.
    steps: Vec<FindMaxTry>,
}

/// One try of a `--find-max` step: its summary, which try of its rate it was, and whether it
/// passed.
#[derive(serde::Serialize)]
struct FindMaxTry {
    attempt: u32,
    passed: bool,
    #[serde(flatten)]
    summary: report::Summary,
}

fn load(
    common: &Common,
    mode: &str,
    scheme: &'static str,
    make_workload: impl Fn() -> Workload + Send + Sync + Clone + 'static,
) -> Result<(), String> {
    common.validate().map_err(|e| e.to_string())?;
    if !common.find_max {
        let summary = load_once(common, mode, scheme, make_workload)?;
        return write_json(common.json.as_deref(), &summary);
    }
    let max_p99_us = u64::try_from(common.max_p99.as_micros()).unwrap_or(u64::MAX);
    let mut search =
        find_max::RateSearch::new(common.rate, common.refine_steps, common.step_retries);
    let mut steps = Vec::new();
    loop {
        let step = Common {
            rate: search.rate,
            json: None,
            plot: None,
            ..common.clone()
        };
        let attempt = search.attempt();
        let summary = load_once(&step, mode, scheme, make_workload.clone())?;
        let ok = find_max::passed(
            summary.p99_us,
            max_p99_us,
            summary.error_total,
            summary.achieved_rate,
            step.rate,
        );
        println!(
            "find-max    {} /s try {attempt}: {} (p99 {} µs, {} errors)",
            step.rate,
            if ok { "sustained" } else { "not sustained" },
            summary.p99_us,
            summary.error_total
        );
        steps.push(FindMaxTry {
            attempt,
            passed: ok,
            summary,
        });
        if search.next(ok).is_none() {
            break;
        }
    }
    let retried = search.retried_steps();
    match search.best {
        Some(rate) => println!(
            "find-max    max sustained rate {rate} /s at p99 < {max_p99_us} µs ({retried} steps retried)"
        ),
        None => println!(
            "find-max    not even {} /s was sustained at p99 < {max_p99_us} µs ({retried} steps retried)",
            common.rate
        ),
    }
    write_json(
        common.json.as_deref(),
        &FindMax {
            mode: mode.to_owned(),
            target: target::describe(&common.target),
            max_p99_us,
            max_rate: search.best,
            step_retries: common.step_retries,
            retried_steps: retried,
            steps,
        },
    )
}

/// One open- or closed-loop run at `common.rate`: prints its table, draws its plot.
fn load_once(
    common: &Common,
    mode: &str,
    scheme: &'static str,
    make_workload: impl Fn() -> Workload + Send + Sync + 'static,
) -> Result<report::Summary, String> {
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
    let target = target::describe(&common.target);
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
    if let Some(path) = &common.plot {
        let title = format!("hycod-load {mode} {target}: latency by percentile");
        std::fs::write(path, svg::render(&results.latency, &title))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(summary)
}
