//! The long-connection client: connect, ping, watch for silence, reassemble,
//! hand events to the core, acknowledge each message once, reconnect.
//!
//! One task owns the socket: a `select!` over shutdown, finished acks, the
//! ping timer, the liveness watchdog and the next inbound frame. Acks are
//! sent as the core answers (a committed batch at once, in one socket
//! write), so they may go out of order, as the official clients' do.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::ConnectError;
use super::endpoint::{self, ClientConfig, ClientConfigJson, Endpoint};
use super::frame::{Frame, METHOD_CONTROL, METHOD_DATA};
use super::reassembly::{Push, Reassembler};
use super::received::Received;
use crate::config::{LarkConfig, PlatformConfig};
use crate::error::Chain;
use crate::metrics::LarkStats;
use crate::retry::{Policy, jitter};
use crate::source::{Ack, AckTo, Inbound, Origin};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the long connection stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Refused(ConnectError),
    #[error("gave up after {attempts} reconnect attempts (ReconnectCount = {count}); last error")]
    GaveUp {
        attempts: u32,
        count: i64,
        #[source]
        last: ConnectError,
    },
    #[error("long connection needs platform.app_secret_env")]
    NoSecret,
    #[error("cannot set up the HTTP client")]
    Setup(#[source] reqwest::Error),
}

/// The long-connection source.
pub(crate) struct LarkClient {
    app_id: String,
    app_secret: SecretString,
    base: Url,
    opts: LarkConfig,
    http: reqwest::Client,
    pub stats: Arc<LarkStats>,
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Classify a refused WebSocket handshake by the platform's `Handshake-*`
/// headers: 514 with auth code 1000040350 (connection limit) and 403 are
/// fatal; anything else, or no such headers, is worth retrying.
pub(crate) fn classify_handshake(
    http_status: u16,
    header: impl Fn(&str) -> Option<String>,
) -> ConnectError {
    let status = header("handshake-status").and_then(|s| s.trim().parse::<i64>().ok());
    let msg = header("handshake-msg");
    let (Some(status), Some(msg)) = (status, msg) else {
        return ConnectError::retry(format!(
            "WebSocket handshake refused with HTTP {http_status}"
        ));
    };
    let auth = header("handshake-autherrcode").and_then(|s| s.trim().parse::<i64>().ok());
    match (status, auth) {
        (514, Some(1000040350)) => ConnectError::Fatal {
            code: 1000040350,
            msg,
        },
        (403, _) => ConnectError::Fatal { code: 403, msg },
        _ => ConnectError::retry(format!(
            "WebSocket handshake refused: status {status}{}: {msg}",
            auth.map(|a| format!(", auth code {a}")).unwrap_or_default()
        )),
    }
}

/// Messages handed to the core and not yet answered, by the id their
/// answer carries (ids count up from 0 on each connection; answers come
/// about in order, so the oldest slots empty first).
#[derive(Default)]
struct Waiting {
    /// The id of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<(Received, Instant)>>,
    len: usize,
}

impl Waiting {
    fn push(&mut self, frame: Received, started: Instant) -> u64 {
        let id = self.first + self.slots.len() as u64;
        self.slots.push_back(Some((frame, started)));
        self.len += 1;
        id
    }

