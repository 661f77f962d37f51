//! Backfill and reconciliation: a task that owns the platform's REST
//! client, fetches every room's busy instances at start and every
//! `[sync] interval` (and the rooms an event touched, soon after it), the
//! room directory hourly, and titles where some display shows them; and
//! hands what it found to the core, which merges it into the schedule
//! (`Schedule::merge`, the same rules as events) and commits it like an
//! event. A failed or partial fetch hands over nothing: the last known
//! schedule stays, and its age shows.

pub mod tools;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::TimeSource;
use crate::config::{Config, SyncConfig};
use crate::directory::{Directory, Disabled, RoomInfo};
use crate::error::Chain;
use crate::lark::api::{self, Api, ApiError};
use crate::locale::{Privacy, start_of_day};
use crate::model::{BookingKey, Organizer, RoomId, Title};
use crate::schedule::{Fetch, FetchedInstance};

/// How long after the last event of a burst its rooms are fetched again
/// (events for one booking usually come in a burst: one fetch serves them
/// all)...
pub const COALESCE: Duration = Duration::from_secs(1);
/// ...but never later than this after the first (a steady stream of
/// events does not hold the fetch back for ever).
pub const COALESCE_MAX: Duration = Duration::from_secs(10);
/// How often the room directory is fetched again.
pub const DIRECTORY_EVERY: Duration = Duration::from_secs(3600);
/// How long a fetched title is used before it is asked for again.
const TITLES_EVERY: Duration = Duration::from_secs(86400);
/// After a failed directory fetch, how long until the next try.
const DIRECTORY_RETRY: Duration = Duration::from_secs(300);

/// Rooms an event touched, to be fetched again soon: a set (a burst of
/// events asks once per room, and nothing is lost while a fetch runs).
#[derive(Debug, Default)]
pub struct Wanted {
    rooms: std::sync::Mutex<BTreeSet<RoomId>>,
    notify: tokio::sync::Notify,
}

