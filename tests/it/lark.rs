//! The long connection end to end: fake gateway → roomcast → file sink.

use std::time::Duration;

use roomcast::app::AppError;
use roomcast::lark::frame::{Frame, Header, METHOD_DATA};
use roomcast::metrics::Summary;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::gateway::*;
use crate::support::*;

pub const SECRET: &str = "s3cr3t-app-secret-value";

/// roomcast against a fake gateway, writing notices to a JSONL file.
async fn start(gw: &Gateway, extra: &str) -> TestBot {
    TestBot::builder()
        .tag("lark")
        .config(lark_config(&gw.base_url(), extra))
        .env("APP_SECRET", SECRET)
        .start()
        .await
}

/// Request shutdown, wait for the app to finish, read its notices.
async fn stop(bot: TestBot) -> (Result<Summary, AppError>, Vec<Value>) {
    let dir = bot.dir.clone();
    let r = bot.stop().await;
    (r, jsonl(&dir.join("notices.jsonl")))
}

fn ev(uuid: &str, uid: &str, start_h: u32) -> String {
    event(
        "created",
        uuid,
        ms(2026, 5, 1, 0, 0),
        (uid, 0),
        (ms(2026, 5, 1, start_h, 0), ms(2026, 5, 1, start_h + 1, 0)),
        &[ROOM_A],
    )
}

