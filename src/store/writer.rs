//! The store's writer: one OS thread owns the connection, so no commit,
//! `fsync`, fold or prune ever runs on the runtime's thread.
//!
//! The core [`Writer::submit`]s a batch and keeps reading frames, answering
//! pings and HTTP; the batch's acks go out when its reply lands, and what
//! was applied meanwhile is the next batch (group commit, one in flight).
//! Delivery outcomes ([`StoreHandle`], from the sink workers) ride along
//! with the next commit, or are written on their own once the writer has
//! been idle a moment; they never wait for the disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{CommitItem, Mark, OutboxState, Store, StoreError};
use crate::error::Chain;

/// Delivery outcomes wait at most this long for a commit to ride with.
const MARK_DELAY: Duration = Duration::from_millis(200);
/// ...or until this many have gathered.
const MARK_BATCH: usize = 4096;

/// What a commit hands back: the items, each message with its outbox id.
pub(crate) type Committed = Result<Vec<CommitItem>, StoreError>;

enum Job {
    Commit {
        items: Vec<CommitItem>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Committed>,
    },
    Marks(Vec<Mark>),
    Directory {
        json: String,
        now: DateTime<Utc>,
    },
    Prune {
        before: DateTime<Utc>,
    },
}

/// Where the rest of the app sends writes that need no answer.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
}

impl StoreHandle {
    fn send(&self, job: Job) {
        if self.tx.send(job).is_err() {
            tracing::error!("the store's writer has stopped; a write was lost");
        }
    }

    /// Record one delivery outcome.
    pub(crate) fn mark(&self, id: i64, state: OutboxState, error: Option<&str>, at: DateTime<Utc>) {
        self.send(Job::Marks(vec![Mark {
            id,
            state,
            error: error.map(str::to_string),
            at,
        }]));
    }

    /// Record that these were delivered.
    pub(crate) fn delivered(&self, ids: &[i64], at: DateTime<Utc>) {
        let marks = ids
            .iter()
            .map(|&id| Mark {
                id,
                state: OutboxState::Delivered,
                error: None,
                at,
            })
            .collect();
        self.send(Job::Marks(marks));
    }

    /// Keep the room directory (JSON).
    pub(crate) fn save_directory(&self, json: String, now: DateTime<Utc>) {
        self.send(Job::Directory { json, now });
    }

    /// Forget what is older than `before`.
    pub(crate) fn prune(&self, before: DateTime<Utc>) {
        self.send(Job::Prune { before });
    }

    /// Did the last write succeed? (for `/readyz`)
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// The writer thread and the way to it.
pub(crate) struct Writer {
    handle: StoreHandle,
    done: oneshot::Receiver<()>,
}

impl Writer {
    /// Start the thread; `sinks` names each sink index (the outbox keeps
    /// names, which survive config changes).
    pub(crate) fn start(store: Store, sinks: Vec<String>) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let (done_tx, done) = oneshot::channel();
        let h = healthy.clone();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                run(store, &rx, &sinks, &h);
                let _ = done_tx.send(());
            })
            .map_err(|source| StoreError::Io {
                what: "cannot start the store's writer thread".into(),
                source,
            })?;
        Ok(Writer {
            handle: StoreHandle { tx, healthy },
            done,
        })
    }

    pub(crate) fn handle(&self) -> StoreHandle {
        self.handle.clone()
    }

    /// Commit a batch; the reply lands when it is on disk (or failed).
    pub(crate) fn submit(
        &self,
        items: Vec<CommitItem>,
        now: DateTime<Utc>,
    ) -> oneshot::Receiver<Committed> {
        let (reply, rx) = oneshot::channel();
        // A writer that is gone drops `reply`: the receiver sees it.
        let _ = self.handle.tx.send(Job::Commit { items, now, reply });
        rx
    }

    /// Stop once every handle is dropped and what was sent is written.
    pub(crate) async fn finish(self) {
        drop(self.handle);
        // Err: the thread ended without signalling (it panicked).
        let _ = self.done.await;
    }
}

/// The thread: take what is waiting, commit it, reply; write outcomes when
/// idle; fold the booking log when it has grown.
fn run(mut store: Store, rx: &mpsc::Receiver<Job>, sinks: &[String], healthy: &AtomicBool) {
    let mut marks: Vec<Mark> = Vec::new();
    let ok = |r: Result<(), StoreError>, what: &str| match r {
        Ok(()) => healthy.store(true, Ordering::Relaxed),
        Err(e) => {
            healthy.store(false, Ordering::Relaxed);
            tracing::error!(error = %Chain(&e), "store: {what} failed");
        }
    };
    loop {
        let first = if marks.is_empty() {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(MARK_DELAY) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    ok(store.record(&marks), "recording delivery outcomes");
                    marks.clear();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Commit {
                    mut items,
                    now,
                    reply,
                } => {
                    let r = store.commit(now, &mut items, sinks, &marks);
                    healthy.store(r.is_ok(), Ordering::Relaxed);
                    if r.is_ok() {
                        marks.clear();
                    }
                    let _ = reply.send(r.map(|()| items));
                }
                Job::Marks(m) => marks.extend(m),
                Job::Directory { json, now } => {
                    ok(store.save_directory(&json, now), "keeping the room directory");
                }
                Job::Prune { before } => match store.prune(before) {
                    Ok(rows) => {
                        healthy.store(true, Ordering::Relaxed);
                        tracing::debug!(rows, "store pruned");
                    }
                    Err(e) => ok(Err(e), "pruning"),
                },
            }
            next = rx.try_recv().ok();
        }
        if marks.len() >= MARK_BATCH {
            ok(store.record(&marks), "recording delivery outcomes");
            marks.clear();
        }
        if store.fold_due() {
            match store.fold() {
                Ok(n) => tracing::debug!(bookings = n, "booking log folded"),
                Err(e) => ok(Err(e), "folding the booking log"),
            }
        }
    }
    ok(store.record(&marks), "recording delivery outcomes");
    if let Err(e) = store.fold() {
        tracing::warn!(error = %Chain(&e), "store: folding the booking log at exit failed (it is replayed at the next start)");
    }
}
