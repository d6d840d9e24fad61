//! Routing precedence, what is forwarded, and the client-error envelopes.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::support::*;

async fn three_competitors() -> (Competitor, Competitor, Competitor) {
    let a =
        Competitor::start(|_, _| Script::json(200, &COMPLETION.replace("\"hi\"", "\"from a\"")))
            .await;
    let b =
        Competitor::start(|_, _| Script::json(200, &COMPLETION.replace("\"hi\"", "\"from b\"")))
            .await;
    let c =
        Competitor::start(|_, _| Script::json(200, &COMPLETION.replace("\"hi\"", "\"from c\"")))
            .await;
    (a, b, c)
}

fn content(response: &Timed) -> String {
    response.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn routing_precedence_competitor_id_then_model_then_default() {
    let (a, b, c) = three_competitors().await;
    let mut config = test_config(vec![a.config("a"), b.config("b"), c.config("c")]);
    config.default_competitor = "c".into();
    let gateway = Gateway::start(config).await;

    let mut body = plain_body("b");
    body["competitor_id"] = json!("a");
    assert_eq!(
        content(&call(gateway.addr, chat_request(&body)).await),
        "from a"
    );
    assert_eq!(
        content(&call(gateway.addr, chat_request(&plain_body("b"))).await),
        "from b"
    );
    assert_eq!(
        content(&call(gateway.addr, chat_request(&plain_body("gpt-4o"))).await),
        "from c"
    );

    let mut unknown = plain_body("a");
    unknown["competitor_id"] = json!("nope");
    let response = call(gateway.addr, chat_request(&unknown)).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "competitor_not_found");
    assert_eq!(response.json()["error"]["param"], "competitor_id");
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn forwards_the_body_unchanged_except_competitor_id() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let gateway = Gateway::start(test_config(vec![a.config("a")])).await;
    // Vendor fields, key order and formatting survive when there is nothing to strip.
    let raw = "{\"model\":\"x\",  \"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"x_part\":1}],\"zeta\":1,\"alpha\":{\"n\":[1,2]}}";
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(raw)))
        .unwrap();
    let response = call(gateway.addr, request).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        COMPLETION,
        "non-stream answer must be relayed unchanged"
    );
    assert_eq!(&a.requests()[0].body[..], raw.as_bytes());

    let raw = "{\"model\":\"x\",\"competitor_id\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"zeta\":1,\"alpha\":true}";
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(raw)))
        .unwrap();
    call(gateway.addr, request).await;
    let forwarded: Value = serde_json::from_slice(&a.requests()[1].body).unwrap();
    assert!(forwarded.get("competitor_id").is_none());
    let keys: Vec<&String> = forwarded.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["model", "messages", "zeta", "alpha"],
        "key order must be kept"
    );
}

#[tokio::test]
async fn propagates_tracing_headers_and_never_the_authorization() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![a.config("a")]);
    config.api_keys = Some(janus_http::ApiKeys::parse("secret-key").unwrap());
    let gateway = Gateway::start(config).await;
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer secret-key")
        .header("x-request-id", "req-123")
        .header("x-correlation-id", "corr-9")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("cookie", "session=1")
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    let response = call(gateway.addr, request).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-request-id"], "req-123");
    let seen = &a.requests()[0].headers;
    assert_eq!(seen["x-request-id"], "req-123");
    assert_eq!(seen["x-correlation-id"], "corr-9");
    // The client's trace continues, with the gateway's own span as the parent.
    let traceparent = seen["traceparent"].to_str().unwrap();
    assert!(janus_http::valid_traceparent(traceparent.as_bytes()));
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-")
            && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert!(!traceparent.contains("b7ad6b7169203331"), "{traceparent}");
    assert!(
        seen.get("authorization").is_none(),
        "client Authorization leaked"
    );
    assert!(seen.get("cookie").is_none());

    // Without a client id the gateway makes one, returns it and forwards it.
    let response = call(
        gateway.addr,
        Request::post("/v1/chat/completions")
            .header("authorization", "Bearer secret-key")
            .body(Full::new(Bytes::from(plain_body("a").to_string())))
            .unwrap(),
    )
    .await;
    let id = response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("chatcmpl-") && id.len() == 33, "{id}");
    assert_eq!(a.requests()[1].headers["x-request-id"], id.as_str());
}

#[tokio::test]
async fn client_errors_get_precise_envelopes() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![a.config("a")]);
    config.max_body_bytes = 4096;
    let gateway = Gateway::start(config.clone()).await;

    // 400 naming the param.
    let bad = json!({"model": "a", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]});
    let response = call(gateway.addr, chat_request(&bad)).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["error"]["param"],
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(response.json()["error"]["code"], "invalid_image_url");
    assert_eq!(response.json()["error"]["type"], "invalid_request_error");
    assert!(response.headers.contains_key("x-request-id"));

    let not_json = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from("{nope")))
        .unwrap();
    let response = call(gateway.addr, not_json).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["code"], "invalid_json");

    // 413 over the limit, declared or not.
    let big = json!({"model": "a", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let response = call(gateway.addr, chat_request(&big)).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["code"], "request_too_large");

    // 404 and 405.
    let response = call(
        gateway.addr,
        Request::get("/v1/nothing")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "not_found");
    let response = call(
        gateway.addr,
        Request::get("/v1/chat/completions")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.headers["allow"], "POST");
    assert_eq!(response.json()["error"]["code"], "method_not_allowed");
    let response = call(
        gateway.addr,
        Request::post("/v1/models")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.headers["allow"], "GET");
    assert!(
        a.requests().is_empty(),
        "no bad request may reach a competitor"
    );

    // 401 when keys are configured.
    config.api_keys = Some(janus_http::ApiKeys::parse("k1,k2").unwrap());
    let gateway = Gateway::start(config).await;
    let response = call(gateway.addr, chat_request(&plain_body("a"))).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"]["type"], "authentication_error");
    let wrong = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer k3")
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    assert_eq!(call(gateway.addr, wrong).await.status, 401);
    let right = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer k2")
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    assert_eq!(call(gateway.addr, right).await.status, 200);
}

#[tokio::test]
async fn concurrency_limit_answers_429() {
    let a = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("x")),
            wait_ms(800),
            send("data: [DONE]\n\n"),
        ])
    })
    .await;
    let mut competitor = a.config("a");
    competitor.max_concurrent_requests = Some(1);
    let gateway = Gateway::start(test_config(vec![competitor])).await;
    let first = tokio::spawn(call(gateway.addr, chat_request(&stream_body("a"))));
    assert!(
        eventually(std::time::Duration::from_secs(2), || a.requests().len()
            == 1)
        .await
    );
    let second = call(gateway.addr, chat_request(&stream_body("a"))).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.json()["error"]["code"], "competitor_busy");
    assert!(first.await.unwrap().text().ends_with("data: [DONE]\n\n"));
    // The permit is released when the stream ends.
    let third = call(gateway.addr, chat_request(&plain_body("a"))).await;
    assert_ne!(third.status, 429);
}
