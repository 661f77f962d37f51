//! Counters: the core's ([`Metrics`]), each sink's ([`SinkStats`]) and the
//! long connection's ([`LarkStats`]); the run's [`Summary`] read from them;
//! their Prometheus text (`exposition`). Plain atomics, written where
//! things happen and read by `/metrics`, `/readyz` and the summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Counters the core keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub stale: AtomicU64,
    pub malformed: AtomicU64,
    pub rejected: AtomicU64,
    pub ignored: AtomicU64,
    /// Room changes the applied events made.
    pub changes: AtomicU64,
    /// Messages rendered for sinks (notices and snapshots).
    pub messages: AtomicU64,
    /// Renders that failed.
    pub render_errors: AtomicU64,
    /// Epoch ms of the last event applied (0: none yet).
    pub last_event_ms: AtomicI64,
    /// Webhook pushes refused (bad signature or token).
    pub webhook_unauthorized: AtomicU64,
    /// Live room pages connected now (open event streams).
    pub page_streams: AtomicU64,
    /// Events refused for naming more than `max_rooms_per_event` rooms.
    pub over_rooms_per_event: AtomicU64,
    /// Events whose new rooms outside the config went over
    /// `max_unknown_rooms` (left out, or the event refused).
    pub over_unknown_rooms: AtomicU64,
    /// Store commits of applied events, and the events they held.
    pub commits: AtomicU64,
    pub committed: AtomicU64,
}

/// Add `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Counters per sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    /// Given up: not retryable, or undelivered at shutdown.
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    /// Given up at `max_age`.
    pub dead: AtomicU64,
    /// Snapshots replaced by a newer one before they were sent.
    pub coalesced: AtomicU64,
    /// Still queued at shutdown, kept in the store: sent at the next start.
    pub kept: AtomicU64,
}

/// Every sink's counters, in config order, by name.
pub type SinksStats = Vec<(String, SinkStats)>;

/// The long connection's counters.
#[derive(Debug, Default)]
pub struct LarkStats {
    /// A connection is up now.
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub messages: AtomicU64,
    pub acks_ok: AtomicU64,
    pub acks_retry: AtomicU64,
    /// Socket writes that carried acks (a committed batch shares one).
    pub ack_writes: AtomicU64,
    pub rejected: AtomicU64,
    pub pings: AtomicU64,
}

/// The platform REST calls' counters.
#[derive(Debug, Default)]
pub struct ApiStats {
    /// Tenant tokens obtained.
    pub tokens: AtomicU64,
    /// Calls by API (every attempt).
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Failed attempts by API and code.
    failures: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl ApiStats {
    pub(crate) fn called(&self, api: &'static str) {
        *lock(&self.calls).entry(api).or_default() += 1;
    }

    pub(crate) fn failed(&self, api: &'static str, code: &str) {
        *lock(&self.failures)
            .entry((api, code.to_string()))
            .or_default() += 1;
    }

    /// Calls made to one API so far.
    pub fn calls(&self, api: &str) -> u64 {
        lock(&self.calls).get(api).copied().unwrap_or(0)
    }
}

/// The reconciliation's counters: fetches, and when each room's schedule
/// was last fetched successfully.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Completed freebusy fetches (one a batch of rooms).
    pub fetches: AtomicU64,
    /// Bookings the fetches added to a room, or removed from one.
    pub added: AtomicU64,
    pub removed: AtomicU64,
    /// Room → epoch ms of its last successful fetch.
    synced: Mutex<BTreeMap<String, i64>>,
}

impl SyncStats {
    pub(crate) fn synced(&self, room: &str, at_ms: i64) {
        let mut m = lock(&self.synced);
        let e = m.entry(room.to_string()).or_default();
        *e = (*e).max(at_ms);
    }

    /// Rooms whose last successful fetch is older than `before_ms` (or that
    /// were never fetched, among `rooms`).
    pub fn stale(&self, rooms: &[String], before_ms: i64) -> Vec<String> {
        let m = lock(&self.synced);
        rooms
            .iter()
            .filter(|r| m.get(*r).is_none_or(|t| *t < before_ms))
            .cloned()
            .collect()
    }

