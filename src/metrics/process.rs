//! Process metrics (architecture §4), named as the Prometheus client libraries name them
//! (<https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics>), and the
//! `hycod_build_info` gauge. Sans-I/O: the parsers take the text of Linux `proc(5)` files
//! (`/proc/self/stat`, `/proc/self/status`, `/proc/stat`) and [`ProcessSample::render`] writes
//! Prometheus text; reading the files is `crate::runtime::procfs`'s job.

use std::fmt::{self, Write as _};

/// A field a `proc(5)` file lacks or holds in a form that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcfsError {
    /// `/proc/[pid]/stat` has no `)` closing the command name.
    StatCommandUnterminated,
    /// A field of `file` is missing.
    MissingField {
        file: &'static str,
        field: &'static str,
    },
    /// A field of `file` is not an unsigned integer.
    NotANumber {
        file: &'static str,
        field: &'static str,
    },
    /// The kernel reported zero clock ticks per second.
    ZeroClockTicks,
}

impl fmt::Display for ProcfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StatCommandUnterminated => {
                f.write_str("/proc/self/stat: the command name has no closing ')'")
            }
            Self::MissingField { file, field } => write!(f, "{file}: field `{field}` is missing"),
            Self::NotANumber { file, field } => {
                write!(f, "{file}: field `{field}` is not an unsigned integer")
            }
            Self::ZeroClockTicks => f.write_str("the kernel reports 0 clock ticks per second"),
        }
    }
}

impl std::error::Error for ProcfsError {}

/// The fields of `/proc/[pid]/stat` used here (`proc(5)`), in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    /// Field 14 `utime` plus field 15 `stime`: CPU time spent in user and kernel mode.
    pub cpu_ticks: u64,
    /// Field 22 `starttime`: when the process started, after system boot.
    pub start_ticks: u64,
}

const STAT: &str = "/proc/self/stat";
const STATUS: &str = "/proc/self/status";
const PROC_STAT: &str = "/proc/stat";

/// Parses `/proc/[pid]/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Result<StatTimes, ProcfsError> {
    let close = text
        .rfind(')')
        .ok_or(ProcfsError::StatCommandUnterminated)?;
    // After the command name come fields 3 (`state`), 4, …: field n is at index n - 3.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |index: usize, name: &'static str| -> Result<u64, ProcfsError> {
        let raw = fields.get(index).ok_or(ProcfsError::MissingField {
            file: STAT,
            field: name,
        })?;
        raw.parse().map_err(|_| ProcfsError::NotANumber {
            file: STAT,
            field: name,
        })
    };
    let utime = field(14 - 3, "utime")?;
    let stime = field(15 - 3, "stime")?;
    let start_ticks = field(22 - 3, "starttime")?;
    Ok(StatTimes {
        cpu_ticks: utime.saturating_add(stime),
        start_ticks,
    })
}

/// The value of the first line `key value…` in `text` (`key` includes its `:` where the file
/// has one), as an unsigned integer.
fn keyed_number(
    text: &str,
    file: &'static str,
    key: &'static str,
    field: &'static str,
) -> Result<u64, ProcfsError> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .ok_or(ProcfsError::MissingField { file, field })?;
    line.split_whitespace()
        .next()
        .ok_or(ProcfsError::MissingField { file, field })?
        .parse()
        .map_err(|_| ProcfsError::NotANumber { file, field })
}

/// The resident set size in bytes from `/proc/[pid]/status` (`VmRSS:  1234 kB`; the kernel
/// always writes that field in kB).
pub fn parse_resident_bytes(status: &str) -> Result<u64, ProcfsError> {
    let kib = keyed_number(status, STATUS, "VmRSS:", "VmRSS")?;
    Ok(kib.saturating_mul(1024))
}

/// The boot time in seconds since the Unix epoch from `/proc/stat` (`btime 1700000000`).
pub fn parse_boot_time(proc_stat: &str) -> Result<u64, ProcfsError> {
    keyed_number(proc_stat, PROC_STAT, "btime ", "btime")
}

/// One reading of the process's resources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    pub cpu_seconds: f64,
    pub start_time_seconds: f64,
}

/// The raw text and counts a [`ProcessSample`] is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ProcfsText<'a> {
    /// `/proc/self/stat`.
    pub stat: &'a str,
    /// `/proc/self/status`.
    pub status: &'a str,
    /// `/proc/stat`.
    pub proc_stat: &'a str,
    /// Entries of `/proc/self/fd`.
    pub open_fds: u64,
    /// `sysconf(_SC_CLK_TCK)`.
    pub ticks_per_second: u64,
}

/// Clock ticks as seconds (counts far below 2^53, so the conversion is exact in practice).
fn ticks_to_seconds(ticks: u64, per_second: u64) -> f64 {
    let whole = ticks / per_second;
    let rest = ticks % per_second;
    // Lossless for any realistic tick count; Prometheus sample values are floats anyway.
    whole as f64 + rest as f64 / per_second as f64
}

impl ProcessSample {
    /// Computes a sample from the files' text.
    pub fn from_procfs(text: ProcfsText<'_>) -> Result<Self, ProcfsError> {
        if text.ticks_per_second == 0 {
            return Err(ProcfsError::ZeroClockTicks);
        }
        let times = parse_stat(text.stat)?;
        let boot = parse_boot_time(text.proc_stat)?;
        let start_after_boot = ticks_to_seconds(times.start_ticks, text.ticks_per_second);
        Ok(Self {
            resident_memory_bytes: parse_resident_bytes(text.status)?,
            open_fds: text.open_fds,
            cpu_seconds: ticks_to_seconds(times.cpu_ticks, text.ticks_per_second),
            start_time_seconds: ticks_to_seconds(boot, 1) + start_after_boot,
        })
    }

