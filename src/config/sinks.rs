//! `[[sinks]]`: where messages go, each sink's kind, payload, style, rate
//! limits and quiet hours.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::ctx::Ctx;
use super::raw::RawSink;
use crate::locale::{HourCycle, Locale, Privacy};
use crate::model::{ChangeKind, RoomId};
use crate::render::names;
pub use crate::retry::RateLimit;

pub(super) const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Every kind of sink. `Stdout` and `File` deliver locally; the rest are
/// HTTP kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    pub(crate) fn payload_configurable(self) -> bool {
        matches!(self, SinkKind::Stdout | SinkKind::File | SinkKind::Webhook)
    }

    /// How values are escaped in what the sink is sent: chat services read
    /// markup in text, so event text is made inert for them.
    pub fn target(self) -> crate::render::Target {
        match self {
            SinkKind::Feishu
            | SinkKind::Lark
            | SinkKind::Slack
            | SinkKind::Dingtalk
            | SinkKind::Wecom => crate::render::Target::Chat,
            SinkKind::Panel | SinkKind::Webhook | SinkKind::Stdout | SinkKind::File => {
                crate::render::Target::Data
            }
        }
    }

    pub(crate) fn is_http(self) -> bool {
        !matches!(self, SinkKind::Stdout | SinkKind::File)
    }

    /// Panel and generic webhook sinks take `method` and `headers`.
    fn custom_requests(self) -> bool {
        matches!(self, SinkKind::Panel | SinkKind::Webhook)
    }

    /// What the sink receives unless `payload` says otherwise.
    pub(crate) fn default_payload(self) -> Payload {
        match self {
            SinkKind::Panel => Payload::Snapshot,
            _ => Payload::Notice,
        }
    }

    /// The template a sink uses unless it names one.
    pub(crate) fn default_template(self, payload: Payload) -> &'static str {
        match (self, payload) {
            (SinkKind::Stdout | SinkKind::File, Payload::Snapshot) => return names::ROOM,
            (_, Payload::Snapshot) => return names::PANEL,
            _ => {}
        }
        match self {
            SinkKind::Panel => names::PANEL,
            SinkKind::Feishu | SinkKind::Lark => names::FEISHU_CARD,
            SinkKind::Slack => names::SLACK,
            SinkKind::Dingtalk => names::DINGTALK,
            SinkKind::Wecom => names::WECOM,
            SinkKind::Webhook => names::WEBHOOK,
            SinkKind::Stdout | SinkKind::File => names::TEXT,
        }
    }

    /// The daily agenda's template unless the sink names one.
    pub(crate) fn default_digest_template(self) -> &'static str {
        match self {
            SinkKind::Feishu | SinkKind::Lark => names::DIGEST_FEISHU_CARD,
            SinkKind::Slack => names::DIGEST_SLACK,
            SinkKind::Dingtalk => names::DIGEST_DINGTALK,
            SinkKind::Wecom => names::DIGEST_WECOM,
            SinkKind::Webhook | SinkKind::Panel => names::DIGEST_WEBHOOK,
            SinkKind::Stdout | SinkKind::File => names::DIGEST_TEXT,
        }
    }

    /// Rate limits unless the sink sets its own: the services' documented
    /// limits.
    pub(crate) fn default_rate_limits(self) -> Vec<RateLimit> {
        let l = |count, secs| RateLimit {
            count,
            period: Duration::from_secs(secs),
        };
        match self {
            SinkKind::Feishu | SinkKind::Lark => vec![l(5, 1), l(100, 60)],
            SinkKind::Dingtalk | SinkKind::Wecom => vec![l(20, 60)],
            SinkKind::Slack => vec![l(1, 1)],
            _ => Vec::new(),
        }
    }
}

