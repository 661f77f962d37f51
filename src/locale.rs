//! Locale-aware formatting of instants, spans and durations.
//!
//! Two locales ship: `zh-CN` and `en`. Everything here takes a time zone and
//! returns display strings; nothing reads the clock.

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Locale {
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::ZhCn, Locale::En];

    pub fn tag(self) -> &'static str {
        match self {
            Locale::ZhCn => "zh-CN",
            Locale::En => "en",
        }
    }
}

impl FromStr for Locale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "zh-cn" | "zh" | "zh-hans" | "zh-hans-cn" => Ok(Locale::ZhCn),
            "en" | "en-us" | "en-gb" => Ok(Locale::En),
            _ => Err(format!("unsupported locale `{s}` (supported: zh-CN, en)")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HourCycle {
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "12h")]
    H12,
}

impl HourCycle {
    pub fn as_str(self) -> &'static str {
        match self {
            HourCycle::H24 => "24h",
            HourCycle::H12 => "12h",
        }
    }
}

impl FromStr for HourCycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "24h" | "24" => Ok(HourCycle::H24),
            "12h" | "12" => Ok(HourCycle::H12),
            _ => Err(format!("clock must be \"24h\" or \"12h\", not `{s}`")),
        }
    }
}

/// How much of a booking a room or sink shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// Times only.
    Busy,
    /// Times and the organizer's name.
    #[default]
    Organizer,
    /// Also the meeting's title.
    Title,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Busy => "busy",
            Privacy::Organizer => "organizer",
            Privacy::Title => "title",
        }
    }
}

/// How to show bookings for one room and one sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub tz: Tz,
    pub locale: Locale,
    pub hour_cycle: HourCycle,
    pub privacy: Privacy,
}

const WEEKDAYS_ZH: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
const WEEKDAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn weekday(locale: Locale, w: Weekday) -> &'static str {
    let i = w.num_days_from_monday() as usize;
    match locale {
        Locale::ZhCn => WEEKDAYS_ZH[i],
        Locale::En => WEEKDAYS_EN[i],
    }
}

