use super::*;
use crate::model::Organizer;
use chrono::{Duration, TimeZone};

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

fn ev(
    id: &str,
    kind: EventKind,
    at: i64,
    key: (&str, i64),
    span: (u32, u32),
    rooms: &[&str],
) -> RoomEvent {
    RoomEvent {
        event_id: id.into(),
        kind,
        event_time: DateTime::from_timestamp_millis(at).unwrap(),
        key: BookingKey::new(key.0, key.1),
        start: t(span.0, 0),
        end: t(span.1, 0),
        rooms: rooms.iter().map(|r| RoomId::new(r)).collect(),
        organizer: Organizer::default(),
        token: None,
    }
}

fn kinds(c: &[Change]) -> Vec<(&str, ChangeKind)> {
    c.iter().map(|c| (c.room.as_str(), c.kind)).collect()
}

use ChangeKind::*;
use EventKind::*;

#[test]
fn create_update_delete() {
    let mut s = Schedule::new();
    let c = s
        .apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a", "b"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Booked), ("b", Booked)]);
    let c = s
        .apply(&ev("2", Updated, 2, ("u", 0), (10, 11), &["a", "b"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Rescheduled), ("b", Rescheduled)]);
    assert_eq!(c[0].previous, Some((t(9, 0), t(10, 0))));
    assert_eq!(c[0].booking.start, t(10, 0));
    let c = s
        .apply(&ev("3", Deleted, 3, ("u", 0), (10, 11), &[]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Cancelled), ("b", Cancelled)]);
    assert_eq!(
        c[0].booking.start,
        t(10, 0),
        "cancel carries the booking as it was"
    );
    assert!(s.is_empty());
}

#[test]
fn room_list_changes() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a", "b"]))
        .unwrap();
    // b dropped, c added, times unchanged
    let c = s
        .apply(&ev("2", Updated, 2, ("u", 0), (9, 10), &["a", "c"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("c", Booked), ("b", Cancelled)]);
    // moved and c dropped at once
    let c = s
        .apply(&ev("3", Updated, 3, ("u", 0), (11, 12), &["a"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Rescheduled), ("c", Cancelled)]);
    assert_eq!(
        c[1].booking.start,
        t(9, 0),
        "the dropped room's notice shows its old times"
    );
    assert!(
        s.bookings_between(&RoomId::new("b"), t(0, 0), t(23, 0))
            .is_empty()
    );
    assert_eq!(
        s.bookings_between(&RoomId::new("a"), t(0, 0), t(23, 0))
            .len(),
        1
    );
}

#[test]
fn update_that_moves_nothing_yields_no_change() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    assert_eq!(
        s.apply(&ev("2", Updated, 2, ("u", 0), (9, 10), &["a"])),
        Ok(vec![])
    );
}

#[test]
fn duplicates_are_dropped() {
    let mut s = Schedule::new();
    let e = ev("1", Created, 1, ("u", 0), (9, 10), &["a"]);
    assert!(s.apply(&e).is_ok());
    assert_eq!(s.apply(&e), Err(Skip::Duplicate));
    // even when the duplicate arrives after later events
    s.apply(&ev("2", Updated, 2, ("u", 0), (10, 11), &["a"]))
        .unwrap();
    assert_eq!(s.apply(&e), Err(Skip::Duplicate));
    assert_eq!(s.booking(&BookingKey::new("u", 0)).unwrap().start, t(10, 0));
}

#[test]
fn out_of_order_updates_end_in_the_right_state() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    s.apply(&ev("3", Updated, 3, ("u", 0), (14, 15), &["a"]))
        .unwrap();
    assert_eq!(
        s.apply(&ev("2", Updated, 2, ("u", 0), (11, 12), &["a"])),
        Err(Skip::Stale)
    );
    assert_eq!(s.booking(&BookingKey::new("u", 0)).unwrap().start, t(14, 0));
}

#[test]
fn update_before_create_then_late_create_is_stale() {
    let mut s = Schedule::new();
    let c = s
        .apply(&ev("2", Updated, 2, ("u", 0), (11, 12), &["a"]))
        .unwrap();
    assert_eq!(
        kinds(&c),
        vec![("a", Booked)],
        "an update for an unknown booking books it"
    );
    assert_eq!(
        s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"])),
        Err(Skip::Stale)
    );
    assert_eq!(s.booking(&BookingKey::new("u", 0)).unwrap().start, t(11, 0));
}

