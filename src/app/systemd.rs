//! systemd's service protocol (`Type=notify`): `READY=1` once the store is
//! restored and the source and HTTP server are up, `STOPPING=1` at
//! shutdown, and, with `WatchdogSec=`, `WATCHDOG=1` every half interval —
//! but only while the core's loop answers (a question it must answer
//! between two events), so a core that hangs is restarted by systemd. Off
//! when `NOTIFY_SOCKET` is unset (not under systemd): nothing is sent.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::Chain;
use crate::http::Query;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %Chain(&e), "cannot notify systemd");
    }
}

/// Tell systemd the service is up.
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell systemd the service is stopping.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Feed systemd's watchdog while the core answers, until `stop`.
pub(super) fn watchdog(queries: mpsc::Sender<Query>, stop: CancellationToken) {
    let Some(limit) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (limit / 2).max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (tx, rx) = oneshot::channel();
            if queries.send(Query::Alive(tx)).await.is_err() {
                return;
            }
            match tokio::time::timeout(every, rx).await {
                Ok(Ok(())) => send(&[NotifyState::Watchdog]),
                Ok(Err(_)) => return,
                Err(_) => tracing::warn!(
                    waited_ms = every.as_millis() as u64,
                    "the core did not answer; the watchdog is not fed"
                ),
            }
        }
    });
}
