//! Running a handler and turning what it writes into a response.
//!
//! The handler runs on its own task, so a panic is caught there and the server keeps going.
//! It writes [`CompetitorEvent`]s into a small bounded channel; the receiving side is either
//! an [`SseBody`] (stream: one chunk per event, keep-alives while it is silent) or a loop that
//! folds the same chunks with the janus-core aggregator (non-stream). Whoever holds the
//! receiving side also holds the task's [`AbortOnDrop`] guard: when hyper drops the body or
//! the service future because the client went away, the handler future is dropped with it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::StatusCode;
use http_body::{Body, Frame};
use janus_core::{
    sse, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChunkAggregator,
    Competitor, CompetitorError, CompetitorEvent, Delta, ErrorEnvelope, ErrorKind, EventWriter,
    JanusEvent, RequestContext, Role, Usage, WriterClosed,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tracing::Instrument as _;

use crate::artifacts::Artifacts;
use crate::metrics::{Metrics, Mode};

/// Events in flight between the handler and the client. Small: a handler that writes faster
/// than the client reads waits in `send` instead of filling memory.
const CHANNEL_CAPACITY: usize = 16;
/// Events ready at once are sent in one frame, up to about this many bytes.
const BATCH_BYTES: usize = 32 * 1024;

/// What the handler task sends: its events, then how it ended.
// Events are nearly every message; boxing them would allocate per event to shrink the rare one.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Event(CompetitorEvent),
    End(Result<(), Failure>),
}

/// Why a handler did not complete normally.
#[derive(Debug)]
pub(crate) enum Failure {
    BadRequest(String),
    Internal(String),
    Panic(String),
    Timeout(Duration),
    /// The handler gave up because its writer was closed.
    Closed,
    /// The task ended without reporting (it was aborted).
    Vanished,
    /// The server is shutting down and the grace period is over.
    ShuttingDown,
}

impl Failure {
    fn from_competitor(error: CompetitorError) -> Failure {
        match error {
            CompetitorError::Closed(_) => Failure::Closed,
            CompetitorError::BadRequest(message) => Failure::BadRequest(message),
            CompetitorError::Internal(message) => Failure::Internal(message),
            other => Failure::Internal(other.to_string()),
        }
    }

