//! Merging fetches: series, exceptions, precedence against events, room
//! swaps, the sliding window.

use chrono::{Duration, TimeZone};

use super::*;
use crate::model::{ChangeKind, EventKind, RoomEvent};
use crate::schedule::Skip;

use ChangeKind::*;

/// 2026-05-04 is a Monday.
fn day(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0).unwrap()
}

fn inst(
    room: &str,
    uid: &str,
    ot: i64,
    start: DateTime<Utc>,
    who: Option<&str>,
) -> FetchedInstance {
    FetchedInstance {
        room: RoomId::new(room),
        key: BookingKey::new(uid, ot),
        start,
        end: start + Duration::hours(1),
        organizer: who.map(|n| Organizer {
            open_id: Some(Arc::from(format!("ou_{n}").as_str())),
            name: Some(Arc::from(n)),
            ..Organizer::default()
        }),
        title: None,
    }
}

fn fetch(
    rooms: &[&str],
    from: DateTime<Utc>,
    began: DateTime<Utc>,
    instances: Vec<FetchedInstance>,
) -> Fetch {
    Fetch::new(
        rooms.iter().map(|r| RoomId::new(r)).collect(),
        from,
        from + Duration::days(7),
        began,
        instances,
    )
}

/// A weekly series (Mondays 10:00) and a daily one (09:00) over a week.
fn series(from: DateTime<Utc>) -> Vec<FetchedInstance> {
    let mut v = vec![inst("a", "weekly", 0, day(4, 10), Some("Ann"))];
    for d in 0..7 {
        v.push(inst(
            "a",
            "daily",
            0,
            from + Duration::days(d) + Duration::hours(9),
            Some("Bo"),
        ));
    }
    v
}

fn kinds(c: &[Change]) -> Vec<(&str, &str, ChangeKind)> {
    c.iter()
        .map(|c| (c.room.as_str(), &*c.booking.key.uid, c.kind))
        .collect()
}

fn starts(
    s: &Schedule,
    room: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    s.bookings_between(&RoomId::new(room), from, to)
        .into_iter()
        .map(|b| (b.key.uid.to_string(), b.start))
        .collect()
}

fn id(s: &str) -> Arc<str> {
    Arc::from(s)
}

#[test]
fn every_occurrence_of_a_series_is_shown() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    let c = s.merge(
        &fetch(&["a"], from, from, series(from)),
        &id("sync:1"),
        from,
    );
    assert_eq!(
        kinds(&c),
        vec![("a", "daily", Booked), ("a", "weekly", Booked)],
        "one change per booking, not per occurrence"
    );
    let shown = starts(&s, "a", from, from + Duration::days(7));
    assert_eq!(shown.len(), 8, "{shown:?}");
    assert_eq!(s.occurrences(&BookingKey::new("daily", 0)).len(), 7);
    // Wednesday's view: the daily meeting, then nothing else that day.
    let v = s.view(
        &RoomId::new("a"),
        day(6, 8),
        day(7, 0),
        Duration::minutes(10),
    );
    assert_eq!(v.next.len(), 1);
    assert_eq!(v.next[0].start, day(6, 9));
    assert_eq!(v.next[0].organizer.name.as_deref(), Some("Bo"));
}

