//! Reconciling with what the room APIs say is booked: [`Schedule::merge`]
//! turns one completed fetch (some rooms' busy instances over a window)
//! into schedule changes, under the same rules as events.
//!
//! Precedence (also in the README):
//! - an event applied after the fetch **began** wins over the fetch for its
//!   booking (the fetch may predate it);
//! - otherwise the fetch is the truth for the rooms it covers within its
//!   window: a booking it shows is booked there with the times it shows, a
//!   booking it does not show is cancelled there; occurrences outside the
//!   window and rooms outside the fetch are kept as they were;
//! - a change is named by the booking's next occurrence; a series'
//!   occurrences entering or leaving the window are not changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Schedule, diff, representative};
use crate::model::{Booking, BookingKey, Change, Organizer, RoomId, Title};

/// One completed fetch: every booking of `rooms` over `[from, to)`, as
/// [`Fetch::new`] groups the instances the platform lists (grouping is done
/// where the fetch is made, off the core's thread).
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    /// The rooms it covers (rooms the platform could not read are not
    /// among them: nothing is concluded about those).
    pub rooms: Vec<RoomId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// When the call was made, on our clock.
    pub began: DateTime<Utc>,
    bookings: BTreeMap<BookingKey, Seen>,
}

impl Fetch {
    /// Group `instances` (those of covered rooms) by booking.
    pub fn new(
        rooms: Vec<RoomId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        began: DateTime<Utc>,
        instances: Vec<FetchedInstance>,
    ) -> Fetch {
        let covered: BTreeSet<&RoomId> = rooms.iter().collect();
        let mut bookings: BTreeMap<BookingKey, Seen> = BTreeMap::new();
        for i in instances.into_iter().filter(|i| covered.contains(&i.room)) {
            let s = bookings.entry(i.key).or_default();
            if !s.rooms.contains(&i.room) {
                s.rooms.push(i.room);
            }
            s.spans.insert((i.start, i.end));
            if s.organizer.is_none() {
                s.organizer = i.organizer;
            }
            if s.title.is_none() {
                s.title = i.title;
            }
        }
        Fetch {
            rooms,
            from,
            to,
            began,
            bookings,
        }
    }

    /// Bookings seen in a room `wants` titles for, with an organizer
    /// (a private booking's title is never asked for).
    pub fn wanting_titles(&self, wants: impl Fn(&RoomId) -> bool) -> Vec<BookingKey> {
        self.bookings
            .iter()
            .filter(|(_, s)| s.organizer.is_some() && s.rooms.iter().any(&wants))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Give those bookings their titles.
    pub fn set_titles(
        &mut self,
        wants: impl Fn(&RoomId) -> bool,
        title: impl Fn(&BookingKey) -> Option<Title>,
    ) {
        for (k, s) in &mut self.bookings {
            if s.organizer.is_some() && s.rooms.iter().any(&wants) {
                s.title = title(k);
            }
        }
    }

    /// The bookings it found.
    pub fn len(&self) -> usize {
        self.bookings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bookings.is_empty()
    }
}

/// One busy instance of one room.
#[derive(Debug, Clone)]
pub struct FetchedInstance {
    pub room: RoomId,
    pub key: BookingKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `None`: the platform hides the organizer (a private booking).
    pub organizer: Option<Organizer>,
    /// The meeting's title, when it was asked for.
    pub title: Option<Title>,
}

/// What a fetch says of one booking.
#[derive(Debug, Clone, Default)]
struct Seen {
    rooms: Vec<RoomId>,
    spans: BTreeSet<(DateTime<Utc>, DateTime<Utc>)>,
    organizer: Option<Organizer>,
    title: Option<Title>,
}

impl Schedule {
    /// Merge a completed fetch; the changes it makes, each caused by
    /// `event_id` (`sync:<instant>`). `now` names changes by the next
    /// occurrence.
    pub fn merge(&mut self, fetch: &Fetch, event_id: &Arc<str>, now: DateTime<Utc>) -> Vec<Change> {
        self.touched.clear();
        let covered: BTreeSet<&RoomId> = fetch.rooms.iter().collect();
        // Bookings the fetch should have shown: live in a covered room
        // within the window.
        let mut missing: BTreeSet<BookingKey> = BTreeSet::new();
        for room in &fetch.rooms {
            if let Some(set) = self.by_room.get(room) {
                for b in set.iter().take_while(|b| b.start < fetch.to) {
                    if !fetch.bookings.contains_key(&b.key) && overlaps(b, fetch.from, fetch.to) {
                        missing.insert(b.key.clone());
                    }
                }
            }
        }
        let mut changes = Vec::new();
        for (key, seen) in &fetch.bookings {
            self.merge_one(
                key,
                Some(seen),
                fetch,
                &covered,
                event_id,
                now,
                &mut changes,
            );
        }
        for key in &missing {
            self.merge_one(key, None, fetch, &covered, event_id, now, &mut changes);
        }
        changes
    }

