//! One payload in, everything it caused out: decode → token check →
//! schedule → render, and what the store must keep.
//!
//! Pure apart from the schedule it owns: `now` is passed in, nothing is
//! sent or written. The run loop feeds it; `preview`, `check` and the
//! benchmarks call it directly. Its fields are private: the schedule's
//! insides are reached only through the methods below.

mod boards;
#[cfg(test)]
mod tests;
mod timed;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::config::{Config, Payload, SinkConfig};
use crate::decode::{self, DecodeError, Decoded};
use crate::directory::Directory;
use crate::locale::Style;
use crate::message::{Message, Subject, digest_hex};
use crate::model::{Change, ChangeKind, EventKind, RoomEvent, RoomId};
use crate::render::view::{self, RoomMeta, ViewModel};
use crate::render::{RenderError, Rendered, Templates};
use crate::schedule::{EntryRow, Fetch, Schedule, Skip, Status, Written};
use crate::store::Loaded;

/// What an applied event caused: everything the run loop commits, sends
/// and announces.
#[derive(Debug)]
pub struct Applied {
    pub event_id: String,
    /// Room changes it made, and how many of them booked or cancelled.
    pub changes: usize,
    pub added: usize,
    pub removed: usize,
    /// The rooms whose schedule changed (each once).
    pub rooms: Vec<RoomId>,
    /// The earliest clock boundary of the changed bookings, if any.
    pub next_boundary: Option<DateTime<Utc>>,
    /// The earliest reminder the changed bookings may need, if any.
    pub next_reminder: Option<DateTime<Utc>>,
    pub messages: Vec<Message>,
    /// Renders that failed (logged by the caller; the schedule change
    /// stands).
    pub render_errors: Vec<(String, RenderError)>,
    /// The rows the store must keep (empty unless the pipeline persists).
    pub written: Written,
    /// New rooms outside the config left out (over `max_unknown_rooms`).
    pub dropped_rooms: usize,
}

impl Applied {
    /// Messages the clock made (no change behind them).
    pub(crate) fn messages(event_id: String, messages: Vec<Message>) -> Applied {
        Applied {
            event_id,
            changes: 0,
            added: 0,
            removed: 0,
            rooms: Vec::new(),
            next_boundary: None,
            next_reminder: None,
            messages,
            render_errors: Vec::new(),
            written: Written::default(),
            dropped_rooms: 0,
        }
    }
}

/// What handling one payload did.
#[derive(Debug)]
pub enum Outcome {
    Applied(Applied),
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
    /// Over a `[schedule]` cap: acknowledged (a redelivery would not
    /// help) and applied to nothing.
    OverCap {
        event_id: String,
        /// The booking's key (`uid@original_time`).
        booking: String,
        /// Rooms the event named, or the new unknown rooms it brought.
        rooms: usize,
        cap: Cap,
    },
}

/// Which `[schedule]` cap an event went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `max_rooms_per_event`
    RoomsPerEvent,
    /// `max_unknown_rooms`
    UnknownRooms,
}

impl Cap {
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::RoomsPerEvent => "rooms_per_event",
            Cap::UnknownRooms => "unknown_rooms",
        }
    }
}

/// Decode, check, apply and render.
pub struct Pipeline {
    config: Arc<Config>,
    templates: Arc<Templates>,
    schedule: Schedule,
    /// Hand back what the store must keep with each applied event.
    persist: bool,
    /// What the platform says about each room.
    directory: Directory,
    /// When each room's schedule was last fetched from the platform.
    synced: HashMap<RoomId, DateTime<Utc>, foldhash::fast::RandomState>,
    /// A hash of the snapshot last queued for each (panel sink, room): one
    /// the panel already has is not pushed again (e-ink screens wear and
    /// drain their batteries per refresh), except on the heartbeat.
    shown: HashMap<(Arc<str>, RoomId), u64, foldhash::fast::RandomState>,
    /// How far the clock's own messages had gone, as the store kept it
    /// (read once, when the clock starts).
    clock_marks: HashMap<String, DateTime<Utc>>,
    /// Since when the shared store has been unreachable: what is shown
    /// may be behind other instances' changes (views say so).
    offline_since: Option<DateTime<Utc>>,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Self {
        Pipeline {
            schedule: Schedule::with_dedup_capacity(config.schedule.dedup_capacity),
            config,
            templates,
            persist: false,
            directory: Directory::default(),
            synced: HashMap::default(),
            shown: HashMap::default(),
            clock_marks: HashMap::new(),
            offline_since: None,
        }
    }

