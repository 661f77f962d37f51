//! Intake over the long connection, side by side with the official Node
//! SDK on the same fake gateway, in one sitting (issue 12).
//!
//! For each workload and window, each run starts every client in turn —
//! the official Node SDK (`benches/node/client.js`, stores nothing),
//! roomcast with a durable store (`sync = "full"`, on disk) and roomcast
//! without a store — as its own process, connects it to the lean gateway
//! (`lean.rs`, its own thread), sends the events keeping `window`
//! unacknowledged and times from the first frame to the last ack; then
//! reads the process's peak RSS (`VmHWM`) and stops it. Medians of `RUNS`.
//!
//! Workloads: `growing` — 100,000 `created` events of distinct bookings
//! over 16 rooms (a real tenant's and a backfill's shape: the set grows);
//! `updates` — 1,000 rooms × 20 bookings, booked then moved back and forth.
//! Also measured in the same sitting: the disk's own `fsync` latency (the
//! bound of one commit per event at window 1), `/healthz` latency while a
//! durable burst runs and while 40,000-room events are pushed to the
//! webhook, and memory before and after those.
//!
//! Run: `cargo bench --bench intake` (env: EVENTS, W1_EVENTS, RUNS,
//! WINDOWS, ONLY=growing|updates|health, NODE=0 to leave the Node SDK out,
//! SYNC=normal to run the durable clients with `sync = "normal"`,
//! BASE_BIN=path to time another build's durable client beside this one
//! (BASE_STORE=0: its client without a store),
//! ROOMCAST_BIN to time another build instead, PROFILE=dir to `perf
//! record` each client, RSS_SPLIT=1 to print resident memory at the end
//! split anonymous/file, =2 also by mapping). A `floor` client (this bench as its own process,
//! `--floor URL`) decodes each frame and acks it, nothing else: what the
//! gateway and the machine allow any client. The
//! Node SDK is installed on first use with `npm ci` in `benches/node`
//! (version pinned in its `package.json` and lock file).

// Bench code: `pub` marks what the parts share, and unwrap/expect are how
// a bench fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/common.rs"]
mod common;
mod lean;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{cpu_ms, env_or, quantile, room, status_kib};
use lean::{LeanGateway, data_frame};
use tokio_tungstenite::tungstenite::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// The least any client must do per event (see [`floor`]).
    Floor,
    Node,
    Durable,
    NoStore,
    /// Another build, durable (`BASE_BIN`): an A/B in the same sitting.
    Base,
    /// roomcast with its store in PostgreSQL (`PG=1`, or `PG=URL`; a fresh
    /// schema each start, dropped after).
    Postgres,
    /// Two roomcast processes on one PostgreSQL schema, each on a gateway
    /// of its own sending half the events (as the platform spreads an
    /// app's events over its connections); the rate is all events over
    /// the slower half's time.
    Postgres2,
}

/// `PG`: the PostgreSQL server for [`Client::Postgres`] (`1`: the
/// machine's, 127.0.0.1:5432, database `test`).
fn pg_url() -> Option<String> {
    match std::env::var("PG").ok()?.as_str() {
        "" | "0" => None,
        "1" => Some("postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into()),
        url => Some(url.to_string()),
    }
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Floor => "floor (ack only)",
            Client::Node => "Node SDK",
            Client::Durable => "roomcast durable",
            Client::NoStore => "roomcast no store",
            Client::Base if base_without_store() => "base build no store",
            Client::Base => "base build durable",
            Client::Postgres => "roomcast postgres",
            Client::Postgres2 => "roomcast postgres ×2",
        }
    }
}

