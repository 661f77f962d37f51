//! Several roomcast processes on one PostgreSQL store (issue 16), against
//! the fake gateway in cluster mode: each event goes to one connection
//! chosen at random, and what is not acknowledged is pushed again to
//! another, as the platform does. Each process is the real binary, stopped
//! with SIGTERM or killed with SIGKILL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gateway::{Gateway, Order};
use crate::support::*;

/// One `roomcast run` process in a folder of its own.
struct Instance {
    child: Child,
    dir: PathBuf,
}

impl Instance {
    fn start(config: &str, n: usize) -> Instance {
        let dir = temp_dir(&format!("ha-{n}"));
        write(&dir.join("config.toml"), config);
        let log = std::fs::File::create(dir.join("roomcast.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args(["run"])
            .current_dir(&dir)
            .env("APP_SECRET", "s3cret")
            .env("RUST_LOG", "roomcast=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Instance { child, dir }
    }

    /// SIGTERM, and its exit code.
    fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("roomcast.log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh schema, the gateway in cluster mode, the fake sinks.
async fn cluster() -> (PgSchema, Gateway, Fake) {
    let pg = PgSchema::new();
    let gw = Gateway::start().await;
    gw.with(|g| {
        g.spread = true;
        g.record_acks = false;
    });
    let sink = Fake::start(std::sync::Arc::new(chrono::Utc::now)).await;
    (pg, gw, sink)
}

/// SIGTERM to each; each exits 0.
fn stop_all(instances: Vec<Instance>) {
    for i in instances {
        let log = i.log();
        assert_eq!(i.stop(), Some(0), "{log}");
    }
}

/// Who holds lease `name` now.
fn lease_owner(pg: &PgSchema, name: &str) -> Option<String> {
    pg.sql(&format!(
        "SELECT owner FROM {}.lease WHERE name = '{name}' AND until > now()",
        pg.schema
    ))
    .first()
    .and_then(|r| r[0].clone())
}

/// The process holding lease `name` now (its owner is `host:pid:…`),
/// taken out of `instances`.
fn holder(pg: &PgSchema, name: &str, instances: &mut Vec<Instance>) -> Option<Instance> {
    let pid: u32 = lease_owner(pg, name)?.split(':').nth(1)?.parse().ok()?;
    let at = instances.iter().position(|i| i.child.id() == pid)?;
    Some(instances.remove(at))
}

/// The config each process runs: the gateway, the shared store, a lease of
/// 3 s, a webhook sink on the fake.
fn config(gw: &Gateway, pg: &PgSchema, sink: &str) -> String {
    lark_config(
        &gw.base_url(),
        &format!(
            "[store]\n{}[ha]\nlease = \"3s\"\n[[sinks]]\nname = \"wh\"\nkind = \"webhook\"\nurl = \"{sink}/webhook/in\"\n",
            pg.store_keys()
        ),
    )
}

/// 40 bookings, each created then moved twice (event times rising per
/// booking), and every fifth one cancelled: the events, and each booking's
/// expected final state (start ms, or `None` if cancelled).
fn workload() -> (Vec<String>, BTreeMap<String, Option<i64>>) {
    let base = ms(2026, 12, 1, 0, 0);
    let mut events = Vec::new();
    let mut expected = BTreeMap::new();
    for b in 0..40i64 {
        let uid = format!("ha-{b:03}");
        let mut last = None;
        for (step, kind) in ["created", "updated", "updated", "deleted"]
            .iter()
            .enumerate()
        {
            if *kind == "deleted" && b % 5 != 0 {
                continue;
            }
            let start = base + b * 3_600_000 + step as i64 * 900_000;
            events.push(event(
                kind,
                &format!("ev-{b}-{step}"),
                ms(2026, 11, 1, 0, 0) + b * 100 + step as i64,
                (&uid, 0),
                (start, start + 1_800_000),
                &[ROOM_A],
            ));
            last = (*kind != "deleted").then_some(start);
        }
        expected.insert(uid, last);
    }
    (events, expected)
}

/// Push again what has no ack yet, as the platform does, until every event
/// is acknowledged.
async fn until_all_acked(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if gw.with(|g| g.unacked.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "events left unacknowledged");
        gw.redeliver();
    }
}

/// Each booking's state in the database: start ms, `None` if cancelled.
fn stored(pg: &PgSchema) -> BTreeMap<String, Option<i64>> {
    pg.sql(&format!(
        "SELECT uid, start_ms, deleted FROM {}.bookings",
        pg.schema
    ))
    .into_iter()
    .map(|r| {
        let uid = r[0].clone().unwrap_or_default();
        let deleted = r[2].as_deref() == Some("t");
        let start = r[1].as_deref().and_then(|s| s.parse().ok());
        (uid, if deleted { None } else { start })
    })
    .collect()
}

/// The webhook's notices queued in the database, and how many are not
/// finished yet.
fn queued(pg: &PgSchema) -> (Vec<String>, usize) {
    let rows = pg.sql(&format!(
        "SELECT idempotency_key, state FROM {}.outbox WHERE sink = 'wh' ORDER BY id",
        pg.schema
    ));
    let open = rows
        .iter()
        .filter(|r| r[1].as_deref() == Some("pending"))
        .count();
    (
        rows.into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect(),
        open,
    )
}

/// How many times the webhook received each key.
fn received(sink: &Fake) -> BTreeMap<String, usize> {
    let mut by_key = BTreeMap::new();
    for h in sink.hits("webhook") {
        *by_key
            .entry(
                h.headers
                    .get("idempotency-key")
                    .cloned()
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    by_key
}

/// Three processes taking the events the gateway spreads over their
/// connections: every event acknowledged, the stored schedule the
/// expected one, every queued notice delivered exactly once (one sink
/// owner sends it), each process stopping cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_events_and_send_each_notice_once() {
    let (pg, gw, sink) = cluster().await;
    let cfg = config(&gw, &pg, &sink.base);
    let instances: Vec<Instance> = (0..3).map(|n| Instance::start(&cfg, n)).collect();
    gw.wait("three connections", |g| g.live.len() == 3).await;
    let (events, expected) = workload();
    for e in &events {
        gw.send_event(e, 1, Order::InOrder);
    }
    until_all_acked(&gw).await;
    let spread = gw.with(|g| g.sent_to.clone());
    assert_eq!(spread.len(), 3, "every connection got events: {spread:?}");
    assert_eq!(stored(&pg), expected);
    until("every notice delivered", Duration::from_secs(30), || {
        queued(&pg).1 == 0
    })
    .await;
    let (keys, _) = queued(&pg);
    let got = received(&sink);
    assert!(!keys.is_empty());
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        {
            let mut k = keys.clone();
            k.sort();
            k
        },
        "every queued notice reached the webhook"
    );
    assert!(
        got.values().all(|n| *n == 1),
        "each exactly once: {:?}",
        got.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    // What an operator asks: who leads, who sends for which sink.
    let doctor = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["doctor", "--config", "config.toml"])
        .current_dir(&instances[0].dir)
        .env("APP_SECRET", "s3cret")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    // `host:PID:tag (leader, epoch N…`: one of the three leads.
    let leader_pid: Option<u32> = said
        .split(" (leader, epoch ")
        .next()
        .filter(|_| said.contains(" (leader, epoch "))
        .and_then(|before| before.rsplit([' ', ',']).next())
        .and_then(|owner| owner.split(':').nth(1))
        .and_then(|pid| pid.parse().ok());
    assert!(
        leader_pid.is_some_and(|pid| instances.iter().any(|i| i.child.id() == pid)),
        "{said}"
    );
    let sends_wh = said
        .split("sinks ")
        .skip(1)
        .filter_map(|t| t.split(')').next())
        .any(|list| list.split(", ").any(|s| s == "wh"));
    assert!(sends_wh, "some instance sends for `wh`: {said}");
    stop_all(instances);
}

/// One of three processes killed (SIGKILL) mid-burst — the one sending
/// the webhook's notices, while the webhook has it waiting (503 with
/// `Retry-After: 30`): its unacknowledged events are pushed to the others,
/// its sink's lease passes on after `[ha] lease`, and the notices it had
/// claimed are claimed again and sent by the next owner, each accepted
/// once under its key (the one in flight was refused, not delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_burst_loses_nothing() {
    let (pg, gw, sink) = cluster().await;
    sink.script("webhook", vec![Reply::RetryAfter(503, 30)]);
    let cfg = config(&gw, &pg, &sink.base);
    let mut instances: Vec<Instance> = (0..3).map(|n| Instance::start(&cfg, n)).collect();
    gw.wait("three connections", |g| g.live.len() == 3).await;
    until("the webhook's lease taken", Duration::from_secs(20), || {
        lease_owner(&pg, "sink:wh").is_some()
    })
    .await;
    let (events, expected) = workload();
    let (first, rest) = events.split_at(events.len() / 2);
    for e in first {
        gw.send_event(e, 1, Order::InOrder);
    }
    until(
        "the owner is held by the webhook",
        Duration::from_secs(20),
        || !sink.hits("webhook").is_empty(),
    )
    .await;
    // The process sending the webhook's notices.
    let mut killed = holder(&pg, "sink:wh", &mut instances).expect("the owner is one of ours");
    let pid = killed.child.id();
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    for e in rest {
        gw.send_event(e, 1, Order::InOrder);
    }
    until_all_acked(&gw).await;
    assert_eq!(stored(&pg), expected);
    until(
        "every notice delivered after the lease passed on",
        Duration::from_secs(60),
        || queued(&pg).1 == 0,
    )
    .await;
    let (keys, _) = queued(&pg);
    let mut want = keys.clone();
    want.sort();
    let mut ok: BTreeMap<String, usize> = BTreeMap::new();
    for h in sink.hits("webhook").iter().filter(|h| h.verdict == "ok") {
        *ok.entry(
            h.headers
                .get("idempotency-key")
                .cloned()
                .unwrap_or_default(),
        )
        .or_default() += 1;
    }
    assert_eq!(ok.keys().cloned().collect::<Vec<_>>(), want);
    assert!(ok.values().all(|n| *n == 1), "{ok:?}");
    let taken_over = pg.sql(&format!(
        "SELECT count(*) FROM {}.outbox WHERE sink = 'wh' AND claims > 1 AND claimed_by NOT LIKE '%:{pid}:%'",
        pg.schema
    ));
    assert_ne!(
        taken_over[0][0].as_deref(),
        Some("0"),
        "the killed owner's claims were taken over"
    );
    stop_all(instances);
}

/// The leader killed (SIGKILL) before the clock's next work is due: the
/// other instance takes the leader's lease after `[ha] lease` and makes
/// the booking's reminder and its start's panel push — each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_neither_skips_nor_repeats_the_clocks_work() {
    let (pg, gw, sink) = cluster().await;
    let config = format!(
        r#"[source]
kind = "lark"
[platform]
app_id = "cli_a1b2c3d4e5f60718"
app_secret_env = "APP_SECRET"
domain = "{}"
[sync]
interval = "off"
[display]
time_zone = "Asia/Shanghai"
locale = "en"
[store]
{}[ha]
lease = "3s"
[[rooms]]
id = "{ROOM_A}"
name = "Alpha"
panels = ["pn"]
[[sinks]]
name = "wh"
kind = "webhook"
url = "{}/webhook/in"
reminders = ["6s"]
[[sinks]]
name = "pn"
kind = "panel"
url = "{}/panel/{{room}}"
"#,
        gw.base_url(),
        pg.store_keys(),
        sink.base,
        sink.base
    );
    let mut instances: Vec<Instance> = (0..2).map(|n| Instance::start(&config, n)).collect();
    gw.wait("two connections", |g| g.live.len() == 2).await;
    until("a leader", Duration::from_secs(20), || {
        lease_owner(&pg, "leader").is_some()
    })
    .await;
    // A booking starting in 16 s: its reminder is due in 10 s, its
    // start's panel push in 16 s (whole seconds: the clock pushes on
    // them).
    let now = chrono::Utc::now().timestamp_millis();
    let start = (now / 1000 + 16) * 1000;
    gw.send_event(
        &event(
            "created",
            "ev-soon",
            now,
            ("soon", 0),
            (start, start + 1_800_000),
            &[ROOM_A],
        ),
        1,
        Order::InOrder,
    );
    until_all_acked(&gw).await;
    let mut killed = holder(&pg, "leader", &mut instances).expect("the leader is one of ours");
    killed.child.kill().unwrap();
    let _ = killed.child.wait();
    assert!(
        chrono::Utc::now().timestamp_millis() < start - 6_000,
        "killed before the reminder was due"
    );
    let reminders = || {
        sink.hits("webhook")
            .iter()
            .filter(|h| {
                h.headers
                    .get("x-roomcast-event")
                    .is_some_and(|e| e.starts_with("reminder:"))
            })
            .count()
    };
    let clock_pushes = || {
        sink.hits("panel")
            .iter()
            .filter(|h| {
                h.headers
                    .get("x-roomcast-event")
                    .is_some_and(|e| e.starts_with("clock:"))
            })
            .count()
    };
    until(
        "the reminder, from the new leader",
        Duration::from_secs(40),
        || reminders() >= 1,
    )
    .await;
    until("the start's panel push", Duration::from_secs(40), || {
        clock_pushes() >= 1
    })
    .await;
    let survivor = instances.remove(0);
    let log = survivor.log();
    assert!(log.contains("took the leader's lease"), "{log}");
    assert_eq!(survivor.stop(), Some(0), "{log}");
    assert_eq!(reminders(), 1, "the reminder once");
    assert_eq!(clock_pushes(), 1, "the start's push once");
}
