//! The HTTP face (axum): webhook intake, pull endpoints for displays that
//! poll, the live room page (HTML + server-sent events), health, readiness
//! and metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::TimeSource;
use crate::config::{HttpConfig, board_token_key};
use crate::lark::webhook::{self, Intake, SignatureHeaders, WebhookError};
use crate::metrics::{ApiStats, LarkStats, Metrics, SinksStats, SyncStats};
use crate::model::RoomId;
use crate::render::names;
use crate::source::{Ack, AckTo, Inbound, Origin};
use crate::store::StoreHandle;

pub(crate) mod live;

pub(crate) use live::{Live, RoomSignals};

/// What `/readyz` and `/metrics` read.
#[derive(Clone)]
pub(crate) struct Health {
    pub metrics: Arc<Metrics>,
    pub sinks: Arc<SinksStats>,
    /// The long connection's counters (when that is a source).
    pub lark: Option<Arc<LarkStats>>,
    pub store: Option<StoreHandle>,
    /// The room APIs' side, when `[sync]` is on.
    pub platform: Option<PlatformHealth>,
}

/// What `/readyz` and `/metrics` read of the reconciliation.
#[derive(Clone)]
pub(crate) struct PlatformHealth {
    pub api: Arc<ApiStats>,
    pub sync: Arc<SyncStats>,
    pub stale_after: Duration,
    /// The configured rooms (each is stale until fetched once).
    pub rooms: Vec<String>,
    pub clock: TimeSource,
}

/// A question for the core, which owns the schedule.
#[derive(Debug)]
pub(crate) enum Query {
    /// Every room: (id, name, status).
    Rooms(oneshot::Sender<Vec<(String, String, &'static str)>>),
    /// A room's current view through one of its templates.
    View {
        room: String,
        view: View,
        reply: oneshot::Sender<Result<String, ViewError>>,
    },
    /// A room's bookings as an iCalendar feed.
    Calendar {
        room: String,
        reply: oneshot::Sender<Result<String, ViewError>>,
    },
    /// Is the core's loop turning? (systemd's watchdog)
    Alive(oneshot::Sender<()>),
    /// A board's page or the part of it that changes, and the rooms it
    /// shows (its stream watches them).
    Board {
        name: String,
        page: bool,
        reply: oneshot::Sender<Result<(String, Vec<RoomId>), ViewError>>,
    },
    /// A checked config and templates to run with from now on.
    Reload(
        Box<crate::check::Checked>,
        oneshot::Sender<Result<Reloaded, String>>,
    ),
}

/// What a reload did (the core's answer to [`Query::Reload`]).
#[derive(Debug)]
pub struct Reloaded {
    /// Settings that differ but take effect only at a restart.
    pub restart: Vec<&'static str>,
    /// What happened to the sinks.
    pub sinks: crate::deliver::SinkChanges,
}

/// Which rendering of a room's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// `/rooms/{id}.json`: the `panel` template.
    Json,
    /// `/rooms/{id}`: the whole live page, `room_page`.
    Page,
    /// What the page's event stream sends: `room_panel`, the part of the
    /// page that changes.
    Panel,
}

impl View {
    pub(crate) fn template(self) -> &'static str {
        match self {
            View::Json => names::PANEL,
            View::Page => names::ROOM_PAGE,
            View::Panel => names::ROOM_PANEL,
        }
    }
}

/// Why a view could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ViewError {
    #[error("no such room")]
    NoSuchRoom,
    #[error("{0}")]
    Render(String),
}

/// Bearer tokens for pulling rooms (room id → token).
pub(crate) type PullTokens = std::collections::HashMap<String, secrecy::SecretString>;

/// Everything the handlers share.
#[derive(Clone)]
pub(crate) struct Server {
    health: Health,
    queries: mpsc::Sender<Query>,
    tokens: Arc<PullTokens>,
    /// Where webhook events go (`None`: no webhook intake).
    inbound: Option<mpsc::Sender<Inbound>>,
    secrets: Arc<webhook::Secrets>,
    live: Live,
}