/// Two processes on one fresh schema, each blasted half the frames (every
/// other one) on its own gateway at once: the combined blast, the CPU
/// (ms) both used, and the larger peak RSS (KiB).
async fn pair(
    gw: &mut LeanGateway,
    gw2: &mut LeanGateway,
    frames: &Arc<Vec<Bytes>>,
    window: usize,
) -> (lean::Blast, f64, u64) {
    let schema = format!(
        "rc_bench_{}_{:x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let a = start_on(gw, Client::Postgres2, None, Some(&schema)).await;
    let b = start_on(gw2, Client::Postgres2, None, Some(&schema)).await;
    let half = |odd: usize| -> Arc<Vec<Bytes>> {
        Arc::new(frames.iter().skip(odd).step_by(2).cloned().collect())
    };
    let before = cpu_ms(a.pid) + cpu_ms(b.pid);
    let (ra, rb) = tokio::join!(gw.blast(half(0), window), gw2.blast(half(1), window));
    let used = cpu_ms(a.pid) + cpu_ms(b.pid) - before;
    let (ra, rb) = (ra.expect("first half"), rb.expect("second half"));
    let peak = a.stop().await.max(b.stop().await);
    (
        lean::Blast {
            secs: ra.secs.max(rb.secs),
            ok: ra.ok + rb.ok,
            other: ra.other + rb.other,
        },
        used,
        peak,
    )
}

/// `BASE_STORE=0`: time the other build without a store instead.
fn base_without_store() -> bool {
    std::env::var("BASE_STORE").as_deref() == Ok("0")
}

/// A client process under test.
struct Proc {
    child: tokio::process::Child,
    pid: u32,
    dir: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "roomcast-intake-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Install the Node SDK once (`npm ci`, from the committed lock file).
fn node_ready() -> bool {
    let dir = repo().join("benches/node");
    if dir.join("node_modules/@larksuiteoapi/node-sdk").exists() {
        return true;
    }
    eprintln!(
        "installing the official Node SDK: npm ci in {}",
        dir.display()
    );
    std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .is_ok_and(|s| s.success())
}

async fn start(gw: &mut LeanGateway, client: Client, http: Option<u16>) -> Proc {
    start_on(gw, client, http, None).await
}

/// [`start`], with the PostgreSQL schema given (several processes on one).
async fn start_on(
    gw: &mut LeanGateway,
    client: Client,
    http: Option<u16>,
    schema: Option<&str>,
) -> Proc {
    let dir = temp_dir();
    let before = gw.connections();
    let child = match client {
        Client::Floor => tokio::process::Command::new(std::env::current_exe().expect("bench path"))
            .args(["--floor", &gw.base_url])
            .kill_on_drop(true)
            .spawn()
            .expect("start the floor client"),
        Client::Node => tokio::process::Command::new("node")
            .arg(repo().join("benches/node/client.js"))
            .current_dir(&dir)
            .env("APP_ID", "cli_a1b2c3d4e5f60718")
            .env("APP_SECRET", "bench-secret")
            .env("DOMAIN", &gw.base_url)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (is Node.js installed?)"),
        Client::Durable | Client::NoStore | Client::Base | Client::Postgres | Client::Postgres2 => {
            let store = if matches!(client, Client::Postgres | Client::Postgres2) {
                let schema = schema.map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "rc_bench_{}_{:x}",
                        std::process::id(),
                        rand::random::<u32>()
                    )
                });
                std::fs::write(dir.join("schema"), &schema).expect("schema name");
                format!(
                    "[store]\nurl = \"{}\"\nschema = \"{schema}\"\n",
                    pg_url().expect("PG")
                )
            } else if client != Client::NoStore && !(client == Client::Base && base_without_store())
            {
                format!(
                    "[store]\npath = \"roomcast.db\"\nsync = \"{}\"\n",
                    std::env::var("SYNC").unwrap_or_else(|_| "full".into())
                )
            } else {
                String::new()
            };
            let http = http
                .map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\nwebhook = true\nallow_unauthenticated = true\n"))
                .unwrap_or_default();
            let config = format!(
                "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\napp_secret_env = \"APP_SECRET\"\ndomain = \"{}\"\n[sync]\ninterval = \"off\"\n[display]\ntime_zone = \"Asia/Shanghai\"\n{store}{http}",
                gw.base_url
            );
            std::fs::write(dir.join("config.toml"), config).expect("config");
            let bin = if client == Client::Base {
                std::env::var("BASE_BIN").expect("BASE_BIN")
            } else {
                std::env::var("ROOMCAST_BIN")
                    .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomcast").to_string())
            };
            tokio::process::Command::new(bin)
                .args(["run", "--config", "config.toml", "--log", "warn"])
                .current_dir(&dir)
                .env("APP_SECRET", "bench-secret")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start roomcast")
        }
    };
    let pid = child.id().expect("pid");
    gw.wait_connections(before).await;
    Proc { child, pid, dir }
}

