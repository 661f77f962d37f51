//! HTTP sinks, the pure part: build each service's request (body shape,
//! signature, trace headers) and classify its answer. Nothing here sends.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::config::{SinkConfig, SinkKind};
use crate::message::Message;
use crate::render::Format;
use crate::retry::retryable_status;

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub url: url::Url,
    /// Header values may hold secrets: never log them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    Delivered,
    /// Worth trying again (`after`: what the service asked for).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Will fail again: give up now.
    Failed {
        reason: String,
    },
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail here.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu/Lark custom bot: `base64(HMAC-SHA256(key = "{ts}\n{secret}", ""))`
/// — the string is the key, the message is empty.
pub(crate) fn feishu_sign(timestamp_s: i64, secret: &str) -> String {
    hmac_b64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

/// DingTalk robot: `base64(HMAC-SHA256(key = secret, "{ms}\n{secret}"))`.
pub(crate) fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    hmac_b64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}

/// The rendered body as a JSON object, or the service's text message
/// wrapping it when the template is not JSON.
fn json_body(m: &Message, wrap_text: impl Fn(&str) -> Value) -> Map<String, Value> {
    let v = match m.format {
        Format::Json => {
            serde_json::from_str::<Value>(&m.body).unwrap_or_else(|_| wrap_text(&m.body))
        }
        _ => wrap_text(m.body.trim_end()),
    };
    match v {
        Value::Object(o) => o,
        other => match wrap_text(&other.to_string()) {
            Value::Object(o) => o,
            _ => Map::new(),
        },
    }
}

/// The sink URL for one message: `{room}` in it becomes the room id.
pub(crate) fn target_url(sink: &SinkConfig, m: &Message) -> Option<url::Url> {
    let url = sink.url.as_ref()?;
    let s = url.as_str();
    if s.contains("%7Broom%7D") {
        let room: String =
            url::form_urlencoded::byte_serialize(m.room.as_str().as_bytes()).collect();
        url::Url::parse(&s.replace("%7Broom%7D", &room)).ok()
    } else {
        Some(url.clone())
    }
}

/// Build the request one message becomes on one sink. `now` stamps the
/// signatures.
pub(crate) fn build(sink: &SinkConfig, m: &Message, now: DateTime<Utc>) -> Option<Request> {
    let mut url = target_url(sink, m)?;
    let secret = sink.secret.as_ref().map(|s| s.expose_secret().to_string());
    let mut content_type = "application/json; charset=utf-8".to_string();
    let mut method = "POST".to_string();
    let mut extra: Vec<(String, String)> = Vec::new();
    let body: Vec<u8> = match sink.kind {
        SinkKind::Feishu | SinkKind::Lark => {
            let mut o = json_body(m, |t| json!({"msg_type": "text", "content": {"text": t}}));
            if let Some(secret) = &secret {
                let ts = now.timestamp();
                o.insert("timestamp".into(), Value::String(ts.to_string()));
                o.insert("sign".into(), Value::String(feishu_sign(ts, secret)));
            }
            Value::Object(o).to_string().into_bytes()
        }
        SinkKind::Dingtalk => {
            if let Some(secret) = &secret {
                let ms = now.timestamp_millis();
                url.query_pairs_mut()
                    .append_pair("timestamp", &ms.to_string())
                    .append_pair("sign", &dingtalk_sign(ms, secret));
            }
            Value::Object(json_body(
                m,
                |t| json!({"msgtype": "text", "text": {"content": t}}),
            ))
            .to_string()
            .into_bytes()
        }
        SinkKind::Wecom => Value::Object(json_body(
            m,
            |t| json!({"msgtype": "text", "text": {"content": t}}),
        ))
        .to_string()
        .into_bytes(),
        SinkKind::Slack => Value::Object(json_body(m, |t| json!({"text": t})))
            .to_string()
            .into_bytes(),
        SinkKind::Panel | SinkKind::Webhook => {
            method = sink.method.clone();
            content_type = m.format.content_type().to_string();
            for h in &sink.headers {
                extra.push((h.name.clone(), h.value.expose_secret().to_string()));
            }
            m.body.clone().into_bytes()
        }
        SinkKind::Stdout | SinkKind::File => return None,
    };
    let mut headers = vec![
        ("Content-Type".to_string(), content_type),
        ("Idempotency-Key".to_string(), m.idempotency_key.clone()),
        ("X-Roomcast-Event".to_string(), m.event_id.to_string()),
    ];
    headers.extend(extra);
    Some(Request {
        method,
        url,
        headers,
        body,
    })
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&Utc) - now)
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

fn code_of(v: &Value, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_i64))
}

