use super::*;

fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn handshake_classification() {
    let fatal = |e: &ConnectError| matches!(e, ConnectError::Fatal { .. });
    let limit = [
        ("handshake-status", "514"),
        ("handshake-msg", "exceed"),
        ("handshake-autherrcode", "1000040350"),
    ];
    assert!(fatal(&classify_handshake(403, h(&limit))));
    let other_auth = [
        ("handshake-status", "514"),
        ("handshake-msg", "auth"),
        ("handshake-autherrcode", "1000040351"),
    ];
    assert!(!fatal(&classify_handshake(403, h(&other_auth))));
    let forbidden = [("handshake-status", "403"), ("handshake-msg", "banned")];
    assert!(fatal(&classify_handshake(403, h(&forbidden))));
    let busy = [("handshake-status", "500"), ("handshake-msg", "busy")];
    assert!(!fatal(&classify_handshake(500, h(&busy))));
    // no Handshake-Msg: the original error, retryable
    assert!(!fatal(&classify_handshake(
        403,
        h(&[("handshake-status", "403")])
    )));
    assert!(!fatal(&classify_handshake(403, h(&[]))));
}

/// Issue 13 item 14: an hour of failed reconnects is one WARN and a
/// summary every five minutes, not a WARN a second.
#[test]
fn a_long_outage_is_logged_once_then_summarized() {
    let t0 = Instant::now();
    let mut o = Outage::new(t0);
    let mut reports = Vec::new();
    for s in 1..=3600u64 {
        if let Some(r) = o.failure(t0 + Duration::from_secs(s)) {
            reports.push((s, r));
        }
    }
    assert_eq!(reports.len(), 1 + 11, "{reports:?}");
    assert_eq!(reports[0], (1, OutageReport::First));
    assert_eq!(
        reports[1],
        (
            301,
            OutageReport::Summary {
                failed: 301,
                down: Duration::from_secs(301)
            }
        )
    );
}

#[test]
fn answers_find_their_message_in_any_order_and_once() {
    let mut w = Waiting::default();
    let at = Instant::now();
    let frame = |n: u64| {
        let f = Frame {
            seq_id: n,
            ..Frame::ping(1)
        };
        Received::parse(f.to_bytes().into()).unwrap()
    };
    let ids: Vec<u64> = (0..4).map(|n| w.push(frame(n), at)).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(w.take(2).map(|(f, _)| f.seq_id), Some(2));
    assert!(w.take(2).is_none(), "answered once");
    assert_eq!(w.take(0).map(|(f, _)| f.seq_id), Some(0));
    assert_eq!(w.len(), 2);
    assert!(w.take(9).is_none(), "an id never given");
    assert_eq!(w.push(frame(4), at), 4, "ids go on counting");
    for (id, seq) in [(1, 1), (3, 3), (4, 4)] {
        assert_eq!(w.take(id).map(|(f, _)| f.seq_id), Some(seq));
    }
    assert!(w.is_empty());
    assert!(w.slots.is_empty(), "answered slots are let go");
}
