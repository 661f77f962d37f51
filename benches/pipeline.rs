//! decode → apply → render of one event, with 1,000 rooms × 20 bookings a
//! day already loaded. Run: `cargo bench --bench pipeline`.

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use roomcast::config;
use roomcast::lark::frame::Frame;
use roomcast::lark::received::Received;
use roomcast::pipeline::{Outcome, Pipeline};
use roomcast::render::Templates;

// The same allocator as the binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROOMS: usize = 1000;
const PER_DAY: usize = 20;

fn room(i: usize) -> String {
    format!("omm_{i:032x}")
}

fn day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 0, 0, 0).unwrap()
}

fn body(
    kind: &str,
    uuid: u64,
    event_ms: i64,
    uid: &str,
    start: DateTime<Utc>,
    mins: i64,
    room: &str,
) -> String {
    format!(
        r#"{{"ts":"1.0","uuid":"{uuid:032x}","token":"t","type":"event_callback","event":{{"app_id":"cli_a1b2c3d4e5f60718","tenant_key":"k","type":"third_party_meeting_room_event_{kind}","event_id":"x","event_time":"{event_ms}","uid":"{uid}","original_time":0,"start":{{"time_stamp":"{}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{{"open_id":"{room}"}}],"organizer":{{"open_id":"ou_bench","union_id":"on_bench"}}}}}}"#,
        start.timestamp_millis(),
        (start + Duration::minutes(mins)).timestamp_millis()
    )
}

fn setup(panel: bool) -> Pipeline {
    let mut toml = String::from(
        "[source]\nkind = \"replay\"\nreplay_file = \"x\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"zh-CN\"\n\
         [[sinks]]\nname = \"chat\"\nkind = \"stdout\"\ntemplate = \"text\"\n\
         [[sinks]]\nname = \"panel\"\nkind = \"panel\"\nurl = \"http://127.0.0.1:9/p\"\n",
    );
    for i in 0..ROOMS {
        let panels = if panel { "panels = [\"panel\"]\n" } else { "" };
        toml.push_str(&format!(
            "[[rooms]]\nid = \"{}\"\nname = \"Room {i}\"\n{panels}",
            room(i)
        ));
    }
    let cfg =
        config::parse(&toml, Path::new("."), &BTreeMap::<String, String>::new()).expect("config");
    let mut p = Pipeline::new(
        Arc::new(cfg),
        Arc::new(Templates::load(None).expect("templates")),
    );
    let now = day() + Duration::hours(1);
    let mut n = 0u64;
    for r in 0..ROOMS {
        for b in 0..PER_DAY {
            n += 1;
            let start = day() + Duration::minutes(30 * b as i64);
            let uid = format!("uid-{r}-{b}");
            let _ = p.handle(
                body("created", n, 1, &uid, start, 25, &room(r)).as_bytes(),
                now,
            );
        }
    }
    assert_eq!(p.bookings(), ROOMS * PER_DAY);
    p
}

fn bench_move(c: &mut Criterion, panel: bool, name: &str) {
    let mut p = setup(panel);
    // Before the day's first booking: every move changes what the room's
    // panel lists (a panel already showing a snapshot is not sent it
    // again, so a move among past bookings would queue none).
    let now = day() - Duration::hours(1);
    let mut n = 10_000_000u64;
    let mut event_ms = 2i64;
    let want = if panel { 2 } else { 1 };
    c.bench_function(name, |b| {
        b.iter_batched(
            || {
                n += 1;
                event_ms += 1;
                let r = (n as usize) % ROOMS;
                let slot = (n as usize / ROOMS) % PER_DAY;
                // 1 or 2 minutes later than the original, alternating per pass: always a move.
                let shift = (n as usize / (ROOMS * PER_DAY)) % 2 + 1;
                let start = day() + Duration::minutes(30 * slot as i64 + shift as i64);
                body(
                    "updated",
                    n,
                    event_ms,
                    &format!("uid-{r}-{slot}"),
                    start,
                    25,
                    &room(r),
                )
            },
            |payload| match p.handle(payload.as_bytes(), now) {
                Outcome::Applied(a) => {
                    assert_eq!(a.messages.len(), want);
                    a.messages
                }
                other => panic!("{other:?}"),
            },
            BatchSize::SmallInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    bench_move(c, true, "decode_apply_render/notice+panel");
    bench_move(c, false, "decode_apply_render/notice");
    let sample = body("updated", 1, 1, "uid-1-1", day(), 25, &room(1));
    c.bench_function("decode", |b| {
        b.iter(|| roomcast::decode::decode(sample.as_bytes()))
    });
    // A data frame as the client reads it: decoded, its headers looked up,
    // its payload taken, its ack written.
    let raw = prost::bytes::Bytes::from(
        Frame::event_fragment(1, "m-1234", "1", "0", "t-1234", sample.clone().into_bytes())
            .to_bytes(),
    );
    c.bench_function("frame/prost", |b| {
        b.iter(|| {
            let mut f = Frame::from_shared(raw.clone()).unwrap();
            let n = ["message_id", "sum", "seq", "type"].map(|k| f.header(k).map_or(0, str::len));
            let p = f.payload.take().map_or(0, |p| p.len());
            (n, p, f.ack_bytes(200, 1).len())
        })
    });
    c.bench_function("frame/in_place", |b| {
        b.iter(|| {
            let mut f = Received::parse(raw.clone()).unwrap();
            let n = ["message_id", "sum", "seq", "type"].map(|k| f.header(k).map_or(0, str::len));
            let p = f.take_payload().map_or(0, |p| p.len());
            (n, p, f.ack_bytes(200, 1).len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
