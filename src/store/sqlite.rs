//! The SQLite backend of [`super::Store`]: one file in WAL mode, a lock
//! file beside it, the schema in `user_version` with migrations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use serde::{Deserialize, Serialize};

use super::{CommitItem, Loaded, Mark, OutboxRow, OutboxState, Store, StoreError};
use crate::message::{Message, Subject};
use crate::model::{Booking, BookingKey, Organizer, RoomId, Title};
use crate::render::Format;
use crate::schedule::EntryRow;

/// `PRAGMA application_id`: marks a file as roomcast's ("RMCS").
pub(crate) const APPLICATION_ID: i32 = 0x524d_4353;
/// The schema this build writes; each step up is a migration below.
pub(crate) const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The booking log is folded into `bookings` once it holds this many rows
/// (one a commit)...
const FOLD_ROWS: i64 = 65_536;
/// ...or at least this many bytes of booking rows, and no fewer than the
/// table holds (see [`Store::fold_due`])...
const FOLD_BYTES: i64 = 8 << 20;
/// ...counting this many bytes a row of the table. A log this many times
/// that size is folded even while commits keep coming.
const FOLDED_ROW_BYTES: i64 = 256;
const FOLD_FORCE: i64 = 4;

/// Whether the booking log should be folded ([`Store::fold_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    No,
    /// Due: fold once the writer has had nothing to do for a moment.
    Idle,
    /// Overdue: fold now, between commits.
    Now,
}

/// The WAL is checkpointed (by the writer, after replying) once it holds
/// this many pages, SQLite's own default...
const CHECKPOINT_PAGES: i32 = 1000;
/// ...and by the commit itself if it grew this far all the same.
const CHECKPOINT_INLINE_PAGES: i32 = 16_000;

/// SQLite's page cache for the running app (KiB): the log appends and the
/// outbox need little, and a fold walks the table once, in key order. It
/// also sizes the fold's in-memory sort (beyond it the sort spills to a
/// temporary file). 2 MiB before 2026-11-28: at 512 KiB the durable
/// intake bench runs as fast, 1.8 MiB lower at its peak (BENCHMARKS.md §8).
const CACHE_KIB: i64 = 512;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first schema
    "CREATE TABLE seen (event_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
     CREATE INDEX seen_at ON seen(at);
     CREATE TABLE bookings (
        uid TEXT NOT NULL, original_time INTEGER NOT NULL,
        start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
        rooms TEXT NOT NULL, organizer TEXT NOT NULL,
        last_change INTEGER NOT NULL, deleted INTEGER NOT NULL,
        PRIMARY KEY (uid, original_time)) WITHOUT ROWID;
     CREATE TABLE series_deleted (uid TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL, room TEXT NOT NULL, subject TEXT NOT NULL,
        booking TEXT, event_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,
        format TEXT NOT NULL, body TEXT NOT NULL,
        created INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, done_at INTEGER);
     CREATE INDEX outbox_state ON outbox(state, id);",
    // 2: a series' occurrences and a booking's title (from the room APIs);
    // when each room was last fetched; the room directory.
    "ALTER TABLE bookings ADD COLUMN occurrences TEXT;
     ALTER TABLE bookings ADD COLUMN title TEXT;
     CREATE TABLE room_sync (room TEXT PRIMARY KEY, synced_at INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE directory (id INTEGER PRIMARY KEY CHECK (id = 1), rooms TEXT NOT NULL, fetched_at INTEGER NOT NULL);",
    // 3: writes in arrival order. Seen ids are appended (no random key to
    // insert under); a commit's booking rows are one appended log row,
    // folded into `bookings` from time to time.
    "CREATE TABLE seen_log (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, at INTEGER NOT NULL);
     INSERT INTO seen_log (event_id, at) SELECT event_id, at FROM seen ORDER BY at;
     DROP TABLE seen;
     CREATE TABLE booking_log (id INTEGER PRIMARY KEY, rows TEXT NOT NULL);",
    // 4: a commit's seen ids are one appended row (a JSON array), as its
    // booking rows are: one insert a commit, not one an event.
    "CREATE TABLE seen_batch (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, ids TEXT NOT NULL);
     INSERT INTO seen_batch (at, ids) SELECT at, json_array(event_id) FROM seen_log ORDER BY id;
     DROP TABLE seen_log;",
    // 5: how far the clock's own messages have gone (reminders made up to
    // an instant, the last daily agenda per sink), so a restart neither
    // repeats nor skips one.
    "CREATE TABLE timer (name TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;",
    // 6: a commit's seen ids ride in its booking-log row (one row, one
    // page appended a commit instead of two); a fold moves them on to
    // `seen_batch`, which keeps them until they are pruned.
    "ALTER TABLE booking_log ADD COLUMN at INTEGER;
     ALTER TABLE booking_log ADD COLUMN ids TEXT;",
];

