//! `roomcast check`: the config, every template, and a trial render of each
//! sink's template in each locale it can render in, all reported at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::config::{self, Config, ConfigError, ConfigIssue, Env, Payload};
use crate::error::Chain;
use crate::locale::{Locale, Style};
use crate::model::{Booking, BookingKey, Change, ChangeKind, Organizer, RoomId};
use crate::pipeline::Pipeline;
use crate::render::view;
use crate::render::{RenderError, TemplateIssue, Templates, names};

/// A loaded, fully checked setup.
pub struct Checked {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One problem `check` found.
#[derive(Debug)]
pub enum Problem {
    /// The file could not be read.
    Unreadable(ConfigError),
    /// A key of the file (with its line).
    Config { path: PathBuf, issue: ConfigIssue },
    /// A template file.
    Template(TemplateIssue),
    /// A sink's template cannot render (`None`: no such template).
    Sink {
        path: PathBuf,
        line: usize,
        sink: String,
        template: String,
        locale: Locale,
        error: Option<RenderError>,
    },
    /// A template the HTTP server serves cannot render.
    Served {
        path: PathBuf,
        template: &'static str,
        locale: Locale,
        error: RenderError,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable(e) => write!(f, "{}", Chain(e)),
            Problem::Config { path, issue } => write!(f, "{}:{issue}", path.display()),
            Problem::Template(i) => write!(f, "{i}"),
            Problem::Sink {
                path,
                line,
                sink,
                template,
                locale,
                error,
            } => {
                write!(
                    f,
                    "{}:line {line}: sink `{sink}`: template `{template}` ({})",
                    path.display(),
                    locale.tag()
                )?;
                match error {
                    None => write!(f, ": no such template"),
                    Some(e) => write!(f, ": {e}"),
                }
            }
            Problem::Served {
                path,
                template,
                locale,
                error,
            } => write!(
                f,
                "{}: [http] serves template `{template}` ({}): {error}",
                path.display(),
                locale.tag()
            ),
        }
    }
}

/// Load the config and templates and prove every sink can render.
/// `Err` carries every problem found.
pub fn load(path: &Path, env: &dyn Env) -> Result<Checked, Vec<Problem>> {
    let config = match config::load(path, env) {
        Ok(c) => c,
        Err(ConfigError::Invalid { path, issues }) => {
            return Err(issues
                .into_iter()
                .map(|issue| Problem::Config {
                    path: path.clone(),
                    issue,
                })
                .collect());
        }
        Err(e) => return Err(vec![Problem::Unreadable(e)]),
    };
    if let Some(d) = &config.templates_dir
        && !d.path.is_dir()
    {
        let issue = ConfigIssue {
            key: "templates.dir".into(),
            line: Some(d.line),
            column: None,
            message: format!("{} is not a directory", d.path.display()),
            snippet: None,
        };
        return Err(vec![Problem::Config {
            path: path.to_path_buf(),
            issue,
        }]);
    }
    // A replay's file must be readable: found by `check`, not first by
    // `run` mid-start.
    if config.source.kind == config::SourceKind::Replay
        && let Some(f) = &config.source.replay_file
        && let Err(e) = std::fs::File::open(f)
    {
        let issue = ConfigIssue {
            key: "source.replay_file".into(),
            line: config.source.replay_file_line,
            column: None,
            message: format!("{} cannot be read: {e}", f.display()),
            snippet: None,
        };
        return Err(vec![Problem::Config {
            path: path.to_path_buf(),
            issue,
        }]);
    }
    let dir = config.templates_dir.as_ref().map(|d| d.path.as_path());
    let templates = Templates::load(dir).map_err(|issues| {
        issues
            .into_iter()
            .map(Problem::Template)
            .collect::<Vec<_>>()
    })?;
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
pub(crate) fn sample_change(room: &RoomId, kind: ChangeKind, at: DateTime<Utc>) -> Change {
    let start = at + Duration::minutes(30);
    Change {
        room: room.clone(),
        kind,
        booking: Arc::new(Booking {
            key: BookingKey::new("sample-uid", 0),
            start,
            end: start + Duration::hours(1),
            rooms: vec![room.clone()].into(),
            organizer: Arc::new(Organizer {
                open_id: Some(Arc::from("ou_sample")),
                name: Some(Arc::from("Sample Organizer")),
                ..Organizer::default()
            }),
            title: Some("Sample meeting".into()),
        }),
        previous: (kind == ChangeKind::Rescheduled).then(|| (start - Duration::hours(1), start)),
        event_id: Arc::from("sample-event"),
    }
}

/// The instant trial renders are made at (a fixed Monday morning).
fn trial_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 45, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// A schedule of `room` with a booking in progress at `now` and one later,
/// for snapshots.
fn trial_schedule(checked: &Checked, room: &RoomId, now: DateTime<Utc>) -> Pipeline {
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
        let _ = pipeline.apply(&ev);
    }
    pipeline
}

/// Trial renders against one sample room.
struct Trial<'a> {
    config: &'a Config,
    templates: &'a Templates,
    pipeline: Pipeline,
    room: RoomId,
    now: DateTime<Utc>,
}

