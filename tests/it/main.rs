//! The integration-test binary: one binary, one module per area.

mod cli;
mod golden;
mod replay;
mod support;
