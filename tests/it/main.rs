//! The integration-test binary: one binary, one module per area.

// Test code: `pub` marks what the areas share, and unwrap/expect are how
// a test fails.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod cli;
mod conformance;
mod fuzz;
mod golden;
mod ha;
mod http;
mod lark;
mod replay;
mod sinks;
mod store;
mod support;
mod sync;
mod timed;
