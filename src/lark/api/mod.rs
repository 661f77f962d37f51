//! The platform's REST APIs a room display needs (`../shared/spec/
//! platform-apis.md`): the tenant token, rooms' busy instances, titles,
//! the room directory. It knows nothing of schedules: it fetches and
//! hands back typed answers.
//!
//! Every call: a timeout; the tenant token cached and refreshed ahead of
//! expiry (and once on the token-invalid codes); JSON `code` ≠ 0 is a
//! failure; 5xx, 504 and frequency limits retried with the project's one
//! backoff policy (honouring `x-ogw-ratelimit-reset`); calls paced under
//! each API's rate limit. The app secret is never logged: it is only ever
//! in the token request's body.

mod types;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use crate::config::PlatformConfig;
use crate::metrics::ApiStats;
use crate::retry::{Limiter, Policy, RateLimit, jitter, retryable_status};

pub use types::{BusyInstance, FreeBusy, Level, Room, RoomStatus, Summaries, Summary};

/// At most this many rooms in one freebusy call (the reference page).
pub const FREEBUSY_MAX_ROOMS: usize = 20;
/// At most this many instances in one summary call.
pub const SUMMARY_MAX: usize = 50;

/// Attempts per call (the first and the retries) before it fails.
const ATTEMPTS: u32 = 4;
/// Backoff between attempts of one call.
const BACKOFF: Policy = Policy::Exponential {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};
/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// The token-invalid codes: refresh the token once and retry.
const TOKEN_INVALID: [i64; 3] = [99991663, 99991664, 99991671];
/// "request trigger frequency limit".
const FREQUENCY_LIMIT: i64 = 99991400;

/// One of the APIs, for pacing, counters, messages and scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Token,
    FreeBusy,
    Summary,
    Rooms,
    RoomLevels,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Token,
        Endpoint::FreeBusy,
        Endpoint::Summary,
        Endpoint::Rooms,
        Endpoint::RoomLevels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "tenant_access_token",
            Endpoint::FreeBusy => "meeting_room/freebusy",
            Endpoint::Summary => "meeting_room/summary",
            Endpoint::Rooms => "vc/rooms",
            Endpoint::RoomLevels => "vc/room_levels",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Token => "/open-apis/auth/v3/tenant_access_token/internal",
            Endpoint::FreeBusy => "/open-apis/meeting_room/freebusy/batch_get",
            Endpoint::Summary => "/open-apis/meeting_room/summary/batch_get",
            Endpoint::Rooms => "/open-apis/vc/v1/rooms",
            Endpoint::RoomLevels => "/open-apis/vc/v1/room_levels/mget",
        }
    }

    /// The scope the operator grants for it (empty: none).
    pub fn scope(self) -> &'static str {
        match self {
            Endpoint::Token => "",
            Endpoint::FreeBusy => "calendar:room:readonly",
            Endpoint::Summary => "calendar:room",
            Endpoint::Rooms | Endpoint::RoomLevels => "vc:room:readonly",
        }
    }

    /// Pacing: the vc APIs' documented 50/s and 1,000/min; the same
    /// standard tier for the older meeting-room APIs, whose pages name none,
    /// and for the token.
    fn limits(self) -> [RateLimit; 2] {
        [
            RateLimit {
                count: 50,
                period: Duration::from_secs(1),
            },
            RateLimit {
                count: 1000,
                period: Duration::from_secs(60),
            },
        ]
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with a code other than 0.
    #[error("{}: code {code}: {msg}", api.name())]
    Code {
        api: Endpoint,
        code: i64,
        msg: String,
        /// HTTP status of the answer.
        status: u16,
    },
    /// An HTTP error status without a platform code.
    #[error("{}: HTTP {status}", api.name())]
    Status { api: Endpoint, status: u16 },
    /// The request could not be made or timed out.
    #[error("{}: request failed", api.name())]
    Transport {
        api: Endpoint,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what the API documents.
    #[error("{}: unexpected answer", api.name())]
    Decode {
        api: Endpoint,
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    /// The platform's code, or the HTTP status, for counters.
    pub fn code(&self) -> String {
        match self {
            ApiError::Code { code, .. } => code.to_string(),
            ApiError::Status { status, .. } => format!("http_{status}"),
            ApiError::Transport { source, .. } if source.is_timeout() => "timeout".into(),
            ApiError::Transport { .. } => "transport".into(),
            ApiError::Decode { .. } => "decode".into(),
        }
    }

    /// Worth another attempt: 5xx, timeouts, frequency limits.
    fn retryable(&self) -> bool {
        match self {
            ApiError::Code { code, status, .. } => {
                *code == FREQUENCY_LIMIT || retryable_status(*status)
            }
            ApiError::Status { status, .. } => retryable_status(*status),
            ApiError::Transport { .. } => true,
            ApiError::Decode { .. } => false,
        }
    }

    fn token_invalid(&self) -> bool {
        matches!(self, ApiError::Code { code, .. } if TOKEN_INVALID.contains(code))
    }

    /// The scope to grant when this says the app lacks permission.
    pub fn missing_scope(&self) -> Option<&'static str> {
        match self {
            // 99991672: the app lacks the API's scope; 121005: no
            // permission for the room (vc); 403 without a code.
            ApiError::Code {
                api,
                code: 99991672 | 99991679 | 121005,
                ..
            } => Some(api.scope()),
            ApiError::Status { api, status: 403 } => Some(api.scope()),
            _ => None,
        }
    }
}

struct Token {
    value: SecretString,
    renew_at: Instant,
}

/// The platform's REST APIs.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    app_id: String,
    app_secret: SecretString,
    token: tokio::sync::Mutex<Option<Token>>,
    pacing: Mutex<HashMap<Endpoint, Limiter>>,
    stats: Arc<ApiStats>,
}

