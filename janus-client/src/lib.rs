//! `janus-client` — the client side of Janus, as libraries the `janus` CLI wraps.
//!
//! Map of the crate:
//! - `http`: [`HttpClient`] over one pooled hyper-util client, and [`EventStream`], an SSE
//!   reader that timestamps every event and comment.
//! - `conformance`: [`run_checks`] — the competitor conformance kit ([`CheckOptions`] in,
//!   [`Report`] out).
#![deny(missing_docs)]

mod conformance;
mod http;

pub use conformance::{fetch_artifact, run_checks, CheckOptions, CheckResult, Report};
pub use http::{ClientError, EventStream, FullResponse, HttpClient, TimedItem};
