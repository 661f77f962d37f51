use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;

use super::contract::{at, mark, msg, outbox_ids};
use super::sqlite::{APPLICATION_ID, Fold, MIGRATIONS, SCHEMA_VERSION};
use super::*;
use crate::model::{Booking, BookingKey, Organizer, RoomId};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "roomcast-store-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn round_trip_and_restart() {
    let d = dir();
    let p = d.join("rc.db");
    let now = at(1_700_000_000_000);
    let b = Booking {
        key: BookingKey::new("u", 0),
        start: at(1_700_000_100_000),
        end: at(1_700_000_200_000),
        rooms: vec![RoomId::new("omm_a")].into(),
        organizer: Arc::new(Organizer {
            open_id: Some(Arc::from("ou_x")),
            ..Organizer::default()
        }),
        title: None,
    };
    let (m1, m2) = (msg(1), msg(2));
    {
        let mut s = Sqlite::open(&p, true).unwrap();
        let mut items = [CommitItem {
            event_id: Some("e1".into()),
            written: Written {
                entries: vec![EntryRow {
                    key: b.key.clone(),
                    booking: Some(b.clone()),
                    occurrences: Vec::new(),
                    last_change: now,
                }],
                series_deleted: None,
            },
            messages: vec![m1, m2],
            ..Default::default()
        }];
        s.commit(now, &mut items, &[]).unwrap();
        let ids = outbox_ids(&items);
        assert_eq!(ids.len(), 2);
        s.record(&[mark(ids[0], OutboxState::Delivered, now)])
            .unwrap();
        assert!(
            matches!(Sqlite::open(&p, true), Err(StoreError::Locked(_))),
            "a second instance is refused"
        );
    }
    let s = Sqlite::open(&p, true).unwrap();
    let l = s.load(10).unwrap();
    assert_eq!(
        l.entries,
        vec![EntryRow {
            key: b.key.clone(),
            booking: Some(b),
            occurrences: Vec::new(),
            last_change: now
        }]
    );
    assert_eq!(l.seen, vec!["e1".to_string()]);
    assert_eq!(l.pending.len(), 1);
    assert_eq!(l.pending[0].message.body, "body 2");
    assert_eq!(l.pending[0].message.idempotency_key, "k2");
}

#[test]
fn foreign_corrupt_and_newer_files_are_refused_untouched() {
    let d = dir();
    let text = d.join("notes.db");
    std::fs::write(&text, "this is not a database, it is a shopping list: eggs, milk, tea, bread, and so on and on and on for a while longer").unwrap();
    let before = std::fs::read(&text).unwrap();
    assert!(matches!(
        Sqlite::open(&text, true),
        Err(StoreError::Foreign(_))
    ));
    assert_eq!(std::fs::read(&text).unwrap(), before);

    let other = d.join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    assert!(matches!(
        Sqlite::open(&other, true),
        Err(StoreError::Foreign(_))
    ));
    assert_eq!(std::fs::read(&other).unwrap(), before);

    let newer = d.join("newer.db");
    drop(Sqlite::open(&newer, true).unwrap());
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let before = std::fs::read(&newer).unwrap();
    assert!(matches!(
        Sqlite::open(&newer, true),
        Err(StoreError::Newer { .. })
    ));
    assert_eq!(std::fs::read(&newer).unwrap(), before);

    let broken = d.join("broken.db");
    drop(Sqlite::open(&broken, true).unwrap());
    let mut bytes = std::fs::read(&broken).unwrap();
    let len = bytes.len();
    for b in &mut bytes[100..len.min(4096)] {
        *b = 0xA5;
    }
    std::fs::write(&broken, &bytes).unwrap();
    assert!(Sqlite::open(&broken, true).is_err());
    assert_eq!(std::fs::read(&broken).unwrap(), bytes);
}

#[test]
fn prune_and_retry() {
    let d = dir();
    let mut s = Sqlite::open(&d.join("rc.db"), false).unwrap();
    let old = at(1_000_000_000_000);
    let mut items = [CommitItem {
        event_id: Some("e1".into()),
        messages: vec![msg(1)],
        ..Default::default()
    }];
    s.commit(old, &mut items, &[]).unwrap();
    let ids = outbox_ids(&items);
    s.record(&[Mark {
        error: Some("HTTP 500".into()),
        ..mark(ids[0], OutboxState::Dead, old)
    }])
    .unwrap();
    assert_eq!(s.outbox().unwrap().len(), 1);
    assert!(s.retry(ids[0]).unwrap());
    assert!(!s.retry(ids[0]).unwrap(), "only dead or failed rows");
    assert_eq!(s.load(10).unwrap().pending.len(), 1);
    s.record(&[mark(ids[0], OutboxState::Delivered, old)])
        .unwrap();
    assert_eq!(
        s.prune(at(1_100_000_000_000)).unwrap(),
        2,
        "the seen id and the delivered row"
    );
}

