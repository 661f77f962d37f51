//! Counters: the core's ([`Metrics`]), each sink's ([`SinkStats`]) and the
//! long connection's ([`LarkStats`]); the run's [`Summary`] read from them;
//! their Prometheus text (`exposition`). Plain atomics, written where
//! things happen and read by `/metrics`, `/readyz` and the summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Applied events a shared store (PostgreSQL) refused: already applied
    /// by another instance, or older than a change it had.
    pub refused_duplicates: AtomicU64,
    pub refused_stale: AtomicU64,
    /// Times the shared store became unreachable (intake answered "retry"
    /// until it was back), and whether it is now.
    pub store_outages: AtomicU64,
    pub store_offline: AtomicBool,
    /// A shared store's change feed.
    pub feed: Arc<crate::store::feed::FeedStats>,
    /// Several instances on one store: this one's roles.
    pub roles: std::sync::OnceLock<Arc<crate::store::shared::Roles>>,
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

/// Every sink's counters by name: those configured now, in config order
/// (what `/metrics` shows), then those a reload removed (kept for the
/// run's summary). A sink a reload changes keeps its counters.
#[derive(Debug, Default)]
pub struct SinksStats {
    entries: Mutex<Vec<SinkEntry>>,
}

#[derive(Debug)]
struct SinkEntry {
    name: String,
    stats: Arc<SinkStats>,
    live: bool,
}

impl SinksStats {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<SinkEntry>> {
        // A panic elsewhere cannot leave counters half-updated.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sinks configured from now on, in order: each one's counters
    /// (a name seen before keeps its own); the others are retired.
    pub(crate) fn configure<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Arc<SinkStats>> {
        let mut entries = self.entries();
        let mut next = Vec::with_capacity(entries.len());
        let mut out = Vec::new();
        for name in names {
            let stats = match entries.iter().position(|e| e.name == name) {
                Some(i) => entries.remove(i).stats,
                None => Arc::default(),
            };
            out.push(stats.clone());
            next.push(SinkEntry {
                name: name.to_string(),
                stats,
                live: true,
            });
        }
        next.extend(entries.drain(..).map(|e| SinkEntry { live: false, ..e }));
        *entries = next;
        out
    }

    /// The sinks configured now.
    pub fn live(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.entries()
            .iter()
            .filter(|e| e.live)
            .map(|e| (e.name.clone(), e.stats.clone()))
            .collect()
    }

