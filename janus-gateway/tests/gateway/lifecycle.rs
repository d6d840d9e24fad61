//! Disconnects, shutdown, and the operational endpoints.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Waits for the competitor to see its response abandoned; returns how long it took.
async fn abandoned_within(competitor: &Competitor, since: Instant, limit: Duration) -> Duration {
    let notified = competitor.abandoned_notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if competitor.abandoned.load(Ordering::SeqCst) == 0 {
        let _ = tokio::time::timeout(limit, notified).await;
    }
    assert_eq!(
        competitor.abandoned.load(Ordering::SeqCst),
        1,
        "competitor never saw the hang-up"
    );
    since.elapsed()
}

#[tokio::test]
async fn stream_client_disconnect_closes_the_competitor_connection_at_once() {
    let competitor = Competitor::start(|_, _| {
        Script::sse(vec![
            send(chunk("first")),
            wait_ms(10_000),
            send("data: [DONE]\n\n"),
        ])
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let (response, connection) = open(gateway.addr, chat_request(&stream_body("a"))).await;
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from(chunk("first")));
    let hung_up = Instant::now();
    drop(body);
    connection.abort();
    let took = abandoned_within(&competitor, hung_up, Duration::from_secs(2)).await;
    assert!(
        took <= Duration::from_millis(100),
        "competitor noticed after {took:?}"
    );
}

#[tokio::test]
async fn non_stream_client_disconnect_closes_the_competitor_connection_at_once() {
    let competitor = Competitor::start(|_, _| {
        let mut script = Script::json(200, COMPLETION);
        script.head_delay = Duration::from_secs(10);
        script
    })
    .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let body = plain_body("a").to_string();
    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || competitor.requests().len() == 1).await);
    let hung_up = Instant::now();
    drop(socket);
    let took = abandoned_within(&competitor, hung_up, Duration::from_secs(2)).await;
    assert!(
        took <= Duration::from_millis(100),
        "competitor noticed after {took:?}"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_streams_finish_then_ends_the_rest() {
    let competitor = Competitor::start(|n, _| match n {
        0 => Script::sse(vec![
            send(chunk("short")),
            wait_ms(600),
            send(chunk("end")),
            send("data: [DONE]\n\n"),
        ]),
        _ => Script::sse(vec![
            send(chunk("long")),
            wait_ms(30_000),
            send("data: [DONE]\n\n"),
        ]),
    })
    .await;
    let mut config = test_config(vec![competitor.config("a")]);
    config.serve.shutdown_grace = Duration::from_millis(1500);
    let mut gateway = Gateway::start(config).await;
    let short = tokio::spawn(call(gateway.addr, chat_request(&stream_body("a"))));
    assert!(eventually(Duration::from_secs(2), || competitor.requests().len() == 1).await);
    let long = tokio::spawn(call(gateway.addr, chat_request(&stream_body("a"))));
    assert!(eventually(Duration::from_secs(2), || competitor.requests().len() == 2).await);
    let addr = gateway.addr;
    let stopping = Instant::now();
    let server = gateway.stop();

    // New connections are refused once shutdown begins.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );

    let short = short.await.unwrap();
    assert!(
        short
            .text()
            .ends_with(&format!("{}data: [DONE]\n\n", chunk("end"))),
        "{}",
        short.text()
    );
    let long = long.await.unwrap();
    let events = long.data_events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let error: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "shutting_down");
    server.await.unwrap().unwrap();
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn models_and_health() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut down = a.config("down");
    down.url = "http://127.0.0.1:1".into();
    let mut up = a.config("up");
    up.description = Some("the echo".into());
    let gateway = Gateway::start(test_config(vec![up, down])).await;

    let models = call(
        gateway.addr,
        Request::get("/v1/models")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(models.status, 200);
    let json = models.json();
    assert_eq!(json["object"], "list");
    let data = json["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "up");
    assert_eq!(data[0]["object"], "model");
    assert!(data[0]["created"].is_u64());
    assert!(data[0]["owned_by"].is_string());
    assert_eq!(data[0]["description"], "the echo");

    // Probes run every 200 ms in tests.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let health = call(
        gateway.addr,
        Request::get("/health")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(health.status, 200);
    let json = health.json();
    assert_eq!(json["status"], "ok");
    assert!(json["version"].is_string());
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["competitors"][0]["id"], "up");
    assert_eq!(json["competitors"][0]["ready"], true);
    assert_eq!(json["competitors"][1]["ready"], false);
    assert!(json["competitors"][1]["error"].is_string());
}

/// Finds promtool, or fails: the test command installs it and CI must not skip this.
fn promtool() -> String {
    for candidate in ["promtool", "/usr/bin/promtool"] {
        if std::process::Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return candidate.to_owned();
        }
    }
    panic!(
        "promtool is not installed: run ./scripts/test (it installs Debian's prometheus package)"
    );
}

#[tokio::test]
async fn metrics_count_and_pass_promtool() {
    let a = Competitor::start(|n, _| match n {
        0 => Script::sse(vec![
            send(chunk("x")),
            wait_ms(2200),
            send("data: [DONE]\n\n"),
        ]),
        _ => Script::json(500, "{}"),
    })
    .await;
    let gateway = Gateway::start(test_config(vec![a.config("a")])).await;
    call(gateway.addr, chat_request(&stream_body("a"))).await;
    call(gateway.addr, chat_request(&plain_body("a"))).await;
    call(
        gateway.addr,
        chat_request(&serde_json::json!({"model": "a"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let response = call(
        gateway.addr,
        Request::get("/metrics")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 200);
    let text = response.text();
    for line in [
        "janus_gateway_requests_total{competitor=\"a\",outcome=\"ok\"} 1",
        "janus_gateway_requests_total{competitor=\"a\",outcome=\"upstream_error\"} 1",
        "janus_gateway_requests_total{competitor=\"none\",outcome=\"missing_required_parameter\"} 1",
        "janus_gateway_keepalives_total 1",
        "janus_gateway_upstream_errors_total{kind=\"upstream_error\"} 1",
        "janus_gateway_active_streams 0",
        "janus_gateway_competitor_up{competitor=\"a\"} 1",
        "janus_gateway_ttft_seconds_count 1",
        "janus_gateway_stream_max_gap_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing '{line}' in\n{text}");
    }

    let mut child = tokio::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    assert!(
        status.success(),
        "promtool rejected the metrics: {stderr}\n{text}"
    );
}
