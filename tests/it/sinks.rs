//! roomcast delivering to fake chat and panel endpoints that check what
//! the real services check, and fail on demand.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;

use crate::support::*;

// ------------------------------------------------------------------ harness

/// roomcast replaying `events` into the given sinks, with a clock that
/// follows tokio time from `base`.
async fn run(
    sinks: &str,
    events: &[String],
    base: DateTime<Utc>,
    clock: roomcast::clock::TimeSource,
) -> roomcast::metrics::Summary {
    let _ = base;
    TestBot::builder()
        .tag("sinks")
        .config(format!(
            "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"zh-CN\"\n[delivery]\ndrain_timeout = \"48h\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n"
        ))
        .sink(sinks)
        .events(events)
        .env("FEISHU_SECRET", FEISHU_SECRET)
        .env("DING_SECRET", DING_SECRET)
        .env("WRONG_SECRET", "not-the-secret")
        .env("PANEL_TOKEN", "panel-token-1")
        .clock(clock)
        .run()
        .await
        .expect("run")
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 1, 0, 0).unwrap()
}

fn booked(uuid: &str, uid: &str, room: &str, start_h: u32, at_ms: i64) -> String {
    event(
        "created",
        uuid,
        at_ms,
        (uid, 0),
        (ms(2026, 5, 1, start_h, 0), ms(2026, 5, 1, start_h + 1, 0)),
        &[room],
    )
}

fn moved(uuid: &str, uid: &str, room: &str, start_h: u32, at_ms: i64) -> String {
    event(
        "updated",
        uuid,
        at_ms,
        (uid, 0),
        (ms(2026, 5, 1, start_h, 0), ms(2026, 5, 1, start_h + 1, 0)),
        &[room],
    )
}

fn sink(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!("[[sinks]]\nname = \"{name}\"\nkind = \"{kind}\"\nurl = \"{url}\"\n{extra}\n")
}

// -------------------------------------------------------------------- tests

