//! What every event source hands the core, and how the core answers.

pub mod replay;

use prost::bytes::Bytes;
use tokio::sync::oneshot;

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
    pub origin: String,
    /// Answered once the event has been applied.
    pub ack: Option<oneshot::Sender<Ack>>,
}
