//! The relay's core paths over real sockets, driven by hycod's own client code: listener
//! registration, sender connect → accept → rendezvous → echo, rejection, relayed HTTP.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hycod::auth::sas::{dotnet_resource_uri, sign_token};
use hycod::io::ws_client::{ConnectError, Dialer};
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::ws::encode::{push_close, push_frame};
use hycod::proto::ws::{CloseCode, DataKind, Limits, OpCode, Role};
use hycod::secret::Secret;
use hycod::tls::{client_config, TrustRoots};
use monoio::io::{AsyncWriteRentExt, Splitable};

mod common;

use common::{dialer, listen, mask, open_rendezvous, read_message, run, KEY};

fn relay(extra: &[&str]) -> hycod::relay::RelayHandle {
    let mut flags = vec![
        "--workers",
        "2",
        "--rule",
        "root=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=",
        "--rule",
        "sendonly=c2VuZG9ubHk=:send",
        "--hybrid-connection",
        "hyco",
    ];
    flags.extend_from_slice(extra);
    common::relay(&flags)
}

fn token(rule: &str, key: &str, path: &str) -> String {
    common::token_for(rule, key, path)
}

/// Connects expecting a refusal; returns its status and description.
async fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match dialer().connect(url, headers, None).await {
        Err(ConnectError::Rejected {
            status,
            description,
        }) => (status, description),
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|_| ()).map_err(|e| e.to_string())
        ),
    }
}

/// Sends one raw HTTP request and returns the status, the head and the body (Content-Length or
/// chunked) of the answer.
async fn http(addr: std::net::SocketAddr, request: impl AsRef<[u8]>) -> (u16, String, Vec<u8>) {
    use hycod::io::read_buf::ReadBuf;
    use hycod::proto::http1::{
        parse_response_head, response_body_kind, BodyDecoder, Limits as HeadLimits,
    };
    let mut tcp = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    tcp.write_all(request.as_ref().to_vec())
        .await
        .0
        .expect("send");
    let mut buf = ReadBuf::new(1 << 20, 0);
    let head = loop {
        if let Some((head, used)) =
            parse_response_head(buf.data(), &HeadLimits::default()).expect("head")
        {
            buf.consume(used);
            break head;
        }
        assert!(
            buf.fill(&mut tcp).await.expect("read") > 0,
            "closed before the head"
        );
    };
    let mut decoder = BodyDecoder::new(response_body_kind("GET", &head).expect("framing"));
    let mut body = Vec::new();
    while !decoder.is_done() {
        if !buf.is_empty() {
            let d = decoder.decode(buf.data()).expect("body");
            if let Some(p) = d.payload {
                body.extend_from_slice(p);
            }
            let used = d.consumed;
            buf.consume(used);
            if used > 0 {
                continue;
            }
        }
        if buf.fill(&mut tcp).await.expect("read") == 0 {
            decoder.finish().expect("complete body");
        }
    }
    (head.status, format!("{head:?}"), body)
}

#[test]
fn listen_with_a_wrong_key_is_refused_with_401() {
    let relay = relay(&[]);
    run(async move {
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        let bad = token("root", "d3Jvbmc=", "hyco");
        let (status, description) = refused(&url, &[("ServiceBusAuthorization", &bad)]).await;
        assert_eq!(status, 401);
        assert!(description.contains("invalid signature"), "{description}");
        let send_only = token("sendonly", "c2VuZG9ubHk=", "hyco");
        assert_eq!(
            refused(&url, &[("ServiceBusAuthorization", &send_only)])
                .await
                .0,
            403
        );
    });
}

