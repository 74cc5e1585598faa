//! Fault injection (docs/reliability.md "Faults"): a `hycod run` daemon and a `hycod relay` as real
//! processes, with the fault proxy of `tests/common/fault_proxy.rs` between daemon and relay (as
//! the hybrid connection's HTTP CONNECT `proxy`, so control channels AND rendezvous connections
//! pass through it) or between daemon and target. Each test asserts what the sender sees, that the
//! other hybrid connection's traffic is unaffected, and that the daemon recovers by itself.
//!
//! Every daemon serves two hybrid connections: `faulty` (behind the faults) and `steady` (never
//! touched), each with two listeners and a 1 s keep-alive `ping_interval`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hycod::io::ws_client::ClientConn;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRentExt, Splitable};

mod common;

use common::fault_proxy::FaultProxy;
use common::processes::{
    config_text, eventually, http_get, http_upstream, relayed_get, tcp_echo, token, DaemonProcess,
    Ending, GatedUpstream, Progress, RelayProcess, Streamer, KEY, PATIENCE,
};
use common::{dialer, mask, run};

const FAULTY: &str = "faulty";
const STEADY: &str = "steady";
/// The keep-alive interval of every test daemon.
const PING: Duration = Duration::from_secs(1);

/// One `[[hybrid_connection]]` named and routed as `path`, with `extra` keys.
fn hc(path: &str, relay_url: &str, extra: &str) -> String {
    format!(
        r#"
[[hybrid_connection]]
name = "{path}"
connection_string = "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}"
relay_url = "{relay_url}"
listeners = 2
ping_interval = "{}s"
{extra}
"#,
        PING.as_secs()
    )
}

/// A relay, and a daemon serving `faulty` (with `faulty_keys`) and `steady` (echo target).
struct Rig {
    relay: RelayProcess,
    daemon: DaemonProcess,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(faulty_keys: &str, relay_flags: &[&str]) -> Self {
        Self::start_with_limits(faulty_keys, relay_flags, "")
    }

