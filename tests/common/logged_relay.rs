//! A `hycod relay` child whose log (stderr) the test reads line by line, for tests that assert
//! what the relay logs ([`LogLines`] follows any child's stderr); plus a blocking WebSocket
//! upgrade that returns the relay's status.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::processes::{limit_fds, PATIENCE};

/// A child's stderr, read line by line on a thread of its own.
#[derive(Clone, Default)]
pub(crate) struct LogLines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl LogLines {
    /// Starts reading `stderr`; the thread ends with it.
    pub(crate) fn follow(
        stderr: impl Read + Send + 'static,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let log = Self::default();
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                let (lines, grew) = &*log.0;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().expect("log").push(line);
                    grew.notify_all();
                }
            })
        };
        (log, reader)
    }

    /// Every line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0 .0.lock().expect("log").clone()
    }

    /// Waits for a line satisfying `wanted`; returns it.
    pub(crate) fn wait_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let (lines, grew) = &*self.0;
        let deadline = Instant::now() + PATIENCE;
        let mut lines = lines.lock().expect("log");
        loop {
            if let Some(line) = lines.iter().find(|l| wanted(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line for {what}; log:\n{}",
                lines.join("\n")
            );
            lines = grew.wait_timeout(lines, left).expect("log").0;
        }
    }
}

/// A running `hycod relay`; killed on drop.
pub(crate) struct LoggedRelay {
    child: Child,
    /// `ws://ADDR`.
    pub url: String,
    log: LogLines,
}

/// How a relay command ended when it did not start.
pub(crate) struct Refused {
    pub code: Option<i32>,
    pub stderr: String,
}

impl LoggedRelay {
    /// Starts `hycod relay ARGS` (no `RUST_LOG`: the flags and file set the level) and waits
    /// for its `listening` line.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// [`LoggedRelay::start`] with environment variables.
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::try_start(args, env, None).unwrap_or_else(|refused| {
            panic!(
                "the relay did not start ({:?}):\n{}",
                refused.code, refused.stderr
            )
        })
    }

    /// [`LoggedRelay::start`] with environment variables and an optional descriptor limit; the
    /// exit code and log when the relay exits instead of listening.
    pub(crate) fn try_start(
        args: &[&str],
        env: &[(&str, &str)],
        fd_limit: Option<u64>,
    ) -> Result<Self, Refused> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hycod"));
        command
            .arg("relay")
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        if let Some(limit) = fd_limit {
            limit_fds(&mut command, limit);
        }
        let mut child = command.spawn().expect("hycod relay starts");
        let (log, reader) = LogLines::follow(child.stderr.take().expect("stderr"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        let _ = stdout.read_line(&mut first);
        match first.trim_end().strip_prefix("listening ") {
            Some(url) => {
                // The rest of stdout (the admin line) is drained so the relay never blocks on it.
                std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
                Ok(Self {
                    child,
                    url: url.to_owned(),
                    log,
                })
            }
            None => {
                let status = child.wait().expect("relay exit");
                let _ = reader.join();
                let stderr = log.lines().join("\n");
                Err(Refused {
                    code: status.code(),
                    stderr,
                })
            }
        }
    }

    /// `host:port` of the main socket.
    pub(crate) fn addr(&self) -> &str {
        self.url.trim_start_matches("ws://")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.log.lines()
    }

    /// Waits for a log line satisfying `wanted`; returns it.
    pub(crate) fn wait_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.log.wait_line(what, wanted)
    }
}

impl Drop for LoggedRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hycod relay ARGS`, expecting it to refuse its configuration; its exit code and stderr.
pub(crate) fn relay_refuses(args: &[&str], env: &[(&str, &str)]) -> Refused {
    match LoggedRelay::try_start(args, env, None) {
        Ok(relay) => panic!("the relay started on {}", relay.url),
        Err(refused) => refused,
    }
}

/// Sends a WebSocket upgrade for `target` (`/$hc/...?...`) with `token` in
/// `ServiceBusAuthorization` and reads the answer's head: the status and the open connection
/// (a listener stays registered while it is held).
pub(crate) fn upgrade(addr: &str, target: &str, token: &str) -> (u16, TcpStream) {
    let mut tcp = TcpStream::connect(addr).expect("connect to the relay");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        tcp,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         ServiceBusAuthorization: {token}\r\n\r\n"
    )
    .expect("send the upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("the relay closed before answering: {other:?}, {head:?}"),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, tcp)
}
