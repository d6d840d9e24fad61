//! Talking to competitors: one connection pool per competitor, the forwarded request,
//! cold-start retries and the reading of error bodies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_core::contract::{
    ARTIFACT_BASE_HEADER, CHAT_COMPLETIONS_PATH, CORRELATION_ID_HEADER, REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
};
use janus_core::ErrorEnvelope;
use janus_http::{OriginPool, PoolOptions, PooledBody, TraceContext, TRACESTATE_HEADER};

use crate::config::RetryPolicy;
use crate::error::GatewayError;

/// The pooled client for everything but chat calls (health probes, artifact downloads).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A competitor's answer to a chat call.
pub type UpstreamResponse = Response<PooledBody>;

/// A retryable status counts as a cold start only if the competitor answered this fast.
const QUICK_ANSWER: Duration = Duration::from_secs(10);
/// Error bodies are read up to this size for their message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// And for at most this long.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Each chat connection reads into a small fixed buffer: many streams, small events.
const CHAT_READ_BUFFER: usize = 4096;

/// Where a competitor's chat calls go: its `…/v1/chat/completions` URL and the pool of
/// connections to it (one per competitor, made at startup; the hot path hashes nothing
/// to find it).
#[derive(Debug, Clone)]
pub struct ChatEndpoint {
    /// `…/v1/chat/completions` of the competitor.
    pub url: http::Uri,
    pool: OriginPool,
}