impl Proc {
    /// Peak RSS (KiB), then SIGTERM and wait. With `RSS_SPLIT=1` also
    /// prints what is resident now, anonymous (heap, stacks) and file
    /// (the executable's and libraries' pages).
    async fn stop(mut self) -> u64 {
        let rss = status_kib(self.pid, "VmHWM:");
        if std::env::var_os("RSS_SPLIT").is_some() {
            eprintln!(
                "  resident at the end: anon {:.1} MiB, file {:.1} MiB",
                status_kib(self.pid, "RssAnon:") as f64 / 1024.0,
                status_kib(self.pid, "RssFile:") as f64 / 1024.0
            );
        }
        if std::env::var("RSS_SPLIT").as_deref() == Ok("2") {
            eprintln!("  resident by mapping: {}", by_mapping(self.pid));
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait().await;
        if let (Ok(schema), Some(url)) =
            (std::fs::read_to_string(self.dir.join("schema")), pg_url())
        {
            let _ = std::process::Command::new("psql")
                .args([
                    url.as_str(),
                    "-q",
                    "-c",
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                ])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        rss
    }
}

/// Resident KiB per mapped file (and `[anon]`, `[heap]`, stacks), largest
/// first, from `/proc/<pid>/smaps`.
fn by_mapping(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut sizes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut name = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            name = words.nth(4).unwrap_or("[anon]").to_string();
        } else if first == "Rss:" {
            *sizes.entry(name.clone()).or_default() +=
                words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    let mut sizes: Vec<(String, u64)> = sizes.into_iter().filter(|(_, k)| *k >= 64).collect();
    sizes.sort_by_key(|(_, k)| std::cmp::Reverse(*k));
    sizes
        .iter()
        .map(|(n, k)| {
            format!(
                "{} {:.1} MiB",
                n.rsplit('/').next().unwrap_or(n),
                *k as f64 / 1024.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A v1 event body.
fn body(i: usize, kind: &str, uid: &str, start: i64, rooms: &str) -> String {
    format!(
        r#"{{"ts":"1.0","uuid":"bench-{i:012}","token":"t","type":"event_callback","event":{{"app_id":"cli_a1b2c3d4e5f60718","tenant_key":"k","type":"third_party_meeting_room_event_{kind}","event_time":"{}","uid":"{uid}","original_time":0,"start":{{"time_stamp":"{start}"}},"end":{{"time_stamp":"{}"}},"meeting_rooms":[{rooms}],"organizer":{{"open_id":"ou_{:032x}","union_id":"on_{:032x}"}}}}}}"#,
        1_777_000_000_000i64 + i as i64,
        start + 1_500_000,
        i % 3000,
        i % 3000
    )
}

/// A room reference as events carry it.
fn room_ref(i: usize) -> String {
    format!(r#"{{"open_id":"{}"}}"#, room(i))
}

/// `created` events of distinct bookings over 16 rooms, every 15 minutes
/// in each room from a fixed instant on.
fn growing(n: usize, salt: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let uid = format!("grow-{salt}-{i:08}-7f3c9a1e-4b2d-4e8f");
            let start = 1_796_000_000_000 + (i / 16) as i64 * 900_000;
            data_frame(
                i as u64,
                body(i, "created", &uid, start, &room_ref(i % 16)).as_bytes(),
            )
        })
        .collect()
}

/// 1,000 rooms × 20 bookings: the first 20,000 events book them, the rest
/// move them back and forth by a minute (every event applies).
fn updates(n: usize) -> Vec<Bytes> {
    const BOOKINGS: usize = 20_000;
    (0..n)
        .map(|i| {
            let b = i % BOOKINGS;
            let (r, slot) = (b % 1000, b / 1000);
            let kind = if i < BOOKINGS { "created" } else { "updated" };
            let shift = ((i / BOOKINGS) % 2) as i64 * 60_000;
            let start = 1_796_000_000_000 + slot as i64 * 1_800_000 + shift;
            let uid = format!("uid-{b:06}-7f3c9a1e-4b2d-4e8f");
            data_frame(
                i as u64,
                body(i, kind, &uid, start, &room_ref(r)).as_bytes(),
            )
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The disk's `fdatasync` latency where the stores live: overwrite one
/// 4 KiB page of a file and sync it, `n` times (as SQLite's WAL does once
/// the log wraps); median and p90, in ms.
fn fsync_latency(dir: &Path, n: usize) -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("probe file");
    f.write_all_at(&[0u8; 65536], 0).expect("write");
    f.sync_all().expect("sync");
    let page = [7u8; 4096];
    let mut lat: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f.write_all_at(&page, (i % 16) as u64 * 4096)
                .expect("write");
            f.sync_data().expect("fdatasync");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    lat.sort_by(|a, b| a.total_cmp(b));
    (lat[n / 2], lat[n * 9 / 10])
}

/// Poll `GET /healthz` over one keep-alive connection, one request every
/// millisecond, until `stop`; each request's latency.
fn poll_healthz(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect healthz");
        s.set_nodelay(true).expect("nodelay");
        let mut lat = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
                .expect("write");
            // Read one response: headers, then Content-Length bytes.
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "healthz connection closed");
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            lat.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(1));
        }
        lat
    })
}

/// With `PROFILE=DIR`: `perf record` the client while it is measured,
/// into `DIR/<client>.data`.
fn profile(pid: u32, client: Client) -> Option<std::process::Child> {
    let dir = std::env::var("PROFILE").ok()?;
    // PERF_CALLGRAPH=dwarf: call graphs through code without frame
    // pointers (the release build has none).
    let graph = std::env::var("PERF_CALLGRAPH").unwrap_or_else(|_| "fp".into());
    std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "2000",
            "--call-graph",
            &graph,
            "-p",
        ])
        .arg(pid.to_string())
        .arg("-o")
        .arg(format!("{dir}/{}.data", client.label().replace(' ', "-")))
        .spawn()
        .ok()
}

