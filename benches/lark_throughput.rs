//! Events/s received, decoded, applied and acknowledged over the long
//! connection, and the roomcast process's peak RSS.
//!
//! The fake gateway (the tests' own, `tests/it/support/gateway.rs`) runs in this
//! process; roomcast runs as the real release binary in a child process, so
//! its RSS is its own. The gateway keeps a window of events in flight and
//! sends the next as acks arrive.
//!
//! Run: `cargo bench --bench lark_throughput` (env: EVENTS, WINDOW, RUNS).

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/support/gateway.rs"]
mod gateway;
mod support;

use std::time::Instant;

use gateway::Gateway;
use support::{Roomcast, env_or, send_windowed};

/// 1,000 rooms × 20 bookings a day: the first 20,000 events book them, the
/// rest move them back and forth by a minute (every event applies).
const BOOKINGS: usize = 20_000;

fn payload(i: usize) -> String {
    let b = i % BOOKINGS;
    let (room, slot) = (b % 1000, b / 1000);
    let kind = if i < BOOKINGS { "created" } else { "updated" };
    let shift = ((i / BOOKINGS) % 2) as i64 * 60_000;
    let start: i64 = 1_796_000_000_000 + slot as i64 * 1_800_000 + shift;
    format!(
        r#"{{"ts":"1.0","uuid":"bench-{i:012}","token":"t","type":"event_callback","event":{{"app_id":"cli_a1b2c3d4e5f60718","tenant_key":"k","type":"third_party_meeting_room_event_{kind}","event_id":"x","event_time":"{}","uid":"uid-{b:06}-7f3c9a1e-4b2d-4e8f","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"omm_{room:032x}"}}],"organizer":{{"open_id":"ou_{:032x}","union_id":"on_{:032x}"}}}}}}"#,
        1_777_000_000_000i64 + i as i64,
        start + 1_500_000,
        b % 3000,
        b % 3000
    )
}

async fn one_run(events: usize, window: usize, sinks: &str) -> (f64, u64) {
    let gw = Gateway::start().await;
    gw.with(|g| g.record_acks = false);
    let rest = format!(
        "[display]\ntime_zone = \"Asia/Shanghai\"\n[schedule]\ndedup_capacity = {}\n{sinks}",
        env_or("DEDUP", 100_000)
    );
    let payloads: Vec<String> = (0..events).map(payload).collect();
    let rc = Roomcast::start(&gw, &rest).await;
    let t0 = Instant::now();
    send_windowed(&gw, 0, events, window, |i| &payloads[i]).await;
    let secs = t0.elapsed().as_secs_f64();
    let pid = rc.pid;
    if std::env::var_os("DUMP").is_some() {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        for l in st
            .lines()
            .filter(|l| l.starts_with("Threads") || l.starts_with("Rss"))
        {
            eprintln!("{l}");
        }
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "awk '$2 ~ /-/ {{m=$0}} /^Rss:/ && $2 > 300 {{print $2, m}}' /proc/{pid}/smaps >&2"
            ))
            .status();
    }
    let rss = rc.stop().await;
    (events as f64 / secs, rss)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo test --benches` passes no `--bench`: do a tiny smoke run only.
    let benching = std::env::args().any(|a| a == "--bench");
    let events = env_or("EVENTS", if benching { 200_000 } else { 2_000 });
    let window = env_or("WINDOW", 256);
    let runs = env_or("RUNS", if benching { 5 } else { 1 });
    let file_sink =
        "[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"notices.jsonl\"\ntemplate = \"text\"\n";
    let durable = "[store]\npath = \"roomcast.db\"\n";
    let normal = "[store]\npath = \"roomcast.db\"\nsync = \"normal\"\n";
    let durable_sink = format!("{durable}{file_sink}");
    for (label, sinks) in [
        ("schedule only", ""),
        ("+ text notice to a file sink", file_sink),
        ("+ durable store (sync full), no sinks", durable),
        ("+ store (sync normal), no sinks", normal),
        (
            "+ durable store and the file sink (outbox rows)",
            durable_sink.as_str(),
        ),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| {
        std::env::var("ONLY")
            .ok()
            .and_then(|o| o.parse::<usize>().ok())
            .is_none_or(|o| o == *i)
    })
    .map(|(_, v)| v)
    {
        let mut rates = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..runs {
            let (r, m) = one_run(events, window, sinks).await;
            rates.push(r);
            rss.push(m as f64);
        }
        println!(
            "lark_throughput [{label}]: {events} events, window {window}, {runs} runs: median {:.0} events/s (runs: {}), peak RSS median {:.1} MiB (max {:.1})",
            median(rates.clone()),
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(rss.clone()) / 1024.0,
            rss.iter().cloned().fold(0.0, f64::max) / 1024.0
        );
    }
}