    /// The metrics label.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::Internal(_) => "error",
            Failure::Panic(_) => "panic",
            Failure::Timeout(_) => "timeout",
            Failure::Closed | Failure::Vanished => "cancelled",
            Failure::ShuttingDown => "shutdown",
        }
    }

    /// The status of a non-streaming error response.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Failure::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn envelope(&self) -> ErrorEnvelope {
        match self {
            Failure::BadRequest(message) => {
                ErrorEnvelope::new(ErrorKind::InvalidRequest, message, Some("invalid_request"))
            }
            Failure::Internal(message) => {
                ErrorEnvelope::new(ErrorKind::Server, message, Some("competitor_error"))
            }
            Failure::Panic(_) => ErrorEnvelope::new(
                ErrorKind::Server,
                "the competitor failed while answering (handler panicked)",
                Some("competitor_panic"),
            ),
            Failure::Timeout(limit) => ErrorEnvelope::new(
                ErrorKind::Timeout,
                format!(
                    "the request did not finish within its {} deadline",
                    humantime::format_duration(*limit)
                ),
                Some("deadline_exceeded"),
            ),
            Failure::Closed | Failure::Vanished => ErrorEnvelope::new(
                ErrorKind::Server,
                "the competitor's handler ended without an answer",
                Some("competitor_error"),
            ),
            Failure::ShuttingDown => ErrorEnvelope::new(
                ErrorKind::Server,
                "the competitor is shutting down",
                Some("shutting_down"),
            ),
        }
    }

    fn log(&self) {
        match self {
            Failure::BadRequest(message) => {
                tracing::info!(%message, "handler rejected the request")
            }
            Failure::Internal(message) => tracing::warn!(%message, "handler failed"),
            Failure::Panic(message) => tracing::error!(%message, "handler panicked"),
            Failure::Timeout(limit) => {
                tracing::warn!(timeout_ms = limit.as_millis() as u64, "handler timed out")
            }
            Failure::Closed | Failure::Vanished => tracing::debug!("handler ended early"),
            Failure::ShuttingDown => tracing::warn!("stream ended by shutdown"),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The [`EventWriter`] handed to handlers.
struct ChannelWriter {
    tx: mpsc::Sender<Msg>,
}

#[async_trait]
impl EventWriter for ChannelWriter {
    async fn send(&mut self, event: CompetitorEvent) -> Result<(), WriterClosed> {
        self.tx
            .send(Msg::Event(event))
            .await
            .map_err(|_| WriterClosed)
    }
}

/// Aborts the task when dropped: the one place where "client gone" becomes "handler
/// cancelled".
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running handler: its events, and the guard that cancels it.
pub(crate) struct HandlerTask {
    rx: mpsc::Receiver<Msg>,
    _abort: AbortOnDrop,
}

/// Spawns `competitor.handle` on its own task, bounded by `deadline`.
pub(crate) fn spawn_handler<C: Competitor>(
    competitor: Arc<C>,
    request: ChatCompletionRequest,
    context: RequestContext,
    deadline: tokio::time::Instant,
    timeout: Duration,
    artifacts: Artifacts,
) -> HandlerTask {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let task = async move {
        let mut writer = ChannelWriter { tx: tx.clone() };
        let handler = AssertUnwindSafe(competitor.handle(request, context, &mut writer));
        let result = match tokio::time::timeout_at(deadline, handler.catch_unwind()).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(Failure::from_competitor(error)),
            Ok(Err(panic)) => Err(Failure::Panic(panic_message(&*panic))),
            Err(_elapsed) => Err(Failure::Timeout(timeout)),
        };
        drop(writer);
        // Fails only when the client is gone, and then nobody needs to know.
        let _ = tx.send(Msg::End(result)).await;
    };
    // The task inherits the request's span so the handler's own log lines carry its id.
    let handle = tokio::spawn(artifacts.scope(task).in_current_span());
    HandlerTask {
        rx,
        _abort: AbortOnDrop(handle),
    }
}

/// Turns events into chunks with one id, `created` and model, role on the first.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    id: String,
    created: u64,
    model: String,
    role_sent: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ChunkBuilder {
    pub(crate) fn new(model: &str) -> Self {
        ChunkBuilder {
            id: janus_core::new_completion_id(),
            created: janus_core::unix_now(),
            model: model.to_owned(),
            role_sent: false,
            finish_reason: None,
            usage: None,
        }
    }

    fn chunk(&mut self, mut delta: Delta) -> ChatCompletionChunk {
        if !self.role_sent {
            delta.role = Some(Role::Assistant);
            self.role_sent = true;
        }
        ChatCompletionChunk::with_delta(&self.id, self.created, &self.model, delta)
    }

    /// The chunk for one event; `None` for usage and finish, which come at the end.
    pub(crate) fn event(&mut self, event: CompetitorEvent) -> Option<ChatCompletionChunk> {
        let delta = match event {
            CompetitorEvent::Content(text) => Delta {
                content: Some(text),
                ..Delta::default()
            },
            CompetitorEvent::Reasoning(text) => Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            },
            CompetitorEvent::ToolCall(call) => Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            CompetitorEvent::Janus(event) => Delta {
                janus: Some(event),
                ..Delta::default()
            },
            CompetitorEvent::Artifact(descriptor) => {
                // Inside the request's span: a hop step of `janus trace`.
                tracing::info!(
                    artifact_id = %descriptor.id,
                    size = descriptor.size_bytes,
                    inline = descriptor.url.starts_with("data:"),
                    "artifact published"
                );
                Delta {
                    janus: Some(JanusEvent::artifacts(&[descriptor])),
                    ..Delta::default()
                }
            }
            CompetitorEvent::Usage(usage) => {
                self.usage = Some(usage);
                return None;
            }
            CompetitorEvent::Finish(reason) => {
                self.finish_reason = Some(reason);
                return None;
            }
            other => {
                tracing::warn!(event = ?other, "event kind unknown to this SDK version; dropped");
                return None;
            }
        };
        Some(self.chunk(delta))
    }

    /// The chunk carrying `finish_reason`, then the usage chunk when `include_usage` and
    /// the handler reported usage.
    pub(crate) fn finish(
        &mut self,
        include_usage: bool,
    ) -> (ChatCompletionChunk, Option<ChatCompletionChunk>) {
        let delta = if self.role_sent {
            Delta::default()
        } else {
            // A handler that wrote nothing still answers with an (empty) assistant message.
            Delta {
                content: Some(String::new()),
                ..Delta::default()
            }
        };
        let mut last = self.chunk(delta);
        let reason = self
            .finish_reason
            .take()
            .unwrap_or_else(|| "stop".to_owned());
        if let Some(choice) = last.choices.first_mut() {
            choice.finish_reason = Some(reason);
        }
        let usage = self.usage.take().filter(|_| include_usage).map(|usage| {
            let mut chunk = ChatCompletionChunk::with_delta(
                &self.id,
                self.created,
                &self.model,
                Delta::default(),
            );
            chunk.choices.clear();
            chunk.usage = Some(usage);
            chunk
        });
        (last, usage)
    }
}

