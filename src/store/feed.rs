//! The change feed of a shared (PostgreSQL) store: every instance learns
//! the bookings the others commit, within a second.
//!
//! Each booking row carries the transaction that last wrote it (`xid`). A
//! read takes, in one snapshot, the rows written by transactions below the
//! oldest one still running (`pg_snapshot_xmin`) and at or above the mark
//! of the previous read, and moves the mark there: every such transaction
//! has ended, so none is skipped whatever order they committed in, and a
//! row read twice is harmless (taking a row is idempotent). A commit
//! `NOTIFY`s `roomcast_changes`, which wakes the readers; they also read
//! every second, so a lost notification only delays. After a lost
//! connection the reader reconnects (backing off to 30 s) and catches up
//! from its mark. The feed starts at the mark the state was loaded with.
//! A transaction held open on the same server holds the feed back until
//! it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Socket};
use tokio_util::sync::CancellationToken;

use super::OutboxRow;
pub use super::postgres::FeedMark as Mark;
use super::postgres::{booking_columns, client_config, tls};
use super::shared::{Roles, SentBefore, claim, lease_round, sent_before};
use crate::config::PgConfig;
use crate::error::Chain;
use crate::schedule::EntryRow;

/// The rows written since a mark, and the next mark, in one snapshot
/// (with no row: one line of nulls carrying the mark).
pub(super) const READ: &str = "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x)
    SELECT s.x::text, b.uid, b.original_time, b.start_ms, b.end_ms, b.rooms, b.organizer,
           b.last_change, b.deleted, b.occurrences, b.title,
           extract(epoch FROM clock_timestamp() - b.changed_at)::float8
    FROM s LEFT JOIN bookings b ON b.xid >= $1::text::xid8 AND b.xid < s.x";

