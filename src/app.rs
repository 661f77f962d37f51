//! The run loop: sources → pipeline → sinks, until the source ends or
//! shutdown is requested.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SourceKind};
use crate::deliver::{DeliverError, Deliverer};
use crate::model::RoomId;
use crate::pipeline::{Outcome, Pipeline};
use crate::render::Templates;
use crate::schedule::Skip;
pub use crate::source::{Ack, Inbound};
use crate::store::{EntryRow, EventWrite, Store};
use std::sync::Mutex;

/// Why the app could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot read replay file {path}: {source}")]
    Replay {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("source `{0}` is not available in this build")]
    Unsupported(&'static str),
    #[error("source `lark` needs a [platform] table")]
    NoPlatform,
    #[error(transparent)]
    Lark(#[from] crate::lark::SourceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub received: u64,
    pub applied: u64,
    pub changes: u64,
    pub duplicates: u64,
    pub stale: u64,
    pub ignored: u64,
    pub rejected: u64,
    pub malformed: u64,
    pub render_errors: u64,
    pub messages: u64,
    /// (sink, delivered, failed)
    pub sinks: Vec<(String, u64, u64)>,
}

impl Summary {
    /// The run's counters as `/metrics` has them.
    pub fn of(m: &crate::http::Metrics) -> Summary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            received: g(&m.received),
            applied: g(&m.applied),
            changes: g(&m.changes),
            duplicates: g(&m.duplicates),
            stale: g(&m.stale),
            ignored: g(&m.ignored),
            rejected: g(&m.rejected),
            malformed: g(&m.malformed),
            render_errors: g(&m.render_errors),
            messages: g(&m.messages),
            sinks: Vec::new(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} received: {} applied ({} room changes), {} duplicate, {} stale, {} other type, {} rejected, {} malformed; {} messages",
            self.received,
            self.applied,
            self.changes,
            self.duplicates,
            self.stale,
            self.ignored,
            self.rejected,
            self.malformed,
            self.messages
        )?;
        if self.render_errors > 0 {
            write!(f, ", {} render errors", self.render_errors)?;
        }
        for (name, ok, failed) in &self.sinks {
            write!(f, "\n  sink {name}: {ok} delivered, {failed} failed")?;
        }
        Ok(())
    }
}

/// A source of "now" (tests pass a fixed clock).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Everything the app needs to run.
pub struct App {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    pub clock: Clock,
    /// Counters for `/metrics` (and tests).
    pub metrics: Arc<crate::http::Metrics>,
    /// The HTTP server's address once it listens (port 0 in tests).
    pub http_addr: tokio::sync::watch::Sender<Option<std::net::SocketAddr>>,
}

