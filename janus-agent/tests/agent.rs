//! janus-agent on its own: settings, tools, and the loop against `FakeModel`, a scripted
//! stand-in for the model endpoint on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use janus_agent::{Config, Outcome, Tools};
use serde_json::{json, Value};

/// A fresh workspace folder, removed when dropped.
struct Workspace(std::path::PathBuf);

impl std::ops::Deref for Workspace {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn workspace() -> Workspace {
    let dir = std::env::temp_dir().join(format!("janus-agent-test-{}", janus_core::random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    Workspace(dir)
}

fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(&|key| map.get(key).cloned())
}

#[test]
fn settings_name_what_is_missing_or_wrong() {
    let ws = workspace();
    let ws = ws.to_str().unwrap();
    let err = config(&[("JANUS_AGENT_WORKSPACE", ws), ("JANUS_AGENT_PROMPT", "x")]).unwrap_err();
    assert_eq!(
        err,
        "JANUS_AGENT_API_BASE_URL is unset: the agent has no model endpoint"
    );
    let err = config(&[
        ("JANUS_AGENT_WORKSPACE", ws),
        ("JANUS_AGENT_API_BASE_URL", "http://127.0.0.1:1/v1"),
    ])
    .unwrap_err();
    assert!(err.starts_with("no task"), "{err}");
    let base = [
        ("JANUS_AGENT_WORKSPACE", ws),
        ("JANUS_AGENT_API_BASE_URL", "http://127.0.0.1:1/v1/"),
        ("JANUS_AGENT_PROMPT", "do it"),
    ];
    let err = config(&[base[0], base[1], base[2], ("JANUS_AGENT_MAX_STEPS", "lots")]).unwrap_err();
    assert_eq!(err, "JANUS_AGENT_MAX_STEPS must be a number, got 'lots'");
    let ok = config(&base).unwrap();
    assert_eq!(ok.api_base, "http://127.0.0.1:1/v1");
    assert_eq!(
        (ok.max_steps, ok.time_budget),
        (20, Duration::from_secs(240))
    );
    // The prompt file agent/run writes is the fallback.
    std::fs::create_dir_all(std::path::Path::new(ws).join(".janus")).unwrap();
    std::fs::write(
        std::path::Path::new(ws).join(".janus/prompt.txt"),
        "from the file",
    )
    .unwrap();
    assert_eq!(config(&base[..2]).unwrap().prompt, "from the file");
    let shown = format!(
        "{:?}",
        config(&[
            base[0],
            base[1],
            base[2],
            ("JANUS_AGENT_API_KEY", "sk-hidden")
        ])
        .unwrap()
    );
    assert!(
        !shown.contains("sk-hidden") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_binary_exits_2_on_bad_settings() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_janus-agent"))
        .env_clear()
        .env("JANUS_AGENT_PROMPT", "x")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "janus-agent: JANUS_AGENT_API_BASE_URL is unset: the agent has no model endpoint"
    );
}

fn tools(ws: &std::path::Path, limit: &str) -> Tools {
    Tools::new(
        &config(&[
            ("JANUS_AGENT_WORKSPACE", ws.to_str().unwrap()),
            ("JANUS_AGENT_API_BASE_URL", "http://127.0.0.1:1/v1"),
            ("JANUS_AGENT_PROMPT", "x"),
            ("JANUS_AGENT_SHELL_TIMEOUT", "1"),
            ("JANUS_AGENT_OUTPUT_LIMIT", limit),
        ])
        .unwrap(),
    )
}

#[tokio::test]
async fn a_shell_timeout_kills_the_whole_tree() {
    let ws = workspace();
    let tools = tools(&ws, "4096");
    let started = Instant::now();
    let outcome = tools
        .call(
            "shell",
            &json!({"command": "sleep 30 & echo $! > bg.pid; wait"}),
            Duration::from_secs(60),
        )
        .await;
    assert!(!outcome.ok);
    assert_eq!(outcome.summary, "the command ran past 1 s and was killed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(ws.join("bg.pid")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    // The background sleep went with its group (a zombie until reaped counts as gone).
    loop {
        let state =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        let alive = state
            .split(") ")
            .nth(1)
            .is_some_and(|rest| !rest.starts_with('Z'));
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background process {pid} survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn file_tools_map_workspace_paths_and_truncate_output() {
    let ws = workspace();
    let tools = tools(&ws, "64");
    let wrote = tools
        .call("write_file", &json!({"path": "/workspace/artifacts/b.bin", "content": "AAEC/w==", "encoding": "base64"}), Duration::from_secs(5))
        .await;
    assert!(wrote.ok, "{wrote:?}");
    assert_eq!(
        std::fs::read(ws.join("artifacts/b.bin")).unwrap(),
        [0, 1, 2, 255]
    );
    let long = "x".repeat(200);
    tools
        .call(
            "write_file",
            &json!({"path": "long.txt", "content": long}),
            Duration::from_secs(5),
        )
        .await;
    let read = tools
        .call(
            "read_file",
            &json!({"path": "long.txt"}),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        read.output,
        format!("{}\n[… 136 more bytes truncated]", "x".repeat(64))
    );
    let listed = tools
        .call(
            "list_files",
            &json!({"path": "/workspace"}),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(listed.output, "artifacts/\nlong.txt (200 bytes)");
    let unknown = tools
        .call("teleport", &json!({}), Duration::from_secs(5))
        .await;
    assert_eq!(
        (unknown.ok, unknown.summary.as_str()),
        (false, "there is no tool named 'teleport'")
    );
    let no_search = tools
        .call("web_search", &json!({"query": "x"}), Duration::from_secs(5))
        .await;
    assert_eq!(no_search.summary, "web search is not configured here");
    assert!(!janus_agent::definitions(false)
        .to_string()
        .contains("web_search"));
}

/// A scripted model: answers each call with the next reply.
async fn fake_model(replies: Vec<Value>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let (url, seen, _) = fake_model_with_auth(replies).await;
    (url, seen)
}

/// [`fake_model`], also recording each call's Authorization header.
async fn fake_model_with_auth(
    replies: Vec<Value>,
) -> (String, Arc<Mutex<Vec<Value>>>, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let auth = Arc::new(Mutex::new(Vec::new()));
    let (log, auth_log, replies) = (
        seen.clone(),
        auth.clone(),
        Arc::new(Mutex::new(replies.into_iter())),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, auth_log, replies) = (log.clone(), auth_log.clone(), replies.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let (log, auth_log, replies) =
                            (log.clone(), auth_log.clone(), replies.clone());
                        async move {
                            auth_log.lock().unwrap().push(
                                request
                                    .headers()
                                    .get("authorization")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default(),
                            );
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            log.lock()
                                .unwrap()
                                .push(serde_json::from_slice::<Value>(&body).unwrap());
                            let reply = replies.lock().unwrap().next().unwrap_or(json!({}));
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                                reply.to_string(),
                            ))))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen, auth)
}

fn message(message: Value) -> Value {
    json!({"choices": [{"index": 0, "message": message}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
}

#[tokio::test]
async fn the_loop_feeds_tool_results_back_and_logs_every_step() {
    let (url, seen) = fake_model(vec![
        message(json!({"role": "assistant", "content": null, "reasoning_content": "Let me look.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":\"echo hi\"}"}}]})),
        message(json!({"role": "assistant", "content": "",
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "shell", "arguments": "not json"}}]})),
        // A model that answers in plain text is done.
        message(json!({"role": "assistant", "content": "It printed hi."})),
    ])
    .await;
    let ws = workspace();
    let config = config(&[
        ("JANUS_AGENT_WORKSPACE", ws.to_str().unwrap()),
        ("JANUS_AGENT_API_BASE_URL", &url),
        ("JANUS_AGENT_PROMPT", "say hi"),
    ])
    .unwrap();
    let mut out = Vec::new();
    let outcome = janus_agent::run(&config, &mut out).await;
    assert_eq!(outcome, Outcome::Finished("It printed hi.".into()));
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "start",
            "thinking",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "final"
        ]
    );
    assert_eq!(lines[3]["summary"], "exit 0: hi");
    assert_eq!(lines[5]["ok"], false);
    assert_eq!(lines[6]["usage"]["prompt_tokens"], 15);
    let requests = seen.lock().unwrap().clone();
    // The second call carried the first tool's result; the third the complaint about
    // the malformed arguments.
    let tool_message = |r: &Value| r["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(tool_message(&requests[1])["tool_call_id"], "c1");
    assert!(tool_message(&requests[1])["content"]
        .as_str()
        .unwrap()
        .contains("stdout:\nhi"));
    assert!(tool_message(&requests[2])["content"]
        .as_str()
        .unwrap()
        .contains("not a JSON object"));
}

