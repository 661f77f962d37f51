//! Delivery: one ordered worker per sink, so a slow sink never delays
//! another. `http` builds and classifies requests (pure); `worker` runs an
//! HTTP sink's queue; stdout and file sinks write on threads of their own.

pub(crate) mod http;
pub mod probe;
pub(crate) mod worker;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::{BufWriter, Write};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::TimeSource;
use crate::config::{SinkConfig, SinkKind};
use crate::error::Chain;
use crate::message::Message;
use crate::metrics::{SinkStats, SinksStats};
use crate::render::Format;
use crate::store::{OutboxState, StoreHandle};

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("sink `{sink}`: cannot start its thread: {source}")]
    Thread {
        sink: String,
        source: std::io::Error,
    },
    #[error("sink `{sink}`: cannot open {path}: {source}")]
    Open {
        sink: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Handle to the running sink workers: one per configured sink, found by
/// name. A reload changes the set in place ([`Deliverer::reconfigure`]).
pub(crate) struct Deliverer {
    running: Mutex<Running>,
    tracker: TaskTracker,
    /// Local sinks' threads: each signals here when it has drained.
    threads: Mutex<Vec<oneshot::Receiver<()>>>,
    /// Tells every HTTP worker to stop waiting (the drain deadline passed);
    /// each has a child token of its own.
    stop: CancellationToken,
    queue: usize,
    /// How long a sink a reload removed may go on sending what it had
    /// queued (`[delivery] drain_timeout`, as at shutdown).
    drain: Duration,
    clock: TimeSource,
    store: Option<StoreHandle>,
    pub stats: Arc<SinksStats>,
}

#[derive(Default)]
struct Running {
    /// One client for every HTTP sink (connections are reused), built once
    /// some sink speaks HTTP.
    client: Option<reqwest::Client>,
    sinks: Vec<Slot>,
}

impl Running {
    /// The running sink named `name`.
    fn slot(&self, name: &str) -> Option<&Slot> {
        self.sinks.iter().find(|s| *s.config.name == *name)
    }
}

/// One running sink.
struct Slot {
    config: SinkConfig,
    tx: mpsc::Sender<Message>,
    /// An HTTP worker takes changed settings in place, keeping its queue,
    /// order and retries.
    settings: Option<watch::Sender<Arc<SinkConfig>>>,
    /// An HTTP worker's rate limiter takes sends made elsewhere here.
    sent_before: Option<worker::SentBefore>,
    stop: CancellationToken,
}

/// What a reload did to the sinks (names).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SinkChanges {
    pub added: Vec<String>,
    /// New settings taken in place by the running worker.
    pub updated: Vec<String>,
    /// A new worker took over; the old one sends what it had queued.
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
}

impl std::fmt::Display for SinkChanges {
    /// `added a, b; updated c` (nothing: `unchanged`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("updated in place", &self.updated),
            ("replaced", &self.replaced),
            ("removed", &self.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", names.join(", ")));
            }
        }
        if parts.is_empty() {
            return f.write_str("unchanged");
        }
        f.write_str(&parts.join("; "))
    }
}

/// A sink being started: its output opened, not yet running.
enum Start {
    Stdout,
    File(std::fs::File),
    Http(reqwest::Client),
}

/// A line of a `file` sink.
#[derive(Serialize)]
struct FileLine<'a> {
    sink: &'a str,
    subject: &'a str,
    room: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    booking: Option<&'a str>,
    event_id: &'a str,
    idempotency_key: &'a str,
    content_type: &'a str,
    body: Body<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Json(serde_json::Value),
    Text(&'a str),
}