    /// [`Rig::start`] with these `[limits]` keys for the daemon.
    fn start_with_limits(faulty_keys: &str, relay_flags: &[&str], limits: &str) -> Self {
        let relay = RelayProcess::start_with_flags(&[FAULTY, STEADY], &[], relay_flags);
        let steady = format!("target = \"tcp://127.0.0.1:{}\"", tcp_echo());
        let text = config_text(
            "5s",
            &[
                format!("[limits]\n{limits}\n"),
                hc(FAULTY, &relay.url, faulty_keys),
                hc(STEADY, &relay.url, &steady),
            ],
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
        let rig = Self {
            relay,
            daemon,
            _dir: dir,
        };
        rig.wait_ready("at start");
        rig
    }

    /// Waits until the daemon's `/readyz` and the relay's `/$status` both show every listener.
    fn wait_ready(&self, when: &str) {
        let ready = eventually(PATIENCE, || {
            http_get(&self.daemon.admin, "/readyz").0 == 200
                && self.relay.listener_count(FAULTY) == 2
                && self.relay.listener_count(STEADY) == 2
        });
        assert!(
            ready,
            "listeners not back {when}: readyz {:?}; logs:\n{}",
            http_get(&self.daemon.admin, "/readyz"),
            self.daemon.logs_text()
        );
    }

    /// `hycod_reconnects_total` of `faulty` for `reason` (0 when never counted).
    fn reconnects(&self, reason: &str) -> f64 {
        self.daemon
            .metric_with(
                "hycod_reconnects_total",
                &[("hybrid_connection", FAULTY), ("reason", reason)],
            )
            .unwrap_or(0.0)
    }

    /// All of `faulty`'s reconnects, whatever the reason.
    fn all_reconnects(&self) -> f64 {
        self.daemon
            .samples("hycod_reconnects_total")
            .iter()
            .filter(|(labels, _)| labels.get("hybrid_connection") == Some(FAULTY))
            .map(|(_, v)| v)
            .sum()
    }

    /// Waits until `faulty` has no stream in flight (its target connections were closed).
    fn wait_no_streams(&self) {
        let drained = eventually(PATIENCE, || {
            self.daemon
                .metric_with("hycod_streams_in_flight", &[("hybrid_connection", FAULTY)])
                == Some(0.0)
        });
        assert!(drained, "a cut stream's target connection was not released");
    }

    /// A fresh stream on `path` echoes and closes cleanly.
    fn new_stream_works(&self, path: &str) {
        let streamer = Streamer::start(&self.relay.url, path);
        streamer.keeps_flowing(3);
        assert_clean(streamer.finish());
    }
}

/// The stream closed cleanly end to end with every byte echoed.
fn assert_clean(progress: Progress) {
    match progress {
        Progress::Finished {
            sent,
            verified,
            clean,
        } => {
            assert!(clean, "closed cleanly end to end");
            assert_eq!(sent, verified, "every byte came back");
        }
        other => panic!("not finished: {other:?}"),
    }
}

/// The stream ended without a clean close.
fn assert_cut(progress: Progress) {
    match progress {
        Progress::Finished { clean, .. } => assert!(!clean, "the stream was cut"),
        other => panic!("not finished: {other:?}"),
    }
}

/// The relay's main address.
fn relay_addr(relay: &RelayProcess) -> SocketAddr {
    relay
        .url
        .trim_start_matches("ws://")
        .parse()
        .expect("relay address")
}

/// The proxy key routing `faulty`'s relay connections through `proxy`.
fn via(proxy: &FaultProxy) -> String {
    format!("proxy = \"http://{}\"", proxy.host_port())
}

#[test]
fn relay_connection_reset_mid_stream_ends_the_stream_and_the_listeners_come_back() {
    let proxy = FaultProxy::http_connect();
    let echo = tcp_echo();
    let gated = GatedUpstream::start();
    let rig = Rig::start(
        &format!(
            "{}\ntarget = \"tcp://127.0.0.1:{echo}\"\nhttp_target = \"http://127.0.0.1:{}\"",
            via(&proxy),
            gated.port
        ),
        &[],
    );
    let cut = Streamer::start(&rig.relay.url, FAULTY);
    let other = Streamer::start(&rig.relay.url, STEADY);
    cut.keeps_flowing(3);
    let request = relayed_get(&rig.relay.url, FAULTY, "held");
    gated
        .arrived
        .recv_timeout(PATIENCE)
        .expect("the request reached the target");
    let connections_before = proxy.connections();
    assert!(connections_before >= 3, "2 control channels + 1 rendezvous");

    proxy.reset_all();
    let reset_at = Instant::now();

    assert_cut(cut.wait_end(PATIENCE));
    assert_eq!(
        cut.ending(),
        Some(Ending::Closed(CloseCode::new(1001))),
        "the relay closes the sender with 1001 (peer disconnected) when the rendezvous is reset"
    );
    let answer = request
        .recv_timeout(PATIENCE)
        .expect("an answer to the held request");
    assert!(
        answer.starts_with("HTTP/1.1 502") && answer.contains("ListenerGone"),
        "the relay answers a request whose listener vanished: {answer}"
    );
    // The target's late answer has nowhere to go; the daemon carries on.
    gated.release_one();
    other.keeps_flowing(20);
    rig.wait_no_streams();
    rig.wait_ready("after the reset");
    println!("listeners back {:?} after the reset", reset_at.elapsed());
    let lost = rig.reconnects("connection_lost") + rig.reconnects("io_error");
    assert!(lost >= 2.0, "both channels counted a lost connection");
    assert!(
        proxy.connections() >= connections_before + 2,
        "reconnected via the proxy"
    );
    rig.new_stream_works(FAULTY);
    assert_clean(other.finish());
}

#[test]
fn a_black_holed_relay_is_detected_by_keepalive_and_recovered_after_restore() {
    let proxy = FaultProxy::http_connect();
    let echo = tcp_echo();
    let rig = Rig::start(
        &format!("{}\ntarget = \"tcp://127.0.0.1:{echo}\"", via(&proxy)),
        &[],
    );
    let other = Streamer::start(&rig.relay.url, STEADY);
    let held = Streamer::start(&rig.relay.url, FAULTY);
    let before = rig.reconnects("keepalive_timeout");

    proxy.black_hole();
    let started = Instant::now();
    let detected = eventually(PATIENCE, || {
        rig.reconnects("keepalive_timeout") >= before + 2.0
    });
    let took = started.elapsed();
    assert!(detected, "keepalive_timeout counted for both channels");
    // Silence is noticed after 2 × ping_interval, at most one ping interval late.
    assert!(
        took >= PING && took <= PING * 4,
        "detected in {took:?}, ping_interval {PING:?}"
    );
    assert_eq!(
        http_get(&rig.daemon.admin, "/readyz").0,
        503,
        "not ready while the relay is unreachable"
    );
    other.keeps_flowing(20);

    proxy.restore();
    rig.wait_ready("after restore");
    println!("keep-alive detection took {took:?}; recovered after restore");
    println!("held stream: {:?}", held.progress.try_iter().last());
    held.keeps_flowing(5);
    assert_clean(held.finish());
    rig.new_stream_works(FAULTY);
    assert_clean(other.finish());
}

#[test]
fn after_a_relay_restart_on_the_same_port_the_listeners_come_back() {
    let echo = tcp_echo();
    let mut rig = Rig::start(&format!("target = \"tcp://127.0.0.1:{echo}\""), &[]);
    let cut = Streamer::start(&rig.relay.url, FAULTY);

    rig.relay.kill();
    assert_cut(cut.wait_end(PATIENCE));
    rig.wait_no_streams();
    assert!(
        eventually(PATIENCE, || http_get(&rig.daemon.admin, "/readyz").0 == 503),
        "the daemon noticed the relay is gone"
    );
    let started = Instant::now();
    rig.relay.restart();
    rig.wait_ready("after the relay restart");
    println!(
        "listeners back {:?} after the relay restarted",
        started.elapsed()
    );
    assert!(rig.all_reconnects() >= 2.0);
    rig.new_stream_works(FAULTY);
    rig.new_stream_works(STEADY);
    let (status, body) = http_get(&rig.daemon.admin, "/healthz");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_target_reset_mid_stream_closes_that_stream_with_1011_only() {
    let echo = tcp_echo();
    let proxy = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], echo)));
    let rig = Rig::start(&format!("target = \"tcp://{}\"", proxy.host_port()), &[]);
    let cut = Streamer::start(&rig.relay.url, FAULTY);
    let other = Streamer::start(&rig.relay.url, STEADY);
    cut.keeps_flowing(3);

    proxy.reset_all();

    assert_cut(cut.wait_end(PATIENCE));
    assert_eq!(
        cut.ending(),
        Some(Ending::Closed(CloseCode::new(1011))),
        "the daemon closes the sender's stream with 1011 (target connection failed)"
    );
    other.keeps_flowing(20);
    assert_eq!(
        rig.all_reconnects(),
        0.0,
        "the control channels were not touched"
    );
    rig.new_stream_works(FAULTY);
    assert_clean(other.finish());
}

