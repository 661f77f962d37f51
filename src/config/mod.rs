//! `config.toml` → a validated [`Config`].
//!
//! Parse, don't validate later: time zones become `Tz`, URLs `Url`,
//! durations `Duration`, secrets are read from the environment variables the
//! file names. Unknown keys are errors. Every problem names its key and line,
//! and one round reports them all: the recovering deserializer (`de`)
//! collects every structural problem (unknown key, wrong type, a value
//! outside a closed set), then each section validates what remains.
//!
//! Each section has its own file with its types, its default constants and
//! its validation; each consumer is handed only its own section.

mod boards;
mod ctx;
mod de;
mod raw;
mod rooms;
mod sections;
mod sinks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::locale::{Locale, Style};
use crate::model::RoomId;
use secrecy::{ExposeSecret, SecretString};

pub use boards::BoardConfig;
pub use rooms::RoomConfig;
pub use sections::{
    DEFAULT_LEASE, DEFAULT_RECONNECT_FOR, DEFAULT_STARTING_SOON, DeliveryConfig, HttpConfig,
    LarkConfig, PgConfig, PlatformConfig, RoomsFrom, ScheduleConfig, SourceConfig, SourceKind,
    StoreBackend, StoreConfig, SyncConfig, SyncMode, TemplatesDir,
};
pub use sinks::{Payload, QuietHours, RateLimit, SinkConfig, SinkHeader, SinkKind};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `rooms[1].time_zone`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (syntax errors).
    pub column: Option<usize>,
    pub message: String,
    /// The offending line with a caret under the column, shown below.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}")?;
            if let Some(c) = self.column {
                write!(f, ", column {c}")?;
            }
            f.write_str(": ")?;
        }
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_issues(.path, .issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

fn render_issues(path: &Path, issues: &[ConfigIssue]) -> String {
    let mut s = format!(
        "{} has {} problem{}:",
        path.display(),
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for i in issues {
        s.push_str(&format!("\n  {}:{i}", path.display()));
    }
    s
}

/// The whole validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    pub platform: Option<PlatformConfig>,
    /// Defaults for every room and sink.
    pub display: Style,
    pub schedule: ScheduleConfig,
    pub templates_dir: Option<TemplatesDir>,
    pub lark: LarkConfig,
    pub delivery: DeliveryConfig,
    /// The durable store (`None`: state lives in memory only).
    pub store: Option<StoreConfig>,
    /// The HTTP server (`None`: none).
    pub http: Option<HttpConfig>,
    /// Backfill and reconciliation from the room APIs (`None`: off).
    pub sync: Option<SyncConfig>,
    /// Rooms shown because they are under these levels.
    pub rooms_from: Option<RoomsFrom>,
    pub rooms: Vec<RoomConfig>,
    pub sinks: Vec<SinkConfig>,
    pub boards: Vec<BoardConfig>,
    /// Room id → index into `rooms`.
    room_index: HashMap<RoomId, usize, foldhash::fast::RandomState>,
}

impl Config {
    /// What a running roomcast takes from `new` on a reload: rooms,
    /// display, schedule rules, the templates' folder, `[rooms_from]` and
    /// the sinks; everything else stays as it runs. Also the settings that
    /// differ but only take effect at a restart (the source, platform,
    /// store, HTTP server and room tokens, long connection, sync,
    /// delivery).
    pub fn reloaded(&self, new: &Config) -> (Config, Vec<&'static str>) {
        let differs = |a: &dyn fmt::Debug, b: &dyn fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let secret = |s: &Option<SecretString>| s.as_ref().map(|v| v.expose_secret().to_string());
        let tokens = |c: &Config| {
            let mut t: Vec<(String, Option<String>)> = c
                .rooms
                .iter()
                .map(|r| (r.id.to_string(), secret(&r.token)))
                .collect();
            t.sort();
            t
        };
        let board_tokens = |c: &Config| {
            let mut t: Vec<(String, Option<String>)> = c
                .boards
                .iter()
                .map(|b| (b.name.clone(), secret(&b.token)))
                .collect();
            t.sort();
            t
        };
        let platform_secrets = |c: &Config| {
            c.platform.as_ref().map(|p| {
                (
                    secret(&p.app_secret),
                    secret(&p.verification_token),
                    secret(&p.encrypt_key),
                )
            })
        };
        let mut restart = Vec::new();
        if differs(&self.source, &new.source) {
            restart.push("[source]");
        }
        if differs(&self.platform, &new.platform) || platform_secrets(self) != platform_secrets(new)
        {
            restart.push("[platform]");
        }
        if differs(&self.store, &new.store) {
            restart.push("[store]");
        }
        // Without the room tokens (compared below; a map's Debug order is
        // its hasher's).
        let http = |c: &Config| {
            c.http.clone().map(|mut h| {
                h.tokens.clear();
                h
            })
        };
        if differs(&http(self), &http(new)) {
            restart.push("[http]");
        }
        if tokens(self) != tokens(new) {
            restart.push("[[rooms]] token_env / token_file");
        }
        if board_tokens(self) != board_tokens(new) {
            restart.push("[[boards]] token_env / token_file");
        }
        if differs(&self.lark, &new.lark) {
            restart.push("[lark]");
        }
        if differs(&self.sync, &new.sync) {
            restart.push("[sync]");
        }
        if differs(&self.delivery, &new.delivery) {
            restart.push("[delivery]");
        }
        let mut merged = self.clone();
        merged.display = new.display;
        merged.schedule = new.schedule.clone();
        merged.templates_dir = new.templates_dir.clone();
        merged.rooms_from = new.rooms_from.clone();
        merged.sinks = new.sinks.clone();
        // Boards, each with the token it runs with (the HTTP server holds
        // those); a new board needing one waits for a restart.
        merged.boards = new
            .boards
            .iter()
            .filter(|b| b.token.is_none() || self.boards.iter().any(|o| o.name == b.name))
            .map(|b| {
                let mut b = b.clone();
                b.token = self
                    .boards
                    .iter()
                    .find(|o| o.name == b.name)
                    .and_then(|o| o.token.clone());
                b
            })
            .collect();
        // Rooms, but each keeps the token it runs with (the HTTP server
        // holds those).
        merged.rooms = new
            .rooms
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.token = self.room(&r.id).and_then(|old| old.token.clone());
                r
            })
            .collect();
        merged.room_index = merged
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        (merged, restart)
    }

    pub fn room(&self, id: &RoomId) -> Option<&RoomConfig> {
        self.room_index.get(id).map(|i| &self.rooms[*i])
    }

    /// The sink of this name.
    pub fn sink_named(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    /// The display style for a room seen through a sink: sink overrides
    /// room, room overrides the defaults.
    pub fn style(&self, room: Option<&RoomConfig>, sink: Option<&SinkConfig>) -> Style {
        let d = self.display;
        Style {
            tz: sink
                .and_then(|s| s.tz)
                .or(room.and_then(|r| r.tz))
                .unwrap_or(d.tz),
            locale: sink
                .and_then(|s| s.locale)
                .or(room.and_then(|r| r.locale))
                .unwrap_or(d.locale),
            hour_cycle: sink
                .and_then(|s| s.hour_cycle)
                .or(room.and_then(|r| r.hour_cycle))
                .unwrap_or(d.hour_cycle),
            // A sink may show less of a room than the room allows, never
            // more.
            privacy: {
                let room = room.and_then(|r| r.privacy).unwrap_or(d.privacy);
                sink.and_then(|s| s.privacy).map_or(room, |s| s.min(room))
            },
        }
    }

    /// A board's style: the board's settings over the defaults; for a tile,
    /// the room's zone unless the board sets one, and never more of a
    /// booking than the room allows.
    pub fn board_style(&self, board: &BoardConfig, room: Option<&RoomConfig>) -> Style {
        let d = self.display;
        Style {
            tz: board.tz.or(room.and_then(|r| r.tz)).unwrap_or(d.tz),
            locale: board.locale.unwrap_or(d.locale),
            hour_cycle: board.hour_cycle.unwrap_or(d.hour_cycle),
            privacy: {
                let room = room.and_then(|r| r.privacy).unwrap_or(d.privacy);
                board.privacy.map_or(room, |b| b.min(room))
            },
        }
    }

    pub fn board(&self, name: &str) -> Option<&BoardConfig> {
        self.boards.iter().find(|b| b.name == name)
    }

    /// Every locale some room or sink can render in.
    pub fn locales(&self) -> Vec<Locale> {
        let mut v = vec![self.display.locale];
        for l in self
            .rooms
            .iter()
            .filter_map(|r| r.locale)
            .chain(self.sinks.iter().filter_map(|s| s.locale))
        {
            if !v.contains(&l) {
                v.push(l);
            }
        }
        v
    }
}

