//! Fake chat and panel endpoints on loopback that check what the real
//! services check (signatures, body shapes, error codes), and fail on
//! demand.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use roomcast::clock::TimeSource;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::time::Instant;

pub const FEISHU_SECRET: &str = "feishu-bot-signing-secret";
pub const DING_SECRET: &str = "SECding-robot-secret";

#[derive(Debug, Clone)]
pub enum Reply {
    Ok,
    Status(u16),
    RetryAfter(u16, u64),
    /// HTTP 200 with a service error code (Feishu `code`, DingTalk/WeCom
    /// `errcode`).
    Code(i64),
    /// Never answer (the client must time out).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub service: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub raw: String,
    pub at: Instant,
    /// What the fake answered.
    pub verdict: String,
}

#[derive(Default)]
pub struct SinkState {
    pub script: BTreeMap<String, VecDeque<Reply>>,
    pub hits: Vec<Hit>,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<SinkState>>,
    changed: Arc<Notify>,
    clock: TimeSource,
    pub base: String,
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(msg);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// Synthetic wall time that advances with (possibly paused) tokio time.
pub fn test_clock(base: DateTime<Utc>) -> TimeSource {
    let t0 = Instant::now();
    Arc::new(move || base + chrono::Duration::from_std(t0.elapsed()).unwrap_or_default())
}

impl Fake {
    pub async fn start(clock: TimeSource) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            state: Arc::default(),
            changed: Arc::default(),
            clock,
            base,
        };
        let app = Router::new()
            .route("/{service}/{*rest}", any(handle))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn script(&self, service: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .script
            .insert(service.into(), replies.into());
    }

    pub fn hits(&self, service: &str) -> Vec<Hit> {
        self.state
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|h| h.service == service)
            .cloned()
            .collect()
    }

    pub async fn wait(&self, what: &str, cond: impl Fn(&SinkState) -> bool) {
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
            let seen: Vec<String> = self
                .state
                .lock()
                .unwrap()
                .hits
                .iter()
                .map(|h| format!("{}/{}: {}", h.service, h.path, h.verdict))
                .collect();
            panic!("fake sinks: timed out waiting for {what}; requests seen: {seen:?}");
        }
    }
}

