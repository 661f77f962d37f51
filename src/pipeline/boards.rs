//! Boards: many rooms' views on one page.

use chrono::{DateTime, Utc};

use super::Pipeline;
use crate::config::BoardConfig;
use crate::model::RoomId;
use crate::render::view::{self, ViewModel};

impl Pipeline {
    /// A board's rooms: those it lists, in order, then the directory's
    /// rooms under its levels, by name.
    fn board_rooms(&self, b: &BoardConfig, now: DateTime<Utc>) -> Vec<RoomId> {
        let mut rooms = b.rooms.clone();
        if !b.levels.is_empty() {
            let mut found: Vec<(String, RoomId)> = self
                .directory
                .under(&b.levels)
                .into_iter()
                .filter(|r| !rooms.contains(r))
                .map(|r| (self.room_meta(&r, now).display_name(&r).to_string(), r))
                .collect();
            found.sort();
            rooms.extend(found.into_iter().map(|(_, r)| r));
        }
        rooms
    }

    /// A board at `now`: a tile per room (its snapshot in the board's
    /// style), grouped by floor if the board says so; and its rooms.
    pub(crate) fn board_vm(&self, b: &BoardConfig, now: DateTime<Utc>) -> (ViewModel, Vec<RoomId>) {
        let cfg = &self.config;
        let mut groups: Vec<(Option<String>, Vec<ViewModel>)> = Vec::new();
        let rooms = self.board_rooms(b, now);
        for r in &rooms {
            let style = cfg.board_style(b, cfg.room(r));
            let tile = self.snapshot_vm_styled(&style, r, now);
            let floor = b
                .group_by_floor
                .then(|| self.directory.get(r).and_then(|i| i.floor.clone()))
                .flatten();
            match groups.iter_mut().find(|(g, _)| *g == floor) {
                Some((_, tiles)) => tiles.push(tile),
                None => groups.push((floor, vec![tile])),
            }
        }
        let style = cfg.board_style(b, None);
        let title = b.title.as_deref().unwrap_or(&b.name);
        (view::board(&style, &b.name, title, groups, now), rooms)
    }
}
