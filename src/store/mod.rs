//! The durable store: schedule, seen delivery ids and the delivery outbox,
//! in one embedded SQLite file (WAL; [`Sqlite`], the default) or in a
//! PostgreSQL database ([`Postgres`]). Applied events are committed with
//! the messages they caused; the platform is acknowledged only after the
//! commit. One thread owns the store ([`Writer`]): the core hands it a
//! batch and goes on reading, and whatever it applied meanwhile is the next
//! batch (group commit).
//!
//! The interface is small on purpose: [`Store`]'s methods are all the rest
//! of the code uses, and both backends sit behind it. Its methods block
//! (they run on the writer's thread, or in `spawn_blocking`: see
//! [`open`] and [`read`]).

#[cfg(test)]
mod contract;
pub mod feed;
mod postgres;
pub mod shared;
mod sqlite;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::message::Message;
use crate::model::RoomId;
use crate::schedule::{EntryRow, Written};

pub use postgres::Postgres;
pub use sqlite::{BackupReport, Fold, Sqlite};
pub(crate) use writer::{Committed, StoreHandle, Writer};

use crate::config::{StoreBackend, StoreConfig};

/// What the app keeps durably, whichever the backend. Every method blocks:
/// call it from the writer's thread or from `spawn_blocking`, never from
/// the runtime's thread (the PostgreSQL backend drives its own runtime).
pub trait Store: Send {
    /// Everything a restart needs; the `seen_limit` most recent ids.
    fn load(&self, seen_limit: usize) -> Result<Loaded, StoreError>;
    /// Commit a batch of applied events (or fetches), each with its booking
    /// rows and the outbox rows it caused, in one transaction, with the
    /// delivery outcomes recorded since the last one. Gives each message
    /// its outbox id.
    fn commit(
        &mut self,
        now: DateTime<Utc>,
        items: &mut [CommitItem],
        marks: &[Mark],
    ) -> Result<(), StoreError>;
    /// Record delivery outcomes in a transaction of their own (a power cut
    /// may lose the last few: that only means a resend under the same key).
    fn record(&mut self, marks: &[Mark]) -> Result<(), StoreError>;
    /// Keep the room directory (JSON, as `sync` shapes it).
    fn save_directory(&self, rooms: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Pending, failed and dead rows, for `roomcast outbox`.
    fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// Every row still kept, for `roomcast outbox --all`.
    fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// Put a dead or failed row back in the queue (for the next start).
    fn retry(&self, id: i64) -> Result<bool, StoreError>;
    /// Forget what is older than `before`; returns rows removed.
    fn prune(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError>;

    // Housekeeping the writer runs between commits; none by default.

    /// Is a fold of the store's log due?
    fn fold_due(&self) -> Fold {
        Fold::No
    }
    /// Fold the log into the tables; returns rows folded.
    fn fold(&mut self) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Take over the backend's own checkpoints (the writer then runs them
    /// after replying, see [`Store::checkpoint_due`]).
    fn defer_checkpoints(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn checkpoint_due(&self) -> bool {
        false
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Open the configured store for the running app (SQLite: taking its lock
/// file; both: checking it is ours and not newer, migrating); `me` names
/// this instance in a shared store (it records outcomes only for the rows
/// it claimed: see [`shared`]). Blocks.
pub fn open(sc: &StoreConfig, me: &str) -> Result<Box<dyn Store>, StoreError> {
    Ok(match &sc.backend {
        StoreBackend::Sqlite { path, sync } => {
            Box::new(Sqlite::open(path, *sync == crate::config::SyncMode::Full)?)
        }
        StoreBackend::Postgres(pg) => Box::new(Postgres::open(pg)?.instance(me)),
    })
}

/// Can the configured store be used, changing nothing (`check`,
/// `doctor`)? A line for the operator, or why not.
pub async fn probe(sc: &StoreConfig) -> Result<String, StoreError> {
    let backend = sc.backend.clone();
    tokio::task::spawn_blocking(move || match &backend {
        StoreBackend::Sqlite { path, .. } if path.exists() => {
            Sqlite::open_read_only(path)?;
            Ok(format!("SQLite {}: a roomcast store", path.display()))
        }
        StoreBackend::Sqlite { path, .. } => Ok(format!(
            "SQLite {}: created at the first start",
            path.display()
        )),
        StoreBackend::Postgres(pg) => Postgres::probe(pg),
    })
    .await
    .map_err(|_| StoreError::ReaderGone)?
}

/// Open the configured store to read (and retry rows) while roomcast may be
/// running, and run `f` on it, off the runtime's thread.
pub async fn read<T, F>(sc: &StoreConfig, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let backend = sc.backend.clone();
    tokio::task::spawn_blocking(move || {
        let store: Box<dyn Store> = match &backend {
            StoreBackend::Sqlite { path, .. } => Box::new(Sqlite::open_read_only(path)?),
            StoreBackend::Postgres(pg) => Box::new(Postgres::open_read_only(pg)?),
        };
        f(&*store)
    })
    .await
    .map_err(|_| StoreError::ReaderGone)?
}

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} is in use by another running roomcast (lock file {0}.lock is held)")]
    Locked(PathBuf),
    #[error("{0} is not a roomcast store (left untouched)")]
    Foreign(PathBuf),
    #[error(
        "{path} has schema version {found}; this roomcast understands up to {supported} (left untouched; upgrade roomcast)"
    )]
    Newer {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    /// SQLite could not read it, or its integrity check failed (`detail`).
    #[error("{path} is unreadable or corrupt{} (left untouched)", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        detail: Option<String>,
        #[source]
        source: Option<rusqlite::Error>,
    },
    #[error("store: {0} does not exist")]
    Missing(PathBuf),
    #[error("store")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed (`what` says doing what; the server's
    /// own message is the source). No URL or password appears here.
    #[error("store (PostgreSQL {target}): {what}")]
    Postgres {
        target: String,
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Another batch of the same group commit failed (its error is logged
    /// with that batch).
    #[error("store: the commit this batch was grouped with failed")]
    GroupFailed,
    /// The writer thread is gone (it panicked, or could not start).
    #[error("store: the writer thread has stopped")]
    WriterGone,
    /// The blocking task that read the store ended without an answer.
    #[error("store: reading it stopped unexpectedly")]
    ReaderGone,
    #[error("store: {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting to be sent (again after a restart).
    Pending,
    Delivered,
    /// Refused for good by the receiver, or its sink is gone.
    Failed,
    /// Still undelivered at the sink's `max_age`.
    Dead,
    /// A newer snapshot of the same room replaced it.
    Superseded,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
            OutboxState::Dead => "dead",
            OutboxState::Superseded => "superseded",
        }
    }

    pub(crate) fn parse(s: &str) -> OutboxState {
        match s {
            "delivered" => OutboxState::Delivered,
            "failed" => OutboxState::Failed,
            "dead" => OutboxState::Dead,
            "superseded" => OutboxState::Superseded,
            _ => OutboxState::Pending,
        }
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A queued or given-up outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// The sink's name (indexes change with the config; names do not).
    pub sink: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created: DateTime<Utc>,
    /// Ready to send: it names its sink as the row does.
    pub message: Message,
}

/// What a restart needs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub entries: Vec<EntryRow>,
    pub series_deleted: Vec<(String, DateTime<Utc>)>,
    /// Most recent first.
    pub seen: Vec<String>,
    /// Pending outbox rows in order.
    pub pending: Vec<OutboxRow>,
    /// When each room's schedule was last fetched from the platform.
    pub synced: Vec<(String, DateTime<Utc>)>,
    /// The room directory as last fetched (JSON), and when.
    pub directory: Option<(String, DateTime<Utc>)>,
    /// How far each of the clock's own message kinds has gone (see
    /// [`CommitItem::timers`]).
    pub timers: Vec<(String, DateTime<Utc>)>,
    /// A shared store: where its change feed starts, so that nothing
    /// committed after this load is missed (see [`feed`]).
    pub feed_from: Option<feed::Mark>,
}

/// One applied event's (or one fetch's) writes, handed to the writer and
/// back (with each message's outbox id set).
#[derive(Debug, Default)]
pub struct CommitItem {
    /// The delivery id to remember (`None` for a fetch).
    pub event_id: Option<String>,
    /// Rooms a fetch covered, and when it began.
    pub synced: Vec<(RoomId, DateTime<Utc>)>,
    pub written: Written,
    /// Messages to keep in the outbox until delivered.
    pub messages: Vec<Message>,
    /// Named instants the clock's messages have been made up to
    /// (`reminders`, `digest:SINK`), written with those messages: each is
    /// made once, restart or not. Only ever moved forward.
    pub timers: Vec<(String, DateTime<Utc>)>,
    /// Set by a store shared with other instances when it did not take
    /// the item: its delivery id was already there (another instance
    /// applied it), or a newer change of one of its bookings was (the
    /// per-booking `event_time`, compared in the database). Its messages
    /// were then not queued (they have no outbox id) and must not be sent.
    pub refused: Option<crate::schedule::Skip>,
    /// Made by the leader of this epoch (several instances: the clock's
    /// work): a shared store takes it only while that lease still stands
    /// (a deposed leader's reminders and timer marks are refused).
    pub leader_epoch: Option<i64>,
}

/// A delivery outcome to record against an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub id: i64,
    pub state: OutboxState,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}
