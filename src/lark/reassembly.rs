//! Fragment reassembly with bounded memory: a cap on a message's size, on
//! the number of messages being reassembled, and an expiry for partials.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use prost::bytes::Bytes;

use super::received::Received;

/// What one data frame completed.
#[derive(Debug)]
pub(crate) enum Push {
    /// The whole message: the frame that completed it (echoed in the ack)
    /// and the payload in fragment order.
    Complete(Box<Received>, Bytes),
    /// More fragments are needed.
    Pending,
    /// The message can never be processed (bad `sum`/`seq`, too large): it
    /// is acknowledged so it is not redelivered, and logged.
    Rejected(Box<Received>, String),
}

#[derive(Debug)]
struct Partial {
    sum: usize,
    /// The fragments received, by `seq`: memory follows what arrived, not
    /// what a header claims (a `sum` of millions costs nothing up front).
    parts: std::collections::BTreeMap<usize, Bytes>,
    bytes: usize,
    started: Instant,
}

/// Partial messages by `message_id`.
#[derive(Debug)]
pub(crate) struct Reassembler {
    pending: HashMap<String, Partial>,
    max_bytes: usize,
    max_pending: usize,
    ttl: Duration,
}

fn parse_count(f: &Received, key: &str, default: usize) -> Result<usize, String> {
    match f.header(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("header `{key}` is not a count: {v:?}")),
    }
}

impl Reassembler {
    pub(crate) fn new(max_bytes: usize, max_pending: usize, ttl: Duration) -> Self {
        Reassembler {
            pending: HashMap::new(),
            max_bytes,
            max_pending: max_pending.max(1),
            ttl,
        }
    }

