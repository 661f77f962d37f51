//! The whole calendar: backfill and reconciliation against the fake room
//! APIs, with the webhook as the event source, fake chat and panel
//! endpoints, in paused time.

use std::process::Command;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::http::Webhook;
use crate::support::bot::Builder;
use crate::support::fake_platform::{APP_SECRET, Answer, FakeBooking, FakePlatform, Repeat};
use crate::support::*;

/// Monday 2026-05-04, `h:m` in Shanghai.
fn sh(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 5, d, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct Setup {
    p: FakePlatform,
    f: Fake,
    clock: roomcast::clock::TimeSource,
}

/// The fakes, on a clock that starts Monday 08:00 in Shanghai.
async fn setup() -> Setup {
    let clock = test_clock(sh(4, 8, 0));
    Setup {
        p: FakePlatform::start().await,
        f: Fake::start(clock.clone()).await,
        clock,
    }
}

impl Setup {
    /// roomcast taking webhook events, reconciling with the fake every
    /// five minutes (`sync`: more `[sync]` keys); rooms Alpha and Beta on one
    /// panel sink, notices to a webhook sink. `extra` is added to the config.
    fn bot(&self, sync: &str, extra: &str) -> Builder {
        TestBot::builder()
            .tag("sync")
            .config("[source]\nkind = \"webhook\"\n")
            .config(self.p.platform_toml())
            .config("[http]\nlisten = \"127.0.0.1:0\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"en\"\n[delivery]\nheartbeat = \"off\"\n")
            .config(format!("[sync]\ninterval = \"5m\"\n{sync}"))
            .rooms(format!(
                "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\npanels = [\"pn\"]\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\npanels = [\"pn\"]\n"
            ))
            .sink(format!(
                "[[sinks]]\nname = \"wh\"\nkind = \"webhook\"\nurl = \"{}/webhook/in\"\n",
                self.f.base
            ))
            .sink(format!(
                "[[sinks]]\nname = \"pn\"\nkind = \"panel\"\nurl = \"{}/panel/{{room}}\"\nrate_limit = [\"1000/s\"]\n",
                self.f.base
            ))
            .config(extra)
            .env("APP_SECRET", APP_SECRET)
            .env("VT", "tok")
            .clock(self.clock.clone())
    }

    fn book(&self, b: FakeBooking) {
        self.p.with(|s| s.bookings.push(b));
    }

    /// Wait until `n` freebusy calls more than `since` have been answered.
    async fn fetched(&self, since: usize, n: usize) {
        self.p
            .wait("freebusy calls", |s| {
                s.calls.get("freebusy").copied().unwrap_or(0) >= since + n
            })
            .await;
    }

    fn freebusy(&self) -> usize {
        self.p.calls("freebusy")
    }

    /// The last panel body pushed for a room.
    fn panel(&self, room: &str) -> Option<Value> {
        self.f
            .hits("panel")
            .into_iter()
            .rev()
            .find(|h| h.path == room)
            .map(|h| h.body)
    }

    async fn panel_shows(&self, room: &str, what: &str) {
        let (f, room, what) = (&self.f, room.to_string(), what.to_string());
        f.wait(&format!("panel {room} showing {what}"), move |s| {
            s.hits
                .iter()
                .rev()
                .find(|h| h.service == "panel" && h.path == room)
                .is_some_and(|h| h.raw.contains(&what))
        })
        .await;
    }

    fn notices(&self) -> Vec<Value> {
        self.f.hits("webhook").into_iter().map(|h| h.body).collect()
    }
}

fn next_ranges(panel: &Value) -> Vec<String> {
    panel["next"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|n| n["time_range"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A weekly and a daily series booked long before roomcast started: every
/// occurrence in the window is shown (the daily one seven times), with a
/// moved exception in its new place and not in its old one; the first
/// fetch announces nothing.
#[tokio::test(start_paused = true)]
async fn series_booked_before_start_show_every_occurrence() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "weekly",
        ROOM_A,
        sh(4, 10, 0) - chrono::Duration::weeks(3),
        60,
        Repeat::Weekly,
    ));
    let mut daily = FakeBooking::new(
        "daily",
        ROOM_A,
        sh(4, 9, 0) - chrono::Duration::days(20),
        30,
        Repeat::Daily,
    );
    daily
        .exceptions
        .insert(sh(7, 9, 0), Some((sh(7, 15, 0), sh(7, 15, 30))));
    s.book(daily);
    // Paused time with a store: waits go through `steady`, so the clock
    // never jumps ahead while the store's thread commits.
    let bot = steady(s.bot("", "").store().start()).await;
    steady(s.panel_shows(ROOM_A, "10:00–11:00")).await;
    let today = s.panel(ROOM_A).unwrap();
    assert_eq!(
        next_ranges(&today),
        ["09:00–09:30", "10:00–11:00"],
        "{today}"
    );
    assert!(s.notices().is_empty(), "no chat flood at start");
    let dir = bot.dir.clone();
    steady(bot.stop()).await.expect("clean stop");

    // The week as `roomcast rooms --json` shows it, from the store.
    for (day, want) in [
        (4, vec!["09:00–09:30", "10:00–11:00"]),
        (5, vec!["09:00–09:30"]),
        (6, vec!["09:00–09:30"]),
        (7, vec!["15:00–15:30"]),
        (8, vec!["09:00–09:30"]),
        (9, vec!["09:00–09:30"]),
        (10, vec!["09:00–09:30"]),
    ] {
        let at = sh(day, 8, 0).to_rfc3339();
        let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["rooms", "--json", "--at", &at])
            .current_dir(&dir)
            .env("APP_SECRET", APP_SECRET)
            .env("VT", "tok")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let alpha: Value = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Value>()
            .map(|v| v.unwrap())
            .find(|v| v["room"]["id"] == ROOM_A)
            .expect("Alpha");
        assert_eq!(next_ranges(&alpha), want, "May {day}");
    }
}