/// A TCP target that accepts, reads whatever comes and never answers; each connection's end
/// (EOF or error) is reported on the channel.
fn silent_target() -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (ended, ends) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let ended = ended.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                let _ = ended.send(());
            });
        }
    });
    (port, ends)
}

#[test]
fn a_stream_target_that_never_answers_keeps_the_stream_open_until_the_sender_closes() {
    let (port, ends) = silent_target();
    let rig = Rig::start(&format!("target = \"tcp://127.0.0.1:{port}\""), &[]);
    let url = rig.relay.url.clone();
    let outcome = run(async move {
        let conn = connect_sender(&url, FAULTY).await;
        let (read, mut write) = conn.stream.into_split();
        let mut reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &conn.leftover,
            64 * 1024,
        );
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Binary, b"hello?", mask()).expect("frame");
        write.write_all(frame).await.0.expect("send");
        // Reads run in a task of their own (a read future must not be dropped half-way); the
        // first close code (or `None` for an error) arrives on `events`.
        let (events_tx, events) = flume::bounded(1);
        monoio::spawn(async move {
            let code = loop {
                match reader.next_event().await {
                    Ok(WsEvent::Close { code, .. }) => break code,
                    Ok(WsEvent::Data { .. }) => break None,
                    Ok(_) => {}
                    Err(_) => break None,
                }
            };
            let _ = events_tx.send_async(code).await;
        });
        // Nothing comes back while the target stays silent (3 keep-alive intervals).
        let stayed_open = monoio::time::timeout(PING * 3, events.recv_async())
            .await
            .is_err();
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "", mask()).expect("close");
        write.write_all(close).await.0.expect("close sent");
        let answer = monoio::time::timeout(PATIENCE, events.recv_async())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        (stayed_open, answer)
    });
    assert_eq!(
        outcome,
        (true, CloseCode::new(1000)),
        "open while silent; the sender's close is answered with 1000"
    );
    ends.recv_timeout(PATIENCE)
        .expect("the daemon closed the target connection after the sender's close");
    rig.new_stream_works(STEADY);
}

