//! The streaming relay: an `http_body::Body` that forwards the competitor's SSE bytes as they
//! arrive and keeps the client's stream alive.
//!
//! Bytes are forwarded up to the last complete event of each read (`janus_core::sse` tells
//! where that is); the tail of a partly received event waits for the rest. So what the client
//! has seen always ends at an event boundary, and a keep-alive comment or an error event can
//! be inserted at any moment without corrupting the stream. Reads are forwarded as
//! zero-copy slices; only partial tails are copied.
//!
//! Cancellation: when the client goes away hyper drops this body, which drops the upstream
//! response body, which closes the competitor connection at once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use janus_core::sse::{SseDecoder, SseItem, DONE, DONE_DATA, PING};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::access::AccessRecord;
use crate::error::GatewayError;
use crate::platform::RequestGrant;
use crate::upstream::{error_chain, has_content_type, UpstreamResponse};
use janus_http::PooledBody;

/// The comment sent while waiting for a cold competitor.
pub const WARMING: &[u8] = b": warming upstream\n\n";

/// Cap on one upstream event; larger events end the stream with an error.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

type Connect = Pin<Box<dyn Future<Output = Result<UpstreamResponse, GatewayError>> + Send>>;
type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

enum State {
    /// Waiting for the competitor's response headers (with cold-start retries).
    Connecting(Connect),
    /// Relaying the competitor's body.
    Streaming(PooledBody),
    /// Nothing more to read; the queue drains, then the body ends.
    Ended,
}

/// The SSE body of a relayed stream.
pub struct RelayBody {
    state: State,
    queue: VecDeque<(Bytes, bool)>,
    competitor: String,
    decoder: SseDecoder,
    items: Vec<SseItem>,
    partial: BytesMut,
    done_seen: bool,
    keepalive_interval: Duration,
    keepalive: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    shutdown: Signal,
    warming: Arc<AtomicBool>,
    record: AccessRecord,
    platform: Option<PlatformUsage>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl std::fmt::Debug for RelayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBody")
            .field("competitor", &self.competitor)
            .field("queued", &self.queue.len())
            .field("done_seen", &self.done_seen)
            .finish_non_exhaustive()
    }
}

/// What a relay needs besides the upstream future.
#[derive(Debug)]
pub struct RelayOptions {
    /// Competitor id, for errors.
    pub competitor: String,
    /// Silence before a keep-alive comment.
    pub keepalive_interval: Duration,
    /// Total time the request may take (named in the timeout error).
    pub timeout: Duration,
    /// When the request ends: its start (the client's first byte of headers) plus
    /// `timeout`, so time spent receiving the body counts too.
    pub deadline: Instant,
    /// Raised by the upstream future while it waits between cold-start attempts.
    pub warming: Arc<AtomicBool>,
    /// Held until the stream ends (per-competitor concurrency).
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The request's platform grant: held until the stream ends, and its figures written
    /// into the usage chunk when the client asked for usage.
    pub platform: Option<PlatformUsage>,
}

/// The platform side of a relayed stream.
#[derive(Debug)]
pub struct PlatformUsage {
    grant: RequestGrant,
    include_usage: bool,
    /// `id`, `created`, `model` of the competitor's chunks, for a usage chunk we add.
    meta: Option<(Value, Value, Value)>,
    written: bool,
}

impl PlatformUsage {
    /// The grant of a stream; `include_usage` as the client asked.
    pub fn new(grant: RequestGrant, include_usage: bool) -> PlatformUsage {
        PlatformUsage {
            grant,
            include_usage,
            meta: None,
            written: false,
        }
    }

    /// The usage chunk the gateway adds when the competitor sent none.
    fn usage_chunk(&mut self, out: &mut Vec<u8>) {
        self.written = true;
        let (id, created, model) = self.meta.clone().unwrap_or_else(|| {
            (
                Value::String(janus_core::new_completion_id()),
                Value::from(janus_core::unix_now()),
                Value::String(String::new()),
            )
        });
        let chunk = serde_json::json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "platform": self.grant.figures().to_json(),
            },
        });
        janus_core::sse::encode_data(&chunk.to_string(), out);
    }

    /// Rebuilds the events of one read when it carries the usage chunk (which gets
    /// `usage.platform`) or `[DONE]` with no usage chunk yet (one is added before it);
    /// `None` leaves the read's bytes untouched, which is the case for every other read.
    fn rewrite(&mut self, items: &[SseItem]) -> Option<Bytes> {
        if !self.include_usage || self.written {
            return None;
        }
        let mut usage_at = None;
        let mut done = false;
        for (i, item) in items.iter().enumerate() {
            let SseItem::Event(event) = item else {
                continue;
            };
            if event.data.trim() == DONE_DATA {
                done = true;
                break;
            }
            if self.meta.is_none() {
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&event.data) {
                    let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
                    self.meta = Some((get("id"), get("created"), get("model")));
                }
            }
            // Cheap test first: only the usage chunk is parsed.
            if usage_at.is_none() && event.data.contains("\"usage\"") {
                if let Ok(value) = serde_json::from_str::<Value>(&event.data) {
                    if value.get("usage").is_some_and(Value::is_object) {
                        usage_at = Some((i, value));
                    }
                }
            }
        }
        if usage_at.is_none() && !done {
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                SseItem::Event(_) if usage_at.as_ref().is_some_and(|(at, _)| *at == i) => {
                    if let Some((_, mut value)) = usage_at.take() {
                        if let Some(Value::Object(usage)) = value.get_mut("usage") {
                            usage.insert("platform".into(), self.grant.figures().to_json());
                        }
                        self.written = true;
                        janus_core::sse::encode_data(&value.to_string(), &mut out);
                    }
                }
                SseItem::Event(event) if event.data.trim() == DONE_DATA => {
                    if !self.written {
                        self.usage_chunk(&mut out);
                    }
                    out.extend_from_slice(DONE);
                    break;
                }
                SseItem::Event(event) => janus_core::sse::encode_event(event, &mut out),
                SseItem::Comment(text) => janus_core::sse::encode_comment(text, &mut out),
            }
        }
        Some(Bytes::from(out))
    }
}

