//! The PostgreSQL backend of [`super::Store`]: the same tables as SQLite's
//! (`bookings`, `seen`, `outbox`, …) in a schema of their own, versioned in
//! `roomcast_meta` and migrated under an advisory lock (two instances
//! starting at once migrate once). A pool of connections (a broken one is
//! replaced on its next use, so a restarted database is reconnected to),
//! TLS verified against the system's roots or `ca_file`.
//!
//! The store's methods block, as the trait says: this backend drives its
//! connections on a small runtime of its own, from whichever thread calls
//! it (the writer's, or a `spawn_blocking` one), never the app's.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::try_join_all;
use secrecy::ExposeSecret;
use tokio_postgres::types::ToSql;

use super::sqlite::{TableRow, ms, outbox_row, table_entry};
use super::{CommitItem, Loaded, Mark, OutboxRow, Store, StoreError};
use crate::config::PgConfig;
use crate::error::Chain;
use crate::schedule::{EntryRow, Skip};

/// The feed's position: a transaction id (`xid8`, as text) below which
/// every writer has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMark(pub(crate) String);

/// The mark for "everything ended now" (one statement: its snapshot).
pub(super) const MARK_NOW: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";

/// Marks a schema as roomcast's (in `roomcast_meta.app`).
const APP: &str = "roomcast";

/// The schema this build writes; each step up is a migration below.
pub(crate) const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: SQLite's tables as of its schema 6, folded (no log: PostgreSQL's
    // own WAL is the log, and rows are upserted in place).
    "CREATE TABLE seen (event_id TEXT PRIMARY KEY, at BIGINT NOT NULL, seq BIGSERIAL NOT NULL);
     CREATE INDEX seen_at ON seen (at);
     CREATE INDEX seen_seq ON seen (seq);
     CREATE TABLE bookings (
        uid TEXT NOT NULL, original_time BIGINT NOT NULL,
        start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
        rooms TEXT NOT NULL, organizer TEXT NOT NULL,
        last_change BIGINT NOT NULL, deleted BOOLEAN NOT NULL,
        occurrences TEXT, title TEXT,
        PRIMARY KEY (uid, original_time));
     CREATE TABLE series_deleted (uid TEXT PRIMARY KEY, at BIGINT NOT NULL);
     CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        sink TEXT NOT NULL, room TEXT NOT NULL, subject TEXT NOT NULL,
        booking TEXT, event_id TEXT NOT NULL, idempotency_key TEXT NOT NULL,
        format TEXT NOT NULL, body TEXT NOT NULL,
        created BIGINT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
        attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT, done_at BIGINT);
     CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
     CREATE TABLE room_sync (room TEXT PRIMARY KEY, synced_at BIGINT NOT NULL);
     CREATE TABLE directory (id INT PRIMARY KEY CHECK (id = 1), rooms TEXT NOT NULL, fetched_at BIGINT NOT NULL);
     CREATE TABLE timer (name TEXT PRIMARY KEY, at BIGINT NOT NULL);",
    // 2: the change feed. Each booking row carries the transaction that
    // last wrote it; an instance reads the rows written by transactions
    // that have ended since it last looked (below the oldest one still
    // running: none is skipped, whatever order they commit in). When, on
    // the database's clock, for the feed's lag.
    "ALTER TABLE bookings ADD COLUMN xid XID8 NOT NULL DEFAULT pg_current_xact_id();
     ALTER TABLE bookings ADD COLUMN changed_at TIMESTAMPTZ NOT NULL DEFAULT now();
     CREATE INDEX bookings_xid ON bookings (xid);",
    // 3: several instances. Leases (the leader's, each sink's); each
    // outbox row's claim (who sends it, and how many times it was claimed:
    // the fence of its outcome); a notice is queued once whichever
    // instance makes it (its key is stable per notice).
    "CREATE TABLE lease (name TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL, until TIMESTAMPTZ NOT NULL);
     ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
     ALTER TABLE outbox ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
     CREATE UNIQUE INDEX outbox_once ON outbox (sink, idempotency_key);",
];

/// The key of the advisory lock migrations run under ("RMCS" and 1).
const MIGRATION_LOCK: i64 = 0x524d_4353_0000_0001;

