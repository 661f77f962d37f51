//! Reconciling with the room APIs: 1,000 rooms × 20 bookings a day (daily
//! series started weeks ago, so 140,000 occurrences in the 7-day window)
//! against the tests' fake room APIs, served with the fake gateway on one
//! domain; roomcast is the release binary.
//!
//! Measures: API calls per reconciliation (expected 50 freebusy calls of 20
//! rooms), its wall time and roomcast's CPU time (the first, which books
//! everything silently, and a later one that finds nothing new), and event
//! throughput over the long connection with reconciliation on against off
//! (a reconciliation running during the blast, and the rooms every event
//! touches fetched again).
//!
//! Run: `cargo bench --bench sync` (env: ROOMS, EVENTS, RUNS).

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/support/fake_platform.rs"]
#[allow(dead_code)]
mod fake_platform;
#[path = "../tests/it/support/gateway.rs"]
mod gateway;
mod support;

use std::time::{Duration, Instant};

use chrono::TimeZone;
use fake_platform::{APP_SECRET, FakeBooking, FakePlatform, Repeat};
use gateway::Gateway;
use support::{Roomcast, cpu_ms, env_or, room, send_windowed};

const PER_DAY: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A fake platform with `rooms` rooms, each with 20 daily series, served
/// with a fresh gateway.
async fn platform(rooms: usize) -> (FakePlatform, Gateway) {
    let mut p = FakePlatform::new(String::new());
    let day0 = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .unwrap()
        .with_timezone(&chrono::Utc);
    p.with(|st| {
        for r in 0..rooms {
            for b in 0..PER_DAY {
                let start = day0 + chrono::Duration::minutes(30 * b as i64);
                st.bookings.push(FakeBooking::new(
                    &format!("r{r}-b{b}"),
                    &room(r),
                    start,
                    25,
                    Repeat::Daily,
                ));
            }
        }
    });
    let gw = Gateway::start_with(p.router()).await;
    gw.with(|g| g.record_acks = false);
    p.base = gw.base_url();
    (p, gw)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Roomcast's count of completed schedule fetches.
async fn fetches(port: u16) -> u64 {
    let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("roomcast_sync_fetches_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_fetches(port: u16, n: u64) {
    while fetches(port).await < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(rooms: usize, sync: &str, port: u16) -> String {
    let mut c = format!(
        "[display]\ntime_zone = \"Asia/Shanghai\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[sync]\ninterval = \"{sync}\"\n"
    );
    for r in 0..rooms {
        c.push_str(&format!("[[rooms]]\nid = \"{}\"\n", room(r)));
    }
    c
}

/// An update of one of the synced bookings (a distinct event each time).
fn body(i: usize, rooms: usize) -> String {
    let r = i % rooms;
    let b = (i / rooms) % PER_DAY;
    let start: i64 = 1_796_000_000_000 + b as i64 * 1_800_000 + (i % 2) as i64 * 60_000;
    format!(
        r#"{{"ts":"1.0","uuid":"s-{i:09}","token":"t","type":"event_callback","event":{{"type":"third_party_meeting_room_event_updated","event_time":"{}","uid":"r{r}-b{b}","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"{}"}}],"organizer":{{"open_id":"ou_ann"}}}}}}"#,
        1_977_000_000_000i64 + i as i64,
        start + 1_500_000,
        room(r)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    roomcast::tls::init();
    let benching = std::env::args().any(|a| a == "--bench");
    let rooms = env_or("ROOMS", if benching { 1000 } else { 40 });
    let events = env_or("EVENTS", if benching { 50_000 } else { 500 });
    let runs = env_or("RUNS", if benching { 3 } else { 1 });

    // Reconciliation: calls, wall time, CPU.
    let (p, gw) = platform(rooms).await;
    let port = free_port();
    let rc = Roomcast::start_with_secret(&gw, &config(rooms, "30s", port), APP_SECRET).await;
    let (t0, c0) = (Instant::now(), cpu_ms(rc.pid));
    let batches = rooms.div_ceil(20) as u64;
    wait_fetches(port, batches).await;
    let (first_s, first_cpu) = (t0.elapsed().as_secs_f64(), cpu_ms(rc.pid) - c0);
    let calls_first = p.calls("freebusy");
    wait_fetches(port, batches + 1).await;
    let (t1, c1) = (Instant::now(), cpu_ms(rc.pid));
    wait_fetches(port, 2 * batches).await;
    let (again_s, again_cpu) = (t1.elapsed().as_secs_f64(), cpu_ms(rc.pid) - c1);
    let calls = p.calls("freebusy");
    let rss = rc.stop().await;
    println!(
        "sync [reconcile {rooms} rooms × {PER_DAY}/day, 7 days]: {calls_first} freebusy calls per reconciliation ({} in two); first (silent backfill): {first_s:.2} s, roomcast CPU {first_cpu:.0} ms; later (nothing new): ~{again_s:.2} s, CPU {again_cpu:.0} ms; peak RSS {:.1} MiB",
        calls,
        rss as f64 / 1024.0
    );

    // Event throughput: reconciliation off; on, with the synced schedule
    // but none running during the blast; on, with one running during it.
    let modes = ["off", "quiet", "during"];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu_us: [Vec<f64>; 3] = Default::default();
    for _ in 0..runs {
        for (i, mode) in modes.into_iter().enumerate() {
            let (_p, gw) = platform(rooms).await;
            let port = free_port();
            let interval = match mode {
                "off" => "off",
                "quiet" => "1h",
                _ => "30s",
            };
            let rc =
                Roomcast::start_with_secret(&gw, &config(rooms, interval, port), APP_SECRET).await;
            if mode != "off" {
                wait_fetches(port, batches).await;
            }
            if mode == "during" {
                // The next reconciliation has begun.
                wait_fetches(port, batches + 1).await;
            }
            let payloads: Vec<String> = (0..events).map(|i| body(i, rooms)).collect();
            let (t0, c0) = (Instant::now(), cpu_ms(rc.pid));
            send_windowed(&gw, 0, events, 256, |i| &payloads[i]).await;
            rates[i].push(events as f64 / t0.elapsed().as_secs_f64());
            cpu_us[i].push((cpu_ms(rc.pid) - c0) * 1000.0 / events as f64);
            rc.stop().await;
        }
    }
    let m = |v: &Vec<f64>| median(v.clone());
    println!(
        "sync [event throughput, {events} events, window 256, {runs} runs, medians]: off {:.0} events/s ({:.1} µs/event); on, none running {:.0} ({:.1} µs/event); on, one running during the blast {:.0} ({:.1} µs/event): during/quiet {:.2}×, quiet/off {:.2}×; runs {:?}",
        m(&rates[0]),
        m(&cpu_us[0]),
        m(&rates[1]),
        m(&cpu_us[1]),
        m(&rates[2]),
        m(&cpu_us[2]),
        m(&rates[2]) / m(&rates[1]),
        m(&rates[1]) / m(&rates[0]),
        rates
            .iter()
            .map(|r| r.iter().map(|x| x.round()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}