    /// Every sink of the run, the retired ones last.
    pub fn all(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.entries()
            .iter()
            .map(|e| (e.name.clone(), e.stats.clone()))
            .collect()
    }
}

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
        let all = sinks.all();
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
            sinks: all
                .iter()
                .map(|(n, s)| (n.clone(), get(&s.delivered), get(&s.failed) + get(&s.dead)))
                .collect(),
            kept: all.iter().map(|(_, s)| get(&s.kept)).collect(),
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

/// What one scrape shows: every family with its samples, copied from the
/// counters at that instant and encoded by `prometheus-client` (OpenMetrics
/// text; label values escaped).
#[derive(Debug, Default)]
struct Scrape {
    families: Vec<Family>,
    histograms: Vec<(
        &'static str,
        &'static str,
        prometheus_client::metrics::histogram::Histogram,
    )>,
}

#[derive(Debug)]
struct Family {
    /// The family's name (a counter's samples add `_total`).
    name: &'static str,
    help: &'static str,
    counter: bool,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Scrape {
    fn counter(&mut self, name: &'static str, help: &'static str, v: u64) {
        self.family(name, help, true, vec![(Vec::new(), v as f64)]);
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, v: f64) {
        self.family(name, help, false, vec![(Vec::new(), v)]);
    }

    fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        h: prometheus_client::metrics::histogram::Histogram,
    ) {
        self.histograms.push((name, help, h));
    }

    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        counter: bool,
        samples: Vec<(Vec<(&'static str, String)>, f64)>,
    ) {
        self.families.push(Family {
            name,
            help,
            counter,
            samples,
        });
    }
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::{MetricType, TypedMetric};
        for f in &self.families {
            let kind = if f.counter {
                <ConstCounter<u64> as TypedMetric>::TYPE
            } else {
                MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for (labels, v) in &f.samples {
                let metric = family.encode_family(labels)?;
                match (f.counter, v.fract() == 0.0 && *v >= 0.0) {
                    // Whole counts print as integers ("5", not "5.0").
                    (true, true) => ConstCounter::new(*v as u64).encode(metric)?,
                    (true, false) => ConstCounter::new(*v).encode(metric)?,
                    (false, true) if *v <= i64::MAX as f64 => {
                        ConstGauge::new(*v as i64).encode(metric)?
                    }
                    (false, _) => ConstGauge::new(*v).encode(metric)?,
                }
            }
        }
        for (name, help, h) in &self.histograms {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            h.encode(metric)?;
        }
        Ok(())
    }
}

/// Every metric in the OpenMetrics text format (what Prometheus scrapes):
/// roomcast's counters, the process's (resident memory, CPU, open files,
/// start time) and `roomcast_build_info`.
pub(crate) fn exposition(
    m: &Metrics,
    sinks: &SinksStats,
    lark: Option<&LarkStats>,
    platform: Option<Platform<'_>>,
) -> String {
    let mut s = Scrape::default();
    for (name, help, v) in [
        (
            "roomcast_events_received",
            "Event payloads received from any source.",
            &m.received,
        ),
        (
            "roomcast_events_applied",
            "Events applied to the schedule.",
            &m.applied,
        ),
        (
            "roomcast_store_commits",
            "Store commits of applied events and fetches (each holds what was applied while the previous one was on its way to the disk).",
            &m.commits,
        ),
        (
            "roomcast_store_committed",
            "Applied events and fetches those commits held (divided by the commits: the mean group size).",
            &m.committed,
        ),
        (
            "roomcast_feed_rows",
            "Booking rows a shared store's change feed read (other instances' commits, and this one's own).",
            &m.feed.rows,
        ),
        (
            "roomcast_store_refused_duplicate",
            "Applied events the shared store refused: another instance had applied them (nothing of them was sent).",
            &m.refused_duplicates,
        ),
        (
            "roomcast_store_refused_stale",
            "Applied events the shared store refused: it had a newer change of their booking (nothing of them was sent).",
            &m.refused_stale,
        ),
        (
            "roomcast_store_outages",
            "Times the shared store became unreachable: events were answered \"retry\" until it answered again.",
            &m.store_outages,
        ),
        (
            "roomcast_events_duplicate",
            "Events dropped as duplicates.",
            &m.duplicates,
        ),
        (
            "roomcast_events_stale",
            "Events dropped as stale.",
            &m.stale,
        ),
        (
            "roomcast_events_malformed",
            "Payloads that could not be decoded.",
            &m.malformed,
        ),
        (
            "roomcast_events_rejected",
            "Events with a wrong verification token.",
            &m.rejected,
        ),
        (
            "roomcast_events_ignored",
            "Payloads of other event types (or challenges outside webhook mode).",
            &m.ignored,
        ),
        (
            "roomcast_room_changes",
            "Room schedule changes the applied events made.",
            &m.changes,
        ),
        (
            "roomcast_messages",
            "Messages rendered for sinks (notices and snapshots).",
            &m.messages,
        ),
        (
            "roomcast_render_errors",
            "Template renders that failed.",
            &m.render_errors,
        ),
        (
            "roomcast_webhook_unauthorized",
            "Webhook pushes refused with 401.",
            &m.webhook_unauthorized,
        ),
    ] {
        s.counter(name, help, get(v));
    }
    if let Some(l) = lark {
        s.counter(
            "roomcast_lark_connects",
            "Long connections established (reconnects included).",
            get(&l.connects),
        );
        s.counter(
            "roomcast_lark_ack_writes",
            "Socket writes carrying acknowledgements (the acks of a committed batch share one).",
            get(&l.ack_writes),
        );
    }
    let label = |k: &'static str, v: &str| vec![(k, v.to_string())];
    s.family(
        "roomcast_events_over_cap",
        "Events over a [schedule] cap (acknowledged; not applied, or applied without the rooms over it).",
        true,
        vec![
            (
                label("cap", "rooms_per_event"),
                get(&m.over_rooms_per_event) as f64,
            ),
            (
                label("cap", "unknown_rooms"),
                get(&m.over_unknown_rooms) as f64,
            ),
        ],
    );
    if let Some(l) = lark {
        s.family(
            "roomcast_lark_acks",
            "Acknowledgements sent, by code.",
            true,
            vec![
                (label("code", "200"), get(&l.acks_ok) as f64),
                (label("code", "500"), get(&l.acks_retry) as f64),
            ],
        );
    }
    let mut deliveries = Vec::new();
    let mut depth = Vec::new();
    for (name, st) in sinks.live() {
        for (result, v) in [
            ("delivered", &st.delivered),
            ("failed", &st.failed),
            ("dead", &st.dead),
            ("retried", &st.retried),
            ("coalesced", &st.coalesced),
            ("kept", &st.kept),
        ] {
            deliveries.push((
                vec![("sink", name.clone()), ("result", result.to_string())],
                get(v) as f64,
            ));
        }
        let done = get(&st.delivered) + get(&st.failed) + get(&st.dead) + get(&st.coalesced);
        depth.push((
            label("sink", &name),
            get(&st.queued).saturating_sub(done) as f64,
        ));
    }
    s.family(
        "roomcast_deliveries",
        "Messages by sink and outcome.",
        true,
        deliveries,
    );
    s.family(
        "roomcast_queue_depth",
        "Messages queued per sink.",
        false,
        depth,
    );
    s.gauge(
        "roomcast_page_streams",
        "Live room pages connected now.",
        get(&m.page_streams) as f64,
    );
    if let Some(p) = platform {
        platform_families(&mut s, &p);
    }
    if let Some(r) = m.roles.get() {
        s.gauge(
            "roomcast_store_offline",
            "The shared store is unreachable now (1): events are answered \"retry\", views are marked stale.",
            f64::from(u8::from(m.store_offline.load(Ordering::Relaxed))),
        );
        s.gauge(
            "roomcast_leader",
            "This instance holds the leader's lease (1): it does the clock's work.",
            f64::from(u8::from(r.leader())),
        );
        s.gauge(
            "roomcast_lease_age_seconds",
            "Since this instance last renewed its leases.",
            r.lease_age().map_or(f64::NAN, |a| a.as_secs_f64()),
        );
        s.gauge(
            "roomcast_sinks_owned",
            "Sinks whose messages this instance sends (holds the lease of).",
            r.sinks().len() as f64,
        );
        s.gauge(
            "roomcast_outbox_claimed",
            "Outbox rows this instance has claimed to send (first claims and takeovers).",
            r.claimed.load(Ordering::Relaxed) as f64,
        );
    }
    if m.feed.on.load(Ordering::Relaxed) {
        let f = &m.feed;
        s.gauge(
            "roomcast_feed_connected",
            "The shared store's change feed is connected (1) or reconnecting (0).",
            f64::from(u8::from(f.connected.load(Ordering::Relaxed))),
        );
        s.gauge(
            "roomcast_feed_lag_seconds",
            "How long before the feed's last read its oldest row was committed (the database's clock).",
            get(&f.lag_ms) as f64 / 1000.0,
        );
        s.histogram(
            "roomcast_feed_delay_seconds",
            "How long after its writer's transaction each booking row reached this instance (the database's clock).",
            f.delays.clone(),
        );
    }
    s.gauge(
        "roomcast_last_event_timestamp_seconds",
        "When the last event was applied.",
        m.last_event_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    );
    s.family(
        "roomcast_build_info",
        "The running build (always 1).",
        false,
        vec![(label("version", env!("CARGO_PKG_VERSION")), 1.0)],
    );
    process::families(&mut s);
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(s));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// The content type of [`exposition`].
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn platform_families(s: &mut Scrape, p: &Platform<'_>) {
    let sync = p.sync;
    s.counter(
        "roomcast_sync_fetches",
        "Completed schedule fetches from the room APIs (a batch of rooms each).",
        get(&sync.fetches),
    );
    s.family(
        "roomcast_sync_bookings",
        "Room bookings the fetches added or removed (the event stream had not).",
        true,
        vec![
            (
                vec![("change", "added".to_string())],
                get(&sync.added) as f64,
            ),
            (
                vec![("change", "removed".to_string())],
                get(&sync.removed) as f64,
            ),
        ],
    );
    if let Some(oldest) = sync.oldest_ms() {
        s.gauge(
            "roomcast_sync_oldest_age_seconds",
            "Age of the oldest room's schedule (since its last successful fetch).",
            (p.now_ms - oldest).max(0) as f64 / 1000.0,
        );
    }
    let calls = lock(&p.api.calls)
        .iter()
        .map(|(api, n)| (vec![("api", api.to_string())], *n as f64))
        .collect();
    s.family(
        "roomcast_api_calls",
        "Calls to the platform's REST APIs (each attempt).",
        true,
        calls,
    );
    let failures = lock(&p.api.failures)
        .iter()
        .map(|((api, code), n)| {
            (
                vec![("api", api.to_string()), ("code", code.to_string())],
                *n as f64,
            )
        })
        .collect();
    s.family(
        "roomcast_api_failures",
        "Failed calls to the platform's REST APIs, by code.",
        true,
        failures,
    );
}

/// The process's own metrics, read from `/proc` (Linux; elsewhere none),
/// named as Prometheus' client libraries name them.
mod process {
    use super::Scrape;

    /// Clock ticks a second in `/proc/*/stat` (`USER_HZ`, fixed by the ABI).
    const TICKS: f64 = 100.0;

    pub(super) fn families(s: &mut Scrape) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let Some(rss) = kib("VmRSS:") {
            s.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss * 1024.0,
            );
        }
        if let Some(vm) = kib("VmSize:") {
            s.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                vm * 1024.0,
            );
        }
        // Fields after the command name (which may hold spaces): state is
        // field 3, utime 14, stime 15, starttime 22.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(k)) = (field(14), field(15)) {
            s.family(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                true,
                vec![(Vec::new(), (u + k) / TICKS)],
            );
        }
        let boot = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if let (Some(boot), Some(start)) = (boot, field(22)) {
            s.gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                boot + start / TICKS,
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            s.gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count() as f64,
            );
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(max) = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok())
        {
            s.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }
}
