//! A fake Feishu/Lark long-connection gateway on loopback, following the
//! checklist in `shared/spec/lark-long-connection.md` §10: endpoint
//! discovery (and its error classes), the WebSocket upgrade (and
//! `Handshake-*` refusals), pings answered with pongs carrying the client
//! config, events as data frames (optionally fragmented, in any order),
//! every ack recorded, unacknowledged events redelivered on the next
//! connection, and garbage on demand.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Json, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roomcast::lark::frame::{Frame, Header, METHOD_CONTROL, METHOD_DATA};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// A scripted answer to one endpoint call.
#[derive(Debug, Clone)]
pub enum EndpointReply {
    Ok,
    /// HTTP 200 with this non-zero `code` and `"data":{}`.
    Code(i64),
    /// This HTTP status.
    Http(u16),
    /// No answer until the client gives up (a hung request).
    Hang,
}

/// A scripted refusal of one WebSocket handshake.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub http: u16,
    pub status: i64,
    pub msg: String,
    pub auth: Option<i64>,
}

/// In what order a fragmented event's frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    InOrder,
    Reversed,
}

#[derive(Debug)]
pub enum Cmd {
    Binary(Vec<u8>),
    Text(String),
    Close,
    Silence,
}

/// The client settings the gateway hands out (seconds).
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    pub reconnect_count: i64,
    pub reconnect_interval: u64,
    pub reconnect_nonce: u64,
    pub ping_interval: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            reconnect_count: -1,
            reconnect_interval: 1,
            reconnect_nonce: 0,
            ping_interval: 120,
        }
    }
}

impl ClientSettings {
    fn json(&self) -> Value {
        json!({"ReconnectCount": self.reconnect_count, "ReconnectInterval": self.reconnect_interval,
               "ReconnectNonce": self.reconnect_nonce, "PingInterval": self.ping_interval})
    }
}

/// A recorded ack.
#[derive(Debug, Clone)]
pub struct AckRecord {
    pub message_id: String,
    pub code: i64,
    pub frame: Frame,
    pub connection: usize,
}

#[derive(Default)]
pub struct Inner {
    pub endpoint_script: VecDeque<EndpointReply>,
    pub handshake_script: VecDeque<Refusal>,
    pub settings: ClientSettings,
    /// Send the settings in every pong.
    pub pong_with_config: bool,
    /// Answer pings at all.
    pub answer_pings: bool,
    pub endpoint_calls: Vec<Value>,
    pub connections: usize,
    pub pings: Vec<(usize, Frame)>,
    pub acks: Vec<AckRecord>,
    /// Keep every ack's frame (off for benchmarks).
    pub record_acks: bool,
    pub ack_count: u64,
    /// Events sent and not acknowledged with 200: message id → frames.
    pub unacked: BTreeMap<String, Vec<Frame>>,
    pub conn_tx: Option<mpsc::UnboundedSender<Cmd>>,
    /// Cluster mode, as the platform runs it for an app with several
    /// clients connected: each event goes to one live connection chosen at
    /// random, and a new connection is not sent the unacknowledged ones
    /// (the platform pushes those again after 3 s: [`Gateway::redeliver`]).
    pub spread: bool,
    /// Every live connection (cluster mode picks among them).
    pub live: BTreeMap<usize, mpsc::UnboundedSender<Cmd>>,
    /// Events sent, by connection.
    pub sent_to: BTreeMap<usize, u64>,
    next_id: u64,
}

pub struct Shared {
    pub inner: Mutex<Inner>,
    changed: Notify,
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

pub const SERVICE_ID: i32 = 77;

fn data_frame(message_id: &str, sum: usize, seq: usize, payload: Vec<u8>, n: u64) -> Frame {
    let (sum, seq, trace) = (sum.to_string(), seq.to_string(), format!("trace-{n}"));
    let mut f = Frame::event_fragment(SERVICE_ID, message_id, &sum, &seq, &trace, payload);
    f.seq_id = n;
    f.log_id = n + 1000;
    f.headers.push(Header {
        key: "timestamp".into(),
        value: "1700000000000".into(),
    });
    f
}

impl Gateway {
    pub async fn start() -> Gateway {
        Gateway::start_with(Router::new()).await
    }