/// A sender's WebSocket on `path`, connected through `url` (the relay or a proxy in front).
async fn connect_sender(url: &str, path: &str) -> ClientConn {
    let resource = hycod::auth::sas::dotnet_resource_uri("localhost", path);
    let token = token(&resource);
    dialer()
        .connect(
            &format!("{url}/$hc/{path}?sb-hc-action=connect"),
            &[("ServiceBusAuthorization", token.expose())],
            None,
        )
        .await
        .expect("sender connected")
}

#[test]
fn an_http_target_that_never_answers_gets_the_daemons_504_before_the_relays_deadline() {
    let relay = RelayProcess::start_with_flags(&[FAULTY, STEADY], &[], &["--http-deadline", "20s"]);
    let (silent, _ends) = silent_target();
    let upstream = http_upstream();
    let text = config_text(
        "5s",
        &[
            hc(
                FAULTY,
                &relay.url,
                &format!("http_target = \"http://127.0.0.1:{silent}\""),
            ),
            hc(
                STEADY,
                &relay.url,
                &format!("http_target = \"http://127.0.0.1:{upstream}\""),
            ),
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = hycod::config::Config::from_toml_str(&text, dir.path()).expect("config");
    let options = hycod::daemon::DaemonOptions {
        upstream_deadline: Duration::from_secs(2),
        ..hycod::daemon::DaemonOptions::default()
    };
    let mut daemon = hycod::daemon::start(&config, options).expect("daemon starts");
    assert!(eventually(PATIENCE, || relay.listener_count(FAULTY) == 2
        && relay.listener_count(STEADY) == 2));

    let started = Instant::now();
    let hung = relayed_get(&relay.url, FAULTY, "hang");
    let fine = relayed_get(&relay.url, STEADY, "fine").recv_timeout(PATIENCE);
    let fine = fine.expect("the steady answer");
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    let hung = hung.recv_timeout(PATIENCE).expect("an answer");
    let took = started.elapsed();
    assert!(hung.starts_with("HTTP/1.1 504 Gateway Timeout"), "{hung}");
    assert!(
        hung.contains("hycod: "),
        "the daemon's own answer, not the relay's: {hung}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "after the daemon's 2 s deadline, before the relay's 20 s: {took:?}"
    );
    let again = relayed_get(&relay.url, STEADY, "again").recv_timeout(PATIENCE);
    assert!(again.expect("answer").starts_with("HTTP/1.1 200"));
    daemon.stop();
}

#[test]
fn an_http_target_slower_than_the_relay_deadline_gets_the_relays_504() {
    let gated = GatedUpstream::start();
    let rig = Rig::start(
        &format!("http_target = \"http://127.0.0.1:{}\"", gated.port),
        &["--http-deadline", "2s"],
    );
    let started = Instant::now();
    let slow = relayed_get(&rig.relay.url, FAULTY, "slow");
    gated
        .arrived
        .recv_timeout(PATIENCE)
        .expect("the request reached the target");
    let answer = slow.recv_timeout(PATIENCE).expect("an answer");
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        answer.contains("did not respond in the required time"),
        "the relay's answer: {answer}"
    );
    assert!(!answer.contains("hycod: "), "not the daemon's: {answer}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10));
    // The late answer goes nowhere; the daemon carries on.
    gated.release_one();
    let next = relayed_get(&rig.relay.url, FAULTY, "next");
    gated
        .arrived
        .recv_timeout(PATIENCE)
        .expect("the next request arrived");
    gated.release_one();
    let next = next.recv_timeout(PATIENCE).expect("answer");
    assert!(next.starts_with("HTTP/1.1 200"), "{next}");
    assert!(next.contains("\r\ndone\r\n"), "{next}");
    rig.new_stream_works(STEADY);
    assert_eq!(rig.all_reconnects(), 0.0);
}

/// Bytes pushed through a stream by [`Bulk`].
const BULK: u64 = 96 * 1024 * 1024;
/// The slow reader's pace, bytes per second.
const SLOW_READER: u64 = 256 * 1024;
/// How much the daemon's RSS may grow while a slow reader holds the stream back.
const RSS_BOUND: f64 = 16.0 * 1024.0 * 1024.0;

/// The byte at stream offset `i` (period 251: never aligned with the 64 KiB frames).
fn bulk_byte(i: u64) -> u8 {
    u8::try_from(i % 251).expect("below 251")
}

/// A sender pushing [`BULK`] bytes into a stream as fast as it can while it reads and checks
/// the echo, on its own thread; `echoed` counts verified bytes.
struct Bulk {
    sent: Arc<AtomicU64>,
    echoed: Arc<AtomicU64>,
    done: mpsc::Receiver<Option<CloseCode>>,
}

impl Bulk {
    fn start(url: String, path: &'static str) -> Self {
        let sent = Arc::new(AtomicU64::new(0));
        let echoed = Arc::new(AtomicU64::new(0));
        let (tx, done) = mpsc::channel();
        let counters = (sent.clone(), echoed.clone());
        std::thread::spawn(move || {
            let close = run(bulk(url, path, counters.0, counters.1));
            let _ = tx.send(close);
        });
        Self { sent, echoed, done }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::SeqCst)
    }
}

async fn bulk(
    url: String,
    path: &str,
    sent: Arc<AtomicU64>,
    echoed: Arc<AtomicU64>,
) -> Option<CloseCode> {
    let conn = connect_sender(&url, path).await;
    let (read, mut write) = conn.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * 1024,
    );
    let writer = monoio::spawn(async move {
        let mut offset = 0u64;
        while offset < BULK {
            let chunk: Vec<u8> = (offset..offset + 64 * 1024).map(bulk_byte).collect();
            let mut frame = Vec::with_capacity(chunk.len() + 14);
            push_frame(&mut frame, true, OpCode::Binary, &chunk, mask()).expect("frame");
            write.write_all(frame).await.0.expect("sender write");
            offset += 64 * 1024;
            sent.store(offset, Ordering::SeqCst);
        }
        write
    });
    let mut verified = 0u64;
    while verified < BULK {
        match reader.next_event().await.expect("sender read") {
            WsEvent::Data { payload, .. } => {
                for &byte in reader.bytes(payload) {
                    assert_eq!(byte, bulk_byte(verified), "echo differs at byte {verified}");
                    verified += 1;
                }
                echoed.store(verified, Ordering::SeqCst);
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Close { code, .. } => panic!("closed early with {code:?} at {verified}"),
        }
    }
    let mut write = writer.await;
    let mut close = Vec::new();
    push_close(&mut close, CloseCode::NORMAL, "", mask()).expect("close");
    write.write_all(close).await.0.expect("close sent");
    loop {
        match reader.next_event().await {
            Ok(WsEvent::Close { code, .. }) => return code,
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Which reader the throttling proxy slows down.
#[derive(Debug, Clone, Copy)]
enum SlowSide {
    /// The proxy sits between daemon and target and forwards slowly toward the target.
    Target,
    /// The proxy sits between sender and relay and forwards slowly toward the sender.
    Sender,
}

/// Pushes [`BULK`] bytes through `sender_url` into `faulty` while `proxy` (somewhere on the
/// path) forwards slowly; the daemon's RSS must stay within [`RSS_BOUND`] of where it started,
/// and every byte must come back intact once the proxy goes fast again.
fn slow_reader_keeps_memory_bounded(
    rig: &Rig,
    sender_url: String,
    proxy: &FaultProxy,
    slow: SlowSide,
) {
    rig.new_stream_works(FAULTY);
    let rss = || {
        rig.daemon
            .metric("process_resident_memory_bytes")
            .expect("rss metric")
    };
    let baseline = rss();
    let forwarded = || match slow {
        SlowSide::Target => proxy.bytes_to_upstream(),
        SlowSide::Sender => proxy.bytes_to_client(),
    };
    match slow {
        SlowSide::Target => proxy.throttle_to_upstream(SLOW_READER),
        SlowSide::Sender => proxy.throttle_to_client(SLOW_READER),
    }
    let bulk = Bulk::start(sender_url, FAULTY);
    let throttled_from = forwarded();
    let mut peak = baseline;
    // Wait until the sender moves at about the slow reader's pace: every buffer on the way
    // (kernel socket buffers included) is full. A daemon that buffered without bound would let
    // the sender push all its bytes instead, at full speed.
    let mut history: Vec<(Instant, u64)> = Vec::new();
    let held_back = eventually(PATIENCE * 2, || {
        peak = peak.max(rss());
        let now = (Instant::now(), bulk.sent());
        history.push(now);
        let second_ago = history
            .iter()
            .rev()
            .find(|(at, _)| now.0.duration_since(*at) >= Duration::from_secs(1));
        second_ago.is_some_and(|(_, then)| now.1 - then < 3 * SLOW_READER)
    });
    let (sent, through) = (bulk.sent(), forwarded() - throttled_from);
    assert!(held_back, "the sender never slowed down");
    assert!(
        sent < BULK,
        "backpressure reached the sender: it sent {sent} while {through} got through"
    );
    proxy.restore();
    let started = Instant::now();
    let close = bulk
        .done
        .recv_timeout(Duration::from_secs(120))
        .expect("the whole stream came back");
    assert_eq!(close, CloseCode::new(1000));
    assert_eq!(bulk.echoed(), BULK, "every byte, intact");
    let grew = peak - baseline;
    println!(
        "{slow:?}: while throttled the sender got {:.1} MiB ahead of the slow reader; RSS \
         baseline {:.0} KiB, peak {:.0} KiB (+{:.0} KiB); the rest of {} MiB took {:?}",
        sent.saturating_sub(through) as f64 / 1048576.0,
        baseline / 1024.0,
        peak / 1024.0,
        grew / 1024.0,
        BULK >> 20,
        started.elapsed()
    );
    assert!(
        grew < RSS_BOUND,
        "the daemon buffered instead of applying backpressure: +{grew} bytes"
    );
}

#[test]
fn a_slow_target_reader_is_met_with_backpressure_not_buffering() {
    let echo = tcp_echo();
    let proxy = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], echo)));
    let rig = Rig::start(&format!("target = \"tcp://{}\"", proxy.host_port()), &[]);
    slow_reader_keeps_memory_bounded(&rig, rig.relay.url.clone(), &proxy, SlowSide::Target);
}

