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

use chrono::{DateTime, Utc};

mod seen;
mod view;

use seen::Seen;
pub use view::{RoomView, Status};

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

/// How many delivery ids are remembered for de-duplication by default.
pub const DEFAULT_DEDUP_CAPACITY: usize = 100_000;

/// One booking's stored state (a tombstone has `booking: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub key: BookingKey,
    pub booking: Option<Booking>,
    pub last_change: DateTime<Utc>,
}

/// What one `apply` wrote, for the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub entries: Vec<EntryRow>,
    /// A series delete recorded: (uid, time of the delete).
    pub series_deleted: Option<(Arc<str>, DateTime<Utc>)>,
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// A schedule remembering the last `dedup_capacity` delivery ids.
    pub(crate) fn with_dedup_capacity(dedup_capacity: usize) -> Self {
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

    /// What the last `apply` wrote, as a store keeps it: each key it
    /// touched with its booking (or tombstone) and last change time, and
    /// the series delete it recorded, if any.
    pub fn written(&self) -> Written {
        let mut series_deleted = None;
        let entries = self
            .touched
            .iter()
            .filter_map(|k| {
                let e = self.entries.get(k)?;
                if k.original_time == 0 && series_deleted.is_none() {
                    series_deleted = self
                        .series_deleted
                        .get(&k.uid)
                        .map(|at| (k.uid.clone(), *at));
                }
                Some(EntryRow {
                    key: k.clone(),
                    booking: e.booking.as_deref().cloned(),
                    last_change: e.last_change,
                })
            })
            .collect();
        Written {
            entries,
            series_deleted,
        }
    }

    /// Put back a stored booking (or tombstone) at startup.
    pub(crate) fn restore(
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
    pub(crate) fn restore_series_delete(&mut self, uid: &str, at: DateTime<Utc>) {
        self.series_deleted.insert(Arc::from(uid), at);
    }

    /// Remember a delivery id as seen (startup).
    pub(crate) fn remember(&mut self, event_id: &str) {
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

    /// Forget bookings that ended before `before` and tombstones older than
    /// it. Delivery ids are kept by the store's own retention.
    pub(crate) fn prune(&mut self, before: DateTime<Utc>) -> usize {
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
mod tests;
