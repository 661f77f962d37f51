//! The store's writer: one OS thread owns the connection, so no commit,
//! `fsync`, fold or prune ever runs on the runtime's thread.
//!
//! The core [`Writer::submit`]s each step's batch and keeps reading frames,
//! answering pings and HTTP; a batch's acks go out when its reply lands.
//! Every batch queued while a commit is on its way to the disk is the next
//! commit (group commit): the writer never waits on the core between two.
//! Delivery outcomes ([`StoreHandle`], from the sink workers) ride along
//! with a commit waiting beside them, or are written at once on their own
//! without waiting for the disk (a process crash keeps them; a power cut
//! may lose the last few, which only means a resend under the same key).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{CommitItem, Fold, Mark, OutboxState, Store, StoreError};
use crate::error::Chain;

/// What a commit hands back: the items, each message with its outbox id.
pub(crate) type Committed = Result<Vec<CommitItem>, StoreError>;

enum Job {
    Commit {
        items: Vec<CommitItem>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Committed>,
    },
    /// Outcomes, and who waits until they are written.
    Marks(Vec<Mark>, Option<oneshot::Sender<()>>),
    Directory {
        json: String,
        now: DateTime<Utc>,
    },
    Prune {
        before: DateTime<Utc>,
    },
    /// Read back what the store holds (a shared store that failed: is it
    /// back, and what does it say now?).
    Load {
        seen_limit: usize,
        reply: oneshot::Sender<Result<super::Loaded, StoreError>>,
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

    /// Record one delivery outcome; the receiver answers once it is
    /// written (a sink waits for it before its next message, so a crash
    /// repeats at most the one message in flight).
    pub(crate) fn mark(
        &self,
        id: i64,
        state: OutboxState,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> oneshot::Receiver<()> {
        self.record(vec![Mark {
            id,
            state,
            error: error.map(str::to_string),
            at,
        }])
    }

    /// Record that these were delivered (answered once written).
    pub(crate) fn delivered(&self, ids: &[i64], at: DateTime<Utc>) -> oneshot::Receiver<()> {
        self.record(
            ids.iter()
                .map(|&id| Mark {
                    id,
                    state: OutboxState::Delivered,
                    error: None,
                    at,
                })
                .collect(),
        )
    }

    fn record(&self, marks: Vec<Mark>) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Marks(marks, Some(tx)));
        rx
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
    /// Commits made (each holds every batch queued while the previous
    /// one was on its way to the disk).
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Start the thread.
    pub(crate) fn start(mut store: Box<dyn Store>) -> Result<Writer, StoreError> {
        store.defer_checkpoints()?;
        let (tx, rx) = mpsc::channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let (done_tx, done) = oneshot::channel();
        let h = healthy.clone();
        let commits = Arc::new(AtomicU64::new(0));
        let c = commits.clone();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                run(store, &rx, &h, &c);
                let _ = done_tx.send(());
            })
            .map_err(|source| StoreError::Io {
                what: "cannot start the store's writer thread".into(),
                source,
            })?;
        Ok(Writer {
            handle: StoreHandle { tx, healthy },
            done,
            commits,
        })
    }

    /// Commits made so far: the batches ([`Writer::submit`]s) queued
    /// while one is on its way to the disk are the next one's group.
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
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

    /// Read what the store holds, after everything queued before (the
    /// reply tells whether the store answers again, and what it holds).
    pub(crate) fn load(
        &self,
        seen_limit: usize,
    ) -> oneshot::Receiver<Result<super::Loaded, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.handle.tx.send(Job::Load { seen_limit, reply });
        rx
    }

    /// Stop once every handle is dropped and what was sent is written.
    pub(crate) async fn finish(self) {
        drop(self.handle);
        // Err: the thread ended without signalling (it panicked).
        let _ = self.done.await;
    }
}

