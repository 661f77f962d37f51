#![no_main]
//! `cargo +nightly fuzz run templates`: see `roomcast::fuzz::templates`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast::fuzz::templates(data));
