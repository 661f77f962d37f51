//! The room directory: what the platform says about each room (name,
//! capacity, building and floor, whether it is in service). Pure data,
//! cached in the store as JSON; `sync` fills it from the room APIs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::RoomId;

/// One room as the platform describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// The building and the floor (the first two levels below the root,
    /// by name), when the room sits in levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
    /// The level ids from the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

/// A room out of service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// `None`: until further notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RoomInfo {
    /// Out of service at `now`?
    pub fn disabled_at(&self, now: DateTime<Utc>) -> Option<&Disabled> {
        self.disabled
            .as_ref()
            .filter(|d| d.until.is_none_or(|u| u > now))
    }

    /// Under one of these levels (a building or a floor)?
    pub fn under(&self, levels: &[String]) -> bool {
        self.path.iter().any(|l| levels.contains(l))
    }
}

/// Every room the app can see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub rooms: HashMap<RoomId, RoomInfo>,
}

impl Directory {
    pub fn get(&self, room: &RoomId) -> Option<&RoomInfo> {
        self.rooms.get(room)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A cached copy; `None` if it cannot be read (then it is fetched
    /// again).
    pub fn from_json(s: &str) -> Option<Directory> {
        serde_json::from_str(s).ok()
    }

    /// Rooms under these levels, sorted.
    pub fn under(&self, levels: &[String]) -> Vec<RoomId> {
        let mut v: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.under(levels))
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }
}
