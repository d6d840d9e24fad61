//! Integration tests of `janus-core`, one binary with a module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aggregate;
mod artifacts;
mod roundtrip;
mod sse;
mod validation;