/// What the real services check, before any scripted answer.
fn verify(
    service: &str,
    body: &Value,
    query: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), (StatusCode, Value)> {
    let feishu_err = |code: i64, msg: &str| {
        Err((
            StatusCode::OK,
            json!({"code": code, "msg": msg, "data": {}}),
        ))
    };
    let ding_err =
        |code: i64, msg: &str| Err((StatusCode::OK, json!({"errcode": code, "errmsg": msg})));
    match service {
        "feishu" => {
            let ts = body["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<i64>().ok());
            let sign = body["sign"].as_str();
            let (Some(ts), Some(sign)) = (ts, sign) else {
                return feishu_err(
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            };
            // key = "{timestamp}\n{secret}", message empty
            let want = hmac_b64(format!("{ts}\n{FEISHU_SECRET}").as_bytes(), b"");
            if sign != want || (now.timestamp() - ts).abs() > 3600 {
                return feishu_err(
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            }
            match body["msg_type"].as_str() {
                Some("interactive") if body["card"].is_object() => Ok(()),
                Some("text") if body["content"]["text"].is_string() => Ok(()),
                Some("post") if body["content"]["post"].is_object() => Ok(()),
                _ => feishu_err(19002, "params error, msg_type need"),
            }
        }
        "dingtalk" => {
            let ts = query.get("timestamp").and_then(|t| t.parse::<i64>().ok());
            let (Some(ts), Some(sign)) = (ts, query.get("sign")) else {
                return ding_err(310000, "sign not match");
            };
            // key = secret, message = "{timestamp_ms}\n{secret}"
            let want = hmac_b64(
                DING_SECRET.as_bytes(),
                format!("{ts}\n{DING_SECRET}").as_bytes(),
            );
            if *sign != want || (now.timestamp_millis() - ts).abs() > 3_600_000 {
                return ding_err(310000, "sign not match");
            }
            match body["msgtype"].as_str() {
                Some("markdown")
                    if body["markdown"]["text"].is_string()
                        && body["markdown"]["title"].is_string() =>
                {
                    Ok(())
                }
                Some("text") if body["text"]["content"].is_string() => Ok(()),
                _ => ding_err(40035, "missing msgtype"),
            }
        }
        "wecom" => {
            if query.get("key").is_none_or(|k| k.is_empty()) {
                return ding_err(93000, "invalid webhook url");
            }
            match body["msgtype"].as_str() {
                Some("markdown") if body["markdown"]["content"].is_string() => Ok(()),
                Some("text") if body["text"]["content"].is_string() => Ok(()),
                _ => ding_err(40008, "invalid message type"),
            }
        }
        "slack" => {
            if body["text"].is_string() || body["blocks"].is_array() {
                Ok(())
            } else {
                Err((StatusCode::BAD_REQUEST, json!("no_text")))
            }
        }
        _ => Ok(()),
    }
}

async fn handle(
    State(f): State<Fake>,
    Path((service, rest)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let now = (f.clock)();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let hdrs: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let checked = verify(&service, &body, &query, now);
    // A script for one path (`panel/<room>`) first, then the service's.
    let reply = {
        let mut st = f.state.lock().unwrap();
        let by_path = st
            .script
            .get_mut(&format!("{service}/{rest}"))
            .and_then(|q| q.pop_front());
        by_path
            .or_else(|| st.script.get_mut(&service).and_then(|q| q.pop_front()))
            .unwrap_or(Reply::Ok)
    };
    let ok_body = match service.as_str() {
        "feishu" => json!({"code": 0, "msg": "success", "data": {}}),
        "dingtalk" | "wecom" => json!({"errcode": 0, "errmsg": "ok"}),
        _ => json!("ok"),
    };
    let (resp, verdict) = match (checked, reply) {
        (_, Reply::Hang) => {
            record(&f, &service, &rest, hdrs, body, &raw, "hang");
            std::future::pending::<()>().await;
            return StatusCode::OK.into_response();
        }
        (Err((st, b)), _) => (
            (st, axum::Json(b)).into_response(),
            "rejected by the service's checks".to_string(),
        ),
        (Ok(()), Reply::Ok) => (axum::Json(ok_body).into_response(), "ok".into()),
        (Ok(()), Reply::Status(s)) => (
            (StatusCode::from_u16(s).unwrap(), "error").into_response(),
            format!("{s}"),
        ),
        (Ok(()), Reply::RetryAfter(s, secs)) => {
            let mut r = (StatusCode::from_u16(s).unwrap(), "slow down").into_response();
            r.headers_mut()
                .insert("Retry-After", secs.to_string().parse().unwrap());
            (r, format!("{s} retry-after {secs}"))
        }
        (Ok(()), Reply::Code(c)) => {
            let b = if service == "feishu" {
                json!({"code": c, "msg": "scripted", "data": {}})
            } else {
                json!({"errcode": c, "errmsg": "scripted"})
            };
            (axum::Json(b).into_response(), format!("code {c}"))
        }
    };
    record(&f, &service, &rest, hdrs, body, &raw, &verdict);
    resp
}

fn record(
    f: &Fake,
    service: &str,
    rest: &str,
    headers: BTreeMap<String, String>,
    body: Value,
    raw: &[u8],
    verdict: &str,
) {
    f.state.lock().unwrap().hits.push(Hit {
        service: service.into(),
        path: rest.into(),
        headers,
        body,
        raw: String::from_utf8_lossy(raw).into_owned(),
        at: Instant::now(),
        verdict: verdict.into(),
    });
    f.changed.notify_waiters();
}
