//! The daemon's stream mode over real sockets (protocol §5): an in-process relay, a
//! control channel registered by the test, `serve_accept` for every `accept`, a TCP target on
//! loopback, and senders connecting through the relay.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hycod::config::TcpTarget;
use hycod::daemon::listener::context::{Hc, HcContext};
use hycod::daemon::listener::stream::serve_accept;
use hycod::daemon::metrics::{
    BYTES, RENDEZVOUS_SECONDS, STREAMS_ACCEPTED, STREAMS_IN_FLIGHT, STREAMS_REJECTED,
    TARGET_CONNECT_SECONDS,
};
use hycod::io::resolve::Resolver;
use hycod::io::stream::Stream;
use hycod::io::ws_client::{ClientConn, ConnectError};
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::metrics::{Shard, Snapshot};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::hc::messages::Accept;
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};
use hycod::tls::{client_config, TrustRoots};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, Splitable};
use monoio::net::TcpListener;
use ring::digest::{digest, Context, SHA256};

mod common;

use common::{dialer, mask, read_message, run, KEY};

const HC: &str = "hyco";

fn relay() -> hycod::relay::RelayHandle {
    relay_with(&[])
}

/// The strict test relay ([`common::STRICT_RELAY`]) with `extra` flags.
fn relay_with(extra: &[&str]) -> hycod::relay::RelayHandle {
    let root = format!("root={KEY}");
    let mut flags = vec!["--workers", "2", "--rule", &root, "--hybrid-connection", HC];
    flags.extend_from_slice(common::STRICT_RELAY);
    flags.extend_from_slice(extra);
    common::relay(&flags)
}

fn token() -> String {
    common::token_for("root", KEY, HC)
}

/// The hybrid connection's per-worker context, built by hand.
fn context(target: Option<TcpTarget>) -> Hc {
    Rc::new(HcContext {
        name: "sap".to_owned(),
        entity_path: HC.to_owned(),
        target,
        port_targets: None,
        http_target: None,
        dialer: dialer(),
        rendezvous: hycod::proto::hc::rendezvous_address::RendezvousPolicy::new(
            "ws://127.0.0.1",
            &[],
        ),
        // Under the strict relay's idle cut (common::STRICT_RELAY), as the daemon's are.
        stream_ping_interval: Some(Duration::from_secs(1)),
        upstream_tls: client_config(&TrustRoots::WebPki).expect("tls"),
        upstream_pool: RefCell::new(Vec::new()),
        upstream_deadline: Duration::from_secs(50),
        request_buffer: hycod::config::DEFAULT_REQUEST_BUFFER,
        metrics: Rc::new(RefCell::new(Shard::new())),
        series: Default::default(),
        limits: hycod::config::Limits::default(),
        admission: hycod::daemon::listener::admission::Admission::standalone(
            &hycod::config::Limits::default(),
        ),
        detached: std::cell::Cell::new(false),
    })
}

fn loopback(port: u16) -> Option<TcpTarget> {
    Some(TcpTarget {
        host: "127.0.0.1".to_owned(),
        port,
    })
}

type Reader = WsReader<OwnedReadHalf<Stream>>;

/// A registered listener: the control channel's reader (its write half is kept open).
struct Control {
    reader: Reader,
    _write: monoio::io::OwnedWriteHalf<Stream>,
}

impl Control {
    async fn open(url: &str) -> Self {
        let conn = dialer()
            .connect(
                &format!("{url}/$hc/{HC}?sb-hc-action=listen"),
                &[("ServiceBusAuthorization", &token())],
                None,
            )
            .await
            .expect("listener registered");
        let (read, write) = conn.stream.into_split();
        Self {
            reader: WsReader::new(
                read,
                Role::Client,
                Limits::default(),
                &conn.leftover,
                64 * 1024,
            ),
            _write: write,
        }
    }

    async fn next_accept(&mut self) -> Accept {
        let (kind, text) = read_message(&mut self.reader).await;
        assert_eq!(kind, DataKind::Text);
        match parse_control_message(&text).expect("control JSON") {
            ControlMessage::Accept(accept) => accept,
            other => panic!("expected accept, got {}", other.command()),
        }
    }
}

