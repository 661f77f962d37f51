//! What goes out: one rendered message for one sink, with the keys that
//! trace it (`Idempotency-Key`, the causing event's id). Built by the
//! pipeline, kept by the store's outbox, sent by the sink workers.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::model::{ChangeKind, RoomId};
use crate::render::{Format, Rendered};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Notice(ChangeKind),
    /// A booking starts soon (a sink's `reminders`).
    Reminder,
    /// The day's bookings (a sink's `digest`).
    Digest,
    Snapshot,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Notice(k) => k.as_str(),
            Subject::Reminder => "reminder",
            Subject::Digest => "digest",
            Subject::Snapshot => "snapshot",
        }
    }

    /// The inverse of [`Subject::as_str`] (anything else is a snapshot).
    pub(crate) fn parse(s: &str) -> Subject {
        match s {
            "booked" => Subject::Notice(ChangeKind::Booked),
            "rescheduled" => Subject::Notice(ChangeKind::Rescheduled),
            "cancelled" => Subject::Notice(ChangeKind::Cancelled),
            "reminder" => Subject::Reminder,
            "digest" => Subject::Digest,
            _ => Subject::Snapshot,
        }
    }
}

/// One rendered message for one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The name of the sink it goes to (names, not config positions: a
    /// reload may add, remove or reorder sinks while it waits).
    pub sink: Arc<str>,
    /// Its row in the store's outbox, once committed.
    pub outbox_id: Option<i64>,
    /// Stable per notice: the same event, room, change, booking and sink
    /// always give the same key, so a retried or replayed notice keeps it;
    /// two notices never share one.
    pub idempotency_key: String,
    /// The delivery id of the event that caused it.
    pub event_id: Arc<str>,
    pub room: RoomId,
    pub subject: Subject,
    /// `{uid}_{original_time}` of the booking, for notices.
    pub booking: Option<String>,
    pub body: String,
    pub format: Format,
    /// Read back from the store at start: it may have reached its receiver
    /// just before an unclean stop, so it is sent again (same key) rather
    /// than replaced unsent by a newer snapshot — the outbox then says
    /// `delivered`, which is true, not `superseded`.
    pub restored: bool,
}

impl Message {
    /// A message just rendered for `sink`, not yet in the outbox.
    pub(crate) fn rendered(
        sink: &str,
        room: RoomId,
        subject: Subject,
        booking: Option<String>,
        event_id: Arc<str>,
        idempotency_key: String,
        r: Rendered,
    ) -> Message {
        Message {
            sink: Arc::from(sink),
            outbox_id: None,
            idempotency_key,
            event_id,
            room,
            subject,
            booking,
            body: r.body,
            format: r.format,
            restored: false,
        }
    }
}

/// `sha256(parts joined by NUL)`, first 16 bytes as hex: idempotency keys
/// and ETags.
pub(crate) fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = h.finalize();
    let mut s = String::with_capacity(32);
    for b in &d[..16] {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}