#[test]
fn seen_ids_survive_the_move_to_one_row_a_commit() {
    let d = dir();
    let p = d.join("rc.db");
    {
        // A schema-3 file: one seen row an event.
        let c = Connection::open(&p).unwrap();
        for m in &MIGRATIONS[..3] {
            c.execute_batch(m).unwrap();
        }
        for (i, id) in ["old-1", "old-2", "old-3"].iter().enumerate() {
            c.execute(
                "INSERT INTO seen_log (event_id, at) VALUES (?1, ?2)",
                rusqlite::params![id, 1_700_000_000_000i64 + i as i64],
            )
            .unwrap();
        }
        c.pragma_update(None, "user_version", 3).unwrap();
        c.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
    }
    let mut s = Sqlite::open(&p, true).unwrap();
    let now = at(1_700_000_100_000);
    let mut items: Vec<CommitItem> = ["new-1", "new-2"]
        .iter()
        .map(|id| CommitItem {
            event_id: Some(id.to_string()),
            ..Default::default()
        })
        .collect();
    s.commit(now, &mut items, &[]).unwrap();
    // Newest first, and the limit cuts inside a commit's row.
    let l = s.load(10).unwrap();
    assert_eq!(l.seen, ["new-2", "new-1", "old-3", "old-2", "old-1"]);
    assert_eq!(s.load(3).unwrap().seen, ["new-2", "new-1", "old-3"]);
    assert_eq!(s.load(1).unwrap().seen, ["new-2"]);
    // A commit's ids ride in its log row; a fold moves them on, in order,
    // and later commits' ids (in the log again) still come first.
    s.fold().unwrap();
    let mut more = [CommitItem {
        event_id: Some("new-3".into()),
        ..Default::default()
    }];
    s.commit(at(1_700_000_200_000), &mut more, &[]).unwrap();
    let newest = ["new-3", "new-2", "new-1", "old-3", "old-2", "old-1"];
    assert_eq!(s.load(10).unwrap().seen, newest);
    assert_eq!(s.load(4).unwrap().seen, newest[..4]);
    drop(s);
    let mut s = Sqlite::open(&p, true).unwrap();
    assert_eq!(s.load(10).unwrap().seen, newest, "across a restart");
    // Pruning forgets whole commits by their time.
    s.prune(at(1_700_000_050_000)).unwrap();
    assert_eq!(s.load(10).unwrap().seen, ["new-3", "new-2", "new-1"]);
}

#[test]
fn a_fold_keeps_the_last_row_of_each_booking_exactly() {
    let d = dir();
    let p = d.join("rc.db");
    let mut s = Sqlite::open(&p, true).unwrap();
    let now = at(1_700_000_000_000);
    let booking = |uid: &str, ot: i64, start: i64, rooms: &[&str], title: Option<&str>| Booking {
        key: BookingKey::new(uid, ot),
        start: at(start),
        end: at(start + 1_800_000),
        rooms: rooms.iter().map(|r| RoomId::new(r)).collect(),
        organizer: Arc::new(Organizer {
            open_id: Some(Arc::from("ou_x")),
            union_id: Some(Arc::from("on_\"quoted\" ü")),
            ..Organizer::default()
        }),
        title: title.map(crate::model::Title::from),
    };
    let row = |b: Option<Booking>, key: BookingKey, occ: Vec<(i64, i64)>, t: i64| EntryRow {
        key,
        booking: b,
        occurrences: occ.into_iter().map(|(a, b)| (at(a), at(b))).collect(),
        last_change: at(t),
    };
    let t0 = 1_700_000_100_000;
    let commits = vec![
        vec![
            row(
                Some(booking("a", 0, t0, &["omm_1"], None)),
                BookingKey::new("a", 0),
                vec![],
                1,
            ),
            row(
                Some(booking(
                    "b",
                    0,
                    t0,
                    &["omm_2"],
                    Some("Stand-up \\ \"daily\""),
                )),
                BookingKey::new("b", 0),
                vec![(t0, t0 + 1_800_000), (t0 + 86_400_000, t0 + 88_200_000)],
                2,
            ),
        ],
        vec![row(
            Some(booking("a", 0, t0 + 60_000, &["omm_1", "omm_3"], None)),
            BookingKey::new("a", 0),
            vec![],
            3,
        )],
        vec![row(None, BookingKey::new("b", 0), vec![], 4)],
        vec![row(
            Some(booking("c", 1_700_000_000_000, t0, &["omm_1"], None)),
            BookingKey::new("c", 1_700_000_000_000),
            vec![],
            5,
        )],
    ];
    for (i, entries) in commits.into_iter().enumerate() {
        let mut items = [CommitItem {
            event_id: Some(format!("e{i}")),
            written: Written {
                entries,
                series_deleted: None,
            },
            ..Default::default()
        }];
        s.commit(now, &mut items, &[]).unwrap();
    }
    // What a restart replays from the log, last row of each key winning...
    let mut want: std::collections::BTreeMap<BookingKey, EntryRow> = Default::default();
    for e in s.load(10).unwrap().entries {
        want.insert(e.key.clone(), e);
    }
    assert_eq!(want.len(), 3);
    assert_eq!(s.fold().unwrap(), 5, "every logged row upserted");
    // ...is what the folded table holds, and the log is empty.
    let got: std::collections::BTreeMap<BookingKey, EntryRow> = s
        .load(10)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.fold_due(), Fold::No);
    // A fold after more commits updates rows in place.
    let mut items = [CommitItem {
        event_id: Some("e9".into()),
        written: Written {
            entries: vec![row(None, BookingKey::new("a", 0), vec![], 9)],
            series_deleted: None,
        },
        ..Default::default()
    }];
    s.commit(now, &mut items, &[]).unwrap();
    s.fold().unwrap();
    let a = s
        .load(10)
        .unwrap()
        .entries
        .into_iter()
        .find(|e| e.key == BookingKey::new("a", 0))
        .unwrap();
    assert_eq!((a.booking, a.last_change), (None, at(9)));
}