#[test]
fn an_exception_replaces_its_occurrence() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    // Thursday's daily meeting moved to 15:00: the platform lists the
    // exception (original start in seconds) and not the old slot.
    let mut list = series(from);
    list.retain(|i| !(i.key.uid.as_ref() == "daily" && i.start == day(7, 9)));
    list.push(inst(
        "a",
        "daily",
        day(7, 9).timestamp(),
        day(7, 15),
        Some("Bo"),
    ));
    s.merge(&fetch(&["a"], from, from, list), &id("sync:1"), from);
    let thursday = starts(&s, "a", day(7, 0), day(8, 0));
    assert_eq!(thursday, vec![("daily".to_string(), day(7, 15))]);

    // The same from the event stream: a series known by one instance per
    // day, and an exception event that moves Friday's.
    let ev = RoomEvent {
        event_id: "e1".into(),
        kind: EventKind::Updated,
        event_time: day(4, 1),
        key: BookingKey::new("daily", day(8, 9).timestamp()),
        start: day(8, 16),
        end: day(8, 17),
        rooms: vec![RoomId::new("a")],
        organizer: Organizer::default(),
        token: None,
    };
    let c = s.apply_at(&ev, Some(day(4, 1))).unwrap();
    assert_eq!(kinds(&c), vec![("a", "daily", Booked)]);
    let friday = starts(&s, "a", day(8, 0), day(9, 0));
    assert_eq!(
        friday,
        vec![("daily".to_string(), day(8, 16))],
        "the 09:00 slot is replaced"
    );
    // Cancelling one occurrence (a deleted exception) hides it too.
    let del = RoomEvent {
        event_id: "e2".into(),
        kind: EventKind::Deleted,
        key: BookingKey::new("daily", day(9, 9).timestamp()),
        ..ev
    };
    s.apply_at(&del, Some(day(4, 2))).unwrap();
    assert!(starts(&s, "a", day(9, 0), day(10, 0)).is_empty());
}

#[test]
fn a_room_swap_without_an_event_is_found_once() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    s.merge(
        &fetch(
            &["a", "b"],
            from,
            from,
            vec![inst("a", "m", 0, day(5, 10), Some("Ann"))],
        ),
        &id("sync:1"),
        from,
    );
    let swapped = fetch(
        &["a", "b"],
        from,
        day(4, 1),
        vec![inst("b", "m", 0, day(5, 10), Some("Ann"))],
    );
    let c = s.merge(&swapped, &id("sync:2"), day(4, 1));
    assert_eq!(kinds(&c), vec![("b", "m", Booked), ("a", "m", Cancelled)]);
    assert_eq!(&*c[0].event_id, "sync:2");
    assert!(
        s.merge(&swapped, &id("sync:3"), day(4, 2)).is_empty(),
        "not twice"
    );
}

#[test]
fn an_event_applied_after_the_fetch_began_wins() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    let booked = |at: DateTime<Utc>, start: DateTime<Utc>, id: &str| RoomEvent {
        event_id: id.into(),
        kind: EventKind::Created,
        event_time: at,
        key: BookingKey::new("m", 0),
        start,
        end: start + Duration::hours(1),
        rooms: vec![RoomId::new("a")],
        organizer: Organizer::default(),
        token: None,
    };
    // The fetch began at 01:00 and saw the booking at 10:00; meanwhile an
    // event applied at 01:05 moved it to 11:00.
    s.apply_at(
        &booked(day(4, 1), day(5, 11), "e1"),
        Some(day(4, 1) + Duration::minutes(5)),
    )
    .unwrap();
    let stale = fetch(
        &["a"],
        from,
        day(4, 1),
        vec![inst("a", "m", 0, day(5, 10), Some("Ann"))],
    );
    assert!(s.merge(&stale, &id("sync:1"), day(4, 1)).is_empty());
    assert_eq!(
        s.booking(&BookingKey::new("m", 0)).unwrap().start,
        day(5, 11)
    );
    // A fetch that began later shows the same: nothing to announce, but the
    // organizer's name is learnt.
    let fresh = fetch(
        &["a"],
        from,
        day(4, 2),
        vec![inst("a", "m", 0, day(5, 11), Some("Ann"))],
    );
    assert!(s.merge(&fresh, &id("sync:2"), day(4, 2)).is_empty());
    assert_eq!(
        s.booking(&BookingKey::new("m", 0))
            .unwrap()
            .organizer
            .name
            .as_deref(),
        Some("Ann")
    );
    // And the event that a fetch already reflected is stale when it comes.
    let late = booked(day(4, 1) + Duration::minutes(30), day(5, 11), "e2");
    assert_eq!(s.apply(&late), Err(Skip::Stale));
}