/// How long a connection attempt, or a wait for a free pooled
/// connection, may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL store.
pub struct Postgres {
    /// Drives the pool's connections, only ever inside [`Postgres::run`].
    rt: tokio::runtime::Runtime,
    pool: Pool,
    /// host:port/db, for messages.
    target: String,
    schema: String,
    /// This instance's name: outcomes are recorded only for rows it
    /// claimed (or nobody has).
    me: String,
    /// How long a call is tried again while the database cannot be
    /// reached (`[store] reconnect_for`).
    reconnect_for: Duration,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("target", &self.target)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connect, check the schema is roomcast's and not newer, migrate.
    pub fn open(cfg: &PgConfig) -> Result<Postgres, StoreError> {
        let s = Postgres::connect(cfg)?;
        s.migrate()?;
        Ok(s)
    }

    /// Name the instance this store records outcomes for.
    pub fn instance(mut self, me: &str) -> Postgres {
        self.me = me.to_string();
        self
    }

    /// Connect to read (and retry outbox rows) while roomcast may run:
    /// checks the schema, migrates nothing.
    pub fn open_read_only(cfg: &PgConfig) -> Result<Postgres, StoreError> {
        let s = Postgres::connect(cfg)?;
        match s.version()? {
            None => Err(StoreError::Missing(PathBuf::from(format!(
                "{} (schema {})",
                s.target, s.schema
            )))),
            Some(v) if v > SCHEMA_VERSION => Err(s.newer(v)),
            Some(_) => Ok(s),
        }
    }

    /// Connect and look at the schema, changing nothing (`check`,
    /// `doctor`): what an operator should know, or why it cannot be used.
    pub fn probe(cfg: &PgConfig) -> Result<String, StoreError> {
        let s = Postgres::connect(cfg)?;
        let server = s.run_once("reading the server's version", async |c| {
            let v = c.query_one("SHOW server_version", &[]).await?;
            let tls = c
                .query_opt(
                    "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                    &[],
                )
                .await?;
            let tls = match tls {
                Some(r) => format!(
                    "over {}",
                    r.get::<_, Option<String>>(0)
                        .unwrap_or_else(|| "TLS".into())
                ),
                None => "without TLS".into(),
            };
            Ok(format!("{} {tls}", v.get::<_, String>(0)))
        })?;
        Ok(match s.version()? {
            None => format!(
                "PostgreSQL {server} at {}: reachable; schema {} is set up at the first start",
                s.target, s.schema
            ),
            Some(v) if v > SCHEMA_VERSION => return Err(s.newer(v)),
            Some(v) => format!(
                "PostgreSQL {server} at {}: reachable; schema {} at version {v} (this build: {SCHEMA_VERSION}); {}",
                s.target,
                s.schema,
                s.holders()?
            ),
        })
    }

    /// Who holds which lease now (several instances): "instances holding
    /// leases: NAME (leader, epoch 3; sinks a, b), …".
    fn holders(&self) -> Result<String, StoreError> {
        let sql = format!(
            "SELECT owner, bool_or(name = 'leader'), max(epoch) FILTER (WHERE name = 'leader'),
                    string_agg(substr(name, 6), ', ' ORDER BY name) FILTER (WHERE name LIKE 'sink:%')
             FROM {}.lease WHERE until > now() GROUP BY owner ORDER BY owner",
            self.schema
        );
        let rows = self.run_once("reading the leases", async |c| {
            Ok(c.query(sql.as_str(), &[]).await?)
        })?;
        if rows.is_empty() {
            return Ok("no instance holds a lease (none running)".into());
        }
        let each: Vec<String> = rows
            .iter()
            .map(|r| {
                let mut roles = Vec::new();
                if r.get::<_, Option<bool>>(1) == Some(true) {
                    let epoch = r.get::<_, Option<i64>>(2).unwrap_or(0);
                    roles.push(format!("leader, epoch {epoch}"));
                }
                if let Some(sinks) = r.get::<_, Option<String>>(3) {
                    roles.push(format!("sinks {sinks}"));
                }
                format!("{} ({})", r.get::<_, String>(0), roles.join("; "))
            })
            .collect();
        Ok(format!("instances holding leases: {}", each.join(", ")))
    }

