//! The fast path through a real gateway: token-by-token relay, reasoning, usage, vision,
//! and honest errors when inference is down or refuses.

use std::time::Duration;

use janus_baseline::Settings;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn the_fast_path_streams_token_by_token() {
    let mut events = vec![
        json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": {"reasoning_content": "Thinking briefly."}, "finish_reason": null}]}),
    ];
    events.extend(content_stream(&["Hel", "lo", ", wor", "ld"]));
    let llm = FakeLlm::start(move |_| FakeReply::Sse {
        events: events.clone(),
        gated: true,
    })
    .await;
    let gate = llm.gate.clone();
    let stack = Stack::start(
        llm,
        StackOptions {
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let client = janus_client::HttpClient::default();
    let mut stream = client
        .post_stream(
            &stack.chat_url(),
            chat("hello", true, Value::Null),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(item) = stream.next(Duration::from_secs(10)).await.unwrap() {
        for part in interpret(item.item) {
            // The fake sends the next piece only after the client has this one: a buffered
            // relay would stall here and hit the 10 s idle bound.
            if matches!(part, Seen::Content(_) | Seen::Reasoning(_)) {
                gate.add_permits(1);
            }
            // After the last piece: the finish and usage chunks.
            if part == Seen::Content("ld".into()) {
                gate.add_permits(2);
            }
            seen.push(part);
        }
    }
    let pieces: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Content(_) | Seen::Reasoning(_)))
        .collect();
    assert_eq!(
        pieces,
        vec![
            &Seen::Reasoning("Thinking briefly.".into()),
            &Seen::Content("Hel".into()),
            &Seen::Content("lo".into()),
            &Seen::Content(", wor".into()),
            &Seen::Content("ld".into()),
        ]
    );
    let usage = seen.iter().find_map(|s| match s {
        Seen::Usage(u) => Some(u.clone()),
        _ => None,
    });
    assert_eq!(usage.unwrap()["prompt_tokens"], 7);
    assert_eq!(seen.last(), Some(&Seen::Done));
    let requests = stack.llm.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["model"], janus_baseline::DEFAULT_FAST_MODEL);
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["messages"][0]["content"], "hello");
}

#[tokio::test]
async fn images_pick_the_vision_model_and_a_plain_request_gets_one_folded_answer() {
    let llm = FakeLlm::start(|_| FakeReply::Sse {
        events: content_stream(&["A red ", "square."]),
        gated: false,
    })
    .await;
    let stack = Stack::start(
        llm,
        StackOptions {
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let body = json!({
        "model": "baseline",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]
    });
    let response = janus_client::HttpClient::default()
        .post_json(
            &stack.chat_url(),
            body.to_string().into(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let answer = response.json().unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "A red square.");
    assert_eq!(answer["usage"]["completion_tokens"], 2);
    let requests = stack.llm.requests.lock().unwrap().clone();
    assert_eq!(requests[0]["model"], janus_baseline::DEFAULT_VISION_MODEL);
    assert_eq!(
        requests[0]["messages"][0]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
}

#[tokio::test]
async fn inference_down_gives_an_error_event_with_a_precise_message() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let llm = FakeLlm::start(|_| FakeReply::Json(500, json!({}))).await;
    let settings = Settings {
        inference_url: Some(format!("http://{closed}/v1")),
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(&stack.chat_url(), chat("hello", true, Value::Null)).await;
    let error = error(&seen).expect("an error event");
    let expected =
        format!("platform inference is unreachable at http://{closed}/v1/chat/completions");
    assert!(error.message.starts_with(&expected), "{}", error.message);
    assert!(
        error.message.to_lowercase().contains("refused"),
        "{}",
        error.message
    );
    assert_eq!(content(&seen), "", "no answer may pretend");
    assert_eq!(seen.last(), Some(&Seen::Done));
}

#[tokio::test]
async fn an_inference_refusal_is_passed_on_without_the_key() {
    let llm = FakeLlm::start(|_| {
        FakeReply::Json(
            401,
            json!({"error": {"message": "invalid api key", "type": "auth"}}),
        )
    })
    .await;
    let settings = Settings {
        inference_key: Some("sk-test-very-secret".into()),
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(&stack.chat_url(), chat("hi", true, Value::Null)).await;
    let error = error(&seen).expect("an error event");
    assert_eq!(
        error.message,
        "platform inference answered 401 Unauthorized: invalid api key"
    );
    assert!(!format!("{seen:?}").contains("sk-test-very-secret"));
    assert_eq!(
        stack.llm.auth.lock().unwrap().as_slice(),
        ["Bearer sk-test-very-secret".to_owned()]
    );
}

#[tokio::test]
async fn agent_work_without_a_sandbox_service_says_so_and_answers_on_the_fast_path() {
    let llm = FakeLlm::start(|_| FakeReply::Sse {
        events: content_stream(&["Here is how."]),
        gated: false,
    })
    .await;
    let stack = Stack::start(
        llm,
        StackOptions {
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(
        &stack.chat_url(),
        chat("Plot sin(x) for me", true, Value::Null),
    )
    .await;
    assert!(
        reasoning(&seen).contains("no sandbox service is configured (SANDY_BASE_URL)"),
        "{seen:?}"
    );
    assert_eq!(content(&seen), "Here is how.");
    // Chosen explicitly, the agent path without a sandbox is an error, not a fallback.
    let seen = read_all(
        &stack.chat_url(),
        chat("Plot sin(x) for me", true, json!({"janus_path": "agent"})),
    )
    .await;
    assert_eq!(
        error(&seen).unwrap().message,
        "this request needs the agent, but no sandbox service is configured (SANDY_BASE_URL)"
    );
}

#[tokio::test]
async fn an_unknown_path_choice_is_a_400_naming_it() {
    let llm = FakeLlm::start(|_| FakeReply::Json(500, json!({}))).await;
    let stack = Stack::start(
        llm,
        StackOptions {
            sandbox: false,
            ..Default::default()
        },
    )
    .await;
    let response = janus_client::HttpClient::default()
        .post_json(
            &stack.chat_url(),
            chat("hi", false, json!({"janus_path": "slow"})),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 400);
    let body = response.json().unwrap();
    assert_eq!(
        body["error"]["message"],
        "metadata.janus_path must be \"fast\" or \"agent\", got \"slow\""
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(stack.llm.requests.lock().unwrap().is_empty());
}