/// A commit of one booking whose row is about 1 MiB (a long title).
fn big_item(i: usize, title: &crate::model::Title, now: DateTime<Utc>) -> CommitItem {
    let key = BookingKey::new(&format!("u{i}"), 0);
    CommitItem {
        event_id: Some(format!("e{i}")),
        written: Written {
            entries: vec![EntryRow {
                booking: Some(Booking {
                    key: key.clone(),
                    start: now,
                    end: now,
                    rooms: vec![RoomId::new("omm_1")].into(),
                    organizer: Arc::default(),
                    title: Some(title.clone()),
                }),
                key,
                occurrences: vec![],
                last_change: now,
            }],
            series_deleted: None,
        },
        ..Default::default()
    }
}

/// A grown log is folded in a pause of the commits; one grown four times
/// as far is folded at once (a burst that never pauses still bounds it).
#[test]
fn a_fold_waits_for_a_pause_unless_the_log_has_grown_far() {
    let d = dir();
    let mut s = Sqlite::open(&d.join("rc.db"), false).unwrap();
    let now = at(1_700_000_000_000);
    let title = crate::model::Title::from("x".repeat(1 << 20));
    let mut due = Vec::new();
    for i in 0..33 {
        s.commit(now, &mut [big_item(i, &title, now)], &[]).unwrap();
        due.push(s.fold_due());
    }
    // 8 MiB: due (in a pause); 32 MiB: now.
    assert_eq!(due[6], Fold::No);
    assert_eq!(due[8], Fold::Idle);
    assert_eq!(due[30], Fold::Idle);
    assert_eq!(due[32], Fold::Now);
    assert_eq!(s.fold().unwrap(), 33);
    assert_eq!(s.fold_due(), Fold::No);
    assert_eq!(s.load(0).unwrap().entries.len(), 33);
}

/// The writer folds a due log once the commits pause, by itself.
#[tokio::test]
async fn the_writer_folds_a_due_log_when_the_commits_pause() {
    let d = dir();
    let p = d.join("rc.db");
    let w = Writer::start(Box::new(Sqlite::open(&p, false).unwrap())).unwrap();
    let now = at(1_700_000_000_000);
    let title = crate::model::Title::from("x".repeat(1 << 20));
    for i in 0..9 {
        let done = w.submit(vec![big_item(i, &title, now)], now).await.unwrap();
        assert_eq!(done.unwrap().len(), 1);
    }
    let db = Connection::open(&p).unwrap();
    let logged = || -> i64 {
        db.query_row("SELECT count(*) FROM booking_log", [], |r| r.get(0))
            .unwrap()
    };
    // Polling a condition (the writer's own pause is real time), with a
    // deadline: the 9 logged rows are folded into the table.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while logged() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the due log was never folded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let folded: i64 = db
        .query_row("SELECT count(*) FROM bookings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(folded, 9);
    w.finish().await;
}
