//! The HTTP face: webhook intake (plain and encrypted, forged, oversized,
//! replayed), health, readiness and metrics.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::*;

async fn start(extra_platform: &str, env: &[(&str, &str)]) -> TestBot {
    start_with(extra_platform, "", env).await
}

async fn start_with(extra_platform: &str, rooms: &str, env: &[(&str, &str)]) -> TestBot {
    start_at(extra_platform, rooms, env, None).await
}

/// A bot with webhook intake and the HTTP server on a free port; `rooms`
/// is TOML added to the config, `clock` replaces the system clock.
pub(crate) async fn start_at(
    extra_platform: &str,
    rooms: &str,
    env: &[(&str, &str)],
    clock: Option<roomcast::clock::TimeSource>,
) -> TestBot {
    let mut bot = webhook_bot(extra_platform).rooms(rooms).sink(
        "[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"n.jsonl\"\ntemplate = \"webhook\"\n",
    );
    for (k, v) in env {
        bot = bot.env(k, v);
    }
    if let Some(c) = clock {
        bot = bot.clock(c);
    }
    bot.start().await
}

/// A bot taking webhook pushes (verification token `tok`), HTTP on a free
/// port, bodies up to 4 KiB; `extra_platform` is added to `[platform]`.
fn webhook_bot(extra_platform: &str) -> bot::Builder {
    roomcast::tls::init();
    TestBot::builder()
        .tag("http")
        .config(format!(
            "[source]\nkind = \"webhook\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\nverification_token_env = \"VT\"\n{extra_platform}\n[http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n"
        ))
        .env("VT", "tok")
}

/// A bot whose clock stands still at `at_ms`, with `rooms`; a room's
/// `token_env = "PANEL"` makes its token `p4nel`.
pub(crate) async fn start_fixed(rooms: &str, at_ms: i64) -> TestBot {
    let fixed = chrono::DateTime::from_timestamp_millis(at_ms).expect("an instant");
    start_at(
        "",
        rooms,
        &[("PANEL", "p4nel")],
        Some(std::sync::Arc::new(move || fixed)),
    )
    .await
}

/// Alpha needs the token `p4nel`; Beta is open.
fn alpha_with_token_and_beta() -> String {
    format!(
        "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\ntoken_env = \"PANEL\"\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n"
    )
}

/// What the HTTP tests do with a bot.
pub(crate) trait Webhook {
    async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (u16, Value);
    async fn stop_and_read(self) -> Vec<Value>;
}

impl Webhook for TestBot {
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