/// The SQLite store.
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    _lock: Option<File>,
    /// `sync = "full"`: every commit reaches the disk before it returns.
    durable: bool,
    /// Booking-log rows and bytes not yet folded.
    log_rows: i64,
    log_bytes: i64,
    /// Rows in `bookings` (after the last fold).
    bookings_rows: i64,
    /// Pages in the WAL after the last commit (from SQLite's WAL hook).
    wal_pages: Arc<std::sync::atomic::AtomicI32>,
}

/// One booking row as the log keeps it.
#[derive(Serialize, Deserialize)]
struct LogRow {
    u: String,
    o: i64,
    /// Tombstone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    d: bool,
    #[serde(default)]
    s: i64,
    #[serde(default)]
    e: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<Organizer>,
    l: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    c: Vec<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

/// A booking row as the log writes it: [`LogRow`]'s fields, borrowed from
/// the schedule's row (no copies of its strings).
#[derive(Serialize)]
struct LogRowOut<'a> {
    u: &'a str,
    o: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    d: bool,
    s: i64,
    e: i64,
    #[serde(skip_serializing_if = "<[RoomId]>::is_empty")]
    r: &'a [RoomId],
    #[serde(skip_serializing_if = "Option::is_none")]
    g: Option<&'a Organizer>,
    l: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    c: Vec<(i64, i64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
}

impl<'a> LogRowOut<'a> {
    fn of(e: &'a EntryRow) -> Self {
        let b = e.booking.as_ref();
        LogRowOut {
            u: &e.key.uid,
            o: e.key.original_time,
            d: b.is_none(),
            s: b.map_or(0, |b| ms(b.start)),
            e: b.map_or(0, |b| ms(b.end)),
            r: b.map_or(&[], |b| &b.rooms[..]),
            g: b.map(|b| &*b.organizer),
            l: ms(e.last_change),
            c: e.occurrences
                .iter()
                .map(|(s, e)| (ms(*s), ms(*e)))
                .collect(),
            t: b.and_then(|b| b.title.as_deref()),
        }
    }
}

impl LogRow {
    fn entry(self) -> EntryRow {
        let key = BookingKey::new(&self.u, self.o);
        EntryRow {
            booking: (!self.d).then(|| Booking {
                key: key.clone(),
                start: at(self.s),
                end: at(self.e),
                rooms: self.r.iter().map(|r| RoomId::new(r)).collect(),
                organizer: Arc::new(self.g.unwrap_or_default()),
                title: self.t.map(Title::from),
            }),
            occurrences: self.c.into_iter().map(|(s, e)| (at(s), at(e))).collect(),
            key,
            last_change: at(self.l),
        }
    }
}

/// A row of the `bookings` table (either backend's: the same columns) as
/// the schedule's entry.
#[allow(clippy::too_many_arguments)]
pub(super) fn table_entry(
    uid: &str,
    original_time: i64,
    (s, e): (i64, i64),
    rooms: &str,
    organizer: &str,
    last_change: i64,
    deleted: bool,
    occurrences: Option<&str>,
    title: Option<String>,
) -> EntryRow {
    let key = BookingKey::new(uid, original_time);
    let rooms: Vec<String> = serde_json::from_str(rooms).unwrap_or_default();
    let organizer: Organizer = serde_json::from_str(organizer).unwrap_or_default();
    let occurrences: Vec<(i64, i64)> = occurrences
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    EntryRow {
        booking: (!deleted).then(|| Booking {
            key: key.clone(),
            start: at(s),
            end: at(e),
            rooms: rooms.iter().map(|r| RoomId::new(r)).collect(),
            organizer: Arc::new(organizer),
            title: title.map(Title::from),
        }),
        occurrences: occurrences
            .into_iter()
            .map(|(s, e)| (at(s), at(e)))
            .collect(),
        key,
        last_change: at(last_change),
    }
}

/// An entry as the `bookings` table's columns (the inverse of
/// [`table_entry`]).
pub(super) struct TableRow<'a> {
    pub uid: &'a str,
    pub original_time: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub rooms: String,
    pub organizer: String,
    pub last_change: i64,
    pub deleted: bool,
    pub occurrences: Option<String>,
    pub title: Option<&'a str>,
}

