//! The baseline's tests: one binary, real sockets on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod support;

mod agent;
mod check;
mod fast;
mod router;
