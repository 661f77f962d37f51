//! Unit tests of the run loop's steps (the loop itself is tested end to
//! end in `tests/`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::timers::{Due, Push, Timers, instant_id};
use crate::model::RoomId;
use crate::pipeline::Pipeline;
use crate::render::Templates;

const A: &str = "omm_a";

fn pipeline(panels: bool) -> Pipeline {
    let panels = if panels { "panels = [\"p\"]" } else { "" };
    let text = format!(
        "[source]\nkind = \"replay\"\nreplay_file = \"x\"\n[display]\ntime_zone = \"Asia/Shanghai\"\n[[rooms]]\nid = \"{A}\"\n{panels}\n[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1:9/p\"\n"
    );
    let config = crate::config::parse(&text, Path::new("."), &BTreeMap::<String, String>::new())
        .expect("config");
    Pipeline::new(
        Arc::new(config),
        Arc::new(Templates::load(None).expect("templates")),
    )
}

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, h, m, 0).unwrap()
}

fn book(p: &mut Pipeline, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let body = serde_json::json!({
        "uuid": format!("e{}", start.timestamp()), "type": "event_callback",
        "event": {
            "type": "third_party_meeting_room_event_created",
            "event_time": "1", "uid": format!("m{}", start.timestamp()), "original_time": 0,
            "start": {"time_stamp": start.timestamp_millis().to_string()},
            "end": {"time_stamp": (start + chrono::Duration::hours(1)).timestamp_millis().to_string()},
            "meeting_rooms": [{"open_id": A}],
            "organizer": {"open_id": "ou_x"}
        }
    })
    .to_string();
    match p.handle(body.as_bytes(), t(0, 0)) {
        crate::pipeline::Outcome::Applied(a) => a.next_boundary,
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_panels_only_pruning_wakes_the_loop() {
    let p = pipeline(false);
    let mut timers = Timers::new(&p, t(1, 0), Some(Duration::from_secs(300)), None);
    assert_eq!(timers.next_wake(), None, "no heartbeat without panels");
    timers.booking_boundary(Some(t(2, 0)));
    assert_eq!(timers.next_wake(), None);
    let mut timers = Timers::new(&p, t(1, 0), None, Some(Duration::from_secs(86400)));
    assert_eq!(timers.next_wake(), Some(t(1, 0)), "prunes at start");
    let due = timers.due(&p, t(1, 0));
    assert_eq!(
        due,
        Due {
            prune_before: Some(t(1, 0) - chrono::Duration::days(1)),
            push: None,
            reminders: None,
            digests: Vec::new(),
        }
    );
    assert_eq!(timers.next_wake(), Some(t(2, 0)), "then hourly");
}

/// A follower (several instances) prunes its memory hourly too, without
/// taking the leader's timers anywhere.
#[test]
fn a_follower_prunes_its_memory_hourly() {
    let p = pipeline(false);
    let mut timers = Timers::new(&p, t(1, 0), None, Some(Duration::from_secs(86400)));
    assert_eq!(
        timers.prune_due(t(1, 0)),
        Some(t(1, 0) - chrono::Duration::days(1))
    );
    assert_eq!(timers.prune_due(t(1, 30)), None, "not before an hour");
    assert_eq!(
        timers.prune_due(t(2, 0)),
        Some(t(2, 0) - chrono::Duration::days(1))
    );
    let mut none = Timers::new(&p, t(1, 0), None, None);
    assert_eq!(none.prune_due(t(9, 0)), None, "no retention, no pruning");
}

#[test]
fn panels_are_pushed_at_boundaries_midnight_and_heartbeats() {
    let mut p = pipeline(true);
    let mut timers = Timers::new(&p, t(1, 0), Some(Duration::from_secs(6 * 3600)), None);
    // Shanghai's midnight (16:00 UTC) is the only thing ahead.
    assert_eq!(
        timers.next_wake(),
        Some(t(7, 0)),
        "the heartbeat comes first"
    );
    let boundary = book(&mut p, t(2, 0));
    assert_eq!(
        boundary,
        Some(t(1, 50)),
        "ten minutes before: starting soon"
    );
    timers.booking_boundary(boundary);
    assert_eq!(timers.next_wake(), Some(t(1, 50)));

    let room = vec![RoomId::new(A)];
    let push = |rooms: &Vec<RoomId>, heartbeat| Due {
        prune_before: None,
        push: Some(Push {
            rooms: rooms.clone(),
            heartbeat,
        }),
        reminders: None,
        digests: Vec::new(),
    };
    assert_eq!(timers.due(&p, t(1, 50)), push(&room, false));
    assert_eq!(timers.next_wake(), Some(t(2, 0)), "the start");
    assert_eq!(timers.due(&p, t(2, 0)), push(&room, false));
    assert_eq!(timers.due(&p, t(3, 0)), push(&room, false), "the end");
    assert_eq!(timers.next_wake(), Some(t(7, 0)));
    assert_eq!(
        timers.due(&p, t(7, 0)),
        push(&room, true),
        "heartbeat: every panel"
    );
    assert_eq!(timers.next_wake(), Some(t(13, 0)));
    assert_eq!(timers.due(&p, t(13, 0)), push(&room, true));
    assert_eq!(timers.next_wake(), Some(t(16, 0)), "local midnight");
    assert_eq!(timers.due(&p, t(16, 0)), push(&room, false));
    assert_eq!(timers.due(&p, t(16, 1)), Due::default(), "nothing due");
}

#[test]
fn clock_pushes_are_named_by_their_instant() {
    assert_eq!(
        &*instant_id("clock", t(7, 30)),
        "clock:2026-05-01T07:30:00Z"
    );
}
