//! `hycod relay --self-signed NAME` without the SDKs (docs/emulator.md): the relay makes a CA and
//! a certificate for NAME, prints the CA file after its listening line, serves `wss://` with it,
//! names NAME in the rendezvous addresses it hands out and accepts tokens for NAME; a client
//! trusting only that CA file completes a relayed stream. A second start reuses the same CA.

use std::path::Path;
use std::time::Duration;

use hycod::io::ws_client::Dialer;
use hycod::io::ws_reader::WsReader;
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{DataKind, Limits, OpCode, Role};
use hycod::tls::{client_config, TrustRoots};
use monoio::io::{AsyncWriteRentExt, Splitable};

mod common;

use common::logged_relay::LoggedRelay;
use common::{mask, read_message, run, token_for, KEY};

/// `localhost` resolves to the loopback address the relay listens on, with no hosts entry.
const NAME: &str = "localhost";

fn start(dir: &Path) -> (LoggedRelay, String) {
    let state = dir.join("state");
    let key = format!("root={KEY}");
    let relay = LoggedRelay::start(&[
        "--listen",
        "127.0.0.1:0",
        "--hybrid-connection",
        "hyco",
        "--rule",
        &key,
        "--self-signed",
        NAME,
        "--state-dir",
        state.to_str().expect("utf-8"),
    ]);
    let expected = state.join("self-signed/localhost/ca.pem");
    let ca = std::fs::read_to_string(&expected).expect("the CA file");
    let line = relay.wait_line("the log line naming the CA file", |l| {
        l.contains("self-signed certificate")
    });
    assert!(
        line.contains(&format!("ca_file={}", expected.display())),
        "{line}"
    );
    (relay, ca)
}

fn dialer(ca_file: &Path) -> Dialer {
    Dialer {
        tls: client_config(&TrustRoots::CaFile(ca_file.to_path_buf())).expect("tls"),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        resolver: Default::default(),
    }
}

#[test]
fn a_client_trusting_only_the_printed_ca_completes_a_stream_through_the_named_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, ca) = start(dir.path());
    assert!(relay.url.starts_with("wss://127.0.0.1:"), "{}", relay.url);
    let port = relay.url.rsplit(':').next().expect("port").to_owned();
    let base = format!("wss://{NAME}:{port}");
    let ca_file = dir.path().join("state/self-signed/localhost/ca.pem");
    let dialer = dialer(&ca_file);
    run(async move {
        let token = token_for("root", KEY, "hyco");
        let listen = format!("{base}/$hc/hyco?sb-hc-action=listen");
        let control = dialer
            .connect(&listen, &[("ServiceBusAuthorization", &token)], None)
            .await
            .expect("the listener connects over TLS with the CA file");
        let (read, _control_write) = control.stream.into_split();
        let mut control = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &control.leftover,
            64 * 1024,
        );
        let connect = format!("{base}/$hc/hyco?sb-hc-action=connect");
        let sender_dialer = dialer.clone();
        let sender = monoio::spawn(async move {
            sender_dialer
                .connect(&connect, &[("ServiceBusAuthorization", &token)], None)
                .await
        });
        let (_, text) = read_message(&mut control).await;
        let ControlMessage::Accept(accept) = parse_control_message(&text).expect("accept") else {
            panic!("expected accept: {}", String::from_utf8_lossy(&text));
        };
        assert!(
            accept.address.starts_with(&format!("wss://{NAME}:")),
            "the rendezvous address names the certificate's host: {}",
            accept.address
        );
        let rendezvous = dialer
            .connect(&accept.address, &[], None)
            .await
            .expect("the rendezvous passes the TLS name check");
        let sender = sender.await.expect("the sender is through");
        let (_, mut sender_write) = sender.stream.into_split();
        let mut frame = Vec::new();
        push_frame(&mut frame, true, OpCode::Binary, b"named", mask()).expect("frame");
        sender_write.write_all(frame).await.0.expect("send");
        let (read, _rendezvous_write) = rendezvous.stream.into_split();
        let mut listener = WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &rendezvous.leftover,
            64 * 1024,
        );
        assert_eq!(
            read_message(&mut listener).await,
            (DataKind::Binary, b"named".to_vec())
        );
    });
    drop(relay);
    let (_again, ca_again) = start(dir.path());
    assert_eq!(ca_again, ca, "a second start reuses the CA clients trust");
}

#[test]
fn a_client_with_the_public_roots_refuses_the_self_signed_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (relay, _) = start(dir.path());
    let port = relay.url.rsplit(':').next().expect("port").to_owned();
    run(async move {
        let listen = format!("wss://{NAME}:{port}/$hc/hyco?sb-hc-action=listen");
        let error = common::dialer()
            .connect(&listen, &[], None)
            .await
            .err()
            .expect("refused");
        let text = error.to_string();
        assert!(text.contains("unknown issuer"), "{text}");
    });
}