fn file_line(sink: &str, m: &Message) -> String {
    // JSON bodies are re-serialized compactly: one message, one line.
    let body = match m.format {
        Format::Json => serde_json::from_str(&m.body).map_or(Body::Text(&m.body), Body::Json),
        _ => Body::Text(&m.body),
    };
    let line = FileLine {
        sink,
        subject: m.subject.as_str(),
        room: m.room.as_str(),
        booking: m.booking.as_deref(),
        event_id: &m.event_id,
        idempotency_key: &m.idempotency_key,
        content_type: m.format.content_type(),
        body,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

impl Deliverer {
    /// Start one worker per sink. File sinks are opened (created, appended
    /// to) here, so a bad path is a startup error.
    pub(crate) fn start(
        sinks: &[SinkConfig],
        queue: usize,
        drain: Duration,
        clock: TimeSource,
        store: Option<StoreHandle>,
    ) -> Result<Self, DeliverError> {
        let d = Deliverer {
            running: Mutex::default(),
            tracker: TaskTracker::new(),
            threads: Mutex::default(),
            stop: CancellationToken::new(),
            queue,
            drain,
            clock,
            store,
            stats: Arc::default(),
        };
        d.reconfigure(sinks)?;
        Ok(d)
    }

    fn running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `sinks` from now on. A sink whose settings are unchanged keeps
    /// its worker; an HTTP sink whose messages would look the same (same
    /// service, payload and template) takes the new URL, secret, headers,
    /// filters, limits and hours in place, with its queue; any other
    /// change starts a new worker beside the old one, which (like a removed
    /// sink) sends what it had queued, for at most the drain timeout — what
    /// is left then stays in the store's outbox. Nothing changes if a new
    /// sink cannot be opened.
    pub(crate) fn reconfigure(&self, sinks: &[SinkConfig]) -> Result<SinkChanges, DeliverError> {
        let mut running = self.running();
        // Everything that can fail comes first.
        let mut client = running.client.clone();
        let mut starts = Vec::new();
        for sink in sinks {
            let start = match running.slot(&sink.name) {
                Some(o) if o.config.same_as(sink) || o.config.updatable_to(sink) => None,
                _ => Some(self.open(sink, &mut client)?),
            };
            starts.push(start);
        }
        running.client = client;
        let stats = self.stats.configure(sinks.iter().map(|s| s.name.as_str()));
        let mut previous = std::mem::take(&mut running.sinks);
        let mut changes = SinkChanges::default();
        for ((sink, start), stats) in sinks.iter().zip(starts).zip(stats) {
            let kept = previous
                .iter()
                .position(|s| s.config.name == sink.name)
                .map(|i| previous.swap_remove(i));
            let slot = match (start, kept) {
                (None, Some(mut slot)) => {
                    if !slot.config.same_as(sink) {
                        if let Some(settings) = &slot.settings {
                            settings.send_replace(Arc::new(sink.clone()));
                        }
                        slot.config = sink.clone();
                        changes.updated.push(sink.name.clone());
                    }
                    slot
                }
                (Some(start), kept) => {
                    if let Some(old) = kept {
                        self.retire(old);
                        changes.replaced.push(sink.name.clone());
                    } else {
                        changes.added.push(sink.name.clone());
                    }
                    self.spawn(sink, start, stats)?
                }
                // Not reached: a sink without a start has a running slot.
                (None, None) => continue,
            };
            running.sinks.push(slot);
        }
        for gone in previous {
            changes.removed.push(gone.config.name.clone());
            self.retire(gone);
        }
        Ok(changes)
    }

    /// Open what a new sink writes to (fallible; nothing runs yet).
    fn open(
        &self,
        sink: &SinkConfig,
        client: &mut Option<reqwest::Client>,
    ) -> Result<Start, DeliverError> {
        Ok(match sink.kind {
            SinkKind::Stdout => Start::Stdout,
            SinkKind::File => {
                let path = sink.path.clone().unwrap_or_default();
                let open = || {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                };
                Start::File(open().map_err(|source| DeliverError::Open {
                    sink: sink.name.clone(),
                    path: path.clone(),
                    source,
                })?)
            }
            _ => match client {
                Some(c) => Start::Http(c.clone()),
                None => {
                    crate::tls::init();
                    let c = reqwest::Client::builder()
                        .user_agent(concat!("roomcast/", env!("CARGO_PKG_VERSION")))
                        .connect_timeout(Duration::from_secs(10))
                        .build()
                        .map_err(DeliverError::Client)?;
                    *client = Some(c.clone());
                    Start::Http(c)
                }
            },
        })
    }

    /// Start a sink's worker.
    fn spawn(
        &self,
        sink: &SinkConfig,
        start: Start,
        stats: Arc<SinkStats>,
    ) -> Result<Slot, DeliverError> {
        let (tx, rx) = mpsc::channel::<Message>(self.queue);
        let stop = self.stop.child_token();
        let (store, clock) = (self.store.clone(), self.clock.clone());
        let name = sink.name.clone();
        let mut settings = None;
        let mut sent_before = None;
        // Local sinks write with blocking I/O on one thread each: no
        // thread-pool hop per write. Stdout is locked per flush only
        // (holding it while idle would block every other printer).
        let thread = match start {
            Start::Stdout => Some(local_thread(&sink.name, move || {
                let out = BufWriter::new(std::io::stdout());
                write_lines(rx, out, &stats, &name, false, store, clock)
            })?),
            Start::File(f) => Some(local_thread(&sink.name, move || {
                write_lines(rx, BufWriter::new(f), &stats, &name, true, store, clock)
            })?),
            Start::Http(client) => {
                let config = Arc::new(sink.clone());
                let (tx, updates) = watch::channel(config.clone());
                settings = Some(tx);
                let w = worker::Worker::new(config, client, stats, clock, store);
                sent_before = Some(w.sent_before());
                let done = stop.clone();
                self.tracker.spawn(async move {
                    w.run(rx, updates, done.clone()).await;
                    // Ends a removed sink's drain deadline early.
                    done.cancel();
                });
                None
            }
        };
        if let Some(t) = thread {
            self.threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(t);
        }
        Ok(Slot {
            config: sink.clone(),
            tx,
            settings,
            sent_before,
            stop,
        })
    }

    /// A sink that no longer runs: its queue closes; it sends what it has
    /// for at most the drain timeout, then stops (what is left stays in the
    /// store's outbox).
    fn retire(&self, slot: Slot) {
        let Slot { tx, stop, .. } = slot;
        drop(tx);
        let drain = self.drain;
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(drain) => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
    }

    /// Sends another instance made for `sink` (this long ago each), before
    /// this one took the sink over: its rate limits count them, so a
    /// receiver's limit holds across a handover.
    pub(crate) fn sent_elsewhere(&self, sink: &str, ago: &[Duration]) {
        let running = self.running();
        let Some(slot) = running.slot(sink).and_then(|s| s.sent_before.as_ref()) else {
            return;
        };
        let now = tokio::time::Instant::now();
        slot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ago.iter().filter_map(|a| now.checked_sub(*a)));
    }

    /// Queue a message on its sink's worker (waits when the queue is full:
    /// back-pressure reaches the source, nothing is dropped). A message for
    /// a sink a reload removed is marked failed in the outbox.
    pub(crate) async fn send(&self, m: Message) {
        let tx = self.running().slot(&m.sink).map(|s| s.tx.clone());
        match tx {
            Some(tx) => {
                if let Err(e) = tx.send(m).await {
                    tracing::error!(sink = %e.0.sink, "sink worker has stopped");
                }
            }
            None => {
                tracing::warn!(sink = %m.sink, room = %m.room, event = %m.event_id, "message for a sink no longer configured; not sent");
                if let (Some(store), Some(id)) = (&self.store, m.outbox_id) {
                    drop(store.mark(
                        id,
                        OutboxState::Failed,
                        Some("sink no longer configured"),
                        (self.clock)(),
                    ));
                }
            }
        }
    }

    /// Close the queues and wait until every worker has drained.
    pub(crate) async fn finish(self, drain: Duration) {
        drop(std::mem::take(&mut self.running().sinks));
        self.tracker.close();
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                drain_s = drain.as_secs(),
                "sink queues not drained in time; stopping"
            );
            self.stop.cancel();
            self.tracker.wait().await;
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for done in threads {
            // Err: the thread ended without signalling (it panicked); it is
            // gone either way.
            let _ = done.await;
        }
    }
}

