//! The app: wires sources, the store, the pipeline, the sink workers and
//! the HTTP server together, runs the core loop (`core`) until the
//! source ends (replay) or shutdown is requested, then drains.
//!
//! Nothing below this module imports it: the core's collaborators come to
//! it as arguments.

mod core;
mod query;
mod restore;
mod systemd;
#[cfg(test)]
mod tests;
mod timers;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, TimeSource};
use crate::config::{Config, HttpConfig, SourceKind};
use crate::deliver::{DeliverError, Deliverer};
use crate::error::{Chain, Exit};
use crate::http::{self, Health, Live, RoomSignals};
use crate::lark::{LarkClient, SourceError};
use crate::metrics::{ApiStats, LarkStats, Metrics, Summary, SyncStats};
use crate::pipeline::Pipeline;
use crate::render::Templates;
use crate::source::Inbound;
use crate::source::replay::{self, ReplayError};
use crate::store::{StoreError, Writer};
use crate::sync::{Found, Syncer, Wanted};

pub use crate::http::Reloaded;
pub use restore::load_schedule;

/// How many payloads and messages may wait in each queue.
const QUEUE: usize = 1024;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("source `lark` needs a [platform] table")]
    NoPlatform,
    #[error(transparent)]
    Lark(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up the platform's API client")]
    Api(#[source] reqwest::Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why a running app stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The platform refused the long connection for good, or reconnecting
    /// gave up.
    #[error(transparent)]
    Lark(#[from] SourceError),
    /// A commit failed: nothing more can be made durable.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The source's task ended without an answer (it panicked: a bug).
    #[error("the event source stopped unexpectedly")]
    SourceTask(#[source] tokio::task::JoinError),
}

/// Why the app could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl AppError {
    /// The exit code this failure ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            AppError::Start(StartError::Lark(_)) | AppError::Run(RunError::Lark(_)) => {
                Exit::Platform
            }
            AppError::Start(StartError::Store(_)) | AppError::Run(RunError::Store(_)) => {
                Exit::Store
            }
            _ => Exit::Failure,
        }
    }
}

/// Everything the app needs to run.
pub struct App {
    config: Arc<Config>,
    templates: Arc<Templates>,
    clock: TimeSource,
    /// Counters for `/metrics` (and tests).
    metrics: Arc<Metrics>,
    /// The HTTP server's address once it listens (port 0 in tests).
    http_addr: watch::Sender<Option<SocketAddr>>,
    /// Questions (and reloads) for the core; the receiver is taken by
    /// `run`.
    queries: mpsc::Sender<http::Query>,
    queries_rx: std::sync::Mutex<Option<mpsc::Receiver<http::Query>>>,
}

/// Hands a running roomcast a new config (SIGHUP).
#[derive(Clone)]
pub struct Reloader(mpsc::Sender<http::Query>);

impl Reloader {
    /// Run with `checked` (validated as `check` does) from now on: rooms,
    /// display, schedule rules, templates and sinks apply at once. `Err`:
    /// refused (a new sink could not be opened), the running config stays;
    /// `None` when roomcast is not running (any more).
    pub async fn reload(&self, checked: crate::check::Checked) -> Option<Result<Reloaded, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(http::Query::Reload(Box::new(checked), tx))
            .await
            .ok()?;
        rx.await.ok()
    }
}

impl App {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Self {
        let (queries, queries_rx) = mpsc::channel::<http::Query>(64);
        App {
            config,
            templates,
            clock: clock::system(),
            metrics: Arc::default(),
            http_addr: watch::Sender::new(None),
            queries,
            queries_rx: std::sync::Mutex::new(Some(queries_rx)),
        }
    }

