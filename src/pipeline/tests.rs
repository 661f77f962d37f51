//! Table tests of the central pure stage: one payload in, an outcome and
//! its messages out.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::model::ChangeKind;

const A: &str = "omm_a";
const B: &str = "omm_b";

fn pipeline(extra: &str) -> Pipeline {
    let text = format!(
        r#"[source]
kind = "replay"
replay_file = "x"
[platform]
app_id = "cli_a"
verification_token_env = "VT"
[display]
time_zone = "Asia/Shanghai"
[[rooms]]
id = "{A}"
name = "Alpha"
panels = ["p"]
[[sinks]]
name = "n"
kind = "stdout"
template = "text"
[[sinks]]
name = "p"
kind = "panel"
url = "http://127.0.0.1:9/p/{{room}}"
{extra}"#
    );
    let env: BTreeMap<String, String> = [("VT".to_string(), "tok".to_string())].into();
    let config = crate::config::parse(&text, Path::new("."), &env).expect("config");
    let templates = Templates::load(None).expect("templates");
    Pipeline::new(Arc::new(config), Arc::new(templates))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 1, 0, 0).unwrap()
}

fn ms(h: u32) -> i64 {
    Utc.with_ymd_and_hms(2026, 5, 1, h, 0, 0)
        .unwrap()
        .timestamp_millis()
}

/// A v1 event body.
fn event(kind: &str, uuid: &str, at: i64, uid: &str, span: (u32, u32), rooms: &[&str]) -> String {
    json!({
        "uuid": uuid, "token": "tok", "type": "event_callback",
        "event": {
            "type": format!("third_party_meeting_room_event_{kind}"),
            "event_time": at.to_string(), "uid": uid, "original_time": 0,
            "start": {"time_stamp": ms(span.0).to_string()},
            "end": {"time_stamp": ms(span.1).to_string()},
            "meeting_rooms": rooms.iter().map(|r| json!({"open_id": r})).collect::<Vec<_>>(),
            "organizer": {"open_id": "ou_x"}
        }
    })
    .to_string()
}

/// (sink, subject) of each message; sinks by their place in the config
/// (0: `n`, 1: `p`).
type Sent = Vec<(usize, String)>;

fn sink_no(m: &Message) -> usize {
    ["n", "p"]
        .iter()
        .position(|n| *n == &*m.sink)
        .unwrap_or(usize::MAX)
}

/// An outcome in a few words: kind, then what it sends.
fn summary(o: &Outcome) -> (String, Sent) {
    match o {
        Outcome::Applied(a) => (
            format!("applied {} change(s)", a.changes),
            a.messages
                .iter()
                .map(|m| (sink_no(m), m.subject.as_str().to_string()))
                .collect(),
        ),
        Outcome::Skipped { why, .. } => (format!("skipped {why:?}"), vec![]),
        Outcome::Ignored { event_type } => (format!("ignored {event_type}"), vec![]),
        Outcome::Rejected { .. } => ("rejected".into(), vec![]),
        Outcome::Malformed(_) => ("malformed".into(), vec![]),
        Outcome::Challenge { token_ok, .. } => (format!("challenge ok={token_ok}"), vec![]),
        Outcome::OverCap { cap, rooms, .. } => (format!("over {} ({rooms})", cap.as_str()), vec![]),
    }
}