impl App {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Self {
        App {
            config,
            templates,
            clock: system_clock(),
            metrics: Arc::default(),
            http_addr: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Run until the source ends (replay) or `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Summary, AppError> {
        let mut pipeline = Pipeline::new(self.config.clone(), self.templates.clone());
        let store: Option<SharedStore> = match &self.config.store {
            None => None,
            Some(sc) => Some(Arc::new(Mutex::new(Store::open(&sc.path, sc.durable)?))),
        };
        let deliverer = Deliverer::start(&self.config, 1024, self.clock.clone(), store.clone())?;
        if let Some(store) = &store {
            restore(&mut pipeline, store, &deliverer, (self.clock)()).await?;
        }
        let (tx, rx) = mpsc::channel::<Inbound>(1024);
        let listener =
            match &self.config.http {
                Some(h) => Some(tokio::net::TcpListener::bind(h.listen).await.map_err(
                    |source| AppError::Bind {
                        addr: h.listen,
                        source,
                    },
                )?),
                None => None,
            };
        if let Some(l) = &listener {
            self.http_addr.send_replace(l.local_addr().ok());
        }
        let webhook_tx = self
            .config
            .http
            .as_ref()
            .filter(|h| h.webhook)
            .map(|_| tx.clone());
        let mut lark_stats = None;
        let source = match self.config.source.kind {
            SourceKind::Replay => {
                let path = self.config.source.replay_file.clone().unwrap_or_default();
                let file =
                    tokio::fs::File::open(&path)
                        .await
                        .map_err(|source| AppError::Replay {
                            path: path.clone(),
                            source,
                        })?;
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    replay(file, path.clone(), tx, stop)
                        .await
                        .map_err(|source| AppError::Replay { path, source })
                })
            }
            SourceKind::Lark => {
                let platform = self.config.platform.as_ref().ok_or(AppError::NoPlatform)?;
                let client = crate::lark::LarkClient::new(platform, &self.config.lark)?;
                lark_stats = Some(client.stats.clone());
                let stop = shutdown.clone();
                tokio::spawn(async move { client.run(tx, stop).await.map_err(AppError::from) })
            }
            // The HTTP server is the source: it holds `webhook_tx`.
            SourceKind::Webhook => {
                drop(tx);
                tokio::spawn(async { Ok(()) })
            }
        };
        let server_stop = shutdown.child_token();
        let (query_tx, query_rx) = mpsc::channel::<crate::http::Query>(64);
        // Rooms whose schedule changed, for the live pages' event streams.
        let signals = Arc::new(crate::http::RoomSignals::default());
        let server = listener.map(|l| {
            let h = self
                .config
                .http
                .as_ref()
                .map(|h| (h.webhook_path.clone(), h.max_body_bytes))
                .unwrap_or_default();
            let secrets = crate::lark::webhook::Secrets {
                verification_token: self
                    .config
                    .platform
                    .as_ref()
                    .and_then(|p| p.verification_token.clone()),
                encrypt_key: self
                    .config
                    .platform
                    .as_ref()
                    .and_then(|p| p.encrypt_key.clone()),
            };
            let status = crate::http::Status {
                metrics: self.metrics.clone(),
                sinks: deliverer.stats.clone(),
                lark: lark_stats.clone(),
                store: store.clone(),
            };
            let tokens: crate::http::PullTokens = self
                .config
                .rooms
                .iter()
                .filter_map(|r| r.token.clone().map(|t| (r.id.to_string(), t)))
                .collect();
            let server = crate::http::Server {
                status,
                queries: query_tx.clone(),
                tokens: Arc::new(tokens),
                inbound: webhook_tx,
                secrets: Arc::new(secrets),
                live: crate::http::Live {
                    signals: signals.clone(),
                    clock: self.clock.clone(),
                    stop: server_stop.clone(),
                },
            };
            let app = crate::http::router(server, &h.0, h.1);
            tokio::spawn(crate::http::serve(l, app, server_stop.clone()))
        });
        // The core runs until every source has dropped its sender, so what
        // a source handed over is applied and acknowledged even on shutdown.
        let core = Core {
            deliverer: &deliverer,
            clock: &self.clock,
            heartbeat: self.config.heartbeat,
            store: store.as_ref(),
            retention: self.config.store.as_ref().map(|s| s.retention),
            shutdown: &shutdown,
            metrics: &self.metrics,
            signals: &signals,
        };
        drop(query_tx);
        let (summary, store_failure) = core.run(&mut pipeline, rx, query_rx).await;
        server_stop.cancel();
        if let Some(server) = server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
                Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
            }
        }
        let source_result = match source.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "source task failed");
                Ok(())
            }
        };
        let stats = deliverer.stats.clone();
        deliverer.finish(self.config.drain_timeout).await;
        let mut summary = summary;
        summary.sinks = stats
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    s.delivered.load(Ordering::Relaxed),
                    s.failed.load(Ordering::Relaxed) + s.dead.load(Ordering::Relaxed),
                )
            })
            .collect();
        if let Some(e) = store_failure {
            return Err(AppError::Store(e));
        }
        source_result.map(|()| summary)
    }
}

/// The store as the core and the sink workers share it.
pub type SharedStore = Arc<Mutex<Store>>;

/// Lock the store; a panic elsewhere while holding it does not make the
/// data wrong, so a poisoned lock is taken anyway.
pub fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Startup with a store: the schedule and seen ids back in memory, pending
/// messages re-queued in order, every panel pushed its current view.
async fn restore(
    p: &mut Pipeline,
    store: &SharedStore,
    deliverer: &Deliverer,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let mut loaded = lock(store).load(p.config.dedup_capacity)?;
    let (bookings, pending) = (loaded.entries.len(), loaded.pending.len());
    let rows = std::mem::take(&mut loaded.pending);
    restore_schedule(p, loaded);
    for row in rows {
        let mut m = row.message;
        match p.config.sinks.iter().position(|s| s.name == row.sink) {
            Some(i) => {
                m.sink = i;
                deliverer.send(m).await;
            }
            None => {
                tracing::warn!(sink = %row.sink, id = row.id, "queued message for a sink no longer configured; marked failed");
                lock(store).mark(row.id, "failed", Some("sink no longer configured"), now)?;
            }
        }
    }
    let event_id: Arc<str> = format!(
        "startup:{}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
    .into();
    let (mut messages, mut errors) = (Vec::new(), Vec::new());
    p.clock_snapshots(&p.panel_rooms(), now, &event_id, &mut messages, &mut errors);
    for (sink, e) in errors {
        tracing::error!(%sink, error = %e, "render failed");
    }
    let panels = messages.len();
    for m in messages {
        deliverer.send(m).await;
    }
    tracing::info!(bookings, pending, panels, "state restored from the store");
    Ok(())
}

/// Put what the store loaded back into the schedule: bookings (with their
/// last change times), series deletes, and the seen ids (oldest first, so
/// the newest stay in the bounded window).
fn restore_schedule(p: &mut Pipeline, loaded: crate::store::Loaded) {
    for e in loaded.entries {
        p.schedule.restore(e.key, e.booking, e.last_change);
    }
    for (uid, at) in loaded.series_deleted {
        p.schedule.restore_series_delete(&uid, at);
    }
    for id in loaded.seen.iter().rev() {
        p.schedule.remember(id);
    }
}

/// Feed a replay file's lines (one event body each; blank lines and
/// `#` comments skipped).
async fn replay(
    file: tokio::fs::File,
    path: PathBuf,
    tx: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) -> Result<(), std::io::Error> {
    let mut lines = tokio::io::BufReader::new(file).lines();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u64;
    loop {
        let line = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            l = lines.next_line() => l?,
        };
        let Some(line) = line else { return Ok(()) };
        n += 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let inb = Inbound {
            payload: t.as_bytes().to_vec(),
            origin: format!("{name}:{n}"),
            ack: None,
        };
        if tx.send(inb).await.is_err() {
            return Ok(());
        }
    }
}

/// The core's collaborators.
pub struct Core<'a> {
    pub deliverer: &'a Deliverer,
    pub clock: &'a Clock,
    pub heartbeat: Option<std::time::Duration>,
    pub store: Option<&'a SharedStore>,
    pub retention: Option<std::time::Duration>,
    /// Cancelled by the core itself when the store fails.
    pub shutdown: &'a CancellationToken,
    /// Where changed rooms are announced (to live pages).
    pub signals: &'a crate::http::RoomSignals,
    pub metrics: &'a crate::http::Metrics,
}

/// One applied event waiting for its commit.
struct Applied {
    ack: Option<tokio::sync::oneshot::Sender<Ack>>,
    event_id: String,
    entries: Vec<EntryRow>,
    series: Option<(Arc<str>, DateTime<Utc>)>,
    messages: Vec<crate::pipeline::Message>,
    rooms: Vec<RoomId>,
}

/// How many waiting payloads are applied and committed together.
const BATCH: usize = 256;

impl Core<'_> {
    /// Apply inbound payloads (a batch at a time: one transaction, then the
    /// messages are queued and the acks sent), and push room snapshots when
    /// the clock alone changes a room's view (a booking starts or ends,
    /// local midnight, the heartbeat). Runs until every source has dropped
    /// its sender. A store failure is returned (after the core has told the
    /// sources to stop and asked the platform to redeliver what it holds).
    pub async fn run(
        &self,
        pipeline: &mut Pipeline,
        mut rx: mpsc::Receiver<Inbound>,
        mut queries: mpsc::Receiver<crate::http::Query>,
    ) -> (Summary, Option<crate::store::StoreError>) {
        let clock = self.clock;
        let metrics = self.metrics;
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Ordering::Relaxed);
        };
        let mut failure = None;
        let panels = !pipeline.panel_rooms().is_empty();
        let mut last_tick = clock();
        let mut next_push = if panels {
            pipeline.next_clock_push(last_tick)
        } else {
            None
        };
        let mut next_heartbeat = self
            .heartbeat
            .filter(|_| panels)
            .and_then(|h| chrono::Duration::from_std(h).ok())
            .map(|h| (last_tick + h, h));
        let hour = chrono::Duration::hours(1);
        let mut next_prune = self.retention.map(|_| last_tick);
        loop {
            let wake = [next_push, next_heartbeat.map(|(t, _)| t), next_prune]
                .into_iter()
                .flatten()
                .min();
            let sleep_for = wake.map(|w| (w - clock()).to_std().unwrap_or_default());
            let first = tokio::select! {
                biased;
                m = rx.recv() => match m { Some(m) => m, None => break },
                Some(q) = queries.recv() => {
                    // Views change by the minute at most: a display that
                    // polls gets the same body (and ETag) within a minute.
                    let now = clock();
                    let minute = now - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&now))) - chrono::Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&now)));
                    answer(pipeline, q, minute);
                    continue;
                }
                () = async {
                    match sleep_for {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = clock();
                    if let (Some(t), Some(keep)) = (next_prune, self.retention)
                        && t <= now
                    {
                        self.prune(pipeline, now, keep);
                        next_prune = Some(now + hour);
                    }
                    if next_push.is_some_and(|p| p <= now) || next_heartbeat.is_some_and(|(t, _)| t <= now) {
                        let beat = next_heartbeat.is_some_and(|(t, _)| t <= now);
                        let rooms = if beat || is_midnight_push(pipeline, last_tick, now) {
                            pipeline.panel_rooms()
                        } else {
                            pipeline.rooms_due(last_tick, now)
                        };
                        let event_id: Arc<str> = format!("clock:{}", now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).into();
                        let (mut messages, mut errors) = (Vec::new(), Vec::new());
                        pipeline.clock_snapshots(&rooms, now, &event_id, &mut messages, &mut errors);
                        for (sink, e) in &errors {
                            tracing::error!(%sink, error = %e, "render failed");
                        }
                        tracing::debug!(rooms = rooms.len(), messages = messages.len(), heartbeat = beat, "clock push");
                        add(&metrics.messages, messages.len() as u64);
                        for m in messages {
                            self.deliverer.send(m).await;
                        }
                        if let Some((t, h)) = next_heartbeat.as_mut().filter(|(t, _)| *t <= now) {
                            *t = now + *h;
                        }
                        last_tick = now;
                        next_push = pipeline.next_clock_push(now);
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let now = clock();
            let mut applied: Vec<Applied> = Vec::new();
            for inb in batch {
                add(&metrics.received, 1);
                if failure.is_some() {
                    // The store is gone: nothing more can be made durable.
                    if let Some(ack) = inb.ack {
                        let _ = ack.send(Ack::Retry);
                    }
                    continue;
                }
                let outcome = pipeline.handle(&inb.payload, now);
                let origin = inb.origin.as_str();
                match outcome {
                    Outcome::Applied {
                        event_id,
                        changes,
                        rooms,
                        next_boundary,
                        messages,
                        render_errors,
                    } => {
                        add(&metrics.applied, 1);
                        add(&metrics.changes, changes as u64);
                        if panels {
                            next_push = [next_push, next_boundary].into_iter().flatten().min();
                        }
                        tracing::debug!(%origin, %event_id, changes, messages = messages.len(), "applied");
                        for (sink, e) in &render_errors {
                            tracing::error!(%origin, %event_id, %sink, error = %e, "render failed");
                        }
                        add(&metrics.render_errors, render_errors.len() as u64);
                        add(&metrics.messages, messages.len() as u64);
                        let (entries, series) = if self.store.is_some() {
                            let mut series = None;
                            let entries = pipeline
                                .schedule
                                .touched()
                                .map(|(k, b, t)| {
                                    if k.original_time == 0 && series.is_none() {
                                        series = pipeline
                                            .schedule
                                            .series_deleted_at(&k.uid)
                                            .map(|at| (k.uid.clone(), at));
                                    }
                                    EntryRow {
                                        key: k.clone(),
                                        booking: b.cloned(),
                                        last_change: t,
                                    }
                                })
                                .collect();
                            (entries, series)
                        } else {
                            (Vec::new(), None)
                        };
                        applied.push(Applied {
                            ack: inb.ack,
                            event_id,
                            entries,
                            series,
                            messages,
                            rooms,
                        });
                        continue;
                    }
                    Outcome::Skipped { event_id, why } => {
                        match why {
                            Skip::Duplicate => add(&metrics.duplicates, 1),
                            Skip::Stale => add(&metrics.stale, 1),
                        }
                        tracing::debug!(%origin, %event_id, ?why, "skipped");
                    }
                    Outcome::Ignored { event_type } => {
                        add(&metrics.ignored, 1);
                        tracing::debug!(%origin, %event_type, "not a meeting-room event; ignored");
                    }
                    Outcome::Rejected { event_id } => {
                        add(&metrics.rejected, 1);
                        tracing::warn!(%origin, %event_id, "verification token does not match; event rejected");
                    }
                    Outcome::Malformed(e) => {
                        add(&metrics.malformed, 1);
                        tracing::warn!(%origin, error = %e, "malformed event");
                    }
                    Outcome::Challenge { .. } => {
                        add(&metrics.ignored, 1);
                        tracing::debug!(%origin, "url_verification outside webhook mode; ignored");
                    }
                }
                if let Some(ack) = inb.ack {
                    let _ = ack.send(Ack::Ok);
                }
            }
            if applied.is_empty() {
                continue;
            }
            metrics
                .last_event_ms
                .store(now.timestamp_millis(), Ordering::Relaxed);
            if let Some(store) = self.store {
                let cfg = &pipeline.config;
                let writes: Vec<EventWrite<'_>> = applied
                    .iter()
                    .map(|a| EventWrite {
                        event_id: &a.event_id,
                        entries: &a.entries,
                        series_deleted: a.series.clone(),
                        outbox: a
                            .messages
                            .iter()
                            .map(|m| (cfg.sinks[m.sink].name.as_str(), m))
                            .collect(),
                    })
                    .collect();
                let committed = lock(store).commit(now, &writes);
                drop(writes);
                match committed {
                    Ok(ids) => {
                        let mut ids = ids.into_iter();
                        for a in &mut applied {
                            for m in &mut a.messages {
                                m.outbox_id = ids.next();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = applied.len(), "store commit failed: asking the platform to redeliver and stopping");
                        for a in applied {
                            if let Some(ack) = a.ack {
                                let _ = ack.send(Ack::Retry);
                            }
                        }
                        failure = Some(e);
                        self.shutdown.cancel();
                        continue;
                    }
                }
            }
            self.signals
                .raise(applied.iter().flat_map(|a| a.rooms.iter()));
            for a in applied {
                for m in a.messages {
                    self.deliverer.send(m).await;
                }
                if let Some(ack) = a.ack {
                    let _ = ack.send(Ack::Ok);
                }
            }
        }
        (Summary::of(metrics), failure)
    }

    fn prune(&self, pipeline: &mut Pipeline, now: DateTime<Utc>, keep: std::time::Duration) {
        let before = now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(30));
        let n = pipeline.schedule.prune(before);
        if let Some(store) = self.store {
            match lock(store).prune(before) {
                Ok(rows) => tracing::debug!(bookings = n, rows, "pruned"),
                Err(e) => tracing::error!(error = %e, "pruning the store failed"),
            }
        }
    }
}

