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
//!   `Cancelled`, a kept room whose times moved → `Rescheduled`;
//! - a booking holds its occurrences: one for a single booking or an
//!   exception, one per occurrence for a recurring series as the room APIs
//!   list them ([`Schedule::merge`]). An exception (live or deleted)
//!   replaces the series' occurrence at its original start. A series'
//!   change is named by its next occurrence, once; occurrences entering
//!   the window as days pass are not changes. An event for a series whose
//!   occurrences are known changes its rooms and organizer, not its times
//!   (the event carries one instance's times, not the rule: the next fetch
//!   brings them).

use std::collections::{BTreeSet, HashMap as StdHashMap, HashSet as StdHashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

mod merge;
mod seen;
mod view;

pub use merge::{Fetch, FetchedInstance};
use seen::Seen;
pub use view::{RoomView, Status};

use crate::model::{
    Booking, BookingKey, Change, ChangeKind, EventKind, Organizer, RoomEvent, RoomId, Rooms,
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

/// One booking's state, kept small (there is one per booking held): its
/// occurrences inline when there is one, instants as epoch microseconds.
/// It carries its own key (in its occurrences, or in a tombstone's box):
/// the table of entries stores no second copy.
#[derive(Debug, Clone)]
struct Entry {
    /// The booking's occurrences by start (one for a single booking or an
    /// exception); none: deleted (a tombstone).
    instances: Instances,
    /// `event_time` of the last change applied (for a fetch: when it began).
    last_change_us: i64,
    /// When an event last changed it, on our clock (`i64::MIN`: never): a
    /// fetch that began before that does not override it.
    applied_at_us: i64,
}

impl Entry {
    fn new(
        key: &BookingKey,
        instances: Vec<Arc<Booking>>,
        last_change: DateTime<Utc>,
        applied_at: Option<DateTime<Utc>>,
    ) -> Self {
        // The table finds an entry by the key its occurrences carry.
        debug_assert!(instances.iter().all(|b| &b.key == key));
        Entry {
            instances: Instances::new(key, instances),
            last_change_us: last_change.timestamp_micros(),
            applied_at_us: applied_at.map_or(i64::MIN, |t| t.timestamp_micros()),
        }
    }

    fn key(&self) -> &BookingKey {
        match &self.instances {
            Instances::Tomb(k) => k,
            Instances::One(b) => &b.key,
            Instances::Many(s) => &s.key,
        }
    }

    fn first(&self) -> Option<&Arc<Booking>> {
        self.instances.first()
    }

    fn last_change(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.last_change_us).unwrap_or_default()
    }

    fn applied_at(&self) -> Option<DateTime<Utc>> {
        (self.applied_at_us != i64::MIN)
            .then(|| DateTime::from_timestamp_micros(self.applied_at_us))
            .flatten()
    }
}

/// A booking's occurrences: none (a tombstone, keeping only the key), one
/// inline (most bookings), or many (a series) — no heap block for the
/// common case.
#[derive(Debug, Clone)]
enum Instances {
    Tomb(Box<BookingKey>),
    One(Arc<Booking>),
    /// Boxed: a thin pointer keeps the enum (and so every entry) at 16
    /// bytes; series are rare.
    Many(Box<Series>),
}

/// A series' occurrences (two or more) and its key.
#[derive(Debug, Clone)]
struct Series {
    key: BookingKey,
    all: Vec<Arc<Booking>>,
}

impl std::ops::Deref for Instances {
    type Target = [Arc<Booking>];

    fn deref(&self) -> &[Arc<Booking>] {
        match self {
            Instances::Tomb(_) => &[],
            Instances::One(b) => std::slice::from_ref(b),
            Instances::Many(s) => &s.all,
        }
    }
}

impl Instances {
    fn new(key: &BookingKey, mut v: Vec<Arc<Booking>>) -> Self {
        match v.len() {
            0 => Instances::Tomb(Box::new(key.clone())),
            1 => match v.pop() {
                Some(b) => Instances::One(b),
                None => Instances::Tomb(Box::new(key.clone())),
            },
            _ => Instances::Many(Box::new(Series {
                key: key.clone(),
                all: v,
            })),
        }
    }

    fn into_vec(self) -> Vec<Arc<Booking>> {
        match self {
            Instances::Tomb(_) => Vec::new(),
            Instances::One(b) => vec![b],
            Instances::Many(s) => s.all,
        }
    }
}

/// Every booking's entry, found by the key the entry carries (a table of
/// entries alone: 33 bytes a booking where a map from key to entry took
/// 57).
#[derive(Debug, Clone, Default)]
struct Entries {
    table: hashbrown::HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
}

impl Entries {
    fn hash(&self, key: &BookingKey) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    fn get(&self, key: &BookingKey) -> Option<&Entry> {
        self.table.find(self.hash(key), |e| e.key() == key)
    }

    fn contains_key(&self, key: &BookingKey) -> bool {
        self.get(key).is_some()
    }

    fn remove(&mut self, key: &BookingKey) -> Option<Entry> {
        let hash = self.hash(key);
        match self.table.find_entry(hash, |e| e.key() == key) {
            Ok(found) => Some(found.remove().0),
            Err(_) => None,
        }
    }

    /// Put `e` in, in place of the entry of the same key if there is one.
    fn insert(&mut self, e: Entry) {
        use std::hash::BuildHasher;
        let hash = self.hash(e.key());
        let hasher = &self.hasher;
        match self.table.find_entry(hash, |x| x.key() == e.key()) {
            Ok(mut found) => *found.get_mut() = e,
            Err(_) => {
                self.table
                    .insert_unique(hash, e, |x| hasher.hash_one(x.key()));
            }
        }
    }

    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }
}