#[test]
fn outcomes_of_a_sequence_of_payloads() {
    let booked = || vec![(0, "booked".to_string()), (1, "snapshot".to_string())];
    // (what, payload, outcome, messages)
    let table: Vec<(&str, String, &str, Sent)> = vec![
        (
            "a booking: a notice and the room's snapshot",
            event("created", "e1", 10, "m1", (2, 3), &[A]),
            "applied 1 change(s)",
            booked(),
        ),
        (
            "the same delivery again",
            event("created", "e1", 10, "m1", (2, 3), &[A]),
            "skipped Duplicate",
            vec![],
        ),
        (
            "a move",
            event("updated", "e2", 20, "m1", (4, 5), &[A]),
            "applied 1 change(s)",
            vec![(0, "rescheduled".into()), (1, "snapshot".into())],
        ),
        (
            "an older move arriving late",
            event("updated", "e3", 15, "m1", (6, 7), &[A]),
            "skipped Stale",
            vec![],
        ),
        (
            "an update that moves nothing",
            event("updated", "e4", 25, "m1", (4, 5), &[A]),
            "applied 0 change(s)",
            vec![],
        ),
        (
            "a second room: only the notice (room B shows on no panel)",
            event("updated", "e5", 30, "m1", (4, 5), &[A, B]),
            "applied 1 change(s)",
            vec![(0, "booked".into())],
        ),
        (
            "cancelled in both rooms",
            event("deleted", "e6", 40, "m1", (4, 5), &[A, B]),
            "applied 2 change(s)",
            vec![
                (0, "cancelled".into()),
                (0, "cancelled".into()),
                (1, "snapshot".into()),
            ],
        ),
        (
            "a create after its delete",
            event("created", "e7", 35, "m1", (4, 5), &[A]),
            "skipped Stale",
            vec![],
        ),
        (
            "another event type",
            json!({"uuid": "x", "token": "tok", "type": "event_callback",
                   "event": {"type": "calendar.event.changed"}})
            .to_string(),
            "ignored calendar.event.changed",
            vec![],
        ),
        ("not JSON", "{oops".to_string(), "malformed", vec![]),
        (
            "a wrong verification token",
            event("created", "e8", 50, "m2", (2, 3), &[A]).replace("\"tok\"", "\"nope\""),
            "rejected",
            vec![],
        ),
        (
            "a challenge with the right token",
            json!({"type": "url_verification", "challenge": "c", "token": "tok"}).to_string(),
            "challenge ok=true",
            vec![],
        ),
    ];
    let mut p = pipeline("");
    for (what, payload, want, messages) in table {
        let got = summary(&p.handle(payload.as_bytes(), now()));
        assert_eq!(got, (want.to_string(), messages), "{what}");
    }
}

#[test]
fn unknown_rooms_are_dropped_when_configured_so() {
    let mut p = pipeline("[schedule]\nignore_unknown_rooms = true\n");
    let o = p.handle(
        event("created", "e1", 10, "m1", (2, 3), &[B]).as_bytes(),
        now(),
    );
    assert_eq!(summary(&o).0, "applied 0 change(s)");
    assert_eq!(p.all_rooms(), vec![RoomId::new(A)]);
    assert!(!p.knows_room(&RoomId::new(B)));
}

#[test]
fn keys_are_stable_and_distinct_per_sink_and_kind() {
    let keys = |p: &mut Pipeline, body: &str| match p.handle(body.as_bytes(), now()) {
        Outcome::Applied(a) => a
            .messages
            .into_iter()
            .map(|m| m.idempotency_key)
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let body = event("created", "e1", 10, "m1", (2, 3), &[A]);
    let first = keys(&mut pipeline(""), &body);
    let again = keys(&mut pipeline(""), &body);
    assert_eq!(first, again, "a replayed event gives the same keys");
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], first[1]);
}

#[test]
fn what_the_store_keeps_is_handed_back_only_when_persisting() {
    let body = event("created", "e1", 10, "m1", (2, 3), &[A]);
    let written = |persist: bool| match pipeline("")
        .persisting(persist)
        .handle(body.as_bytes(), now())
    {
        Outcome::Applied(a) => a.written,
        other => panic!("{other:?}"),
    };
    assert_eq!(written(false), Written::default());
    let w = written(true);
    assert_eq!(w.entries.len(), 1);
    assert_eq!(w.entries[0].key.to_string(), "m1_0");
    assert!(w.entries[0].booking.is_some());
    assert_eq!(w.series_deleted, None);
}