/// Answer a question from the HTTP server.
fn answer(p: &Pipeline, q: crate::http::Query, now: DateTime<Utc>) {
    match q {
        crate::http::Query::Rooms(reply) => {
            let list = p
                .all_rooms()
                .into_iter()
                .map(|r| {
                    let name = p
                        .config
                        .room(&r)
                        .and_then(|c| c.name.clone())
                        .unwrap_or_else(|| r.to_string());
                    let style = p.config.style(p.config.room(&r), None);
                    let soon =
                        chrono::Duration::from_std(p.config.starting_soon).unwrap_or_default();
                    let status = p
                        .schedule
                        .view(&r, now, style.next_midnight(now), soon)
                        .status
                        .as_str();
                    (r.to_string(), name, status)
                })
                .collect();
            let _ = reply.send(list);
        }
        crate::http::Query::View { room, view, reply } => {
            let room = RoomId::new(&room);
            let known = p.config.room(&room).is_some()
                || (!p.config.ignore_unknown_rooms && p.schedule.rooms().any(|r| *r == room));
            let body = if known {
                let style = p.config.style(p.config.room(&room), None);
                let vm = p.snapshot_vm_styled(&style, &room, now);
                p.templates
                    .render(view.template(), style.locale, vm)
                    .map(|r| r.body)
                    .map_err(|e| crate::http::ViewError::Render(e.to_string()))
            } else {
                Err(crate::http::ViewError::NoSuchRoom)
            };
            let _ = reply.send(body);
        }
    }
}

/// Did a panel room's local midnight pass in `(from, to]`?
fn is_midnight_push(p: &Pipeline, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    p.panel_rooms()
        .iter()
        .any(|r| p.config.style(p.config.room(r), None).next_midnight(from) <= to)
}

/// The schedule for `roomcast rooms`, without delivering anything: from the
/// store when there is one; otherwise a replay source is read through, and
/// other sources start empty.
pub async fn load_schedule(checked: &crate::check::Checked) -> Result<Pipeline, AppError> {
    let mut p = Pipeline::new(checked.config.clone(), checked.templates.clone());
    if let Some(sc) = &checked.config.store {
        // The store is the truth; read it without taking the run lock.
        let loaded = Store::open_read_only(&sc.path)?.load(0)?;
        restore_schedule(&mut p, loaded);
        return Ok(p);
    }
    if checked.config.source.kind == SourceKind::Replay {
        let path = checked
            .config
            .source
            .replay_file
            .clone()
            .unwrap_or_default();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| AppError::Replay { path, source })?;
        let now = Utc::now();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let _ = p.handle(line.as_bytes(), now);
        }
    }
    Ok(p)
}