/// What a sink is sent: change notices or room snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    pub headers: Vec<SinkHeader>,
    /// `None`: every room.
    pub rooms: Option<HashSet<RoomId>>,
    /// `None`: every change kind.
    pub changes: Option<HashSet<ChangeKind>>,
    pub tz: Option<Tz>,
    pub locale: Option<Locale>,
    pub hour_cycle: Option<HourCycle>,
    /// Sliding-window limits: at most `n` requests per `period`.
    pub rate_limits: Vec<RateLimit>,
    /// Local hours (sink's zone) during which messages are held.
    pub quiet_hours: Option<QuietHours>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// A message still undelivered this long after it was queued is given
    /// up (a dead letter, logged with sink and booking).
    pub max_age: Duration,
    /// How much of a booking this sink shows (never more than the room
    /// allows).
    pub privacy: Option<Privacy>,
    /// Panel sinks: push one room's panel at most this often (the last
    /// state always arrives, at most this late).
    pub min_interval: Option<Duration>,
    /// Notice sinks: remind this long before each booking starts (sorted,
    /// longest first).
    pub reminders: Vec<Duration>,
    /// Notice sinks: the day's agenda at a local time.
    pub digest: Option<Digest>,
}

/// A daily agenda: at `at` (the sink's zone) on `days`, through
/// `template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub at: chrono::NaiveTime,
    pub days: Vec<chrono::Weekday>,
    pub template: String,
    /// Line of `digest_template` (or of `digest`), for messages.
    pub template_line: usize,
}

impl SinkConfig {
    /// The same settings, secrets included (what a reload compares; the
    /// lines the keys are on do not count).
    pub(crate) fn same_as(&self, other: &SinkConfig) -> bool {
        // Sets compared as sets (their Debug order is the hasher's).
        let plain = |s: &SinkConfig| {
            let mut c = s.clone();
            (c.rooms, c.changes, c.template_line) = (None, None, 0);
            let secrets: Vec<String> = s
                .secret
                .iter()
                .map(|v| v.expose_secret().to_string())
                .chain(
                    s.headers
                        .iter()
                        .map(|h| h.value.expose_secret().to_string()),
                )
                .collect();
            (format!("{c:?}"), secrets)
        };
        self.rooms == other.rooms && self.changes == other.changes && plain(self) == plain(other)
    }

    /// Can a running worker take `new` in place, with what it has queued?
    /// Yes unless the messages themselves would differ: another service,
    /// another payload or template, or a local sink (stdout, file).
    pub(crate) fn updatable_to(&self, new: &SinkConfig) -> bool {
        self.kind.is_http()
            && self.kind == new.kind
            && self.payload == new.payload
            && self.template == new.template
    }

    /// Does this sink's filter let the room (and change kind) through?
    pub(crate) fn wants(&self, room: &RoomId, kind: Option<ChangeKind>) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.contains(room))
            && match (kind, &self.changes) {
                (Some(k), Some(set)) => set.contains(&k),
                _ => true,
            }
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

// --------------------------------------------------------------- validation

pub(super) fn sinks(raw: &[Spanned<RawSink>], cx: &mut Ctx) -> Vec<SinkConfig> {
    let mut sinks = Vec::new();
    let mut names = HashSet::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("sinks[{i}]");
        let name = s.get_ref().name.get_ref().clone();
        if name.is_empty() {
            cx.push(format!("{at}.name"), &s.get_ref().name, "is empty");
        } else if !names.insert(name.clone()) {
            cx.push(
                format!("{at}.name"),
                &s.get_ref().name,
                format!("duplicate sink name `{name}`"),
            );
        }
        if let Some(sink) = sink(&at, s, cx) {
            sinks.push(sink);
        }
    }
    sinks
}