/// A room swap with no time change (no event) is found by the next
/// reconciliation and announced once.
#[tokio::test(start_paused = true)]
async fn a_room_swap_without_an_event_is_announced_once() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "m1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = s.bot("", "").start().await;
    s.panel_shows(ROOM_A, "14:00–15:00").await;
    s.p.with(|st| st.bookings[0].rooms = vec![ROOM_B.to_string()]);
    s.f.wait("two notices", |st| {
        st.hits.iter().filter(|h| h.service == "webhook").count() >= 2
    })
    .await;
    let n = s.notices();
    let got: Vec<(&str, &str)> = n
        .iter()
        .map(|v| {
            (
                v["change"].as_str().unwrap(),
                v["room"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("booked", ROOM_B), ("cancelled", ROOM_A)]);
    let hits = s.f.hits("webhook");
    assert!(
        hits[0].headers["x-roomcast-event"].starts_with("sync:"),
        "{:?}",
        hits[0].headers
    );
    s.panel_shows(ROOM_B, "14:00–15:00").await;
    // Two more reconciliations: nothing more to say.
    let calls = s.freebusy();
    s.fetched(calls, 2).await;
    assert_eq!(s.notices().len(), 2, "announced once");
    bot.stop().await.expect("clean stop");
}

/// An event and a fetch racing on one booking end in the newest state
/// with one notice, in either order.
#[tokio::test(start_paused = true)]
async fn an_event_and_a_fetch_racing_end_in_the_newest_state_with_one_notice() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "m1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = s.bot("", "").start().await;
    s.panel_shows(ROOM_A, "14:00–15:00").await;

    // The event first (it asks for a fetch, which then agrees).
    s.p.with(|st| {
        st.bookings[0].start = sh(4, 15, 0);
        st.bookings[0].end = sh(4, 16, 0);
    });
    let calls = s.freebusy();
    let now = (s.clock)().timestamp_millis() + 1000;
    let moved = event(
        "updated",
        "ev-1",
        now,
        ("m1", 0),
        (
            sh(4, 15, 0).timestamp_millis(),
            sh(4, 16, 0).timestamp_millis(),
        ),
        &[ROOM_A],
    );
    assert_eq!(bot.post(&moved, &[]).await.0, 200);
    s.fetched(calls, 1).await;
    s.panel_shows(ROOM_A, "15:00–16:00").await;
    assert_eq!(s.notices().len(), 1, "{:?}", s.notices());
    assert_eq!(s.notices()[0]["change"], "rescheduled");

    // The fetch first: the event that comes later is stale.
    s.p.with(|st| {
        st.bookings[0].start = sh(4, 16, 0);
        st.bookings[0].end = sh(4, 17, 0);
    });
    let when_moved = (s.clock)().timestamp_millis();
    s.f.wait("the fetch's notice", |st| {
        st.hits.iter().filter(|h| h.service == "webhook").count() >= 2
    })
    .await;
    s.panel_shows(ROOM_A, "16:00–17:00").await;
    let late = event(
        "updated",
        "ev-2",
        when_moved,
        ("m1", 0),
        (
            sh(4, 16, 0).timestamp_millis(),
            sh(4, 17, 0).timestamp_millis(),
        ),
        &[ROOM_A],
    );
    assert_eq!(bot.post(&late, &[]).await.0, 200);
    let calls = s.freebusy();
    s.fetched(calls, 1).await;
    let n = s.notices();
    assert_eq!(n.len(), 2, "{n:?}");
    assert_eq!(n[1]["change"], "rescheduled");
    assert_eq!(
        bot.metrics.stale.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    bot.stop().await.expect("clean stop");
}

/// Start-up on a tenant with 50 existing bookings: the panels show them,
/// no chat notice is sent.
#[tokio::test(start_paused = true)]
async fn startup_with_50_existing_bookings_sends_no_chat_notices() {
    let s = setup().await;
    for i in 0..50 {
        let room = if i % 2 == 0 { ROOM_A } else { ROOM_B };
        let day = 4 + (i as u32 / 10);
        s.book(FakeBooking::new(
            &format!("b{i}"),
            room,
            sh(day, 9 + (i as u32 % 10), 0),
            30,
            Repeat::Once,
        ));
    }
    let bot = s.bot("", "").start().await;
    s.panel_shows(ROOM_A, "09:00–09:30").await;
    let calls = s.freebusy();
    s.fetched(calls, 1).await;
    assert!(s.notices().is_empty(), "{:?}", s.notices());
    bot.stop().await.expect("clean stop");
}

/// With a store, a restart announces nothing again, and changes made
/// while roomcast was down are announced (once).
#[tokio::test(start_paused = true)]
async fn a_restart_reannounces_nothing() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "m1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    // Steady paused time: the store's thread must not let the clock leap
    // (support::steady).
    let bot = steady(s.bot("", "").store().start()).await;
    steady(s.panel_shows(ROOM_A, "14:00–15:00")).await;
    s.book(FakeBooking::new(
        "m2",
        ROOM_A,
        sh(4, 16, 0),
        60,
        Repeat::Once,
    ));
    steady(s.f.wait("booked", |st| {
        st.hits.iter().any(|h| h.service == "webhook")
    }))
    .await;
    let dir = bot.dir.clone();
    steady(bot.stop()).await.expect("clean stop");
    assert_eq!(s.notices().len(), 1);

    // While it is down, m1 is cancelled.
    s.p.with(|st| st.bookings.retain(|b| b.uid != "m1"));
    let calls = s.freebusy();
    let bot = steady(s.bot("", "").store().in_dir(&dir).start()).await;
    steady(s.fetched(calls, 2)).await;
    steady(s.f.wait("the cancellation", |st| {
        st.hits.iter().filter(|h| h.service == "webhook").count() >= 2
    }))
    .await;
    let n = s.notices();
    let got: Vec<(&str, &str)> = n
        .iter()
        .map(|v| {
            (
                v["change"].as_str().unwrap(),
                v["booking"]["uid"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("booked", "m2"), ("cancelled", "m1")]);
    steady(bot.stop()).await.expect("clean stop");
}

/// A storm of 504s: the last schedule stays on screen, marked with its
/// age; `/readyz` names the stale rooms, `/metrics` counts the failures.
#[tokio::test(start_paused = true)]
async fn a_504_storm_keeps_the_last_schedule_and_marks_it_stale() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "m1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = s.bot("stale_after = \"15m\"\n", "").start().await;
    s.panel_shows(ROOM_A, "14:00–15:00").await;
    let synced = sh(4, 8, 0);
    s.p.with(|st| st.outage = Some(Answer::Status(504)));
    let calls = s.freebusy();
    // Five reconciliations fail (each with its retries): 25 minutes.
    s.fetched(calls, 5 * 4).await;
    let get = |p: &str| reqwest::get(format!("{}{p}", bot.base));
    let room: Value = get(&format!("/rooms/{ROOM_A}.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        next_ranges(&room),
        ["14:00–15:00"],
        "the last schedule stays: {room}"
    );
    assert_eq!(room["sync_stale"], true, "{room}");
    assert_eq!(
        room["synced_at"],
        synced
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .to_rfc3339(),
        "{room}"
    );
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(
        ready["stale_rooms"],
        serde_json::json!([ROOM_A, ROOM_B]),
        "{ready}"
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            "roomcast_api_failures_total{api=\"meeting_room/freebusy\",code=\"http_504\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_sync_oldest_age_seconds"),
        "{metrics}"
    );
    // The platform is back (with a new booking, to see when the fetch is
    // applied): fresh again.
    s.p.with(|st| {
        st.outage = None;
        st.bookings.push(FakeBooking::new(
            "m2",
            ROOM_A,
            sh(4, 17, 0),
            60,
            Repeat::Once,
        ));
    });
    s.panel_shows(ROOM_A, "17:00–18:00").await;
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["stale_rooms"], serde_json::json!([]), "{ready}");
    bot.stop().await.expect("clean stop");
}

