//! `janus-competitor-sdk` — a compliant Janus competitor in a few lines.
//!
//! Implement [`Competitor`] on one type and call [`run`]; the SDK fulfils the rest of the
//! contract (contract.md §2, §4, §5):
//!
//! - `POST /v1/chat/completions`: validates the request (400 envelope), runs your handler
//!   once for both modes — with `stream: true` every event you write goes out as a chunk at
//!   once (role on the first, one id, `usage` only with `include_usage`, always `[DONE]`),
//!   otherwise the same events are folded into one response.
//! - While your handler is silent, streams get `: ping` every 1.5 s; the request deadline
//!   (300 s) and a client disconnect cancel the handler; an error or a panic becomes an
//!   error event (stream) or a 500 envelope (non-stream).
//! - `GET /health` (503 until [`Competitor::ready`]), `GET /metrics` (Prometheus), and
//!   `GET /artifacts/<id>` for artifacts too large for a `data:` URL ([`publish_artifact`]).
//! - The request id (`X-Request-Id`, generated if absent) is on every log line and in
//!   [`RequestContext::request_id`]; logs are JSON lines on stderr.
//!
//! ```no_run
//! use janus_competitor_sdk::{async_trait, ChatCompletionRequest, Competitor, CompetitorError,
//!     EventWriter, RequestContext};
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl Competitor for Hello {
//!     async fn handle(
//!         &self,
//!         request: ChatCompletionRequest,
//!         _context: RequestContext,
//!         out: &mut dyn EventWriter,
//!     ) -> Result<(), CompetitorError> {
//!         let said = request.last_user_text().unwrap_or_default();
//!         out.content(&format!("You said: {said}")).await?;
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), janus_competitor_sdk::RunError> {
//!     janus_competitor_sdk::run(Hello).await
//! }
//! ```
//!
//! Map of the crate:
//! - `server`: [`serve`] — the accept loop, graceful shutdown, routing and endpoints; and
//!   [`shutdown_signal`].
//! - `respond`: runs a handler on its own task and turns its events into an SSE body with
//!   keep-alives, or folds them into one response.
//! - `artifacts`: [`publish_artifact`] and [`Artifacts`] — descriptors, `data:` URLs, the
//!   artifact directory and its file server.
//! - `config`: [`ServeConfig`], and [`Args`] (flags and environment variables).
//! - `metrics`: the Prometheus text behind `/metrics`.
//! - `platform`: [`Platform`] (`context.platform()` via [`PlatformExt`]) — inference chat
//!   (streaming, relaying `reasoning_content`), search, and a [`SandyClient`] bound to the
//!   platform's sandbox service; the grant stays inside.
//! - `sandy`: [`SandyClient`] for the Sandy sandbox API, and [`SandboxSession`], which turns
//!   a sandbox's lifecycle into reasoning, `sandbox_start`/`sandbox_end` and artifacts.
//!
//! The janus-core types a handler needs are re-exported here, so a competitor depends on
//! this crate (plus `tokio` for its `main`) and nothing else.
#![deny(missing_docs)]

mod artifacts;
mod config;
mod metrics;
mod platform;
mod respond;
mod sandy;
mod server;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

pub use artifacts::{publish_artifact, ArtifactStoreError, Artifacts};
pub use async_trait::async_trait;
pub use config::{Args, ConfigError, LogFormat, ServeConfig};
pub use janus_core;
pub use janus_core::{
    ArtifactDescriptor, ChatCompletionRequest, Competitor, CompetitorError, CompetitorEvent,
    EventWriter, FunctionCallDelta, JanusEvent, Message, MessageContent, PlatformAccess,
    RequestContext, RequestHeaders, ToolCallDelta, Usage, WriterClosed,
};
pub use platform::{Platform, PlatformError, PlatformExt};
pub use sandy::{
    AgentEvent, AgentEvents, AgentRequest, CreateOptions, ExecOutput, SandboxInfo, SandboxSession,
    SandyClient, SandyError,
};
pub use server::{serve, shutdown_signal};

/// The crate's README, compiled and run as doctests so its examples cannot drift from the
/// code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Why [`run`] stopped.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A flag or environment variable is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

// `main() -> Result<(), RunError>` prints the Debug form: make it the readable message.
impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs `competitor` as a process: parses [`Args`] (`--listen` / `JANUS_LISTEN` / `PORT`,
/// default `0.0.0.0:8080`), installs JSON logging (panics included), binds, and serves
/// until Ctrl-C or SIGTERM.
pub async fn run<C: Competitor>(competitor: C) -> Result<(), RunError> {
    run_with_args(competitor, <Args as clap::Parser>::parse()).await
}

/// [`run`] with arguments you parsed yourself (e.g. flattened into your own flags).
pub async fn run_with_args<C: Competitor>(competitor: C, args: Args) -> Result<(), RunError> {
    init_logging(LogFormat::or_detect(args.log_format));
    // Panics become log lines too (with the request's span when inside a handler), instead
    // of plain text in the middle of the JSON log.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panicked")));
    let addr = args.listen_addr()?;
    let config = args.serve_config()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    let served = serve(listener, Arc::new(competitor), config, shutdown_signal()).await;
    // Spans of the last requests reach the collector before the process goes.
    janus_http::otel::flush(std::time::Duration::from_secs(2)).await;
    janus_http::runtime::flush_logs();
    served.map_err(RunError::Serve)
}

/// Installs the global tracing subscriber on stderr (`RUST_LOG` filters, default `info`).
/// JSON lines carry the current span, so every line logged while a request is handled has
/// its `request_id`. Does nothing if a subscriber is already installed.
pub fn init_logging(format: LogFormat) {
    janus_http::init_logging(format);
}
