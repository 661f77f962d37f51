//! The core loop: one task owns the pipeline (and so the schedule). It
//! waits on three things: payloads from the sources, questions from the
//! HTTP server, and the next clock wake-up. Each is one named step.
//!
//! Commits run on the store's thread: the core hands over what each step
//! applied and goes on applying, answering queries and ticking; the writer
//! commits every batch queued while its last commit was on its way to the
//! disk as one (group commit). Invariants: acks and messages go out only after the commit
//! that holds their event; a failed commit stops intake (every waiting and
//! later event is answered "retry"): for good with a store of its own,
//! until the database answers again with a shared one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::query;
use super::timers::{Due, Timers, instant_id};
use crate::clock::{self, TimeSource};
use crate::config::Config;
use crate::decode::{self, DecodeError, Decoded};
use crate::deliver::Deliverer;
use crate::directory::Directory;
use crate::error::Chain;
use crate::http::{Query, RoomSignals, read_sized};
use crate::message::Message;
use crate::metrics::{Metrics, SyncStats, add};
use crate::model::RoomId;
use crate::pipeline::{Applied, Cap, Outcome, Pipeline};
use crate::schedule::Skip;
use crate::source::{Ack, AckTo, Inbound};
use crate::store::{CommitItem, Committed, Loaded, OutboxRow, StoreError, Writer};
use crate::sync::{Found, Wanted};

/// How many waiting payloads are applied in one step: a quarter of what is
/// waiting, at least [`MIN_CHUNK`], at most [`MAX_CHUNK`]. After each step
/// the core yields, and the source writes the acks just released (and
/// reads on) while the writer commits and the core applies the next step:
/// the work overlaps in about four stages whatever the sender's window,
/// and what is queued while a commit is on its way is still committed as
/// one group.
const MIN_CHUNK: usize = 16;
const MAX_CHUNK: usize = 256;

/// The core's collaborators.
pub(super) struct Core<'a> {
    pub(super) deliverer: &'a Deliverer,
    pub(super) clock: &'a TimeSource,
    pub(super) heartbeat: Option<Duration>,
    /// The store's writer, when there is a store.
    pub(super) store: Option<&'a Writer>,
    pub(super) retention: Option<Duration>,
    /// Cancelled by the core itself when the store fails.
    pub(super) shutdown: &'a CancellationToken,
    /// Where changed rooms are announced (to live pages).
    pub(super) signals: &'a RoomSignals,
    pub(super) metrics: &'a Metrics,
    /// The reconciliation, when `[sync]` is on: its counters, and where
    /// the rooms an event touched are asked for again.
    pub(super) sync: Option<(&'a SyncStats, &'a Wanted)>,
    /// Several instances on one PostgreSQL store: this one's roles. A
    /// committed message is then sent by its sink's owner (which claims it
    /// from the outbox), and the clock's work is the leader's.
    pub(super) roles: Option<&'a crate::store::shared::Roles>,
}

/// One applied event (or fetch) waiting for its commit.
struct Pending {
    ack: Option<AckTo>,
    applied: Applied,
    /// Its delivery id is remembered (not for a fetch).
    remember: bool,
    /// Rooms a fetch covered, and when it began.
    synced: Vec<(RoomId, DateTime<Utc>)>,
    /// How far the clock's messages have been made (kept with them).
    timers: Vec<(String, DateTime<Utc>)>,
}

impl Pending {
    fn event(ack: Option<AckTo>, applied: Applied) -> Self {
        Pending {
            ack,
            applied,
            remember: true,
            synced: Vec::new(),
            timers: Vec::new(),
        }
    }
}

/// A batch handed to the store's writer, and its reply.
struct Flight {
    pending: Vec<Pending>,
    reply: oneshot::Receiver<Committed>,
}

/// The core's own state between steps.
#[derive(Default)]
struct Intake {
    /// Applied, not yet handed to the writer.
    waiting: Vec<Pending>,
    /// Handed to the writer, oldest first (replies come in this order;
    /// the writer commits whatever is queued as one group).
    flights: VecDeque<Flight>,
    /// The store failed: nothing more can be made durable.
    failure: Option<StoreError>,
    /// The shared store is unreachable: intake answers "retry" until a
    /// probe finds it back.
    outage: Option<Outage>,
    /// A shared store: the rooms whose panel snapshots this instance
    /// queued lately, and when (see [`Core::converge`]).
    recent_panels: std::collections::HashMap<RoomId, tokio::time::Instant>,
}

