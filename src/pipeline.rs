//! One payload in, messages out: decode → token check → schedule → render.
//!
//! Pure apart from the schedule it owns: `now` is passed in, nothing is
//! sent. The run loop feeds it; `preview` and the benchmarks call it
//! directly.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, Payload, SinkConfig};
use crate::decode::{self, DecodeError, Decoded};
use crate::locale::Style;
use crate::model::{Change, ChangeKind, RoomId};
use crate::render::view::{self, ViewModel};
use crate::render::{Format, RenderError, Templates};
use crate::schedule::{Schedule, Skip};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Notice(ChangeKind),
    Snapshot,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Notice(k) => k.as_str(),
            Subject::Snapshot => "snapshot",
        }
    }
}

/// One rendered message for one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Index into `Config::sinks`.
    pub sink: usize,
    /// Its row in the store's outbox, once committed.
    pub outbox_id: Option<i64>,
    /// Stable per notice: the same event, room, change and sink always give
    /// the same key, so a retried or replayed notice keeps it.
    pub idempotency_key: String,
    /// The delivery id of the event that caused it.
    pub event_id: Arc<str>,
    pub room: RoomId,
    pub subject: Subject,
    /// `{uid}_{original_time}` of the booking, for notices.
    pub booking: Option<String>,
    pub body: String,
    pub format: Format,
}

/// What handling one payload did.
#[derive(Debug)]
pub enum Outcome {
    Applied {
        event_id: String,
        changes: usize,
        /// The rooms whose schedule changed (each once).
        rooms: Vec<RoomId>,
        /// The earliest clock boundary of the changed bookings, if any.
        next_boundary: Option<DateTime<Utc>>,
        messages: Vec<Message>,
        /// Renders that failed (logged by the caller; the schedule change
        /// stands).
        render_errors: Vec<(String, RenderError)>,
    },
    Skipped {
        event_id: String,
        why: Skip,
    },
    /// Another event type (not for us).
    Ignored {
        event_type: String,
    },
    /// Carried a verification token other than the configured one.
    Rejected {
        event_id: String,
    },
    Malformed(DecodeError),
    Challenge {
        challenge: String,
        token_ok: bool,
    },
}

/// Decode, check, apply and render.
pub struct Pipeline {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    pub schedule: Schedule,
}

