//! A lean fake long-connection gateway for throughput runs: endpoint
//! discovery over HTTP, one WebSocket connection at a time, pings answered,
//! and blasts of pre-encoded data frames with a fixed window in flight
//! (the next frame goes as each ack arrives; what is ready is written
//! together). It runs on its own OS thread and runtime, so the bench's own
//! work never slows it, and it is the same for every client measured.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::post;
use futures_util::{FutureExt, SinkExt, StreamExt};
use roomcast::lark::frame::{Frame, Header, METHOD_CONTROL, METHOD_DATA};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{Bytes, Message};

pub const SERVICE_ID: i32 = 77;

/// What one blast measured.
#[derive(Debug, Clone, Copy)]
pub struct Blast {
    /// From the first frame sent to the last ack received.
    pub secs: f64,
    pub ok: u64,
    /// Acks with another code (none expected).
    pub other: u64,
}

struct Job {
    frames: Arc<Vec<Bytes>>,
    window: usize,
    done: oneshot::Sender<Blast>,
}

pub struct LeanGateway {
    pub base_url: String,
    jobs: mpsc::UnboundedSender<Job>,
    connected: watch::Receiver<usize>,
}

/// One event as a data frame, encoded.
pub fn data_frame(n: u64, payload: &[u8]) -> Bytes {
    let h = |k: &str, v: String| Header::new(k, &v);
    Frame {
        seq_id: n,
        log_id: n,
        service: SERVICE_ID,
        method: METHOD_DATA,
        headers: vec![
            h("type", "event".into()),
            h("message_id", format!("m-{n}")),
            h("sum", "1".into()),
            h("seq", "0".into()),
            h("trace_id", format!("t-{n}")),
        ],
        payload_encoding: None,
        payload_type: None,
        payload: Some(Bytes::copy_from_slice(payload)),
        log_id_new: None,
    }
    .to_bytes()
    .into()
}

impl LeanGateway {
    pub fn start() -> LeanGateway {
        let (jobs, rx) = mpsc::unbounded_channel::<Job>();
        let (conn_tx, connected) = watch::channel(0usize);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lean-gateway".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(rx, conn_tx, addr_tx));
            })
            .expect("gateway thread");
        let base_url = addr_rx.recv().expect("gateway address");
        LeanGateway {
            base_url,
            jobs,
            connected,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.connected.borrow()
    }

    /// Wait until more than `n` connections were accepted.
    pub async fn wait_connections(&mut self, n: usize) {
        self.connected
            .wait_for(|c| *c > n)
            .await
            .expect("gateway running");
    }

    /// Send every frame over the current connection keeping `window`
    /// unacknowledged; returns when all are acknowledged.
    /// `None`: the connection closed or stalled (reported on stderr).
    pub async fn blast(&self, frames: Arc<Vec<Bytes>>, window: usize) -> Option<Blast> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                frames,
                window,
                done,
            })
            .expect("gateway running");
        rx.await.ok()
    }
}

async fn serve(
    jobs: mpsc::UnboundedReceiver<Job>,
    connected: watch::Sender<usize>,
    addr_tx: std::sync::mpsc::Sender<String>,
) {
    let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let ws_port = ws.local_addr().expect("addr").port();
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http_addr = http.local_addr().expect("addr");
    let app = Router::new().route(
        "/callback/ws/endpoint",
        post(move || async move {
            axum::Json(json!({"code": 0, "msg": "ok", "data": {
                "URL": format!("ws://127.0.0.1:{ws_port}/ws?fpid=1&device_id=bench&service_id={SERVICE_ID}&ticket=t"),
                "ClientConfig": {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30, "PingInterval": 120}
            }}))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(http, app).await;
    });
    let _ = addr_tx.send(format!("http://{http_addr}"));
    let jobs = Arc::new(Mutex::new(jobs));
    loop {
        let Ok((tcp, _)) = ws.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let jobs = jobs.clone();
        let connected = connected.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            connected.send_modify(|c| *c += 1);
            connection(ws, &jobs).await;
        });
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Answer pings and run blasts until the client goes away.
async fn connection(mut ws: Ws, jobs: &Mutex<mpsc::UnboundedReceiver<Job>>) {
    // One connection works the jobs at a time; a newer one waits for the
    // older to close.
    let mut jobs = jobs.lock().await;
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                let Some(blast) = run_blast(&mut ws, &job.frames, job.window).await else {
                    return;
                };
                let _ = job.done.send(blast);
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { return };
                if let Some(pong) = pong_for(&msg) && ws.send(pong).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A pong for a ping frame.
fn pong_for(msg: &Message) -> Option<Message> {
    let Message::Binary(b) = msg else { return None };
    let f = Frame::from_bytes(b).ok()?;
    (f.method == METHOD_CONTROL && f.header("type") == Some("ping"))
        .then(|| Message::Binary(Frame::control(f.service, "pong").to_bytes().into()))
}

enum Got {
    Ack(bool),
    Other(Option<Message>),
}

fn classify(msg: Message) -> Got {
    if let Message::Binary(b) = &msg
        && let Ok(f) = Frame::from_bytes(b)
        && f.method == METHOD_DATA
    {
        // `{"code":200}`, as every client writes it (a byte compare keeps
        // the gateway's own cost per ack low).
        let ok = f
            .payload
            .as_deref()
            .is_some_and(|p| p.starts_with(b"{\"code\":200}") || p.starts_with(b"{\"code\":200,"));
        return Got::Ack(ok);
    }
    Got::Other(pong_for(&msg))
}

async fn run_blast(ws: &mut Ws, frames: &[Bytes], window: usize) -> Option<Blast> {
    let n = frames.len();
    let (mut sent, mut ok, mut other) = (0usize, 0u64, 0u64);
    let t0 = Instant::now();
    while sent < n.min(window.max(1)) {
        ws.feed(Message::Binary(frames[sent].clone())).await.ok()?;
        sent += 1;
    }
    ws.flush().await.ok()?;
    while ((ok + other) as usize) < n {
        let first = match tokio::time::timeout(std::time::Duration::from_secs(20), ws.next()).await
        {
            Ok(m) => m?.ok()?,
            Err(_) => {
                eprintln!(
                    "blast stalled: {sent} of {n} frames sent, {ok} acked 200, {other} otherwise; nothing for 20 s"
                );
                return None;
            }
        };
        let mut next = Some(first);
        while let Some(msg) = next {
            match classify(msg) {
                Got::Ack(good) => {
                    if good {
                        ok += 1;
                    } else {
                        other += 1;
                    }
                    if sent < n {
                        ws.feed(Message::Binary(frames[sent].clone())).await.ok()?;
                        sent += 1;
                    }
                }
                Got::Other(Some(pong)) => ws.feed(pong).await.ok()?,
                Got::Other(None) => {
                    eprintln!("gateway: a message neither ack nor ping ignored");
                }
            }
            next = match ws.next().now_or_never() {
                Some(Some(Ok(m))) => Some(m),
                Some(_) => return None,
                None => None,
            };
        }
        ws.flush().await.ok()?;
    }
    Some(Blast {
        secs: t0.elapsed().as_secs_f64(),
        ok,
        other,
    })
}
