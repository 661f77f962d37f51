//! The live pages' event streams: `GET /rooms/{id}/events` and `GET
//! /boards/{name}/events`, the change signals the core raises (per room;
//! a board's when one of its rooms changes), and the pacing (a rendering
//! at once, then at most one per [`GAP`] — [`BOARD_GAP`] for a board —
//! for changes, one per minute, a ping every [`PING`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    Failure, Server, TokenParam, View, authorized, board_authorized, board_view, unauthorized, view,
};
use crate::clock::TimeSource;
use crate::metrics::Metrics;
use crate::model::RoomId;

/// What a live stream shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feed {
    Room(RoomId),
    Board(String),
}

impl Feed {
    /// The event name its renderings go under (and the element the page
    /// replaces).
    fn event(&self) -> &'static str {
        match self {
            Feed::Room(_) => "room",
            Feed::Board(_) => "board",
        }
    }

    fn gap(&self) -> Duration {
        match self {
            Feed::Room(_) => GAP,
            Feed::Board(_) => BOARD_GAP,
        }
    }
}

/// A change counter per room, and per board, that some live page is
/// watching. The core bumps the rooms a batch changed (and so the boards
/// showing one of them); each page waits on its own feed only, and a burst
/// of changes wakes it once (a `watch` keeps only the latest).
#[derive(Debug, Default)]
pub(crate) struct RoomSignals {
    inner: std::sync::Mutex<Signals>,
}

#[derive(Debug, Default)]
struct Signals {
    rooms: HashMap<RoomId, watch::Sender<u64>>,
    /// A board's rooms (as last rendered) and its counter.
    boards: HashMap<String, (HashSet<RoomId>, watch::Sender<u64>)>,
}