    /// The store is unreachable since `since` (`None`: it is back). Views
    /// are marked stale meanwhile, as of that instant.
    pub(crate) fn set_offline(&mut self, since: Option<DateTime<Utc>>) {
        self.offline_since = since;
    }

    /// Start over from what the store holds: the schedule, seen ids,
    /// fetches, directory and clock marks become the store's (what was
    /// applied and never committed is forgotten, so its redelivery is
    /// applied again). What panels were last shown is kept.
    pub(crate) fn reset(&mut self, loaded: Loaded) {
        self.schedule = Schedule::with_dedup_capacity(self.config.schedule.dedup_capacity);
        self.synced.clear();
        self.clock_marks.clear();
        self.directory = Directory::default();
        self.restore(loaded);
    }

    /// How far the clock's messages named `name` had gone before this
    /// start (`reminders`, `digest:SINK`).
    pub(crate) fn clock_mark(&self, name: &str) -> Option<DateTime<Utc>> {
        self.clock_marks.get(name).copied()
    }

    /// Drop the snapshots in `out[from..]` whose body is the one last
    /// queued for that panel and room, unless `force` (the heartbeat, a
    /// start); remember the rest.
    fn drop_unchanged(&mut self, out: &mut Vec<Message>, from: usize, force: bool) {
        use std::hash::BuildHasher;
        let hasher = foldhash::fast::FixedState::with_seed(0x726f_6f6d);
        let mut i = 0;
        out.retain(|m| {
            i += 1;
            if i <= from || m.subject != Subject::Snapshot {
                return true;
            }
            let h = hasher.hash_one(m.body.as_str());
            let same = self.shown.insert((m.sink.clone(), m.room.clone()), h) == Some(h);
            force || !same
        });
    }

