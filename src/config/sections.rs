//! The small sections: `[source]`, `[platform]`, `[display]`,
//! `[schedule]`, `[templates]`, `[lark]`, `[delivery]`, `[store]`, `[http]`;
//! each one's validated type, defaults and validation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::ctx::Ctx;
use super::raw::{
    RawDelivery, RawDisplay, RawHa, RawHttp, RawLark, RawPlatform, RawRoomsFrom, RawSchedule,
    RawSource, RawStore, RawSync, RawTemplates,
};
use super::rooms::RoomConfig;
use crate::locale::{HourCycle, Locale, Style};

// ------------------------------------------------------------------ source

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Replay,
    Lark,
    Webhook,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    pub replay_file: Option<PathBuf>,
    /// The line of `replay_file` (for `check`'s "cannot be read").
    pub replay_file_line: Option<usize>,
}

/// The line `[source]` problems point at: its `kind`, or the table.
fn source_line(src: &Spanned<RawSource>) -> Spanned<()> {
    let span = match &src.get_ref().kind {
        Some(k) => k.span(),
        None => src.span(),
    };
    Spanned::new(span, ())
}

pub(super) fn source(src: &Spanned<RawSource>, cx: &mut Ctx) -> Option<SourceConfig> {
    let raw = src.get_ref();
    let kind = raw.kind.as_ref().map(|k| *k.get_ref());
    let kind = cx.require("source", "kind", src, kind);
    let replay_file = raw.replay_file.as_ref().map(|f| cx.path(f.get_ref()));
    if kind == Some(SourceKind::Replay) && replay_file.is_none() {
        let at = source_line(src);
        cx.push("source.replay_file", &at, "replay needs `replay_file`");
    }
    let replay_file_line = raw.replay_file.as_ref().map(|f| cx.line(f));
    Some(SourceConfig {
        kind: kind?,
        replay_file,
        replay_file_line,
    })
}

// ---------------------------------------------------------------- platform

pub(super) const FEISHU_BASE_URL: &str = "https://open.feishu.cn";
pub(super) const LARK_BASE_URL: &str = "https://open.larksuite.com";

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

pub(super) fn platform(
    p: Option<&RawPlatform>,
    src: &Spanned<RawSource>,
    kind: Option<SourceKind>,
    cx: &mut Ctx,
) -> Option<PlatformConfig> {
    let needs_secret = kind == Some(SourceKind::Lark);
    let Some(p) = p else {
        if needs_secret {
            let at = source_line(src);
            cx.push("platform", &at, "source `lark` needs a [platform] table");
        }
        return None;
    };
    if p.app_id.get_ref().is_empty() {
        cx.push("platform.app_id", &p.app_id, "is empty");
    }
    let app_secret = match (&p.app_secret_env, &p.app_secret_file, needs_secret) {
        (None, None, true) => {
            cx.push(
                "platform.app_secret_env",
                &p.app_id,
                "source `lark` needs `app_secret_env` (or `app_secret_file`)",
            );
            None
        }
        // Only the room APIs would use it: an unset variable just leaves
        // them off.
        (Some(v), None, false) => cx.optional_secret(v),
        (env, file, _) => cx.secret_from("platform.app_secret", env.as_ref(), file.as_ref()),
    };
    let base_url = match &p.domain {
        None => Url::parse(FEISHU_BASE_URL).ok(),
        Some(d) => match d.get_ref().as_str() {
            "feishu" => Url::parse(FEISHU_BASE_URL).ok(),
            "lark" => Url::parse(LARK_BASE_URL).ok(),
            _ => cx.url("platform.domain", d),
        },
    };
    let verification_token = cx.secret_from(
        "platform.verification_token",
        p.verification_token_env.as_ref(),
        p.verification_token_file.as_ref(),
    );
    let encrypt_key = cx.secret_from(
        "platform.encrypt_key",
        p.encrypt_key_env.as_ref(),
        p.encrypt_key_file.as_ref(),
    );
    base_url.map(|base_url| PlatformConfig {
        app_id: p.app_id.get_ref().clone(),
        app_secret,
        base_url,
        verification_token,
        encrypt_key,
    })
}

