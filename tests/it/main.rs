//! The integration-test binary: one binary, one module per area.

mod browser;
mod cli;
mod conformance;
mod golden;
mod http;
mod lark;
mod replay;
mod sinks;
mod store;
mod support;