/// Opens a sender socket on the hybrid connection, offering `subprotocol`.
async fn connect_sender(url: &str, subprotocol: Option<&str>) -> Result<ClientConn, ConnectError> {
    dialer()
        .connect(
            &format!("{url}/$hc/{HC}?sb-hc-action=connect"),
            &[("ServiceBusAuthorization", &token())],
            subprotocol,
        )
        .await
}

/// A TCP target on loopback that echoes every byte and half-closes when its peer does.
fn echo_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
    let port = listener.local_addr().expect("addr").port();
    monoio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(64 * 1024);
                loop {
                    buf.clear();
                    let (read, back) = tcp.read(buf).await;
                    match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let (written, back) = tcp.write_all(back).await;
                    buf = back;
                    if written.is_err() {
                        return;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    port
}

/// A port nobody listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Sends `payload` as binary messages of at most 64 KiB, then Close(1000), while reading the
/// echo until the daemon's Close; returns the echoed bytes' SHA-256 and length.
async fn echo(sender: ClientConn, payload: Rc<Vec<u8>>) -> (Vec<u8>, usize) {
    let (read, mut write) = sender.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &sender.leftover,
        64 * 1024,
    );
    let writer = monoio::spawn(async move {
        for chunk in payload.chunks(64 * 1024) {
            let mut frame = Vec::with_capacity(chunk.len() + 14);
            push_frame(&mut frame, true, OpCode::Binary, chunk, mask()).expect("frame");
            write.write_all(frame).await.0.expect("sender write");
        }
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "Shutdown", mask()).expect("close");
        write.write_all(close).await.0.expect("sender close");
        write
    });
    let mut hash = Context::new(&SHA256);
    let mut len = 0;
    loop {
        match reader.next_event().await.expect("sender read") {
            WsEvent::Data { kind, payload, .. } => {
                assert_eq!(kind, DataKind::Binary);
                len += payload.len();
                hash.update(reader.bytes(payload));
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Close { code, .. } => {
                assert_eq!(code, Some(CloseCode::NORMAL));
                break;
            }
        }
    }
    drop(writer.await);
    (hash.finish().as_ref().to_vec(), len)
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + seed) % 251) as u8).collect()
}

fn snapshot(hc: &Hc) -> Snapshot {
    hc.metrics.borrow().snapshot()
}

#[test]
fn echoes_of_0_b_1_b_64_kib_and_16_mib_arrive_intact() {
    let relay = Arc::new(relay());
    run(async move {
        let hc = context(loopback(echo_target()));
        let mut control = Control::open(&relay.url).await;
        let sizes = [0usize, 1, 64 * 1024, 16 << 20];
        for (index, size) in sizes.into_iter().enumerate() {
            let url = relay.url.clone();
            let sender =
                monoio::spawn(async move { connect_sender(&url, Some("echo-proto")).await });
            let accept = control.next_accept().await;
            let serving = monoio::spawn(serve_accept(hc.clone(), accept));
            let sender = sender.await.expect("sender joined");
            assert_eq!(sender.response.subprotocol.as_deref(), Some("echo-proto"));
            let payload = Rc::new(pattern(size, index));
            let expected = digest(&SHA256, &payload).as_ref().to_vec();
            let started = Instant::now();
            let (hash, len) = echo(sender, payload).await;
            let elapsed = started.elapsed();
            assert_eq!(len, size);
            assert!(hash == expected, "echo of {size} bytes corrupted");
            serving.await;
            eprintln!("echo of {size} bytes: {elapsed:?}");
        }
        let total: u64 = sizes.iter().map(|s| u64::try_from(*s).expect("fits")).sum();
        let metrics = snapshot(&hc);
        assert_eq!(metrics.counter(&STREAMS_ACCEPTED, &["sap"]), Some(4));
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_target"]), Some(total));
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_relay"]), Some(total));
        assert_eq!(metrics.gauge(&STREAMS_IN_FLIGHT, &["sap"]), Some(0));
        let count = |desc| metrics.histogram(desc, &["sap"]).map(|h| h.count());
        assert_eq!(count(&RENDEZVOUS_SECONDS), Some(4));
        assert_eq!(count(&TARGET_CONNECT_SECONDS), Some(4));
    });
}