// ----------------------------------------------------------------- display

pub(super) fn display(d: &RawDisplay, cx: &mut Ctx) -> Style {
    Style {
        tz: cx
            .tz("display.time_zone", &d.time_zone)
            .unwrap_or(chrono_tz::UTC),
        locale: cx.locale("display.locale", &d.locale).unwrap_or(Locale::En),
        hour_cycle: cx
            .hour_cycle("display.clock", &d.clock)
            .unwrap_or(HourCycle::H24),
        privacy: d.privacy.unwrap_or_default(),
    }
}

// -------------------------------------------------------------------- sync

pub(super) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(300);
pub(super) const DEFAULT_SYNC_DAYS: u32 = 7;
/// The room APIs advise a window within 30 days.
pub(super) const MAX_SYNC_DAYS: u32 = 30;
/// The shortest interval accepted (the platform's own room pads poll every
/// 5 minutes).
const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Backfill and reconciliation from the room APIs.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How often every room is fetched again.
    pub interval: Duration,
    /// Days ahead of local midnight today that are fetched.
    pub days: u32,
    /// A room whose last successful fetch is older than this is stale (its
    /// page says "schedule as of …", `/readyz` names it).
    pub stale_after: Duration,
}

/// `[sync]`: on by default when the app's credentials are there (the room
/// APIs need them); `interval = "off"` keeps the event-only behaviour.
pub(super) fn sync(
    s: &RawSync,
    platform: Option<&PlatformConfig>,
    cx: &mut Ctx,
) -> Option<SyncConfig> {
    let credentials = platform.is_some_and(|p| p.app_secret.is_some());
    let interval = cx.duration_or_off("sync.interval", &s.interval, DEFAULT_SYNC_INTERVAL)?;
    let Some(at) = &s.interval else {
        // Not asked for: only where it can work.
        return credentials.then(|| SyncConfig {
            interval,
            days: DEFAULT_SYNC_DAYS,
            stale_after: interval * 3,
        });
    };
    if !credentials {
        cx.push(
            "sync.interval",
            at,
            "the room APIs need the app's credentials: set [platform] app_id and app_secret_env (and its variable), or interval = \"off\"",
        );
        return None;
    }
    if interval < MIN_SYNC_INTERVAL {
        cx.push("sync.interval", at, "must be at least 30s");
    }
    let days = match &s.days {
        None => DEFAULT_SYNC_DAYS,
        Some(d) if (1..=u64::from(MAX_SYNC_DAYS)).contains(d.get_ref()) => *d.get_ref() as u32,
        Some(d) => {
            cx.push(
                "sync.days",
                d,
                format!(
                    "must be 1 to {MAX_SYNC_DAYS} (the room APIs advise a window within 30 days)"
                ),
            );
            DEFAULT_SYNC_DAYS
        }
    };
    let stale_after = cx
        .duration("sync.stale_after", &s.stale_after)
        .unwrap_or(interval * 3);
    Some(SyncConfig {
        interval,
        days,
        stale_after,
    })
}

/// `[rooms_from]`: every room under these buildings or floors is shown.
#[derive(Debug, Clone)]
pub struct RoomsFrom {
    pub levels: Vec<String>,
}

pub(super) fn rooms_from(
    r: Option<&Spanned<RawRoomsFrom>>,
    sync: Option<&SyncConfig>,
    cx: &mut Ctx,
) -> Option<RoomsFrom> {
    let r = r?;
    if sync.is_none() {
        cx.push(
            "rooms_from",
            r,
            "rooms come from the room directory, which needs [sync] (and the app's credentials)",
        );
        return None;
    }
    let mut levels = Vec::new();
    for l in &r.get_ref().levels {
        if l.get_ref().trim().is_empty() {
            cx.push("rooms_from.levels", l, "empty level id");
        } else {
            levels.push(l.get_ref().clone());
        }
    }
    Some(RoomsFrom { levels })
}

// ---------------------------------------------------------------- schedule

