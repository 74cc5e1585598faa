//! The bodies of hycod's fuzz targets, one module per target, each with `pub fn check(data)`.
//!
//! Every `check` panics only when hycod breaks a rule (a panic inside hycod, or a failed
//! oracle: a differential mismatch, a payload outside its buffer, a secret in an error text).
//! The `fuzz_targets/*.rs` binaries hand libFuzzer's input to these functions; the main
//! crate's `tests/fuzz_checks.rs` includes this file and runs every `check` over seeded random
//! inputs in `cargo test`, so CI exercises the same code on stable without libFuzzer
//! (docs/reliability.md).

pub mod config;
pub mod connection_string;
pub mod control_json;
pub mod http_head;
pub mod mask_differential;
pub mod message_readers;
pub mod pieces;
pub mod sas_token;
pub mod secrets;
pub mod ws_decoder;
pub mod ws_handshake;

/// A target's check: panics when hycod breaks a rule on `data`.
pub type Check = fn(&[u8]);

/// Every target by name, for drivers that run them all.
pub const TARGETS: [(&str, Check); 9] = [
    ("ws_decoder", ws_decoder::check),
    ("ws_handshake", ws_handshake::check),
    ("http_head", http_head::check),
    ("control_json", control_json::check),
    ("connection_string", connection_string::check),
    ("config", config::check),
    ("sas_token", sas_token::check),
    ("mask_differential", mask_differential::check),
    ("message_readers", message_readers::check),
];
