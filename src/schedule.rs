//! The room schedule: pure state, no I/O, `now` passed in.
//!
//! Rules (also in the README):
//! - a booking is keyed by `(uid, original_time)`; an exception of a
//!   recurring series (`original_time != 0`) is a booking of its own;
//! - a delivery id seen before is a [`Skip::Duplicate`];
//! - an event whose `event_time` is older than the last change applied to
//!   its booking is a [`Skip::Stale`]; a delete leaves a tombstone carrying
//!   its time, so a create that arrives after its delete is stale too;
//! - deleting a series (`original_time == 0`) also cancels every exception
//!   of the same `uid` whose last change is older than the delete, and
//!   makes older events for those exceptions stale;
//! - created/updated are upserts; the change per room is the difference
//!   between the old and new booking: a new room → `Booked`, a dropped room →
//!   `Cancelled`, a kept room whose times moved → `Rescheduled`.

use std::collections::{BTreeSet, HashMap as StdHashMap, HashSet as StdHashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::model::{
    Booking, BookingKey, Change, ChangeKind, EventKind, Organizer, RoomEvent, RoomId,
};

// Keys are platform ids; foldhash (randomly seeded per process) hashes them
// several times faster than SipHash, which shows in the per-event cost.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = StdHashSet<K, foldhash::fast::RandomState>;

/// Why an event changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its delivery id was applied before.
    Duplicate,
    /// A newer change to the same booking was applied before.
    Stale,
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: deleted (a tombstone).
    booking: Option<Arc<Booking>>,
    /// `event_time` of the last change applied.
    last_change: DateTime<Utc>,
}

/// Every room's bookings.
#[derive(Debug, Default, Clone)]
pub struct Schedule {
    entries: HashMap<BookingKey, Entry>,
    /// Per room: bookings ordered by (start, key).
    by_room: HashMap<RoomId, BTreeSet<(DateTime<Utc>, BookingKey)>>,
    /// Series deletes: uid → event_time of the delete.
    series_deleted: HashMap<Arc<str>, DateTime<Utc>>,
    /// Exceptions per uid (so a series delete can find them).
    exceptions: HashMap<Arc<str>, BTreeSet<i64>>,
    seen: Seen,
    /// Interned room and organizer ids (one copy per distinct id).
    rooms_seen: HashSet<RoomId>,
    people: HashSet<Arc<Organizer>>,
    /// Keys the last `apply` wrote (what a store must persist).
    touched: Vec<BookingKey>,
}

/// The most recent delivery ids, as 64-bit hashes under a per-process
/// random key (8 bytes an id: with 100,000 remembered, a new id is taken for
/// a seen one with odds of about 5·10⁻¹⁵). Two generations of half the
/// capacity each: when the current one fills, the older is dropped, so
/// between `capacity/2` and `capacity` ids are always remembered, with no
/// per-id queue. Beyond this window a redelivery is still dropped by the
/// staleness rule (it is not newer than its booking's last change).
#[derive(Debug, Clone)]
struct Seen {
    current: StdHashSet<u64, IdentityHash>,
    previous: StdHashSet<u64, IdentityHash>,
    half: usize,
    key: foldhash::quality::RandomState,
}

/// The keys are already uniformly random hashes: hash them as themselves.
#[derive(Debug, Clone, Copy, Default)]
struct IdentityHash;

impl std::hash::BuildHasher for IdentityHash {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl Seen {
    fn new(capacity: usize) -> Self {
        let half = capacity.div_ceil(2).max(1);
        Seen {
            current: StdHashSet::with_hasher(IdentityHash),
            previous: StdHashSet::with_hasher(IdentityHash),
            half,
            key: Default::default(),
        }
    }

    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(id)
    }

    fn contains(&self, id: &str) -> bool {
        let k = self.key(id);
        self.current.contains(&k) || self.previous.contains(&k)
    }

    fn insert(&mut self, id: &str) {
        let k = self.key(id);
        if self.current.len() >= self.half {
            // Reuse the older generation's allocation for the new one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        if self.current.capacity() == 0 {
            self.current.reserve(self.half);
        }
        self.current.insert(k);
    }
}

impl Default for Seen {
    fn default() -> Self {
        Seen::new(DEFAULT_DEDUP_CAPACITY)
    }
}

