//! Processes and sockets for the daemon tests: a `hycod relay` child, a `hycod run` child
//! with JSON logs read line by line, a `NOTIFY_SOCKET` the test binds, a TCP echo target, and a
//! sender that streams checked data through the relay without pause, and HTTP targets.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hycod::io::ws_client::Dialer;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, Splitable};
use serde_json::Value;

pub(crate) use super::KEY;
/// A second rule's key, for key rotation.
pub(crate) const KEY2: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=";

/// How long any single expected event may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A `hycod relay` child process serving `paths`, killed on drop.
pub(crate) struct RelayProcess {
    child: Option<Child>,
    pub url: String,
    admin: String,
    args: Vec<String>,
    fd_limit: Option<u64>,
}

impl RelayProcess {
    pub(crate) fn start(paths: &[&str]) -> Self {
        Self::start_with_rules(paths, &[])
    }

    /// On a port [`RelayProcess::restart`] can always bind again: one outside the kernel's
    /// ephemeral range, which outgoing connections could otherwise take while the relay is
    /// down.
    pub(crate) fn start_restartable(paths: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{}", non_ephemeral_port());
        Self::start_args(Self::args(&listen, paths, &[], &[]), None)
    }

    /// With more namespace rules (`NAME=KEY`) besides `root`.
    pub(crate) fn start_with_rules(paths: &[&str], rules: &[&str]) -> Self {
        Self::start_with_flags(paths, rules, &[])
    }

    /// With more rules and more `hycod relay` flags (e.g. `--http-deadline 2s`).
    pub(crate) fn start_with_flags(paths: &[&str], rules: &[&str], flags: &[&str]) -> Self {
        Self::start_args(Self::args("127.0.0.1:0", paths, rules, flags), None)
    }

    /// With at most `fd_limit` open file descriptors (RLIMIT_NOFILE).
    pub(crate) fn start_with_fd_limit(paths: &[&str], fd_limit: u64) -> Self {
        Self::start_args(Self::args("127.0.0.1:0", paths, &[], &[]), Some(fd_limit))
    }

    /// The command line of a relay on `listen` with 2 workers and an admin endpoint.
    fn args(listen: &str, paths: &[&str], rules: &[&str], flags: &[&str]) -> Vec<String> {
        let mut args = vec![
            "relay".to_owned(),
            "--listen".to_owned(),
            listen.to_owned(),
            "--workers".to_owned(),
            "2".to_owned(),
            "--admin".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--rule".to_owned(),
            format!("root={KEY}"),
        ];
        for rule in rules {
            args.push("--rule".to_owned());
            args.push((*rule).to_owned());
        }
        for path in paths {
            args.push("--hybrid-connection".to_owned());
            args.push((*path).to_owned());
        }
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        // Strict unless the test sets the flag itself.
        for pair in super::STRICT_RELAY.chunks(2) {
            if !flags.contains(&pair[0]) {
                args.extend(pair.iter().map(|f| (*f).to_owned()));
            }
        }
        args
    }

    fn start_args(args: Vec<String>, fd_limit: Option<u64>) -> Self {
        let (child, url, admin) = Self::try_spawn(&args, fd_limit)
            .unwrap_or_else(|log| panic!("the relay did not start:\n{log}"));
        Self {
            child: Some(child),
            url,
            admin,
            args,
            fd_limit,
        }
    }

