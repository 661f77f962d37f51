//! What the clock sends by itself: reminders before bookings start, on
//! the fake gateway and a fake webhook, in paused time.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tokio::time::Instant;

use crate::support::gateway::{Gateway, Order};
use crate::support::*;

/// roomcast on the fake gateway, with one webhook sink to the fake
/// endpoints (`sink_extra` added to it) and `extra` config.
async fn bot(
    gw: &Gateway,
    f: &Fake,
    clock: roomcast::clock::TimeSource,
    sink_extra: &str,
    extra: &str,
    dir: Option<&std::path::Path>,
) -> TestBot {
    let mut b = TestBot::builder()
        .tag("timed")
        .config(lark_config(&gw.base_url(), ""))
        .config(extra)
        .sink(format!(
            "[[sinks]]\nname = \"team\"\nkind = \"webhook\"\nurl = \"{}/webhook/team\"\nrate_limit = [\"100/s\"]\n{sink_extra}\n",
            f.base
        ))
        .env("APP_SECRET", "x")
        .clock(clock);
    if let Some(d) = dir {
        b = b.in_dir(d);
    }
    b.start().await
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// An event changing booking `uid` to `start`–`end` (UTC) in Alpha.
fn ev(
    kind: &str,
    uuid: &str,
    uid: &str,
    span: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> String {
    event(
        kind,
        uuid,
        now.timestamp_millis(),
        (uid, 0),
        (span.0.timestamp_millis(), span.1.timestamp_millis()),
        &[ROOM_A],
    )
}

/// The reminders the webhook got: (minutes after `t0`, booking uid,
/// summary line).
fn reminders(f: &Fake, t0: Instant) -> Vec<(u64, String, String)> {
    f.hits("webhook")
        .iter()
        .filter(|h| h.body["change"] == "reminder" && h.verdict == "ok")
        .map(|h| {
            (
                (h.at - t0).as_secs() / 60,
                h.body["booking"]["uid"].as_str().unwrap_or("?").to_string(),
                h.body["summary"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Issue 15: a reminder comes `lead` before a booking starts, from the
/// schedule as it is then: a booking moved after its reminder time was
/// computed is reminded at its new time, a cancelled one not at all, one
/// booked or moved less than the lead before its start gets none (its
/// notice came just then).
#[tokio::test(start_paused = true)]
async fn reminders_follow_the_schedule_as_it_is_when_they_are_due() {
    let base = at(2026, 5, 1, 1, 0);
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let bot = bot(&gw, &f, clock.clone(), "reminders = [\"10m\"]", "", None).await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    let h = |hh, mm| at(2026, 5, 1, hh, mm);
    gw.send_event(
        &ev("created", "e1", "m1", (h(2, 0), h(3, 0)), base),
        1,
        Order::InOrder,
    );
    gw.send_event(
        &ev("created", "e2", "m2", (h(2, 30), h(3, 0)), base),
        1,
        Order::InOrder,
    );
    gw.send_event(
        &ev("created", "e3", "m3", (h(3, 0), h(4, 0)), base),
        1,
        Order::InOrder,
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
    let now = clock();
    gw.send_event(
        &ev("deleted", "e4", "m2", (h(2, 30), h(3, 0)), now),
        1,
        Order::InOrder,
    );
    gw.send_event(
        &ev("updated", "e5", "m3", (h(4, 0), h(5, 0)), now),
        1,
        Order::InOrder,
    );
    // Booked at 01:05 for 01:12: inside the lead.
    gw.send_event(
        &ev("created", "e6", "m4", (h(1, 12), h(1, 30)), now),
        1,
        Order::InOrder,
    );
    tokio::time::sleep(Duration::from_secs(5 * 3600)).await;
    assert_eq!(
        reminders(&f, t0),
        [
            (
                50,
                "m1".to_string(),
                "Starts in 10 min · Alpha · Fri, May 1 10:00–11:00".to_string()
            ),
            (
                170,
                "m3".to_string(),
                "Starts in 10 min · Alpha · Fri, May 1 12:00–13:00".to_string()
            ),
        ]
    );
    let hit = f
        .hits("webhook")
        .into_iter()
        .find(|h| h.body["change"] == "reminder")
        .unwrap();
    assert_eq!(
        hit.headers["x-roomcast-event"],
        "reminder:2026-05-01T01:50:00Z"
    );
    assert_eq!(hit.body["event_id"], "reminder:2026-05-01T01:50:00Z");
    bot.stop().await.expect("clean stop");
}

/// Issue 15: reminders across a DST change are real time before the
/// start: New York springs forward at 02:00 on 2026-03-08, so a 03:05 EDT
/// start is reminded at 01:55 EST (10 min) and 01:05 EST (1 h), and the
/// text shows local times.
#[tokio::test(start_paused = true)]
async fn reminders_across_a_dst_change_come_at_the_real_lead() {
    let base = at(2026, 3, 8, 6, 0); // 01:00 EST
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let bot = bot(
        &gw,
        &f,
        clock.clone(),
        "reminders = [\"10m\", \"1h\"]\ntime_zone = \"America/New_York\"\nlocale = \"en\"",
        "",
        None,
    )
    .await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    // 07:05–08:00 UTC = 03:05–04:00 EDT.
    let span = (at(2026, 3, 8, 7, 5), at(2026, 3, 8, 8, 0));
    gw.send_event(&ev("created", "e1", "m1", span, base), 1, Order::InOrder);
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let got: Vec<(u64, String)> = reminders(&f, t0)
        .into_iter()
        .map(|(m, _, s)| (m, s))
        .collect();
    assert_eq!(
        got,
        [
            (
                5,
                "Starts in 1 h · Alpha · Sun, Mar 8 03:05–04:00".to_string()
            ),
            (
                55,
                "Starts in 10 min · Alpha · Sun, Mar 8 03:05–04:00".to_string()
            ),
        ]
    );
    let start = f
        .hits("webhook")
        .into_iter()
        .find(|h| h.body["change"] == "reminder")
        .map(|h| h.body["booking"]["start"].clone());
    assert_eq!(start, Some(Value::from("2026-03-08T03:05:00-04:00")));
    bot.stop().await.expect("clean stop");
}

/// Issue 15: reminders are made once, whatever restarts: one made but not
/// yet delivered when roomcast stops is sent after the restart under its
/// key (and not made again); one already sent is not sent again; one whose
/// time passed while roomcast was down, for a booking not yet started, is
/// sent late, saying how long is really left.
#[tokio::test(start_paused = true)]
async fn reminders_are_made_once_across_restarts() {
    let base = at(2026, 5, 1, 1, 0);
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    f.script("webhook/team", vec![Reply::Status(503); 1000]);
    let gw = Gateway::start().await;
    let store = "[store]\npath = \"state/roomcast.db\"\nsync = \"normal\"\n[delivery]\ndrain_timeout = \"2s\"\n";
    let sink = "reminders = [\"10m\"]\nchanges = []";
    let bot1 = bot(&gw, &f, clock.clone(), sink, store, None).await;
    let dir = bot1.dir.clone();
    gw.wait("connected", |g| g.connections == 1).await;
    let h = |hh, mm| at(2026, 5, 1, hh, mm);
    gw.send_event(
        &ev("created", "e1", "m1", (h(1, 30), h(2, 0)), base),
        1,
        Order::InOrder,
    );
    gw.send_event(
        &ev("created", "e2", "m2", (h(2, 30), h(3, 0)), base),
        1,
        Order::InOrder,
    );
    gw.wait("both acked", |g| g.unacked.is_empty()).await;
    f.wait("m1's reminder tried", |s| {
        s.hits.iter().any(|h| h.body["change"] == "reminder")
    })
    .await;
    // Stopped while it waits to be retried: kept in the outbox.
    bot1.stop().await.expect("clean stop");

    f.script("webhook/team", vec![]);
    let bot2 = bot(&gw, &f, clock.clone(), sink, store, Some(&dir)).await;
    f.wait("m1's reminder delivered", |s| {
        s.hits
            .iter()
            .any(|h| h.body["change"] == "reminder" && h.verdict == "ok")
    })
    .await;
    // Down from 02:00 to 02:25, through m2's reminder time (02:20).
    let until = |t: DateTime<Utc>| (t - clock()).to_std().unwrap_or_default();
    tokio::time::sleep(until(h(2, 0))).await;
    bot2.stop().await.expect("clean stop");
    tokio::time::sleep(until(h(2, 25))).await;
    let bot3 = bot(&gw, &f, clock.clone(), sink, store, Some(&dir)).await;
    f.wait("m2's late reminder", |s| {
        s.hits.iter().any(|h| h.body["booking"]["uid"] == "m2")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    bot3.stop().await.expect("clean stop");

    let hits: Vec<Hit> = f
        .hits("webhook")
        .into_iter()
        .filter(|h| h.body["change"] == "reminder")
        .collect();
    let m1: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.body["booking"]["uid"] == "m1")
        .collect();
    assert!(
        m1.len() >= 2,
        "tried, then sent after the restart: {}",
        m1.len()
    );
    assert_eq!(
        m1.iter().filter(|h| h.verdict == "ok").count(),
        1,
        "delivered once"
    );
    assert!(
        m1.iter()
            .all(|h| h.headers["idempotency-key"] == m1[0].headers["idempotency-key"]),
        "one reminder, one key"
    );
    let m2: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.body["booking"]["uid"] == "m2")
        .collect();
    assert_eq!(m2.len(), 1, "made once, late");
    assert_eq!(
        m2[0].body["summary"], "Starts in 5 min · Alpha · Fri, May 1 10:30–11:00",
        "the time really left"
    );
}
