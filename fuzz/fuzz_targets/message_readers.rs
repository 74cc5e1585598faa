//! cargo-fuzz entry point; the check itself is [`hycod_fuzz::message_readers::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hycod_fuzz::message_readers::check(data));
