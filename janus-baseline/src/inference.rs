//! The fast path: one streaming call to platform inference, relayed as it arrives.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_competitor_sdk::janus_core::sse::{SseItem, DONE_DATA};
use janus_competitor_sdk::{
    ChatCompletionRequest, CompetitorError, CompetitorEvent, EventWriter, ToolCallDelta, Usage,
};
use serde_json::{json, Map, Value};

use crate::services::Endpoint;

/// The pooled client every inference call uses.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What the upstream reported besides the text.
#[derive(Debug, Clone, Default)]
pub struct StreamSummary {
    /// Usage, when the upstream sent it.
    pub usage: Option<Usage>,
    /// The upstream's finish reason.
    pub finish_reason: Option<String>,
}

/// The upstream body: the client's messages and sampling fields, our model, streaming
/// with usage.
pub fn upstream_body(request: &ChatCompletionRequest, model: &str) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "messages".into(),
        serde_json::to_value(&request.messages).unwrap_or(Value::Array(Vec::new())),
    );
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let optional = [
        ("temperature", request.temperature.map(|v| json!(v))),
        ("top_p", request.top_p.map(|v| json!(v))),
        ("max_tokens", request.max_tokens.map(|v| json!(v))),
        ("tools", request.tools.clone().map(Value::Array)),
        ("tool_choice", request.tool_choice.clone()),
        ("response_format", request.response_format.clone()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    }
    Value::Object(body)
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned()
        })
}

/// Streams one completion from `endpoint` to `out`: `content`, `reasoning_content` and
/// tool-call deltas as they arrive. `timeout` bounds the wait for the answer's head and
/// each silence between events.
pub async fn stream_completion(
    http: &HttpClient,
    endpoint: &Endpoint,
    body: &Value,
    request_id: &str,
    timeout: Duration,
    out: &mut dyn EventWriter,
) -> Result<StreamSummary, CompetitorError> {
    let url = format!("{}/chat/completions", endpoint.url);
    let mut builder = Request::post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "text/event-stream")
        .header("x-request-id", request_id);
    if let Some(key) = &endpoint.key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| CompetitorError::Internal(format!("bad inference URL '{url}'")))?;
    let fail = |what: String| CompetitorError::Internal(format!("platform inference {what}"));
    let sent = Instant::now();
    let response = match tokio::time::timeout(timeout, http.request(request)).await {
        Err(_) => {
            return Err(fail(format!(
                "at {url} did not answer within {} s",
                timeout.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(fail(format!(
                "is unreachable at {url}: {}",
                janus_competitor_sdk::janus_core::error_chain(&e)
            )))
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if !status.is_success() {
        let bytes = tokio::time::timeout(
            timeout,
            Limited::new(response.into_body(), 64 * 1024).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
        return Err(fail(format!(
            "answered {status}: {}",
            error_message(&bytes)
        )));
    }
    let mut reader = janus_http::SseReader::new(response.into_body(), sent);
    let mut summary = StreamSummary::default();
    loop {
        let item = match reader.next(timeout).await {
            Ok(Some(item)) => item.item,
            Ok(None) => break,
            Err(janus_http::SseReadError::Idle(idle)) => {
                return Err(fail(format!(
                    "went silent for {} s mid-answer",
                    idle.as_secs()
                )))
            }
            Err(e) => return Err(fail(format!("stream broke mid-answer: {e}"))),
        };
        let SseItem::Event(event) = item else {
            continue;
        };
        if event.data.trim() == DONE_DATA {
            break;
        }
        let value: Value = serde_json::from_str(&event.data)
            .map_err(|_| fail("sent an event that is not JSON".to_owned()))?;
        if let Some(error) = value.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(fail(format!("failed mid-answer: {message}")));
        }
        if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
            summary.usage = serde_json::from_value(usage.clone()).ok();
        }
        let Some(choice) = value.pointer("/choices/0") else {
            continue;
        };
        let delta = choice.get("delta");
        let text = |key: &str| delta.and_then(|d| d.get(key)).and_then(Value::as_str);
        // Upstreams name their thinking `reasoning_content` or `reasoning`.
        if let Some(reasoning) = text("reasoning_content").or_else(|| text("reasoning")) {
            if !reasoning.is_empty() {
                out.reasoning(reasoning).await?;
            }
        }
        if let Some(content) = text("content") {
            if !content.is_empty() {
                out.content(content).await?;
            }
        }
        if let Some(calls) = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array)
        {
            for call in calls {
                if let Ok(delta) = serde_json::from_value::<ToolCallDelta>(call.clone()) {
                    out.send(CompetitorEvent::ToolCall(delta)).await?;
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            summary.finish_reason = Some(reason.to_owned());
        }
    }
    Ok(summary)
}
