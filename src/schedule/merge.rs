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
use crate::model::{Booking, BookingKey, Change, Organizer, RoomId};

/// One completed fetch: every busy instance of `rooms` over `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct Fetch {
    /// The rooms it covers (rooms the platform could not read are not
    /// among them: nothing is concluded about those).
    pub rooms: Vec<RoomId>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// When the call was made, on our clock.
    pub began: DateTime<Utc>,
    pub instances: Vec<FetchedInstance>,
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
    pub title: Option<Arc<str>>,
}

/// What a fetch says of one booking.
#[derive(Default)]
struct Seen {
    rooms: Vec<RoomId>,
    spans: BTreeSet<(DateTime<Utc>, DateTime<Utc>)>,
    organizer: Option<Organizer>,
    title: Option<Arc<str>>,
}

impl Schedule {
    /// Merge a completed fetch; the changes it makes, each caused by
    /// `event_id` (`sync:<instant>`). `now` names changes by the next
    /// occurrence.
    pub fn merge(&mut self, fetch: &Fetch, event_id: &Arc<str>, now: DateTime<Utc>) -> Vec<Change> {
        self.touched.clear();
        let covered: BTreeSet<&RoomId> = fetch.rooms.iter().collect();
        let mut seen: BTreeMap<BookingKey, Seen> = BTreeMap::new();
        for i in fetch.instances.iter().filter(|i| covered.contains(&i.room)) {
            let s = seen.entry(i.key.clone()).or_default();
            if !s.rooms.contains(&i.room) {
                s.rooms.push(i.room.clone());
            }
            s.spans.insert((i.start, i.end));
            if s.organizer.is_none() {
                s.organizer = i.organizer.clone();
            }
            if s.title.is_none() {
                s.title = i.title.clone();
            }
        }
        // Bookings the fetch should have shown: live in a covered room
        // within the window.
        let mut keys: BTreeSet<BookingKey> = seen.keys().cloned().collect();
        for room in &fetch.rooms {
            if let Some(set) = self.by_room.get(room) {
                keys.extend(
                    set.range(..(fetch.to, BookingKey::default()))
                        .filter(|(start, k)| {
                            self.instance(k, *start)
                                .is_some_and(|b| overlaps(b, fetch.from, fetch.to))
                        })
                        .map(|(_, k)| k.clone()),
                );
            }
        }
        let mut changes = Vec::new();
        for key in keys {
            self.merge_one(
                &key,
                seen.remove(&key),
                fetch,
                &covered,
                event_id,
                now,
                &mut changes,
            );
        }
        changes
    }

    #[allow(clippy::too_many_arguments)]
    fn merge_one(
        &mut self,
        key: &BookingKey,
        seen: Option<Seen>,
        fetch: &Fetch,
        covered: &BTreeSet<&RoomId>,
        event_id: &Arc<str>,
        now: DateTime<Utc>,
        changes: &mut Vec<Change>,
    ) {
        let (old, last_change, applied_at) = match self.entries.get(key) {
            // An event applied after the fetch began knows better.
            Some(e) if e.applied_at.is_some_and(|a| a > fetch.began) => return,
            Some(e) => (e.instances.clone(), e.last_change, e.applied_at),
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
            None => old
                .iter()
                .map(|b| {
                    Arc::new(Booking {
                        rooms: rooms.clone(),
                        ..(**b).clone()
                    })
                })
                .collect(),
            Some(s) => {
                for r in s.rooms {
                    let r = self.intern_room(&r);
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
                let mut spans = s.spans;
                spans.extend(
                    old.iter()
                        .filter(|b| !overlaps(b, fetch.from, fetch.to))
                        .map(|b| (b.start, b.end)),
                );
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

/// Does an occurrence fall in `[from, to)`?
fn overlaps(b: &Booking, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    b.start < to && (b.end > from || (b.start == b.end && b.start >= from))
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
