//! The integration-test binary: one binary, one module per area.

mod browser;
mod cli;
mod conformance;
mod gateway;
mod golden;
mod http;
mod lark;
mod replay;
mod sinks;
mod store;
mod support;
