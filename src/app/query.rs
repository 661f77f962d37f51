//! Answers to the HTTP server's questions about the schedule, which only
//! the core may read.

use chrono::{DateTime, Utc};

use crate::http::{Query, ViewError};
use crate::model::RoomId;
use crate::pipeline::Pipeline;
use crate::render::names;

/// Answer one question as of `now` (a dropped asker is gone: no answer).
pub(super) fn answer(p: &Pipeline, q: Query, now: DateTime<Utc>) {
    match q {
        Query::Rooms(reply) => {
            let _ = reply.send(rooms(p, now));
        }
        Query::Calendar { room, reply } => {
            let room = RoomId::new(&room);
            let body = if p.knows_room(&room) {
                Ok(p.calendar(&room, now))
            } else {
                Err(ViewError::NoSuchRoom)
            };
            let _ = reply.send(body);
        }
        Query::Alive(reply) => {
            let _ = reply.send(());
        }
        Query::Board { name, page, reply } => {
            let body = match p.config().board(&name) {
                None => Err(ViewError::NoSuchRoom),
                Some(b) => {
                    let (vm, rooms) = p.board_vm(b, now);
                    let locale = p.config().board_style(b, None).locale;
                    let template = if page {
                        names::BOARD_PAGE
                    } else {
                        names::BOARD_PANEL
                    };
                    p.templates()
                        .render(template, locale, vm)
                        .map(|r| (r.body, rooms))
                        .map_err(|e| ViewError::Render(e.to_string()))
                }
            };
            let _ = reply.send(body);
        }
        // The core handles reloads itself (they change the pipeline).
        Query::Reload(..) => {}
        Query::View { room, view, reply } => {
            let room = RoomId::new(&room);
            let body = if p.knows_room(&room) {
                let cfg = p.config();
                let style = cfg.style(cfg.room(&room), None);
                let vm = p.snapshot_vm_styled(&style, &room, now);
                p.templates()
                    .render(view.template(), style.locale, vm)
                    .map(|r| r.body)
                    .map_err(|e| ViewError::Render(e.to_string()))
            } else {
                Err(ViewError::NoSuchRoom)
            };
            let _ = reply.send(body);
        }
    }
}

/// Every room: (id, name, status).
fn rooms(p: &Pipeline, now: DateTime<Utc>) -> Vec<(String, String, &'static str)> {
    p.all_rooms()
        .into_iter()
        .map(|r| {
            let name = p.room_name(&r);
            let status = p.status(&r, now).as_str();
            (r.to_string(), name, status)
        })
        .collect()
}