    /// Where a new config goes while this runs (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader(self.queries.clone())
    }

    /// Run on another time source (tests: one that follows tokio's paused
    /// clock).
    pub fn with_clock(mut self, clock: TimeSource) -> Self {
        self.clock = clock;
        self
    }

    /// The counters `/metrics` shows.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Where the HTTP server listens, once it does.
    pub fn http_addr(&self) -> watch::Receiver<Option<SocketAddr>> {
        self.http_addr.subscribe()
    }

    /// Run until the source ends (replay) or `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Summary, AppError> {
        let cfg = self.config.clone();
        // Several instances on one PostgreSQL store: its settings and this
        // instance's roles.
        let shared = cfg.store.as_ref().and_then(|sc| match &sc.backend {
            crate::config::StoreBackend::Postgres(pg) => Some((
                pg.clone(),
                Arc::new(crate::store::shared::Roles::new(pg.lease)),
            )),
            crate::config::StoreBackend::Sqlite { .. } => None,
        });
        let roles = shared.as_ref().map(|(_, r)| r.clone());
        let me = roles.as_ref().map(|r| r.me.clone()).unwrap_or_default();
        if let Some(r) = &roles {
            let _ = self.metrics.roles.set(r.clone());
        }
        let (store, loaded) = open_store(&cfg, &me).await?;
        let handle = store.as_ref().map(Writer::handle);
        let mut pipeline =
            Pipeline::new(cfg.clone(), self.templates.clone()).persisting(store.is_some());
        let deliverer = Deliverer::start(
            &cfg.sinks,
            QUEUE,
            cfg.delivery.drain_timeout,
            self.clock.clone(),
            handle.clone(),
        )
        .map_err(StartError::from)?;
        let feed_from = loaded.as_ref().and_then(|l| l.feed_from.clone());
        if let Some(loaded) = loaded {
            restore::restore(
                &mut pipeline,
                loaded,
                &deliverer,
                (self.clock)(),
                roles.is_some(),
            )
            .await;
        }
        let (tx, rx) = mpsc::channel::<Inbound>(QUEUE);
        let listener = self.bind(cfg.http.as_ref()).await?;
        let webhook_tx = tx.clone();
        let (source, lark) = self.start_source(tx, &shutdown).await?;
        let (found_tx, found_rx) = mpsc::channel::<Found>(64);
        // A shared store: follow what the other instances commit.
        // The leases: the clock's work, and each sink's (a reload
        // changes the sinks').
        if let Some(r) = &roles {
            r.want_sinks(cfg.sinks.iter().map(|s| s.name.as_str()));
        }
        let feed = shared.as_ref().zip(feed_from).map(|((pg, roles), from)| {
            let stop = shutdown.child_token();
            let task = tokio::spawn(crate::store::feed::follow(
                pg.clone(),
                from,
                crate::store::feed::Shared {
                    found: found_tx.clone(),
                    stats: self.metrics.feed.clone(),
                    roles: roles.clone(),
                },
                stop.clone(),
            ));
            (stop, task)
        });
        let sync = self.start_sync(&pipeline, found_tx, &shutdown, roles.clone())?;
        let signals = Arc::new(RoomSignals::default());
        let server_stop = shutdown.child_token();
        let query_tx = self.queries.clone();
        let query_rx = self
            .queries_rx
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .unwrap_or_else(|| mpsc::channel(1).1);
        let watchdog_stop = shutdown.child_token();
        systemd::watchdog(query_tx.clone(), watchdog_stop.clone());
        let server = listener.zip(cfg.http.as_ref()).map(|(listener, h)| {
            let health = Health {
                metrics: self.metrics.clone(),
                sinks: deliverer.stats.clone(),
                lark,
                store: handle.clone(),
                platform: sync.as_ref().map(|s| http::PlatformHealth {
                    api: s.api.clone(),
                    sync: s.stats.clone(),
                    stale_after: s.stale_after,
                    rooms: cfg.rooms.iter().map(|r| r.id.to_string()).collect(),
                    clock: self.clock.clone(),
                }),
            };
            let live = Live {
                signals: signals.clone(),
                clock: self.clock.clone(),
                stop: server_stop.clone(),
            };
            let state = http::Server::new(h, health, query_tx, webhook_tx, live);
            tokio::spawn(http::serve(
                listener,
                http::router(state, h),
                server_stop.clone(),
            ))
        });
        // The core runs until every source has dropped its sender, so what
        // a source handed over is applied and acknowledged even on shutdown.
        let core = core::Core {
            deliverer: &deliverer,
            clock: &self.clock,
            heartbeat: cfg.delivery.heartbeat,
            store: store.as_ref(),
            retention: cfg.store.as_ref().map(|s| s.retention),
            shutdown: &shutdown,
            metrics: &self.metrics,
            signals: &signals,
            sync: sync.as_ref().map(|s| (&*s.stats, &*s.want)),
            roles: roles.as_deref(),
        };
        systemd::ready(if store.is_some() {
            "store restored; taking events"
        } else {
            "taking events"
        });
        // STOPPING=1 as the stop begins (SIGTERM), not after the drain.
        let stopping = {
            let (shutdown, done) = (shutdown.clone(), watchdog_stop.clone());
            tokio::spawn(async move {
                // `done` is a child of `shutdown`: on SIGTERM both fire.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => systemd::stopping(),
                    _ = done.cancelled() => {}
                }
            })
        };
        let mut found_rx = found_rx;
        let store_failure = core.run(&mut pipeline, rx, query_rx, &mut found_rx).await;
        watchdog_stop.cancel();
        let _ = stopping.await;
        if let Some(s) = sync {
            s.stop.cancel();
            let _ = s.task.await;
        }
        if let Some((stop, task)) = feed {
            stop.cancel();
            let _ = task.await;
        }
        // Several instances: what this one's sinks have pending goes out
        // before it stops (what the drain timeout leaves stays queued for
        // the sinks' next owners).
        if let Some((pg, roles)) = &shared {
            let (pg, roles) = (pg.clone(), roles.clone());
            let claimed =
                tokio::task::spawn_blocking(move || crate::store::shared::last_claims(&pg, &roles))
                    .await;
            // Rows the feed claimed that the core did not take before it
            // stopped, then those of the last round.
            let mut left = Vec::new();
            while let Ok(f) = found_rx.try_recv() {
                if let Found::Claimed(rows) = f {
                    left.extend(rows);
                }
            }
            match claimed {
                Ok(Ok(rows)) => {
                    left.extend(rows);
                    core::send_claimed(&deliverer, &cfg, left).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the last claim of this instance's pending messages failed; they stay queued for the sinks' next owners")
                }
                Err(_) => {}
            }
        }
        server_stop.cancel();
        if let Some(server) = server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %Chain(&e), "HTTP server failed"),
                Err(e) => tracing::error!(error = %Chain(&e), "HTTP server task failed"),
            }
        }
        // A source task that failed ends the process with a failure code,
        // never 0: a supervisor must restart it.
        let source_result = match source.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "source task failed");
                Err(RunError::SourceTask(e))
            }
        };
        let stats = deliverer.stats.clone();
        deliverer.finish(cfg.delivery.drain_timeout).await;
        // Several instances: the leases go to the next instance at once.
        if let Some((pg, roles)) = &shared {
            let (pg, roles) = (pg.clone(), roles.clone());
            let released =
                tokio::task::spawn_blocking(move || crate::store::shared::release(&pg, &roles))
                    .await;
            if let Ok(Err(e)) = released {
                tracing::warn!(error = %e, "giving up this instance's leases failed; they pass on when they expire");
            }
        }
        drop(handle);
        if let Some(w) = store {
            w.finish().await;
        }
        if let Some(e) = store_failure {
            return Err(RunError::Store(e).into());
        }
        source_result?;
        Ok(Summary::of(&self.metrics, &stats))
    }

    /// Start the reconciliation task when `[sync]` is on.
    fn start_sync(
        &self,
        pipeline: &Pipeline,
        found: mpsc::Sender<Found>,
        shutdown: &CancellationToken,
        roles: Option<Arc<crate::store::shared::Roles>>,
    ) -> Result<Option<SyncTask>, StartError> {
        let cfg = &self.config;
        let (Some(sc), Some(platform)) = (&cfg.sync, &cfg.platform) else {
            return Ok(None);
        };
        let api_stats = Arc::new(ApiStats::default());
        let Some(api) =
            crate::lark::api::Api::new(platform, cfg.lark.request_timeout, api_stats.clone())
                .map_err(StartError::Api)?
        else {
            return Ok(None);
        };
        let want = Arc::new(Wanted::default());
        let stop = shutdown.child_token();
        let syncer = Syncer::new(
            Arc::new(api),
            sc.clone(),
            cfg.clone(),
            self.clock.clone(),
            pipeline.directory().clone(),
        )
        .leading_only(roles);
        let task = tokio::spawn(syncer.run(want.clone(), found, stop.clone()));
        Ok(Some(SyncTask {
            task,
            stop,
            want,
            stats: Arc::new(SyncStats::default()),
            api: api_stats,
            stale_after: sc.stale_after,
        }))
    }

    /// Listen where `[http]` says, and publish the address.
    async fn bind(
        &self,
        http: Option<&HttpConfig>,
    ) -> Result<Option<tokio::net::TcpListener>, StartError> {
        let Some(h) = http else { return Ok(None) };
        let l = tokio::net::TcpListener::bind(h.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: h.listen,
                source,
            })?;
        self.http_addr.send_replace(l.local_addr().ok());
        Ok(Some(l))
    }

    /// Start the configured source on its own task, handing it `tx` (the
    /// webhook needs no task: the HTTP server is the source).
    async fn start_source(
        &self,
        tx: mpsc::Sender<Inbound>,
        shutdown: &CancellationToken,
    ) -> Result<(JoinHandle<Result<(), RunError>>, Option<Arc<LarkStats>>), StartError> {
        let cfg = &self.config;
        let stop = shutdown.clone();
        Ok(match cfg.source.kind {
            SourceKind::Replay => {
                let path = cfg.source.replay_file.clone().unwrap_or_default();
                let file = replay::open(&path).await?;
                let task = tokio::spawn(async move {
                    replay::run(file, path, tx, stop)
                        .await
                        .map_err(RunError::from)
                });
                (task, None)
            }
            SourceKind::Lark => {
                let platform = cfg.platform.as_ref().ok_or(StartError::NoPlatform)?;
                let client = LarkClient::new(platform, &cfg.lark)?;
                let stats = client.stats.clone();
                let task =
                    tokio::spawn(async move { client.run(tx, stop).await.map_err(RunError::from) });
                (task, Some(stats))
            }
            SourceKind::Webhook => {
                drop(tx);
                (tokio::spawn(async { Ok(()) }), None)
            }
        })
    }
}

/// The running reconciliation.
struct SyncTask {
    task: JoinHandle<()>,
    stop: CancellationToken,
    want: Arc<Wanted>,
    stats: Arc<SyncStats>,
    api: Arc<ApiStats>,
    stale_after: std::time::Duration,
}

/// The store `[store]` names, opened for this run (locked, checked,
/// migrated), what it holds, and its writer thread started.
async fn open_store(
    cfg: &Config,
    me: &str,
) -> Result<(Option<Writer>, Option<crate::store::Loaded>), StartError> {
    let Some(sc) = &cfg.store else {
        return Ok((None, None));
    };
    let (sc, me) = (sc.clone(), me.to_string());
    let seen = cfg.schedule.dedup_capacity;
    // Off the runtime's thread: the store's methods block.
    let (store, loaded) = tokio::task::spawn_blocking(move || {
        let store = crate::store::open(&sc, &me)?;
        let loaded = store.load(seen)?;
        Ok::<_, StoreError>((store, loaded))
    })
    .await
    .map_err(|_| StoreError::ReaderGone)??;
    Ok((Some(Writer::start(store)?), Some(loaded)))
}
