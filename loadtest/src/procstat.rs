//! Other processes' CPU time and resident memory, read from `/proc` (proc(5)): `utime + stime`
//! of `/proc/PID/stat` and `VmRSS` of `/proc/PID/status`. Used to charge the processes under
//! test (relay, daemon, forwarder, peers) per GiB moved and per idle stream.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::cpu::{parse_cpu_ticks, USER_HZ};

/// A process named on the command line: `PID` or `NAME=PID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NamedPid {
    pub name: String,
    pub pid: u32,
}

/// Why `--cpu-pids` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PidListError {
    /// An entry is empty (e.g. `1,,2`).
    Empty,
    /// An entry's pid is not a positive number.
    BadPid { entry: String },
}

impl fmt::Display for PidListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("--cpu-pids has an empty entry"),
            Self::BadPid { entry } => write!(
                f,
                "--cpu-pids entry {entry:?} is not PID or NAME=PID with a positive PID"
            ),
        }
    }
}

impl std::error::Error for PidListError {}

/// Parses one `--cpu-pids` entry: `NAME=PID`, or `PID` (then named by its pid).
pub(crate) fn parse_pid(entry: &str) -> Result<NamedPid, PidListError> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err(PidListError::Empty);
    }
    let (name, pid) = entry.split_once('=').unwrap_or((entry, entry));
    let pid: u32 =
        pid.trim()
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| PidListError::BadPid {
                entry: entry.to_owned(),
            })?;
    Ok(NamedPid {
        name: name.trim().to_owned(),
        pid,
    })
}

/// CPU time (user + system) process `pid` has used so far; None when it is gone.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    Some(Duration::from_millis(ticks.saturating_mul(1000) / USER_HZ))
}

/// Resident memory of process `pid` in KiB; None when it is gone.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in KiB.
pub(crate) fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse().ok())
}

/// CPU-seconds spent by each named process between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CpuUse {
    pub name: String,
    pub pid: u32,
    pub cpu_secs: f64,
}

/// A snapshot of the named processes' CPU times.
#[derive(Debug, Clone)]
pub(crate) struct CpuSnapshot(Vec<(NamedPid, Option<Duration>)>);

impl CpuSnapshot {
    /// Reads the CPU time of each of `pids` now.
    pub(crate) fn take(pids: &[NamedPid]) -> Self {
        Self(pids.iter().map(|p| (p.clone(), cpu_time(p.pid))).collect())
    }

    /// What each process spent since `earlier` (zero for a process gone in either snapshot).
    pub(crate) fn since(&self, earlier: &Self) -> Vec<CpuUse> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|((p, now), (_, then))| CpuUse {
                name: p.name.clone(),
                pid: p.pid,
                cpu_secs: match (now, then) {
                    (Some(now), Some(then)) => now.saturating_sub(*then).as_secs_f64(),
                    _ => 0.0,
                },
            })
            .collect()
    }
}

/// Bytes in a GiB.
pub(crate) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// CPU-seconds per GiB moved; zero when nothing moved.
pub(crate) fn per_gib(cpu_secs: f64, bytes: u64) -> f64 {
    if bytes == 0 {
        0.0
    } else {
        cpu_secs / (bytes as f64 / GIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lists_take_names_or_bare_pids() {
        assert_eq!(
            parse_pid("relay=12"),
            Ok(NamedPid {
                name: "relay".to_owned(),
                pid: 12
            })
        );
        assert_eq!(
            parse_pid(" 34"),
            Ok(NamedPid {
                name: "34".to_owned(),
                pid: 34
            })
        );
        assert_eq!(parse_pid(""), Err(PidListError::Empty));
        assert_eq!(
            parse_pid("relay=x"),
            Err(PidListError::BadPid {
                entry: "relay=x".to_owned()
            })
        );
        assert_eq!(
            parse_pid("0"),
            Err(PidListError::BadPid {
                entry: "0".to_owned()
            })
        );
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\thycod\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss_kib(status), Some(5120));
        assert_eq!(parse_vm_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_rss() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(vm_rss_kib(me).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn cpu_use_is_the_difference_and_a_vanished_process_counts_zero() {
        let p = |pid| NamedPid {
            name: format!("p{pid}"),
            pid,
        };
        let earlier = CpuSnapshot(vec![(p(1), Some(Duration::from_millis(500))), (p(2), None)]);
        let later = CpuSnapshot(vec![
            (p(1), Some(Duration::from_millis(1750))),
            (p(2), Some(Duration::from_millis(10))),
        ]);
        let used = later.since(&earlier);
        assert_eq!(used[0].cpu_secs, 1.25);
        assert_eq!(used[1].cpu_secs, 0.0);
    }

    #[test]
    fn cpu_per_gib_scales_by_bytes() {
        assert_eq!(per_gib(3.0, 2 * 1024 * 1024 * 1024), 1.5);
        assert_eq!(per_gib(3.0, 0), 0.0);
    }
}