/// The wire shape every answer shares; `data` decoded straight into the
/// API's type.
#[derive(serde::Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Envelope<T> {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default = "none")]
    data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// The token answer (flat, not under `data`).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    tenant_access_token: String,
    #[serde(default)]
    expire: u64,
}

/// How a request is sent.
enum Body<'a> {
    Query(&'a [(&'a str, String)]),
    Json(Value),
}

impl Api {
    /// The client for `[platform]`'s app; `None` without an app secret.
    pub fn new(
        platform: &PlatformConfig,
        timeout: Duration,
        stats: Arc<ApiStats>,
    ) -> Result<Option<Api>, reqwest::Error> {
        let Some(app_secret) = platform.app_secret.clone() else {
            return Ok(None);
        };
        crate::tls::init();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("roomcast/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Api {
            http,
            base: platform.base_url.clone(),
            app_id: platform.app_id.clone(),
            app_secret,
            token: tokio::sync::Mutex::new(None),
            pacing: Mutex::new(HashMap::new()),
            stats,
        }))
    }

    /// Wait until `api` may be called again, then count the call.
    async fn pace(&self, api: Endpoint) {
        loop {
            let now = Instant::now();
            let at = {
                let mut p = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
                let l = p.entry(api).or_insert_with(|| Limiter::new(&api.limits()));
                let at = l.next_free(now);
                if at <= now {
                    l.record(now);
                }
                at
            };
            if at <= now {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }

    /// A valid tenant token (cached; renewed ahead of expiry, or when
    /// `stale` is the one the platform just refused).
    async fn token(&self, refresh: bool) -> Result<SecretString, ApiError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && !refresh
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let body = json!({"app_id": self.app_id, "app_secret": self.app_secret.expose_secret()});
        let (status, bytes, _) = self.send(Endpoint::Token, None, Body::Json(body)).await?;
        let api = Endpoint::Token;
        let a: TokenAnswer =
            serde_json::from_slice(&bytes).map_err(|source| ApiError::Decode { api, source })?;
        if a.code != 0 || a.tenant_access_token.is_empty() {
            return Err(if a.code == 0 {
                ApiError::Status { api, status }
            } else {
                ApiError::Code {
                    api,
                    code: a.code,
                    msg: a.msg,
                    status,
                }
            });
        }
        let life = Duration::from_secs(a.expire.max(60));
        let value = SecretString::from(a.tenant_access_token);
        *slot = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + life.saturating_sub(TOKEN_MARGIN).max(life / 2),
        });
        self.stats
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(value)
    }

    /// One HTTP exchange, paced: status, body, and the suggested wait of a
    /// frequency-limited answer.
    async fn send(
        &self,
        api: Endpoint,
        token: Option<&SecretString>,
        body: Body<'_>,
    ) -> Result<(u16, axum::body::Bytes, Option<Duration>), ApiError> {
        self.pace(api).await;
        let mut url = self.base.clone();
        url.set_path(api.path());
        let rb = match body {
            Body::Query(q) => {
                url.query_pairs_mut()
                    .extend_pairs(q.iter().map(|(k, v)| (*k, v.as_str())));
                self.http.get(url)
            }
            Body::Json(v) => self.http.post(url).json(&v),
        };
        let rb = match token {
            Some(t) => rb.bearer_auth(t.expose_secret()),
            None => rb,
        };
        let resp = rb.send().await.map_err(|source| ApiError::Transport {
            api,
            source: source.without_url(),
        })?;
        let status = resp.status().as_u16();
        let reset = resp
            .headers()
            .get("x-ogw-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|source| ApiError::Transport {
            api,
            source: source.without_url(),
        })?;
        Ok((status, bytes, reset))
    }

    /// One attempt of an authenticated call: `data`, or why not. The
    /// answer is decoded on the blocking pool: a week of a thousand rooms
    /// is megabytes of JSON, and the core's thread has events to apply.
    async fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        api: Endpoint,
        body: &Body<'_>,
    ) -> Result<T, (ApiError, Option<Duration>)> {
        let token = self.token(false).await.map_err(|e| (e, None))?;
        let body = match body {
            Body::Query(q) => Body::Query(q),
            Body::Json(v) => Body::Json(v.clone()),
        };
        let (status, bytes, reset) = self
            .send(api, Some(&token), body)
            .await
            .map_err(|e| (e, None))?;
        let (parsed, head) = tokio::task::spawn_blocking(move || {
            let parsed = serde_json::from_slice::<Envelope<T>>(&bytes);
            // A failure whose `data` has another shape still has a code.
            let head = parsed.as_ref().err().and_then(|_| {
                serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(&bytes)
                    .ok()
                    .filter(|e| e.code != 0)
                    .map(|e| (e.code, e.msg))
            });
            (parsed, head)
        })
        .await
        .unwrap_or_else(|e| (Err(serde::de::Error::custom(e)), None));
        if let Some((code, msg)) = head {
            return Err((
                ApiError::Code {
                    api,
                    code,
                    msg,
                    status,
                },
                reset,
            ));
        }
        match parsed {
            Ok(Envelope {
                code: 0,
                data: Some(d),
                ..
            }) if status < 300 => Ok(d),
            Ok(e) if e.code != 0 => Err((
                ApiError::Code {
                    api,
                    code: e.code,
                    msg: e.msg,
                    status,
                },
                reset,
            )),
            Ok(_) if status >= 300 => Err((ApiError::Status { api, status }, reset)),
            Ok(_) => Err((
                ApiError::Decode {
                    api,
                    source: serde::de::Error::custom("the answer has no data"),
                },
                None,
            )),
            Err(_) if status >= 300 => Err((ApiError::Status { api, status }, reset)),
            Err(source) => Err((ApiError::Decode { api, source }, None)),
        }
    }

    /// An authenticated call with the retry rules; `data` decoded as `T`.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        api: Endpoint,
        body: Body<'_>,
    ) -> Result<T, ApiError> {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            self.stats.called(api.name());
            match self.attempt(api, &body).await {
                Ok(d) => return Ok(d),
                Err((e, _)) if e.token_invalid() && !refreshed => {
                    // The platform refused our token: renew it once.
                    refreshed = true;
                    let _ = self.token(true).await?;
                }
                Err((e, wait)) if e.retryable() && attempt + 1 < ATTEMPTS => {
                    self.stats.failed(api.name(), &e.code());
                    let delay = BACKOFF
                        .delay(attempt, jitter())
                        .max(wait.unwrap_or_default());
                    tracing::debug!(api = api.name(), code = %e.code(), retry_in_ms = delay.as_millis() as u64, "platform call failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                Err((e, _)) => {
                    self.stats.failed(api.name(), &e.code());
                    return Err(e);
                }
            }
        }
    }

    /// Busy instances of up to [`FREEBUSY_MAX_ROOMS`] rooms in
    /// `[from, to)`, recurring bookings expanded.
    pub async fn freebusy(
        &self,
        rooms: &[&str],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<FreeBusy, ApiError> {
        let mut q: Vec<(&str, String)> =
            rooms.iter().map(|r| ("room_ids", r.to_string())).collect();
        q.push(("time_min", from.to_rfc3339_opts(SecondsFormat::Secs, true)));
        q.push(("time_max", to.to_rfc3339_opts(SecondsFormat::Secs, true)));
        self.call(Endpoint::FreeBusy, Body::Query(&q)).await
    }

    /// Titles of up to [`SUMMARY_MAX`] instances `(uid, original_time)`.
    pub async fn summaries(&self, keys: &[(&str, i64)]) -> Result<Summaries, ApiError> {
        let uids: Vec<Value> = keys
            .iter()
            .map(|(uid, ot)| json!({"uid": uid, "original_time": ot}))
            .collect();
        self.call(Endpoint::Summary, Body::Json(json!({"EventUids": uids})))
            .await
    }

    /// Every room the app can see (under `level`, if given), all pages.
    pub async fn rooms(&self, level: Option<&str>) -> Result<Vec<Room>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            rooms: Vec<Room>,
            #[serde(default)]
            page_token: Option<String>,
            #[serde(default)]
            has_more: bool,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, String)> = vec![("page_size", "100".into())];
            if let Some(l) = level {
                q.push(("room_level_id", l.to_string()));
            }
            if let Some(t) = &token {
                q.push(("page_token", t.clone()));
            }
            let page: Page = self.call(Endpoint::Rooms, Body::Query(&q)).await?;
            out.extend(page.rooms);
            match page.page_token.filter(|t| page.has_more && !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Levels (buildings, floors) by id.
    pub async fn levels(&self, ids: &[String]) -> Result<Vec<Level>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Items {
            #[serde(default)]
            items: Vec<Level>,
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let items: Items = self
            .call(Endpoint::RoomLevels, Body::Json(json!({"level_ids": ids})))
            .await?;
        Ok(items.items)
    }
}