impl<'a> TableRow<'a> {
    pub(super) fn of(e: &'a EntryRow) -> Self {
        let b = e.booking.as_ref();
        let rooms: Vec<&str> =
            b.map_or(Vec::new(), |b| b.rooms.iter().map(RoomId::as_str).collect());
        TableRow {
            uid: &e.key.uid,
            original_time: e.key.original_time,
            start_ms: b.map_or(0, |b| ms(b.start)),
            end_ms: b.map_or(0, |b| ms(b.end)),
            rooms: serde_json::to_string(&rooms).unwrap_or_else(|_| "[]".into()),
            organizer: b
                .and_then(|b| serde_json::to_string(&*b.organizer).ok())
                .unwrap_or_else(|| "{}".into()),
            last_change: ms(e.last_change),
            deleted: b.is_none(),
            occurrences: (e.occurrences.len() > 1).then(|| {
                let c: Vec<(i64, i64)> = e
                    .occurrences
                    .iter()
                    .map(|(s, e)| (ms(*s), ms(*e)))
                    .collect();
                serde_json::to_string(&c).unwrap_or_else(|_| "[]".into())
            }),
            title: b.and_then(|b| b.title.as_deref()),
        }
    }
}

/// A row of the `outbox` table (either backend's).
#[allow(clippy::too_many_arguments)]
pub(super) fn outbox_row(
    id: i64,
    sink: String,
    room: &str,
    subject: &str,
    booking: Option<String>,
    event_id: &str,
    idempotency_key: String,
    format: &str,
    body: String,
    created: i64,
    state: &str,
    attempts: i64,
    last_error: Option<String>,
) -> OutboxRow {
    OutboxRow {
        id,
        message: Message {
            sink: Arc::from(sink.as_str()),
            outbox_id: Some(id),
            idempotency_key,
            event_id: Arc::from(event_id),
            room: RoomId::new(room),
            subject: Subject::parse(subject),
            booking,
            body,
            format: Format::from_ext(format).unwrap_or(Format::Text),
            restored: true,
        },
        sink,
        created: at(created),
        state: OutboxState::parse(state),
        attempts,
        last_error,
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { what, source }
}

fn corrupt(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: None,
        source: Some(e),
    }
}

/// Check a file that exists before SQLite touches it.
fn check_existing(path: &Path) -> Result<(), StoreError> {
    let mut head = [0u8; 16];
    let len = std::fs::metadata(path)
        .map_err(io(format!("cannot read {}", path.display())))?
        .len();
    if len == 0 {
        return Ok(());
    }
    use std::io::Read;
    let mut f = File::open(path).map_err(io(format!("cannot read {}", path.display())))?;
    if len < 100 || f.read_exact(&mut head).is_err() || &head != b"SQLite format 3\0" {
        return Err(StoreError::Foreign(path.to_path_buf()));
    }
    // Read-only look at its identity.
    let ro = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| corrupt(path, e))?;
    let corrupt = |e: rusqlite::Error| corrupt(path, e);
    let app: i32 = ro
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(corrupt)?;
    let version: i32 = ro
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    let tables: i64 = ro
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(corrupt)?;
    if app != APPLICATION_ID {
        if app == 0 && tables == 0 {
            return Ok(()); // an empty SQLite file: ours to set up
        }
        return Err(StoreError::Foreign(path.to_path_buf()));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Newer {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let ok: String = ro
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(corrupt)?;
    if ok != "ok" {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: Some(ok),
            source: None,
        });
    }
    Ok(())
}

/// What `roomcast backup` copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// `PRAGMA integrity_check` of the copy (`ok`).
    pub integrity: String,
    /// Rows of the folded booking table and of the log not yet folded in.
    pub bookings: i64,
    pub log_rows: i64,
    /// Messages still to send.
    pub pending: i64,
    pub bytes: u64,
}