impl Server {
    /// The handlers' state for `[http]`: `inbound` is used when the
    /// webhook is on.
    pub(crate) fn new(
        config: &HttpConfig,
        health: Health,
        queries: mpsc::Sender<Query>,
        inbound: mpsc::Sender<Inbound>,
        live: Live,
    ) -> Self {
        Server {
            health,
            queries,
            tokens: Arc::new(config.tokens.clone()),
            inbound: config.webhook.then_some(inbound),
            secrets: Arc::new(webhook::Secrets {
                verification_token: config.verification_token.clone(),
                encrypt_key: config.encrypt_key.clone(),
                max_age: config.max_push_age,
            }),
            live,
        }
    }
}

/// Build the router: the webhook route at `webhook_path` when the webhook
/// is on.
pub(crate) fn router(state: Server, config: &HttpConfig) -> Router {
    let (webhook_path, max_body) = (config.webhook_path.as_str(), config.max_body_bytes);
    let mut r = Router::new()
        .route("/rooms", get(rooms))
        .route("/rooms/{file}", get(room))
        .route("/rooms/{id}/events", get(live::room_events))
        .route("/boards/{name}", get(board))
        .route("/boards/{name}/events", get(live::board_events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if state.inbound.is_some() {
        r = r.route(webhook_path, post(webhook_push));
    }
    r.layer(DefaultBodyLimit::max(max_body)).with_state(state)
}

/// Serve until `shutdown`; in-flight requests finish first.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "HTTP server listening"),
        Err(e) => tracing::info!(error = %e, "HTTP server listening (its address is unknown)"),
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A webhook body (or an event) this large is read on a blocking thread,
/// not the runtime's.
const BIG_BODY: usize = 64 * 1024;

/// `read()` at once for `size` bytes up to [`BIG_BODY`]; for more on a
/// blocking thread (reading holds a thread for milliseconds: not the
/// runtime's, which answers pings and every other request meanwhile).
/// `stopped()` answers if that thread panicked.
pub(crate) async fn read_sized<T: Send + 'static>(
    size: usize,
    read: impl FnOnce() -> T + Send + 'static,
    stopped: impl FnOnce() -> T,
) -> T {
    if size <= BIG_BODY {
        return read();
    }
    tokio::task::spawn_blocking(read)
        .await
        .unwrap_or_else(|_| stopped())
}

async fn webhook_push(State(s): State<Server>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    // Owned: a large body is opened on another thread.
    let owned = |k: &str| h(k).map(str::to_string);
    let (ts, nonce, got) = (
        owned("x-lark-request-timestamp"),
        owned("x-lark-request-nonce"),
        owned("x-lark-signature"),
    );
    let request_id = h("x-request-id")
        .or(h("x-tt-logid"))
        .unwrap_or("-")
        .to_string();
    let now_s = (s.live.clock)().timestamp();
    let secrets = s.secrets.clone();
    let opened = read_sized(
        body.len(),
        move || {
            let sig = SignatureHeaders {
                timestamp: ts.as_deref(),
                nonce: nonce.as_deref(),
                signature: got.as_deref(),
            };
            webhook::open(&secrets, &body, &sig, now_s)
        },
        || {
            Err(WebhookError::BadRequest(
                "the body could not be read".into(),
            ))
        },
    )
    .await;
    match opened {
        Err(WebhookError::Unauthorized(why)) => {
            s.health
                .metrics
                .webhook_unauthorized
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%request_id, reason = why, "webhook push refused (401); not applied");
            json_response(StatusCode::UNAUTHORIZED, json!({"msg": why}))
        }
        Err(WebhookError::BadRequest(why)) => {
            tracing::warn!(%request_id, reason = %why, "webhook push refused (400)");
            json_response(StatusCode::BAD_REQUEST, json!({"msg": why}))
        }
        Ok(Intake::Challenge(c)) => json_response(StatusCode::OK, json!({"challenge": c})),
        Ok(Intake::Event(payload)) => {
            let Some(tx) = &s.inbound else {
                return json_response(StatusCode::NOT_FOUND, json!({"msg": "no webhook intake"}));
            };
            let (ack_tx, ack_rx) = oneshot::channel();
            let inb = Inbound {
                payload: payload.into(),
                origin: Origin::Text(format!("webhook {request_id}")),
                ack: Some(AckTo::once(ack_tx)),
            };
            if tx.send(inb).await.is_err() {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"msg": "shutting down"}),
                );
            }
            // No deadline of our own: the answer is the state. 200 once
            // applied and committed; 500 only if it was not applied (the
            // store failed, or roomcast stopped before taking it).
            match ack_rx.await {
                Ok(Ack::Ok) => json_response(StatusCode::OK, json!({"msg": "success"})),
                Ok(Ack::Retry) | Err(_) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"msg": "not stored; retry"}),
                ),
            }
        }
    }
}

