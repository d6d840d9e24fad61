//! The echo example competitor, served by the SDK.

use std::time::Duration;

use echo_competitor::{Echo, ARTIFACT_NAME};
use janus_competitor_sdk::janus_core::{
    data_url_decode, ArtifactDescriptor, JanusEvent, StreamEvent,
};
use serde_json::json;

use crate::support::*;

fn ask(text: &str, stream: bool) -> serde_json::Value {
    json!({
        "model": "echo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": text},
        ],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn quick_echo() -> std::sync::Arc<Echo> {
    std::sync::Arc::new(Echo::new(Duration::from_millis(20)))
}

#[tokio::test]
async fn echo_streams_reasoning_tools_content_and_usage() {
    let server = TestServer::start(quick_echo(), config()).await;
    let text = "the quick brown fox";
    let streamed = stream(&server, &ask(text, true)).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.content(), text);
    let chunks = streamed.chunks();
    // One word per content chunk.
    let content_chunks = chunks
        .iter()
        .filter(|c| c.choices.first().is_some_and(|c| c.delta.content.is_some()))
        .count();
    assert_eq!(content_chunks, 4);
    let janus: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.janus.as_ref())
        .map(|j| j.event.as_str())
        .collect();
    assert_eq!(janus, [JanusEvent::TOOL_START, JanusEvent::TOOL_END]);
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c.choices.first()?.delta.reasoning_content.clone())
        .collect();
    assert!(reasoning.contains("slow step"), "{reasoning}");
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2].choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    let usage = chunks[n - 1].usage.as_ref().unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert!(matches!(streamed.events().last(), Some(StreamEvent::Done)));
    // Nothing asked for a file.
    assert!(chunks.iter().all(|c| c
        .choices
        .first()
        .and_then(|c| c.delta.janus.as_ref())
        .is_none_or(|j| j.event != "artifacts")));
    server.stop().await;
}

#[tokio::test]
async fn echo_attaches_a_file_when_asked() {
    let server = TestServer::start(quick_echo(), config()).await;
    let text = "make me a file with this line";
    let streamed = stream(&server, &ask(text, true)).await;
    let artifact: ArtifactDescriptor = streamed
        .chunks()
        .iter()
        .filter_map(|c| c.choices.first()?.delta.janus.clone())
        .flat_map(|j| j.artifact_items())
        .next()
        .expect("no artifact");
    assert_eq!(artifact.display_name.as_deref(), Some(ARTIFACT_NAME));
    assert_eq!(artifact.mime_type, "text/plain");
    let decoded = data_url_decode(&artifact.url).unwrap();
    artifact.verify(&decoded.bytes).unwrap();
    assert_eq!(decoded.bytes, text.as_bytes());

    let reply = post(&server, &ask(text, false)).await;
    let json = reply.json();
    let message = &json["choices"][0]["message"];
    assert!(message["content"].as_str().unwrap().starts_with(text));
    assert_eq!(message["artifacts"][0]["display_name"], ARTIFACT_NAME);
    assert!(json["usage"]["total_tokens"].as_u64().unwrap() > 0);
    server.stop().await;
}

#[tokio::test]
async fn echo_non_stream_matches_the_stream() {
    let server = TestServer::start(quick_echo(), config()).await;
    let text = "hello  there\nfriend";
    let streamed = stream(&server, &ask(text, true)).await;
    let reply = post(&server, &ask(text, false)).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], streamed.content());
    assert_eq!(json["choices"][0]["message"]["content"], text);
    assert_eq!(json["model"], "echo");
    server.stop().await;
}

#[tokio::test]
async fn echo_default_slow_step_is_covered_by_keepalives() {
    let echo = std::sync::Arc::new(Echo::new(echo_competitor::DEFAULT_SLOW_STEP));
    let server = TestServer::start(echo, config()).await;
    let streamed = stream(&server, &ask("hi", true)).await;
    assert_eq!(streamed.content(), "hi");
    assert!(
        streamed.comments() >= 1,
        "no keep-alive during the slow step"
    );
    assert!(
        streamed.max_gap() < Duration::from_secs(2),
        "{:?}",
        streamed.max_gap()
    );
    server.stop().await;
}