/// How long before a booking a room shows "starting soon".
pub const DEFAULT_STARTING_SOON: chrono::Duration = chrono::Duration::minutes(10);
/// More rooms than this in one event: refused (acknowledged, not applied).
pub(super) const DEFAULT_MAX_ROOMS_PER_EVENT: usize = 200;
/// At most this many rooms not in the config are kept.
pub(super) const DEFAULT_MAX_UNKNOWN_ROOMS: usize = 1000;

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Events for rooms not in `[[rooms]]` are dropped.
    pub ignore_unknown_rooms: bool,
    pub starting_soon: chrono::Duration,
    /// How many recent delivery ids are remembered for de-duplication.
    pub dedup_capacity: usize,
    /// An event naming more rooms is refused (acknowledged, not applied).
    pub max_rooms_per_event: usize,
    /// How many rooms outside the config the schedule keeps at most.
    pub max_unknown_rooms: usize,
}

pub(super) fn schedule(s: &RawSchedule, cx: &mut Ctx) -> ScheduleConfig {
    let starting_soon = cx
        .duration("schedule.starting_soon", &s.starting_soon)
        .and_then(|d| match chrono::Duration::from_std(d) {
            Ok(d) => Some(d),
            Err(_) => {
                if let Some(v) = &s.starting_soon {
                    cx.push("schedule.starting_soon", v, "is too long");
                }
                None
            }
        })
        .unwrap_or(DEFAULT_STARTING_SOON);
    let dedup_capacity = match &s.dedup_capacity {
        None => crate::schedule::DEFAULT_DEDUP_CAPACITY,
        Some(v) => cx.at_least("schedule.dedup_capacity", v, 1, ""),
    };
    let max_rooms_per_event = match &s.max_rooms_per_event {
        None => DEFAULT_MAX_ROOMS_PER_EVENT,
        Some(v) => cx.at_least("schedule.max_rooms_per_event", v, 1, ""),
    };
    let max_unknown_rooms = match &s.max_unknown_rooms {
        None => DEFAULT_MAX_UNKNOWN_ROOMS,
        Some(v) => usize::try_from(*v.get_ref()).unwrap_or(usize::MAX),
    };
    ScheduleConfig {
        ignore_unknown_rooms: s.ignore_unknown_rooms,
        starting_soon,
        dedup_capacity,
        max_rooms_per_event,
        max_unknown_rooms,
    }
}

// --------------------------------------------------------------- templates

/// `[templates] dir`: checked to be a folder when the templates load.
#[derive(Debug, Clone)]
pub struct TemplatesDir {
    pub path: PathBuf,
    /// Its line in the file, for messages.
    pub line: usize,
}

pub(super) fn templates_dir(t: &RawTemplates, cx: &mut Ctx) -> Option<TemplatesDir> {
    t.dir.as_ref().map(|d| TemplatesDir {
        path: cx.path(d.get_ref()),
        line: cx.line(d),
    })
}

// -------------------------------------------------------------------- lark

/// Long-connection tuning.
#[derive(Debug, Clone)]
pub struct LarkConfig {
    /// Silence (no inbound frame) that counts as a dead connection, as a
    /// multiple of the ping interval.
    pub liveness_factor: u32,
    /// Largest reassembled message accepted.
    pub max_message_bytes: usize,
    /// Most messages being reassembled at once.
    pub max_pending_messages: usize,
    /// How long a partial message waits for its remaining fragments.
    pub fragment_ttl: Duration,
    /// Timeout of each endpoint request and of the WebSocket handshake.
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

pub(super) fn lark(l: &RawLark, cx: &mut Ctx) -> LarkConfig {
    let mut lark = LarkConfig::default();
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
        lark.max_message_bytes = cx.at_least("lark.max_message_bytes", v, 1024, "");
    }
    if let Some(v) = &l.max_pending_messages {
        lark.max_pending_messages = cx.at_least("lark.max_pending_messages", v, 1, "");
    }
    if let Some(t) = cx.duration("lark.fragment_ttl", &l.fragment_ttl) {
        lark.fragment_ttl = t;
    }
    if let Some(t) = cx.duration("lark.request_timeout", &l.request_timeout) {
        lark.request_timeout = t;
    }
    lark
}

// ---------------------------------------------------------------- delivery

