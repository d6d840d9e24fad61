//! agent/run streams, heartbeats, cancel, and artifact URLs.

use std::time::Duration;

use bytes::Bytes;
use janus_core::sse::SseItem;
use serde_json::{json, Value};

use crate::{require_root, start};
use janus_sandbox::IsolationMode;

/// Reads an agent/run stream to its end: the events and the largest gap between them.
async fn read_run(service: &crate::Service, id: &str, body: Value) -> (Vec<Value>, Duration) {
    let mut stream = service
        .client
        .post_stream(
            &format!("{}/api/sandboxes/{id}/agent/run", service.url),
            Bytes::from(body.to_string()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    let mut events = Vec::new();
    let mut last = Duration::ZERO;
    let mut max_gap = Duration::ZERO;
    while let Some(item) = stream.next(Duration::from_secs(10)).await.unwrap() {
        max_gap = max_gap.max(item.at - last);
        last = item.at;
        if let SseItem::Event(event) = item.item {
            events.push(serde_json::from_str(&event.data).unwrap());
        }
    }
    (events, max_gap)
}

#[tokio::test]
async fn agent_run_streams_output_with_heartbeats_and_completes() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |c| {
        c.agent_command = "echo \"got: $JANUS_AGENT_PROMPT\"; sleep 3; cat /workspace/.janus/prompt.txt; echo; echo bye >&2".into()
    })
    .await;
    let id = service.create(json!({})).await;
    let (events, max_gap) = read_run(&service, &id, json!({"agent": "claude", "model": "m1", "prompt": "build it", "maxDuration": 30, "rawPrompt": true})).await;
    assert!(max_gap <= Duration::from_secs(2), "gap {max_gap:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"status"));
    assert_eq!(kinds.last(), Some(&"complete"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "heartbeat").count() >= 2,
        "{kinds:?}"
    );
    let output: String = events
        .iter()
        .filter(|e| e["type"] == "output")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(output.contains("got: build it\n"), "{output}");
    assert!(
        output.contains("build it\n") && output.contains("bye\n"),
        "{output}"
    );
    let complete = events.last().unwrap();
    assert_eq!(complete["success"], true);
    assert_eq!(complete["exitCode"], 0);
    assert!(complete["duration"].as_f64().unwrap() >= 3.0);
    service.stop().await;
}

#[tokio::test]
async fn agent_cancel_and_max_duration_stop_the_run() {
    let service = start(IsolationMode::None, |c| {
        c.agent_command = "echo start; sleep 30".into()
    })
    .await;
    let id = service.create(json!({})).await;
    let (events, _) = read_run(&service, &id, json!({"prompt": "x", "maxDuration": 1})).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "complete");
    assert_eq!(last["success"], false);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "error" && e["error"].as_str().unwrap().contains("limit")),
        "{events:?}"
    );

    let runner = {
        let url = format!("{}/api/sandboxes/{id}/agent/run", service.url);
        let client = service.client.clone();
        tokio::spawn(async move {
            let mut stream = client
                .post_stream(
                    &url,
                    Bytes::from(json!({"prompt": "y"}).to_string()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            let mut events = Vec::new();
            while let Some(item) = stream.next(Duration::from_secs(10)).await.unwrap() {
                if let SseItem::Event(event) = item.item {
                    events.push(serde_json::from_str::<Value>(&event.data).unwrap());
                }
            }
            events
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled = service
        .post(&format!("/api/sandboxes/{id}/agent/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200);
    let events = tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .unwrap()
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "error" && e["error"].as_str().unwrap().contains("cancelled")),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["type"], "complete");
    service.stop().await;
}

#[tokio::test]
async fn artifact_urls_serve_exact_bytes() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let created = service
        .post("/api/sandboxes", json!({}))
        .await
        .json()
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let url = created["url"].as_str().unwrap().to_owned();
    // Written from inside the sandbox, as the sandbox user.
    service.exec(&id, "mkdir -p artifacts && printf 'col\\n1\\n' > artifacts/data.csv && head -c 300000 /dev/urandom > artifacts/blob.bin").await;
    let csv = service
        .client
        .get(&format!("{url}/artifacts/data.csv"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(csv.status, 200);
    assert_eq!(&csv.body[..], b"col\n1\n");
    assert_eq!(csv.headers["content-type"], "text/csv");
    assert_eq!(csv.headers["content-length"], "6");
    let blob = service
        .client
        .get(&format!("{url}/artifacts/blob.bin"), Duration::from_secs(5))
        .await
        .unwrap();
    let expected = service
        .get(&format!(
            "/api/sandboxes/{id}/files/read?path=artifacts/blob.bin"
        ))
        .await;
    assert_eq!(blob.body.len(), 300_000);
    assert_eq!(blob.body, expected.body);
    service.exec(&id, "ln -s /etc/passwd artifacts/link").await;
    let escape = service
        .client
        .get(&format!("{url}/artifacts/link"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(escape.status, 400);
    let traversal = service
        .client
        .get(
            &format!("{url}/artifacts/..%2F..%2Fetc%2Fpasswd"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(traversal.status, 400);
    let missing = service
        .client
        .get(&format!("{url}/artifacts/none.txt"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    service.stop().await;
}
