//! View models: what templates see. Every string is already formatted for
//! the room's (or sink's) time zone and locale; raw ISO times ride along.
//!
//! They are built straight into `serde_json::Value` (strings moved in, not
//! copied), which is what handlebars renders from: this halves the cost of a
//! render compared with serializing typed structs (see BENCHMARKS.md). The
//! field lists below are the contract; README.md repeats them for template
//! authors.

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::directory::RoomInfo;
use crate::locale::{Locale, Privacy, Style, zone_abbr_of};
use crate::model::{Booking, Change, ChangeKind, RoomId};
use crate::schedule::{RoomView, Status};

/// A view model, ready for [`crate::render::Templates::render`].
#[derive(Debug, Clone, PartialEq)]
pub struct ViewModel(pub Value);

macro_rules! obj {
    ($($k:literal => $v:expr),* $(,)?) => {{
        let mut m = Map::new();
        $( m.insert($k.to_string(), Value::from($v)); )*
        Value::Object(m)
    }};
}

/// One instant: `iso` (local RFC 3339 with offset), `utc`, `ms`, `date`
/// (`Fri, Mar 29` / `3月29日 周五`), `iso_date`, `time` (`18:00`, `6:00 PM`),
/// `zone` (`CST`), `relative` (`in 15 min` / `15 分钟后`).
pub fn time(style: &Style, t: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    time_of(style, &style.local(t), t, now)
}

fn time_of(style: &Style, l: &DateTime<Tz>, t: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    obj! {
        "iso" => l.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "utc" => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "ms" => t.timestamp_millis(),
        "date" => style.date_near(l, style.local(now).year()),
        "iso_date" => format!("{:04}-{:02}-{:02}", l.year(), l.month(), l.day()),
        "time" => style.time_of(l),
        "when" => when_of(style, l, now),
        "zone" => zone_abbr_of(l),
        "relative" => style.relative(t, now),
    }
}

/// The time alone when the instant falls on today's local date, else its
/// date and time: "17:00", "Wed, Dec 2 17:00" (a "busy until 17:00" two
/// days on must not read as today).
fn when_of(style: &Style, l: &DateTime<Tz>, now: DateTime<Utc>) -> String {
    let today = style.local(now);
    if l.date_naive() == today.date_naive() {
        style.time_of(l)
    } else {
        format!("{} {}", style.date_near(l, today.year()), style.time_of(l))
    }
}

/// A span's fields, added to `m`: `start`, `end` (instants), `time_range`
/// (`18:00–20:00`, naming the end's date when it is another local day),
/// `duration` (`2 h`, `1 h 30 min`, `2 小时`), `minutes`, `zone` (`EST`, or
/// `EST→EDT` across a DST change).
fn span_into(
    m: &mut Map<String, Value>,
    style: &Style,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let (ls, le) = (style.local(start), style.local(end));
    let (a, b) = (zone_abbr_of(&ls), zone_abbr_of(&le));
    m.insert("start".into(), time_of(style, &ls, start, now));
    m.insert("end".into(), time_of(style, &le, end, now));
    m.insert("time_range".into(), style.range_of(&ls, &le).into());
    m.insert("duration".into(), style.duration(end - start).into());
    m.insert("minutes".into(), (end - start).num_minutes().into());
    m.insert(
        "zone".into(),
        if a == b { a } else { format!("{a}→{b}") }.into(),
    );
}

pub fn span(style: &Style, start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    span_into(&mut m, style, start, end, now);
    Value::Object(m)
}

/// The organizer as far as privacy allows: `open_id`, `user_id`,
/// `union_id`, `name` (null when hidden or unknown), and `mention`: the
/// `open_id` only when it has an open id's form (`ou_` and letters or
/// digits), for `<at id=…>` and the post's `at` tag, so an event cannot
/// make a chat message mention everyone (`all`).
fn organizer(b: &Booking, privacy: Privacy) -> Value {
    let o = &b.organizer;
    let show = privacy >= Privacy::Organizer && !b.is_private();
    fn f(show: bool, v: &Option<std::sync::Arc<str>>) -> Option<&str> {
        if show { v.as_deref() } else { None }
    }
    obj! {
        "open_id" => f(show, &o.open_id),
        "user_id" => f(show, &o.user_id),
        "union_id" => f(show, &o.union_id),
        "name" => f(show, &o.name),
        "mention" => f(show, &o.open_id).filter(|id| is_open_id(id)),
    }
}

