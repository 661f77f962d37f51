//! `roomcast check`: the config, every template, and a trial render of each
//! sink's template in each locale it can render in, all reported at once.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::config::{self, Config, ConfigError, Env, Payload};
use crate::model::{Booking, BookingKey, Change, ChangeKind, Organizer, RoomId};
use crate::pipeline::Pipeline;
use crate::render::Templates;
use crate::render::view;

/// A loaded, fully checked setup.
pub struct Checked {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
}

/// Load the config and templates and prove every sink can render.
/// `Err` carries one line per problem.
pub fn load(path: &Path, env: &dyn Env) -> Result<Checked, Vec<String>> {
    let config = match config::load(path, env) {
        Ok(c) => c,
        Err(ConfigError::Invalid { path, issues }) => {
            return Err(issues
                .iter()
                .map(|i| format!("{}:{i}", path.display()))
                .collect());
        }
        Err(e) => return Err(vec![e.to_string()]),
    };
    let templates = Templates::load(config.templates_dir.as_deref())
        .map_err(|issues| issues.iter().map(|i| i.to_string()).collect::<Vec<_>>())?;
    let checked = Checked {
        config: Arc::new(config),
        templates: Arc::new(templates),
    };
    let problems = trial_render(&checked, path);
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

/// A sample booking/change, for trial renders.
pub fn sample_change(room: &RoomId, kind: ChangeKind, at: DateTime<Utc>) -> Change {
    let start = at + Duration::minutes(30);
    Change {
        room: room.clone(),
        kind,
        booking: Arc::new(Booking {
            key: BookingKey::new("sample-uid", 0),
            start,
            end: start + Duration::hours(1),
            rooms: vec![room.clone()],
            organizer: Arc::new(Organizer {
                open_id: Some(Arc::from("ou_sample")),
                user_id: None,
                union_id: None,
            }),
        }),
        previous: (kind == ChangeKind::Rescheduled).then(|| (start - Duration::hours(1), start)),
        event_id: Arc::from("sample-event"),
    }
}

fn trial_render(checked: &Checked, path: &Path) -> Vec<String> {
    let (config, templates) = (&*checked.config, &*checked.templates);
    let mut problems = Vec::new();
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 45, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let room = config
        .rooms
        .first()
        .map(|r| r.id.clone())
        .unwrap_or_else(|| RoomId::new("omm_sample"));
    let room_cfg = config.room(&room);

    // A schedule with a booking in progress and one later, for snapshots.
    let mut pipeline = Pipeline::new(checked.config.clone(), checked.templates.clone());
    for (i, (from, mins)) in [(-15i64, 45i64), (120, 60)].into_iter().enumerate() {
        let start = now + Duration::minutes(from);
        let ev = crate::model::RoomEvent {
            event_id: format!("sample-{i}"),
            kind: crate::model::EventKind::Created,
            event_time: now,
            key: BookingKey::new(&format!("sample-{i}"), 0),
            start,
            end: start + Duration::minutes(mins),
            rooms: vec![room.clone()],
            organizer: Organizer::default(),
            token: None,
        };
        let _ = pipeline.schedule.apply(&ev);
    }

    // A snapshot template rendered during the first booking, between the
    // two, and just before the second (starting soon).
    let trial_snapshots = |style: &crate::locale::Style, template: &str| {
        [
            now,
            now + Duration::minutes(60),
            now + Duration::minutes(115),
        ]
        .into_iter()
        .try_for_each(|t| {
            let vm = pipeline.snapshot_vm_styled(style, &room, t);
            templates.render(template, style.locale, vm).map(|_| ())
        })
    };

    for sink in &config.sinks {
        let mut locales = vec![config.style(room_cfg, Some(sink)).locale];
        for l in config.locales() {
            if sink.locale.is_none() && !locales.contains(&l) {
                locales.push(l);
            }
        }
        for locale in locales {
            let at = format!(
                "{}:{}: sink `{}`: template `{}` ({})",
                path.display(),
                sink.template_line,
                sink.name,
                sink.template,
                locale.tag()
            );
            if !templates.has(&sink.template, locale) {
                problems.push(format!("{at}: no such template"));
                continue;
            }
            let mut style = config.style(room_cfg, Some(sink));
            style.locale = locale;
            let result = match sink.payload {
                Payload::Notice => [
                    ChangeKind::Booked,
                    ChangeKind::Rescheduled,
                    ChangeKind::Cancelled,
                ]
                .into_iter()
                .try_for_each(|k| {
                    let c = sample_change(&room, k, now);
                    let vm =
                        view::notice(&style, &c, room_cfg.and_then(|r| r.name.as_deref()), now);
                    templates.render(&sink.template, locale, vm).map(|_| ())
                }),
                Payload::Snapshot => trial_snapshots(&style, &sink.template),
            };
            if let Err(e) = result {
                problems.push(format!("{at}: {e}"));
            }
        }
    }
    // What the HTTP server renders: `/rooms/{id}.json` and the live page.
    if config.http.is_some() {
        for template in ["panel", "room_page", "room_panel"] {
            for locale in config.locales() {
                let mut style = config.style(room_cfg, None);
                style.locale = locale;
                if let Err(e) = trial_snapshots(&style, template) {
                    problems.push(format!(
                        "{}: [http] serves template `{template}` ({}): {e}",
                        path.display(),
                        locale.tag()
                    ));
                }
            }
        }
    }
    problems
}
