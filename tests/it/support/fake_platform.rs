//! A fake of the platform's REST APIs a room display needs, on loopback:
//! the tenant token (with expiry, and invalidation on demand), room
//! free/busy with recurring bookings expanded over the asked window and
//! exceptions in place of their occurrences, titles, the room list in pages
//! with levels, rooms the app may not read, private bookings, and 504s and
//! frequency limits on demand. It checks what the platform checks: the
//! bearer token, at most 20 rooms a call, RFC 3339 times.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Json, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

pub const APP_ID: &str = "cli_a1b2c3d4e5f60718";
pub const APP_SECRET: &str = "s3cr3t-app-secret-value";

/// How a booking repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Once,
    Daily,
    Weekly,
}

/// A span of time.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// A booking on the fake calendar.
#[derive(Debug, Clone)]
pub struct FakeBooking {
    pub uid: String,
    pub rooms: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub repeat: Repeat,
    /// `(name, open_id)`; `None`: a private booking (no organizer info).
    pub organizer: Option<(String, String)>,
    /// Occurrence's original start → its new span, or `None` (cancelled).
    pub exceptions: BTreeMap<DateTime<Utc>, Option<Span>>,
    pub title: Option<String>,
}

impl FakeBooking {
    pub fn new(uid: &str, room: &str, start: DateTime<Utc>, mins: i64, repeat: Repeat) -> Self {
        FakeBooking {
            uid: uid.into(),
            rooms: vec![room.into()],
            start,
            end: start + chrono::Duration::minutes(mins),
            repeat,
            organizer: Some(("Ann Lee".into(), "ou_ann".into())),
            exceptions: BTreeMap::new(),
            title: None,
        }
    }
}

/// A scripted answer to the next freebusy call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// HTTP status with no platform code (a gateway's 504).
    Status(u16),
    /// HTTP 429 with code 99991400 and `x-ogw-ratelimit-reset`.
    RateLimited(u64),
}

#[derive(Default)]
pub struct PlatformState {
    pub bookings: Vec<FakeBooking>,
    /// Room id → (name, level id, capacity, in service).
    pub rooms: Vec<(String, String, String, u32, bool)>,
    /// Level id → (name, parent).
    pub levels: HashMap<String, (String, String)>,
    /// Rooms whose schedule the app may not read.
    pub unreadable: Vec<String>,
    /// Freebusy answers to give before the real ones.
    pub script: VecDeque<Answer>,
    /// Every freebusy answer fails this way while set.
    pub outage: Option<Answer>,
    /// Tokens issued: value → when it expires.
    pub tokens: HashMap<String, Instant>,
    pub token_life: u64,
    /// Calls by path.
    pub calls: BTreeMap<String, usize>,
    /// Each freebusy call's room count.
    pub freebusy_rooms: Vec<usize>,
    /// Every booking a title was asked for.
    pub titles_asked: Vec<String>,
    /// APIs (by the name `calls` counts) the app lacks the scope for.
    pub denied: Vec<String>,
    /// Freebusy answers by query, while nothing changes (the bench asks
    /// the same windows again and again).
    cache: HashMap<String, String>,
    /// Problems the fake refused (a client bug if any).
    pub refused: Vec<String>,
}

#[derive(Clone)]
pub struct FakePlatform {
    pub state: Arc<Mutex<PlatformState>>,
    changed: Arc<Notify>,
    pub base: String,
}

impl FakePlatform {
    /// A fake on its own port.
    pub async fn start() -> FakePlatform {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakePlatform::new(format!("http://{}", listener.local_addr().unwrap()));
        let app = fake.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// A fake served by someone else at `base` (the fake gateway, which
    /// shares the platform's domain): mount [`FakePlatform::router`] there.
    pub fn new(base: String) -> FakePlatform {
        FakePlatform {
            state: Arc::new(Mutex::new(PlatformState {
                token_life: 7200,
                ..PlatformState::default()
            })),
            changed: Arc::default(),
            base,
        }
    }

    /// Its routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/open-apis/auth/v3/tenant_access_token/internal",
                post(token),
            )
            .route("/open-apis/meeting_room/freebusy/batch_get", get(freebusy))
            .route("/open-apis/meeting_room/summary/batch_get", post(summary))
            .route("/open-apis/vc/v1/rooms", get(rooms))
            .route("/open-apis/vc/v1/room_levels/mget", post(levels))
            .with_state(self.clone())
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut PlatformState) -> T) -> T {
        let mut st = self.state.lock().unwrap();
        st.cache.clear();
        let r = f(&mut st);
        drop(st);
        self.changed.notify_waiters();
        r
    }

    pub fn calls(&self, path: &str) -> usize {
        let st = self.state.lock().unwrap();
        st.calls.get(path).copied().unwrap_or(0)
    }

    /// Wait until `cond` holds (the fake's state changes on every call).
    pub async fn wait(&self, what: &str, cond: impl Fn(&PlatformState) -> bool) {
        let fut = async {
            loop {
                let n = self.changed.notified();
                if cond(&self.state.lock().unwrap()) {
                    return;
                }
                n.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(48 * 3600), fut)
            .await
            .is_err()
        {
            panic!("fake platform: timed out waiting for {what}");
        }
    }

    /// The `[platform]` table for it, and the sync settings.
    pub fn platform_toml(&self) -> String {
        format!(
            "[platform]\napp_id = \"{APP_ID}\"\napp_secret_env = \"APP_SECRET\"\ndomain = \"{}\"\nverification_token_env = \"VT\"\n",
            self.base
        )
    }
}