fn encode_chunk(chunk: &ChatCompletionChunk, out: &mut Vec<u8>) {
    match serde_json::to_string(chunk) {
        Ok(json) => sse::encode_data(&json, out),
        // Chunks are plain strings, numbers and maps; this cannot fail in practice.
        Err(e) => tracing::error!(error = %e, "chunk did not serialize; dropped"),
    }
}

/// Records a request's end in the metrics and the log exactly once: when its outcome is
/// known, or as `cancelled` when its body or future is dropped first (the client left).
pub(crate) struct RequestRecord {
    metrics: Arc<Metrics>,
    mode: Mode,
    started: Instant,
    finished: bool,
    span: tracing::Span,
}

impl RequestRecord {
    pub(crate) fn start(metrics: Arc<Metrics>, mode: Mode, started: Instant) -> Self {
        metrics.request_started();
        RequestRecord {
            metrics,
            mode,
            started,
            finished: false,
            span: tracing::Span::current(),
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let took = self.started.elapsed();
        self.metrics.request_finished(self.mode, outcome, took);
        let _entered = self.span.enter();
        tracing::info!(
            mode = self.mode.as_str(),
            outcome,
            duration_ms = took.as_millis() as u64,
            "request finished"
        );
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.finish("cancelled");
    }
}

/// Waits for the handler and folds its events into one response.
pub(crate) async fn complete(
    mut task: HandlerTask,
    mut chunks: ChunkBuilder,
    mut record: RequestRecord,
) -> Result<ChatCompletionResponse, Failure> {
    let mut aggregator = ChunkAggregator::new();
    let result = loop {
        match task.rx.recv().await {
            Some(Msg::Event(event)) => {
                if let Some(chunk) = chunks.event(event) {
                    aggregator.push(&chunk);
                }
            }
            Some(Msg::End(result)) => break result,
            None => break Err(Failure::Vanished),
        }
    };
    match result {
        Ok(()) => {
            let (last, usage) = chunks.finish(true);
            aggregator.push(&last);
            if let Some(usage) = usage {
                aggregator.push(&usage);
            }
            record.finish("ok");
            Ok(aggregator.finish())
        }
        Err(failure) => {
            failure.log();
            record.finish(failure.outcome());
            Err(failure)
        }
    }
}

/// The body of a streaming response: chunks as the handler writes them, `: ping` after
/// `keepalive` of silence, an error event if the handler fails, and always `[DONE]`.
pub(crate) struct SseBody {
    task: HandlerTask,
    chunks: ChunkBuilder,
    include_usage: bool,
    keepalive: Pin<Box<Sleep>>,
    interval: Duration,
    /// Resolves when the shutdown grace period is over.
    force_stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    finished: bool,
    metrics: Arc<Metrics>,
    record: RequestRecord,
}

impl SseBody {
    pub(crate) fn new(
        task: HandlerTask,
        chunks: ChunkBuilder,
        include_usage: bool,
        interval: Duration,
        force_stop: Pin<Box<dyn Future<Output = ()> + Send>>,
        metrics: Arc<Metrics>,
        record: RequestRecord,
    ) -> Self {
        SseBody {
            task,
            chunks,
            include_usage,
            keepalive: Box::pin(tokio::time::sleep(interval)),
            interval,
            force_stop,
            finished: false,
            metrics,
            record,
        }
    }