#[test]
fn a_thousand_concurrent_streams_are_echoed() {
    const STREAMS: usize = 1000;
    const TOTAL: u64 = 1000 * 1000;
    let relay = Arc::new(relay());
    run(async move {
        let hc = context(loopback(echo_target()));
        let mut control = Control::open(&relay.url).await;
        let started = Instant::now();
        let senders: Vec<_> = (0..STREAMS)
            .map(|i| {
                let url = relay.url.clone();
                monoio::spawn(async move {
                    let sender = connect_sender(&url, None).await.expect("sender joined");
                    let payload = Rc::new(pattern(1000, i));
                    let expected = digest(&SHA256, &payload).as_ref().to_vec();
                    let (hash, len) = echo(sender, payload).await;
                    assert!(len == 1000 && hash == expected, "stream {i} corrupted");
                })
            })
            .collect();
        let mut serving = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let accept = control.next_accept().await;
            serving.push(monoio::spawn(serve_accept(hc.clone(), accept)));
        }
        for sender in senders {
            sender.await;
        }
        for task in serving {
            task.await;
        }
        eprintln!("{STREAMS} concurrent streams: {:?}", started.elapsed());
        let metrics = snapshot(&hc);
        assert_eq!(metrics.counter(&STREAMS_ACCEPTED, &["sap"]), Some(1000));
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_target"]), Some(TOTAL));
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_relay"]), Some(TOTAL));
        assert_eq!(metrics.gauge(&STREAMS_IN_FLIGHT, &["sap"]), Some(0));
    });
}

#[test]
fn the_target_sees_eof_after_the_senders_close_and_can_still_answer() {
    let relay = Arc::new(relay());
    run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let hc = context(loopback(listener.local_addr().expect("addr").port()));
        // Reads everything up to EOF, then answers and closes.
        let target = monoio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            loop {
                let (read, buf) = tcp.read(Vec::with_capacity(4096)).await;
                if read.expect("target read") == 0 {
                    break;
                }
                received.extend_from_slice(&buf);
            }
            tcp.write_all(b"answer after EOF".to_vec())
                .await
                .0
                .expect("late write");
            received
        });
        let mut control = Control::open(&relay.url).await;
        let url = relay.url.clone();
        let sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let serving = monoio::spawn(serve_accept(hc.clone(), control.next_accept().await));
        let sender = sender.await.expect("sender joined");
        let (read, mut write) = sender.stream.into_split();
        let mut reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &sender.leftover,
            4096,
        );
        let mut out = Vec::new();
        push_frame(&mut out, true, OpCode::Binary, b"question", mask()).expect("frame");
        push_close(&mut out, CloseCode::NORMAL, "Shutdown", mask()).expect("close");
        write.write_all(out).await.0.expect("send");

        assert_eq!(
            target.await,
            b"question",
            "the target saw EOF after the question"
        );
        assert_eq!(
            read_message(&mut reader).await,
            (DataKind::Binary, b"answer after EOF".to_vec())
        );
        match reader.next_event().await.expect("close") {
            WsEvent::Close { code, .. } => assert_eq!(code, Some(CloseCode::NORMAL)),
            other => panic!("expected close, got {other:?}"),
        }
        serving.await;
        let metrics = snapshot(&hc);
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_target"]), Some(8));
        assert_eq!(metrics.counter(&BYTES, &["sap", "to_relay"]), Some(16));
    });
}