impl Style {
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.tz)
    }

    /// "18:00", "6:00 PM", "下午6:00".
    pub fn time(&self, t: DateTime<Utc>) -> String {
        self.time_of(&self.local(t))
    }

    /// [`Style::time`] of an instant already in the zone.
    pub(crate) fn time_of(&self, l: &DateTime<Tz>) -> String {
        let (h, m) = (l.hour(), l.minute());
        match (self.hour_cycle, self.locale) {
            (HourCycle::H24, _) => format!("{h:02}:{m:02}"),
            (HourCycle::H12, Locale::En) => {
                let (h12, ampm) = to12(h);
                format!("{h12}:{m:02} {}", if ampm { "PM" } else { "AM" })
            }
            (HourCycle::H12, Locale::ZhCn) => {
                let (h12, pm) = to12(h);
                let part = match (pm, h) {
                    (false, 0..=5) => "凌晨",
                    (false, _) => "上午",
                    (true, 12) => "中午",
                    (true, 13..=17) => "下午",
                    (true, _) => "晚上",
                };
                format!("{part}{h12}:{m:02}")
            }
        }
    }

    /// "Fri, Mar 29", "3月29日 周五".
    pub fn date(&self, t: DateTime<Utc>) -> String {
        self.date_of(&self.local(t))
    }

    /// [`Style::date`] of an instant already in the zone.
    pub(crate) fn date_of(&self, l: &DateTime<Tz>) -> String {
        match self.locale {
            Locale::ZhCn => format!(
                "{}月{}日 {}",
                l.month(),
                l.day(),
                weekday(self.locale, l.weekday())
            ),
            Locale::En => format!(
                "{}, {} {}",
                weekday(self.locale, l.weekday()),
                MONTHS_EN[l.month0() as usize],
                l.day()
            ),
        }
    }

    /// [`Style::date_of`], with the year when it is not `year` (the year of
    /// "now", or of a span's start): "Fri, Jan 2, 2027", "2027年1月2日 周五".
    pub(crate) fn date_near(&self, l: &DateTime<Tz>, year: i32) -> String {
        if l.year() == year {
            return self.date_of(l);
        }
        match self.locale {
            Locale::ZhCn => format!("{}年{}", l.year(), self.date_of(l)),
            Locale::En => format!("{}, {}", self.date_of(l), l.year()),
        }
    }

    /// "Fri, Mar 29 18:00", "3月29日 周五 18:00".
    pub fn date_time(&self, t: DateTime<Utc>) -> String {
        let l = self.local(t);
        format!("{} {}", self.date_of(&l), self.time_of(&l))
    }

    /// "18:00–20:00"; a span crossing local midnight names the end's date.
    pub fn range(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        self.range_of(&self.local(start), &self.local(end))
    }

    /// [`Style::range`] of instants already in the zone. A whole local day
    /// is "All day" / "全天"; a span ending at the next local midnight ends
    /// at "24:00" (in 12-hour styles "12:00 AM", midnight by convention).
    pub(crate) fn range_of(&self, start: &DateTime<Tz>, end: &DateTime<Tz>) -> String {
        let (ds, de) = (start.date_naive(), end.date_naive());
        // Ending exactly at the next local midnight still reads as one day.
        let ends_at_midnight =
            de == ds.succ_opt().unwrap_or(ds) && end.time() == chrono::NaiveTime::MIN;
        if ends_at_midnight && start.time() == chrono::NaiveTime::MIN {
            return match self.locale {
                Locale::En => "All day".into(),
                Locale::ZhCn => "全天".into(),
            };
        }
        if ends_at_midnight && self.hour_cycle == HourCycle::H24 {
            format!("{}–24:00", self.time_of(start))
        } else if ds == de || ends_at_midnight {
            format!("{}–{}", self.time_of(start), self.time_of(end))
        } else {
            format!(
                "{}–{} {}",
                self.time_of(start),
                self.date_near(end, start.year()),
                self.time_of(end)
            )
        }
    }

    /// "2 h", "1 h 30 min", "45 min"; "2 小时", "1 小时 30 分钟".
    pub(crate) fn duration(&self, d: Duration) -> String {
        let mins = d.num_minutes().max(0);
        let (h, m) = (mins / 60, mins % 60);
        let mut s = String::new();
        match self.locale {
            Locale::En => {
                if h > 0 {
                    let _ = write!(s, "{h} h");
                }
                if m > 0 || h == 0 {
                    if h > 0 {
                        s.push(' ');
                    }
                    let _ = write!(s, "{m} min");
                }
            }
            Locale::ZhCn => {
                if h > 0 {
                    let _ = write!(s, "{h} 小时");
                }
                if m > 0 || h == 0 {
                    if h > 0 {
                        s.push(' ');
                    }
                    let _ = write!(s, "{m} 分钟");
                }
            }
        }
        s
    }

    /// "in 15 min" / "15 分钟后", "15 min ago" / "15 分钟前", "now" / "现在".
    /// Rounds to whole minutes; spans of a day or more are given in days.
    /// A duration still to run: `25 min left`, `还剩 25 分钟`.
    /// "Starts in 10 min" / "10 分钟后开始".
    pub fn starts_in(&self, duration: &str) -> String {
        match self.locale {
            Locale::En => format!("Starts in {duration}"),
            Locale::ZhCn => format!("{duration}后开始"),
        }
    }

    pub fn remaining(&self, duration: &str) -> String {
        match self.locale {
            Locale::En => format!("{duration} left"),
            Locale::ZhCn => format!("还剩 {duration}"),
        }
    }

    pub(crate) fn relative(&self, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let secs = (t - now).num_seconds();
        let future = secs > 0;
        let mins = (secs.abs() + 30) / 60;
        if mins == 0 {
            return match self.locale {
                Locale::En => "now".into(),
                Locale::ZhCn => "现在".into(),
            };
        }
        let span = if mins >= 24 * 60 {
            let days = (mins + 12 * 60) / (24 * 60);
            match self.locale {
                Locale::En if days == 1 => "1 day".to_string(),
                Locale::En => format!("{days} days"),
                Locale::ZhCn => format!("{days} 天"),
            }
        } else {
            self.duration(Duration::minutes(mins))
        };
        match (self.locale, future) {
            (Locale::En, true) => format!("in {span}"),
            (Locale::En, false) => format!("{span} ago"),
            (Locale::ZhCn, true) => format!("{span}后"),
            (Locale::ZhCn, false) => format!("{span}前"),
        }
    }

    /// The start of the next local day after `t` (local midnight, or the
    /// first instant of that date where midnight does not exist).
    pub fn next_midnight(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let date = self.local(t).date_naive();
        let next = date.succ_opt().unwrap_or(date);
        start_of_day(self.tz, next).unwrap_or(t + Duration::days(1))
    }
}