    /// Starts a relay; its log when it exits before it listens.
    fn try_spawn(
        args: &[String],
        fd_limit: Option<u64>,
    ) -> Result<(Child, String, String), String> {
        // Its log goes to an unnamed file, read back if it fails to start.
        let mut log = tempfile::tempfile().expect("relay log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hycod"));
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log.try_clone().expect("log file"));
        if let Some(limit) = fd_limit {
            limit_fds(&mut command, limit);
        }
        let mut child = command.spawn().expect("relay binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut next = |prefix: &str| match lines.next() {
            Some(Ok(line)) => Ok(line.strip_prefix(prefix).expect("prefix").to_owned()),
            _ => {
                let _ = child.wait();
                let mut text = String::new();
                let _ = std::io::Seek::rewind(&mut log);
                let _ = log.read_to_string(&mut text);
                Err(text)
            }
        };
        let url = next("listening ")?;
        let admin = next("admin ")?;
        Ok((child, url, admin))
    }

    /// Kills the relay (SIGKILL: no close frames, the kernel resets its connections).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the relay (SIGKILL: like a crash or a lost host) and starts a fresh process on the
    /// same main address; returns once it accepts. Rendezvous and admin ports are new.
    ///
    /// The old listening socket can outlive the process briefly (io_uring tears its rings
    /// down after exit, and a pending accept holds the socket), so a start that finds the
    /// address in use is tried again until [`PATIENCE`] runs out.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.args[2] = self.url.trim_start_matches("ws://").to_owned();
        let deadline = Instant::now() + PATIENCE;
        let (child, url, admin) = loop {
            match Self::try_spawn(&self.args, self.fd_limit) {
                Ok(started) => break started,
                Err(log) if log.contains("in use") && Instant::now() < deadline => {
                    std::thread::park_timeout(Duration::from_millis(20));
                }
                Err(log) => panic!("the relay did not start again on {}:\n{log}", self.args[2]),
            }
        };
        assert_eq!(url, self.url, "the relay came back on its address");
        self.child = Some(child);
        self.admin = admin;
    }

    /// The admin endpoint's `host:port`.
    pub(crate) fn admin_addr(&self) -> &str {
        self.admin
            .trim_start_matches("http://")
            .trim_end_matches("/$status")
    }

    /// The relay's `/$status` document.
    pub(crate) fn status(&self) -> Value {
        let (_, body) = http_get(self.admin_addr(), "/$status");
        serde_json::from_str(&body).expect("status json")
    }

    /// The relay's process id (0 once killed).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (TERM, INT) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits up to `timeout` for the relay to exit on its own; its status. Killed (and the
    /// test failed) when it does not.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the relay runs");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().expect("wait for the relay"));
        });
        exited.recv_timeout(timeout).unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the relay still runs {timeout:?} later")
        })
    }

    /// Listeners registered on `path` now, according to the relay's `/$status`.
    pub(crate) fn listener_count(&self, path: &str) -> u64 {
        let doc = self.status();
        doc["hybrid_connections"]
            .as_array()
            .and_then(|hcs| hcs.iter().find(|hc| hc["path"] == path))
            .and_then(|hc| hc["listener_count"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes `command`'s child start with at most `limit` open file descriptors.
pub(crate) fn limit_fds(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rlimit = rustix::process::Rlimit {
        current: Some(limit),
        maximum: Some(limit),
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit(2), a
    // plain system call that is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setrlimit(rustix::process::Resource::Nofile, rlimit)
                .map_err(std::io::Error::from)
        });
    }
}

/// Open file descriptors of process `pid` now.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// A free loopback port outside `ip_local_port_range` (proc(5)), picked at random.
fn non_ephemeral_port() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".to_owned());
    let mut bounds = range
        .split_whitespace()
        .filter_map(|n| n.parse::<u16>().ok());
    let (low, high) = (
        bounds.next().unwrap_or(32768),
        bounds.next().unwrap_or(60999),
    );
    let candidates = if low > 11_000 {
        10_000..low
    } else {
        high.saturating_add(1)..u16::MAX
    };
    (0..1000)
        .map(|_| fastrand::u16(candidates.clone()))
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port outside the ephemeral range")
}

/// A blocking GET returning status and body (admin endpoints close after one answer).
pub(crate) fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut text = String::new();
    tcp.read_to_string(&mut text).expect("read");
    let status = text[9..12].parse().expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Polls `condition` until it holds or `timeout` passes (for state only the relay knows).
pub(crate) fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    condition()
}

/// A TCP echo server, a thread per connection; returns its port.
pub(crate) fn tcp_echo() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// An upstream HTTP server answering every request with its method, path and body length.
pub(crate) fn http_upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut writer = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let request_line = line.trim_end().to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let answer = format!("{request_line} {}", body.len());
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The keep-alives of every hybrid connection the test daemons run: shorter than the strict
/// relay's idle cut ([`super::STRICT_RELAY`]), as the SDKs' are shorter than Azure's.
pub(crate) const KEEP_ALIVES: &str = "ping_interval = \"1s\"\nstream_ping_interval = \"1s\"\n";

