//! One task against the target: send the item as a streamed chat completion and measure
//! the raw SSE stream (timing of every line, keep-alives included) while collecting the
//! answer, tool calls, artifacts and usage.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_core::sse::SseItem;
use janus_core::ArtifactDescriptor;
use janus_http::{SseReadError, SseReader};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::suite::Item;

/// The pooled client every request of a run shares.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A tool call assembled from its streamed fragments.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolCall {
    /// Call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    pub function: String,
    /// Arguments parsed as JSON (`{}` when they do not parse).
    pub arguments: Value,
    /// Arguments as streamed.
    pub arguments_raw: String,
}

/// Where a task's cost figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// The gateway's platform metering (`usage.platform`).
    Platform,
    /// The competitor's own usage claim.
    Competitor,
    /// No usage arrived.
    None,
}

/// The usage figures a task is scored on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UsageFigures {
    /// Prompt tokens.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens.
    pub completion_tokens: Option<u64>,
    /// All tokens.
    pub total_tokens: Option<u64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// Sandbox seconds.
    pub sandbox_seconds: Option<f64>,
}

/// Everything measured from one stream.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Why the task failed, if it did (then it scores 0).
    pub error: Option<String>,
    /// The answer (`content` deltas).
    pub content: String,
    /// Length of the `reasoning_content` received.
    pub reasoning_chars: usize,
    /// Tool calls, in index order.
    pub tool_calls: Vec<ToolCall>,
    /// Artifacts announced by `janus` `artifacts` events.
    pub artifacts: Vec<ArtifactDescriptor>,
    /// Usage the competitor reported (`usage` minus `platform`).
    pub competitor_usage: UsageFigures,
    /// Platform-measured usage (`usage.platform`), when the gateway sent it.
    pub platform_usage: Option<UsageFigures>,
    /// Request sent → last byte.
    pub latency: Duration,
    /// Request sent → first content, reasoning or tool-call delta.
    pub ttft: Option<Duration>,
    /// Largest gap between received lines (request start counts as the first line).
    pub max_gap: Duration,
    /// When the last line arrived (request start until the first).
    pub last_line: Duration,
    /// Data events (chunks) received, `[DONE]` excluded.
    pub chunks: u32,
    /// SSE comments received.
    pub keep_alives: u32,
    /// Status of the response.
    pub status: Option<u16>,
    /// The competitor that answered (`X-Janus-Competitor`).
    pub competitor: Option<String>,
}

impl Observation {
    fn new() -> Observation {
        Observation {
            error: None,
            content: String::new(),
            reasoning_chars: 0,
            tool_calls: Vec::new(),
            artifacts: Vec::new(),
            competitor_usage: UsageFigures::default(),
            platform_usage: None,
            latency: Duration::ZERO,
            ttft: None,
            max_gap: Duration::ZERO,
            last_line: Duration::ZERO,
            chunks: 0,
            keep_alives: 0,
            status: None,
            competitor: None,
        }
    }

    /// The usage a task's cost is scored on, and where it came from: the platform's
    /// measurement wins over the competitor's claim.
    pub fn cost_figures(&self) -> (UsageFigures, CostSource) {
        if let Some(platform) = self.platform_usage {
            (platform, CostSource::Platform)
        } else if self.competitor_usage != UsageFigures::default() {
            (self.competitor_usage, CostSource::Competitor)
        } else {
            (UsageFigures::default(), CostSource::None)
        }
    }
}

/// How to reach the target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL (`http://127.0.0.1:8000`); `/v1/chat/completions` is appended.
    pub base_url: String,
    /// The `model` sent.
    pub model: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Bound on the whole task.
    pub timeout: Duration,
}

/// The request body for an item.
pub fn request_body(item: &Item, model: &str) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_owned()));
    body.insert("messages".into(), Value::Array(item.messages.clone()));
    body.insert("stream".into(), Value::Bool(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    if let Some(tools) = &item.tools {
        body.insert("tools".into(), tools.clone());
        body.insert(
            "tool_choice".into(),
            item.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        );
    }
    if let Some(temperature) = &item.temperature {
        body.insert("temperature".into(), temperature.clone());
    }
    Value::Object(body)
}

/// Largest error body kept for the report.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Runs one item against the target and measures it. Never fails: every problem ends up
/// in [`Observation::error`].
pub async fn observe(
    client: &HttpClient,
    target: &Target,
    item: &Item,
    run_id: &str,
) -> Observation {
    let started = Instant::now();
    let mut observation = Observation::new();
    let outcome = tokio::time::timeout(
        target.timeout,
        stream(client, target, item, run_id, started, &mut observation),
    )
    .await;
    observation.latency = started.elapsed();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => observation.error = Some(error),
        Err(_) => {
            observation.error = Some(format!(
                "timed out after {} (--timeout)",
                humantime::format_duration(target.timeout)
            ));
            // The silence the client gave up on is a gap too.
            let open = observation.latency.saturating_sub(observation.last_line);
            observation.max_gap = observation.max_gap.max(open);
        }
    }
    observation
}

