//! `janus-gateway` — the one stable endpoint clients talk to.
//!
//! It validates OpenAI-compatible chat requests, routes each to a competitor
//! (`competitor_id` → `model` equal to a competitor id → the default), relays the
//! competitor's SSE stream byte for byte with keep-alive comments at event boundaries, and
//! reports every failure as an OpenAI error envelope (before the stream starts) or as an
//! error event followed by `[DONE]` (after).
//!
//! Map of the crate:
//! - `config`: flags, environment and TOML file → [`Config`].
//! - `server`: [`run`] — request dispatch: auth, validation, routing (connections, timeouts,
//!   drain and request ids are `janus-http`'s).
//! - `relay`: the streaming body ([`RelayBody`]).
//! - `upstream`: the pooled competitor client, cold-start retries.
//! - `health`: background `/health` probes of competitors.
//! - [`runner`]: competitors launched in sandboxes through the Sandy API, supervised.
//! - `metrics`: Prometheus metrics; `access`: the per-request log line.
//! - `platform`: the platform listener (`/platform/{name}/{path}`): grants, guards,
//!   budgets, metering; `platform_config`: its settings.
//! - `signing`: HMAC-signed stateless tokens (platform grants, artifact capabilities).
//! - `artifacts`: the artifact capability of each chat request and the
//!   `/v1/artifacts/<capability>/<artifact-id>` download route.
//! - `error`: [`GatewayError`] → status, envelope, log level, in one place.
//! - `ui`: the chat UI (`GET /` and hashed assets under `/assets/`), embedded from `ui/`.

mod access;
mod artifacts;
mod config;
mod error;
mod health;
mod metrics;
mod platform;
mod platform_config;
mod relay;
pub mod runner;
mod server;
pub mod signing;
mod ui;
mod upstream;

pub use config::{
    parse_competitor, parse_launch, Args, CompetitorConfig, Config, ConfigError, GatewayEnv,
    LaunchSpec, LogFormat, Resources, RetryPolicy, DEFAULT_LAUNCH_PORT, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use error::GatewayError;
pub use metrics::Metrics;
pub use platform::{
    PlatformFigures, DEADLINE_HEADER, GRANT_PURPOSE, PLATFORM_TOKEN_HEADER, PLATFORM_URL_HEADER,
};
pub use platform_config::{AllowRule, Budget, PlatformKind, PlatformService, Price, Secret};
pub use relay::{RelayBody, RelayOptions};
pub use server::{run, run_with_platform, ResponseBody, COMPETITOR_HEADER};

pub use janus_http::{init_logging, shutdown_signal};