/// One sink (`None` without a valid kind: nothing else can be checked).
fn sink(at: &str, spanned: &Spanned<RawSink>, cx: &mut Ctx) -> Option<SinkConfig> {
    let s = spanned.get_ref();
    let kind = s.kind.as_ref().map(|k| *k.get_ref());
    let kind = cx.require(at, "kind", spanned, kind)?;
    let kind_at = s.kind.as_ref().map_or(spanned.span(), |k| k.span());
    let kind_at = Spanned::new(kind_at, ());
    let payload = payload(at, kind, s, cx);
    let (template, template_line) = match &s.template {
        Some(t) => (t.get_ref().clone(), cx.line(t)),
        None => (kind.default_template(payload).to_string(), cx.line(spanned)),
    };
    Some(SinkConfig {
        url: url(at, kind, s, &kind_at, cx),
        path: path(at, kind, s, &kind_at, cx),
        secret: secret(at, kind, s, cx),
        method: method(at, kind, s, cx),
        headers: headers(at, kind, s, cx),
        rooms: s.rooms.as_ref().map(|list| room_filter(at, list, cx)),
        changes: s
            .changes
            .as_ref()
            .map(|list| list.iter().map(|c| *c.get_ref()).collect()),
        rate_limits: rate_limits(at, kind, s, cx),
        quiet_hours: s.quiet_hours.as_ref().and_then(|q| {
            QuietHours::parse(q.get_ref())
                .map_err(|e| cx.push(format!("{at}.quiet_hours"), q, e))
                .ok()
        }),
        timeout: cx
            .duration(&format!("{at}.timeout"), &s.timeout)
            .unwrap_or(DEFAULT_SINK_TIMEOUT),
        max_age: cx
            .duration(&format!("{at}.max_age"), &s.max_age)
            .unwrap_or(DEFAULT_MAX_AGE),
        tz: cx.tz(&format!("{at}.time_zone"), &s.time_zone),
        locale: cx.locale(&format!("{at}.locale"), &s.locale),
        hour_cycle: cx.hour_cycle(&format!("{at}.clock"), &s.clock),
        privacy: s.privacy,
        min_interval: min_interval(at, kind, payload, s, cx),
        reminders: reminders(at, payload, s, cx),
        digest: digest(at, kind, payload, spanned, cx),
        name: s.name.get_ref().clone(),
        kind,
        payload,
        template,
        template_line,
    })
}

fn payload(at: &str, kind: SinkKind, s: &RawSink, cx: &mut Ctx) -> Payload {
    let Some(p) = &s.payload else {
        return kind.default_payload();
    };
    let want = *p.get_ref();
    if kind.payload_configurable() || want == kind.default_payload() {
        return want;
    }
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

fn url(at: &str, kind: SinkKind, s: &RawSink, kind_at: &Spanned<()>, cx: &mut Ctx) -> Option<Url> {
    match (&s.url, kind.is_http()) {
        (Some(u), true) => cx.url(&format!("{at}.url"), u),
        (None, true) => {
            let msg = format!("a {} sink needs `url`", kind.as_str());
            cx.push(format!("{at}.url"), kind_at, msg);
            None
        }
        (Some(u), false) => {
            let msg = format!("a {} sink takes no `url`", kind.as_str());
            cx.push(format!("{at}.url"), u, msg);
            None
        }
        (None, false) => None,
    }
}

fn path(
    at: &str,
    kind: SinkKind,
    s: &RawSink,
    kind_at: &Spanned<()>,
    cx: &mut Ctx,
) -> Option<PathBuf> {
    match (&s.path, kind) {
        (Some(p), SinkKind::File) => Some(cx.path(p.get_ref())),
        (None, SinkKind::File) => {
            cx.push(format!("{at}.path"), kind_at, "a file sink needs `path`");
            None
        }
        (Some(p), _) => {
            cx.push(format!("{at}.path"), p, "only file sinks take `path`");
            None
        }
        (None, _) => None,
    }
}

fn secret(at: &str, kind: SinkKind, s: &RawSink, cx: &mut Ctx) -> Option<SecretString> {
    let (env, file) = (s.secret_env.as_ref(), s.secret_file.as_ref());
    if !kind.is_http()
        && let Some((v, k)) = env.map(|v| (v, "env")).or(file.map(|f| (f, "file")))
    {
        cx.push(
            format!("{at}.secret_{k}"),
            v,
            "only HTTP sinks take a secret",
        );
        return None;
    }
    cx.secret_from(&format!("{at}.secret"), env, file)
}

fn method(at: &str, kind: SinkKind, s: &RawSink, cx: &mut Ctx) -> String {
    let Some(m) = &s.method else {
        return "POST".to_string();
    };
    let up = m.get_ref().to_ascii_uppercase();
    let key = format!("{at}.method");
    if !kind.custom_requests() {
        cx.push(key, m, "only panel and webhook sinks take `method`");
    } else if !matches!(up.as_str(), "POST" | "PUT" | "PATCH") {
        cx.push(key, m, "method must be POST, PUT or PATCH");
    }
    up
}

/// One extra request header of a panel or webhook sink.
#[derive(Debug, Clone)]
pub struct SinkHeader {
    pub name: String,
    /// With every `${NAME}` replaced by that environment variable.
    pub value: SecretString,
    /// Safe to show (`preview`): the value as the config writes it, with
    /// `${NAME}` placeholders unexpanded; `***` for a literal value of a
    /// header that usually carries a credential.
    pub shown: String,
}

fn shown_header(name: &str, written: &str) -> String {
    let n = name.to_ascii_lowercase();
    let sensitive = [
        "authorization",
        "cookie",
        "token",
        "key",
        "secret",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w));
    if sensitive && !written.contains("${") {
        "***".to_string()
    } else {
        written.to_string()
    }
}