/// One `[[hybrid_connection]]` on the test relay.
pub(crate) fn hybrid_connection(name: &str, path: &str, relay_url: &str, echo_port: u16) -> String {
    format!(
        r#"
[[hybrid_connection]]
name = "{name}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}"
relay_url = "{relay_url}"
target = "tcp://127.0.0.1:{echo_port}"
listeners = 2
{KEEP_ALIVES}"#
    )
}

/// A `[[forward]]` named `name` on a free local port, carrying connections to hybrid
/// connection `path` (root rule) on the relay at `relay_url`.
pub(crate) fn forward(name: &str, path: &str, relay_url: &str) -> String {
    forward_on(name, "127.0.0.1:0", path, relay_url)
}

/// [`forward`] listening on `listen`.
pub(crate) fn forward_on(name: &str, listen: &str, path: &str, relay_url: &str) -> String {
    format!(
        r#"
[[forward]]
name = "{name}"
listen = "{listen}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}"
relay_url = "{relay_url}"
stream_ping_interval = "1s"
"#
    )
}

/// One `[[hybrid_connection]]` on the test relay whose requests go to `http_target`.
pub(crate) fn http_hybrid_connection(
    name: &str,
    path: &str,
    relay_url: &str,
    http_port: u16,
) -> String {
    format!(
        r#"
[[hybrid_connection]]
name = "{name}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}"
relay_url = "{relay_url}"
http_target = "http://127.0.0.1:{http_port}/"
listeners = 2
{KEEP_ALIVES}"#
    )
}

/// The configuration file text: two workers, JSON logs, an admin endpoint, `grace`.
pub(crate) fn config_text(grace: &str, hybrid_connections: &[String]) -> String {
    format!(
        "[runtime]\nworkers = 2\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\nlevel = \"info\"\n[shutdown]\ngrace = \"{grace}\"\n{}",
        hybrid_connections.concat()
    )
}

/// The `NOTIFY_SOCKET` a test provides: every datagram the daemon sends, in order.
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
    pub seen: Vec<String>,
}

impl NotifySocket {
    pub(crate) fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    /// Receives datagrams until one satisfies `wanted`; returns it.
    pub(crate) fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} notification; seen: {:?}",
                self.seen
            );
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(text.clone());
            if wanted(&text) {
                return text;
            }
        }
    }

    /// Waits for a datagram carrying the line `line`.
    pub(crate) fn wait_line(&mut self, line: &str) -> String {
        self.wait_for(line, |text| text.lines().any(|l| l == line))
    }
}

/// A `hycod run` child: its JSON log lines arrive on a channel; killed on drop if still alive.
pub(crate) struct DaemonProcess {
    pid: u32,
    pub config: PathBuf,
    logs: mpsc::Receiver<Value>,
    unclaimed: Vec<Value>,
    pub all_logs: Arc<Mutex<Vec<String>>>,
    exited: mpsc::Receiver<ExitStatus>,
    exit: Option<ExitStatus>,
    pub admin: String,
}

impl DaemonProcess {
    /// Writes `config_text` to `dir/hycod.toml` and starts `hycod run` on it.
    pub(crate) fn start(
        dir: &Path,
        config_text: &str,
        notify: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(dir, config_text, notify, env, None)
    }

    /// [`DaemonProcess::start`] with at most `fd_limit` open file descriptors (RLIMIT_NOFILE).
    pub(crate) fn start_with_fd_limit(dir: &Path, config_text: &str, fd_limit: u64) -> Self {
        Self::spawn(dir, config_text, None, &[], Some(fd_limit))
    }