/// The thread: take what is waiting — every commit batch queued is one
/// commit (group commit), with the outcomes that came meanwhile — and
/// reply; write the outcomes left; fold the booking log when it has grown,
/// in a pause of the commits (or at once when it has grown far).
fn run(
    mut store: Box<dyn Store>,
    rx: &mpsc::Receiver<Job>,
    healthy: &AtomicBool,
    commits: &AtomicU64,
) {
    // A due fold waits for a pause this long in the commits: a burst's
    // commits are not held up behind it (see `Store::fold_due`).
    const FOLD_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
    let mut marks: Vec<Mark> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut fold_after = std::time::Instant::now();
    loop {
        let idle_fold = store.fold_due() != Fold::No && std::time::Instant::now() >= fold_after;
        let first = if !idle_fold {
            rx.recv().ok()
        } else {
            match rx.recv_timeout(FOLD_PAUSE) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    fold(&mut *store, healthy, &mut fold_after);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(first) = first else { break };
        // Everything queued now: commit batches become one commit; the
        // other jobs run after it.
        let mut batches = Vec::new();
        let mut others = Vec::new();
        let mut now = DateTime::<Utc>::MIN_UTC;
        for job in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match job {
                Job::Commit {
                    items,
                    now: n,
                    reply,
                } => {
                    now = now.max(n);
                    batches.push((items, reply));
                }
                Job::Marks(m, reply) => {
                    marks.extend(m);
                    waiting.extend(reply);
                }
                other => others.push(other),
            }
        }
        if !batches.is_empty() && commit_group(&mut *store, batches, now, &marks, commits, healthy)
        {
            marks.clear();
        }
        for job in others {
            match job {
                Job::Directory { json, now } => record(
                    healthy,
                    store.save_directory(&json, now),
                    "keeping the room directory",
                ),
                Job::Prune { before } => {
                    let r = store.prune(before).map(|rows| {
                        tracing::debug!(rows, "store pruned");
                    });
                    record(healthy, r, "pruning");
                }
                Job::Load { seen_limit, reply } => {
                    let r = store.load(seen_limit);
                    healthy.store(r.is_ok(), Ordering::Relaxed);
                    let _ = reply.send(r);
                }
                Job::Commit { .. } | Job::Marks(..) => {}
            }
        }
        if !marks.is_empty() {
            record(healthy, store.record(&marks), "recording delivery outcomes");
            marks.clear();
        }
        // Written, or failed (logged): either way the sink goes on.
        answer(&mut waiting);
        if store.fold_due() == Fold::Now && std::time::Instant::now() >= fold_after {
            fold(&mut *store, healthy, &mut fold_after);
        }
        // After the replies: the core is busy with the next batch meanwhile.
        if store.checkpoint_due()
            && let Err(e) = store.checkpoint()
        {
            tracing::warn!(error = %Chain(&e), "store: WAL checkpoint failed (tried again after the next commit)");
        }
    }
    if let Err(e) = store.fold() {
        tracing::warn!(error = %Chain(&e), "store: folding the booking log at exit failed (it is replayed at the next start)");
    }
}

/// Commit these batches (and the outcomes waiting) in one transaction and
/// reply to each with its own items; true when it succeeded.
fn commit_group(
    store: &mut dyn Store,
    batches: Vec<(Vec<CommitItem>, oneshot::Sender<Committed>)>,
    now: DateTime<Utc>,
    marks: &[Mark],
    commits: &AtomicU64,
    healthy: &AtomicBool,
) -> bool {
    let sizes: Vec<usize> = batches.iter().map(|(items, _)| items.len()).collect();
    let (items, replies): (Vec<Vec<CommitItem>>, Vec<_>) = batches.into_iter().unzip();
    let mut all: Vec<CommitItem> = items.into_iter().flatten().collect();
    let r = store.commit(now, &mut all, marks);
    healthy.store(r.is_ok(), Ordering::Relaxed);
    commits.fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(()) => {
            // Newest first, each its own items off the end: the core waits
            // on the oldest, and when that one lands every other reply of
            // the group is already there, so their acks leave together.
            for (reply, n) in replies.into_iter().zip(sizes).rev() {
                let _ = reply.send(Ok(all.split_off(all.len().saturating_sub(n))));
            }
            true
        }
        Err(e) => {
            let mut first = Some(e);
            for reply in replies {
                let e = first.take().unwrap_or(StoreError::GroupFailed);
                let _ = reply.send(Err(e));
            }
            false
        }
    }
}

fn record(healthy: &AtomicBool, r: Result<(), StoreError>, what: &str) {
    match r {
        Ok(()) => healthy.store(true, Ordering::Relaxed),
        Err(e) => {
            healthy.store(false, Ordering::Relaxed);
            tracing::error!(error = %Chain(&e), "store: {what} failed");
        }
    }
}

/// After a failed fold, the next is tried no sooner than this.
const FOLD_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Fold the booking log. A failure is logged and puts `next` a
/// [`FOLD_RETRY`] away (the log is kept and replayed at a restart, so
/// nothing is lost).
fn fold(store: &mut dyn Store, healthy: &AtomicBool, next: &mut std::time::Instant) {
    match store.fold() {
        Ok(n) => tracing::debug!(bookings = n, "booking log folded"),
        Err(e) => {
            healthy.store(false, Ordering::Relaxed);
            tracing::error!(error = %Chain(&e), "store: folding the booking log failed (tried again in a minute; the log is kept)");
            *next = std::time::Instant::now() + FOLD_RETRY;
        }
    }
}

fn answer(waiting: &mut Vec<oneshot::Sender<()>>) {
    for w in waiting.drain(..) {
        let _ = w.send(());
    }
}
