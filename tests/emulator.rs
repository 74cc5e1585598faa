//! `hycod relay` as the Azure Relay emulator (docs/emulator.md): the official Node SDKs, with
//! the URLs their own helpers build (`wss://NAMESPACE:443/$hc/…`, `https://NAMESPACE/…`), reach
//! a relay configured only from `relay.toml` — `--self-signed NAME`, a hybrid connection with
//! anonymous senders — with nothing changed on the client machine but a hosts entry for NAME
//! and `NODE_EXTRA_CA_CERTS` naming the CA the relay printed.
//!
//! Port 443 is the point of the test: the SDK helpers hard-code it (hyco-ws/index.js
//! `createRelayBaseUri`, hyco-https `createRelayHttpsUri` with Node's default https port). So
//! that no port is shared with anything else on the machine, the relay runs in a network
//! namespace of its own (`unshare --net`, its own loopback) and a mount namespace where the
//! hosts entry is a bind mount over /etc/hosts; the Node scripts join both with `nsenter`.
//! Creating namespaces needs root (CAP_SYS_ADMIN): without it the test prints a skip message and
//! passes, except under `CI=true`, as without node/npm.

#[path = "interop/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use harness::{node_project, running_in_ci, Guarded, NodeProject};

/// The namespace host name the SDKs are given, as on Azure.
const NAME: &str = "hycod-emulator.servicebus.windows.net";
const WS_HC: &str = "emu-ws";
const HTTP_HC: &str = "emu-http";
const LISTEN_RULE: &str = "listeners";
const LISTEN_KEY: &str = "TGlzdGVuS2V5T2ZUaGVFbXVsYXRvclRlc3RPbmx5IQ==";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether this process may create network and mount namespaces; prints why not.
fn namespaces_available() -> bool {
    let works = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !works {
        assert!(
            !running_in_ci(),
            "CI=true but `unshare --net --mount` fails: the emulator test needs root"
        );
        eprintln!("SKIPPED: emulator test (`unshare --net --mount` fails: it needs root)");
    }
    works
}

/// The relay's configuration: the only input it gets.
fn relay_toml(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("listeners.key");
    std::fs::write(&key, LISTEN_KEY).expect("key written");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let file = dir.join("relay.toml");
    let text = format!(
        r#"listen = "127.0.0.1:443"
namespace = "{NAME}"
self_signed = "{NAME}"
state_dir = "{state}"
workers = 1

[[hybrid_connection]]
name = "{WS_HC}"
requires_client_authorization = false

[[hybrid_connection]]
name = "{HTTP_HC}"
requires_client_authorization = false

[[rule]]
name = "{LISTEN_RULE}"
key_file = "listeners.key"
rights = ["listen"]
"#,
        state = dir.join("state").display()
    );
    std::fs::write(&file, text).expect("config written");
    file
}

/// The next stdout line of `process`, or a panic with its stderr.
fn line(process: &mut Guarded, what: &str, deadline: Instant) -> String {
    match process.next_line(deadline) {
        Ok(line) => line,
        Err(why) => {
            let name = process.name().to_owned();
            panic!(
                "{name} did not print {what} ({why:?}):\n{}",
                process.kill_and_stderr()
            )
        }
    }
}

/// `node emulator.js ROLE` inside the relay's namespaces, with the machine changes of a user:
/// the hosts entry (there) and `NODE_EXTRA_CA_CERTS`.
fn node(project: &NodeProject, relay_pid: u32, ca_file: &str, role: &str) -> Guarded {
    let mut wd = std::ffi::OsString::from("--wd=");
    wd.push(project.dir());
    let mut command = Command::new("nsenter");
    command
        .args(["--target", &relay_pid.to_string(), "--net", "--mount"])
        .arg(wd)
        .args(["--", "node", "emulator.js", role])
        .env("NODE_EXTRA_CA_CERTS", ca_file)
        .env("HYCO_NAMESPACE", NAME)
        .env("HYCO_WS_HC", WS_HC)
        .env("HYCO_HTTP_HC", HTTP_HC)
        .env("HYCO_KEY_NAME", LISTEN_RULE)
        .env("HYCO_KEY", LISTEN_KEY);
    Guarded::spawn(format!("node emulator.js {role}"), command)
}

/// Reads JSON lines of `process` until one has `"event": event`.
fn event(process: &mut Guarded, event: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let text = line(process, &format!("a {event:?} event"), deadline);
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if value["event"] == event {
            return value;
        }
    }
}

#[test]
fn official_node_sdks_reach_the_emulator_with_a_hosts_entry_and_its_ca() {
    let Some(project) = node_project() else {
        return;
    };
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = relay_toml(dir.path());
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n127.0.0.1 {NAME}\n")).expect("hosts");

    let mut relay_command = Command::new("unshare");
    relay_command
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .args([
            "sh",
            "-c",
            r#"ip link set lo up && mount --bind "$0" /etc/hosts && exec "$@""#,
        ])
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_hycod"))
        .args(["relay", "--config"])
        .arg(&config);
    let mut relay = Guarded::spawn(
        "hycod relay (own network namespace)".to_owned(),
        relay_command,
    );
    let deadline = Instant::now() + START_TIMEOUT;
    let listening = line(&mut relay, "its listening line", deadline);
    assert_eq!(listening, "listening wss://127.0.0.1:443");
    let trust = line(&mut relay, "the CA to trust", deadline);
    let expected_ca = dir.path().join(format!("state/self-signed/{NAME}/ca.pem"));
    assert_eq!(trust, format!("trust {}", expected_ca.display()));
    let ca_file = expected_ca.to_str().expect("utf-8");
    let relay_pid = relay.id();

    let mut ws_listener = node(project, relay_pid, ca_file, "ws-listener");
    event(&mut ws_listener, "listening", START_TIMEOUT);
    let mut https_listener = node(project, relay_pid, ca_file, "https-listener");
    event(&mut https_listener, "listening", START_TIMEOUT);

    let mut senders = node(project, relay_pid, ca_file, "senders");
    let echo = event(&mut senders, "ws-echo", SCRIPT_TIMEOUT);
    assert_eq!(echo["len"], 4096, "{echo}");
    assert_eq!(echo["sha256"], echo["echo_sha256"], "{echo}");
    let http = event(&mut senders, "http", SCRIPT_TIMEOUT);
    assert_eq!(http["status"], 200, "{http}");
    assert_eq!(
        http["body"],
        format!("hello GET /{HTTP_HC}/hello?x=1"),
        "{http}"
    );
    assert_eq!(
        http["x_authorization"], "Bearer app",
        "an anonymous sender's Authorization reaches the listener: {http}"
    );
    assert_eq!(http["via"], format!("1.1 {NAME}"), "{http}");

    let stream = event(&mut ws_listener, "stream", SCRIPT_TIMEOUT);
    assert_eq!(stream["sha256"], echo["sha256"], "{stream}");
    let request = event(&mut https_listener, "request", SCRIPT_TIMEOUT);
    assert_eq!(request["url"], format!("/{HTTP_HC}/hello?x=1"), "{request}");
}