    /// The message an answer is for (`None`: not waiting, or answered).
    fn take(&mut self, id: u64) -> Option<(Received, Instant)> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let slot = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(slot)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Answers taken from the queue at once, at most.
const ANSWERS_AT_ONCE: usize = 4096;

impl LarkClient {
    pub(crate) fn new(platform: &PlatformConfig, opts: &LarkConfig) -> Result<Self, SourceError> {
        crate::tls::init();
        let app_secret = platform.app_secret.clone().ok_or(SourceError::NoSecret)?;
        let http = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .user_agent(concat!("roomcast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SourceError::Setup)?;
        Ok(LarkClient {
            app_id: platform.app_id.clone(),
            app_secret,
            base: platform.base_url.clone(),
            opts: opts.clone(),
            http,
            stats: Arc::default(),
        })
    }

    /// Run until shutdown (`Ok`) or a fatal refusal (`Err`). Events go to
    /// `tx`; each carries a oneshot the core answers once it has applied it.
    pub(crate) async fn run(
        self,
        tx: mpsc::Sender<Inbound>,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let mut cc = ClientConfig::default();
        let mut conn = match self.connect(&mut cc).await {
            Ok(c) => Some(c),
            Err(e @ ConnectError::Fatal { .. }) => return Err(SourceError::Refused(e)),
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "first connection attempt failed");
                None
            }
        };
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match self.reconnect(&mut cc, &shutdown).await? {
                    Some(c) => c,
                    None => return Ok(()),
                },
            };
            let conn_id = c.1.conn_id.clone();
            let ended = self.serve(c, &mut cc, &tx, &shutdown).await;
            self.stats.connected.store(false, Ordering::Relaxed);
            match ended {
                Ended::Shutdown => return Ok(()),
                Ended::Lost(reason) => {
                    tracing::warn!(%conn_id, %reason, "long connection lost; reconnecting");
                }
            }
        }
    }

    /// The reconnect procedure: a random wait up to ReconnectNonce, then an
    /// attempt every ReconnectInterval, each with a fresh endpoint call;
    /// forever unless ReconnectCount ≥ 0. `Ok(None)`: shutdown requested.
    async fn reconnect(
        &self,
        cc: &mut ClientConfig,
        shutdown: &CancellationToken,
    ) -> Result<Option<(Ws, Endpoint)>, SourceError> {
        let mut attempt: u32 = 0;
        let mut last = ConnectError::retry("none");
        let mut outage = Outage::new(Instant::now());
        loop {
            if cc.reconnect_count >= 0 && i64::from(attempt) >= cc.reconnect_count {
                return Err(SourceError::GaveUp {
                    attempts: attempt,
                    count: cc.reconnect_count,
                    last,
                });
            }
            let policy = Policy::Platform {
                interval: cc.reconnect_interval,
                nonce: cc.reconnect_nonce,
            };
            let delay = policy.delay(attempt, jitter());
            tracing::debug!(
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "reconnecting"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                () = sleep(delay) => {}
            }
            match self.connect(cc).await {
                Ok(c) => {
                    if outage.failed > 0 {
                        tracing::info!(
                            failed_attempts = outage.failed,
                            down_s = outage.since.elapsed().as_secs(),
                            "reconnected"
                        );
                    }
                    return Ok(Some(c));
                }
                Err(e @ ConnectError::Fatal { .. }) => return Err(SourceError::Refused(e)),
                Err(e) => {
                    match outage.failure(Instant::now()) {
                        Some(OutageReport::First) => tracing::warn!(
                            error = %Chain(&e),
                            "reconnect attempt failed; retrying (further failures are summarized every {} min)",
                            Outage::SUMMARY_EVERY.as_secs() / 60
                        ),
                        Some(OutageReport::Summary { failed, down }) => tracing::warn!(
                            failed_attempts = failed,
                            down_s = down.as_secs(),
                            last_error = %Chain(&e),
                            "still reconnecting"
                        ),
                        None => {
                            tracing::debug!(attempt = attempt + 1, error = %Chain(&e), "reconnect attempt failed")
                        }
                    }
                    last = e;
                }
            }
            attempt += 1;
        }
    }