fn count(f: &FakePlatform, path: &str) {
    *f.state
        .lock()
        .unwrap()
        .calls
        .entry(path.into())
        .or_default() += 1;
    f.changed.notify_waiters();
}

/// The platform's answer when the app lacks the API's scope.
fn denied(f: &FakePlatform, path: &str) -> Option<Response> {
    f.state
        .lock()
        .unwrap()
        .denied
        .iter()
        .any(|d| d == path)
        .then(|| {
            code(
                StatusCode::BAD_REQUEST,
                99991672,
                "Access denied. One of the following scopes is required",
            )
        })
}

fn code(status: StatusCode, code: i64, msg: &str) -> Response {
    (status, Json(json!({"code": code, "msg": msg}))).into_response()
}

/// `Err` with the platform's answer when the bearer token is missing or
/// not valid now.
#[allow(clippy::result_large_err)]
fn authorized(f: &FakePlatform, headers: &HeaderMap) -> Result<(), Response> {
    let Some(t) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(code(
            StatusCode::BAD_REQUEST,
            99991661,
            "Missing access token for authorization",
        ));
    };
    let st = f.state.lock().unwrap();
    match st.tokens.get(t) {
        Some(exp) if *exp > Instant::now() => Ok(()),
        _ => Err(code(
            StatusCode::BAD_REQUEST,
            99991663,
            "Invalid access token for authorization",
        )),
    }
}

async fn token(State(f): State<FakePlatform>, Json(body): Json<Value>) -> Response {
    count(&f, "token");
    if body["app_id"] != APP_ID || body["app_secret"] != APP_SECRET {
        return code(StatusCode::OK, 10014, "app secret invalid");
    }
    let mut st = f.state.lock().unwrap();
    let value = format!("t-{}", st.tokens.len() + 1);
    let life = st.token_life;
    st.tokens
        .insert(value.clone(), Instant::now() + Duration::from_secs(life));
    Json(json!({"code": 0, "msg": "ok", "tenant_access_token": value, "expire": life}))
        .into_response()
}

