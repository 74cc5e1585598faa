//! Process harness for the Node SDK interop tests (protocol §10): finds node and npm, installs the
//! pinned Node project once per test process, starts `hycod relay` on port 0, and runs the
//! scripts of `tests/interop/node/`, whose stdout is one JSON object per line.
//!
//! Every wait has a deadline and is event-driven (a reader thread per pipe feeding a channel);
//! nothing sleeps. Every child process is killed when its guard drops; when a test is already
//! panicking the guard prints the child's stderr so the failure explains itself.
//!
//! Shared by `tests/interop.rs` (Node listeners) and `tests/interop_daemon.rs` (the hycod
//! daemon as listener, `daemon.rs`); each uses a part of it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// How long the relay may take to print `listening ws://ADDR`.
const RELAY_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a Node listener may take to print `{"event":"listening"}`.
const LISTENING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a sender script may run. The scripts' own deadline (`HYCO_TIMEOUT_MS`) is shorter,
/// so they normally fail first, with a message naming what they were waiting for.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const SCRIPT_OWN_TIMEOUT_MS: &str = "90000";
/// Longest stderr kept per child (the tail is kept).
const STDERR_LIMIT: usize = 256 * 1024;

/// The Manage rule every script uses unless a case needs another.
const MANAGE_RULE: &str = "RootManageSharedAccessKey";
/// The Send-only rule (`--rule SendOnly=KEY:send`).
const SEND_ONLY_RULE: &str = "SendOnly";

/// The installed Node project under `tests/interop/node`.
pub(crate) struct NodeProject {
    dir: PathBuf,
}

impl NodeProject {
    /// The project's directory, where the scripts are.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

enum Toolchain {
    Ready(NodeProject),
    /// node or npm is not installed.
    Missing(String),
    /// `npm ci` failed; every test reports the same failure.
    InstallFailed(String),
}

/// Returns the installed Node project, or `None` after printing why the test is skipped.
///
/// Without node or npm the tests skip with a message, except under `CI=true`, where they fail.
/// `npm ci` runs at most once per test process; it is skipped when `node_modules` already holds
/// exactly the locked packages.
pub(crate) fn node_project() -> Option<&'static NodeProject> {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    match TOOLCHAIN.get_or_init(prepare_toolchain) {
        Toolchain::Ready(project) => Some(project),
        Toolchain::Missing(why) => {
            assert!(
                !running_in_ci(),
                "CI=true but the Node SDK interop tests cannot run: {why}"
            );
            eprintln!("SKIPPED: Node SDK interop test ({why}; install Node.js 20+ with npm)");
            None
        }
        Toolchain::InstallFailed(why) => panic!("{why}"),
    }
}

pub(crate) fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