fn uuids(notices: &[Value]) -> Vec<String> {
    notices
        .iter()
        .map(|n| n["event_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn events_are_received_applied_rendered_and_acked_once() {
    let gw = Gateway::start().await;
    let bot = start(&gw, "").await;
    gw.wait("a ping", |g| !g.pings.is_empty()).await;
    let (conn, ping) = gw.with(|g| g.pings[0].clone());
    assert_eq!(
        (conn, ping.service, ping.header("type")),
        (1, SERVICE_ID, Some("ping"))
    );

    let calls = gw.with(|g| g.endpoint_calls.clone());
    assert_eq!(calls[0]["AppID"], "cli_a1b2c3d4e5f60718");
    assert_eq!(calls[0]["AppSecret"], SECRET);
    assert_eq!(calls[0]["_locale_header"], "zh");

    let one = gw.send_event(&ev("uuid-1", "m1", 2), 1, Order::InOrder);
    let three = gw.send_event(&ev("uuid-2", "m2", 4), 3, Order::Reversed);
    gw.wait("two acks", |g| g.unacked.is_empty()).await;
    for id in [&one, &three] {
        let acks = gw.acks_for(id);
        assert_eq!(acks.len(), 1, "exactly one ack for {id}");
        assert_eq!(acks[0].code, 200);
        let rt: i64 = acks[0].frame.header("biz_rt").unwrap().parse().unwrap();
        assert!((0..3000).contains(&rt), "acked within 3 s: {rt}");
        assert_eq!(acks[0].frame.method, METHOD_DATA);
        assert_eq!(
            acks[0]
                .frame
                .header("trace_id")
                .map(|t| t.starts_with("trace-")),
            Some(true)
        );
    }
    // The fragmented event was completed by its first fragment (sent last).
    assert_eq!(gw.acks_for(&three)[0].frame.header("seq"), Some("0"));

    let (r, notices) = stop(bot).await;
    let s = r.expect("clean shutdown");
    assert_eq!(s.applied, 2);
    assert_eq!(uuids(&notices), ["uuid-1", "uuid-2"]);
    assert_eq!(
        notices[0]["body"]["booking"]["time_range"], "10:00–11:00",
        "rendered in Shanghai time"
    );
}

#[tokio::test]
async fn a_dropped_connection_loses_nothing_and_duplicates_nothing() {
    let gw = Gateway::start().await;
    let bot = start(&gw, "").await;
    gw.wait("connected", |g| g.connections == 1).await;
    for i in 0..10 {
        gw.send_event(
            &ev(&format!("u{i}"), &format!("m{i}"), 1),
            1,
            Order::InOrder,
        );
    }
    gw.wait("first acks", |g| g.unacked.is_empty()).await;
    // A burst, and the connection dropped in the middle of it: whatever was
    // not acknowledged is redelivered on the next connection.
    for i in 10..30 {
        gw.send_event(
            &ev(&format!("u{i}"), &format!("m{i}"), 1),
            2,
            Order::InOrder,
        );
        if i == 15 {
            gw.drop_connection();
        }
    }
    gw.wait("reconnected", |g| g.connections == 2).await;
    // Events sent while disconnected are delivered after reconnecting.
    gw.wait("all acked", |g| g.unacked.is_empty()).await;
    // The platform may also re-push events that were acknowledged.
    gw.send_event(&ev("u3", "m3", 1), 1, Order::InOrder);
    gw.send_event(&ev("u12", "m12", 1), 1, Order::InOrder);
    gw.wait("re-pushes acked", |g| g.unacked.is_empty()).await;

    let (r, notices) = stop(bot).await;
    let s = r.expect("clean shutdown");
    let mut got = uuids(&notices);
    got.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every event noticed exactly once");
    assert_eq!(s.applied, 30);
    assert!(s.duplicates >= 2, "{s}");
    assert!(
        gw.with(|g| g.endpoint_calls.len()) >= 2,
        "a fresh endpoint call for the reconnect"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_half_open_gateway_is_detected_and_left() {
    let gw = Gateway::start().await;
    gw.with(|g| g.settings.ping_interval = 10);
    let bot = start(&gw, "[lark]\nliveness_factor = 3\n").await;
    gw.wait("connected", |g| g.connections == 1).await;
    gw.wait("first ping answered", |g| !g.pings.is_empty())
        .await;
    let silent_at = Instant::now();
    gw.go_silent();
    gw.wait("a new connection", |g| g.connections == 2).await;
    let took = silent_at.elapsed();
    // Silence is noticed after 3 ping intervals (30 s), not before, and the
    // reconnect follows within the reconnect interval (1 s).
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(35),
        "{took:?}"
    );
    gw.send_event(&ev("after", "m1", 2), 1, Order::InOrder);
    gw.wait("ack on the new connection", |g| {
        g.acks.iter().any(|a| a.connection == 2)
    })
    .await;
    let (r, _) = stop(bot).await;
    r.expect("clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn pings_follow_the_interval_from_the_server() {
    let gw = Gateway::start().await;
    gw.with(|g| g.settings.ping_interval = 7);
    let bot = start(&gw, "").await;
    gw.wait("connected", |g| g.connections == 1).await;
    let t0 = Instant::now();
    gw.wait("4 pings", |g| g.pings.len() >= 4).await;
    // The first right after connecting, then every 7 s.
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(21) && took < Duration::from_secs(22),
        "{took:?}"
    );
    // A pong may change the interval.
    gw.with(|g| g.settings.ping_interval = 60);
    gw.wait("5 pings", |g| g.pings.len() >= 5).await;
    let t1 = Instant::now();
    gw.wait("6 pings", |g| g.pings.len() >= 6).await;
    assert!(
        t1.elapsed() >= Duration::from_secs(60),
        "{:?}",
        t1.elapsed()
    );
    let (r, _) = stop(bot).await;
    r.expect("clean shutdown");
}

#[tokio::test]
async fn garbage_is_logged_acknowledged_and_survived() {
    let gw = Gateway::start().await;
    let bot = start(&gw, "").await;
    gw.wait("connected", |g| g.connections == 1).await;
    gw.send_raw(b"\xde\xad\xbe\xef not protobuf".to_vec());
    gw.send_raw(vec![0x18, 0x4d, 0x20, 0x01]); // a frame missing SeqID/LogID
    gw.send_text("a text frame");
    let bad_json = gw.send_event("{ not json", 1, Order::InOrder);
    let other_type = gw.send_event(r#"{"schema":"2.0","header":{"event_id":"x1","event_type":"im.message.receive_v1"},"event":{}}"#, 1, Order::InOrder);
    let bad_field = gw.send_event(
        &ev("bad", "m9", 3).replace("\"uid\":\"m9\"", "\"uid\":12"),
        1,
        Order::InOrder,
    );
    // a `card` message and a fragment with an impossible seq
    let h = Header::new;
    let mk = |id: &str, typ: &str, sum: &str, seq: &str| Frame {
        seq_id: 1,
        log_id: 1,
        service: SERVICE_ID,
        method: METHOD_DATA,
        headers: vec![
            h("type", typ),
            h("message_id", id),
            h("sum", sum),
            h("seq", seq),
            h("trace_id", "t"),
        ],
        payload_encoding: None,
        payload_type: None,
        payload: Some(b"{}".to_vec().into()),
        log_id_new: None,
    };
    gw.send_raw(mk("card-1", "card", "1", "0").to_bytes());
    gw.send_raw(mk("seq-1", "event", "2", "5").to_bytes());
    let good = gw.send_event(&ev("good", "m1", 2), 1, Order::InOrder);
    gw.wait("the good event acked", |g| {
        g.acks.iter().any(|a| a.message_id == good)
    })
    .await;
    for id in [
        bad_json.as_str(),
        other_type.as_str(),
        bad_field.as_str(),
        "card-1",
        "seq-1",
    ] {
        gw.wait(id, |g| g.acks.iter().any(|a| a.message_id == id))
            .await;
        let acks = gw.acks_for(id);
        assert_eq!(
            (acks.len(), acks[0].code),
            (1, 200),
            "{id}: acked 200 once, not redelivered"
        );
    }
    assert_eq!(
        gw.with(|g| g.connections),
        1,
        "garbage never costs the connection"
    );
    let (r, notices) = stop(bot).await;
    let s = r.expect("clean shutdown");
    assert_eq!(uuids(&notices), ["good"]);
    assert_eq!((s.malformed, s.ignored), (2, 1), "{s}");
}

#[tokio::test(start_paused = true)]
async fn retryable_endpoint_errors_are_retried_until_connected() {
    let gw = Gateway::start().await;
    gw.with(|g| {
        g.endpoint_script = [
            EndpointReply::Code(1),
            EndpointReply::Http(503),
            EndpointReply::Code(1000040343),
            EndpointReply::Hang,
        ]
        .into();
    });
    let t0 = Instant::now();
    let bot = start(&gw, "[lark]\nrequest_timeout = \"5s\"\n").await;
    gw.wait("connected", |g| g.connections == 1).await;
    assert_eq!(gw.with(|g| g.endpoint_calls.len()), 5);
    // Before any server config: up to 30 s of jitter, then 120 s between
    // attempts; the hung request costs its 5 s timeout.
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(3 * 120 + 5) && took < Duration::from_secs(3 * 120 + 5 + 30),
        "{took:?}"
    );
    let (r, _) = stop(bot).await;
    r.expect("clean shutdown");
}

#[tokio::test]
async fn fatal_endpoint_codes_stop_with_a_clear_error() {
    for (code, words) in [
        (1000040350, "connection limit"),
        (514, "authentication failed"),
        (403, "forbidden"),
    ] {
        let gw = Gateway::start().await;
        gw.with(|g| g.endpoint_script = [EndpointReply::Code(code)].into());
        let bot = start(&gw, "").await;
        let err = bot.ended().await.expect_err("must stop");
        let msg = err.to_string();
        assert!(
            msg.contains(&code.to_string()) && msg.contains(words),
            "{msg}"
        );
        assert!(!msg.contains(SECRET));
        assert_eq!(
            gw.with(|g| g.endpoint_calls.len()),
            1,
            "no retry after a fatal code"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn handshake_refusals_are_classified_by_their_headers() {
    let gw = Gateway::start().await;
    gw.with(|g| {
        g.handshake_script = [
            Refusal {
                http: 403,
                status: 514,
                msg: "auth".into(),
                auth: Some(1000040351),
            },
            Refusal {
                http: 500,
                status: 500,
                msg: "busy".into(),
                auth: None,
            },
        ]
        .into();
    });
    let bot = start(&gw, "").await;
    gw.wait("connected after two refusals", |g| g.connections == 1)
        .await;
    assert_eq!(
        gw.with(|g| g.endpoint_calls.len()),
        3,
        "a fresh endpoint call per attempt"
    );
    let (r, _) = stop(bot).await;
    r.expect("clean shutdown");

    let gw = Gateway::start().await;
    gw.with(|g| {
        g.handshake_script = [Refusal {
            http: 403,
            status: 514,
            msg: "exceed conn limit".into(),
            auth: Some(1000040350),
        }]
        .into()
    });
    let err = start(&gw, "").await.ended().await.expect_err("fatal");
    assert!(err.to_string().contains("1000040350"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn reconnect_count_from_the_server_is_honoured() {
    let gw = Gateway::start().await;
    gw.with(|g| g.settings.reconnect_count = 2);
    let bot = start(&gw, "").await;
    gw.wait("connected", |g| g.connections == 1).await;
    gw.with(|g| g.endpoint_script = std::iter::repeat_n(EndpointReply::Http(502), 10).collect());
    gw.drop_connection();
    let err = bot.ended().await.expect_err("gives up");
    assert!(err.to_string().contains("gave up after 2"), "{err}");
    assert_eq!(gw.with(|g| g.endpoint_calls.len()), 3);
}

#[tokio::test]
async fn shutdown_sends_owed_acks_and_closes_cleanly() {
    let gw = Gateway::start().await;
    let bot = start(&gw, "").await;
    gw.wait("connected", |g| g.connections == 1).await;
    for i in 0..200 {
        gw.send_event(
            &ev(&format!("s{i}"), &format!("m{i}"), 1),
            1,
            Order::InOrder,
        );
    }
    // Stop while events are still arriving: whatever the client took is
    // applied and acknowledged before the socket closes.
    gw.wait("some acks", |g| g.acks.len() >= 20).await;
    let (r, notices) = stop(bot).await;
    let s = r.expect("clean shutdown");
    let acked = gw.with(|g| g.acks.iter().filter(|a| a.code == 200).count());
    assert_eq!(
        s.applied as usize, acked,
        "every applied event was acknowledged"
    );
    assert_eq!(notices.len(), acked, "and delivered");
    gw.wait("socket closed", |g| g.conn_tx.is_none()).await;
}

/// The binary as an operator runs it: SIGTERM → owed acks sent, socket
/// closed, exit 0 (a malformed push received meanwhile included); the app
/// secret appears nowhere in the (debug) logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_shuts_down_on_sigterm_and_never_logs_the_secret() {
    let gw = Gateway::start().await;
    let dir = temp_dir("sigterm");
    write(&dir.join("config.toml"), &lark_config(&gw.base_url(), ""));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run", "--config", "config.toml", "--log", "debug"])
        .current_dir(&dir)
        .env("APP_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start roomcast");
    gw.wait("connected", |g| g.connections == 1).await;
    let id = gw.send_event(&ev("sig-1", "m1", 2), 2, Order::InOrder);
    gw.wait("acked", |g| g.acks.iter().any(|a| a.message_id == id))
        .await;
    // A malformed push on the way does not make a clean stop a failure:
    // exit 4 is for a replay's malformed input.
    let bad = gw.send_event("{not json", 1, Order::InOrder);
    gw.wait("malformed acked", |g| {
        g.acks.iter().any(|a| a.message_id == bad)
    })
    .await;
    send_signal(child.id().expect("pid"), "TERM");
    let out = child.wait_with_output().await.expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("SIGTERM") && stderr.contains("long connection closed"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "the secret leaked into the logs");
    assert!(stderr.contains("1 applied"), "{stderr}");
    assert!(stderr.contains("1 malformed"), "{stderr}");
    assert_eq!(jsonl(&dir.join("notices.jsonl")).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_5_with_a_clear_message_when_refused() {
    let gw = Gateway::start().await;
    gw.with(|g| g.endpoint_script = [EndpointReply::Code(514)].into());
    let dir = temp_dir("refused");
    write(&dir.join("config.toml"), &lark_config(&gw.base_url(), ""));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run", "--config", "config.toml"])
        .current_dir(&dir)
        .env("APP_SECRET", SECRET)
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("code 514 (authentication failed: check the app id and secret)"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
}

/// Issue 14: under systemd (`Type=notify`) roomcast says READY=1 once it
/// takes events, feeds the watchdog while its core answers, and says
/// STOPPING=1 at SIGTERM — checked on a datagram socket that stands in for
/// systemd's `NOTIFY_SOCKET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let gw = Gateway::start().await;
    let dir = temp_dir("sd-notify");
    write(&dir.join("config.toml"), &lark_config(&gw.base_url(), ""));
    let sock_path = dir.join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).expect("bind notify socket");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run", "--config", "config.toml"])
        .current_dir(&dir)
        .env("APP_SECRET", SECRET)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start roomcast");
    let mut heard: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut recv = async |heard: &mut Vec<String>| {
        let n = tokio::time::timeout(Duration::from_secs(20), sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no notification in time; heard {heard:?}"))
            .expect("recv");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    };
    while heard.iter().filter(|m| m.contains("WATCHDOG=1")).count() < 3 {
        recv(&mut heard).await;
    }
    assert!(heard[0].contains("READY=1"), "ready comes first: {heard:?}");
    send_signal(child.id().expect("pid"), "TERM");
    while !heard.iter().any(|m| m.contains("STOPPING=1")) {
        recv(&mut heard).await;
    }
    let out = child.wait_with_output().await.expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
