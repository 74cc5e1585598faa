//! `hycod forward` end to end: a plain TCP client → forwarder → relay → daemon → TCP echo
//! target, and back; and a refused stream (no listener) closes the local connection. The
//! forwarder is a daemon whose configuration holds one `[[forward]]`, the path `hycod forward`
//! takes too.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use hycod::config::Config;
use hycod::daemon::{self, DaemonHandle, DaemonOptions, ForwardSetupError, StartError};

mod common;

use common::processes::{assert_tcp_echo, tcp_echo};
use common::KEY;

const SEND_KEY: &str = "c2VuZGVyc2VuZGVy";

fn relay() -> hycod::relay::RelayHandle {
    let root = format!("root={KEY}");
    let sender = format!("sender={SEND_KEY}:send");
    let mut flags = vec![
        "--workers",
        "1",
        "--rule",
        &root,
        "--rule",
        &sender,
        "--hybrid-connection",
        "tunnel",
        "--hybrid-connection",
        "empty",
    ];
    flags.extend_from_slice(common::STRICT_RELAY);
    common::relay(&flags)
}

/// The configuration of a daemon with one forward named `fwd` on `listen` (sender rule) to
/// `entity`.
fn forwarder_config(listen: &str, relay_url: &str, entity: &str) -> Config {
    let text = format!(
        r#"
[runtime]
workers = 1
[[forward]]
name = "fwd"
listen = "{listen}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=sender;SharedAccessKey={SEND_KEY}"
entity_path = "{entity}"
relay_url = "{relay_url}"
token_ttl = "10m"
"#
    );
    Config::from_toml_str(&text, Path::new(".")).expect("config")
}

/// A daemon with one forward (sender rule) to `entity`; its handle and the forward's address.
fn forwarder(relay_url: &str, entity: &str) -> (DaemonHandle, std::net::SocketAddr) {
    let config = forwarder_config("127.0.0.1:0", relay_url, entity);
    let handle = daemon::start(&config, DaemonOptions::default()).expect("forwarder");
    let addr = handle.forward_addr("fwd").expect("the forward listens");
    (handle, addr)
}

#[test]
fn tcp_through_forward_relay_and_daemon_is_echoed_byte_exact() {
    let relay = relay();
    let echo = tcp_echo();
    let text = format!(
        r#"
[runtime]
workers = 1
[[hybrid_connection]]
name = "tunnel"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=tunnel"
relay_url = "{}"
target = "tcp://127.0.0.1:{echo}"
"#,
        relay.url
    );
    let config = Config::from_toml_str(&text, Path::new(".")).expect("config");
    let daemon = daemon::start(&config, DaemonOptions::default()).expect("daemon");
    assert!(daemon.status.wait_all_online(Duration::from_secs(20)));
    let (_forwarder, local) = forwarder(&relay.url, "tunnel");

    let mut client = TcpStream::connect(local).expect("connect the forwarder");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert_tcp_echo(&mut client, 3_000_000);
}

#[test]
fn a_refused_stream_closes_the_local_connection() {
    let relay = relay();
    let (_forwarder, local) = forwarder(&relay.url, "empty");
    let mut client = TcpStream::connect(local).expect("connect the forwarder");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(
        client.read(&mut buf).expect("orderly close"),
        0,
        "no listener: the forwarder closes"
    );
}

#[test]
fn a_forward_whose_address_is_taken_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let config = forwarder_config(&listen, "ws://127.0.0.1:9", "tunnel");
    match daemon::start(&config, DaemonOptions::default()) {
        Err(StartError::Forward {
            index: 0,
            name,
            error: ForwardSetupError::Listen(error),
        }) => {
            assert_eq!(name, "fwd");
            assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("the daemon started on a taken address"),
    }
}

#[test]
fn the_forward_command_prints_its_address_and_names_bad_flags() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let relay = relay();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sender.conn");
    std::fs::write(
        &file,
        format!("Endpoint=sb://localhost/;SharedAccessKeyName=sender;SharedAccessKey={SEND_KEY}\n"),
    )
    .expect("write");
    let bin = env!("CARGO_BIN_EXE_hycod");
    let missing_entity = Command::new(bin)
        .args([
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--connection-string-file",
        ])
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(missing_entity.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing_entity.stderr);
    assert!(stderr.contains("--entity"), "{stderr}");
    assert!(!stderr.contains(SEND_KEY), "{stderr}");

    let azbridge_without_name = Command::new(bin)
        .args(["forward", "--entity", "e", "--relay-url", &relay.url])
        .args(["--listen", "127.0.0.1:0", "--peer", "azbridge"])
        .arg("--connection-string-file")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(azbridge_without_name.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&azbridge_without_name.stderr);
    assert!(
        stderr.contains("error: --port-name: required with peer = \"azbridge\""),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port_taken = Command::new(bin)
        .args(["forward", "--entity", "empty", "--relay-url", &relay.url])
        .arg("--listen")
        .arg(taken.local_addr().expect("addr").to_string())
        .arg("--connection-string-file")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(port_taken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&port_taken.stderr);
    assert!(
        stderr.contains("error: --listen: cannot listen: "),
        "{stderr}"
    );

    let mut child = Command::new(bin)
        .args([
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--entity",
            "empty",
            "--relay-url",
            &relay.url,
        ])
        .arg("--connection-string-file")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("listening tcp://")
        .expect("prefix")
        .to_owned();
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 4];
    let closed = client.read(&mut buf).expect("orderly close");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(closed, 0);
}
