//! The summary: a table on stdout and the same numbers as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::results::Results;

/// Everything a run reports.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub mode: String,
    pub target: String,
    pub open_loop: bool,
    pub intended_rate: f64,
    pub connections: u32,
    pub threads: u32,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub n: u64,
    pub achieved_rate: f64,
    pub throughput_mbit_s: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub error_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub generator_cpu_secs: f64,
    /// Over every request sent, warm-up included (the CPU time covers the whole run).
    pub generator_cpu_us_per_request: f64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Summary {
    /// Summarises `results` measured over `measured`; `cpu` is the generator's CPU time over
    /// the whole run, spent on `requests` requests (warm-up included).
    pub(crate) fn new(
        mode: &str,
        target: &str,
        common: &crate::cli::Common,
        results: &Results,
        measured: Duration,
        (cpu, requests): (Duration, u64),
    ) -> Self {
        let q = results.latency.quantiles();
        let secs = measured.as_secs_f64().max(1e-9);
        Self {
            mode: mode.to_owned(),
            target: target.to_owned(),
            open_loop: !common.closed_loop,
            intended_rate: if common.closed_loop { 0.0 } else { common.rate },
            connections: common.connections,
            threads: common.threads,
            duration_secs: common.duration.as_secs_f64(),
            warmup_secs: common.warmup.as_secs_f64(),
            n: q.count,
            achieved_rate: results.ok as f64 / secs,
            throughput_mbit_s: results.bytes as f64 * 8.0 / secs / 1e6,
            p50_us: micros(q.p50),
            p90_us: micros(q.p90),
            p99_us: micros(q.p99),
            p999_us: micros(q.p999),
            max_us: micros(q.max),
            mean_us: if q.count == 0 {
                0.0
            } else {
                results.latency.sum_micros() as f64 / q.count as f64
            },
            error_total: results.error_count(),
            errors: results
                .errors
                .iter()
                .map(|(k, v)| (k.name().to_owned(), *v))
                .collect(),
            generator_cpu_secs: cpu.as_secs_f64(),
            generator_cpu_us_per_request: if requests == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / requests as f64
            },
        }
    }

    /// The human table.
    pub(crate) fn table(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{} ({})", self.error_total, kinds.join(" "))
        };
        let rate = if self.open_loop {
            format!("{} /s open loop", self.intended_rate)
        } else {
            "closed loop".to_owned()
        };
        format!(
            "hycod-load {mode} -> {target} ({rate}, {c} connections, {t} threads, {d} s after {w} s warm-up)\n\
             requests    {n} ok, {ar:.1} /s, {tp:.2} Mbit/s payload\n\
             latency µs  p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}  (from intended send time)\n\
             errors      {errors}\n\
             generator   {cpu:.3} CPU-s (user+sys), {cpr:.1} CPU-µs per request\n",
            mode = self.mode,
            target = self.target,
            c = self.connections,
            t = self.threads,
            d = self.duration_secs,
            w = self.warmup_secs,
            n = self.n,
            ar = self.achieved_rate,
            tp = self.throughput_mbit_s,
            p50 = self.p50_us,
            p90 = self.p90_us,
            p99 = self.p99_us,
            p999 = self.p999_us,
            max = self.max_us,
            cpu = self.generator_cpu_secs,
            cpr = self.generator_cpu_us_per_request,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;
    use clap::Parser;

    #[test]
    fn the_table_and_json_carry_the_same_numbers() {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            common: crate::cli::Common,
        }
        let common = T::parse_from(["t", "--rate", "100", "--duration", "2s"]).common;
        let mut results = Results::default();
        for v in 1..=100 {
            results.latency.record_micros(v * 10);
        }
        results.ok = 100;
        results.bytes = 12_500;
        results.error(Failure::Timeout);
        let s = Summary::new(
            "http",
            "direct",
            &common,
            &results,
            Duration::from_secs(2),
            (Duration::from_millis(101), 101),
        );
        assert_eq!(s.n, 100);
        assert_eq!(s.achieved_rate, 50.0);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.max_us, 1000);
        assert!((s.generator_cpu_us_per_request - 1000.0).abs() < 1e-6);
        let table = s.table();
        assert!(table.contains("p50 500"), "{table}");
        assert!(table.contains("errors      1 (timeout=1)"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        assert_eq!(json["p99_us"], 990);
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!(json["error_total"], 1);
    }
}