/// How long after queuing a room's panel snapshot another instance's
/// change to the room makes this one queue the room's snapshot again: far
/// beyond the change feed's delay (tens of milliseconds), so a snapshot
/// rendered before another instance's concurrent change arrived is
/// followed by one that has it.
const CONVERGE_WITHIN: Duration = Duration::from_secs(5);

/// A shared store that failed, and the probe that waits for it.
struct Outage {
    since: DateTime<Utc>,
    /// The probe on its way (a read of what the store holds).
    probe: Option<oneshot::Receiver<Result<Loaded, StoreError>>>,
    /// When to probe next.
    next: tokio::time::Instant,
    probes: u32,
    /// Views and pages were told.
    shown: bool,
}

/// How long after a failed probe the next one is sent (a probe of an
/// unreachable PostgreSQL already takes `[store] reconnect_for` of
/// retries).
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl Intake {
    /// Nothing can be made durable now (events are answered "retry").
    fn down(&self) -> bool {
        self.failure.is_some() || self.outage.is_some()
    }

    /// Events handed to the writer and not yet answered (a few batches).
    fn in_flight(&self) -> usize {
        self.flights.iter().map(|f| f.pending.len()).sum()
    }
}

/// At most this many applied events wait for a commit; then the sources
/// wait (back-pressure), nothing is dropped.
const MAX_WAITING: usize = 8192;