/// `GET /rooms`: the rooms anyone may see. A room with `token_env` is
/// listed only to a request carrying its token (its name and status are
/// as private as its view).
async fn rooms(
    State(s): State<Server>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
    headers: HeaderMap,
) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.queries.send(Query::Rooms(tx)).await.is_err() {
        return shutting_down();
    }
    let list = rx.await.unwrap_or_default();
    let rooms: Vec<_> = list
        .into_iter()
        .filter(|(id, _, _)| authorized(&s, id, &headers, q.token.as_deref()))
        .map(|(id, name, status)| {
            json!({
                "id": id,
                "name": name,
                "status": status,
                "url": format!("/rooms/{id}.json"),
                "page": format!("/rooms/{id}"),
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({"rooms": rooms}))
}

fn shutting_down() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"msg": "shutting down"}),
    )
}

/// `?token=` on the page and its event stream: a browser's EventSource
/// cannot send an Authorization header, so a tablet's URL carries it.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TokenParam {
    pub(crate) token: Option<String>,
}

/// Is this request allowed to see `room`? Rooms without `token_env` are
/// open; others need the token as a bearer header or `?token=`, compared
/// in constant time.
pub(crate) fn authorized(s: &Server, room: &str, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(want) = s.tokens.get(room) else {
        return true;
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .or(query);
    got.is_some_and(|g| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            g.as_bytes(),
            secrecy::ExposeSecret::expose_secret(want).as_bytes(),
        ))
    })
}

/// The credentials of `Authorization: Bearer …` (the scheme in any case,
/// with any spaces after it).
fn bearer(v: &str) -> Option<&str> {
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

pub(crate) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this room needs its token (Authorization: Bearer, or ?token=)\n",
    )
        .into_response()
}

