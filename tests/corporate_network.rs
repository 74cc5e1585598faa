//! Relay connections from a corporate network: a real authenticating HTTP CONNECT proxy
//! (Squid) on loopback, found through `HTTPS_PROXY` or named by `proxy` with the password in
//! `proxy_password_env` / `proxy_password_file`; `NO_PROXY`; a 407 answer that names what is
//! missing; a relay (`wss://`) whose certificate a test CA signs.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::pki::TestCa;
use common::processes::{assert_tcp_echo, config_text, forward, tcp_echo, DaemonProcess};
use common::squid::{Auth, Squid};
use common::{run, KEY};
use hycod::io::ws_client::{ConnectError, Dialer};
use hycod::tls::{client_config, TrustRoots};

const USER: &str = "svc-hycod";
const PASSWORD: &str = "Tr0ub4dor&3-proxy";

/// An in-process `wss://` relay for the hybrid connections `sap`, `proxied` and `direct`, whose
/// certificate (for `127.0.0.1` and `localhost`) `ca` signs.
fn wss_relay(dir: &Path, ca: &TestCa) -> hycod::relay::RelayHandle {
    let server = ca.server(dir, "relay", &["127.0.0.1", "localhost"], false);
    let rule = format!("root={KEY}");
    let mut flags = vec![
        "--tls-cert",
        server.cert_file.to_str().expect("utf8"),
        "--tls-key",
        server.key_file.to_str().expect("utf8"),
        "--rule",
        &rule,
    ];
    for name in ["sap", "proxied", "direct"] {
        flags.extend(["--hybrid-connection", name]);
    }
    common::relay(&flags)
}

/// A company's network: a temporary directory, a test CA, and a [`wss_relay`] it signs.
struct Corp {
    dir: tempfile::TempDir,
    ca: TestCa,
    relay: hycod::relay::RelayHandle,
}

impl Corp {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "corp");
        let relay = wss_relay(dir.path(), &ca);
        Self { dir, ca, relay }
    }
}

/// The daemon's first failed control-channel connect and the reconnect it announces.
fn connect_failure(daemon: &mut DaemonProcess) -> (serde_json::Value, serde_json::Value) {
    let failed = daemon.wait_log("the failed connect", |l| {
        l["message"] == "control channel connect failed"
    });
    let offline = daemon.wait_log("the reconnect", |l| {
        l["message"] == "listener offline, reconnecting"
    });
    (failed, offline)
}

/// A `[[hybrid_connection]]` `name` on `relay_url` trusting `ca`, with `extra` keys.
fn hc(name: &str, relay_url: &str, ca: &TestCa, echo_port: u16, extra: &str) -> String {
    let trust = format!("tls_roots = \"{}\"\n{extra}", ca.ca_file.display());
    hc_trusting(name, relay_url, echo_port, &trust)
}

/// A `[[hybrid_connection]]` `name` on `relay_url` with `extra` keys (its trust among them).
fn hc_trusting(name: &str, relay_url: &str, echo_port: u16, extra: &str) -> String {
    format!(
        "\n[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={name}\"\nrelay_url = \"{relay_url}\"\ntarget = \"tcp://127.0.0.1:{echo_port}\"\nlisteners = 1\n{extra}\n"
    )
}

