//! The fake gateway is only worth what it is faithful: the official Python
//! client (lark-oapi) must connect to it, ping, receive a fragmented v1
//! meeting-room event and acknowledge it.
//!
//! `.ci/run` installs lark-oapi and sets `ROOMCAST_CONFORMANCE=required`;
//! then a missing client is a failure. Elsewhere, without the package, the
//! build script marks the test ignored, so the summary counts it skipped.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::gateway::*;
use crate::support::*;

fn python_has_lark() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import lark_oapi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    roomcast_no_lark_oapi,
    ignore = "lark-oapi is not installed (pip install lark-oapi)"
)]
async fn conformance_official_python_client() {
    if !python_has_lark() {
        assert!(
            std::env::var("ROOMCAST_CONFORMANCE").as_deref() != Ok("required"),
            "ROOMCAST_CONFORMANCE=required but python3 cannot import lark_oapi"
        );
        eprintln!(
            "SKIPPED conformance_official_python_client: lark-oapi is not installed (pip install lark-oapi)"
        );
        return;
    }
    let gw = Gateway::start().await;
    gw.with(|g| g.settings.ping_interval = 120);
    let mut child = Command::new("python3")
        .arg(repo().join("tests/conformance/lark_ws_client.py"))
        .env("APP_ID", "cli_a1b2c3d4e5f60718")
        .env("APP_SECRET", "conformance-secret")
        .env("BASE_URL", gw.base_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    gw.wait("the official client's ping", |g| !g.pings.is_empty())
        .await;
    let (_, ping) = gw.with(|g| g.pings[0].clone());
    assert_eq!(
        (ping.service, ping.header("type")),
        (SERVICE_ID, Some("ping"))
    );
    assert_eq!(
        gw.with(|g| g.endpoint_calls[0]["AppSecret"].clone()),
        "conformance-secret"
    );

    let body = event(
        "created",
        "conf-uuid-1",
        ms(2026, 5, 1, 0, 0),
        ("conf-uid", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A],
    );
    let id = gw.send_event(&body, 2, Order::Reversed);
    gw.wait("the official client's ack", |g| {
        g.acks.iter().any(|a| a.message_id == id)
    })
    .await;
    let acks = gw.acks_for(&id);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].code, 200);
    assert!(acks[0].frame.header("biz_rt").is_some());

    // The SDK logs to stdout too; find the handler's line.
    let find = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("EVENT ") {
                return Some(line);
            }
        }
        None
    };
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), find)
        .await
        .expect("the client prints the event");
    assert_eq!(
        line.as_deref(),
        Some("EVENT conf-uuid-1 third_party_meeting_room_event_created conf-uid")
    );
    let _ = child.kill().await;
}
