//! Service messages the daemon cannot read are still answered, never silently dropped: the
//! sender waiting behind them gets an error at once instead of a timeout.
//!
//! - an `accept` whose `address` can be read is rejected through it with 502 (protocol §5.2);
//! - a `request` whose `id` can be read is answered 502 where it came: on the control channel
//!   (protocol §4.5; through the request's `address` once the channel is detaching,
//!   [`refuse`]), or on its request rendezvous, which is then closed with 1000 as after any
//!   response (§6.3); so is a control-channel `request` whose body message is over 64 KiB or
//!   never comes (another text message arrives first);
//! - anything else (not JSON, no usable address or id, an unknown command) is logged.
//!
//! Every such message counts once in `hycod_unusable_messages_total{command}`, also one over
//! 64 KiB that failed its channel unread (its command read from its first bytes).

use super::context::{ControlWriter, Hc, HcContext};
use super::hc_series::Counter;
use super::http::reply::refuse;
use super::overload::refusal;
use super::stream::{reject, Refusal};
use crate::daemon::metrics::UNUSABLE_MESSAGES;
use crate::daemon::tracker::Tracker;
use crate::logging::Escaped;
use crate::proto::hc::control_message::{ACCEPT, REQUEST};
use crate::proto::hc::json_headers::JsonHeaders;
use crate::proto::hc::messages::{Accept, Response};
use crate::proto::hc::received_request::ReceivedRequest;
use crate::proto::hc::salvage::{salvage, Salvaged};

/// The status an unreadable message is answered with: the relay, the daemon's gateway, sent
/// something invalid.
const UNREADABLE_STATUS: u16 = 502;

/// The `command` label of messages that name neither `accept` nor `request`.
const OTHER: &str = "other";

/// Answers (where it can) and counts one text message that was not a usable command;
/// `problem` says why, for the log.
pub(crate) fn answer(
    hc: &Hc,
    text: &[u8],
    problem: &dyn std::fmt::Display,
    writer: &ControlWriter,
    work: &Tracker,
) {
    let salvaged = salvage(text);
    let command = salvaged.as_ref().map_or(OTHER, |s| s.command);
    hc.count_labelled(&UNUSABLE_MESSAGES, &[command], 1);
    match salvaged {
        Some(Salvaged {
            command: ACCEPT,
            address: Some(address),
            id,
        }) => {
            tracing::warn!(hybrid_connection = %hc.name, problem = %Escaped(problem),
                "unreadable accept: rejecting the stream with 502");
            let accept = Accept {
                address,
                id: id.unwrap_or_default(),
                connect_headers: JsonHeaders::new(),
                remote_endpoint: None,
            };
            let hc = hc.clone();
            monoio::spawn(work.track(async move {
                reject(&hc, &accept, &Refusal::Unreadable).await;
            }));
        }
        Some(Salvaged {
            command: REQUEST,
            id: Some(id),
            address,
        }) => answer_502(hc, id, address.as_deref(), problem, writer, work),
        _ => tracing::warn!(hybrid_connection = %hc.name, command, problem = %Escaped(problem),
            "unusable control message ignored: it names no address or id to answer"),
    }
}

/// Answers 502 to the request `id` ([`refuse`]: on the control channel, or through `address`
/// once the channel is detaching), and counts the answer.
fn answer_502(
    hc: &Hc,
    id: String,
    address: Option<&str>,
    problem: &dyn std::fmt::Display,
    writer: &ControlWriter,
    work: &Tracker,
) {
    let phrase = crate::proto::http1::reason_phrase(UNREADABLE_STATUS);
    let sent = refuse(
        hc,
        writer,
        address,
        &refusal(id, UNREADABLE_STATUS, phrase),
        work,
    );
    hc.count(Counter::Answered(UNREADABLE_STATUS), 1);
    tracing::warn!(hybrid_connection = %hc.name, problem = %Escaped(problem), sent,
        "unusable request: answered 502");
}

/// Answers 502 (when it has an `id`) and counts a `request` from the control channel that was
/// read but cannot be served: its body message broke the channel's rules (over 64 KiB, or
/// another text message came instead of it). `problem` says why, for the log.
pub(crate) fn refuse_request(
    hc: &Hc,
    request: ReceivedRequest,
    problem: &dyn std::fmt::Display,
    writer: &ControlWriter,
    work: &Tracker,
) {
    hc.count_labelled(&UNUSABLE_MESSAGES, &[REQUEST], 1);
    match request.id() {
        Some(id) => answer_502(hc, id.to_owned(), request.address(), problem, writer, work),
        None => tracing::warn!(hybrid_connection = %hc.name, problem = %Escaped(problem),
            "unusable request ignored: it names no id to answer"),
    }
}

/// Counts one message that came on a request rendezvous and is not a usable `request`, and
/// returns the 502 answer to send there when it is a `request` whose `id` can be read (counted
/// as answered); `None`: nothing to answer with, the rendezvous is closed with 1002.
pub(crate) fn answer_on_rendezvous(
    hc: &HcContext,
    text: &[u8],
    problem: &dyn std::fmt::Display,
) -> Option<Response> {
    let salvaged = salvage(text);
    let command = salvaged.as_ref().map_or(OTHER, |s| s.command);
    hc.count_labelled(&UNUSABLE_MESSAGES, &[command], 1);
    let Some(id) = salvaged.filter(|s| s.command == REQUEST).and_then(|s| s.id) else {
        tracing::warn!(hybrid_connection = %hc.name, command, problem = %Escaped(problem),
            "unusable message on a request rendezvous: closing it");
        return None;
    };
    tracing::warn!(hybrid_connection = %hc.name, problem = %Escaped(problem),
        "unreadable request on a rendezvous: answered 502");
    hc.count(Counter::Answered(UNREADABLE_STATUS), 1);
    let phrase = crate::proto::http1::reason_phrase(UNREADABLE_STATUS);
    Some(refusal(id, UNREADABLE_STATUS, phrase))
}

/// Counts a control message (on the control channel or a request rendezvous) that failed its
/// channel for being over 64 KiB: it is never parsed, so it cannot be answered. `command` is
/// what its first bytes name ([`crate::proto::hc::channel::Inbound::oversized_command`]).
pub(crate) fn count_oversized(hc: &HcContext, command: Option<&'static str>) {
    hc.count_labelled(&UNUSABLE_MESSAGES, &[command.unwrap_or(OTHER)], 1);
}