    fn end(&mut self, result: Result<(), Failure>, out: &mut Vec<u8>) {
        match result {
            Ok(()) => {
                let (last, usage) = self.chunks.finish(self.include_usage);
                encode_chunk(&last, out);
                if let Some(usage) = usage {
                    encode_chunk(&usage, out);
                }
                self.record.finish("ok");
            }
            Err(failure) => {
                let span = self.record.span.clone();
                let _entered = span.enter();
                failure.log();
                out.extend_from_slice(&failure.envelope().to_sse_event());
                self.record.finish(failure.outcome());
            }
        }
        sse::encode_done(out);
        self.finished = true;
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        if this.force_stop.as_mut().poll(cx).is_ready() {
            this.end(Err(Failure::ShuttingDown), &mut out);
        }
        while out.len() < BATCH_BYTES && !this.finished {
            match this.task.rx.poll_recv(cx) {
                Poll::Ready(Some(Msg::Event(event))) => {
                    if let Some(chunk) = this.chunks.event(event) {
                        encode_chunk(&chunk, &mut out);
                    }
                }
                Poll::Ready(Some(Msg::End(result))) => this.end(result, &mut out),
                Poll::Ready(None) => this.end(Err(Failure::Vanished), &mut out),
                Poll::Pending => break,
            }
        }
        if out.is_empty() {
            if this.keepalive.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            out.extend_from_slice(sse::PING);
            this.metrics.keepalive_sent();
        }
        // Anything the client sees restarts the silence timer.
        let next = tokio::time::Instant::now() + this.interval;
        this.keepalive.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_only_on_first_chunk_and_finish_defaults_to_stop() {
        let mut builder = ChunkBuilder::new("m");
        let first = builder
            .event(CompetitorEvent::Reasoning("r".into()))
            .unwrap();
        let second = builder.event(CompetitorEvent::Content("c".into())).unwrap();
        assert_eq!(first.choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(second.choices[0].delta.role, None);
        assert_eq!(first.id, second.id);
        assert!(builder
            .event(CompetitorEvent::Usage(Usage::new(1, 2)))
            .is_none());
        let (last, usage) = builder.finish(false);
        assert_eq!(last.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(last.choices[0].delta, Delta::default());
        assert!(usage.is_none());
    }

    #[test]
    fn usage_chunk_has_no_choices() {
        let mut builder = ChunkBuilder::new("m");
        builder.event(CompetitorEvent::Usage(Usage::new(1, 2)));
        builder.event(CompetitorEvent::Finish("length".into()));
        let (last, usage) = builder.finish(true);
        assert_eq!(last.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(last.choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(last.choices[0].delta.content.as_deref(), Some(""));
        let usage = usage.unwrap();
        assert!(usage.choices.is_empty());
        assert_eq!(usage.usage, Some(Usage::new(1, 2)));
    }
}