    /// Messages waiting for fragments.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Fragment slots held across every partial message.
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.pending.values().map(|p| p.parts.len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Add a data frame. `message_id` must be non-empty (checked by the
    /// caller, which cannot acknowledge a frame without one).
    pub(crate) fn push(&mut self, message_id: &str, mut frame: Received, now: Instant) -> Push {
        let (sum, seq) = match (parse_count(&frame, "sum", 1), parse_count(&frame, "seq", 0)) {
            (Ok(s), Ok(q)) => (s, q),
            (Err(e), _) | (_, Err(e)) => {
                self.pending.remove(message_id);
                return Push::Rejected(Box::new(frame), e);
            }
        };
        if sum == 0 || seq >= sum {
            self.pending.remove(message_id);
            return Push::Rejected(
                Box::new(frame),
                format!("fragment seq {seq} of sum {sum} is out of range"),
            );
        }
        let payload = frame.take_payload().unwrap_or_default();
        if sum == 1 {
            if !self.pending.is_empty() {
                self.pending.remove(message_id);
            }
            if payload.len() > self.max_bytes {
                return Push::Rejected(
                    Box::new(frame),
                    format!(
                        "message of {} bytes exceeds the {}-byte limit",
                        payload.len(),
                        self.max_bytes
                    ),
                );
            }
            return Push::Complete(Box::new(frame), payload);
        }
        if sum > self.max_bytes {
            return Push::Rejected(
                Box::new(frame),
                format!("{sum} fragments is more than any message within the size limit"),
            );
        }
        if !self.pending.contains_key(message_id) && self.pending.len() >= self.max_pending {
            self.evict_oldest();
        }
        let p = self
            .pending
            .entry(message_id.to_string())
            .or_insert_with(|| Partial {
                sum,
                parts: std::collections::BTreeMap::new(),
                bytes: 0,
                started: now,
            });
        if p.sum != sum {
            self.pending.remove(message_id);
            return Push::Rejected(
                Box::new(frame),
                format!("fragment says sum {sum}, an earlier one said a different sum"),
            );
        }
        p.bytes += payload.len();
        // A repeated fragment replaces the earlier copy.
        if let Some(old) = p.parts.insert(seq, payload) {
            p.bytes -= old.len();
        }
        if p.bytes > self.max_bytes {
            let bytes = p.bytes;
            self.pending.remove(message_id);
            return Push::Rejected(
                Box::new(frame),
                format!(
                    "message of at least {bytes} bytes exceeds the {}-byte limit",
                    self.max_bytes
                ),
            );
        }
        if p.parts.len() < p.sum {
            return Push::Pending;
        }
        let Some(p) = self.pending.remove(message_id) else {
            return Push::Pending;
        };
        let mut out = Vec::with_capacity(p.bytes);
        for part in p.parts.into_values() {
            out.extend_from_slice(&part);
        }
        Push::Complete(Box::new(frame), out.into())
    }

    fn evict_oldest(&mut self) {
        if let Some(id) = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.started)
            .map(|(k, _)| k.clone())
        {
            tracing::warn!(message_id = %id, "too many partial messages; dropping the oldest (the platform will redeliver it)");
            self.pending.remove(&id);
        }
    }

    /// Drop partials older than the expiry; returns their ids.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let ttl = self.ttl;
        let old: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.started) > ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.pending.remove(k);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: &str, sum: &str, seq: &str, payload: &[u8]) -> Received {
        let f = crate::lark::frame::Frame::event_fragment(3, id, sum, seq, "t", payload.to_vec());
        Received::parse(f.to_bytes().into()).unwrap()
    }

    fn r() -> Reassembler {
        Reassembler::new(64, 2, Duration::from_secs(5))
    }

    #[tokio::test(start_paused = true)]
    async fn single_and_out_of_order_fragments() {
        let mut r = r();
        let now = Instant::now();
        assert!(
            matches!(r.push("a", frag("a", "1", "0", b"{}"), now), Push::Complete(_, p) if p[..] == b"{}"[..])
        );
        assert!(matches!(
            r.push("b", frag("b", "3", "2", b"C"), now),
            Push::Pending
        ));
        assert!(matches!(
            r.push("b", frag("b", "3", "0", b"A"), now),
            Push::Pending
        ));
        match r.push("b", frag("b", "3", "1", b"B"), now) {
            Push::Complete(f, p) => {
                assert_eq!(&p[..], b"ABC");
                assert_eq!(f.header("seq"), Some("1"), "the completing frame is echoed");
            }
            other => panic!("{other:?}"),
        }
        assert!(r.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn bad_counts_and_sizes_are_rejected() {
        let mut r = r();
        let now = Instant::now();
        assert!(matches!(
            r.push("a", frag("a", "2", "2", b""), now),
            Push::Rejected(..)
        ));
        assert!(matches!(
            r.push("a", frag("a", "x", "0", b""), now),
            Push::Rejected(..)
        ));
        assert!(matches!(
            r.push("a", frag("a", "0", "0", b""), now),
            Push::Rejected(..)
        ));
        assert!(matches!(
            r.push("a", frag("a", "1", "0", &[b'x'; 65]), now),
            Push::Rejected(..)
        ));
        assert!(matches!(
            r.push("b", frag("b", "2", "0", &[b'x'; 40]), now),
            Push::Pending
        ));
        assert!(matches!(
            r.push("b", frag("b", "2", "1", &[b'x'; 40]), now),
            Push::Rejected(..)
        ));
        assert!(matches!(
            r.push("c", frag("c", "2", "0", b"x"), now),
            Push::Pending
        ));
        assert!(
            matches!(
                r.push("c", frag("c", "3", "1", b"x"), now),
                Push::Rejected(..)
            ),
            "sum changed"
        );
        assert!(r.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pending_is_bounded_and_expires() {
        let mut r = r();
        let t0 = Instant::now();
        r.push("a", frag("a", "2", "0", b"x"), t0);
        r.push("b", frag("b", "2", "0", b"x"), t0 + Duration::from_secs(1));
        r.push("c", frag("c", "2", "0", b"x"), t0 + Duration::from_secs(2));
        assert_eq!(r.len(), 2, "the oldest was evicted");
        let gone = r.expire(t0 + Duration::from_millis(6500));
        assert_eq!(gone, vec!["b".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claimed_sum_costs_nothing_until_fragments_arrive() {
        // A 41-byte header claiming a million fragments (within an 8 MiB
        // message limit) once cost a million slots (~24 MiB) up front.
        let mut r = Reassembler::new(8 << 20, 256, Duration::from_secs(5));
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            assert!(matches!(
                r.push(id, frag(id, "1000000", "999999", b"x"), t0),
                Push::Pending
            ));
        }
        assert_eq!((r.len(), r.slots()), (3, 3), "one slot a fragment received");
    }
}