fn is_open_id(id: &str) -> bool {
    id.strip_prefix("ou_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A booking: a span plus `key` (`{uid}_{original_time}`), `uid`,
/// `original_time`, `recurring_exception`, `organizer` (see above),
/// `title` (only where privacy is `title`, never for a private booking),
/// `private`, and `who`: the one line a display shows about it (the
/// title, else the organizer's name, as privacy allows; "Private" for a
/// private booking; else null).
fn booking_map(style: &Style, b: &Booking, now: DateTime<Utc>) -> Map<String, Value> {
    let mut m = Map::new();
    let private = b.is_private();
    let title = b
        .title
        .as_deref()
        .filter(|_| style.privacy == Privacy::Title && !private);
    let name = b
        .organizer
        .name
        .as_deref()
        .filter(|_| style.privacy >= Privacy::Organizer && !private);
    let who = if private {
        Some(labels(style.locale).private)
    } else {
        title.or(name)
    };
    m.insert("key".into(), b.key.to_string().into());
    m.insert("uid".into(), b.key.uid.to_string().into());
    m.insert("original_time".into(), b.key.original_time.into());
    m.insert("recurring_exception".into(), b.key.is_exception().into());
    m.insert("organizer".into(), organizer(b, style.privacy));
    m.insert("title".into(), title.into());
    m.insert("private".into(), private.into());
    m.insert("who".into(), who.into());
    span_into(&mut m, style, b.start, b.end, now);
    m
}

pub fn booking(style: &Style, b: &Booking, now: DateTime<Utc>) -> Value {
    Value::Object(booking_map(style, b, now))
}

/// What is known of a room besides its schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomMeta<'a> {
    /// The configured name.
    pub name: Option<&'a str>,
    /// What the room directory says.
    pub info: Option<&'a RoomInfo>,
    /// When its schedule was last fetched from the platform (`None`:
    /// never, or the room APIs are not in use).
    pub synced_at: Option<DateTime<Utc>>,
    /// That was too long ago (`[sync] stale_after`).
    pub stale: bool,
}

impl<'a> RoomMeta<'a> {
    /// A room known only by its configured name (if any).
    pub fn named(name: Option<&'a str>) -> Self {
        RoomMeta {
            name,
            ..RoomMeta::default()
        }
    }

    /// What a room is called: the configured name, else the directory's,
    /// else its id.
    pub fn display_name<'b>(&self, id: &'b RoomId) -> &'b str
    where
        'a: 'b,
    {
        self.name
            .or(self.info.map(|i| i.name.as_str()).filter(|n| !n.is_empty()))
            .unwrap_or(id.as_str())
    }
}

/// `id`, `name` (configured name, else the directory's, else the id),
/// `configured`, `time_zone`, `locale`, `clock` (`24h` | `12h`),
/// `building`, `floor`, `capacity` (from the directory, or null),
/// `disabled`, `disabled_until` (an instant or null), `disabled_text`
/// ("Out of service until …" / "停用至 …", or null).
pub fn room(id: &RoomId, meta: &RoomMeta<'_>, style: &Style, now: DateTime<Utc>) -> Value {
    let info = meta.info;
    let disabled = info.and_then(|i| i.disabled_at(now));
    let l = labels(style.locale);
    let disabled_text = disabled.map(|d| match d.until {
        Some(u) => format!("{} {}", l.disabled_until, style.date_time(u)),
        None => l.disabled.to_string(),
    });
    obj! {
        "id" => id.as_str(),
        "name" => meta.display_name(id),
        "configured" => meta.name.is_some(),
        "time_zone" => style.tz.name(),
        "locale" => style.locale.tag(),
        "clock" => style.hour_cycle.as_str(),
        "building" => info.and_then(|i| i.building.as_deref()),
        "floor" => info.and_then(|i| i.floor.as_deref()),
        "capacity" => info.and_then(|i| i.capacity),
        "disabled" => disabled.is_some(),
        "disabled_until" => disabled.and_then(|d| d.until).map_or(Value::Null, |u| time(style, u, now)),
        "disabled_text" => disabled_text,
    }
}

