//! View models: what templates see. Every string is already formatted for
//! the room's (or sink's) time zone and locale; raw ISO times ride along.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::locale::{Locale, Style};
use crate::model::{Booking, Change, ChangeKind, Organizer, RoomId};
use crate::schedule::{RoomView, Status};

/// One instant.
#[derive(Debug, Clone, Serialize)]
pub struct TimeVm {
    /// Local time with offset, RFC 3339 (`2019-03-29T18:00:00+08:00`).
    pub iso: String,
    /// UTC, RFC 3339 (`2019-03-29T10:00:00Z`).
    pub utc: String,
    /// Epoch milliseconds.
    pub ms: i64,
    /// Local date for people (`Fri, Mar 29` / `3月29日 周五`).
    pub date: String,
    /// Local date `YYYY-MM-DD`.
    pub iso_date: String,
    /// Local clock time (`18:00`, `6:00 PM`, `下午6:00`).
    pub time: String,
    /// Zone abbreviation in force then (`CST`, `EDT`).
    pub zone: String,
    /// Relative to now (`in 15 min`, `15 分钟后`).
    pub relative: String,
}

impl TimeVm {
    pub fn new(style: &Style, t: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        TimeVm {
            iso: style.local(t).to_rfc3339(),
            utc: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ms: t.timestamp_millis(),
            date: style.date(t),
            iso_date: style.iso_date(t),
            time: style.time(t),
            zone: style.zone_abbr(t),
            relative: style.relative(t, now),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomVm {
    pub id: String,
    /// Configured name, or the id when the room is not configured.
    pub name: String,
    pub configured: bool,
    pub time_zone: String,
    pub locale: &'static str,
}

impl RoomVm {
    pub fn new(id: &RoomId, name: Option<&str>, style: &Style) -> Self {
        RoomVm {
            id: id.to_string(),
            name: name.unwrap_or(id.as_str()).to_string(),
            configured: name.is_some(),
            time_zone: style.tz.name().to_string(),
            locale: style.locale.tag(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrganizerVm {
    pub open_id: Option<String>,
    pub user_id: Option<String>,
    pub union_id: Option<String>,
}

impl From<&Organizer> for OrganizerVm {
    fn from(o: &Organizer) -> Self {
        OrganizerVm {
            open_id: o.open_id.clone(),
            user_id: o.user_id.clone(),
            union_id: o.union_id.clone(),
        }
    }
}

/// A start–end span.
#[derive(Debug, Clone, Serialize)]
pub struct SpanVm {
    pub start: TimeVm,
    pub end: TimeVm,
    /// `18:00–20:00` (names the end's date when it is another local day).
    pub time_range: String,
    /// `2 h`, `1 h 30 min`, `2 小时`.
    pub duration: String,
    pub minutes: i64,
}

impl SpanVm {
    pub fn new(
        style: &Style,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        SpanVm {
            start: TimeVm::new(style, start, now),
            end: TimeVm::new(style, end, now),
            time_range: style.range(start, end),
            duration: style.duration(end - start),
            minutes: (end - start).num_minutes(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BookingVm {
    /// `{uid}_{original_time}`.
    pub key: String,
    pub uid: String,
    pub original_time: i64,
    /// An exception of a recurring series.
    pub recurring_exception: bool,
    pub organizer: OrganizerVm,
    #[serde(flatten)]
    pub span: SpanVm,
}

impl BookingVm {
    pub fn new(style: &Style, b: &Booking, now: DateTime<Utc>) -> Self {
        BookingVm {
            key: b.key.to_string(),
            uid: b.key.uid.to_string(),
            original_time: b.key.original_time,
            recurring_exception: b.key.is_exception(),
            organizer: (&b.organizer).into(),
            span: SpanVm::new(style, b.start, b.end, now),
        }
    }
}

/// Fixed words in the room's language, for locale-neutral templates.
#[derive(Debug, Clone, Serialize)]
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
        },
    }
}

/// A change notice ("booked", "moved from 14:00 to 15:00", "cancelled").
#[derive(Debug, Clone, Serialize)]
pub struct NoticeVm {
    /// `booked`, `rescheduled` or `cancelled`.
    pub change: &'static str,
    /// The change in the room's language.
    pub change_label: &'static str,
    pub is_booked: bool,
    pub is_rescheduled: bool,
    pub is_cancelled: bool,
    pub room: RoomVm,
    pub booking: BookingVm,
    /// For `rescheduled`: the previous span; otherwise null.
    pub previous: Option<SpanVm>,
    /// Delivery id of the event that caused it.
    pub event_id: String,
    pub now: TimeVm,
    pub labels: Labels,
}

impl NoticeVm {
    pub fn new(style: &Style, c: &Change, room_name: Option<&str>, now: DateTime<Utc>) -> Self {
        let l = labels(style.locale);
        NoticeVm {
            change: c.kind.as_str(),
            change_label: match c.kind {
                ChangeKind::Booked => l.booked,
                ChangeKind::Rescheduled => l.rescheduled,
                ChangeKind::Cancelled => l.cancelled,
            },
            is_booked: c.kind == ChangeKind::Booked,
            is_rescheduled: c.kind == ChangeKind::Rescheduled,
            is_cancelled: c.kind == ChangeKind::Cancelled,
            room: RoomVm::new(&c.room, room_name, style),
            booking: BookingVm::new(style, &c.booking, now),
            previous: c.previous.map(|(s, e)| SpanVm::new(style, s, e, now)),
            event_id: c.event_id.to_string(),
            now: TimeVm::new(style, now, now),
            labels: l,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentVm {
    #[serde(flatten)]
    pub booking: BookingVm,
    /// Time left (`25 min`).
    pub remaining: String,
    pub remaining_minutes: i64,
}

/// A room's state now (panels, the room page, `roomcast rooms`).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotVm {
    pub room: RoomVm,
    /// `free`, `busy` or `starting_soon`.
    pub status: &'static str,
    pub status_label: &'static str,
    pub is_free: bool,
    pub is_busy: bool,
    pub is_starting_soon: bool,
    pub current: Option<CurrentVm>,
    /// The rest of the local day's bookings, in order.
    pub next: Vec<BookingVm>,
    pub has_next: bool,
    /// When a free room's next booking starts (today), else null.
    pub free_until: Option<TimeVm>,
    /// When a busy room becomes free (back-to-back merged), else null.
    pub busy_until: Option<TimeVm>,
    pub now: TimeVm,
    pub labels: Labels,
}

impl SnapshotVm {
    pub fn new(
        style: &Style,
        room: &RoomId,
        room_name: Option<&str>,
        v: &RoomView<'_>,
        now: DateTime<Utc>,
    ) -> Self {
        let l = labels(style.locale);
        SnapshotVm {
            room: RoomVm::new(room, room_name, style),
            status: v.status.as_str(),
            status_label: match v.status {
                Status::Free => l.free,
                Status::Busy => l.busy,
                Status::StartingSoon => l.starting_soon,
            },
            is_free: v.status == Status::Free,
            is_busy: v.status == Status::Busy,
            is_starting_soon: v.status == Status::StartingSoon,
            current: v.current.map(|b| {
                let left = (b.end - now).max(Duration::zero());
                CurrentVm {
                    booking: BookingVm::new(style, b, now),
                    remaining: style.duration(left + Duration::seconds(59)),
                    remaining_minutes: (left + Duration::seconds(59)).num_minutes(),
                }
            }),
            has_next: !v.next.is_empty(),
            next: v
                .next
                .iter()
                .map(|b| BookingVm::new(style, b, now))
                .collect(),
            free_until: v.free_until.map(|t| TimeVm::new(style, t, now)),
            busy_until: v.busy_until.map(|t| TimeVm::new(style, t, now)),
            now: TimeVm::new(style, now, now),
            labels: l,
        }
    }
}
