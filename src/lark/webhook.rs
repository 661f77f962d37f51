//! Webhook (HTTP push) mode, the pure part: decrypt `{"encrypt": …}`
//! bodies, verify `X-Lark-Signature`, recognise the `url_verification`
//! challenge, check the verification token. Nothing here does I/O.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a push is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WebhookError {
    /// HTTP 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// HTTP 401: the body is never applied.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
}

/// What a verified push carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intake {
    /// Answer `{"challenge": …}` at once.
    Challenge(String),
    /// An event body (plaintext JSON) for the core.
    Event(Vec<u8>),
}

/// The app's webhook secrets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    pub verification_token: Option<SecretString>,
    pub encrypt_key: Option<SecretString>,
    /// How far a signed push's timestamp may be from our clock (zero: the
    /// default, five minutes).
    pub max_age: std::time::Duration,
}

/// A signed push older or newer than this is refused by default.
const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// The request signature headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignatureHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// `hex(SHA-256(timestamp ‖ nonce ‖ encrypt_key ‖ body))` — plain SHA-256
/// over the concatenation, not an HMAC.
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// AES-256-CBC, key = SHA-256(encrypt key), IV = the first 16 bytes of the
/// base64-decoded blob, PKCS#7 padding; the result must be UTF-8.
pub(crate) fn decrypt(encrypt_key: &str, b64: &str) -> Result<Vec<u8>, WebhookError> {
    let bad = |m: &str| WebhookError::BadRequest(m.to_string());
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("`encrypt` is not base64"))?;
    if blob.len() < 32 || blob.len() % 16 != 0 {
        return Err(bad("`encrypt` has an impossible length"));
    }
    let key = Sha256::digest(encrypt_key.as_bytes());
    let (iv, ct) = blob.split_at(16);
    let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
        .map_err(|_| bad("bad key or IV"))?;
    let mut buf = ct.to_vec();
    let plain = dec
        .decrypt_padded::<Pkcs7>(&mut buf)
        // The sender does not hold our Encrypt Key: not authenticated.
        .map_err(|_| {
            WebhookError::Unauthorized("`encrypt` does not decrypt with this Encrypt Key")
        })?;
    std::str::from_utf8(plain).map_err(|_| bad("decrypted body is not UTF-8"))?;
    Ok(plain.to_vec())
}

/// What routing a push needs, read in one pass: `encrypt` (an encrypted
/// body carries only that), or the event's type, challenge and token (of a
/// plaintext body, or of the decrypted one).
#[derive(Deserialize)]
struct Peek {
    /// Any JSON string (escapes such as `\/` included).
    #[serde(default)]
    encrypt: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    header: Option<PeekHeader>,
}

#[derive(Deserialize)]
struct PeekHeader {
    #[serde(default)]
    token: Option<String>,
}

fn eq_ct(a: &str, b: &SecretString) -> bool {
    bool::from(a.as_bytes().ct_eq(b.expose_secret().as_bytes()))
}

