//! Reads this process's `proc(5)` files for the process metrics (architecture §4); the parsing
//! is in [`crate::metrics::process`].

use std::fmt;

use crate::metrics::process::{ProcessSample, ProcfsError, ProcfsText};

/// Why the process metrics could not be read.
#[derive(Debug)]
pub enum ProcessReadError {
    /// A `proc(5)` file or directory could not be read (not Linux, or `/proc` not mounted).
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    /// A file was read but its content was not understood.
    Parse(ProcfsError),
}

impl fmt::Display for ProcessReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "cannot read {path}: {source}"),
            Self::Parse(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProcessReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Parse(e) => Some(e),
        }
    }
}

fn read(path: &'static str) -> Result<String, ProcessReadError> {
    std::fs::read_to_string(path).map_err(|source| ProcessReadError::Read { path, source })
}

/// Entries of `/proc/self/fd`, less the one the listing itself holds open.
fn count_open_fds() -> Result<u64, ProcessReadError> {
    const FD_DIR: &str = "/proc/self/fd";
    let entries = std::fs::read_dir(FD_DIR).map_err(|source| ProcessReadError::Read {
        path: FD_DIR,
        source,
    })?;
    let listed = entries.filter(Result::is_ok).count();
    Ok(u64::try_from(listed).unwrap_or(u64::MAX).saturating_sub(1))
}

/// A reading of this process's memory, descriptors, CPU time and start time. A few small
/// reads of `/proc`: done at scrape time by the admin endpoint, never on the data path.
pub fn read_self() -> Result<ProcessSample, ProcessReadError> {
    let stat = read("/proc/self/stat")?;
    let status = read("/proc/self/status")?;
    let proc_stat = read("/proc/stat")?;
    ProcessSample::from_procfs(ProcfsText {
        stat: &stat,
        status: &status,
        proc_stat: &proc_stat,
        open_fds: count_open_fds()?,
        ticks_per_second: rustix::param::clock_ticks_per_second(),
    })
    .map_err(ProcessReadError::Parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_plausibly() {
        let sample = read_self().expect("procfs is readable on Linux");
        assert!(sample.resident_memory_bytes > 1024 * 1024);
        assert!(sample.open_fds >= 3);
        assert!(sample.cpu_seconds >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(sample.start_time_seconds <= now + 1.0);
        assert!(sample.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