/// The abbreviation in force at a local instant ("EDT"), or its UTC offset
/// ("+0530") where the zone has none.
pub(crate) fn zone_abbr_of(l: &DateTime<Tz>) -> String {
    use chrono::Offset;
    use chrono_tz::OffsetName;
    match l.offset().abbreviation() {
        Some(a) => a.to_string(),
        None => l.offset().fix().to_string(),
    }
}

fn to12(h: u32) -> (u32, bool) {
    let pm = h >= 12;
    let h12 = match h % 12 {
        0 => 12,
        x => x,
    };
    (h12, pm)
}

/// A local wall time as an instant: the earlier one when the time occurs
/// twice (clocks fall back), the first valid time after it when a DST
/// change skips it (checked in 15-minute steps, up to 3 hours).
pub(crate) fn resolve_local(tz: Tz, mut naive: chrono::NaiveDateTime) -> Option<DateTime<Tz>> {
    for _ in 0..=12 {
        match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                return Some(t);
            }
            chrono::LocalResult::None => naive += Duration::minutes(15),
        }
    }
    None
}

/// The first instant of a local date (handles zones whose midnight is
/// skipped by a DST change).
pub(crate) fn start_of_day(tz: Tz, date: chrono::NaiveDate) -> Option<DateTime<Utc>> {
    resolve_local(tz, date.and_time(chrono::NaiveTime::MIN)).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn style(tz: Tz, locale: Locale, hour_cycle: HourCycle) -> Style {
        Style {
            tz,
            locale,
            hour_cycle,
            privacy: Privacy::Organizer,
        }
    }

    #[test]
    fn seed_example_in_shanghai() {
        let s = style(chrono_tz::Asia::Shanghai, Locale::ZhCn, HourCycle::H24);
        let start = DateTime::from_timestamp_millis(1553853600000).unwrap();
        let end = DateTime::from_timestamp_millis(1553860800000).unwrap();
        assert_eq!(s.time(start), "18:00");
        assert_eq!(s.date(start), "3月29日 周五");
        assert_eq!(s.range(start, end), "18:00–20:00");
        assert_eq!(s.duration(end - start), "2 小时");
        let en = style(chrono_tz::Asia::Shanghai, Locale::En, HourCycle::H12);
        assert_eq!(en.time(start), "6:00 PM");
        assert_eq!(en.date(start), "Fri, Mar 29");
        assert_eq!(en.duration(Duration::minutes(90)), "1 h 30 min");
        let zh12 = style(chrono_tz::Asia::Shanghai, Locale::ZhCn, HourCycle::H12);
        assert_eq!(zh12.time(start), "晚上6:00");
    }

    #[test]
    fn twelve_hour_edges() {
        let en = style(chrono_tz::UTC, Locale::En, HourCycle::H12);
        let at = |h| Utc.with_ymd_and_hms(2026, 1, 1, h, 5, 0).unwrap();
        assert_eq!(en.time(at(0)), "12:05 AM");
        assert_eq!(en.time(at(12)), "12:05 PM");
        assert_eq!(en.time(at(23)), "11:05 PM");
    }

    #[test]
    fn relative_times() {
        let en = style(chrono_tz::UTC, Locale::En, HourCycle::H24);
        let zh = style(chrono_tz::UTC, Locale::ZhCn, HourCycle::H24);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        assert_eq!(en.relative(now + Duration::minutes(15), now), "in 15 min");
        assert_eq!(zh.relative(now + Duration::minutes(15), now), "15 分钟后");
        assert_eq!(
            en.relative(now - Duration::minutes(90), now),
            "1 h 30 min ago"
        );
        assert_eq!(zh.relative(now - Duration::minutes(5), now), "5 分钟前");
        assert_eq!(en.relative(now + Duration::seconds(20), now), "now");
        assert_eq!(en.relative(now + Duration::days(3), now), "in 3 days");
        assert_eq!(zh.relative(now + Duration::hours(26), now), "1 天后");
    }

    #[test]
    fn range_across_midnight_names_the_end_date() {
        let s = style(chrono_tz::Pacific::Auckland, Locale::En, HourCycle::H24);
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap(); // 23:00 NZDT
        assert_eq!(
            s.range(start, start + Duration::hours(2)),
            "23:00–Fri, Jan 2 01:00"
        );
        assert_eq!(s.range(start, start + Duration::hours(1)), "23:00–24:00");
    }

    #[test]
    fn a_whole_local_day_reads_all_day_not_midnight_to_midnight() {
        // Shanghai; and New York on the day it springs forward (23 hours).
        let sh = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap(); // 00:00 CST
        let ny = Utc.with_ymd_and_hms(2026, 3, 8, 5, 0, 0).unwrap(); // 00:00 EST
        for (tz, start, hours) in [
            (chrono_tz::Asia::Shanghai, sh, 24),
            (chrono_tz::America::New_York, ny, 23),
        ] {
            for (locale, cycle, want) in [
                (Locale::En, HourCycle::H24, "All day"),
                (Locale::En, HourCycle::H12, "All day"),
                (Locale::ZhCn, HourCycle::H12, "全天"),
            ] {
                let s = style(tz, locale, cycle);
                assert_eq!(s.range(start, start + Duration::hours(hours)), want, "{tz}");
            }
        }
        // A zero-length booking at midnight stays 00:00–00:00.
        let s = style(chrono_tz::Asia::Shanghai, Locale::En, HourCycle::H24);
        assert_eq!(s.range(sh, sh), "00:00–00:00");
    }

    #[test]
    fn midnight_on_dst_days() {
        // America/New_York springs forward at 02:00 on 2026-03-08: midnight exists.
        let ny = style(chrono_tz::America::New_York, Locale::En, HourCycle::H24);
        let t = Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap();
        assert_eq!(
            ny.next_midnight(t),
            Utc.with_ymd_and_hms(2026, 3, 9, 4, 0, 0).unwrap()
        );
        // America/Santiago skips local midnight (00:00 → 01:00) on 2026-09-06.
        let scl = style(chrono_tz::America::Santiago, Locale::En, HourCycle::H24);
        let t = Utc.with_ymd_and_hms(2026, 9, 5, 12, 0, 0).unwrap();
        let m = scl.next_midnight(t);
        assert_eq!(
            scl.local(m).format("%Y-%m-%d %H:%M").to_string(),
            "2026-09-06 01:00"
        );
    }

    #[test]
    fn locales_parse() {
        assert_eq!("zh-CN".parse::<Locale>(), Ok(Locale::ZhCn));
        assert_eq!("en_US".parse::<Locale>(), Ok(Locale::En));
        assert!("fr".parse::<Locale>().is_err());
    }
}