#[test]
fn a_slow_sender_reader_is_met_with_backpressure_not_buffering() {
    let echo = tcp_echo();
    let rig = Rig::start(&format!("target = \"tcp://127.0.0.1:{echo}\""), &[]);
    let proxy = FaultProxy::to(relay_addr(&rig.relay));
    let url = format!("ws://{}", proxy.host_port());
    slow_reader_keeps_memory_bounded(&rig, url, &proxy, SlowSide::Sender);
}

#[test]
fn frames_and_heads_split_at_every_byte_still_work_byte_exact() {
    let relay_side = FaultProxy::http_connect();
    relay_side.split_bytes(true);
    let echo = tcp_echo();
    let stream_target = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], echo)));
    stream_target.split_bytes(true);
    let upstream = http_upstream();
    let http_side = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], upstream)));
    http_side.split_bytes(true);
    // Registration, pings, accepts and requests all cross the splitting proxy from the start.
    let rig = Rig::start(
        &format!(
            "{}\ntarget = \"tcp://{}\"\nhttp_target = \"http://{}\"",
            via(&relay_side),
            stream_target.host_port(),
            http_side.host_port()
        ),
        &[],
    );
    // The sender's side too: its handshake and frames reach the relay one byte at a time.
    let sender_side = FaultProxy::to(relay_addr(&rig.relay));
    sender_side.split_bytes(true);
    let streamer = Streamer::start(&format!("ws://{}", sender_side.host_port()), FAULTY);
    streamer.keeps_flowing(4);
    assert_clean(streamer.finish());
    for i in 0..3 {
        let answer = relayed_get(&rig.relay.url, FAULTY, &format!("split/{i}"))
            .recv_timeout(PATIENCE)
            .expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            dechunked(&answer) == format!("GET /split/{i} HTTP/1.1 0"),
            "byte-exact through the split proxies: {answer}"
        );
    }
    assert!(relay_side.bytes_to_upstream() > 0 && stream_target.bytes_to_upstream() > 0);
    assert!(sender_side.bytes_to_upstream() > 4 * 16 * 1024);
    assert!(http_side.bytes_to_client() > 0);
    // Keep-alive pings crossed the splitting proxy too: nothing reconnected.
    assert_eq!(rig.all_reconnects(), 0.0);
}