/// Why a room's view is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    ShuttingDown,
    NoSuchRoom,
    NoSuchBoard,
    Unauthorized,
    Render,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Failure::NoSuchRoom | Failure::NoSuchBoard => StatusCode::NOT_FOUND,
            Failure::Unauthorized => StatusCode::UNAUTHORIZED,
            Failure::Render => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// For programs: JSON (or the bearer challenge).
    pub(crate) fn response(self, view: View) -> Response {
        match self {
            Failure::ShuttingDown => shutting_down(),
            Failure::Unauthorized => unauthorized(),
            Failure::NoSuchRoom => json_response(self.status(), json!({"msg": "no such room"})),
            Failure::NoSuchBoard => json_response(self.status(), json!({"msg": "no such board"})),
            Failure::Render => json_response(
                self.status(),
                json!({"msg": format!("template `{}` failed; see the log", view.template())}),
            ),
        }
    }

    /// For a screen: a page that says what is wrong, in both languages
    /// (the room's is unknown here), and loads itself again every 30 s, so
    /// a door tablet recovers by itself once the server or the config is
    /// fixed.
    fn page(self, room: &str) -> Response {
        let room = handlebars::html_escape(room);
        let (en, zh) = match self {
            Failure::ShuttingDown => (
                "The room display server is restarting.".to_string(),
                "会议室显示服务正在重启。".to_string(),
            ),
            Failure::NoSuchRoom => (
                format!("No room “{room}” is configured or known."),
                format!("未找到会议室“{room}”。"),
            ),
            Failure::NoSuchBoard => (
                format!("No board “{room}” is configured."),
                format!("未配置看板“{room}”。"),
            ),
            Failure::Unauthorized => (
                "This screen's link lacks the room's token (?token=…).".to_string(),
                "此屏幕的链接缺少会议室令牌（?token=…）。".to_string(),
            ),
            Failure::Render => (
                "The room's page could not be drawn; the server's log says why.".to_string(),
                "无法显示会议室页面，原因见服务器日志。".to_string(),
            ),
        };
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"30\"><meta name=\"referrer\" content=\"no-referrer\">\
<title>roomcast · {code}</title><style>html,body{{margin:0;height:100%;background:#222;color:#eee;\
font-family:system-ui,sans-serif}}main{{height:100vh;display:flex;flex-direction:column;\
justify-content:center;padding:6vmin;box-sizing:border-box;gap:3vmin}}p{{margin:0;font-size:6vmin}}\
small{{font-size:3.5vmin;opacity:.7}}</style></head><body><main id=\"error\" data-status=\"{code}\">\
<p>{en}</p><p>{zh}</p><small>Retrying every 30 s · 每 30 秒重试</small></main></body></html>\n",
            code = self.status().as_u16(),
        );
        (
            self.status(),
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            body,
        )
            .into_response()
    }
}

/// Ask the core a question whose answer is a rendering (`query` makes
/// it from the reply channel); `missing`: what an unknown name is; `what`
/// names it in the log if the render fails (made only then: live pages
/// ask on every change).
async fn ask<T>(
    s: &Server,
    query: impl FnOnce(oneshot::Sender<Result<T, ViewError>>) -> Query,
    missing: Failure,
    what: impl FnOnce() -> String,
) -> Result<T, Failure> {
    let (tx, rx) = oneshot::channel();
    if s.queries.send(query(tx)).await.is_err() {
        return Err(Failure::ShuttingDown);
    }
    match rx.await {
        Err(_) => Err(Failure::ShuttingDown),
        Ok(Ok(body)) => Ok(body),
        Ok(Err(ViewError::NoSuchRoom)) => Err(missing),
        Ok(Err(ViewError::Render(e))) => {
            tracing::error!(what = %what(), error = %e, "render failed");
            Err(Failure::Render)
        }
    }
}

/// Ask the core for a rendering of a room.
pub(crate) async fn view(s: &Server, room: &str, view: View) -> Result<String, Failure> {
    let q = |reply| Query::View {
        room: room.to_string(),
        view,
        reply,
    };
    let what = || format!("room {room}, template {}", view.template());
    ask(s, q, Failure::NoSuchRoom, what).await
}

/// Ask the core for a board's page (or its changing part) and its rooms.
pub(crate) async fn board_view(
    s: &Server,
    name: &str,
    page: bool,
) -> Result<(String, Vec<RoomId>), Failure> {
    let q = |reply| Query::Board {
        name: name.to_string(),
        page,
        reply,
    };
    ask(s, q, Failure::NoSuchBoard, || format!("board {name}")).await
}

