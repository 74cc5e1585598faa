//! A relayed stream that carried a burst and then went quiet gives its grown buffers back: what
//! a quiet stream costs the daemon does not depend on what it once carried (docs/performance.md
//! "Memory after a burst"). One `hycod run` process holds both ends of each stream (a
//! `[[forward]]` and the hybrid connection it reaches), so both pumps are measured.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::processes::{
    config_text, eventually, forward, hybrid_connection, tcp_echo, DaemonProcess, RelayProcess,
    PATIENCE,
};
use common::procstat::rss_kib;

/// Streams opened; each carries [`BURST`] bytes each way, then idles.
const STREAMS: u64 = 24;
/// A burst that fills every buffer of the chain (they grow to their 256 KiB chunk).
const BURST: usize = 1 << 20;
/// Resident memory a quiet stream may keep in the process, both ends together. A fresh idle
/// stream costs ~10 KiB per end; one still holding its grown buffers ~400 KiB per end.
const QUIET_LIMIT_KIB: u64 = 96;

/// Sends `len` patterned bytes and checks the echo, writing on a second thread so that neither
/// direction waits for the other.
fn echo(client: &mut TcpStream, len: usize, seed: u8) {
    let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ seed).collect();
    let writer = {
        let mut client = client.try_clone().expect("clone");
        let sent = sent.clone();
        std::thread::spawn(move || client.write_all(&sent).expect("send"))
    };
    let mut got = vec![0u8; len];
    client.read_exact(&mut got).expect("echo");
    writer.join().expect("writer");
    assert!(got == sent, "the echo differs");
}

#[test]
fn streams_that_carried_a_burst_give_their_buffers_back_once_quiet() {
    let relay = RelayProcess::start(&["tunnel"]);
    let target = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config_text(
        "30s",
        &[
            hybrid_connection("tunnel", "tunnel", &relay.url, target),
            forward("fwd", "tunnel", &relay.url),
        ],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("tunnel");
    let addr = daemon.wait_forward_listening("fwd");
    let pid = daemon.pid();
    let before = rss_kib(pid);
    let mut clients: Vec<TcpStream> = (0..STREAMS)
        .map(|i| {
            let mut client = TcpStream::connect(addr).expect("connect the forward");
            client.set_read_timeout(Some(PATIENCE)).expect("timeout");
            echo(&mut client, BURST, i as u8);
            client
        })
        .collect();
    let per_stream = || rss_kib(pid).saturating_sub(before) / STREAMS;
    let busy = per_stream();
    assert!(
        eventually(Duration::from_secs(10), || per_stream() <= QUIET_LIMIT_KIB),
        "{} KiB per quiet stream after a {BURST}-byte burst ({busy} KiB right after it), \
         more than {QUIET_LIMIT_KIB} KiB",
        per_stream()
    );
    // The streams carry on, small and large, without a byte lost.
    for (i, client) in clients.iter_mut().enumerate() {
        echo(client, 100, i as u8);
    }
    echo(&mut clients[0], BURST, 7);
}