impl Wanted {
    /// Ask for these rooms.
    pub fn ask<'a>(&self, rooms: impl IntoIterator<Item = &'a RoomId>) {
        let mut set = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let before = set.len();
        set.extend(rooms.into_iter().cloned());
        if set.len() > before {
            self.notify.notify_one();
        }
    }

    fn take(&self) -> BTreeSet<RoomId> {
        std::mem::take(&mut *self.rooms.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the task found, for the core.
#[derive(Debug)]
pub enum Found {
    /// A completed fetch of some rooms' schedules (with titles where some
    /// display shows them).
    Schedule(Fetch),
    /// The room directory.
    Directory(Directory),
    /// Bookings other instances committed to the shared store (its change
    /// feed), and how long ago the oldest of them was written.
    Committed(crate::store::feed::Changes),
    /// Pending outbox rows of the sinks this instance sends for, claimed
    /// (a shared store).
    Claimed(Vec<crate::store::OutboxRow>),
    /// What other instances sent for sinks this one just took (a shared
    /// store): their rate limits count it.
    SentBefore(crate::store::shared::SentBefore),
}

impl From<crate::store::shared::SentBefore> for Found {
    fn from(s: crate::store::shared::SentBefore) -> Found {
        Found::SentBefore(s)
    }
}

impl From<crate::store::feed::Changes> for Found {
    fn from(c: crate::store::feed::Changes) -> Found {
        Found::Committed(c)
    }
}

impl From<Vec<crate::store::OutboxRow>> for Found {
    fn from(rows: Vec<crate::store::OutboxRow>) -> Found {
        Found::Claimed(rows)
    }
}

/// A room to fetch and the zone its day is counted in.
#[derive(Debug, Clone)]
struct Room {
    id: RoomId,
    tz: Tz,
    /// Some display of it shows titles.
    titles: bool,
}

/// The reconciliation task.
pub struct Syncer {
    api: Arc<Api>,
    sync: SyncConfig,
    config: Arc<Config>,
    clock: TimeSource,
    /// The directory as known (restored from the store, then fetched).
    directory: Directory,
    /// Titles already fetched, and when.
    titles: HashMap<BookingKey, (Title, Instant)>,
    /// Several instances on one store: only the leader fetches.
    roles: Option<Arc<crate::store::shared::Roles>>,
}

impl Syncer {
    pub fn new(
        api: Arc<Api>,
        sync: SyncConfig,
        config: Arc<Config>,
        clock: TimeSource,
        directory: Directory,
    ) -> Self {
        Syncer {
            api,
            sync,
            config,
            clock,
            directory,
            titles: HashMap::new(),
            roles: None,
        }
    }

    /// The directory and the periodic sync only while this instance leads
    /// (several instances on one store; one that becomes leader fetches
    /// within a second). The rooms of events this instance took are
    /// fetched whether it leads or not.
    pub fn leading_only(mut self, roles: Option<Arc<crate::store::shared::Roles>>) -> Self {
        self.roles = roles;
        self
    }

    /// Run until `stop`: everything at once, then on the timers and on
    /// demand (`wanted`: rooms an event touched).
    pub async fn run(
        mut self,
        wanted: Arc<Wanted>,
        out: mpsc::Sender<Found>,
        stop: CancellationToken,
    ) {
        let start = Instant::now();
        let (mut directory_due, mut full_due) = (start, start);
        let mut want: BTreeSet<RoomId> = BTreeSet::new();
        let mut want_due: Option<Instant> = None;
        let mut want_first: Option<Instant> = None;
        loop {
            let next = [Some(directory_due), Some(full_due), want_due]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(full_due);
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = wanted.notify.notified() => {
                    want.extend(wanted.take());
                    if !want.is_empty() {
                        let now = Instant::now();
                        let first = *want_first.get_or_insert(now);
                        want_due = Some((now + COALESCE).min(first + COALESCE_MAX));
                    }
                    continue;
                }
                () = tokio::time::sleep_until(next) => {}
            }
            let now = Instant::now();
            if self.roles.as_ref().is_some_and(|r| !r.leader()) {
                // Not the leader: the directory and the periodic sync are
                // the leader's (look again in a second). The rooms events
                // taken here touched are fetched here: the leader never
                // hears of those events.
                let soon = now + Duration::from_secs(1);
                directory_due = directory_due.max(soon);
                full_due = full_due.max(soon);
                if want_due.is_none_or(|d| d > now) {
                    continue;
                }
            }
            if directory_due <= now {
                directory_due = now
                    + match self.directory(&out).await {
                        Ok(()) => DIRECTORY_EVERY,
                        Err(()) => DIRECTORY_RETRY,
                    };
            }
            if full_due <= now {
                full_due = now + self.sync.interval;
                want.clear();
                want_due = None;
                want_first = None;
                let rooms = self.rooms();
                self.fetch(&rooms, &out).await;
            } else if want_due.is_some_and(|d| d <= now) {
                want_due = None;
                want_first = None;
                // Asked for since the timer started: served by this fetch.
                want.extend(wanted.take());
                let rooms: Vec<Room> = self
                    .rooms()
                    .into_iter()
                    .filter(|r| want.contains(&r.id))
                    .collect();
                want.clear();
                self.fetch(&rooms, &out).await;
            }
            if out.is_closed() {
                return;
            }
        }
    }

    /// The rooms to fetch: every configured room, and those under
    /// `[rooms_from]` levels.
    fn rooms(&self) -> Vec<Room> {
        let cfg = &self.config;
        let titles = |id: &RoomId| shows_titles(cfg, id);
        let mut v: Vec<Room> = cfg
            .rooms
            .iter()
            .map(|r| Room {
                id: r.id.clone(),
                tz: cfg.style(Some(r), None).tz,
                titles: titles(&r.id),
            })
            .collect();
        if let Some(from) = &cfg.rooms_from {
            for id in self.directory.under(&from.levels) {
                if cfg.room(&id).is_none() {
                    v.push(Room {
                        titles: titles(&id),
                        id,
                        tz: cfg.display.tz,
                    });
                }
            }
        }
        v
    }

    /// The window a room's fetch covers: its local midnight today, and
    /// `days` later.
    fn window(&self, tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let today = now.with_timezone(&tz).date_naive();
        let from = start_of_day(tz, today).unwrap_or(now);
        (
            from,
            from + chrono::Duration::days(i64::from(self.sync.days)),
        )
    }

    /// Fetch these rooms' schedules (and titles where wanted), in calls of
    /// at most 20 rooms sharing one window.
    async fn fetch(&mut self, rooms: &[Room], out: &mpsc::Sender<Found>) {
        let now = (self.clock)();
        let mut by_window: BTreeMap<(DateTime<Utc>, DateTime<Utc>), Vec<&Room>> = BTreeMap::new();
        for r in rooms {
            by_window.entry(self.window(r.tz, now)).or_default().push(r);
        }
        for ((from, to), rooms) in by_window {
            for chunk in rooms.chunks(api::FREEBUSY_MAX_ROOMS) {
                let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
                let began = (self.clock)();
                let found = match self.api.freebusy(&ids, from, to).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(rooms = ids.len(), first = ids.first().copied().unwrap_or(""), error = %Chain(&e), "fetching room schedules failed; the last known schedule stays");
                        continue;
                    }
                };
                // Thousands of instances: converted off the core's thread.
                let ids: Vec<RoomId> = chunk.iter().map(|r| r.id.clone()).collect();
                let Ok(mut fetch) =
                    tokio::task::spawn_blocking(move || to_fetch(&ids, found, from, to, began))
                        .await
                else {
                    continue;
                };
                self.titles(chunk, &mut fetch).await;
                if out.send(Found::Schedule(fetch)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Attach titles to the bookings of rooms whose displays show them:
    /// only where the platform named an organizer (a private booking's
    /// title is never asked for); fetched once a day per booking.
    async fn titles(&mut self, chunk: &[&Room], fetch: &mut Fetch) {
        let wanted = |room: &RoomId| chunk.iter().any(|r| r.titles && r.id == *room);
        let fresh = |at: &Instant| at.elapsed() < TITLES_EVERY;
        let ask: Vec<BookingKey> = fetch
            .wanting_titles(wanted)
            .into_iter()
            .filter(|k| !self.titles.get(k).is_some_and(|(_, at)| fresh(at)))
            .collect();
        for part in ask.chunks(api::SUMMARY_MAX) {
            let keys: Vec<(&str, i64)> = part.iter().map(|k| (&*k.uid, k.original_time)).collect();
            match self.api.summaries(&keys).await {
                Ok(s) => {
                    for i in s.infos {
                        let t = Title::from(i.summary);
                        self.titles.insert(
                            BookingKey::new(&i.uid, i.original_time),
                            (t, Instant::now()),
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(bookings = part.len(), error = %Chain(&e), "fetching meeting titles failed");
                    if let Some(scope) = e.missing_scope() {
                        tracing::warn!(scope, "titles need this scope granted to the app");
                    }
                    break;
                }
            }
        }
        fetch.set_titles(wanted, |k| self.titles.get(k).map(|(t, _)| t.clone()));
    }

    /// Fetch the room directory and hand it over.
    async fn directory(&mut self, out: &mpsc::Sender<Found>) -> Result<(), ()> {
        match fetch_directory(&self.api).await {
            Ok(d) => {
                self.directory = d.clone();
                let _ = out.send(Found::Directory(d)).await;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "fetching the room directory failed; names and floors come from the config and the last copy");
                Err(())
            }
        }
    }
}

/// Does some display of this room (its pages, or a sink) show titles?
pub fn shows_titles(cfg: &Config, id: &RoomId) -> bool {
    let room = cfg.room(id);
    std::iter::once(None)
        .chain(cfg.sinks.iter().filter(|s| s.wants(id, None)).map(Some))
        .any(|sink| cfg.style(room, sink).privacy == Privacy::Title)
}

/// Does any configured room show titles (so the titles API is needed)?
pub fn titles_wanted(cfg: &Config) -> bool {
    cfg.display.privacy == Privacy::Title || cfg.rooms.iter().any(|r| shows_titles(cfg, &r.id))
}

/// A freebusy answer as a [`Fetch`] of the rooms it could read. Ids are
/// shared: a week of a series lists its uid and organizer once a day.
fn to_fetch(
    chunk: &[RoomId],
    found: api::FreeBusy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    began: DateTime<Utc>,
) -> Fetch {
    let unreadable: HashSet<&str> = found.error_room_ids.iter().map(String::as_str).collect();
    if !unreadable.is_empty() {
        tracing::warn!(rooms = ?unreadable, "the platform could not read these rooms' schedules (is the app allowed to see them?)");
    }
    let rooms: Vec<RoomId> = chunk
        .iter()
        .filter(|r| !unreadable.contains(r.as_str()))
        .cloned()
        .collect();
    let mut uids: HashMap<String, Arc<str>> = HashMap::new();
    let mut people: HashMap<(Option<String>, Option<String>), Organizer> = HashMap::new();
    let mut instances = Vec::new();
    for (room, list) in found.free_busy {
        let Some(room) = rooms.iter().find(|r| r.as_str() == room) else {
            continue;
        };
        for i in list {
            let uid = match uids.get(&i.uid) {
                Some(u) => u.clone(),
                None => {
                    let u: Arc<str> = Arc::from(i.uid.as_str());
                    uids.insert(i.uid, u.clone());
                    u
                }
            };
            let organizer = i.organizer_info.map(|o| {
                let id = (
                    o.open_id.filter(|s| !s.is_empty()),
                    o.name.filter(|s| !s.is_empty()),
                );
                people
                    .entry(id.clone())
                    .or_insert_with(|| Organizer {
                        open_id: id.0.map(|s| Arc::from(s.as_str())),
                        name: id.1.map(|s| Arc::from(s.as_str())),
                        ..Organizer::default()
                    })
                    .clone()
            });
            instances.push(FetchedInstance {
                room: room.clone(),
                key: BookingKey {
                    uid,
                    original_time: i.original_time,
                },
                start: i.start_time,
                end: i.end_time,
                organizer,
                title: None,
            });
        }
    }
    Fetch::new(rooms, from, to, began, instances)
}

/// Every room the app can see, with its building and floor names.
pub async fn fetch_directory(api: &Api) -> Result<Directory, ApiError> {
    let rooms = api.rooms(None).await?;
    let mut level_ids: Vec<String> = rooms
        .iter()
        .flat_map(|r| r.path.iter().chain(r.room_level_id.iter()))
        .cloned()
        .collect();
    level_ids.sort();
    level_ids.dedup();
    let mut names: HashMap<String, (String, Option<String>)> = HashMap::new();
    for chunk in level_ids.chunks(50) {
        for l in api.levels(chunk).await? {
            names.insert(l.room_level_id, (l.name, l.parent_id));
        }
    }
    let mut d = Directory::default();
    for r in rooms {
        let info = room_info(&r, &names);
        d.rooms.insert(RoomId::new(&r.room_id), info);
    }
    Ok(d)
}

/// A room of the directory: its floor is the level it sits in, its
/// building that level's parent (when they have names).
fn room_info(r: &api::Room, names: &HashMap<String, (String, Option<String>)>) -> RoomInfo {
    let named = |id: &str| {
        names
            .get(id)
            .map(|(n, _)| n.clone())
            .filter(|n| !n.is_empty())
    };
    let own = r
        .room_level_id
        .as_deref()
        .or(r.path.last().map(String::as_str));
    let parent = own
        .and_then(|l| names.get(l))
        .and_then(|(_, p)| p.clone())
        .filter(|p| !p.is_empty() && p != "0");
    let (building, floor) = match (own.and_then(named), parent.as_deref().and_then(named)) {
        (Some(f), Some(b)) => (Some(b), Some(f)),
        (Some(b), None) => (Some(b), None),
        _ => (None, None),
    };
    let disabled = r
        .room_status
        .as_ref()
        .filter(|s| !s.status)
        .map(|s| Disabled {
            until: s
                .disable_end_time
                .filter(|t| *t > 0)
                .and_then(|t| DateTime::from_timestamp(t, 0)),
            reason: s.disable_reason.clone().filter(|r| !r.is_empty()),
        });
    let mut path = r.path.clone();
    if let Some(l) = &r.room_level_id
        && !path.contains(l)
    {
        path.push(l.clone());
    }
    RoomInfo {
        name: r.name.clone(),
        capacity: r.capacity,
        building,
        floor,
        path,
        disabled,
    }
}
