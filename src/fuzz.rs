//! Entry points for fuzzing: each feeds arbitrary bytes to one decoder the
//! way the running bot does, and must return — an error is fine, a panic,
//! a hang or unbounded memory is a bug. The cargo-fuzz targets in `fuzz/`
//! call these, and so does the stable smoke test (`tests/it/fuzz.rs`),
//! which runs each over its seed corpus and mutations of it on every CI
//! run. README "Fuzzing" says how to run them for longer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use crate::lark::frame::Frame;
use crate::lark::reassembly::{Push, Reassembler};
use crate::lark::received::Received;
use crate::lark::webhook::{self, Secrets, SignatureHeaders};
use crate::locale::Locale;
use crate::render::Templates;
use crate::render::view::ViewModel;
use prost::bytes::Bytes;

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` have them.
pub const TARGETS: [&str; 5] = ["event_json", "frames", "webhook", "config", "templates"];

/// Run one target by name (the smoke test's dispatcher).
pub fn run(target: &str, data: &[u8]) {
    match target {
        "event_json" => event_json(data),
        "frames" => frames(data),
        "webhook" => webhook(data),
        "config" => config(data),
        "templates" => templates(data),
        _ => {}
    }
}

/// An event body as the long connection or the webhook delivers it.
pub fn event_json(data: &[u8]) {
    let _ = crate::decode::decode_limited(data, 200);
}

/// A stream of frames, each prefixed by its length (one byte, then that
/// many bytes), decoded and reassembled as the client does, with small
/// limits so that hostile `sum`/`seq` headers are exercised; complete
/// payloads are decoded as events.
pub fn frames(data: &[u8]) {
    let mut r = Reassembler::new(4096, 8, Duration::from_secs(5));
    let now = tokio::time::Instant::now();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        // The client's in-place reading must agree with prost's.
        let frame = match (
            Frame::from_bytes(chunk),
            Received::parse(Bytes::copy_from_slice(chunk)),
        ) {
            (Ok(p), Ok(frame)) => {
                assert_eq!(frame.to_frame(), p, "the two readings of a frame differ");
                assert_eq!(frame.ack_bytes(200, 1), p.ack_bytes(200, 1));
                frame
            }
            (Err(_), Err(_)) => continue,
            (p, o) => panic!("one reading of a frame refused it: prost {p:?}, in place {o:?}"),
        };
        let id = frame.header("message_id").unwrap_or("m").to_string();
        if let Push::Complete(_, payload) = r.push(&id, frame, now) {
            event_json(&payload);
        }
    }
}

/// A webhook push: the first byte picks the secrets (none, token, Encrypt
/// Key, both), the rest is split at NUL bytes into the body and the
/// signature headers.
pub fn webhook(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let secret = |on: bool, v: &str| on.then(|| SecretString::from(v.to_string()));
    let secrets = Secrets {
        verification_token: secret(mode & 1 != 0, "tok"),
        encrypt_key: secret(mode & 2 != 0, "fuzz-encrypt-key"),
        max_age: Duration::ZERO,
    };
    let mut parts = rest.split(|b| *b == 0);
    let body = parts.next().unwrap_or_default();
    fn text(p: Option<&[u8]>) -> Option<&str> {
        p.and_then(|p| std::str::from_utf8(p).ok())
    }
    let (ts, nonce, sig) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let headers = SignatureHeaders {
        timestamp: ts,
        nonce,
        signature: sig,
    };
    let _ = webhook::open(&secrets, body, &headers, 1_800_000_000);
    // The decryption alone, on the body as the `encrypt` string.
    if let Ok(s) = std::str::from_utf8(body) {
        let _ = webhook::decrypt("fuzz-encrypt-key", s);
    }
}

/// A config file (the text is the file; a few secrets are set).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: BTreeMap<String, String> = [
        ("SECRET", "s3cr3t"),
        ("ROOMCAST_APP_SECRET", "app-secret"),
        ("VT", "tok"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _ = crate::config::parse(text, Path::new("."), &env);
}

/// A template file (text, JSON and HTML formats by the first byte),
/// loaded as `check` loads a template directory, then rendered against a
/// notice-shaped view model.
pub fn templates(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    let file = match kind % 3 {
        0 => "fuzz.txt.hbs",
        1 => "fuzz.json.hbs",
        _ => "fuzz.html.hbs",
    };
    let Ok(t) = Templates::from_sources(&[(file, src)]) else {
        return;
    };
    let _ = t.render("fuzz", Locale::En, ViewModel(sample().clone()));
}

fn sample() -> &'static serde_json::Value {
    static SAMPLE: OnceLock<serde_json::Value> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        json!({
            "change": "booked", "change_label": "Booked", "is_booked": true,
            "room": {"id": "omm_a", "name": "Alpha", "time_zone": "Asia/Shanghai"},
            "booking": {
                "key": "u_0", "uid": "u", "time_range": "10:00–11:00", "who": "Li Lei",
                "start": {"iso": "2026-05-01T10:00:00+08:00", "time": "10:00", "date": "Fri, May 1"},
                "end": {"iso": "2026-05-01T11:00:00+08:00", "time": "11:00"},
                "organizer": {"open_id": "ou_1", "name": "Li Lei"},
                "items": [1, 2, 3]
            },
            "next": [{"time_range": "12:00–13:00"}, {"time_range": "14:00–15:00"}],
            "labels": {"free": "Free", "busy": "In use"}
        })
    })
}

/// Write the seed corpus (`fuzz/corpus/<target>/`) of the repository
/// at `root` from its shipped examples and a few built inputs:
/// `cargo run --example fuzz_seeds`.
pub fn write_seeds(root: &Path) -> std::io::Result<()> {
    let put = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };
    let events = std::fs::read_to_string(root.join("examples/events.jsonl"))?;
    let events: Vec<&str> = events
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    for (i, e) in events.iter().enumerate() {
        put("event_json", &format!("example-{i}"), e.as_bytes())?;
    }
    put(
        "event_json",
        "challenge",
        br#"{"challenge":"c","token":"tok","type":"url_verification"}"#,
    )?;

    // Frames: one whole message, then one in three fragments out of order.
    let mut stream = Vec::new();
    let mut push = |f: Vec<u8>| {
        stream.push(u8::try_from(f.len()).unwrap_or(u8::MAX));
        stream.extend(f);
    };
    let small = br#"{"uuid":"f1","type":"event_callback","event":{"type":"third_party_meeting_room_event_created","uid":"u","original_time":0,"start":{"time_stamp":"1777600800000"},"end":{"time_stamp":"1777604400000"},"meeting_rooms":[{"open_id":"omm_a"}]}}"#;
    for (seq, part) in small.chunks(small.len().div_ceil(3)).enumerate().rev() {
        push(Frame::event_fragment(3, "m2", "3", &seq.to_string(), "t", part.to_vec()).to_bytes());
    }
    push(Frame::ping(3).to_bytes());
    put("frames", "fragments-and-ping", &stream)?;

    // Webhook: plain with a token; encrypted and signed.
    let first = events.first().copied().unwrap_or("{}");
    let mut plain = vec![1u8];
    plain.extend(first.as_bytes());
    put("webhook", "plain", &plain)?;
    {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        use base64::Engine as _;
        use sha2::Digest;
        let key = sha2::Sha256::digest(b"fuzz-encrypt-key");
        let iv = [7u8; 16];
        let plain = first.as_bytes();
        let mut buf = vec![0u8; plain.len() + 16];
        buf[..plain.len()].copy_from_slice(plain);
        let bad = |e: String| std::io::Error::other(e);
        let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|e| bad(e.to_string()))?
            .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
            .map_err(|e| bad(e.to_string()))?
            .to_vec();
        let mut blob = iv.to_vec();
        blob.extend(ct);
        let body =
            json!({"encrypt": base64::engine::general_purpose::STANDARD.encode(blob)}).to_string();
        let (ts, nonce) = ("1800000000", "n0nce");
        let sig = webhook::signature(ts, nonce, "fuzz-encrypt-key", body.as_bytes());
        let mut enc = vec![2u8];
        for part in [body.as_str(), ts, nonce, sig.as_str()] {
            enc.extend(part.as_bytes());
            enc.push(0);
        }
        enc.pop();
        put("webhook", "encrypted-signed", &enc)?;
    }

    for f in ["config.toml", "examples/panels.toml"] {
        let name = f.replace('/', "-");
        put("config", &name, &std::fs::read(root.join(f))?)?;
    }

    for (i, (file, src)) in crate::render::DEFAULTS.iter().enumerate() {
        let kind = if file.ends_with(".json.hbs") {
            1u8
        } else if file.ends_with(".html.hbs") {
            2
        } else {
            0
        };
        let mut b = vec![kind];
        b.extend(src.as_bytes());
        put("templates", &format!("builtin-{i}"), &b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_takes_empty_and_garbage_input() {
        for t in TARGETS {
            run(t, b"");
            run(t, &[0xff; 64]);
            run(t, b"{\"a\":");
        }
    }
}
