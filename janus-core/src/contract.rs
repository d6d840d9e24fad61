//! The competitor contract's numbers and paths (contract.md §2–§5).

use std::time::Duration;

/// Chat completions endpoint.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// Health endpoint.
pub const HEALTH_PATH: &str = "/health";
/// Model list endpoint (gateway).
pub const MODELS_PATH: &str = "/v1/models";
/// Optional metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";

/// Port a competitor container listens on by default.
pub const DEFAULT_COMPETITOR_PORT: u16 = 8080;
/// Longest gap between two events a client may see.
pub const MAX_GAP: Duration = Duration::from_secs(2);
/// Silence after which a keep-alive comment is sent (the reference gateway's value).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(1500);
/// Default total request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// A competitor container must be ready within this.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Time to first byte target in local development.
pub const TTFB_TARGET: Duration = Duration::from_secs(2);
/// Concurrent requests a competitor must serve at least.
pub const MIN_CONCURRENCY: usize = 2;
/// Largest artifact that may be sent inline as a `data:` URL.
pub const DATA_URL_MAX_BYTES: u64 = 1_000_000;
/// Default artifact time to live.
pub const DEFAULT_ARTIFACT_TTL_SECONDS: u64 = 3600;
/// Port of the in-sandbox artifact file server (`JANUS_ARTIFACT_PORT`).
pub const DEFAULT_ARTIFACT_PORT: u16 = 5173;
/// Request body limit (the reference declared it; Janus enforces it).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// SSE content type.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "text/event-stream";
/// Request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Correlation id header.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Request header from the gateway: the URL prefix (ending in `/`) under which the
/// competitor publishes served artifacts, `<base><artifact-id>`.
pub const ARTIFACT_BASE_HEADER: &str = "x-janus-artifact-base";
/// Response header of a proxy in front of a competitor (the sandbox service's proxy
/// route) on an error whose request reached the competitor (value `1`): the competitor
/// took it and closed the connection without answering — it crashed or was killed at a
/// limit. A cold-start retry must not replay such a request (nginx passes a
/// non-idempotent request to the next upstream only if it was never sent).
pub const UPSTREAM_REACHED_HEADER: &str = "x-janus-upstream-reached";
/// The gateway's artifact route: `<prefix><capability>/<artifact-id>`.
pub const ARTIFACTS_ROUTE_PREFIX: &str = "/v1/artifacts/";
/// Where a competitor serves its stored artifacts: `<prefix><artifact-id>`.
pub const COMPETITOR_ARTIFACTS_PREFIX: &str = "/artifacts/";

/// Whether a client-sent `X-Request-Id` is kept as it is: 1-200 visible ASCII characters.
/// Anything else is replaced by a generated id, so ids are always safe to log and forward.
pub fn accept_request_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 200 && value.iter().all(u8::is_ascii_graphic)
}