/// May this request see board `name`?
pub(crate) fn board_authorized(
    s: &Server,
    name: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> bool {
    authorized(s, &board_token_key(name), headers, token)
}

/// `GET /boards/{name}`: a board's live page (its token, if it has one).
async fn board(
    State(s): State<Server>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
    headers: HeaderMap,
) -> Response {
    if !board_authorized(&s, &name, &headers, q.token.as_deref()) {
        return Failure::Unauthorized.page(&name);
    }
    match board_view(&s, &name, true).await {
        Err(f) => f.page(&name),
        Ok((body, _)) => html(body),
    }
}

/// A whole page, not to be cached or to leak its URL (it may carry a
/// token).
fn html(body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /rooms/{id}.json`: the room's view (the `panel` template), with an
/// ETag. `GET /rooms/{id}`: the live room page. Both need the room's token
/// when it has `token_env`.
async fn room(
    State(s): State<Server>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = file.strip_suffix(".ics") {
        return calendar(&s, id, &headers, q.token.as_deref()).await;
    }
    let (id, json) = match file.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (file.as_str(), false),
    };
    if !json {
        if !authorized(&s, id, &headers, q.token.as_deref()) {
            return Failure::Unauthorized.page(id);
        }
        return match view(&s, id, View::Page).await {
            Err(f) => f.page(id),
            Ok(body) => html(body),
        };
    }
    if !authorized(&s, id, &headers, q.token.as_deref()) {
        return unauthorized();
    }
    match view(&s, id, View::Json).await {
        Err(f) => f.response(View::Json),
        Ok(body) => with_etag(&headers, body, "application/json; charset=utf-8"),
    }
}

/// `GET /rooms/{id}.ics`: the room's bookings as an iCalendar feed, with
/// the same token rules as the JSON view and an ETag.
async fn calendar(s: &Server, id: &str, headers: &HeaderMap, token: Option<&str>) -> Response {
    if !authorized(s, id, headers, token) {
        return unauthorized();
    }
    let (tx, rx) = oneshot::channel();
    let q = Query::Calendar {
        room: id.to_string(),
        reply: tx,
    };
    if s.queries.send(q).await.is_err() {
        return shutting_down();
    }
    let body = match rx.await {
        Err(_) => return shutting_down(),
        Ok(Err(_)) => return Failure::NoSuchRoom.response(View::Json),
        Ok(Ok(b)) => b,
    };
    with_etag(headers, body, "text/calendar; charset=utf-8")
}

/// `body` with an ETag (its digest), or 304 when the request already has
/// it (`If-None-Match`).
fn with_etag(headers: &HeaderMap, body: String, content_type: &'static str) -> Response {
    let etag = format!("\"{}\"", crate::message::digest_hex(&[&body]));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

async fn readyz(State(s): State<Server>) -> Response {
    let connected = s
        .health
        .lark
        .as_ref()
        .is_none_or(|l| l.connected.load(Ordering::Relaxed));
    // Healthy writes, and the core taking events (after a shared store's
    // outage it does once it has started over from the database).
    let store = s.health.store.as_ref().is_none_or(StoreHandle::healthy)
        && !s.health.metrics.store_offline.load(Ordering::Relaxed);
    let mut body = json!({"source": connected, "store": store});
    if let Some(r) = s.health.metrics.roles.get() {
        let feed = &s.health.metrics.feed;
        body["instance"] = json!({
            "name": r.me,
            "role": if r.leader() { "leader" } else { "follower" },
            "lease_age_s": r.lease_age().map(|a| a.as_secs_f64()),
            "sinks": r.sinks(),
            "feed_connected": feed.connected.load(Ordering::Relaxed),
            "feed_lag_s": feed.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        });
    }
    if let Some(p) = &s.health.platform {
        let now = (p.clock)().timestamp_millis();
        let before = now - i64::try_from(p.stale_after.as_millis()).unwrap_or(i64::MAX);
        body["stale_rooms"] = json!(p.sync.stale(&p.rooms, before));
    }
    let code = if connected && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(code, body)
}

async fn metrics(State(s): State<Server>) -> Response {
    let h = &s.health;
    let platform = h.platform.as_ref().map(|p| crate::metrics::Platform {
        api: &p.api,
        sync: &p.sync,
        now_ms: (p.clock)().timestamp_millis(),
    });
    let out = crate::metrics::exposition(&h.metrics, &h.sinks, h.lark.as_deref(), platform);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        out,
    )
        .into_response()
}