impl Trial<'_> {
    /// A snapshot template rendered during the first booking, between the
    /// two, and just before the second (starting soon).
    fn snapshots(&self, style: &Style, template: &str) -> Result<(), RenderError> {
        let now = self.now;
        [
            now,
            now + Duration::minutes(60),
            now + Duration::minutes(115),
        ]
        .into_iter()
        .try_for_each(|t| {
            let vm = self.pipeline.snapshot_vm_styled(style, &self.room, t);
            self.templates
                .render(template, style.locale, vm)
                .map(|_| ())
        })
    }

    /// A notice template rendered for each kind of change, and as a
    /// reminder when the sink sends them.
    fn notices(&self, style: &Style, template: &str, reminders: bool) -> Result<(), RenderError> {
        let room_cfg = self.config.room(&self.room);
        let meta = view::RoomMeta::named(room_cfg.and_then(|r| r.name.as_deref()));
        if reminders {
            let c = sample_change(&self.room, ChangeKind::Booked, self.now);
            let vm = view::reminder(
                style,
                &self.room,
                &c.booking,
                &meta,
                Duration::minutes(10),
                "reminder:sample",
                self.now,
            );
            self.templates.render(template, style.locale, vm)?;
        }
        [
            ChangeKind::Booked,
            ChangeKind::Rescheduled,
            ChangeKind::Cancelled,
        ]
        .into_iter()
        .try_for_each(|k| {
            let c = sample_change(&self.room, k, self.now);
            let vm = view::notice(style, &c, &meta, self.now);
            self.templates
                .render(template, style.locale, vm)
                .map(|_| ())
        })
    }

    /// Each sink's template in each locale it can render in.
    fn sinks(&self, path: &Path, problems: &mut Vec<Problem>) {
        let config = self.config;
        let room_cfg = config.room(&self.room);
        for sink in &config.sinks {
            let mut locales = vec![config.style(room_cfg, Some(sink)).locale];
            for l in config.locales() {
                if sink.locale.is_none() && !locales.contains(&l) {
                    locales.push(l);
                }
            }
            for locale in locales {
                let problem = |error| Problem::Sink {
                    path: path.to_path_buf(),
                    line: sink.template_line,
                    sink: sink.name.clone(),
                    template: sink.template.clone(),
                    locale,
                    error,
                };
                if !self.templates.has(&sink.template, locale) {
                    problems.push(problem(None));
                    continue;
                }
                let mut style = config.style(room_cfg, Some(sink));
                style.locale = locale;
                let result = match sink.payload {
                    Payload::Notice => {
                        self.notices(&style, &sink.template, !sink.reminders.is_empty())
                    }
                    Payload::Snapshot => self.snapshots(&style, &sink.template),
                };
                if let Err(e) = result {
                    problems.push(problem(Some(e)));
                }
            }
            if let Some(d) = &sink.digest {
                let sample: Arc<str> = Arc::from("digest:sample");
                if let Err(e) = self.pipeline.digest(sink, self.now, &sample) {
                    problems.push(Problem::Sink {
                        path: path.to_path_buf(),
                        line: d.template_line,
                        sink: sink.name.clone(),
                        template: d.template.clone(),
                        locale: config.style(None, Some(sink)).locale,
                        error: Some(e),
                    });
                }
            }
        }
    }

    /// What the HTTP server renders: `/rooms/{id}.json`, the live page and
    /// each board.
    fn served(&self, path: &Path, problems: &mut Vec<Problem>) {
        let config = self.config;
        for b in &config.boards {
            let locale = config.board_style(b, None).locale;
            for template in [names::BOARD_PAGE, names::BOARD_PANEL] {
                let (vm, _) = self.pipeline.board_vm(b, self.now);
                if let Err(error) = self.templates.render(template, locale, vm) {
                    problems.push(Problem::Served {
                        path: path.to_path_buf(),
                        template,
                        locale,
                        error,
                    });
                }
            }
        }
        for template in [names::PANEL, names::ROOM_PAGE, names::ROOM_PANEL] {
            for locale in config.locales() {
                let mut style = config.style(config.room(&self.room), None);
                style.locale = locale;
                if let Err(error) = self.snapshots(&style, template) {
                    problems.push(Problem::Served {
                        path: path.to_path_buf(),
                        template,
                        locale,
                        error,
                    });
                }
            }
        }
    }
}

fn trial_render(checked: &Checked, path: &Path) -> Vec<Problem> {
    let config = &*checked.config;
    let now = trial_instant();
    let room = config
        .rooms
        .first()
        .map(|r| r.id.clone())
        .unwrap_or_else(|| RoomId::new("omm_sample"));
    let trial = Trial {
        config,
        templates: &checked.templates,
        pipeline: trial_schedule(checked, &room, now),
        room,
        now,
    };
    let mut problems = Vec::new();
    trial.sinks(path, &mut problems);
    if config.http.is_some() {
        trial.served(path, &mut problems);
    }
    problems
}
