//! `config.toml` → a validated [`Config`].
//!
//! Parse, don't validate later: time zones become `Tz`, URLs `Url`,
//! durations `Duration`, secrets are read from the environment variables the
//! file names. Unknown keys are errors. Every problem names its key and line;
//! [`parse`] reports all the semantic problems it finds at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::locale::{Clock, Locale, Style};
use crate::model::{ChangeKind, RoomId};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `rooms[1].time_zone`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
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

// ---------------------------------------------------------------- raw shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    source: RawSource,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    display: RawDisplay,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    lark: RawLark,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    rooms: Vec<Spanned<RawRoom>>,
    #[serde(default)]
    sinks: Vec<Spanned<RawSink>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Spanned<String>,
    #[serde(default)]
    replay_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    app_id: Spanned<String>,
    #[serde(default)]
    app_secret_env: Option<Spanned<String>>,
    #[serde(default)]
    domain: Option<Spanned<String>>,
    #[serde(default)]
    verification_token_env: Option<Spanned<String>>,
    #[serde(default)]
    encrypt_key_env: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDisplay {
    time_zone: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    clock: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    ignore_unknown_rooms: bool,
    starting_soon: Option<Spanned<String>>,
    dedup_capacity: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLark {
    /// Silence (no inbound frame) that counts as a dead connection, as a
    /// multiple of the ping interval.
    liveness_factor: Option<Spanned<u32>>,
    /// Largest reassembled message accepted.
    max_message_bytes: Option<Spanned<u64>>,
    /// Most messages being reassembled at once.
    max_pending_messages: Option<Spanned<u64>>,
    /// How long a partial message waits for its remaining fragments.
    fragment_ttl: Option<Spanned<String>>,
    /// Timeout of each endpoint request and of the WebSocket handshake.
    request_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: Spanned<String>,
    name: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    clock: Option<Spanned<String>>,
    #[serde(default)]
    panels: Vec<Spanned<String>>,
    token_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    name: Spanned<String>,
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    payload: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    rooms: Option<Vec<Spanned<String>>>,
    changes: Option<Vec<Spanned<String>>>,
    time_zone: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    clock: Option<Spanned<String>>,
    rate_limit: Option<Vec<Spanned<String>>>,
    quiet_hours: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    webhook: Option<bool>,
    webhook_path: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    sync: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    heartbeat: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<String>>,
}

// ---------------------------------------------------------- validated shape

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Replay,
    Lark,
    Webhook,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub replay_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub app_id: String,
    /// Required for the long connection.
    pub app_secret: Option<SecretString>,
    /// `https://open.feishu.cn`, `https://open.larksuite.com` or explicit.
    pub base_url: Url,
    pub verification_token: Option<SecretString>,
    /// Webhook mode: the app's Encrypt Key (bodies are encrypted and signed).
    pub encrypt_key: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct LarkConfig {
    pub liveness_factor: u32,
    pub max_message_bytes: usize,
    pub max_pending_messages: usize,
    pub fragment_ttl: Duration,
    pub request_timeout: Duration,
}

impl Default for LarkConfig {
    fn default() -> Self {
        LarkConfig {
            liveness_factor: 3,
            max_message_bytes: 1 << 20,
            max_pending_messages: 256,
            fragment_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub id: RoomId,
    pub name: Option<String>,
    pub tz: Option<Tz>,
    pub locale: Option<Locale>,
    pub clock: Option<Clock>,
    pub panels: Vec<String>,
    /// Bearer token required to pull this room over HTTP.
    pub token: Option<SecretString>,
}

/// Every kind of sink. `Stdout` and `File` deliver locally; the rest are
/// HTTP kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    Stdout,
    File,
    Panel,
    Feishu,
    Lark,
    Slack,
    Dingtalk,
    Wecom,
    Webhook,
}

impl SinkKind {
    pub const NAMES: &'static str =
        "stdout, file, panel, feishu, lark, slack, dingtalk, wecom, webhook";

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stdout" => SinkKind::Stdout,
            "file" => SinkKind::File,
            "panel" => SinkKind::Panel,
            "feishu" => SinkKind::Feishu,
            "lark" => SinkKind::Lark,
            "slack" => SinkKind::Slack,
            "dingtalk" => SinkKind::Dingtalk,
            "wecom" => SinkKind::Wecom,
            "webhook" => SinkKind::Webhook,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File => "file",
            SinkKind::Panel => "panel",
            SinkKind::Feishu => "feishu",
            SinkKind::Lark => "lark",
            SinkKind::Slack => "slack",
            SinkKind::Dingtalk => "dingtalk",
            SinkKind::Wecom => "wecom",
            SinkKind::Webhook => "webhook",
        }
    }

    /// Stdout, file and generic webhook sinks can carry either payload.
    pub fn payload_configurable(self) -> bool {
        matches!(self, SinkKind::Stdout | SinkKind::File | SinkKind::Webhook)
    }

    pub fn is_http(self) -> bool {
        !matches!(self, SinkKind::Stdout | SinkKind::File)
    }

    /// What the sink receives unless `payload` says otherwise.
    pub fn default_payload(self) -> Payload {
        match self {
            SinkKind::Panel => Payload::Snapshot,
            _ => Payload::Notice,
        }
    }

    /// The template a sink uses unless it names one.
    pub fn default_template(self, payload: Payload) -> &'static str {
        match (self, payload) {
            (SinkKind::Stdout | SinkKind::File, Payload::Snapshot) => return "room",
            (_, Payload::Snapshot) => return "panel",
            _ => {}
        }
        match self {
            SinkKind::Panel => "panel",
            SinkKind::Feishu | SinkKind::Lark => "feishu_card",
            SinkKind::Slack => "slack",
            SinkKind::Dingtalk => "dingtalk",
            SinkKind::Wecom => "wecom",
            SinkKind::Webhook => "webhook",
            SinkKind::Stdout | SinkKind::File => "text",
        }
    }
}

