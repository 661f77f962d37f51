//! The durable store: schedule, seen delivery ids and the delivery outbox in
//! one embedded SQLite file (WAL). Applied events are committed with the
//! messages they caused; the platform is acknowledged only after the
//! commit. One thread owns the connection ([`Writer`]): the core hands it
//! a batch and goes on reading, and whatever it applied meanwhile is the
//! next batch (group commit).
//!
//! The interface is small on purpose ([`Store`]'s methods are all the rest
//! of the code uses), so a shared PostgreSQL backend can sit behind it.

mod sqlite;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::message::Message;
use crate::model::RoomId;
use crate::schedule::{EntryRow, Written};

pub use sqlite::{BackupReport, Store};
pub(crate) use writer::{Committed, StoreHandle, Writer};

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
    /// Another batch of the same group commit failed (its error is logged
    /// with that batch).
    #[error("store: the commit this batch was grouped with failed")]
    GroupFailed,
    /// The writer thread is gone (it panicked, or could not start).
    #[error("store: the writer thread has stopped")]
    WriterGone,
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

    fn parse(s: &str) -> OutboxState {
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
    /// Its `sink` index is not set: the caller maps the name.
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
}

/// One applied event's (or one fetch's) writes, handed to the writer and
/// back (with each message's outbox id set).
#[derive(Debug, Default)]
pub(crate) struct CommitItem {
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
}

/// A delivery outcome to record against an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub id: i64,
    pub state: OutboxState,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}