/// Runs one stream whose `serve_accept` must reject; returns the sender's connect error.
async fn rejected_sender(url: &str, hc: &Hc) -> ConnectError {
    let mut control = Control::open(url).await;
    let url = url.to_owned();
    let sender = monoio::spawn(async move { connect_sender(&url, None).await });
    serve_accept(hc.clone(), control.next_accept().await).await;
    match sender.await {
        Ok(_) => panic!("the sender was accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_refused_target_fails_the_senders_upgrade_with_502() {
    let relay = relay();
    run(async move {
        let hc = context(loopback(closed_port()));
        match rejected_sender(&relay.url, &hc).await {
            ConnectError::Rejected {
                status,
                description,
            } => assert_eq!(
                (status, description.as_str()),
                (502, "TCP target refused the connection")
            ),
            other => panic!("unexpected {other}"),
        }
        let metrics = snapshot(&hc);
        assert_eq!(
            metrics.counter(&STREAMS_REJECTED, &["sap", "target_refused"]),
            Some(1)
        );
        assert_eq!(metrics.counter(&STREAMS_ACCEPTED, &["sap"]), None);
        assert_eq!(metrics.gauge(&STREAMS_IN_FLIGHT, &["sap"]), None);
    });
}

#[test]
fn no_configured_target_fails_the_senders_upgrade_with_501() {
    let relay = relay();
    run(async move {
        let hc = context(None);
        match rejected_sender(&relay.url, &hc).await {
            ConnectError::Rejected {
                status,
                description,
            } => assert_eq!(
                (status, description.as_str()),
                (501, "No TCP target configured")
            ),
            other => panic!("unexpected {other}"),
        }
        let metrics = snapshot(&hc);
        assert_eq!(
            metrics.counter(&STREAMS_REJECTED, &["sap", "no_target"]),
            Some(1)
        );
    });
}

#[test]
fn an_unresolvable_target_fails_the_senders_upgrade_with_502() {
    let relay = relay();
    run(async move {
        let hc = context(Some(TcpTarget {
            host: "no such host".to_owned(),
            port: 3300,
        }));
        match rejected_sender(&relay.url, &hc).await {
            ConnectError::Rejected {
                status,
                description,
            } => assert_eq!(
                (status, description.as_str()),
                (502, "TCP target address could not be resolved")
            ),
            other => panic!("unexpected {other}"),
        }
        let metrics = snapshot(&hc);
        assert_eq!(
            metrics.counter(&STREAMS_REJECTED, &["sap", "target_unresolvable"]),
            Some(1)
        );
    });
}

#[test]
fn a_used_rendezvous_address_is_counted_as_a_failed_rendezvous() {
    let relay = relay();
    run(async move {
        let hc = context(loopback(echo_target()));
        let mut control = Control::open(&relay.url).await;
        let url = relay.url.clone();
        let sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let accept = control.next_accept().await;
        // Someone else takes the single-use address first.
        let _taken = dialer()
            .connect(&accept.address, &[], None)
            .await
            .expect("rendezvous");
        let _sender = sender.await.expect("sender joined");
        serve_accept(hc.clone(), accept).await;
        let metrics = snapshot(&hc);
        assert_eq!(
            metrics.counter(&STREAMS_REJECTED, &["sap", "rendezvous_failed"]),
            Some(1)
        );
        assert_eq!(metrics.counter(&STREAMS_ACCEPTED, &["sap"]), None);
    });
}

#[test]
fn a_ping_from_the_sender_is_answered_through_the_stream() {
    let relay = Arc::new(relay());
    run(async move {
        let hc = context(loopback(echo_target()));
        let mut control = Control::open(&relay.url).await;
        let url = relay.url.clone();
        let sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let serving = monoio::spawn(serve_accept(hc.clone(), control.next_accept().await));
        let sender = sender.await.expect("sender joined");
        let (read, mut write) = sender.stream.into_split();
        let mut reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &sender.leftover,
            4096,
        );
        let mut ping = Vec::new();
        push_frame(&mut ping, true, OpCode::Ping, b"hello?", mask()).expect("ping");
        write.write_all(ping).await.0.expect("ping");
        match reader.next_event().await.expect("pong") {
            WsEvent::Pong(p) => assert_eq!(reader.bytes(p), b"hello?"),
            other => panic!("expected pong, got {other:?}"),
        }
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "", mask()).expect("close");
        write.write_all(close).await.0.expect("close");
        match reader.next_event().await.expect("close") {
            WsEvent::Close { code, .. } => assert_eq!(code, Some(CloseCode::NORMAL)),
            other => panic!("expected close, got {other:?}"),
        }
        serving.await;
    });
}

/// How long the injected resolver takes for `slow.test`.
const SLOW_LOOKUP: Duration = Duration::from_secs(3);

/// A resolver that takes [`SLOW_LOOKUP`] to answer `slow.test` with 127.0.0.1 (like a DNS
/// server that answers late) and reports each lookup as it begins.
fn slow_resolver() -> (Resolver, flume::Receiver<String>) {
    let (began, lookups) = flume::unbounded();
    let lookup = move |host: &str, port: u16| {
        let _ = began.send(host.to_owned());
        if host != "slow.test" {
            return Err(std::io::Error::other(format!(
                "unexpected lookup of {host}"
            )));
        }
        std::thread::sleep(SLOW_LOOKUP);
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
    };
    let resolver = Resolver::with_lookup(Arc::new(lookup), Duration::from_secs(30));
    (resolver, lookups)
}

