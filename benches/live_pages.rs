//! Live room pages: what 1,000 open pages (one per room, each holding its
//! event stream) cost roomcast, and how fast a change reaches them.
//!
//! Phase A: events as fast as possible (256 in flight) through the fake
//! gateway, acks/s with no page open and then with 1,000 pages open: the
//! pages must not slow the core. Phase B: a steady 1,000 events/s, each for
//! another room, latency from the frame leaving the gateway to the page's
//! `room` event carrying the change. roomcast's RSS with the pages open.
//!
//! roomcast runs as the release binary; the gateway and the page clients
//! run in this process. Run: `cargo bench --bench live_pages`
//! (env: EVENTS, SECONDS, PAGES).

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/support/gateway.rs"]
mod gateway;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::Gateway;
use support::{
    Roomcast, cpu_ms, data_end, env_or, http_with_rooms, open_streams, quantile, room, send_steady,
    send_windowed, status_kib, update_event,
};

const ROOMS: usize = 1000;

fn body(i: usize, base_ms: i64) -> (String, i64) {
    update_event(i, ROOMS, base_ms, "lp")
}

struct Setup {
    gw: Gateway,
    roomcast: Roomcast,
    http: String,
}

async fn setup() -> Setup {
    let gw = Gateway::start().await;
    gw.with(|g| g.record_acks = false);
    let (port, rest) = http_with_rooms(ROOMS);
    let roomcast = Roomcast::start(&gw, &rest).await;
    Setup {
        gw,
        roomcast,
        http: format!("http://127.0.0.1:{port}"),
    }
}

/// (room index, data-end ms) → when the page got it.
type Arrivals = Arc<Mutex<HashMap<(usize, i64), Instant>>>;

/// Open one page's event stream per room (the first `pages` rooms); each
/// records when a rendering with a new current end arrives.
async fn open_pages(http: &str, pages: usize) -> (Arrivals, Vec<tokio::task::JoinHandle<()>>) {
    let arrivals: Arrivals = Arc::default();
    let urls = (0..pages)
        .map(|r| format!("{http}/rooms/{}/events", room(r)))
        .collect();
    let seen = arrivals.clone();
    let tasks = open_streams(urls, "room", move |r, block, at| {
        if let Some(v) = data_end(block) {
            seen.lock().unwrap().entry((r, v)).or_insert(at);
        }
    })
    .await;
    (arrivals, tasks)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let events = env_or("EVENTS", if benching { 20_000 } else { 2_000 });
    let seconds = env_or("SECONDS", if benching { 10 } else { 1 });
    let pages = env_or("PAGES", ROOMS).min(ROOMS);
    roomcast::tls::init();
    let base_ms = chrono::Utc::now().timestamp_millis();

    let s = setup().await;
    let pid = s.roomcast.pid;
    let idle_rss = status_kib(pid, "VmRSS:");
    let c0 = cpu_ms(pid);
    // Phase A: acks/s for `events` events, 256 in flight.
    let blast = async |from: usize| {
        let t0 = Instant::now();
        send_windowed(&s.gw, from, events, 256, |i| body(i, base_ms).0).await;
        events as f64 / t0.elapsed().as_secs_f64()
    };
    let bare = blast(0).await;
    let c1 = cpu_ms(pid);
    let (arrivals, tasks) = open_pages(&s.http, pages).await;
    let pages_rss = status_kib(pid, "VmRSS:");
    let c2 = cpu_ms(pid);
    let with_pages = blast(events).await;
    let c3 = cpu_ms(pid);
    let us = |ms: f64| ms * 1000.0 / events as f64;
    println!(
        "live_pages [throughput, {events} events over {ROOMS} rooms]: {bare:.0} acks/s with no page open, {with_pages:.0} with {pages} pages open ({:.2}×); roomcast CPU {:.1} µs/event vs {:.1} µs/event",
        with_pages / bare,
        us(c1 - c0),
        us(c3 - c2)
    );

    // Phase B: 1,000 events/s, one room after another, once the pages
    // updated in the blast are past their rendering gap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = 2 * events;
    let n = seconds * 1000;
    let sent_at = send_steady(&s.gw, from, n, |i| body(i, base_ms).0).await;
    let watched: Vec<(usize, i64, Instant)> = (from..from + n)
        .zip(sent_at)
        .map(|(i, at)| (i % ROOMS, body(i, base_ms).1, at))
        .filter(|(r, _, _)| *r < pages)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lat: Vec<Duration> = loop {
        let got: Vec<Duration> = {
            let a = arrivals.lock().unwrap();
            watched
                .iter()
                .filter_map(|(r, end, at)| a.get(&(*r, *end)).map(|t| *t - *at))
                .collect()
        };
        if got.len() == watched.len() || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lat.len(), watched.len(), "every change reached its page");
    lat.sort();
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "live_pages [latency at 1000 events/s, {} events, {pages} pages]: frame → page event p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        quantile(&lat, 0.5).as_secs_f64() * 1e3,
        quantile(&lat, 0.99).as_secs_f64() * 1e3,
        quantile(&lat, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "live_pages [memory]: RSS {:.1} MiB before the pages, {:.1} MiB with {pages} pages open ({:.1} KiB a page); peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        pages_rss as f64 / 1024.0,
        (pages_rss.saturating_sub(idle_rss)) as f64 / pages.max(1) as f64,
        peak as f64 / 1024.0
    );
    s.roomcast.stop().await;
    for t in tasks {
        let _ = t.await;
    }
}