impl Core<'_> {
    /// Apply inbound payloads as they come, commit them a batch at a time
    /// on the store's thread (acks when the batch is on disk), answer
    /// queries, push panels when the clock says so; until every source is
    /// gone and the last batch landed. Returns the store's failure, if it
    /// failed.
    pub(super) async fn run(
        &self,
        pipeline: &mut Pipeline,
        mut rx: mpsc::Receiver<Inbound>,
        mut queries: mpsc::Receiver<Query>,
        found: &mut mpsc::Receiver<Found>,
    ) -> Option<StoreError> {
        let mut timers = Timers::new(pipeline, (self.clock)(), self.heartbeat, self.retention);
        let mut s = Intake::default();
        let mut open = true;
        while open || !s.flights.is_empty() || !s.waiting.is_empty() {
            // The clock's work is the leader's: an instance that does not
            // lead leaves its timers where they are (the first round it
            // leads catches up) and looks again in a moment.
            let leads = self.roles.is_none_or(|r| r.leader()) && s.outage.is_none();
            let sleep_for = if leads {
                timers
                    .next_wake()
                    .map(|w| (w - (self.clock)()).to_std().unwrap_or_default())
            } else {
                Some(Duration::from_millis(500))
            };
            let room = s.waiting.len() + s.in_flight() < MAX_WAITING;
            tokio::select! {
                biased;
                r = landed(s.flights.front_mut()), if !s.flights.is_empty() => {
                    self.landed(&mut s, r).await;
                    self.outage_began(pipeline, &mut s);
                }
                r = probe(s.outage.as_mut(), self.store, pipeline.config().schedule.dedup_capacity), if s.outage.is_some() => {
                    self.probed(pipeline, r, &mut timers, &mut s).await;
                }
                m = rx.recv(), if open && room => {
                    let Some(first) = m else {
                        open = false;
                        continue;
                    };
                    let batch = take_batch(first, &mut rx);
                    self.apply_batch(pipeline, batch, &mut timers, &mut s).await;
                    tokio::task::yield_now().await;
                }
                Some(q) = queries.recv() => match q {
                    Query::Reload(checked, reply) => {
                        let r = self.reload(pipeline, *checked).await;
                        timers.reconfigured(pipeline, (self.clock)());
                        let _ = reply.send(r);
                    }
                    // Views change by the minute at most: a display that
                    // polls gets the same body (and ETag) within a minute.
                    q => query::answer(pipeline, q, clock::minute_start((self.clock)())),
                },
                Some(f) = found.recv(), if !s.down() && room => {
                    self.apply_found(pipeline, f, &mut timers, &mut s).await;
                }
                () = sleep(sleep_for) => {
                    let now = (self.clock)();
                    if leads {
                        let due = timers.due(pipeline, now);
                        self.tick(pipeline, due, now, &mut s).await;
                    } else if let Some(before) = timers.prune_due(now) {
                        // A follower forgets ended bookings too (the
                        // leader prunes the store).
                        let n = pipeline.prune(before);
                        tracing::debug!(bookings = n, "pruned (memory only: not the leader)");
                    }
                }
            }
        }
        s.failure
    }

    /// Apply a batch; what changed waits for its commit. With the store
    /// already failed, every event is answered "retry".
    async fn apply_batch(
        &self,
        pipeline: &mut Pipeline,
        batch: Vec<Inbound>,
        timers: &mut Timers,
        s: &mut Intake,
    ) {
        let now = (self.clock)();
        let cap = pipeline.max_rooms_per_event();
        let mut applied = 0;
        for mut inb in batch {
            add(&self.metrics.received, 1);
            if s.down() {
                // The store is gone (or unreachable for now): nothing can
                // be made durable; the platform delivers it again.
                answer(inb.ack, Ack::Retry);
                continue;
            }
            let payload = std::mem::take(&mut inb.payload);
            let decoded = read_sized(
                payload.len(),
                move || decode::decode_limited(&payload, cap),
                || Err(DecodeError::Json("the decoder stopped".into())),
            )
            .await;
            match self.handle(pipeline, &inb, decoded, now) {
                Some(a) => {
                    timers.booking_boundary(a.next_boundary);
                    timers.reminder_hint(a.next_reminder);
                    if let Some((_, want)) = &self.sync {
                        // The event cannot describe a series: ask the
                        // platform again about its rooms (coalesced).
                        want.ask(a.rooms.iter());
                    }
                    s.waiting.push(Pending::event(inb.ack, a));
                    applied += 1;
                }
                None => answer(inb.ack, Ack::Ok),
            }
        }
        if applied > 0 {
            self.metrics
                .last_event_ms
                .store(now.timestamp_millis(), Ordering::Relaxed);
        }
        self.advance(s, now).await;
    }

    /// Hand what waits to the writer (which groups it with whatever else
    /// is queued when its current commit ends). Without a store there is
    /// nothing to wait for.
    async fn advance(&self, s: &mut Intake, now: DateTime<Utc>) {
        if s.waiting.is_empty() || s.down() {
            return;
        }
        let mut pending = std::mem::take(&mut s.waiting);
        let Some(writer) = self.store else {
            self.release(pending).await;
            return;
        };
        let items = pending
            .iter_mut()
            .map(|p| CommitItem {
                // The clock's work (it moves a timer) carries the epoch of
                // the leader's lease it was made under.
                leader_epoch: (!p.timers.is_empty())
                    .then(|| self.roles.and_then(|r| r.leader_epoch()))
                    .flatten(),
                event_id: p.remember.then(|| p.applied.event_id.clone()),
                synced: std::mem::take(&mut p.synced),
                written: std::mem::take(&mut p.applied.written),
                messages: std::mem::take(&mut p.applied.messages),
                timers: std::mem::take(&mut p.timers),
                refused: None,
            })
            .collect();
        add(&self.metrics.committed, pending.len() as u64);
        s.flights.push_back(Flight {
            pending,
            reply: writer.submit(items, now),
        });
    }

    /// A commit landed: on success the next batch is handed over and its
    /// messages and acks go out; on failure every event waiting is
    /// answered "retry" and intake stops.
    async fn landed(&self, s: &mut Intake, first: Result<Committed, oneshot::error::RecvError>) {
        // The oldest flight, and every later one whose reply is already
        // here (one group commit answers several): their acks leave
        // together.
        let mut done = Vec::new();
        let mut r = first.unwrap_or(Err(StoreError::WriterGone));
        while let Some(mut f) = s.flights.pop_front() {
            match r {
                Ok(items) => {
                    for (p, item) in f.pending.iter_mut().zip(items) {
                        match item.refused {
                            None => p.applied.messages = item.messages,
                            // Another instance applied it, or a newer
                            // change: nothing of it was queued, nothing
                            // is sent (the change feed brings the
                            // database's state). Still acknowledged.
                            Some(why) => {
                                match why {
                                    Skip::Duplicate => add(&self.metrics.refused_duplicates, 1),
                                    Skip::Stale => add(&self.metrics.refused_stale, 1),
                                }
                                tracing::debug!(event_id = %p.applied.event_id, ?why, "the shared store refused an applied event");
                            }
                        }
                    }
                    done.append(&mut f.pending);
                }
                Err(e) => {
                    self.failed(s, e, f.pending);
                    break;
                }
            }
            r = match s.flights.front_mut().map(|f| f.reply.try_recv()) {
                Some(Ok(r)) => r,
                Some(Err(oneshot::error::TryRecvError::Closed)) => Err(StoreError::WriterGone),
                Some(Err(oneshot::error::TryRecvError::Empty)) | None => break,
            };
        }
        if let Some(w) = self.store {
            self.metrics.commits.store(w.commits(), Ordering::Relaxed);
        }
        // The next batch first: the writer starts on it while these acks
        // and messages go out (after a failure nothing more is handed over;
        // what did commit is still answered).
        self.advance(s, (self.clock)()).await;
        if self.roles.is_some() {
            let at = tokio::time::Instant::now();
            for m in done.iter().flat_map(|p| &p.applied.messages) {
                if m.subject == crate::message::Subject::Snapshot {
                    s.recent_panels.insert(m.room.clone(), at);
                }
            }
        }
        self.release(done).await;
    }

    /// A commit failed: every event not yet acknowledged is answered
    /// "retry" (those of later batches too, whatever their commits do: a
    /// retried event that was committed after all is a duplicate then).
    /// A store of its own: intake stops (roomcast exits; its supervisor
    /// restarts it on what did commit). A shared store: the instance
    /// stays up, answers "retry" and probes until the database is back
    /// (then starts over from what it holds).
    fn failed(&self, s: &mut Intake, e: StoreError, batch: Vec<Pending>) {
        let events = batch.len() + s.in_flight() + s.waiting.len();
        let flights = s.flights.drain(..).flat_map(|f| f.pending);
        for p in batch.into_iter().chain(flights).chain(s.waiting.drain(..)) {
            answer(p.ack, Ack::Retry);
        }
        if self.roles.is_some() {
            tracing::error!(error = %Chain(&e), events, "the shared store failed: asking the platform to redeliver; taking no events until the database answers again (pages show the last state, marked stale)");
            add(&self.metrics.store_outages, 1);
            self.metrics.store_offline.store(true, Ordering::Relaxed);
            s.outage = Some(Outage {
                since: (self.clock)(),
                probe: None,
                next: tokio::time::Instant::now() + PROBE_EVERY,
                probes: 0,
                shown: false,
            });
            return;
        }
        tracing::error!(error = %Chain(&e), events, "store commit failed: asking the platform to redeliver and stopping");
        self.shutdown.cancel();
        s.failure = Some(e);
    }

    /// A shared store's outage just began: views are marked stale (as of
    /// its start) and live pages redraw.
    fn outage_began(&self, pipeline: &mut Pipeline, s: &mut Intake) {
        let Some(o) = s.outage.as_mut().filter(|o| !o.shown) else {
            return;
        };
        o.shown = true;
        pipeline.set_offline(Some(o.since));
        self.signals.raise(pipeline.all_rooms().iter());
    }

    /// A probe of the unreachable store answered. Still failing: the next
    /// one in a moment. Back: the schedule, seen ids and clock marks start
    /// over from what the database holds — events applied here and never
    /// committed are forgotten (the platform redelivers them, and they are
    /// applied again, with their notices), other instances' changes made
    /// meanwhile are in — and intake resumes.
    async fn probed(
        &self,
        pipeline: &mut Pipeline,
        r: Result<Loaded, StoreError>,
        timers: &mut Timers,
        s: &mut Intake,
    ) {
        let Some(o) = s.outage.as_mut() else { return };
        o.probes += 1;
        let loaded = match r {
            Ok(l) => l,
            Err(e) => {
                o.next = tokio::time::Instant::now() + PROBE_EVERY;
                let offline_s = ((self.clock)() - o.since).num_seconds();
                tracing::warn!(error = %Chain(&e), offline_s, probes = o.probes, "the shared store is still unreachable; events are answered \"retry\"");
                return;
            }
        };
        let now = (self.clock)();
        let offline_s = (now - o.since).num_seconds();
        s.outage = None;
        let bookings = loaded.entries.len();
        pipeline.reset(loaded);
        pipeline.set_offline(None);
        *timers = Timers::new(pipeline, now, self.heartbeat, self.retention);
        self.metrics.store_offline.store(false, Ordering::Relaxed);
        tracing::info!(
            offline_s,
            bookings,
            "the shared store answers again: schedule reloaded from it; taking events"
        );
        // Pages redraw; the leader pushes the panels whose view changed.
        self.signals.raise(pipeline.all_rooms().iter());
        if self.roles.is_some_and(|r| r.leader()) {
            let panels = pipeline.panel_rooms();
            self.push_panels(
                pipeline,
                &panels,
                now,
                &instant_id("store-back", now),
                false,
            )
            .await;
        }
    }

    /// Committed (or nothing to commit to): announce the changed rooms,
    /// send the messages and answer the sources.
    async fn release(&self, pending: Vec<Pending>) {
        self.signals
            .raise(pending.iter().flat_map(|p| p.applied.rooms.iter()));
        let mut acks = Vec::with_capacity(pending.len());
        for p in pending {
            // Shared: queued in the outbox, claimed and sent by the sink's
            // owner (this instance or another).
            if self.roles.is_none() {
                self.send(p.applied.messages).await;
            }
            acks.push(p.ack);
        }
        // All at once, with no await between: the source writes them in
        // one go.
        for ack in acks {
            answer(ack, Ack::Ok);
        }
    }

    /// Merge what the reconciliation found, like an event: committed, then
    /// announced.
    async fn apply_found(
        &self,
        pipeline: &mut Pipeline,
        found: Found,
        timers: &mut Timers,
        s: &mut Intake,
    ) {
        let now = (self.clock)();
        let pending = match found {
            Found::Schedule(fetch) => {
                let applied = pipeline.sync(&fetch, now);
                if let Some((stats, _)) = &self.sync {
                    add(&stats.fetches, 1);
                    add(&stats.added, applied.added as u64);
                    add(&stats.removed, applied.removed as u64);
                    for r in &fetch.rooms {
                        stats.synced(r.as_str(), fetch.began.timestamp_millis());
                    }
                }
                if applied.changes > 0 {
                    tracing::info!(
                        rooms = fetch.rooms.len(),
                        changes = applied.changes,
                        added = applied.added,
                        removed = applied.removed,
                        "schedule fetched: the platform knew changes the event stream had not brought"
                    );
                }
                self.count(&applied);
                timers.booking_boundary(applied.next_boundary);
                timers.reminder_hint(applied.next_reminder);
                Pending {
                    ack: None,
                    applied,
                    remember: false,
                    synced: fetch
                        .rooms
                        .iter()
                        .map(|r| (r.clone(), fetch.began))
                        .collect(),
                    timers: Vec::new(),
                }
            }
            Found::Directory(d) => {
                self.directory(pipeline, d, now).await;
                return;
            }
            Found::Claimed(rows) => {
                send_claimed(self.deliverer, pipeline.config(), rows).await;
                return;
            }
            Found::SentBefore(sent) => {
                for (sink, ago) in &sent.0 {
                    tracing::debug!(%sink, sends = ago.len(), "sink taken over: its last owner's recent sends count against its rate limits");
                    self.deliverer.sent_elsewhere(sink, ago);
                }
                return;
            }
            Found::Committed(c) => {
                // Another instance's commits (and this one's own, which
                // change nothing): the schedule follows, live pages
                // redraw, timers see new boundaries. No message: the
                // committing instance made those.
                let lag = c.lag();
                let applied = pipeline.take_committed(c.rows, now);
                if applied.changes > 0 {
                    tracing::debug!(
                        changes = applied.changes,
                        ?lag,
                        "change feed: bookings other instances committed"
                    );
                    self.signals.raise(applied.rooms.iter());
                    timers.booking_boundary(applied.next_boundary);
                    timers.reminder_hint(applied.next_reminder);
                    self.converge(pipeline, &applied.rooms, now, s).await;
                }
                return;
            }
        };
        s.waiting.push(pending);
        self.advance(s, now).await;
    }

    /// Another instance changed `rooms`, and this one queued a snapshot of
    /// some of them lately: that snapshot may lack the change (both were
    /// applied at once, each instance without the other's), and panels
    /// show the last one they got. So the room's snapshot is queued again
    /// from this instance's schedule, which has both now (only where it
    /// differs from the one queued). Queued through the outbox after the
    /// other instance's commit, it is sent after that one's snapshot.
    async fn converge(
        &self,
        pipeline: &mut Pipeline,
        rooms: &[RoomId],
        now: DateTime<Utc>,
        s: &mut Intake,
    ) {
        if s.recent_panels.is_empty() {
            return;
        }
        let at = tokio::time::Instant::now();
        s.recent_panels
            .retain(|_, queued| at.duration_since(*queued) < CONVERGE_WITHIN);
        let rooms: Vec<RoomId> = rooms
            .iter()
            .filter(|r| s.recent_panels.contains_key(*r))
            .cloned()
            .collect();
        if rooms.is_empty() {
            return;
        }
        let event_id = instant_id("feed", now);
        let (mut messages, mut errors) = (Vec::new(), Vec::new());
        pipeline.clock_snapshots(&rooms, now, &event_id, false, &mut messages, &mut errors);
        for (sink, e) in &errors {
            tracing::error!(%sink, error = %e, "render failed");
        }
        if messages.is_empty() {
            return;
        }
        tracing::debug!(
            rooms = rooms.len(),
            snapshots = messages.len(),
            "another instance changed rooms this one had just shown: their snapshots queued again"
        );
        self.commit_made(&event_id, messages, Vec::new(), now, s)
            .await;
    }

    /// A new room directory: kept, and every panel pushed (names, floors
    /// and out-of-service marks may have changed).
    async fn directory(&self, pipeline: &mut Pipeline, d: Directory, now: DateTime<Utc>) {
        if pipeline.directory() == &d {
            return;
        }
        if let Some(store) = self.store {
            store.handle().save_directory(d.to_json(), now);
        }
        pipeline.set_directory(d);
        self.redraw(pipeline, now, "sync").await;
    }

    /// Every room may look different (a new directory, a reload): live
    /// pages redraw, and panels whose view changed are pushed (`cause`
    /// names the push: `sync:…`, `reload:…`).
    async fn redraw(&self, pipeline: &mut Pipeline, now: DateTime<Utc>, cause: &str) {
        self.signals.raise(pipeline.all_rooms().iter());
        let panels = pipeline.panel_rooms();
        self.push_panels(pipeline, &panels, now, &instant_id(cause, now), false)
            .await;
    }

    /// Render and queue the snapshots of `rooms` for their panels (only
    /// those that changed unless `force`); returns how many were queued.
    async fn push_panels(
        &self,
        pipeline: &mut Pipeline,
        rooms: &[RoomId],
        now: DateTime<Utc>,
        event_id: &Arc<str>,
        force: bool,
    ) -> usize {
        let (mut messages, mut errors) = (Vec::new(), Vec::new());
        pipeline.clock_snapshots(rooms, now, event_id, force, &mut messages, &mut errors);
        for (sink, e) in &errors {
            tracing::error!(%sink, error = %e, "render failed");
        }
        let n = messages.len();
        add(&self.metrics.messages, n as u64);
        self.send(messages).await;
        n
    }

    /// Count what a fetch caused, as for an event.
    fn count(&self, a: &Applied) {
        add(&self.metrics.changes, a.changes as u64);
        add(&self.metrics.render_errors, a.render_errors.len() as u64);
        add(&self.metrics.messages, a.messages.len() as u64);
        for (sink, e) in &a.render_errors {
            tracing::error!(%sink, error = %e, "render failed");
        }
    }

    /// One payload through the pipeline, counted and logged; the applied
    /// event, if it changed anything.
    fn handle(
        &self,
        pipeline: &mut Pipeline,
        inb: &Inbound,
        decoded: Result<Decoded, DecodeError>,
        now: DateTime<Utc>,
    ) -> Option<Applied> {
        let m = self.metrics;
        let origin = &inb.origin;
        match pipeline.handle_decoded(decoded, now) {
            Outcome::Applied(a) => {
                add(&m.applied, 1);
                add(&m.changes, a.changes as u64);
                tracing::debug!(%origin, event_id = %a.event_id, changes = a.changes, messages = a.messages.len(), "applied");
                for (sink, e) in &a.render_errors {
                    tracing::error!(%origin, event_id = %a.event_id, %sink, error = %e, "render failed");
                }
                add(&m.render_errors, a.render_errors.len() as u64);
                add(&m.messages, a.messages.len() as u64);
                if a.dropped_rooms > 0 {
                    add(&m.over_unknown_rooms, 1);
                    tracing::warn!(%origin, event_id = %a.event_id, rooms = a.dropped_rooms, cap = Cap::UnknownRooms.as_str(), "new rooms outside the config left out of an event: [schedule] max_unknown_rooms reached");
                }
                return Some(a);
            }
            Outcome::Skipped { event_id, why } => {
                match why {
                    Skip::Duplicate => add(&m.duplicates, 1),
                    Skip::Stale => add(&m.stale, 1),
                }
                tracing::debug!(%origin, %event_id, ?why, "skipped");
            }
            Outcome::Ignored { event_type } => {
                add(&m.ignored, 1);
                tracing::debug!(%origin, %event_type, "not a meeting-room event; ignored");
            }
            Outcome::Rejected { event_id } => {
                add(&m.rejected, 1);
                tracing::warn!(%origin, %event_id, "verification token does not match; event rejected");
            }
            Outcome::Malformed(e) => {
                add(&m.malformed, 1);
                tracing::warn!(%origin, error = %e, "malformed event");
            }
            Outcome::OverCap {
                event_id,
                booking,
                rooms,
                cap,
            } => {
                add(over_cap(m, cap), 1);
                tracing::warn!(%origin, %event_id, %booking, rooms, cap = cap.as_str(), "event over a [schedule] cap: acknowledged and not applied");
            }
            Outcome::Challenge { .. } => {
                add(&m.ignored, 1);
                tracing::debug!(%origin, "url_verification outside webhook mode; ignored");
            }
        }
        None
    }

    /// A reload: rooms, display, schedule rules, templates and sinks from
    /// the new config apply now (the schedule, the connection, the store
    /// and what is queued are untouched); every page and panel is shown
    /// the result. Refused as a whole if a new sink cannot be opened.
    async fn reload(
        &self,
        pipeline: &mut Pipeline,
        new: crate::check::Checked,
    ) -> Result<super::Reloaded, String> {
        let (merged, restart) = pipeline.config().reloaded(&new.config);
        // The workers first: the messages the new config makes find theirs.
        let sinks = self
            .deliverer
            .reconfigure(&merged.sinks)
            .map_err(|e| Chain(&e).to_string())?;
        if let Some(r) = self.roles {
            // Several instances: a new sink's lease is taken, a removed
            // one's let go.
            r.want_sinks(merged.sinks.iter().map(|s| s.name.as_str()));
        }
        pipeline.reconfigure(Arc::new(merged), new.templates);
        self.redraw(pipeline, (self.clock)(), "reload").await;
        Ok(super::Reloaded { restart, sinks })
    }

    /// What the clock made due: pruning, reminders, and panel pushes.
    async fn tick(&self, pipeline: &mut Pipeline, due: Due, now: DateTime<Utc>, s: &mut Intake) {
        if let Some(before) = due.prune_before {
            self.prune(pipeline, before);
        }
        if let Some((from, to)) = due.reminders {
            self.remind(pipeline, from, to, s).await;
        }
        for (sink, at) in due.digests {
            self.digest(pipeline, &sink, at, now, s).await;
        }
        let Some(push) = due.push else { return };
        let event_id = instant_id("clock", now);
        let messages = self
            .push_panels(pipeline, &push.rooms, now, &event_id, push.heartbeat)
            .await;
        tracing::debug!(
            rooms = push.rooms.len(),
            messages,
            heartbeat = push.heartbeat,
            "clock push"
        );
    }

    /// The reminders due in `(from, to]`: committed with how far they go
    /// (so a restart neither repeats nor skips one), then sent.
    async fn remind(
        &self,
        pipeline: &Pipeline,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        s: &mut Intake,
    ) {
        if s.down() {
            return;
        }
        let event_id = instant_id("reminder", to);
        let (mut messages, mut errors) = (Vec::new(), Vec::new());
        pipeline.reminders(from, to, &event_id, &mut messages, &mut errors);
        for (sink, e) in errors {
            tracing::error!(%sink, error = %e, "render failed");
            add(&self.metrics.render_errors, 1);
        }
        if !messages.is_empty() {
            tracing::info!(reminders = messages.len(), "reminders due");
        }
        let mark = (super::timers::REMINDERS.to_string(), to);
        self.commit_made(&event_id, messages, vec![mark], to, s)
            .await;
    }

    /// Messages made without an event (the clock's, with the marks of how
    /// far it has gone; snapshots made again), committed like an event's
    /// and then sent.
    async fn commit_made(
        &self,
        event_id: &str,
        messages: Vec<Message>,
        timers: Vec<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
        s: &mut Intake,
    ) {
        add(&self.metrics.messages, messages.len() as u64);
        s.waiting.push(Pending {
            ack: None,
            applied: Applied::messages(event_id.to_string(), messages),
            remember: false,
            synced: Vec::new(),
            timers,
        });
        self.advance(s, now).await;
    }

    /// A sink's daily agenda for the day of `at`: committed with the mark
    /// that it was made (once a day, restart or not), then sent.
    async fn digest(
        &self,
        pipeline: &Pipeline,
        sink: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        s: &mut Intake,
    ) {
        let Some(cfg) = pipeline.config().sink_named(sink) else {
            return;
        };
        if s.down() {
            return;
        }
        let event_id = instant_id("digest", at);
        let messages = match pipeline.digest(cfg, at, &event_id) {
            Ok(m) => vec![m],
            Err(e) => {
                tracing::error!(%sink, error = %e, "daily agenda: render failed");
                add(&self.metrics.render_errors, 1);
                Vec::new()
            }
        };
        tracing::info!(%sink, late_s = (now - at).num_seconds(), "daily agenda");
        let mark = (super::timers::digest_mark(sink), at);
        self.commit_made(&event_id, messages, vec![mark], now, s)
            .await;
    }

    fn prune(&self, pipeline: &mut Pipeline, before: DateTime<Utc>) {
        let n = pipeline.prune(before);
        tracing::debug!(bookings = n, "pruned");
        if let Some(store) = self.store {
            store.handle().prune(before);
        }
    }

    /// Queue messages on their sinks' workers.
    async fn send(&self, messages: Vec<Message>) {
        for m in messages {
            self.deliverer.send(m).await;
        }
    }
}

