//! What the clock drives in the core: panel pushes at booking boundaries,
//! at local midnight and on the heartbeat, and the hourly pruning. Pure:
//! [`Timers::due`] says what is due at `now` and moves the timers on;
//! [`Timers::next_wake`] says when to look again.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::RoomId;
use crate::pipeline::Pipeline;

/// The store's name for how far reminders have been made.
pub(super) const REMINDERS: &str = "reminders";

/// The store's name for how far a sink's daily agendas have been made.
pub(super) fn digest_mark(sink: &str) -> String {
    format!("digest:{sink}")
}

/// How often old state is pruned (when `[store] retention` is set).
const PRUNE_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// Retention when the configured one is beyond chrono's range.
const RETENTION_FALLBACK: chrono::Duration = chrono::Duration::days(30);

/// The clock's timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Timers {
    /// Some sink shows room snapshots (else nothing is pushed).
    panels: bool,
    /// When panels were last pushed by the clock.
    last_tick: DateTime<Utc>,
    next_push: Option<DateTime<Utc>>,
    /// The next heartbeat, and the interval.
    heartbeat: Option<(DateTime<Utc>, chrono::Duration)>,
    /// The next pruning, and how long things are kept.
    prune: Option<(DateTime<Utc>, chrono::Duration)>,
    /// When some sink sends reminders.
    reminders: Option<Reminders>,
    /// One per sink with a daily agenda.
    digests: Vec<DigestTimer>,
}

/// A sink's daily agenda: the last one made, and when the next is due.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DigestTimer {
    sink: String,
    made: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
}

/// How far reminders have been made, and when the next one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reminders {
    through: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
}

/// What is due now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Due {
    /// Prune what ended (or was last changed) before this.
    pub(super) prune_before: Option<DateTime<Utc>>,
    pub(super) push: Option<Push>,
    /// Make the reminders due in `(from, to]`.
    pub(super) reminders: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Make these sinks' daily agendas, each for the day of its instant.
    pub(super) digests: Vec<(String, DateTime<Utc>)>,
}

/// Panels to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Push {
    pub(super) rooms: Vec<RoomId>,
    /// Every panel, because the heartbeat is due.
    pub(super) heartbeat: bool,
}

impl Timers {
    /// Reminders are made from where they were before a restart (the
    /// store's mark), else from `now` on.
    pub(super) fn new(
        p: &Pipeline,
        now: DateTime<Utc>,
        heartbeat: Option<Duration>,
        retention: Option<Duration>,
    ) -> Self {
        let reminded = p.clock_mark(REMINDERS);
        let panels = !p.panel_rooms().is_empty();
        Timers {
            panels,
            last_tick: now,
            next_push: if panels { p.next_clock_push(now) } else { None },
            heartbeat: heartbeat
                .filter(|_| panels)
                .and_then(|h| chrono::Duration::from_std(h).ok())
                .map(|h| (now + h, h)),
            prune: retention.map(|keep| {
                let keep = chrono::Duration::from_std(keep).unwrap_or(RETENTION_FALLBACK);
                (now, keep)
            }),
            reminders: Self::reminders(p, reminded.unwrap_or(now).min(now)),
            digests: Self::digests(p, now, &[]),
        }
    }

    /// A timer per sink with a daily agenda; what was made is known from
    /// `old` timers (a reload) or the store's marks.
    fn digests(p: &Pipeline, now: DateTime<Utc>, old: &[DigestTimer]) -> Vec<DigestTimer> {
        p.config()
            .sinks
            .iter()
            .filter(|s| s.digest.is_some())
            .map(|s| {
                let made = old
                    .iter()
                    .find(|t| t.sink == s.name)
                    .map_or_else(|| p.clock_mark(&digest_mark(&s.name)), |t| t.made);
                DigestTimer {
                    sink: s.name.clone(),
                    made,
                    next: p.next_digest(s, p.digest_floor(s, made, now)),
                }
            })
            .collect()
    }