pub(super) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(300);
pub(super) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Re-push every panel this often (`None`: never), so a rebooted
    /// display catches up.
    pub heartbeat: Option<Duration>,
    /// How long shutdown waits for sink queues to drain.
    pub drain_timeout: Duration,
}

pub(super) fn delivery(d: &RawDelivery, cx: &mut Ctx) -> DeliveryConfig {
    DeliveryConfig {
        heartbeat: cx.duration_or_off("delivery.heartbeat", &d.heartbeat, DEFAULT_HEARTBEAT),
        drain_timeout: cx
            .duration("delivery.drain_timeout", &d.drain_timeout)
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT),
    }
}

// ------------------------------------------------------------------- store

pub(super) const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86400);

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Every commit reaches the disk before the ack (survives a power cut).
    #[default]
    Full,
    /// Survives a crash of the process only.
    Normal,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Seen ids, past bookings and delivered messages older than this are
    /// pruned.
    pub retention: Duration,
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// One SQLite file on this machine (`path`).
    Sqlite { path: PathBuf, sync: SyncMode },
    /// A PostgreSQL database (`url`).
    Postgres(PgConfig),
}

impl StoreConfig {
    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.backend {
            StoreBackend::Sqlite { path, .. } => Some(path),
            StoreBackend::Postgres(_) => None,
        }
    }

    /// What the store is, for messages (a path, or the database's
    /// host/port/name: never a password).
    pub fn describe(&self) -> String {
        match &self.backend {
            StoreBackend::Sqlite { path, .. } => path.display().to_string(),
            StoreBackend::Postgres(pg) => pg.target(),
        }
    }
}

/// A PostgreSQL store: `[store] url`, the password from `password_env` or
/// `password_file` (never in the file).
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The connection as written (a `postgres://` URL or `key=value`
    /// pairs), without a password.
    pub url: String,
    pub password: Option<SecretString>,
    /// The schema roomcast's tables live in (created if missing).
    pub schema: String,
    /// Connections kept open to the database.
    pub pool_size: usize,
    /// PEM file of the certificate authorities that sign the server's
    /// certificate (a private CA); the system's roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// `[ha] lease`: how long the leader's and each sink's lease lasts
    /// without renewal (another instance takes over after it).
    pub lease: Duration,
    /// `[store] reconnect_for`: how long a write keeps trying to reach an
    /// unreachable database before the events it holds are answered
    /// "retry" (and the instance waits for the database, taking none).
    pub reconnect_for: Duration,
}

/// Default `[ha] lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Default `[store] reconnect_for`.
pub const DEFAULT_RECONNECT_FOR: Duration = Duration::from_secs(10);

/// The most `[store] reconnect_for` may be: the platform pushes an event
/// again after 3 s without an ack, so holding acks longer only piles up
/// redeliveries.
const MAX_RECONNECT_FOR: Duration = Duration::from_secs(300);

impl PgConfig {
    /// host:port/dbname, for messages.
    pub fn target(&self) -> String {
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(c) => {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_else(|| "localhost".into());
                let port = c.get_ports().first().copied().unwrap_or(5432);
                format!(
                    "{host}:{port}/{}",
                    c.get_dbname().or(c.get_user()).unwrap_or("postgres")
                )
            }
            Err(_) => "(unparsable url)".into(),
        }
    }
}

/// Default `[store] pool_size`: the writer, and readers beside it.
pub(super) const DEFAULT_PG_POOL: u64 = 4;

pub(super) fn store(st: &RawStore, ha: &RawHa, cx: &mut Ctx) -> Option<StoreConfig> {
    let store = store_only(st, ha, cx);
    if let Some(l) = &ha.lease
        && !matches!(
            store.as_ref().map(|s| &s.backend),
            Some(StoreBackend::Postgres(_))
        )
    {
        cx.push(
            "ha.lease",
            l,
            "[ha] is for several instances on one PostgreSQL store (`[store] url`)",
        );
    }
    store
}