/// A resolver that answers every name at once with `127.0.0.1`.
fn instant_resolver() -> Resolver {
    let lookup = |_: &str, port: u16| Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    Resolver::with_lookup(Arc::new(lookup), Duration::from_secs(30))
}

/// While one stream's host name takes seconds to resolve, a second stream on the same worker
/// opens and echoes at its usual speed; the first completes once its name resolves. A slow
/// `target` name (`slow_target`) or a slow rendezvous host name (the relay hands out
/// rendezvous addresses naming `slow.test` with `--rendezvous-host`, as Azure hands out gateway
/// names, and takes rendezvous only under that name) must not freeze the worker.
fn a_slow_lookup_leaves_the_worker_serving(slow_target: bool) {
    let relay = Arc::new(if slow_target {
        relay()
    } else {
        relay_with(&["--rendezvous-host", "slow.test"])
    });
    run(async move {
        let port = echo_target();
        let (resolver, lookups) = slow_resolver();
        let slow_host = if slow_target {
            "slow.test"
        } else {
            "127.0.0.1"
        };
        let slow = Rc::new(HcContext {
            dialer: hycod::io::ws_client::Dialer {
                resolver,
                ..dialer()
            },
            rendezvous: hycod::proto::hc::rendezvous_address::RendezvousPolicy::new(
                "ws://127.0.0.1",
                &["slow.test".to_owned()],
            ),
            ..Rc::into_inner(context(Some(TcpTarget {
                host: slow_host.to_owned(),
                port,
            })))
            .expect("sole owner")
        });
        // The unrelated stream resolves `slow.test` at once.
        let fast = Rc::new(HcContext {
            dialer: hycod::io::ws_client::Dialer {
                resolver: instant_resolver(),
                ..dialer()
            },
            rendezvous: hycod::proto::hc::rendezvous_address::RendezvousPolicy::new(
                "ws://127.0.0.1",
                &["slow.test".to_owned()],
            ),
            ..Rc::into_inner(context(loopback(port))).expect("sole owner")
        });
        let mut control = Control::open(&relay.url).await;

        let url = relay.url.clone();
        let slow_sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let accept = control.next_accept().await;
        let began = Instant::now();
        let slow_serving = monoio::spawn(serve_accept(slow.clone(), accept));
        assert_eq!(lookups.recv_async().await.expect("lookup"), "slow.test");

        let url = relay.url.clone();
        let fast_sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let accept = control.next_accept().await;
        let fast_serving = monoio::spawn(serve_accept(fast.clone(), accept));
        let payload = Rc::new(pattern(4096, 3));
        let expected = digest(&SHA256, &payload).as_ref().to_vec();
        let sender = fast_sender.await.expect("the unrelated stream opens");
        let (hash, len) = echo(sender, payload.clone()).await;
        let took = began.elapsed();
        assert_eq!((hash.as_slice(), len), (expected.as_slice(), 4096));
        assert!(
            took < SLOW_LOOKUP / 3,
            "the unrelated stream took {took:?} while a lookup took {SLOW_LOOKUP:?}"
        );
        fast_serving.await;

        let sender = slow_sender
            .await
            .expect("the slow stream opens once resolved");
        let (hash, len) = echo(sender, payload).await;
        assert_eq!((hash.as_slice(), len), (expected.as_slice(), 4096));
        assert!(began.elapsed() >= SLOW_LOOKUP);
        slow_serving.await;
        assert!(lookups.try_recv().is_err(), "one lookup only");
        assert_eq!(
            snapshot(&slow).counter(&STREAMS_ACCEPTED, &["sap"]),
            Some(1)
        );
    });
}

#[test]
fn a_slow_target_name_does_not_stall_other_streams_on_the_worker() {
    a_slow_lookup_leaves_the_worker_serving(true);
}

#[test]
fn a_slow_rendezvous_host_name_does_not_stall_other_streams_on_the_worker() {
    a_slow_lookup_leaves_the_worker_serving(false);
}

