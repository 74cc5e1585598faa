//! `[[forward]]` in `hycod run` (docs/configuration.md): one daemon process whose configuration
//! holds a hybrid connection and a forward to it carries a TCP client's bytes through the relay
//! and back (client → forward → relay → listener → echo target); reloads add, remove and reject
//! forwards; a drain waits for forwarded connections.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::processes::{
    assert_tcp_echo, config_text, eventually, forward, forward_on, hybrid_connection, tcp_echo,
    DaemonProcess, RelayProcess, PATIENCE,
};

/// The worker count of [`config_text`]: each worker accepts on every forward's socket.
const WORKERS: usize = 2;

/// A relay serving `tunnel`, an echo target, and a daemon with the hybrid connection `tunnel`
/// and one forward to it per name in `forwards`, in a fresh directory.
struct Setup {
    relay: RelayProcess,
    echo: u16,
    daemon: DaemonProcess,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn start(forwards: &[&str]) -> Self {
        let relay = RelayProcess::start(&["tunnel"]);
        let echo = tcp_echo();
        let dir = tempfile::tempdir().expect("tempdir");
        let forwards: Vec<String> = forwards
            .iter()
            .map(|name| forward(name, "tunnel", &relay.url))
            .collect();
        let text = Self::config(&relay, echo, &forwards);
        let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
        daemon.wait_listener_online("tunnel");
        Self {
            relay,
            echo,
            daemon,
            _dir: dir,
        }
    }

    fn config(relay: &RelayProcess, echo: u16, forwards: &[String]) -> String {
        let mut sections = vec![hybrid_connection("tunnel", "tunnel", &relay.url, echo)];
        sections.extend_from_slice(forwards);
        config_text("30s", &sections)
    }

    /// A forward named `name` to `tunnel`.
    fn forward(&self, name: &str) -> String {
        forward(name, "tunnel", &self.relay.url)
    }

    /// Rewrites the configuration with these forwards (configuration texts) and sends SIGHUP.
    fn reload(&self, forwards: &[String]) {
        self.daemon
            .rewrite_config(&Self::config(&self.relay, self.echo, forwards));
        self.daemon.signal("HUP");
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).expect("connect the forward");
    client
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    client
}

/// Sends `payload` and reads the same number of bytes back; they must be identical.
fn round_trip(client: &mut TcpStream, payload: &[u8]) {
    client.write_all(payload).expect("send");
    let mut back = vec![0u8; payload.len()];
    client.read_exact(&mut back).expect("echo");
    assert!(back == payload, "echo differs");
}

