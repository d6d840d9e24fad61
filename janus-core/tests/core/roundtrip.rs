//! Exact JSON round trips of example payloads: unknown fields survive at every level,
//! nothing optional and absent comes back as `null`, and the required-nullable fields
//! (`finish_reason` of chunk choices, `logprobs` of choices, `refusal` of messages) are
//! always there.

use janus_core::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ContentPart, ErrorEnvelope,
    Message, MessageContent,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn assert_round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let text = fixture(name);
    let original: Value = serde_json::from_str(&text).unwrap();
    let typed: T = serde_json::from_str(&text).unwrap();
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back, original, "round trip of {name} changed the JSON");
    typed
}

fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}

#[test]
fn request_with_every_message_kind_round_trips() {
    let request: ChatCompletionRequest = assert_round_trip("request_multimodal.json");
    assert_eq!(request.messages.len(), 7);
    assert_eq!(request.competitor_id.as_deref(), Some("baseline"));
    assert!(request.extra.contains_key("seed"));
    assert!(request.extra.contains_key("x_vendor"));
    assert!(request.include_usage());
    let Message::User {
        content: MessageContent::Parts(parts),
        ..
    } = &request.messages[2]
    else {
        panic!("third message should be a user message with parts");
    };
    assert!(matches!(parts[0], ContentPart::Text { .. }));
    assert!(matches!(parts[1], ContentPart::ImageUrl { .. }));
    assert!(matches!(parts[3], ContentPart::Unknown(_)));
    assert_eq!(request.last_user_text().as_deref(), Some("Thanks!"));
}

#[test]
fn response_with_artifacts_and_extended_usage_round_trips() {
    let response: ChatCompletionResponse = assert_round_trip("response_artifacts.json");
    let usage = response.usage.as_ref().unwrap();
    assert_eq!(usage.cost_usd, Some(0.00042));
    assert_eq!(usage.sandbox_seconds, Some(3.5));
    let artifacts = response.choices[0].message.artifacts.as_ref().unwrap();
    assert_eq!(artifacts[0].size_bytes, 5);
    assert_eq!(
        response.choices[0].message.refusal.as_deref(),
        Some("kept-as-extra")
    );
    assert!(response.choices[0].logprobs.is_some());
}

#[test]
fn plain_response_with_required_nulls_round_trips() {
    let response: ChatCompletionResponse = assert_round_trip("response_plain.json");
    assert!(response.choices[0].logprobs.is_none());
    assert!(response.choices[0].message.refusal.is_none());
    assert!(response.usage.is_none());
}

#[test]
fn chunks_round_trip() {
    for name in [
        "chunk_role.json",
        "chunk_reasoning.json",
        "chunk_janus_event.json",
        "chunk_artifacts.json",
        "chunk_tool_calls.json",
        "chunk_finish.json",
        "chunk_usage.json",
    ] {
        let chunk: ChatCompletionChunk = assert_round_trip(name);
        assert_eq!(chunk.object, "chat.completion.chunk");
    }
}

#[test]
fn janus_artifacts_event_yields_descriptors() {
    let chunk: ChatCompletionChunk = assert_round_trip("chunk_artifacts.json");
    let event = chunk.choices[0].delta.janus.as_ref().unwrap();
    let items = event.artifact_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, "artf_deadbeef");
}

#[test]
fn error_envelope_round_trips_with_all_four_keys() {
    let envelope: ErrorEnvelope = assert_round_trip("error_envelope.json");
    assert_eq!(envelope.error.code.as_deref(), Some("competitor_not_found"));
    // OpenAI always sends param and code, null when unknown; SDKs read them by name.
    let bare = ErrorEnvelope::new(janus_core::ErrorKind::Server, "boom", None);
    let json: Value = serde_json::from_slice(&bare.to_json()).unwrap();
    let body = json["error"].as_object().unwrap();
    for key in ["message", "type", "param", "code"] {
        assert!(body.contains_key(key), "envelope lacks {key}");
    }
}

/// The JSON with the required-nullable keys removed where they are `null`.
fn without_required_nulls(mut json: Value) -> Value {
    for choice in json["choices"].as_array_mut().into_iter().flatten() {
        let choice = choice.as_object_mut().unwrap();
        for key in ["finish_reason", "logprobs"] {
            if choice.get(key) == Some(&Value::Null) {
                choice.remove(key);
            }
        }
        if let Some(Value::Object(message)) = choice.get_mut("message") {
            if message.get("refusal") == Some(&Value::Null) {
                message.remove("refusal");
            }
        }
    }
    json
}

/// Regression (issue 11): chunks omitted `finish_reason` until the last one, so the Node
/// SDK saw `undefined` and `finish_reason !== null` treated every chunk as final.
#[test]
fn absent_optionals_are_omitted_and_required_nullables_are_null() {
    let chunk = ChatCompletionChunk::with_delta(
        "chatcmpl-1",
        1,
        "m",
        janus_core::Delta {
            content: Some("hi".into()),
            ..Default::default()
        },
    );
    let json = serde_json::to_value(&chunk).unwrap();
    assert_eq!(json["choices"][0]["finish_reason"], Value::Null);
    assert!(json["choices"][0].get("finish_reason").is_some());
    assert!(json.get("usage").is_none());
    let json = without_required_nulls(json);
    assert!(!contains_null(&json), "nulls in {json}");

    let response = janus_core::ChunkAggregator::new().finish();
    let json = serde_json::to_value(&response).unwrap();
    let choice = &json["choices"][0];
    assert!(choice.get("logprobs").is_some_and(Value::is_null), "{json}");
    assert!(
        choice["message"].get("refusal").is_some_and(Value::is_null),
        "{json}"
    );
    assert_eq!(choice["finish_reason"], "stop");
    assert!(json.get("usage").is_none());
    for key in ["reasoning_content", "artifacts", "tool_calls"] {
        assert!(choice["message"].get(key).is_none(), "{key} in {json}");
    }
    let json = without_required_nulls(json);
    assert!(!contains_null(&json), "nulls in {json}");
}

#[test]
fn assistant_null_content_is_accepted_and_omitted() {
    let text = r#"{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}"#;
    let message: Message = serde_json::from_str(text).unwrap();
    let json = serde_json::to_value(&message).unwrap();
    assert!(json.get("content").is_none());
    assert_eq!(json["tool_calls"][0]["id"], "c");
}
