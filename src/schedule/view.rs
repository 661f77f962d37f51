//! What the schedule says about a room at an instant: its view (status,
//! current and next bookings), and when views change by themselves.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use super::{Schedule, slot};
use crate::model::{Booking, RoomId};

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
    /// The occurrence, unless an exception replaces it.
    fn shown<'a>(&self, b: &'a Arc<Booking>) -> Option<&'a Booking> {
        (!self.replaced(b)).then_some(&**b)
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
            .take_while(|b| b.start < to)
            .filter_map(|b| self.shown(b))
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
        for b in set {
            if b.start >= day_end {
                break;
            }
            let Some(b) = self.shown(b) else {
                continue;
            };
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
            let from = slot(set, c).unwrap_or_else(|i| i);
            for b in &set[from..] {
                if b.start > until {
                    break;
                }
                if let Some(b) = self.shown(b) {
                    until = until.max(b.end);
                }
            }
            until
        });
        // The next start, looking past the local day if need be: at 23:55
        // a booking at 00:05 makes the room "starting soon" and bounds
        // "free until" (`next` itself lists the rest of the day only).
        let first_next = next.first().map(|b| b.start).or_else(|| {
            let from = set.partition_point(|b| b.start < day_end);
            set[from..]
                .iter()
                .filter(|b| b.start > now)
                .find_map(|b| self.shown(b).map(|b| b.start))
        });
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

    /// Every booking (each occurrence of a series) starting in
    /// `(from, to]`, by start.
    pub(crate) fn starting_in(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<&Arc<Booking>> {
        let mut out: Vec<&Arc<Booking>> = self
            .entries
            .values()
            .flat_map(|e| e.instances.iter())
            .filter(|b| b.start > from && b.start <= to && !self.replaced(b))
            .collect();
        out.sort_by(|a, b| (a.start, &a.key).cmp(&(b.start, &b.key)));
        out
    }

    /// The earliest start after `t`.
    pub(crate) fn next_start_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .flat_map(|e| e.instances.iter())
            .map(|b| b.start)
            .filter(|s| *s > t)
            .min()
    }

    /// The earliest instant after `now` at which some room's view changes
    /// by itself (a booking starts, ends, or enters its "soon" window).
    pub(crate) fn next_boundary(
        &self,
        now: DateTime<Utc>,
        soon: Duration,
    ) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .flat_map(|e| e.instances.iter())
            .flat_map(|b| b.boundaries(soon))
            .filter(|t| *t > now)
            .min()
    }

    /// Rooms with a booking that starts, ends or enters its "soon" window in
    /// `(from, to]`: their view changed by itself.
    pub(crate) fn rooms_with_boundary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        soon: Duration,
    ) -> Vec<RoomId> {
        let mut out: Vec<RoomId> = Vec::new();
        for b in self.entries.values().flat_map(|e| e.instances.iter()) {
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
}