impl ChatEndpoint {
    /// The endpoint of a competitor base URL (`http://host[:port][/prefix]`).
    pub fn new(
        base: &str,
        competitor: &str,
        connect_timeout: Duration,
    ) -> Result<ChatEndpoint, GatewayError> {
        let bad_url = |reason: String| GatewayError::Unreachable {
            competitor: competitor.to_owned(),
            reason: format!("bad url: {reason}"),
        };
        let url: http::Uri = format!("{base}{CHAT_COMPLETIONS_PATH}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad_url(e.to_string()))?;
        let options = PoolOptions::new(connect_timeout).read_buf_exact_size(CHAT_READ_BUFFER);
        let pool = OriginPool::new(&url, options).map_err(|e| bad_url(e.to_string()))?;
        Ok(ChatEndpoint { url, pool })
    }
}

/// Header the reference forwards so a client can force the baseline's agent path.
pub const BASELINE_AGENT_HEADER: &str = "x-baseline-agent";

/// Tracing headers forwarded to the competitor.
#[derive(Debug, Clone)]
pub struct ForwardHeaders {
    /// `X-Request-Id` (always set: the client's or a generated one).
    pub request_id: HeaderValue,
    /// `X-Correlation-ID`, when the client sent a valid one.
    pub correlation_id: Option<HeaderValue>,
    /// The client's valid `traceparent` (with `tracestate`), else a trace started here.
    pub trace: TraceContext,
    /// `X-Baseline-Agent`, when the client sent a short printable one.
    pub baseline_agent: Option<HeaderValue>,
    /// `X-Janus-Deadline`: unix ms when the gateway ends the request.
    pub deadline: Option<HeaderValue>,
    /// `X-Janus-Platform-Token` and `X-Janus-Platform-Url`, when a grant was minted.
    pub platform: Option<(HeaderValue, HeaderValue)>,
    /// `X-Janus-Artifact-Base`: where the competitor links its served artifacts.
    pub artifact_base: Option<HeaderValue>,
}

/// One call to a competitor.
#[derive(Debug, Clone)]
pub struct UpstreamCall {
    /// Competitor id, for errors and logs.
    pub competitor: String,
    /// Where the call goes.
    pub endpoint: ChatEndpoint,
    /// The JSON body to send.
    pub body: Bytes,
    /// Streaming call (`Accept: text/event-stream`).
    pub stream: bool,
    /// Headers to forward.
    pub headers: ForwardHeaders,
}

impl UpstreamCall {
    fn request(&self) -> Result<Request<Full<Bytes>>, GatewayError> {
        let accept = if self.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        // Built from scratch: only these headers reach the competitor, so the client's
        // Authorization and hop-by-hop headers never do.
        let mut builder = Request::post(self.endpoint.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .header(REQUEST_ID_HEADER, self.headers.request_id.clone());
        if let Some(value) = &self.headers.correlation_id {
            builder = builder.header(CORRELATION_ID_HEADER, value.clone());
        }
        builder = builder.header(TRACEPARENT_HEADER, self.headers.trace.traceparent.clone());
        if let Some(value) = &self.headers.trace.tracestate {
            builder = builder.header(TRACESTATE_HEADER, value.clone());
        }
        if let Some(value) = &self.headers.baseline_agent {
            builder = builder.header(BASELINE_AGENT_HEADER, value.clone());
        }
        if let Some(value) = &self.headers.deadline {
            builder = builder.header(crate::platform::DEADLINE_HEADER, value.clone());
        }
        if let Some((token, url)) = &self.headers.platform {
            builder = builder
                .header(crate::platform::PLATFORM_TOKEN_HEADER, token.clone())
                .header(crate::platform::PLATFORM_URL_HEADER, url.clone());
        }
        if let Some(value) = &self.headers.artifact_base {
            builder = builder.header(ARTIFACT_BASE_HEADER, value.clone());
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| GatewayError::Unreachable {
                competitor: self.competitor.clone(),
                reason: format!("cannot build request: {e}"),
            })
    }
}

fn is_cold_start_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Sends the call, retrying cold starts, and returns the competitor's 200 response.
/// `warming` is raised while waiting between attempts so a streaming client gets
/// `: warming upstream` comments instead of plain pings.
pub async fn open(
    call: &UpstreamCall,
    retry: RetryPolicy,
    warming: &AtomicBool,
) -> Result<UpstreamResponse, GatewayError> {
    let mut backoff = retry.initial_backoff;
    let mut attempt = 1;
    loop {
        let sent_at = Instant::now();
        let response = call
            .endpoint
            .pool
            .send(call.request()?)
            .await
            .map_err(|e| GatewayError::Unreachable {
                competitor: call.competitor.clone(),
                reason: error_chain(&e),
            })?;
        let status = response.status();
        if status == StatusCode::OK {
            warming.store(false, Ordering::Relaxed);
            return Ok(response);
        }
        // A proxy's word that the competitor took this request and died on it: replaying
        // it would crash the competitor again (a request that hits a memory limit).
        let reached = response
            .headers()
            .contains_key(janus_core::contract::UPSTREAM_REACHED_HEADER);
        if is_cold_start_status(status)
            && !reached
            && attempt < retry.max_attempts
            && sent_at.elapsed() < QUICK_ANSWER
        {
            tracing::info!(
                competitor = %call.competitor,
                %status,
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                "competitor is warming up; retrying"
            );
            drop(response);
            warming.store(true, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_backoff);
            attempt += 1;
            continue;
        }
        warming.store(false, Ordering::Relaxed);
        return Err(status_error(&call.competitor, response).await);
    }
}

/// Turns a non-200 response into an error, keeping the competitor's envelope if it sent one.
async fn status_error(competitor: &str, response: UpstreamResponse) -> GatewayError {
    let status = response.status();
    let body = tokio::time::timeout(
        ERROR_BODY_TIMEOUT,
        Limited::new(response.into_body(), ERROR_BODY_LIMIT).collect(),
    )
    .await;
    let bytes = match body {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    let envelope = serde_json::from_slice::<ErrorEnvelope>(&bytes)
        .ok()
        .map(Box::new);
    let message = match &envelope {
        Some(envelope) => envelope.error.message.clone(),
        None if bytes.is_empty() => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
        None => summarize(&bytes),
    };
    GatewayError::UpstreamStatus {
        competitor: competitor.to_owned(),
        status,
        message,
        envelope,
    }
}

/// A short printable summary of a body for error messages.
pub fn summarize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    let text = text.trim();
    if bytes.len() > 200 {
        format!("{text}…")
    } else {
        text.to_owned()
    }
}

pub use janus_core::error_chain;

/// True when the response's content type is what the mode expects.
pub fn has_content_type<B>(response: &Response<B>, expected: &str) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}
