//! End-to-end tests of the gateway over real sockets, one binary with a module per area.
//! Competitors here are small scripted hyper servers (test doubles for real competitors);
//! the UI browser test uses a scripted SDK competitor.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod artifacts;
mod config;
mod failures;
mod hardening;
mod lifecycle;
mod nginx;
mod openai_sdk;
mod platform;
mod relay;
mod routing;
mod support;
mod ui;
