//! Delivery: one ordered worker per sink, so a slow sink never delays
//! another. `http` builds and classifies requests (pure); `worker` runs an
//! HTTP sink's queue; stdout and file sinks write on threads of their own.

pub(crate) mod http;
pub(crate) mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::{BufWriter, Write};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::TimeSource;
use crate::config::{SinkConfig, SinkKind};
use crate::error::Chain;
use crate::message::Message;
use crate::metrics::{SinkStats, SinksStats};
use crate::render::Format;
use crate::store::StoreHandle;

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

/// Handle to the running sink workers.
pub(crate) struct Deliverer {
    senders: Vec<mpsc::Sender<Message>>,
    tracker: TaskTracker,
    /// Local sinks' threads: each signals here when it has drained.
    threads: Vec<tokio::sync::oneshot::Receiver<()>>,
    /// Tells HTTP workers to stop waiting (drain deadline passed).
    stop: CancellationToken,
    pub stats: Arc<SinksStats>,
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
        clock: TimeSource,
        store: Option<StoreHandle>,
    ) -> Result<Self, DeliverError> {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        // One client for every HTTP sink (connections are reused), built
        // only if some sink speaks HTTP.
        let client = if sinks.iter().any(|s| s.kind.is_http()) {
            crate::tls::init();
            Some(
                reqwest::Client::builder()
                    .user_agent(concat!("roomcast/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build()
                    .map_err(DeliverError::Client)?,
            )
        } else {
            None
        };
        let mut threads = Vec::new();
        let mut senders = Vec::new();
        let stats: Arc<SinksStats> = Arc::new(
            sinks
                .iter()
                .map(|s| (s.name.clone(), SinkStats::default()))
                .collect(),
        );
        for (i, sink) in sinks.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Message>(queue);
            senders.push(tx);
            let stats = stats.clone();
            match sink.kind {
                // Local sinks write with blocking I/O on one thread each: no
                // thread-pool hop per write. Stdout is locked per flush only
                // (holding it while idle would block every other printer).
                SinkKind::Stdout => {
                    let (store, clock) = (store.clone(), clock.clone());
                    threads.push(local_thread(&sink.name, move || {
                        let out = BufWriter::new(std::io::stdout());
                        write_lines(rx, out, &stats, i, None, store, clock)
                    })?);
                }
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
                    let f = open().map_err(|source| DeliverError::Open {
                        sink: sink.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let name = sink.name.clone();
                    let (store, clock) = (store.clone(), clock.clone());
                    threads.push(local_thread(&sink.name, move || {
                        write_lines(rx, BufWriter::new(f), &stats, i, Some(name), store, clock)
                    })?);
                }
                _ => {
                    let Some(client) = client.clone() else {
                        continue;
                    };
                    let w = worker::Worker::new(
                        sink.clone(),
                        client,
                        stats,
                        i,
                        clock.clone(),
                        store.clone(),
                    );
                    tracker.spawn(w.run(rx, stop.clone()));
                }
            }
        }
        tracker.close();
        Ok(Deliverer {
            senders,
            tracker,
            threads,
            stop,
            stats,
        })
    }

    /// Queue a message on its sink's worker (waits when the queue is full:
    /// back-pressure reaches the source, nothing is dropped).
    pub(crate) async fn send(&self, m: Message) {
        let i = m.sink.get();
        if let Some(tx) = self.senders.get(i)
            && tx.send(m).await.is_err()
        {
            tracing::error!(sink = i, "sink worker has stopped");
        }
    }

    /// Close the queues and wait until every worker has drained.
    pub(crate) async fn finish(self, drain: std::time::Duration) {
        drop(self.senders);
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
        for done in self.threads {
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
) -> Result<tokio::sync::oneshot::Receiver<()>, DeliverError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
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

/// Write each message as a line; flush whenever the queue runs dry.
/// Blocking: runs on a thread of its own.
fn write_lines<W: Write>(
    mut rx: mpsc::Receiver<Message>,
    mut out: W,
    stats: &[(String, SinkStats)],
    i: usize,
    jsonl_sink: Option<String>,
    store: Option<StoreHandle>,
    clock: TimeSource,
) {
    let name = &stats[i].0;
    let mut buf = String::new();
    let mut ids: Vec<i64> = Vec::new();
    while let Some(m) = rx.blocking_recv() {
        let mut n = 0u64;
        let mut next = Some(m);
        while let Some(m) = next {
            ids.extend(m.outbox_id);
            match &jsonl_sink {
                Some(sink) => buf.push_str(&file_line(sink, &m)),
                None => buf.push_str(m.body.trim_end()),
            }
            buf.push('\n');
            n += 1;
            next = rx.try_recv().ok();
        }
        let res = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
        buf.clear();
        match res {
            Ok(()) => {
                stats[i].1.delivered.fetch_add(n, Ordering::Relaxed);
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
                stats[i].1.failed.fetch_add(n, Ordering::Relaxed);
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
