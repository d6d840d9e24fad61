//! The per-request record: one log line when a chat request ends, and its metrics.
//!
//! The record is finished explicitly, or on drop — a stream whose client went away ends when
//! hyper drops its body, and that still produces exactly one log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// What the log line says about one chat request.
#[derive(Debug)]
pub struct AccessRecord {
    metrics: Arc<Metrics>,
    /// Request id.
    pub request_id: String,
    /// Correlation id, when sent.
    pub correlation_id: Option<String>,
    /// Chosen competitor (empty before routing).
    pub competitor: String,
    /// Why it was chosen: `competitor_id`, `model` or `default`.
    pub route: &'static str,
    /// Streaming request.
    pub stream: bool,
    /// HTTP status sent.
    pub status: u16,
    started: Instant,
    first_event: Option<Duration>,
    /// When the competitor's response head arrived (for `janus trace`).
    upstream_head: Option<Duration>,
    last_emit: Instant,
    max_gap: Duration,
    /// Keep-alive comments sent.
    pub keepalives: u64,
    /// Response bytes sent.
    pub bytes_out: u64,
    outcome: Option<&'static str>,
    active_stream: bool,
    /// The platform meter of the request, when a grant was minted.
    pub platform: Option<Arc<crate::platform::Meter>>,
}

impl AccessRecord {
    /// Starts the record of a request.
    pub fn start(
        metrics: Arc<Metrics>,
        request_id: String,
        correlation_id: Option<String>,
    ) -> Self {
        let now = Instant::now();
        AccessRecord {
            metrics,
            request_id,
            correlation_id,
            competitor: String::new(),
            route: "",
            stream: false,
            status: 200,
            started: now,
            first_event: None,
            upstream_head: None,
            last_emit: now,
            max_gap: Duration::ZERO,
            keepalives: 0,
            bytes_out: 0,
            outcome: None,
            active_stream: false,
            platform: None,
        }
    }

    /// Marks the request as a stream being relayed (the active-streams gauge).
    pub fn begin_stream(&mut self) {
        self.stream = true;
        if !self.active_stream {
            self.active_stream = true;
            self.metrics.active_streams_add(1);
        }
    }

    /// Records bytes sent to the client; `is_event` is false for keep-alive comments.
    pub fn emitted(&mut self, bytes: usize, is_keepalive: bool) {
        let now = Instant::now();
        self.max_gap = self.max_gap.max(now.duration_since(self.last_emit));
        self.last_emit = now;
        self.bytes_out += bytes as u64;
        self.metrics.add_bytes_relayed(bytes as u64);
        if is_keepalive {
            self.keepalives += 1;
            self.metrics.keepalive_sent();
        } else if self.first_event.is_none() {
            self.first_event = Some(now.duration_since(self.started));
        }
    }

    /// Sets the outcome (`ok` or an error code) unless one is already set.
    /// The competitor's response head arrived now.
    pub fn upstream_answered(&mut self) {
        self.upstream_answered_at(Instant::now());
    }

    /// The competitor's response head arrived at `at`.
    pub fn upstream_answered_at(&mut self, at: Instant) {
        if self.upstream_head.is_none() {
            self.upstream_head = Some(at.saturating_duration_since(self.started));
        }
    }

    pub fn set_outcome(&mut self, outcome: &'static str) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    /// Counts a competitor failure of this kind.
    pub fn upstream_error(&self, kind: &str) {
        self.metrics.upstream_error(kind);
    }

    /// True once an outcome is set.
    pub fn has_outcome(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        let outcome = self.outcome.take().unwrap_or("client_disconnected");
        if self.active_stream {
            self.metrics.active_streams_add(-1);
            self.metrics.observe_max_gap(self.max_gap);
        }
        if let Some(ttft) = self.first_event {
            if self.stream {
                self.metrics.observe_ttft(ttft);
            }
        }
        let competitor = if self.competitor.is_empty() {
            "none"
        } else {
            self.competitor.as_str()
        };
        self.metrics.request_finished(competitor, outcome, duration);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let platform = self
            .platform
            .as_ref()
            .map(|m| m.figures())
            .unwrap_or_default();
        tracing::info!(
            target: "janus_gateway::access",
            request_id = self.request_id.as_str(),
            correlation_id = self.correlation_id.as_deref().unwrap_or(""),
            competitor,
            route = self.route,
            status = self.status,
            stream = self.stream,
            upstream_ms = self.upstream_head.map(ms),
            ttft_ms = self.first_event.map(ms),
            max_gap_ms = ms(self.max_gap),
            keepalives = self.keepalives,
            bytes_out = self.bytes_out,
            duration_ms = ms(duration),
            outcome,
            platform_calls = platform.calls,
            platform_prompt_tokens = platform.prompt_tokens,
            platform_completion_tokens = platform.completion_tokens,
            platform_cost_usd = platform.cost_usd,
            platform_sandbox_seconds = platform.sandbox_seconds,
            "request finished"
        );
    }
}
