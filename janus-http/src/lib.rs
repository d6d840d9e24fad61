//! `janus-http` — the serving layer every Janus server shares, so behaviour is decided in
//! one place: no routes, no business logic.
//!
//! Map of the crate:
//! - [`serve`] and [`ServeConfig`]: the accept loop with header-read, idle and connection
//!   cap enforcement (idle connections evicted first, then 503 `server_overloaded`), and
//!   the two-phase [`Drain`] services watch.
//! - [`ServeFlags`] / [`ServeFile`]: the serving settings as flags, environment variables
//!   (under each binary's [`EnvPrefix`]) and TOML keys.
//! - [`read_body`]: a request body under a size cap and a deadline (413 / 408).
//! - [`RequestId`], [`correlation_id`], [`TraceContext`]: the one request-id rule and the
//!   checks on client tracing headers.
//! - [`ApiKeys`]: the bearer-key check (constant time, scheme case-insensitive).
//! - [`response`]: the response body type and the OpenAI error envelope responses.
//! - [`build_client`] and [`SseReader`]: the pooled client and the timed SSE reader.
//! - [`runtime`]: the shutdown signal, [`LogFormat`] and the log setup.
//! - [`otel`]: optional OTLP/HTTP span export of the request spans (on when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//! - `probe` (feature `test-support`): the slowloris and connection-cap probes every
//!   server's tests run.

mod auth;
mod body;
mod client;
mod drain;
mod ids;
pub mod memory;
pub mod otel;
mod pool;
#[cfg(feature = "test-support")]
pub mod probe;
pub mod response;
pub mod runtime;
mod serve;
mod settings;

pub use auth::{bearer_token, ApiKeys, AuthError, KeysError};
pub use body::{read_body, BodyError};
pub use client::{
    build_client, build_client_with, ClientOptions, SseReadError, SseReader, TimedItem,
    POOL_IDLE_TIMEOUT,
};
pub use drain::{Drain, Phase};
pub use ids::{
    accept_id, correlation_id, new_traceparent, valid_traceparent, RequestId, TraceContext,
    MAX_ID_LEN, MAX_TRACESTATE_BYTES, TRACESTATE_HEADER,
};
pub use pool::{OriginPool, PoolError, PoolOptions, PooledBody};
pub use response::{BoxError, ResponseBody};
pub use runtime::{init_logging, shutdown_signal, LogFormat};
pub use serve::{default_max_connections, serve, PeerAddr, ServeConfig, MAX_HEADER_BYTES};
pub use settings::{parse_duration, EnvPrefix, ServeFile, ServeFlags, SettingError};
