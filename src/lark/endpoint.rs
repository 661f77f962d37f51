//! Endpoint discovery: `POST {base}/callback/ws/endpoint` with the app's id
//! and secret → the WebSocket URL to dial and the client settings.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::ConnectError;

/// Settings the platform sends (endpoint response, pong payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    /// Reconnect attempts before giving up; negative = forever.
    pub reconnect_count: i64,
    pub reconnect_interval: Duration,
    /// Upper bound of the random wait before the first reconnect attempt.
    pub reconnect_nonce: Duration,
    pub ping_interval: Duration,
}

impl Default for ClientConfig {
    /// The official clients' defaults before any server config.
    fn default() -> Self {
        ClientConfig {
            reconnect_count: -1,
            reconnect_interval: Duration::from_secs(120),
            reconnect_nonce: Duration::from_secs(30),
            ping_interval: Duration::from_secs(120),
        }
    }
}

/// `ClientConfig` as JSON; absent keys leave the current value unchanged
/// (the official clients turn them into 0 or NaN, which breaks them).
#[derive(Debug, Deserialize)]
pub(crate) struct ClientConfigJson {
    #[serde(rename = "ReconnectCount")]
    reconnect_count: Option<i64>,
    #[serde(rename = "ReconnectInterval")]
    reconnect_interval: Option<u64>,
    #[serde(rename = "ReconnectNonce")]
    reconnect_nonce: Option<u64>,
    #[serde(rename = "PingInterval")]
    ping_interval: Option<u64>,
}

/// The longest interval the server may set (ping, reconnect, nonce): an
/// hour. Larger values (up to 2^64−1 s were seen) would overflow instants.
const MAX_INTERVAL_S: u64 = 3600;

impl ClientConfig {
    /// Apply what the server sent, clamped to sane ranges: intervals at
    /// most an hour; a ping interval of 0 is ignored (it would mean pinging
    /// in a busy loop) and a reconnect interval is at least a second.
    pub(crate) fn update(&mut self, j: &ClientConfigJson) {
        let secs = |v: u64, min: u64| Duration::from_secs(v.clamp(min, MAX_INTERVAL_S));
        if let Some(v) = j.reconnect_count {
            self.reconnect_count = v;
        }
        if let Some(v) = j.reconnect_interval {
            self.reconnect_interval = secs(v, 1);
        }
        if let Some(v) = j.reconnect_nonce {
            self.reconnect_nonce = secs(v, 0);
        }
        if let Some(v) = j.ping_interval.filter(|v| *v > 0) {
            self.ping_interval = secs(v, 1);
        }
    }
}

/// Where to connect.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub url: Url,
    /// `device_id` from the URL: the connection id in log lines.
    pub conn_id: String,
    /// `service_id` from the URL: the `service` of every ping.
    pub service_id: i32,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "URL", default)]
    url: Option<String>,
    #[serde(rename = "ClientConfig", default)]
    client_config: Option<ClientConfigJson>,
}

/// What a response code means, where the SDKs name it.
fn code_meaning(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "system busy",
        403 => "forbidden: the app may be disabled or lack long-connection access",
        514 => "authentication failed: check the app id and secret",
        1000040343 => "internal error",
        1000040344 => "no credential",
        1000040350 => "connection limit exceeded (at most 50 connections per app)",
        _ => return None,
    })
}

/// `code 514 (authentication failed: …): msg` for a code the SDKs name,
/// else `code 10014: msg` — the platform's own message says what it is.
pub(crate) fn describe_code(code: i64, msg: &str) -> String {
    let msg = if msg.is_empty() { "(no message)" } else { msg };
    match code_meaning(code) {
        Some(m) => format!("code {code} ({m}): {msg}"),
        None => format!("code {code}: {msg}"),
    }
}