#[test]
fn connect_without_a_listener_is_404() {
    let relay = relay(&[]);
    run(async move {
        let url = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
        let t = token("root", KEY, "hyco");
        let (status, description) = refused(&url, &[("ServiceBusAuthorization", &t)]).await;
        assert_eq!(status, 404);
        assert!(
            description.starts_with("There are no listeners connected"),
            "{description}"
        );
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
        let mut control_reader = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &control.leftover,
            64 * 1024,
        );

        let connect = format!(
            "{}/$hc/hyco/sap?client=42&sb-hc-action=connect&sb-hc-id=S1",
            relay.url
        );
        let t2 = t.clone();
        let sender = monoio::spawn(async move {
            dialer()
                .connect(
                    &connect,
                    &[("ServiceBusAuthorization", &t2), ("X-Tenant", "blue")],
                    Some("proto1"),
                )
                .await
        });
        let (kind, text) = read_message(&mut control_reader).await;
        assert_eq!(kind, DataKind::Text);
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("json") else {
            panic!("expected accept");
        };
        assert!(accept.id.starts_with("S1_G"), "{}", accept.id);
        assert!(
            accept
                .address
                .contains("/$hc/hyco/sap?client=42&sb-hc-action=accept"),
            "{}",
            accept.address
        );
        assert_eq!(accept.connect_headers.get("X-Tenant"), Some("blue"));
        assert!(accept
            .connect_headers
            .get("ServiceBusAuthorization")
            .is_none());
        assert!(accept.connect_headers.get("Sec-WebSocket-Key").is_some());

        let rendezvous = dialer()
            .connect(&accept.address, &[], Some("proto1"))
            .await
            .expect("rendezvous accepted");
        assert_eq!(rendezvous.response.subprotocol.as_deref(), Some("proto1"));
        let sender = sender.await.expect("sender joined");
        assert_eq!(sender.response.subprotocol.as_deref(), Some("proto1"));

        let (s_read, mut s_write) = sender.stream.into_split();
        let mut s_reader = WsReader::new(
            s_read,
            Role::Client,
            Limits::default(),
            &sender.leftover,
            64 * 1024,
        );
        let (l_read, mut l_write) = rendezvous.stream.into_split();
        let mut l_reader = WsReader::new(
            l_read,
            Role::Client,
            Limits::default(),
            &rendezvous.leftover,
            64 * 1024,
        );

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

#[test]
fn a_rejecting_listener_gets_410_and_the_sender_its_status() {
    let relay = relay(&[]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let (mut control, _keep) = listen(&relay.url, &t).await;
        let connect = format!("{}/$hc/hyco?sb-hc-action=connect", relay.url);
        let t2 = t.clone();
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t2)], None)
                .await
        });
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("json") else {
            panic!("expected accept");
        };
        let reject = hycod::proto::hc::reject::reject_url(&accept.address, 401, "Nope, not you")
            .expect("reject url");
        assert_eq!(refused(&reject, &[]).await.0, 410);
        match sender.await {
            Err(ConnectError::Rejected {
                status,
                description,
            }) => {
                assert_eq!((status, description.as_str()), (401, "Nope, not you"));
            }
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
        // The address is single-use.
        assert_eq!(refused(&accept.address, &[]).await.0, 403);
    });
}

#[test]
fn the_26th_listener_exceeds_the_quota() {
    let relay = relay(&[]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let mut held = Vec::new();
        for _ in 0..25 {
            held.push(listen(&relay.url, &t).await);
        }
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        let (status, description) = refused(&url, &[("ServiceBusAuthorization", &t)]).await;
        assert_eq!(status, 403);
        assert!(
            description.contains("MaximumListenersPerEndpoint"),
            "{description}"
        );
    });
}

