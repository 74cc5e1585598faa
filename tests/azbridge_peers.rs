//! azbridge (Azure Relay Bridge) on the other end, through a real `hycod relay` and a real
//! `hycod run` on loopback. The tests write and expect the exact bytes azbridge v0.16.1
//! (commit 693a395) puts on the relayed stream:
//!
//! - `azbridge -L` (the sender), `TcpLocalForwardBridge.cs` lines 203–213: `[1, 0, 0, n]`
//!   and the `n`-byte port name, as two binary messages; lines 215–235: it waits for
//!   `[1, 0, 0]` and closes on anything else or on the end of the stream.
//! - `azbridge -T` (the listener), `RemoteForwardBridge.cs` lines 141–238: it reads that
//!   preamble, answers `[1, 0, mode]` to a port name it routes, `[0, 0, 0]` to another
//!   version, `[0, 0, 255]` to datagram mode for a TCP forwarder, and closes without an
//!   answer when no forwarder has the port name.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::processes::{
    config_text, eventually, token, DaemonProcess, RelayProcess, KEY, PATIENCE,
};
use common::{dialer, mask, read_message, run};
use hycod::io::stream::Stream;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{CloseCode, Limits, OpCode, Role};
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};

type Reader = WsReader<OwnedReadHalf<Stream>>;
type Writer = OwnedWriteHalf<Stream>;

/// A TCP target that first writes `name` and a newline, then echoes.
fn banner_target(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                if conn.write_all(format!("{name}\n").as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn connection_string(path: &str) -> String {
    format!(
        "Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}"
    )
}

/// A hybrid connection on `path` whose senders are azbridge, with `routes` (TOML lines).
fn azbridge_hybrid_connection(path: &str, relay_url: &str, routes: &str) -> String {
    format!(
        "\n[[hybrid_connection]]\nname = \"{path}\"\nconnection_string = \"{}\"\nrelay_url = \"{relay_url}\"\npeer = \"azbridge\"\nlisteners = 1\n{routes}\n",
        connection_string(path)
    )
}

/// A forward to `path` whose listener is azbridge, announcing `port_name`.
fn azbridge_forward(name: &str, path: &str, relay_url: &str, port_name: &str) -> String {
    format!(
        "\n[[forward]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{}\"\nrelay_url = \"{relay_url}\"\npeer = \"azbridge\"\nport_name = \"{port_name}\"\n",
        connection_string(path)
    )
}

async fn send_message(writer: &mut Writer, payload: &[u8]) {
    let mut frame = Vec::new();
    push_frame(&mut frame, true, OpCode::Binary, payload, mask()).expect("frame");
    writer.write_all(frame).await.0.expect("send");
}

fn split(conn: hycod::io::ws_client::ClientConn) -> (Reader, Writer) {
    let (read, write) = conn.stream.into_split();
    let reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        64 * 1024,
    );
    (reader, write)
}

/// What `azbridge -L` does for a local connection to port `port_name`: connect as a sender
/// and write the preamble as two messages (`TcpLocalForwardBridge.cs` lines 212–213).
async fn azbridge_sender(
    relay_url: &str,
    path: &str,
    header: [u8; 4],
    name: &[u8],
) -> (Reader, Writer) {
    let token = token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
    let conn = dialer()
        .connect(
            &format!("{relay_url}/$hc/{path}?sb-hc-action=connect&sb-hc-id=azbridge-test"),
            &[("ServiceBusAuthorization", token.expose())],
            None,
        )
        .await
        .expect("the relay accepts the sender");
    let (reader, mut writer) = split(conn);
    send_message(&mut writer, &header).await;
    send_message(&mut writer, name).await;
    (reader, writer)
}

/// The next event must be a normal close, with no data before it.
async fn expect_close_without_data(reader: &mut Reader) {
    loop {
        match reader.next_event().await.expect("an event") {
            WsEvent::Close { code, .. } => {
                assert_eq!(code, Some(CloseCode::NORMAL));
                return;
            }
            WsEvent::Ping(_) | WsEvent::Pong(_) => {}
            WsEvent::Data { payload, .. } => {
                panic!("data before the close: {:?}", reader.bytes(payload))
            }
        }
    }
}

/// Reads data messages until `len` bytes arrived.
async fn read_bytes(reader: &mut Reader, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        got.extend(read_message(reader).await.1);
    }
    got
}

