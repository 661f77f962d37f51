#![no_main]
//! `cargo +nightly fuzz run event_json`: see `roomcast::fuzz::event_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast::fuzz::event_json(data));