    fn reminders(p: &Pipeline, through: DateTime<Utc>) -> Option<Reminders> {
        (!p.reminder_leads().is_empty()).then(|| Reminders {
            through,
            next: p.next_reminder(through),
        })
    }

    /// The config changed (a reload): which clock work applies may too.
    pub(super) fn reconfigured(&mut self, p: &Pipeline, now: DateTime<Utc>) {
        self.panels = !p.panel_rooms().is_empty();
        self.next_push = if self.panels {
            p.next_clock_push(now)
        } else {
            None
        };
        let through = self.reminders.as_ref().map_or(now, |r| r.through);
        self.reminders = Self::reminders(p, through);
        self.digests = Self::digests(p, now, &self.digests);
    }

    /// An applied event's earliest reminder: one may be due then.
    pub(super) fn reminder_hint(&mut self, at: Option<DateTime<Utc>>) {
        if let Some(r) = &mut self.reminders {
            r.next = [r.next, at].into_iter().flatten().min();
        }
    }

    /// When something is next due.
    pub(super) fn next_wake(&self) -> Option<DateTime<Utc>> {
        [
            self.next_push,
            self.heartbeat.map(|(t, _)| t),
            self.prune.map(|(t, _)| t),
            self.reminders.as_ref().and_then(|r| r.next),
            self.digests.iter().filter_map(|d| d.next).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// An applied event's next boundary: panels change then.
    pub(super) fn booking_boundary(&mut self, at: Option<DateTime<Utc>>) {
        if self.panels {
            self.next_push = [self.next_push, at].into_iter().flatten().min();
        }
    }

    /// A follower's share of the clock's work (several instances): only
    /// forgetting, in its own memory, what the retention has passed — the
    /// leader prunes the store.
    pub(super) fn prune_due(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (t, keep) = self.prune.as_mut().filter(|(t, _)| *t <= now)?;
        *t = now + PRUNE_EVERY;
        Some(now - *keep)
    }

    /// What is due at `now`; the timers move past it.
    pub(super) fn due(&mut self, p: &Pipeline, now: DateTime<Utc>) -> Due {
        let mut due = Due::default();
        if let Some((t, keep)) = &mut self.prune
            && *t <= now
        {
            due.prune_before = Some(now - *keep);
            *t = now + PRUNE_EVERY;
        }
        let beat = self.heartbeat.is_some_and(|(t, _)| t <= now);
        if beat || self.next_push.is_some_and(|t| t <= now) {
            let rooms = if beat || p.midnight_passed(self.last_tick, now) {
                p.panel_rooms()
            } else {
                p.rooms_due(self.last_tick, now)
            };
            due.push = Some(Push {
                rooms,
                heartbeat: beat,
            });
            if let Some((t, h)) = self.heartbeat.as_mut().filter(|(t, _)| *t <= now) {
                *t = now + *h;
            }
            self.last_tick = now;
            self.next_push = p.next_clock_push(now);
        }
        if let Some(r) = self
            .reminders
            .as_mut()
            .filter(|r| r.next.is_some_and(|t| t <= now))
        {
            due.reminders = Some((r.through, now));
            r.through = now;
            r.next = p.next_reminder(now);
        }
        for d in &mut self.digests {
            let Some(at) = d.next.filter(|t| *t <= now) else {
                continue;
            };
            due.digests.push((d.sink.clone(), at));
            d.made = Some(at);
            d.next = p
                .config()
                .sink_named(&d.sink)
                .and_then(|s| p.next_digest(s, now));
        }
        due
    }
}

/// The id of what a clock-driven push answers to (`clock:…`,
/// `startup:…`), in place of an event's delivery id.
pub(super) fn instant_id(kind: &str, now: DateTime<Utc>) -> std::sync::Arc<str> {
    format!(
        "{kind}:{}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
    .into()
}