/// `sha256(parts joined by NUL)`, first 16 bytes as hex.
pub fn idempotency_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = h.finalize();
    let mut s = String::with_capacity(32);
    for b in &d[..16] {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

impl Pipeline {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Self {
        Pipeline {
            schedule: Schedule::with_dedup_capacity(config.dedup_capacity),
            config,
            templates,
        }
    }

    fn token_ok(&self, token: Option<&str>) -> bool {
        match self
            .config
            .platform
            .as_ref()
            .and_then(|p| p.verification_token.as_ref())
        {
            None => true,
            Some(want) => token
                .is_some_and(|t| bool::from(t.as_bytes().ct_eq(want.expose_secret().as_bytes()))),
        }
    }

    pub fn handle(&mut self, payload: &[u8], now: DateTime<Utc>) -> Outcome {
        let ev = match decode::decode(payload) {
            Err(e) => return Outcome::Malformed(e),
            Ok(Decoded::Other { event_type, .. }) => return Outcome::Ignored { event_type },
            Ok(Decoded::Challenge { challenge, token }) => {
                let token_ok = self.token_ok(token.as_deref());
                return Outcome::Challenge {
                    challenge,
                    token_ok,
                };
            }
            Ok(Decoded::Room(ev)) => ev,
        };
        if !self.token_ok(ev.token.as_deref()) {
            return Outcome::Rejected {
                event_id: ev.event_id,
            };
        }
        let mut ev = *ev;
        if self.config.ignore_unknown_rooms {
            let cfg = &self.config;
            ev.rooms.retain(|r| cfg.room(r).is_some());
        }
        match self.schedule.apply(&ev) {
            Err(why) => Outcome::Skipped {
                event_id: ev.event_id,
                why,
            },
            Ok(changes) => {
                let mut messages = Vec::new();
                let mut render_errors = Vec::new();
                self.render_changes(&changes, now, &mut messages, &mut render_errors);
                let mut rooms: Vec<RoomId> = Vec::with_capacity(1);
                for c in &changes {
                    if !rooms.contains(&c.room) {
                        rooms.push(c.room.clone());
                    }
                }
                Outcome::Applied {
                    event_id: ev.event_id,
                    changes: changes.len(),
                    rooms,
                    next_boundary: self.boundary_of(&changes, now),
                    messages,
                    render_errors,
                }
            }
        }
    }

    /// Messages for a list of changes: a notice per change per notice sink
    /// that wants it, and one snapshot per changed room per panel sink.
    pub fn render_changes(
        &self,
        changes: &[Change],
        now: DateTime<Utc>,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        let cfg = &self.config;
        for c in changes {
            let room_cfg = cfg.room(&c.room);
            for (i, sink) in cfg.sinks.iter().enumerate() {
                if sink.payload != Payload::Notice || !wants(sink, &c.room, Some(c.kind)) {
                    continue;
                }
                let style = cfg.style(room_cfg, Some(sink));
                let vm = view::notice(&style, c, room_cfg.and_then(|r| r.name.as_deref()), now);
                match self.templates.render(&sink.template, style.locale, vm) {
                    Ok(r) => out.push(Message {
                        sink: i,
                        outbox_id: None,
                        idempotency_key: idempotency_key(&[
                            &sink.name,
                            &c.event_id,
                            c.room.as_str(),
                            c.kind.as_str(),
                        ]),
                        event_id: c.event_id.clone(),
                        room: c.room.clone(),
                        subject: Subject::Notice(c.kind),
                        booking: Some(c.booking.key.to_string()),
                        body: r.body,
                        format: r.format,
                    }),
                    Err(e) => errors.push((sink.name.clone(), e)),
                }
            }
        }
        // One snapshot per room, however many changes touched it.
        let mut rooms: Vec<(&RoomId, &Arc<str>)> = Vec::new();
        for c in changes {
            if !rooms.iter().any(|(r, _)| *r == &c.room) {
                rooms.push((&c.room, &c.event_id));
            }
        }
        for (room, event_id) in rooms {
            self.push_snapshots(room, event_id, now, out, errors);
        }
    }

    /// One snapshot message of `room` for every panel sink showing it.
    fn push_snapshots(
        &self,
        room: &RoomId,
        event_id: &Arc<str>,
        now: DateTime<Utc>,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        for i in self.panel_sinks(room) {
            let name = &self.config.sinks[i].name;
            match self.snapshot(i, room, now) {
                Ok((body, format)) => out.push(Message {
                    sink: i,
                    outbox_id: None,
                    idempotency_key: idempotency_key(&[name, event_id, room.as_str(), "snapshot"]),
                    event_id: event_id.clone(),
                    room: room.clone(),
                    subject: Subject::Snapshot,
                    booking: None,
                    body,
                    format,
                }),
                Err(e) => errors.push((name.clone(), e)),
            }
        }
    }

    /// Rooms some snapshot sink shows.
    pub fn panel_rooms(&self) -> Vec<RoomId> {
        self.all_rooms()
            .into_iter()
            .filter(|r| !self.panel_sinks(r).is_empty())
            .collect()
    }

    fn soon(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.starting_soon)
            .unwrap_or(chrono::Duration::minutes(10))
    }

    /// When the next panel push is due by the clock alone: a booking
    /// boundary, or local midnight in some panel room's zone.
    pub fn next_clock_push(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let midnight = self
            .panel_rooms()
            .iter()
            .map(|r| {
                self.config
                    .style(self.config.room(r), None)
                    .next_midnight(now)
            })
            .min();
        [self.schedule.next_boundary(now, self.soon()), midnight]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest boundary of these changes' bookings after `now`.
    pub fn boundary_of(&self, changes: &[Change], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let soon = self.soon();
        changes
            .iter()
            .flat_map(|c| c.booking.boundaries(soon))
            .filter(|t| *t > now)
            .min()
    }

    /// Snapshots of these rooms for every panel sink showing them, caused
    /// by the clock (`event_id` names the instant, e.g. `clock:…`).
    pub fn clock_snapshots(
        &self,
        rooms: &[RoomId],
        now: DateTime<Utc>,
        event_id: &Arc<str>,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        for room in rooms {
            self.push_snapshots(room, event_id, now, out, errors);
        }
    }

    /// Rooms whose view changed by itself in `(from, to]`.
    pub fn rooms_due(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<RoomId> {
        self.schedule.rooms_with_boundary(from, to, self.soon())
    }

    /// Snapshot sinks that show a room: those the room lists in `panels`,
    /// and those whose `rooms` filter names it.
    pub fn panel_sinks(&self, room: &RoomId) -> Vec<usize> {
        let cfg = &self.config;
        let listed = cfg
            .room(room)
            .map(|r| r.panels.as_slice())
            .unwrap_or_default();
        cfg.sinks
            .iter()
            .enumerate()
            .filter(|(_, s)| s.payload == Payload::Snapshot)
            .filter(|(_, s)| {
                listed.contains(&s.name) || s.rooms.as_ref().is_some_and(|r| r.contains(room))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The room's view at `now` as one sink shows it (its style).
    pub fn snapshot_vm(
        &self,
        sink: Option<&SinkConfig>,
        room: &RoomId,
        now: DateTime<Utc>,
    ) -> ViewModel {
        let style = self.config.style(self.config.room(room), sink);
        self.snapshot_vm_styled(&style, room, now)
    }

    /// The room's view at `now` in a given style.
    pub fn snapshot_vm_styled(
        &self,
        style: &Style,
        room: &RoomId,
        now: DateTime<Utc>,
    ) -> ViewModel {
        let cfg = &self.config;
        let day_end = style.next_midnight(now);
        let soon =
            chrono::Duration::from_std(cfg.starting_soon).unwrap_or(chrono::Duration::minutes(10));
        let v = self.schedule.view(room, now, day_end, soon);
        view::snapshot(
            style,
            room,
            cfg.room(room).and_then(|r| r.name.as_deref()),
            &v,
            now,
        )
    }

    pub fn snapshot(
        &self,
        sink: usize,
        room: &RoomId,
        now: DateTime<Utc>,
    ) -> Result<(String, Format), RenderError> {
        let s = &self.config.sinks[sink];
        let style = self.config.style(self.config.room(room), Some(s));
        let vm = self.snapshot_vm_styled(&style, room, now);
        self.templates
            .render(&s.template, style.locale, vm)
            .map(|r| (r.body, r.format))
    }

    /// Every room to show: configured ones first, then any other room the
    /// schedule knows (unless unknown rooms are ignored).
    pub fn all_rooms(&self) -> Vec<RoomId> {
        let mut v: Vec<RoomId> = self.config.rooms.iter().map(|r| r.id.clone()).collect();
        if !self.config.ignore_unknown_rooms {
            let mut extra: Vec<RoomId> = self
                .schedule
                .rooms()
                .filter(|r| self.config.room(r).is_none())
                .cloned()
                .collect();
            extra.sort();
            v.extend(extra);
        }
        v
    }
}

/// Does a sink's filter let this room (and change kind) through?
pub fn wants(sink: &SinkConfig, room: &RoomId, kind: Option<ChangeKind>) -> bool {
    sink.rooms.as_ref().is_none_or(|r| r.contains(room))
        && match (kind, &sink.changes) {
            (Some(k), Some(set)) => set.contains(&k),
            _ => true,
        }
}