/// Ask the platform where to connect. Retryable failures: HTTP errors,
/// timeouts, codes 1 and 1000040343, a missing URL. Any other code is fatal.
pub(crate) async fn discover(
    http: &reqwest::Client,
    base: &Url,
    app_id: &str,
    app_secret: &SecretString,
    config: &mut ClientConfig,
) -> Result<Endpoint, ConnectError> {
    let url = base
        .join("/callback/ws/endpoint")
        .map_err(|e| ConnectError::retry_because("bad base URL", e))?;
    let body = serde_json::json!({ "AppID": app_id, "AppSecret": app_secret.expose_secret() });
    let resp = http
        .post(url)
        .header("locale", "zh")
        .json(&body)
        .send()
        .await
        .map_err(|e| ConnectError::retry_because("endpoint request failed", e.without_url()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| {
        ConnectError::retry_because("endpoint response unreadable", e.without_url())
    })?;
    let parsed: Option<Response> = serde_json::from_str(&text).ok();
    if status != reqwest::StatusCode::OK {
        let msg = parsed
            .and_then(|r| r.msg)
            .unwrap_or_else(|| "system busy".into());
        return Err(ConnectError::retry(format!(
            "endpoint answered HTTP {status}: {msg}"
        )));
    }
    let Some(r) = parsed else {
        return Err(ConnectError::retry("endpoint answered with invalid JSON"));
    };
    let code = r.code.unwrap_or(0);
    let msg = r.msg.unwrap_or_default();
    match code {
        0 => {}
        1 | 1000040343 => {
            return Err(ConnectError::retry(format!(
                "endpoint {}",
                describe_code(code, &msg)
            )));
        }
        _ => return Err(ConnectError::Fatal { code, msg }),
    }
    let data = r
        .data
        .ok_or_else(|| ConnectError::retry("endpoint response has no data"))?;
    if let Some(cc) = &data.client_config {
        config.update(cc);
    }
    let raw = data
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ConnectError::retry("endpoint response has no URL"))?;
    let url =
        Url::parse(&raw).map_err(|e| ConnectError::retry_because("endpoint URL is invalid", e))?;
    let mut conn_id = String::new();
    let mut service_id = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "device_id" => conn_id = v.into_owned(),
            "service_id" => service_id = v.parse::<i32>().ok(),
            _ => {}
        }
    }
    let service_id =
        service_id.ok_or_else(|| ConnectError::retry("endpoint URL has no numeric service_id"))?;
    Ok(Endpoint {
        url,
        conn_id,
        service_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_explained_only_where_known() {
        assert_eq!(
            describe_code(10014, "app secret invalid"),
            "code 10014: app secret invalid"
        );
        assert_eq!(
            describe_code(514, ""),
            "code 514 (authentication failed: check the app id and secret): (no message)"
        );
    }

    #[test]
    fn client_config_updates_only_what_is_sent() {
        let mut c = ClientConfig::default();
        let j: ClientConfigJson =
            serde_json::from_str(r#"{"PingInterval":5,"ReconnectCount":3}"#).unwrap();
        c.update(&j);
        assert_eq!(c.ping_interval, Duration::from_secs(5));
        assert_eq!(c.reconnect_count, 3);
        assert_eq!(c.reconnect_interval, Duration::from_secs(120));
        let zero: ClientConfigJson = serde_json::from_str(r#"{"PingInterval":0}"#).unwrap();
        c.update(&zero);
        assert_eq!(c.ping_interval, Duration::from_secs(5), "0 is ignored");
        // Huge values (fuzzed: 2^64−1) are clamped, never overflow.
        let huge: ClientConfigJson = serde_json::from_str(
            r#"{"PingInterval":18446744073709551615,"ReconnectInterval":18446744073709551615,"ReconnectNonce":18446744073709551615}"#,
        )
        .unwrap();
        c.update(&huge);
        let hour = Duration::from_secs(3600);
        assert_eq!(
            (c.ping_interval, c.reconnect_interval, c.reconnect_nonce),
            (hour, hour, hour)
        );
        let later = tokio::time::Instant::now() + c.ping_interval.saturating_mul(1000);
        assert!(later > tokio::time::Instant::now());
    }
}