/// Stops the daemon (SIGTERM) and waits for it to exit, closing its tunnels.
fn stop(daemon: &mut DaemonProcess) {
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn https_proxy_without_credentials_is_a_clear_407_on_the_long_ladder() {
    let Some(squid) = Squid::start(Auth::Basic(&[(USER, PASSWORD)])) else {
        return;
    };
    let Corp { dir, ca, relay } = Corp::new();
    let config = config_text("1s", &[hc("sap", &relay.url, &ca, tcp_echo(), "")]);
    let proxy = squid.url(None);
    let mut daemon = DaemonProcess::start(dir.path(), &config, None, &[("HTTPS_PROXY", &proxy)]);
    let chosen = daemon.wait_log("the proxy choice", |l| {
        l["message"] == "relay connections: proxy chosen"
    });
    assert_eq!(
        chosen["proxy"],
        format!("{proxy} (environment HTTPS_PROXY, NO_PROXY honoured)")
    );
    let (failed, offline) = connect_failure(&mut daemon);
    assert_eq!(
        failed["error"],
        format!(
            "proxy {} requires authentication (407): set proxy = \"http://USER@{}\" and \
             proxy_password_file or proxy_password_env",
            squid.addr, squid.addr
        )
    );
    assert_eq!(offline["reason"], "proxy_auth");
    let retry_in = offline["retry_in_ms"].as_u64().expect("retry_in_ms");
    assert!(
        retry_in >= 30_000,
        "the long ladder starts at 30 s, got {retry_in} ms"
    );
    squid.wait_logged(&[
        "TCP_DENIED/407",
        &format!("CONNECT 127.0.0.1:{}", port_of(&relay.url)),
    ]);
}

#[test]
fn credentials_from_the_password_keys_carry_daemon_and_forward_through_the_proxy() {
    let Some(squid) = Squid::start(Auth::Basic(&[(USER, PASSWORD)])) else {
        return;
    };
    let Corp { dir, ca, relay } = Corp::new();
    let proxy = squid.url(Some(USER));
    let extra = format!("proxy = \"{proxy}\"\nproxy_password_env = \"HYCOD_PROXY_PASSWORD\"");
    let config = config_text("1s", &[hc("sap", &relay.url, &ca, tcp_echo(), &extra)]);
    // HTTPS_PROXY names a dead port: the `proxy` key wins over the environment.
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config,
        None,
        &[
            ("HYCOD_PROXY_PASSWORD", PASSWORD),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ],
    );
    let chosen = daemon.wait_log("the proxy choice", |l| {
        l["message"] == "relay connections: proxy chosen"
    });
    assert_eq!(chosen["proxy"], format!("{proxy} (proxy key)"));
    daemon.wait_listener_online("sap");
    let relay_port = port_of(&relay.url);
    let tunnel = format!("CONNECT 127.0.0.1:{relay_port}");

    // `hycod forward`, with the password in a file, sends through the same proxy.
    let password_file = dir.path().join("proxy.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
    let trust = ca.ca_file.as_os_str();
    let password = password_file.as_os_str();
    let mut forward = start_forward(
        dir.path(),
        &relay.url,
        &[
            "--tls-roots".as_ref(),
            trust,
            "--proxy".as_ref(),
            proxy.as_ref(),
            "--proxy-password-file".as_ref(),
            password,
        ],
    );
    let addr = listening_addr(&mut forward);
    let mut client = TcpStream::connect(addr).expect("connect the forward");
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    client.write_all(&payload).expect("send");
    let mut echoed = vec![0u8; payload.len()];
    client
        .read_exact(&mut echoed)
        .expect("echo through both tunnels");
    assert!(echoed == payload, "echo corrupted");
    drop(client);
    let _ = forward.kill();
    let output = forward.wait_with_output().expect("forward output");
    let forward_logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        forward_logs.contains(&format!("{proxy} (proxy key)")),
        "{forward_logs}"
    );
    assert!(!forward_logs.contains(PASSWORD));
    // Squid logs a tunnel when it closes.
    stop(&mut daemon);
    assert!(!daemon.logs_text().contains(PASSWORD));
    squid.wait_logged(&[&tunnel, USER, "TCP_TUNNEL/200"]);
    // The control channel, the forward's sender socket and the daemon's rendezvous socket (a
    // port of its own), each logged when it closes, not necessarily together.
    let tunnels = squid.wait_logged_lines(&["TCP_TUNNEL/200 ", "CONNECT 127.0.0.1:", USER], 3);
    assert_eq!(tunnels.len(), 3, "{}", squid.access_log());
}

#[test]
fn no_proxy_sends_the_hosts_it_names_around_the_proxy() {
    let Some(squid) = Squid::start(Auth::Basic(&[(USER, PASSWORD)])) else {
        return;
    };
    let Corp { dir, ca, relay } = Corp::new();
    let port = port_of(&relay.url);
    let echo = tcp_echo();
    let config = config_text(
        "1s",
        &[
            hc("proxied", &format!("wss://127.0.0.1:{port}"), &ca, echo, ""),
            hc("direct", &format!("wss://localhost:{port}"), &ca, echo, ""),
        ],
    );
    let proxy = format!(
        "http://{USER}:{}@{}",
        PASSWORD.replace('&', "%26"),
        squid.addr
    );
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config,
        None,
        &[
            ("https_proxy", &proxy),
            ("NO_PROXY", ".example.org, localhost:443,localhost"),
        ],
    );
    daemon.wait_listener_online("proxied");
    daemon.wait_listener_online("direct");
    // Squid logs a tunnel when it closes.
    stop(&mut daemon);
    squid.wait_logged(&[&format!("CONNECT 127.0.0.1:{port}"), USER, "TCP_TUNNEL/200"]);
    let log = squid.access_log();
    assert!(
        !log.contains("localhost"),
        "NO_PROXY names localhost: {log}"
    );
    assert!(!daemon.logs_text().contains(PASSWORD));
}

