//! What every backend of [`Store`] must do, run against each: SQLite on a
//! temporary file, PostgreSQL on the machine's server (127.0.0.1:5432, or
//! `ROOMCAST_TEST_PG`), each test in a schema of its own, dropped after.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;
use crate::config::PgConfig;
use crate::message::{Message, Subject};
use crate::model::{Booking, BookingKey, ChangeKind, Organizer, RoomId};
use crate::render::Format;
use crate::schedule::{EntryRow, Written};

pub(super) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// The server the PostgreSQL tests use.
fn pg_url() -> String {
    std::env::var("ROOMCAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// A schema of its own for one test, dropped when the test ends.
pub(crate) struct PgSchema {
    pub(crate) cfg: PgConfig,
}

impl PgSchema {
    pub(crate) fn new() -> PgSchema {
        PgSchema {
            cfg: PgConfig {
                url: pg_url(),
                password: None,
                schema: format!("rc_t_{}_{:x}", std::process::id(), rand::random::<u32>()),
                pool_size: 2,
                ca_file: None,
                lease: crate::config::DEFAULT_LEASE,
                reconnect_for: crate::config::DEFAULT_RECONNECT_FOR,
            },
        }
    }

    /// Run SQL on a connection of its own (from any thread, async or not).
    pub(crate) fn sql(&self, sql: &str) {
        let (url, sql) = (self.cfg.url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("the test database (PostgreSQL on 127.0.0.1:5432) is reachable");
                tokio::spawn(conn);
                c.batch_execute(&sql).await.unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let schema = self.cfg.schema.clone();
        let url = self.cfg.url.clone();
        // Best effort, and never a panic while a test is unwinding.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A place for one backend's store, opened (and reopened: a restart) on
/// demand.
enum Place {
    Sqlite(PathBuf),
    Postgres(PgSchema),
}

impl Place {
    fn sqlite() -> Place {
        let d = std::env::temp_dir().join(format!(
            "roomcast-contract-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Place::Sqlite(d.join("rc.db"))
    }

    fn postgres() -> Place {
        Place::Postgres(PgSchema::new())
    }

    fn open(&self) -> Box<dyn Store> {
        match self {
            Place::Sqlite(p) => Box::new(Sqlite::open(p, true).unwrap()),
            Place::Postgres(s) => Box::new(Postgres::open(&s.cfg).unwrap()),
        }
    }
}

/// The outbox ids a commit gave the items' messages, in order.
pub(super) fn outbox_ids(items: &[CommitItem]) -> Vec<i64> {
    items
        .iter()
        .flat_map(|i| i.messages.iter().filter_map(|m| m.outbox_id))
        .collect()
}

pub(super) fn msg(i: i64) -> Message {
    Message {
        sink: Arc::from("chat"),
        outbox_id: None,
        idempotency_key: format!("k{i}"),
        event_id: Arc::from(format!("e{i}").as_str()),
        room: RoomId::new("omm_a"),
        subject: Subject::Notice(ChangeKind::Booked),
        booking: Some("u_0".into()),
        body: format!("body {i}"),
        format: Format::Text,
        restored: false,
    }
}

fn booking(uid: &str, start: i64, title: Option<&str>) -> Booking {
    Booking {
        key: BookingKey::new(uid, 0),
        start: at(start),
        end: at(start + 1_800_000),
        rooms: vec![RoomId::new("omm_a"), RoomId::new("omm_b")].into(),
        organizer: Arc::new(Organizer {
            open_id: Some(Arc::from("ou_x")),
            ..Organizer::default()
        }),
        title: title.map(crate::model::Title::from),
    }
}

fn row(b: &Booking, last_change: DateTime<Utc>) -> EntryRow {
    EntryRow {
        key: b.key.clone(),
        booking: Some(b.clone()),
        occurrences: Vec::new(),
        last_change,
    }
}

pub(super) fn mark(id: i64, state: OutboxState, at: DateTime<Utc>) -> Mark {
    Mark {
        id,
        state,
        error: None,
        at,
    }
}

/// The entries as a restart ends up with them: `load` may give a key more
/// than once (SQLite's log not yet folded), the later row winning.
fn current(v: Vec<EntryRow>) -> Vec<EntryRow> {
    let mut by_key = std::collections::BTreeMap::new();
    for e in v {
        by_key.insert(e.key.clone(), e);
    }
    by_key.into_values().collect()
}

/// Everything a restart needs comes back as it was committed: bookings
/// (a series' occurrences, a tombstone, a title), seen ids newest first,
/// pending messages in order with their ids, timers, rooms fetched, the
/// directory, series deletes.
fn round_trip(place: Place) {
    let now = at(1_700_000_000_000);
    let one = booking("u1", 1_700_000_100_000, Some("Weekly sync"));
    let series = booking("u2", 1_700_000_200_000, None);
    let series_row = EntryRow {
        occurrences: vec![
            (series.start, series.end),
            (at(1_700_604_200_000), at(1_700_606_000_000)),
        ],
        ..row(&series, now)
    };
    let tomb = EntryRow {
        key: BookingKey::new("u3", 1_700_000_000),
        booking: None,
        occurrences: Vec::new(),
        last_change: now,
    };
    let ids = {
        let mut s = place.open();
        let mut items = [
            CommitItem {
                event_id: Some("e1".into()),
                written: Written {
                    entries: vec![row(&one, now), series_row.clone()],
                    series_deleted: None,
                },
                messages: vec![msg(1), msg(2)],
                timers: vec![("reminders".into(), now)],
                ..Default::default()
            },
            CommitItem {
                event_id: Some("e2".into()),
                written: Written {
                    entries: vec![tomb.clone()],
                    series_deleted: Some((Arc::from("u9"), now)),
                },
                messages: vec![msg(3)],
                synced: vec![(RoomId::new("omm_a"), now)],
                ..Default::default()
            },
        ];
        s.commit(now, &mut items, &[]).unwrap();
        let ids = outbox_ids(&items);
        assert_eq!(ids.len(), 3, "every message has its outbox id");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        s.record(&[mark(ids[0], OutboxState::Delivered, now)])
            .unwrap();
        s.save_directory("[{\"room_id\":\"omm_a\"}]", now).unwrap();
        // Seen ids of a later commit are newer.
        s.commit(
            now,
            &mut [CommitItem {
                event_id: Some("e3".into()),
                ..Default::default()
            }],
            &[],
        )
        .unwrap();
        ids
    };
    let s = place.open();
    let l = s.load(10).unwrap();
    assert_eq!(
        current(l.entries),
        current(vec![row(&one, now), series_row, tomb])
    );
    assert_eq!(l.seen, vec!["e3", "e2", "e1"]);
    assert_eq!(
        s.load(2).unwrap().seen,
        vec!["e3", "e2"],
        "the newest first"
    );
    let pending: Vec<(i64, &str, &str)> = l
        .pending
        .iter()
        .map(|r| {
            (
                r.id,
                r.message.body.as_str(),
                r.message.idempotency_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        pending,
        vec![(ids[1], "body 2", "k2"), (ids[2], "body 3", "k3")]
    );
    assert_eq!(l.pending[0].message.event_id.as_ref(), "e2");
    assert_eq!(l.timers, vec![("reminders".to_string(), now)]);
    assert_eq!(l.synced, vec![("omm_a".to_string(), now)]);
    assert_eq!(l.series_deleted, vec![("u9".to_string(), now)]);
    assert_eq!(
        l.directory,
        Some(("[{\"room_id\":\"omm_a\"}]".to_string(), now))
    );
}

/// A booking written twice in one commit (group commits gather them) and
/// again later: the last write is what a restart sees.
fn the_last_write_of_a_booking_wins(place: Place) {
    let t = at(1_700_000_000_000);
    let a = booking("u1", 1_700_000_100_000, None);
    let moved = booking("u1", 1_700_000_900_000, None);
    let again = booking("u1", 1_700_001_800_000, Some("Moved twice"));
    let mut s = place.open();
    let item = |b: &Booking, id: &str| CommitItem {
        event_id: Some(id.into()),
        written: Written {
            entries: vec![row(b, t)],
            series_deleted: None,
        },
        ..Default::default()
    };
    s.commit(t, &mut [item(&a, "e1"), item(&moved, "e2")], &[])
        .unwrap();
    assert_eq!(current(s.load(0).unwrap().entries), vec![row(&moved, t)]);
    s.commit(t, &mut [item(&again, "e3")], &[]).unwrap();
    s.fold().unwrap();
    drop(s);
    assert_eq!(place.open().load(0).unwrap().entries, vec![row(&again, t)]);
}

/// Outcomes, `outbox`, `retry` and `prune`.
fn outcomes_retry_and_prune(place: Place) {
    let mut s = place.open();
    let old = at(1_000_000_000_000);
    let mut items = [CommitItem {
        event_id: Some("e1".into()),
        messages: vec![msg(1), msg(2)],
        ..Default::default()
    }];
    s.commit(old, &mut items, &[]).unwrap();
    let ids = outbox_ids(&items);
    // A retried one, then its outcome, in order, in one call.
    s.record(&[
        Mark {
            error: Some("HTTP 503".into()),
            ..mark(ids[0], OutboxState::Pending, old)
        },
        Mark {
            error: Some("HTTP 500".into()),
            ..mark(ids[0], OutboxState::Dead, old)
        },
    ])
    .unwrap();
    let listed = s.outbox().unwrap();
    assert_eq!(listed.len(), 2, "the dead one and the pending one");
    assert_eq!(listed[0].state, OutboxState::Dead);
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 500"));
    assert!(s.retry(ids[0]).unwrap());
    assert!(!s.retry(ids[0]).unwrap(), "only dead or failed rows");
    assert_eq!(s.load(10).unwrap().pending.len(), 2);
    // The outcome rides with a commit too.
    s.commit(
        old,
        &mut [],
        &[
            mark(ids[0], OutboxState::Delivered, old),
            mark(ids[1], OutboxState::Superseded, old),
        ],
    )
    .unwrap();
    assert_eq!(s.outbox_all().unwrap().len(), 2);
    assert!(s.outbox().unwrap().is_empty());
    assert_eq!(
        s.prune(at(1_100_000_000_000)).unwrap(),
        3,
        "the seen id and the two finished rows"
    );
    assert!(s.outbox_all().unwrap().is_empty());
}

macro_rules! both {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Place::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Place::postgres());
            })*
        }
    };
}

both!(
    round_trip,
    the_last_write_of_a_booking_wins,
    outcomes_retry_and_prune
);

// ------------------------------------------------- PostgreSQL's own cases

/// Two instances starting at once on an empty schema: one migrates, both
/// run; a third finds it current.
#[test]
fn concurrent_starts_migrate_once() {
    let s = PgSchema::new();
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let cfg = s.cfg.clone();
            std::thread::spawn(move || Postgres::open(&cfg).map(|_| ()))
        })
        .collect();
    for o in opens {
        o.join().unwrap().unwrap();
    }
    let p = Postgres::open(&s.cfg).unwrap();
    assert_eq!(p.version().unwrap(), Some(super::postgres::SCHEMA_VERSION));
}

/// A schema holding someone else's tables, or a newer roomcast's, is
/// refused and left as it was; a read-only open of no schema says so.
#[test]
fn foreign_newer_and_missing_schemas_are_refused_untouched() {
    let s = PgSchema::new();
    assert!(matches!(
        Postgres::open_read_only(&s.cfg),
        Err(StoreError::Missing(_))
    ));
    s.sql(&format!(
        "CREATE SCHEMA {0}; CREATE TABLE {0}.invoices (id INT); INSERT INTO {0}.invoices VALUES (7);",
        s.cfg.schema
    ));
    let e = Postgres::open(&s.cfg).unwrap_err();
    assert!(matches!(e, StoreError::Foreign(_)), "{e}");
    assert!(e.to_string().contains(&s.cfg.schema), "{e}");

    let newer = PgSchema::new();
    drop(Postgres::open(&newer.cfg).unwrap());
    newer.sql(&format!(
        "UPDATE {}.roomcast_meta SET version = 99",
        newer.cfg.schema
    ));
    let e = Postgres::open(&newer.cfg).unwrap_err();
    assert!(matches!(e, StoreError::Newer { found: 99, .. }), "{e}");
    assert!(matches!(
        Postgres::open_read_only(&newer.cfg),
        Err(StoreError::Newer { .. })
    ));
}

/// An unreachable server or a refused login fails the start with the
/// database named and no password anywhere in the message.
#[test]
fn connection_failures_name_the_database_and_never_the_password() {
    let unreachable = PgConfig {
        url: "postgres://roomcast@127.0.0.1:1/rooms?sslmode=disable&connect_timeout=2".into(),
        password: Some("hunter2-secret".to_string().into()),
        schema: "roomcast".into(),
        pool_size: 1,
        ca_file: None,
        lease: crate::config::DEFAULT_LEASE,
        reconnect_for: crate::config::DEFAULT_RECONNECT_FOR,
    };
    let e = Postgres::open(&unreachable).unwrap_err();
    let shown = crate::error::Chain(&e).to_string();
    assert!(shown.contains("127.0.0.1:1/rooms"), "{shown}");
    assert!(shown.contains("connecting"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let s = PgSchema::new();
    let nobody = PgConfig {
        url: s.cfg.url.replace("postgres@", "no_such_role_rc@"),
        password: Some("hunter2-secret".to_string().into()),
        ..s.cfg.clone()
    };
    let e = Postgres::open(&nobody).unwrap_err();
    let shown = crate::error::Chain(&e).to_string();
    assert!(
        shown.contains("no_such_role_rc"),
        "the server's reason: {shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// The writer thread drives a PostgreSQL store as it does SQLite: a batch
/// comes back with its outbox ids once committed.
#[tokio::test]
async fn the_writer_commits_to_postgres() {
    let s = PgSchema::new();
    // Opened off the runtime's thread, as the app does.
    let cfg = s.cfg.clone();
    let store = tokio::task::spawn_blocking(move || Postgres::open(&cfg))
        .await
        .unwrap()
        .unwrap();
    let w = Writer::start(Box::new(store)).unwrap();
    let now = at(1_700_000_000_000);
    let done = w
        .submit(
            vec![CommitItem {
                event_id: Some("e1".into()),
                messages: vec![msg(1)],
                ..Default::default()
            }],
            now,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(done[0].messages[0].outbox_id.is_some());
    w.finish().await;
    let cfg = s.cfg.clone();
    let l = tokio::task::spawn_blocking(move || Postgres::open_read_only(&cfg)?.load(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.seen, vec!["e1"]);
    assert_eq!(l.pending.len(), 1);
}

/// TLS to the database: verified against `ca_file` (here the server's own
/// self-signed certificate, issued to `localhost`), and refused for a name
/// the certificate does not carry.
#[test]
fn tls_to_the_database_is_verified() {
    let s = PgSchema::new();
    let ca = PathBuf::from("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    assert!(
        ca.exists(),
        "the machine's PostgreSQL serves TLS with Debian's snake-oil certificate"
    );
    let port = s
        .cfg
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap_or("5432")
        .to_string();
    let tls = PgConfig {
        url: format!("postgres://postgres@localhost:{port}/test?sslmode=require"),
        ca_file: Some(ca.clone()),
        ..s.cfg.clone()
    };
    let line = Postgres::probe(&tls).unwrap();
    assert!(line.contains("over TLSv1."), "{line}");
    let plain = Postgres::probe(&s.cfg).unwrap();
    assert!(plain.contains("without TLS"), "{plain}");
    let wrong_name = PgConfig {
        url: format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=require"),
        ..tls
    };
    let e = crate::error::Chain(&Postgres::probe(&wrong_name).unwrap_err()).to_string();
    assert!(e.contains("certificate not valid for name"), "{e}");
}

/// Two instances on one schema: an event another instance applied is
/// refused as a duplicate, one older than the stored change of its booking
/// as stale; neither queues its messages, and the row stays the newest.
#[test]
fn a_shared_store_refuses_duplicates_and_stale_changes() {
    let s = PgSchema::new();
    let (mut a, mut b) = (
        Postgres::open(&s.cfg).unwrap(),
        Postgres::open(&s.cfg).unwrap(),
    );
    let (t1, t2) = (at(1_700_000_000_000), at(1_700_000_060_000));
    let first = booking("u1", 1_700_000_100_000, None);
    let moved = booking("u1", 1_700_000_900_000, None);
    let item = |id: &str, b: &Booking, t: DateTime<Utc>, i: i64| CommitItem {
        event_id: Some(id.into()),
        written: Written {
            entries: vec![row(b, t)],
            series_deleted: None,
        },
        messages: vec![msg(i)],
        ..Default::default()
    };
    // A applies the move (newer); B, behind, applies the creation (older)
    // and the move again (delivered to both).
    let mut on_a = [item("e2", &moved, t2, 2)];
    a.commit(t2, &mut on_a, &[]).unwrap();
    assert_eq!(on_a[0].refused, None);
    assert!(on_a[0].messages[0].outbox_id.is_some());
    let mut on_b = [item("e1", &first, t1, 1), item("e2", &moved, t2, 3)];
    b.commit(t2, &mut on_b, &[]).unwrap();
    assert_eq!(
        on_b.iter().map(|i| i.refused).collect::<Vec<_>>(),
        [
            Some(crate::schedule::Skip::Stale),
            Some(crate::schedule::Skip::Duplicate)
        ]
    );
    assert!(on_b.iter().all(|i| i.messages[0].outbox_id.is_none()));
    let l = a.load(10).unwrap();
    assert_eq!(l.entries, vec![row(&moved, t2)]);
    assert_eq!(
        l.pending
            .iter()
            .map(|r| r.message.body.as_str())
            .collect::<Vec<_>>(),
        ["body 2"],
        "only the message of what the database took"
    );
    // An equal event time is taken (as the schedule takes it).
    let mut again = [item("e3", &first, t2, 4)];
    b.commit(t2, &mut again, &[]).unwrap();
    assert_eq!(again[0].refused, None);
}

/// Instances racing on one booking end in its newest state, whatever
/// order their commits land in.
#[test]
fn racing_instances_end_in_the_newest_state() {
    let s = PgSchema::new();
    drop(Postgres::open(&s.cfg).unwrap());
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let cfg = s.cfg.clone();
            std::thread::spawn(move || {
                let mut p = Postgres::open(&cfg).unwrap();
                let mut refused = 0;
                for n in 0..40i64 {
                    // Event times interleave across the workers.
                    let t = 1_700_000_000_000 + (n * 4 + w) * 1000;
                    let b = booking("shared", t + 3_600_000, None);
                    let mut items = [CommitItem {
                        event_id: Some(format!("w{w}-{n}")),
                        written: Written {
                            entries: vec![row(&b, at(t))],
                            series_deleted: None,
                        },
                        ..Default::default()
                    }];
                    p.commit(at(t), &mut items, &[]).unwrap();
                    refused += usize::from(items[0].refused.is_some());
                }
                refused
            })
        })
        .collect();
    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let newest = 1_700_000_000_000 + (39 * 4 + 3) * 1000;
    let l = Postgres::open(&s.cfg).unwrap().load(0).unwrap();
    assert_eq!(
        l.entries,
        vec![row(
            &booking("shared", newest + 3_600_000, None),
            at(newest)
        )]
    );
    assert!(refused < 160, "{refused}");
}

/// The change feed misses no commit whatever order commits land in: a
/// transaction that began writing first and commits last is read when it
/// commits, with everything after it; a read with nothing new gives
/// nothing.
#[tokio::test]
async fn the_feed_misses_no_commit_whatever_order_they_land_in() {
    let s = PgSchema::new();
    let cfg = s.cfg.clone();
    let loaded = tokio::task::spawn_blocking(move || Postgres::open(&cfg)?.load(0))
        .await
        .unwrap()
        .unwrap();
    let mut mark = loaded.feed_from.expect("a shared store starts a feed");
    let pc = super::postgres::client_config(&s.cfg).unwrap();
    let connect = async || {
        let (c, conn) = pc.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    };
    let (early, late, reader) = (connect().await, connect().await, connect().await);
    let insert = |uid: &str| {
        format!(
            "INSERT INTO bookings (uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted)
             VALUES ('{uid}', 0, 1700000100000, 1700000200000, '[\"omm_a\"]', '{{}}', 1700000000000, false)"
        )
    };
    let read = async |mark: &mut feed::Mark| {
        feed::read(&reader, feed::READ, mark)
            .await
            .unwrap()
            .map(|c| {
                let mut uids: Vec<String> = c.rows.iter().map(|r| r.key.uid.to_string()).collect();
                uids.sort();
                uids
            })
            .unwrap_or_default()
    };
    early
        .batch_execute(&format!("BEGIN; {}", insert("early")))
        .await
        .unwrap();
    late.batch_execute(&insert("late")).await.unwrap();
    assert!(
        read(&mut mark).await.is_empty(),
        "the later writer's commit waits for the earlier one's"
    );
    early.batch_execute("COMMIT").await.unwrap();
    // Other transactions on the server (other tests) may hold the mark
    // back a moment: read until both came, each once.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.len() < 2 && std::time::Instant::now() < deadline {
        got.extend(read(&mut mark).await);
    }
    got.sort();
    assert_eq!(got, ["early", "late"]);
    late.batch_execute(&insert("later")).await.unwrap();
    let mut got = Vec::new();
    while got.is_empty() && std::time::Instant::now() < deadline {
        got.extend(read(&mut mark).await);
    }
    got.extend(read(&mut mark).await);
    assert_eq!(got, ["later"], "each row once");
}

/// A connection of the test's own to the schema's server (for the
/// lease and claim statements the change feed's connection runs).
async fn connect(s: &PgSchema) -> tokio_postgres::Client {
    let pc = super::postgres::client_config(&s.cfg).unwrap();
    let (client, conn) = pc.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Messages 1..=n queued in one commit by instance `me` at `now_ms` (the
/// schema set up first if it is not); their outbox ids.
async fn queue(s: &PgSchema, me: &str, now_ms: i64, n: i64) -> Vec<i64> {
    let (cfg, me) = (s.cfg.clone(), me.to_string());
    tokio::task::spawn_blocking(move || {
        let mut p = Postgres::open(&cfg).unwrap().instance(&me);
        let mut items = [CommitItem {
            event_id: Some("e1".into()),
            messages: (1..=n).map(msg).collect(),
            ..Default::default()
        }];
        p.commit(at(now_ms), &mut items, &[]).unwrap();
        let ids = outbox_ids(&items);
        assert_eq!(ids.len() as i64, n, "every message has its outbox id");
        ids
    })
    .await
    .unwrap()
}

/// Leases: the first instance to ask holds the leader's and the sinks';
/// another gets none while they are renewed, and takes them (epoch one
/// higher) once they lapse; the first then holds nothing. Claims: the
/// sink's owner claims the queued rows in order; after a takeover the new
/// owner claims them again (a second claim: sent again, never replaced
/// unsent), and the old owner's outcome for such a row is refused (the
/// fence), the new owner's recorded.
#[tokio::test]
async fn leases_pass_on_when_they_lapse_and_claims_are_fenced() {
    use super::shared::{Roles, claim, lease_round};
    let s = PgSchema::new();
    let lease = std::time::Duration::from_millis(1500);
    let (a, b) = (Roles::new(lease), Roles::new(lease));
    // Rows queued by some instance (no claim yet).
    let ids = queue(&s, &a.me, 1_700_000_000_000, 2).await;
    let client = connect(&s).await;
    a.want_sinks(["chat"]);
    b.want_sinks(["chat"]);

    lease_round(&client, &a).await.unwrap();
    lease_round(&client, &b).await.unwrap();
    assert!(a.leader() && a.owns("chat"));
    assert!(!b.leader() && !b.owns("chat") && b.sinks().is_empty());
    assert_eq!(a.leader_epoch(), Some(1));
    let first = claim(&client, &a).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(first.iter().all(|r| !r.message.restored), "first claims");
    assert!(claim(&client, &a).await.unwrap().is_empty(), "claimed once");
    assert!(claim(&client, &b).await.unwrap().is_empty(), "not B's sink");

    // A stops renewing (a crash); B takes over once the leases lapse.
    // (Polls the lease with a deadline: it lapses on the database's clock.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.leader() {
        assert!(std::time::Instant::now() < deadline, "B never took over");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        lease_round(&client, &b).await.unwrap();
    }
    assert!(b.owns("chat"));
    assert_eq!(b.leader_epoch(), Some(2));
    // A reload that adds a sink: its lease is taken at the next round.
    assert!(!b.owns("pager"));
    b.want_sinks(["chat", "pager"]);
    lease_round(&client, &b).await.unwrap();
    assert!(b.owns("pager") && b.owns("chat") && b.leader());
    lease_round(&client, &a).await.unwrap();
    assert!(!a.leader() && !a.owns("chat"), "A holds nothing now");
    let again = claim(&client, &b).await.unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(
        again.iter().all(|r| r.message.restored),
        "taken over: sent again"
    );

    // A's late outcome is refused; B's is recorded.
    let cfg = s.cfg.clone();
    let (a_me, b_me) = (a.me.clone(), b.me.clone());
    let states = tokio::task::spawn_blocking(move || {
        let mut old = Postgres::open(&cfg).unwrap().instance(&a_me);
        old.record(&[mark(ids[0], OutboxState::Delivered, at(1))])
            .unwrap();
        let mut new = Postgres::open(&cfg).unwrap().instance(&b_me);
        new.record(&[mark(ids[1], OutboxState::Delivered, at(1))])
            .unwrap();
        new.outbox_all()
            .unwrap()
            .into_iter()
            .map(|r| r.state)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(states, [OutboxState::Pending, OutboxState::Delivered]);
}

/// A sink handed over (a clean stop gives its leases up): its new owner
/// learns what the old one sent within the hour — how long ago each — so
/// its rate limiter counts those sends; asked once per takeover.
#[tokio::test]
async fn a_new_sink_owner_learns_what_the_last_one_sent() {
    use super::shared::{Roles, claim, lease_round, release, sent_before};
    let s = PgSchema::new();
    let lease = std::time::Duration::from_secs(15);
    let (a, b) = (Roles::new(lease), Roles::new(lease));
    let now = chrono::Utc::now().timestamp_millis();
    let ids = queue(&s, &a.me, now, 3).await;
    let client = connect(&s).await;
    a.want_sinks(["chat"]);
    b.want_sinks(["chat"]);
    lease_round(&client, &a).await.unwrap();
    assert!(a.owns("chat"));
    assert_eq!(
        sent_before(&client, &a).await.unwrap(),
        None,
        "nothing sent yet"
    );
    assert_eq!(claim(&client, &a).await.unwrap().len(), 3);
    // Delivered 2 h, 2 s and 0.5 s ago: the first is beyond any rate
    // limit's window (an hour) and does not count.
    let (cfg, a_me) = (s.cfg.clone(), a.me.clone());
    tokio::task::spawn_blocking(move || {
        let mut p = Postgres::open(&cfg).unwrap().instance(&a_me);
        p.record(&[
            mark(ids[2], OutboxState::Delivered, at(now - 7_200_000)),
            mark(ids[0], OutboxState::Delivered, at(now - 2_000)),
            mark(ids[1], OutboxState::Delivered, at(now - 500)),
        ])
        .unwrap();
    })
    .await
    .unwrap();
    let cfg = s.cfg.clone();
    let a = Arc::new(a);
    let a2 = a.clone();
    tokio::task::spawn_blocking(move || release(&cfg, &a2))
        .await
        .unwrap()
        .unwrap();
    lease_round(&client, &b).await.unwrap();
    assert!(b.owns("chat"), "handed over at once");
    let Some(sent) = sent_before(&client, &b).await.unwrap() else {
        panic!("the old owner's sends")
    };
    assert_eq!(sent.0.len(), 1);
    let (sink, ago) = &sent.0[0];
    assert_eq!(sink, "chat");
    let ms: Vec<i64> = ago.iter().map(|d| d.as_millis() as i64).collect();
    assert_eq!(ms.len(), 2, "{ms:?}");
    assert!((500..1_500).contains(&ms[0]), "newest first: {ms:?}");
    assert!((2_000..3_000).contains(&ms[1]), "{ms:?}");
    assert_eq!(
        sent_before(&client, &b).await.unwrap(),
        None,
        "once per takeover"
    );
}

/// A notice is queued once, whichever instance makes it: a second
/// instance making the same one (same sink and key: a reminder, a day's
/// agenda, after a leader changed) queues nothing and sends nothing.
#[test]
fn a_notice_is_queued_once_whoever_makes_it() {
    let s = PgSchema::new();
    let (mut a, mut b) = (
        Postgres::open(&s.cfg).unwrap(),
        Postgres::open(&s.cfg).unwrap(),
    );
    let mut on_a = [CommitItem {
        messages: vec![msg(7)],
        timers: vec![("reminders".into(), at(1_700_000_000_000))],
        ..Default::default()
    }];
    let mut on_b = [CommitItem {
        messages: vec![msg(7)],
        timers: vec![("reminders".into(), at(1_700_000_000_000))],
        ..Default::default()
    }];
    a.commit(at(1_700_000_000_000), &mut on_a, &[]).unwrap();
    b.commit(at(1_700_000_000_000), &mut on_b, &[]).unwrap();
    assert!(on_a[0].messages[0].outbox_id.is_some());
    assert!(on_b[0].messages[0].outbox_id.is_none());
    assert_eq!(a.outbox_all().unwrap().len(), 1);
}

/// The clock's work carries the epoch of the leader's lease it was made
/// under: a shared store takes it while that lease stands, and refuses it
/// (messages not queued, timer not moved) from a leader whose lease has
/// passed on.
#[test]
fn a_deposed_leaders_clock_work_is_refused() {
    use super::shared::{Roles, lease_round};
    let s = PgSchema::new();
    let lease = std::time::Duration::from_millis(1500);
    let (a, b) = (Roles::new(lease), Roles::new(lease));
    a.want_sinks([]);
    b.want_sinks([]);
    let mut p = Postgres::open(&s.cfg).unwrap().instance(&a.me);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pc = super::postgres::client_config(&s.cfg).unwrap();
    let client = rt.block_on(async {
        let (c, conn) = pc.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    });
    rt.block_on(lease_round(&client, &a)).unwrap();
    assert_eq!(a.leader_epoch(), Some(1));
    let made = |epoch: i64, i: i64, t: i64| CommitItem {
        messages: vec![msg(i)],
        timers: vec![("reminders".into(), at(t))],
        leader_epoch: Some(epoch),
        ..Default::default()
    };
    let mut ok = [made(1, 1, 1_700_000_000_000)];
    p.commit(at(1_700_000_000_000), &mut ok, &[]).unwrap();
    assert_eq!(ok[0].refused, None);
    assert!(ok[0].messages[0].outbox_id.is_some());
    // B takes the lease once A's lapses; A's next reminder is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.leader() {
        assert!(std::time::Instant::now() < deadline, "B never took over");
        std::thread::sleep(std::time::Duration::from_millis(100));
        rt.block_on(lease_round(&client, &b)).unwrap();
    }
    let mut late = [made(1, 2, 1_700_000_060_000)];
    p.commit(at(1_700_000_060_000), &mut late, &[]).unwrap();
    assert_eq!(late[0].refused, Some(crate::schedule::Skip::Stale));
    assert!(late[0].messages[0].outbox_id.is_none());
    let l = p.load(0).unwrap();
    assert_eq!(
        l.timers,
        vec![("reminders".to_string(), at(1_700_000_000_000))],
        "the mark did not move"
    );
    assert_eq!(
        l.pending.len(),
        1,
        "only the reminder made under the standing lease"
    );
}