fn prepare_toolchain() -> Toolchain {
    for tool in ["node", "npm"] {
        if let Err(why) = tool_runs(tool) {
            return Toolchain::Missing(why);
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node");
    if installed_packages_match_lock(&dir) {
        return Toolchain::Ready(NodeProject { dir });
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output();
    match output {
        Ok(output) if output.status.success() => Toolchain::Ready(NodeProject { dir }),
        Ok(output) => Toolchain::InstallFailed(format!(
            "`npm ci` failed in {} ({}):\n{}\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(e) => {
            Toolchain::InstallFailed(format!("cannot run `npm ci` in {}: {e}", dir.display()))
        }
    }
}

fn tool_runs(tool: &str) -> Result<(), String> {
    match Command::new(tool).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`{tool} --version` failed ({})", output.status)),
        Err(e) => Err(format!("`{tool}` not found on PATH ({e})")),
    }
}

/// npm writes `node_modules/.package-lock.json` after installing; its `packages` map equals
/// the lock file's minus the root entry `""` exactly when the tree matches the lock.
fn installed_packages_match_lock(dir: &Path) -> bool {
    let read = |path: PathBuf| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let (Some(mut lock), Some(installed)) = (
        read(dir.join("package-lock.json")),
        read(dir.join("node_modules/.package-lock.json")),
    ) else {
        return false;
    };
    let Some(packages) = lock.get_mut("packages").and_then(Value::as_object_mut) else {
        return false;
    };
    packages.remove("");
    Some(&*packages) == installed.get("packages").and_then(Value::as_object)
}

/// A SAS key as the portal shows them: base64 of 32 random bytes.
fn random_key() -> String {
    let bytes: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(32)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A running child with its stdout lines on a channel and the tail of its stderr collected for
/// failure messages; for children that log on stderr, also its stderr lines on a channel.
pub(crate) struct Guarded {
    name: String,
    child: Child,
    /// Held so the child sees end-of-file on stdin when the guard drops (the Node scripts
    /// exit on it, see `common.exitWhenParentGoes`).
    _stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Present when started with [`Guarded::spawn_logging`].
    stderr_lines: Option<Receiver<String>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
    /// Set once stderr went into a panic message, so the drop does not print it twice.
    stderr_reported: bool,
}

impl Guarded {
    /// Starts `command` with all three standard streams piped; `name` appears in messages.
    pub(crate) fn spawn(name: String, command: Command) -> Guarded {
        Guarded::start(name, command, false)
    }

    /// Like [`Guarded::spawn`], and also hands out every stderr line
    /// ([`Guarded::next_stderr_line`]).
    pub(crate) fn spawn_logging(name: String, command: Command) -> Guarded {
        Guarded::start(name, command, true)
    }

    fn start(name: String, mut command: Command, stderr_lines: bool) -> Guarded {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let (line_sender, stderr_lines) = if stderr_lines {
            let (sender, receiver) = mpsc::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let stderr_reader =
            thread::spawn(move || collect_stderr(stderr_pipe, &sink, line_sender.as_ref()));
        Guarded {
            name,
            _stdin: child.stdin.take(),
            child,
            lines,
            stderr_lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            stderr_reported: false,
        }
    }

    /// The name given to [`Guarded::spawn`].
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Next stdout line before `deadline`; `Err` says whether the pipe closed or time ran out.
    pub(crate) fn next_line(&self, deadline: Instant) -> Result<String, RecvTimeoutError> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left)
    }

    /// Next stderr line before `deadline`, for a child started with
    /// [`Guarded::spawn_logging`]; any other child has none (`Disconnected`).
    pub(crate) fn next_stderr_line(&self, deadline: Instant) -> Result<String, RecvTimeoutError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match &self.stderr_lines {
            Some(lines) => lines.recv_timeout(left),
            None => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// Kills the child (if still running) and returns everything it wrote on stderr, for a
    /// panic message.
    pub(crate) fn kill_and_stderr(&mut self) -> String {
        // Killing an exited child fails harmlessly; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr_reported = true;
        self.stderr_text()
    }

    /// Stderr so far; complete once the child has exited and its pipe is drained.
    fn stderr_text(&mut self) -> String {
        if let Ok(status) = self.child.try_wait() {
            if status.is_some() {
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
            }
        }
        let bytes = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let already_reported = self.stderr_reported;
        let stderr = self.kill_and_stderr();
        if thread::panicking() && !already_reported && !stderr.is_empty() {
            eprintln!(
                "--- stderr of {} ---\n{stderr}--- end of {} ---",
                self.name, self.name
            );
        }
    }
}

/// Keeps the last [`STDERR_LIMIT`] bytes of `pipe` in `sink` and sends each line to `lines`,
/// if given (the receiver may be gone: the send result is ignored).
fn collect_stderr(pipe: impl Read, sink: &Mutex<Vec<u8>>, lines: Option<&mpsc::Sender<String>>) {
    let mut pipe = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match pipe.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let Ok(mut kept) = sink.lock() else { break };
                kept.extend_from_slice(&line);
                if kept.len() > STDERR_LIMIT {
                    let excess = kept.len() - STDERR_LIMIT;
                    kept.drain(..excess);
                }
                drop(kept);
                if let Some(lines) = lines {
                    let text = String::from_utf8_lossy(&line);
                    let _ = lines.send(text.trim_end_matches(['\r', '\n']).to_owned());
                }
            }
        }
    }
}

/// `hycod relay` on 127.0.0.1, port 0, with a Manage rule and a Send-only rule, both with
/// fresh random keys. Killed on drop.
pub(crate) struct Relay {
    process: Guarded,
    url: String,
    manage_key: String,
    send_key: String,
}

impl Relay {
    /// The relay's base URL, `ws://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// A connection string with the Manage rule for `hc`, as the Azure portal shows them
    /// (protocol §3.5). Its endpoint host is a placeholder: the daemon reaches the relay through
    /// its `relay_url`.
    pub(crate) fn manage_connection_string(&self, hc: &str) -> String {
        format!(
            "Endpoint=sb://localhost/;SharedAccessKeyName={MANAGE_RULE};SharedAccessKey={};\
             EntityPath={hc}",
            self.manage_key
        )
    }

    /// Starts the relay serving `hybrid_connections` and waits for `listening ws://ADDR`.
    pub(crate) fn start(hybrid_connections: &[&str]) -> Relay {
        Self::start_with_flags(hybrid_connections, &[])
    }

    /// [`Relay::start`] with `flags` added to the relay's command line.
    pub(crate) fn start_with_flags(hybrid_connections: &[&str], flags: &[&str]) -> Relay {
        let manage_key = random_key();
        let send_key = random_key();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hycod"));
        command.args([
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--rule",
            &format!("{MANAGE_RULE}={manage_key}"),
            "--rule",
            &format!("{SEND_ONLY_RULE}={send_key}:send"),
        ]);
        for name in hybrid_connections {
            command.args(["--hybrid-connection", name]);
        }
        command.args(flags);
        let mut process = Guarded::spawn("hycod relay".to_owned(), command);
        let deadline = Instant::now() + RELAY_START_TIMEOUT;
        let first = process.next_line(deadline);
        let url = match first.as_deref().map(|line| line.strip_prefix("listening ")) {
            Ok(Some(url)) if url.starts_with("ws://") => url.trim().to_owned(),
            other => {
                let what = match other {
                    Ok(_) => format!("printed {:?} instead", first.as_deref().unwrap_or("")),
                    Err(RecvTimeoutError::Timeout) => {
                        format!("printed nothing within {RELAY_START_TIMEOUT:?}")
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let status = process.child.wait().map(|s| s.to_string());
                        format!(
                            "exited without printing it ({})",
                            status.unwrap_or_default()
                        )
                    }
                };
                let stderr = process.kill_and_stderr();
                panic!(
                    "the relay binary did not print its listening line `listening ws://ADDR`: \
                     it {what}.\ncommand: {} relay --listen 127.0.0.1:0 --rule {MANAGE_RULE}=<key> \
                     --rule {SEND_ONLY_RULE}=<key>:send{}\n--- relay stderr ---\n{stderr}\
                     --- end of relay stderr ---",
                    env!("CARGO_BIN_EXE_hycod"),
                    hybrid_connections
                        .iter()
                        .map(|hc| format!(" --hybrid-connection {hc}"))
                        .collect::<String>()
                );
            }
        };
        Relay {
            process,
            url,
            manage_key,
            send_key,
        }
    }

    /// Starts a Node listener script on `hc` and returns once it printed `{"event":"listening"}`.
    pub(crate) fn listener(&self, project: &NodeProject, script: &str, hc: &str) -> Script {
        let mut listener = self.spawn_script(project, script, hc, &[]);
        listener.wait_for_events("listening", 1, LISTENING_TIMEOUT);
        listener
    }

    /// Starts the Node SDK listener `benches/compare.sh` measures `hycod run` against
    /// (`benches/peers/node-sdk-listener/listener.js`, with `args` such as `--ws HC=HOST:PORT`),
    /// on the packages installed here (its lock pins the same ones), and returns once it printed
    /// `listening N hybrid connections`.
    pub(crate) fn bench_listener(&self, project: &NodeProject, args: &[&str]) -> Guarded {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new("node");
        command
            .arg(root.join("benches/peers/node-sdk-listener/listener.js"))
            .args(args)
            .env("NODE_PATH", project.dir.join("node_modules"))
            .env("HYCO_RELAY", &self.url)
            .env("HYCO_KEY_NAME", MANAGE_RULE)
            .env("HYCO_KEY", &self.manage_key);
        let listener = Guarded::spawn(format!("node-sdk-listener {}", args.join(" ")), command);
        let deadline = Instant::now() + LISTENING_TIMEOUT;
        loop {
            match listener.next_line(deadline) {
                Ok(line) if line.starts_with("listening ") => return listener,
                Ok(_) => {}
                Err(e) => panic!("the bench SDK listener printed no listening line: {e:?}"),
            }
        }
    }

    /// Runs a Node sender script on `hc` to completion.
    pub(crate) fn run(
        &self,
        project: &NodeProject,
        script: &str,
        hc: &str,
        args: &[&str],
    ) -> ScriptRun {
        self.spawn_script(project, script, hc, args).finish()
    }

    fn spawn_script(&self, project: &NodeProject, script: &str, hc: &str, args: &[&str]) -> Script {
        let mut command = Command::new("node");
        command
            .arg(script)
            .args(args)
            .current_dir(&project.dir)
            .env("HYCO_RELAY", &self.url)
            .env("HYCO_HC", hc)
            .env("HYCO_KEY_NAME", MANAGE_RULE)
            .env("HYCO_KEY", &self.manage_key)
            .env("HYCO_SEND_KEY_NAME", SEND_ONLY_RULE)
            .env("HYCO_SEND_KEY", &self.send_key)
            .env("HYCO_TIMEOUT_MS", SCRIPT_OWN_TIMEOUT_MS);
        let name = format!("node {script} {}", args.join(" "));
        Script {
            process: Guarded::spawn(name, command),
            seen: Vec::new(),
        }
    }

    /// Panics (with the relay's stderr) if the relay process is no longer running.
    pub(crate) fn assert_running(&mut self) {
        assert_still_running(&mut self.process);
    }
}

/// Panics (with the child's stderr) if `process` is no longer running.
pub(crate) fn assert_still_running(process: &mut Guarded) {
    if let Ok(Some(status)) = process.child.try_wait() {
        process.stderr_reported = true;
        let stderr = process.stderr_text();
        panic!(
            "{} exited during the test ({status})\n--- stderr ---\n{stderr}--- end ---",
            process.name
        );
    }
}

/// A running Node script.
pub(crate) struct Script {
    process: Guarded,
    /// Every stdout line read so far, parsed (lines that are not JSON become strings).
    seen: Vec<Value>,
}

impl Script {
    /// Waits until `count` lines with `"event": event` have been printed in total; returns them.
    pub(crate) fn wait_for_events(
        &mut self,
        event: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching = events(&self.seen, event);
            if matching.len() >= count {
                return matching.into_iter().cloned().collect();
            }
            match self.process.next_line(deadline) {
                Ok(line) => self.seen.push(parse_line(line)),
                Err(why) => {
                    let stderr = self.process.kill_and_stderr();
                    panic!(
                        "{} did not print {count} {event:?} event(s) ({}); stdout so far:\n{}\n\
                         --- stderr ---\n{stderr}--- end ---",
                        self.process.name,
                        match why {
                            RecvTimeoutError::Timeout => format!("timed out after {timeout:?}"),
                            RecvTimeoutError::Disconnected => "it exited".to_owned(),
                        },
                        render(&self.seen)
                    );
                }
            }
        }
    }

    /// Panics (with the script's stderr) if the script is no longer running.
    pub(crate) fn assert_running(&mut self) {
        assert_still_running(&mut self.process);
    }

    /// Reads stdout to the end, waits for the exit, and returns what the script reported.
    fn finish(mut self) -> ScriptRun {
        let deadline = Instant::now() + SCRIPT_TIMEOUT;
        loop {
            match self.process.next_line(deadline) {
                Ok(line) => self.seen.push(parse_line(line)),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let stderr = self.process.kill_and_stderr();
                    panic!(
                        "{} did not finish within {SCRIPT_TIMEOUT:?}; stdout so far:\n{}\n\
                         --- stderr ---\n{stderr}--- end ---",
                        self.process.name,
                        render(&self.seen)
                    );
                }
            }
        }
        let status = self
            .process
            .child
            .wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.process.name));
        ScriptRun {
            name: self.process.name.clone(),
            status,
            lines: std::mem::take(&mut self.seen),
            stderr: self.process.stderr_text(),
        }
    }
}

