//! Helpers the integration tests share: an in-process relay, tokens, a client dialer, a
//! monoio runtime and whole-message reads; `processes` runs `hycod` binaries, upstreams and
//! systemd's notify socket; `checked*` send and verify checked data, `steady_load` keeps it
//! flowing and `procstat` reads a process's RSS and descriptors; `fleet` runs several daemons
//! on the same hybrid connections; `squid` runs a real
//! authenticating proxy, `pki` makes a test CA with relay certificates and `chromium` loads
//! pages in headless Chromium. Each test binary uses a different subset.
#![allow(dead_code)]

pub(crate) mod checked;
pub(crate) mod checked_senders;
pub(crate) mod checked_targets;
pub(crate) mod chromium;
pub(crate) mod fault_proxy;
pub(crate) mod fleet;
pub(crate) mod logged_relay;
pub(crate) mod pki;
pub(crate) mod processes;
pub(crate) mod procstat;
pub(crate) mod relay_traffic;
pub(crate) mod scripted_relay;
pub(crate) mod squid;
pub(crate) mod steady_load;
pub(crate) mod strict_relay;

use std::time::{Duration, SystemTime};

use hycod::auth::sas::{dotnet_resource_uri, sign_token};
use hycod::io::ws_client::Dialer;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::ws::{DataKind, Limits, Role};
use hycod::relay::config::RelayArgs;
use hycod::secret::Secret;
use hycod::tls::{client_config, TrustRoots};
use monoio::io::{AsyncReadRent, Splitable};

pub(crate) use strict_relay::STRICT_RELAY;

/// The namespace rule `root`'s key in every test relay.
pub(crate) const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";

/// Starts an in-process relay on `127.0.0.1:0` with these `hycod relay` flags.
pub(crate) fn relay(flags: &[&str]) -> hycod::relay::RelayHandle {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RelayArgs,
    }
    let mut argv = vec!["relay", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(flags);
    let config = Cli::parse_from(argv)
        .args
        .into_config()
        .expect("relay flags");
    hycod::relay::start(config).expect("relay starts")
}

/// A token for `path` on `localhost`, signed by `rule` with `key`, valid for an hour.
pub(crate) fn token_for(rule: &str, key: &str, path: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    sign_token(
        &dotnet_resource_uri("localhost", path),
        rule,
        &Secret::new(key),
        expiry,
    )
    .expose()
    .to_owned()
}

/// A client dialer trusting the webpki roots, 5 s connect timeout.
pub(crate) fn dialer() -> Dialer {
    Dialer {
        tls: client_config(&TrustRoots::WebPki).expect("tls"),
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        resolver: Default::default(),
    }
}

/// Runs a future on a fresh monoio runtime.
pub(crate) fn run<F: std::future::Future>(f: F) -> F::Output {
    hycod::runtime::workers::block_on(f).expect("runtime")
}

/// A fresh client masking key.
pub(crate) fn mask() -> Option<[u8; 4]> {
    Some(fastrand::u32(..).to_ne_bytes())
}

/// Reads one whole data message; pings and pongs are skipped, a close fails the test.
pub(crate) async fn read_message<R: AsyncReadRent>(
    reader: &mut WsReader<R>,
) -> (DataKind, Vec<u8>) {
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

/// The reading half of a client WebSocket, framed.
pub(crate) type Reader = WsReader<monoio::io::OwnedReadHalf<hycod::io::stream::Stream>>;
/// The writing half of a client WebSocket.
pub(crate) type Writer = monoio::io::OwnedWriteHalf<hycod::io::stream::Stream>;

/// Opens the rendezvous a relayed request's notice names (protocol §6.3) and reads the full
/// `request` from it; the rendezvous halves and that request.
pub(crate) async fn open_rendezvous(
    notice: &hycod::proto::hc::messages::Request,
) -> (Reader, Writer, hycod::proto::hc::messages::Request) {
    use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
    let address = notice.address.clone().expect("address");
    let rdv = dialer()
        .connect(&address, &[], None)
        .await
        .expect("rendezvous");
    let (read, write) = rdv.stream.into_split();
    let mut reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &rdv.leftover,
        64 * 1024,
    );
    let (_, text) = read_message(&mut reader).await;
    let ControlMessage::Request(full) = parse_control_message(&text).expect("json") else {
        panic!("expected the full request on the rendezvous");
    };
    (reader, write, full)
}

/// Registers a listener on `hyco`; returns its control-channel halves.
pub(crate) async fn listen(url: &str, token: &str) -> (Reader, Writer) {
    let conn = dialer()
        .connect(
            &format!("{url}/$hc/hyco?sb-hc-action=listen"),
            &[("ServiceBusAuthorization", token)],
            None,
        )
        .await
        .expect("listener registered");
    let (read, write) = conn.stream.into_split();
    (
        WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &conn.leftover,
            64 * 1024,
        ),
        write,
    )
}
