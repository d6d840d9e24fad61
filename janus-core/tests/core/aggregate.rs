//! Folding a chunk stream into the equivalent non-streaming response.

use janus_core::{ChunkAggregator, ChunkDecoder, StreamEvent};
use serde_json::json;

/// A recorded stream with role, reasoning, split tool calls, a janus artifacts event,
/// content in pieces, a finish reason, a usage chunk, a keep-alive and `[DONE]`.
const STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"step 1\\n\"}}]}\n\n",
    ": ping\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"step 2\\n\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"b\",\"arguments\":\"\"}},{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}},{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"janus\":{\"event\":\"artifacts\",\"payload\":{\"items\":[{\"id\":\"artf_01\",\"type\":\"file\",\"mime_type\":\"text/plain\",\"size_bytes\":5,\"url\":\"data:text/plain;base64,aGVsbG8=\"}]}}}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"janus\":{\"event\":\"tool_start\",\"payload\":{}}}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", world\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7,\"cost_usd\":0.5}}\n\n",
    "data: [DONE]\n\n",
);

fn decode(bytes: &[u8], read_size: usize) -> Vec<StreamEvent> {
    let mut decoder = ChunkDecoder::new();
    let mut events = Vec::new();
    for piece in bytes.chunks(read_size) {
        decoder.feed(piece, &mut events).unwrap();
    }
    events
}

#[test]
fn folds_a_recorded_stream_into_the_non_streaming_response() {
    let events = decode(STREAM.as_bytes(), 17);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Comment(c) if c == "ping"))
            .count(),
        1
    );
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    let mut aggregator = ChunkAggregator::new();
    for event in &events {
        if let StreamEvent::Chunk(chunk) = event {
            aggregator.push(chunk);
        }
    }
    let response = serde_json::to_value(aggregator.finish()).unwrap();
    assert_eq!(
        response,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 7,
            "model": "m",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello, world",
                    "reasoning_content": "step 1\nstep 2\n",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{}"}}
                    ],
                    "artifacts": [{"id": "artf_01", "type": "file", "mime_type": "text/plain", "size_bytes": 5, "url": "data:text/plain;base64,aGVsbG8="}],
                    "refusal": null
                },
                "finish_reason": "tool_calls",
                "logprobs": null
            }],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost_usd": 0.5}
        })
    );
}

#[test]
fn error_events_and_malformed_payloads_are_told_apart() {
    let events = decode(
        b"data: {\"error\":{\"message\":\"upstream died\",\"type\":\"server_error\",\"code\":\"upstream_reset\"}}\n\ndata: [DONE]\n\n",
        5,
    );
    match &events[0] {
        StreamEvent::Error(body) => {
            assert_eq!(body.message, "upstream died");
            assert_eq!(body.code.as_deref(), Some("upstream_reset"));
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    assert_eq!(events[1], StreamEvent::Done);

    let mut decoder = ChunkDecoder::new();
    let mut out = Vec::new();
    let err = decoder
        .feed(b"data: {\"nope\":1}\n\n", &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("malformed chunk"), "{err}");
}

#[test]
fn chunk_decoder_enforces_the_event_cap() {
    let mut decoder = ChunkDecoder::with_max_event_bytes(64);
    let mut out = Vec::new();
    let big = format!("data: {}\n\n", "x".repeat(100));
    assert!(decoder.feed(big.as_bytes(), &mut out).is_err());
}