/// What a sink is sent: change notices or room snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    Notice,
    Snapshot,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub payload: Payload,
    pub url: Option<Url>,
    pub path: Option<PathBuf>,
    pub template: String,
    /// Line of the sink's `template` key (or of the sink) for messages.
    pub template_line: usize,
    pub secret: Option<SecretString>,
    pub method: String,
    /// Extra request headers; values may hold secrets (`${VAR}`).
    pub headers: Vec<(String, SecretString)>,
    /// `None`: every room.
    pub rooms: Option<HashSet<RoomId>>,
    /// `None`: every change kind.
    pub changes: Option<HashSet<ChangeKind>>,
    pub tz: Option<Tz>,
    pub locale: Option<Locale>,
    pub clock: Option<Clock>,
    /// Sliding-window limits: at most `n` requests per `period`.
    pub rate_limits: Vec<RateLimit>,
    /// Local hours (sink's zone) during which messages are held.
    pub quiet_hours: Option<QuietHours>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// A message still undelivered this long after it was queued is given
    /// up (a dead letter, logged with sink and booking).
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: std::net::SocketAddr,
    /// Accept webhook pushes (on with `source.kind = "webhook"`).
    pub webhook: bool,
    pub webhook_path: String,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Seen ids, past bookings and delivered messages older than this are
    /// pruned.
    pub retention: Duration,
    /// `true`: every commit reaches the disk before the ack (survives a
    /// power cut); `false`: survives a crash of the process only.
    pub durable: bool,
}

/// At most `count` requests in any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
}

impl RateLimit {
    /// `"5/s"`, `"100/min"`, `"20/m"`, `"1000/h"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a rate like \"5/s\", \"100/min\" or \"1000/h\"");
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let period = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(RateLimit { count, period })
    }
}

/// A daily window of local time, e.g. 22:00–07:00 (may wrap midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: chrono::NaiveTime,
    pub end: chrono::NaiveTime,
}