    /// Hand back, with each applied event, the rows a store must keep.
    pub(crate) fn persisting(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// Run with a new config and templates from now on (a reload): the
    /// schedule stays; every panel gets a fresh look at the next push.
    pub(crate) fn reconfigure(&mut self, config: Arc<Config>, templates: Arc<Templates>) {
        self.config = config;
        self.templates = templates;
        self.shown.clear();
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
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

    /// The decoding limit on rooms an event may list.
    pub(crate) fn max_rooms_per_event(&self) -> usize {
        self.config.schedule.max_rooms_per_event
    }

    pub fn handle(&mut self, payload: &[u8], now: DateTime<Utc>) -> Outcome {
        let d = decode::decode_limited(payload, self.max_rooms_per_event());
        self.handle_decoded(d, now)
    }

    /// [`Pipeline::handle`] of a payload decoded elsewhere (a large one, off
    /// the core's thread) with [`decode::decode_limited`] and
    /// [`Pipeline::max_rooms_per_event`].
    pub(crate) fn handle_decoded(
        &mut self,
        decoded: Result<Decoded, DecodeError>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let ev = match decoded {
            Err(e) => return Outcome::Malformed(e),
            Ok(Decoded::TooManyRooms {
                event_id,
                key,
                listed,
                token,
            }) => {
                if !self.token_ok(token.as_deref()) {
                    return Outcome::Rejected { event_id };
                }
                return Outcome::OverCap {
                    event_id,
                    booking: key.to_string(),
                    rooms: listed,
                    cap: Cap::RoomsPerEvent,
                };
            }
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
        let caps = &self.config.schedule;
        if caps.ignore_unknown_rooms {
            ev.rooms.retain(|r| self.configured(r));
        }
        let dropped = self.cap_unknown_rooms(&mut ev);
        if dropped > 0 && ev.rooms.is_empty() && ev.kind != EventKind::Deleted {
            return Outcome::OverCap {
                event_id: ev.event_id,
                booking: ev.key.to_string(),
                rooms: dropped,
                cap: Cap::UnknownRooms,
            };
        }
        match self.schedule.apply_at(&ev, Some(now)) {
            Err(why) => Outcome::Skipped {
                event_id: ev.event_id,
                why,
            },
            Ok(changes) => {
                let mut a = self.applied(ev.event_id, &changes, &[], now);
                a.dropped_rooms = dropped;
                Outcome::Applied(a)
            }
        }
    }

    /// Keep the schedule's rooms outside the config under
    /// `max_unknown_rooms`: if the event's new unknown rooms would go over,
    /// none of them is taken (the event applies to its other rooms).
    /// Returns how many were left out.
    fn cap_unknown_rooms(&self, ev: &mut RoomEvent) -> usize {
        let new = |r: &RoomId| !self.schedule.has_room(r) && !self.configured(r);
        let fresh = ev.rooms.iter().filter(|r| new(r)).count();
        if fresh == 0 {
            return 0;
        }
        // Counted only when an event brings a new room: rare once the
        // schedule knows the tenant's rooms.
        let known = self
            .schedule
            .rooms()
            .filter(|r| !self.configured(r))
            .count();
        if known + fresh <= self.config.schedule.max_unknown_rooms {
            return 0;
        }
        ev.rooms.retain(|r| !new(r));
        fresh
    }

    /// What `changes` caused: notices (none for the `silent` rooms),
    /// snapshots, and what the store must keep.
    fn applied(
        &mut self,
        event_id: String,
        changes: &[Change],
        silent: &[RoomId],
        now: DateTime<Utc>,
    ) -> Applied {
        let mut messages = Vec::new();
        let mut render_errors = Vec::new();
        self.render_changes(changes, silent, now, &mut messages, &mut render_errors);
        self.drop_unchanged(&mut messages, 0, false);
        let rooms: Vec<RoomId> = distinct(changes.iter().map(|c| &c.room))
            .into_iter()
            .cloned()
            .collect();
        let count = |k| changes.iter().filter(|c| c.kind == k).count();
        Applied {
            event_id,
            changes: changes.len(),
            added: count(ChangeKind::Booked),
            removed: count(ChangeKind::Cancelled),
            rooms,
            next_boundary: self.boundary_of(changes, now),
            next_reminder: self.reminder_of(changes, now),
            messages,
            render_errors,
            written: if self.persist {
                self.schedule.written()
            } else {
                Written::default()
            },
            dropped_rooms: 0,
        }
    }

    /// Merge a completed fetch from the room APIs. Its changes are
    /// announced like an event's (caused by `sync:<instant>`), except in
    /// rooms fetched for the first time, whose panels are updated silently.
    pub(crate) fn sync(&mut self, fetch: &Fetch, now: DateTime<Utc>) -> Applied {
        let event_id: Arc<str> = format!(
            "sync:{}",
            fetch
                .began
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
        .into();
        let silent: Vec<RoomId> = fetch
            .rooms
            .iter()
            .filter(|r| !self.synced.contains_key(*r))
            .cloned()
            .collect();
        let changes = self.schedule.merge(fetch, &event_id, now);
        for r in &fetch.rooms {
            let t = self.synced.entry(r.clone()).or_insert(fetch.began);
            *t = (*t).max(fetch.began);
        }
        self.applied(event_id.to_string(), &changes, &silent, now)
    }

    /// Rows other instances committed (a shared store's change feed): into
    /// the schedule where newer than what it holds, making no message (the
    /// instance that committed them made those). What changed: the rooms
    /// (for live pages) and the next boundary and reminder, as for an
    /// event.
    pub(crate) fn take_committed(&mut self, rows: Vec<EntryRow>, now: DateTime<Utc>) -> Applied {
        let event_id: Arc<str> = Arc::from("feed");
        let mut changes = Vec::new();
        for row in rows {
            changes.extend(self.schedule.take_committed(row, &event_id, Some(now)));
        }
        let rooms: Vec<RoomId> = distinct(changes.iter().map(|c| &c.room))
            .into_iter()
            .cloned()
            .collect();
        Applied {
            changes: changes.len(),
            rooms,
            next_boundary: self.boundary_of(&changes, now),
            next_reminder: self.reminder_of(&changes, now),
            ..Applied::messages(event_id.to_string(), Vec::new())
        }
    }

    /// The room directory, as last fetched (or restored).
    pub(crate) fn set_directory(&mut self, directory: Directory) {
        self.directory = directory;
    }

    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    /// What is known of a room besides its schedule.
    pub(crate) fn room_meta(&self, room: &RoomId, now: DateTime<Utc>) -> RoomMeta<'_> {
        let mut synced_at = self.synced.get(room).copied();
        let mut stale = match (&self.config.sync, synced_at) {
            (Some(s), Some(at)) => {
                chrono::Duration::from_std(s.stale_after).is_ok_and(|d| now - at > d)
            }
            (Some(_), None) => false,
            (None, _) => false,
        };
        // The shared store is unreachable: other instances' changes do not
        // reach this one; the schedule shown is as of the outage's start.
        if let Some(since) = self.offline_since {
            stale = true;
            synced_at = Some(synced_at.map_or(since, |at| at.min(since)));
        }
        RoomMeta {
            name: self.config.room(room).and_then(|r| r.name.as_deref()),
            info: self.directory.get(room),
            synced_at,
            stale,
        }
    }

    /// A room's name: configured, else the directory's, else its id.
    pub(crate) fn room_name(&self, room: &RoomId) -> String {
        self.config
            .room(room)
            .and_then(|r| r.name.clone())
            .or_else(|| {
                self.directory
                    .get(room)
                    .map(|i| i.name.clone())
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| room.to_string())
    }

    /// Apply a decoded event to the schedule alone (trial schedules of
    /// `check`; nothing is rendered).
    pub fn apply(&mut self, ev: &RoomEvent) -> Result<Vec<Change>, Skip> {
        self.schedule.apply(ev)
    }

    /// Put what a store loaded back: bookings (with their last change
    /// times), series deletes, and the seen ids (oldest first, so the
    /// newest stay in the bounded window). Pending messages are the
    /// caller's.
    pub(crate) fn restore(&mut self, loaded: Loaded) {
        for e in loaded.entries {
            self.schedule.restore(e);
        }
        for (room, at) in loaded.synced {
            self.synced.insert(RoomId::new(&room), at);
        }
        if let Some(d) = loaded
            .directory
            .and_then(|(json, _)| Directory::from_json(&json))
        {
            self.directory = d;
        }
        for (uid, at) in loaded.series_deleted {
            self.schedule.restore_series_delete(&uid, at);
        }
        for id in loaded.seen.iter().rev() {
            self.schedule.remember(id);
        }
        self.clock_marks.extend(loaded.timers);
    }

    /// Forget bookings that ended before `before`; how many.
    pub(crate) fn prune(&mut self, before: DateTime<Utc>) -> usize {
        self.schedule.prune(before)
    }

    /// Live bookings held.
    pub fn bookings(&self) -> usize {
        self.schedule.len()
    }

    /// Messages for a list of changes: a notice per change per notice sink
    /// that wants it, and one snapshot per changed room per panel sink.
    fn render_changes(
        &self,
        changes: &[Change],
        silent: &[RoomId],
        now: DateTime<Utc>,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        let cfg = &self.config;
        for c in changes {
            let room_cfg = cfg.room(&c.room);
            for sink in &cfg.sinks {
                if sink.payload != Payload::Notice || !sink.wants(&c.room, Some(c.kind)) {
                    continue;
                }
                if silent.contains(&c.room) {
                    continue;
                }
                let style = cfg.style(room_cfg, Some(sink));
                let vm = view::notice(&style, c, &self.room_meta(&c.room, now), now);
                match self.templates.render_for(
                    &sink.template,
                    style.locale,
                    vm,
                    sink.kind.target(),
                ) {
                    Ok(r) => out.push(Message::rendered(
                        &sink.name,
                        c.room.clone(),
                        Subject::Notice(c.kind),
                        Some(c.booking.key.to_string()),
                        c.event_id.clone(),
                        // The booking too: one event (a series delete) can
                        // cancel several bookings in one room.
                        digest_hex(&[
                            &sink.name,
                            &c.event_id,
                            c.room.as_str(),
                            c.kind.as_str(),
                            &c.booking.key.to_string(),
                        ]),
                        r,
                    )),
                    Err(e) => errors.push((sink.name.clone(), e)),
                }
            }
        }
        // One snapshot per room, however many changes touched it.
        let mut seen = HashSet::with_capacity(changes.len());
        for c in changes {
            if seen.insert(&c.room) {
                self.push_snapshots(&c.room, &c.event_id, now, out, errors);
            }
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
        for sink in self.panel_sinks(room) {
            match self.snapshot(sink, room, now) {
                Ok(r) => out.push(Message::rendered(
                    &sink.name,
                    room.clone(),
                    Subject::Snapshot,
                    None,
                    event_id.clone(),
                    digest_hex(&[&sink.name, event_id, room.as_str(), "snapshot"]),
                    r,
                )),
                Err(e) => errors.push((sink.name.clone(), e)),
            }
        }
    }

    /// Rooms some snapshot sink shows.
    pub(crate) fn panel_rooms(&self) -> Vec<RoomId> {
        self.all_rooms()
            .into_iter()
            .filter(|r| !self.panel_sinks(r).is_empty())
            .collect()
    }

    fn soon(&self) -> chrono::Duration {
        self.config.schedule.starting_soon
    }

    /// A room's display style (no sink's overrides).
    fn room_style(&self, room: &RoomId) -> Style {
        self.config.style(self.config.room(room), None)
    }

    /// When the next panel push is due by the clock alone: a booking
    /// boundary, or local midnight in some panel room's zone.
    pub(crate) fn next_clock_push(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let midnight = self
            .panel_rooms()
            .iter()
            .map(|r| self.room_style(r).next_midnight(now))
            .min();
        [self.schedule.next_boundary(now, self.soon()), midnight]
            .into_iter()
            .flatten()
            .min()
    }

    /// Did a panel room's local midnight pass in `(from, to]`?
    pub(crate) fn midnight_passed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.panel_rooms()
            .iter()
            .any(|r| self.room_style(r).next_midnight(from) <= to)
    }

    /// The earliest boundary of these changes' bookings after `now`.
    fn boundary_of(&self, changes: &[Change], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let soon = self.soon();
        changes
            .iter()
            .flat_map(|c| c.booking.boundaries(soon))
            .filter(|t| *t > now)
            .min()
    }

    /// Snapshots of these rooms for every panel sink showing them, caused
    /// by the clock (`event_id` names the instant, e.g. `clock:…`): those a
    /// panel already has are left out unless `force` (the heartbeat, a
    /// start).
    pub(crate) fn clock_snapshots(
        &mut self,
        rooms: &[RoomId],
        now: DateTime<Utc>,
        event_id: &Arc<str>,
        force: bool,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        let from = out.len();
        for room in rooms {
            self.push_snapshots(room, event_id, now, out, errors);
        }
        self.drop_unchanged(out, from, force);
    }

    /// Rooms whose view changed by itself in `(from, to]`.
    pub(crate) fn rooms_due(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<RoomId> {
        self.schedule.rooms_with_boundary(from, to, self.soon())
    }

    /// Snapshot sinks that show a room: those the room lists in `panels`,
    /// and those whose `rooms` filter names it.
    fn panel_sinks(&self, room: &RoomId) -> Vec<&SinkConfig> {
        let cfg = &self.config;
        let listed = cfg
            .room(room)
            .map(|r| r.panels.as_slice())
            .unwrap_or_default();
        cfg.sinks
            .iter()
            .filter(|s| s.payload == Payload::Snapshot)
            .filter(|s| {
                listed.contains(&s.name) || s.rooms.as_ref().is_some_and(|r| r.contains(room))
            })
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
    pub(crate) fn snapshot_vm_styled(
        &self,
        style: &Style,
        room: &RoomId,
        now: DateTime<Utc>,
    ) -> ViewModel {
        let v = self
            .schedule
            .view(room, now, style.next_midnight(now), self.soon());
        view::snapshot(style, room, &self.room_meta(room, now), &v, now)
    }

    /// The room's bookings from its local midnight today through the sync
    /// window (`[sync] days`, else 7 days) as an iCalendar feed, in its
    /// zone and language, privacy applied.
    pub(crate) fn calendar(&self, room: &RoomId, now: DateTime<Utc>) -> String {
        use chrono::TimeZone;
        let style = self.config.style(self.config.room(room), None);
        let days = self.config.sync.as_ref().map_or(7, |s| s.days);
        let today = style
            .local(now)
            .date_naive()
            .and_time(chrono::NaiveTime::MIN);
        let from = style
            .tz
            .from_local_datetime(&today)
            .earliest()
            .map_or(now, |t| t.with_timezone(&Utc));
        let to = from + chrono::Duration::days(i64::from(days) + 1);
        let entries: Vec<crate::render::ics::Entry<'_>> = self
            .schedule
            .bookings_between(room, from, to)
            .into_iter()
            .map(|b| crate::render::ics::Entry {
                booking: b,
                last_change: self.schedule.last_change(&b.key).unwrap_or(from),
                who: view::booking(&style, b, now)["who"]
                    .as_str()
                    .map(str::to_string),
            })
            .collect();
        let meta = self.room_meta(room, now);
        crate::render::ics::calendar(meta.display_name(room), &style, from, to, &entries)
    }

    /// A room's status at `now`, in its own zone.
    pub fn status(&self, room: &RoomId, now: DateTime<Utc>) -> Status {
        let style = self.room_style(room);
        self.schedule
            .view(room, now, style.next_midnight(now), self.soon())
            .status
    }

    fn snapshot(
        &self,
        sink: &SinkConfig,
        room: &RoomId,
        now: DateTime<Utc>,
    ) -> Result<Rendered, RenderError> {
        let style = self.config.style(self.config.room(room), Some(sink));
        let vm = self.snapshot_vm_styled(&style, room, now);
        self.templates
            .render_for(&sink.template, style.locale, vm, sink.kind.target())
    }

    /// Is this a room to show: configured, or (unless unknown rooms are
    /// ignored) one the schedule knows?
    pub(crate) fn knows_room(&self, room: &RoomId) -> bool {
        self.configured(room)
            || (!self.config.schedule.ignore_unknown_rooms
                && self.schedule.rooms().any(|r| r == room))
    }

    /// Listed in `[[rooms]]`, or under a `[rooms_from]` level.
    fn configured(&self, room: &RoomId) -> bool {
        self.config.room(room).is_some()
            || self
                .config
                .rooms_from
                .as_ref()
                .is_some_and(|f| self.directory.get(room).is_some_and(|i| i.under(&f.levels)))
    }

    /// Every room to show: configured ones first, then those under
    /// `[rooms_from]` levels, then any other room the schedule knows (unless
    /// unknown rooms are ignored).
    pub fn all_rooms(&self) -> Vec<RoomId> {
        let mut v: Vec<RoomId> = self.config.rooms.iter().map(|r| r.id.clone()).collect();
        if let Some(from) = &self.config.rooms_from {
            for r in self.directory.under(&from.levels) {
                if self.config.room(&r).is_none() {
                    v.push(r);
                }
            }
        }
        if !self.config.schedule.ignore_unknown_rooms {
            let listed: HashSet<&RoomId> = v.iter().collect();
            let mut extra: Vec<RoomId> = self
                .schedule
                .rooms()
                .filter(|r| self.config.room(r).is_none() && !listed.contains(r))
                .cloned()
                .collect();
            extra.sort();
            v.extend(extra);
        }
        v
    }
}

/// Each item once, in first-seen order (linear: an event may name many
/// rooms).
fn distinct<'a, T: Eq + std::hash::Hash + 'a>(items: impl Iterator<Item = &'a T>) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}
