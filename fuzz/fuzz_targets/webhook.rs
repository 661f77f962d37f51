#![no_main]
//! `cargo +nightly fuzz run webhook`: see `roomcast::fuzz::webhook`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast::fuzz::webhook(data));
