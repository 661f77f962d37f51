//! `[[rooms]]`: each room's name, style, panels and pull token.

use std::collections::HashSet;

use chrono_tz::Tz;
use secrecy::SecretString;
use toml::Spanned;

use super::ctx::Ctx;
use super::raw::RawRoom;
use super::sinks::{Payload, SinkConfig};
use crate::locale::{HourCycle, Locale, Privacy};
use crate::model::RoomId;

#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub id: RoomId,
    pub name: Option<String>,
    pub tz: Option<Tz>,
    pub locale: Option<Locale>,
    pub hour_cycle: Option<HourCycle>,
    /// Names of the snapshot sinks that show this room.
    pub panels: Vec<String>,
    /// Bearer token required to pull this room over HTTP.
    pub token: Option<SecretString>,
    /// How much of a booking its displays and notices show.
    pub privacy: Option<Privacy>,
}

pub(super) fn rooms(
    raw: &[Spanned<RawRoom>],
    sinks: &[SinkConfig],
    cx: &mut Ctx,
) -> Vec<RoomConfig> {
    let mut rooms = Vec::new();
    let mut ids = HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let at = format!("rooms[{i}]");
        let r = r.get_ref();
        let id = r.id.get_ref();
        if id.is_empty() {
            cx.push(format!("{at}.id"), &r.id, "is empty");
        } else if !ids.insert(id.clone()) {
            cx.push(
                format!("{at}.id"),
                &r.id,
                format!("duplicate room id `{id}`"),
            );
        }
        for p in &r.panels {
            panel(&at, p, sinks, cx);
        }
        if let Some(n) = &r.name
            && n.get_ref().trim().is_empty()
        {
            cx.push(format!("{at}.name"), n, "is empty");
        }
        rooms.push(RoomConfig {
            id: RoomId::new(id),
            name: r.name.as_ref().map(|n| n.get_ref().clone()),
            tz: cx.tz(&format!("{at}.time_zone"), &r.time_zone),
            locale: cx.locale(&format!("{at}.locale"), &r.locale),
            hour_cycle: cx.hour_cycle(&format!("{at}.clock"), &r.clock),
            panels: r.panels.iter().map(|p| p.get_ref().clone()).collect(),
            token: cx.secret_from(
                &format!("{at}.token"),
                r.token_env.as_ref(),
                r.token_file.as_ref(),
            ),
            privacy: r.privacy,
        });
    }
    rooms
}

/// A room's `panels` entry must name a snapshot sink.
fn panel(at: &str, p: &Spanned<String>, sinks: &[SinkConfig], cx: &mut Ctx) {
    let name = p.get_ref();
    match sinks.iter().find(|s| &s.name == name) {
        None => cx.push(format!("{at}.panels"), p, format!("no sink named `{name}`")),
        Some(s) if s.payload != Payload::Snapshot => cx.push(
            format!("{at}.panels"),
            p,
            format!("sink `{name}` sends notices, not room snapshots (set payload = \"snapshot\")"),
        ),
        Some(_) => {}
    }
}
