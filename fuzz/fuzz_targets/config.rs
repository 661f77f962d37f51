#![no_main]
//! `cargo +nightly fuzz run config`: see `roomcast::fuzz::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast::fuzz::config(data));