    fn spawn(
        dir: &Path,
        config_text: &str,
        notify: Option<&Path>,
        env: &[(&str, &str)],
        fd_limit: Option<u64>,
    ) -> Self {
        let config = dir.join("hycod.toml");
        std::fs::write(&config, config_text).expect("config written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hycod"));
        command
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(path) = notify {
            command.env("NOTIFY_SOCKET", path);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some(limit) = fd_limit {
            limit_fds(&mut command, limit);
        }
        let mut child = command.spawn().expect("daemon binary starts");
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = mpsc::channel();
        let all_logs = Arc::new(Mutex::new(Vec::new()));
        {
            let all_logs = all_logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    all_logs.lock().expect("logs").push(line.clone());
                    if let Ok(value) = serde_json::from_str::<Value>(&line) {
                        let _ = tx.send(value);
                    }
                }
            });
        }
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        let mut daemon = Self {
            pid,
            config,
            logs,
            unclaimed: Vec::new(),
            all_logs,
            exited,
            exit: None,
            admin: String::new(),
        };
        let line = daemon.wait_log("the admin endpoint", |l| {
            l["message"] == "admin endpoint listening"
        });
        daemon.admin = line["metrics"]
            .as_str()
            .expect("metrics url")
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned();
        daemon
    }

    /// Waits for a log line satisfying `wanted` that no earlier wait took; returns it. Lines
    /// that match nothing yet stay available for later waits, in order.
    pub(crate) fn wait_log(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.unclaimed.iter().position(&wanted) {
            return self.unclaimed.remove(index);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => self.unclaimed.push(line),
                Err(_) => panic!("no log line for {what}; logs:\n{}", self.logs_text()),
            }
        }
    }

    /// Waits for the `forward NAME listening tcp://ADDR` line of forward `name`; the address.
    pub(crate) fn wait_forward_listening(&mut self, name: &str) -> std::net::SocketAddr {
        let prefix = format!("forward {name} listening tcp://");
        let line = self.wait_log(&format!("forward {name} listening"), |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&prefix))
        });
        line["message"]
            .as_str()
            .and_then(|m| m.strip_prefix(&prefix))
            .and_then(|addr| addr.parse().ok())
            .expect("an address after the prefix")
    }

    /// Waits until `workers` workers have logged that forward `name` stopped accepting (then
    /// its socket is closed, unless a changed forward with the same `listen` kept it).
    pub(crate) fn wait_stopped_accepting(&mut self, name: &str, workers: usize) {
        for _ in 0..workers {
            self.wait_log(&format!("forward {name} stopped accepting"), |l| {
                l["message"] == "forward stopped accepting" && l["forward"] == name
            });
        }
    }

    /// Waits for the `listener online` line of hybrid connection `name`.
    pub(crate) fn wait_listener_online(&mut self, name: &str) -> Value {
        self.wait_log(&format!("{name} online"), |l| {
            l["message"] == "listener online" && l["hybrid_connection"] == name
        })
    }

    pub(crate) fn logs_text(&self) -> String {
        self.all_logs.lock().expect("logs").join("\n")
    }

    /// Sends `signal` (TERM, HUP, INT) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Rewrites the configuration file.
    pub(crate) fn rewrite_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("config rewritten");
    }

    /// Waits for the process to exit; its status.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self
            .exited
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("daemon still running; logs:\n{}", self.logs_text()));
        self.exit = Some(status);
        status
    }

    /// The admin endpoint's `/metrics`: the sum of every sample named `name` (all labels).
    pub(crate) fn metric_total(&self, name: &str) -> f64 {
        self.samples(name).into_iter().map(|(_, v)| v).sum()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The value of the sample named `name` that carries all of `labels` (`label`, `value`).
    pub(crate) fn metric_with(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .into_iter()
            .find(|(have, _)| labels.iter().all(|(k, v)| have.get(k) == Some(*v)))
            .map(|(_, v)| v)
    }

    /// Every sample named `name`: its labels and value.
    pub(crate) fn samples(&self, name: &str) -> Vec<(prometheus_parse::Labels, f64)> {
        let (status, text) = http_get(&self.admin, "/metrics");
        assert_eq!(status, 200);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("prometheus text");
        scrape
            .samples
            .into_iter()
            .filter(|s| s.metric == name)
            .map(|s| {
                let value = match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                };
                (s.labels, value)
            })
            .collect()
    }

    /// The admin endpoint's `/metrics`, parsed: the value of the sample named `name`.
    pub(crate) fn metric(&self, name: &str) -> Option<f64> {
        self.metric_with(name, &[])
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.exit.is_none() && self.exited.try_recv().is_err() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// What a [`Streamer`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// This many bytes went out and came back identical so far.
    Verified(u64),
    /// The stream ended: bytes sent, bytes verified, and whether the close was clean.
    Finished {
        sent: u64,
        verified: u64,
        clean: bool,
    },
}

