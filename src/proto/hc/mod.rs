//! Hybrid Connections protocol pieces shared by the relay and the listener daemon, sans-I/O:
//! the control-channel JSON messages (protocol §4), `sb-hc-*` query handling (protocol §2.3, §2.4),
//! relay paths and reject URLs (protocol §2.2, §5.2, §6.7, Appendix A) and header filtering
//! (protocol §6.6, §10.6).

pub mod backoff;
pub mod channel;
pub mod control_message;
pub mod headers;
pub mod identity;
pub(crate) mod json_headers;
pub(crate) mod json_text;
pub(crate) mod lenient_endpoint;
pub mod listener;
pub mod messages;
pub mod path;
pub mod query;
pub mod reader_oracle;
pub(crate) mod received_request;
pub mod reject;
pub mod rendezvous_address;
pub(crate) mod request_json;
pub(crate) mod request_scan;
pub(crate) mod request_target;
pub(crate) mod response_json;
pub(crate) mod response_scan;
pub(crate) mod response_view;
pub(crate) mod salvage;
