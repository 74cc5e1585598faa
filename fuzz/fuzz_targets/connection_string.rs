//! cargo-fuzz entry point; the check itself is [`hycod_fuzz::connection_string::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hycod_fuzz::connection_string::check(data));