/// Fixed words in one language.
pub struct Labels {
    pub free: &'static str,
    pub busy: &'static str,
    pub starting_soon: &'static str,
    pub booked: &'static str,
    pub rescheduled: &'static str,
    pub cancelled: &'static str,
    pub now: &'static str,
    pub next: &'static str,
    pub until: &'static str,
    pub no_more_today: &'static str,
    /// The live room page's mark when it has lost the server.
    pub stale: &'static str,
    /// Before a time: "as of 14:03" / "截至 14:03".
    pub as_of: &'static str,
    /// A booking whose organizer the platform hides.
    pub private: &'static str,
    /// A room out of service: "Out of service" / "停用", and before a
    /// time, "Out of service until" / "停用至".
    pub disabled: &'static str,
    pub disabled_until: &'static str,
    /// Before a time, when the schedule could not be fetched for a while:
    /// "Schedule as of" / "日程截至".
    pub schedule_as_of: &'static str,
}

pub fn labels(l: Locale) -> Labels {
    match l {
        Locale::En => Labels {
            free: "Free",
            busy: "In use",
            starting_soon: "Starting soon",
            booked: "Booked",
            rescheduled: "Moved",
            cancelled: "Cancelled",
            now: "Now",
            next: "Next",
            until: "until",
            no_more_today: "No more bookings today",
            stale: "Offline: showing the last schedule received",
            as_of: "as of",
            private: "Private",
            disabled: "Out of service",
            disabled_until: "Out of service until",
            schedule_as_of: "Schedule as of",
        },
        Locale::ZhCn => Labels {
            free: "空闲",
            busy: "使用中",
            starting_soon: "即将开始",
            booked: "新预订",
            rescheduled: "已改期",
            cancelled: "已取消",
            now: "当前",
            next: "接下来",
            until: "至",
            no_more_today: "今日无更多预订",
            stale: "连接中断：显示的是最后收到的日程",
            as_of: "截至",
            private: "私人日程",
            disabled: "停用",
            disabled_until: "停用至",
            schedule_as_of: "日程截至",
        },
    }
}

fn labels_value(l: &Labels) -> Value {
    obj! {
        "free" => l.free, "busy" => l.busy, "starting_soon" => l.starting_soon,
        "booked" => l.booked, "rescheduled" => l.rescheduled, "cancelled" => l.cancelled,
        "now" => l.now, "next" => l.next, "until" => l.until, "no_more_today" => l.no_more_today,
        "stale" => l.stale, "as_of" => l.as_of, "private" => l.private,
        "disabled" => l.disabled, "disabled_until" => l.disabled_until,
        "schedule_as_of" => l.schedule_as_of,
    }
}

pub fn change_label(locale: Locale, kind: ChangeKind) -> &'static str {
    let l = labels(locale);
    match kind {
        ChangeKind::Booked => l.booked,
        ChangeKind::Rescheduled => l.rescheduled,
        ChangeKind::Cancelled => l.cancelled,
    }
}

/// A change notice: `change` (`booked` | `rescheduled` | `cancelled`),
/// `change_label`, `is_booked`, `is_rescheduled`, `is_cancelled`, `room`,
/// `booking`, `previous` (a span for `rescheduled`, else null), `event_id`,
/// `now` (an instant).
pub fn notice(style: &Style, c: &Change, meta: &RoomMeta<'_>, now: DateTime<Utc>) -> ViewModel {
    ViewModel(obj! {
        "change" => c.kind.as_str(),
        "change_label" => change_label(style.locale, c.kind),
        "is_booked" => c.kind == ChangeKind::Booked,
        "is_rescheduled" => c.kind == ChangeKind::Rescheduled,
        "is_cancelled" => c.kind == ChangeKind::Cancelled,
        "is_reminder" => false,
        "room" => room(&c.room, meta, style, now),
        "booking" => booking(style, &c.booking, now),
        "previous" => c.previous.map_or(Value::Null, |(s, e)| span(style, s, e, now)),
        "event_id" => &*c.event_id,
        "now" => time(style, now, now),
    })
}

