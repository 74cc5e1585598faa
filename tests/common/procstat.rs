//! A process's resident memory and open descriptors from `/proc` (proc(5)), for the soak's
//! flatness checks.

/// `VmRSS` of process `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Open file descriptors of process `pid`.
pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

/// One IPv4 TCP socket of a process (a row of `/proc/PID/net/tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpSocket {
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state number (01 established, 0A listen, 08 close-wait …).
    pub state: u8,
}

/// The IPv4 TCP sockets process `pid` holds (tests run on loopback IPv4).
pub(crate) fn tcp_sockets(pid: u32) -> Vec<TcpSocket> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
            .unwrap_or(0)
    };
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            let inode = link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned();
            let row = table
                .lines()
                .find(|row| row.split_whitespace().nth(9) == Some(inode.as_str()))?;
            let cols: Vec<&str> = row.split_whitespace().collect();
            Some(TcpSocket {
                local_port: port(cols[1]),
                remote_port: port(cols[2]),
                state: u8::from_str_radix(cols[3], 16).unwrap_or(0),
            })
        })
        .collect()
}

/// The TCP sockets of `pid`, one `:local -> :remote state S` line each, for the message of a
/// failed descriptor check.
pub(crate) fn fd_summary(pid: u32) -> String {
    let mut lines: Vec<String> = tcp_sockets(pid)
        .iter()
        .map(|s| {
            format!(
                ":{} -> :{} state {:02X}",
                s.local_port, s.remote_port, s.state
            )
        })
        .collect();
    lines.sort();
    format!(
        "{} descriptors; TCP sockets:\n{}",
        fd_count(pid),
        lines.join("\n")
    )
}
