//! The platform services of a request: inference, search and the sandbox service, reached
//! through the gateway's platform listener with the request's grant. A handler gets a
//! [`Platform`] from its context and never sees the grant or an upstream secret.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_core::sse::{SseItem, DONE_DATA};
use janus_core::{EventWriter, PlatformAccess, RequestContext, Usage, WriterClosed};
use janus_http::SseReader;
use serde_json::Value;

use crate::sandy::SandyClient;

/// Largest non-streaming platform answer read.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest silence tolerated inside an inference stream.
const STREAM_IDLE: Duration = Duration::from_secs(120);

/// The platform access the gateway sent with a request: `X-Janus-Platform-Token`, and the
/// base from `X-Janus-Platform-Url` (or, without it, `JANUS_PLATFORM_URL`).
pub(crate) fn access_from_headers(headers: &HeaderMap) -> Option<PlatformAccess> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let grant = text("x-janus-platform-token")?;
    let url = text("x-janus-platform-url").or_else(|| {
        std::env::var("JANUS_PLATFORM_URL")
            .ok()
            .filter(|u| !u.is_empty())
    })?;
    Some(PlatformAccess::new(url, grant))
}

/// Why a platform call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The request carries no platform grant (the gateway has no platform services).
    #[error("this request has no platform services")]
    Unavailable,
    /// The call could not be sent or its answer broke off.
    #[error("platform call to {what} failed: {reason}")]
    Transport {
        /// What was called.
        what: String,
        /// Why.
        reason: String,
    },
    /// The platform answered an error status (401 `invalid_grant`, 403 `not_allowed`, 429
    /// `platform_budget_exceeded`, or the upstream's own).
    #[error("platform call to {what} answered {status}: {message}")]
    Status {
        /// What was called.
        what: String,
        /// The status.
        status: StatusCode,
        /// The error code, when the answer carried an envelope.
        code: Option<String>,
        /// The message.
        message: String,
    },
    /// The answer is not what the API promises.
    #[error("platform call to {what} sent an unreadable answer: {reason}")]
    Protocol {
        /// What was called.
        what: String,
        /// Why.
        reason: String,
    },
    /// The client went away while a stream was being relayed.
    #[error(transparent)]
    Closed(#[from] WriterClosed),
}

/// The process's one pool for platform calls: every request's handle shares it, so
/// calls of consecutive requests reuse connections to the platform listener instead of
/// each request opening its own.
fn shared_client() -> Client<HttpConnector, Full<Bytes>> {
    static CLIENT: std::sync::OnceLock<Client<HttpConnector, Full<Bytes>>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| janus_http::build_client(Duration::from_secs(10)))
        .clone()
}

/// Reaches a request's platform from its context: `context.platform()`.
pub trait PlatformExt {
    /// The request's platform services, when the gateway granted them.
    fn platform(&self) -> Option<Platform>;
}

impl PlatformExt for RequestContext {
    fn platform(&self) -> Option<Platform> {
        self.platform.as_ref().map(|access| {
            Platform::new(access.clone(), &self.request_id)
                .with_traceparent(self.traceparent.clone())
        })
    }
}