/// Sends as `azbridge -L` for `port_name` and returns what the target behind it says first
/// (its banner) and its echo of a probe.
async fn routed_to(relay_url: &str, path: &str, port_name: &str) -> String {
    let len = u8::try_from(port_name.len()).expect("short name");
    let (mut reader, mut writer) =
        azbridge_sender(relay_url, path, [1, 0, 0, len], port_name.as_bytes()).await;
    assert_eq!(
        read_message(&mut reader).await.1,
        [1, 0, 0],
        "the 1.0 stream-mode answer"
    );
    send_message(&mut writer, b"probe").await;
    let mut got = Vec::new();
    while !got.ends_with(b"probe") {
        got.extend(read_message(&mut reader).await.1);
    }
    let text = String::from_utf8(got).expect("text");
    text.strip_suffix("probe")
        .expect("echo")
        .trim_end()
        .to_owned()
}

#[test]
fn azbridge_senders_are_routed_by_port_name_and_unknown_names_are_refused() {
    let relay = RelayProcess::start(&["bridge", "strict"]);
    let (gw, dp, fallback) = (
        banner_target("gw"),
        banner_target("dp"),
        banner_target("fallback"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = format!(
        "target = \"tcp://127.0.0.1:{fallback}\"\ntargets = {{ \"3300\" = \"tcp://127.0.0.1:{gw}\", \"3200\" = \"tcp://127.0.0.1:{dp}\" }}"
    );
    let strict = format!("targets = {{ \"3300\" = \"tcp://127.0.0.1:{gw}\" }}");
    let text = config_text(
        "5s",
        &[
            azbridge_hybrid_connection("bridge", &relay.url, &routes),
            azbridge_hybrid_connection("strict", &relay.url, &strict),
        ],
    );
    let daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    assert!(eventually(PATIENCE, || relay.listener_count("bridge") == 1
        && relay.listener_count("strict") == 1));
    run(async {
        assert_eq!(routed_to(&relay.url, "bridge", "3300").await, "gw");
        assert_eq!(routed_to(&relay.url, "bridge", "3200").await, "dp");
        assert_eq!(routed_to(&relay.url, "bridge", "sapmsg").await, "fallback");
        assert_eq!(routed_to(&relay.url, "strict", "3300").await, "gw");

        // No target for the name: no answer, a normal close (RemoteForwardBridge.cs 235–238).
        let (mut reader, _writer) =
            azbridge_sender(&relay.url, "strict", [1, 0, 0, 4], b"3200").await;
        expect_close_without_data(&mut reader).await;

        // Version 2.0: [0, 0, 0], then the close (RemoteForwardBridge.cs 188–195).
        let (mut reader, _writer) =
            azbridge_sender(&relay.url, "bridge", [2, 0, 0, 4], b"3300").await;
        assert_eq!(read_message(&mut reader).await.1, [0, 0, 0]);
        expect_close_without_data(&mut reader).await;

        // Datagram mode for a TCP target: [0, 0, 255] (RemoteForwardBridge.cs 220–226).
        let (mut reader, _writer) =
            azbridge_sender(&relay.url, "bridge", [1, 0, 1, 4], b"3300").await;
        assert_eq!(read_message(&mut reader).await.1, [0, 0, 255]);
        expect_close_without_data(&mut reader).await;
    });
    let rejected = |hc: &str, reason: &str| {
        daemon.metric_with(
            "hycod_streams_rejected_total",
            &[("hybrid_connection", hc), ("reason", reason)],
        )
    };
    assert_eq!(rejected("strict", "unknown_port_name"), Some(1.0));
    assert_eq!(rejected("bridge", "unsupported_preamble"), Some(2.0));
    assert_eq!(
        daemon.metric_with(
            "hycod_streams_accepted_total",
            &[("hybrid_connection", "bridge")]
        ),
        Some(3.0)
    );
}

/// Registers as a listener on `path` (what `azbridge -T` does); the control channel.
async fn azbridge_listener(relay_url: &str, path: &str) -> (Reader, Writer) {
    let token = token(&hycod::auth::sas::dotnet_resource_uri("localhost", path));
    let conn = dialer()
        .connect(
            &format!("{relay_url}/$hc/{path}?sb-hc-action=listen"),
            &[("ServiceBusAuthorization", token.expose())],
            None,
        )
        .await
        .expect("listener registered");
    split(conn)
}

/// Takes the next `accept` on `control` and opens its rendezvous.
async fn accept_stream(control: &mut Reader) -> (Reader, Writer) {
    let (_, text) = read_message(control).await;
    let message: serde_json::Value = serde_json::from_slice(&text).expect("json");
    let address = message["accept"]["address"].as_str().expect("an accept");
    split(
        dialer()
            .connect(address, &[], None)
            .await
            .expect("rendezvous"),
    )
}

/// Connects to the forward at `addr`, sends `probe`, half-closes, and returns everything that
/// comes back until the forward closes.
fn through_forward(addr: SocketAddr, probe: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).expect("connect to the forward");
        tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
        tcp.write_all(probe).expect("probe");
        let mut got = Vec::new();
        let _ = tcp.read_to_end(&mut got);
        got
    })
}