    fn connect(cfg: &PgConfig) -> Result<Postgres, StoreError> {
        let target = cfg.target();
        let fail = |what: &str, e: Option<Box<dyn std::error::Error + Send + Sync>>| {
            StoreError::Postgres {
                target: target.clone(),
                what: what.to_string(),
                source: e,
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail("cannot start its runtime", Some(Box::new(e))))?;
        let pc =
            client_config(cfg).map_err(|e| fail("the url does not parse", Some(Box::new(e))))?;
        let mgr_cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mgr = if pc.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            Manager::from_config(pc, tokio_postgres::NoTls, mgr_cfg)
        } else {
            let tls = tls(cfg).map_err(|e| fail(&e, None))?;
            Manager::from_config(pc, tls, mgr_cfg)
        };
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| fail("cannot set up its connection pool", Some(Box::new(e))))?;
        let s = Postgres {
            rt,
            pool,
            target,
            schema: cfg.schema.clone(),
            me: String::new(),
            reconnect_for: cfg.reconnect_for,
        };
        // Connect now: a wrong host, user or password fails the start.
        s.run_once("connecting", async |c| {
            c.simple_query("SELECT 1").await?;
            Ok(())
        })?;
        Ok(s)
    }

    /// Run `f` with a pooled connection on this store's runtime; an error
    /// names `what` was being done (and the server's message as source).
    ///
    /// A call that fails for want of a connection (the database restarted,
    /// a connection was cut, the server is briefly refusing) is made again
    /// on a new one, backing off, for `[store] reconnect_for`: a
    /// transaction that did not commit left nothing, and one that did
    /// (the connection broke during `COMMIT`) is found out by its delivery
    /// ids, which a second attempt finds already there.
    fn run<T, F>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(&mut deadpool_postgres::Client) -> Result<T, Failure>,
    {
        self.attempt(what, self.reconnect_for, f)
    }

    /// [`Postgres::run`] without trying again (connecting at a start,
    /// `check`: an unreachable database is said at once).
    fn run_once<T, F>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(&mut deadpool_postgres::Client) -> Result<T, Failure>,
    {
        self.attempt(what, Duration::ZERO, f)
    }

    fn attempt<T, F>(&self, what: &str, retry_for: Duration, mut f: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(&mut deadpool_postgres::Client) -> Result<T, Failure>,
    {
        self.rt
            .block_on(async {
                let mut wait = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                loop {
                    let r = match self.pool.get().await {
                        Ok(mut c) => f(&mut c).await,
                        Err(e) => Err(Failure::Pool(Box::new(e))),
                    };
                    match r {
                        Err(e) if e.connection_lost() && waited < retry_for => {
                            tracing::warn!(database = %self.target, doing = what, error = %Chain(e.source()), retry_in = ?wait, "store: the database connection failed; trying again");
                            tokio::time::sleep(wait).await;
                            waited += wait;
                            wait = (wait * 2).min(Duration::from_secs(2));
                        }
                        r => return r,
                    }
                }
            })
            .map_err(|e| StoreError::Postgres {
                target: self.target.clone(),
                what: what.to_string(),
                source: Some(e.into_source()),
            })
    }

    fn newer(&self, found: i32) -> StoreError {
        StoreError::Newer {
            path: PathBuf::from(format!("{} (schema {})", self.target, self.schema)),
            found,
            supported: SCHEMA_VERSION,
        }
    }

    /// The schema's version: `None` if roomcast has not set it up.
    pub(crate) fn version(&self) -> Result<Option<i32>, StoreError> {
        let schema = self.schema.clone();
        let found = self.run("reading the schema version", async |c| {
            let meta = c
                .query_opt(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'roomcast_meta'",
                    &[&schema],
                )
                .await?;
            if meta.is_none() {
                return Ok(None);
            }
            let row = c
                .query_opt("SELECT version, app FROM roomcast_meta WHERE id = 1", &[])
                .await?;
            Ok(row.map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1))))
        })?;
        match found {
            Some((_, app)) if app != APP => Err(self.foreign()),
            Some((v, _)) => Ok(Some(v)),
            None => Ok(None),
        }
    }

    fn foreign(&self) -> StoreError {
        StoreError::Foreign(PathBuf::from(format!(
            "schema {} of {}",
            self.schema, self.target
        )))
    }

    /// Create the schema if missing and bring it to [`SCHEMA_VERSION`],
    /// under an advisory lock; a schema holding other tables than ours is
    /// refused untouched.
    fn migrate(&self) -> Result<(), StoreError> {
        let schema = self.schema.clone();
        let outcome = self.run("migrating the schema", async |c| {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
            let tables: Vec<String> = tx
                .query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                    &[&schema],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let version = if tables.iter().any(|t| t == "roomcast_meta") {
                let r = tx
                    .query_one("SELECT version, app FROM roomcast_meta WHERE id = 1", &[])
                    .await?;
                if r.get::<_, String>(1) != APP {
                    return Ok(Migrated::Foreign);
                }
                r.get::<_, i32>(0)
            } else if !tables.is_empty() {
                return Ok(Migrated::Foreign);
            } else {
                tx.batch_execute(
                    "CREATE TABLE roomcast_meta (id INT PRIMARY KEY CHECK (id = 1), app TEXT NOT NULL, version INT NOT NULL);",
                )
                .await?;
                tx.execute(
                    "INSERT INTO roomcast_meta (id, app, version) VALUES (1, $1, 0)",
                    &[&APP],
                )
                .await?;
                0
            };
            if version > SCHEMA_VERSION {
                return Ok(Migrated::Newer(version));
            }
            let mut applied = Vec::new();
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                tx.batch_execute(sql).await?;
                let v = i as i32 + 1;
                tx.execute("UPDATE roomcast_meta SET version = $1 WHERE id = 1", &[&v])
                    .await?;
                applied.push(v);
            }
            tx.commit().await?;
            Ok(Migrated::To(applied))
        })?;
        match outcome {
            Migrated::Foreign => Err(self.foreign()),
            Migrated::Newer(v) => Err(self.newer(v)),
            Migrated::To(applied) => {
                for version in applied {
                    tracing::info!(target = %self.target, schema = %self.schema, version, "store schema migrated");
                }
                Ok(())
            }
        }
    }

    fn outbox_rows(&self, filter: &'static str) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT id, sink, room, subject, booking, event_id, idempotency_key, format, body, created, state, attempts, last_error FROM outbox WHERE {filter} ORDER BY id"
        );
        self.run("reading the outbox", async |c| {
            let rows = c.query(&sql, &[]).await?;
            Ok(rows.iter().map(outbox_columns).collect())
        })
    }
}