/// The occurrence a change is named by: the first not yet over at `now`
/// (the last if all are; the first without a `now`).
fn representative(instances: &[Arc<Booking>], now: Option<DateTime<Utc>>) -> Option<&Arc<Booking>> {
    match now {
        None => instances.first(),
        Some(now) => instances.iter().find(|b| b.end > now).or(instances.last()),
    }
}

/// Every room's bookings.
#[derive(Debug, Default, Clone)]
pub struct Schedule {
    entries: Entries,
    /// Per room: its occurrences ordered by (start, key), the same shared
    /// bookings the entries hold (8 bytes each; a room's list grows at its
    /// end as bookings are made for later times).
    by_room: HashMap<RoomId, Vec<Arc<Booking>>>,
    /// Series deletes: uid → event_time of the delete.
    series_deleted: HashMap<Arc<str>, DateTime<Utc>>,
    /// Exceptions per uid (so a series delete can find them).
    exceptions: HashMap<Arc<str>, BTreeSet<i64>>,
    seen: Seen,
    /// Interned room and organizer ids (one copy per distinct id).
    rooms_seen: HashSet<RoomId>,
    people: HashSet<Arc<Organizer>>,
    /// Interned sets of rooms (one copy per distinct set, shared by every
    /// booking of it).
    room_sets: HashSet<Rooms>,
    /// Keys the last `apply` wrote (what a store must persist).
    touched: Vec<BookingKey>,
}

/// Where `b` sits in a room's list (ordered by start, then key): `Ok` if
/// it is there, `Err` where it would go.
fn slot(list: &[Arc<Booking>], b: &Booking) -> Result<usize, usize> {
    list.binary_search_by(|x| (x.start, &x.key).cmp(&(b.start, &b.key)))
}

/// How many delivery ids are remembered for de-duplication by default.
pub const DEFAULT_DEDUP_CAPACITY: usize = 100_000;