    /// A gateway that also serves `extra` routes (the platform's REST
    /// APIs share its domain).
    pub async fn start_with(extra: Router) -> Gateway {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                answer_pings: true,
                pong_with_config: true,
                record_acks: true,
                ..Inner::default()
            }),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/callback/ws/endpoint", post(endpoint))
            .route("/ws/v2", get(upgrade))
            .with_state(shared.clone())
            .merge(extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Gateway { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let r = f(&mut self.shared.inner.lock().unwrap());
        self.shared.changed.notify_waiters();
        r
    }

    /// Wait until `cond` holds (checked after every recorded change). The
    /// limit is only a failsafe against a hung test, in (possibly paused)
    /// tokio time; it is longer than any client timer.
    pub async fn wait(&self, what: &str, cond: impl Fn(&Inner) -> bool) {
        let fut = async {
            loop {
                let notified = self.shared.changed.notified();
                if cond(&self.shared.inner.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(3600), fut)
            .await
            .is_err()
        {
            panic!("gateway: timed out waiting for {what}");
        }
    }

    /// Send an event as `fragments` data frames (recorded as unacked until
    /// a 200 ack). Returns its message id.
    pub fn send_event(&self, payload: &str, fragments: usize, order: Order) -> String {
        let bytes = payload.as_bytes();
        let (frames, id) = self.with(|g| {
            g.next_id += 1;
            let n = g.next_id;
            let id = format!("msg-{n}");
            let k = fragments.max(1);
            let chunk = bytes.len().div_ceil(k).max(1);
            let mut frames: Vec<Frame> = (0..k)
                .map(|i| {
                    let part = bytes
                        .get(i * chunk..((i + 1) * chunk).min(bytes.len()))
                        .unwrap_or(&[])
                        .to_vec();
                    data_frame(&id, k, i, part, n)
                })
                .collect();
            if order == Order::Reversed {
                frames.reverse();
            }
            g.unacked.insert(id.clone(), frames.clone());
            (frames, id)
        });
        if self.with(|g| g.spread) {
            self.send_spread(&frames);
        } else {
            for f in frames {
                self.send_raw(f.to_bytes());
            }
        }
        id
    }

    /// Send one message's frames on a live connection chosen at random
    /// (cluster mode); false if none is live.
    fn send_spread(&self, frames: &[Frame]) -> bool {
        self.with(|g| {
            let live: Vec<usize> = g.live.keys().copied().collect();
            if live.is_empty() {
                return false;
            }
            let conn = live[rand::random_range(0..live.len())];
            *g.sent_to.entry(conn).or_default() += 1;
            let tx = &g.live[&conn];
            for f in frames {
                let _ = tx.send(Cmd::Binary(f.to_bytes()));
            }
            true
        })
    }

    /// Push every event not yet acknowledged again, each to a live
    /// connection chosen at random (what the platform does 3 s after a
    /// push that got no ack); how many.
    pub fn redeliver(&self) -> usize {
        let pending: Vec<Vec<Frame>> = self.with(|g| g.unacked.values().cloned().collect());
        pending.iter().filter(|f| self.send_spread(f)).count()
    }

    pub fn send_raw(&self, bytes: Vec<u8>) {
        self.with(|g| {
            if let Some(tx) = &g.conn_tx {
                let _ = tx.send(Cmd::Binary(bytes));
            }
        });
    }

    pub fn send_text(&self, text: &str) {
        self.with(|g| {
            if let Some(tx) = &g.conn_tx {
                let _ = tx.send(Cmd::Text(text.into()));
            }
        });
    }

    /// Close the current connection (as a gateway restart would).
    pub fn drop_connection(&self) {
        self.with(|g| {
            if let Some(tx) = g.conn_tx.take() {
                let _ = tx.send(Cmd::Close);
            }
        });
    }

    /// Stop reading and writing but keep the TCP connection open: a
    /// half-open connection as seen from the client.
    pub fn go_silent(&self) {
        self.with(|g| {
            if let Some(tx) = g.conn_tx.take() {
                let _ = tx.send(Cmd::Silence);
            }
        });
    }

    pub fn acks_for(&self, message_id: &str) -> Vec<AckRecord> {
        self.with(|g| {
            g.acks
                .iter()
                .filter(|a| a.message_id == message_id)
                .cloned()
                .collect()
        })
    }
}

async fn endpoint(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (reply, n, settings) = {
        let mut g = s.inner.lock().unwrap();
        let mut body = body;
        body["_locale_header"] = json!(headers.get("locale").and_then(|v| v.to_str().ok()));
        g.endpoint_calls.push(body);
        (
            g.endpoint_script.pop_front().unwrap_or(EndpointReply::Ok),
            g.endpoint_calls.len(),
            g.settings,
        )
    };
    s.changed.notify_waiters();
    let port = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit(':').next())
        .unwrap_or("0")
        .to_string();
    match reply {
        EndpointReply::Ok => Json(json!({"code": 0, "msg": "ok", "data": {
            "URL": format!("ws://127.0.0.1:{port}/ws/v2?fpid=1&device_id=conn-{n}&service_id={SERVICE_ID}&ticket=T{n}"),
            "ClientConfig": settings.json()
        }}))
        .into_response(),
        EndpointReply::Code(code) => Json(json!({"code": code, "msg": format!("scripted code {code}"), "data": {}})).into_response(),
        EndpointReply::Http(status) => (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "busy").into_response(),
        EndpointReply::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

async fn upgrade(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    let refusal = s.inner.lock().unwrap().handshake_script.pop_front();
    if let Some(r) = refusal {
        let mut resp = (
            StatusCode::from_u16(r.http).unwrap_or(StatusCode::FORBIDDEN),
            "refused",
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert("Handshake-Status", r.status.to_string().parse().unwrap());
        h.insert("Handshake-Msg", r.msg.parse().unwrap());
        if let Some(a) = r.auth {
            h.insert("Handshake-Autherrcode", a.to_string().parse().unwrap());
        }
        return resp;
    }
    ws.on_upgrade(move |socket| connection(s, socket))
}

async fn connection(s: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (conn, redeliver) = {
        let mut g = s.inner.lock().unwrap();
        g.connections += 1;
        let conn = g.connections;
        g.live.insert(conn, tx.clone());
        g.conn_tx = Some(tx);
        let frames: Vec<Frame> = if g.spread {
            Vec::new()
        } else {
            g.unacked.values().flatten().cloned().collect()
        };
        (conn, frames)
    };
    s.changed.notify_waiters();
    for f in redeliver {
        if socket
            .send(Message::Binary(f.to_bytes().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Binary(b)) => { if socket.send(Message::Binary(b.into())).await.is_err() { break } }
                Some(Cmd::Text(t)) => { if socket.send(Message::Text(t.into())).await.is_err() { break } }
                Some(Cmd::Close) | None => { let _ = socket.send(Message::Close(None)).await; break }
                Some(Cmd::Silence) => {
                    // Hold the socket, read nothing, answer nothing.
                    let _keep = socket;
                    std::future::pending::<()>().await;
                    return;
                }
            },
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Binary(b) = msg else { continue };
                let Ok(frame) = Frame::from_bytes(&b) else { continue };
                let pong = handle_frame(&s, conn, frame);
                s.changed.notify_waiters();
                if let Some(p) = pong
                    && socket.send(Message::Binary(p.to_bytes().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let mut g = s.inner.lock().unwrap();
    g.live.remove(&conn);
    if g.connections == conn {
        g.conn_tx = None;
    }
    drop(g);
    s.changed.notify_waiters();
}

fn handle_frame(s: &Shared, conn: usize, frame: Frame) -> Option<Frame> {
    let mut g = s.inner.lock().unwrap();
    match frame.method {
        METHOD_CONTROL if frame.header("type") == Some("ping") => {
            g.pings.push((conn, frame.clone()));
            if !g.answer_pings {
                return None;
            }
            let payload = g
                .pong_with_config
                .then(|| g.settings.json().to_string().into_bytes().into());
            Some(Frame {
                payload,
                ..Frame::control(frame.service, "pong")
            })
        }
        METHOD_DATA => {
            let id = frame.header("message_id").unwrap_or_default().to_string();
            let code = frame
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                .and_then(|v| v["code"].as_i64())
                .unwrap_or(-1);
            if code == 200 {
                g.unacked.remove(&id);
            }
            g.ack_count += 1;
            if g.record_acks {
                g.acks.push(AckRecord {
                    message_id: id,
                    code,
                    frame,
                    connection: conn,
                });
            }
            None
        }
        _ => None,
    }
}