    async fn stop_and_read(self) -> Vec<Value> {
        let dir = self.dir.clone();
        self.stop().await.expect("clean stop");
        jsonl(&dir.join("n.jsonl"))
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

    let notices = bot.stop_and_read().await;
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
    // Signed pushes carry the sender's time: this bot runs on the wall
    // clock, so a push stamped now is fresh...
    let now = chrono::Utc::now().timestamp().to_string();
    let sign = roomcast::lark::webhook::signature(&now, "n0", "test key", body.as_bytes());
    let headers = [
        ("X-Lark-Request-Timestamp", now.as_str()),
        ("X-Lark-Request-Nonce", "n0"),
        ("X-Lark-Signature", sign.as_str()),
    ];
    assert_eq!(
        bot.post(&body, &headers).await,
        (200, json!({"msg": "success"}))
    );
    // ...and one signed in 2023, however valid its signature, is a replay.
    let old_body = seal(&ev("e-old"));
    let old_sign =
        roomcast::lark::webhook::signature("1700000000", "n0", "test key", old_body.as_bytes());
    let old = [
        ("X-Lark-Request-Timestamp", "1700000000"),
        ("X-Lark-Request-Nonce", "n0"),
        ("X-Lark-Signature", old_sign.as_str()),
    ];
    assert_eq!(bot.post(&old_body, &old).await.0, 401, "a replayed push");
    let forged = [
        ("X-Lark-Request-Timestamp", now.as_str()),
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
    let notices = bot.stop_and_read().await;
    assert_eq!(
        notices
            .iter()
            .map(|n| n["event_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["e-1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn displays_that_poll_get_the_room_view_with_etags_and_tokens() {
    let bot = start_fixed(&alpha_with_token_and_beta(), ms(2026, 5, 1, 1, 0)).await;
    let c = reqwest::Client::new();
    let list: Value = c
        .get(format!("{}/rooms", bot.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Alpha needs a token: the public list shows Beta only...
    assert_eq!(list["rooms"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["rooms"][0]["name"], "Beta");
    assert_eq!(list["rooms"][0]["url"], format!("/rooms/{ROOM_B}.json"));
    // ...and Alpha's token shows Alpha too.
    let with_token: Value = c
        .get(format!("{}/rooms", bot.base))
        .bearer_auth("p4nel")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(with_token["rooms"][0]["name"], "Alpha", "{with_token}");

    let url_b = format!("{}/rooms/{ROOM_B}.json", bot.base);
    let r = c.get(&url_b).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["room"]["name"].as_str(), body["status"].as_str()),
        (Some("Beta"), Some("free"))
    );
    let again = c
        .get(&url_b)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "unchanged: not modified");
    // A booking changes the view, and so the ETag.
    let ev_b = event(
        "created",
        "pb-1",
        ms(2026, 5, 1, 0, 0),
        ("mb", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_B],
    );
    assert_eq!(bot.post(&ev_b, &[]).await.0, 200);
    let later = c
        .get(&url_b)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 200, "the view changed: a fresh body");
    let body: Value = later.json().await.unwrap();
    assert_eq!(body["next"][0]["start"], "2026-05-01T02:00:00+00:00");
    // Machine-readable beside the formatted: instants and minutes.
    assert_eq!(body["next"][0]["minutes"], 60);
    assert_eq!(body["free_until_at"], "2026-05-01T02:00:00+00:00");
    assert_eq!(body["busy_until_at"], Value::Null);

    let url_a = format!("{}/rooms/{ROOM_A}.json", bot.base);
    assert_eq!(
        c.get(&url_a).send().await.unwrap().status(),
        401,
        "this room needs its token"
    );
    assert_eq!(
        c.get(&url_a)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(&url_a)
            .bearer_auth("p4nel")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The scheme is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER", "Bearer  "] {
        assert_eq!(
            c.get(&url_a)
                .header("Authorization", format!("{scheme} p4nel"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{scheme:?}"
        );
    }
    assert_eq!(
        c.get(format!("{}/rooms/omm_nobody.json", bot.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    bot.stop_and_read().await;
}

/// Server-sent events as a client reads them: (event, data) pairs.
struct EventStream {
    body: reqwest::Response,
    buf: String,
}

impl EventStream {
    async fn open(url: &str) -> EventStream {
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        EventStream {
            body: r,
            buf: String::new(),
        }
    }

    /// The next event; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    } else if line == "data:" {
                        data.push("");
                    }
                }
                if data.is_empty() {
                    continue; // a comment or retry-only block
                }
                return Some((name, data.join("\n")));
            }
            match self.body.chunk().await {
                Ok(Some(chunk)) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                _ => return None,
            }
        }
    }
}

/// The live page and its event stream, under paused time with a clock that
/// follows it: the first view at once, the server's time, pings while
/// nothing changes, a fresh view when an event changes the room and when the
/// minute turns, and the end of the stream when the server stops.
#[tokio::test(start_paused = true)]
async fn live_page_stream_follows_events_and_the_minute() {
    let t0 = chrono::DateTime::from_timestamp_millis(ms(2026, 5, 1, 6, 30)).unwrap();
    let start = tokio::time::Instant::now();
    let clock: roomcast::clock::TimeSource =
        std::sync::Arc::new(move || t0 + chrono::Duration::from_std(start.elapsed()).unwrap());
    let rooms = format!(
        "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\ntime_zone = \"Europe/London\"\nlocale = \"en\"\nclock = \"12h\"\ntoken_env = \"PANEL\"\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n"
    );
    let bot = start_at("", &rooms, &[("PANEL", "p4nel")], Some(clock)).await;
    let page_url = format!("{}/rooms/{ROOM_A}", bot.base);
    let c = reqwest::Client::new();
    assert_eq!(c.get(&page_url).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(format!("{page_url}/events?token=wrong"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(format!("{}/rooms/omm_nobody", bot.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let page = c.get(&page_url).bearer_auth("p4nel").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(r#"<html lang="en" data-time-zone="Europe/London" data-clock="12h">"#));
    assert!(html.contains(r#"<h1 class="name">Alpha</h1>"#));
    assert!(
        html.contains("7:30 AM"),
        "London summer time, 12-hour clock"
    );

    let mut events = EventStream::open(&format!("{page_url}/events?token=p4nel")).await;
    let (name, first) = events.next().await.unwrap();
    assert_eq!(name, "room");
    assert!(first.contains(r#"class="room free""#), "{first}");
    assert!(first.contains("No more bookings today"), "{first}");
    assert_eq!(
        events.next().await.unwrap(),
        ("ping".into(), t0.timestamp_millis().to_string()),
        "the server's time follows at once"
    );
    assert_eq!(
        bot.metrics
            .page_streams
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // An event for another room changes nothing here; one for this room
    // is sent at once (7:00–8:00 AM London, 30 min left).
    let other = event(
        "created",
        "lp-0",
        ms(2026, 5, 1, 6, 0),
        ("mb", 0),
        (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        &[ROOM_B],
    );
    assert_eq!(bot.post(&other, &[]).await.0, 200);
    let mine = event(
        "created",
        "lp-1",
        ms(2026, 5, 1, 6, 0),
        ("ma", 0),
        (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        &[ROOM_A],
    );
    assert_eq!(bot.post(&mine, &[]).await.0, 200);
    // (Paused time may jump while the test waits on sockets, so pings can
    // come between; their spacing is checked below.)
    let mut pings: Vec<i64> = Vec::new();
    let mut next_room = async || loop {
        let (name, data) = events.next().await.expect("stream open");
        if name == "room" {
            return data;
        }
        assert_eq!(name, "ping");
        pings.push(data.parse().expect("ping carries epoch ms"));
    };
    let busy = next_room().await;
    assert!(busy.contains(r#"class="room busy""#), "{busy}");
    assert!(busy.contains("7:00 AM–8:00 AM"), "{busy}");
    assert!(busy.contains("30 min left"), "{busy}");

    // Nothing changes for a while: pings every 15 s, then the minute turns
    // (07:31 London) and the time left with it, not a moment later.
    let next_view = next_room().await;
    assert_eq!(start.elapsed(), std::time::Duration::from_secs(60));
    assert!(next_view.contains("29 min left"), "{next_view}");
    assert!(next_view.contains(">7:31 AM<"), "{next_view}");
    assert!(pings.len() >= 3, "pings while nothing changed: {pings:?}");
    assert!(
        pings.windows(2).all(|w| w[1] - w[0] == 15_000),
        "15 s apart: {pings:?}"
    );

    // Stopping the server ends the stream (and does not wait for it).
    bot.stop_and_read().await;
    assert_eq!(events.next().await, None);
}

/// The caps: an event naming 40,000 rooms is acknowledged (200: a
/// redelivery would not help), applied to nothing and counted, while
/// `/healthz` is answered; rooms outside the config stop at
/// `max_unknown_rooms` (an event bringing only new ones is refused; one
/// that also names a configured room applies to that room alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_the_caps_are_acknowledged_counted_and_applied_to_nothing() {
    roomcast::tls::init();
    let bot = TestBot::builder()
        .tag("caps")
        .config(
            "[source]\nkind = \"webhook\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\nverification_token_env = \"VT\"\n[http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4000000\n[schedule]\nmax_unknown_rooms = 2\n",
        )
        .store()
        .rooms(format!("[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\n"))
        .sink("[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"n.jsonl\"\ntemplate = \"webhook\"\n")
        .env("VT", "tok")
        .start()
        .await;
    let span = (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0));
    let t0 = ms(2026, 5, 1, 0, 0);
    let many: Vec<String> = (0..40_000).map(|i| format!("omm_flood{i:027}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let flood = event("created", "flood-1", t0, ("f1", 0), span, &many);
    assert!(flood.len() > 1_000_000, "{} bytes", flood.len());

    let health = async {
        reqwest::get(format!("{}/healthz", bot.base))
            .await
            .expect("healthz")
            .status()
    };
    let (pushed, health) = tokio::join!(bot.post(&flood, &[]), health);
    assert_eq!(pushed.0, 200, "acknowledged: a redelivery would not help");
    assert_eq!(health, 200);

    // Two rooms outside the config fit; a third does not.
    for (i, room) in ["omm_x1", "omm_x2"].iter().enumerate() {
        let e = event(
            "created",
            &format!("u-{i}"),
            t0,
            (&format!("u{i}"), 0),
            span,
            &[room],
        );
        assert_eq!(bot.post(&e, &[]).await.0, 200);
    }
    let third = event("created", "u-3", t0, ("u3", 0), span, &["omm_x3"]);
    assert_eq!(bot.post(&third, &[]).await.0, 200);
    let mixed = event("created", "u-4", t0, ("u4", 0), span, &[ROOM_A, "omm_x4"]);
    assert_eq!(bot.post(&mixed, &[]).await.0, 200);

    let metrics = bot.text("/metrics").await;
    assert!(
        metrics.contains("roomcast_events_over_cap_total{cap=\"rooms_per_event\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_events_over_cap_total{cap=\"unknown_rooms\"} 2"),
        "{metrics}"
    );
    let rooms: Value = reqwest::get(format!("{}/rooms", bot.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<&str> = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, [ROOM_A, "omm_x1", "omm_x2"]);
    let notices = bot.stop_and_read().await;
    let got: Vec<(&str, &str)> = notices
        .iter()
        .map(|n| {
            (
                n["body"]["booking"]["uid"].as_str().unwrap_or_default(),
                n["room"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("u0", "omm_x1"), ("u1", "omm_x2"), ("u4", ROOM_A)],
        "nothing from the flood or the refused room"
    );
}

/// Issue 13 item 18: the live page lists three later bookings and says how
/// many more ("+2 more", none dropped silently); an unknown room or a
/// missing token gets a page that says so and reloads itself (a door
/// tablet recovers once the config is fixed), not raw JSON or text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_says_how_many_more_and_its_errors_recover() {
    let bot = start_fixed(&alpha_with_token_and_beta(), ms(2026, 5, 1, 1, 0)).await;
    for (i, h) in [3u32, 5, 7, 9, 11].into_iter().enumerate() {
        let e = event(
            "created",
            &format!("more-{i}"),
            ms(2026, 5, 1, 0, 0),
            (&format!("m{i}"), 0),
            (ms(2026, 5, 1, h, 0), ms(2026, 5, 1, h + 1, 0)),
            &[ROOM_B],
        );
        assert_eq!(bot.post(&e, &[]).await.0, 200);
    }
    let c = reqwest::Client::new();
    let page = c
        .get(format!("{}/rooms/{ROOM_B}", bot.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let agenda = &page[page.find("class=\"agenda\"").expect("agenda")..];
    assert_eq!(agenda.matches("<li data-end=").count(), 3, "{agenda}");
    assert!(
        agenda.contains("<li class=\"more\">+2 more</li>"),
        "{agenda}"
    );

    for (path, status, says) in [
        (
            "/rooms/omm_nope%3Cb%3E".to_string(),
            404,
            "No room “omm_nope&lt;b&gt;”",
        ),
        (format!("/rooms/{ROOM_A}"), 401, "lacks the room's token"),
    ] {
        let r = c.get(format!("{}{path}", bot.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("<meta http-equiv=\"refresh\" content=\"30\">"),
            "{body}"
        );
        assert!(body.contains(says), "{body}");
        assert!(
            !body.contains("Alpha"),
            "nothing of a token room leaks: {body}"
        );
    }
    // Programs still get JSON and the bearer challenge.
    let r = c
        .get(format!("{}/rooms/omm_nope.json", bot.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["msg"], "no such room");
    let r = c
        .get(format!("{}/rooms/{ROOM_A}.json", bot.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    bot.stop().await.expect("stop");
}

/// Issue 14: `/metrics` is OpenMetrics text that Prometheus' own parser
/// (the Python client's) reads whole, even with a sink named with `"`, `\`
/// and a newline; it has the process's metrics and the build's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    roomcast_no_prometheus_client,
    ignore = "python3 cannot import prometheus_client (pip install prometheus-client)"
)]
async fn metrics_parse_with_prometheus_own_parser_whatever_the_sink_names() {
    let bot = webhook_bot("")
        .sink("[[sinks]]\nname = \"lobby \\\"east\\\" \\\\ wing\\nfloor 2\"\nkind = \"file\"\npath = \"n.jsonl\"\ntemplate = \"webhook\"\n")
        .start()
        .await;
    assert_eq!(bot.post(&ev("metrics-1"), &[]).await.0, 200);
    // A shared store's feed adds a histogram (its rows' delays).
    let feed = &bot.metrics.feed;
    feed.on.store(true, std::sync::atomic::Ordering::Relaxed);
    for d in [0.004, 0.012, 0.012, 3.0] {
        feed.delays.observe(d);
    }
    let r = reqwest::get(format!("{}/metrics", bot.base)).await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(out))
"#;
    let parsed = python_json(script, &text, "the parser refused /metrics");
    let sample = |name: &str| parsed[name].as_array().cloned().unwrap_or_default();
    assert_eq!(sample("roomcast_events_applied_total")[0][1], 1.0);
    let delivered = sample("roomcast_deliveries_total")
        .into_iter()
        .find(|s| s[0]["result"] == "delivered")
        .expect("a deliveries sample");
    assert_eq!(delivered[0]["sink"], "lobby \"east\" \\ wing\nfloor 2");
    let bucket = |le: &str| {
        sample("roomcast_feed_delay_seconds_bucket")
            .into_iter()
            .find(|s| s[0]["le"] == le)
            .and_then(|s| s[1].as_f64())
    };
    assert_eq!(bucket("0.005"), Some(1.0), "{text}");
    assert_eq!(bucket("0.015"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(4.0));
    assert_eq!(sample("roomcast_feed_delay_seconds_count")[0][1], 4.0);
    assert_eq!(
        sample("roomcast_build_info")[0][0]["version"],
        env!("CARGO_PKG_VERSION")
    );
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(!sample(name).is_empty(), "{name} missing:\n{text}");
    }
    bot.stop().await.expect("stop");
}

/// Issue 14: `GET /rooms/{id}.ics` is an RFC 5545 feed that an independent
/// parser (Python's `icalendar`) reads: the room's zone as a `VTIMEZONE`
/// that, applied to each `TZID` time, gives the booking's true instant
/// across a DST change; a stable `UID` per instance; `SEQUENCE` growing
/// with each change; "Busy" where privacy hides who; the room's token
/// rules; ETag and 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    roomcast_no_python_icalendar,
    ignore = "python3 cannot import icalendar (pip install icalendar)"
)]
async fn the_ics_feed_parses_with_an_independent_parser() {
    let rooms = format!(
        "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Hudson, 3rd floor; east\"\ntime_zone = \"America/New_York\"\ntoken_env = \"PANEL\"\n"
    );
    // Friday Oct 30 2026, 08:00 in New York; clocks fall back on Sunday Nov 1.
    let bot = start_fixed(&rooms, ms(2026, 10, 30, 12, 0)).await;
    // 10:00–11:00 EDT on Oct 30; 09:00–10:30 EST on Nov 2 (after the change).
    let spans = [
        (
            "ics-1",
            "m1",
            ms(2026, 10, 30, 14, 0),
            ms(2026, 10, 30, 15, 0),
        ),
        (
            "ics-2",
            "m2",
            ms(2026, 11, 2, 14, 0),
            ms(2026, 11, 2, 15, 30),
        ),
    ];
    for (uuid, uid, from, to) in spans {
        let e = event(
            "created",
            uuid,
            ms(2026, 10, 30, 11, 0),
            (uid, 0),
            (from, to),
            &[ROOM_A],
        );
        assert_eq!(bot.post(&e, &[]).await.0, 200);
    }
    let url = format!("{}/rooms/{ROOM_A}.ics", bot.base);
    let c = reqwest::Client::new();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    let feed = |c: reqwest::Client, url: String| async move {
        let r = c.get(&url).bearer_auth("p4nel").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/calendar")
        );
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        (etag, r.text().await.unwrap())
    };
    let (etag, text) = feed(c.clone(), url.clone()).await;
    let parse = |text: &str| {
        let script = r#"
import json, sys, datetime
from icalendar import Calendar
cal = Calendar.from_ical(sys.stdin.read())
tzs = {tz['TZID']: tz.to_tz() for tz in cal.walk('VTIMEZONE')}
out = {"name": str(cal.get('X-WR-CALNAME')), "tzids": sorted(tzs), "events": []}
for ev in cal.walk('VEVENT'):
    def utc(prop):
        v = ev[prop]
        naive = v.dt.replace(tzinfo=None)
        tz = tzs[v.params['TZID']]
        local = tz.localize(naive) if hasattr(tz, 'localize') else naive.replace(tzinfo=tz)
        return int(local.astimezone(datetime.timezone.utc).timestamp() * 1000)
    out["events"].append({"uid": str(ev['UID']), "summary": str(ev['SUMMARY']),
        "start": utc('DTSTART'), "end": utc('DTEND'), "sequence": int(ev['SEQUENCE'])})
print(json.dumps(out))
"#;
        python_json(script, text, "icalendar refused the feed")
    };
    let cal = parse(&text);
    // TEXT escaping (RFC 5545 3.3.11); the parser leaves X- values raw.
    assert_eq!(cal["name"], "Hudson\\, 3rd floor\\; east", "{text}");
    assert_eq!(cal["tzids"], json!(["America/New_York"]), "{text}");
    let events = cal["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2, "{text}");
    for (ev, (_, _, from, to)) in events.iter().zip(spans) {
        assert_eq!(
            (ev["start"].as_i64(), ev["end"].as_i64()),
            (Some(from), Some(to)),
            "{text}"
        );
        assert_eq!(ev["summary"], "Busy");
    }
    assert!(
        text.contains("DTSTART;TZID=America/New_York:20261102T090000"),
        "{text}"
    );
    // Unchanged: 304. A move: a new ETag, the same UID, a larger SEQUENCE.
    let r = c
        .get(&url)
        .bearer_auth("p4nel")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let moved = event(
        "updated",
        "ics-3",
        ms(2026, 10, 30, 11, 30),
        ("m2", 0),
        (ms(2026, 11, 2, 15, 0), ms(2026, 11, 2, 16, 0)),
        &[ROOM_A],
    );
    assert_eq!(bot.post(&moved, &[]).await.0, 200);
    let (etag2, text2) = feed(c.clone(), url.clone()).await;
    assert_ne!(etag, etag2);
    let after = parse(&text2)["events"].as_array().unwrap().clone();
    let before_m2 = events
        .iter()
        .find(|e| e["uid"].as_str().unwrap().starts_with("m2-"))
        .unwrap();
    let after_m2 = after
        .iter()
        .find(|e| e["uid"].as_str().unwrap().starts_with("m2-"))
        .unwrap();
    assert!(after_m2["sequence"].as_i64() > before_m2["sequence"].as_i64());
    assert_eq!(after_m2["start"].as_i64(), Some(ms(2026, 11, 2, 15, 0)));
    bot.stop().await.expect("stop");
}

const ROOM_C: &str = "omm_cccccccccccccccccccccccccccccccc";

/// Issue 15: a board is one page for many rooms, with the room page's
/// token rules (a board showing a room that needs a token needs one of its
/// own), and one event stream: a tile per room, a board event when one of
/// its rooms changes (not another room), a burst coalesced into at most
/// one rendering a second that ends on the latest state.
#[tokio::test(start_paused = true)]
async fn a_board_shows_its_rooms_and_follows_them_in_one_stream() {
    let t0 = chrono::DateTime::from_timestamp_millis(ms(2026, 5, 1, 6, 30)).unwrap();
    let start = tokio::time::Instant::now();
    let clock: roomcast::clock::TimeSource =
        std::sync::Arc::new(move || t0 + chrono::Duration::from_std(start.elapsed()).unwrap());
    let rooms = format!(
        "[display]\ntime_zone = \"Europe/London\"\nlocale = \"en\"\n\
         [[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\ntoken_env = \"PANEL\"\n\
         [[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n\
         [[rooms]]\nid = \"{ROOM_C}\"\nname = \"Gamma\"\n\
         [[boards]]\nname = \"lobby\"\ntitle = \"Ground floor\"\nrooms = [\"{ROOM_B}\", \"{ROOM_C}\"]\n\
         [[boards]]\nname = \"exec\"\nrooms = [\"{ROOM_A}\"]\ntoken_env = \"BOARD\"\n"
    );
    let bot = start_at(
        "",
        &rooms,
        &[("PANEL", "p4nel"), ("BOARD", "b0ard")],
        Some(clock),
    )
    .await;
    let c = reqwest::Client::new();
    let get = async |path: &str| c.get(format!("{}{path}", bot.base)).send().await.unwrap();
    let page = get("/boards/lobby").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(
            r#"<html lang="en" data-feed="board" data-time-zone="Europe/London" data-clock="24h">"#
        ),
        "{html}"
    );
    assert!(
        html.contains(r#"<h1 class="title">Ground floor</h1>"#),
        "{html}"
    );
    assert!(html.contains("2 of 2 free"), "{html}");
    assert_eq!(
        html.matches(r#"<li class="tile free""#).count(),
        2,
        "{html}"
    );
    assert!(!html.contains("Alpha"), "only its rooms");
    assert_eq!(get("/boards/nope").await.status(), 404);
    assert_eq!(get("/boards/exec").await.status(), 401);
    assert_eq!(get("/boards/exec/events").await.status(), 401);
    assert_eq!(get("/boards/exec?token=b0ard").await.status(), 200);

    let mut events = EventStream::open(&format!("{}/boards/lobby/events", bot.base)).await;
    let (name, first) = events.next().await.unwrap();
    assert_eq!(name, "board");
    assert!(
        first.contains(r#"<main id="board""#) && first.contains("2 of 2 free"),
        "{first}"
    );
    assert_eq!(events.next().await.unwrap().0, "ping");

    // Another room's change: nothing. Then a burst for Beta (ten moves of
    // one booking): at most one rendering a second, ending on the last.
    let ev = |uuid: String, at: i64, h: u32| {
        event(
            "created",
            &uuid,
            at,
            ("mb", 0),
            (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, h, 0)),
            &[ROOM_B],
        )
    };
    let alpha = event(
        "created",
        "ba-0",
        ms(2026, 5, 1, 6, 0),
        ("ma", 0),
        (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        &[ROOM_A],
    );
    assert_eq!(bot.post(&alpha, &[]).await.0, 200);
    let burst_at = tokio::time::Instant::now();
    for i in 0..10u32 {
        let body = ev(
            format!("bb-{i}"),
            ms(2026, 5, 1, 6, 0) + i64::from(i),
            7 + (i % 3) + u32::from(i == 9) * 5,
        );
        assert_eq!(bot.post(&body, &[]).await.0, 200);
    }
    let mut boards: Vec<(std::time::Duration, String)> = Vec::new();
    while boards
        .last()
        .is_none_or(|(_, b)| !b.contains("07:00–13:00"))
    {
        let (name, data) = events.next().await.expect("stream open");
        if name == "board" {
            boards.push((burst_at.elapsed(), data));
        }
        assert!(
            burst_at.elapsed() < std::time::Duration::from_secs(30),
            "{boards:?}"
        );
    }
    let last = &boards.last().unwrap().1;
    assert!(
        last.contains("1 of 2 free") && last.contains(r#"<li class="tile busy""#),
        "{last}"
    );
    assert!(
        last.contains("07:00–13:00"),
        "the last move, in London time: {last}"
    );
    assert!(boards.len() <= 2, "coalesced: {} renderings", boards.len());
    assert!(
        boards
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= std::time::Duration::from_secs(1)),
        "a second apart: {:?}",
        boards.iter().map(|b| b.0).collect::<Vec<_>>()
    );
    bot.stop_and_read().await;
    assert_eq!(events.next().await, None);
}
