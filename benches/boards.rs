//! Lobby boards: what 100 open boards of 200 rooms each (each holding its
//! event stream) cost roomcast, and how fast a change reaches them.
//!
//! 1,000 rooms; board `b` shows rooms `10·b … 10·b + 199` (mod 1,000), so
//! each room is on 20 boards. Phase A: events as fast as possible (256 in
//! flight) through the fake gateway, acks/s with no board open and then
//! with the 100 boards open. Phase B: a steady rate (RATE, default 200
//! events/s), each event for another room: latency from the frame leaving
//! the gateway to the first board showing its room's new state, and
//! roomcast's CPU and RSS meanwhile.
//!
//! roomcast runs as the release binary; the gateway and the board clients
//! run in this process. Run: `cargo bench --bench boards`
//! (env: EVENTS, SECONDS, RATE, BOARDS).

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
    Roomcast, cpu_ms, data_end, env_or, http_with_rooms, open_streams, quantile, room,
    send_steady_at, send_windowed, status_kib, update_event,
};

const ROOMS: usize = 1000;
const PER_BOARD: usize = 200;

fn body(i: usize, base_ms: i64) -> (String, i64) {
    update_event(i, ROOMS, base_ms, "bd")
}

/// (room index, data-end ms) → when a board first showed it.
type Arrivals = Arc<Mutex<HashMap<(usize, i64), Instant>>>;

/// Open each board's event stream; record when each tile's new end first
/// arrives on any board.
async fn open_boards(
    http: &str,
    boards: usize,
    index: Arc<HashMap<String, usize>>,
) -> (Arrivals, Vec<tokio::task::JoinHandle<()>>) {
    let arrivals: Arrivals = Arc::default();
    let urls = (0..boards)
        .map(|b| format!("{http}/boards/b{b}/events"))
        .collect();
    let seen = arrivals.clone();
    let tasks = open_streams(urls, "board", move |_, block, at| {
        let mut a = seen.lock().unwrap();
        for tile in block.split("data-room=\"").skip(1) {
            let Some(r) = tile.split('"').next().and_then(|id| index.get(id)) else {
                continue;
            };
            if let Some(v) = data_end(tile) {
                a.entry((*r, v)).or_insert(at);
            }
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
    let rate = env_or("RATE", 200);
    let boards = env_or("BOARDS", 100);
    roomcast::tls::init();
    let base_ms = chrono::Utc::now().timestamp_millis();

    let gw = Gateway::start().await;
    gw.with(|g| g.record_acks = false);
    let (port, mut rest) = http_with_rooms(ROOMS);
    for b in 0..boards {
        let ids: Vec<String> = (0..PER_BOARD)
            .map(|k| format!("\"{}\"", room((10 * b + k) % ROOMS)))
            .collect();
        rest.push_str(&format!(
            "[[boards]]\nname = \"b{b}\"\nrooms = [{}]\n",
            ids.join(", ")
        ));
    }
    let index: Arc<HashMap<String, usize>> = Arc::new((0..ROOMS).map(|i| (room(i), i)).collect());
    let rc = Roomcast::start(&gw, &rest).await;
    let http = format!("http://127.0.0.1:{port}");
    let pid = rc.pid;
    let idle_rss = status_kib(pid, "VmRSS:");

    let blast = async |from: usize| {
        let t0 = Instant::now();
        send_windowed(&gw, from, events, 256, |i| body(i, base_ms).0).await;
        events as f64 / t0.elapsed().as_secs_f64()
    };
    let c0 = cpu_ms(pid);
    let bare = blast(0).await;
    let c1 = cpu_ms(pid);
    let t_open = Instant::now();
    let (arrivals, tasks) = open_boards(&http, boards, index).await;
    let opened = t_open.elapsed();
    let boards_rss = status_kib(pid, "VmRSS:");
    // Idle with the boards open: what the clock and pings cost.
    let c_idle = cpu_ms(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_cpu = (cpu_ms(pid) - c_idle) / 3.0;
    let c2 = cpu_ms(pid);
    let with_boards = blast(events).await;
    let c3 = cpu_ms(pid);
    let us = |ms: f64| ms * 1000.0 / events as f64;
    println!(
        "boards [throughput, {events} events over {ROOMS} rooms]: {bare:.0} acks/s with no board open, {with_boards:.0} with {boards} boards of {PER_BOARD} rooms open ({:.2}×); roomcast CPU {:.1} µs/event vs {:.1} µs/event",
        with_boards / bare,
        us(c1 - c0),
        us(c3 - c2)
    );

    // Phase B: a steady rate, once the boards are past their gap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = 2 * events;
    let n = seconds * rate;
    let c4 = cpu_ms(pid);
    let t4 = Instant::now();
    let sent_at = send_steady_at(&gw, from, n, rate, |i| body(i, base_ms).0).await;
    let watched: Vec<(usize, i64, Instant)> = (from..from + n)
        .zip(sent_at)
        .map(|(i, at)| (i % ROOMS, body(i, base_ms).1, at))
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
    let steady_cpu = (cpu_ms(pid) - c4) / t4.elapsed().as_secs_f64();
    assert_eq!(lat.len(), watched.len(), "every change reached a board");
    lat.sort();
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "boards [latency at {rate} events/s, {} events, {boards} boards]: frame → first board showing it p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; roomcast CPU {:.0} ms/s (idle with the boards open: {:.0} ms/s)",
        lat.len(),
        quantile(&lat, 0.5).as_secs_f64() * 1e3,
        quantile(&lat, 0.99).as_secs_f64() * 1e3,
        quantile(&lat, 1.0).as_secs_f64() * 1e3,
        steady_cpu,
        idle_cpu,
    );
    println!(
        "boards [memory]: RSS {:.1} MiB before the boards, {:.1} MiB with {boards} open ({:.0} KiB a board; all open in {:.2} s); peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        boards_rss as f64 / 1024.0,
        (boards_rss.saturating_sub(idle_rss)) as f64 / boards.max(1) as f64,
        opened.as_secs_f64(),
        peak as f64 / 1024.0
    );
    rc.stop().await;
    for t in tasks {
        let _ = t.await;
    }
}
