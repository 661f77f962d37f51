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
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// The organizer as the event names them (ids only, no names). Shared
/// strings: the schedule interns them, as one organizer books many rooms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Organizer {
    pub open_id: Option<Arc<str>>,
    pub user_id: Option<Arc<str>>,
    pub union_id: Option<Arc<str>>,
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

/// A booking as the schedule holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub key: BookingKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rooms: Vec<RoomId>,
    /// Shared: the schedule keeps one copy per distinct organizer.
    pub organizer: Arc<Organizer>,
}

impl Booking {
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