/// The tenant token expires mid-run and is renewed ahead of time; a token
/// the platform stops accepting is renewed once and the call retried.
#[tokio::test(start_paused = true)]
async fn the_token_is_renewed_before_expiry_and_when_refused() {
    let s = setup().await;
    s.p.with(|st| st.token_life = 400);
    s.book(FakeBooking::new(
        "m1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = s.bot("", "").start().await;
    s.panel_shows(ROOM_A, "14:00–15:00").await;
    assert_eq!(s.p.calls("token"), 1);
    let calls = s.freebusy();
    s.fetched(calls, 2).await;
    assert!(s.p.calls("token") >= 2, "renewed before it expired");
    // Long-lived tokens from now on, then the platform forgets every one.
    s.p.with(|st| st.token_life = 7200);
    let calls = s.freebusy();
    s.fetched(calls, 1).await;
    s.p.with(|st| st.tokens.clear());
    let tokens = s.p.calls("token");
    s.book(FakeBooking::new(
        "m2",
        ROOM_A,
        sh(4, 16, 0),
        60,
        Repeat::Once,
    ));
    s.f.wait("the next fetch's notice", |st| {
        st.hits.iter().any(|h| h.service == "webhook")
    })
    .await;
    assert_eq!(s.p.calls("token"), tokens + 1, "renewed once");
    assert!(s.p.with(|st| st.refused.is_empty()));
    bot.stop().await.expect("clean stop");
}

/// Frequency limits are waited out as the platform asks, and calls are
/// never larger than 20 rooms.
#[tokio::test(start_paused = true)]
async fn frequency_limits_are_waited_out_and_calls_hold_20_rooms() {
    let s = setup().await;
    let mut rooms = String::new();
    for i in 0..45 {
        rooms.push_str(&format!("[[rooms]]\nid = \"omm_many{i:028}\"\n"));
    }
    s.p.with(|st| st.script.push_back(Answer::RateLimited(7)));
    let t0 = tokio::time::Instant::now();
    let bot = s.bot("", &rooms).start().await;
    s.fetched(0, 4).await;
    assert!(t0.elapsed() >= Duration::from_secs(7), "waited the reset");
    let sizes = s.p.with(|st| st.freebusy_rooms.clone());
    assert_eq!(sizes, [20, 20, 20, 7], "47 rooms in calls of at most 20");
    bot.stop().await.expect("clean stop");
}

/// Privacy per room and per sink: organizer names and titles only where
/// asked for, "Private" for the platform's private bookings whatever the
/// setting, titles never asked for where nobody shows them; and a title
/// cannot inject markup or a mention into any output.
#[tokio::test(start_paused = true)]
async fn privacy_per_room_and_sink_and_titles_that_cannot_inject() {
    let s = setup().await;
    let nasty = "<script>alert(1)</script> **bold** <at id=all></at>";
    let titled = |uid: &str, room: &str, h: u32, title: &str| {
        let mut b = FakeBooking::new(uid, room, sh(4, h, 0), 60, Repeat::Once);
        b.title = Some(title.into());
        b
    };
    s.book(titled("t1", ROOM_A, 14, nasty));
    let mut p1 = titled("p1", ROOM_A, 16, "Secret");
    p1.organizer = None;
    s.book(p1);
    let mut b1 = titled("b1", ROOM_B, 14, "Board");
    b1.organizer = Some(("Bo Wu".into(), "ou_bo".into()));
    s.book(b1);
    let b = &s.f.base;
    let bot = TestBot::builder()
        .tag("privacy")
        .config("[source]\nkind = \"webhook\"\n")
        .config(s.p.platform_toml())
        .config("[http]\nlisten = \"127.0.0.1:0\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"en\"\n[delivery]\nheartbeat = \"off\"\n[sync]\ninterval = \"5m\"\n")
        .rooms(format!(
            "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\nprivacy = \"title\"\npanels = [\"pn\"]\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\nprivacy = \"busy\"\n"
        ))
        .sink(format!("[[sinks]]\nname = \"wh\"\nkind = \"webhook\"\nurl = \"{b}/webhook/in\"\nprivacy = \"organizer\"\n"))
        .sink(format!("[[sinks]]\nname = \"pn\"\nkind = \"panel\"\nurl = \"{b}/panel/{{room}}\"\n"))
        .sink(format!("[[sinks]]\nname = \"fs\"\nkind = \"feishu\"\nurl = \"{b}/feishu/hook/x\"\nsecret_env = \"FEISHU_SECRET\"\nprivacy = \"title\"\n"))
        .sink(format!("[[sinks]]\nname = \"sl\"\nkind = \"slack\"\nurl = \"{b}/slack/x\"\nprivacy = \"title\"\nrate_limit = [\"100/s\"]\n"))
        .env("APP_SECRET", APP_SECRET)
        .env("VT", "tok")
        .env("FEISHU_SECRET", FEISHU_SECRET)
        .clock(s.clock.clone())
        .start()
        .await;
    s.panel_shows(ROOM_A, "Private").await;
    let get = |p: String| reqwest::get(format!("{}{p}", bot.base));
    let a: Value = get(format!("/rooms/{ROOM_A}.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let who: Vec<&Value> = a["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["who"])
        .collect();
    assert_eq!(who, [&Value::from(nasty), &Value::from("Private")], "{a}");
    let b_room: Value = get(format!("/rooms/{ROOM_B}.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        b_room["next"][0]["who"],
        Value::Null,
        "times only: {b_room}"
    );
    let page = get(format!("/rooms/{ROOM_A}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped in HTML"
    );
    assert!(!page.contains("<script>alert(1)"), "never raw in HTML");
    assert!(page.contains("Private"));
    // Titles were asked for room A's named booking only.
    assert_eq!(s.p.with(|st| st.titles_asked.clone()), ["t1"]);

    // A booking made now is announced with its title where sinks show it.
    s.book(titled("t2", ROOM_A, 18, nasty));
    s.f.wait("three notices", |st| {
        ["webhook", "feishu", "slack"]
            .iter()
            .all(|svc| st.hits.iter().any(|h| h.service == *svc))
    })
    .await;
    let card = s.f.hits("feishu")[0].raw.clone();
    assert!(
        card.contains("＜at id=all＞＜／at＞") || card.contains("＜at id=all＞"),
        "{card}"
    );
    assert!(!card.contains("<at id=all>"), "no mention injected: {card}");
    assert!(card.contains("＊＊bold＊＊"), "{card}");
    assert_eq!(s.f.hits("feishu")[0].verdict, "ok");
    let slack = s.f.hits("slack")[0].raw.clone();
    assert!(
        !slack.contains("<script>") && slack.contains("＜script＞"),
        "{slack}"
    );
    let wh = &s.f.hits("webhook")[0].body;
    assert_eq!(wh["booking"]["organizer_name"], "Ann Lee", "{wh}");
    assert_eq!(
        wh["booking"]["title"],
        Value::Null,
        "the webhook sink shows names, not titles: {wh}"
    );
    bot.stop().await.expect("clean stop");
}

/// A directory with two buildings and floors, a room out of service and
/// a name that would break naive TOML.
fn directory(p: &FakePlatform) {
    p.with(|st| {
        for (id, name, parent) in [
            ("omb_hq", "HQ", "0"),
            ("omb_hq_3", "3F", "omb_hq"),
            ("omb_lab", "Lab \"B\"", "0"),
            ("omb_lab_1", "1F", "omb_lab"),
        ] {
            st.levels.insert(id.into(), (name.into(), parent.into()));
        }
        st.rooms = vec![
            (
                ROOM_A.into(),
                "Alpha \"Big\"\nRoom".into(),
                "omb_hq_3".into(),
                12,
                true,
            ),
            (ROOM_B.into(), "Beta".into(), "omb_hq_3".into(), 6, false),
            (
                "omm_cccccccccccccccccccccccccccccccc".into(),
                "Gamma".into(),
                "omb_lab_1".into(),
                4,
                true,
            ),
        ];
    });
}

/// `roomcast rooms discover` prints every room the app can see as config
/// that `roomcast check` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_discover_prints_valid_config() {
    let p = FakePlatform::start().await;
    directory(&p);
    let dir = temp_dir("discover");
    let base = format!(
        "[source]\nkind = \"webhook\"\n{}[http]\nlisten = \"127.0.0.1:0\"\n",
        p.platform_toml()
    );
    write(&dir.join("config.toml"), &base);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(args)
            .current_dir(&dir)
            .env("APP_SECRET", APP_SECRET)
            .env("VT", "tok")
            .output()
            .unwrap()
    };
    let out = run(&["rooms", "discover"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# HQ · 3F, 12 seats\n[[rooms]]"), "{text}");
    assert!(text.contains("out of service"), "{text}");
    assert!(text.contains("# Lab \"B\" · 1F, 4 seats"), "{text}");
    assert_eq!(
        text.matches("[[rooms]]").count(),
        3,
        "paged: every room: {text}"
    );
    write(&dir.join("config.toml"), &format!("{base}{text}"));
    let out = run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 rooms"));
}

/// `roomcast doctor` calls each API once: ok, or the scope to grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_scope_to_grant() {
    let p = FakePlatform::start().await;
    directory(&p);
    let dir = temp_dir("doctor");
    write(
        &dir.join("config.toml"),
        &format!(
            "[source]\nkind = \"webhook\"\n{}[http]\nlisten = \"127.0.0.1:0\"\n[[rooms]]\nid = \"{ROOM_A}\"\nprivacy = \"title\"\n",
            p.platform_toml()
        ),
    );
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["doctor", "--log", "trace"])
            .current_dir(&dir)
            .env("APP_SECRET", APP_SECRET)
            .env("VT", "tok")
            .output()
            .unwrap()
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !logs.contains(APP_SECRET) && !text.contains(APP_SECRET),
        "the app secret is never logged, even at trace level"
    );
    for api in [
        "tenant_access_token",
        "vc/rooms",
        "vc/room_levels",
        "meeting_room/freebusy",
        "meeting_room/summary",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok ") && l.contains(api)),
            "{api}: {text}"
        );
    }
    p.with(|st| st.denied = vec!["summary".into()]);
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(5), "titles are wanted here: {text}");
    assert!(text.contains("grant the scope `calendar:room`"), "{text}");
}