#[test]
fn delete_before_create() {
    let mut s = Schedule::new();
    assert_eq!(
        s.apply(&ev("2", Deleted, 2, ("u", 0), (0, 0), &[])),
        Ok(vec![])
    );
    assert_eq!(
        s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"])),
        Err(Skip::Stale)
    );
    assert!(s.is_empty());
    // a genuinely newer create after a delete re-books
    let c = s
        .apply(&ev("3", Created, 3, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Booked)]);
}

#[test]
fn recurring_exception_is_its_own_booking() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    let c = s
        .apply(&ev("2", Updated, 2, ("u", 777), (13, 14), &["a"]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Booked)]);
    assert_eq!(s.len(), 2);
    // deleting the exception leaves the series
    let c = s
        .apply(&ev("3", Deleted, 3, ("u", 777), (0, 0), &[]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Cancelled)]);
    assert!(s.booking(&BookingKey::new("u", 0)).is_some());
}

#[test]
fn deleting_a_series_cancels_its_exceptions() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    s.apply(&ev("2", Created, 2, ("u", 111), (13, 14), &["b"]))
        .unwrap();
    s.apply(&ev("3", Created, 3, ("other", 111), (13, 14), &["b"]))
        .unwrap();
    let c = s
        .apply(&ev("4", Deleted, 4, ("u", 0), (0, 0), &[]))
        .unwrap();
    assert_eq!(kinds(&c), vec![("a", Cancelled), ("b", Cancelled)]);
    assert!(
        s.booking(&BookingKey::new("other", 111)).is_some(),
        "another uid is untouched"
    );
    // a late (older) event for an exception of the deleted series is stale
    assert_eq!(
        s.apply(&ev("5", Updated, 3, ("u", 222), (15, 16), &["a"])),
        Err(Skip::Stale)
    );
    // a newer one (the exception re-created after the delete) applies
    assert!(
        s.apply(&ev("6", Created, 5, ("u", 222), (15, 16), &["a"]))
            .is_ok()
    );
}

#[test]
fn series_delete_spares_a_newer_exception() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("u", 0), (9, 10), &["a"]))
        .unwrap();
    s.apply(&ev("2", Updated, 9, ("u", 111), (13, 14), &["a"]))
        .unwrap();
    let c = s
        .apply(&ev("3", Deleted, 5, ("u", 0), (0, 0), &[]))
        .unwrap();
    assert_eq!(c.len(), 1, "only the series itself");
    assert!(s.booking(&BookingKey::new("u", 111)).is_some());
}

#[test]
fn view_states() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("m1", 0), (9, 10), &["a"]))
        .unwrap();
    s.apply(&ev("2", Created, 1, ("m2", 0), (10, 11), &["a"]))
        .unwrap();
    s.apply(&ev("3", Created, 1, ("m3", 0), (14, 15), &["a"]))
        .unwrap();
    let a = RoomId::new("a");
    let soon = Duration::minutes(10);
    let eod = t(16, 0);

    let v = s.view(&a, t(8, 0), eod, soon);
    assert_eq!(v.status, Status::Free);
    assert_eq!(v.free_until, Some(t(9, 0)));
    assert_eq!(v.next.len(), 3);

    let v = s.view(&a, t(8, 55), eod, soon);
    assert_eq!(v.status, Status::StartingSoon);

    let v = s.view(&a, t(9, 30), eod, soon);
    assert_eq!(v.status, Status::Busy);
    assert_eq!(v.current.unwrap().key.uid.as_ref(), "m1");
    assert_eq!(v.busy_until, Some(t(11, 0)), "back-to-back bookings merge");
    assert_eq!(v.next.len(), 2);

    let v = s.view(&a, t(10, 0), eod, soon);
    assert_eq!(
        v.current.unwrap().key.uid.as_ref(),
        "m2",
        "end is exclusive"
    );

    let v = s.view(&a, t(12, 0), t(13, 0), soon);
    assert_eq!(v.status, Status::Free);
    assert!(
        v.next.is_empty(),
        "the next booking is after the local day ends"
    );
    assert_eq!(
        v.free_until,
        Some(t(14, 0)),
        "free until the next start, even past the local day"
    );
    // 5 minutes before the day ends, a booking 10 minutes later (after
    // local midnight) makes the room "starting soon" already.
    let v = s.view(&a, t(13, 55), t(14, 0), soon);
    assert!(v.next.is_empty());
    assert_eq!(
        (v.status, v.free_until),
        (Status::StartingSoon, Some(t(14, 0)))
    );

    assert_eq!(s.next_boundary(t(9, 30), soon), Some(t(9, 50)));
    assert_eq!(s.next_boundary(t(14, 30), soon), Some(t(15, 0)));
    assert_eq!(s.next_boundary(t(15, 0), soon), None);
}

