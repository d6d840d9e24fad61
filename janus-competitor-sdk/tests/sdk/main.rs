//! Integration tests of `janus-competitor-sdk`: the server over real sockets on
//! `127.0.0.1:0`, one binary with a module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::large_enum_variant
)]

mod artifacts;
mod cancel;
mod context;
mod echo;
mod errors;
mod health;
mod hostile;
mod modes;
mod sandy;
mod shutdown;
mod support;