/// How often the feed reads without a notification.
const POLL: Duration = Duration::from_secs(1);
/// How often leases are renewed (and lapsed ones taken).
const LEASE_EVERY: Duration = Duration::from_secs(1);
/// The least time between two reads after wake-ups: a lone commit is read
/// at once; a burst's notifications that come within this are read
/// together (a few reads a burst, not one a commit).
const GATHER: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Rows committed by some instance (this one's own come back too), for the
/// core.
#[derive(Debug)]
pub struct Changes {
    pub rows: Vec<EntryRow>,
    /// Each row's delay (seconds): how long before this read it was
    /// written, the database's clock both ways.
    pub delays: Vec<f64>,
}

impl Changes {
    /// How long before this read the oldest row was written.
    pub fn lag(&self) -> Duration {
        Duration::from_secs_f64(self.delays.iter().copied().fold(0.0, f64::max))
    }
}

/// The feed's state, for `/metrics` and `/readyz`.
#[derive(Debug)]
pub struct FeedStats {
    /// A feed runs (the store is shared).
    pub on: AtomicBool,
    pub connected: AtomicBool,
    /// Rows read.
    pub rows: AtomicU64,
    /// The last read's lag (ms): how long ago its oldest row was written.
    pub lag_ms: AtomicU64,
    /// Each row's delay (seconds): from its writer's transaction to this
    /// read, on the database's clock.
    pub delays: prometheus_client::metrics::histogram::Histogram,
}

/// The bounds (seconds) of [`FeedStats::delays`]: fine where the feed
/// lives (a wake-up, a 10 ms gather, a read), up to its 1 s poll and a
/// reconnect's catching up.
pub const DELAY_BOUNDS: [f64; 16] = [
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for FeedStats {
    fn default() -> Self {
        FeedStats {
            on: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            delays: prometheus_client::metrics::histogram::Histogram::new(DELAY_BOUNDS),
        }
    }
}

/// What the feed's rounds serve besides the feed: where to hand things,
/// and the leases ([`super::shared`]).
pub struct Shared<F> {
    /// Where the core takes what the feed found: the rows committed
    /// ([`Changes`]) and the messages claimed.
    pub found: mpsc::Sender<F>,
    pub stats: Arc<FeedStats>,
    /// Whose leases (the leader's, each configured sink's) are renewed.
    pub roles: Arc<Roles>,
}

/// What the feed hands the core.
pub trait Found: From<Changes> + From<Vec<OutboxRow>> + From<SentBefore> + Send + 'static {}

impl<F: From<Changes> + From<Vec<OutboxRow>> + From<SentBefore> + Send + 'static> Found for F {}

/// Follow the feed from `from` until `stop`, handing what it reads to the
/// core; each round also renews and takes leases and claims the owned
/// sinks' pending messages.
pub async fn follow<F: Found>(
    cfg: PgConfig,
    from: Mark,
    shared: Shared<F>,
    stop: CancellationToken,
) {
    let stats = &shared.stats;
    stats.on.store(true, Ordering::Relaxed);
    let mut mark = from;
    let mut backoff = Duration::from_secs(1);
    let target = cfg.target();
    loop {
        let r = match client_config(&cfg) {
            Err(e) => Err(e.to_string()),
            Ok(pc) if pc.get_ssl_mode() == tokio_postgres::config::SslMode::Disable => {
                once(
                    &pc,
                    tokio_postgres::NoTls,
                    &mut mark,
                    &shared,
                    &stop,
                    &mut backoff,
                )
                .await
            }
            Ok(pc) => match tls(&cfg) {
                Ok(t) => once(&pc, t, &mut mark, &shared, &stop, &mut backoff).await,
                Err(e) => Err(e),
            },
        };
        stats.connected.store(false, Ordering::Relaxed);
        match r {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(database = %target, error = %e, retry_in = ?backoff, "change feed: connection lost; reconnecting (catching up from where it was)");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: listen, read, wait for a wake-up or the poll;
/// `Ok` when stopped (or the core is gone), `Err` when the connection
/// failed.
async fn once<T, F: Found>(
    pc: &tokio_postgres::Config,
    tls: T,
    mark: &mut Mark,
    shared: &Shared<F>,
    stop: &CancellationToken,
    backoff: &mut Duration,
) -> Result<(), String>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let pg = |e: tokio_postgres::Error| Chain(&e).to_string();
    let (client, mut conn) = pc.connect(tls).await.map_err(pg)?;
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let mut driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    let _ = wake_tx.try_send(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Chain(&e).to_string(),
                None => return "the server closed the connection".to_string(),
            }
        }
    });
    let result = async {
        client
            .batch_execute("LISTEN roomcast_changes")
            .await
            .map_err(pg)?;
        let (stats, found) = (&shared.stats, &shared.found);
        stats.connected.store(true, Ordering::Relaxed);
        *backoff = Duration::from_secs(1);
        let read_stmt = client.prepare(READ).await.map_err(pg)?;
        let mut next_lease = Instant::now();
        loop {
            // Leases about once a second (their length is seconds); the
            // feed and the claims at every wake-up.
            if Instant::now() >= next_lease {
                lease_round(&client, &shared.roles).await.map_err(pg)?;
                next_lease = Instant::now() + LEASE_EVERY;
                // A sink just taken: what its last owner sent counts
                // against its rate limits (before its messages go).
                if let Some(sent) = sent_before(&client, &shared.roles).await.map_err(pg)?
                    && found.send(F::from(sent)).await.is_err()
                {
                    return Ok(());
                }
            }
            let claimed = claim(&client, &shared.roles).await.map_err(pg)?;
            if !claimed.is_empty() && found.send(F::from(claimed)).await.is_err() {
                return Ok(());
            }
            let last_read = Instant::now();
            let changes = read(&client, &read_stmt, mark).await.map_err(pg)?;
            if let Some(c) = changes {
                stats.rows.fetch_add(c.rows.len() as u64, Ordering::Relaxed);
                for d in &c.delays {
                    stats.delays.observe(*d);
                }
                stats
                    .lag_ms
                    .store(c.lag().as_millis() as u64, Ordering::Relaxed);
                if found.send(F::from(c)).await.is_err() {
                    return Ok(()); // the core is gone: stopping
                }
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = wake.recv() => {
                    // At once, unless the last read was a moment ago: the
                    // commits of a burst are read together.
                    let since = last_read.elapsed();
                    if since < GATHER {
                        tokio::time::sleep(GATHER - since).await;
                    }
                    while wake.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    };
    tokio::select! {
        r = result => {
            driver.abort();
            r
        }
        e = &mut driver => Err(e.unwrap_or_else(|_| "the connection's task failed".into())),
    }
}

/// Read the rows written since `mark` and move it on; `None` when there
/// were none.
pub(super) async fn read<S: tokio_postgres::ToStatement + ?Sized>(
    client: &tokio_postgres::Client,
    read: &S,
    mark: &mut Mark,
) -> Result<Option<Changes>, tokio_postgres::Error> {
    let got = client.query(read, &[&mark.0]).await?;
    let mut rows = Vec::new();
    let mut delays = Vec::new();
    for r in &got {
        if let Some(next) = r.get::<_, Option<String>>(0) {
            mark.0 = next;
        }
        if r.get::<_, Option<&str>>(1).is_none() {
            continue; // no row since the mark: the mark alone
        }
        rows.push(booking_columns(r, 1));
        delays.push(r.get::<_, Option<f64>>(11).unwrap_or(0.0).max(0.0));
    }
    Ok((!rows.is_empty()).then_some(Changes { rows, delays }))
}
