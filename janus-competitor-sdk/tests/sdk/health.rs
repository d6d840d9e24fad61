//! `/health` readiness and `/metrics`.

use std::sync::atomic::Ordering;

use crate::support::*;

#[tokio::test]
async fn health_is_503_until_ready() {
    let script = Script::new(vec![]);
    script.ready.store(false, Ordering::SeqCst);
    let mut config = config();
    config.version = "9.9.9".into();
    let server = TestServer::start(script.clone(), config).await;

    let reply = get(&server.url("/health")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["status"], "starting");
    assert_eq!(reply.json()["ready"], false);

    script.ready.store(true, Ordering::SeqCst);
    let reply = get(&server.url("/health")).await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], "9.9.9");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    server.stop().await;
}

#[tokio::test]
async fn ready_quickly() {
    let started = std::time::Instant::now();
    let server = TestServer::start(Script::new(vec![]), config()).await;
    assert_eq!(get(&server.url("/health")).await.status, 200);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_mode_and_outcome() {
    let server = TestServer::start(Script::new(vec![content("x")]), config()).await;
    stream(&server, &body(true)).await;
    post(&server, &body(false)).await;
    post(&server, &serde_json::json!({"model": "m"})).await;
    let reply = get(&server.url("/metrics")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(
        text.contains("janus_competitor_requests_total{mode=\"stream\",outcome=\"ok\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("janus_competitor_requests_total{mode=\"non_stream\",outcome=\"ok\"} 1\n")
    );
    assert!(text.contains("janus_competitor_rejected_requests_total{reason=\"invalid\"} 1\n"));
    assert!(text.contains("janus_competitor_requests_in_flight 0\n"));
    assert!(text.contains("janus_competitor_request_duration_seconds_count 2\n"));
    assert!(text.contains("# TYPE janus_competitor_request_duration_seconds histogram\n"));
    promtool_check(&text);
    server.stop().await;
}

/// Runs `promtool check metrics` on `text`. The test command installs promtool (Debian's
/// prometheus package); this fails rather than skips when it is missing.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run ./scripts/test (it installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
