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
        .env("FEISHU_SECRET", FEISHU_SECRET)
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
    let h = |hh, mm| at(2026, 5, 1, hh, mm);
    let until = |t: DateTime<Utc>| (t - clock()).to_std().unwrap_or_default();
    let bot1 = steady(bot(&gw, &f, clock.clone(), sink, store, None)).await;
    let dir = bot1.dir.clone();
    steady(gw.wait("connected", |g| g.connections == 1)).await;
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
    steady(gw.wait("both acked", |g| g.unacked.is_empty())).await;
    tokio::time::sleep(until(h(1, 21))).await;
    steady(f.wait("m1's reminder tried", |s| {
        s.hits.iter().any(|h| h.body["change"] == "reminder")
    }))
    .await;
    // Stopped while it waits to be retried: kept in the outbox.
    steady(bot1.stop()).await.expect("clean stop");

    f.script("webhook/team", vec![]);
    let bot2 = steady(bot(&gw, &f, clock.clone(), sink, store, Some(&dir))).await;
    steady(f.wait("m1's reminder delivered", |s| {
        s.hits
            .iter()
            .any(|h| h.body["change"] == "reminder" && h.verdict == "ok")
    }))
    .await;
    // Down from 01:40 to 02:25, through m2's reminder time (02:20).
    tokio::time::sleep(until(h(1, 40))).await;
    steady(bot2.stop()).await.expect("clean stop");
    tokio::time::sleep(until(h(2, 25))).await;
    let bot3 = steady(bot(&gw, &f, clock.clone(), sink, store, Some(&dir))).await;
    steady(f.wait("m2's late reminder", |s| {
        s.hits.iter().any(|h| h.body["booking"]["uid"] == "m2")
    }))
    .await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    steady(bot3.stop()).await.expect("clean stop");

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

/// The daily agendas a path of the fake got: (minutes after `t0`, body).
fn digests(f: &Fake, path: &str, t0: Instant) -> Vec<(u64, Value)> {
    f.hits("webhook")
        .into_iter()
        .filter(|h| h.path == path && h.body["digest"] == true)
        .map(|h| ((h.at - t0).as_secs() / 60, h.body))
        .collect()
}