#[test]
fn a_series_delete_is_written_with_its_time() {
    let mut p = pipeline("").persisting(true);
    let _ = p.handle(
        event("created", "e1", 10, "m1", (2, 3), &[A]).as_bytes(),
        now(),
    );
    match p.handle(
        event("deleted", "e2", 20, "m1", (2, 3), &[A]).as_bytes(),
        now(),
    ) {
        Outcome::Applied(a) => {
            assert_eq!(a.written.entries[0].booking, None, "a tombstone");
            let (uid, at) = a.written.series_deleted.expect("series delete");
            assert_eq!((&*uid, at.timestamp_millis()), ("m1", 20));
            assert_eq!(
                a.messages[0].subject,
                Subject::Notice(ChangeKind::Cancelled)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn clock_pushes_follow_boundaries_and_midnight() {
    let mut p = pipeline("");
    let _ = p.handle(
        event("created", "e1", 10, "m1", (2, 3), &[A]).as_bytes(),
        now(),
    );
    // 10 minutes before 02:00 UTC the room starts to show "starting soon".
    assert_eq!(
        p.next_clock_push(now()),
        Some(Utc.with_ymd_and_hms(2026, 5, 1, 1, 50, 0).unwrap())
    );
    assert_eq!(
        p.rooms_due(now(), now() + chrono::Duration::hours(1)),
        vec![RoomId::new(A)]
    );
    // Shanghai's midnight is 16:00 UTC.
    let before = Utc.with_ymd_and_hms(2026, 5, 1, 15, 59, 0).unwrap();
    assert!(!p.midnight_passed(now(), before));
    assert!(p.midnight_passed(before, before + chrono::Duration::minutes(1)));
    assert_eq!(p.status(&RoomId::new(A), now()), Status::Free);
    assert_eq!(
        p.status(&RoomId::new(A), now() + chrono::Duration::minutes(55)),
        Status::StartingSoon
    );
}

#[test]
fn one_event_cancelling_a_series_and_its_exceptions_gives_each_notice_its_key() {
    // A series and two exceptions in one room, then the series deleted:
    // three cancellations from one event, in one room, of one kind.
    let exception = |uuid: &str, original: u32, span: (u32, u32)| {
        let mut v: serde_json::Value =
            serde_json::from_str(&event("created", uuid, 11, "m1", span, &[A])).unwrap();
        v["event"]["original_time"] = json!(ms(original).to_string());
        v.to_string()
    };
    let run = || {
        let mut p = pipeline("");
        for body in [
            event("created", "e1", 10, "m1", (2, 3), &[A]),
            exception("e2", 4, (5, 6)),
            exception("e3", 7, (8, 9)),
        ] {
            assert!(matches!(
                p.handle(body.as_bytes(), now()),
                Outcome::Applied(_)
            ));
        }
        match p.handle(
            event("deleted", "e4", 20, "m1", (2, 3), &[A]).as_bytes(),
            now(),
        ) {
            Outcome::Applied(a) => a
                .messages
                .into_iter()
                .filter(|m| m.subject == Subject::Notice(ChangeKind::Cancelled))
                .filter(|m| &*m.sink == "n")
                .map(|m| (m.booking.unwrap_or_default(), m.idempotency_key))
                .collect::<BTreeMap<_, _>>(),
            other => panic!("{other:?}"),
        }
    };
    let keys = run();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let distinct: std::collections::BTreeSet<_> = keys.values().collect();
    assert_eq!(distinct.len(), 3, "one key per notice: {keys:?}");
    assert_eq!(
        run(),
        keys,
        "and the same keys when the events are replayed"
    );
}

/// Issue 13 item 8: a panel is not pushed a snapshot identical to the one
/// it was last queued (a change it cannot show, a clock push that changes
/// nothing), except on the heartbeat or at a start.
#[test]
fn a_panel_is_not_pushed_what_it_already_shows() {
    let snapshots = |o: &Outcome| match o {
        Outcome::Applied(a) => a
            .messages
            .iter()
            .filter(|m| m.subject == Subject::Snapshot)
            .count(),
        _ => usize::MAX,
    };
    let mut p = pipeline("");
    let o = p.handle(
        event("created", "e1", 10, "m1", (2, 3), &[A]).as_bytes(),
        now(),
    );
    assert_eq!(snapshots(&o), 1, "the first booking is shown");
    // A booking a week on: not on today's panel.
    let week = |h: u32| {
        Utc.with_ymd_and_hms(2026, 5, 8, h, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    let far = json!({
        "uuid": "e2", "token": "tok", "type": "event_callback",
        "event": {
            "type": "third_party_meeting_room_event_created",
            "event_time": "20", "uid": "m2", "original_time": 0,
            "start": {"time_stamp": week(2).to_string()},
            "end": {"time_stamp": week(3).to_string()},
            "meeting_rooms": [{"open_id": A}],
            "organizer": {"open_id": "ou_x"}
        }
    })
    .to_string();
    let o = p.handle(far.as_bytes(), now());
    assert!(matches!(&o, Outcome::Applied(a) if a.changes == 1));
    assert_eq!(snapshots(&o), 0, "nothing the panel shows changed");

    let room = [RoomId::new(A)];
    let clock = |p: &mut Pipeline, force: bool| {
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        p.clock_snapshots(
            &room,
            now(),
            &Arc::from("clock"),
            force,
            &mut out,
            &mut errors,
        );
        assert!(errors.is_empty());
        out.len()
    };
    assert_eq!(clock(&mut p, false), 0, "a clock push that changes nothing");
    assert_eq!(clock(&mut p, true), 1, "the heartbeat pushes anyway");
    // A visible change is pushed.
    let o = p.handle(
        event("updated", "e3", 30, "m1", (4, 5), &[A]).as_bytes(),
        now(),
    );
    assert_eq!(snapshots(&o), 1);
}