/// [`context`] with keep-alive pings every `interval` on its streams.
fn pinging(target: Option<TcpTarget>, interval: Duration) -> Hc {
    Rc::new(HcContext {
        stream_ping_interval: Some(interval),
        ..Rc::into_inner(context(target)).expect("sole owner")
    })
}

/// An idle stream is pinged once per interval of silence (through the relay, to the sender);
/// a sender that answers keeps it open, and it still carries data afterwards.
#[test]
fn an_idle_stream_is_pinged_at_the_interval_and_lives_on() {
    let relay = Arc::new(relay());
    run(async move {
        let interval = Duration::from_millis(400);
        let hc = pinging(loopback(echo_target()), interval);
        let mut control = Control::open(&relay.url).await;
        let url = relay.url.clone();
        let sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let serving = monoio::spawn(serve_accept(hc.clone(), control.next_accept().await));
        let sender = sender.await.expect("sender joined");
        let (read, mut write) = sender.stream.into_split();
        let mut reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &sender.leftover,
            4096,
        );
        let mut last = Instant::now();
        for round in 0..4 {
            let event = monoio::time::timeout(Duration::from_secs(3), reader.next_event())
                .await
                .unwrap_or_else(|_| panic!("no ping in round {round}"));
            let WsEvent::Ping(payload) = event.expect("event") else {
                panic!("round {round}: expected a ping");
            };
            let gap = last.elapsed();
            assert!(
                gap >= Duration::from_millis(300) && gap < Duration::from_millis(1500),
                "round {round}: ping after {gap:?} of silence at a {interval:?} interval"
            );
            let mut pong = Vec::new();
            push_frame(&mut pong, true, OpCode::Pong, reader.bytes(payload), mask()).expect("pong");
            write.write_all(pong).await.0.expect("pong");
            last = Instant::now();
        }
        let mut data = Vec::new();
        push_frame(&mut data, true, OpCode::Binary, b"still here", mask()).expect("frame");
        write.write_all(data).await.0.expect("data");
        let echoed = loop {
            match reader.next_event().await.expect("echo") {
                WsEvent::Data { payload, .. } => break reader.bytes(payload).to_vec(),
                WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                WsEvent::Close { code, .. } => panic!("closed with {code:?}"),
            }
        };
        assert_eq!(echoed, b"still here");
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "", mask()).expect("close");
        write.write_all(close).await.0.expect("close");
        serving.await;
    });
}

/// A target that reports how its one connection ended: `Ok(n)` bytes before a clean end of
/// stream, or the read error (a reset).
fn watching_target() -> (u16, std::sync::mpsc::Receiver<std::io::Result<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut total = 0;
        let mut buf = [0u8; 4096];
        let end = loop {
            match std::io::Read::read(&mut conn, &mut buf) {
                Ok(0) => break Ok(total),
                Ok(n) => total += n,
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(end);
    });
    (port, rx)
}

/// A sender that stops answering pings: after one unanswered interval the stream is closed
/// both ways — Close(1001) "keep-alive timeout" to the sender, a reset to the target.
#[test]
fn a_sender_that_stops_answering_pings_gets_1001_and_the_target_a_reset() {
    let relay = Arc::new(relay());
    let (port, ended) = watching_target();
    run(async move {
        let interval = Duration::from_millis(400);
        let hc = pinging(loopback(port), interval);
        let mut control = Control::open(&relay.url).await;
        let url = relay.url.clone();
        let sender = monoio::spawn(async move { connect_sender(&url, None).await });
        let serving = monoio::spawn(serve_accept(hc.clone(), control.next_accept().await));
        let sender = sender.await.expect("sender joined");
        let (read, _write) = sender.stream.into_split();
        let mut reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &sender.leftover,
            4096,
        );
        let started = Instant::now();
        let (code, reason) = loop {
            let event = monoio::time::timeout(Duration::from_secs(5), reader.next_event())
                .await
                .expect("the daemon closes the stream within 5 s");
            match event.expect("event") {
                WsEvent::Ping(_) => {}
                WsEvent::Close { code, reason } => break (code, reader.text(reason).to_owned()),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
        assert_eq!(reason, "keep-alive timeout");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        serving.await;
    });
    let end = ended
        .recv_timeout(Duration::from_secs(5))
        .expect("the target connection ended");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
}
