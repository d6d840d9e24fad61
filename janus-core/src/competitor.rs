//! The competitor contract in code: what a competitor implements and what it writes to.
//!
//! One handler serves both modes: it writes [`CompetitorEvent`]s to an [`EventWriter`];
//! the serving side (the competitor SDK) turns them into SSE chunks when the client asked
//! for a stream, or folds them into one response when it did not.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::artifact::ArtifactDescriptor;
use crate::chat::{ChatCompletionRequest, JanusEvent, ToolCallDelta, Usage};

/// What the handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// From `X-Request-Id`, or generated; send it on outgoing calls.
    pub request_id: String,
    /// From `X-Correlation-ID`, when present.
    pub correlation_id: Option<String>,
    /// The `traceparent` to send on outgoing calls: the request's trace, with this hop's
    /// span as the parent (the SDK's platform and Sandy clients send it).
    pub traceparent: Option<String>,
    /// When the request will be cancelled.
    pub deadline: Instant,
    /// From `X-Janus-Deadline`: when the gateway ends the request (unix milliseconds).
    pub gateway_deadline_ms: Option<u64>,
    /// The request's headers as forwarded by the gateway (`X-Baseline-Agent`, …), minus
    /// credentials.
    pub headers: RequestHeaders,
    /// The platform services of this request, when the gateway granted them.
    pub platform: Option<PlatformAccess>,
}

/// Read-only request headers, names lower-case. `Authorization` and the platform grant are
/// never in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders(BTreeMap<String, String>);

impl RequestHeaders {
    /// Headers from `(name, value)` pairs; names are lower-cased, credentials dropped, and
    /// a repeated header keeps its first value.
    pub fn new<I, K, V>(pairs: I) -> RequestHeaders
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            let name = name.as_ref().to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "authorization" | "cookie" | "x-janus-platform-token"
            ) {
                continue;
            }
            map.entry(name).or_insert_with(|| value.into());
        }
        RequestHeaders(map)
    }

    /// The value of a header (name in any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Every header, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Where this request's platform services are, and the grant that opens them. The SDK's
/// platform clients send the grant; a handler has no reason to touch it (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct PlatformAccess {
    url: String,
    grant: String,
}

impl PlatformAccess {
    /// From `X-Janus-Platform-Url` and `X-Janus-Platform-Token`.
    pub fn new(url: impl Into<String>, grant: impl Into<String>) -> PlatformAccess {
        PlatformAccess {
            url: url.into().trim_end_matches('/').to_owned(),
            grant: grant.into(),
        }
    }

    /// The platform base, up to and including `/platform`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The grant, for the `Authorization` header of platform calls.
    pub fn grant(&self) -> &str {
        &self.grant
    }
}

impl fmt::Debug for PlatformAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformAccess")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RequestContext {
    /// A context with a fresh request id and the default 300 s deadline.
    pub fn new() -> Self {
        RequestContext {
            request_id: crate::ids::new_request_id(),
            correlation_id: None,
            traceparent: None,
            deadline: Instant::now() + crate::contract::DEFAULT_REQUEST_TIMEOUT,
            gateway_deadline_ms: None,
            headers: RequestHeaders::default(),
            platform: None,
        }
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// When the request ends: [`deadline`](Self::deadline), or the gateway's
    /// (`X-Janus-Deadline`) when that comes first.
    pub fn ends_at(&self) -> Instant {
        match self.gateway_deadline_ms {
            Some(gateway_ms) => {
                let left = Duration::from_millis(gateway_ms.saturating_sub(crate::ids::unix_ms()));
                self.deadline.min(Instant::now() + left)
            }
            None => self.deadline,
        }
    }
}

impl Default for RequestContext {
    fn default() -> Self {
        Self::new()
    }
}

/// One thing a handler emits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CompetitorEvent {
    /// A piece of the answer.
    Content(String),
    /// A piece of the intermediate steps (`reasoning_content`).
    Reasoning(String),
    /// A tool-call fragment.
    ToolCall(ToolCallDelta),
    /// A structured Janus event.
    Janus(JanusEvent),
    /// An artifact; sent as a `janus` `artifacts` event.
    Artifact(ArtifactDescriptor),
    /// Final usage.
    Usage(Usage),
    /// The finish reason (`stop`, `length`, `tool_calls`); defaults to `stop` if never sent.
    Finish(String),
}

/// The client went away; the handler should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client is gone")]
pub struct WriterClosed;

/// Where a handler writes its events.
#[async_trait]
pub trait EventWriter: Send {
    /// Sends one event; fails once the client is gone.
    async fn send(&mut self, event: CompetitorEvent) -> Result<(), WriterClosed>;

    /// Sends a piece of the answer.
    async fn content(&mut self, text: &str) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Content(text.to_owned())).await
    }

    /// Sends a piece of the intermediate steps.
    async fn reasoning(&mut self, text: &str) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Reasoning(text.to_owned())).await
    }

    /// Sends a Janus event.
    async fn janus(&mut self, event: JanusEvent) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Janus(event)).await
    }

    /// Sends an artifact.
    async fn artifact(&mut self, artifact: ArtifactDescriptor) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Artifact(artifact)).await
    }

    /// Sends usage.
    async fn usage(&mut self, usage: Usage) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Usage(usage)).await
    }

    /// Sends the finish reason.
    async fn finish(&mut self, reason: &str) -> Result<(), WriterClosed> {
        self.send(CompetitorEvent::Finish(reason.to_owned())).await
    }
}

/// A handler failure, reported to the client as an error event or a 500 envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompetitorError {
    /// The client went away.
    #[error(transparent)]
    Closed(#[from] WriterClosed),
    /// The request cannot be served as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Anything else (500 / error event).
    #[error("{0}")]
    Internal(String),
}

/// What a competitor implements.
#[async_trait]
pub trait Competitor: Send + Sync + 'static {
    /// Answers one request by writing events to `out`.
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError>;

    /// Readiness for `/health`; `false` makes it answer 503.
    async fn ready(&self) -> bool {
        true
    }
}