/// Verify and open one push.
pub(crate) fn open(
    secrets: &Secrets,
    body: &[u8],
    sig: &SignatureHeaders<'_>,
    now_s: i64,
) -> Result<Intake, WebhookError> {
    let read = |b: &[u8]| {
        serde_json::from_slice::<Peek>(b)
            .map_err(|e| WebhookError::BadRequest(format!("not JSON: {e}")))
    };
    let mut outer = read(body)?;
    let (plain, peek) = match (outer.encrypt.take(), &secrets.encrypt_key) {
        (Some(enc), Some(key)) => {
            let plain = decrypt(key.expose_secret(), &enc)?;
            let inner = read(&plain)?;
            (plain, inner)
        }
        (Some(_), None) => {
            return Err(WebhookError::BadRequest(
                "encrypted body, but no encrypt_key_env is configured".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(WebhookError::Unauthorized(
                "plaintext body while an Encrypt Key is configured",
            ));
        }
        (None, None) => (body.to_vec(), outer),
    };
    let token = peek
        .token
        .as_deref()
        .or(peek.header.as_ref().and_then(|h| h.token.as_deref()));
    if let Some(want) = &secrets.verification_token
        && !token.is_some_and(|t| eq_ct(t, want))
    {
        return Err(WebhookError::Unauthorized(
            "verification token does not match",
        ));
    }
    if peek.kind.as_deref() == Some("url_verification") {
        let c = peek
            .challenge
            .ok_or_else(|| WebhookError::BadRequest("url_verification without challenge".into()))?;
        return Ok(Intake::Challenge(c));
    }
    if let Some(key) = &secrets.encrypt_key {
        let (Some(ts), Some(nonce), Some(got)) = (sig.timestamp, sig.nonce, sig.signature) else {
            return Err(WebhookError::Unauthorized(
                "missing X-Lark-Signature headers",
            ));
        };
        let want = signature(ts, nonce, key.expose_secret(), body);
        if !bool::from(
            want.as_bytes()
                .ct_eq(got.trim().to_ascii_lowercase().as_bytes()),
        ) {
            return Err(WebhookError::Unauthorized(
                "X-Lark-Signature does not match",
            ));
        }
        // Signed, so the timestamp is the sender's: a push captured and
        // replayed once its delivery id is forgotten is too old.
        let max = if secrets.max_age.is_zero() {
            DEFAULT_MAX_AGE
        } else {
            secrets.max_age
        };
        let fresh = ts
            .trim()
            .parse::<i64>()
            .is_ok_and(|t| now_s.abs_diff(t) <= max.as_secs());
        if !fresh {
            return Err(WebhookError::Unauthorized(
                "X-Lark-Request-Timestamp is outside the accepted window ([http] max_push_age)",
            ));
        }
    }
    Ok(Intake::Event(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' clock: the signed vectors' timestamp.
    const T0: i64 = 1_700_000_000;

    const OWN: &str = "AAECAwQFBgcICQoLDA0ODw9mLTIAZS9jAmGTQ1wAhHpnBHVL2wRjH9rPunQdQC1vLjsckayA10kZ8cPwtb62F8rC7JprUPR/4S2aZihfR+p8npX7UzWPithZmfKIPZgE";

    fn secrets(token: Option<&str>, key: Option<&str>) -> Secrets {
        Secrets {
            verification_token: token.map(|t| SecretString::from(t.to_string())),
            encrypt_key: key.map(|k| SecretString::from(k.to_string())),
            max_age: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn spec_vectors() {
        // §8: the official docs' example and the spec's own vector
        assert_eq!(
            decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap(),
            b"hello world"
        );
        assert_eq!(
            decrypt("test key", OWN).unwrap(),
            br#"{"challenge":"ajls384kdjx98XX","token":"xxxxxx","type":"url_verification"}"#
        );
        let body = format!(r#"{{"encrypt":"{OWN}"}}"#);
        assert_eq!(
            signature("1700000000", "nonce123", "test key", body.as_bytes()),
            "3d0c699fc2e01244af25e03bfb5fdd58f72780c45c0fe7c22b7a71fea8cb3342"
        );
    }

    #[test]
    fn challenges_plain_and_encrypted() {
        let plain = br#"{"challenge":"c1","token":"xxxxxx","type":"url_verification"}"#;
        assert_eq!(
            open(
                &secrets(Some("xxxxxx"), None),
                plain,
                &Default::default(),
                T0
            ),
            Ok(Intake::Challenge("c1".into()))
        );
        assert_eq!(
            open(
                &secrets(Some("other"), None),
                plain,
                &Default::default(),
                T0
            ),
            Err(WebhookError::Unauthorized(
                "verification token does not match"
            ))
        );
        let enc = format!(r#"{{"encrypt":"{OWN}"}}"#);
        // The challenge is answered without a signature (as the official
        // clients do); the token inside is still checked.
        assert_eq!(
            open(
                &secrets(Some("xxxxxx"), Some("test key")),
                enc.as_bytes(),
                &Default::default(),
                T0
            ),
            Ok(Intake::Challenge("ajls384kdjx98XX".into()))
        );
        // A sender without our Encrypt Key is not authenticated: 401.
        assert!(matches!(
            open(
                &secrets(None, Some("wrong key")),
                enc.as_bytes(),
                &Default::default(),
                T0
            ),
            Err(WebhookError::Unauthorized(_))
        ));
        // Any JSON string: some encoders write every `/` as `\/`, and
        // any character may come as `\uXXXX`.
        let escaped = format!(
            r#"{{"encrypt":"{}"}}"#,
            OWN.replace('/', "\\/").replacen('A', "\\u0041", 1)
        );
        assert_ne!(escaped, enc, "the vector has a `/` or an `A` to escape");
        assert_eq!(
            open(
                &secrets(Some("xxxxxx"), Some("test key")),
                escaped.as_bytes(),
                &Default::default(),
                T0
            ),
            Ok(Intake::Challenge("ajls384kdjx98XX".into()))
        );
    }

    #[test]
    fn events_need_a_valid_signature_when_encrypted() {
        // Encrypt an event body with a known IV, as the platform would.
        use aes::cipher::BlockModeEncrypt;
        let key = "k3y";
        let event = br#"{"uuid":"u1","token":"tok","type":"event_callback","event":{"type":"x"}}"#;
        let iv = [7u8; 16];
        let enc =
            cbc::Encryptor::<aes::Aes256>::new_from_slices(&Sha256::digest(key.as_bytes()), &iv)
                .unwrap();
        let mut buf = vec![0u8; event.len() + 16];
        buf[..event.len()].copy_from_slice(event);
        let ct = enc
            .encrypt_padded::<Pkcs7>(&mut buf, event.len())
            .unwrap()
            .to_vec();
        let blob = [iv.to_vec(), ct].concat();
        let body = format!(
            r#"{{"encrypt":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(blob)
        );
        let good = signature("1700000000", "n1", key, body.as_bytes());
        let s = secrets(Some("tok"), Some(key));
        fn sig(v: &str) -> SignatureHeaders<'_> {
            SignatureHeaders {
                timestamp: Some("1700000000"),
                nonce: Some("n1"),
                signature: Some(v),
            }
        }
        assert_eq!(
            open(&s, body.as_bytes(), &sig(&good), T0),
            Ok(Intake::Event(event.to_vec()))
        );
        // The same signed push within five minutes either way is fresh;
        // replayed later (or from a clock far ahead), it is refused.
        for (now, fresh) in [
            (T0 + 300, true),
            (T0 - 300, true),
            (T0 + 301, false),
            (T0 - 3600, false),
        ] {
            assert_eq!(
                open(&s, body.as_bytes(), &sig(&good), now).is_ok(),
                fresh,
                "at {now}"
            );
        }
        let tight = Secrets {
            max_age: std::time::Duration::from_secs(10),
            ..s.clone()
        };
        assert!(open(&tight, body.as_bytes(), &sig(&good), T0 + 11).is_err());
        assert_eq!(
            open(
                &s,
                body.as_bytes(),
                &sig("0000000000000000000000000000000000000000000000000000000000000000"),
                T0
            ),
            Err(WebhookError::Unauthorized(
                "X-Lark-Signature does not match"
            ))
        );
        assert_eq!(
            open(&s, body.as_bytes(), &Default::default(), T0),
            Err(WebhookError::Unauthorized(
                "missing X-Lark-Signature headers"
            ))
        );
        // A plaintext body while a key is configured is refused.
        assert!(matches!(
            open(&s, event, &Default::default(), T0),
            Err(WebhookError::Unauthorized(_))
        ));
        // Garbage is a 400, not a panic.
        for g in [
            &b"not json"[..],
            br#"{"encrypt":"!!!"}"#,
            br#"{"encrypt":"AAAA"}"#,
        ] {
            assert!(open(&s, g, &Default::default(), T0).is_err());
        }
    }
}