impl Sqlite {
    /// Open (creating on first run) for the running app: takes the lock
    /// file, checks the file is ours and not newer, migrates.
    pub fn open(path: &Path, durable: bool) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("cannot open {}", lock_path.display())))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(path.to_path_buf()));
        }
        if path.exists() {
            check_existing(path)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // Another process writing (`roomcast outbox retry`, a backup) is
        // waited for; only a lock held this long fails a commit.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut s = Sqlite {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
            durable,
            log_rows: 0,
            log_bytes: 0,
            bookings_rows: 0,
            wal_pages: Arc::default(),
        };
        s.migrate()?;
        let (rows, bytes): (i64, i64) = s.conn.query_row(
            "SELECT count(*), coalesce(sum(length(rows)), 0) FROM booking_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        (s.log_rows, s.log_bytes) = (rows, bytes);
        s.bookings_rows = s
            .conn
            .query_row("SELECT count(*) FROM bookings", [], |r| r.get(0))?;
        Ok(s)
    }

    /// Open read-only for inspection while roomcast may be running.
    pub fn open_read_only(path: &Path) -> Result<Sqlite, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        check_existing(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Sqlite {
            conn,
            path: path.to_path_buf(),
            _lock: None,
            durable: false,
            log_rows: 0,
            log_bytes: 0,
            bookings_rows: 0,
            wal_pages: Arc::default(),
        })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i32 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i32)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.commit()?;
            tracing::info!(path = %self.path.display(), version = i + 1, "store schema migrated");
        }
        Ok(())
    }

    fn outbox_rows(&self, filter: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT id, sink, room, subject, booking, event_id, idempotency_key, format, body, created, state, attempts, last_error FROM outbox WHERE {filter} ORDER BY id"
        );
        let mut q = self.conn.prepare(&sql)?;
        let rows = q.query_map([], |r| {
            Ok(outbox_row(
                r.get(0)?,
                r.get(1)?,
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
                r.get(4)?,
                &r.get::<_, String>(5)?,
                r.get(6)?,
                &r.get::<_, String>(7)?,
                r.get(8)?,
                r.get(9)?,
                &r.get::<_, String>(10)?,
                r.get(11)?,
                r.get(12)?,
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A consistent copy of the store in `dest`, made with SQLite's online
    /// backup API while roomcast may be running and writing (the copy is
    /// one snapshot: what was committed when it finished). Written to
    /// `dest.partial` and renamed, so `dest` is either whole or absent;
    /// checked with `PRAGMA integrity_check`. An existing `dest` is refused.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::Io {
                what: format!("{} exists; name a new file", dest.display()),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let mut partial = dest.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let _ = std::fs::remove_file(&partial);
        let result = (|| {
            let mut out = Connection::open(&partial)?;
            {
                let b = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
                // Steps of 1,024 pages (4 MiB), letting the writer in between.
                b.run_to_completion(1024, std::time::Duration::from_millis(5), None)?;
            }
            let check: String = out.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            let count = |sql: &str| out.query_row(sql, [], |r| r.get::<_, i64>(0));
            let report = BackupReport {
                integrity: check,
                bookings: count("SELECT count(*) FROM bookings")?,
                log_rows: count("SELECT count(*) FROM booking_log")?,
                pending: count("SELECT count(*) FROM outbox WHERE state = 'pending'")?,
                bytes: 0,
            };
            out.close().map_err(|(_, e)| e)?;
            Ok::<_, StoreError>(report)
        })();
        let mut report = match result {
            Ok(r) if r.integrity == "ok" => r,
            Ok(r) => {
                let _ = std::fs::remove_file(&partial);
                return Err(StoreError::Corrupt {
                    path: dest.to_path_buf(),
                    detail: Some(format!(
                        "the copy failed its integrity check: {}",
                        r.integrity
                    )),
                    source: None,
                });
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, dest).map_err(|source| StoreError::Io {
            what: format!("cannot move the copy to {}", dest.display()),
            source,
        })?;
        report.bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        Ok(report)
    }
}

impl Store for Sqlite {
    /// Everything a restart needs; `seen_limit` most recent ids.
    fn load(&self, seen_limit: usize) -> Result<Loaded, StoreError> {
        let mut l = Loaded::default();
        let mut q = self.conn.prepare("SELECT uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted, occurrences, title FROM bookings")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        for row in rows {
            let (uid, ot, s, e, rooms, org, last, deleted, occurrences, title) = row?;
            l.entries.push(table_entry(
                &uid,
                ot,
                (s, e),
                &rooms,
                &org,
                last,
                deleted != 0,
                occurrences.as_deref(),
                title,
            ));
        }
        // Then what the log has since the last fold, in order (a later row
        // of a key replaces an earlier one).
        let mut q = self
            .conn
            .prepare("SELECT rows FROM booking_log ORDER BY id")?;
        for row in q.query_map([], |r| r.get::<_, String>(0))? {
            let rows: Vec<LogRow> = serde_json::from_str(&row?).unwrap_or_default();
            l.entries.extend(rows.into_iter().map(LogRow::entry));
        }
        let mut q = self.conn.prepare("SELECT room, synced_at FROM room_sync")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (room, t) = row?;
            l.synced.push((room, at(t)));
        }
        let mut q = self.conn.prepare("SELECT name, at FROM timer")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (name, t) = row?;
            l.timers.push((name, at(t)));
        }
        l.directory = self
            .conn
            .query_row(
                "SELECT rooms, fetched_at FROM directory WHERE id = 1",
                [],
                |r| Ok((r.get::<_, String>(0)?, at(r.get::<_, i64>(1)?))),
            )
            .optional()?;
        let mut q = self.conn.prepare("SELECT uid, at FROM series_deleted")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (u, t) = row?;
            l.series_deleted.push((u, at(t)));
        }
        // Newest first, up to the limit: the log's (not folded yet), then
        // those folded before.
        for sql in [
            "SELECT ids FROM booking_log WHERE ids IS NOT NULL ORDER BY id DESC",
            "SELECT ids FROM seen_batch ORDER BY id DESC",
        ] {
            let mut q = self.conn.prepare(sql)?;
            let mut rows = q.query([])?;
            while l.seen.len() < seen_limit {
                let Some(row) = rows.next()? else { break };
                let ids: Vec<String> =
                    serde_json::from_str(row.get_ref(0)?.as_str().unwrap_or("[]"))
                        .unwrap_or_default();
                let room = seen_limit - l.seen.len();
                l.seen.extend(ids.into_iter().rev().take(room));
            }
        }
        l.pending = self.outbox_rows("state = 'pending'")?;
        Ok(l)
    }

    /// Commit a batch of applied events (or fetches), each with its
    /// booking rows and the outbox rows it caused, in one transaction, with
    /// the delivery outcomes recorded since the last one. Every write is an
    /// append: the batch's booking rows are one log row, its seen ids and
    /// outbox rows go at the end of their tables. Gives each message its
    /// outbox id.
    fn commit(
        &mut self,
        now: DateTime<Utc>,
        items: &mut [CommitItem],
        marks: &[Mark],
    ) -> Result<(), StoreError> {
        let rows: Vec<LogRowOut<'_>> = items
            .iter()
            .flat_map(|i| i.written.entries.iter().map(LogRowOut::of))
            .collect();
        let ids: Vec<&str> = items.iter().filter_map(|i| i.event_id.as_deref()).collect();
        // One log row a commit: its booking rows and its seen ids.
        let log = (!rows.is_empty() || !ids.is_empty()).then(|| {
            (
                serde_json::to_string(&rows).unwrap_or_default(),
                (!ids.is_empty()).then(|| serde_json::to_string(&ids).unwrap_or_default()),
            )
        });
        let tx = self.conn.transaction()?;
        {
            let mut synced = tx.prepare_cached(
                "INSERT INTO room_sync (room, synced_at) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET synced_at = max(synced_at, excluded.synced_at)",
            )?;
            let mut timer = tx.prepare_cached(
                "INSERT INTO timer (name, at) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
            )?;
            let mut series = tx.prepare_cached("INSERT INTO series_deleted (uid, at) VALUES (?1, ?2) ON CONFLICT (uid) DO UPDATE SET at = max(at, excluded.at)")?;
            let mut out = tx.prepare_cached(
                "INSERT INTO outbox (sink, room, subject, booking, event_id, idempotency_key, format, body, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for item in items.iter_mut() {
                for (room, t) in &item.synced {
                    synced.execute(params![room.as_str(), ms(*t)])?;
                }
                for (name, t) in &item.timers {
                    timer.execute(params![name, ms(*t)])?;
                }
                if let Some((uid, t)) = &item.written.series_deleted {
                    series.execute(params![&**uid, ms(*t)])?;
                }
                for m in &mut item.messages {
                    out.execute(params![
                        &*m.sink,
                        m.room.as_str(),
                        m.subject.as_str(),
                        m.booking,
                        &*m.event_id,
                        m.idempotency_key,
                        m.format.ext(),
                        m.body,
                        ms(now)
                    ])?;
                    m.outbox_id = Some(tx.last_insert_rowid());
                }
            }
            if let Some((rows, ids)) = &log {
                tx.prepare_cached("INSERT INTO booking_log (rows, at, ids) VALUES (?1, ?2, ?3)")?
                    .execute(params![rows, ms(now), ids])?;
            }
            apply_marks(&tx, marks)?;
        }
        tx.commit()?;
        if let Some((rows, _)) = log {
            self.log_rows += 1;
            self.log_bytes += rows.len() as i64;
        }
        Ok(())
    }

    /// Record delivery outcomes in their own transaction, without waiting
    /// for the disk: losing them to a power cut only means a resend, which
    /// receivers de-duplicate by key (the next durable commit syncs them).
    fn record(&mut self, marks: &[Mark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        if self.durable {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let res = (|| -> Result<(), StoreError> {
            let tx = self.conn.transaction()?;
            apply_marks(&tx, marks)?;
            Ok(tx.commit()?)
        })();
        if self.durable {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        res
    }

    /// Is the booking log big enough to fold? Once it holds as many bytes
    /// as the `bookings` table (and at least [`FOLD_BYTES`]): a fold
    /// rewrites about the whole table, so folding no sooner keeps its cost
    /// per logged byte constant however large the table grows. The writer
    /// folds a due log when no commit has come for a while
    /// ([`Fold::Idle`]); a log [`FOLD_FORCE`] times that size is folded
    /// at once ([`Fold::Now`]), so a burst that never pauses still bounds
    /// the log (and what a restart replays).
    fn fold_due(&self) -> Fold {
        let bound = FOLD_BYTES.max(self.bookings_rows * FOLDED_ROW_BYTES);
        if self.log_rows >= FOLD_FORCE * FOLD_ROWS || self.log_bytes >= FOLD_FORCE * bound {
            Fold::Now
        } else if self.log_rows >= FOLD_ROWS || self.log_bytes >= bound {
            Fold::Idle
        } else {
            Fold::No
        }
    }

    /// Fold the booking log into `bookings` and empty it, in one
    /// transaction and one statement: SQLite reads the log's rows
    /// (`json_each`), sorts them by key (its sorter spills to a temporary
    /// file, so memory stays bounded however long the log) and upserts
    /// them in key order, so each page of the table is written once; for
    /// a key logged more than once the last row wins.
    fn fold(&mut self) -> Result<usize, StoreError> {
        if self.log_rows == 0 && self._lock.is_some() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let upto: Option<i64> =
            tx.query_row("SELECT max(id) FROM booking_log", [], |r| r.get(0))?;
        let Some(upto) = upto else {
            tx.commit()?;
            (self.log_rows, self.log_bytes) = (0, 0);
            return Ok(0);
        };
        let n = tx.execute(
            "INSERT INTO bookings (uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted, occurrences, title)
             SELECT j.value ->> 'u', j.value ->> 'o',
                    coalesce(j.value ->> 's', 0), coalesce(j.value ->> 'e', 0),
                    coalesce(j.value -> 'r', '[]'), coalesce(j.value -> 'g', '{}'),
                    j.value ->> 'l', coalesce(j.value ->> 'd', 0),
                    CASE WHEN json_array_length(j.value -> 'c') > 1 THEN j.value -> 'c' END,
                    j.value ->> 't'
             FROM booking_log AS b, json_each(b.rows) AS j
             WHERE b.id <= ?1
             ORDER BY 1, 2, b.id, j.key
             ON CONFLICT (uid, original_time) DO UPDATE SET start_ms = excluded.start_ms, end_ms = excluded.end_ms,
               rooms = excluded.rooms, organizer = excluded.organizer, last_change = excluded.last_change, deleted = excluded.deleted,
               occurrences = excluded.occurrences, title = excluded.title",
            [upto],
        )?;
        // The seen ids stay (until pruned), in their order.
        tx.execute(
            "INSERT INTO seen_batch (at, ids) SELECT at, ids FROM booking_log WHERE id <= ?1 AND ids IS NOT NULL ORDER BY id",
            [upto],
        )?;
        tx.execute("DELETE FROM booking_log WHERE id <= ?1", [upto])?;
        self.bookings_rows = tx.query_row("SELECT count(*) FROM bookings", [], |r| r.get(0))?;
        tx.commit()?;
        (self.log_rows, self.log_bytes) = (0, 0);
        Ok(n)
    }

    /// Take over WAL checkpoints from the commits: SQLite would checkpoint
    /// inside the commit that crosses 1,000 pages, before its acks could
    /// leave. Instead the writer checkpoints after replying
    /// ([`Store::checkpoint_due`]), while the core is busy with the next
    /// batch. Should that not keep up, a commit checkpoints at
    /// [`CHECKPOINT_INLINE_PAGES`] all the same.
    fn defer_checkpoints(&mut self) -> Result<(), StoreError> {
        let pages = self.wal_pages.clone();
        self.conn
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, n: i32| {
                pages.store(n, std::sync::atomic::Ordering::Relaxed);
                if n >= CHECKPOINT_INLINE_PAGES {
                    wal.checkpoint_v2(CheckpointMode::PASSIVE)?;
                }
                Ok(())
            }))?;
        Ok(())
    }

    /// Has the WAL grown enough to checkpoint?
    fn checkpoint_due(&self) -> bool {
        self.wal_pages.load(std::sync::atomic::Ordering::Relaxed) >= CHECKPOINT_PAGES
    }

    /// Copy the WAL into the database (without waiting for readers); the
    /// next commit then starts the WAL over.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)?;
        self.wal_pages
            .store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Keep the room directory (JSON, as `sync` shapes it).
    fn save_directory(&self, rooms: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO directory (id, rooms, fetched_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET rooms = excluded.rooms, fetched_at = excluded.fetched_at",
            params![rooms, ms(now)],
        )?;
        Ok(())
    }

    /// Pending and dead rows, for `roomcast outbox`.
    fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("state IN ('pending', 'dead', 'failed')")
    }

    /// Every row still kept (delivered and superseded ones until they are
    /// pruned), for `roomcast outbox --all`.
    fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("1 = 1")
    }

    /// Put a dead or failed row back in the queue (for the next start).
    fn retry(&self, id: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE outbox SET state = 'pending', last_error = NULL WHERE id = ?1 AND state IN ('dead', 'failed')",
            [id],
        )?;
        Ok(n == 1)
    }

    /// Forget what is older than `before`: seen ids, bookings that ended,
    /// tombstones, finished outbox rows. Returns rows removed.
    fn prune(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        // Ended bookings still in the log go with this fold.
        self.fold()?;
        let b = ms(before);
        let mut n = self
            .conn
            .execute("DELETE FROM seen_batch WHERE at < ?1", [b])?;
        n += self.conn.execute("DELETE FROM bookings WHERE (deleted = 0 AND end_ms < ?1) OR (deleted = 1 AND last_change < ?1)", [b])?;
        n += self
            .conn
            .execute("DELETE FROM series_deleted WHERE at < ?1", [b])?;
        n += self.conn.execute(
            "DELETE FROM outbox WHERE state IN ('delivered', 'superseded') AND done_at < ?1",
            [b],
        )?;
        Ok(n)
    }
}

/// Apply delivery outcomes in a transaction.
fn apply_marks(tx: &rusqlite::Transaction<'_>, marks: &[Mark]) -> Result<(), StoreError> {
    let mut q = tx.prepare_cached(
        "UPDATE outbox SET state = ?2, attempts = attempts + 1, last_error = ?3,
           done_at = CASE WHEN ?2 = 'pending' THEN done_at ELSE ?4 END WHERE id = ?1",
    )?;
    for m in marks {
        q.execute(params![m.id, m.state.as_str(), m.error, ms(m.at)])?;
    }
    Ok(())
}