#[test]
fn a_proxy_that_asks_only_for_ntlm_is_named_as_unsupported() {
    let Some(squid) = Squid::start(Auth::NtlmOnly) else {
        return;
    };
    let Corp { dir, ca, relay } = Corp::new();
    let extra = format!(
        "proxy = \"{}\"\nproxy_password_env = \"HYCOD_PROXY_PASSWORD\"",
        squid.url(Some(USER))
    );
    let config = config_text("1s", &[hc("sap", &relay.url, &ca, tcp_echo(), &extra)]);
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config,
        None,
        &[("HYCOD_PROXY_PASSWORD", PASSWORD)],
    );
    let (failed, offline) = connect_failure(&mut daemon);
    assert_eq!(
        failed["error"],
        format!(
            "proxy {} requires NTLM authentication (407), which hycod does not support; only \
             Basic is",
            squid.addr
        )
    );
    assert_eq!(offline["reason"], "proxy_auth");
}

/// The proxy tests' Squid counts as started only once it listens itself. Another process may
/// take the probed port before Squid binds it; a connection then succeeds (to that process)
/// while Squid exits a second later, and a test spoke to the wrong server (under load:
/// "invalid CONNECT answer: HTTP version is not HTTP/1.0 or HTTP/1.1").
#[test]
fn squid_on_a_port_another_process_holds_is_not_taken_for_started() {
    if !common::squid::installed() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    assert!(
        Squid::try_start(&Auth::NtlmOnly, port).is_none(),
        "squid was taken for started on a port another process holds"
    );
}

#[test]
fn a_relay_signed_by_the_ca_in_the_system_store_is_trusted_by_system_and_refused_by_webpki() {
    let Corp { dir, ca, relay } = Corp::new();
    let echo = tcp_echo();
    let config = config_text(
        "1s",
        &[
            hc_trusting("sap", &relay.url, echo, "tls_roots = \"system\""),
            hc_trusting("direct", &relay.url, echo, ""),
        ],
    );
    // The operating system's store, as rustls-native-certs reads it: SSL_CERT_FILE names the
    // bundle, here holding the company's CA (as a TLS-inspecting proxy's CA would be installed).
    let ca_file = ca.ca_file.display().to_string();
    let mut daemon =
        DaemonProcess::start(dir.path(), &config, None, &[("SSL_CERT_FILE", &ca_file)]);
    daemon.wait_listener_online("sap");
    let failed = daemon.wait_log("the webpki refusal", |l| {
        l["message"] == "control channel connect failed" && l["hybrid_connection"] == "direct"
    });
    assert_eq!(
        failed["error"],
        "TLS certificate of 127.0.0.1 refused: unknown issuer: it does not chain to a CA of the \
         trust store in use (tls_roots: webpki, system or a CA file)"
    );
}

/// `relay_ca_file` (and `hycod forward --relay-ca-file`), the older name of `tls_roots` holding
/// a CA file, still trusts the relay; each start logs a warning naming the replacement.
#[test]
fn the_older_relay_ca_file_key_still_trusts_the_relay_and_names_tls_roots_at_start() {
    let Corp { dir, ca, relay } = Corp::new();
    let trust = format!("relay_ca_file = \"{}\"", ca.ca_file.display());
    let config = config_text("1s", &[hc_trusting("sap", &relay.url, tcp_echo(), &trust)]);
    let mut daemon = DaemonProcess::start(dir.path(), &config, None, &[]);
    let warned = daemon.wait_log("the deprecation warning", |l| {
        l["message"] == "configuration warning"
    });
    assert_eq!(
        warned["warning"],
        "hybrid_connection[0].relay_ca_file: this key is deprecated and may be removed; write \
         tls_roots instead, which means the same"
    );
    daemon.wait_listener_online("sap");

    let trust = ca.ca_file.as_os_str();
    let mut forward = start_forward(
        dir.path(),
        &relay.url,
        &[
            "--relay-ca-file".as_ref(),
            trust,
            "--proxy".as_ref(),
            "none".as_ref(),
        ],
    );
    let addr = listening_addr(&mut forward);
    let mut client = TcpStream::connect(addr).expect("connect the forward");
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    client.write_all(b"ping through the old key").expect("send");
    let mut echoed = [0u8; 24];
    client
        .read_exact(&mut echoed)
        .expect("echo through the relay");
    assert_eq!(&echoed, b"ping through the old key");
    drop(client);
    let _ = forward.kill();
    let output = forward.wait_with_output().expect("forward output");
    let forward_logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        forward_logs.contains(
            "--relay-ca-file is deprecated and may be removed; --tls-roots means the same"
        ),
        "{forward_logs}"
    );
    stop(&mut daemon);
}