/// The body of a raw `Transfer-Encoding: chunked` answer, chunks joined (RFC 9112 §7.1).
fn dechunked(answer: &str) -> String {
    let (_, mut rest) = answer.split_once("\r\n\r\n").expect("a head");
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// An HTTP target that answers every request with a head promising 100000 bytes, sends 1000 of
/// them and then resets the connection.
fn resetting_http_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                answer.extend_from_slice(&[b'x'; 1000]);
                let _ = std::io::Write::write_all(&mut conn, &answer);
                let _ = std::io::Write::flush(&mut conn);
                let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
            });
        }
    });
    port
}

#[test]
fn an_http_target_reset_mid_response_truncates_that_response_only() {
    let upstream = resetting_http_target();
    let rig = Rig::start(
        &format!("http_target = \"http://127.0.0.1:{upstream}\""),
        &[],
    );
    let other = Streamer::start(&rig.relay.url, STEADY);
    let answer = relayed_get(&rig.relay.url, FAULTY, "big")
        .recv_timeout(PATIENCE)
        .expect("an answer");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK"),
        "the head went out first"
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert!(
        body.ends_with(&format!("{}\r\n", "x".repeat(40))) && !body.ends_with("\r\n0\r\n\r\n"),
        "the body is cut off without its last chunk, so the sender can tell: {:?}",
        &body[body.len().saturating_sub(60)..]
    );
    other.keeps_flowing(10);
    assert_clean(other.finish());
    assert_eq!(rig.all_reconnects(), 0.0);
}

