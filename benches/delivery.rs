//! Panel delivery: deliveries/s to a fake panel endpoint across 1,000 rooms,
//! and end-to-end latency from an event frame to the panel's POST at 1,000
//! events/s (p50/p99), with roomcast's peak RSS.
//!
//! The fake gateway and the fake panel run in this process (one clock for
//! both ends); roomcast runs as the release binary. Run:
//! `cargo bench --bench delivery` (env: EVENTS, SECONDS).

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
use support::{Roomcast, env_or, quantile, room, send_steady, send_windowed};
use tokio::sync::Notify;

const ROOMS: usize = 1000;

#[derive(Default)]
struct Panel {
    /// event uuid → arrival
    arrivals: HashMap<String, Instant>,
    posts: usize,
    /// room → last event uuid received
    last: HashMap<String, String>,
}

fn body(i: usize) -> String {
    let r = i % ROOMS;
    let slot = (i / ROOMS) % 20;
    let start: i64 = 1_796_000_000_000 + slot as i64 * 1_800_000;
    format!(
        r#"{{"ts":"1.0","uuid":"d-{i:09}","token":"t","type":"event_callback","event":{{"type":"third_party_meeting_room_event_created","event_time":"{}","uid":"uid-{i}","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"{}"}}],"organizer":{{"open_id":"ou_b"}}}}}}"#,
        1_777_000_000_000i64 + i as i64,
        start + 1_500_000,
        room(r)
    )
}

struct Setup {
    gw: Gateway,
    panel: Arc<(Mutex<Panel>, Notify)>,
    roomcast: Roomcast,
}

async fn setup() -> Setup {
    let panel: Arc<(Mutex<Panel>, Notify)> = Arc::default();
    let p = panel.clone();
    let app = Router::new().route(
        "/panel/{room}",
        post(
            move |axum::extract::Path(room): axum::extract::Path<String>, headers: HeaderMap| {
                let p = p.clone();
                async move {
                    let ev = headers
                        .get("x-roomcast-event")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut g = p.0.lock().unwrap();
                    g.posts += 1;
                    g.arrivals.insert(ev.clone(), Instant::now());
                    g.last.insert(room, ev);
                    drop(g);
                    p.1.notify_waiters();
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = Gateway::start().await;
    gw.with(|g| g.record_acks = false);
    let mut rest = format!(
        "[display]\ntime_zone = \"Asia/Shanghai\"\n[delivery]\nheartbeat = \"off\"\n[[sinks]]\nname = \"pn\"\nkind = \"panel\"\nurl = \"http://{addr}/panel/{{room}}\"\n"
    );
    for i in 0..ROOMS {
        rest.push_str(&format!(
            "[[rooms]]\nid = \"{}\"\nname = \"Room {i}\"\npanels = [\"pn\"]\n",
            room(i)
        ));
    }
    let roomcast = Roomcast::start(&gw, &rest).await;
    Setup {
        gw,
        panel,
        roomcast,
    }
}

async fn wait_panel(panel: &Arc<(Mutex<Panel>, Notify)>, cond: impl Fn(&Panel) -> bool) {
    loop {
        let n = panel.1.notified();
        if cond(&panel.0.lock().unwrap()) {
            return;
        }
        if tokio::time::timeout(Duration::from_secs(60), n)
            .await
            .is_err()
        {
            panic!("panel: no progress for 60 s");
        }
    }
}

/// Phase A: as fast as possible (256 events in flight), until every room's
/// panel has its latest state.
async fn throughput(events: usize) -> (f64, usize, u64) {
    let s = setup().await;
    let t0 = Instant::now();
    send_windowed(&s.gw, 0, events, 256, body).await;
    let want: HashMap<String, String> = (events.saturating_sub(ROOMS)..events)
        .map(|i| (room(i % ROOMS), format!("d-{i:09}")))
        .collect();
    wait_panel(&s.panel, |p| {
        want.iter().all(|(r, e)| p.last.get(r) == Some(e))
    })
    .await;
    let secs = t0.elapsed().as_secs_f64();
    let posts = s.panel.0.lock().unwrap().posts;
    let rss = s.roomcast.stop().await;
    (posts as f64 / secs, posts, rss)
}

/// Phase B: a steady 1,000 events/s, each for another room; latency from
/// the frame leaving the gateway to the panel's POST arriving.
async fn latency(seconds: usize) -> (Duration, Duration, Duration, u64) {
    let s = setup().await;
    let n = seconds * 1000;
    let sent_at = send_steady(&s.gw, 0, n, body).await;
    wait_panel(&s.panel, |p| p.arrivals.len() >= n).await;
    let mut lat: Vec<Duration> = {
        let p = s.panel.0.lock().unwrap();
        (0..n)
            .filter_map(|i| {
                p.arrivals
                    .get(&format!("d-{i:09}"))
                    .map(|a| *a - sent_at[i])
            })
            .collect()
    };
    lat.sort();
    let (p50, p99, max) = (
        quantile(&lat, 0.50),
        quantile(&lat, 0.99),
        quantile(&lat, 1.0),
    );
    let rss = s.roomcast.stop().await;
    (p50, p99, max, rss)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let events = env_or("EVENTS", if benching { 20_000 } else { 2_000 });
    let seconds = env_or("SECONDS", if benching { 10 } else { 1 });
    let (rate, posts, rss_a) = throughput(events).await;
    println!(
        "delivery [throughput]: {events} events over {ROOMS} rooms: {posts} panel POSTs at {rate:.0} deliveries/s; peak RSS {:.1} MiB",
        rss_a as f64 / 1024.0
    );
    let (p50, p99, max, rss_b) = latency(seconds).await;
    println!(
        "delivery [latency at 1000 events/s, {} events]: frame → panel POST p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; peak RSS {:.1} MiB",
        seconds * 1000,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        rss_b as f64 / 1024.0
    );
}