    #[allow(clippy::too_many_arguments)]
    fn merge_one(
        &mut self,
        key: &BookingKey,
        seen: Option<&Seen>,
        fetch: &Fetch,
        covered: &BTreeSet<&RoomId>,
        event_id: &Arc<str>,
        now: DateTime<Utc>,
        changes: &mut Vec<Change>,
    ) {
        if let Some(e) = self.entries.get(key) {
            // An event applied after the fetch began knows better.
            if e.applied_at().is_some_and(|a| a > fetch.began) {
                return;
            }
            // The usual case: the fetch says what we know. Tell that
            // before allocating anything.
            if let Some(s) = seen
                && unchanged(&e.instances, s, fetch, covered)
            {
                return;
            }
        }
        let (old, last_change, applied_at) = match self.entries.get(key) {
            Some(e) => (e.instances.to_vec(), e.last_change(), e.applied_at()),
            None => (Vec::new(), fetch.began, None),
        };
        let first = old.first();
        let mut rooms: Vec<RoomId> = first
            .map(|b| {
                b.rooms
                    .iter()
                    .filter(|r| !covered.contains(r))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let new: Vec<Arc<Booking>> = match seen {
            None if rooms.is_empty() => Vec::new(),
            None => {
                let rooms = self.intern_rooms(&rooms);
                old.iter()
                    .map(|b| {
                        Arc::new(Booking {
                            rooms: rooms.clone(),
                            ..(**b).clone()
                        })
                    })
                    .collect()
            }
            Some(s) => {
                for r in &s.rooms {
                    let r = self.intern_room(r);
                    if !rooms.contains(&r) {
                        rooms.push(r);
                    }
                }
                let organizer = match (&s.organizer, first) {
                    // The same person as the event named: keep its ids,
                    // add the name.
                    (Some(o), Some(b)) if o.same_person(&b.organizer) => {
                        let mut merged = (*b.organizer).clone();
                        merged.name = o.name.clone().or(merged.name);
                        self.intern_organizer(&merged)
                    }
                    (Some(o), _) => self.intern_organizer(o),
                    (None, _) => self.intern_organizer(&Organizer::default()),
                };
                let title = s
                    .title
                    .clone()
                    .or_else(|| first.and_then(|b| b.title.clone()));
                let mut spans = s.spans.clone();
                spans.extend(
                    old.iter()
                        .filter(|b| !overlaps(b, fetch.from, fetch.to))
                        .map(|b| (b.start, b.end)),
                );
                // The usual case: nothing changed. Say so before building
                // anything.
                let same = first.is_some_and(|f| {
                    f.rooms == rooms && f.organizer == organizer && f.title == title
                }) && old.len() == spans.len()
                    && old
                        .iter()
                        .zip(&spans)
                        .all(|(b, (s, e))| b.start == *s && b.end == *e);
                if same {
                    return;
                }
                let rooms = self.intern_rooms(&rooms);
                spans
                    .into_iter()
                    .map(|(start, end)| {
                        Arc::new(Booking {
                            key: key.clone(),
                            start,
                            end,
                            rooms: rooms.clone(),
                            organizer: organizer.clone(),
                            title: title.clone(),
                        })
                    })
                    .collect()
            }
        };
        if new == old {
            return;
        }
        diff(
            representative(&old, Some(now)),
            representative(&new, Some(now)),
            event_id,
            changes,
        );
        let last_change = last_change.max(fetch.began);
        self.entries.remove(key);
        self.replace(key, old, new, last_change, applied_at);
    }
}

/// Does the fetch show exactly what `old` holds: the same rooms (those it
/// covers and those it keeps), the same occurrences in its window, the same
/// organizer and title?
fn unchanged(old: &[Arc<Booking>], s: &Seen, fetch: &Fetch, covered: &BTreeSet<&RoomId>) -> bool {
    let Some(first) = old.first() else {
        return false;
    };
    // Rooms as the merge would list them: the kept ones (not covered) in
    // their order, then those the fetch saw.
    let rooms = first
        .rooms
        .iter()
        .filter(|r| !covered.contains(r))
        .chain(s.rooms.iter());
    if !rooms.eq(first.rooms.iter()) {
        return false;
    }
    let organizer_same = match &s.organizer {
        None => first.organizer.is_unknown(),
        Some(o) if o.same_person(&first.organizer) => {
            o.name.is_none() || o.name == first.organizer.name
        }
        Some(o) => *o == *first.organizer,
    };
    let title_same = s.title.is_none() || s.title == first.title;
    if !organizer_same || !title_same {
        return false;
    }
    // Occurrences: those outside the window are kept; inside, the fetched.
    let mut inside = old.iter().filter(|b| overlaps(b, fetch.from, fetch.to));
    let outside = old
        .iter()
        .filter(|b| !overlaps(b, fetch.from, fetch.to))
        .count();
    outside + s.spans.len() == old.len()
        && s.spans.iter().all(|(st, en)| {
            inside
                .next()
                .is_some_and(|b| b.start == *st && b.end == *en)
        })
}

/// Does an occurrence fall in `[from, to)`?
fn overlaps(b: &Booking, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    b.start < to && (b.end > from || (b.start == b.end && b.start >= from))
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