fn store_only(st: &RawStore, ha: &RawHa, cx: &mut Ctx) -> Option<StoreConfig> {
    let retention = || st.retention.as_ref();
    let backend = match (&st.path, &st.url) {
        (Some(_), Some(u)) => {
            cx.push(
                "store.url",
                u,
                "set `path` (SQLite) or `url` (PostgreSQL), not both",
            );
            return None;
        }
        (Some(p), None) => {
            for (key, v) in [
                ("store.password_env", &st.password_env),
                ("store.password_file", &st.password_file),
                ("store.schema", &st.schema),
                ("store.ca_file", &st.ca_file),
                ("store.reconnect_for", &st.reconnect_for),
            ] {
                if let Some(v) = v {
                    cx.push(
                        key,
                        v,
                        "applies to a PostgreSQL store (`url`), not to `path`",
                    );
                }
            }
            if let Some(v) = &st.pool_size {
                cx.push(
                    "store.pool_size",
                    v,
                    "applies to a PostgreSQL store (`url`), not to `path`",
                );
            }
            StoreBackend::Sqlite {
                path: cx.path(p.get_ref()),
                sync: st.sync.as_ref().map(|s| *s.get_ref()).unwrap_or_default(),
            }
        }
        (None, Some(u)) => StoreBackend::Postgres(postgres(st, ha, u, cx)?),
        (None, None) => {
            if let Some(r) = retention() {
                cx.push("store.path", r, "[store] needs `path` (or `url`)");
            } else if let Some(s) = &st.sync {
                cx.push("store.path", s, "[store] needs `path`");
            }
            return None;
        }
    };
    Some(StoreConfig {
        backend,
        retention: cx
            .duration("store.retention", &st.retention)
            .unwrap_or(DEFAULT_RETENTION),
    })
}

fn postgres(st: &RawStore, ha: &RawHa, u: &Spanned<String>, cx: &mut Ctx) -> Option<PgConfig> {
    if let Some(s) = &st.sync {
        cx.push(
            "store.sync",
            s,
            "applies to SQLite (`path`); PostgreSQL's commits are as durable as the server's `synchronous_commit`",
        );
    }
    let parsed = match u.get_ref().parse::<tokio_postgres::Config>() {
        Ok(c) => c,
        Err(e) => {
            cx.push(
                "store.url",
                u,
                format!("not a PostgreSQL connection string (`postgres://user@host:5432/db`): {e}"),
            );
            return None;
        }
    };
    if parsed.get_password().is_some() {
        cx.push(
            "store.url",
            u,
            "holds a password; give it in `password_env` or `password_file` instead (the config file is no place for secrets)",
        );
        return None;
    }
    if parsed.get_user().is_none() {
        cx.push("store.url", u, "names no user (`postgres://USER@host/db`)");
        return None;
    }
    let password = cx.secret_from(
        "store.password",
        st.password_env.as_ref(),
        st.password_file.as_ref(),
    );
    let schema = match &st.schema {
        Some(s) => {
            let v = s.get_ref();
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                cx.push(
                    "store.schema",
                    s,
                    "must be a plain lowercase identifier (letters, digits, `_`; at most 63)",
                );
                return None;
            }
            v.clone()
        }
        None => "roomcast".into(),
    };
    let pool_size = match &st.pool_size {
        Some(v) => cx.at_least("store.pool_size", v, 1, ""),
        None => DEFAULT_PG_POOL as usize,
    };
    let lease = match cx.duration("ha.lease", &ha.lease) {
        Some(d) if d < Duration::from_secs(3) => {
            if let Some(l) = &ha.lease {
                cx.push(
                    "ha.lease",
                    l,
                    "must be at least 3s (leases are renewed about every second)",
                );
            }
            DEFAULT_LEASE
        }
        Some(d) => d,
        None => DEFAULT_LEASE,
    };
    let reconnect_for = match cx.duration("store.reconnect_for", &st.reconnect_for) {
        Some(d) if d > MAX_RECONNECT_FOR => {
            if let Some(v) = &st.reconnect_for {
                cx.push("store.reconnect_for", v, "must be at most 5m");
            }
            DEFAULT_RECONNECT_FOR
        }
        Some(d) => d,
        None => DEFAULT_RECONNECT_FOR,
    };
    Some(PgConfig {
        lease,
        reconnect_for,
        url: u.get_ref().clone(),
        password,
        schema,
        pool_size,
        ca_file: st.ca_file.as_ref().map(|f| cx.path(f.get_ref())),
    })
}