#[tokio::test(start_paused = true)]
async fn every_service_gets_its_own_shape_signature_and_trace_headers() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    let b = &f.base;
    let sinks = [
        sink(
            "fs",
            "feishu",
            &format!("{b}/feishu/open-apis/bot/v2/hook/abc"),
            "secret_env = \"FEISHU_SECRET\"",
        ),
        sink(
            "fs-text",
            "lark",
            &format!("{b}/feishu/open-apis/bot/v2/hook/def"),
            "secret_env = \"FEISHU_SECRET\"\ntemplate = \"text\"",
        ),
        sink(
            "dt",
            "dingtalk",
            &format!("{b}/dingtalk/robot/send?access_token=tok"),
            "secret_env = \"DING_SECRET\"",
        ),
        sink(
            "wc",
            "wecom",
            &format!("{b}/wecom/cgi-bin/webhook/send?key=k1"),
            "",
        ),
        sink(
            "sl",
            "slack",
            &format!("{b}/slack/services/T/B/X"),
            "locale = \"en\"",
        ),
        sink(
            "wh",
            "webhook",
            &format!("{b}/webhook/in"),
            "method = \"PUT\"\nheaders = { X-Api-Key = \"${PANEL_TOKEN}\" }",
        ),
        sink(
            "pn",
            "panel",
            &format!("{b}/panel/rooms/{{room}}"),
            "headers = { Authorization = \"Bearer ${PANEL_TOKEN}\" }",
        ),
    ]
    .concat();
    let cfg = sinks.replace(
        "Bearer ${PANEL_TOKEN}\" }",
        &format!("Bearer ${{PANEL_TOKEN}}\" }}\nrooms = [\"{ROOM_A}\"]"),
    );
    run(
        &cfg,
        &[booked("ev-1", "m1", ROOM_A, 9, ms(2026, 5, 1, 0, 0))],
        base_time(),
        clock,
    )
    .await;
    let pn = f.hits("panel");
    assert_eq!(pn.len(), 1);
    assert_eq!(pn[0].path, format!("rooms/{ROOM_A}"));
    assert_eq!(
        pn[0].headers.get("authorization").map(String::as_str),
        Some("Bearer panel-token-1")
    );
    assert_eq!(pn[0].body["status"], "free");
    for svc in ["feishu", "dingtalk", "wecom", "slack", "webhook", "panel"] {
        let hits = f.hits(svc);
        assert!(!hits.is_empty(), "{svc} got nothing");
        for h in &hits {
            assert_eq!(h.verdict, "ok", "{svc}: {h:?}");
            assert_eq!(
                h.headers.get("x-roomcast-event").map(String::as_str),
                Some("ev-1"),
                "{svc}"
            );
            assert_eq!(
                h.headers.get("idempotency-key").map(|k| k.len()),
                Some(32),
                "{svc}"
            );
        }
    }
    let fs = f.hits("feishu");
    assert_eq!(fs.len(), 2);
    assert_eq!(fs[0].body["msg_type"], "interactive");
    assert_eq!(
        fs[0].body["card"]["header"]["title"]["content"],
        "新预订 · Alpha"
    );
    assert_eq!(
        fs[1].body["content"]["text"],
        "【Alpha】新预订 5月1日 周五 17:00–18:00（1 小时）"
    );
    assert_eq!(
        f.hits("slack")[0].body["text"],
        "Booked: Alpha, Fri, May 1 17:00–18:00"
    );
    let wh = &f.hits("webhook")[0];
    assert_eq!(
        wh.headers.get("x-api-key").map(String::as_str),
        Some("panel-token-1")
    );
    assert_eq!(wh.body["change"], "booked");
    assert_ne!(
        fs[0].headers["idempotency-key"], fs[1].headers["idempotency-key"],
        "per sink"
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_signing_secret_is_not_retried_and_is_reported() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    let cfg = sink(
        "fs",
        "feishu",
        &format!("{}/feishu/hook/x", f.base),
        "secret_env = \"WRONG_SECRET\"",
    );
    let s = run(
        &cfg,
        &[booked("e1", "m1", ROOM_A, 9, 1)],
        base_time(),
        clock,
    )
    .await;
    let hits = f.hits("feishu");
    assert_eq!(hits.len(), 1, "19021 is not retried");
    assert_eq!(hits[0].verdict, "rejected by the service's checks");
    assert_eq!(s.sinks[0], ("fs".to_string(), 0, 1));
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_with_backoff_and_retry_after_keeping_the_key() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    f.script(
        "webhook",
        vec![
            Reply::Status(503),
            Reply::RetryAfter(429, 30),
            Reply::Status(408),
            Reply::Ok,
        ],
    );
    f.script("feishu", vec![Reply::Code(11232), Reply::Ok]);
    let cfg = [
        sink("wh", "webhook", &format!("{}/webhook/x", f.base), ""),
        sink(
            "fs",
            "feishu",
            &format!("{}/feishu/hook/x", f.base),
            "secret_env = \"FEISHU_SECRET\"",
        ),
    ]
    .concat();
    let s = run(
        &cfg,
        &[booked("e1", "m1", ROOM_A, 9, 1)],
        base_time(),
        clock,
    )
    .await;
    let wh = f.hits("webhook");
    assert_eq!(wh.len(), 4);
    assert!(
        wh.iter()
            .all(|h| h.headers["idempotency-key"] == wh[0].headers["idempotency-key"]),
        "a retried notice keeps its key"
    );
    assert!(
        wh[2].at - wh[1].at >= Duration::from_secs(30),
        "Retry-After honoured: {:?}",
        wh[2].at - wh[1].at
    );
    assert!(
        wh[1].at - wh[0].at >= Duration::from_millis(500),
        "backoff between attempts"
    );
    let fs = f.hits("feishu");
    assert_eq!(
        fs.iter().map(|h| h.verdict.as_str()).collect::<Vec<_>>(),
        ["code 11232", "ok"],
        "rate-limit code with HTTP 200 is retried"
    );
    assert_eq!(
        s.sinks,
        [("wh".to_string(), 1, 0), ("fs".to_string(), 1, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_sink_becomes_dead_letters_and_never_delays_another() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    f.script("webhook", vec![Reply::Hang; 100]);
    let cfg = [
        sink(
            "dead",
            "webhook",
            &format!("{}/webhook/x", f.base),
            "timeout = \"5s\"\nmax_age = \"2m\"",
        ),
        sink(
            "refused",
            "webhook",
            "http://127.0.0.1:9/nothing-listens",
            "max_age = \"1m\"",
        ),
        sink(
            "fine",
            "slack",
            &format!("{}/slack/x", f.base),
            "rate_limit = [\"100/s\"]",
        ),
    ]
    .concat();
    let t0 = Instant::now();
    let events: Vec<String> = (0..3)
        .map(|i| booked(&format!("e{i}"), &format!("m{i}"), ROOM_A, 9 + i, 1))
        .collect();
    let s = run(&cfg, &events, base_time(), clock).await;
    let fine = f.hits("slack");
    assert_eq!(fine.len(), 3);
    assert!(
        fine[2].at - t0 < Duration::from_secs(1),
        "the healthy sink was not held up: {:?}",
        fine[2].at - t0
    );
    assert_eq!(s.sinks[2], ("fine".to_string(), 3, 0));
    assert_eq!(s.sinks[0].1, 0);
    assert_eq!(
        s.sinks[0].2, 3,
        "every message of the hung sink ends as a dead letter"
    );
    assert_eq!(s.sinks[1], ("refused".to_string(), 0, 3));
    let attempts = f.hits("webhook").len();
    assert!((3..20).contains(&attempts), "bounded attempts: {attempts}");
}

#[tokio::test(start_paused = true)]
async fn rate_limits_space_requests() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    // Slack's default is 1/s.
    let cfg = sink("sl", "slack", &format!("{}/slack/x", f.base), "");
    let events: Vec<String> = (0..4)
        .map(|i| booked(&format!("e{i}"), &format!("m{i}"), ROOM_A, 9 + i, 1))
        .collect();
    run(&cfg, &events, base_time(), clock).await;
    let hits = f.hits("slack");
    assert_eq!(hits.len(), 4);
    for w in hits.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_secs(1),
            "{:?}",
            w[1].at - w[0].at
        );
    }
    assert!(hits[3].at - hits[0].at < Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn quiet_hours_hold_notices_until_the_window_ends() {
    // 01:00 UTC = 09:00 in Shanghai; quiet 08:00-12:00 there.
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    let cfg = sink(
        "wh",
        "webhook",
        &format!("{}/webhook/x", f.base),
        "quiet_hours = \"08:00-12:00\"\ntime_zone = \"Asia/Shanghai\"",
    );
    let t0 = Instant::now();
    let s = run(
        &cfg,
        &[
            booked("e1", "m1", ROOM_A, 9, 1),
            booked("e2", "m2", ROOM_A, 10, 1),
        ],
        base_time(),
        clock,
    )
    .await;
    let hits = f.hits("webhook");
    assert_eq!(hits.len(), 2, "held, never dropped");
    let waited = hits[0].at - t0;
    assert!(
        waited >= Duration::from_secs(3 * 3600) && waited < Duration::from_secs(3 * 3600 + 5),
        "{waited:?}"
    );
    assert_eq!(hits[0].body["booking"]["uid"], "m1", "order kept");
    assert_eq!(s.sinks[0], ("wh".to_string(), 2, 0));
}

#[tokio::test(start_paused = true)]
async fn panels_get_the_latest_state_and_never_an_older_one_after_a_newer() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    // The panel is down at first: snapshots pile up and must coalesce.
    f.script("panel", vec![Reply::Status(503), Reply::Status(503)]);
    let cfg = sink(
        "pn",
        "panel",
        &format!("{}/panel/{{room}}", f.base),
        &format!(
            "headers = {{ Authorization = \"Bearer ${{PANEL_TOKEN}}\" }}\nrate_limit = [\"100/s\"]\nrooms = [\"{ROOM_A}\"]"
        ),
    );
    let mut events = vec![booked("e0", "m", ROOM_A, 9, 1)];
    for i in 1..6 {
        events.push(moved(&format!("e{i}"), "m", ROOM_A, 9 + i, 1 + i as i64));
    }
    let s = run(&cfg, &events, base_time(), clock).await;
    let hits = f.hits("panel");
    let delivered: Vec<&Hit> = hits.iter().filter(|h| h.verdict == "ok").collect();
    let last = delivered.last().expect("a snapshot arrived");
    assert_eq!(
        last.body["next"][0]["start"], "2026-05-01T22:00:00+08:00",
        "the final state: {}",
        last.raw
    );
    assert!(
        delivered.len() < events.len(),
        "coalesced: {} deliveries for {} events",
        delivered.len(),
        events.len()
    );
    // Never an older state after a newer one: starts only move later.
    let starts: Vec<&str> = delivered
        .iter()
        .map(|h| h.body["next"][0]["start"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    assert_eq!(
        last.headers.get("authorization").map(String::as_str),
        Some("Bearer panel-token-1")
    );
    assert!(last.path.ends_with(ROOM_A), "{}", last.path);
    assert!(s.sinks[0].1 >= 1);
}

/// One panel device offline (its room's URL fails) delays only its own
/// room: the other room's panel gets its snapshot at once, and the
/// offline one gets the latest state when it is back.
#[tokio::test(start_paused = true)]
async fn an_offline_panel_device_does_not_hold_back_other_rooms() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    f.script(&format!("panel/{ROOM_A}"), vec![Reply::Status(503); 4]);
    let cfg = sink(
        "pn",
        "panel",
        &format!("{}/panel/{{room}}", f.base),
        &format!("rate_limit = [\"100/s\"]\nrooms = [\"{ROOM_A}\", \"{ROOM_B}\"]"),
    );
    let events = vec![
        booked("a1", "ma", ROOM_A, 9, 1),
        booked("b1", "mb", ROOM_B, 10, 2),
        moved("a2", "ma", ROOM_A, 11, 3),
    ];
    let t0 = Instant::now();
    run(&cfg, &events, base_time(), clock).await;
    let hits = f.hits("panel");
    let first_b = hits
        .iter()
        .find(|h| h.path.ends_with(ROOM_B) && h.verdict == "ok")
        .expect("room B's panel got its snapshot");
    assert!(
        first_b.at - t0 < Duration::from_millis(100),
        "room B waited {:?} behind room A's retries",
        first_b.at - t0
    );
    let a: Vec<&Hit> = hits.iter().filter(|h| h.path.ends_with(ROOM_A)).collect();
    assert_eq!(
        a.iter().map(|h| h.verdict.as_str()).collect::<Vec<_>>(),
        ["503", "503", "503", "503", "ok"],
        "room A retried with backoff until its device answered"
    );
    assert!(
        a[4].at - t0 >= Duration::from_secs(7),
        "1+2+4 s of backoff at least"
    );
    assert_eq!(
        a[4].body["next"][0]["start"], "2026-05-01T19:00:00+08:00",
        "room A got the latest state, not the first"
    );
}

/// Panels stay right without events: pushes when a booking is about to
/// start, starts and ends, and on the heartbeat; on the real long
/// connection, in paused time.
#[tokio::test(start_paused = true)]
async fn panels_are_pushed_at_booking_boundaries_and_on_the_heartbeat() {
    use crate::support::gateway::{Gateway, Order};
    let clock = test_clock(base_time()); // 01:00 UTC
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let bot = TestBot::builder()
        .tag("boundary")
        .config(lark_config(&gw.base_url(), ""))
        .config("[delivery]\nheartbeat = \"6h\"\n")
        .sink(sink(
            "pn",
            "panel",
            &format!("{}/panel/{{room}}", f.base),
            &format!("rate_limit = [\"100/s\"]\nrooms = [\"{ROOM_A}\"]"),
        ))
        .env("APP_SECRET", "x")
        .clock(clock)
        .start()
        .await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    // 02:00–03:00 UTC (10:00–11:00 in Shanghai)
    gw.send_event(&booked("e1", "m1", ROOM_A, 2, 1), 1, Order::InOrder);
    f.wait("seven pushes", |s| {
        s.hits.iter().filter(|h| h.service == "panel").count() >= 7
    })
    .await;
    let hits = f.hits("panel");
    let seen: Vec<(u64, &str, &str)> = hits
        .iter()
        .map(|h| {
            (
                (h.at - t0).as_secs() / 60,
                h.body["status"].as_str().unwrap_or("?"),
                h.headers["x-roomcast-event"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen[..4],
        [
            (0, "free", "e1"),
            (50, "starting_soon", "clock:2026-05-01T01:50:00Z"),
            (60, "busy", "clock:2026-05-01T02:00:00Z"),
            (120, "free", "clock:2026-05-01T03:00:00Z")
        ],
        "{seen:?}"
    );
    assert_eq!(seen[4].0, 360, "the heartbeat, 6 h after start: {seen:?}");
    assert_eq!(seen[5].0, 720, "{seen:?}");
    // Local midnight in Shanghai (16:00 UTC): the day's view starts over.
    assert_eq!(
        seen[6],
        (900, "free", "clock:2026-05-01T16:00:00Z"),
        "{seen:?}"
    );
    bot.stop().await.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn feishu_post_messages_pass_the_services_checks() {
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    let cfg = sink(
        "fs",
        "feishu",
        &format!("{}/feishu/hook/p", f.base),
        "secret_env = \"FEISHU_SECRET\"\ntemplate = \"feishu_post\"",
    );
    run(
        &cfg,
        &[booked("e1", "m1", ROOM_A, 9, 1)],
        base_time(),
        clock,
    )
    .await;
    let hits = f.hits("feishu");
    assert_eq!(hits[0].verdict, "ok", "{}", hits[0].raw);
    assert_eq!(
        hits[0].body["content"]["post"]["zh_cn"]["title"],
        "新预订 · Alpha"
    );
}

/// Issue 14: a reload changes the sinks in place. A sink's new URL is
/// taken by its running worker with what it has queued (the retried notice
/// keeps its key and event), a removed sink gets nothing more, a new one
/// gets what follows; `/metrics` shows the sinks configured now. A new
/// sink that cannot be opened refuses the whole reload. (No store: a
/// paused clock runs ahead while the runtime waits on another thread's
/// fsync, and would pass the fake's deadline.)
#[tokio::test(start_paused = true)]
async fn a_reload_changes_sinks_in_place_and_keeps_what_is_queued() {
    use crate::http::Webhook;
    roomcast::tls::init();
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    f.script("webhook/old", vec![Reply::Status(503); 1000]);
    let config = |sinks: &str| {
        format!(
            "[source]\nkind = \"webhook\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\nverification_token_env = \"VT\"\n[http]\nlisten = \"127.0.0.1:0\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"en\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\n{sinks}"
        )
    };
    let file = |name: &str, path: &str| {
        format!(
            "[[sinks]]\nname = \"{name}\"\nkind = \"file\"\npath = \"{path}\"\ntemplate = \"webhook\"\n"
        )
    };
    let wh = |path: &str| {
        sink(
            "wh",
            "webhook",
            &format!("{}/webhook/{path}", f.base),
            "max_age = \"30d\"",
        )
    };
    let bot = TestBot::builder()
        .tag("sinks-reload")
        .config(config(&[wh("old"), file("gone", "gone.jsonl")].concat()))
        .env("VT", "tok")
        .clock(clock)
        .start()
        .await;
    let (st, _) = bot
        .post(&booked("e1", "m1", ROOM_A, 9, ms(2026, 5, 1, 0, 0)), &[])
        .await;
    assert_eq!(st, 200);
    f.wait("a failed attempt at the old URL", |s| {
        s.hits.iter().any(|h| h.path == "old")
    })
    .await;

    let r = bot
        .reload(&config(&[wh("new"), file("added", "added.jsonl")].concat()))
        .await
        .expect("reloaded");
    assert_eq!(r.sinks.updated, ["wh"], "{r:?}");
    assert_eq!(r.sinks.added, ["added"]);
    assert_eq!(r.sinks.removed, ["gone"]);
    assert!(r.sinks.replaced.is_empty() && r.restart.is_empty(), "{r:?}");
    f.wait("the queued notice at the new URL", |s| {
        s.hits.iter().any(|h| h.path == "new")
    })
    .await;
    let old = f
        .hits("webhook")
        .into_iter()
        .find(|h| h.path == "old")
        .unwrap();
    let new = f
        .hits("webhook")
        .into_iter()
        .find(|h| h.path == "new")
        .unwrap();
    assert_eq!(new.verdict, "ok");
    assert_eq!(
        new.headers["idempotency-key"], old.headers["idempotency-key"],
        "the same notice, under its key"
    );
    assert_eq!(new.headers["x-roomcast-event"], "e1");

    // A move, pushed, and its notice arriving at the new URL.
    let move_to = async |uuid: &str, hour: u32, minute: u32| {
        let body = moved(uuid, "m1", ROOM_A, hour, ms(2026, 5, 1, 0, minute));
        assert_eq!(bot.post(&body, &[]).await.0, 200);
        f.wait(&format!("{uuid} at the new URL"), |s| {
            s.hits
                .iter()
                .any(|h| h.path == "new" && h.headers["x-roomcast-event"] == uuid)
        })
        .await;
    };
    move_to("e2", 10, 1).await;
    let metrics = bot.text("/metrics").await;
    assert!(metrics.contains("sink=\"added\""), "{metrics}");
    assert!(
        !metrics.contains("sink=\"gone\""),
        "a removed sink is not scraped"
    );

    // gone.jsonl is a file: no folder can be made there. Refused as a
    // whole: `added` keeps running, `wh` keeps its URL.
    let e = bot
        .reload(&config(
            &[wh("other"), file("bad", "gone.jsonl/bad.jsonl")].concat(),
        ))
        .await
        .expect_err("refused");
    assert!(
        e.contains("sink `bad`") && e.contains("gone.jsonl/bad.jsonl"),
        "{e}"
    );
    move_to("e3", 11, 2).await;

    let dir = bot.dir.clone();
    let summary = bot.stop().await.expect("clean stop");
    let events = |name: &str| -> Vec<String> {
        jsonl(&dir.join(name))
            .iter()
            .map(|l| l["event_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(events("gone.jsonl"), ["e1"], "nothing after its removal");
    assert_eq!(events("added.jsonl"), ["e2", "e3"]);
    assert!(f.hits("webhook").iter().all(|h| h.path != "other"));
    let names: Vec<&str> = summary.sinks.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        names,
        ["wh", "added", "gone"],
        "the removed sink's count is kept"
    );
    assert_eq!(summary.sinks[0], ("wh".to_string(), 3, 0));
}

/// Issue 15: a panel sink with `min_interval` pushes one room's panel at
/// most that often, and the last state always arrives: two changes inside
/// the interval are one push, at its end, of the latest.
#[tokio::test(start_paused = true)]
async fn min_interval_spaces_panel_pushes_and_ends_on_the_latest_state() {
    use crate::support::gateway::{Gateway, Order};
    let clock = test_clock(base_time());
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let bot = TestBot::builder()
        .tag("min-interval")
        .config(lark_config(&gw.base_url(), ""))
        .sink(sink(
            "eink",
            "panel",
            &format!("{}/panel/{{room}}", f.base),
            &format!("rate_limit = [\"100/s\"]\nrooms = [\"{ROOM_A}\"]\nmin_interval = \"3m\""),
        ))
        .env("APP_SECRET", "x")
        .clock(clock)
        .start()
        .await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    gw.send_event(&booked("e1", "m1", ROOM_A, 9, 1), 1, Order::InOrder);
    f.wait("the first push", |s| s.hits.len() == 1).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    gw.send_event(&moved("e2", "m1", ROOM_A, 10, 2), 2, Order::InOrder);
    tokio::time::sleep(Duration::from_secs(30)).await;
    gw.send_event(&moved("e3", "m1", ROOM_A, 11, 3), 3, Order::InOrder);
    f.wait("the second push", |s| s.hits.len() == 2).await;
    // Long enough for any push held back to have gone.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let hits = f.hits("panel");
    let seen: Vec<(u64, &str, &str)> = hits
        .iter()
        .map(|h| {
            (
                (h.at - t0).as_secs(),
                h.headers["x-roomcast-event"].as_str(),
                h.body["next"][0]["start"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "e1", "2026-05-01T17:00:00+08:00"),
            (180, "e3", "2026-05-01T19:00:00+08:00"),
            // The view's own change at 01:05 waits for 3 min after e3's.
            (
                360,
                "clock:2026-05-01T01:05:00Z",
                "2026-05-01T19:00:00+08:00"
            ),
            (
                600,
                "clock:2026-05-01T01:10:00Z",
                "2026-05-01T19:00:00+08:00"
            ),
        ],
        "e2's snapshot was replaced by e3's while it waited"
    );
    bot.stop().await.expect("clean shutdown");
}