/// How many delivery ids are remembered for de-duplication by default.
pub const DEFAULT_DEDUP_CAPACITY: usize = 100_000;

/// A room's state at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView<'a> {
    pub status: Status,
    /// The booking in progress.
    pub current: Option<&'a Booking>,
    /// Bookings starting later on the same local day, in order.
    pub next: Vec<&'a Booking>,
    /// When the room stops being free (the next booking's start), if it
    /// does before the end of the local day.
    pub free_until: Option<DateTime<Utc>>,
    /// When the room becomes free again (back-to-back bookings merged).
    pub busy_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Free,
    StartingSoon,
    Busy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Free => "free",
            Status::StartingSoon => "starting_soon",
            Status::Busy => "busy",
        }
    }
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// A schedule remembering the last `dedup_capacity` delivery ids.
    pub fn with_dedup_capacity(dedup_capacity: usize) -> Self {
        Schedule {
            seen: Seen::new(dedup_capacity),
            ..Self::default()
        }
    }

    fn intern_room(&mut self, r: &RoomId) -> RoomId {
        match self.rooms_seen.get(r) {
            Some(x) => x.clone(),
            None => {
                self.rooms_seen.insert(r.clone());
                r.clone()
            }
        }
    }

    fn intern_organizer(&mut self, o: &Organizer) -> Arc<Organizer> {
        match self.people.get(o) {
            Some(x) => x.clone(),
            None => {
                let x = Arc::new(o.clone());
                self.people.insert(x.clone());
                x
            }
        }
    }

    /// Has this delivery id been applied (or skipped as stale) before?
    pub fn seen(&self, event_id: &str) -> bool {
        self.seen.contains(event_id)
    }

    /// Apply one event. `Ok` carries the changes per room (possibly none,
    /// e.g. an update that moved nothing); `Err` says why nothing happened.
    pub fn apply(&mut self, ev: &RoomEvent) -> Result<Vec<Change>, Skip> {
        self.touched.clear();
        if self.seen.contains(&ev.event_id) {
            return Err(Skip::Duplicate);
        }
        self.seen.insert(&ev.event_id);
        let event_id: Arc<str> = Arc::from(ev.event_id.as_str());

        if let Some(entry) = self.entries.get(&ev.key)
            && ev.event_time < entry.last_change
        {
            return Err(Skip::Stale);
        }
        if ev.key.is_exception()
            && let Some(t) = self.series_deleted.get(&ev.key.uid)
            && ev.event_time < *t
        {
            return Err(Skip::Stale);
        }

        let mut changes = Vec::new();
        match ev.kind {
            EventKind::Created | EventKind::Updated => {
                let old = self.entries.remove(&ev.key).and_then(|e| e.booking);
                let rooms = ev.rooms.iter().map(|r| self.intern_room(r)).collect();
                let organizer = self.intern_organizer(&ev.organizer);
                let new = Arc::new(Booking {
                    key: ev.key.clone(),
                    start: ev.start,
                    end: ev.end,
                    rooms,
                    organizer,
                });
                diff(old.as_ref(), Some(&new), &event_id, &mut changes);
                if let Some(o) = &old {
                    self.unindex(o);
                }
                self.index(&new);
                if ev.key.is_exception() {
                    self.exceptions
                        .entry(ev.key.uid.clone())
                        .or_default()
                        .insert(ev.key.original_time);
                }
                self.touched.push(ev.key.clone());
                self.entries.insert(
                    ev.key.clone(),
                    Entry {
                        booking: Some(new),
                        last_change: ev.event_time,
                    },
                );
            }
            EventKind::Deleted => {
                self.delete(&ev.key, ev.event_time, &event_id, &mut changes);
                if !ev.key.is_exception() {
                    let t = self
                        .series_deleted
                        .entry(ev.key.uid.clone())
                        .or_insert(ev.event_time);
                    *t = (*t).max(ev.event_time);
                    let instances: Vec<i64> = self
                        .exceptions
                        .get(&ev.key.uid)
                        .map(|s| s.iter().copied().collect())
                        .unwrap_or_default();
                    for ot in instances {
                        let key = BookingKey {
                            uid: ev.key.uid.clone(),
                            original_time: ot,
                        };
                        let older = self
                            .entries
                            .get(&key)
                            .is_some_and(|e| e.last_change <= ev.event_time);
                        if older {
                            self.delete(&key, ev.event_time, &event_id, &mut changes);
                        }
                    }
                }
            }
        }
        Ok(changes)
    }

    fn delete(
        &mut self,
        key: &BookingKey,
        at: DateTime<Utc>,
        event_id: &Arc<str>,
        changes: &mut Vec<Change>,
    ) {
        self.touched.push(key.clone());
        let old = self.entries.remove(key).and_then(|e| e.booking);
        if let Some(o) = &old {
            diff(Some(o), None, event_id, changes);
            self.unindex(o);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                booking: None,
                last_change: at,
            },
        );
    }

    fn index(&mut self, b: &Booking) {
        for r in &b.rooms {
            self.by_room
                .entry(r.clone())
                .or_default()
                .insert((b.start, b.key.clone()));
        }
    }

    fn unindex(&mut self, b: &Booking) {
        for r in &b.rooms {
            if let Some(set) = self.by_room.get_mut(r) {
                set.remove(&(b.start, b.key.clone()));
            }
        }
    }

    /// Keys written by the last `apply`, with what they now hold: a booking
    /// or a tombstone, and the time of their last change.
    pub fn touched(&self) -> impl Iterator<Item = (&BookingKey, Option<&Booking>, DateTime<Utc>)> {
        self.touched.iter().filter_map(|k| {
            self.entries
                .get(k)
                .map(|e| (k, e.booking.as_deref(), e.last_change))
        })
    }

    /// When a series was deleted, if it was.
    pub fn series_deleted_at(&self, uid: &str) -> Option<DateTime<Utc>> {
        self.series_deleted.get(uid).copied()
    }

    /// Put back a stored booking (or tombstone) at startup.
    pub fn restore(
        &mut self,
        key: BookingKey,
        booking: Option<Booking>,
        last_change: DateTime<Utc>,
    ) {
        let booking = booking.map(|mut b| {
            b.rooms = b.rooms.iter().map(|r| self.intern_room(r)).collect();
            b.organizer = self.intern_organizer(&b.organizer);
            Arc::new(b)
        });
        if let Some(old) = self.entries.remove(&key).and_then(|e| e.booking) {
            self.unindex(&old);
        }
        if let Some(b) = &booking {
            self.index(b);
        }
        if key.is_exception() {
            self.exceptions
                .entry(key.uid.clone())
                .or_default()
                .insert(key.original_time);
        }
        self.entries.insert(
            key,
            Entry {
                booking,
                last_change,
            },
        );
    }

    /// Put back a stored series delete at startup.
    pub fn restore_series_delete(&mut self, uid: &str, at: DateTime<Utc>) {
        self.series_deleted.insert(Arc::from(uid), at);
    }

    /// Remember a delivery id as seen (startup).
    pub fn remember(&mut self, event_id: &str) {
        self.seen.insert(event_id);
    }

    /// A booking by key (`None` if unknown or deleted).
    pub fn booking(&self, key: &BookingKey) -> Option<&Booking> {
        self.entries.get(key).and_then(|e| e.booking.as_deref())
    }

    /// Rooms that have (or had) bookings.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomId> {
        self.by_room.keys()
    }

    /// A room's bookings overlapping `[from, to)`, by start.
    pub fn bookings_between(
        &self,
        room: &RoomId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<&Booking> {
        let Some(set) = self.by_room.get(room) else {
            return Vec::new();
        };
        set.iter()
            .take_while(|(start, _)| *start < to)
            .filter_map(|(_, k)| self.booking(k))
            .filter(|b| b.end > from || (b.start == b.end && b.start >= from))
            .collect()
    }

    /// The room's view at `now`. `day_end` is the end of the room's local
    /// day (callers compute it in the room's zone); `soon` is how long
    /// before a start the room counts as "starting soon".
    pub fn view(
        &self,
        room: &RoomId,
        now: DateTime<Utc>,
        day_end: DateTime<Utc>,
        soon: Duration,
    ) -> RoomView<'_> {
        let Some(set) = self.by_room.get(room) else {
            return RoomView {
                status: Status::Free,
                current: None,
                next: Vec::new(),
                free_until: None,
                busy_until: None,
            };
        };
        let mut current: Option<&Booking> = None;
        let mut next = Vec::new();
        for (start, key) in set.iter() {
            if *start >= day_end {
                break;
            }
            let Some(b) = self.booking(key) else { continue };
            if b.start <= now && now < b.end {
                // Overlapping bookings: the one that ends last is "current".
                if current.is_none_or(|c| b.end > c.end) {
                    current = Some(b);
                }
            } else if b.start > now {
                next.push(b);
            }
        }
        let busy_until = current.map(|c| {
            // Merge back-to-back or overlapping bookings, on any day.
            let mut until = c.end;
            for (start, key) in set.range((c.start, c.key.clone())..) {
                if *start > until {
                    break;
                }
                if let Some(b) = self.booking(key) {
                    until = until.max(b.end);
                }
            }
            until
        });
        let first_next = next.first().map(|b| b.start);
        let status = match (current, first_next) {
            (Some(_), _) => Status::Busy,
            (None, Some(s)) if s - now <= soon => Status::StartingSoon,
            _ => Status::Free,
        };
        RoomView {
            status,
            current,
            next,
            free_until: if current.is_none() { first_next } else { None },
            busy_until,
        }
    }

    /// The earliest instant after `now` at which some room's view changes
    /// by itself (a booking starts, ends, or enters its "soon" window).
    pub fn next_boundary(&self, now: DateTime<Utc>, soon: Duration) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .filter_map(|e| e.booking.as_deref())
            .flat_map(|b| b.boundaries(soon))
            .filter(|t| *t > now)
            .min()
    }

    /// Rooms with a booking that starts, ends or enters its "soon" window in
    /// `(from, to]`: their view changed by itself.
    pub fn rooms_with_boundary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        soon: Duration,
    ) -> Vec<RoomId> {
        let mut out: Vec<RoomId> = Vec::new();
        for b in self.entries.values().filter_map(|e| e.booking.as_deref()) {
            if b.boundaries(soon).iter().any(|t| *t > from && *t <= to) {
                for r in &b.rooms {
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
    }

    /// Forget bookings that ended before `before` and tombstones older than
    /// it. Delivery ids are kept by the store's own retention.
    pub fn prune(&mut self, before: DateTime<Utc>) -> usize {
        let old: Vec<BookingKey> = self
            .entries
            .iter()
            .filter(|(_, e)| match &e.booking {
                Some(b) => b.end < before,
                None => e.last_change < before,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            if let Some(Entry {
                booking: Some(b), ..
            }) = self.entries.remove(k)
            {
                self.unindex(&b);
            }
        }
        self.by_room.retain(|_, s| !s.is_empty());
        self.people.retain(|p| Arc::strong_count(p) > 1);
        old.len()
    }

    /// Number of live bookings.
    pub fn len(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.booking.is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-room changes between an old and a new version of one booking.
fn diff(
    old: Option<&Arc<Booking>>,
    new: Option<&Arc<Booking>>,
    event_id: &Arc<str>,
    out: &mut Vec<Change>,
) {
    let change = |room: &RoomId, kind, booking: &Arc<Booking>, previous| Change {
        room: room.clone(),
        kind,
        booking: booking.clone(),
        previous,
        event_id: event_id.clone(),
    };
    match (old, new) {
        (None, None) => {}
        (None, Some(n)) => out.extend(
            n.rooms
                .iter()
                .map(|r| change(r, ChangeKind::Booked, n, None)),
        ),
        (Some(o), None) => out.extend(
            o.rooms
                .iter()
                .map(|r| change(r, ChangeKind::Cancelled, o, None)),
        ),
        (Some(o), Some(n)) => {
            let moved = o.start != n.start || o.end != n.end;
            for r in &n.rooms {
                if !o.rooms.contains(r) {
                    out.push(change(r, ChangeKind::Booked, n, None));
                } else if moved {
                    out.push(change(
                        r,
                        ChangeKind::Rescheduled,
                        n,
                        Some((o.start, o.end)),
                    ));
                }
            }
            for r in &o.rooms {
                if !n.rooms.contains(r) {
                    out.push(change(r, ChangeKind::Cancelled, o, None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Organizer;
    use chrono::TimeZone;

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
        assert_eq!(v.free_until, None);

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
}