// -------------------------------------------------------------------- http

pub(super) const DEFAULT_WEBHOOK_PATH: &str = "/webhook/event";
pub(super) const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
pub(super) const DEFAULT_MAX_PUSH_AGE: Duration = Duration::from_secs(300);

/// The HTTP server: where it listens, the webhook intake and its secrets,
/// the rooms' pull tokens.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Accept webhook pushes (on with `source.kind = "webhook"`).
    pub webhook: bool,
    pub webhook_path: String,
    pub max_body_bytes: usize,
    /// A signed push whose timestamp is further than this from our clock
    /// is refused (a captured push cannot be replayed later).
    pub max_push_age: Duration,
    /// From `[platform]`: the token events must carry, and the Encrypt Key
    /// of encrypted pushes.
    pub verification_token: Option<SecretString>,
    pub encrypt_key: Option<SecretString>,
    /// From `[[rooms]]`: room id → the bearer token pulling it needs.
    pub tokens: HashMap<String, SecretString>,
}

/// `ADDRESS:PORT` as people write it: `127.0.0.1:8080`, `[::1]:8080`,
/// `:8080` (every interface) or `localhost:8080` (a host name, looked up
/// once).
fn listen_addr(a: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = a.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hint = "write it as ADDRESS:PORT, e.g. \"127.0.0.1:8080\", \"0.0.0.0:8080\" or \":8080\"";
    if let Some(port) = a.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
            .map_err(|_| format!("`{a}`: `{port}` is not a port; {hint}"));
    }
    match std::net::ToSocketAddrs::to_socket_addrs(a) {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("`{a}` names no address; {hint}")),
        Err(e) => Err(format!("`{a}` is not ADDRESS:PORT ({e}); {hint}")),
    }
}

pub(super) fn http(
    h: &RawHttp,
    src: &Spanned<RawSource>,
    kind: Option<SourceKind>,
    platform: Option<&PlatformConfig>,
    rooms: &[RoomConfig],
    cx: &mut Ctx,
) -> Option<HttpConfig> {
    let Some(l) = &h.listen else {
        if kind == Some(SourceKind::Webhook) {
            let at = source_line(src);
            cx.push(
                "http.listen",
                &at,
                "source `webhook` needs [http] listen = \"ADDRESS:PORT\"",
            );
        }
        return None;
    };
    let listen = cx.parsed("http.listen", l, listen_addr)?;
    let webhook_path = match &h.webhook_path {
        Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
        Some(p) => {
            cx.push("http.webhook_path", p, "must start with /");
            DEFAULT_WEBHOOK_PATH.into()
        }
        None => DEFAULT_WEBHOOK_PATH.into(),
    };
    let webhook = h.webhook.unwrap_or(kind == Some(SourceKind::Webhook));
    let verification_token = platform.and_then(|p| p.verification_token.clone());
    let encrypt_key = platform.and_then(|p| p.encrypt_key.clone());
    let open_door = h
        .allow_unauthenticated
        .as_ref()
        .is_some_and(|v| *v.get_ref());
    if webhook && verification_token.is_none() && encrypt_key.is_none() && !open_door {
        cx.push(
            "http.webhook",
            l,
            "the webhook would accept pushes from anyone who can reach this port: set [platform] verification_token_env and/or encrypt_key_env (the console's Verification Token and Encrypt Key), or [http] allow_unauthenticated = true to accept that on purpose",
        );
    }
    let max_push_age = cx
        .duration("http.max_push_age", &h.max_push_age)
        .unwrap_or(DEFAULT_MAX_PUSH_AGE);
    Some(HttpConfig {
        listen,
        webhook,
        max_push_age,
        webhook_path,
        max_body_bytes: h
            .max_body_bytes
            .as_ref()
            .map_or(DEFAULT_MAX_BODY_BYTES, |v| {
                usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)
            }),
        verification_token,
        encrypt_key,
        tokens: rooms
            .iter()
            .filter_map(|r| r.token.clone().map(|t| (r.id.to_string(), t)))
            .collect(),
    })
}