    /// The four `process_*` families in Prometheus text, each with `# HELP` and `# TYPE`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            self.resident_memory_bytes,
        );
        family(
            &mut out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            self.open_fds,
        );
        family(
            &mut out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            self.cpu_seconds,
        );
        family(
            &mut out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            self.start_time_seconds,
        );
        out
    }
}

/// Writes one unlabelled family with a single sample.
fn family(out: &mut String, name: &str, help: &str, kind: &str, value: impl fmt::Display) {
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// `hycod_build_info{version="…"} 1`: the running version, for joins and dashboards.
pub fn render_build_info(version: &str) -> String {
    let escaped = version
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!(
        "# HELP hycod_build_info The running hycod version; always 1.\n\
         # TYPE hycod_build_info gauge\n\
         hycod_build_info{{version=\"{escaped}\"}} 1\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_SAMPLE: &str = "4242 (hy co) d) S 1 4242 4242 0 -1 4194560 2048 0 0 0 \
        150 37 0 0 20 0 3 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    const STATUS_SAMPLE: &str =
        "Name:\thycod\nVmPeak:\t  200000 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    8000 kB\nThreads:\t3\n";
    const PROC_STAT_SAMPLE: &str =
        "cpu  1 2 3 4 5 6 7 0 0 0\nintr 12 0\nctxt 99\nbtime 1700000000\nprocesses 10\n";

    fn text() -> ProcfsText<'static> {
        ProcfsText {
            stat: STAT_SAMPLE,
            status: STATUS_SAMPLE,
            proc_stat: PROC_STAT_SAMPLE,
            open_fds: 17,
            ticks_per_second: 100,
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT_SAMPLE),
            Ok(StatTimes {
                cpu_ticks: 187,
                start_ticks: 123_456
            })
        );
    }

    #[test]
    fn stat_without_a_closing_parenthesis_is_refused() {
        assert_eq!(
            parse_stat("4242 (hycod S 1 2 3"),
            Err(ProcfsError::StatCommandUnterminated)
        );
    }

    #[test]
    fn a_short_stat_names_the_missing_field() {
        assert_eq!(
            parse_stat("4242 (hycod) S 1 4242 4242 0 -1 4194560 2048 0 0 0 150"),
            Err(ProcfsError::MissingField {
                file: STAT,
                field: "stime"
            })
        );
    }

    #[test]
    fn a_non_numeric_stat_field_is_named() {
        let broken = STAT_SAMPLE.replace(" 150 ", " x ");
        assert_eq!(
            parse_stat(&broken),
            Err(ProcfsError::NotANumber {
                file: STAT,
                field: "utime"
            })
        );
    }

    #[test]
    fn resident_memory_is_vmrss_in_bytes() {
        assert_eq!(parse_resident_bytes(STATUS_SAMPLE), Ok(10_240 * 1024));
        assert_eq!(
            parse_resident_bytes("Name:\thycod\n"),
            Err(ProcfsError::MissingField {
                file: STATUS,
                field: "VmRSS"
            })
        );
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        assert_eq!(parse_boot_time(PROC_STAT_SAMPLE), Ok(1_700_000_000));
        assert_eq!(
            parse_boot_time("btime soon\n"),
            Err(ProcfsError::NotANumber {
                file: PROC_STAT,
                field: "btime"
            })
        );
    }

    #[test]
    fn a_sample_converts_ticks_to_seconds() {
        let sample = ProcessSample::from_procfs(text()).expect("sample");
        assert_eq!(
            sample,
            ProcessSample {
                resident_memory_bytes: 10_485_760,
                open_fds: 17,
                cpu_seconds: 1.87,
                start_time_seconds: 1_700_001_234.56,
            }
        );
    }

    #[test]
    fn zero_clock_ticks_are_refused() {
        let mut zero = text();
        zero.ticks_per_second = 0;
        assert_eq!(
            ProcessSample::from_procfs(zero),
            Err(ProcfsError::ZeroClockTicks)
        );
    }

    #[test]
    fn rendering_is_prometheus_text_with_help_and_type() {
        let sample = ProcessSample::from_procfs(text()).expect("sample");
        let rendered = sample.render() + &render_build_info("0.1.0");
        let scrape = prometheus_parse::Scrape::parse(rendered.lines().map(|l| Ok(l.to_owned())))
            .expect("parses");
        let value = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                })
        };
        assert_eq!(value("process_resident_memory_bytes"), Some(10_485_760.0));
        assert_eq!(value("process_open_fds"), Some(17.0));
        assert_eq!(value("process_cpu_seconds_total"), Some(1.87));
        assert_eq!(value("process_start_time_seconds"), Some(1_700_001_234.56));
        assert_eq!(value("hycod_build_info"), Some(1.0));
        assert!(rendered.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(rendered.contains("hycod_build_info{version=\"0.1.0\"} 1\n"));
        for line in rendered.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                rendered.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
    }

    #[test]
    fn build_info_escapes_its_label_value() {
        assert!(render_build_info("1\"2").contains("version=\"1\\\"2\""));
    }
}