#[test]
fn a_relay_refusing_connections_is_retried_until_it_accepts_again() {
    let proxy = FaultProxy::http_connect();
    let echo = tcp_echo();
    let rig = Rig::start(
        &format!("{}\ntarget = \"tcp://127.0.0.1:{echo}\"", via(&proxy)),
        &[],
    );
    let other = Streamer::start(&rig.relay.url, STEADY);
    proxy.refuse_new(true);
    proxy.reset_all();
    assert!(
        eventually(PATIENCE, || proxy.refused() >= 2),
        "the daemon kept trying"
    );
    assert_eq!(http_get(&rig.daemon.admin, "/readyz").0, 503);
    other.keeps_flowing(10);
    let started = Instant::now();
    proxy.refuse_new(false);
    rig.wait_ready("once the relay accepts again");
    println!("back {:?} after refusals stopped", started.elapsed());
    rig.new_stream_works(FAULTY);
    assert_clean(other.finish());
}

/// The write stall timeout of the daemon or relay in the stalled-target tests.
const WRITE_STALL: Duration = Duration::from_secs(2);

/// Streams on `faulty` until the sender is held back by the black-holed `proxy` (the target
/// stops reading), then waits for the stream to end while the target still reads nothing.
/// Returns the close code the sender saw (`None`: the stream ended without one) and how long
/// after the sender got stuck the stream ended; the sender's socket is closed by then.
fn stall_the_target(rig: &Rig, proxy: &FaultProxy) -> (Option<CloseCode>, Duration) {
    let sent = Arc::new(AtomicU64::new(0));
    let (ended_tx, ended) = flume::bounded::<Option<CloseCode>>(1);
    let url = rig.relay.url.clone();
    let pushed = sent.clone();
    let sender = std::thread::spawn(move || {
        run(async move {
            let conn = connect_sender(&url, FAULTY).await;
            let (read, mut write) = conn.stream.into_split();
            let mut reader = WsReader::new(
                read,
                Role::Client,
                Limits::default(),
                &conn.leftover,
                64 * 1024,
            );
            // Reads run in a task of their own (a read future must not be dropped half-way).
            monoio::spawn(async move {
                let code = loop {
                    match reader.next_event().await {
                        Ok(WsEvent::Close { code, .. }) => break code,
                        Ok(_) => {}
                        Err(_) => break None,
                    }
                };
                let _ = ended_tx.send_async(code).await;
            });
            // Ends when the relay closes the sender's socket.
            loop {
                let mut frame = Vec::new();
                push_frame(&mut frame, true, OpCode::Binary, &[7u8; 64 * 1024], mask())
                    .expect("frame");
                if write.write_all(frame).await.0.is_err() {
                    return;
                }
                pushed.fetch_add(64 * 1024, Ordering::SeqCst);
            }
        })
    });
    assert!(eventually(PATIENCE, || sent.load(Ordering::SeqCst) > 0));
    proxy.black_hole();
    let mut history: Vec<(Instant, u64)> = Vec::new();
    let stuck = eventually(PATIENCE, || {
        let now = (Instant::now(), sent.load(Ordering::SeqCst));
        history.push(now);
        history
            .iter()
            .rev()
            .find(|(at, _)| now.0.duration_since(*at) >= Duration::from_secs(1))
            .is_some_and(|(_, then)| *then == now.1)
    });
    assert!(stuck, "the sender was held back by the silent target");
    let stuck_at = Instant::now();
    let seen = ended
        .recv_timeout(WRITE_STALL + PATIENCE)
        .expect("the sender saw the stream end while the target still reads nothing");
    let took = stuck_at.elapsed();
    sender.join().expect("sender thread");
    (seen, took)
}

