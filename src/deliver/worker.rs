//! One HTTP sink's worker: an ordered queue, rate limits, quiet hours,
//! retries with the one retry policy, and (for room snapshots) latest state
//! wins.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::http::{self, Attempt};
use crate::clock::TimeSource;
use crate::config::{Payload, QuietHours, SinkConfig};
use crate::error::Chain;
use crate::message::Message;
use crate::metrics::SinkStats;
use crate::retry::{Limiter, Policy, jitter};
use crate::store::{OutboxState, StoreHandle};

/// Backoff between attempts of one message.
pub(crate) const BACKOFF: Policy = Policy::Exponential {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(300),
};

/// If `now` is inside the quiet hours (in `tz`), how long until they end.
pub(crate) fn quiet_for(q: &QuietHours, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<Duration> {
    let local = now.with_timezone(&tz);
    if !q.contains(local.time()) {
        return None;
    }
    let mut date = local.date_naive();
    if q.end <= local.time() {
        date = date.succ_opt()?;
    }
    // The end as a local time (a DST gap moves it later, never earlier).
    let end = crate::locale::resolve_local(tz, date.and_time(q.end))?;
    (end.with_timezone(&Utc) - now).to_std().ok()
}

struct Pending {
    msg: Message,
    /// Where it goes (the sink URL with `{room}` filled in): messages to
    /// one target keep their order; different targets do not wait on
    /// each other.
    target: Option<String>,
    queued: Instant,
    attempt: u32,
    not_before: Instant,
}

/// Which queued message goes next: the first whose time has come and that
/// no earlier, still-waiting message to the same target holds back (a
/// retrying panel device delays its own room, not the others; a chat
/// webhook, one target, keeps strict order). `Err`: when one will be ready.
fn next_ready(q: &VecDeque<Pending>, now: Instant) -> Result<usize, Instant> {
    let mut held: Vec<Option<&str>> = Vec::new();
    let mut earliest: Option<Instant> = None;
    for (i, p) in q.iter().enumerate() {
        let target = p.target.as_deref();
        if held.contains(&target) {
            continue;
        }
        if p.not_before <= now {
            return Ok(i);
        }
        held.push(target);
        earliest = Some(earliest.map_or(p.not_before, |e| e.min(p.not_before)));
    }
    Err(earliest.unwrap_or(now))
}

/// When each room's panel was last pushed (sinks with `min_interval`).
type Pushed = std::collections::HashMap<crate::model::RoomId, Instant>;

/// Everything a worker needs.
pub(crate) struct Worker {
    /// Its settings (a reload may replace them: see [`Worker::run`]).
    sink: Arc<SinkConfig>,
    client: reqwest::Client,
    stats: Arc<SinkStats>,
    clock: TimeSource,
    /// Where outcomes are recorded (the outbox), if there is a store.
    store: Option<StoreHandle>,
    /// Sends another instance made for this sink before this one took it
    /// over (when, on this process's clock): the rate limits count them.
    sent_before: SentBefore,
}

/// Where sends made elsewhere are handed to a worker's rate limiter.
pub(crate) type SentBefore = Arc<std::sync::Mutex<Vec<Instant>>>;

impl Worker {
    pub(crate) fn new(
        sink: Arc<SinkConfig>,
        client: reqwest::Client,
        stats: Arc<SinkStats>,
        clock: TimeSource,
        store: Option<StoreHandle>,
    ) -> Self {
        Worker {
            sink,
            client,
            stats,
            clock,
            store,
            sent_before: SentBefore::default(),
        }
    }

    /// Where [`Worker::run`] takes sends made elsewhere from.
    pub(crate) fn sent_before(&self) -> SentBefore {
        self.sent_before.clone()
    }

    fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// New settings from a reload, taken between two attempts: what is
    /// queued stays queued, in order, and goes with them (a fixed secret or
    /// URL applies to the retries too); the rate limiter keeps its history
    /// unless the limits changed.
    fn update(&mut self, new: Arc<SinkConfig>, q: &mut VecDeque<Pending>, limiter: &mut Limiter) {
        if new.rate_limits != self.sink.rate_limits {
            *limiter = Limiter::new(&new.rate_limits);
        }
        self.sink = new;
        for p in q.iter_mut() {
            p.target = http::target_url(&self.sink, &p.msg).map(String::from);
        }
        tracing::info!(sink = %self.sink.name, queued = q.len(), "sink settings changed; queued messages go with the new ones");
    }

    /// Record a message's fate in the outbox, and wait until it is
    /// written: a crash then repeats at most the message in flight.
    async fn record(&self, m: &Message, state: OutboxState, error: Option<&str>) {
        if let (Some(store), Some(id)) = (&self.store, m.outbox_id) {
            let _ = store.mark(id, state, error, (self.clock)()).await;
        }
    }

    /// Queue a message; for snapshot sinks a queued snapshot of the same
    /// room is replaced in place (latest state wins, order kept) — unless
    /// it was read back from the store at start and not tried since: it
    /// may have been delivered before an unclean stop, so it is sent again
    /// under its key and the newer one follows it.
    async fn enqueue(&self, q: &mut VecDeque<Pending>, pushed: &Pushed, msg: Message) {
        if self.sink.payload == Payload::Snapshot
            && let Some(p) = q
                .iter_mut()
                .rev()
                .find(|p| p.msg.room == msg.room)
                .filter(|p| !(p.msg.restored && p.attempt == 0))
        {
            let old = std::mem::replace(&mut p.msg, msg);
            self.record(&old, OutboxState::Superseded, None).await;
            self.stats().coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Instant::now();
        let target = http::target_url(&self.sink, &msg).map(String::from);
        // A panel pushed less than `min_interval` ago waits; what comes
        // meanwhile replaces this (above), so the wait ends on the latest.
        let not_before = match (self.sink.min_interval, pushed.get(&msg.room)) {
            (Some(min), Some(last)) => now.max(*last + min),
            _ => now,
        };
        q.push_back(Pending {
            msg,
            target,
            queued: now,
            attempt: 0,
            not_before,
        });
        self.stats().queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Run until the queue is closed and empty, or `stop` fires (then what
    /// is left is logged as undelivered). Settings sent on `settings` are
    /// taken as they come.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Message>,
        mut settings: watch::Receiver<Arc<SinkConfig>>,
        stop: CancellationToken,
    ) {
        let name = self.sink.name.clone();
        let mut q: VecDeque<Pending> = VecDeque::new();
        let mut pushed = Pushed::default();
        let mut limiter = Limiter::new(&self.sink.rate_limits);
        let mut open = true;
        // Until the sink is removed (the sender is dropped).
        let mut watching = true;
        loop {
            // Sends another instance made (it held the sink before).
            let past = std::mem::take(
                &mut *self
                    .sent_before
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if !past.is_empty() {
                limiter.seed(&past);
            }
            // Settings that came during an attempt.
            if watching && settings.has_changed().unwrap_or(false) {
                let new = settings.borrow_and_update().clone();
                self.update(new, &mut q, &mut limiter);
            }
            while let Ok(m) = rx.try_recv() {
                self.enqueue(&mut q, &pushed, m).await;
            }
            if q.is_empty() {
                if !open {
                    break;
                }
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => self.enqueue(&mut q, &pushed, m).await,
                        None => open = false,
                    },
                    r = settings.changed(), if watching => match r {
                        Ok(()) => {
                            let new = settings.borrow_and_update().clone();
                            self.update(new, &mut q, &mut limiter);
                        }
                        Err(_) => watching = false,
                    },
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let now = Instant::now();
            let pick = next_ready(&q, now);
            let mut ready = match pick {
                Ok(_) => now,
                Err(at) => at,
            }
            .max(limiter.next_free(now));
            if let Some(qh) = &self.sink.quiet_hours {
                let tz = self.sink.tz.unwrap_or(chrono_tz::UTC);
                if let Some(wait) = quiet_for(qh, tz, (self.clock)()) {
                    ready = ready.max(now + wait);
                }
            }
            if ready > now {
                tokio::select! {
                    () = sleep_until(ready) => {}
                    m = rx.recv(), if open => match m {
                        Some(m) => self.enqueue(&mut q, &pushed, m).await,
                        None => open = false,
                    },
                    // The wait is worked out again (the limits or hours
                    // may differ).
                    r = settings.changed(), if watching => match r {
                        Ok(()) => {
                            let new = settings.borrow_and_update().clone();
                            self.update(new, &mut q, &mut limiter);
                        }
                        Err(_) => watching = false,
                    },
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let Ok(at) = pick else { continue };
            let Some(mut p) = q.remove(at) else { continue };
            limiter.record(Instant::now());
            if self.sink.min_interval.is_some() {
                pushed.insert(p.msg.room.clone(), Instant::now());
            }
            match self.attempt(&p.msg).await {
                Attempt::Delivered => {
                    self.stats().delivered.fetch_add(1, Ordering::Relaxed);
                    self.record(&p.msg, OutboxState::Delivered, None).await;
                    tracing::debug!(sink = %name, key = %p.msg.idempotency_key, attempt = p.attempt + 1, "delivered");
                }
                Attempt::Failed { reason } => {
                    self.stats().failed.fetch_add(1, Ordering::Relaxed);
                    self.record(&p.msg, OutboxState::Failed, Some(&reason))
                        .await;
                    tracing::error!(sink = %name, room = %p.msg.room, booking = p.msg.booking.as_deref().unwrap_or("-"), event = %p.msg.event_id, %reason, "delivery failed; not retryable");
                }
                Attempt::Retry { after, reason } => {
                    let age = p.queued.elapsed();
                    let wait = BACKOFF
                        .delay(p.attempt, jitter())
                        .max(after.unwrap_or_default())
                        .max(self.sink.min_interval.unwrap_or_default());
                    if age + wait > self.sink.max_age {
                        self.stats().dead.fetch_add(1, Ordering::Relaxed);
                        self.record(&p.msg, OutboxState::Dead, Some(&reason)).await;
                        tracing::error!(sink = %name, room = %p.msg.room, booking = p.msg.booking.as_deref().unwrap_or("-"), event = %p.msg.event_id, attempts = p.attempt + 1, %reason, "dead letter: still undelivered at max_age");
                        continue;
                    }
                    self.stats().retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sink = %name, attempt = p.attempt + 1, retry_in_ms = wait.as_millis() as u64, %reason, "delivery failed; will retry");
                    // Still pending: the attempt and its error are kept, so
                    // `roomcast outbox` shows why it waits.
                    self.record(&p.msg, OutboxState::Pending, Some(&reason))
                        .await;
                    p.attempt += 1;
                    p.not_before = Instant::now() + wait;
                    // A newer snapshot of the room queued meanwhile
                    // replaces this one (latest state wins)...
                    if self.sink.payload == Payload::Snapshot
                        && let Some(newer) = q.iter_mut().find(|n| n.msg.room == p.msg.room)
                    {
                        newer.attempt = p.attempt;
                        newer.not_before = newer.not_before.max(p.not_before);
                        self.record(&p.msg, OutboxState::Superseded, None).await;
                        self.stats().coalesced.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // ...otherwise it keeps its place: its target's order
                    // is kept.
                    q.insert(at.min(q.len()), p);
                }
            }
        }
        // What is left: kept in the store's outbox (sent at the next start,
        // same keys), or, without a store, lost.
        let kept = q.iter().filter(|p| p.msg.outbox_id.is_some()).count();
        let lost = q.len() - kept;
        if kept > 0 {
            tracing::warn!(sink = %name, left = kept, "stopping with messages still queued; they are kept in the store and sent at the next start");
            self.stats().kept.fetch_add(kept as u64, Ordering::Relaxed);
        }
        if lost > 0 {
            tracing::error!(sink = %name, left = lost, "stopping with undelivered messages (no store keeps them: they are lost)");
            self.stats()
                .failed
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
    }

    async fn attempt(&self, m: &Message) -> Attempt {
        send(&self.client, &self.sink, m, (self.clock)()).await.0
    }
}

/// What a receiver answered: its status and (the start of) its body.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Send `m` to `sink` once and judge the answer (none: the request itself
/// failed or timed out).
pub(crate) async fn send(
    client: &reqwest::Client,
    sink: &SinkConfig,
    m: &Message,
    now: DateTime<Utc>,
) -> (Attempt, Option<Answer>) {
    let Some(req) = http::build(sink, m, now) else {
        let reason = "no URL".into();
        return (Attempt::Failed { reason }, None);
    };
    let method =
        reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut rb = client
        .request(method, req.url)
        .timeout(sink.timeout)
        .body(req.body);
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    match rb.send().await {
        Err(e) => {
            let attempt = Attempt::Retry {
                after: None,
                // without_url: the URL may carry a token (hook ids, keys);
                // the chain keeps the cause (connection refused, TLS, …).
                reason: if e.is_timeout() {
                    "timed out".into()
                } else {
                    format!("request failed: {}", Chain(&e.without_url()))
                },
            };
            (attempt, None)
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| http::parse_retry_after(v, now));
            let body = resp.bytes().await.unwrap_or_default();
            let attempt = http::classify(sink.kind, status, after, &body);
            let body = body.to_vec();
            (attempt, Some(Answer { status, body }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(target: &str, not_before: Instant) -> Pending {
        Pending {
            msg: Message {
                sink: Arc::from("a"),
                outbox_id: None,
                idempotency_key: String::new(),
                event_id: Arc::from("e"),
                room: crate::model::RoomId::new(target),
                subject: crate::message::Subject::Snapshot,
                booking: None,
                body: String::new(),
                format: crate::render::Format::Json,
                restored: false,
            },
            target: Some(target.to_string()),
            queued: not_before,
            attempt: 0,
            not_before,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_message_holds_back_its_own_target_only() {
        let now = Instant::now();
        let later = now + Duration::from_secs(4);
        let q: VecDeque<Pending> =
            [pending("a", later), pending("a", now), pending("b", now)].into();
        assert_eq!(next_ready(&q, now), Ok(2), "b goes; the second a waits");
        let q: VecDeque<Pending> = [pending("a", later), pending("a", now)].into();
        assert_eq!(next_ready(&q, now), Err(later));
        assert_eq!(next_ready(&q, later), Ok(0), "in order once due");
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_windows() {
        use crate::retry::RateLimit;
        let mut l = Limiter::new(&[
            RateLimit {
                count: 2,
                period: Duration::from_secs(1),
            },
            RateLimit {
                count: 3,
                period: Duration::from_secs(60),
            },
        ]);
        let t0 = Instant::now();
        assert_eq!(l.next_free(t0), t0);
        l.record(t0);
        l.record(t0);
        // Not at +1,000 ms exactly: the receiver could count it in the
        // same window.
        let second = t0 + Duration::from_millis(1050);
        assert_eq!(l.next_free(t0), second);
        l.record(second);
        assert_eq!(
            l.next_free(second),
            t0 + Duration::from_secs(62),
            "the per-minute window binds, with its margin"
        );
    }

    /// Sends the sink's last owner made (another instance) count: after
    /// two of 2/s a moment ago, the next waits out their window.
    #[tokio::test(start_paused = true)]
    async fn limiter_counts_sends_made_elsewhere() {
        use crate::retry::RateLimit;
        let mut l = Limiter::new(&[RateLimit {
            count: 2,
            period: Duration::from_secs(1),
        }]);
        let t0 = Instant::now() + Duration::from_secs(10);
        l.record(t0);
        l.seed(&[
            t0 - Duration::from_millis(300),
            t0 - Duration::from_millis(900),
        ]);
        // The newest two: t0 - 300 ms and t0.
        assert_eq!(
            l.next_free(t0),
            t0 - Duration::from_millis(300) + Duration::from_millis(1050)
        );
    }

    #[test]
    fn quiet_hours_end_in_the_sinks_zone() {
        let q = QuietHours::parse("22:00-07:00").unwrap();
        let tz = chrono_tz::Asia::Shanghai;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 23:30 Shanghai → quiet until 07:00 next day
        assert_eq!(
            quiet_for(&q, tz, at("2026-03-02T15:30:00Z")),
            Some(Duration::from_secs(7 * 3600 + 1800))
        );
        // 06:00 Shanghai → one hour left
        assert_eq!(
            quiet_for(&q, tz, at("2026-03-02T22:00:00Z")),
            Some(Duration::from_secs(3600))
        );
        // noon → not quiet
        assert_eq!(quiet_for(&q, tz, at("2026-03-02T04:00:00Z")), None);
        // New York, the night clocks spring forward (02:00 → 03:00): 22:00
        // EST to 07:00 EDT is 8 hours.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            quiet_for(&q, ny, at("2026-03-08T03:00:00Z")),
            Some(Duration::from_secs(8 * 3600))
        );
    }
}