/// The platform services of one request.
#[derive(Debug, Clone)]
pub struct Platform {
    access: PlatformAccess,
    request_id: String,
    traceparent: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Platform {
    /// A handle for this access (the SDK makes it; see [`PlatformExt::platform`]).
    pub fn new(access: PlatformAccess, request_id: &str) -> Platform {
        Platform {
            access,
            request_id: request_id.to_owned(),
            traceparent: None,
            http: shared_client(),
        }
    }

    /// The same handle, sending this `traceparent` on every platform call (the SDK passes
    /// the request's, so platform calls are children of this hop in a trace).
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Platform {
        self.traceparent = traceparent;
        self
    }

    /// The platform base, up to and including `/platform`.
    pub fn url(&self) -> &str {
        self.access.url()
    }

    /// A Sandy client bound to the platform's `sandbox` service with this request's grant.
    pub fn sandy(&self) -> SandyClient {
        SandyClient::on(
            format!("{}/sandbox", self.access.url()),
            Some(self.access.grant().to_owned()),
            self.http.clone(),
        )
        .with_request_id(self.request_id.clone())
        .with_traceparent(self.traceparent.clone())
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        accept: &str,
    ) -> Result<Request<Full<Bytes>>, PlatformError> {
        let url = format!("{}/{}", self.access.url(), path.trim_start_matches('/'));
        let mut builder = Request::builder()
            .method(method)
            .uri(&url)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.access.grant()),
            )
            .header("x-request-id", &self.request_id)
            .header(header::ACCEPT, accept);
        if let Some(traceparent) = &self.traceparent {
            builder = builder.header(janus_core::contract::TRACEPARENT_HEADER, traceparent);
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(bytes))
            .map_err(|e| PlatformError::Protocol {
                what: path.to_owned(),
                reason: e.to_string(),
            })
    }

    async fn send(
        &self,
        what: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, PlatformError> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| PlatformError::Transport {
                what: what.to_owned(),
                reason: janus_core::error_chain(&e),
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = tokio::time::timeout(
            Duration::from_secs(10),
            Limited::new(response.into_body(), 64 * 1024).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(PlatformError::Status {
            what: what.to_owned(),
            status,
            code: value
                .pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_owned),
            message: value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
                }),
        })
    }

    async fn json(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PlatformError> {
        let response = self
            .send(what, self.request(method, path, body, "application/json")?)
            .await?;
        let bytes = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| PlatformError::Transport {
                what: what.to_owned(),
                reason: e.to_string(),
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| PlatformError::Protocol {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// A non-streaming chat completion from the `inference` service (`body` is an OpenAI
    /// request; `stream` is forced off).
    pub async fn chat(&self, body: &Value) -> Result<Value, PlatformError> {
        let mut body = body.clone();
        if let Value::Object(map) = &mut body {
            map.insert("stream".into(), Value::Bool(false));
        }
        self.json(
            "inference chat",
            Method::POST,
            "inference/chat/completions",
            Some(&body),
        )
        .await
    }

    /// A streaming chat completion from the `inference` service, relayed to `out` as it
    /// arrives: `content` as content, `reasoning_content` as reasoning. Returns the
    /// upstream's usage when it sent one.
    pub async fn chat_stream(
        &self,
        body: &Value,
        out: &mut dyn EventWriter,
    ) -> Result<Option<Usage>, PlatformError> {
        let what = "inference chat stream";
        let mut body = body.clone();
        if let Value::Object(map) = &mut body {
            map.insert("stream".into(), Value::Bool(true));
        }
        let response = self
            .send(
                what,
                self.request(
                    Method::POST,
                    "inference/chat/completions",
                    Some(&body),
                    "text/event-stream",
                )?,
            )
            .await?;
        let mut reader = SseReader::new(response.into_body(), Instant::now());
        let mut usage = None;
        loop {
            let item = reader
                .next(STREAM_IDLE)
                .await
                .map_err(|e| PlatformError::Transport {
                    what: what.to_owned(),
                    reason: e.to_string(),
                })?;
            let Some(item) = item else { break };
            let SseItem::Event(event) = item.item else {
                continue;
            };
            if event.data.trim() == DONE_DATA {
                break;
            }
            let chunk: Value =
                serde_json::from_str(&event.data).map_err(|e| PlatformError::Protocol {
                    what: what.to_owned(),
                    reason: e.to_string(),
                })?;
            if let Some(error) = chunk.get("error") {
                return Err(PlatformError::Status {
                    what: what.to_owned(),
                    status: StatusCode::BAD_GATEWAY,
                    code: error.get("code").and_then(Value::as_str).map(str::to_owned),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("stream error")
                        .to_owned(),
                });
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                usage = serde_json::from_value(u.clone()).ok();
            }
            for choice in chunk
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let delta = &choice["delta"];
                if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        out.reasoning(text).await?;
                    }
                }
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    if !text.is_empty() {
                        out.content(text).await?;
                    }
                }
            }
        }
        Ok(usage)
    }

    /// A `GET` of the `search` service: `path` below it, with these query parameters
    /// (percent-encoded here).
    pub async fn search(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, PlatformError> {
        let mut target = format!("search/{}", path.trim_start_matches('/'));
        for (i, (key, value)) in query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&encode(key));
            target.push('=');
            target.push_str(&encode(value));
        }
        self.json("search", Method::GET, &target, None).await
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn access_needs_a_grant_and_hides_it() {
        let mut headers = HeaderMap::new();
        assert!(access_from_headers(&headers).is_none());
        headers.insert("x-janus-platform-token", "g.sig".parse().unwrap());
        headers.insert(
            "x-janus-platform-url",
            "http://127.0.0.1:8001/platform/".parse().unwrap(),
        );
        let access = access_from_headers(&headers).unwrap();
        assert_eq!(access.url(), "http://127.0.0.1:8001/platform");
        assert!(!format!("{access:?}").contains("g.sig"));
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
