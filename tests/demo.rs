//! `hycod demo` end to end, as a newcomer runs it: the built binary starts a relay, the daemon
//! and the sample services, sends relayed requests and streams through them, prints the report
//! and ends by itself with exit code 0.

use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_its_traffic_and_ends_by_itself_with_success() {
    let output = Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args(["demo", "--requests", "50", "--streams", "2"])
        .stdin(Stdio::null())
        .output()
        .expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code()
    );
    for needle in [
        "50 sent of 50",
        "50 x 200",
        "2 completed of 2",
        "p50 ",
        "p99 ",
        "p99.9 ",
        "Result: OK",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in\n{stdout}");
    }
    let metrics_url = stdout
        .split_whitespace()
        .find(|word| word.starts_with("http://127.0.0.1:") && word.ends_with("/metrics"));
    assert!(metrics_url.is_some(), "no /metrics URL in\n{stdout}");
}

#[test]
fn a_usage_error_is_reported_with_exit_code_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args(["demo", "--requests", "lots"])
        .output()
        .expect("the demo binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--requests"));
}