/// How a [`Streamer`]'s stream ended when it did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The peer sent a Close frame with this code (`None`: no code).
    Closed(Option<CloseCode>),
    /// Reading failed: the connection ended without a Close frame (EOF or reset).
    ReadFailed(String),
    /// Writing failed.
    WriteFailed,
}

/// A sender streaming deterministic data through the relay to the echo target without pause,
/// checking every echoed byte, on its own thread and monoio runtime.
pub(crate) struct Streamer {
    stop: Arc<AtomicBool>,
    ending: Arc<Mutex<Option<Ending>>>,
    pub progress: mpsc::Receiver<Progress>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Bytes per write; each is echoed back before the next one goes out.
const CHUNK: u64 = 16 * 1024;

/// The pause between round trips (keeps the 2-core test machine breathing; the stream never
/// goes idle long enough for any timeout).
const PACE: Duration = Duration::from_millis(2);

/// The byte at stream offset `i` (not periodic in the chunk size, so a lost or repeated chunk
/// shows up as a mismatch).
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0] ^ (i / 7919).to_le_bytes()[0]
}

impl Streamer {
    /// Connects to `path` on the relay and starts streaming; returns once the first echo has
    /// been verified.
    pub(crate) fn start(relay_url: &str, path: &str) -> Self {
        let url = format!("{relay_url}/$hc/{path}?sb-hc-action=connect");
        let resource = hycod::auth::sas::dotnet_resource_uri("localhost", path);
        let stop = Arc::new(AtomicBool::new(false));
        let ending = Arc::new(Mutex::new(None));
        let (tx, progress) = mpsc::channel();
        let thread = {
            let (stop, ending) = (stop.clone(), ending.clone());
            std::thread::spawn(move || {
                hycod::runtime::workers::block_on(stream(url, resource, stop, ending, tx))
                    .expect("runtime");
            })
        };
        let streamer = Self {
            stop,
            ending,
            progress,
            thread: Some(thread),
        };
        match streamer.next() {
            Progress::Verified(_) => streamer,
            other => panic!("stream did not start: {other:?}"),
        }
    }

    /// The next report.
    pub(crate) fn next(&self) -> Progress {
        self.progress
            .recv_timeout(PATIENCE)
            .expect("the streamer reports")
    }

    /// Waits until `rounds` more echoes were verified from now on (the stream keeps flowing).
    pub(crate) fn keeps_flowing(&self, rounds: usize) -> u64 {
        let mut last = 0;
        for earlier in self.progress.try_iter() {
            match earlier {
                Progress::Verified(n) => last = n,
                other => panic!("the stream stopped: {other:?}"),
            }
        }
        for _ in 0..rounds {
            match self.next() {
                Progress::Verified(n) => last = n,
                other => panic!("the stream stopped: {other:?}"),
            }
        }
        last
    }

    /// Closes the stream; the final report.
    pub(crate) fn finish(mut self) -> Progress {
        self.stop.store(true, Ordering::SeqCst);
        let last = loop {
            match self.next() {
                Progress::Verified(_) => {}
                finished => break finished,
            }
        };
        if let Some(thread) = self.thread.take() {
            thread.join().expect("streamer thread");
        }
        last
    }

    /// How the stream ended, once it ended other than cleanly.
    pub(crate) fn ending(&self) -> Option<Ending> {
        self.ending.lock().expect("ending").clone()
    }

    /// Waits for the stream to end without being asked to; the final report.
    pub(crate) fn wait_end(&self, timeout: Duration) -> Progress {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .progress
                .recv_timeout(left)
                .expect("the streamer reports")
            {
                Progress::Verified(_) => {}
                finished => return finished,
            }
        }
    }
}

/// A send token for `resource`, valid for an hour.
pub(crate) fn token(resource: &str) -> hycod::secret::Secret {
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    hycod::auth::sas::sign_token(resource, "root", &hycod::secret::Secret::new(KEY), expiry)
}

