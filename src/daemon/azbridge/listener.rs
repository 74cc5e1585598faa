//! The listener side of azbridge's preamble (`azbridge -L` senders): read the port name,
//! route it, answer as `azbridge -T` does (`RemoteForwardBridge.cs` lines 141–238).

use std::time::Instant;

use monoio::io::AsyncWriteRentExt;

use super::{close, read_prefix, write_message};
use crate::config::TcpTarget;
use crate::daemon::listener::context::{Hc, HcContext};
use crate::daemon::listener::hc_series::Histogram;
use crate::daemon::listener::stream::{
    connect_tcp, join, offered_subprotocol, reject, Refusal, Target,
};
use crate::daemon::metrics::STREAMS_REJECTED;
use crate::io::stream::Stream;
use crate::io::ws_client::ConnectError;
use crate::logging::Escaped;
use crate::proto::azbridge::{
    parse_preamble, preamble_len, Preamble, ACCEPTED, DATAGRAM_TO_STREAM, MODE_DATAGRAM,
    UNSUPPORTED_VERSION,
};
use crate::proto::hc::messages::Accept;
use crate::proto::ws::{CloseCode, Encoder, Role};

/// `reason` label: the port name maps to no target.
pub(crate) const UNKNOWN_PORT_NAME: &str = "unknown_port_name";
/// `reason` label: the stream did not start with a preamble this listener serves.
pub(crate) const UNSUPPORTED_PREAMBLE: &str = "unsupported_preamble";

/// The target for `port_name`: its entry in `targets`, else `target`.
pub(crate) fn route<'a>(hc: &'a HcContext, port_name: &str) -> Option<&'a TcpTarget> {
    hc.port_targets
        .as_ref()
        .and_then(|targets| targets.get(port_name))
        .or(hc.target.as_ref())
}

/// Serves one `accept` on a hybrid connection whose senders are azbridge.
pub(crate) async fn serve_accept(hc: Hc, accept: Accept) {
    let started = Instant::now();
    let _admitted = match hc.admission.streams.try_enter() {
        Ok(permit) => permit,
        Err(exceeded) => return reject(&hc, &accept, &Refusal::OverLimit(exceeded)).await,
    };
    let subprotocol = offered_subprotocol(&accept.connect_headers);
    let rendezvous = monoio::time::timeout(
        hc.limits.handshake_timeout,
        hc.dialer.connect(&accept.address, &[], subprotocol),
    )
    .await
    .unwrap_or(Err(ConnectError::Timeout));
    let mut rendezvous = match rendezvous {
        Ok(conn) => conn,
        Err(error) => {
            hc.count_labelled(&STREAMS_REJECTED, &["rendezvous_failed"], 1);
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), %error,
                "stream dropped: the rendezvous could not be opened");
            return;
        }
    };
    hc.observe(Histogram::Rendezvous, started.elapsed());
    let relay = &mut rendezvous.stream;
    // What the daemon sends on the rendezvous before the pump takes it over.
    let mut encoder = Encoder::new(Role::Client);
    let prefix = match read_prefix(
        relay,
        &rendezvous.leftover,
        preamble_len,
        hc.limits.handshake_timeout,
    )
    .await
    {
        Ok(prefix) => prefix,
        Err(error) => {
            refuse(
                &hc,
                &accept,
                relay,
                &mut encoder,
                UNSUPPORTED_PREAMBLE,
                None,
            )
            .await;
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), %error,
                "stream refused: no azbridge preamble");
            return;
        }
    };
    let port_name = match parse_preamble(&prefix.collected.bytes) {
        Preamble::UnsupportedVersion(version) => {
            refuse(
                &hc,
                &accept,
                relay,
                &mut encoder,
                UNSUPPORTED_PREAMBLE,
                Some(UNSUPPORTED_VERSION),
            )
            .await;
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), ?version,
                "stream refused: azbridge preamble version is not 1.0");
            return;
        }
        Preamble::V1 {
            mode: MODE_DATAGRAM,
            port_name,
        } => {
            refuse(
                &hc,
                &accept,
                relay,
                &mut encoder,
                UNSUPPORTED_PREAMBLE,
                Some(DATAGRAM_TO_STREAM),
            )
            .await;
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), port_name = %Escaped(&port_name),
                "stream refused: azbridge datagram (UDP) mode is not served");
            return;
        }
        Preamble::V1 { port_name, .. } => port_name,
    };
    let Some(target) = route(&hc, &port_name) else {
        refuse(&hc, &accept, relay, &mut encoder, UNKNOWN_PORT_NAME, None).await;
        tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), port_name = %Escaped(&port_name),
            "stream refused: the azbridge port name maps to no target");
        return;
    };
    let connected = match connect_tcp(&hc, target).await.and_then(Target::new) {
        Ok(connected) => connected,
        Err(refusal) => {
            hc.count_labelled(&STREAMS_REJECTED, &[refusal.reason()], 1);
            close(
                relay,
                &mut encoder,
                CloseCode::NORMAL,
                refusal.description(),
            )
            .await;
            tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), port_name = %Escaped(&port_name), %target,
                reason = %refusal, "stream refused: its target failed");
            return;
        }
    };
    let Target { mut stream, handle } = connected;
    if let Err(error) = send_start(&mut stream, relay, &mut encoder, prefix.rest()).await {
        hc.count_labelled(&STREAMS_REJECTED, &["rendezvous_failed"], 1);
        tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), %error,
            "stream dropped: the azbridge answer could not be sent");
        return;
    }
    let label = format!("{target} (port name {port_name})");
    join(
        &hc,
        &accept.id,
        Target { stream, handle },
        rendezvous.stream,
        prefix.leftover(),
        &label,
    )
    .await;
}

/// Writes the payload that came with the preamble to the target, then `[1, 0, 0]` to the
/// sender.
async fn send_start(
    target: &mut Stream,
    relay: &mut Stream,
    encoder: &mut Encoder,
    rest: &[u8],
) -> std::io::Result<()> {
    if !rest.is_empty() {
        target.write_all(rest.to_vec()).await.0?;
    }
    write_message(relay, encoder, &ACCEPTED).await
}

/// Counts a refusal labelled `reason`, sends `answer` when azbridge gives one for it, and
/// closes the stream normally, as azbridge's listener does (`RemoteForwardBridge.cs` lines
/// 190–194, 220–226, 235–238).
async fn refuse(
    hc: &HcContext,
    accept: &Accept,
    relay: &mut Stream,
    encoder: &mut Encoder,
    reason: &'static str,
    answer: Option<[u8; 3]>,
) {
    hc.count_labelled(&STREAMS_REJECTED, &[reason], 1);
    if let Some(answer) = answer {
        if let Err(error) = write_message(relay, encoder, &answer).await {
            tracing::debug!(hybrid_connection = %hc.name, id = %Escaped(&accept.id), %error,
                "the azbridge refusal could not be sent");
        }
    }
    let text = match reason {
        UNKNOWN_PORT_NAME => "port name not configured",
        _ => "unsupported azbridge preamble",
    };
    close(relay, encoder, CloseCode::NORMAL, text).await;
}