#[test]
fn a_tcp_client_reaches_the_echo_target_through_a_configured_forward_byte_exact() {
    let mut setup = Setup::start(&["fwd"]);
    let addr = setup.daemon.wait_forward_listening("fwd");

    let mut client = connect(addr);
    assert_tcp_echo(&mut client, 1_000_000);

    let fwd_label = ("forward", "fwd");
    assert!(eventually(PATIENCE, || setup
        .daemon
        .metric_with("hycod_forward_in_flight", &[fwd_label])
        == Some(0.0)));
    assert_eq!(
        setup.daemon.metric_with(
            "hycod_forward_connections_total",
            &[fwd_label, ("result", "forwarded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        setup.daemon.metric_with(
            "hycod_forward_connections_total",
            &[fwd_label, ("result", "refused")]
        ),
        Some(0.0)
    );
    for direction in ["to_relay", "to_client"] {
        assert_eq!(
            setup.daemon.metric_with(
                "hycod_forward_bytes_total",
                &[fwd_label, ("direction", direction)]
            ),
            Some(1_000_000.0),
            "{direction}"
        );
    }
}

#[test]
fn a_reload_adds_and_removes_forwards_and_removed_ones_finish_their_connections() {
    let mut setup = Setup::start(&["a"]);
    let addr_a = setup.daemon.wait_forward_listening("a");
    let mut through_a = connect(addr_a);
    round_trip(&mut through_a, b"before the reload");

    setup.reload(&[setup.forward("b")]);
    let reloaded = setup.daemon.wait_log("the reload removing a", |l| {
        l["message"] == "configuration reloaded" && l["forwards_removed"] == "[\"a\"]"
    });
    assert_eq!(reloaded["forwards_added"], "[\"b\"]");
    let addr_b = setup.daemon.wait_forward_listening("b");
    round_trip(&mut connect(addr_b), b"through the added forward");
    round_trip(&mut through_a, b"the removed forward's connection runs on");
    setup.daemon.wait_stopped_accepting("a", WORKERS);
    // No accept loop is left to take a probe, so probing cannot start new work.
    assert!(
        eventually(PATIENCE, || TcpStream::connect(addr_a).is_err()),
        "the removed forward's port is closed"
    );
    round_trip(&mut through_a, b"and still runs");
}

#[test]
fn a_changed_forward_with_the_same_listen_keeps_its_socket() {
    let mut setup = Setup::start(&["f"]);
    let before = setup.forward("f");
    let addr = setup.daemon.wait_forward_listening("f");
    let mut kept = connect(addr);
    round_trip(&mut kept, b"first");
    let after = format!("{before}token_ttl = \"10m\"\n");
    setup.reload(&[after]);
    let reloaded = setup.daemon.wait_log("the reload changing f", |l| {
        l["message"] == "configuration reloaded" && l["forwards_changed"] == "[\"f\"]"
    });
    assert_eq!(reloaded["forwards_removed"], "[]");
    assert_eq!(setup.daemon.wait_forward_listening("f"), addr);
    round_trip(&mut connect(addr), b"a new connection after the change");
    round_trip(&mut kept, b"an old connection after the change");
}

#[test]
fn a_bad_forward_is_rejected_on_reload_with_its_key_path_and_the_running_one_stays() {
    let mut setup = Setup::start(&[]);
    let good = setup.forward("good");
    setup.reload(std::slice::from_ref(&good));
    let addr = setup.daemon.wait_forward_listening("good");

    let bad = good.replace("listen = \"127.0.0.1:0\"", "listen = \"localhost:3300\"");
    setup.reload(&[bad]);
    let rejected = setup.daemon.wait_log("the rejected reload", |l| {
        l["message"] == "configuration reload rejected; the running configuration stays in effect"
    });
    assert_eq!(rejected["key"], "forward[0].listen");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("taken");
    let busy = forward_on(
        "busy",
        &taken.local_addr().expect("addr").to_string(),
        "tunnel",
        &setup.relay.url,
    );
    setup.reload(&[good, busy]);
    let rejected = setup.daemon.wait_log("the reload onto a taken port", |l| {
        l["message"] == "configuration reload rejected; the running configuration stays in effect"
    });
    assert_eq!(rejected["key"], "forward[1].listen");
    assert_eq!(
        setup.daemon.metric("hycod_reload_failures_total"),
        Some(2.0)
    );
    round_trip(&mut connect(addr), b"still forwarding");
}

#[test]
fn a_drain_waits_for_forwarded_connections() {
    let mut setup = Setup::start(&["fwd"]);
    let addr = setup.daemon.wait_forward_listening("fwd");
    let mut client = connect(addr);
    round_trip(&mut client, b"before the drain");

    setup.daemon.signal("TERM");
    let draining = setup.daemon.wait_log("the drain", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("draining"))
    });
    assert!(
        draining["in_flight"].as_u64() >= Some(1),
        "the forwarded connection is in flight: {draining}"
    );
    round_trip(&mut client, b"during the drain");
    setup.daemon.wait_stopped_accepting("fwd", WORKERS);
    // No accept loop is left to take a probe, so probing cannot start new work.
    assert!(
        eventually(PATIENCE, || TcpStream::connect(addr).is_err()),
        "a draining daemon takes no new connections"
    );
    round_trip(&mut client, b"after the port closed");
    drop(client);
    setup
        .daemon
        .wait_log("the drain's end", |l| l["message"] == "drained; exiting");
    let status = setup.daemon.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0));
    assert!(
        !setup.daemon.logs_text().contains("drain deadline reached"),
        "the drain ended because the work did, not at the deadline; logs:\n{}",
        setup.daemon.logs_text()
    );
}