async fn stream(
    url: String,
    resource: String,
    stop: Arc<AtomicBool>,
    ending: Arc<Mutex<Option<Ending>>>,
    report: mpsc::Sender<Progress>,
) {
    let end = |how: Ending| *ending.lock().expect("ending") = Some(how);
    let dialer = Dialer {
        tls: hycod::tls::client_config(&hycod::tls::TrustRoots::WebPki).expect("tls"),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        resolver: Default::default(),
    };
    let token = token(&resource);
    let conn = dialer
        .connect(&url, &[("ServiceBusAuthorization", token.expose())], None)
        .await
        .expect("stream joined");
    let (read, mut write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * 1024,
    );
    let (mut sent, mut verified) = (0u64, 0u64);
    let mut clean = true;
    while !stop.load(Ordering::SeqCst) {
        let chunk: Vec<u8> = (sent..sent + CHUNK).map(pattern).collect();
        let mut frame = Vec::new();
        push_frame(
            &mut frame,
            true,
            OpCode::Binary,
            &chunk,
            Some(fastrand::u32(..).to_ne_bytes()),
        )
        .expect("frame");
        if write.write_all(frame).await.0.is_err() {
            end(Ending::WriteFailed);
            clean = false;
            break;
        }
        sent += CHUNK;
        while verified < sent {
            match reader.next_event().await {
                Ok(WsEvent::Data { payload, .. }) => {
                    for &byte in reader.bytes(payload) {
                        assert_eq!(byte, pattern(verified), "echo differs at byte {verified}");
                        verified += 1;
                    }
                }
                Ok(WsEvent::Ping(_)) | Ok(WsEvent::Pong(_)) => {}
                Ok(WsEvent::Close { code, .. }) => {
                    end(Ending::Closed(code));
                    clean = false;
                    break;
                }
                Err(e) => {
                    end(Ending::ReadFailed(e.to_string()));
                    clean = false;
                    break;
                }
            }
        }
        if !clean {
            break;
        }
        let _ = report.send(Progress::Verified(verified));
        monoio::time::sleep(PACE).await;
    }
    if clean {
        // Close and wait for the daemon's close: the target saw the end and the stream is done.
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "", Some([9, 8, 7, 6])).expect("close frame");
        clean = write.write_all(close).await.0.is_ok();
        clean = clean
            && loop {
                match monoio::time::timeout(PATIENCE, reader.next_event()).await {
                    Ok(Ok(WsEvent::Close { .. })) => break true,
                    Ok(Ok(_)) => {}
                    _ => break false,
                }
            };
        let _ = write.shutdown().await;
    }
    let _ = report.send(Progress::Finished {
        sent,
        verified,
        clean,
    });
}

/// An HTTP target that answers each request only when the test releases it: every request's
/// arrival is reported on `arrived`; each `release` lets one answer `200 done` go out.
pub(crate) struct GatedUpstream {
    pub port: u16,
    pub arrived: mpsc::Receiver<String>,
    release: mpsc::Sender<()>,
}

impl GatedUpstream {
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (arrived_tx, arrived) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let arrived = arrived_tx.clone();
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let _ = arrived.send(text.lines().next().unwrap_or_default().to_owned());
                    if gate.lock().expect("gate").recv().is_err() {
                        return;
                    }
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone",
                    );
                });
            }
        });
        Self {
            port,
            arrived,
            release,
        }
    }

    /// Lets one held request be answered.
    pub(crate) fn release_one(&self) {
        self.release.send(()).expect("upstream alive");
    }
}

/// Sends `GET /{path}/{rest}` through the relay (`Connection: close`) on a thread; the raw
/// answer arrives on the returned channel.
pub(crate) fn relayed_get(relay_url: &str, path: &str, rest: &str) -> mpsc::Receiver<String> {
    let addr = relay_url.trim_start_matches("ws://").to_owned();
    let token = token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
    let request = format!(
        "GET /{path}/{rest} HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {}\r\nConnection: close\r\n\r\n",
        token.expose()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect to the relay");
        tcp.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        let _ = tx.send(answer);
    });
    rx
}

/// Sends `len` patterned bytes on `client` from a second thread, half-closes, and asserts that
/// exactly those bytes come back before the far side closes.
pub(crate) fn assert_tcp_echo(client: &mut std::net::TcpStream, len: u32) {
    let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut client = client.try_clone().expect("clone");
        let sent = sent.clone();
        std::thread::spawn(move || {
            client.write_all(&sent).expect("send");
            client
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
        })
    };
    let mut got = Vec::new();
    client
        .read_to_end(&mut got)
        .expect("echo until the far side closes");
    writer.join().expect("writer");
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "echo differs");
}