#[test]
fn an_unrenewed_token_closes_the_channel_with_1008_and_a_renewed_one_does_not() {
    let relay = relay(&[]);
    run(async move {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let resource = dotnet_resource_uri("localhost", "hyco");
        let short = sign_token(&resource, "root", &Secret::new(KEY), now + 2);
        let (mut expiring, _w1) = listen(&relay.url, short.expose()).await;
        let (mut renewed, mut w2) = listen(&relay.url, short.expose()).await;
        let long = sign_token(&resource, "root", &Secret::new(KEY), now + 3600);
        let renew = format!("{{\"renewToken\":{{\"token\":\"{}\"}}}}", long.expose());
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Text, renew.as_bytes(), mask()).expect("frame");
        w2.write_all(frame).await.0.expect("renew");

        let closed = monoio::time::timeout(Duration::from_secs(10), expiring.next_event()).await;
        match closed {
            Ok(Ok(WsEvent::Close { code, .. })) => {
                assert_eq!(code, Some(CloseCode::POLICY_VIOLATION))
            }
            other => panic!("expected close 1008, got {other:?}"),
        }
        // Past the first token's expiry the renewed channel still answers pings.
        let mut ping = Vec::new();
        push_frame(&mut ping, true, OpCode::Ping, b"alive", mask()).expect("ping");
        w2.write_all(ping).await.0.expect("ping");
        match renewed.next_event().await.expect("pong") {
            WsEvent::Pong(p) => assert_eq!(renewed.bytes(p), b"alive"),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn garbage_json_from_a_listener_is_ignored_and_the_channel_stays_up() {
    let relay = relay(&[]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let (mut reader, mut write) = listen(&relay.url, &t).await;
        let mut out = Vec::new();
        push_frame(&mut out, true, OpCode::Text, b"{not json", mask()).expect("frame");
        push_frame(
            &mut out,
            true,
            OpCode::Text,
            b"{\"injectFault\":{}}",
            mask(),
        )
        .expect("frame");
        push_frame(&mut out, true, OpCode::Ping, b"p", mask()).expect("ping");
        write.write_all(out).await.0.expect("send");
        match reader.next_event().await.expect("pong") {
            WsEvent::Pong(p) => assert_eq!(reader.bytes(p), b"p"),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn malformed_and_oversized_requests_get_400_and_431() {
    let relay = relay(&[]);
    run(async move {
        let no_key = b"GET /$hc/hyco?sb-hc-action=listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(http(relay.local_addr, no_key).await.0, 400);
        let mut huge = b"GET /hyco HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 40 * 1024));
        huge.extend_from_slice(b"\r\n\r\n");
        assert_eq!(http(relay.local_addr, &huge).await.0, 431);
        let t = token("root", KEY, "hyco");
        let bad_action = format!(
            "GET /$hc/hyco?sb-hc-action=dance HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nServiceBusAuthorization: {t}\r\n\r\n"
        );
        assert_eq!(http(relay.local_addr, bad_action.as_bytes()).await.0, 400);
    });
}

#[test]
fn relayed_http_without_listener_unknown_path_and_deadline() {
    let relay = relay(&["--http-deadline", "1s"]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let get = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: {t}\r\n\r\n")
                .into_bytes()
        };
        let (status, _, body) = http(relay.local_addr, &get("/hyco/x")).await;
        assert_eq!(status, 502);
        assert!(String::from_utf8_lossy(&body).contains("NoListener"));
        assert_eq!(http(relay.local_addr, &get("/other/x")).await.0, 404);
        let unauthenticated = b"GET /hyco/x HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(http(relay.local_addr, unauthenticated).await.0, 401);

        let (mut control, _keep) = listen(&relay.url, &t).await;
        let waiting = monoio::spawn(http(relay.local_addr, get("/hyco/slow?a=1&sb-hc-id=x")));
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Request(request) = parse_control_message(&text).expect("json") else {
            panic!("expected request");
        };
        assert_eq!(request.request_target.as_deref(), Some("/hyco/slow?a=1"));
        assert_eq!(request.method.as_deref(), Some("GET"));
        assert_eq!(request.body, Some(false));
        let (status, _, body) = waiting.await;
        assert_eq!(status, 504);
        assert!(String::from_utf8_lossy(&body).contains("GatewayTimeout"));
    });
}

#[test]
fn relayed_http_small_on_the_control_channel_and_large_through_a_rendezvous() {
    let relay = relay(&[]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let (mut control, mut control_write) = listen(&relay.url, &t).await;
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        for size in [10usize, 300_000] {
            let mut request = format!(
                "POST /hyco/orders?top=5 HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: {t}\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: {size}\r\n\r\n"
            )
            .into_bytes();
            request.extend_from_slice(&body[..size]);
            let sender = monoio::spawn(http(relay.local_addr, request));
            let (_, text) = read_message(&mut control).await;
            let ControlMessage::Request(notice) = parse_control_message(&text).expect("json")
            else {
                panic!("expected request");
            };
            let (request, received, mut reply) = if size <= 64 * 1024 {
                let (_, received) = read_message(&mut control).await;
                (notice, received, None)
            } else {
                assert!(notice.is_rendezvous_notice());
                let (mut reader, write, full) = open_rendezvous(&notice).await;
                let (_, received) = read_message(&mut reader).await;
                (full, received, Some(write))
            };
            assert_eq!(
                request.request_target.as_deref(),
                Some("/hyco/orders?top=5")
            );
            let headers = request.request_headers.clone().expect("headers");
            assert_eq!(headers.get("X-Multi"), Some("a, b"));
            assert!(headers.get("ServiceBusAuthorization").is_none());
            assert!(
                received == body[..size],
                "request body of {size} bytes corrupted"
            );
            let response = format!(
                "{{\"response\":{{\"requestId\":\"{}\",\"statusCode\":\"201\",\"statusDescription\":\"Made it\",\"responseHeaders\":{{\"X-Echo\":\"yes\"}},\"body\":true}}}}",
                request.id.expect("id")
            );
            let mut frames = Vec::new();
            push_frame(&mut frames, true, OpCode::Text, response.as_bytes(), mask())
                .expect("frame");
            let half = received.len() / 2;
            push_frame(
                &mut frames,
                false,
                OpCode::Binary,
                &received[..half],
                mask(),
            )
            .expect("frame");
            push_frame(
                &mut frames,
                true,
                OpCode::Continuation,
                &received[half..],
                mask(),
            )
            .expect("frame");
            match reply.as_mut() {
                Some(w) => w.write_all(frames).await.0.expect("respond"),
                None => control_write.write_all(frames).await.0.expect("respond"),
            };
            let (status, head, echoed) = sender.await;
            assert_eq!(status, 201);
            assert!(
                head.contains("Made it") && head.contains("X-Echo") && head.contains("Via"),
                "{head}"
            );
            assert!(
                echoed == body[..size],
                "response body of {size} bytes corrupted"
            );
        }
    });
}

#[test]
fn tls_relay_is_reachable_with_its_ca_and_refused_without() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    let relay = relay(&[
        "--tls-cert",
        cert_path.to_str().expect("utf8"),
        "--tls-key",
        key_path.to_str().expect("utf8"),
    ]);
    assert!(relay.url.starts_with("wss://127.0.0.1:"), "{}", relay.url);
    run(async move {
        let t = token("root", KEY, "hyco");
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        match dialer()
            .connect(&url, &[("ServiceBusAuthorization", &t)], None)
            .await
        {
            Err(ConnectError::Certificate { problem, .. }) => {
                assert!(problem.starts_with("unknown issuer"), "{problem}");
            }
            other => panic!(
                "expected a certificate error, got {:?}",
                other.map(|_| ()).map_err(|e| e.to_string())
            ),
        }
        let trusting = Dialer {
            tls: client_config(&TrustRoots::CaFile(cert_path.clone())).expect("ca"),
            ..dialer()
        };
        trusting
            .connect(&url, &[("ServiceBusAuthorization", &t)], None)
            .await
            .expect("listener over wss");
    });
}

#[test]
fn admin_status_lists_online_listeners() {
    let relay = relay(&["--admin", "127.0.0.1:0"]);
    let admin = relay.admin_addr.expect("admin enabled");
    run(async move {
        let t = token("root", KEY, "hyco");
        let _listener = listen(&relay.url, &t).await;
        let (status, _, body) = http(admin, b"GET /$status HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(status, 200);
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let hc = &doc["hybrid_connections"][0];
        assert_eq!(hc["path"], "hyco");
        assert_eq!(hc["listener_count"], 1);
        assert!(hc["listeners"][0]["connected_at"].as_u64().expect("time") > 1_700_000_000);
        assert_eq!(
            http(admin, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .0,
            404
        );
    });
}

#[test]
fn entity_rules_and_host_aliases_authorise_listeners() {
    let relay = relay(&[
        "--entity-rule",
        "hyco:hcrule=aGNydWxl:listen",
        "--alias",
        "relay.test",
    ]);
    run(async move {
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        let entity_token = token("hcrule", "aGNydWxl", "hyco");
        dialer()
            .connect(&url, &[("ServiceBusAuthorization", &entity_token)], None)
            .await
            .expect("an entity-level Listen rule admits a listener");
        let expiry = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 600;
        let alias_token = sign_token("http://relay.test/hyco/", "root", &Secret::new(KEY), expiry);
        dialer()
            .connect(
                &url,
                &[("ServiceBusAuthorization", alias_token.expose())],
                None,
            )
            .await
            .expect("a token for an alias host is accepted");
        let foreign = sign_token(
            "http://elsewhere.test/hyco/",
            "root",
            &Secret::new(KEY),
            expiry,
        );
        let (status, description) =
            refused(&url, &[("ServiceBusAuthorization", foreign.expose())]).await;
        assert_eq!(status, 401);
        assert!(description.contains("InvalidAudience"), "{description}");
    });
}

#[test]
fn a_listener_response_header_with_crlf_gives_the_sender_502() {
    let relay = relay(&[]);
    run(async move {
        let t = token("root", KEY, "hyco");
        let (mut control, mut write) = listen(&relay.url, &t).await;
        let get =
            format!("GET /hyco/x HTTP/1.1\r\nHost: x\r\nServiceBusAuthorization: {t}\r\n\r\n");
        let sender = monoio::spawn(http(relay.local_addr, get));
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Request(request) = parse_control_message(&text).expect("json") else {
            panic!("expected request");
        };
        let response = format!(
            "{{\"response\":{{\"requestId\":\"{}\",\"statusCode\":200,\"responseHeaders\":{{\"X-Bad\":\"a\\r\\nInjected: 1\"}},\"body\":false}}}}",
            request.id.expect("id")
        );
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Text, response.as_bytes(), mask()).expect("frame");
        write.write_all(frame).await.0.expect("respond");
        let (status, head, _) = sender.await;
        assert_eq!(status, 502);
        assert!(!head.contains("Injected"), "{head}");
    });
}
