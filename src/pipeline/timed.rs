//! Messages the clock makes rather than an event: reminders before a
//! booking starts (a sink's `reminders`).
//!
//! Rule: a reminder for lead `L` is made when the clock passes `start − L`
//! and the booking has not started; a booking created or moved less than
//! `L` before its start gets none (its notice came just then). The core
//! keeps how far reminders have been made (`(from, to]` windows, stored
//! with the messages), so a restart neither repeats nor skips one.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::Pipeline;
use crate::message::{Message, Subject, digest_hex};
use crate::model::Change;
use crate::render::RenderError;
use crate::render::view;

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
                            Ok(r) => out.push(Message {
                                sink: Arc::from(sink.name.as_str()),
                                outbox_id: None,
                                idempotency_key: digest_hex(&[
                                    &sink.name,
                                    "reminder",
                                    room.as_str(),
                                    &b.key.to_string(),
                                    &b.start.timestamp_millis().to_string(),
                                    &lead.num_seconds().to_string(),
                                ]),
                                event_id: event_id.clone(),
                                room: room.clone(),
                                subject: Subject::Reminder,
                                booking: Some(b.key.to_string()),
                                body: r.body,
                                format: r.format,
                                restored: false,
                            }),
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
}