    /// The oldest last-successful-fetch among the rooms fetched so far.
    fn oldest_ms(&self) -> Option<i64> {
        lock(&self.synced).values().min().copied()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    /// Per sink, in the same order: left queued at shutdown and kept in the
    /// store for the next start (not failed).
    pub kept: Vec<u64>,
}

impl Summary {
    /// The run's counters as `/metrics` has them.
    pub fn of(m: &Metrics, sinks: &SinksStats) -> Summary {
        Summary {
            received: get(&m.received),
            applied: get(&m.applied),
            changes: get(&m.changes),
            duplicates: get(&m.duplicates),
            stale: get(&m.stale),
            ignored: get(&m.ignored),
            rejected: get(&m.rejected),
            malformed: get(&m.malformed),
            render_errors: get(&m.render_errors),
            messages: get(&m.messages),
            sinks: sinks
                .iter()
                .map(|(n, s)| (n.clone(), get(&s.delivered), get(&s.failed) + get(&s.dead)))
                .collect(),
            kept: sinks.iter().map(|(_, s)| get(&s.kept)).collect(),
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
        for (i, (name, ok, failed)) in self.sinks.iter().enumerate() {
            write!(f, "\n  sink {name}: {ok} delivered, {failed} failed")?;
            if let Some(kept) = self.kept.get(i).filter(|k| **k > 0) {
                write!(f, ", {kept} kept for the next start")?;
            }
        }
        Ok(())
    }
}

/// The platform side's counters, when the room APIs are in use.
pub(crate) struct Platform<'a> {
    pub(crate) api: &'a ApiStats,
    pub(crate) sync: &'a SyncStats,
    pub(crate) now_ms: i64,
}

/// Every counter in Prometheus' text format.
pub(crate) fn exposition(
    m: &Metrics,
    sinks: &SinksStats,
    lark: Option<&LarkStats>,
    platform: Option<Platform<'_>>,
) -> String {
    let mut out = String::new();
    let mut counters: Vec<(&str, &str, u64)> = vec![
        (
            "roomcast_events_received_total",
            "Event payloads received from any source.",
            get(&m.received),
        ),
        (
            "roomcast_events_applied_total",
            "Events applied to the schedule.",
            get(&m.applied),
        ),
        (
            "roomcast_store_commits_total",
            "Store commits of applied events and fetches (each holds what was applied while the previous one was on its way to the disk).",
            get(&m.commits),
        ),
        (
            "roomcast_store_committed_total",
            "Applied events and fetches those commits held (divided by the commits: the mean group size).",
            get(&m.committed),
        ),
        (
            "roomcast_events_duplicate_total",
            "Events dropped as duplicates.",
            get(&m.duplicates),
        ),
        (
            "roomcast_events_stale_total",
            "Events dropped as stale.",
            get(&m.stale),
        ),
        (
            "roomcast_events_malformed_total",
            "Payloads that could not be decoded.",
            get(&m.malformed),
        ),
        (
            "roomcast_events_rejected_total",
            "Events with a wrong verification token.",
            get(&m.rejected),
        ),
        (
            "roomcast_events_ignored_total",
            "Payloads of other event types (or challenges outside webhook mode).",
            get(&m.ignored),
        ),
        (
            "roomcast_room_changes_total",
            "Room schedule changes the applied events made.",
            get(&m.changes),
        ),
        (
            "roomcast_messages_total",
            "Messages rendered for sinks (notices and snapshots).",
            get(&m.messages),
        ),
        (
            "roomcast_render_errors_total",
            "Template renders that failed.",
            get(&m.render_errors),
        ),
        (
            "roomcast_webhook_unauthorized_total",
            "Webhook pushes refused with 401.",
            get(&m.webhook_unauthorized),
        ),
    ];
    if let Some(l) = lark {
        counters.push((
            "roomcast_lark_connects_total",
            "Long connections established (reconnects included).",
            get(&l.connects),
        ));
        counters.push((
            "roomcast_lark_ack_writes_total",
            "Socket writes carrying acknowledgements (the acks of a committed batch share one).",
            get(&l.ack_writes),
        ));
    }
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_events_over_cap_total Events over a [schedule] cap (acknowledged; not applied, or applied without the rooms over it).\n# TYPE roomcast_events_over_cap_total counter\nroomcast_events_over_cap_total{{cap=\"rooms_per_event\"}} {}\nroomcast_events_over_cap_total{{cap=\"unknown_rooms\"}} {}",
        get(&m.over_rooms_per_event),
        get(&m.over_unknown_rooms)
    );
    if let Some(l) = lark {
        let _ = writeln!(
            out,
            "# HELP roomcast_lark_acks_total Acknowledgements sent, by code.\n# TYPE roomcast_lark_acks_total counter\nroomcast_lark_acks_total{{code=\"200\"}} {}\nroomcast_lark_acks_total{{code=\"500\"}} {}",
            get(&l.acks_ok),
            get(&l.acks_retry)
        );
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_deliveries_total Messages by sink and outcome.\n# TYPE roomcast_deliveries_total counter"
    );
    for (name, st) in sinks {
        for (result, v) in [
            ("delivered", &st.delivered),
            ("failed", &st.failed),
            ("dead", &st.dead),
            ("retried", &st.retried),
            ("coalesced", &st.coalesced),
            ("kept", &st.kept),
        ] {
            let _ = writeln!(
                out,
                "roomcast_deliveries_total{{sink=\"{name}\",result=\"{result}\"}} {}",
                get(v)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_queue_depth Messages queued per sink.\n# TYPE roomcast_queue_depth gauge"
    );
    for (name, st) in sinks {
        let done = get(&st.delivered) + get(&st.failed) + get(&st.dead) + get(&st.coalesced);
        let _ = writeln!(
            out,
            "roomcast_queue_depth{{sink=\"{name}\"}} {}",
            get(&st.queued).saturating_sub(done)
        );
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_page_streams Live room pages connected now.\n# TYPE roomcast_page_streams gauge\nroomcast_page_streams {}",
        get(&m.page_streams)
    );
    if let Some(p) = platform {
        platform_exposition(&mut out, &p);
    }
    let last = m.last_event_ms.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP roomcast_last_event_timestamp_seconds When the last event was applied.\n# TYPE roomcast_last_event_timestamp_seconds gauge\nroomcast_last_event_timestamp_seconds {}",
        last as f64 / 1000.0
    );
    out
}

fn platform_exposition(out: &mut String, p: &Platform<'_>) {
    let s = p.sync;
    let _ = writeln!(
        out,
        "# HELP roomcast_sync_fetches_total Completed schedule fetches from the room APIs (a batch of rooms each).\n# TYPE roomcast_sync_fetches_total counter\nroomcast_sync_fetches_total {}",
        get(&s.fetches)
    );
    let _ = writeln!(
        out,
        "# HELP roomcast_sync_bookings_total Room bookings the fetches added or removed (the event stream had not).\n# TYPE roomcast_sync_bookings_total counter\nroomcast_sync_bookings_total{{change=\"added\"}} {}\nroomcast_sync_bookings_total{{change=\"removed\"}} {}",
        get(&s.added),
        get(&s.removed)
    );
    if let Some(oldest) = s.oldest_ms() {
        let _ = writeln!(
            out,
            "# HELP roomcast_sync_oldest_age_seconds Age of the oldest room's schedule (since its last successful fetch).\n# TYPE roomcast_sync_oldest_age_seconds gauge\nroomcast_sync_oldest_age_seconds {}",
            (p.now_ms - oldest).max(0) as f64 / 1000.0
        );
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_api_calls_total Calls to the platform's REST APIs (each attempt).\n# TYPE roomcast_api_calls_total counter"
    );
    for (api, n) in lock(&p.api.calls).iter() {
        let _ = writeln!(out, "roomcast_api_calls_total{{api=\"{api}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP roomcast_api_failures_total Failed calls to the platform's REST APIs, by code.\n# TYPE roomcast_api_failures_total counter"
    );
    for ((api, code), n) in lock(&p.api.failures).iter() {
        let _ = writeln!(
            out,
            "roomcast_api_failures_total{{api=\"{api}\",code=\"{code}\"}} {n}"
        );
    }
}
