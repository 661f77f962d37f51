//! What every event source hands the core, and how the core answers.

pub mod replay;

use std::fmt;

use prost::bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// How the platform should be answered for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// Accepted, or refused for good (redelivery would not help).
    Ok,
    /// A transient internal failure: ask for redelivery.
    Retry,
}

/// One payload from a source.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// (A slice of the received message where it came over the long
    /// connection.)
    pub payload: Bytes,
    /// Where it came from, for log lines (`events.jsonl:3`, `msg 7f…`).
    pub origin: Origin,
    /// Answered once the event has been applied.
    pub ack: Option<AckTo>,
}

/// Where a payload came from, written out only when a log line needs it.
#[derive(Debug)]
pub(crate) enum Origin {
    /// Said in words (`events.jsonl:3`, `webhook 12`).
    Text(String),
    /// A long-connection message, by its id (a slice of its frame).
    Message(Bytes),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Text(s) => f.write_str(s),
            Origin::Message(id) => write!(f, "msg {}", String::from_utf8_lossy(id)),
        }
    }
}

/// Where the answer for one payload goes. Dropped unanswered, it answers
/// [`Ack::Retry`] (the core could not take the payload).
#[derive(Debug)]
pub(crate) struct AckTo(Option<To>);

#[derive(Debug)]
enum To {
    /// One waiter (a webhook request); a dropped sender tells it.
    Once(oneshot::Sender<Ack>),
    /// The long connection's one queue of answers, by the id it gave the
    /// message: no channel or task a message.
    Queue {
        tx: mpsc::UnboundedSender<(u64, Ack)>,
        id: u64,
    },
}

impl AckTo {
    pub(crate) fn once(tx: oneshot::Sender<Ack>) -> Self {
        AckTo(Some(To::Once(tx)))
    }

    pub(crate) fn queued(tx: mpsc::UnboundedSender<(u64, Ack)>, id: u64) -> Self {
        AckTo(Some(To::Queue { tx, id }))
    }

    /// Answer (a source that stopped listening is gone: nothing to do).
    pub(crate) fn send(mut self, a: Ack) {
        match self.0.take() {
            Some(To::Once(tx)) => {
                let _ = tx.send(a);
            }
            Some(To::Queue { tx, id }) => {
                let _ = tx.send((id, a));
            }
            None => {}
        }
    }
}

impl Drop for AckTo {
    fn drop(&mut self) {
        if let Some(To::Queue { tx, id }) = self.0.take() {
            let _ = tx.send((id, Ack::Retry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_dropped_unsent_asks_for_redelivery() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        AckTo::queued(tx.clone(), 7).send(Ack::Ok);
        drop(AckTo::queued(tx, 8));
        assert_eq!(rx.try_recv().ok(), Some((7, Ack::Ok)));
        assert_eq!(rx.try_recv().ok(), Some((8, Ack::Retry)));
        assert!(rx.try_recv().is_err(), "each answered once");
        let (tx, rx) = oneshot::channel();
        drop(AckTo::once(tx));
        assert!(rx.blocking_recv().is_err(), "the waiter sees it gone");
    }
}
