//! One OpenAI-compatible chat call, not streamed: the agent needs whole tool calls.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

/// Largest answer read from the endpoint.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The model endpoint.
#[derive(Clone)]
pub struct Llm {
    http: Client<HttpConnector, Full<Bytes>>,
    url: String,
    key: Option<String>,
    model: String,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("url", &self.url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// One model turn.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// The assistant message as the endpoint sent it (kept for the conversation).
    pub message: Value,
    /// Prompt tokens the endpoint reported.
    pub prompt_tokens: u64,
    /// Completion tokens the endpoint reported.
    pub completion_tokens: u64,
}

impl Llm {
    /// A client for `{api_base}/chat/completions`.
    pub fn new(api_base: &str, key: Option<String>, model: &str) -> Llm {
        Llm {
            http: janus_http::build_client(Duration::from_secs(10)),
            url: format!("{api_base}/chat/completions"),
            key,
            model: model.to_owned(),
        }
    }

    /// Asks for the next assistant message; `timeout` bounds the whole call.
    pub async fn complete(
        &self,
        messages: &[Value],
        tools: &Value,
        timeout: Duration,
    ) -> Result<Turn, String> {
        let body = json!({
            "model": self.model,
            "messages": messages,
            "tools": tools,
            "tool_choice": "auto",
            "stream": false,
        });
        let mut builder = Request::post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(key) = &self.key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| format!("bad inference URL '{}'", self.url))?;
        let call = async {
            let response = self.http.request(request).await.map_err(|e| {
                format!(
                    "inference at {} is unreachable: {}",
                    self.url,
                    janus_core::error_chain(&e)
                )
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the inference answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("inference did not answer within {} s", timeout.as_secs()))??;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            format!(
                "inference answered {status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })?;
        if !status.is_success() {
            let message = value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(format!("inference answered {status}: {message}"));
        }
        let message = value
            .pointer("/choices/0/message")
            .cloned()
            .ok_or("inference answered without choices[0].message")?;
        let usage = |key: &str| {
            value
                .pointer(&format!("/usage/{key}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Ok(Turn {
            message,
            prompt_tokens: usage("prompt_tokens"),
            completion_tokens: usage("completion_tokens"),
        })
    }
}