/// Reads environment variables; injected so tests need no process env.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;

    /// The contents of a secret's file (`*_file` keys).
    fn file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Load and validate a config file. Relative paths inside it are resolved
/// against the file's directory.
pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, env).map_err(|issues| ConfigError::Invalid {
        path: path.to_path_buf(),
        issues,
    })
}

/// Where a board's token sits among the HTTP server's pull tokens (room
/// ids never contain a colon).
pub(crate) fn board_token_key(board: &str) -> String {
    format!("board:{board}")
}

/// Parse and validate config text. `base` resolves relative paths.
pub fn parse(text: &str, base: &Path, env: &dyn Env) -> Result<Config, Vec<ConfigIssue>> {
    let structure = de::deserialize(text);
    let mut cx = ctx::Ctx {
        text,
        issues: structure.issues,
        env,
        base,
        removed: structure.removed,
    };
    // With structural problems taken out, the rest is still checked, so
    // one round of `roomcast check` lists everything.
    let cfg = structure.raw.and_then(|raw| validate(raw, &mut cx));
    if cx.issues.is_empty() {
        cfg.ok_or_else(Vec::new)
    } else {
        cx.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        Err(cx.issues)
    }
}

/// Each section in turn; sinks before rooms, which refer to them.
fn validate(raw: raw::Raw, cx: &mut ctx::Ctx) -> Option<Config> {
    let source = sections::source(&raw.source, cx);
    let kind = source.as_ref().map(|s| s.kind);
    let platform = sections::platform(raw.platform.as_ref(), &raw.source, kind, cx);
    let display = sections::display(&raw.display, cx);
    let schedule = sections::schedule(&raw.schedule, cx);
    let templates_dir = sections::templates_dir(&raw.templates, cx);
    let lark = sections::lark(&raw.lark, cx);
    let delivery = sections::delivery(&raw.delivery, cx);
    let store = sections::store(&raw.store, &raw.ha, cx);
    let sync = sections::sync(&raw.sync, platform.as_ref(), cx);
    let rooms_from = sections::rooms_from(raw.rooms_from.as_ref(), sync.as_ref(), cx);
    let sinks = sinks::sinks(&raw.sinks, cx);
    let rooms = rooms::rooms(&raw.rooms, &sinks, cx);
    sinks::room_refs(&raw.sinks, &rooms, raw.rooms_from.is_some(), cx);
    let boards = boards::boards(&raw.boards, &rooms, sync.as_ref(), cx);
    let mut http = sections::http(&raw.http, &raw.source, kind, platform.as_ref(), &rooms, cx);
    if let Some(h) = http.as_mut() {
        for b in &boards {
            if let Some(t) = &b.token {
                h.tokens.insert(board_token_key(&b.name), t.clone());
            }
        }
    }
    Some(Config {
        source: source?,
        platform,
        display,
        schedule,
        templates_dir,
        lark,
        delivery,
        store,
        http,
        sync,
        rooms_from,
        room_index: rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect(),
        rooms,
        sinks,
        boards,
    })
}
