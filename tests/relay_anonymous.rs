//! Anonymous senders (docs/relay.md "Anonymous senders"): a hybrid connection configured with
//! `requires_client_authorization = false` in the relay's file takes WebSocket connects and HTTP
//! requests without a token, and hands an `Authorization` header to the listener; its listeners
//! still need a Listen token, and every other hybrid connection still refuses senders without a
//! token, with the same statuses as before.

use std::os::unix::fs::PermissionsExt;

use hycod::io::stream::Stream;
use hycod::io::ws_client::ConnectError;
use hycod::io::ws_reader::WsReader;
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{DataKind, Limits, OpCode, Role};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};

mod common;

use common::{dialer, mask, read_message, run, token_for, KEY};

type Reader = WsReader<OwnedReadHalf<Stream>>;
type Writer = OwnedWriteHalf<Stream>;

/// A relay from a file serving `open` (anonymous senders) and `closed` (the default), with the
/// namespace rule `root` (every right) and `sender` (Send only).
fn relay(dir: &std::path::Path) -> hycod::relay::RelayHandle {
    for (name, key) in [("root.key", KEY), ("sender.key", SEND_KEY)] {
        let path = dir.join(name);
        std::fs::write(&path, key).expect("key written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        r#"workers = 1
[[hybrid_connection]]
name = "open"
requires_client_authorization = false
[[hybrid_connection]]
name = "closed"
[[rule]]
name = "root"
key_file = "root.key"
[[rule]]
name = "sender"
key_file = "sender.key"
rights = ["send"]
"#,
    )
    .expect("config written");
    common::relay(&["--config", file.to_str().expect("utf-8")])
}

const SEND_KEY: &str = "U2VuZE9ubHlLZXlPZlRoZUFub255bW91c1Rlc3RzIQ==";

/// Opens a WebSocket to `url`, with `token` in `ServiceBusAuthorization` when given.
async fn open(url: &str, token: Option<&str>) -> Result<(Reader, Writer), ConnectError> {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("ServiceBusAuthorization", t)])
        .unwrap_or_default();
    let conn = dialer().connect(url, &headers, None).await?;
    let (read, write) = conn.stream.into_split();
    let reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * 1024,
    );
    Ok((reader, write))
}

/// The status and description `url` is refused with.
async fn refusal(url: &str, token: Option<&str>) -> (u16, String) {
    match open(url, token).await {
        Err(ConnectError::Rejected {
            status,
            description,
        }) => (status, description),
        Err(e) => panic!("{url}: expected a refusal, got {e}"),
        Ok(_) => panic!("{url}: expected a refusal, the connection was accepted"),
    }
}

async fn next_control(control: &mut Reader) -> ControlMessage {
    let (_, text) = read_message(control).await;
    parse_control_message(&text).expect("control message")
}

/// Sends `request` on a fresh connection that the relay closes after its answer; the answer.
async fn http(addr: std::net::SocketAddr, request: String) -> String {
    let mut tcp = monoio::net::TcpStream::connect(addr)
        .await
        .expect("connect");
    tcp.write_all(request.into_bytes()).await.0.expect("send");
    let mut answer = Vec::new();
    loop {
        let (n, buf) = tcp.read(vec![0u8; 4096]).await;
        match n.expect("read") {
            0 => break,
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str, extra_headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra_headers}\r\n")
}

#[test]
fn a_sender_without_a_token_streams_through_an_anonymous_hybrid_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay(dir.path());
    run(async move {
        let (mut control, _keep) = open(
            &format!("{}/$hc/open?sb-hc-action=listen", relay.url),
            Some(&token_for("root", KEY, "open")),
        )
        .await
        .expect("listener registered");
        let connect = format!("{}/$hc/open?sb-hc-action=connect", relay.url);
        let sender = monoio::spawn(async move { open(&connect, None).await });
        let ControlMessage::Accept(accept) = next_control(&mut control).await else {
            panic!("expected accept");
        };
        let (mut listener_read, _listener_write) =
            open(&accept.address, None).await.expect("rendezvous");
        let (_sender_read, mut sender_write) = sender.await.expect("the sender is through");
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Binary, b"anonymous", mask()).expect("frame");
        sender_write.write_all(frame).await.0.expect("send");
        assert_eq!(
            read_message(&mut listener_read).await,
            (DataKind::Binary, b"anonymous".to_vec())
        );
    });
}

#[test]
fn an_anonymous_http_sender_reaches_the_listener_with_its_authorization_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay(dir.path());
    run(async move {
        let (mut control, mut write) = open(
            &format!("{}/$hc/open?sb-hc-action=listen", relay.url),
            Some(&token_for("root", KEY, "open")),
        )
        .await
        .expect("listener registered");
        let request = get("/open/x?a=1", "Authorization: Bearer for-the-listener\r\n");
        let sender = monoio::spawn(http(relay.local_addr, request));
        let ControlMessage::Request(request) = next_control(&mut control).await else {
            panic!("expected request");
        };
        assert_eq!(request.request_target.as_deref(), Some("/open/x?a=1"));
        let headers = format!("{:?}", request.request_headers.expect("headers"));
        assert!(
            headers.contains("Bearer for-the-listener"),
            "the listener's own Authorization is forwarded: {headers}"
        );
        let json = format!(
            "{{\"response\":{{\"requestId\":\"{}\",\"statusCode\":204,\"body\":false}}}}",
            request.id.expect("id")
        );
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Text, json.as_bytes(), mask()).expect("frame");
        write.write_all(frame).await.0.expect("respond");
        let answer = sender.await;
        assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    });
}

#[test]
fn hybrid_connections_that_require_authorization_still_refuse_senders_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay(dir.path());
    run(async move {
        let (status, description) = refusal(
            &format!("{}/$hc/closed?sb-hc-action=connect", relay.url),
            None,
        )
        .await;
        assert_eq!(status, 401, "{description}");
        assert!(
            description.starts_with(
                "TokenMissingOrInvalid: no ServiceBusAuthorization header and no sb-hc-token"
            ),
            "{description}"
        );
        let answer = http(relay.local_addr, get("/closed/x", "")).await;
        assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
        assert!(answer.contains("TokenMissingOrInvalid"), "{answer}");
        // An `Authorization` header there is the relay's token, and it is checked.
        let answer = http(
            relay.local_addr,
            get("/closed/x", "Authorization: Bearer for-the-listener\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
        // The anonymous hybrid connection without a listener gets past the token check.
        let (status, description) = refusal(
            &format!("{}/$hc/open?sb-hc-action=connect", relay.url),
            None,
        )
        .await;
        assert_eq!(status, 404, "{description}");
        assert!(
            description.starts_with("There are no listeners connected for the endpoint."),
            "{description}"
        );
        let answer = http(relay.local_addr, get("/open/x", "")).await;
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    });
}

#[test]
fn listeners_of_an_anonymous_hybrid_connection_still_need_a_listen_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay(dir.path());
    run(async move {
        let listen = format!("{}/$hc/open?sb-hc-action=listen", relay.url);
        let (status, description) = refusal(&listen, None).await;
        assert_eq!(status, 401, "{description}");
        assert!(
            description.starts_with(
                "TokenMissingOrInvalid: no ServiceBusAuthorization header and no sb-hc-token"
            ),
            "{description}"
        );
        let send_only = token_for("sender", SEND_KEY, "open");
        let (status, description) = refusal(&listen, Some(&send_only)).await;
        assert_eq!(status, 403, "{description}");
        assert!(
            description.starts_with("Unauthorized access. 'Listen' claim(s) are required"),
            "{description}"
        );
    });
}