/// Rooms named only by id take their name, floor and capacity from the
/// directory; `[rooms_from]` shows every room under a level; a room out of
/// service says so on its panel.
#[tokio::test(start_paused = true)]
async fn the_directory_names_rooms_and_marks_those_out_of_service() {
    let s = setup().await;
    directory(&s.p);
    let gamma = "omm_cccccccccccccccccccccccccccccccc";
    s.book(FakeBooking::new(
        "g1",
        gamma,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = TestBot::builder()
        .tag("directory")
        .config("[source]\nkind = \"webhook\"\n")
        .config(s.p.platform_toml())
        .config("[http]\nlisten = \"127.0.0.1:0\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"en\"\n[sync]\ninterval = \"5m\"\n[rooms_from]\nlevels = [\"omb_lab\"]\n")
        .rooms(format!("[[rooms]]\nid = \"{ROOM_A}\"\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Board room\"\n"))
        .sink(format!("[[sinks]]\nname = \"pn\"\nkind = \"panel\"\nurl = \"{}/panel/{{room}}\"\nrooms = [\"{gamma}\"]\n", s.f.base))
        .env("APP_SECRET", APP_SECRET)
        .env("VT", "tok")
        .clock(s.clock.clone())
        .start()
        .await;
    s.panel_shows(gamma, "14:00–15:00").await;
    let get = |p: String| reqwest::get(format!("{}{p}", bot.base));
    let list: Value = get("/rooms".into()).await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Alpha \"Big\"\nRoom", "Board room", "Gamma"],
        "{list}"
    );
    let a: Value = get(format!("/rooms/{ROOM_A}.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            a["room"]["building"].as_str(),
            a["room"]["floor"].as_str(),
            a["room"]["capacity"].as_u64()
        ),
        (Some("HQ"), Some("3F"), Some(12)),
        "{a}"
    );
    let b: Value = get(format!("/rooms/{ROOM_B}.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["room"]["disabled"], true, "{b}");
    assert_eq!(b["room"]["disabled_text"], "Out of service", "{b}");
    let page = get(format!("/rooms/{ROOM_B}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Out of service"), "{page}");
    let g = s.panel(gamma).unwrap();
    assert_eq!(g["room"]["name"], "Gamma");
    assert_eq!(g["room"]["building"], "Lab \"B\"");
    bot.stop().await.expect("clean stop");
}

/// A room the platform says it cannot read (`error_room_ids`) keeps what
/// it showed: a partial fetch concludes nothing about it.
#[tokio::test(start_paused = true)]
async fn a_room_the_platform_cannot_read_keeps_its_schedule() {
    let s = setup().await;
    s.book(FakeBooking::new(
        "a1",
        ROOM_A,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    s.book(FakeBooking::new(
        "b1",
        ROOM_B,
        sh(4, 14, 0),
        60,
        Repeat::Once,
    ));
    let bot = s.bot("", "").start().await;
    s.panel_shows(ROOM_B, "14:00–15:00").await;
    s.p.with(|st| {
        st.unreadable = vec![ROOM_B.to_string()];
        st.bookings.clear();
    });
    s.f.wait("A's cancellation", |st| {
        st.hits.iter().any(|h| h.service == "webhook")
    })
    .await;
    let calls = s.freebusy();
    s.fetched(calls, 1).await;
    let n = s.notices();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["room"]["id"], ROOM_A);
    assert_eq!(
        next_ranges(&s.panel(ROOM_B).unwrap()),
        ["14:00–15:00"],
        "B is kept"
    );
    bot.stop().await.expect("clean stop");
}

/// Issue 15: reminders come from the complete schedule: a daily series
/// booked before roomcast started, known only from the room APIs, is
/// reminded before each occurrence.
#[tokio::test(start_paused = true)]
async fn reminders_come_for_each_occurrence_of_a_fetched_series() {
    let s = setup().await; // 08:00 on May 4 in Shanghai
    s.book(FakeBooking::new(
        "d1",
        ROOM_A,
        sh(4, 9, 0),
        30,
        Repeat::Daily,
    ));
    let extra = format!(
        "[[sinks]]\nname = \"remind\"\nkind = \"webhook\"\nurl = \"{}/webhook/remind\"\nreminders = [\"10m\"]\nchanges = []\n",
        s.f.base
    );
    let bot = s.bot("", &extra).start().await;
    let t0 = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2 * 24 * 3600 + 3600)).await;
    let got: Vec<(u64, String)> =
        s.f.hits("webhook")
            .iter()
            .filter(|h| h.path == "remind")
            .map(|h| {
                (
                    (h.at - t0).as_secs() / 60,
                    h.body["booking"]["start"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                )
            })
            .collect();
    assert_eq!(
        got,
        [
            (50, "2026-05-04T09:00:00+08:00".to_string()),
            (50 + 24 * 60, "2026-05-05T09:00:00+08:00".to_string()),
            (50 + 48 * 60, "2026-05-06T09:00:00+08:00".to_string()),
        ]
    );
    bot.stop().await.expect("clean stop");
}

/// Several instances on one PostgreSQL store: the periodic sync is the
/// leader's, but an event taken by another instance still has its rooms
/// fetched at once (an event cannot describe a series: the fetch brings
/// its occurrences) — by the instance that took it, as the leader never
/// hears of it. Real time: the leases and the change feed are the
/// database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_taken_by_a_follower_has_its_rooms_fetched() {
    let s = setup().await;
    let pg = PgSchema::new();
    let store = format!("[store]\n{}", pg.store_keys());
    let leader = s.bot("", &store).start().await;
    s.fetched(0, 1).await; // the leader's first sync
    let follower = s.bot("", &store).start().await;
    let roles = follower.metrics.roles.get().expect("a shared store");
    assert!(!roles.leader(), "the first instance leads");
    let calls = s.freebusy();
    let booked = event(
        "created",
        "ev-1",
        (s.clock)().timestamp_millis(),
        ("m1", 0),
        (
            sh(4, 15, 0).timestamp_millis(),
            sh(4, 16, 0).timestamp_millis(),
        ),
        &[ROOM_A],
    );
    assert_eq!(follower.post(&booked, &[]).await.0, 200);
    until("the event's room fetched", Duration::from_secs(10), || {
        s.freebusy() > calls
    })
    .await;
    follower.stop().await.expect("clean stop");
    leader.stop().await.expect("clean stop");
}
