//! What the benches that run roomcast's release binary against the fake
//! gateway share: starting and stopping it, feeding events with a window
//! in flight or at a steady rate, and reading its memory and CPU from
//! `/proc`. (A directory module, so Cargo does not take it for a bench.)
//! Each bench declares `mod gateway` (the tests' fake) before `mod support`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::gateway::{Gateway, Order};

mod common;
pub use common::*;

/// roomcast's release binary, connected to the fake gateway.
pub struct Roomcast {
    pub child: tokio::process::Child,
    pub pid: u32,
    dir: PathBuf,
}

impl Roomcast {
    /// Start it on a config with the long connection to `gw` as its source
    /// and `rest` (TOML) after that; returns once it has connected. `LOG`
    /// sets its log level (default `warn`); `ROOMCAST_BIN` runs another
    /// build of roomcast (an A/B against an older commit, same harness).
    pub async fn start(gw: &Gateway, rest: &str) -> Roomcast {
        Roomcast::start_with_secret(gw, rest, "bench-secret").await
    }

    /// [`Roomcast::start`] with this app secret.
    pub async fn start_with_secret(gw: &Gateway, rest: &str, secret: &str) -> Roomcast {
        let dir = std::env::temp_dir().join(format!(
            "roomcast-bench-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Several may connect to one gateway (its cluster mode).
        let before = gw.with(|g| g.connections);
        let config = format!(
            "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\napp_secret_env = \"APP_SECRET\"\ndomain = \"{}\"\n{}{rest}",
            gw.base_url(),
            if rest.contains("[sync]") {
                ""
            } else {
                "[sync]\ninterval = \"off\"\n"
            }
        );
        std::fs::write(dir.join("config.toml"), config).expect("config");
        let bin = std::env::var("ROOMCAST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_roomcast").to_string());
        let child = tokio::process::Command::new(bin)
            .args([
                "run",
                "--config",
                "config.toml",
                "--log",
                &std::env::var("LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .current_dir(&dir)
            .env("APP_SECRET", secret)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start roomcast");
        let pid = child.id().expect("pid");
        gw.wait("connected", |g| g.connections > before).await;
        Roomcast { child, pid, dir }
    }

    /// SIGTERM (a graceful stop), then wait for it; returns its peak RSS
    /// in KiB, read just before.
    pub async fn stop(mut self) -> u64 {
        let rss = status_kib(self.pid, "VmHWM:");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        rss
    }
}

/// Send events `from..from + n` (bodies from `body`) keeping at most
/// `window` unacknowledged, until all are acknowledged.
pub async fn send_windowed<S: AsRef<str>>(
    gw: &Gateway,
    from: usize,
    n: usize,
    window: usize,
    body: impl Fn(usize) -> S,
) {
    let acked0 = gw.with(|g| g.ack_count) as usize;
    let mut sent = 0;
    while sent < n {
        let acked = gw.with(|g| g.ack_count) as usize - acked0;
        while sent < n && sent - acked < window {
            gw.send_event(body(from + sent).as_ref(), 1, Order::InOrder);
            sent += 1;
        }
        gw.wait("acks", |g| g.ack_count as usize - acked0 > acked)
            .await;
    }
    gw.wait("all acks", |g| g.ack_count as usize - acked0 >= n)
        .await;
}

/// Send events `from..from + n` at 1,000 a second; returns when each left.
pub async fn send_steady<S: AsRef<str>>(
    gw: &Gateway,
    from: usize,
    n: usize,
    body: impl Fn(usize) -> S,
) -> Vec<Instant> {
    send_steady_at(gw, from, n, 1000, body).await
}

/// Send events `from..from + n` at `rate` a second; returns when each left.
pub async fn send_steady_at<S: AsRef<str>>(
    gw: &Gateway,
    from: usize,
    n: usize,
    rate: usize,
    body: impl Fn(usize) -> S,
) -> Vec<Instant> {
    let mut sent_at = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in from..from + n {
        let b = body(i);
        tick.tick().await;
        sent_at.push(Instant::now());
        gw.send_event(b.as_ref(), 1, Order::InOrder);
    }
    sent_at
}

/// Event `i` of a stream of updates over `rooms` rooms: room `i % rooms`'s
/// one booking, in progress now and ending `2 + i / rooms` minutes after
/// `base_ms` (each update shows a different end: the page's `data-end`).
/// Returns the body and that end.
pub fn update_event(i: usize, rooms: usize, base_ms: i64, prefix: &str) -> (String, i64) {
    let r = i % rooms;
    let end = base_ms + (2 + (i / rooms) as i64) * 60_000;
    let b = format!(
        r#"{{"ts":"1.0","uuid":"{prefix}-{i:09}","token":"t","type":"event_callback","event":{{"type":"third_party_meeting_room_event_updated","event_time":"{}","uid":"uid-{r}","original_time":0,"start":{{"time_stamp":"{}"}},"end":{{"time_stamp":"{end}"}},"meeting_rooms":[{{"open_id":"{}"}}],"organizer":{{"open_id":"ou_b"}}}}}}"#,
        1_777_000_000_000i64 + i as i64,
        base_ms - 600_000,
        room(r)
    );
    (b, end)
}

/// A free local port, and the config for an HTTP server there with
/// `rooms` rooms named `Room 0…`.
pub fn http_with_rooms(rooms: usize) -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut rest =
        format!("[display]\ntime_zone = \"UTC\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n");
    for i in 0..rooms {
        rest.push_str(&format!(
            "[[rooms]]\nid = \"{}\"\nname = \"Room {i}\"\n",
            room(i)
        ));
    }
    (port, rest)
}

/// Open a server-sent event stream at each URL; `on(i, block, at)` sees
/// each block of stream `i` whose event is `event`, with when it arrived.
/// Returns once every stream has delivered its first such block.
pub async fn open_streams(
    urls: Vec<String>,
    event: &'static str,
    on: impl Fn(usize, &str, Instant) + Clone + Send + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::new();
    let ready = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let n = urls.len();
    let mut tasks = Vec::new();
    for (i, url) in urls.into_iter().enumerate() {
        let (client, ready, on) = (client.clone(), ready.clone(), on.clone());
        let prefix = format!("event: {event}");
        tasks.push(tokio::spawn(async move {
            let mut resp = client.get(url).send().await.expect("event stream");
            let mut buf = String::new();
            let mut first = true;
            while let Ok(Some(chunk)) = resp.chunk().await {
                let at = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if !block.starts_with(&prefix) {
                        continue;
                    }
                    if first {
                        first = false;
                        ready.add_permits(1);
                    }
                    on(i, &block, at);
                }
            }
        }));
    }
    let _all = ready
        .acquire_many(n as u32)
        .await
        .expect("every stream connected");
    tasks
}

/// The first `data-end="…"` (epoch ms) in a rendering.
pub fn data_end(s: &str) -> Option<i64> {
    s.split("data-end=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .and_then(|t| t.parse().ok())
}
