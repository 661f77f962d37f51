//! What the schedule costs a booking: heap bytes and allocations held per
//! booking after applying N `created` events of distinct bookings over 16
//! rooms (the intake bench's growing workload), as the growth of this
//! process's resident memory (the system allocator, fragmentation
//! included). Run: `cargo run --release --example schedule_memory` (env:
//! N, default 100000).

use std::sync::Arc;

/// This process's resident memory, KiB.
fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), String> {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let text = "[source]\nkind = \"replay\"\nreplay_file = \"x\"\n";
    let env = std::collections::BTreeMap::<String, String>::new();
    let config = roomcast::config::parse(text, std::path::Path::new("."), &env)
        .map_err(|e| format!("{e:?}"))?;
    let templates = roomcast::render::Templates::load(None).map_err(|e| format!("{e:?}"))?;
    let mut p = roomcast::pipeline::Pipeline::new(Arc::new(config), Arc::new(templates));
    let now = chrono::Utc::now();
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            let uid = format!("grow-1-{i:08}-7f3c9a1e-4b2d-4e8f");
            let start = 1_796_000_000_000i64 + (i / 16) as i64 * 900_000;
            format!(
                r#"{{"uuid":"ev-{i:09}","token":"t","type":"event_callback","event":{{"type":"third_party_meeting_room_event_created","event_time":"{}","uid":"{uid}","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"omm_{:032}"}}],"organizer":{{"open_id":"ou_organizer"}}}}}}"#,
                1_777_000_000_000i64 + i as i64,
                start + 1_800_000,
                i % 16
            )
        })
        .collect();
    let r0 = rss_kib();
    for b in &bodies {
        let _ = p.handle(b.as_bytes(), now);
    }
    let r1 = rss_kib();
    println!(
        "schedule_memory [{n} bookings over 16 rooms]: RSS +{:.1} MiB, {:.0} bytes a booking ({} bookings live)",
        (r1 - r0) as f64 / 1024.0,
        (r1 - r0) as f64 * 1024.0 / n as f64,
        p.bookings()
    );
    Ok(())
}
