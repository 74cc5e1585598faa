//! cargo-fuzz entry point; the check itself is [`hycod_fuzz::sas_token::check`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hycod_fuzz::sas_token::check(data));