/// Run a local sink on an OS thread of its own (not tokio's blocking pool,
/// whose long-running tasks would also stop a paused test clock).
fn local_thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<oneshot::Receiver<()>, DeliverError> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .map_err(|source| DeliverError::Thread {
            sink: name.to_string(),
            source,
        })?;
    Ok(rx)
}

/// Write each message as a line (the body, or for a `file` sink the
/// message as JSON); flush whenever the queue runs dry. Blocking: runs on a
/// thread of its own.
fn write_lines<W: Write>(
    mut rx: mpsc::Receiver<Message>,
    mut out: W,
    stats: &SinkStats,
    name: &str,
    jsonl: bool,
    store: Option<StoreHandle>,
    clock: TimeSource,
) {
    let mut buf = String::new();
    let mut ids: Vec<i64> = Vec::new();
    while let Some(m) = rx.blocking_recv() {
        let mut n = 0u64;
        let mut next = Some(m);
        while let Some(m) = next {
            ids.extend(m.outbox_id);
            if jsonl {
                buf.push_str(&file_line(name, &m));
            } else {
                buf.push_str(m.body.trim_end());
            }
            buf.push('\n');
            n += 1;
            next = rx.try_recv().ok();
        }
        let res = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
        buf.clear();
        match res {
            Ok(()) => {
                stats.delivered.fetch_add(n, Ordering::Relaxed);
                if let Some(store) = &store
                    && !ids.is_empty()
                {
                    // Written before the next batch: a crash repeats at
                    // most this one.
                    let _ = store.delivered(&ids, clock()).blocking_recv();
                }
                ids.clear();
            }
            Err(e) => {
                // Left pending in the store: written again at the next start.
                tracing::error!(sink = %name, error = %Chain(&e), count = n, "write failed");
                stats.failed.fetch_add(n, Ordering::Relaxed);
                ids.clear();
            }
        }
    }
}

