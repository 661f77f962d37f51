//! The one test harness: [`bot::TestBot`] starts roomcast, [`gateway`] is
//! the fake Feishu/Lark gateway, [`fake_sinks`] the fake chat and panel
//! endpoints; below, temp dirs and event bodies built in code.

#![allow(dead_code)]

pub mod bot;
pub mod cut;
pub mod fake_platform;
pub mod fake_sinks;
pub mod gateway;
pub mod pg_server;

pub use bot::{TestBot, lark_config};
pub use fake_sinks::{DING_SECRET, FEISHU_SECRET, Fake, Hit, Reply, test_clock};

use std::future::Future;
use std::path::{Path, PathBuf};

use serde_json::json;

pub const ROOM_A: &str = "omm_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const ROOM_B: &str = "omm_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "roomcast-it-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A v1 meeting-room event body.
pub fn event(
    kind: &str,
    uuid: &str,
    event_ms: i64,
    key: (&str, i64),
    span: (i64, i64),
    rooms: &[&str],
) -> String {
    let ((uid, original_time), (start_ms, end_ms)) = (key, span);
    json!({
        "ts": format!("{}.0", event_ms / 1000),
        "uuid": uuid,
        "token": "tok",
        "type": "event_callback",
        "event": {
            "app_id": "cli_a1b2c3d4e5f60718",
            "tenant_key": "t",
            "type": format!("third_party_meeting_room_event_{kind}"),
            "event_time": event_ms.to_string(),
            "uid": uid,
            "original_time": original_time,
            "start": {"time_stamp": start_ms.to_string()},
            "end": {"time_stamp": end_ms.to_string()},
            "meeting_rooms": rooms.iter().map(|r| json!({"open_id": r})).collect::<Vec<_>>(),
            "organizer": {"open_id": "ou_organizer"}
        }
    })
    .to_string()
}

/// Epoch ms of a UTC wall time.
pub fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

pub fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Lines of a JSONL file as JSON values.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Run a Python script (an independent parser: Prometheus' OpenMetrics
/// parser, `icalendar`) on `input` and read the JSON it prints; fails the
/// test, showing `input`, when the script does (`who`: "the parser refused
/// /metrics").
pub fn python_json(script: &str, input: &str, who: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{who}: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// Send `signal` (`TERM`, `HUP`, …) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Await `fut` in paused time without letting the clock leap: while it
/// waits, the clock moves 1 ms per turn of the runtime, which is never
/// idle, so work on other threads (the store's writer, fsync) costs
/// milliseconds of test time, not a jump to the next timer (tokio's
/// auto-advance) — which could be an hour or a test's own deadline.
/// Panics after 60 s of real time.
pub async fn steady<F: Future>(fut: F) -> F::Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            () = tokio::time::advance(std::time::Duration::from_millis(1)) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "steady: still waiting after 60 s of real time"
                );
            }
        }
    }
}

/// A PostgreSQL schema of its own for one test on the machine's server
/// (127.0.0.1:5432, or `ROOMCAST_TEST_PG`), dropped when it goes.
pub struct PgSchema {
    pub url: String,
    pub schema: String,
}

impl PgSchema {
    pub fn new() -> PgSchema {
        PgSchema {
            url: std::env::var("ROOMCAST_TEST_PG").unwrap_or_else(|_| {
                "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into()
            }),
            schema: format!("rc_it_{}_{:x}", std::process::id(), rand::random::<u32>()),
        }
    }

    /// The `[store]` keys that point at it.
    pub fn store_keys(&self) -> String {
        format!("url = \"{}\"\nschema = \"{}\"\n", self.url, self.schema)
    }

    /// Run SQL on a connection of its own; the rows of the last statement.
    pub fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (url, sql) = (self.url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("the test database (PostgreSQL on 127.0.0.1:5432) is reachable");
                tokio::spawn(conn);
                let mut rows = Vec::new();
                for m in c.simple_query(&sql).await.unwrap() {
                    if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                        rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                    }
                }
                rows
            })
        })
        .join()
        .unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Polls `cond` every 20 ms until it holds, for what runs on real time
/// (other processes, the database's clock, its notifications); panics
/// with `what` after `limit`.
pub async fn until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