#[test]
fn a_missing_booking_is_cancelled_only_where_the_fetch_looked() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    let ev = RoomEvent {
        event_id: "e1".into(),
        kind: EventKind::Created,
        event_time: day(3, 0),
        key: BookingKey::new("m", 0),
        start: day(5, 10),
        end: day(5, 11),
        rooms: vec![RoomId::new("a"), RoomId::new("z")],
        organizer: Organizer::default(),
        token: None,
    };
    s.apply_at(&ev, Some(day(3, 0))).unwrap();
    // Room z is not covered: the booking stays there.
    let c = s.merge(&fetch(&["a"], from, from, vec![]), &id("sync:1"), from);
    assert_eq!(kinds(&c), vec![("a", "m", Cancelled)]);
    let b = s.booking(&BookingKey::new("m", 0)).unwrap();
    assert_eq!(b.rooms, vec![RoomId::new("z")]);
    // Outside the window: kept.
    let later = fetch(&["z"], day(6, 0), from, vec![]);
    assert!(s.merge(&later, &id("sync:2"), from).is_empty());
}

#[test]
fn the_window_sliding_is_not_a_change_but_a_moved_series_is() {
    let mut s = Schedule::new();
    let monday = day(4, 0);
    s.merge(
        &fetch(&["a"], monday, monday, series(monday)),
        &id("sync:1"),
        monday,
    );
    // Tuesday: Monday's occurrence left the window, next Monday's entered.
    let tuesday = day(5, 0);
    let c = s.merge(
        &fetch(&["a"], tuesday, tuesday, series(tuesday)),
        &id("sync:2"),
        tuesday,
    );
    assert!(c.is_empty(), "{:?}", kinds(&c));
    // The daily series moves to 08:00: announced once, by its next
    // occurrence.
    let moved: Vec<FetchedInstance> = series(tuesday)
        .into_iter()
        .map(|mut i| {
            if i.key.uid.as_ref() == "daily" {
                i.start -= Duration::hours(1);
                i.end -= Duration::hours(1);
            }
            i
        })
        .collect();
    let now = day(5, 7);
    let c = s.merge(&fetch(&["a"], tuesday, now, moved), &id("sync:3"), now);
    assert_eq!(kinds(&c), vec![("a", "daily", Rescheduled)]);
    assert_eq!(c[0].booking.start, day(5, 8));
    assert_eq!(c[0].previous, Some((day(5, 9), day(5, 10))));
}

#[test]
fn an_event_for_a_known_series_keeps_its_occurrences() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    s.merge(
        &fetch(&["a", "b"], from, from, series(from)),
        &id("sync:1"),
        from,
    );
    // The event names one instance (the series' first) and a new room.
    let ev = RoomEvent {
        event_id: "e1".into(),
        kind: EventKind::Updated,
        event_time: day(4, 1),
        key: BookingKey::new("daily", 0),
        start: day(1, 9),
        end: day(1, 10),
        rooms: vec![RoomId::new("a"), RoomId::new("b")],
        organizer: Organizer::default(),
        token: None,
    };
    let c = s.apply_at(&ev, Some(day(4, 1))).unwrap();
    assert_eq!(kinds(&c), vec![("b", "daily", Booked)]);
    assert_eq!(s.occurrences(&BookingKey::new("daily", 0)).len(), 7);
    assert_eq!(starts(&s, "b", from, from + Duration::days(7)).len(), 7);
}

#[test]
fn private_bookings_and_the_store_round_trip() {
    let mut s = Schedule::new();
    let from = day(4, 0);
    s.merge(
        &fetch(
            &["a"],
            from,
            from,
            vec![inst("a", "p", 0, day(5, 10), None)],
        ),
        &id("sync:1"),
        from,
    );
    assert!(s.booking(&BookingKey::new("p", 0)).unwrap().is_private());
    s.merge(
        &fetch(&["a"], from, from, series(from)),
        &id("sync:2"),
        from,
    );
    let w = s.written();
    let daily = w
        .entries
        .iter()
        .find(|e| e.key.uid.as_ref() == "daily")
        .expect("written");
    assert_eq!(daily.occurrences.len(), 7);
    let mut restored = Schedule::new();
    for e in w.entries {
        restored.restore(e);
    }
    assert_eq!(
        starts(&restored, "a", from, from + Duration::days(7)),
        starts(&s, "a", from, from + Duration::days(7))
    );
}
