//! Service messages the daemon cannot read are still answered, never silently dropped: the
//! sender waiting behind them gets an error at once instead of a timeout.
//!
//! - an `accept` whose `address` can be read is rejected through it with 502 (protocol §5.2);
//! - a `request` whose `id` can be read is answered 502 on the control channel (protocol §4.5);
//! - anything else (not JSON, no usable address or id, an unknown command) is logged.
//!
//! Every such message counts once in `hycod_unusable_messages_total{command}`.

use super::context::{ControlWriter, Hc};
use super::drain::refusal_json;
use super::hc_series::Counter;
use super::stream::{reject, Refusal};
use crate::daemon::metrics::UNUSABLE_MESSAGES;
use crate::daemon::tracker::Tracker;
use crate::logging::Escaped;
use crate::proto::hc::control_message::{ACCEPT, REQUEST};
use crate::proto::hc::json_headers::JsonHeaders;
use crate::proto::hc::messages::Accept;
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
            ..
        }) => {
            let phrase = crate::proto::http1::reason_phrase(UNREADABLE_STATUS);
            let sent = writer.send_text(refusal_json(id, UNREADABLE_STATUS, phrase).as_bytes());
            hc.count(Counter::Answered(UNREADABLE_STATUS), 1);
            tracing::warn!(hybrid_connection = %hc.name, problem = %Escaped(problem), sent,
                "unreadable request: answered 502");
        }
        _ => tracing::warn!(hybrid_connection = %hc.name, command, problem = %Escaped(problem),
            "unusable control message ignored: it names no address or id to answer"),
    }
}
