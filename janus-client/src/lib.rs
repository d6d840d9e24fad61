//! `janus-client` — the client side of Janus, as libraries the `janus` CLI wraps.
//!
//! Map of the crate:
//! - `http`: [`HttpClient`] over one pooled hyper-util client, and [`EventStream`], an SSE
//!   reader that timestamps every event and comment.
//! - `conformance`: [`run_checks`] — the competitor conformance kit ([`CheckOptions`] in,
//!   [`Report`] out).
//! - `launch`: [`Launched`] — a command started for a check in a process group of its own,
//!   split like a shell splits words ([`split_command`]) without running a shell.
//! - [`trace`]: `janus trace` — one request's hops rebuilt from every component's JSON logs.
#![deny(missing_docs)]

mod conformance;
mod http;
mod launch;
pub mod trace;

pub use conformance::{fetch_artifact, run_checks, CheckOptions, CheckResult, Report};
pub use http::{ClientError, Deadline, EventStream, FullResponse, HttpClient, TimedItem};
pub use launch::{split_command, Launched};