/// A shared store's pending rows this instance claimed for its sinks: to
/// their workers in order (each worker records its outcomes). One for a
/// sink this config no longer has stays queued, claimed, for whoever
/// holds that sink next.
pub(super) async fn send_claimed(deliverer: &Deliverer, config: &Config, rows: Vec<OutboxRow>) {
    for row in rows {
        if config.sink_named(&row.sink).is_some() {
            deliverer.send(row.message).await;
        } else {
            tracing::warn!(sink = %row.sink, id = row.id, "claimed a message for a sink no longer configured; left queued");
        }
    }
}

/// The first payload and more of what is waiting (see [`MIN_CHUNK`]).
fn take_batch(first: Inbound, rx: &mut mpsc::Receiver<Inbound>) -> Vec<Inbound> {
    let chunk = (rx.len() / 4).clamp(MIN_CHUNK, MAX_CHUNK);
    let mut batch = Vec::with_capacity(chunk);
    batch.push(first);
    while batch.len() < chunk {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
    batch
}

/// Answer a source's payload (a source that stopped listening is gone).
fn answer(ack: Option<AckTo>, a: Ack) {
    if let Some(ack) = ack {
        ack.send(a);
    }
}

/// The counter of a cap.
fn over_cap(m: &Metrics, cap: Cap) -> &std::sync::atomic::AtomicU64 {
    match cap {
        Cap::RoomsPerEvent => &m.over_rooms_per_event,
        Cap::UnknownRooms => &m.over_unknown_rooms,
    }
}

/// The reply of the oldest commit in flight (never, without one).
async fn landed(f: Option<&mut Flight>) -> Result<Committed, oneshot::error::RecvError> {
    match f {
        Some(f) => (&mut f.reply).await,
        None => std::future::pending().await,
    }
}

/// The outage's probe: sent when due, then its answer (cancel-safe: the
/// probe on its way is kept in the outage).
async fn probe(
    o: Option<&mut Outage>,
    store: Option<&Writer>,
    seen_limit: usize,
) -> Result<Loaded, StoreError> {
    let (Some(o), Some(store)) = (o, store) else {
        return std::future::pending().await;
    };
    loop {
        if let Some(rx) = o.probe.as_mut() {
            let r = rx.await.unwrap_or(Err(StoreError::WriterGone));
            o.probe = None;
            return r;
        }
        tokio::time::sleep_until(o.next).await;
        o.probe = Some(store.load(seen_limit));
    }
}

/// Sleep this long, or forever.
async fn sleep(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
