//! Nothing lost across restarts: the store end to end.

use std::collections::BTreeMap;
use std::process::Command;

use roomcast::app::App;
use roomcast::check;
use tokio_util::sync::CancellationToken;

use crate::sinks::{Fake, Reply, test_clock};
use crate::support::*;

fn config(dir: &std::path::Path, url: &str, extra: &str) -> String {
    let _ = dir;
    format!(
        "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n[store]\npath = \"state/roomcast.db\"\n[delivery]\ndrain_timeout = \"3s\"\n[display]\ntime_zone = \"Asia/Shanghai\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\npanels = [\"pn\"]\n[[sinks]]\nname = \"wh\"\nkind = \"webhook\"\nurl = \"{url}/webhook/in\"\n[[sinks]]\nname = \"pn\"\nkind = \"panel\"\nurl = \"{url}/panel/{{room}}\"\n{extra}"
    )
}

async fn run_once(
    dir: &std::path::Path,
    clock: roomcast::app::Clock,
) -> Result<roomcast::app::Summary, roomcast::app::AppError> {
    let env: BTreeMap<String, String> = BTreeMap::new();
    let checked = check::load(&dir.join("config.toml"), &env).unwrap_or_else(|e| panic!("{e:?}"));
    let mut app = App::new(checked.config, checked.templates);
    app.clock = clock;
    app.run(CancellationToken::new()).await
}

fn created(i: usize) -> String {
    event(
        "created",
        &format!("ev-{i}"),
        ms(2026, 5, 1, 0, 0) + i as i64,
        (&format!("m{i}"), 0),
        (
            ms(2026, 5, 1, 2 + i as u32, 0),
            ms(2026, 5, 1, 3 + i as u32, 0),
        ),
        &[ROOM_A],
    )
}

#[tokio::test(start_paused = true)]
async fn queued_messages_survive_a_restart_and_keep_their_keys() {
    let clock = test_clock(chrono::DateTime::from_timestamp_millis(ms(2026, 5, 1, 1, 0)).unwrap());
    let dir = temp_dir("store");
    // First run: the sinks are down (nothing listens): everything stays queued.
    write(
        &dir.join("events.jsonl"),
        &[created(1), created(2)].join("\n"),
    );
    write(
        &dir.join("config.toml"),
        &config(&dir, "http://127.0.0.1:9", ""),
    );
    let s = run_once(&dir, clock.clone()).await.expect("first run");
    assert_eq!(s.applied, 2);

    // The queue is visible to operators.
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["outbox", "--config", "config.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("3 message(s)") && listing.contains("pending"),
        "two notices and the room's latest snapshot (the older one was superseded): {listing}"
    );

    // Second run, same events again (a replay, as a redelivery would be),
    // sinks up: the queued messages go out, nothing is applied twice.
    let f = Fake::start(clock.clone()).await;
    write(&dir.join("config.toml"), &config(&dir, &f.base, ""));
    let s = run_once(&dir, clock.clone()).await.expect("second run");
    assert_eq!((s.applied, s.duplicates), (0, 2), "{s}");
    let notices = f.hits("webhook");
    assert_eq!(notices.len(), 2);
    let events: Vec<&str> = notices
        .iter()
        .map(|h| h.headers["x-roomcast-event"].as_str())
        .collect();
    assert_eq!(events, ["ev-1", "ev-2"], "in order");
    // The panel: the queued snapshot (superseded) and the startup push show
    // the restored schedule.
    let panels = f.hits("panel");
    let last = panels.last().expect("panel pushed");
    assert_eq!(
        last.body["next"].as_array().map(Vec::len),
        Some(2),
        "{}",
        last.raw
    );

    // Third run: nothing left to send.
    let f2 = Fake::start(clock.clone()).await;
    write(&dir.join("config.toml"), &config(&dir, &f2.base, ""));
    run_once(&dir, clock.clone()).await.expect("third run");
    assert!(
        f2.hits("webhook").is_empty(),
        "a notice recorded as delivered is not sent again"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["outbox"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 message(s)"));

    // `rooms` reads the store.
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["rooms", "--at", "2026-05-01T01:30:00Z"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let rooms = String::from_utf8_lossy(&out.stdout);
    assert!(
        rooms.contains("Alpha") && rooms.contains("11:00–12:00") && rooms.contains("12:00–13:00"),
        "{rooms}"
    );
}

#[tokio::test(start_paused = true)]
async fn dead_letters_can_be_retried_from_the_cli() {
    let clock = test_clock(chrono::DateTime::from_timestamp_millis(ms(2026, 5, 1, 1, 0)).unwrap());
    let dir = temp_dir("dead");
    let f = Fake::start(clock.clone()).await;
    f.script("webhook", vec![Reply::Status(400)]);
    write(&dir.join("events.jsonl"), &created(1));
    write(&dir.join("config.toml"), &config(&dir, &f.base, ""));
    run_once(&dir, clock.clone()).await.expect("run");
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["outbox"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing
        .lines()
        .find(|l| l.contains("failed"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("HTTP 400"), "{line}");
    let id = line.split_whitespace().next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["outbox", "retry", id])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_once(&dir, clock.clone()).await.expect("run again");
    let hits = f.hits("webhook");
    assert_eq!(hits.len(), 2);
    assert_eq!(
        hits[0].headers["idempotency-key"],
        hits[1].headers["idempotency-key"]
    );
}

#[test]
fn a_locked_foreign_or_newer_store_is_refused_untouched() {
    let dir = temp_dir("refuse");
    write(&dir.join("events.jsonl"), "");
    write(
        &dir.join("config.toml"),
        &config(&dir, "http://127.0.0.1:9", ""),
    );
    let db = dir.join("state/roomcast.db");
    // Held by another instance.
    let held = roomcast::store::Store::open(&db, true).expect("open");
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another running roomcast"));
    drop(held);
    // A file that is not a roomcast store.
    std::fs::remove_file(&db).unwrap();
    let _ = std::fs::remove_file(dir.join("state/roomcast.db-wal"));
    write(&db, &"not a database ".repeat(20));
    let before = std::fs::read(&db).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a roomcast store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "left untouched");
}
