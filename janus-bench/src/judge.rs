//! The optional LLM judge: any OpenAI-compatible endpoint grades an answer 0–10; its score
//! is blended into the heuristic quality ([`crate::score::blend_judge`]).

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::{json, Value};

use crate::measure::HttpClient;
use crate::suite::Item;

/// Where the judge is.
#[derive(Debug, Clone)]
pub struct Judge {
    /// Base URL; `/chat/completions` is appended to a base ending in `/v1`, else
    /// `/v1/chat/completions`.
    pub url: String,
    /// Model name.
    pub model: String,
    /// Bearer key (from the environment, never a flag).
    pub api_key: Option<String>,
    /// Bound on one grading call.
    pub timeout: Duration,
}

impl Judge {
    fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }

    /// Grades `answer` to `item`: 0–1, or why it could not.
    pub async fn grade(
        &self,
        client: &HttpClient,
        item: &Item,
        answer: &str,
    ) -> Result<f64, String> {
        let question = item
            .messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default();
        let rubric = if item.expected.contains.is_empty() && item.expected.must_cover.is_empty() {
            String::new()
        } else {
            format!(
                "\nA good answer mentions: {}.",
                item.expected
                    .contains
                    .iter()
                    .chain(&item.expected.must_cover)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let prompt = format!(
            "You grade answers of an AI assistant ({category} task). Reply with JSON only: \
             {{\"score\": <0-10>, \"reason\": \"...\"}}.\n\nQuestion:\n{question}{rubric}\n\nAnswer:\n{answer}",
            category = item.category
        );
        let body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
            "response_format": {"type": "json_object"},
        });
        let url = self.endpoint();
        let mut builder = Request::post(&url).header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.api_key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("judge url {url}: {e}"))?;
        let call = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("judge {url}: {}", janus_core::error_chain(&e)))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| format!("judge {url}: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!(
                    "judge answered {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ));
            }
            Ok(bytes)
        };
        let bytes = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("judge did not answer within {} s", self.timeout.as_secs()))??;
        let response: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("judge answer is not JSON: {e}"))?;
        let content = response
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or("judge answer has no choices[0].message.content")?;
        parse_score(content).ok_or_else(|| {
            format!(
                "judge output has no score: {}",
                content.chars().take(200).collect::<String>()
            )
        })
    }
}

/// The score in the judge's reply: a JSON object (possibly inside other text) with
/// `score` on 0–10 (or 0–1), normalised to 0–1.
pub fn parse_score(content: &str) -> Option<f64> {
    let start = content.find('{')?;
    let end = content.rfind('}')?;
    let object: Value = serde_json::from_str(content.get(start..=end)?).ok()?;
    let score = object.get("score")?.as_f64()?;
    let normalised = if score > 1.0 { score / 10.0 } else { score };
    Some(normalised.clamp(0.0, 1.0))
}
