//! Several instances on one PostgreSQL store (issue 16): how soon each
//! instance's schedule has the others' commits (the change feed's delay,
//! p50 and p99, at full speed and at a steady rate), and how fast notices
//! go out when the instances share a sink and its rate limit.
//!
//! The tests' fake gateway runs here in its cluster mode (each event to
//! one live connection chosen at random, as the platform does); roomcast
//! runs as two (or one) release processes on one fresh schema. Run:
//! `PG=1 cargo bench --bench ha` (env: `PG=URL` another server; EVENTS,
//! STEADY, RATE_EVENTS, RATE, FAST_EVENTS, RUNS; ONLY=feed,rate,handover,
//! fast; ROOMCAST_BIN another build).

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/support/gateway.rs"]
mod gateway;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use gateway::Gateway;
use support::{Roomcast, cpu_ms, env_or, http_with_rooms, room, send_steady_at, send_windowed};

const ROOMS: usize = 100;

/// The PostgreSQL server (`PG=1`: the machine's, database `test`).
fn pg_url() -> Option<String> {
    match std::env::var("PG").ok()?.as_str() {
        "" | "0" => None,
        "1" => Some("postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into()),
        url => Some(url.to_string()),
    }
}

/// Event `i` of a growing set: a new booking in room `i % ROOMS`, one
/// half-hour slot further each round of the rooms.
fn body(i: usize, run: &str) -> String {
    let slot = (i / ROOMS) as i64;
    let start: i64 = 1_830_000_000_000 + slot * 1_800_000;
    format!(
        r#"{{"ts":"1.0","uuid":"{run}-{i:09}","token":"t","type":"event_callback","event":{{"type":"third_party_meeting_room_event_created","event_time":"{}","uid":"uid-{run}-{i}","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"{}"}}],"organizer":{{"open_id":"ou_b"}}}}}}"#,
        1_777_000_000_000i64 + i as i64,
        start + 1_500_000,
        room(i % ROOMS)
    )
}

/// Instances on one fresh schema, all connected to one gateway.
struct Cluster {
    gw: Gateway,
    schema: String,
    url: String,
    instances: Vec<(Roomcast, u16)>,
}

impl Cluster {
    async fn start(n: usize, sink: &str) -> Cluster {
        let url = pg_url().expect("PG=1 (or PG=URL): this bench needs PostgreSQL");
        let schema = format!("rc_ha_{}_{:x}", std::process::id(), rand::random::<u32>());
        let gw = Gateway::start().await;
        gw.with(|g| {
            g.record_acks = false;
            g.spread = true;
        });
        let mut instances = Vec::new();
        for _ in 0..n {
            let (port, rest) = http_with_rooms(ROOMS);
            let rest = format!(
                "{rest}[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n[delivery]\nheartbeat = \"off\"\ndrain_timeout = \"2s\"\n{sink}"
            );
            instances.push((Roomcast::start(&gw, &rest).await, port));
        }
        Cluster {
            gw,
            schema,
            url,
            instances,
        }
    }

    async fn metrics(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, port) in &self.instances {
            out.push(
                reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                    .await
                    .expect("/metrics")
                    .text()
                    .await
                    .expect("/metrics body"),
            );
        }
        out
    }

    /// Wait until every instance's feed has read `rows` rows.
    async fn until_fed(&self, rows: f64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let m = self.metrics().await;
            if m.iter()
                .all(|t| sample(t, "roomcast_feed_rows_total") >= rows)
            {
                return;
            }
            assert!(Instant::now() < deadline, "the feeds never caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Which instance sends for `sink` now (its `/readyz`).
    async fn owner_of(&self, sink: &str) -> Option<usize> {
        for (i, (_, port)) in self.instances.iter().enumerate() {
            let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            if ready["instance"]["sinks"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == sink))
            {
                return Some(i);
            }
        }
        None
    }

    fn cpu(&self) -> f64 {
        self.instances.iter().map(|(r, _)| cpu_ms(r.pid)).sum()
    }

    async fn stop(self) {
        for (r, _) in self.instances {
            r.stop().await;
        }
        let _ = std::process::Command::new("psql")
            .args([
                self.url.as_str(),
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .status();
    }
}

/// A sample's value in a metrics text (0 when absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `roomcast_feed_delay_seconds`' cumulative buckets: (upper bound, count).
fn buckets(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("roomcast_feed_delay_seconds_bucket{le=\"")?;
            let (le, v) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.parse().ok()?))
        })
        .collect()
}