impl RelayBody {
    /// A relay that first awaits `connect`, then streams its body.
    pub fn new(
        connect: impl Future<Output = Result<UpstreamResponse, GatewayError>> + Send + 'static,
        shutdown: impl Future<Output = ()> + Send + 'static,
        options: RelayOptions,
        mut record: AccessRecord,
    ) -> Self {
        record.begin_stream();
        let now = Instant::now();
        RelayBody {
            state: State::Connecting(Box::pin(connect)),
            queue: VecDeque::new(),
            competitor: options.competitor,
            decoder: SseDecoder::with_max_event_bytes(MAX_EVENT_BYTES),
            items: Vec::new(),
            partial: BytesMut::new(),
            done_seen: false,
            keepalive_interval: options.keepalive_interval,
            keepalive: Box::pin(tokio::time::sleep_until(now + options.keepalive_interval)),
            deadline: Box::pin(tokio::time::sleep_until(options.deadline)),
            timeout: options.timeout,
            shutdown: Box::pin(shutdown),
            warming: options.warming,
            record,
            platform: options.platform,
            _permit: options.permit,
        }
    }

    /// Ends the stream with an error event and `[DONE]` (unless `[DONE]` already went out).
    fn fail(&mut self, error: GatewayError) {
        let code = error.code();
        if error.is_upstream() {
            self.record.upstream_error(code);
            tracing::warn!(competitor = %self.competitor, code, error = %error, "stream failed");
        } else {
            tracing::info!(competitor = %self.competitor, code, error = %error, "stream ended early");
        }
        self.record.set_outcome(code);
        if !self.done_seen {
            // Only the error body: status lines are meaningless mid-stream.
            let mut envelope = error.envelope();
            envelope.error.param = None;
            self.queue
                .push_back((Bytes::from(envelope.to_sse_event()), false));
            self.queue.push_back((Bytes::from_static(DONE), false));
            self.done_seen = true;
        }
        self.state = State::Ended;
    }

    fn on_response(&mut self, response: UpstreamResponse) {
        self.record.upstream_answered();
        if !has_content_type(&response, janus_core::contract::EVENT_STREAM_CONTENT_TYPE) {
            let found = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            self.fail(GatewayError::InvalidUpstream {
                competitor: self.competitor.clone(),
                reason: format!("expected content-type text/event-stream, got {found}"),
            });
            return;
        }
        self.state = State::Streaming(response.into_body());
    }