/// Query pairs, keeping repeated keys.
fn pairs(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Every instance of `b` overlapping `[from, to)`: occurrences of a series
/// (original_time 0), exceptions in place of theirs (original_time: the
/// occurrence's original start in seconds).
fn instances(
    b: &FakeBooking,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(i64, DateTime<Utc>, DateTime<Utc>)> {
    let step = match b.repeat {
        Repeat::Once => None,
        Repeat::Daily => Some(chrono::Duration::days(1)),
        Repeat::Weekly => Some(chrono::Duration::weeks(1)),
    };
    let len = b.end - b.start;
    let mut out = Vec::new();
    let mut start = b.start;
    loop {
        if start >= to {
            break;
        }
        let span = match b.exceptions.get(&start) {
            None => Some((0, start, start + len)),
            Some(None) => None,
            Some(Some((s, e))) => Some((start.timestamp(), *s, *e)),
        };
        if let Some((ot, s, e)) = span
            && s < to
            && e > from
        {
            out.push((ot, s, e));
        }
        match step {
            Some(d) => start += d,
            None => break,
        }
    }
    // A moved exception may land in the window from outside it.
    for (orig, moved) in &b.exceptions {
        if let Some((s, e)) = moved
            && (*orig < from || *orig >= to)
            && *s < to
            && *e > from
        {
            out.push((orig.timestamp(), *s, *e));
        }
    }
    out
}

async fn freebusy(
    State(f): State<FakePlatform>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    count(&f, "freebusy");
    if let Err(r) = authorized(&f, &headers) {
        return r;
    }
    if let Some(r) = denied(&f, "freebusy") {
        return r;
    }
    let raw = q.unwrap_or_default();
    let q = pairs(&raw);
    let rooms: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "room_ids")
        .map(|(_, v)| v.clone())
        .collect();
    let time = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (time("time_min"), time("time_max")) else {
        f.state
            .lock()
            .unwrap()
            .refused
            .push("freebusy: times not RFC 3339".into());
        return code(
            StatusCode::OK,
            100003,
            "time format must follow RFC3339 standard",
        );
    };
    let mut st = f.state.lock().unwrap();
    st.freebusy_rooms.push(rooms.len());
    if rooms.is_empty() || rooms.len() > 20 {
        st.refused.push(format!("freebusy: {} rooms", rooms.len()));
        return code(StatusCode::OK, 100005, "room id invalid");
    }
    let scripted = st.script.pop_front().or_else(|| st.outage.clone());
    match scripted {
        Some(Answer::Status(s)) => {
            return (StatusCode::from_u16(s).unwrap(), "upstream timed out").into_response();
        }
        Some(Answer::RateLimited(reset)) => {
            let mut r = code(
                StatusCode::TOO_MANY_REQUESTS,
                99991400,
                "request trigger frequency limit",
            );
            r.headers_mut()
                .insert("x-ogw-ratelimit-reset", reset.to_string().parse().unwrap());
            return r;
        }
        None => {}
    }
    if let Some(body) = st.cache.get(&raw) {
        return ([("content-type", "application/json")], body.clone()).into_response();
    }
    let mut free_busy = serde_json::Map::new();
    let mut errors = Vec::new();
    for room in &rooms {
        if st.unreadable.contains(room) {
            errors.push(room.clone());
            continue;
        }
        let mut list = Vec::new();
        for b in st.bookings.iter().filter(|b| b.rooms.contains(room)) {
            for (ot, s, e) in instances(b, from, to) {
                let mut item = json!({
                    "uid": b.uid,
                    "original_time": ot,
                    "start_time": s.with_timezone(&chrono_tz::Asia::Shanghai).to_rfc3339(),
                    "end_time": e.with_timezone(&chrono_tz::Asia::Shanghai).to_rfc3339(),
                });
                if let Some((name, id)) = &b.organizer {
                    item["organizer_info"] = json!({"name": name, "open_id": id});
                }
                list.push(item);
            }
        }
        free_busy.insert(room.clone(), Value::Array(list));
    }
    let body = json!({"code": 0, "msg": "success", "data": {
        "time_min": from.to_rfc3339(), "time_max": to.to_rfc3339(),
        "free_busy": free_busy, "error_room_ids": errors,
    }})
    .to_string();
    st.cache.insert(raw, body.clone());
    ([("content-type", "application/json")], body).into_response()
}

async fn summary(
    State(f): State<FakePlatform>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    count(&f, "summary");
    if let Err(r) = authorized(&f, &headers) {
        return r;
    }
    if let Some(r) = denied(&f, "summary") {
        return r;
    }
    let mut st = f.state.lock().unwrap();
    let (mut infos, mut errors) = (Vec::new(), Vec::new());
    for u in body["EventUids"].as_array().cloned().unwrap_or_default() {
        let uid = u["uid"].as_str().unwrap_or_default();
        st.titles_asked.push(uid.to_string());
        match st.bookings.iter().find(|b| b.uid == uid).and_then(|b| b.title.clone()) {
            Some(t) => infos.push(json!({"uid": uid, "original_time": u["original_time"], "summary": t})),
            None => errors.push(json!({"uid": uid, "original_time": u["original_time"], "error_msg": "no permission"})),
        }
    }
    Json(json!({"code": 0, "msg": "success", "data": {"EventInfos": infos, "ErrorEventUids": errors}})).into_response()
}

/// The room list, two rooms a page.
async fn rooms(
    State(f): State<FakePlatform>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    count(&f, "rooms");
    if let Err(r) = authorized(&f, &headers) {
        return r;
    }
    if let Some(r) = denied(&f, "rooms") {
        return r;
    }
    let q = pairs(&q.unwrap_or_default());
    let page: usize = q
        .iter()
        .find(|(k, _)| k == "page_token")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let st = f.state.lock().unwrap();
    let all: Vec<Value> = st
        .rooms
        .iter()
        .map(|(id, name, level, cap, ok)| {
            let parent = st.levels.get(level).map(|(_, p)| p.clone()).unwrap_or_default();
            json!({
                "room_id": id, "name": name, "capacity": cap, "room_level_id": level,
                "path": ["0", parent, level],
                "room_status": if *ok { json!({"status": true}) } else {
                    json!({"status": false, "disable_end_time": "0", "disable_reason": "renovation"})
                },
            })
        })
        .collect();
    let chunk: Vec<Value> = all.iter().skip(page * 2).take(2).cloned().collect();
    let more = all.len() > (page + 1) * 2;
    Json(json!({"code": 0, "msg": "success", "data": {
        "rooms": chunk, "has_more": more, "page_token": if more { (page + 1).to_string() } else { String::new() },
    }}))
    .into_response()
}

async fn levels(
    State(f): State<FakePlatform>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    count(&f, "levels");
    if let Err(r) = authorized(&f, &headers) {
        return r;
    }
    if let Some(r) = denied(&f, "levels") {
        return r;
    }
    let st = f.state.lock().unwrap();
    let items: Vec<Value> = body["level_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|id| {
            let id = id.as_str()?;
            let (name, parent) = st.levels.get(id)?;
            Some(json!({"room_level_id": id, "name": name, "parent_id": parent, "path": ["0", parent]}))
        })
        .collect();
    Json(json!({"code": 0, "msg": "success", "data": {"items": items}})).into_response()
}
