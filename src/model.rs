//! Domain types: typed ids, room events, bookings and changes.
//!
//! No I/O and no wire types live here; `decode` turns platform JSON into
//! these, `schedule` turns these into [`Change`]s.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A meeting room's platform id (`omm_…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub Arc<str>);

impl RoomId {
    pub fn new(s: &str) -> Self {
        RoomId(Arc::from(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A booking's identity: the calendar event's `uid` plus its recurring
/// instance marker (`0` for a one-off event or a whole series, the
/// instance's original start for an exception).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BookingKey {
    pub uid: Arc<str>,
    pub original_time: i64,
}

impl BookingKey {
    pub fn new(uid: &str, original_time: i64) -> Self {
        BookingKey {
            uid: Arc::from(uid),
            original_time,
        }
    }
    /// True for an exception of a recurring series.
    pub(crate) fn is_exception(&self) -> bool {
        self.original_time != 0
    }

    /// The key of the exception that replaces this series' occurrence
    /// starting at `start`, in either unit the platform may use for
    /// `original_time` (seconds, as the room APIs document, or ms).
    pub(crate) fn exception_at(uid: &Arc<str>, start: DateTime<Utc>) -> [BookingKey; 2] {
        [
            BookingKey {
                uid: uid.clone(),
                original_time: start.timestamp(),
            },
            BookingKey {
                uid: uid.clone(),
                original_time: start.timestamp_millis(),
            },
        ]
    }
}

impl fmt::Display for BookingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.uid, self.original_time)
    }
}

/// What happened to a calendar event, as the platform reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

impl EventKind {
    pub(crate) const CREATED: &'static str = "third_party_meeting_room_event_created";
    pub(crate) const UPDATED: &'static str = "third_party_meeting_room_event_updated";
    pub(crate) const DELETED: &'static str = "third_party_meeting_room_event_deleted";

    pub(crate) fn from_type(t: &str) -> Option<Self> {
        match t {
            Self::CREATED => Some(EventKind::Created),
            Self::UPDATED => Some(EventKind::Updated),
            Self::DELETED => Some(EventKind::Deleted),
            _ => None,
        }
    }
}

/// The organizer: the event names them by ids only; the room APIs add a
/// name. Shared strings: the schedule interns them, as one organizer books
/// many rooms. No id and no name at all: a private booking.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Organizer {
    pub open_id: Option<Arc<str>>,
    pub user_id: Option<Arc<str>>,
    pub union_id: Option<Arc<str>>,
    /// The display name (from the room APIs; events carry none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
}

impl Organizer {
    /// Nothing is known of who booked it: the platform hides a private
    /// booking's organizer.
    pub fn is_unknown(&self) -> bool {
        self.open_id.is_none()
            && self.user_id.is_none()
            && self.union_id.is_none()
            && self.name.is_none()
    }

    /// The same person (by any id both name).
    pub(crate) fn same_person(&self, other: &Organizer) -> bool {
        let same = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| matches!((a, b), (Some(x), Some(y)) if x == y);
        same(&self.open_id, &other.open_id)
            || same(&self.union_id, &other.union_id)
            || same(&self.user_id, &other.user_id)
    }
}

/// One decoded meeting-room event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEvent {
    /// The delivery's unique id: envelope `uuid` (v1) or `header.event_id` (v2).
    pub event_id: String,
    pub kind: EventKind,
    /// When the change happened on the platform.
    pub event_time: DateTime<Utc>,
    pub key: BookingKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rooms: Vec<RoomId>,
    pub organizer: Organizer,
    /// The verification token the event carries, if any.
    pub token: Option<String>,
}

/// One occurrence of a booking, as the schedule holds it: a single
/// booking or an exception has one; a recurring series has one per
/// occurrence, all with the series' key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub key: BookingKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rooms: Rooms,
    /// Shared: the schedule keeps one copy per distinct organizer.
    pub organizer: Arc<Organizer>,
    /// The meeting's title, when it was fetched (only for rooms or sinks
    /// that show titles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
}

/// A booking's rooms, shared: the schedule keeps one copy of each distinct
/// set of rooms (most bookings name one room, and every booking of a room
/// then points at the same set). 16 bytes a booking, no heap block of its
/// own. Reads as a slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rooms(Arc<[RoomId]>);

impl Default for Rooms {
    fn default() -> Self {
        Rooms(Arc::from([]))
    }
}

impl std::ops::Deref for Rooms {
    type Target = [RoomId];

    fn deref(&self) -> &[RoomId] {
        &self.0
    }
}

impl std::borrow::Borrow<[RoomId]> for Rooms {
    fn borrow(&self) -> &[RoomId] {
        &self.0
    }
}

impl Rooms {
    /// Is this the only holder of its set (nothing else points at it)?
    pub(crate) fn unshared(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl From<Vec<RoomId>> for Rooms {
    fn from(v: Vec<RoomId>) -> Self {
        Rooms(Arc::from(v))
    }
}

impl FromIterator<RoomId> for Rooms {
    fn from_iter<I: IntoIterator<Item = RoomId>>(iter: I) -> Self {
        Rooms(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Rooms {
    type Item = &'a RoomId;
    type IntoIter = std::slice::Iter<'a, RoomId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq<Vec<RoomId>> for Rooms {
    fn eq(&self, other: &Vec<RoomId>) -> bool {
        **self == **other
    }
}

impl Serialize for Rooms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rooms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<RoomId>::deserialize(d).map(Rooms::from)
    }
}

/// A meeting's title (from the room APIs): a shared string behind a thin
/// pointer — 8 bytes in every booking, where most have none. Reads as a
/// `str`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Title(Arc<String>);

impl std::ops::Deref for Title {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Title {
    fn from(s: &str) -> Self {
        Title(Arc::new(s.to_string()))
    }
}

impl From<String> for Title {
    fn from(s: String) -> Self {
        Title(Arc::new(s))
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Title {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Title {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Title::from)
    }
}

impl Booking {
    /// The platform hides who booked it (and so its title).
    pub fn is_private(&self) -> bool {
        self.organizer.is_unknown()
    }

    /// The instants at which a room's view changes by itself because of
    /// this booking: it enters the "starting soon" window, starts, ends.
    pub(crate) fn boundaries(&self, soon: chrono::Duration) -> [DateTime<Utc>; 3] {
        [self.start - soon, self.start, self.end]
    }
}

/// The kind of a room-level change (used by sink filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Booked,
    Rescheduled,
    Cancelled,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Booked => "booked",
            ChangeKind::Rescheduled => "rescheduled",
            ChangeKind::Cancelled => "cancelled",
        }
    }
}

/// What one applied event did to one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub room: RoomId,
    pub kind: ChangeKind,
    /// The booking after the change (for `Cancelled`: as it was); shared
    /// by the changes of all its rooms.
    pub booking: Arc<Booking>,
    /// For `Rescheduled`: the previous (start, end).
    pub previous: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The event that caused it.
    pub event_id: Arc<str>,
}
