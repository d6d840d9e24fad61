//! Both modes of one handler: the chunk sequence of a stream, the folded response, and
//! concurrency.

use std::time::{Duration, Instant};

use janus_competitor_sdk::janus_core::{Role, StreamEvent};
use janus_competitor_sdk::{CompetitorEvent, FunctionCallDelta, JanusEvent, ToolCallDelta, Usage};
use serde_json::json;

use crate::support::*;

fn everything() -> Vec<Step> {
    vec![
        reasoning("thinking"),
        Step::Send(CompetitorEvent::Janus(JanusEvent::new(
            JanusEvent::TOOL_START,
            json!({"tool": "search"}),
        ))),
        content("Hel"),
        content("lo"),
        Step::Send(CompetitorEvent::ToolCall(ToolCallDelta {
            index: 0,
            id: Some("call_1".into()),
            kind: Some("function".into()),
            function: Some(FunctionCallDelta {
                name: Some("lookup".into()),
                arguments: Some("{\"q\":1}".into()),
                ..Default::default()
            }),
            ..Default::default()
        })),
        Step::Send(CompetitorEvent::Usage(Usage::new(3, 4))),
        Step::Send(CompetitorEvent::Finish("tool_calls".into())),
    ]
}

#[tokio::test]
async fn stream_chunk_sequence_with_usage() {
    let script = Script::new(everything());
    let server = TestServer::start(script.clone(), config()).await;
    let mut request = body(true);
    request["stream_options"] = json!({"include_usage": true});
    let streamed = stream(&server, &request).await;

    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.headers["content-type"], "text/event-stream");
    assert_eq!(streamed.headers["cache-control"], "no-cache");
    assert!(streamed.headers.contains_key("x-request-id"));

    let events = streamed.events();
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    let chunks = streamed.chunks();
    // reasoning, janus, 2 content, tool call, finish, usage
    assert_eq!(
        chunks.len(),
        7,
        "{:?}",
        String::from_utf8_lossy(&streamed.raw)
    );
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.object, "chat.completion.chunk");
        assert_eq!(chunk.id, chunks[0].id);
        assert_eq!(chunk.created, chunks[0].created);
        assert_eq!(chunk.model, "test-model");
        let role = chunk.choices.first().and_then(|c| c.delta.role);
        assert_eq!(role, (i == 0).then_some(Role::Assistant), "chunk {i}");
    }
    assert!(chunks[0].id.starts_with("chatcmpl-"));
    assert_eq!(
        chunks[0].choices[0].delta.reasoning_content.as_deref(),
        Some("thinking")
    );
    assert_eq!(
        chunks[1].choices[0]
            .delta
            .janus
            .as_ref()
            .map(|j| j.event.as_str()),
        Some("tool_start")
    );
    assert_eq!(streamed.content(), "Hello");
    assert_eq!(
        chunks[4].choices[0].delta.tool_calls.as_ref().unwrap()[0]
            .id
            .as_deref(),
        Some("call_1")
    );
    // finish_reason only on the second-to-last chunk, then the usage chunk.
    let finish = &chunks[5];
    assert_eq!(
        finish.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert!(chunks[..5]
        .iter()
        .all(|c| c.choices[0].finish_reason.is_none() && c.usage.is_none()));
    let usage = &chunks[6];
    assert!(usage.choices.is_empty());
    assert_eq!(usage.usage, Some(Usage::new(3, 4)));

    // Framing: only `data:` events, never `null` usage, `[DONE]` last.
    let raw = String::from_utf8(streamed.raw.clone()).unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"));
    assert!(!raw.contains("\"usage\":null"));
    for event in raw.trim_end().split("\n\n") {
        assert!(event.starts_with("data: "), "{event:?}");
        assert!(!event.contains('\n'), "{event:?}");
    }
    // Regression (issue 11): every chunk choice carries `finish_reason`, `null` until the
    // last, as OpenAI's spec requires; optional fields stay absent.
    let json_chunks: Vec<serde_json::Value> = raw
        .trim_end()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for chunk in &json_chunks[..5] {
        let choice = &chunk["choices"][0];
        assert!(
            choice.get("finish_reason").is_some_and(|f| f.is_null()),
            "{chunk}"
        );
        assert!(chunk.get("usage").is_none(), "{chunk}");
        for key in ["reasoning_content", "content", "tool_calls", "janus"] {
            assert!(
                !choice["delta"].get(key).is_some_and(|v| v.is_null()),
                "{chunk}"
            );
        }
    }
    assert_eq!(json_chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    server.stop().await;
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let server = TestServer::start(Script::new(everything()), config()).await;
    let streamed = stream(&server, &body(true)).await;
    let chunks = streamed.chunks();
    assert_eq!(chunks.len(), 6);
    assert!(chunks
        .iter()
        .all(|c| c.usage.is_none() && !c.choices.is_empty()));
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert!(matches!(streamed.events().last(), Some(StreamEvent::Done)));
    server.stop().await;
}

#[tokio::test]
async fn silent_handler_still_answers_with_role_and_stop() {
    let server = TestServer::start(Script::new(vec![]), config()).await;
    let streamed = stream(&server, &body(true)).await;
    let chunks = streamed.chunks();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(chunks[0].choices[0].delta.content.as_deref(), Some(""));
    assert_eq!(chunks[0].choices[0].finish_reason.as_deref(), Some("stop"));

    let reply = post(&server, &body(false)).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], "");
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert!(json.get("usage").is_none());
    server.stop().await;
}