/// A URL safe to show: its password, query values and every path segment
/// that may be a token (after `hook`, `token`, `key` or `secret`; 16
/// characters or more; 8 or more mixing letters and digits) are masked.
/// `{room}` stays a placeholder, or becomes `room` when one is given.
fn redact_url(url: &url::Url, room: Option<&crate::model::RoomId>) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        out.push_str(url.username());
        if url.password().is_some() {
            out.push_str(":***");
        }
        out.push('@');
    }
    out.push_str(url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        out.push_str(&format!(":{p}"));
    }
    let mut after_marker = false;
    for seg in url.path_segments().into_iter().flatten() {
        out.push('/');
        if seg == "%7Broom%7D" {
            match room {
                Some(r) => out.extend(url::form_urlencoded::byte_serialize(r.as_str().as_bytes())),
                None => out.push_str("{room}"),
            }
            continue;
        }
        let mixed =
            seg.bytes().any(|b| b.is_ascii_digit()) && seg.bytes().any(|b| b.is_ascii_alphabetic());
        let secret = after_marker || seg.len() >= 16 || (seg.len() >= 8 && mixed);
        out.push_str(if secret && !seg.is_empty() {
            "***"
        } else {
            seg
        });
        let lower = seg.to_ascii_lowercase();
        after_marker =
            ["hook", "hooks", "token", "tokens", "key", "keys", "secret"].contains(&lower.as_str());
    }
    let mut first = true;
    for (k, _) in url.query_pairs() {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(&k);
        out.push_str("=***");
    }
    out
}

