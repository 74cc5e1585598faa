//! `hycod-load` against real targets: its own `serve-http`/`serve-echo` directly, and a relay
//! plus daemon started in this process for relayed HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hycod::config::Config;
use hycod::daemon::{self, DaemonOptions};
use hycod::relay::config::{RelayArgs, RelayConfig};

const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
const BIN: &str = env!("CARGO_BIN_EXE_hycod-load");

/// Starts `hycod-load serve-*` on a free port; the child and its address.
fn serve(kind: &str) -> (Child, String) {
    serve_with(kind, &[])
}

/// Like [`serve`], with extra flags.
fn serve_with(kind: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([kind, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the target");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line.trim().trim_start_matches("listening on ").to_owned();
    (child, addr)
}

fn load(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.json");
    let plot = dir.path().join("out.svg");
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run hycod-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("p99"), "{stdout}");
    assert!(stdout.contains("CPU-µs per request"), "{stdout}");
    let svg = std::fs::read_to_string(&plot).expect("svg");
    assert!(svg.contains("<path ") && svg.contains(">99.99%</text>"));
    serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse")
}

/// Runs `hycod-load ARGS --json F` (a mode without latency table) and returns the JSON.
fn run_json(args: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.json");
    let out = Command::new(BIN)
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run hycod-load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    (stdout, value)
}

/// Starts a relay and a daemon (in this process) serving hybrid connection `name` with
/// `target_line` (e.g. `target = "tcp://…"`); the relay handle, the daemon and the relay URL.
fn relay_and_daemon(
    name: &str,
    target_line: &str,
) -> (hycod::relay::RelayHandle, daemon::DaemonHandle, String) {
    let relay = relay();
    let text = format!(
        r#"
[runtime]
workers = 1
[[hybrid_connection]]
name = "{name}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={name}"
relay_url = "{}"
{target_line}
"#,
        relay.url
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    let daemon = daemon::start(&config, DaemonOptions::default()).expect("daemon");
    assert!(daemon.status.wait_all_online(Duration::from_secs(20)));
    let url = relay.url.clone();
    (relay, daemon, url)
}

fn assert_sane(json: &serde_json::Value, expected: u64) {
    let n = json["n"].as_u64().expect("n");
    assert!(n.abs_diff(expected) <= expected / 10, "n = {n}: {json}");
    assert_eq!(json["errors"], serde_json::json!({}), "{json}");
    let p50 = json["p50_us"].as_u64().expect("p50");
    let p99 = json["p99_us"].as_u64().expect("p99");
    let max = json["max_us"].as_u64().expect("max");
    assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{json}");
    assert!(p50 < 1_000_000, "{json}");
}

fn relay() -> hycod::relay::RelayHandle {
    relay_with(&[])
}

/// A relay (in this process) serving `web`, `echo` and `bulk`, with extra flags.
fn relay_with(extra: &[&str]) -> hycod::relay::RelayHandle {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RelayArgs,
    }
    let rule = format!("root={KEY}");
    let mut args = vec![
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--rule",
        &rule,
        "--hybrid-connection",
        "web",
        "--hybrid-connection",
        "echo",
        "--hybrid-connection",
        "bulk",
    ];
    args.extend_from_slice(extra);
    let config: RelayConfig = Cli::parse_from(args)
        .args
        .into_config()
        .expect("relay config");
    hycod::relay::start(config).expect("relay")
}

#[test]
fn relayed_http_and_streams_over_wss_trust_the_ca_file() {
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.key_pair.serialize_pem()).expect("write key");
    let (cert_arg, key_arg) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let (mut upstream, web_addr) = serve("serve-http");
    let (mut echo, echo_addr) = serve("serve-echo");
    let relay = relay_with(&["--tls-cert", cert_arg, "--tls-key", key_arg]);
    assert!(relay.url.starts_with("wss://"), "{}", relay.url);
    let text = format!(
        r#"
[runtime]
workers = 1
[[hybrid_connection]]
name = "web"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=web"
relay_url = "{url}"
tls_roots = "{cert_arg}"
http_target = "http://{web_addr}/"
[[hybrid_connection]]
name = "echo"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=echo"
relay_url = "{url}"
tls_roots = "{cert_arg}"
target = "tcp://{echo_addr}"
"#,
        url = relay.url
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    let daemon = daemon::start(&config, DaemonOptions::default()).expect("daemon");
    assert!(daemon.status.wait_all_online(Duration::from_secs(20)));
    let relayed = |mode: &str, hc: &str, ca: Option<&str>| {
        let mut args = vec![
            mode,
            "--relay",
            &relay.url,
            "--hybrid-connection",
            hc,
            "--key-name",
            "root",
            "--key",
            KEY,
            "--rate",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--connections",
            "2",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if let Some(ca) = ca {
            args.extend(["--ca-file".to_owned(), ca.to_owned()]);
        }
        args
    };
    let http = relayed("http", "web", Some(cert_arg));
    assert_sane(
        &load(&http.iter().map(String::as_str).collect::<Vec<_>>()),
        100,
    );
    let stream = relayed("stream", "echo", Some(cert_arg));
    assert_sane(
        &load(&stream.iter().map(String::as_str).collect::<Vec<_>>()),
        100,
    );

    let untrusted = relayed("http", "web", None);
    let (_, json) = run_json(&untrusted.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(json["n"], 0, "{json}");
    assert!(
        json["errors"]["tls_handshake"].as_u64() > Some(0),
        "without --ca-file the self-signed relay is not trusted: {json}"
    );
    let _ = upstream.kill();
    let _ = echo.kill();
}

#[test]
fn relayed_http_at_200_per_second_is_all_answered() {
    let (mut upstream, addr) = serve("serve-http");
    let relay = relay();
    let text = format!(
        r#"
[runtime]
workers = 1
[[hybrid_connection]]
name = "web"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=web"
relay_url = "{}"
http_target = "http://{addr}/"
"#,
        relay.url
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    let daemon = daemon::start(&config, DaemonOptions::default()).expect("daemon");
    assert!(daemon.status.wait_all_online(Duration::from_secs(20)));
    let json = load(&[
        "http",
        "--relay",
        &relay.url,
        "--hybrid-connection",
        "web",
        "--key-name",
        "root",
        "--key",
        KEY,
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "2",
        "--body-size",
        "1024",
        "--headers",
        "3",
    ]);
    assert_sane(&json, 200);
    let _ = upstream.kill();
}

#[test]
fn direct_tcp_echo_streams_are_measured() {
    let (mut echo, addr) = serve("serve-echo");
    let json = load(&[
        "stream",
        "--direct",
        &format!("tcp://{addr}"),
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "4",
        "--size",
        "64",
    ]);
    assert_sane(&json, 500);
    assert_eq!(json["mode"], "stream");
    let _ = echo.kill();
}

#[test]
fn a_non_loopback_target_is_refused() {
    let out = Command::new(BIN)
        .args([
            "stream",
            "--direct",
            "tcp://192.0.2.1:7",
            "--duration",
            "1s",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-host"));
}

#[test]
fn relayed_echo_streams_are_measured() {
    let (mut echo, addr) = serve("serve-echo");
    let relay = relay();
    let text = format!(
        r#"
[runtime]
workers = 1
[[hybrid_connection]]
name = "echo"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=echo"
relay_url = "{}"
target = "tcp://{addr}"
"#,
        relay.url
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    let daemon = daemon::start(&config, DaemonOptions::default()).expect("daemon");
    assert!(daemon.status.wait_all_online(Duration::from_secs(20)));
    let json = load(&[
        "stream",
        "--relay",
        &relay.url,
        "--hybrid-connection",
        "echo",
        "--key-name",
        "root",
        "--key",
        KEY,
        "--rate",
        "300",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "3",
        "--size",
        "64",
    ]);
    assert_sane(&json, 300);
    let _ = echo.kill();
}

#[test]
fn direct_bulk_moves_data_up_and_down_and_charges_named_processes() {
    let (mut sink, addr) = serve("serve-bulk");
    let target = format!("tcp://{addr}");
    let pid = format!("target={}", sink.id());
    for direction in ["up", "down"] {
        let (stdout, json) = run_json(&[
            "bulk",
            "--direct",
            &target,
            "--direction",
            direction,
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--cpu-pids",
            &pid,
        ]);
        assert!(stdout.contains("Gbit/s"), "{stdout}");
        let (up, down) = (json["bytes_up"].as_u64(), json["bytes_down"].as_u64());
        match direction {
            "up" => assert!(up > Some(0) && down == Some(0), "{json}"),
            _ => assert!(down > Some(0) && up == Some(0), "{json}"),
        }
        assert!(json["gbit_s"].as_f64() > Some(0.0), "{json}");
        assert_eq!(json["errors"], 0, "{json}");
        assert_eq!(json["processes"][0]["name"], "target", "{json}");
    }
    let _ = sink.kill();
}

#[test]
fn relayed_bulk_moves_data_both_ways() {
    let (mut target, addr) = serve("serve-bulk");
    let (_relay, _daemon, url) = relay_and_daemon("bulk", &format!("target = \"tcp://{addr}\""));
    let (_, json) = run_json(&[
        "bulk",
        "--relay",
        &url,
        "--hybrid-connection",
        "bulk",
        "--key-name",
        "root",
        "--key",
        KEY,
        "--direction",
        "both",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
    ]);
    assert!(json["bytes_up"].as_u64() > Some(0), "{json}");
    assert!(json["bytes_down"].as_u64() > Some(0), "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    let _ = target.kill();
}

#[test]
fn idle_streams_are_held_and_their_memory_measured() {
    let (mut echo, addr) = serve("serve-echo");
    let (_relay, _daemon, url) = relay_and_daemon("echo", &format!("target = \"tcp://{addr}\""));
    let me = std::process::id().to_string();
    let (stdout, json) = run_json(&[
        "idle",
        "--relay",
        &url,
        "--hybrid-connection",
        "echo",
        "--key-name",
        "root",
        "--key",
        KEY,
        "--connections",
        "40",
        "--parallel",
        "8",
        "--rss-pid",
        &me,
    ]);
    assert!(stdout.contains("per stream"), "{stdout}");
    assert_eq!(json["opened"], 40, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    assert!(json["rss_before_kib"].as_u64() > Some(0), "{json}");
    assert!(json["rss_per_stream_kib"].is_f64(), "{json}");
    let _ = echo.kill();
}

#[test]
fn idle_streams_echo_a_burst_before_they_are_held() {
    let (mut echo, addr) = serve("serve-echo");
    let (_relay, _daemon, url) = relay_and_daemon("echo", &format!("target = \"tcp://{addr}\""));
    let relayed = [
        "--relay",
        &url,
        "--hybrid-connection",
        "echo",
        "--key-name",
        "root",
        "--key",
        KEY,
    ];
    let direct = format!("tcp://{addr}");
    for target in [&relayed[..], &["--direct", &direct]] {
        let mut args = vec!["idle", "--connections", "6", "--echo-bytes", "1048577"];
        args.extend_from_slice(target);
        let (_, json) = run_json(&args);
        assert_eq!(json["opened"], 6, "{json}");
        assert_eq!(json["failed"], 0, "{json}");
    }
    let _ = echo.kill();
}

#[test]
fn a_fixed_size_http_response_is_timed() {
    let (mut server, addr) = serve_with("serve-http", &["--response-size", "1572864"]);
    let json = load(&[
        "http",
        "--direct",
        &format!("http://{addr}/"),
        "--method",
        "GET",
        "--body-size",
        "0",
        "--rate",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    assert_sane(&json, 20);
    let mbit = json["throughput_mbit_s"].as_f64().expect("throughput");
    assert!(mbit > 20.0 * 1.5 * 8.0 * 0.5, "{json}");
    let _ = server.kill();
}

#[test]
fn find_max_reports_each_step_and_the_highest_sustained_rate() {
    let (mut server, addr) = serve("serve-http");
    let (stdout, json) = run_json(&[
        "http",
        "--direct",
        &format!("http://{addr}/"),
        "--rate",
        "100",
        "--connections",
        "2",
        "--duration",
        "200ms",
        "--warmup",
        "100ms",
        "--find-max",
        "--max-p99",
        "50ms",
        "--refine-steps",
        "1",
    ]);
    assert!(stdout.contains("find-max"), "{stdout}");
    assert_eq!(json["max_p99_us"], 50_000, "{json}");
    assert_eq!(json["step_retries"], 1, "{json}");
    let steps = json["steps"].as_array().expect("steps");
    assert!(steps.len() >= 2, "{json}");
    assert_eq!(steps[0]["attempt"], 1, "{json}");
    let retries = steps.iter().filter(|s| s["attempt"] == 2).count();
    assert_eq!(
        json["retried_steps"].as_u64(),
        u64::try_from(retries).ok(),
        "one re-run per retried step: {json}"
    );
    assert!(steps.iter().all(|s| s["passed"].is_boolean()), "{json}");
    assert!(stdout.contains("steps retried)"), "{stdout}");
    if let Some(best) = json["max_rate"].as_f64() {
        assert!(
            steps
                .iter()
                .any(|s| s["intended_rate"].as_f64() == Some(best)
                    && s["p99_us"].as_u64() < Some(50_000)),
            "{json}"
        );
    }
    let _ = server.kill();
}

#[path = "../../tests/common/squid.rs"]
#[allow(dead_code)] // NtlmOnly is for the daemon's tests
mod squid;

/// `hycod-load` with `--proxy` and `--proxy-password-file` reaches the relay through a real
/// Squid that demands Basic credentials (relayed HTTP and relayed streams); without credentials
/// the 407 is printed, naming the proxy, and every request fails.
#[test]
fn relayed_load_goes_through_an_authenticating_proxy() {
    let Some(proxy) = squid::Squid::start(squid::Auth::Basic(&[("loaduser", "l0ad&pass")])) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("proxy.password");
    std::fs::write(&password, "l0ad&pass\n").expect("password file");
    let password = password.to_str().expect("utf-8");
    let (mut upstream, web_addr) = serve("serve-http");
    let (mut echo, echo_addr) = serve("serve-echo");
    let (_web_relay, _web_daemon, web_url) =
        relay_and_daemon("web", &format!("http_target = \"http://{web_addr}/\""));
    let (_echo_relay, _echo_daemon, echo_url) =
        relay_and_daemon("echo", &format!("target = \"tcp://{echo_addr}\""));
    let with_user = proxy.url(Some("loaduser"));
    let args = |mode: &'static str, hc: &'static str, url: &str, proxy: &str| {
        let mut args = vec![
            mode,
            "--relay",
            url,
            "--hybrid-connection",
            hc,
            "--key-name",
            "root",
            "--key",
            KEY,
            "--rate",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--connections",
            "2",
            "--proxy",
            proxy,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if proxy.contains('@') {
            args.extend(["--proxy-password-file".to_owned(), password.to_owned()]);
        }
        args
    };
    let http = args("http", "web", &web_url, &with_user);
    assert_sane(
        &load(&http.iter().map(String::as_str).collect::<Vec<_>>()),
        100,
    );
    let stream = args("stream", "echo", &echo_url, &with_user);
    assert_sane(
        &load(&stream.iter().map(String::as_str).collect::<Vec<_>>()),
        100,
    );
    let relay_port = web_url.rsplit(':').next().expect("port");
    proxy.wait_logged(&[
        &format!("CONNECT 127.0.0.1:{relay_port}"),
        "loaduser",
        "TCP_TUNNEL/200",
    ]);

    let anonymous = args("http", "web", &web_url, &proxy.url(None));
    let out = Command::new(BIN)
        .args(&anonymous)
        .arg("--json")
        .arg(dir.path().join("anonymous.json"))
        .output()
        .expect("run hycod-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: proxy {} requires authentication (407)",
            proxy.addr
        )),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("anonymous.json")).expect("json"),
    )
    .expect("parse");
    assert_eq!(json["n"], 0, "{json}");
    assert!(
        json["errors"]["proxy"].as_u64().is_some_and(|n| n > 0),
        "{json}"
    );
    assert!(!stderr.contains("l0ad&pass"));
    let _ = upstream.kill();
    let _ = echo.kill();
}
