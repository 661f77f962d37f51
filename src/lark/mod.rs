//! The platform edge: the long connection (endpoint discovery, protobuf
//! frames, ping, fragments, acks, reconnect). It knows nothing of rooms: it
//! hands event payloads to the core as `Inbound` and sends
//! back whatever acknowledgement the core gives.

pub mod api;
pub mod client;
pub(crate) mod endpoint;
pub mod frame;
pub(crate) mod reassembly;
pub mod received;
pub mod webhook;

pub(crate) use client::LarkClient;
pub use client::SourceError;

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The platform refused for good (bad credentials, app disabled,
    /// connection limit): no reconnect.
    #[error("the platform refused the connection: {}", endpoint::describe_code(*code, msg))]
    Fatal { code: i64, msg: String },
    /// Worth trying again later; `source` is the cause, when there is one
    /// (connection refused, timeout, TLS).
    #[error("{reason}")]
    Retryable {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ConnectError {
    pub(crate) fn retry(reason: impl Into<String>) -> Self {
        ConnectError::Retryable {
            reason: reason.into(),
            source: None,
        }
    }

    pub(crate) fn retry_because(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConnectError::Retryable {
            reason: reason.into(),
            source: Some(Box::new(source)),
        }
    }
}