/// A booking row from ten columns starting at `first`, in the order
/// `uid, original_time, start_ms, end_ms, rooms, organizer, last_change,
/// deleted, occurrences, title`.
pub(super) fn booking_columns(r: &tokio_postgres::Row, first: usize) -> EntryRow {
    let c = |i: usize| first + i;
    table_entry(
        r.get(c(0)),
        r.get(c(1)),
        (r.get(c(2)), r.get(c(3))),
        r.get(c(4)),
        r.get(c(5)),
        r.get(c(6)),
        r.get(c(7)),
        r.get(c(8)),
        r.get(c(9)),
    )
}

/// An outbox row from its first 13 columns, in the order `SELECT id, sink,
/// room, subject, booking, event_id, idempotency_key, format, body,
/// created, state, attempts, last_error` gives them.
pub(super) fn outbox_columns(r: &tokio_postgres::Row) -> OutboxRow {
    outbox_row(
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
        r.get(12),
    )
}

/// The connection settings: the url's, the password, a connect timeout,
/// and the schema as the search path (unqualified names are the schema's;
/// nothing else is looked in).
pub(super) fn client_config(
    cfg: &PgConfig,
) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let mut pc: tokio_postgres::Config = cfg.url.parse()?;
    if let Some(p) = &cfg.password {
        pc.password(p.expose_secret());
    }
    if pc.get_connect_timeout().is_none() {
        pc.connect_timeout(CONNECT_TIMEOUT);
    }
    if pc.get_application_name().is_none() {
        pc.application_name("roomcast");
    }
    // Each execution planned with its values: a plan made generic while
    // the tables were small (a fresh schema) would scan them whole once
    // they are large (measured: 17,700 → 3,100 events/s over 100,000
    // bookings).
    pc.options(format!(
        "-c search_path={} -c plan_cache_mode=force_custom_plan",
        cfg.schema
    ));
    Ok(pc)
}