#[test]
fn forwards_speak_to_azbridge_listeners_and_report_their_refusal() {
    let relay = RelayProcess::start(&["tunnel", "bridge"]);
    let dp = banner_target("dp");
    let dir = tempfile::tempdir().expect("tempdir");
    let routes = format!("targets = {{ \"3200\" = \"tcp://127.0.0.1:{dp}\" }}");
    let text = config_text(
        "5s",
        &[
            azbridge_forward("to-azbridge", "tunnel", &relay.url, "3300"),
            azbridge_forward("to-hycod", "bridge", &relay.url, "3200"),
            azbridge_hybrid_connection("bridge", &relay.url, &routes),
        ],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    let to_azbridge = daemon.wait_forward_listening("to-azbridge");
    let to_hycod = daemon.wait_forward_listening("to-hycod");
    assert!(eventually(PATIENCE, || relay.listener_count("bridge") == 1));

    // hycod forward → hycod run, both with peer = "azbridge": port name 3200 reaches "dp".
    let mut tcp = TcpStream::connect(to_hycod).expect("connect to the forward");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    tcp.write_all(b"hello").expect("probe");
    let mut got = [0u8; 8];
    tcp.read_exact(&mut got).expect("banner and echo");
    assert_eq!(&got, b"dp\nhello");
    drop(tcp);

    run(async {
        let (mut control, _control_writer) = azbridge_listener(&relay.url, "tunnel").await;

        // Accepted: the preamble arrives as TcpLocalForwardBridge.cs writes it.
        let client = through_forward(to_azbridge, b"ping");
        let (mut stream, mut writer) = accept_stream(&mut control).await;
        let preamble = read_bytes(&mut stream, 8).await;
        assert_eq!(preamble, [1, 0, 0, 4, b'3', b'3', b'0', b'0']);
        send_message(&mut writer, &[1, 0, 0]).await;
        assert_eq!(read_bytes(&mut stream, 4).await, b"ping");
        send_message(&mut writer, b"pong").await;
        let mut close = Vec::new();
        hycod::proto::ws::encode::push_close(&mut close, CloseCode::NORMAL, "", mask())
            .expect("close");
        writer.write_all(close).await.0.expect("close");
        assert_eq!(client.join().expect("client"), b"pong");

        // Refused with [0, 0, 0]: the local connection closes without data.
        let client = through_forward(to_azbridge, b"ping");
        let (mut stream, mut writer) = accept_stream(&mut control).await;
        assert_eq!(read_bytes(&mut stream, 8).await.len(), 8);
        send_message(&mut writer, &[0, 0, 0]).await;
        assert_eq!(client.join().expect("client"), b"");

        // No answer, only a close: likewise.
        let client = through_forward(to_azbridge, b"ping");
        let (mut stream, mut writer) = accept_stream(&mut control).await;
        assert_eq!(read_bytes(&mut stream, 8).await.len(), 8);
        let mut close = Vec::new();
        hycod::proto::ws::encode::push_close(&mut close, CloseCode::NORMAL, "", mask())
            .expect("close");
        writer.write_all(close).await.0.expect("close");
        assert_eq!(client.join().expect("client"), b"");
    });
    let refusal = daemon.wait_log("the version refusal", |l| {
        l["message"] == "connection not forwarded: the azbridge listener refused it"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("version 1.0"))
    });
    assert_eq!(refusal["port_name"], "3300");
    daemon.wait_log("the silent refusal", |l| {
        l["message"] == "connection not forwarded: the azbridge listener refused it"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("without acknowledging"))
    });
    let connections = |result: &str| {
        daemon.metric_with(
            "hycod_forward_connections_total",
            &[("forward", "to-azbridge"), ("result", result)],
        )
    };
    assert_eq!(connections("forwarded"), Some(1.0));
    assert_eq!(connections("refused"), Some(2.0));
}