/// What `roomcast preview` shows of one message: the request the sink
/// would be sent — method, URL (redacted, `{room}` filled in), every
/// header (custom ones as the config writes them, `${NAME}` unexpanded),
/// and the body (a Feishu/Lark signature masked). `None` for sinks that
/// are not HTTP (stdout, file: their line is the body).
pub fn preview_request(sink: &SinkConfig, m: &Message, now: DateTime<Utc>) -> Option<String> {
    let req = http::build(sink, m, now)?;
    // The configured path, `{room}` and all: the room is filled in here,
    // after the segments are judged (a room id is not a secret).
    let mut url = req.url.clone();
    if let Some(configured) = &sink.url {
        url.set_path(configured.path());
    }
    let mut out = format!("{} {}\n", req.method, redact_url(&url, Some(&m.room)));
    for (name, value) in &req.headers {
        let shown = sink
            .headers
            .iter()
            .find(|h| &h.name == name)
            .map_or(value.as_str(), |h| h.shown.as_str());
        out.push_str(&format!("{name}: {shown}\n"));
    }
    out.push('\n');
    let mut body = String::from_utf8_lossy(&req.body).into_owned();
    let sign = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("sign").and_then(|s| s.as_str()).map(str::to_string));
    if let Some(sign) = sign.filter(|s| !s.is_empty()) {
        body = body.replace(&sign, "***");
    }
    out.push_str(body.trim_end());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(text: &str) -> Vec<SinkConfig> {
        let env = std::collections::BTreeMap::<String, String>::new();
        let text = format!("[source]\nkind = \"replay\"\nreplay_file = \"x\"\n{text}");
        crate::config::parse(&text, &std::env::temp_dir(), &env)
            .expect("config")
            .sinks
    }

    /// Which sinks a reload keeps, updates in place, replaces, adds and
    /// removes; a retired sink's queue is closed, so a message for it is
    /// not sent (and nothing panics).
    #[tokio::test(start_paused = true)]
    async fn a_reload_sorts_sinks_by_what_changed() {
        let dir = std::env::temp_dir().join(format!("roomcast-deliver-{}", rand::random::<u64>()));
        let file = |name: &str| {
            format!(
                "[[sinks]]\nname = \"{name}\"\nkind = \"file\"\npath = \"{}\"\n",
                dir.join(format!("{name}.jsonl")).display()
            )
        };
        let hook = |name: &str, extra: &str| {
            format!(
                "[[sinks]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/{name}\"\n{extra}\n"
            )
        };
        let first = [file("same"), hook("url", ""), hook("tpl", ""), file("gone")].concat();
        let clock = crate::clock::system();
        let d = Deliverer::start(&sinks(&first), 8, Duration::from_secs(1), clock, None)
            .expect("start");
        let second = [
            file("same"),
            hook("url", "rate_limit = [\"1/s\"]"),
            hook("tpl", "template = \"text\""),
            file("new"),
        ]
        .concat();
        let changes = d.reconfigure(&sinks(&second)).expect("reload");
        assert_eq!(
            changes,
            SinkChanges {
                added: vec!["new".into()],
                updated: vec!["url".into()],
                replaced: vec!["tpl".into()],
                removed: vec!["gone".into()],
            }
        );
        assert_eq!(
            changes.to_string(),
            "added new; updated in place url; replaced tpl; removed gone"
        );
        assert_eq!(
            d.reconfigure(&sinks(&second)).expect("again").to_string(),
            "unchanged"
        );
        let live: Vec<String> = d.stats.live().into_iter().map(|(n, _)| n).collect();
        assert_eq!(live, ["same", "url", "tpl", "new"]);
        d.send(Message {
            sink: Arc::from("gone"),
            outbox_id: None,
            idempotency_key: "k".into(),
            event_id: Arc::from("e"),
            room: crate::model::RoomId::new("r"),
            subject: crate::message::Subject::Snapshot,
            booking: None,
            body: "{}".into(),
            format: Format::Json,
            restored: false,
        })
        .await;
        d.finish(Duration::from_secs(1)).await;
        let gone = std::fs::read_to_string(dir.join("gone.jsonl")).unwrap_or_default();
        assert!(gone.is_empty(), "{gone}");
    }

    #[test]
    fn urls_are_redacted() {
        let u =
            url::Url::parse("https://open.feishu.cn/open-apis/bot/v2/hook/0123456789abcdef0123")
                .unwrap();
        assert_eq!(
            redact_url(&u, None),
            "https://open.feishu.cn/open-apis/bot/v2/hook/***"
        );
        let u =
            url::Url::parse("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc").unwrap();
        assert_eq!(
            redact_url(&u, None),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
        );
    }
}