async fn stream(
    client: &HttpClient,
    target: &Target,
    item: &Item,
    run_id: &str,
    started: Instant,
    observation: &mut Observation,
) -> Result<(), String> {
    let url = format!(
        "{}/v1/chat/completions",
        target.base_url.trim_end_matches('/')
    );
    let body = request_body(item, &target.model);
    let mut builder = Request::post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "text/event-stream")
        .header("x-request-id", request_id(run_id, &item.id));
    if let Some(key) = &target.api_key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("request to {url} failed: {}", janus_core::error_chain(&e)))?;
    let status = response.status();
    observation.status = Some(status.as_u16());
    observation.competitor = response
        .headers()
        .get("x-janus-competitor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    observation.last_line = started.elapsed();
    observation.max_gap = observation.last_line;
    if status != StatusCode::OK {
        let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let mut reader = SseReader::new(response.into_body(), started);
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    let mut done = false;
    // The whole task is bounded by the caller's timeout; this idle bound only has to be
    // longer than it.
    let idle = target.timeout + Duration::from_secs(1);
    loop {
        let timed = match reader.next(idle).await {
            Ok(Some(timed)) => timed,
            Ok(None) => break,
            Err(SseReadError::Body(reason)) => {
                return Err(format!(
                    "the stream broke after {} chunks: {reason}",
                    observation.chunks
                ))
            }
            Err(error) => return Err(error.to_string()),
        };
        let gap = timed.at.saturating_sub(observation.last_line);
        observation.max_gap = observation.max_gap.max(gap);
        observation.last_line = timed.at;
        let event = match timed.item {
            SseItem::Comment(_) => {
                observation.keep_alives += 1;
                continue;
            }
            SseItem::Event(event) => event,
        };
        if event.data.trim() == "[DONE]" {
            done = true;
            continue;
        }
        observation.chunks += 1;
        let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
            return Err(format!(
                "chunk {} is not JSON: {}",
                observation.chunks,
                event.data.chars().take(200).collect::<String>()
            ));
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            return Err(format!("error event: {message}"));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            observation.competitor_usage = figures(usage);
            observation.platform_usage = usage
                .get("platform")
                .filter(|p| p.is_object())
                .map(platform_figures);
        }
        let Some(delta) = chunk
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("delta"))
        else {
            continue;
        };
        let mut first_token = false;
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            if !text.is_empty() {
                observation.content.push_str(text);
                first_token = true;
            }
        }
        if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
            if !text.is_empty() {
                observation.reasoning_chars += text.len();
                first_token = true;
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            if !calls.is_empty() {
                first_token = true;
            }
            merge_tool_calls(&mut tool_calls, calls);
        }
        if first_token && observation.ttft.is_none() {
            observation.ttft = Some(timed.at);
        }
        if let Some(janus) = delta.get("janus") {
            if janus.get("event").and_then(Value::as_str) == Some("artifacts") {
                if let Some(items) = janus
                    .get("payload")
                    .and_then(|p| p.get("items"))
                    .and_then(Value::as_array)
                {
                    for item in items {
                        match serde_json::from_value::<ArtifactDescriptor>(item.clone()) {
                            Ok(artifact) => observation.artifacts.push(artifact),
                            Err(e) => return Err(format!("malformed artifact descriptor: {e}")),
                        }
                    }
                }
            }
        }
    }
    for call in &mut tool_calls {
        call.arguments = serde_json::from_str(&call.arguments_raw).unwrap_or_else(|_| json!({}));
    }
    observation.tool_calls = tool_calls;
    if !done {
        return Err(format!(
            "the stream ended without [DONE] after {} chunks",
            observation.chunks
        ));
    }
    Ok(())
}

/// `bench-<run>-<item id>`, keeping only characters every request-id rule accepts, so the
/// gateway's logs and the report line up.
fn request_id(run_id: &str, item_id: &str) -> String {
    let clean: String = item_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    format!("bench-{run_id}-{clean}")
}

fn merge_tool_calls(calls: &mut Vec<ToolCall>, fragments: &[Value]) {
    for fragment in fragments {
        let index = fragment
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(63) as usize;
        while calls.len() <= index {
            calls.push(ToolCall::default());
        }
        let call = &mut calls[index];
        if let Some(id) = fragment.get("id").and_then(Value::as_str) {
            call.id = Some(id.to_owned());
        }
        if let Some(function) = fragment.get("function") {
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                call.function.push_str(name);
            }
            if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                call.arguments_raw.push_str(args);
            }
        }
    }
}

fn figures(usage: &Value) -> UsageFigures {
    let prompt = usage.get("prompt_tokens").and_then(Value::as_u64);
    let completion = usage.get("completion_tokens").and_then(Value::as_u64);
    UsageFigures {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: usage
            .get("total_tokens")
            .and_then(Value::as_u64)
            .or_else(|| Some(prompt? + completion?)),
        cost_usd: usage.get("cost_usd").and_then(Value::as_f64),
        sandbox_seconds: usage.get("sandbox_seconds").and_then(Value::as_f64),
    }
}

/// `usage.platform` carries no `total_tokens`; its tokens are the inference the competitor
/// consumed through the platform.
fn platform_figures(platform: &Value) -> UsageFigures {
    let mut f = figures(platform);
    f.total_tokens = Some(f.prompt_tokens.unwrap_or(0) + f.completion_tokens.unwrap_or(0));
    f.cost_usd = Some(f.cost_usd.unwrap_or(0.0));
    f.sandbox_seconds = Some(f.sandbox_seconds.unwrap_or(0.0));
    f
}