/// (room name, [time ranges]) of an agenda.
fn agenda(body: &Value) -> Vec<(String, Vec<String>)> {
    body["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("?").to_string(),
                r["bookings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| b["time_range"].as_str().unwrap_or("?").to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Issue 15: `digest = "08:30"` posts the day's agenda once on each of
/// `digest_days` (Monday to Friday by default) at that time in the sink's
/// zone: every room of the sink, a room without bookings included; the
/// Feishu card passes the service's checks, in Chinese.
#[tokio::test(start_paused = true)]
async fn a_daily_agenda_comes_once_on_each_working_day() {
    let base = at(2026, 4, 30, 23, 0); // Friday 07:00 in Shanghai
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let extra = format!(
        "[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n\
         [[sinks]]\nname = \"agenda\"\nkind = \"webhook\"\nurl = \"{base}/webhook/agenda\"\ndigest = \"08:30\"\nchanges = []\n\
         [[sinks]]\nname = \"card\"\nkind = \"feishu\"\nurl = \"{base}/feishu/hook/x\"\nsecret_env = \"FEISHU_SECRET\"\nlocale = \"zh-CN\"\ndigest = \"08:30\"\nchanges = []\n",
        base = f.base
    );
    let bot = bot(&gw, &f, clock.clone(), "", &extra, None).await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    let h = |hh, mm| at(2026, 5, 1, hh, mm);
    gw.send_event(
        &ev("created", "e1", "m1", (h(6, 0), h(7, 0)), base),
        1,
        Order::InOrder,
    );
    gw.send_event(
        &ev("created", "e2", "m2", (h(2, 0), h(3, 0)), base),
        1,
        Order::InOrder,
    );
    // Monday's booking.
    let monday = (at(2026, 5, 4, 1, 0), at(2026, 5, 4, 1, 30));
    gw.send_event(&ev("created", "e3", "m3", monday, base), 1, Order::InOrder);
    tokio::time::sleep(Duration::from_secs(4 * 24 * 3600)).await;
    let got = digests(&f, "agenda", t0);
    let when: Vec<u64> = got.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        when,
        [90, 90 + 3 * 24 * 60],
        "Friday 08:30, then Monday 08:30 (not the weekend)"
    );
    assert_eq!(got[0].1["date"], "2026-05-01");
    assert_eq!(got[0].1["title"], "Rooms today · Fri, May 1");
    assert_eq!(
        agenda(&got[0].1),
        [
            (
                "Alpha".to_string(),
                vec!["10:00–11:00".to_string(), "14:00–15:00".to_string()]
            ),
            ("Beta".to_string(), vec![]),
        ]
    );
    assert_eq!(
        agenda(&got[1].1),
        [
            ("Alpha".to_string(), vec!["09:00–09:30".to_string()]),
            ("Beta".to_string(), vec![]),
        ]
    );
    let hit = f
        .hits("webhook")
        .into_iter()
        .find(|h| h.path == "agenda" && h.body["digest"] == true)
        .unwrap();
    assert_eq!(
        hit.headers["x-roomcast-event"],
        "digest:2026-05-01T00:30:00Z"
    );
    let cards: Vec<Hit> = f.hits("feishu");
    assert_eq!(cards.len(), 2, "one card a working day");
    assert!(
        cards.iter().all(|c| c.verdict == "ok"),
        "signed and shaped as Feishu checks"
    );
    let card = &cards[0].raw;
    assert!(
        card.contains("今日会议室 · 5月1日 周五")
            && card.contains("无预订")
            && card.contains("2 个会议室 · 2 个预订"),
        "{card}"
    );
    bot.stop().await.expect("clean stop");
}

/// Issue 15: a day is the sink's local day. New York's spring-forward
/// Sunday has 23 hours and no 02:30 (the agenda comes at 03:00 EDT);
/// Kiritimati (UTC+14) is a day ahead of UTC, so its Friday agenda goes
/// out on Thursday in UTC and lists Friday's bookings there.
#[tokio::test(start_paused = true)]
async fn a_daily_agenda_follows_the_sinks_day_across_dst_and_the_date_line() {
    let base = at(2026, 3, 5, 12, 0);
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let extra = format!(
        "[[sinks]]\nname = \"ny\"\nkind = \"webhook\"\nurl = \"{base}/webhook/ny\"\ntime_zone = \"America/New_York\"\nlocale = \"en\"\ndigest = \"02:30\"\ndigest_days = [\"sun\"]\nchanges = []\n\
         [[sinks]]\nname = \"kiri\"\nkind = \"webhook\"\nurl = \"{base}/webhook/kiri\"\ntime_zone = \"Pacific/Kiritimati\"\nlocale = \"en\"\ndigest = \"08:30\"\ndigest_days = [\"Friday\"]\nchanges = []\n",
        base = f.base
    );
    let bot = bot(&gw, &f, clock.clone(), "", &extra, None).await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    let b = |uid: &str, start: DateTime<Utc>| {
        ev(
            "created",
            uid,
            uid,
            (start, start + chrono::Duration::minutes(30)),
            base,
        )
    };
    for (uid, start) in [
        ("k1", at(2026, 3, 5, 20, 0)), // Fri 10:00 in Kiritimati
        ("k2", at(2026, 3, 6, 10, 0)), // Sat 00:00 there
        ("n0", at(2026, 3, 8, 5, 30)), // Sun 00:30 EST
        ("n1", at(2026, 3, 9, 3, 30)), // Sun 23:30 EDT
        ("n2", at(2026, 3, 9, 4, 30)), // Mon 00:30 EDT
    ] {
        gw.send_event(&b(uid, start), 1, Order::InOrder);
    }
    tokio::time::sleep(Duration::from_secs(5 * 24 * 3600)).await;
    let kiri = digests(&f, "kiri", t0);
    assert_eq!(kiri.len(), 1, "{kiri:?}");
    assert_eq!(
        kiri[0].0,
        6 * 60 + 30,
        "08:30 Friday there is 18:30 Thursday UTC"
    );
    assert_eq!(kiri[0].1["date"], "2026-03-06");
    assert_eq!(
        agenda(&kiri[0].1),
        [("Alpha".to_string(), vec!["10:00–10:30".to_string()])]
    );
    let ny = digests(&f, "ny", t0);
    assert_eq!(ny.len(), 1, "{ny:?}");
    assert_eq!(
        ny[0].0,
        (at(2026, 3, 8, 7, 0) - base).num_minutes() as u64,
        "02:30 does not exist that day: 03:00 EDT"
    );
    assert_eq!(ny[0].1["date"], "2026-03-08");
    assert_eq!(
        agenda(&ny[0].1),
        [(
            "Alpha".to_string(),
            vec!["00:30–01:00".to_string(), "23:30–24:00".to_string()]
        )]
    );
    bot.stop().await.expect("clean stop");
}

/// Issue 15: one agenda a day whatever restarts: a restart after it was
/// sent sends none; a fresh start after the day's time (no mark yet)
/// sends that day's at once; the next day comes as usual.
#[tokio::test(start_paused = true)]
async fn a_daily_agenda_is_sent_once_a_day_across_restarts() {
    let base = at(2026, 4, 30, 23, 0); // Friday 07:00 in Shanghai
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let extra = format!(
        "[store]\npath = \"state/roomcast.db\"\nsync = \"normal\"\n\
         [[sinks]]\nname = \"agenda\"\nkind = \"webhook\"\nurl = \"{base}/webhook/agenda\"\ndigest = \"08:30\"\ndigest_days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nchanges = []\n",
        base = f.base
    );
    let until = |t: DateTime<Utc>| (t - clock()).to_std().unwrap_or_default();
    let bot1 = steady(bot(&gw, &f, clock.clone(), "", &extra, None)).await;
    let dir = bot1.dir.clone();
    tokio::time::sleep(until(at(2026, 5, 1, 0, 31))).await;
    steady(f.wait("Friday's agenda", |s| {
        s.hits.iter().any(|h| h.body["digest"] == true)
    }))
    .await;
    tokio::time::sleep(until(at(2026, 5, 1, 2, 0))).await;
    steady(bot1.stop()).await.expect("clean stop");
    // Restarted the same morning, after sending: nothing again.
    let bot2 = steady(bot(&gw, &f, clock.clone(), "", &extra, Some(&dir))).await;
    tokio::time::sleep(until(at(2026, 5, 1, 12, 0))).await;
    steady(bot2.stop()).await.expect("clean stop");
    // Down over Saturday's 08:30 (00:30 UTC), back at 03:00 UTC: sent then.
    tokio::time::sleep(until(at(2026, 5, 2, 3, 0))).await;
    let bot3 = steady(bot(&gw, &f, clock.clone(), "", &extra, Some(&dir))).await;
    steady(f.wait("Saturday's agenda", |s| {
        s.hits.iter().filter(|h| h.body["digest"] == true).count() == 2
    }))
    .await;
    tokio::time::sleep(until(at(2026, 5, 3, 12, 0))).await;
    steady(bot3.stop()).await.expect("clean stop");
    let dates: Vec<String> = f
        .hits("webhook")
        .iter()
        .filter(|h| h.body["digest"] == true)
        .map(|h| h.body["date"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(dates, ["2026-05-01", "2026-05-02", "2026-05-03"]);
}

/// Issue 15: each service's agenda template, in each language, passes
/// what that service checks (DingTalk's signature and markdown, WeCom's
/// key and markdown, Slack's text), and the plain text reads as a list.
#[tokio::test(start_paused = true)]
async fn every_service_accepts_its_daily_agenda() {
    let base = at(2026, 4, 30, 23, 0); // Friday 07:00 in Shanghai
    let clock = test_clock(base);
    let f = Fake::start(clock.clone()).await;
    let gw = Gateway::start().await;
    let mut extra = format!("[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\n");
    for locale in ["en", "zh-CN"] {
        for (kind, url, more) in [
            ("slack", "slack/x", ""),
            (
                "dingtalk",
                "dingtalk/robot/send?access_token=t",
                "secret_env = \"DING_SECRET\"\n",
            ),
            ("wecom", "wecom/cgi-bin/webhook/send?key=k", ""),
        ] {
            extra.push_str(&format!(
                "[[sinks]]\nname = \"{kind}-{locale}\"\nkind = \"{kind}\"\nurl = \"{}/{url}\"\n{more}locale = \"{locale}\"\ndigest = \"08:30\"\nchanges = []\n",
                f.base
            ));
        }
        extra.push_str(&format!(
            "[[sinks]]\nname = \"text-{locale}\"\nkind = \"file\"\npath = \"agenda-{locale}.jsonl\"\nlocale = \"{locale}\"\ndigest = \"08:30\"\nchanges = []\n"
        ));
    }
    let bot = TestBot::builder()
        .tag("timed")
        .config(lark_config(&gw.base_url(), ""))
        .config(extra)
        .env("APP_SECRET", "x")
        .env("DING_SECRET", DING_SECRET)
        .clock(clock)
        .start()
        .await;
    gw.wait("connected", |g| g.connections == 1).await;
    let h = |hh, mm| at(2026, 5, 1, hh, mm);
    gw.send_event(
        &ev("created", "e1", "m1", (h(2, 0), h(3, 0)), base),
        1,
        Order::InOrder,
    );
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    for service in ["slack", "dingtalk", "wecom"] {
        let hits = f.hits(service);
        assert_eq!(hits.len(), 2, "{service}: one a language");
        for hit in &hits {
            assert_eq!(hit.verdict, "ok", "{service}: {}", hit.raw);
            assert!(
                hit.raw.contains("10:00–11:00")
                    && (hit.raw.contains("No bookings") || hit.raw.contains("无预订")),
                "{service}: {}",
                hit.raw
            );
        }
    }
    let dir = bot.dir.clone();
    bot.stop().await.expect("clean stop");
    let text = |locale: &str| -> String {
        jsonl(&dir.join(format!("agenda-{locale}.jsonl")))
            .iter()
            .filter(|l| l["subject"] == "digest")
            .map(|l| l["body"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        text("en"),
        "Rooms today · Fri, May 1\nAlpha: 10:00–11:00\nBeta: No bookings\n2 rooms · 1 booking\n"
    );
    assert_eq!(
        text("zh-CN"),
        "今日会议室 · 5月1日 周五\nAlpha: 10:00–11:00\nBeta: 无预订\n2 个会议室 · 1 个预订\n"
    );
}
