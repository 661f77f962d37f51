//! The answers, as the platform's reference pages and the official SDKs'
//! models give them. Unknown fields are ignored; absent ones default.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// `meeting_room/freebusy/batch_get`'s `data`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FreeBusy {
    /// Room id → its busy instances in the window; recurring bookings are
    /// expanded into one entry per occurrence.
    #[serde(default)]
    pub free_busy: HashMap<String, Vec<BusyInstance>>,
    /// Rooms the platform could not read (the reference page's example
    /// has this list; the spec page did not know it).
    #[serde(default)]
    pub error_room_ids: Vec<String>,
}

/// One busy instance of one room.
#[derive(Debug, Clone, Deserialize)]
pub struct BusyInstance {
    #[serde(deserialize_with = "rfc3339")]
    pub start_time: DateTime<Utc>,
    #[serde(deserialize_with = "rfc3339")]
    pub end_time: DateTime<Utc>,
    pub uid: String,
    /// 0 for a single booking and every plain occurrence of a series; an
    /// exception's original start in seconds.
    #[serde(default, deserialize_with = "int_or_string")]
    pub original_time: i64,
    /// Absent for private events.
    #[serde(default)]
    pub organizer_info: Option<OrganizerInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrganizerInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub open_id: Option<String>,
}

/// `meeting_room/summary/batch_get`'s `data`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Summaries {
    #[serde(rename = "EventInfos", default)]
    pub infos: Vec<Summary>,
    #[serde(rename = "ErrorEventUids", default)]
    pub errors: Vec<serde_json::Value>,
}

/// One instance's title.
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub uid: String,
    #[serde(default, deserialize_with = "int_or_string")]
    pub original_time: i64,
    #[serde(default)]
    pub summary: String,
}

/// A room of `vc/v1/rooms`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Room {
    pub room_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub room_level_id: Option<String>,
    /// Level ids from the root.
    #[serde(default)]
    pub path: Vec<String>,
    #[serde(default)]
    pub room_status: Option<RoomStatus>,
}

/// Whether a room is in service.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoomStatus {
    /// In service now.
    #[serde(default = "yes")]
    pub status: bool,
    /// Unix seconds, as strings; `"0"` as the end: disabled for good.
    #[serde(default, deserialize_with = "opt_secs")]
    pub disable_start_time: Option<i64>,
    #[serde(default, deserialize_with = "opt_secs")]
    pub disable_end_time: Option<i64>,
    #[serde(default)]
    pub disable_reason: Option<String>,
}

fn yes() -> bool {
    true
}

/// A building or floor.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Level {
    pub room_level_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub path: Vec<String>,
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("`{s}` is not RFC 3339: {e}")))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match IntOrString::deserialize(d)? {
        IntOrString::Int(i) => Ok(i),
        IntOrString::Str(s) if s.trim().is_empty() => Ok(0),
        IntOrString::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an integer"))),
    }
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<IntOrString>::deserialize(d)?
        .map(|v| match v {
            IntOrString::Int(i) => Ok(i),
            IntOrString::Str(s) if s.trim().is_empty() => Ok(0),
            IntOrString::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not unix seconds"))),
        })
        .transpose()
}