#[tokio::test]
async fn non_stream_folds_the_same_events() {
    let server = TestServer::start(Script::new(everything()), config()).await;
    let reply = post(&server, &body(false)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let json = reply.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "test-model");
    assert!(json["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &json["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello");
    assert_eq!(choice["message"]["reasoning_content"], "thinking");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
    // Required and nullable in OpenAI's spec: present, `null`.
    assert!(
        choice.get("logprobs").is_some_and(|l| l.is_null()),
        "{json}"
    );
    assert!(
        choice["message"]
            .get("refusal")
            .is_some_and(|r| r.is_null()),
        "{json}"
    );
    assert!(choice["message"].get("artifacts").is_none(), "{json}");
    // Usage is always part of a non-streaming response when the handler reports it.
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );
    server.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_and_given_to_the_handler() {
    let script = Script::new(vec![content("x")]);
    let server = TestServer::start(script.clone(), config()).await;
    let mut request = chat_request(&server.url("/v1/chat/completions"), &body(false));
    request
        .headers_mut()
        .insert("x-request-id", "req-abc-123".parse().unwrap());
    request
        .headers_mut()
        .insert("x-correlation-id", "corr-9".parse().unwrap());
    request.headers_mut().insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let reply = send(request).await;
    assert_eq!(reply.headers["x-request-id"], "req-abc-123");
    let streamed = stream(&server, &body(true)).await;
    let generated = streamed.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.starts_with("chatcmpl-"), "{generated}");
    // Every response carries it, errors and probes included.
    assert!(get(&server.url("/health"))
        .await
        .headers
        .contains_key("x-request-id"));
    assert!(get(&server.url("/nope"))
        .await
        .headers
        .contains_key("x-request-id"));

    let contexts = script.probe.contexts.lock().unwrap().clone();
    assert_eq!(contexts[0].request_id, "req-abc-123");
    assert_eq!(contexts[0].correlation_id.as_deref(), Some("corr-9"));
    assert!(contexts[0].traceparent.is_some());
    assert_eq!(contexts[1].request_id, generated);
    let remaining = contexts[1].remaining();
    assert!(remaining > Duration::from_secs(290) && remaining <= Duration::from_secs(300));
    server.stop().await;
}

#[tokio::test]
async fn serves_concurrent_requests_with_a_slow_handler() {
    let script = Script::new(vec![
        Step::Sleep(Duration::from_millis(800)),
        content("done"),
    ]);
    let server = TestServer::start(script.clone(), config()).await;
    let (streaming, plain) = (body(true), body(false));
    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        stream(&server, &streaming),
        post(&server, &plain),
        stream(&server, &streaming),
    );
    let took = started.elapsed();
    assert_eq!(a.content(), "done");
    assert_eq!(b.json()["choices"][0]["message"]["content"], "done");
    assert_eq!(c.content(), "done");
    assert!(
        took < Duration::from_millis(1500),
        "requests were serialized: {took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn stream_headers_arrive_before_the_handler_writes() {
    let script = Script::new(vec![
        Step::Sleep(Duration::from_millis(700)),
        content("late"),
    ]);
    let server = TestServer::start(script, config()).await;
    let streamed = stream(&server, &body(true)).await;
    let ttfb = streamed.headers_at.duration_since(streamed.started);
    assert!(ttfb < Duration::from_millis(300), "headers took {ttfb:?}");
    assert_eq!(streamed.content(), "late");
    server.stop().await;
}

#[tokio::test]
async fn handler_logs_carry_the_request_id() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    // The shape of `init_logging(LogFormat::Json)`, captured instead of on stderr.
    let subscriber = janus_http::runtime::json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        move || writer.clone(),
    );
    let dispatch = tracing::Dispatch::new(subscriber);

    // Runs the server on this thread's runtime with the subscriber as the default.
    let result = std::thread::spawn(move || {
        let _guard = tracing::dispatcher::set_default(&dispatch);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let server =
                    TestServer::start(Script::new(vec![Step::Log("inside")]), config()).await;
                let mut request = chat_request(&server.url("/v1/chat/completions"), &body(false));
                request
                    .headers_mut()
                    .insert("x-request-id", "log-me-42".parse().unwrap());
                let reply = send(request).await;
                server.stop().await;
                reply.status
            })
    })
    .join()
    .unwrap();
    assert_eq!(result, 200);
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let inside = logs
        .lines()
        .find(|l| l.contains("script log"))
        .unwrap_or_else(|| panic!("no handler line in {logs}"));
    let line: serde_json::Value = serde_json::from_str(inside).unwrap();
    assert_eq!(line["request_id"], "log-me-42");
    assert_eq!(line["component"], "competitor");
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    let finished = logs
        .lines()
        .find(|l| l.contains("request finished"))
        .unwrap_or_else(|| panic!("no finish line in {logs}"));
    assert!(finished.contains("log-me-42"), "{finished}");
}