enum Migrated {
    Foreign,
    Newer(i32),
    To(Vec<i32>),
}

/// What went wrong inside a call, before it is named.
#[derive(Debug)]
enum Failure {
    Pg(tokio_postgres::Error),
    Pool(Box<dyn std::error::Error + Send + Sync>),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl Failure {
    /// The connection, not the statement, failed: worth another try on a
    /// new one.
    fn connection_lost(&self) -> bool {
        match self {
            Failure::Pool(_) => true,
            Failure::Pg(e) => {
                e.is_closed()
                    || (e.code().is_none() && e.as_db_error().is_none())
                    || e.code().is_some_and(|c| {
                        // The server shutting down or not yet accepting.
                        c == &tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                            || c == &tokio_postgres::error::SqlState::CRASH_SHUTDOWN
                            || c == &tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
                    })
            }
        }
    }

    fn source(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Failure::Pg(e) => e,
            Failure::Pool(e) => &**e,
        }
    }

    fn into_source(self) -> Box<dyn std::error::Error + Send + Sync> {
        match self {
            Failure::Pg(e) => Box::new(e),
            Failure::Pool(e) => e,
        }
    }
}

/// rustls for the database connection: the server's certificate is
/// verified (host name and chain) against `ca_file`'s authorities, or the
/// system's roots.
pub(super) fn tls(cfg: &PgConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    crate::tls::init();
    let builder = rustls::ClientConfig::builder();
    let config = match &cfg.ca_file {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("cannot load the system's certificate roots: {e}"))?
                .with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A commit's booking rows as columns, the last row of a key only (one
/// statement may not upsert a row twice).
#[derive(Default)]
struct Columns {
    uid: Vec<String>,
    original_time: Vec<i64>,
    start_ms: Vec<i64>,
    end_ms: Vec<i64>,
    rooms: Vec<String>,
    organizer: Vec<String>,
    last_change: Vec<i64>,
    deleted: Vec<bool>,
    occurrences: Vec<Option<String>>,
    title: Vec<Option<String>>,
}

impl Columns {
    /// The booking rows of the items not refused already.
    fn of(items: &[CommitItem]) -> Columns {
        let rows: Vec<TableRow<'_>> = items
            .iter()
            .filter(|i| i.refused.is_none())
            .flat_map(|i| i.written.entries.iter().map(TableRow::of))
            .collect();
        // The newest row of a key (the later of equals), as the database
        // would keep it had each been its own statement.
        let mut last: std::collections::HashMap<(&str, i64), usize> =
            std::collections::HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let slot = last.entry((r.uid, r.original_time)).or_insert(i);
            if rows[*slot].last_change <= r.last_change {
                *slot = i;
            }
        }
        let mut c = Columns::default();
        for (i, r) in rows.into_iter().enumerate() {
            if last.get(&(r.uid, r.original_time)) != Some(&i) {
                continue;
            }
            c.uid.push(r.uid.to_string());
            c.original_time.push(r.original_time);
            c.start_ms.push(r.start_ms);
            c.end_ms.push(r.end_ms);
            c.rooms.push(r.rooms);
            c.organizer.push(r.organizer);
            c.last_change.push(r.last_change);
            c.deleted.push(r.deleted);
            c.occurrences.push(r.occurrences);
            c.title.push(r.title.map(str::to_string));
        }
        c
    }
}

/// Apply delivery outcomes, in order, on `c` (in its transaction): only
/// to rows `me` claimed, or nobody has (an instance whose claim was taken
/// over records nothing; the new owner sends the message again).
async fn apply_marks(
    c: &impl deadpool_postgres::GenericClient,
    marks: &[Mark],
    me: &str,
) -> Result<(), Failure> {
    if marks.is_empty() {
        return Ok(());
    }
    let q = c
        .prepare_cached(
            "UPDATE outbox SET state = $2, attempts = attempts + 1, last_error = $3,
               done_at = CASE WHEN $2 = 'pending' THEN done_at ELSE $4 END
             WHERE id = $1 AND (claimed_by IS NULL OR claimed_by = $5)",
        )
        .await?;
    // Pipelined: sent one after another without waiting, run in order.
    let states: Vec<(i64, &str, Option<&str>, i64)> = marks
        .iter()
        .map(|m| (m.id, m.state.as_str(), m.error.as_deref(), ms(m.at)))
        .collect();
    let params: Vec<[&(dyn ToSql + Sync); 5]> = states
        .iter()
        .map(|(id, state, error, at)| [id as _, state as _, error as _, at as _, &me as _])
        .collect();
    try_join_all(params.iter().map(|p| c.execute(&q, p))).await?;
    Ok(())
}