impl RoomSignals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Signals> {
        // The maps stay consistent whatever panicked while holding them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait on `room`'s changes from now on.
    pub(crate) fn subscribe(&self, room: &RoomId) -> watch::Receiver<u64> {
        self.lock()
            .rooms
            .entry(room.clone())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Wait on board `name`'s changes from now on.
    pub(crate) fn subscribe_board(&self, name: &str) -> watch::Receiver<u64> {
        self.lock()
            .boards
            .entry(name.to_string())
            .or_insert_with(|| (HashSet::new(), watch::Sender::new(0)))
            .1
            .subscribe()
    }

    /// The rooms board `name` shows (a board by levels follows the room
    /// directory: each rendering says).
    pub(crate) fn board_rooms(&self, name: &str, rooms: &[RoomId]) {
        if let Some((set, _)) = self.lock().boards.get_mut(name)
            && (set.len() != rooms.len() || rooms.iter().any(|r| !set.contains(r)))
        {
            *set = rooms.iter().cloned().collect();
        }
    }

    /// These rooms changed: wake whoever watches them, or a board showing
    /// one of them.
    pub(crate) fn raise<'a>(&self, rooms: impl IntoIterator<Item = &'a RoomId>) {
        let s = self.lock();
        if s.rooms.is_empty() && s.boards.is_empty() {
            return;
        }
        let mut woken: HashSet<&str> = HashSet::new();
        for r in rooms {
            if let Some(tx) = s.rooms.get(r) {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
            for (name, (set, tx)) in &s.boards {
                if set.contains(r) && woken.insert(name.as_str()) {
                    tx.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
        }
    }

    /// Forget a feed once nobody watches it.
    fn release(&self, feed: &Feed) {
        let mut s = self.lock();
        match feed {
            Feed::Room(room) => {
                if s.rooms.get(room).is_some_and(|tx| tx.receiver_count() == 0) {
                    s.rooms.remove(room);
                }
            }
            Feed::Board(name) => {
                if s.boards
                    .get(name)
                    .is_some_and(|(_, tx)| tx.receiver_count() == 0)
                {
                    s.boards.remove(name);
                }
            }
        }
    }

    /// Rooms and boards watched now.
    #[cfg(test)]
    pub(crate) fn watched(&self) -> usize {
        let s = self.lock();
        s.rooms.len() + s.boards.len()
    }
}

/// What the live page's event streams need besides queries.
#[derive(Clone)]
pub(crate) struct Live {
    /// Per-room change signals, raised as the core commits events.
    pub signals: Arc<RoomSignals>,
    /// The app's clock: views are re-rendered at each minute of it.
    pub clock: TimeSource,
    /// Fires when the server stops: open event streams end with it, so a
    /// graceful shutdown is not held up by pages that never hang up.
    pub stop: CancellationToken,
}

/// The least time between two renderings a page is sent for changes: an
/// isolated change goes out at once, a burst (a backlog redelivered after
/// an outage) becomes at most 5 renderings a second per page, which no
/// one reading a door display can tell apart, and which keeps 1,000 open
/// pages from taxing the core (BENCHMARKS.md).
pub(crate) const GAP: Duration = Duration::from_millis(200);

/// The same for a board: it redraws up to hundreds of tiles, and a lobby
/// screen read from across the hall needs no more than one a second.
pub(crate) const BOARD_GAP: Duration = Duration::from_secs(1);

/// How often an open event stream says it is alive when nothing changed.
/// The page marks itself stale after three of these go missing.
pub(crate) const PING: Duration = Duration::from_secs(15);

/// `GET /rooms/{id}/events`: server-sent events for the live page. `room`
/// carries the `room_panel` rendering, first at once and then whenever it
/// changes (an event for the room, or the minute turning); `ping` carries
/// the server's time (epoch ms), right after the first `room` and every
/// [`PING`] when nothing else was sent. Ends when the server stops.
pub(super) async fn room_events(
    State(s): State<Server>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &id, &headers, q.token.as_deref()) {
        return unauthorized();
    }
    stream(s, Feed::Room(RoomId::new(&id))).await
}

/// `GET /boards/{name}/events`: the same for a board (`board` events
/// carrying `board_panel`, at most one per [`BOARD_GAP`] for changes).
pub(super) async fn board_events(
    State(s): State<Server>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
    headers: HeaderMap,
) -> Response {
    if !board_authorized(&s, &name, &headers, q.token.as_deref()) {
        return unauthorized();
    }
    stream(s, Feed::Board(name)).await
}

/// Open a feed's stream: subscribed before the first render, so no change
/// falls between them; the guard unsubscribes however it ends.
async fn stream(s: Server, feed: Feed) -> Response {
    s.health
        .metrics
        .page_streams
        .fetch_add(1, Ordering::Relaxed);
    let changes = match &feed {
        Feed::Room(room) => s.live.signals.subscribe(room),
        Feed::Board(name) => s.live.signals.subscribe_board(name),
    };
    let open = OpenStream {
        metrics: s.health.metrics.clone(),
        signals: s.live.signals.clone(),
        feed,
    };
    let first = match render_feed(&s, &open.feed).await {
        Err(f) => return f.response(View::Panel),
        Ok(b) => b,
    };
    let watch = Watch {
        last: digest(&first),
        first: Some(first),
        hello: true,
        changes,
        ping_at: tokio::time::Instant::now() + PING,
        quiet_until: tokio::time::Instant::now() + open.feed.gap(),
        open,
        s,
    };
    let stream = futures_util::stream::unfold(watch, |w| w.next());
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Proxies that buffer responses (nginx) would hold events back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        axum::response::sse::Sse::new(stream),
    )
        .into_response()
}

/// The changing part of a feed's page.
async fn render_feed(s: &Server, feed: &Feed) -> Result<String, Failure> {
    match feed {
        Feed::Room(room) => view(s, room.as_str(), View::Panel).await,
        Feed::Board(name) => {
            let (body, rooms) = board_view(s, name, false).await?;
            s.live.signals.board_rooms(name, &rooms);
            Ok(body)
        }
    }
}

/// An open event stream: counted for `/metrics`, and its room released
/// from [`RoomSignals`] when the last watcher goes. Declared after the
/// receiver in [`Watch`], so that is dropped first.
struct OpenStream {
    metrics: Arc<Metrics>,
    signals: Arc<RoomSignals>,
    feed: Feed,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.metrics.page_streams.fetch_sub(1, Ordering::Relaxed);
        self.signals.release(&self.feed);
    }
}