fn headers(at: &str, kind: SinkKind, s: &RawSink, cx: &mut Ctx) -> Vec<SinkHeader> {
    let mut headers = Vec::new();
    for (k, v) in &s.headers {
        let key = format!("{at}.headers.{k}");
        if !kind.custom_requests() {
            cx.push(key, v, "only panel and webhook sinks take `headers`");
            continue;
        }
        let valid = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            cx.push(key, v, "not a valid header name");
            continue;
        }
        // `${NAME}` placeholders read the environment (for tokens).
        if let Some(value) = cx.expand_env(&key, v) {
            headers.push(SinkHeader {
                name: k.clone(),
                value,
                shown: shown_header(k, v.get_ref()),
            });
        }
    }
    headers
}

/// Every room a sink names must be one `[[rooms]]` lists, so `check`
/// catches a typo (rather than the sink staying silent). Not checked when
/// `[[rooms]]` is empty or `[rooms_from]` adds rooms from the directory,
/// which `check` cannot see.
pub(super) fn room_refs(
    raw: &[Spanned<RawSink>],
    rooms: &[super::RoomConfig],
    from_directory: bool,
    cx: &mut Ctx,
) {
    if rooms.is_empty() || from_directory {
        return;
    }
    for (i, s) in raw.iter().enumerate() {
        for r in s.get_ref().rooms.iter().flatten() {
            let id = r.get_ref();
            if id.is_empty() || rooms.iter().any(|c| c.id.as_str() == id) {
                continue;
            }
            let closest = rooms
                .iter()
                .map(|c| (edit_distance(c.id.as_str(), id), c.id.as_str()))
                .min()
                .filter(|(d, _)| *d <= 3.max(id.len() / 4));
            let hint = match closest {
                Some((_, near)) => format!(" (did you mean `{near}`?)"),
                None => String::new(),
            };
            cx.push(
                format!("sinks[{i}].rooms"),
                r,
                format!("`{id}` is not a room in [[rooms]]{hint}; list it there (an `id` is enough) if it is meant"),
            );
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn room_filter(at: &str, list: &[Spanned<String>], cx: &mut Ctx) -> HashSet<RoomId> {
    list.iter()
        .filter_map(|r| {
            if r.get_ref().is_empty() {
                cx.push(format!("{at}.rooms"), r, "empty room id");
                None
            } else {
                Some(RoomId::new(r.get_ref()))
            }
        })
        .collect()
}

/// `digest`, `digest_days`, `digest_template`: for notice sinks.
fn digest(
    at: &str,
    kind: SinkKind,
    payload: Payload,
    spanned: &Spanned<RawSink>,
    cx: &mut Ctx,
) -> Option<Digest> {
    let s = spanned.get_ref();
    let Some(time) = &s.digest else {
        for (key, set) in [
            (
                "digest_days",
                s.digest_days.as_ref().and_then(|d| d.first()),
            ),
            ("digest_template", s.digest_template.as_ref()),
        ] {
            if let Some(v) = set {
                cx.push(
                    format!("{at}.{key}"),
                    v,
                    "has no effect without `digest = \"HH:MM\"`",
                );
            }
        }
        return None;
    };
    if payload != Payload::Notice {
        cx.push(
            format!("{at}.digest"),
            time,
            "the daily agenda is a message: only for sinks that send change notices (a chat bot, a webhook, stdout, a file)",
        );
        return None;
    }
    let t = chrono::NaiveTime::parse_from_str(time.get_ref().trim(), "%H:%M")
        .map_err(|_| {
            cx.push(
                format!("{at}.digest"),
                time,
                format!("`{}` is not a local time like \"08:30\"", time.get_ref()),
            )
        })
        .ok()?;
    let days = match &s.digest_days {
        None => vec![
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
        ],
        Some(list) => {
            let mut days = Vec::new();
            for d in list {
                match weekday(d.get_ref()) {
                    Some(w) if !days.contains(&w) => days.push(w),
                    Some(_) => {}
                    None => cx.push(
                        format!("{at}.digest_days"),
                        d,
                        format!(
                            "`{}` is not a day: write mon, tue, wed, thu, fri, sat or sun",
                            d.get_ref()
                        ),
                    ),
                }
            }
            if days.is_empty() && list.is_empty() {
                cx.push(
                    format!("{at}.digest_days"),
                    time,
                    "is empty: no day would have an agenda",
                );
            }
            days
        }
    };
    let (template, template_line) = match &s.digest_template {
        Some(t) => (t.get_ref().clone(), cx.line(t)),
        None => (kind.default_digest_template().to_string(), cx.line(time)),
    };
    Some(Digest {
        at: t,
        days,
        template,
        template_line,
    })
}

/// `mon`, `Monday`, `MON` … (English names or their first three letters).
fn weekday(s: &str) -> Option<chrono::Weekday> {
    let s = s.trim().to_ascii_lowercase();
    let short = s.get(..3)?;
    let day = match short {
        "mon" => chrono::Weekday::Mon,
        "tue" => chrono::Weekday::Tue,
        "wed" => chrono::Weekday::Wed,
        "thu" => chrono::Weekday::Thu,
        "fri" => chrono::Weekday::Fri,
        "sat" => chrono::Weekday::Sat,
        "sun" => chrono::Weekday::Sun,
        _ => return None,
    };
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (s.len() == 3 || full.contains(&s.as_str())).then_some(day)
}

/// The longest lead a reminder may have.
const MAX_REMINDER: Duration = Duration::from_secs(7 * 24 * 3600);

/// `reminders`: leads before a booking starts, for notice sinks.
fn reminders(at: &str, payload: Payload, s: &RawSink, cx: &mut Ctx) -> Vec<Duration> {
    let Some(list) = &s.reminders else {
        return Vec::new();
    };
    let key = format!("{at}.reminders");
    if payload != Payload::Notice {
        if let Some(first) = list.first() {
            cx.push(
                key,
                first,
                "reminders are notices: only for sinks that send change notices (a chat bot, a webhook, stdout, a file)",
            );
        }
        return Vec::new();
    }
    let mut leads: Vec<Duration> = list
        .iter()
        .filter_map(|v| {
            let d = cx.duration(&key, &Some(v.clone()))?;
            if d.is_zero() || d > MAX_REMINDER {
                cx.push(
                    key.clone(),
                    v,
                    "a reminder comes more than 0 s and at most 7 days before the start",
                );
                return None;
            }
            Some(d)
        })
        .collect();
    leads.sort_unstable_by(|a, b| b.cmp(a));
    leads.dedup();
    leads
}

/// `min_interval`: for sinks that push snapshots over HTTP.
fn min_interval(
    at: &str,
    kind: SinkKind,
    payload: Payload,
    s: &RawSink,
    cx: &mut Ctx,
) -> Option<Duration> {
    let raw = s.min_interval.as_ref()?;
    let key = format!("{at}.min_interval");
    if payload != Payload::Snapshot || !kind.is_http() {
        cx.push(
            key,
            raw,
            "spaces the pushes of a panel: only for sinks that send room snapshots over HTTP (payload = \"snapshot\")",
        );
        return None;
    }
    cx.duration(&key, &s.min_interval).filter(|d| !d.is_zero())
}

fn rate_limits(at: &str, kind: SinkKind, s: &RawSink, cx: &mut Ctx) -> Vec<RateLimit> {
    let Some(list) = &s.rate_limit else {
        return kind.default_rate_limits();
    };
    list.iter()
        .filter_map(|r| match RateLimit::parse(r.get_ref()) {
            Ok(l) => Some(l),
            Err(e) => {
                cx.push(format!("{at}.rate_limit"), r, e);
                None
            }
        })
        .collect()
}
