//! The relay's core paths over real sockets, driven by hycod's own client code: listener
//! registration, sender connect → accept → rendezvous → echo, rejection, relayed HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hycod::auth::sas::{dotnet_resource_uri, sign_token};
use hycod::io::ws_client::{ConnectError, Dialer};
use hycod::io::ws_frames::{push_close, push_frame};
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};
use hycod::relay::config::{RelayArgs, RelayConfig};
use hycod::secret::Secret;
use hycod::tls::{client_config, TrustRoots};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};

const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";

fn relay(extra: &[&str]) -> hycod::relay::RelayHandle {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RelayArgs,
    }
    let mut argv = vec![
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--rule",
        "root=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=",
        "--rule",
        "sendonly=c2VuZG9ubHk=:send",
        "--hybrid-connection",
        "hyco",
    ];
    argv.extend_from_slice(extra);
    let config: RelayConfig = Cli::parse_from(argv).args.into_config().expect("config");
    hycod::relay::start(config).expect("relay starts")
}

fn token(rule: &str, key: &str, path: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    sign_token(&dotnet_resource_uri("localhost", path), rule, &Secret::new(key), expiry)
        .expose()
        .to_owned()
}

fn dialer() -> Dialer {
    Dialer {
        tls: client_config(&TrustRoots::WebPki).expect("tls"),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    hycod::runtime::workers::block_on(f).expect("runtime")
}

fn mask() -> Option<[u8; 4]> {
    Some([0x12, 0x34, 0x56, 0x78])
}

/// Reads one whole data message as a client.
async fn read_message<R: AsyncReadRent>(reader: &mut WsReader<R>) -> (DataKind, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        match reader.next_event().await.expect("event") {
            WsEvent::Data {
                kind,
                payload,
                message_end,
                ..
            } => {
                out.extend_from_slice(reader.bytes(payload));
                if message_end {
                    return (kind, out);
                }
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Close { code, .. } => panic!("unexpected close {code:?}"),
        }
    }
}

#[test]
fn listen_with_a_wrong_key_is_refused_with_401() {
    let relay = relay(&[]);
    run(async move {
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        let bad = token("root", "d3Jvbmc=", "hyco");
        match dialer().connect(&url, &[("ServiceBusAuthorization", &bad)], None).await {
            Err(ConnectError::Rejected { status, description }) => {
                assert_eq!(status, 401);
                assert!(description.contains("invalid signature"), "{description}");
            }
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
        let send_only = token("sendonly", "c2VuZG9ubHk=", "hyco");
        match dialer().connect(&url, &[("ServiceBusAuthorization", &send_only)], None).await {
            Err(ConnectError::Rejected { status, .. }) => assert_eq!(status, 403),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn connect_without_a_listener_is_404() {
    let relay = relay(&[]);
    run(async move {
        let url = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
        let t = token("root", KEY, "hyco");
        match dialer().connect(&url, &[("ServiceBusAuthorization", &t)], None).await {
            Err(ConnectError::Rejected { status, description }) => {
                assert_eq!(status, 404);
                assert!(description.starts_with("There are no listeners connected"), "{description}");
            }
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    });
}

#[test]
fn a_sender_stream_is_accepted_and_echoed_through_the_rendezvous() {
    let relay = Arc::new(relay(&[]));
    run(async move {
        let t = token("root", KEY, "hyco");
        let listen = format!("{}/$hc/hyco?sb-hc-action=listen&sb-hc-id=L1", relay.url);
        let control = dialer()
            .connect(&listen, &[("ServiceBusAuthorization", &t)], None)
            .await
            .expect("listener registered");
        let (read, _write) = control.stream.into_split();
        let mut control_reader =
            WsReader::new(read, Role::Client, Limits::default(), &control.leftover, 64 * 1024);

        let connect = format!("{}/$hc/hyco/sap?client=42&sb-hc-action=connect&sb-hc-id=S1", relay.url);
        let t2 = t.clone();
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t2), ("X-Tenant", "blue")], Some("proto1"))
                .await
        });
        let (kind, text) = read_message(&mut control_reader).await;
        assert_eq!(kind, DataKind::Text);
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("json") else {
            panic!("expected accept");
        };
        assert!(accept.id.starts_with("S1_G"), "{}", accept.id);
        assert!(accept.address.contains("/$hc/hyco/sap?client=42&sb-hc-action=accept"), "{}", accept.address);
        assert_eq!(accept.connect_headers.get("X-Tenant"), Some("blue"));
        assert!(accept.connect_headers.get("ServiceBusAuthorization").is_none());
        assert!(accept.connect_headers.get("Sec-WebSocket-Key").is_some());

        let rendezvous = dialer()
            .connect(&accept.address, &[], Some("proto1"))
            .await
            .expect("rendezvous accepted");
        assert_eq!(rendezvous.response.subprotocol.as_deref(), Some("proto1"));
        let sender = sender.await.expect("sender joined");
        assert_eq!(sender.response.subprotocol.as_deref(), Some("proto1"));

        let (s_read, mut s_write) = sender.stream.into_split();
        let mut s_reader = WsReader::new(s_read, Role::Client, Limits::default(), &sender.leftover, 64 * 1024);
        let (l_read, mut l_write) = rendezvous.stream.into_split();
        let mut l_reader = WsReader::new(l_read, Role::Client, Limits::default(), &rendezvous.leftover, 64 * 1024);

        for size in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let mut frame = Vec::new();
            push_frame(&mut frame, true, OpCode::Binary, &payload, mask()).expect("frame");
            s_write.write_all(frame).await.0.expect("send");
            let (kind, got) = read_message(&mut l_reader).await;
            assert_eq!((kind, got.len()), (DataKind::Binary, size));
            assert!(got == payload, "payload of {size} bytes corrupted");
            let mut back = Vec::new();
            push_frame(&mut back, true, OpCode::Binary, &got, mask()).expect("frame");
            l_write.write_all(back).await.0.expect("echo");
            let (_, echoed) = read_message(&mut s_reader).await;
            assert!(echoed == payload, "echo of {size} bytes corrupted");
        }

        // Half-close: the sender closes, the listener still sends, then closes too.
        let mut close = Vec::new();
        push_close(&mut close, CloseCode::NORMAL, "bye", mask()).expect("close");
        s_write.write_all(close).await.0.expect("close");
        match l_reader.next_event().await.expect("close forwarded") {
            WsEvent::Close { code, reason } => {
                assert_eq!(code, Some(CloseCode::NORMAL));
                assert_eq!(l_reader.text(reason), "bye");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut late = Vec::new();
        push_frame(&mut late, true, OpCode::Text, b"still flowing", mask()).expect("frame");
        push_close(&mut late, CloseCode::NORMAL, "", mask()).expect("close");
        l_write.write_all(late).await.0.expect("late data");
        assert_eq!(read_message(&mut s_reader).await.1, b"still flowing");
        match s_reader.next_event().await.expect("close") {
            WsEvent::Close { code, .. } => assert_eq!(code, Some(CloseCode::NORMAL)),
            other => panic!("unexpected {other:?}"),
        }
    });
}