/// Starts `hycod forward` on a free port to `sap` on `relay_url` (the root rule's connection
/// string in a file in `dir`) with `flags`, without the environment's proxy variables.
fn start_forward(dir: &Path, relay_url: &str, flags: &[&OsStr]) -> Child {
    let cs_file = dir.join("sender.conn");
    std::fs::write(
        &cs_file,
        format!("Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=sap\n"),
    )
    .expect("connection string");
    Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args([
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--relay-url",
            relay_url,
        ])
        .arg("--connection-string-file")
        .arg(&cs_file)
        .args(flags)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hycod forward starts")
}

/// Reads `hycod forward`'s first line, `listening tcp://ADDR`, and returns the address.
fn listening_addr(forward: &mut Child) -> String {
    let stdout = forward.stdout.as_mut().expect("stdout");
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).expect("stdout") == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let line = String::from_utf8(first).expect("utf8");
    line.strip_prefix("listening tcp://")
        .expect("listening line")
        .to_owned()
}

#[test]
fn certificate_errors_name_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "corp");
    let cases = [
        (
            ca.server(dir.path(), "wrong-name", &["relay.example.org"], false),
            "name mismatch: it is not valid for 127.0.0.1",
        ),
        (
            ca.server(dir.path(), "expired", &["127.0.0.1"], true),
            "expired",
        ),
    ];
    let rule = format!("root={KEY}");
    for (server, expected) in cases {
        let relay = common::relay(&[
            "--tls-cert",
            server.cert_file.to_str().expect("utf8"),
            "--tls-key",
            server.key_file.to_str().expect("utf8"),
            "--rule",
            &rule,
            "--hybrid-connection",
            "sap",
        ]);
        let dialer = Dialer {
            tls: client_config(&TrustRoots::CaFile(ca.ca_file.clone())).expect("CA file"),
            ..common::dialer()
        };
        let url = format!("{}/$hc/sap?sb-hc-action=listen", relay.url);
        match run(async move { dialer.connect(&url, &[], None).await }) {
            Err(ConnectError::Certificate { host, problem }) => {
                assert_eq!((host.as_str(), problem.as_str()), ("127.0.0.1", expected));
            }
            other => panic!(
                "expected a certificate error, got {:?}",
                other.map(|_| ()).map_err(|e| e.to_string())
            ),
        }
    }
}

#[test]
fn rendezvous_addresses_carry_the_rendezvous_host_so_their_tls_name_checks_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "corp");
    // A certificate for the name only, as Azure's gateways have; the relay listens on an IP.
    let server = ca.server(dir.path(), "named", &["localhost"], false);
    let rule = format!("root={KEY}");
    let relay = |paths: &str, extra: &[&str]| {
        let mut flags = vec![
            "--tls-cert",
            server.cert_file.to_str().expect("utf8"),
            "--tls-key",
            server.key_file.to_str().expect("utf8"),
            "--rule",
            &rule,
            "--hybrid-connection",
            paths,
        ];
        flags.extend_from_slice(extra);
        common::relay(&flags)
    };
    let named = relay("named", &["--rendezvous-host", "localhost"]);
    let by_address = relay("by-address", &[]);
    let by_name = |url: &str| url.replacen("127.0.0.1", "localhost", 1);
    let echo = tcp_echo();
    let trust = format!("relay_ca_file = \"{}\"\n", ca.ca_file.display());
    let config = config_text(
        "1s",
        &[
            hc("named", &by_name(&named.url), &ca, echo, ""),
            // The daemon may dial the address (so what fails is the name check, not its own
            // rendezvous check).
            hc(
                "by-address",
                &by_name(&by_address.url),
                &ca,
                echo,
                "rendezvous_hosts = [\"127.0.0.1\"]",
            ),
            format!(
                "{}{trust}",
                forward("to-named", "named", &by_name(&named.url))
            ),
            format!(
                "{}{trust}",
                forward("to-by-address", "by-address", &by_name(&by_address.url))
            ),
        ],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &config, None, &[]);
    daemon.wait_listener_online("named");
    daemon.wait_listener_online("by-address");

    let to_named = daemon.wait_forward_listening("to-named");
    let mut client = TcpStream::connect(to_named).expect("connect the forward");
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_tcp_echo(&mut client, 64 * 1024);

    let to_by_address = daemon.wait_forward_listening("to-by-address");
    let _client = TcpStream::connect(to_by_address).expect("connect the forward");
    let failed = daemon.wait_log("the rendezvous refusal", |l| {
        l["message"] == "stream dropped: the rendezvous could not be opened"
            && l["hybrid_connection"] == "by-address"
    });
    assert_eq!(
        failed["error"],
        "TLS certificate of 127.0.0.1 refused: name mismatch: it is not valid for 127.0.0.1"
    );
}