fn digest(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// One page's event stream.
struct Watch {
    s: Server,
    /// This room's change signal (dropped before `open`).
    changes: watch::Receiver<u64>,
    /// The first rendering, not yet sent.
    first: Option<String>,
    /// The server's time is still to be sent (right after `first`).
    hello: bool,
    /// Digest of the last rendering sent.
    last: u64,
    ping_at: tokio::time::Instant,
    /// No rendering for a change before this (see [`GAP`]).
    quiet_until: tokio::time::Instant,
    /// The stream's room, and its count and release when dropped.
    open: OpenStream,
}

type SseEvent = Result<axum::response::sse::Event, std::convert::Infallible>;

impl Watch {
    /// `ping`, carrying the server's time (epoch ms).
    fn ping(&mut self) -> axum::response::sse::Event {
        self.ping_at = tokio::time::Instant::now() + PING;
        let now = (self.s.live.clock)();
        axum::response::sse::Event::default()
            .event("ping")
            .data(now.timestamp_millis().to_string())
    }

    async fn next(mut self) -> Option<(SseEvent, Self)> {
        use axum::response::sse::Event;
        if let Some(body) = self.first.take() {
            // `retry`: how soon the browser reconnects after losing us.
            let ev = Event::default()
                .event(self.open.feed.event())
                .retry(Duration::from_secs(3))
                .data(body);
            return Some((Ok(ev), self));
        }
        if std::mem::take(&mut self.hello) {
            // The server's time at once: the page runs its clock from it,
            // not from the tablet's own (often wrong) clock.
            return Some((Ok(self.ping()), self));
        }
        loop {
            let to_minute = crate::clock::until_next_minute((self.s.live.clock)());
            let mut for_change = false;
            let render = tokio::select! {
                biased;
                () = self.s.live.stop.cancelled() => return None,
                r = self.changes.changed() => match r {
                    Ok(()) => {
                        // At most one rendering per GAP: whatever else
                        // changes meanwhile goes into that one.
                        tokio::select! {
                            biased;
                            () = self.s.live.stop.cancelled() => return None,
                            () = tokio::time::sleep_until(self.quiet_until) => {}
                        }
                        for_change = true;
                        true
                    }
                    // Cannot happen while `open` holds the sender's map;
                    // end rather than spin.
                    Err(_) => return None,
                },
                () = tokio::time::sleep(to_minute) => true,
                () = tokio::time::sleep_until(self.ping_at) => false,
            };
            if !render {
                return Some((Ok(self.ping()), self));
            }
            // What this rendering will include counts as seen.
            self.changes.borrow_and_update();
            match render_feed(&self.s, &self.open.feed).await {
                Ok(body) => {
                    let d = digest(&body);
                    if d == self.last {
                        continue;
                    }
                    self.last = d;
                    let sent = tokio::time::Instant::now();
                    self.ping_at = sent + PING;
                    if for_change {
                        // (The minute's rendering does not hold back the
                        // next change.)
                        self.quiet_until = sent + self.open.feed.gap();
                    }
                    let ev = Event::default().event(self.open.feed.event()).data(body);
                    return Some((Ok(ev), self));
                }
                // Gone from the config or the schedule, or shutting down:
                // end the stream; the page keeps what it shows, marked stale.
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_signals_wake_only_their_room_coalesce_and_are_released() {
        let signals = Arc::new(RoomSignals::default());
        let (a, b) = (RoomId::new("omm_a"), RoomId::new("omm_b"));
        signals.raise([&a]); // nobody watching: nothing kept
        assert_eq!(signals.watched(), 0);

        let mut rx = signals.subscribe(&a);
        assert!(!rx.has_changed().unwrap_or(true));
        signals.raise([&b]);
        assert!(!rx.has_changed().unwrap_or(true), "another room's change");
        signals.raise([&a, &a, &b]);
        signals.raise([&a]);
        rx.changed().await.expect("woken");
        assert!(!rx.has_changed().unwrap_or(true), "a burst wakes once");

        let open = OpenStream {
            metrics: Arc::default(),
            signals: signals.clone(),
            feed: Feed::Room(a.clone()),
        };
        let rx2 = signals.subscribe(&a);
        assert_eq!(signals.watched(), 1);
        drop(rx);
        drop(open); // rx2 still watches: kept
        assert_eq!(signals.watched(), 1);
        drop(rx2);
        signals.release(&Feed::Room(a.clone()));
        assert_eq!(signals.watched(), 0, "released with the last watcher");
    }
}