/// A reminder before a booking starts: the notice's fields, with `change`
/// = `reminder`, `is_reminder`, `change_label` ("Starts in 10 min" /
/// "10 分钟后开始") and `previous` null; plus `lead` ("10 min" /
/// "10 分钟") and `lead_minutes`.
pub fn reminder(
    style: &Style,
    id: &RoomId,
    b: &Booking,
    meta: &RoomMeta<'_>,
    lead: Duration,
    event_id: &str,
    now: DateTime<Utc>,
) -> ViewModel {
    let lead_text = style.duration(lead);
    ViewModel(obj! {
        "change" => "reminder",
        "change_label" => style.starts_in(&lead_text),
        "is_booked" => false,
        "is_rescheduled" => false,
        "is_cancelled" => false,
        "is_reminder" => true,
        "lead" => lead_text,
        "lead_minutes" => lead.num_minutes(),
        "room" => room(id, meta, style, now),
        "booking" => booking(style, b, now),
        "previous" => Value::Null,
        "event_id" => event_id,
        "now" => time(style, now, now),
    })
}

/// One room's day in a daily agenda, seen in its own style.
pub struct DigestRoom<'a> {
    pub id: &'a RoomId,
    pub meta: RoomMeta<'a>,
    pub style: Style,
    pub bookings: Vec<&'a Booking>,
}

/// The day's agenda: `title` ("Rooms today · Fri, May 1" / "今日会议室 ·
/// 5月1日 周五"), `date` (the day's `date` text and `iso_date`), `rooms`
/// (each: `room`, `bookings`, `has_bookings`, `count`), `none_text` ("No
/// bookings" / "无预订"), `total` (bookings in all), `summary_text` ("3
/// rooms · 5 bookings" / "3 个会议室 · 5 个预订"), `event_id`, `now`,
/// `labels`.
pub fn digest(
    style: &Style,
    day_start: DateTime<Utc>,
    rooms: &[DigestRoom<'_>],
    event_id: &str,
    now: DateTime<Utc>,
) -> ViewModel {
    let date = time(style, day_start, now);
    let date_text = date["date"].as_str().unwrap_or_default().to_string();
    let total: usize = rooms.iter().map(|r| r.bookings.len()).sum();
    let (title, none, summary) = match style.locale {
        Locale::En => (
            format!("Rooms today · {date_text}"),
            "No bookings",
            format!(
                "{} room{} · {total} booking{}",
                rooms.len(),
                if rooms.len() == 1 { "" } else { "s" },
                if total == 1 { "" } else { "s" }
            ),
        ),
        Locale::ZhCn => (
            format!("今日会议室 · {date_text}"),
            "无预订",
            format!("{} 个会议室 · {total} 个预订", rooms.len()),
        ),
    };
    let list: Vec<Value> = rooms
        .iter()
        .map(|r| {
            obj! {
                "room" => room(r.id, &r.meta, &r.style, now),
                "bookings" => Value::Array(r.bookings.iter().map(|b| booking(&r.style, b, now)).collect()),
                "has_bookings" => !r.bookings.is_empty(),
                "count" => r.bookings.len(),
            }
        })
        .collect();
    ViewModel(obj! {
        "title" => title,
        "date" => date,
        "rooms" => Value::Array(list),
        "none_text" => none,
        "total" => total,
        "summary_text" => summary,
        "event_id" => event_id,
        "now" => time(style, now, now),
        "labels" => labels_value(&labels(style.locale)),
    })
}

/// A board: `board` (`name`, `title`, `time_zone`, `locale`, `clock`),
/// `groups` (each: `name` — a
/// floor, or null — and `tiles`: room snapshots as the room page has
/// them), `grouped`, `count`, `free` (rooms free now), `free_text` ("8 of
/// 12 free" / "12 间中 8 间空闲"), `density` (`full` up to 12 rooms,
/// `compact` up to 48, `dense` beyond: how much a tile shows before the
/// page measures the screen), `now`, `labels`.
pub fn board(
    style: &Style,
    name: &str,
    title: &str,
    groups: Vec<(Option<String>, Vec<ViewModel>)>,
    now: DateTime<Utc>,
) -> ViewModel {
    let count: usize = groups.iter().map(|(_, t)| t.len()).sum();
    let free = groups
        .iter()
        .flat_map(|(_, t)| t.iter())
        .filter(|t| t.0["is_free"] == true)
        .count();
    let free_text = match style.locale {
        Locale::En => format!("{free} of {count} free"),
        Locale::ZhCn => format!("{count} 间中 {free} 间空闲"),
    };
    let density = match count {
        0..=12 => "full",
        13..=48 => "compact",
        _ => "dense",
    };
    let grouped = groups.iter().any(|(g, _)| g.is_some());
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, tiles)| {
            obj! {
                "name" => g.map_or(Value::Null, Value::from),
                "tiles" => Value::Array(tiles.into_iter().map(|t| t.0).collect()),
            }
        })
        .collect();
    ViewModel(obj! {
        "board" => obj! {
            "name" => name,
            "title" => title,
            "time_zone" => style.tz.name(),
            "locale" => style.locale.tag(),
            "clock" => style.hour_cycle.as_str(),
        },
        "groups" => Value::Array(groups),
        "grouped" => grouped,
        "count" => count,
        "free" => free,
        "free_text" => free_text,
        "density" => density,
        "now" => time(style, now, now),
        "labels" => labels_value(&labels(style.locale)),
    })
}