impl QuietHours {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a window like \"22:00-07:00\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let t = |x: &str| chrono::NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (t(a)?, t(b)?);
        if start == end {
            return Err(format!("`{s}`: start and end are the same"));
        }
        Ok(QuietHours { start, end })
    }

    /// Is this local time inside the window?
    pub fn contains(&self, t: chrono::NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// Rate limits per sink kind unless the sink sets its own.
pub fn default_rate_limits(kind: SinkKind) -> Vec<RateLimit> {
    let l = |count, secs| RateLimit {
        count,
        period: Duration::from_secs(secs),
    };
    match kind {
        SinkKind::Feishu | SinkKind::Lark => vec![l(5, 1), l(100, 60)],
        SinkKind::Dingtalk | SinkKind::Wecom => vec![l(20, 60)],
        SinkKind::Slack => vec![l(1, 1)],
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    pub platform: Option<PlatformConfig>,
    pub display: Style,
    pub ignore_unknown_rooms: bool,
    pub starting_soon: Duration,
    /// How many recent delivery ids are remembered for de-duplication.
    pub dedup_capacity: usize,
    pub templates_dir: Option<PathBuf>,
    pub lark: LarkConfig,
    /// Re-push every panel this often (`None`: never), so a rebooted
    /// display catches up.
    pub heartbeat: Option<Duration>,
    /// How long shutdown waits for sink queues to drain.
    pub drain_timeout: Duration,
    /// The durable store (`None`: state lives in memory only).
    pub store: Option<StoreConfig>,
    /// The HTTP server (`None`: none).
    pub http: Option<HttpConfig>,
    pub rooms: Vec<RoomConfig>,
    pub sinks: Vec<SinkConfig>,
    /// Room id → index into `rooms`.
    room_index: HashMap<RoomId, usize, foldhash::fast::RandomState>,
}

impl Config {
    pub fn room(&self, id: &RoomId) -> Option<&RoomConfig> {
        self.room_index.get(id).map(|i| &self.rooms[*i])
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
            clock: sink
                .and_then(|s| s.clock)
                .or(room.and_then(|r| r.clock))
                .unwrap_or(d.clock),
        }
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

// ------------------------------------------------------------------ parsing

/// Reads environment variables; injected so tests need no process env.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
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

struct Ctx<'a> {
    text: &'a str,
    issues: Vec<ConfigIssue>,
    env: &'a dyn Env,
    base: &'a Path,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    fn push<T>(&mut self, key: impl Into<String>, at: &Spanned<T>, message: impl Into<String>) {
        let line = self.line(at.span().start);
        self.issues.push(ConfigIssue {
            key: key.into(),
            line: Some(line),
            message: message.into(),
        });
    }

    fn parsed<T, E: fmt::Display>(
        &mut self,
        key: &str,
        v: &Spanned<String>,
        f: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match f(v.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.push(key, v, e.to_string());
                None
            }
        }
    }

    fn tz(&mut self, key: &str, v: &Option<Spanned<String>>) -> Option<Tz> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| {
            s.parse::<Tz>().map_err(|_| {
                format!("unknown time zone `{s}` (use an IANA name such as Asia/Shanghai)")
            })
        })
    }

    fn locale(&mut self, key: &str, v: &Option<Spanned<String>>) -> Option<Locale> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| s.parse::<Locale>())
    }

    fn clock(&mut self, key: &str, v: &Option<Spanned<String>>) -> Option<Clock> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| s.parse::<Clock>())
    }

    fn duration(&mut self, key: &str, v: &Option<Spanned<String>>) -> Option<Duration> {
        let v = v.as_ref()?;
        self.parsed(key, v, |s| {
            humantime::parse_duration(s)
                .map_err(|e| format!("`{s}` is not a duration like \"10m\" or \"30s\": {e}"))
        })
    }

    fn url(&mut self, key: &str, v: &Spanned<String>) -> Option<Url> {
        self.parsed(key, v, |s| match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
            Ok(u) => Err(format!(
                "`{}` must be an http(s) URL with a host",
                u.scheme()
            )),
            Err(e) => Err(format!("not a valid URL: {e}")),
        })
    }

    /// Read a secret from the environment variable a key names. The
    /// variable's *name* may be shown; its value never is.
    fn secret(&mut self, key: &str, v: &Spanned<String>) -> Option<SecretString> {
        let name = v.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.push(
                key,
                v,
                format!("`{name}` is not an environment variable name"),
            );
            return None;
        }
        match self.env.var(name) {
            Some(val) if !val.is_empty() => Some(SecretString::from(val)),
            _ => {
                self.push(
                    key,
                    v,
                    format!("environment variable {name} is not set (or is empty)"),
                );
                None
            }
        }
    }

    /// Replace each `${NAME}` in a value with that environment variable.
    fn expand_env(&mut self, key: &str, v: &Spanned<String>) -> Option<SecretString> {
        let mut out = String::new();
        let mut rest = v.get_ref().as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find('}') else {
                self.push(key, v, "unclosed `${` placeholder");
                return None;
            };
            let name = Spanned::new(v.span(), rest[i + 2..i + j].to_string());
            let secret = self.secret(key, &name)?;
            out.push_str(secrecy::ExposeSecret::expose_secret(&secret));
            rest = &rest[i + j + 1..];
        }
        out.push_str(rest);
        Some(SecretString::from(out))
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The config's structure, with every unknown key and every value of the
/// wrong type reported at once: serde stops at the first, so each one found
/// is taken out of the parsed document and the rest deserialized again.
/// A required key taken out that way is not reported a second time as
/// missing. Returns what could be read (if anything) and the problems.
fn deserialize(text: &str) -> (Option<Raw>, Vec<ConfigIssue>) {
    let mut doc = match toml::de::DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let issue = ConfigIssue {
                key: "(syntax)".into(),
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().to_string(),
            };
            return (None, vec![issue]);
        }
    };
    let mut issues: Vec<ConfigIssue> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..64 {
        let de = toml::Deserializer::from(doc.clone());
        let e = match serde_path_to_error::deserialize::<_, Raw>(de) {
            Ok(raw) => return (Some(raw), issues),
            Err(e) => e,
        };
        let path: Vec<serde_path_to_error::Segment> = e
            .path()
            .iter()
            .filter(|s| !is_span_wrapper(s))
            .cloned()
            .collect();
        let key = path_key(&path);
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            let full = if key == "." {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            if removed.contains(&full) {
                break;
            }
        }
        issues.push(ConfigIssue {
            key: if key == "." {
                "(top level)".into()
            } else {
                key.clone()
            },
            line: inner.span().map(|s| line_of(text, s.start)),
            message,
        });
        if !remove_at(doc.get_mut(), &path) {
            break;
        }
        removed.push(key);
    }
    (None, issues)
}

/// `Spanned<T>` fields show up in serde paths as a private key of their own.
fn is_span_wrapper(s: &serde_path_to_error::Segment) -> bool {
    matches!(s, serde_path_to_error::Segment::Map { key } if key.starts_with("$__serde_spanned"))
}

/// `sinks[1].template`, or `.` for the top level.
fn path_key(path: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// Take the value at `path` out of a parsed document; false when the path
/// does not lead to a key.
fn remove_at(table: &mut toml::de::DeTable<'_>, path: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    use toml::de::DeValue;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key: last }, parents)) = segments.split_last() else {
        return false;
    };
    let mut here = table;
    let mut i = 0;
    while i < parents.len() {
        let Segment::Map { key } = parents[i] else {
            return false;
        };
        let Some(v) = here.get_mut(key.as_str()) else {
            return false;
        };
        // A table, or an element of an array of tables.
        let v = match (v.get_mut(), parents.get(i + 1)) {
            (DeValue::Array(a), Some(Segment::Seq { index })) => {
                i += 1;
                match a.get_mut(*index).map(|e| e.get_mut()) {
                    Some(DeValue::Table(t)) => t,
                    _ => return false,
                }
            }
            (DeValue::Table(t), _) => t,
            _ => return false,
        };
        here = v;
        i += 1;
    }
    here.remove(last.as_str()).is_some()
}