impl Store for Postgres {
    /// One snapshot (a repeatable-read transaction): the rows, and the
    /// change feed's starting mark taken with them.
    fn load(&self, seen_limit: usize) -> Result<Loaded, StoreError> {
        let limit = seen_limit as i64;
        self.run("loading the state", async |c| {
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut l = Loaded::default();
            let mark = tx
                .query_one(MARK_NOW, &[])
                .await?
                .get::<_, String>(0);
            l.feed_from = Some(FeedMark(mark));
            for r in tx
                .query(
                    "SELECT uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted, occurrences, title FROM bookings",
                    &[],
                )
                .await?
            {
                l.entries.push(booking_columns(&r, 0));
            }
            let pairs = async |sql: &str| -> Result<Vec<(String, DateTime<Utc>)>, Failure> {
                Ok(tx
                    .query(sql, &[])
                    .await?
                    .iter()
                    .map(|r| (r.get::<_, String>(0), super::sqlite::at(r.get(1))))
                    .collect())
            };
            l.synced = pairs("SELECT room, synced_at FROM room_sync").await?;
            l.timers = pairs("SELECT name, at FROM timer").await?;
            l.series_deleted = pairs("SELECT uid, at FROM series_deleted").await?;
            l.directory = pairs("SELECT rooms, fetched_at FROM directory WHERE id = 1")
                .await?
                .pop();
            l.seen = tx
                .query(
                    "SELECT event_id FROM seen ORDER BY seq DESC LIMIT $1",
                    &[&limit],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().await?;
            Ok(l)
        })
        .and_then(|mut l| {
            l.pending = self.outbox_rows("state = 'pending'")?;
            Ok(l)
        })
    }

    /// One transaction: the batch's delivery ids (one statement: an id
    /// already there refuses its item, a duplicate another instance
    /// applied), its booking rows (one upsert, a row taken only if it is
    /// not older than the stored one: otherwise its item is refused as
    /// stale), the outbox rows of the items taken (each given its id), the
    /// timers, rooms fetched, series deletes and outcomes, pipelined.
    fn commit(
        &mut self,
        now: DateTime<Utc>,
        items: &mut [CommitItem],
        marks: &[Mark],
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = items.iter().filter_map(|i| i.event_id.clone()).collect();
        let now_ms = ms(now);
        let me = self.me.as_str();
        let outbox_ids = self.run("committing", async |c| {
            // (Again after a lost connection: nothing of before stands.)
            for i in items.iter_mut() {
                i.refused = None;
            }
            let tx = c.transaction().await?;
            // The delivery ids, the booking rows (a duplicate's too: its
            // rows are what is stored already) and the wake-up of the
            // other instances' feeds, pipelined: one round trip.
            let cols = Columns::of(items);
            let (seen, book, notify) = tokio::try_join!(
                tx.prepare_cached(
                    "INSERT INTO seen (event_id, at) SELECT unnest($1::text[]), $2 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                ),
                // What was stored before (`p`: each item is judged against
                // it), and which rows were written (`u`: a row refused by
                // a newer one committed meanwhile).
                tx.prepare_cached(
                    "WITH prev AS (
                       SELECT k.uid, k.original_time, b.last_change
                       FROM unnest($1::text[], $2::int8[]) AS k (uid, original_time)
                       JOIN LATERAL (SELECT last_change FROM bookings
                                     WHERE uid = k.uid AND original_time = k.original_time) b ON true
                     ), up AS (
                       INSERT INTO bookings (uid, original_time, start_ms, end_ms, rooms, organizer, last_change, deleted, occurrences, title)
                       SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::bool[], $9::text[], $10::text[])
                       ON CONFLICT (uid, original_time) DO UPDATE SET start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                         rooms = excluded.rooms, organizer = excluded.organizer, last_change = excluded.last_change,
                         deleted = excluded.deleted, occurrences = excluded.occurrences, title = excluded.title,
                         xid = pg_current_xact_id(), changed_at = now()
                       WHERE bookings.last_change <= excluded.last_change
                       RETURNING uid, original_time
                     )
                     SELECT true, uid, original_time, last_change FROM prev
                     UNION ALL SELECT false, uid, original_time, 0 FROM up",
                ),
                tx.prepare_cached("SELECT pg_notify('roomcast_changes', '')"),
            )?;
            let seen_rows = async {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                tx.query(&seen, &[&ids, &now_ms]).await
            };
            let book_rows = async {
                if cols.uid.is_empty() {
                    return Ok(Vec::new());
                }
                tx.query(
                    &book,
                    &[
                        &cols.uid,
                        &cols.original_time,
                        &cols.start_ms,
                        &cols.end_ms,
                        &cols.rooms,
                        &cols.organizer,
                        &cols.last_change,
                        &cols.deleted,
                        &cols.occurrences,
                        &cols.title,
                    ],
                )
                .await
            };
            let wake = async {
                if cols.uid.is_empty() {
                    return Ok(0);
                }
                tx.execute(&notify, &[]).await
            };
            let (seen_rows, book_rows, _) = tokio::try_join!(seen_rows, book_rows, wake)?;
            let fresh: std::collections::HashSet<&str> =
                seen_rows.iter().map(|r| r.get(0)).collect();
            for i in items.iter_mut() {
                if i.event_id.as_deref().is_some_and(|id| !fresh.contains(id)) {
                    i.refused = Some(Skip::Duplicate);
                }
            }
            // The clock's work of a leader whose lease has passed on.
            if items.iter().any(|i| i.leader_epoch.is_some()) {
                let standing: Option<i64> = tx
                    .query_opt(
                        "SELECT epoch FROM lease WHERE name = 'leader' AND owner = $1 AND until > now() FOR SHARE",
                        &[&me],
                    )
                    .await?
                    .map(|r| r.get(0));
                for i in items.iter_mut().filter(|i| i.leader_epoch.is_some()) {
                    if i.leader_epoch != standing {
                        i.refused = Some(Skip::Stale);
                    }
                }
            }
            // An item is stale when the change stored before is newer
            // than one of its rows (the schedule's rule), or its booking's
            // row was refused (a newer one committed meanwhile).
            let mut before = std::collections::HashMap::new();
            let mut taken = std::collections::HashSet::new();
            for r in &book_rows {
                let key: (&str, i64) = (r.get(1), r.get(2));
                if r.get::<_, bool>(0) {
                    before.insert(key, r.get::<_, i64>(3));
                } else {
                    taken.insert(key);
                }
            }
            for i in items.iter_mut().filter(|i| i.refused.is_none()) {
                let stale = i.written.entries.iter().any(|e| {
                    let key = (&*e.key.uid, e.key.original_time);
                    !taken.contains(&key)
                        || before.get(&key).is_some_and(|t| *t > ms(e.last_change))
                });
                if stale {
                    i.refused = Some(Skip::Stale);
                }
            }
            let synced = tx
                .prepare_cached(
                    "INSERT INTO room_sync (room, synced_at) VALUES ($1, $2)
                     ON CONFLICT (room) DO UPDATE SET synced_at = greatest(room_sync.synced_at, excluded.synced_at)",
                )
                .await?;
            let timer = tx
                .prepare_cached(
                    "INSERT INTO timer (name, at) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET at = greatest(timer.at, excluded.at)",
                )
                .await?;
            let series = tx
                .prepare_cached(
                    "INSERT INTO series_deleted (uid, at) VALUES ($1, $2)
                     ON CONFLICT (uid) DO UPDATE SET at = greatest(series_deleted.at, excluded.at)",
                )
                .await?;
            let out = tx
                .prepare_cached(
                    "INSERT INTO outbox (sink, room, subject, booking, event_id, idempotency_key, format, body, created)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (sink, idempotency_key) DO NOTHING RETURNING id",
                )
                .await?;
            let mut writes = Vec::new();
            for item in items.iter().filter(|i| i.refused.is_none()) {
                for (room, t) in &item.synced {
                    writes.push((&synced, room.as_str().to_string(), ms(*t)));
                }
                for (name, t) in &item.timers {
                    writes.push((&timer, name.clone(), ms(*t)));
                }
                if let Some((uid, t)) = &item.written.series_deleted {
                    writes.push((&series, uid.to_string(), ms(*t)));
                }
            }
            let params: Vec<[&(dyn ToSql + Sync); 2]> =
                writes.iter().map(|(_, name, t)| [name as _, t as _]).collect();
            try_join_all(
                writes
                    .iter()
                    .zip(&params)
                    .map(|((q, _, _), p)| tx.execute(*q, p)),
            )
            .await?;
            let messages: Vec<_> = items
                .iter()
                .filter(|i| i.refused.is_none())
                .flat_map(|i| i.messages.iter())
                .map(|m| {
                    (
                        &*m.sink,
                        m.room.as_str(),
                        m.subject.as_str(),
                        m.booking.as_deref(),
                        &*m.event_id,
                        m.idempotency_key.as_str(),
                        m.format.ext(),
                        m.body.as_str(),
                    )
                })
                .collect();
            let params: Vec<[&(dyn ToSql + Sync); 9]> = messages
                .iter()
                .map(|m| {
                    [
                        &m.0 as _, &m.1 as _, &m.2 as _, &m.3 as _, &m.4 as _, &m.5 as _,
                        &m.6 as _, &m.7 as _, &now_ms as _,
                    ]
                })
                .collect();
            // A notice another instance queued already (same key) gets no id.
            let rows = try_join_all(params.iter().map(|p| tx.query_opt(&out, p))).await?;
            if !rows.is_empty() && cols.uid.is_empty() {
                // The sinks' owners wake up at the commit.
                tx.execute(&notify, &[]).await?;
            }
            apply_marks(&tx, marks, &self.me).await?;
            tx.commit().await?;
            Ok(rows
                .iter()
                .map(|r| r.as_ref().map(|r| r.get::<_, i64>(0)))
                .collect::<Vec<_>>())
        });
        let outbox_ids = match outbox_ids {
            Ok(ids) => ids,
            Err(e) => {
                // Nothing was taken: no verdict stands.
                for i in items.iter_mut() {
                    i.refused = None;
                }
                return Err(e);
            }
        };
        let mut ids = outbox_ids.into_iter();
        for m in items
            .iter_mut()
            .filter(|i| i.refused.is_none())
            .flat_map(|i| i.messages.iter_mut())
        {
            m.outbox_id = ids.next().flatten();
        }
        Ok(())
    }

