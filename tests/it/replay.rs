//! The app run loop on a replay source, driven through the library with a
//! fixed clock.

use chrono::TimeZone;

use crate::support::*;

async fn run(
    dir: &std::path::Path,
    config: &str,
    events: &[String],
    env: &[(&str, &str)],
) -> roomcast::metrics::Summary {
    let now = chrono::Utc.with_ymd_and_hms(2026, 5, 1, 1, 30, 0).unwrap();
    let mut bot = TestBot::builder()
        .in_dir(dir)
        .config(config)
        .events(events)
        .clock(roomcast::clock::fixed(now));
    for (k, v) in env {
        bot = bot.env(k, v);
    }
    bot.run().await.expect("run")
}

const BASE: &str = "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n";

fn notice_sink(path: &str) -> String {
    format!("[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"{path}\"\ntemplate = \"webhook\"\n")
}

#[tokio::test]
async fn out_of_order_and_duplicate_delivery_end_in_the_right_state() {
    let d = temp_dir("order");
    let t0 = ms(2026, 5, 1, 0, 0);
    let h = |x: u32| ms(2026, 5, 1, x, 0);
    let created = event("created", "e1", t0, ("m", 0), (h(2), h(3)), &[ROOM_A]);
    let moved = event(
        "updated",
        "e2",
        t0 + 2000,
        ("m", 0),
        (h(5), h(6)),
        &[ROOM_A],
    );
    let older_move = event(
        "updated",
        "e3",
        t0 + 1000,
        ("m", 0),
        (h(4), h(5)),
        &[ROOM_A],
    );
    let cfg = format!(
        "{BASE}{}[[sinks]]\nname = \"p\"\nkind = \"file\"\npath = \"panels.jsonl\"\ntemplate = \"panel\"\npayload = \"snapshot\"\nrooms = [\"{ROOM_A}\"]\n",
        notice_sink("n.jsonl")
    );
    let s = run(
        &d,
        &cfg,
        &[created.clone(), moved, older_move, created],
        &[],
    )
    .await;
    assert_eq!((s.applied, s.stale, s.duplicates), (2, 1, 1), "{s}");
    let n = jsonl(&d.join("n.jsonl"));
    let kinds: Vec<&str> = n
        .iter()
        .map(|x| x["body"]["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["booked", "rescheduled"]);
    assert_eq!(
        n[1]["body"]["previous"]["start"],
        "2026-05-01T02:00:00+00:00"
    );
    assert_eq!(n[1]["event_id"], "e2");
    let p = jsonl(&d.join("panels.jsonl"));
    let last = &p.last().unwrap()["body"];
    assert_eq!(
        last["next"][0]["start"], "2026-05-01T05:00:00+00:00",
        "{last}"
    );
}

#[tokio::test]
async fn delete_before_create_leaves_nothing() {
    let d = temp_dir("delfirst");
    let t0 = ms(2026, 5, 1, 0, 0);
    let del = serde_json::json!({"uuid": "d", "type": "event_callback", "token": "tok", "event": {
        "type": "third_party_meeting_room_event_deleted", "event_time": (t0 + 5000).to_string(), "uid": "m", "original_time": 0}}).to_string();
    let created = event(
        "created",
        "c",
        t0,
        ("m", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A],
    );
    let s = run(
        &d,
        &format!("{BASE}{}", notice_sink("n.jsonl")),
        &[del, created],
        &[],
    )
    .await;
    assert_eq!((s.applied, s.stale, s.messages), (1, 1, 0), "{s}");
}

#[tokio::test]
async fn verification_token_mismatch_is_rejected() {
    let d = temp_dir("token");
    let good = event(
        "created",
        "a",
        ms(2026, 5, 1, 0, 0),
        ("m1", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A],
    );
    let forged = event(
        "created",
        "b",
        ms(2026, 5, 1, 0, 0),
        ("m2", 0),
        (ms(2026, 5, 1, 4, 0), ms(2026, 5, 1, 5, 0)),
        &[ROOM_A],
    )
    .replace("\"tok\"", "\"forged\"");
    let cfg = format!(
        "{BASE}[platform]\napp_id = \"cli_a\"\nverification_token_env = \"VT\"\n{}",
        notice_sink("n.jsonl")
    );
    let s = run(&d, &cfg, &[good, forged], &[("VT", "tok")]).await;
    assert_eq!((s.applied, s.rejected), (1, 1), "{s}");
    assert_eq!(jsonl(&d.join("n.jsonl")).len(), 1);
}

#[tokio::test]
async fn unknown_rooms_are_kept_by_id_or_ignored() {
    let d = temp_dir("unknown");
    let ev = event(
        "created",
        "a",
        ms(2026, 5, 1, 0, 0),
        ("m1", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A, ROOM_B],
    );
    let rooms = format!("[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\n");
    let s = run(
        &d,
        &format!("{BASE}{rooms}{}", notice_sink("n.jsonl")),
        std::slice::from_ref(&ev),
        &[],
    )
    .await;
    assert_eq!(s.changes, 2);
    let n = jsonl(&d.join("n.jsonl"));
    assert_eq!(n[0]["body"]["room"]["name"], "Alpha");
    assert_eq!(
        n[1]["body"]["room"]["name"], ROOM_B,
        "an unknown room is shown by id"
    );

    let d = temp_dir("unknown2");
    let cfg = format!(
        "{BASE}[schedule]\nignore_unknown_rooms = true\n{rooms}{}",
        notice_sink("n.jsonl")
    );
    let s = run(&d, &cfg, &[ev], &[]).await;
    assert_eq!(s.changes, 1);
}

#[tokio::test]
async fn sink_filters_by_room_and_change_kind() {
    let d = temp_dir("filters");
    let t0 = ms(2026, 5, 1, 0, 0);
    let evs = [
        event(
            "created",
            "1",
            t0,
            ("m1", 0),
            (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
            &[ROOM_A],
        ),
        event(
            "created",
            "2",
            t0,
            ("m2", 0),
            (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
            &[ROOM_B],
        ),
        event(
            "updated",
            "3",
            t0 + 1,
            ("m1", 0),
            (ms(2026, 5, 1, 4, 0), ms(2026, 5, 1, 5, 0)),
            &[ROOM_A],
        ),
    ];
    let cfg = format!(
        "{BASE}[[sinks]]\nname = \"a-moves\"\nkind = \"file\"\npath = \"a.jsonl\"\ntemplate = \"webhook\"\nrooms = [\"{ROOM_A}\"]\nchanges = [\"rescheduled\"]\n"
    );
    run(&d, &cfg, &evs, &[]).await;
    let n = jsonl(&d.join("a.jsonl"));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["body"]["change"], "rescheduled");
}