/// Every instance's buckets added up, minus those of `before`.
fn delta(after: &[String], before: &[String]) -> Vec<(f64, f64)> {
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for (a, b) in after.iter().zip(before) {
        for (i, ((le, x), (_, y))) in buckets(a).into_iter().zip(buckets(b)).enumerate() {
            if sum.len() <= i {
                sum.push((le, 0.0));
            }
            sum[i].1 += x - y;
        }
    }
    sum
}

/// The `q` quantile of a cumulative histogram, interpolated within its
/// bucket (as Prometheus' `histogram_quantile`), in ms.
fn quantile_ms(b: &[(f64, f64)], q: f64) -> f64 {
    let total = b.last().map_or(0.0, |l| l.1);
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for &(le, cum) in b {
        if cum >= rank {
            if le.is_infinite() {
                return lo * 1000.0;
            }
            let within = if cum > below {
                (rank - below) / (cum - below)
            } else {
                0.0
            };
            return (lo + (le - lo) * within) * 1000.0;
        }
        (lo, below) = (le, cum);
    }
    lo * 1000.0
}

/// Phase 1: two instances take events spread over their connections; the
/// delay of every booking row to each instance's schedule.
async fn feed_delay(events: usize, steady: usize) {
    let c = Cluster::start(2, "").await;
    let m0 = c.metrics().await;
    let cpu0 = c.cpu();
    let t = Instant::now();
    send_windowed(&c.gw, 0, events, 64, |i| body(i, "w")).await;
    let secs = t.elapsed().as_secs_f64();
    c.until_fed(events as f64).await;
    let cpu = c.cpu() - cpu0;
    let m1 = c.metrics().await;
    let d = delta(&m1, &m0);
    let spread: Vec<u64> = c.gw.with(|g| g.sent_to.values().copied().collect());
    println!(
        "window 64, {events} events spread {spread:?}: {:.0} events/s, {:.1} µs CPU an event (both); \
         feed delay over {} rows: p50 {:.1} ms, p99 {:.1} ms",
        events as f64 / secs,
        cpu * 1000.0 / events as f64,
        d.last().map_or(0.0, |l| l.1),
        quantile_ms(&d, 0.5),
        quantile_ms(&d, 0.99)
    );
    // Steady rates: a busy office's morning, and a quiet hour.
    let (mut sent, mut before) = (events, m1);
    for (rate, n) in [(500, steady), (20, steady / 15)] {
        send_steady_at(&c.gw, sent, n, rate, |i| body(i, "w")).await;
        sent += n;
        c.gw.wait("all acks", |g| g.ack_count as usize >= sent)
            .await;
        c.until_fed(sent as f64).await;
        let after = c.metrics().await;
        let d = delta(&after, &before);
        println!(
            "steady {rate}/s, {n} events: feed delay over {} rows: p50 {:.1} ms, p99 {:.1} ms",
            d.last().map_or(0.0, |l| l.1),
            quantile_ms(&d, 0.5),
            quantile_ms(&d, 0.99)
        );
        before = after;
    }
    c.stop().await;
}

