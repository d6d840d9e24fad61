//! Every failure mode, in both modes: an envelope before the start, an error event and
//! exactly one [DONE] after.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Asserts a stream ended with one error event carrying `code`, then one [DONE].
pub fn assert_stream_error(response: &Timed, code: &str) -> Value {
    assert_eq!(response.status, 200);
    let events = response.data_events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "[DONE]").count(),
        1,
        "{events:?}"
    );
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], code, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(error["error"]["type"].is_string());
    error
}

fn unreachable_competitor() -> janus_gateway::CompetitorConfig {
    // Bind and drop: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    janus_gateway::CompetitorConfig {
        id: "gone".into(),
        url: format!("http://127.0.0.1:{port}"),
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    }
}

#[tokio::test]
async fn unreachable_competitor_fails_cleanly() {
    let gateway = Gateway::start(test_config(vec![unreachable_competitor()])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_unreachable");
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 502);
    assert_eq!(plain.json()["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn non_200_answers() {
    let competitor = Competitor::start(|n, _| match n % 2 {
        0 => Script::json(500, r#"{"error":{"message":"model crashed","type":"server_error","param":null,"code":"boom"}}"#),
        _ => Script::json(400, r#"{"error":{"message":"bad temperature for this model","type":"invalid_request_error","param":"temperature","code":"unsupported"}}"#),
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;

    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    let error = assert_stream_error(&streamed, "upstream_error");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model crashed"));

    // A competitor's 4xx envelope passes through with its status.
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 400);
    assert_eq!(plain.json()["error"]["code"], "unsupported");
    assert_eq!(plain.json()["error"]["param"], "temperature");

    let plain_500 = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain_500.status, 502);
    assert_eq!(plain_500.json()["error"]["code"], "upstream_error");
}

#[tokio::test]
async fn wrong_content_type() {
    let competitor = Competitor::start(|n, _| match n {
        0 => Script::json(200, r#"{"not":"a stream"}"#),
        _ => {
            let mut script = Script::json(200, "plain text");
            script.content_type = "text/plain";
            script
        }
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_invalid");
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 502);
    assert_eq!(plain.json()["error"]["code"], "upstream_invalid");
}

#[tokio::test]
async fn invalid_json_in_a_non_stream_answer() {
    let competitor = Competitor::start(|_, _| Script::json(200, "{\"truncated\":")).await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 502);
    assert_eq!(plain.json()["error"]["code"], "upstream_invalid");
}

#[tokio::test]
async fn oversize_event() {
    let huge = format!("data: {{\"x\":\"{}\"}}\n\n", "a".repeat(5 * 1024 * 1024));
    let competitor =
        Competitor::start(move |_, _| Script::sse(vec![send(chunk("ok")), send(&huge)])).await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_invalid");
    assert!(streamed.text().starts_with(&chunk("ok")));
    assert!(
        streamed.bytes().len() < 10_000,
        "oversize event leaked to the client"
    );
}

#[tokio::test]
async fn malformed_event_never_reaches_the_client() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("fine")),
            send("data: {\"broken\": \n\n"),
            send(chunk("never")),
        ])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_invalid");
    // Only the error message quotes it; the malformed event itself is never relayed.
    assert!(
        !streamed.text().contains("data: {\"broken\""),
        "{}",
        streamed.text()
    );
    assert!(!streamed.text().contains("never"));
}

#[tokio::test]
async fn connection_reset_mid_stream() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("part")),
            send("data: {\"half"),
            wait_ms(50),
            Step::Reset,
        ])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_reset");
    // The half event was held back, so the error event is well-formed.
    assert!(!streamed.text().contains("half"));
}

#[tokio::test]
async fn total_timeout() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("slow")),
            wait_ms(10_000),
            send("data: [DONE]\n\n"),
        ])
    })
    .await;
    let mut config = test_config(vec![competitor.config("a")]);
    config.request_timeout = Duration::from_millis(800);
    let gateway = Gateway::start(config).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_stream_error(&streamed, "upstream_timeout");
    assert!(streamed.frames.last().unwrap().0 < Duration::from_secs(3));

    let slow_json = Competitor::start(|_, _| {
        let mut script = Script::json(200, COMPLETION);
        script.head_delay = Duration::from_secs(10);
        script
    })
    .await;
    let mut config = test_config(vec![slow_json.config("b")]);
    config.request_timeout = Duration::from_millis(500);
    let gateway = Gateway::start(config).await;
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 504);
    assert_eq!(plain.json()["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn cold_start_retries_with_warming_comments() {
    let competitor = Competitor::start(|n, _| match n {
        0 | 1 => Script::json(
            503,
            r#"{"error":{"message":"warming","type":"server_error","param":null,"code":null}}"#,
        ),
        _ => Script::sse(vec![send(chunk("warm now")), send("data: [DONE]\n\n")]),
    })
    .await;
    let mut config = test_config(vec![competitor.config("a")]);
    config.retry.initial_backoff = std::time::Duration::from_millis(1200);
    config.retry.max_backoff = std::time::Duration::from_millis(1200);
    config.keepalive_interval = Duration::from_millis(500);
    let gateway = Gateway::start(config).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(competitor.requests().len(), 3);
    assert!(
        streamed.comments().iter().any(|c| c == "warming upstream"),
        "{:?}",
        streamed.comments()
    );
    assert!(streamed
        .text()
        .ends_with(&format!("{}data: [DONE]\n\n", chunk("warm now"))));

    // Non-stream: retried too, and the final answer relayed unchanged.
    let competitor = Competitor::start(|n, _| match n {
        0 => Script::json(429, "{}"),
        _ => Script::json(200, COMPLETION),
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.text(), COMPLETION);
    assert_eq!(competitor.requests().len(), 2);
}

#[tokio::test]
async fn a_request_that_reached_the_competitor_before_it_died_is_not_replayed() {
    // The sandbox proxy's 502 when the competitor took the request and died on it (a
    // memory limit): replaying it would kill the competitor again.
    let competitor = Competitor::start(|_, _| {
        Script::json(
            502,
            r#"{"error":{"message":"the process on port 8080 in the sandbox closed the connection without answering","type":"server_error","param":null,"code":"upstream_closed"}}"#,
        )
        .with_header("x-janus-upstream-reached", "1")
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 502);
    assert!(
        plain.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed the connection without answering"),
        "{}",
        plain.text()
    );
    assert_eq!(competitor.requests().len(), 1);
    let streamed = call(gateway.addr, chat_request(&stream_body("m"))).await;
    assert_eq!(competitor.requests().len(), 2, "{}", streamed.text());
}

#[tokio::test]
async fn cold_start_gives_up_after_the_attempt_limit() {
    let competitor = Competitor::start(|_, _| Script::json(503, "{}")).await;
    let mut config = test_config(vec![competitor.config("a")]);
    config.retry.max_attempts = 3;
    let gateway = Gateway::start(config).await;
    let plain = call(gateway.addr, chat_request(&plain_body("m"))).await;
    assert_eq!(plain.status, 502);
    assert_eq!(competitor.requests().len(), 3);
}