/// What a service's answer means.
pub(crate) fn classify(
    kind: SinkKind,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Attempt {
    if !(200..300).contains(&status) {
        return if retryable_status(status) {
            Attempt::Retry {
                after: retry_after,
                reason: format!("HTTP {status}"),
            }
        } else {
            Attempt::Failed {
                reason: format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            }
        };
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let msg = |v: &Value| {
        ["msg", "errmsg", "StatusMessage"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .unwrap_or("")
            .to_string()
    };
    match kind {
        SinkKind::Feishu | SinkKind::Lark => {
            let Some(v) = json else {
                return Attempt::Failed {
                    reason: "answer is not JSON".into(),
                };
            };
            match code_of(&v, &["code", "StatusCode"]) {
                Some(0) => Attempt::Delivered,
                Some(11232) => Attempt::Retry {
                    after: retry_after,
                    reason: format!("rate limited (11232): {}", msg(&v)),
                },
                Some(19021) => Attempt::Failed {
                    reason: format!(
                        "signature rejected (19021: {}): make secret_env hold this bot's signing secret, and check this machine's clock (the timestamp must be within an hour)",
                        msg(&v)
                    ),
                },
                Some(19024) => Attempt::Failed {
                    reason: format!(
                        "keyword check failed (19024: {}): the bot only accepts messages containing one of its keywords; put one in the template or remove the bot's keyword rule",
                        msg(&v)
                    ),
                },
                Some(c) => Attempt::Failed {
                    reason: format!("code {c}: {}", msg(&v)),
                },
                None => Attempt::Failed {
                    reason: "answer has no code".into(),
                },
            }
        }
        SinkKind::Dingtalk | SinkKind::Wecom => {
            let Some(v) = json else {
                return Attempt::Failed {
                    reason: "answer is not JSON".into(),
                };
            };
            match code_of(&v, &["errcode"]) {
                Some(0) => Attempt::Delivered,
                // DingTalk 130101 "send too fast"; WeCom 45009 "api freq out of limit"
                Some(c @ (130101 | 45009)) => Attempt::Retry {
                    after: retry_after,
                    reason: format!("rate limited ({c}): {}", msg(&v)),
                },
                Some(310000) => Attempt::Failed {
                    reason: format!(
                        "security check failed (310000: {}): check the signing secret, keywords or IP allow-list of this robot",
                        msg(&v)
                    ),
                },
                Some(c) => Attempt::Failed {
                    reason: format!("errcode {c}: {}", msg(&v)),
                },
                None => Attempt::Failed {
                    reason: "answer has no errcode".into(),
                },
            }
        }
        _ => Attempt::Delivered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feishu_sign_vector() {
        // spec §9, computed with Node crypto and Python hmac
        assert_eq!(
            feishu_sign(1599360473, "demo-secret"),
            "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
        );
    }

    #[test]
    fn dingtalk_sign_is_hmac_keyed_by_the_secret() {
        let s = dingtalk_sign(1700000000000, "SECxyz");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"SECxyz").unwrap();
        mac.update(b"1700000000000\nSECxyz");
        assert_eq!(
            s,
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_ne!(s, feishu_sign(1700000000, "SECxyz"));
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn classification_table() {
        use Attempt::*;
        let r = |k, st, body: &str| classify(k, st, None, body.as_bytes());
        assert_eq!(
            r(
                SinkKind::Feishu,
                200,
                r#"{"code":0,"msg":"success","data":{}}"#
            ),
            Delivered
        );
        assert_eq!(
            r(
                SinkKind::Feishu,
                200,
                r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#
            ),
            Delivered
        );
        assert!(matches!(
            r(
                SinkKind::Feishu,
                200,
                r#"{"code":11232,"msg":"frequency limited"}"#
            ),
            Retry { .. }
        ));
        assert!(
            matches!(r(SinkKind::Lark, 200, r#"{"code":19021,"msg":"sign match fail"}"#), Failed { reason } if reason.contains("signing secret"))
        );
        assert!(
            matches!(r(SinkKind::Feishu, 200, r#"{"code":19024,"msg":"Key Words Not Found"}"#), Failed { reason } if reason.contains("keyword"))
        );
        assert!(matches!(r(SinkKind::Feishu, 200, "<html>"), Failed { .. }));
        assert_eq!(
            r(SinkKind::Dingtalk, 200, r#"{"errcode":0,"errmsg":"ok"}"#),
            Delivered
        );
        assert!(matches!(
            r(
                SinkKind::Dingtalk,
                200,
                r#"{"errcode":130101,"errmsg":"send too fast"}"#
            ),
            Retry { .. }
        ));
        assert!(matches!(
            r(
                SinkKind::Wecom,
                200,
                r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#
            ),
            Retry { .. }
        ));
        assert!(matches!(
            r(
                SinkKind::Wecom,
                200,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#
            ),
            Failed { .. }
        ));
        assert_eq!(r(SinkKind::Slack, 200, "ok"), Delivered);
        assert_eq!(r(SinkKind::Panel, 204, ""), Delivered);
        for st in [500, 502, 503, 408, 429] {
            assert!(matches!(r(SinkKind::Webhook, st, ""), Retry { .. }), "{st}");
        }
        for st in [400, 401, 403, 404, 410] {
            assert!(
                matches!(r(SinkKind::Slack, st, "no"), Failed { .. }),
                "{st}"
            );
        }
        assert_eq!(
            classify(SinkKind::Slack, 429, Some(Duration::from_secs(9)), b""),
            Retry {
                after: Some(Duration::from_secs(9)),
                reason: "HTTP 429".into()
            }
        );
    }
}
