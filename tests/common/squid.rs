//! A real Squid (Debian's `squid` package) on loopback as the corporate HTTP CONNECT proxy of
//! the proxy tests: Basic authentication through Squid's own `basic_ncsa_auth` helper and an
//! htpasswd file made with `openssl passwd -apr1`, or NTLM only (`ntlm_fake_auth`) to see a
//! scheme hycod does not speak. Squid refuses `http_port` 0, so a free port is found by
//! binding port 0 and releasing it; a start that loses that port to another process is retried
//! on a new one. Readiness is Squid's own `cache.log` line saying it accepts on that port (a
//! connection that succeeds proves nothing: it may reach the process that took the port, while
//! Squid exits only a second later); `access.log` records every
//! CONNECT with its user. Where Squid is missing the tests are skipped with an install hint,
//! except under `CI=true` (`.ci/run` installs it), where that is a failure.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SQUID: &str = "/usr/sbin/squid";
const HELPERS: &str = "/usr/lib/squid";

/// How the proxy authenticates its clients.
pub(crate) enum Auth<'a> {
    /// Basic, with these users and passwords.
    Basic(&'a [(&'a str, &'a str)]),
    /// NTLM only (Squid's fake NTLM helper): a scheme hycod does not support.
    NtlmOnly,
}

/// A running Squid; stopped (and its shared memory removed) on drop.
pub(crate) struct Squid {
    child: Child,
    pub addr: SocketAddr,
    service: String,
    dir: tempfile::TempDir,
}

impl Squid {
    /// Starts Squid demanding `auth`, or `None` (after saying why) when Squid is not installed
    /// outside CI.
    pub(crate) fn start(auth: Auth<'_>) -> Option<Self> {
        if !installed() {
            return None;
        }
        for _ in 0..5 {
            let port = {
                let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
                probe.local_addr().expect("addr").port()
            };
            if let Some(squid) = Self::try_start(&auth, port) {
                return Some(squid);
            }
        }
        panic!("squid did not start in five attempts");
    }

    /// Starts Squid on `port`; `None` when it cannot listen there (the port is taken).
    pub(crate) fn try_start(auth: &Auth<'_>, port: u16) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        // Squid drops root privileges to the `proxy` user, which must reach these files.
        set_mode(dir.path(), 0o777);
        let path = |name: &str| dir.path().join(name).display().to_string();
        let auth_lines = match auth {
            Auth::Basic(users) => {
                let mut passwd = String::new();
                for (user, password) in *users {
                    let out = Command::new("openssl")
                        .args(["passwd", "-apr1", password])
                        .output()
                        .expect("openssl passwd runs");
                    assert!(out.status.success(), "openssl passwd failed");
                    let hash = String::from_utf8(out.stdout).expect("hash");
                    passwd.push_str(&format!("{user}:{}\n", hash.trim()));
                }
                std::fs::write(path("passwd"), passwd).expect("passwd");
                set_mode(&dir.path().join("passwd"), 0o644);
                format!(
                    "auth_param basic program {HELPERS}/basic_ncsa_auth {}\nauth_param basic realm hycod-test\n",
                    path("passwd")
                )
            }
            Auth::NtlmOnly => format!("auth_param ntlm program {HELPERS}/ntlm_fake_auth\n"),
        };
        let service = format!("hycodtest{}x{}", std::process::id(), fastrand::u32(..));
        let effective_user = if rustix::process::geteuid().is_root() {
            "cache_effective_user proxy\n"
        } else {
            ""
        };
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {pid}\n\
             cache_log {cache_log}\n\
             access_log stdio:{access_log}\n\
             cache deny all\n\
             coredump_dir {dir}\n\
             {auth_lines}\
             acl authed proxy_auth REQUIRED\n\
             http_access allow authed\n\
             http_access deny all\n\
             shutdown_lifetime 0 seconds\n\
             {effective_user}",
            pid = path("squid.pid"),
            cache_log = path("cache.log"),
            access_log = path("access.log"),
            dir = dir.path().display(),
        );
        std::fs::write(path("squid.conf"), conf).expect("squid.conf");
        let mut child = Command::new(SQUID)
            .args(["-N", "-n", &service, "-f", &path("squid.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let accepting = "Accepting HTTP Socket connections at conn";
        let on_port = format!(" local={addr} ");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(path("cache.log")).unwrap_or_default();
            let lost = log.contains("Unable to open HTTP Socket");
            if lost || matches!(child.try_wait(), Ok(Some(_))) {
                // Lost the port to someone else, or another start-up failure: try again.
                let _ = child.kill();
                let _ = child.wait();
                remove_shared_memory(&service);
                return None;
            }
            if log
                .lines()
                .any(|line| line.contains(accepting) && line.contains(&on_port))
            {
                return Some(Self {
                    child,
                    addr,
                    service,
                    dir,
                });
            }
            assert!(
                Instant::now() < deadline,
                "squid did not listen within 30 s; cache.log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://[user@]127.0.0.1:PORT`.
    pub(crate) fn url(&self, user: Option<&str>) -> String {
        match user {
            Some(user) => format!("http://{user}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The access log so far (one line per request, with the user and `CONNECT host:port`).
    pub(crate) fn access_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// Waits (bounded) until the access log has a line containing every one of `parts`.
    pub(crate) fn wait_logged(&self, parts: &[&str]) -> String {
        self.wait_logged_lines(parts, 1).remove(0)
    }

    /// Waits (bounded) until the access log has at least `count` lines containing every one of
    /// `parts`, and returns them. Squid writes a tunnel's line only when the tunnel closes, so
    /// tunnels that closed together may be logged some time apart.
    pub(crate) fn wait_logged_lines(&self, parts: &[&str], count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.access_log();
            let lines: Vec<String> = log
                .lines()
                .filter(|line| parts.iter().all(|part| line.contains(part)))
                .map(str::to_owned)
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "squid logged {} of {count} lines with {parts:?}; log:\n{log}",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_shared_memory(&self.service);
    }
}

/// Whether Squid is installed; outside CI a missing one is skipped after saying how to install it.
pub(crate) fn installed() -> bool {
    if std::path::Path::new(SQUID).exists() {
        return true;
    }
    let hint = "squid is not installed: apt-get install -y squid";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{hint} (.ci/run does this)"
    );
    eprintln!("skipped: {hint}");
    false
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Squid's shared memory segments of `service` (`/dev/shm/SERVICE-*`), left by a killed Squid.
fn remove_shared_memory(service: &str) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{service}-"))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
