//! Messages the clock makes rather than an event: reminders before a
//! booking starts (a sink's `reminders`) and the daily agenda (a sink's
//! `digest`).
//!
//! Rule: a reminder for lead `L` is made when the clock passes `start − L`
//! and the booking has not started; a booking created or moved less than
//! `L` before its start gets none (its notice came just then). The core
//! keeps how far reminders have been made (`(from, to]` windows, stored
//! with the messages), so a restart neither repeats nor skips one.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

use super::Pipeline;
use crate::config::SinkConfig;
use crate::locale::resolve_local;
use crate::message::{Message, Subject, digest_hex};
use crate::model::{Change, RoomId};
use crate::render::RenderError;
use crate::render::view::{self, DigestRoom};

impl Pipeline {
    /// Every lead some sink reminds at.
    pub(crate) fn reminder_leads(&self) -> Vec<Duration> {
        let mut leads: Vec<Duration> = self
            .config
            .sinks
            .iter()
            .flat_map(|s| s.reminders.iter())
            .filter_map(|l| Duration::from_std(*l).ok())
            .collect();
        leads.sort_unstable();
        leads.dedup();
        leads
    }

    /// Reminders due in `(from, to]`, rendered for their sinks.
    pub(crate) fn reminders(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        event_id: &Arc<str>,
        out: &mut Vec<Message>,
        errors: &mut Vec<(String, RenderError)>,
    ) {
        let cfg = &self.config;
        for sink in cfg.sinks.iter().filter(|s| !s.reminders.is_empty()) {
            for lead in sink
                .reminders
                .iter()
                .filter_map(|l| Duration::from_std(*l).ok())
            {
                // Not started at `to`, and its reminder time in (from, to].
                for b in self.schedule.starting_in((from + lead).max(to), to + lead) {
                    let reminded_at = b.start - lead;
                    if self
                        .schedule
                        .last_change(&b.key)
                        .is_some_and(|c| c > reminded_at)
                    {
                        continue;
                    }
                    for room in b.rooms.iter().filter(|r| sink.wants(r, None)) {
                        let style = cfg.style(cfg.room(room), Some(sink));
                        // The time really left (a reminder made late, after
                        // a restart, says so).
                        let left = (b.start - to + Duration::seconds(59)).min(lead);
                        let vm = view::reminder(
                            &style,
                            room,
                            b,
                            &self.room_meta(room, to),
                            left,
                            event_id,
                            to,
                        );
                        match self.templates.render_for(
                            &sink.template,
                            style.locale,
                            vm,
                            sink.kind.target(),
                        ) {
                            Ok(r) => out.push(Message::rendered(
                                &sink.name,
                                room.clone(),
                                Subject::Reminder,
                                Some(b.key.to_string()),
                                event_id.clone(),
                                digest_hex(&[
                                    &sink.name,
                                    "reminder",
                                    room.as_str(),
                                    &b.key.to_string(),
                                    &b.start.timestamp_millis().to_string(),
                                    &lead.num_seconds().to_string(),
                                ]),
                                r,
                            )),
                            Err(e) => errors.push((sink.name.clone(), e)),
                        }
                    }
                }
            }
        }
    }

    /// When the next reminder after `after` is due, if any sink reminds.
    pub(crate) fn next_reminder(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reminder_leads()
            .into_iter()
            .filter_map(|lead| {
                self.schedule
                    .next_start_after(after + lead)
                    .map(|s| s - lead)
            })
            .min()
    }

    /// The earliest reminder these changes' bookings may need after `now`
    /// (a hint for the clock; every occurrence of a series counts).
    pub(super) fn reminder_of(
        &self,
        changes: &[Change],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let leads = self.reminder_leads();
        if leads.is_empty() {
            return None;
        }
        changes
            .iter()
            .flat_map(|c| self.schedule.occurrences(&c.booking.key))
            .flat_map(|b| leads.iter().map(move |l| b.start - *l))
            .filter(|t| *t > now)
            .min()
    }

    /// The start of `date` in `tz` (a day that begins in a DST gap begins
    /// when the clock does).
    fn day_start(tz: chrono_tz::Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
        resolve_local(tz, date.and_time(NaiveTime::MIN)).map(|t| t.with_timezone(&Utc))
    }

    /// The first instant after `after` at which `sink`'s daily agenda is
    /// due (its `digest` time on one of its days, in its zone).
    pub(crate) fn next_digest(
        &self,
        sink: &SinkConfig,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let d = sink.digest.as_ref()?;
        let tz = self.config.style(None, Some(sink)).tz;
        let mut date = after.with_timezone(&tz).date_naive();
        for _ in 0..9 {
            if d.days.contains(&date.weekday())
                && let Some(t) = resolve_local(tz, date.and_time(d.at))
                && t.with_timezone(&Utc) > after
            {
                return Some(t.with_timezone(&Utc));
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Where a sink's agenda timer starts: after the last one made, and
    /// never before today (a fresh start sends today's if its time has
    /// passed, never an older day's).
    pub(crate) fn digest_floor(
        &self,
        sink: &SinkConfig,
        made: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let tz = self.config.style(None, Some(sink)).tz;
        let today = Self::day_start(tz, now.with_timezone(&tz).date_naive())
            .map_or(now, |t| t - Duration::milliseconds(1));
        made.map_or(today, |m| m.max(today))
    }

    /// `sink`'s agenda for the local day (its zone) of `at`: each of its
    /// rooms with that day's bookings, in the room's style.
    pub(crate) fn digest(
        &self,
        sink: &SinkConfig,
        at: DateTime<Utc>,
        event_id: &Arc<str>,
    ) -> Result<Message, RenderError> {
        let cfg = &self.config;
        let style = cfg.style(None, Some(sink));
        let date = at.with_timezone(&style.tz).date_naive();
        let start = Self::day_start(style.tz, date).unwrap_or(at);
        let end = date
            .succ_opt()
            .and_then(|d| Self::day_start(style.tz, d))
            .unwrap_or(start + Duration::days(1));
        let ids: Vec<RoomId> = self
            .all_rooms()
            .into_iter()
            .filter(|r| sink.wants(r, None))
            .collect();
        let rooms: Vec<DigestRoom<'_>> = ids
            .iter()
            .map(|id| DigestRoom {
                id,
                meta: self.room_meta(id, at),
                style: cfg.style(cfg.room(id), Some(sink)),
                bookings: self.schedule.bookings_between(id, start, end),
            })
            .collect();
        let vm = view::digest(&style, start, &rooms, event_id, at);
        let d = sink.digest.as_ref();
        let template = d.map_or(sink.template.as_str(), |d| d.template.as_str());
        let r = self
            .templates
            .render_for(template, style.locale, vm, sink.kind.target())?;
        Ok(Message::rendered(
            &sink.name,
            RoomId::new("*"),
            Subject::Digest,
            None,
            event_id.clone(),
            digest_hex(&[&sink.name, "digest", &date.to_string()]),
            r,
        ))
    }
}
