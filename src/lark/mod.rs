//! The platform edge: the long connection (endpoint discovery, protobuf
//! frames, ping, fragments, acks, reconnect). It knows nothing of rooms: it
//! hands event payloads to the core as [`crate::source::Inbound`] and sends
//! back whatever acknowledgement the core gives.

pub mod client;
pub mod endpoint;
pub mod frame;
pub mod reassembly;
pub mod webhook;

pub use client::{LarkClient, SourceError};

/// Why one connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The platform refused for good (bad credentials, app disabled,
    /// connection limit): no reconnect.
    #[error("the platform refused the connection: code {code} ({}): {msg}", endpoint::code_meaning(*code))]
    Fatal { code: i64, msg: String },
    /// Worth trying again later.
    #[error("{0}")]
    Retryable(String),
}