    fn record(&mut self, marks: &[Mark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        self.run("recording delivery outcomes", async |c| {
            let tx = c.transaction().await?;
            // Losing the last few to a crash of the database only means a
            // resend under the same key: no wait for its disk.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            apply_marks(&tx, marks, &self.me).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn save_directory(&self, rooms: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let t = ms(now);
        self.run("keeping the room directory", async |c| {
            c.execute(
                "INSERT INTO directory (id, rooms, fetched_at) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET rooms = excluded.rooms, fetched_at = excluded.fetched_at",
                &[&rooms, &t],
            )
            .await?;
            Ok(())
        })
    }

    fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("state IN ('pending', 'dead', 'failed')")
    }

    fn outbox_all(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows("true")
    }

    fn retry(&self, id: i64) -> Result<bool, StoreError> {
        self.run("retrying an outbox row", async |c| {
            let n = c
                .execute(
                    "UPDATE outbox SET state = 'pending', last_error = NULL WHERE id = $1 AND state IN ('dead', 'failed')",
                    &[&id],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn prune(&mut self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let b = ms(before);
        self.run("pruning", async |c| {
            let tx = c.transaction().await?;
            let mut n = tx.execute("DELETE FROM seen WHERE at < $1", &[&b]).await?;
            n += tx
                .execute(
                    "DELETE FROM bookings WHERE (NOT deleted AND end_ms < $1) OR (deleted AND last_change < $1)",
                    &[&b],
                )
                .await?;
            n += tx
                .execute("DELETE FROM series_deleted WHERE at < $1", &[&b])
                .await?;
            n += tx
                .execute(
                    "DELETE FROM outbox WHERE state IN ('delivered', 'superseded') AND done_at < $1",
                    &[&b],
                )
                .await?;
            tx.commit().await?;
            Ok(n as usize)
        })
    }
}
