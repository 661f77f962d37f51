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
