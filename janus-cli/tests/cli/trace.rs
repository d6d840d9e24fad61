//! `janus trace` after a local run: `janus up --log-dir` writes every component's JSON log,
//! `janus chat` prints the request id, and the trace shows the hops in order, a client's
//! trace id kept by every component, and where a crashing competitor failed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{interrupt, janus, printed_sandbox, spawn_up};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("janus-cli-trace-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `janus up --log-dir dir` with extra flags; returns the child and the gateway URL.
async fn up(dir: &Path, extra: &[&str]) -> (tokio::process::Child, String) {
    let (child, url, _) = up_with(dir, &[&["--no-sandbox"], extra].concat()).await;
    (child, url)
}

/// `janus up --log-dir dir` with `extra`; the child, the gateway URL and what it printed.
async fn up_with(dir: &Path, extra: &[&str]) -> (tokio::process::Child, String, String) {
    let dir = dir.to_str().unwrap();
    let (child, url, printed) =
        spawn_up(&[&["--log-dir", dir], extra].concat(), Stdio::null()).await;
    assert!(printed.contains("  logs         "), "{printed}");
    (child, url, printed)
}

/// A raw HTTP/1.1 request with a `traceparent`; the whole answer.
async fn traced_request(
    addr: &str,
    method: &str,
    path: &str,
    traceparent: &str,
    body: &str,
) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntraceparent: {traceparent}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

async fn stop(child: &mut tokio::process::Child) {
    assert!(interrupt(child).await.success());
}

/// The request id `janus chat` printed on stderr.
fn printed_request_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("request "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("janus chat printed no request id:\n{stderr}"))
        .to_owned()
}

