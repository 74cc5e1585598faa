//! The daemon's control plane against `hycod relay` over real sockets: listeners come online on
//! every worker, short-lived tokens are renewed on the live channel, and a relay that dies and
//! comes back gets every listener back without a daemon restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hycod::config::Config;
use hycod::daemon::{self, DaemonOptions};
use hycod::proto::hc::backoff::BackoffPolicy;
use hycod::proto::hc::listener::ListenerConfig;

mod common;

use common::processes::{eventually, http_get, http_upstream, tcp_echo, KEY};

/// A `hycod relay` child process, killed on drop.
struct RelayProcess {
    child: Child,
    url: String,
    admin: String,
}

impl RelayProcess {
    fn start(listen: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hycod"))
            .args([
                "relay",
                "--listen",
                listen,
                "--workers",
                "2",
                "--admin",
                "127.0.0.1:0",
                "--rule",
                &format!("root={KEY}"),
                "--hybrid-connection",
                "hyco",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("listening line")
            .strip_prefix("listening ")
            .expect("listening prefix")
            .to_owned();
        let admin = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("admin line")
            .strip_prefix("admin ")
            .expect("admin prefix")
            .to_owned();
        Self { child, url, admin }
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("ws://").to_owned()
    }

    /// The relay's `/$status` document.
    fn status(&self) -> serde_json::Value {
        let addr = self
            .admin
            .trim_start_matches("http://")
            .trim_end_matches("/$status")
            .to_owned();
        let body = http_get(&addr, "/$status").1;
        serde_json::from_str(&body).expect("status json")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(relay_url: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[runtime]
workers = 2
[admin]
listen = "127.0.0.1:0"
[[hybrid_connection]]
name = "hyco"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco"
relay_url = "{relay_url}"
listeners = 3
{extra}
"#
    );
    Config::from_toml_str(&text, Path::new(".")).expect("config")
}

fn fast_options() -> DaemonOptions {
    DaemonOptions {
        listener: ListenerConfig {
            backoff: BackoffPolicy {
                base: Duration::from_millis(50),
                cap: Duration::from_millis(300),
                long_base: Duration::from_millis(300),
                long_cap: Duration::from_millis(600),
                ..BackoffPolicy::default()
            },
            ..ListenerConfig::default()
        },
        ..DaemonOptions::default()
    }
}

fn listener_count(relay: &RelayProcess) -> u64 {
    relay.status()["hybrid_connections"][0]["listener_count"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn listeners_come_online_and_report_ready_and_metrics() {
    let relay = RelayProcess::start("127.0.0.1:0");
    let handle = daemon::start(
        &config(&relay.url, "target = \"tcp://127.0.0.1:9\""),
        fast_options(),
    )
    .expect("daemon");
    assert!(
        handle.status.wait_all_online(Duration::from_secs(20)),
        "listeners online"
    );
    assert_eq!(listener_count(&relay), 3);
    let admin = handle.admin_addr.expect("admin").to_string();
    let (status, body) = http_get(&admin, "/readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, "hyco 3/3 listeners online\n")
    );
    assert_eq!(http_get(&admin, "/healthz").0, 200);
    let (status, metrics) = http_get(&admin, "/metrics");
    assert_eq!(status, 200);
    let lines: Vec<String> = metrics.lines().map(str::to_owned).collect();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("prometheus text");
    let online: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hycod_listener_online")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(online, 3.0);
}

#[test]
fn short_lived_tokens_are_renewed_on_the_live_channel() {
    let relay = RelayProcess::start("127.0.0.1:0");
    let mut config = config(&relay.url, "target = \"tcp://127.0.0.1:9\"");
    config.hybrid_connections[0].token_ttl = Duration::from_secs(3);
    let handle = daemon::start(&config, fast_options()).expect("daemon");
    assert!(handle.status.wait_all_online(Duration::from_secs(20)));
    let first = relay.status();
    let first_ids: Vec<u64> = first["hybrid_connections"][0]["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| l["id"].as_u64().expect("id"))
        .collect();
    // Past the first tokens' expiry every original channel is still registered and renewed.
    let renewed = eventually(Duration::from_secs(15), || {
        let doc = relay.status();
        let listeners = doc["hybrid_connections"][0]["listeners"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        listeners.len() == 3
            && listeners.iter().all(|l| {
                first_ids.contains(&l["id"].as_u64().unwrap_or(0))
                    && l["renewals"].as_u64().unwrap_or(0) >= 2
            })
    });
    assert!(
        renewed,
        "renewals observed at the relay: {}",
        relay.status()
    );
}

#[test]
fn a_restarted_relay_gets_every_listener_back() {
    let mut relay = RelayProcess::start("127.0.0.1:0");
    let addr = relay.addr();
    let handle = daemon::start(
        &config(&relay.url, "target = \"tcp://127.0.0.1:9\""),
        fast_options(),
    )
    .expect("daemon");
    assert!(handle.status.wait_all_online(Duration::from_secs(20)));
    drop(relay);
    assert!(
        eventually(Duration::from_secs(20), || !handle.status.is_ready()),
        "listeners noticed the relay went away"
    );
    relay = RelayProcess::start(&addr);
    assert!(
        handle.status.wait_all_online(Duration::from_secs(30)),
        "listeners back online"
    );
    assert!(eventually(Duration::from_secs(10), || listener_count(
        &relay
    ) == 3));
}

#[test]
fn streams_reach_the_tcp_target_through_the_running_daemon() {
    use hycod::io::ws_reader::{WsEvent, WsReader};
    use hycod::proto::ws::encode::push_frame;
    use hycod::proto::ws::{Limits, OpCode, Role};
    use monoio::io::{AsyncWriteRentExt, Splitable};

    let relay = RelayProcess::start("127.0.0.1:0");
    let echo = tcp_echo();
    let target = format!("target = \"tcp://127.0.0.1:{echo}\"");
    let handle = daemon::start(&config(&relay.url, &target), fast_options()).expect("daemon");
    assert!(handle.status.wait_all_online(Duration::from_secs(20)));
    let token = common::token_for("root", KEY, "hyco");
    let url = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
    hycod::runtime::workers::block_on(async move {
        let dialer = common::dialer();
        for round in 0..4u8 {
            let conn = dialer
                .connect(&url, &[("ServiceBusAuthorization", &token)], None)
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
            let sent: Vec<u8> = (0..200_000u32).map(|i| (i as u8) ^ round).collect();
            let mut frames = Vec::new();
            for part in sent.chunks(70_000) {
                push_frame(
                    &mut frames,
                    true,
                    OpCode::Binary,
                    part,
                    Some([1, 2, 3, round]),
                )
                .expect("frame");
            }
            write.write_all(frames).await.0.expect("send");
            let mut got = Vec::new();
            while got.len() < sent.len() {
                match reader.next_event().await.expect("echo") {
                    WsEvent::Data { payload, .. } => got.extend_from_slice(reader.bytes(payload)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(got == sent, "round {round}: echo differs");
        }
    })
    .expect("runtime");
}

#[test]
fn relayed_http_reaches_the_upstream_through_the_running_daemon() {
    use std::io::{Read, Write};
    let relay = RelayProcess::start("127.0.0.1:0");
    let upstream = http_upstream();
    let target = format!("http_target = \"http://127.0.0.1:{upstream}/erp\"");
    let handle = daemon::start(&config(&relay.url, &target), fast_options()).expect("daemon");
    assert!(handle.status.wait_all_online(Duration::from_secs(20)));
    let token = common::token_for("root", KEY, "hyco");
    let body = "x".repeat(1000);
    let mut tcp = std::net::TcpStream::connect(relay.addr()).expect("connect");
    write!(
        tcp,
        "POST /hyco/api/orders?top=5 HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        &token,
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Via: 1.1 localhost"), "{answer}");
    assert!(
        answer.contains("POST /erp/api/orders?top=5 HTTP/1.1 1000"),
        "{answer}"
    );
}

/// A minimal HTTP CONNECT proxy; returns its port and the CONNECT targets it was asked for.
fn connect_proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                log.lock().expect("log").push(target.clone());
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c_read, mut u_write) = (reader, upstream.try_clone().expect("clone"));
                let (mut u_read, mut c_write) = (upstream, client);
                std::thread::spawn(move || std::io::copy(&mut c_read, &mut u_write));
                let _ = std::io::copy(&mut u_read, &mut c_write);
            });
        }
    });
    (port, seen)
}

#[test]
fn listeners_reach_the_relay_through_an_http_connect_proxy() {
    let relay = RelayProcess::start("127.0.0.1:0");
    let (proxy, seen) = connect_proxy();
    let extra = format!("target = \"tcp://127.0.0.1:9\"\nproxy = \"http://127.0.0.1:{proxy}\"");
    let handle = daemon::start(&config(&relay.url, &extra), fast_options()).expect("daemon");
    assert!(
        handle.status.wait_all_online(Duration::from_secs(20)),
        "online through the proxy"
    );
    let targets = seen.lock().expect("log").clone();
    assert_eq!(
        targets.len(),
        3,
        "one CONNECT per control channel: {targets:?}"
    );
    assert!(targets.iter().all(|t| *t == relay.addr()), "{targets:?}");
}

#[test]
fn readyz_turns_503_while_the_relay_is_away_and_200_when_it_returns() {
    let relay = RelayProcess::start("127.0.0.1:0");
    let addr = relay.addr();
    let handle = daemon::start(
        &config(&relay.url, "target = \"tcp://127.0.0.1:9\""),
        fast_options(),
    )
    .expect("daemon");
    assert!(handle.status.wait_all_online(Duration::from_secs(20)));
    let admin = handle.admin_addr.expect("admin").to_string();
    assert_eq!(
        http_get(&admin, "/readyz"),
        (200, "hyco 3/3 listeners online\n".to_owned())
    );
    drop(relay);
    let mut away = (0, String::new());
    assert!(
        eventually(Duration::from_secs(20), || {
            away = http_get(&admin, "/readyz");
            away == (503, "hyco 0/3 listeners online\n".to_owned())
        }),
        "/readyz while the relay is away: {away:?}"
    );
    let _returned = RelayProcess::start(&addr);
    let mut back = (0, String::new());
    assert!(
        eventually(Duration::from_secs(30), || {
            back = http_get(&admin, "/readyz");
            back.0 == 200
        }),
        "/readyz after the relay returned: {back:?}"
    );
    assert!(
        back.1.starts_with("hyco ") && back.1.ends_with("/3 listeners online\n"),
        "{back:?}"
    );
    assert!(handle.status.wait_all_online(Duration::from_secs(30)));
    assert_eq!(
        http_get(&admin, "/readyz"),
        (200, "hyco 3/3 listeners online\n".to_owned())
    );
}
