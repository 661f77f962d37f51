#![no_main]
//! `cargo +nightly fuzz run frames`: see `roomcast::fuzz::frames`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast::fuzz::frames(data));