    /// Forwards complete events of `data`, holds back a partial tail, watches for `[DONE]`
    /// and malformed or oversize events.
    fn on_data(&mut self, data: Bytes) {
        let outcome = match self.decoder.feed(&data, &mut self.items) {
            Ok(outcome) => outcome,
            Err(e) => {
                self.items.clear();
                return self.fail(GatewayError::InvalidUpstream {
                    competitor: self.competitor.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let mut done_at = None;
        let mut malformed = None;
        for (i, item) in self.items.iter().enumerate() {
            let SseItem::Event(event) = item else {
                continue;
            };
            if event.data.trim() == DONE_DATA {
                done_at = Some(i);
                break;
            }
            // One JSON check per event (syntax and depth, no allocation). The contract turns
            // a malformed event into an error event, and a client must never see a broken one.
            if let Err(why) = janus_core::check_json_document(event.data.as_bytes()) {
                malformed = Some(format!(
                    "{why}: {}",
                    crate::upstream::summarize(event.data.as_bytes())
                ));
                break;
            }
        }
        if let Some(summary) = malformed {
            self.items.clear();
            return self.fail(GatewayError::InvalidUpstream {
                competitor: self.competitor.clone(),
                reason: format!("event is not JSON: {summary}"),
            });
        }
        let trailing_events = match done_at {
            Some(i) => self.items[i + 1..]
                .iter()
                .any(|item| matches!(item, SseItem::Event(_))),
            None => false,
        };
        let rewritten = match &mut self.platform {
            Some(platform) => platform.rewrite(&self.items),
            None => None,
        };
        self.items.clear();

        let mut ready = match outcome.last_boundary {
            Some(boundary) if self.partial.is_empty() => {
                let head = data.slice(..boundary);
                if boundary < data.len() {
                    self.partial.extend_from_slice(&data[boundary..]);
                }
                head
            }
            Some(boundary) => {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(&data[..boundary]);
                if boundary < data.len() {
                    self.partial.extend_from_slice(&data[boundary..]);
                }
                joined.freeze()
            }
            None => {
                self.partial.extend_from_slice(&data);
                Bytes::new()
            }
        };
        let was_rewritten = rewritten.is_some();
        if let Some(rewritten) = rewritten {
            // Ends exactly after [DONE] when the read had it, so no cut is needed below.
            ready = rewritten;
        }
        if done_at.is_some() {
            if trailing_events && !was_rewritten {
                // Rare: the competitor sent events after [DONE] in the same read. Cut exactly
                // after [DONE]; what the client has seen ends at a boundary, so a fresh
                // decoder over `ready` finds the spot.
                let cut = end_of_done(&ready).unwrap_or(ready.len());
                ready.truncate(cut);
            }
            self.done_seen = true;
            self.partial.clear();
            self.record.set_outcome("ok");
            self.state = State::Ended;
        }
        if !ready.is_empty() {
            self.queue.push_back((ready, false));
        }
    }

    fn on_upstream_end(&mut self) {
        if !self.partial.is_empty() {
            let reason = format!(
                "stream ended inside an event ({} bytes never completed)",
                self.partial.len()
            );
            self.partial.clear();
            return self.fail(GatewayError::UpstreamReset {
                competitor: self.competitor.clone(),
                reason,
            });
        }
        if !self.done_seen {
            if let Some(platform) = self
                .platform
                .as_mut()
                .filter(|p| p.include_usage && !p.written)
            {
                let mut chunk = Vec::new();
                platform.usage_chunk(&mut chunk);
                self.queue.push_back((Bytes::from(chunk), false));
            }
            // A competitor that forgets [DONE] still ends cleanly: exactly one goes out.
            self.queue.push_back((Bytes::from_static(DONE), false));
            self.done_seen = true;
        }
        self.record.set_outcome("ok");
        self.state = State::Ended;
    }
}

/// Offset just past the `[DONE]` event in `bytes`, which starts at an event boundary.
fn end_of_done(bytes: &[u8]) -> Option<usize> {
    let mut decoder = SseDecoder::with_max_event_bytes(MAX_EVENT_BYTES);
    let mut items = Vec::new();
    for i in 0..bytes.len() {
        decoder.feed(&bytes[i..=i], &mut items).ok()?;
        let done = items
            .drain(..)
            .any(|item| matches!(item, SseItem::Event(e) if e.data.trim() == DONE_DATA));
        if done {
            return Some(i + 1);
        }
    }
    None
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some((bytes, is_keepalive)) = this.queue.pop_front() {
                this.record.emitted(bytes.len(), is_keepalive);
                let next = Instant::now() + this.keepalive_interval;
                this.keepalive.as_mut().reset(next);
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if matches!(this.state, State::Ended) {
                return Poll::Ready(None);
            }
            if this.shutdown.as_mut().poll(cx).is_ready() {
                this.fail(GatewayError::ShuttingDown);
                continue;
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.fail(GatewayError::Timeout {
                    competitor: this.competitor.clone(),
                    seconds: this.timeout.as_secs_f64(),
                });
                continue;
            }
            match &mut this.state {
                State::Connecting(connect) => match connect.as_mut().poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        this.on_response(response);
                        continue;
                    }
                    Poll::Ready(Err(error)) => {
                        this.fail(error);
                        continue;
                    }
                    Poll::Pending => {}
                },
                State::Streaming(body) => match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                this.on_data(data);
                            }
                        }
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        this.fail(GatewayError::UpstreamReset {
                            competitor: this.competitor.clone(),
                            reason: error_chain(&e),
                        });
                        continue;
                    }
                    Poll::Ready(None) => {
                        this.on_upstream_end();
                        continue;
                    }
                    Poll::Pending => {}
                },
                State::Ended => continue,
            }
            // Upstream is silent: a keep-alive is always safe here because what the client
            // has seen ends at an event boundary.
            if this.keepalive.as_mut().poll(cx).is_ready() {
                let comment = if this.warming.load(Ordering::Relaxed) {
                    WARMING
                } else {
                    PING
                };
                this.queue.push_back((Bytes::from_static(comment), true));
                continue;
            }
            return Poll::Pending;
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Ended) && self.queue.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
