//! Start-up from the store, and the schedule for `roomcast rooms`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::StartError;
use super::timers::instant_id;
use crate::clock::TimeSource;
use crate::config::{Config, SourceKind};
use crate::deliver::Deliverer;
use crate::pipeline::Pipeline;
use crate::render::Templates;
use crate::source::replay::{self, ReplayError};
use crate::store::Loaded;

/// Start-up with a store: the schedule and seen ids back in memory,
/// pending messages re-queued in order, every panel pushed its current
/// view.
pub(super) async fn restore(
    p: &mut Pipeline,
    mut loaded: Loaded,
    deliverer: &Deliverer,
    now: DateTime<Utc>,
    shared: bool,
) {
    let (bookings, pending) = (loaded.entries.len(), loaded.pending.len());
    let mut rows = std::mem::take(&mut loaded.pending);
    p.restore(loaded);
    if shared {
        // Several instances: each sink's owner claims its pending rows.
        rows.clear();
    }
    // In order to their sinks' workers; one for a sink no longer
    // configured is marked failed there (`Deliverer::send`).
    for row in rows {
        deliverer.send(row.message).await;
    }
    let event_id = instant_id("startup", now);
    let (mut messages, mut errors) = (Vec::new(), Vec::new());
    let rooms = p.panel_rooms();
    p.clock_snapshots(&rooms, now, &event_id, true, &mut messages, &mut errors);
    for (sink, e) in errors {
        tracing::error!(%sink, error = %e, "render failed");
    }
    let panels = messages.len();
    for m in messages {
        deliverer.send(m).await;
    }
    tracing::info!(bookings, pending, panels, "state restored from the store");
}

/// The schedule for `roomcast rooms`, without delivering anything: from the
/// store when there is one; otherwise a replay source is read through (as
/// of `clock`), and other sources start empty.
pub async fn load_schedule(
    config: &Arc<Config>,
    templates: &Arc<Templates>,
    clock: &TimeSource,
) -> Result<Pipeline, StartError> {
    let mut p = Pipeline::new(config.clone(), templates.clone());
    if let Some(sc) = &config.store {
        // The store is the truth; read it without taking the run lock.
        let loaded = crate::store::read(sc, |s| s.load(0)).await?;
        p.restore(loaded);
        return Ok(p);
    }
    if config.source.kind == SourceKind::Replay {
        let path = config.source.replay_file.clone().unwrap_or_default();
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| ReplayError { path, source })?;
        let now = clock();
        for line in text.lines().filter_map(replay::event_body) {
            let _ = p.handle(line.as_bytes(), now);
        }
    }
    Ok(p)
}