/// What a finished script printed.
pub(crate) struct ScriptRun {
    name: String,
    status: ExitStatus,
    lines: Vec<Value>,
    stderr: String,
}

impl ScriptRun {
    /// Panics with the script's whole output unless it exited with status 0.
    pub(crate) fn expect_success(self) -> ScriptRun {
        assert!(
            self.status.success(),
            "{} failed ({}); stdout:\n{}\n--- stderr ---\n{}--- end ---",
            self.name,
            self.status,
            render(&self.lines),
            self.stderr
        );
        self
    }

    /// The lines whose `event` is `event`, in order.
    pub(crate) fn events(&self, event: &str) -> Vec<&Value> {
        events(&self.lines, event)
    }

    /// The single line whose `event` is `event`.
    pub(crate) fn single(&self, event: &str) -> &Value {
        let found = self.events(event);
        assert_eq!(
            found.len(),
            1,
            "{} printed {} {event:?} lines, expected 1:\n{}",
            self.name,
            found.len(),
            render(&self.lines)
        );
        found[0]
    }
}

fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line.get("event").and_then(Value::as_str) == Some(event))
        .collect()
}

fn parse_line(line: String) -> Value {
    serde_json::from_str(&line).unwrap_or(Value::String(line))
}

fn render(lines: &[Value]) -> String {
    lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn installed_tree_matches_lock_when_packages_equal_without_root_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = r#"{"lockfileVersion":3,"packages":{"":{"name":"p"},"node_modules/ws":{"version":"6.2.7"}}}"#;
    std::fs::write(dir.path().join("package-lock.json"), lock).expect("write lock");
    assert!(
        !installed_packages_match_lock(dir.path()),
        "no node_modules yet"
    );

    std::fs::create_dir(dir.path().join("node_modules")).expect("mkdir");
    let hidden = dir.path().join("node_modules/.package-lock.json");
    std::fs::write(
        &hidden,
        r#"{"packages":{"node_modules/ws":{"version":"6.2.7"}}}"#,
    )
    .expect("write hidden lock");
    assert!(installed_packages_match_lock(dir.path()));

    std::fs::write(
        &hidden,
        r#"{"packages":{"node_modules/ws":{"version":"6.2.6"}}}"#,
    )
    .expect("write hidden lock");
    assert!(
        !installed_packages_match_lock(dir.path()),
        "other version installed"
    );

    std::fs::write(&hidden, "not json").expect("write hidden lock");
    assert!(
        !installed_packages_match_lock(dir.path()),
        "unreadable hidden lock"
    );
}

#[test]
fn random_keys_are_base64_of_32_bytes_and_differ() {
    let (a, b) = (random_key(), random_key());
    assert_ne!(a, b);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&a)
        .expect("base64");
    assert_eq!(decoded.len(), 32);
    assert!(
        !a.contains(':'),
        "a ':' would be read as the rights suffix of --rule"
    );
}