#[tokio::test]
async fn an_unreachable_endpoint_stops_the_run_naming_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ws = workspace();
    let url = format!("http://{closed}/v1");
    let config = config(&[
        ("JANUS_AGENT_WORKSPACE", ws.to_str().unwrap()),
        ("JANUS_AGENT_API_BASE_URL", &url),
        ("JANUS_AGENT_PROMPT", "x"),
    ])
    .unwrap();
    let mut out = Vec::new();
    match janus_agent::run(&config, &mut out).await {
        Outcome::Stopped { code, message } => {
            assert_eq!(code, "inference");
            assert!(
                message.starts_with(&format!(
                    "inference at {url}/chat/completions is unreachable: "
                )),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let last: Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "error");
}

#[tokio::test]
async fn web_search_is_offered_and_called_only_when_configured() {
    // One fake serves both the model and the search endpoint, answering in order.
    let (url, seen, auth) = fake_model_with_auth(vec![
        message(json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "s1", "type": "function", "function": {"name": "web_search", "arguments": "{\"query\":\"janus sse\"}"}}]})),
        json!({"results": [{"title": "SSE keep-alives", "url": "http://127.0.0.1/doc"}]}),
        message(json!({"role": "assistant", "content": "Found one page."})),
    ])
    .await;
    let ws = workspace();
    let search = format!("{url}/search");
    let config = config(&[
        ("JANUS_AGENT_WORKSPACE", ws.to_str().unwrap()),
        ("JANUS_AGENT_API_BASE_URL", &url),
        ("JANUS_AGENT_PROMPT", "search"),
        ("JANUS_AGENT_SEARCH_URL", &search),
        ("JANUS_AGENT_API_KEY", "grant-for-both"),
    ])
    .unwrap();
    let outcome = janus_agent::run(&config, Vec::new()).await;
    assert_eq!(outcome, Outcome::Finished("Found one page.".into()));
    // Behind the gateway both are platform services and the key is the request's grant.
    assert_eq!(
        auth.lock().unwrap().as_slice(),
        ["Bearer grant-for-both"; 3].map(str::to_owned)
    );
    let requests = seen.lock().unwrap().clone();
    assert!(requests[0]["tools"].to_string().contains("web_search"));
    assert_eq!(requests[1], json!({"query": "janus sse"}));
    let fed_back = requests[2]["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(
        fed_back.as_str().unwrap().contains("SSE keep-alives"),
        "{fed_back}"
    );
}

#[tokio::test]
async fn background_leftovers_of_a_command_end_with_it() {
    let (url, _) = fake_model(vec![
        message(json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "shell",
                "arguments": "{\"command\":\"setsid sleep 30 > /dev/null 2>&1 & echo $! > bg.pid\"}"}}]})),
        message(json!({"role": "assistant", "content": "Started it."})),
    ])
    .await;
    let ws = workspace();
    // The binary makes itself a child subreaper: even a detached leftover (its own
    // session, its parent gone) is still found and ended.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_janus-agent"))
        .env_clear()
        .env("JANUS_AGENT_PROMPT", "start a sleeper")
        .env("JANUS_AGENT_API_BASE_URL", &url)
        .env("JANUS_AGENT_WORKSPACE", ws.to_str().unwrap())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pid = std::fs::read_to_string(ws.join("bg.pid")).unwrap();
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let alive = state
        .split(") ")
        .nth(1)
        .is_some_and(|rest| !rest.starts_with('Z'));
    assert!(
        !alive,
        "the leftover {} still runs: {state}\n{}",
        pid.trim(),
        String::from_utf8_lossy(&output.stderr)
    );
}
