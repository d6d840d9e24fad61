//! What travels on the wire: the client's request bodies, the mock's replies and chunks, and
//! the two fields the client reads back out of a chunk (`x_seq`, `x_sent_ns`).
//!
//! Stream parameters ride in a vendor field of the request body (`x_perf`), which the gateway
//! forwards unchanged (contract.md §1), so the same request works direct and through the
//! gateway.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The chat-completions path (contract.md §1).
pub const CHAT_PATH: &str = "/v1/chat/completions";
/// The model name the client asks for; equal to the competitor id the gateway is given, so
/// it routes by `model`.
pub const MODEL: &str = "mock";
/// The stream terminator.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// How the mock should stream (the `x_perf` field of a streaming request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPlan {
    /// Content chunks after the role chunk.
    pub chunks: u32,
    /// Interval between content chunks, paced against deadlines from the stream's start.
    pub interval_us: u64,
    /// Send nothing at all after the headers (idle-stream scenario) until `hold_ms` passes.
    pub idle: bool,
    /// Safety bound on an idle stream: after this the mock sends `[DONE]` and ends it.
    pub hold_ms: u64,
}

impl Default for StreamPlan {
    fn default() -> Self {
        StreamPlan {
            chunks: 64,
            interval_us: 20_000,
            idle: false,
            hold_ms: 120_000,
        }
    }
}

/// The non-streaming request body (~150 bytes, what a small chat turn looks like).
pub fn complete_request() -> Vec<u8> {
    br#"{"model":"mock","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say something about load testing, briefly."}],"max_tokens":256}"#.to_vec()
}

/// A streaming request body; `include_usage` asks for the usage chunk.
pub fn stream_request(plan: &StreamPlan, include_usage: bool) -> Vec<u8> {
    let body = serde_json::json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Stream something about load testing."}
        ],
        "stream": true,
        "stream_options": {"include_usage": include_usage},
        "x_perf": plan,
    });
    // Compact on purpose: the mock finds `"stream":true` with a substring search.
    body.to_string().into_bytes()
}

/// The mock's fixed non-streaming reply: an OpenAI-shaped `chat.completion` with usage,
/// padded to about 1 KiB.
pub fn completion_reply() -> Vec<u8> {
    let sentence =
        "Load testing measures what a system does under traffic, not what it does alone. ";
    let mut content = String::new();
    while content.len() + sentence.len() <= 760 {
        content.push_str(sentence);
    }
    let body = serde_json::json!({
        "id": "chatcmpl-perf0000000000000000000",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": MODEL,
        "system_fingerprint": "fp_janus_perf",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content.trim_end()},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 24, "completion_tokens": 150, "total_tokens": 174}
    });
    body.to_string().into_bytes()
}

/// Nanoseconds since the Unix epoch. The mock stamps chunks with it and the client compares
/// on the same host; both processes read the same clock.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a chunk carries in its delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// The first chunk: `{"role":"assistant"}`.
    Role,
    /// Content chunk `n` (1-based); the last one carries `finish_reason: "stop"`.
    Content {
        /// 1-based index.
        n: u32,
        /// Whether this is the last content chunk.
        last: bool,
    },
    /// The usage chunk (`choices: []`).
    Usage {
        /// Completion tokens reported.
        completion_tokens: u32,
    },
}

/// One SSE event `data: {chunk}\n\n` stamped with `seq` and `sent_ns`.
pub fn chunk_event(kind: ChunkKind, seq: u32, sent_ns: u64) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        r#"data: {{"id":"chatcmpl-perf0000000000000000000","object":"chat.completion.chunk","created":1700000000,"model":"mock","x_seq":{seq},"x_sent_ns":{sent_ns},"choices":"#
    );
    match kind {
        ChunkKind::Role => out.push_str(
            r#"[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        ),
        ChunkKind::Content { n, last } => {
            let finish = if last { r#""stop""# } else { "null" };
            let _ = write!(
                out,
                r#"[{{"index":0,"delta":{{"content":"token {n} "}},"finish_reason":{finish}}}]}}"#
            );
        }
        ChunkKind::Usage { completion_tokens } => {
            let total = completion_tokens + 24;
            let _ = write!(
                out,
                r#"[],"usage":{{"prompt_tokens":24,"completion_tokens":{completion_tokens},"total_tokens":{total}}}}}"#
            );
        }
    }
    out.push_str("\n\n");
    out.into_bytes()
}

/// The unsigned integer after `"key":` in `data`, without parsing the JSON.
pub fn find_u64(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    let digits = data[at..].iter().take_while(|b| b.is_ascii_digit()).fold(
        (0u64, 0usize),
        |(value, n), &b| {
            (
                value.wrapping_mul(10).wrapping_add(u64::from(b - b'0')),
                n + 1,
            )
        },
    );
    (digits.1 > 0).then_some(digits.0)
}

/// `"x_seq":` as searched for by [`find_u64`].
pub const SEQ_KEY: &[u8] = b"\"x_seq\":";
/// `"x_sent_ns":` as searched for by [`find_u64`].
pub const SENT_KEY: &[u8] = b"\"x_sent_ns\":";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_json_and_carry_their_stamps() {
        for kind in [
            ChunkKind::Role,
            ChunkKind::Content { n: 3, last: false },
            ChunkKind::Content { n: 64, last: true },
            ChunkKind::Usage {
                completion_tokens: 64,
            },
        ] {
            let event = chunk_event(kind, 7, 1_234_567);
            let text = std::str::from_utf8(&event).unwrap_or_default();
            let json = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .unwrap_or_default();
            assert!(
                serde_json::from_str::<serde_json::Value>(json).is_ok(),
                "{text}"
            );
            assert_eq!(find_u64(&event, SEQ_KEY), Some(7));
            assert_eq!(find_u64(&event, SENT_KEY), Some(1_234_567));
        }
    }

    #[test]
    fn reply_is_about_one_kib_and_valid() {
        let reply = completion_reply();
        assert!((900..=1200).contains(&reply.len()), "{}", reply.len());
        assert!(serde_json::from_slice::<serde_json::Value>(&reply).is_ok());
    }

    #[test]
    fn stream_request_round_trips_the_plan() {
        let plan = StreamPlan {
            chunks: 5,
            interval_us: 1000,
            idle: false,
            hold_ms: 10,
        };
        let body = stream_request(&plan, true);
        assert!(memchr::memmem::find(&body, b"\"stream\":true").is_some());
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let back: StreamPlan = serde_json::from_value(value["x_perf"].clone()).unwrap_or_default();
        assert_eq!(back, plan);
    }
}
