//! The HTTP face: webhook intake (plain and encrypted, forged, oversized,
//! replayed), health, readiness and metrics.

use std::collections::BTreeMap;

use base64::Engine as _;
use roomcast::app::App;
use roomcast::check;
use serde_json::{Value, json};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::support::*;

struct Bot {
    base: String,
    dir: std::path::PathBuf,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<roomcast::app::Summary, roomcast::app::AppError>>,
    metrics: std::sync::Arc<roomcast::http::Metrics>,
}

async fn start(extra_platform: &str, env: &[(&str, &str)]) -> Bot {
    roomcast::tls::init();
    let dir = temp_dir("http");
    write(
        &dir.join("config.toml"),
        &format!(
            "[source]\nkind = \"webhook\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\nverification_token_env = \"VT\"\n{extra_platform}\n[http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"n.jsonl\"\ntemplate = \"webhook\"\n"
        ),
    );
    let mut envs: BTreeMap<String, String> = [("VT".to_string(), "tok".to_string())].into();
    for (k, v) in env {
        envs.insert(k.to_string(), v.to_string());
    }
    let checked = check::load(&dir.join("config.toml"), &envs).unwrap_or_else(|e| panic!("{e:?}"));
    let app = App::new(checked.config, checked.templates);
    let metrics = app.metrics.clone();
    let mut addr = app.http_addr.subscribe();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(app.run(stop.clone()));
    let a = *addr.wait_for(|a| a.is_some()).await.expect("listening");
    Bot {
        base: format!("http://{}", a.unwrap()),
        dir,
        stop,
        handle,
        metrics,
    }
}

impl Bot {
    async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut rb = reqwest::Client::new()
            .post(format!("{}/webhook/event", self.base))
            .body(body.to_string());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.expect("post");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) -> Vec<Value> {
        self.stop.cancel();
        self.handle.await.unwrap().expect("clean stop");
        jsonl(&self.dir.join("n.jsonl"))
    }
}

fn ev(uuid: &str) -> String {
    event(
        "created",
        uuid,
        ms(2026, 5, 1, 0, 0),
        ("m1", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_webhook_challenge_events_replays_and_metrics() {
    let bot = start("", &[]).await;
    let (st, body) = bot
        .post(
            r#"{"challenge":"c-123","token":"tok","type":"url_verification"}"#,
            &[],
        )
        .await;
    assert_eq!((st, body), (200, json!({"challenge": "c-123"})));
    let (st, _) = bot
        .post(
            r#"{"challenge":"c-123","token":"nope","type":"url_verification"}"#,
            &[],
        )
        .await;
    assert_eq!(st, 401, "a wrong token is refused");

    assert_eq!(
        bot.post(&ev("w-1"), &[]).await,
        (200, json!({"msg": "success"}))
    );
    assert_eq!(
        bot.post(&ev("w-1"), &[]).await.0,
        200,
        "a replayed push is accepted (and dropped as a duplicate)"
    );
    let forged = ev("w-2").replace("\"tok\"", "\"forged\"");
    assert_eq!(bot.post(&forged, &[]).await.0, 401);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_eq!(bot.post(&big, &[]).await.0, 413, "body size limit");

    let get = |p: &str| reqwest::get(format!("{}{p}", bot.base));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("roomcast_events_received_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_events_duplicate_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_webhook_unauthorized_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_deliveries_total{sink=\"n\",result=\"delivered\"}"),
        "{metrics}"
    );
    assert_eq!(
        bot.metrics
            .applied
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let notices = bot.stop().await;
    assert_eq!(
        notices.len(),
        1,
        "one notice: the replay and the forged push changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_webhook_with_signatures() {
    let bot = start("encrypt_key_env = \"EK\"", &[("EK", "test key")]).await;
    // The spec's own vector: an encrypted challenge (token "xxxxxx" inside;
    // this bot's token is "tok", so it is refused), then one of ours.
    let vector = r#"{"encrypt":"AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE"}"#;
    assert_eq!(bot.post(vector, &[]).await.0, 401);
    let seal = |plain: &str| {
        use aes::cipher::block_padding::Pkcs7;
        use aes::cipher::{BlockModeEncrypt, KeyIvInit};
        let iv = [3u8; 16];
        let enc =
            cbc::Encryptor::<aes::Aes256>::new_from_slices(&sha2::Sha256::digest(b"test key"), &iv)
                .unwrap();
        let mut buf = vec![0u8; plain.len() + 16];
        buf[..plain.len()].copy_from_slice(plain.as_bytes());
        let ct = enc
            .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
            .unwrap()
            .to_vec();
        format!(
            r#"{{"encrypt":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode([iv.to_vec(), ct].concat())
        )
    };
    let challenge = seal(r#"{"challenge":"enc-1","token":"tok","type":"url_verification"}"#);
    assert_eq!(
        bot.post(&challenge, &[]).await,
        (200, json!({"challenge": "enc-1"}))
    );
    let body = seal(&ev("e-1"));
    let sign = roomcast::lark::webhook::signature("1700000000", "n0", "test key", body.as_bytes());
    let headers = [
        ("X-Lark-Request-Timestamp", "1700000000"),
        ("X-Lark-Request-Nonce", "n0"),
        ("X-Lark-Signature", sign.as_str()),
    ];
    assert_eq!(
        bot.post(&body, &headers).await,
        (200, json!({"msg": "success"}))
    );
    let forged = [
        ("X-Lark-Request-Timestamp", "1700000000"),
        ("X-Lark-Request-Nonce", "n0"),
        ("X-Lark-Signature", "00ff"),
    ];
    let body2 = seal(&ev("e-2"));
    assert_eq!(
        bot.post(&body2, &forged).await.0,
        401,
        "a forged signature is refused, the body never applied"
    );
    assert_eq!(
        bot.post(&ev("e-3"), &[]).await.0,
        401,
        "plaintext while an Encrypt Key is set"
    );
    let notices = bot.stop().await;
    assert_eq!(
        notices
            .iter()
            .map(|n| n["event_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["e-1"]
    );
}