#[test]
fn dedup_window_is_bounded_and_staleness_covers_beyond_it() {
    let mut s = Schedule::with_dedup_capacity(4);
    let first = ev("1", Created, 1, ("u", 0), (9, 10), &["a"]);
    s.apply(&first).unwrap();
    for i in 2..=5 {
        s.apply(&ev(
            &i.to_string(),
            Updated,
            i,
            ("u", 0),
            (10, i as u32 + 10),
            &["a"],
        ))
        .unwrap();
    }
    // generations of 2: {1,2} dropped when {5} started; {3,4} kept
    assert!(!s.seen("1") && !s.seen("2"));
    assert!(s.seen("3") && s.seen("4") && s.seen("5"));
    assert_eq!(
        s.apply(&first),
        Err(Skip::Stale),
        "forgotten id, still dropped"
    );
    assert_eq!(s.booking(&BookingKey::new("u", 0)).unwrap().end, t(15, 0));
}

#[test]
fn ids_are_interned() {
    let mut s = Schedule::new();
    let mut a = ev("1", Created, 1, ("u1", 0), (9, 10), &["a"]);
    a.organizer.open_id = Some(Arc::from("ou_x"));
    let mut b = ev("2", Created, 1, ("u2", 0), (9, 10), &["a"]);
    b.organizer.open_id = Some(Arc::from("ou_x"));
    s.apply(&a).unwrap();
    s.apply(&b).unwrap();
    let (x, y) = (s.booking(&a.key).unwrap(), s.booking(&b.key).unwrap());
    assert!(Arc::ptr_eq(&x.rooms[0].0, &y.rooms[0].0));
    assert!(Arc::ptr_eq(&x.organizer, &y.organizer));
}

#[test]
fn prune_forgets_old_bookings() {
    let mut s = Schedule::new();
    s.apply(&ev("1", Created, 1, ("m1", 0), (9, 10), &["a"]))
        .unwrap();
    s.apply(&ev("2", Created, 1, ("m2", 0), (14, 15), &["a"]))
        .unwrap();
    assert_eq!(s.prune(t(12, 0)), 1);
    assert_eq!(s.len(), 1);
    assert!(s.seen("1"), "delivery ids survive a prune");
}

/// One entry per booking held: its size is the schedule's memory per
/// booking (BENCHMARKS.md §8). A change that grows it should be a choice.
#[test]
fn an_entry_stays_small() {
    assert_eq!(size_of::<Instances>(), 16);
    assert_eq!(size_of::<Entry>(), 32);
    assert_eq!(size_of::<Booking>(), 80);
}

/// A room's list stays ordered by (start, key) whatever order bookings
/// come in, move or go (the common case appends; the rest is a search).
#[test]
fn a_rooms_bookings_stay_in_order() {
    let mut s = Schedule::new();
    let spans = [
        ("m5", (15, 16)),
        ("m2", (9, 10)),
        ("m9", (17, 18)),
        ("m1", (9, 10)),
        ("m3", (11, 12)),
    ];
    for (i, (uid, span)) in spans.iter().enumerate() {
        s.apply(&ev(&format!("e{i}"), Created, 1, (uid, 0), *span, &["a"]))
            .unwrap();
    }
    // m9 moves before everything, m3 goes.
    s.apply(&ev("e9", Updated, 2, ("m9", 0), (8, 9), &["a"]))
        .unwrap();
    s.apply(&ev("e10", Deleted, 2, ("m3", 0), (11, 12), &["a"]))
        .unwrap();
    let room = RoomId::new("a");
    let order: Vec<&str> = s
        .bookings_between(&room, t(0, 0), t(23, 0))
        .iter()
        .map(|b| &*b.key.uid)
        .collect();
    assert_eq!(order, ["m9", "m1", "m2", "m5"]);
}
