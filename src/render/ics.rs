//! A room's bookings as an iCalendar feed (RFC 5545), for screens and
//! calendar apps that subscribe to a URL (`GET /rooms/{id}.ics`). Written
//! with the `ics` crate (content lines, folding, escaping helpers); the
//! room's zone goes in a `VTIMEZONE` built from chrono-tz's offsets over
//! the feed's window, and every time names it by `TZID`.
//!
//! Stable across requests while nothing changes (so an ETag works): each
//! event's `DTSTAMP` and `LAST-MODIFIED` are the booking's last change,
//! `SEQUENCE` grows with it, `UID` is the booking instance's own.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use ics::properties::{
    Class, DtEnd, DtStart, LastModified, Sequence, Status, Summary, Transp, TzName,
};
use ics::{Daylight, Event, ICalendar, Standard, TimeZone as VTimeZone, escape_text};

use crate::locale::{Locale, Style};
use crate::model::Booking;

/// One booking with its version.
pub struct Entry<'a> {
    pub booking: &'a Booking,
    pub last_change: DateTime<Utc>,
    /// What a display shows of it, privacy applied (`who` of the view
    /// model), or `None`: "Busy".
    pub who: Option<String>,
}

fn local_stamp(dt: NaiveDateTime) -> String {
    dt.format("%Y%m%dT%H%M%S").to_string()
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// Offset (seconds east of UTC), whether it is daylight time, and its
/// abbreviation, at `t`.
fn offset_at(tz: Tz, t: DateTime<Utc>) -> (i32, bool, String) {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    let dst = o.dst_offset() != Duration::zero();
    let name = o.abbreviation().unwrap_or("").to_string();
    (o.fix().local_minus_utc(), dst, name)
}

/// The instants in `[from, to)` at which `tz`'s offset changes, found
/// hour by hour and narrowed to the second.
fn transitions(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    let mut cur = offset_at(tz, t).0;
    while t < to {
        let next = t + Duration::hours(1);
        let o = offset_at(tz, next).0;
        if o != cur {
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid).0 == cur {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi);
            cur = o;
        }
        t = next;
    }
    out
}

fn observance<'a>(
    tz: Tz,
    onset: DateTime<Utc>,
    from_secs: i32,
    vtz: &mut Option<VTimeZone<'a>>,
    tzid: &str,
) {
    let (to_secs, dst, name) = offset_at(tz, onset);
    // DTSTART is the onset in the local time in force before it.
    let local = onset.naive_utc() + Duration::seconds(i64::from(from_secs));
    let (start, off_from, off_to) = (
        local_stamp(local),
        offset_text(from_secs),
        offset_text(to_secs),
    );
    if dst {
        let mut d = Daylight::new(start, off_from, off_to);
        if !name.is_empty() {
            d.push(TzName::new(name));
        }
        match vtz {
            Some(v) => v.add_daylight(d),
            None => *vtz = Some(VTimeZone::daylight(tzid.to_string(), d)),
        }
    } else {
        let mut s = Standard::new(start, off_from, off_to);
        if !name.is_empty() {
            s.push(TzName::new(name));
        }
        match vtz {
            Some(v) => v.add_standard(s),
            None => *vtz = Some(VTimeZone::standard(tzid.to_string(), s)),
        }
    }
}

/// The `VTIMEZONE` of `tz` over `[from, to)`: the observance in force at
/// `from`, then one per change of offset.
fn vtimezone<'a>(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> VTimeZone<'a> {
    let tzid = tz.name();
    let mut vtz = None;
    let (first, _, _) = offset_at(tz, from);
    observance(tz, from, first, &mut vtz, tzid);
    let mut prev = first;
    for t in transitions(tz, from, to) {
        observance(tz, t, prev, &mut vtz, tzid);
        prev = offset_at(tz, t).0;
    }
    vtz.unwrap_or_else(|| {
        VTimeZone::standard(
            tzid.to_string(),
            Standard::new("19700101T000000", "+0000", "+0000"),
        )
    })
}

/// The feed: `VCALENDAR` with the zone and one `VEVENT` per booking
/// instance of `entries` (which should lie within `[from, to)`).
pub fn calendar(
    room_name: &str,
    style: &Style,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    entries: &[Entry<'_>],
) -> String {
    let tz = style.tz;
    let tzid = tz.name();
    let mut cal = ICalendar::new(
        "2.0",
        format!("-//roomcast//roomcast {}//EN", env!("CARGO_PKG_VERSION")),
    );
    cal.push(ics::properties::CalScale::new("GREGORIAN"));
    cal.push(ics::properties::Method::new("PUBLISH"));
    cal.push(ics::components::Property::new(
        "X-WR-CALNAME",
        escape_text(room_name).to_string(),
    ));
    cal.push(ics::components::Property::new(
        "X-WR-TIMEZONE",
        tzid.to_string(),
    ));
    cal.add_timezone(vtimezone(tz, from, to));
    let busy = match style.locale {
        Locale::En => "Busy",
        Locale::ZhCn => "忙碌",
    };
    // 2020-01-01: SEQUENCE counts seconds of the booking's version since.
    let epoch = Utc
        .timestamp_opt(1_577_836_800, 0)
        .single()
        .unwrap_or_default();
    for e in entries {
        let b = e.booking;
        let uid = format!(
            "{}-{}-{}@roomcast",
            b.key.uid,
            b.key.original_time,
            b.start.timestamp()
        );
        let mut ev = Event::new(escape_text(&uid).to_string(), utc_stamp(e.last_change));
        let local = |t: DateTime<Utc>| local_stamp(t.with_timezone(&tz).naive_local());
        let mut start = DtStart::new(local(b.start));
        start.add(ics::parameters::TzIDParam::new(tzid.to_string()));
        ev.push(start);
        let mut end = DtEnd::new(local(b.end.max(b.start)));
        end.add(ics::parameters::TzIDParam::new(tzid.to_string()));
        ev.push(end);
        let summary = e.who.as_deref().unwrap_or(busy);
        ev.push(Summary::new(escape_text(summary).to_string()));
        let seq = (e.last_change - epoch)
            .num_seconds()
            .clamp(0, i64::from(u32::MAX));
        ev.push(Sequence::new(seq.to_string()));
        ev.push(LastModified::new(utc_stamp(e.last_change)));
        ev.push(Transp::opaque());
        ev.push(Status::confirmed());
        if b.is_private() {
            ev.push(Class::private());
        }
        cal.add_event(ev);
    }
    cal.to_string()
}
