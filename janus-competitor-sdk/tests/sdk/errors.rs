//! Handler failures and malformed input.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use janus_competitor_sdk::janus_core::StreamEvent;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn panic_mid_stream_becomes_an_error_event_then_done() {
    let server = TestServer::start(
        Script::new(vec![content("partial"), Step::Panic("boom")]),
        config(),
    )
    .await;
    let streamed = stream(&server, &body(true)).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.content(), "partial");
    let events = streamed.events();
    let n = events.len();
    match events[n - 2] {
        StreamEvent::Error(error) => {
            assert_eq!(error.kind, "server_error");
            assert_eq!(error.code.as_deref(), Some("competitor_panic"));
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    assert!(matches!(events[n - 1], StreamEvent::Done));
    let raw = String::from_utf8(streamed.raw.clone()).unwrap();
    assert!(raw.ends_with("data: [DONE]\n\n"));
    // No finish chunk after a failure.
    assert!(streamed
        .chunks()
        .iter()
        .all(|c| c.choices[0].finish_reason.is_none()));

    // The server is fine afterwards.
    assert_eq!(get(&server.url("/health")).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn panic_without_stream_is_a_500_envelope() {
    let server = TestServer::start(Script::new(vec![Step::Panic("boom")]), config()).await;
    let reply = post(&server, &body(false)).await;
    assert_eq!(reply.status, 500);
    let json = reply.json();
    assert_eq!(json["error"]["type"], "server_error");
    assert_eq!(json["error"]["code"], "competitor_panic");
    assert!(json["error"].as_object().unwrap().contains_key("param"));
    server.stop().await;
}

#[tokio::test]
async fn handler_errors_are_reported_in_both_modes() {
    let server = TestServer::start(
        Script::new(vec![content("x"), Step::Fail("search backend down")]),
        config(),
    )
    .await;
    let streamed = stream(&server, &body(true)).await;
    let error = streamed
        .events()
        .into_iter()
        .find_map(|e| match e {
            StreamEvent::Error(error) => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(error.message, "search backend down");
    assert!(matches!(streamed.events().last(), Some(StreamEvent::Done)));

    let reply = post(&server, &body(false)).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["error"]["message"], "search backend down");
    server.stop().await;
}

#[tokio::test]
async fn handler_bad_request_is_a_400_when_not_streaming() {
    let server = TestServer::start(
        Script::new(vec![Step::Reject("no images, please")]),
        config(),
    )
    .await;
    let reply = post(&server, &body(false)).await;
    assert_eq!(reply.status, 400);
    let json = reply.json();
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(json["error"]["message"], "no images, please");
    server.stop().await;
}

#[tokio::test]
async fn malformed_input_gets_a_400_envelope_naming_the_field() {
    let script = Script::new(vec![content("x")]);
    let server = TestServer::start(script.clone(), config()).await;
    let url = server.url("/v1/chat/completions");

    let raw = send(
        Request::post(&url)
            .body(Full::new(Bytes::from_static(b"{not json")))
            .unwrap(),
    )
    .await;
    assert_eq!(raw.status, 400);
    assert_eq!(raw.headers["content-type"], "application/json");
    assert_eq!(raw.json()["error"]["type"], "invalid_request_error");
    assert_eq!(raw.json()["error"]["code"], "invalid_json");

    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 7}),
            "temperature",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
    ];
    for (body, param) in cases {
        let reply = post(&server, &body).await;
        assert_eq!(reply.status, 400, "{body}");
        let json = reply.json();
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["param"], param, "{body}");
    }
    // None of them reached the handler.
    assert_eq!(
        script
            .probe
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let mut config = config();
    config.max_body_bytes = 1024;
    let server = TestServer::start(Script::new(vec![]), config).await;
    let mut request = body(false);
    request["messages"][0]["content"] = json!("x".repeat(2000));
    let reply = post(&server, &request).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"]["code"], "request_too_large");
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let server = TestServer::start(Script::new(vec![]), config()).await;
    let reply = get(&server.url("/v2/nothing")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = get(&server.url("/v1/chat/completions")).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");
    server.stop().await;
}