/// What the fake receiver saw: each request's key and arrival.
#[derive(Default)]
struct Received {
    arrivals: Vec<(Instant, String)>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let seen: Arc<Mutex<Received>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let s = s.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s.lock().unwrap().arrivals.push((Instant::now(), key));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// Phase 2: `n` instances share a webhook sink (rate limit `limit`, or
/// none); `events` bookings made through them; each notice's arrival.
/// `handover`: once a quarter has arrived, the instance sending for the
/// sink is stopped (SIGTERM: it sends for `drain_timeout`, then gives its
/// leases up) and another takes the sink over.
async fn delivery(n: usize, events: usize, limit: Option<&str>, handover: bool) -> String {
    let (url, seen) = receiver().await;
    let rate = limit.map_or(String::new(), |l| format!("rate_limit = [\"{l}\"]\n"));
    // Arrivals are counted within the limit's window.
    let window = if limit.is_some_and(|l| l.ends_with("/min")) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(1)
    };
    let sink = format!("[[sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n{rate}");
    let mut c = Cluster::start(n, &sink).await;
    send_windowed(&c.gw, 0, events, 64, |i| body(i, "d")).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut stopping = None;
    loop {
        let arrived = seen.lock().unwrap().arrivals.len();
        if arrived >= events {
            break;
        }
        if handover && stopping.is_none() && arrived >= events / 4 {
            let owner = c
                .owner_of("hook")
                .await
                .expect("an instance sends for the sink");
            let (r, _) = c.instances.remove(owner);
            stopping = Some(tokio::spawn(r.stop()));
        }
        assert!(Instant::now() < deadline, "notices never all arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A moment for any duplicate to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(s) = stopping {
        let _ = s.await;
    }
    let r = std::mem::take(&mut *seen.lock().unwrap());
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (_, k) in &r.arrivals {
        *by_key.entry(k.as_str()).or_default() += 1;
    }
    let dups = r.arrivals.len() - by_key.len();
    let first = r.arrivals.first().map(|a| a.0).expect("arrivals");
    let last = r.arrivals.last().map(|a| a.0).expect("arrivals");
    let secs = (last - first).as_secs_f64();
    // The most arrivals within any one second.
    let times: Vec<Instant> = r.arrivals.iter().map(|a| a.0).collect();
    let mut peak = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while times[i] - times[j] >= window {
            j += 1;
        }
        peak = peak.max(i - j + 1);
    }
    c.stop().await;
    format!(
        "{n} instance(s){}, {events} notices, limit {}: {:.1} notices/s (first to last {:.2} s), \
         at most {peak} within any {} s, {dups} duplicates",
        if handover {
            ", sender stopped at 1/4"
        } else {
            ""
        },
        limit.unwrap_or("none"),
        (by_key.len() as f64 - 1.0) / secs,
        secs,
        window.as_secs()
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    roomcast::tls::init();
    if pg_url().is_none() {
        eprintln!("ha: set PG=1 (the machine's PostgreSQL) or PG=URL; skipped");
        return;
    }
    let runs = env_or("RUNS", 3);
    let events = env_or("EVENTS", 20_000);
    let steady = env_or("STEADY", 3_000);
    let rate_events = env_or("RATE_EVENTS", 200);
    let rate = std::env::var("RATE").unwrap_or_else(|_| "20/s".into());
    let fast = env_or("FAST_EVENTS", 3_000);
    // ONLY=feed,rate,handover,fast: some of the cases.
    let only = std::env::var("ONLY").unwrap_or_default();
    let on = |case: &str| only.is_empty() || only.split(',').any(|c| c == case);
    for run in 1..=runs {
        println!("== run {run}/{runs}");
        if on("feed") {
            feed_delay(events, steady).await;
        }
        if on("rate") {
            for n in [1, 2] {
                println!("{}", delivery(n, rate_events, Some(&rate), false).await);
            }
        }
        if on("handover") {
            println!("{}", delivery(2, rate_events, Some(&rate), true).await);
        }
        if on("fast") {
            for n in [1, 2] {
                println!("{}", delivery(n, fast, None, false).await);
            }
        }
    }
}