/// Parse and validate config text. `base` resolves relative paths.
pub fn parse(text: &str, base: &Path, env: &dyn Env) -> Result<Config, Vec<ConfigIssue>> {
    let (raw, structural) = deserialize(text);
    let mut cx = Ctx {
        text,
        issues: structural,
        env,
        base,
    };
    // With structural problems taken out, the rest is still checked, so
    // one round of `roomcast check` lists everything.
    let cfg = raw.and_then(|raw| validate(raw, &mut cx));
    if cx.issues.is_empty() {
        cfg.ok_or_else(Vec::new)
    } else {
        cx.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        Err(cx.issues)
    }
}

fn validate(raw: Raw, cx: &mut Ctx) -> Option<Config> {
    // source
    let kind = match raw.source.kind.get_ref().as_str() {
        "replay" => Some(SourceKind::Replay),
        "lark" => Some(SourceKind::Lark),
        "webhook" => Some(SourceKind::Webhook),
        other => {
            cx.push(
                "source.kind",
                &raw.source.kind,
                format!("unknown source `{other}` (expected replay, lark or webhook)"),
            );
            None
        }
    };
    let replay_file = raw
        .source
        .replay_file
        .as_ref()
        .map(|f| cx.path(f.get_ref()));
    if kind == Some(SourceKind::Replay) && replay_file.is_none() {
        cx.push(
            "source.replay_file",
            &raw.source.kind,
            "replay needs `replay_file`",
        );
    }

    // platform
    let needs_secret = kind == Some(SourceKind::Lark);
    let platform = match &raw.platform {
        None => {
            if needs_secret {
                cx.push(
                    "platform",
                    &raw.source.kind,
                    "source `lark` needs a [platform] table",
                );
            }
            None
        }
        Some(p) => {
            if p.app_id.get_ref().is_empty() {
                cx.push("platform.app_id", &p.app_id, "is empty");
            }
            let app_secret = match (&p.app_secret_env, needs_secret) {
                (Some(v), true) => cx.secret("platform.app_secret_env", v),
                (None, true) => {
                    cx.push(
                        "platform.app_secret_env",
                        &p.app_id,
                        "source `lark` needs `app_secret_env`",
                    );
                    None
                }
                (Some(v), false) => cx
                    .env
                    .var(v.get_ref())
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from),
                (None, false) => None,
            };
            let base_url = match &p.domain {
                None => Url::parse("https://open.feishu.cn").ok(),
                Some(d) => match d.get_ref().as_str() {
                    "feishu" => Url::parse("https://open.feishu.cn").ok(),
                    "lark" => Url::parse("https://open.larksuite.com").ok(),
                    _ => cx.url("platform.domain", d),
                },
            };
            let verification_token = p
                .verification_token_env
                .as_ref()
                .and_then(|v| cx.secret("platform.verification_token_env", v));
            let encrypt_key = p
                .encrypt_key_env
                .as_ref()
                .and_then(|v| cx.secret("platform.encrypt_key_env", v));
            base_url.map(|base_url| PlatformConfig {
                app_id: p.app_id.get_ref().clone(),
                app_secret,
                base_url,
                verification_token,
                encrypt_key,
            })
        }
    };

    // display
    let d = &raw.display;
    let display = Style {
        tz: cx
            .tz("display.time_zone", &d.time_zone)
            .unwrap_or(chrono_tz::UTC),
        locale: cx.locale("display.locale", &d.locale).unwrap_or(Locale::En),
        clock: cx.clock("display.clock", &d.clock).unwrap_or(Clock::H24),
    };
    let starting_soon = cx
        .duration("schedule.starting_soon", &raw.schedule.starting_soon)
        .unwrap_or(Duration::from_secs(600));

    let dedup_capacity = match &raw.schedule.dedup_capacity {
        None => crate::schedule::DEFAULT_DEDUP_CAPACITY,
        Some(v) if *v.get_ref() == 0 => {
            cx.push("schedule.dedup_capacity", v, "must be at least 1");
            1
        }
        Some(v) => usize::try_from(*v.get_ref()).unwrap_or(usize::MAX),
    };
    let templates_dir = raw.templates.dir.as_ref().map(|d| {
        let p = cx.path(d.get_ref());
        if !p.is_dir() {
            cx.push(
                "templates.dir",
                d,
                format!("{} is not a directory", p.display()),
            );
        }
        p
    });

    // lark
    let mut lark = LarkConfig::default();
    let l = &raw.lark;
    if let Some(v) = &l.liveness_factor {
        if *v.get_ref() < 2 {
            cx.push(
                "lark.liveness_factor",
                v,
                "must be at least 2 (pings are only sent once per interval)",
            );
        }
        lark.liveness_factor = *v.get_ref();
    }
    if let Some(v) = &l.max_message_bytes {
        lark.max_message_bytes = usize::try_from(*v.get_ref()).unwrap_or(usize::MAX);
        if *v.get_ref() < 1024 {
            cx.push("lark.max_message_bytes", v, "must be at least 1024");
        }
    }
    if let Some(v) = &l.max_pending_messages {
        lark.max_pending_messages = usize::try_from(*v.get_ref()).unwrap_or(usize::MAX);
        if *v.get_ref() == 0 {
            cx.push("lark.max_pending_messages", v, "must be at least 1");
        }
    }
    if let Some(t) = cx.duration("lark.fragment_ttl", &l.fragment_ttl) {
        lark.fragment_ttl = t;
    }
    if let Some(t) = cx.duration("lark.request_timeout", &l.request_timeout) {
        lark.request_timeout = t;
    }

    // delivery
    let heartbeat = match &raw.delivery.heartbeat {
        None => Some(Duration::from_secs(300)),
        Some(h) if matches!(h.get_ref().as_str(), "off" | "0" | "0s") => None,
        Some(_) => cx.duration("delivery.heartbeat", &raw.delivery.heartbeat),
    };
    let drain_timeout = cx
        .duration("delivery.drain_timeout", &raw.delivery.drain_timeout)
        .unwrap_or(Duration::from_secs(10));
    let h = &raw.http;
    let http = match &h.listen {
        None => {
            if kind == Some(SourceKind::Webhook) {
                cx.push(
                    "http.listen",
                    &raw.source.kind,
                    "source `webhook` needs [http] listen = \"ADDRESS:PORT\"",
                );
            }
            None
        }
        Some(l) => cx
            .parsed("http.listen", l, |a| {
                a.parse::<std::net::SocketAddr>()
                    .map_err(|e| format!("`{a}` is not ADDRESS:PORT: {e}"))
            })
            .map(|listen| HttpConfig {
                listen,
                webhook: h.webhook.unwrap_or(kind == Some(SourceKind::Webhook)),
                webhook_path: match &h.webhook_path {
                    Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
                    Some(p) => {
                        cx.push("http.webhook_path", p, "must start with /");
                        "/webhook/event".into()
                    }
                    None => "/webhook/event".into(),
                },
                max_body_bytes: h.max_body_bytes.as_ref().map_or(1 << 20, |v| {
                    usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)
                }),
            }),
    };
    let st = &raw.store;
    let store = st.path.as_ref().map(|p| StoreConfig {
        path: cx.path(p.get_ref()),
        retention: cx
            .duration("store.retention", &st.retention)
            .unwrap_or(Duration::from_secs(30 * 86400)),
        durable: match st.sync.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("full") => true,
            Some("normal") => false,
            Some(other) => {
                let at = st.sync.as_ref().map(|s| cx.line(s.span().start));
                cx.issues.push(ConfigIssue {
                    key: "store.sync".into(),
                    line: at,
                    message: format!("`{other}`: expected \"full\" or \"normal\""),
                });
                true
            }
        },
    });
    if store.is_none()
        && let Some(r) = st.retention.as_ref().or(st.sync.as_ref())
    {
        cx.push("store.path", r, "[store] needs `path`");
    }

    // sinks (before rooms, which refer to them)
    let mut sinks = Vec::new();
    let mut sink_names = HashSet::new();
    for (i, s) in raw.sinks.iter().enumerate() {
        let at = format!("sinks[{i}]");
        let sink_line = cx.line(s.span().start);
        let s = s.get_ref();
        let name = s.name.get_ref().clone();
        if name.is_empty() {
            cx.push(format!("{at}.name"), &s.name, "is empty");
        } else if !sink_names.insert(name.clone()) {
            cx.push(
                format!("{at}.name"),
                &s.name,
                format!("duplicate sink name `{name}`"),
            );
        }
        let Some(kind) = SinkKind::parse(s.kind.get_ref()) else {
            cx.push(
                format!("{at}.kind"),
                &s.kind,
                format!(
                    "unknown sink kind `{}` (expected one of: {})",
                    s.kind.get_ref(),
                    SinkKind::NAMES
                ),
            );
            continue;
        };
        let payload = match &s.payload {
            None => kind.default_payload(),
            Some(p) => {
                let want = match p.get_ref().as_str() {
                    "notice" => Some(Payload::Notice),
                    "snapshot" => Some(Payload::Snapshot),
                    other => {
                        cx.push(
                            format!("{at}.payload"),
                            p,
                            format!("unknown payload `{other}` (expected notice or snapshot)"),
                        );
                        None
                    }
                };
                match want {
                    Some(w) if kind.payload_configurable() || w == kind.default_payload() => w,
                    Some(_) => {
                        let what = match kind.default_payload() {
                            Payload::Snapshot => "room snapshots",
                            Payload::Notice => "change notices",
                        };
                        cx.push(
                            format!("{at}.payload"),
                            p,
                            format!("a {} sink always sends {what}", kind.as_str()),
                        );
                        kind.default_payload()
                    }
                    None => kind.default_payload(),
                }
            }
        };
        let url = match (&s.url, kind.is_http()) {
            (Some(u), true) => cx.url(&format!("{at}.url"), u),
            (None, true) => {
                cx.push(
                    format!("{at}.url"),
                    &s.kind,
                    format!("a {} sink needs `url`", kind.as_str()),
                );
                None
            }
            (Some(u), false) => {
                cx.push(
                    format!("{at}.url"),
                    u,
                    format!("a {} sink takes no `url`", kind.as_str()),
                );
                None
            }
            (None, false) => None,
        };
        let path = match (&s.path, kind) {
            (Some(p), SinkKind::File) => Some(cx.path(p.get_ref())),
            (None, SinkKind::File) => {
                cx.push(format!("{at}.path"), &s.kind, "a file sink needs `path`");
                None
            }
            (Some(p), _) => {
                cx.push(format!("{at}.path"), p, "only file sinks take `path`");
                None
            }
            (None, _) => None,
        };
        let secret = s.secret_env.as_ref().and_then(|v| {
            if !kind.is_http() {
                cx.push(
                    format!("{at}.secret_env"),
                    v,
                    "only HTTP sinks take a secret",
                );
                return None;
            }
            cx.secret(&format!("{at}.secret_env"), v)
        });
        let method = match &s.method {
            None => "POST".to_string(),
            Some(m) => {
                let up = m.get_ref().to_ascii_uppercase();
                if !matches!(kind, SinkKind::Panel | SinkKind::Webhook) {
                    cx.push(
                        format!("{at}.method"),
                        m,
                        "only panel and webhook sinks take `method`",
                    );
                } else if !matches!(up.as_str(), "POST" | "PUT" | "PATCH") {
                    cx.push(
                        format!("{at}.method"),
                        m,
                        "method must be POST, PUT or PATCH",
                    );
                }
                up
            }
        };
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            if !matches!(kind, SinkKind::Panel | SinkKind::Webhook) {
                cx.push(
                    format!("{at}.headers.{k}"),
                    v,
                    "only panel and webhook sinks take `headers`",
                );
                continue;
            }
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                cx.push(format!("{at}.headers.{k}"), v, "not a valid header name");
                continue;
            }
            // `${NAME}` placeholders read the environment (for tokens).
            let Some(value) = cx.expand_env(&format!("{at}.headers.{k}"), v) else {
                continue;
            };
            headers.push((k.clone(), value));
        }
        let rooms = s.rooms.as_ref().map(|list| {
            list.iter()
                .filter_map(|r| {
                    if r.get_ref().is_empty() {
                        cx.push(format!("{at}.rooms"), r, "empty room id");
                        None
                    } else {
                        Some(RoomId::new(r.get_ref()))
                    }
                })
                .collect::<HashSet<_>>()
        });
        let changes = s.changes.as_ref().map(|list| {
            list.iter()
                .filter_map(|c| match c.get_ref().as_str() {
                    "booked" => Some(ChangeKind::Booked),
                    "rescheduled" => Some(ChangeKind::Rescheduled),
                    "cancelled" => Some(ChangeKind::Cancelled),
                    other => {
                        cx.push(
                            format!("{at}.changes"),
                            c,
                            format!("unknown change kind `{other}` (expected booked, rescheduled or cancelled)"),
                        );
                        None
                    }
                })
                .collect::<HashSet<_>>()
        });
        let (template, template_line) = match &s.template {
            Some(t) => (t.get_ref().clone(), cx.line(t.span().start)),
            None => (kind.default_template(payload).to_string(), sink_line),
        };
        let rate_limits = match &s.rate_limit {
            None => default_rate_limits(kind),
            Some(list) => list
                .iter()
                .filter_map(|r| match RateLimit::parse(r.get_ref()) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        cx.push(format!("{at}.rate_limit"), r, e);
                        None
                    }
                })
                .collect(),
        };
        let quiet_hours = s.quiet_hours.as_ref().and_then(|q| {
            QuietHours::parse(q.get_ref())
                .map_err(|e| cx.push(format!("{at}.quiet_hours"), q, e))
                .ok()
        });
        let timeout = cx
            .duration(&format!("{at}.timeout"), &s.timeout)
            .unwrap_or(Duration::from_secs(10));
        let max_age = cx
            .duration(&format!("{at}.max_age"), &s.max_age)
            .unwrap_or(Duration::from_secs(3600));
        sinks.push(SinkConfig {
            tz: cx.tz(&format!("{at}.time_zone"), &s.time_zone),
            locale: cx.locale(&format!("{at}.locale"), &s.locale),
            clock: cx.clock(&format!("{at}.clock"), &s.clock),
            name,
            kind,
            payload,
            url,
            path,
            template,
            template_line,
            secret,
            method,
            headers,
            rooms,
            changes,
            rate_limits,
            quiet_hours,
            timeout,
            max_age,
        });
    }

    // rooms
    let mut rooms = Vec::new();
    let mut room_ids = HashSet::new();
    for (i, r) in raw.rooms.iter().enumerate() {
        let at = format!("rooms[{i}]");
        let r = r.get_ref();
        let id = r.id.get_ref();
        if id.is_empty() {
            cx.push(format!("{at}.id"), &r.id, "is empty");
        } else if !room_ids.insert(id.clone()) {
            cx.push(
                format!("{at}.id"),
                &r.id,
                format!("duplicate room id `{id}`"),
            );
        }
        for p in &r.panels {
            match sinks.iter().find(|s| &s.name == p.get_ref()) {
                None => cx.push(
                    format!("{at}.panels"),
                    p,
                    format!("no sink named `{}`", p.get_ref()),
                ),
                Some(s) if s.payload != Payload::Snapshot => cx.push(
                    format!("{at}.panels"),
                    p,
                    format!(
                        "sink `{}` sends notices, not room snapshots (set payload = \"snapshot\")",
                        p.get_ref()
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(n) = &r.name
            && n.get_ref().trim().is_empty()
        {
            cx.push(format!("{at}.name"), n, "is empty");
        }
        rooms.push(RoomConfig {
            id: RoomId::new(id),
            name: r.name.as_ref().map(|n| n.get_ref().clone()),
            tz: cx.tz(&format!("{at}.time_zone"), &r.time_zone),
            locale: cx.locale(&format!("{at}.locale"), &r.locale),
            clock: cx.clock(&format!("{at}.clock"), &r.clock),
            panels: r.panels.iter().map(|p| p.get_ref().clone()).collect(),
            token: r
                .token_env
                .as_ref()
                .and_then(|t| cx.secret(&format!("{at}.token_env"), t)),
        });
    }

    Some(Config {
        source: SourceConfig {
            kind: kind?,
            replay_file,
        },
        platform,
        display,
        ignore_unknown_rooms: raw.schedule.ignore_unknown_rooms,
        starting_soon,
        dedup_capacity,
        templates_dir,
        lark,
        heartbeat,
        drain_timeout,
        store,
        http,
        room_index: rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect(),
        rooms,
        sinks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(text: &str) -> Config {
        match parse(text, Path::new("."), &env(&[("SECRET", "s3cr3t-value")])) {
            Ok(c) => c,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn issues(text: &str) -> Vec<ConfigIssue> {
        match parse(text, Path::new("."), &env(&[("SECRET", "s3cr3t-value")])) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(e) => e,
        }
    }

    const MIN: &str = "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = ok(MIN);
        assert_eq!(c.source.kind, SourceKind::Replay);
        assert_eq!(c.display.tz, chrono_tz::UTC);
        assert_eq!(c.starting_soon, Duration::from_secs(600));
        assert!(c.sinks.is_empty());
    }

    #[test]
    fn shipped_config_is_valid() {
        let text = include_str!("../config.toml");
        let c =
            parse(text, Path::new(env!("CARGO_MANIFEST_DIR")), &env(&[])).expect("shipped config");
        assert_eq!(c.source.kind, SourceKind::Replay);
        assert!(!c.rooms.is_empty());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let i = issues(&format!(
            "{MIN}\n[display]\ntime_zone = \"UTC\"\ncolour = \"red\"\n"
        ));
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].line, Some(7));
        assert!(i[0].message.contains("colour"), "{:?}", i[0]);
        assert_eq!(i[0].key, "display.colour");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let i = issues(&format!(
            "{MIN}[schedule]\nignore_unknown_rooms = \"yes\"\n"
        ));
        assert_eq!(i[0].key, "schedule.ignore_unknown_rooms");
        assert_eq!(i[0].line, Some(5));
    }

    #[test]
    fn every_structural_problem_is_reported_at_once() {
        let i = issues(&format!(
            "{MIN}[display]\ncolour = \"red\"\n[schedule]\nignore_unknown_rooms = \"yes\"\n[[sinks]]\nname = \"a\"\nkind = \"stdout\"\n[[sinks]]\nname = \"b\"\nkind = \"stdout\"\ntemplat = \"text\"\n"
        ));
        let got: Vec<(&str, Option<usize>)> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
        assert_eq!(
            got,
            [
                ("display.colour", Some(5)),
                ("schedule.ignore_unknown_rooms", Some(7)),
                ("sinks[1].templat", Some(14)),
            ],
            "{i:?}"
        );
        // Structural and semantic problems come in the same round.
        let i = issues(&format!(
            "{MIN}bogus = 1\n[display]\ntime_zone = \"Mars/Base\"\n"
        ));
        let got: Vec<&str> = i.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(got, ["source.bogus", "display.time_zone"], "{i:?}");
        // A required key of the wrong type is reported once, not again as
        // missing; a typo for a required key shows both the typo and the
        // missing key.
        let i = issues("[source]\nkind = 5\n");
        assert_eq!(i.len(), 1, "{i:?}");
        assert_eq!(i[0].key, "source.kind");
        let i = issues("[source]\nkidn = \"replay\"\n");
        let keys: Vec<&str> = i.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["source", "source.kidn"], "by line: {i:?}");
        assert!(i[0].message.contains("missing field `kind`"), "{i:?}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let i = issues("[source\nkind = 1\n");
        assert_eq!(i[0].line, Some(1));
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let text = format!(
            r#"{MIN}
[display]
time_zone = "Mars/Olympus"
locale = "fr"
clock = "25h"

[schedule]
starting_soon = "soonish"

[[rooms]]
id = "omm_a"
panels = ["nope", "chat"]

[[rooms]]
id = "omm_a"
time_zone = "Nowhere/Land"

[[sinks]]
name = "chat"
kind = "slack"
url = "not a url"

[[sinks]]
name = "chat"
kind = "carrier-pigeon"

[[sinks]]
name = "bot"
kind = "feishu"
url = "ftp://example.com/x"
secret_env = "MISSING_SECRET"
changes = ["booked", "exploded"]

[[sinks]]
name = "f"
kind = "file"

[[sinks]]
name = "p"
kind = "panel"
"#
        );
        let got: Vec<(String, Option<usize>)> =
            issues(&text).into_iter().map(|i| (i.key, i.line)).collect();
        let want: Vec<(&str, usize)> = vec![
            ("display.time_zone", 6),
            ("display.locale", 7),
            ("display.clock", 8),
            ("schedule.starting_soon", 11),
            ("rooms[0].panels", 15),
            ("rooms[0].panels", 15),
            ("rooms[1].id", 18),
            ("rooms[1].time_zone", 19),
            ("sinks[0].url", 24),
            ("sinks[1].name", 27),
            ("sinks[1].kind", 28),
            ("sinks[2].url", 33),
            ("sinks[2].secret_env", 34),
            ("sinks[2].changes", 35),
            ("sinks[3].path", 39),
            ("sinks[4].url", 43),
        ];
        let want: Vec<(String, Option<usize>)> = want
            .into_iter()
            .map(|(k, l)| (k.to_string(), Some(l)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let text = "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a\"\napp_secret_env = \"APP_SECRET\"\n";
        let i = issues(text);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].key, "platform.app_secret_env");
        assert_eq!(i[0].line, Some(5));
        assert!(i[0].message.contains("APP_SECRET"));
        let c = parse(text, Path::new("."), &env(&[("APP_SECRET", "hunter2")])).unwrap();
        let p = c.platform.unwrap();
        assert_eq!(p.base_url.as_str(), "https://open.feishu.cn/");
        assert!(
            !format!("{p:?}").contains("hunter2"),
            "secrets are redacted in Debug"
        );
    }

    #[test]
    fn domains() {
        let with = |d: &str| {
            ok(&format!(
                "{MIN}[platform]\napp_id = \"cli_a\"\ndomain = \"{d}\"\n"
            ))
            .platform
            .unwrap()
            .base_url
            .to_string()
        };
        assert_eq!(with("lark"), "https://open.larksuite.com/");
        assert_eq!(with("http://127.0.0.1:9000"), "http://127.0.0.1:9000/");
        let i = issues(&format!(
            "{MIN}[platform]\napp_id = \"cli_a\"\ndomain = \"larkk\"\n"
        ));
        assert_eq!(i[0].key, "platform.domain");
    }

    #[test]
    fn style_precedence_sink_over_room_over_default() {
        let c = ok(&format!(
            r#"{MIN}[display]
time_zone = "Asia/Shanghai"
locale = "zh-CN"
[[rooms]]
id = "omm_ny"
time_zone = "America/New_York"
locale = "en"
[[sinks]]
name = "london"
kind = "stdout"
time_zone = "Europe/London"
"#
        ));
        let room = c.room(&RoomId::new("omm_ny"));
        assert_eq!(c.style(None, None).tz, chrono_tz::Asia::Shanghai);
        assert_eq!(c.style(room, None).tz, chrono_tz::America::New_York);
        let s = c.style(room, Some(&c.sinks[0]));
        assert_eq!(s.tz, chrono_tz::Europe::London);
        assert_eq!(s.locale, Locale::En);
        assert_eq!(c.locales(), vec![Locale::ZhCn, Locale::En]);
    }

    #[test]
    fn rates_and_quiet_hours() {
        assert_eq!(
            RateLimit::parse("5/s"),
            Ok(RateLimit {
                count: 5,
                period: Duration::from_secs(1)
            })
        );
        assert_eq!(
            RateLimit::parse("100/min").map(|r| r.period),
            Ok(Duration::from_secs(60))
        );
        for bad in ["5", "0/s", "x/s", "5/fortnight"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
        let q = QuietHours::parse("22:00-07:00").unwrap();
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(q.contains(t(23, 0)) && q.contains(t(0, 0)) && q.contains(t(6, 59)));
        assert!(!q.contains(t(7, 0)) && !q.contains(t(12, 0)) && !q.contains(t(21, 59)));
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert!(day.contains(t(12, 0)) && !day.contains(t(13, 30)));
        assert!(QuietHours::parse("22:00").is_err() && QuietHours::parse("25:00-01:00").is_err());
        let c = ok(&format!(
            "{MIN}[[sinks]]\nname = \"f\"\nkind = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/x\"\n"
        ));
        assert_eq!(
            c.sinks[0].rate_limits.len(),
            2,
            "Feishu defaults: 5/s and 100/min"
        );
        let i = issues(&format!(
            "{MIN}[[sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nrate_limit = [\"fast\"]\nquiet_hours = \"late\"\n"
        ));
        let keys: Vec<_> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
        assert_eq!(
            keys,
            [
                ("sinks[0].rate_limit", Some(8)),
                ("sinks[0].quiet_hours", Some(9))
            ]
        );
    }

    #[test]
    fn panel_headers_read_env() {
        let c = ok(&format!(
            "{MIN}[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1/x\"\nheaders = {{ Authorization = \"Bearer ${{SECRET}}\", X-A = \"b\" }}\n"
        ));
        assert_eq!(c.sinks[0].payload, Payload::Snapshot);
        let auth = c.sinks[0]
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&auth.1),
            "Bearer s3cr3t-value"
        );
        assert!(!format!("{:?}", c.sinks[0]).contains("s3cr3t"));
    }
}
