//! The generator's own CPU use: user + system time of this process from `/proc/self/stat`
//! (proc(5): fields 14 `utime` and 15 `stime`, in clock ticks).

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, 100 on every Linux architecture
/// hycod targets).
pub(crate) const USER_HZ: u64 = 100;

/// CPU time (user + system) this process has used so far; zero when `/proc` is unreadable.
pub(crate) fn process_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_cpu_ticks(&stat))
        .map_or(Duration::ZERO, |ticks| {
            Duration::from_millis(ticks.saturating_mul(1000) / USER_HZ)
        })
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after its last `)`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_summed_past_a_tricky_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 100 0 0 0 250 17 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(267));
    }

    #[test]
    fn a_truncated_line_gives_none() {
        assert_eq!(parse_cpu_ticks("42 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no name"), None);
    }

    #[test]
    fn this_process_reports_some_cpu_time() {
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_cpu_ticks(&s))
            .is_some());
    }
}