/// Store commits and the events they held, from roomcast's `/metrics`.
async fn commit_groups(port: u16) -> (u64, u64) {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        value("roomcast_store_commits_total "),
        value("roomcast_store_committed_total "),
    )
}

/// Bytes the process has caused to be written to storage so far
/// (`/proc/PID/io` `write_bytes`: what reached the block layer).
fn storage_writes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `/healthz` while a durable burst runs, then while 40,000-room events
/// are pushed to the webhook; memory before and after.
async fn health_under_load(gw: &mut LeanGateway, events: usize) {
    let port = free_port();
    let p = start(gw, Client::Durable, Some(port)).await;
    let frames = Arc::new(growing(events, 99));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_healthz(port, stop.clone());
    let blast = gw.blast(frames, 64).await.expect("blast finished");
    stop.store(true, Ordering::Relaxed);
    let mut lat = poller.join().expect("poller");
    lat.sort();
    println!(
        "healthz during a durable burst (growing, window 64, {events} events, {:.0} events/s): {} requests, p50 {}, p99 {}, max {}",
        blast.ok as f64 / blast.secs,
        lat.len(),
        fmt_ms(quantile(&lat, 0.5)),
        fmt_ms(quantile(&lat, 0.99)),
        fmt_ms(lat.last().copied().unwrap_or_default()),
    );

    let rooms: Vec<String> = (0..40_000)
        .map(|i| format!(r#"{{"open_id":"omm_{i:05}"}}"#))
        .collect();
    let rooms = rooms.join(",");
    let rss_before = status_kib(p.pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_healthz(port, stop.clone());
    roomcast::tls::init();
    let client = reqwest::Client::new();
    let mut posts = Vec::new();
    for k in 0..5 {
        let b = body(
            10_000_000 + k,
            "created",
            &format!("flood-{k}"),
            1_796_000_000_000,
            &rooms,
        );
        let t = Instant::now();
        let r = client
            .post(format!("http://127.0.0.1:{port}/webhook/event"))
            .body(b.clone())
            .send()
            .await
            .expect("post");
        posts.push((r.status().as_u16(), t.elapsed(), b.len()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = poller.join().expect("poller");
    lat.sort();
    let rss_after = status_kib(p.pid, "VmRSS:");
    let peak = p.stop().await;
    println!(
        "healthz during five 40,000-room webhook pushes ({} KB each; answered {:?} in {}): {} requests, p50 {}, p99 {}, max {}; RSS before {:.1} MiB, after {:.1} MiB, peak {:.1} MiB",
        posts[0].2 / 1000,
        posts.iter().map(|p| p.0).collect::<Vec<_>>(),
        posts
            .iter()
            .map(|p| fmt_ms(p.1))
            .collect::<Vec<_>>()
            .join(" / "),
        lat.len(),
        fmt_ms(quantile(&lat, 0.5)),
        fmt_ms(quantile(&lat, 0.99)),
        fmt_ms(lat.last().copied().unwrap_or_default()),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
}

/// The floor: a client that reads each frame, decodes it and writes its
/// ack — no JSON, no state, no disk, acks of what was read together in one
/// write. What the gateway and the machine allow any client of this
/// protocol; run as its own process (`intake --floor URL`).
async fn floor(base: &str) {
    use futures_util::{FutureExt, SinkExt, StreamExt};
    use roomcast::lark::frame::{Frame, METHOD_DATA};
    use tokio_tungstenite::tungstenite::Message;
    roomcast::tls::init();
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/callback/ws/endpoint"))
        .body("{}")
        .send()
        .await
        .expect("endpoint")
        .json()
        .await
        .expect("endpoint JSON");
    let url = r["data"]["URL"].as_str().expect("URL").to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("connect");
    while let Some(Ok(first)) = ws.next().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            if let Message::Binary(b) = &msg
                && let Ok(f) = Frame::from_bytes(b)
                && f.method == METHOD_DATA
                && ws
                    .feed(Message::Binary(f.ack(200, 0).to_bytes().into()))
                    .await
                    .is_err()
            {
                return;
            }
            next = ws.next().now_or_never().flatten().and_then(Result::ok);
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor") {
        floor(args.get(i + 1).expect("--floor URL")).await;
        return;
    }
    // `cargo test --benches` passes no `--bench`: a tiny smoke run only.
    let benching = std::env::args().any(|a| a == "--bench");
    let events = env_or("EVENTS", if benching { 100_000 } else { 500 });
    let w1_events = env_or("W1_EVENTS", if benching { 3_000 } else { 50 });
    let runs = env_or("RUNS", if benching { 3 } else { 1 });
    let windows: Vec<usize> = std::env::var("WINDOWS")
        .unwrap_or_else(|_| "1,64,256".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let only = std::env::var("ONLY").ok();
    let with_node = benching && std::env::var("NODE").as_deref() != Ok("0") && node_ready();
    let mut clients = vec![Client::Floor, Client::Durable, Client::NoStore];
    if std::env::var_os("BASE_BIN").is_some() {
        clients.push(Client::Base);
    }
    if pg_url().is_some() {
        clients.push(Client::Postgres);
        clients.push(Client::Postgres2);
    }
    if with_node {
        clients.insert(1, Client::Node);
    } else if benching {
        eprintln!("the Node SDK is not installed (npm failed, or NODE=0): roomcast alone");
    }
    roomcast::tls::init();
    let mut gw = LeanGateway::start();
    // The second instance's gateway (Client::Postgres2).
    let mut gw2 = LeanGateway::start();

    let probe = temp_dir();
    let (f50, f90) = fsync_latency(&probe, if benching { 500 } else { 20 });
    let _ = std::fs::remove_dir_all(&probe);
    println!(
        "disk: fdatasync of a 4 KiB overwrite in {}: median {f50:.3} ms, p90 {f90:.3} ms → one commit per event bounds window 1 at {:.0} events/s",
        std::env::temp_dir().display(),
        1000.0 / f50
    );

    for (name, make) in [
        (
            "growing",
            &(|n: usize, run: usize| growing(n, run)) as &dyn Fn(usize, usize) -> Vec<Bytes>,
        ),
        ("updates", &|n: usize, _run: usize| updates(n)),
    ] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for &window in &windows {
            let n = if window == 1 { w1_events } else { events };
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
            let mut rss: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
            let mut groups: Vec<(u64, u64)> = Vec::new();
            let mut written: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
            // CPU time (user + system) of the client process an event:
            // what a busy machine changes least.
            let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
            for run in 0..runs {
                // Each run's events are new bookings for every client
                // (distinct uids per run), built before any is timed.
                let frames = Arc::new(make(n, run));
                for (c, &client) in clients.iter().enumerate() {
                    if client == Client::Postgres2 {
                        let (b, cpu_used, peak) = pair(&mut gw, &mut gw2, &frames, window).await;
                        assert_eq!(b.other, 0, "{}: every ack is a 200", client.label());
                        rates[c].push(b.ok as f64 / b.secs);
                        cpu[c].push(cpu_used * 1000.0 / b.ok as f64);
                        rss[c].push(peak as f64 / 1024.0);
                        continue;
                    }
                    // A stalled connection (seen once in many runs, with
                    // every client) is reported and the run repeated with
                    // a fresh process.
                    let mut attempt = 0;
                    let (b, p) = loop {
                        attempt += 1;
                        let port = (client == Client::Durable).then(free_port);
                        let p = start(&mut gw, client, port).await;
                        let perf = profile(p.pid, client);
                        let cpu_before = cpu_ms(p.pid);
                        let b = gw.blast(frames.clone(), window).await;
                        let cpu_used = cpu_ms(p.pid) - cpu_before;
                        if let Some(mut perf) = perf {
                            let _ = std::process::Command::new("kill")
                                .args(["-INT", &perf.id().to_string()])
                                .status();
                            let _ = perf.wait();
                        }
                        match b {
                            Some(b) => {
                                if let Some(port) = port {
                                    groups.push(commit_groups(port).await);
                                }
                                if matches!(client, Client::Durable | Client::Base) {
                                    written[c].push(storage_writes(p.pid) as f64 / b.ok as f64);
                                }
                                cpu[c].push(cpu_used * 1000.0 / b.ok as f64);
                                break (b, p);
                            }
                            None if attempt < 3 => {
                                eprintln!("{}: run repeated after a stalled blast", client.label());
                                p.stop().await;
                            }
                            None => panic!("{}: three stalled blasts", client.label()),
                        }
                    };
                    assert_eq!(b.other, 0, "{}: every ack is a 200", client.label());
                    rates[c].push(b.ok as f64 / b.secs);
                    rss[c].push(p.stop().await as f64 / 1024.0);
                }
            }
            let node = clients
                .iter()
                .position(|c| *c == Client::Node)
                .map(|i| median(rates[i].clone()));
            if let Some(&(commits, events)) = groups.last() {
                println!(
                    "  durable commits (last run): {commits}, {:.1} events a commit",
                    events as f64 / commits.max(1) as f64
                );
            }
            for (c, client) in clients.iter().enumerate() {
                if !written[c].is_empty() {
                    let w = median(written[c].clone());
                    println!(
                        "  {} storage writes: median {w:.0} bytes an event ({:.2} pages of 4 KiB)",
                        client.label(),
                        w / 4096.0
                    );
                }
                let m = median(rates[c].clone());
                let ratio = node
                    .filter(|_| *client != Client::Node)
                    .map(|nd| format!(" = {:.1}× Node", m / nd))
                    .unwrap_or_default();
                println!(
                    "intake [{name}, window {window}, {n} events, {runs} runs] {:<18} median {m:>8.0} events/s{ratio} (runs: {}); peak RSS median {:.1} MiB (max {:.1}); CPU {:.1} µs an event",
                    client.label(),
                    rates[c]
                        .iter()
                        .map(|r| format!("{r:.0}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    median(rss[c].clone()),
                    rss[c].iter().cloned().fold(0.0, f64::max),
                    median(cpu[c].clone()),
                );
            }
        }
    }
    if only.is_none() || only.as_deref() == Some("health") {
        health_under_load(&mut gw, events).await;
    }
}