    /// Endpoint discovery, then the WebSocket handshake.
    async fn connect(&self, cc: &mut ClientConfig) -> Result<(Ws, Endpoint), ConnectError> {
        let ep =
            endpoint::discover(&self.http, &self.base, &self.app_id, &self.app_secret, cc).await?;
        let mut ws_config = WebSocketConfig::default();
        // One WebSocket message carries one frame, i.e. at most one fragment.
        ws_config.max_message_size = Some(self.opts.max_message_bytes + 64 * 1024);
        ws_config.max_frame_size = Some(self.opts.max_message_bytes + 64 * 1024);
        let dial =
            tokio_tungstenite::connect_async_with_config(ep.url.as_str(), Some(ws_config), true);
        let ws = match timeout(self.opts.request_timeout, dial).await {
            Err(_) => return Err(ConnectError::retry("WebSocket handshake timed out")),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let headers = resp.headers();
                return Err(classify_handshake(resp.status().as_u16(), |k| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                }));
            }
            Ok(Err(e)) => {
                return Err(ConnectError::retry_because("WebSocket handshake failed", e));
            }
            Ok(Ok((ws, _))) => ws,
        };
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        self.stats.connected.store(true, Ordering::Relaxed);
        tracing::info!(conn_id = %ep.conn_id, service_id = ep.service_id, ping_interval_s = cc.ping_interval.as_secs(), "long connection established");
        Ok((ws, ep))
    }

    fn liveness(&self, cc: &ClientConfig) -> Duration {
        cc.ping_interval
            .saturating_mul(self.opts.liveness_factor.max(2))
    }

    async fn serve(
        &self,
        (mut ws, ep): (Ws, Endpoint),
        cc: &mut ClientConfig,
        tx: &mpsc::Sender<Inbound>,
        shutdown: &CancellationToken,
    ) -> Ended {
        let conn_id = ep.conn_id.as_str();
        let mut reasm = Reassembler::new(
            self.opts.max_message_bytes,
            self.opts.max_pending_messages,
            self.opts.fragment_ttl,
        );
        // The core's answers, one queue for the connection's messages.
        let (answer_to, mut answers) = mpsc::unbounded_channel();
        let mut waiting = Waiting::default();
        let mut answered = Vec::new();
        let mut last_inbound = Instant::now();
        let mut watchdog = pin!(sleep_until(last_inbound + self.liveness(cc)));
        let mut ping = pin!(sleep_until(Instant::now()));
        let mut last_ping = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.drain(&mut ws, &mut waiting, &mut answers, conn_id).await;
                    return Ended::Shutdown;
                }
                // (`answer_to` is held here: the queue never closes.)
                _ = answers.recv_many(&mut answered, ANSWERS_AT_ONCE), if !waiting.is_empty() => {
                    if let Err(e) = self.send_acks(&mut ws, &mut answered, &mut waiting).await {
                        return Ended::Lost(format!("sending acks failed: {}", Chain(&e)));
                    }
                }
                () = &mut ping => {
                    if let Err(e) = ws.send(Message::Binary(Frame::ping(ep.service_id).to_bytes().into())).await {
                        return Ended::Lost(format!("sending a ping failed: {}", Chain(&e)));
                    }
                    self.stats.pings.fetch_add(1, Ordering::Relaxed);
                    last_ping = Instant::now();
                    for id in reasm.expire(Instant::now()) {
                        tracing::warn!(%conn_id, message_id = %id, "partial message expired before all its fragments arrived");
                    }
                    ping.as_mut().reset(Instant::now() + cc.ping_interval);
                }
                () = &mut watchdog => {
                    let live = self.liveness(cc);
                    if last_inbound.elapsed() >= live {
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        return Ended::Lost(format!("no frame received for {}s: the connection is dead or half-open", live.as_secs()));
                    }
                    watchdog.as_mut().reset(last_inbound + live);
                }
                msg = ws.next() => {
                    last_inbound = Instant::now();
                    let msg = match msg {
                        None => return Ended::Lost("the server closed the connection".into()),
                        Some(Err(e)) => return Ended::Lost(format!("read failed: {}", Chain(&e))),
                        Some(Ok(m)) => m,
                    };
                    let bytes = match msg {
                        Message::Binary(b) => b,
                        Message::Close(c) => {
                            return Ended::Lost(format!("the server closed the connection{}", c.map(|c| format!(" ({} {})", c.code, c.reason)).unwrap_or_default()));
                        }
                        Message::Text(_) => {
                            tracing::debug!(%conn_id, "text frame ignored");
                            continue;
                        }
                        _ => continue,
                    };
                    let size = bytes.len();
                    let frame = match Received::parse(bytes) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(%conn_id, bytes = size, error = %e, "undecodable frame ignored (no message id to acknowledge)");
                            continue;
                        }
                    };
                    match frame.method {
                        METHOD_CONTROL => {
                            let interval = cc.ping_interval;
                            self.control(frame, cc, conn_id);
                            if cc.ping_interval != interval {
                                // A new interval applies from the last ping.
                                ping.as_mut().reset(last_ping + cc.ping_interval);
                            }
                        }
                        METHOD_DATA => {
                            let Some(id) = frame.header("message_id").filter(|m| !m.is_empty()).and_then(|m| frame.slice_of(m.as_bytes())) else {
                                tracing::warn!(%conn_id, "data frame without message_id ignored");
                                continue;
                            };
                            let message_id = std::str::from_utf8(&id).unwrap_or_default();
                            match reasm.push(message_id, frame, Instant::now()) {
                                Push::Pending => {}
                                Push::Rejected(frame, why) => {
                                    tracing::warn!(%conn_id, %message_id, reason = %why, "message rejected; acknowledged so it is not redelivered");
                                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                                    if let Err(lost) = self.ack(&mut ws, *frame, Instant::now(), Ack::Ok).await {
                                        return lost;
                                    }
                                }
                                Push::Complete(frame, payload) => {
                                    self.stats.messages.fetch_add(1, Ordering::Relaxed);
                                    let started = Instant::now();
                                    if frame.header("type") != Some("event") {
                                        tracing::warn!(%conn_id, %message_id, r#type = frame.header("type").unwrap_or("(none)"), "message of an unhandled type; acknowledged");
                                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                                        if let Err(lost) = self.ack(&mut ws, *frame, started, Ack::Ok).await {
                                            return lost;
                                        }
                                        continue;
                                    }
                                    let answer = AckTo::queued(answer_to.clone(), waiting.push(*frame, started));
                                    let inb = Inbound { payload, origin: Origin::Message(id.clone()), ack: Some(answer) };
                                    tokio::select! {
                                        r = tx.send(inb) => {
                                            if r.is_err() {
                                                tracing::error!(%conn_id, "the core has stopped; closing");
                                                self.drain(&mut ws, &mut waiting, &mut answers, conn_id).await;
                                                return Ended::Shutdown;
                                            }
                                        }
                                        _ = shutdown.cancelled() => {
                                            self.drain(&mut ws, &mut waiting, &mut answers, conn_id).await;
                                            return Ended::Shutdown;
                                        }
                                    }
                                }
                            }
                        }
                        other => tracing::debug!(%conn_id, method = other, "frame of unknown method ignored"),
                    }
                }
            }
        }
    }

    fn control(&self, frame: Received, cc: &mut ClientConfig, conn_id: &str) {
        match frame.header("type") {
            Some("pong") => {
                let Some(p) = frame.payload().filter(|p| !p.is_empty()) else {
                    return;
                };
                match serde_json::from_slice::<ClientConfigJson>(p) {
                    Ok(j) => {
                        let before = *cc;
                        cc.update(&j);
                        if *cc != before {
                            tracing::info!(%conn_id, ping_interval_s = cc.ping_interval.as_secs(), reconnect_interval_s = cc.reconnect_interval.as_secs(), reconnect_nonce_s = cc.reconnect_nonce.as_secs(), reconnect_count = cc.reconnect_count, "client config updated by the server");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%conn_id, error = %e, "pong payload is not a client config; ignored")
                    }
                }
            }
            Some("ping") => {}
            other => {
                tracing::debug!(%conn_id, r#type = other.unwrap_or("(none)"), "control frame ignored")
            }
        }
    }

    /// Send an ack; a failure means the connection is lost.
    async fn ack(
        &self,
        ws: &mut Ws,
        frame: Received,
        started: Instant,
        ack: Ack,
    ) -> Result<(), Ended> {
        self.send_ack(ws, frame, started, ack)
            .await
            .map_err(|e| Ended::Lost(format!("sending an ack failed: {}", Chain(&e))))
    }

    /// Send the acks of these answers in one socket write (a commit
    /// answers a whole batch at once).
    async fn send_acks(
        &self,
        ws: &mut Ws,
        answered: &mut Vec<(u64, Ack)>,
        waiting: &mut Waiting,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        for (id, ack) in answered.drain(..) {
            if let Some((frame, started)) = waiting.take(id) {
                ws.feed(self.ack_message(frame, started, ack)).await?;
            }
        }
        self.stats.ack_writes.fetch_add(1, Ordering::Relaxed);
        ws.flush().await
    }

    /// The ack frame for an answered message, counted.
    fn ack_message(&self, frame: Received, started: Instant, ack: Ack) -> Message {
        let code = match ack {
            Ack::Ok => {
                self.stats.acks_ok.fetch_add(1, Ordering::Relaxed);
                200
            }
            Ack::Retry => {
                self.stats.acks_retry.fetch_add(1, Ordering::Relaxed);
                500
            }
        };
        let rt = started.elapsed().as_millis();
        Message::Binary(frame.ack_bytes(code, rt).into())
    }

    async fn send_ack(
        &self,
        ws: &mut Ws,
        frame: Received,
        started: Instant,
        ack: Ack,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stats.ack_writes.fetch_add(1, Ordering::Relaxed);
        ws.send(self.ack_message(frame, started, ack)).await
    }

    /// Shutdown: read no more, send the acks still owed (within the
    /// platform's 3 s), close the socket cleanly.
    async fn drain(
        &self,
        ws: &mut Ws,
        waiting: &mut Waiting,
        answers: &mut mpsc::UnboundedReceiver<(u64, Ack)>,
        conn_id: &str,
    ) {
        let owed = waiting.len();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut answered = Vec::new();
        while !waiting.is_empty() {
            match tokio::time::timeout_at(
                deadline,
                answers.recv_many(&mut answered, ANSWERS_AT_ONCE),
            )
            .await
            {
                Ok(0) => break,
                Ok(_) => {
                    if self.send_acks(ws, &mut answered, waiting).await.is_err() {
                        break;
                    }
                }
                Err(_) => {
                    tracing::warn!(%conn_id, left = waiting.len(), "shutdown: acks not answered in time (the platform will redeliver)");
                    break;
                }
            }
        }
        let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
        // Read until the server's close reply (or a short timeout).
        let _ = timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        tracing::info!(%conn_id, acks_sent = owed - waiting.len(), "long connection closed");
    }
}

/// What to log of a run of failed reconnect attempts: the first as a
/// WARN, then one WARN summary per [`Outage::SUMMARY_EVERY`] with the
/// count, the rest at DEBUG (the platform down for an hour must not be
/// 3,600 WARN lines).
#[derive(Debug)]
pub(crate) struct Outage {
    since: Instant,
    failed: u64,
    last_report: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OutageReport {
    First,
    Summary { failed: u64, down: Duration },
}

impl Outage {
    pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(300);

    pub(crate) fn new(since: Instant) -> Self {
        Outage {
            since,
            failed: 0,
            last_report: since,
        }
    }

    pub(crate) fn failure(&mut self, now: Instant) -> Option<OutageReport> {
        self.failed += 1;
        if self.failed == 1 {
            self.last_report = now;
            return Some(OutageReport::First);
        }
        if now.duration_since(self.last_report) >= Self::SUMMARY_EVERY {
            self.last_report = now;
            return Some(OutageReport::Summary {
                failed: self.failed,
                down: now.duration_since(self.since),
            });
        }
        None
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
