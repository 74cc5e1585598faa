//! cargo-fuzz entry point; the check itself is [`hycod_fuzz::control_json::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hycod_fuzz::control_json::check(data));