/// A room's state: `room`, `status` (`free` | `busy` | `starting_soon`),
/// `status_label`, `is_free`, `is_busy`, `is_starting_soon`, `current` (a
/// booking plus `remaining` (`25 min`), `remaining_text` (`25 min left` /
/// `还剩 25 分钟`) and `remaining_minutes`, or null), `next` (the
/// rest of the local day's bookings), `has_next`, `free_until` and
/// `busy_until` (instants or null), `now`, `labels`, `synced_at` (when the
/// schedule was last fetched from the platform: an instant or null) and
/// `sync_stale` (that was longer ago than `[sync] stale_after`).
/// How many bookings `agenda` lists; `agenda_more` counts the rest.
pub const AGENDA: usize = 3;

/// "+2 more", "还有 2 个" (empty for none).
fn more_text(locale: Locale, n: usize) -> String {
    match (n, locale) {
        (0, _) => String::new(),
        (n, Locale::En) => format!("+{n} more"),
        (n, Locale::ZhCn) => format!("还有 {n} 个"),
    }
}

pub fn snapshot(
    style: &Style,
    id: &RoomId,
    meta: &RoomMeta<'_>,
    v: &RoomView<'_>,
    now: DateTime<Utc>,
) -> ViewModel {
    let l = labels(style.locale);
    // What a display lists below the status: the one shown large while it
    // is starting soon is not listed again.
    let shown_large = usize::from(v.status == Status::StartingSoon && v.current.is_none());
    let agenda = v.next.get(shown_large..).unwrap_or(&[]);
    let current = v.current.map_or(Value::Null, |b| {
        // Whole minutes left, rounded up: "1 min" until the very end.
        let left = (b.end - now).max(Duration::zero()) + Duration::seconds(59);
        let mut m = booking_map(style, b, now);
        let remaining = style.duration(left);
        m.insert("remaining_text".into(), style.remaining(&remaining).into());
        m.insert("remaining".into(), remaining.into());
        m.insert("remaining_minutes".into(), left.num_minutes().into());
        Value::Object(m)
    });
    ViewModel(obj! {
        "room" => room(id, meta, style, now),
        "status" => v.status.as_str(),
        "status_label" => match v.status {
            Status::Free => l.free,
            Status::Busy => l.busy,
            Status::StartingSoon => l.starting_soon,
        },
        "is_free" => v.status == Status::Free,
        "is_busy" => v.status == Status::Busy,
        "is_starting_soon" => v.status == Status::StartingSoon,
        "current" => current,
        "next" => v.next.iter().map(|b| booking(style, b, now)).collect::<Vec<_>>(),
        "has_next" => !v.next.is_empty(),
        "agenda" => agenda.iter().take(AGENDA).map(|b| booking(style, b, now)).collect::<Vec<_>>(),
        "has_agenda" => !agenda.is_empty(),
        "agenda_more" => agenda.len().saturating_sub(AGENDA),
        "agenda_more_text" => more_text(style.locale, agenda.len().saturating_sub(AGENDA)),
        "free_until" => v.free_until.map_or(Value::Null, |t| time(style, t, now)),
        "busy_until" => v.busy_until.map_or(Value::Null, |t| time(style, t, now)),
        "now" => time(style, now, now),
        "labels" => labels_value(&l),
        "synced_at" => meta.synced_at.map_or(Value::Null, |t| time(style, t, now)),
        "sync_stale" => meta.stale,
    })
}
