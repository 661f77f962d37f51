//! The SQLite backend of [`super::Store`]: one file in WAL mode, a lock
//! file beside it, the schema in `user_version` with migrations.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{EventWrite, Loaded, OutboxRow, OutboxState, StoreError};
use crate::message::{Message, Subject};
use crate::model::{Booking, BookingKey, Organizer, RoomId};
use crate::render::Format;
use crate::schedule::EntryRow;

/// `PRAGMA application_id`: marks a file as roomcast's ("RMCS").
pub(crate) const APPLICATION_ID: i32 = 0x524d_4353;
/// The schema this build writes; each step up is a migration below.
pub(crate) const SCHEMA_VERSION: i32 = 2;

const MIGRATIONS: &[&str] = &[
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
];

/// The store.
pub struct Store {
    conn: Connection,
    /// Delivery outcomes go through their own connection without a sync per
    /// commit: losing one to a power cut only means a resend (receivers
    /// de-duplicate by key), and the next event commit syncs them anyway.
    marks: Connection,
    path: PathBuf,
    _lock: Option<File>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
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

impl Store {
    /// Open (creating on first run) for the running app: takes the lock
    /// file, checks the file is ours and not newer, migrates.
    pub fn open(path: &Path, durable: bool) -> Result<Store, StoreError> {
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
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let marks = Connection::open(path)?;
        marks.pragma_update(None, "synchronous", "NORMAL")?;
        marks.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut s = Store {
            conn,
            marks,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        s.migrate()?;
        Ok(s)
    }

    /// Open read-only for inspection while roomcast may be running.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        check_existing(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let marks = Connection::open_with_flags(path, flags)?;
        marks.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Store {
            conn,
            marks,
            path: path.to_path_buf(),
            _lock: None,
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

    /// Everything a restart needs; `seen_limit` most recent ids.
    pub fn load(&self, seen_limit: usize) -> Result<Loaded, StoreError> {
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
            let key = BookingKey::new(&uid, ot);
            let rooms: Vec<String> = serde_json::from_str(&rooms).unwrap_or_default();
            let organizer: Organizer = serde_json::from_str(&org).unwrap_or_default();
            let occurrences: Vec<(i64, i64)> = occurrences
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or_default();
            l.entries.push(EntryRow {
                booking: (deleted == 0).then(|| Booking {
                    key: key.clone(),
                    start: at(s),
                    end: at(e),
                    rooms: rooms.iter().map(|r| RoomId::new(r)).collect(),
                    organizer: Arc::new(organizer),
                    title: title.map(|t| Arc::from(t.as_str())),
                }),
                occurrences: occurrences
                    .into_iter()
                    .map(|(s, e)| (at(s), at(e)))
                    .collect(),
                key,
                last_change: at(last),
            });
        }
        let mut q = self.conn.prepare("SELECT room, synced_at FROM room_sync")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (room, t) = row?;
            l.synced.push((room, at(t)));
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
        let mut q = self
            .conn
            .prepare("SELECT event_id FROM seen ORDER BY at DESC LIMIT ?1")?;
        for row in q.query_map([seen_limit as i64], |r| r.get::<_, String>(0))? {
            l.seen.push(row?);
        }
        l.pending = self.outbox_rows("state = 'pending'")?;
        Ok(l)
    }

    fn outbox_rows(&self, filter: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT id, sink, room, subject, booking, event_id, idempotency_key, format, body, created, state, attempts, last_error FROM outbox WHERE {filter} ORDER BY id"
        );
        let mut q = self.conn.prepare(&sql)?;
        let rows = q.query_map([], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                sink: r.get(1)?,
                created: at(r.get(9)?),
                state: OutboxState::parse(&r.get::<_, String>(10)?),
                attempts: r.get(11)?,
                last_error: r.get(12)?,
                message: Message {
                    sink: crate::config::SinkIndex::UNSET,
                    outbox_id: Some(r.get(0)?),
                    idempotency_key: r.get(6)?,
                    event_id: Arc::from(r.get::<_, String>(5)?.as_str()),
                    room: RoomId::new(&r.get::<_, String>(2)?),
                    subject: Subject::parse(&r.get::<_, String>(3)?),
                    booking: r.get(4)?,
                    body: r.get(8)?,
                    format: Format::from_ext(&r.get::<_, String>(7)?).unwrap_or(Format::Text),
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Commit a batch of applied events, each with its booking rows and the
    /// outbox rows it caused, in one transaction. Returns the outbox ids in
    /// the order given.
    pub(crate) fn commit(
        &mut self,
        now: DateTime<Utc>,
        events: &[EventWrite<'_>],
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::new();
        {
            let mut seen =
                tx.prepare_cached("INSERT OR IGNORE INTO seen (event_id, at) VALUES (?1, ?2)")?;
            let mut book = tx.prepare_cached(
                "INSERT INTO bookings (uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted, occurrences, title)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (uid, original_time) DO UPDATE SET start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                   rooms = excluded.rooms, organizer = excluded.organizer, last_change = excluded.last_change, deleted = excluded.deleted,
                   occurrences = excluded.occurrences, title = excluded.title",
            )?;
            let mut synced = tx.prepare_cached(
                "INSERT INTO room_sync (room, synced_at) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET synced_at = max(synced_at, excluded.synced_at)",
            )?;
            let mut series = tx.prepare_cached("INSERT INTO series_deleted (uid, at) VALUES (?1, ?2) ON CONFLICT (uid) DO UPDATE SET at = max(at, excluded.at)")?;
            let mut out = tx.prepare_cached(
                "INSERT INTO outbox (sink, room, subject, booking, event_id, idempotency_key, format, body, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for ev in events {
                if let Some(id) = ev.event_id {
                    seen.execute(params![id, ms(now)])?;
                }
                for (room, t) in &ev.synced {
                    synced.execute(params![room, ms(*t)])?;
                }
                for e in ev.entries {
                    let (s, en, rooms, org, deleted) = match &e.booking {
                        Some(b) => (
                            ms(b.start),
                            ms(b.end),
                            serde_json::to_string(&b.rooms).unwrap_or_else(|_| "[]".into()),
                            serde_json::to_string(&*b.organizer).unwrap_or_else(|_| "{}".into()),
                            0,
                        ),
                        None => (0, 0, "[]".into(), "{}".into(), 1),
                    };
                    let occurrences = (e.occurrences.len() > 1).then(|| {
                        let v: Vec<(i64, i64)> = e
                            .occurrences
                            .iter()
                            .map(|(s, e)| (ms(*s), ms(*e)))
                            .collect();
                        serde_json::to_string(&v).unwrap_or_default()
                    });
                    let title = e.booking.as_ref().and_then(|b| b.title.as_deref());
                    book.execute(params![
                        &*e.key.uid,
                        e.key.original_time,
                        s,
                        en,
                        rooms,
                        org,
                        ms(e.last_change),
                        deleted,
                        occurrences,
                        title
                    ])?;
                }
                if let Some((uid, t)) = &ev.series_deleted {
                    series.execute(params![&**uid, ms(*t)])?;
                }
                for (sink, m) in &ev.outbox {
                    out.execute(params![
                        sink,
                        m.room.as_str(),
                        m.subject.as_str(),
                        m.booking,
                        &*m.event_id,
                        m.idempotency_key,
                        m.format.ext(),
                        m.body,
                        ms(now)
                    ])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Record a delivery outcome.
    pub fn mark(
        &self,
        id: i64,
        state: OutboxState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.marks
            .prepare_cached(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, last_error = ?3, done_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), error, ms(now)])?;
        Ok(())
    }

    /// Record that these messages were delivered, in one transaction.
    pub(crate) fn mark_delivered(
        &mut self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.marks.transaction()?;
        {
            let mut q = tx.prepare_cached(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, done_at = ?2 WHERE id = ?1",
            )?;
            for id in ids {
                q.execute(params![id, ms(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Keep the room directory (JSON, as `sync` shapes it).
    pub(crate) fn save_directory(&self, rooms: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO directory (id, rooms, fetched_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET rooms = excluded.rooms, fetched_at = excluded.fetched_at",
            params![rooms, ms(now)],
        )?;
        Ok(())
    }

    /// Pending and dead rows, for `roomcast outbox`.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("state IN ('pending', 'dead', 'failed')")
    }

    /// Put a dead or failed row back in the queue (for the next start).
    pub fn retry(&self, id: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE outbox SET state = 'pending', last_error = NULL WHERE id = ?1 AND state IN ('dead', 'failed')",
            [id],
        )?;
        Ok(n == 1)
    }

    /// Forget what is older than `before`: seen ids, bookings that ended,
    /// tombstones, finished outbox rows. Returns rows removed.
    pub(crate) fn prune(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let b = ms(before);
        let mut n = self.conn.execute("DELETE FROM seen WHERE at < ?1", [b])?;
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

    /// Whether the store answers and can write (for health checks).
    pub(crate) fn writable(&self) -> bool {
        self.conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .optional()
            .is_ok_and(|v| v.is_some())
    }
}