async fn trace(dir: &Path, id: &str) -> (Option<i32>, serde_json::Value, String) {
    let json = janus()
        .args(["trace", id, "--json", "--logs"])
        .arg(dir)
        .output()
        .await
        .unwrap();
    let text = janus()
        .args(["trace", id, "--logs"])
        .arg(dir)
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&json.stdout),
            String::from_utf8_lossy(&json.stderr)
        )
    });
    (
        json.status.code(),
        report,
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_local_run_traces_from_gateway_to_competitor_with_the_clients_trace_id() {
    let dir = temp_dir("ok");
    let (mut child, url) = up(&dir, &[]).await;
    let output = janus()
        .args(["chat", "--gateway", &url, "hello trace"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let id = printed_request_id(&String::from_utf8_lossy(&output.stderr));

    // A client that brings its own trace.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = r#"{"model":"echo","messages":[{"role":"user","content":"traced"}]}"#;
    let answer = traced_request(
        url.trim_start_matches("http://"),
        "POST",
        "/v1/chat/completions",
        &format!("00-{trace_id}-00f067aa0ba902b7-01"),
        body,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop(&mut child).await;

    let (code, report, text) = trace(&dir, &id).await;
    assert_eq!(code, Some(0), "{text}");
    let gateway = &report["hops"][0];
    assert_eq!(gateway["component"], "gateway", "{report:#}");
    assert_eq!(gateway["competitor"], "echo");
    let steps: Vec<&str> = gateway["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["accepted", "competitor answered", "first byte", "end"],
        "{report:#}"
    );
    let competitor = &gateway["children"][0];
    assert_eq!(competitor["component"], "competitor", "{report:#}");
    assert_eq!(competitor["parent_span_id"], gateway["span_id"]);
    assert_eq!(competitor["request_id"].as_str(), Some(id.as_str()));
    let offsets: Vec<f64> = gateway["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset_ms"].as_f64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(text.contains("• gateway [echo]"), "{text}");
    assert!(text.contains("  • competitor"), "{text}");

    // The client's trace id is the one both components logged.
    let (code, report, text) = trace(&dir, trace_id).await;
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(report["trace_ids"], serde_json::json!([trace_id]));
    let gateway = &report["hops"][0];
    assert_eq!(gateway["component"], "gateway");
    assert_eq!(gateway["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(gateway["children"][0]["component"], "competitor");

    let output = janus()
        .args(["trace", "chatcmpl-nothing-like-this", "--logs"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no log line names"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A competitor (test double) that sends one chunk, then breaks the connection.
async fn crashing_competitor() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                if request.starts_with("GET /health") {
                    let body = r#"{"status":"ok"}"#;
                    let _ = stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                    return;
                }
                let chunk = r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}"#;
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\n\n\r\n",
                            chunk.len() + 2
                        )
                        .as_bytes(),
                    )
                    .await;
                // Dropped mid-body: the connection breaks without the final chunk.
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_competitor_that_crashes_mid_stream_is_marked_where_it_failed() {
    let dir = temp_dir("crash");
    let crash = crashing_competitor().await;
    let (mut child, url) = up(&dir, &["--competitor", &format!("crash={crash}")]).await;
    let output = janus()
        .args(["chat", "--gateway", &url, "--model", "crash", "hi"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let id = printed_request_id(&String::from_utf8_lossy(&output.stderr));
    stop(&mut child).await;

    let (code, report, text) = trace(&dir, &id).await;
    assert_eq!(code, Some(1), "a failed hop exits 1: {text}");
    let gateway = &report["hops"][0];
    assert_eq!(gateway["component"], "gateway");
    assert_eq!(gateway["failed"], true, "{report:#}");
    let failed_step = gateway["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["failed"] == true)
        .unwrap_or_else(|| panic!("no failed step: {report:#}"));
    let end = failed_step;
    let code = end["detail"]["code"]
        .as_str()
        .or(end["detail"]["outcome"].as_str())
        .unwrap_or("");
    assert_eq!(code, "upstream_reset", "{end}");
    assert!(text.contains("← failed here"), "{text}");
    assert!(text.contains("✗ gateway [crash]"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sandbox_operations_are_hops_of_the_callers_trace() {
    let dir = temp_dir("sandbox");
    let (mut child, _url, printed) = up_with(&dir, &["--sandbox-listen", "127.0.0.1:0"]).await;
    let sandbox = printed_sandbox(&printed)
        .trim_start_matches("http://")
        .to_owned();
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let created = traced_request(&sandbox, "POST", "/api/sandboxes", &parent, "{}").await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let id = created
        .split("\"sandboxId\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let ran = traced_request(
        &sandbox,
        "POST",
        &format!("/api/sandboxes/{id}/exec"),
        &parent,
        r#"{"command":"echo hi"}"#,
    )
    .await;
    assert!(ran.starts_with("HTTP/1.1 200"), "{ran}");
    let gone = traced_request(
        &sandbox,
        "DELETE",
        &format!("/api/sandboxes/{id}"),
        &parent,
        "",
    )
    .await;
    assert!(gone.starts_with("HTTP/1.1 200"), "{gone}");
    stop(&mut child).await;

    let (code, report, text) = trace(&dir, trace_id).await;
    assert_eq!(code, Some(0), "{text}");
    let hops = report["hops"].as_array().unwrap();
    let operations: Vec<&str> = hops
        .iter()
        .filter(|h| h["component"] == "sandbox")
        .flat_map(|h| h["events"].as_array().unwrap())
        .filter(|e| e["what"] == "sandbox request finished")
        .filter_map(|e| e["detail"]["operation"].as_str())
        .collect();
    assert_eq!(operations, ["create", "exec", "terminate"], "{report:#}");
    assert!(
        hops.iter()
            .all(|h| h["parent_span_id"] == "b7ad6b7169203331"),
        "each call is a child of the caller's span: {report:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_request_through_the_platform_into_a_sandbox_is_one_tree() {
    let dir = temp_dir("platform");
    let (mut child, url, _) = up_with(&dir, &["--sandbox-listen", "127.0.0.1:0"]).await;
    // The echo competitor counts the words in a platform sandbox when asked to, and
    // returns a file when asked for one.
    let output = janus()
        .args([
            "chat",
            "--gateway",
            &url,
            "count these words in a sandbox and make me a file",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("A sandbox counted"), "{stdout}");
    let id = printed_request_id(&String::from_utf8_lossy(&output.stderr));
    stop(&mut child).await;

    let (code, report, text) = trace(&dir, &id).await;
    assert_eq!(code, Some(0), "{text}");
    let gateway = &report["hops"][0];
    assert_eq!(gateway["component"], "gateway", "{report:#}");
    let competitor = &gateway["children"][0];
    assert_eq!(competitor["component"], "competitor", "{report:#}");
    let calls = competitor["children"].as_array().unwrap();
    assert!(
        calls.len() >= 2 && calls.iter().all(|c| c["component"] == "platform"),
        "the competitor's platform calls: {report:#}"
    );
    assert!(
        calls.iter().all(|c| c["competitor"] == "echo"),
        "{report:#}"
    );
    let operations: Vec<&str> = calls
        .iter()
        .flat_map(|c| c["children"].as_array().unwrap())
        .filter(|h| h["component"] == "sandbox")
        .flat_map(|h| h["events"].as_array().unwrap())
        .filter(|e| e["what"] == "sandbox request finished")
        .filter_map(|e| e["detail"]["operation"].as_str())
        .collect();
    assert!(operations.contains(&"create"), "{operations:?}: {text}");
    assert!(operations.contains(&"terminate"), "{operations:?}: {text}");
    assert!(text.contains("• platform [echo]"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