/// One booking's stored state (a tombstone has `booking: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub key: BookingKey,
    /// The first occurrence (rooms, organizer, title are the booking's).
    pub booking: Option<Booking>,
    /// Every occurrence's (start, end), when there is more than one.
    pub occurrences: Vec<(DateTime<Utc>, DateTime<Utc>)>,
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

    /// The one shared copy of this set of rooms (each id interned too).
    fn intern_rooms(&mut self, rooms: &[RoomId]) -> Rooms {
        if let Some(r) = self.room_sets.get(rooms) {
            return r.clone();
        }
        let r: Rooms = rooms.iter().map(|r| self.intern_room(r)).collect();
        self.room_sets.insert(r.clone());
        r
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
        self.apply_at(ev, None)
    }

    /// [`Schedule::apply`], remembering that it was applied at `now` (on
    /// our clock): a fetch that began before does not override it.
    pub fn apply_at(
        &mut self,
        ev: &RoomEvent,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<Change>, Skip> {
        self.touched.clear();
        if self.seen.contains(&ev.event_id) {
            return Err(Skip::Duplicate);
        }
        self.seen.insert(&ev.event_id);
        let event_id: Arc<str> = Arc::from(ev.event_id.as_str());

        if let Some(entry) = self.entries.get(&ev.key)
            && ev.event_time < entry.last_change()
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
                let old = self
                    .entries
                    .remove(&ev.key)
                    .map(|e| e.instances.into_vec())
                    .unwrap_or_default();
                let rooms = self.intern_rooms(&ev.rooms);
                let organizer = self.organizer_for(&ev.organizer, old.first());
                let title = old.first().and_then(|b| b.title.clone());
                let series = !ev.key.is_exception() && old.len() > 1;
                if series
                    && old
                        .first()
                        .is_some_and(|b| b.rooms == rooms && b.organizer == organizer)
                {
                    // A known series the event leaves as it is: nothing to
                    // rebuild (its times come from the fetch it triggers).
                    self.entries
                        .insert(Entry::new(&ev.key, old, ev.event_time, now));
                    self.touched.push(ev.key.clone());
                    return Ok(changes);
                }
                let new: Vec<Arc<Booking>> = if series {
                    // A series whose occurrences came from the room APIs:
                    // the event's one instance cannot move them all.
                    old.iter()
                        .map(|b| {
                            Arc::new(Booking {
                                rooms: rooms.clone(),
                                organizer: organizer.clone(),
                                ..(**b).clone()
                            })
                        })
                        .collect()
                } else {
                    vec![Arc::new(Booking {
                        key: ev.key.clone(),
                        start: ev.start,
                        end: ev.end,
                        rooms,
                        organizer,
                        title,
                    })]
                };
                diff(
                    representative(&old, now),
                    representative(&new, now),
                    &event_id,
                    &mut changes,
                );
                self.replace(&ev.key, old, new, ev.event_time, now);
            }
            EventKind::Deleted => {
                self.delete(&ev.key, ev.event_time, &event_id, &mut changes, now);
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
                            .is_some_and(|e| e.last_change() <= ev.event_time);
                        if older {
                            self.delete(&key, ev.event_time, &event_id, &mut changes, now);
                        }
                    }
                }
            }
        }
        Ok(changes)
    }

    /// The organizer an event names, interned; the name the room APIs
    /// gave the same person is kept (events carry none).
    fn organizer_for(&mut self, o: &Organizer, old: Option<&Arc<Booking>>) -> Arc<Organizer> {
        match old.map(|b| &b.organizer) {
            Some(prev) if o.name.is_none() && prev.name.is_some() && o.same_person(prev) => {
                let mut o = o.clone();
                o.name = prev.name.clone();
                self.intern_organizer(&o)
            }
            _ => self.intern_organizer(o),
        }
    }

    /// Put `new` in place of `old` for `key` (indexes, the exception
    /// registry, what the store must write).
    fn replace(
        &mut self,
        key: &BookingKey,
        old: Vec<Arc<Booking>>,
        new: Vec<Arc<Booking>>,
        last_change: DateTime<Utc>,
        applied_at: Option<DateTime<Utc>>,
    ) {
        for b in &old {
            self.unindex(b);
        }
        for b in &new {
            self.index(b);
        }
        if key.is_exception() {
            self.exceptions
                .entry(key.uid.clone())
                .or_default()
                .insert(key.original_time);
        }
        self.touched.push(key.clone());
        self.entries
            .insert(Entry::new(key, new, last_change, applied_at));
    }

    fn delete(
        &mut self,
        key: &BookingKey,
        at: DateTime<Utc>,
        event_id: &Arc<str>,
        changes: &mut Vec<Change>,
        now: Option<DateTime<Utc>>,
    ) {
        let old = self
            .entries
            .remove(key)
            .map(|e| e.instances.into_vec())
            .unwrap_or_default();
        diff(representative(&old, now), None, event_id, changes);
        self.replace(key, old, Vec::new(), at, now);
    }

    fn index(&mut self, b: &Arc<Booking>) {
        for r in &b.rooms {
            let list = self.by_room.entry(r.clone()).or_default();
            // Bookings mostly come in the order of their starts: one
            // comparison with the last puts them at the end (a search reads
            // a dozen bookings scattered over the heap).
            if list
                .last()
                .is_none_or(|last| (last.start, &last.key) < (b.start, &b.key))
            {
                list.push(b.clone());
            } else if let Err(i) = slot(list, b) {
                list.insert(i, b.clone());
            }
        }
    }

    fn unindex(&mut self, b: &Booking) {
        for r in &b.rooms {
            if let Some(list) = self.by_room.get_mut(r)
                && let Ok(i) = slot(list, b)
            {
                list.remove(i);
            }
        }
    }

    /// Is this a series' occurrence that an exception (moved or
    /// cancelled) replaces?
    fn replaced(&self, b: &Booking) -> bool {
        !b.key.is_exception()
            && self.exceptions.get(&b.key.uid).is_some_and(|ots| {
                BookingKey::exception_at(&b.key.uid, b.start)
                    .iter()
                    .any(|k| ots.contains(&k.original_time) && self.entries.contains_key(k))
            })
    }

    /// What the last `apply` or `merge` wrote, as a store keeps it: each
    /// key it touched with its occurrences (or tombstone) and last change
    /// time, and the series delete it recorded, if any.
    pub fn written(&self) -> Written {
        let mut series_deleted = None;
        let entries = self
            .touched
            .iter()
            .filter_map(|k| {
                let row = self.row(k)?;
                if k.original_time == 0 && series_deleted.is_none() {
                    series_deleted = self
                        .series_deleted
                        .get(&k.uid)
                        .map(|at| (k.uid.clone(), *at));
                }
                Some(row)
            })
            .collect();
        Written {
            entries,
            series_deleted,
        }
    }

    /// One booking's entry as a store keeps it.
    fn row(&self, key: &BookingKey) -> Option<EntryRow> {
        let e = self.entries.get(key)?;
        Some(EntryRow {
            key: key.clone(),
            booking: e.first().map(|b| (**b).clone()),
            occurrences: if e.instances.len() > 1 {
                e.instances.iter().map(|b| (b.start, b.end)).collect()
            } else {
                Vec::new()
            },
            last_change: e.last_change(),
        })
    }

    /// A row another instance committed (a shared store's change feed).
    /// Taken when it is newer than the entry held, or as new and different
    /// (the database keeps the later of equal changes); otherwise nothing
    /// happens (this instance's own commits come back this way). Returns
    /// the room changes it made, as an event's would be.
    pub(crate) fn take_committed(
        &mut self,
        row: EntryRow,
        event_id: &Arc<str>,
        now: Option<DateTime<Utc>>,
    ) -> Vec<Change> {
        if let Some(e) = self.entries.get(&row.key)
            && (e.last_change() > row.last_change
                || (e.last_change() == row.last_change
                    && self.row(&row.key).as_ref() == Some(&row)))
        {
            return Vec::new();
        }
        let key = row.key.clone();
        let old = self
            .entries
            .get(&key)
            .and_then(|e| representative(&e.instances, now).cloned());
        self.restore(row);
        let new = self
            .entries
            .get(&key)
            .and_then(|e| representative(&e.instances, now).cloned());
        let mut changes = Vec::new();
        diff(old.as_ref(), new.as_ref(), event_id, &mut changes);
        changes
    }

    /// Put back a stored booking (or tombstone) at startup.
    pub(crate) fn restore(&mut self, row: EntryRow) {
        let EntryRow {
            key,
            booking,
            occurrences,
            last_change,
        } = row;
        let instances = match booking {
            None => Vec::new(),
            Some(mut b) => {
                b.rooms = self.intern_rooms(&b.rooms);
                b.organizer = self.intern_organizer(&b.organizer);
                if occurrences.len() > 1 {
                    occurrences
                        .iter()
                        .map(|(start, end)| {
                            Arc::new(Booking {
                                start: *start,
                                end: *end,
                                ..b.clone()
                            })
                        })
                        .collect()
                } else {
                    vec![Arc::new(b)]
                }
            }
        };
        let old = self
            .entries
            .remove(&key)
            .map(|e| e.instances.into_vec())
            .unwrap_or_default();
        self.replace(&key, old, instances, last_change, None);
        self.touched.clear();
    }

    /// Put back a stored series delete at startup.
    pub(crate) fn restore_series_delete(&mut self, uid: &str, at: DateTime<Utc>) {
        self.series_deleted.insert(Arc::from(uid), at);
    }

    /// Remember a delivery id as seen (startup).
    pub(crate) fn remember(&mut self, event_id: &str) {
        self.seen.insert(event_id);
    }

    /// A booking by key: its first occurrence (`None` if unknown or
    /// deleted).
    /// When the booking was last changed (an event's `event_time`, or when
    /// the fetch that changed it began): its version.
    pub fn last_change(&self, key: &BookingKey) -> Option<DateTime<Utc>> {
        self.entries.get(key).map(Entry::last_change)
    }

    pub fn booking(&self, key: &BookingKey) -> Option<&Booking> {
        self.entries.get(key).and_then(|e| e.first()).map(|b| &**b)
    }

    /// Every occurrence of a booking, by start.
    pub fn occurrences(&self, key: &BookingKey) -> Vec<&Booking> {
        self.entries
            .get(key)
            .map(|e| e.instances.iter().map(|b| &**b).collect())
            .unwrap_or_default()
    }

    /// Rooms that have (or had) bookings.
    pub fn rooms(&self) -> impl Iterator<Item = &RoomId> {
        self.by_room.keys()
    }

    /// Does the schedule know this room (it has or had bookings)?
    pub fn has_room(&self, room: &RoomId) -> bool {
        self.by_room.contains_key(room)
    }

    /// Forget occurrences that ended before `before` (a booking with none
    /// left goes), and tombstones older than it. Delivery ids are kept by
    /// the store's own retention.
    pub(crate) fn prune(&mut self, before: DateTime<Utc>) -> usize {
        let old: Vec<BookingKey> = self
            .entries
            .values()
            .filter(|e| match e.instances.first() {
                Some(b) => b.end < before,
                None => e.last_change() < before,
            })
            .map(|e| e.key().clone())
            .collect();
        let mut n = 0;
        for k in &old {
            let Some(e) = self.entries.remove(k) else {
                continue;
            };
            let (gone, kept): (Vec<_>, Vec<_>) = e
                .instances
                .into_vec()
                .into_iter()
                .partition(|b| b.end < before);
            for b in &gone {
                self.unindex(b);
            }
            if kept.is_empty() {
                n += 1;
            } else {
                self.entries.insert(Entry {
                    instances: Instances::new(k, kept),
                    ..e
                });
            }
        }
        self.by_room.retain(|_, list| {
            if list.capacity() > 2 * list.len() {
                list.shrink_to_fit();
            }
            !list.is_empty()
        });
        self.people.retain(|p| Arc::strong_count(p) > 1);
        self.room_sets.retain(|r| !r.unshared());
        n
    }

    /// Number of live bookings.
    pub fn len(&self) -> usize {
        self.entries
            .values()
            .filter(|e| !e.instances.is_empty())
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
            // Linear in the rooms however many an event names.
            let (old_rooms, new_rooms): (HashSet<&RoomId>, HashSet<&RoomId>) =
                (o.rooms.iter().collect(), n.rooms.iter().collect());
            for r in &n.rooms {
                if !old_rooms.contains(r) {
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
                if !new_rooms.contains(r) {
                    out.push(change(r, ChangeKind::Cancelled, o, None));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