#[test]
fn a_stream_whose_target_stopped_reading_is_released_after_the_write_stall_timeout() {
    let echo = tcp_echo();
    let proxy = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], echo)));
    // The relay's own write stall timeout (default 60 s) stays out of the way.
    let rig = Rig::start_with_limits(
        &format!("target = \"tcp://{}\"", proxy.host_port()),
        &[],
        &format!("write_stall_timeout = \"{}s\"", WRITE_STALL.as_secs()),
    );
    let other = Streamer::start(&rig.relay.url, STEADY);
    other.keeps_flowing(3);

    let (seen, took) = stall_the_target(&rig, &proxy);

    assert_eq!(
        seen,
        CloseCode::new(1011),
        "the daemon closes the stream with 1011 (target stopped reading)"
    );
    assert!(
        took < WRITE_STALL + Duration::from_secs(3),
        "released {took:?} after the sender got stuck, write stall timeout {WRITE_STALL:?}"
    );
    rig.wait_no_streams();
    assert_eq!(
        rig.daemon.metric_with(
            "hycod_limit_exceeded_total",
            &[
                ("hybrid_connection", FAULTY),
                ("limit", "write_stall_timeout")
            ]
        ),
        Some(1.0)
    );
    other.keeps_flowing(3);
    assert_clean(other.finish());
    proxy.restore();
    rig.new_stream_works(FAULTY);
}

#[test]
fn the_relay_ends_a_stream_whose_listener_stopped_reading_after_its_write_stall_timeout() {
    let echo = tcp_echo();
    let proxy = FaultProxy::to(SocketAddr::from(([127, 0, 0, 1], echo)));
    let relay_stall = format!("{}s", WRITE_STALL.as_secs());
    // The daemon never gives up on its stalled target write, so its rendezvous socket stops
    // being read: only the relay's write stall timeout can end the stream for the sender.
    let rig = Rig::start_with_limits(
        &format!("target = \"tcp://{}\"", proxy.host_port()),
        &["--write-stall-timeout", &relay_stall],
        "write_stall_timeout = \"0s\"",
    );
    let other = Streamer::start(&rig.relay.url, STEADY);
    other.keeps_flowing(3);

    let (seen, took) = stall_the_target(&rig, &proxy);

    assert_eq!(
        seen,
        CloseCode::new(1011),
        "the relay closes the sender's side with 1011 (peer stopped reading)"
    );
    assert!(
        took < WRITE_STALL + Duration::from_secs(3),
        "released {took:?} after the sender got stuck, write stall timeout {WRITE_STALL:?}"
    );
    other.keeps_flowing(3);
    assert_clean(other.finish());
    // Once the target reads again, the daemon finds its rendezvous closed and lets go too.
    proxy.restore();
    rig.wait_no_streams();
    rig.new_stream_works(FAULTY);
}
