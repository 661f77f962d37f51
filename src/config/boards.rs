//! `[[boards]]`: lobby and floor screens showing many rooms at once.

use std::collections::HashSet;

use chrono_tz::Tz;
use secrecy::SecretString;
use toml::Spanned;

use super::ctx::Ctx;
use super::raw::RawBoard;
use super::rooms::RoomConfig;
use super::sections::SyncConfig;
use crate::locale::{HourCycle, Locale, Privacy};
use crate::model::RoomId;

#[derive(Debug, Clone)]
pub struct BoardConfig {
    /// Its URL: `/boards/{name}`.
    pub name: String,
    /// Shown at the top; default: the name.
    pub title: Option<String>,
    /// Rooms listed by id, in this order...
    pub rooms: Vec<RoomId>,
    /// ...then the room directory's rooms under these levels (building,
    /// floor), by name.
    pub levels: Vec<String>,
    /// Tiles grouped under their floor's name.
    pub group_by_floor: bool,
    pub tz: Option<Tz>,
    pub locale: Option<Locale>,
    pub hour_cycle: Option<HourCycle>,
    /// Never more than each room allows.
    pub privacy: Option<Privacy>,
    /// Bearer token required to see the board.
    pub token: Option<SecretString>,
}

pub(super) fn boards(
    raw: &[Spanned<RawBoard>],
    rooms: &[RoomConfig],
    sync: Option<&SyncConfig>,
    cx: &mut Ctx,
) -> Vec<BoardConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, spanned) in raw.iter().enumerate() {
        let at = format!("boards[{i}]");
        let b = spanned.get_ref();
        let name = b.name.get_ref().clone();
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            cx.push(
                format!("{at}.name"),
                &b.name,
                "is its URL (/boards/NAME): letters, digits, - and _ only",
            );
        } else if !names.insert(name.clone()) {
            cx.push(
                format!("{at}.name"),
                &b.name,
                format!("duplicate board name `{name}`"),
            );
        }
        let listed: Vec<RoomId> = b
            .rooms
            .iter()
            .flatten()
            .map(|r| RoomId::new(r.get_ref()))
            .collect();
        let levels: Vec<String> = b
            .levels
            .iter()
            .flatten()
            .map(|l| l.get_ref().clone())
            .filter(|l| !l.trim().is_empty())
            .collect();
        if listed.is_empty() && levels.is_empty() {
            cx.push(
                at.clone(),
                spanned,
                "shows no rooms: give `rooms` (ids) or `levels` (building or floor ids from the room directory)",
            );
        }
        if let Some(l) = b.levels.as_ref().and_then(|l| l.first())
            && sync.is_none()
        {
            cx.push(
                format!("{at}.levels"),
                l,
                "rooms by level come from the room directory, which needs [sync] (and the app's credentials)",
            );
        }
        let group_by_floor = match &b.group_by {
            None => false,
            Some(g) => match g.get_ref().as_str() {
                "none" => false,
                "floor" => true,
                other => {
                    cx.push(
                        format!("{at}.group_by"),
                        g,
                        format!("`{other}`: write \"floor\" or \"none\""),
                    );
                    false
                }
            },
        };
        let token = cx.secret_from(
            &format!("{at}.token"),
            b.token_env.as_ref(),
            b.token_file.as_ref(),
        );
        // A board must not show for free what a room keeps behind a token.
        if token.is_none() {
            let guarded = rooms
                .iter()
                .filter(|r| r.token.is_some())
                .find(|r| listed.contains(&r.id) || !levels.is_empty());
            if let Some(r) = guarded {
                cx.push(
                    at.clone(),
                    spanned,
                    format!(
                        "may show room `{}`, which needs a token: give the board `token_env` (or `token_file`) too",
                        r.id
                    ),
                );
            }
        }
        out.push(BoardConfig {
            title: b.title.as_ref().map(|t| t.get_ref().clone()),
            rooms: listed,
            levels,
            group_by_floor,
            tz: cx.tz(&format!("{at}.time_zone"), &b.time_zone),
            locale: cx.locale(&format!("{at}.locale"), &b.locale),
            hour_cycle: cx.hour_cycle(&format!("{at}.clock"), &b.clock),
            privacy: b.privacy,
            token,
            name,
        });
    }
    out
}
