//! `janus up` includes the baseline competitor when an inference upstream is configured,
//! and says plainly when it is not.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;

use crate::{authorization, http_double, janus, janus_up_printing};

/// One streamed sentence, as an OpenAI-compatible upstream sends it.
const SENTENCE_SSE: &str = concat!(
    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello from the fake upstream.\"},\"finish_reason\":null}]}\n\n",
    "data: [DONE]\n\n"
);

/// A test double for the inference upstream: every chat call streams one sentence.
async fn fake_inference() -> (String, Arc<Mutex<Vec<String>>>) {
    let auth = Arc::new(Mutex::new(Vec::new()));
    let seen = auth.clone();
    let url = http_double(move |headers, _| {
        if headers.contains_key("authorization") {
            seen.lock().unwrap().push(authorization(headers));
        }
        ("text/event-stream", SENTENCE_SSE.to_owned())
    })
    .await;
    (format!("{url}/v1"), auth)
}

#[tokio::test]
async fn up_includes_the_baseline_when_an_inference_upstream_is_configured() {
    let (inference, auth) = fake_inference().await;
    let (_up, url, _, printed) = janus_up_printing(
        &["--inference-url", &inference],
        &[("JANUS_BASELINE_INFERENCE_KEY", "sk-cli-secret")],
    )
    .await;
    assert!(
        printed.contains(&format!("baseline     included (inference {inference}")),
        "{printed}"
    );
    assert!(
        printed.contains("baseline → http://127.0.0.1:"),
        "{printed}"
    );
    assert!(!printed.contains("sk-cli-secret"), "{printed}");
    let output = janus()
        .args(["chat", "--gateway", &url, "--model", "baseline", "hello"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Hello from the fake upstream."), "{stdout}");
    assert_eq!(
        auth.lock().unwrap().as_slice(),
        ["Bearer sk-cli-secret".to_owned()]
    );
}

#[tokio::test]
async fn up_says_plainly_when_no_inference_upstream_is_configured() {
    let (_up, _, _, printed) = janus_up_printing(&[], &[]).await;
    assert!(
        printed.contains(
            "baseline     not included: no inference upstream is configured (--inference-url URL"
        ),
        "{printed}"
    );
    assert!(!printed.contains("baseline →"), "{printed}");
}

/// A scripted test double for the inference upstream that serves both of the baseline's
/// paths: the agent's calls (they offer tools) get `write_file` then `finish`, a fast
/// path call one streamed sentence. Records (Authorization, was it the agent) per call.
async fn scripted_inference() -> (String, Arc<Mutex<Vec<(String, bool)>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let url = http_double(move |headers, body| {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        let agent = body.get("tools").is_some();
        seen.lock().unwrap().push((authorization(headers), agent));
        if !agent {
            return ("text/event-stream", SENTENCE_SSE.to_owned());
        }
        let steps = body["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "tool").count())
            .unwrap_or(0);
        let (name, arguments) = if steps == 0 {
            ("write_file", serde_json::json!({"path": "artifacts/hello.txt", "content": "made through the platform\n"}))
        } else {
            ("finish", serde_json::json!({"answer": "Done through the platform."}))
        };
        let reply = serde_json::json!({
            "id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": format!("Step {steps}: calling {name}."),
                "tool_calls": [{"id": format!("call_{steps}"), "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()}}]
            }}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        });
        ("application/json", reply.to_string())
    })
    .await;
    (format!("{url}/v1"), calls)
}

#[tokio::test]
async fn the_baseline_uses_only_the_platform_and_its_agent_reaches_inference_through_the_forward() {
    if let Err(why) = janus_sandbox::full_isolation_available() {
        panic!("this test needs full isolation (root, util-linux), as CI has: {why}");
    }
    let (inference, calls) = scripted_inference().await;
    let (_up, url, sandbox, printed) = janus_up_printing(
        &["--inference-url", &inference, "--sandbox-isolation", "full"],
        &[("JANUS_BASELINE_INFERENCE_KEY", "sk-cli-secret")],
    )
    .await;
    assert!(
        printed.contains("through the platform, agent path in the sandboxes)"),
        "the janus-agent binary is built beside janus by the workspace build:\n{printed}"
    );

    // X-Baseline-Agent names the agent and so picks the agent path for a trivial prompt.
    let body = serde_json::json!({
        "model": "baseline", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}],
    });
    let request = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-baseline-agent", "janus-agent")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let client = janus_http::build_client::<Full<Bytes>>(std::time::Duration::from_secs(10));
    let response = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes()
    })
    .await
    .expect("the agent path did not finish within 120 s");
    let text = String::from_utf8_lossy(&response).into_owned();
    let chunks: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "{text}");
    let delta = |field: &str| -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"][field].as_str())
            .collect()
    };
    let events: Vec<serde_json::Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("janus").cloned())
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        delta("reasoning_content").contains("Creating sandbox…"),
        "{text}"
    );
    assert!(names.contains(&"sandbox_start"), "{names:?}");
    assert!(names.contains(&"tool_start"), "{names:?}");
    assert_eq!(delta("content"), "Done through the platform.", "{text}");
    let artifact = events
        .iter()
        .filter(|e| e["event"] == "artifacts")
        .filter_map(|e| e["payload"]["items"].as_array())
        .flatten()
        .find(|a| a["display_name"] == "hello.txt")
        .unwrap_or_else(|| panic!("no hello.txt artifact: {text}"))
        .clone();
    // "made through the platform\n", as the agent wrote it in the sandbox.
    assert_eq!(
        artifact["url"], "data:text/plain;base64,bWFkZSB0aHJvdWdoIHRoZSBwbGF0Zm9ybQo=",
        "{artifact}"
    );
    let usage = chunks
        .iter()
        .rev()
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()))
        .unwrap_or_else(|| panic!("no usage: {text}"));
    let by_service = &usage["platform"]["by_service"];
    assert!(by_service["inference"].as_u64().unwrap() >= 2, "{usage}");
    assert!(by_service["sandbox"].as_u64().unwrap() >= 1, "{usage}");

    // Every model call went through the platform: the agent's too (two steps), each with
    // the key the gateway injects; neither the baseline nor the agent held it.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|(_, agent)| *agent).count(),
        2,
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|(auth, _)| auth == "Bearer sk-cli-secret"),
        "{calls:?}"
    );
    // The request's sandbox is gone when it ends.
    let listed = janus_client::HttpClient::default()
        .get(
            &format!("{sandbox}/api/sandboxes"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(listed["sandboxes"], serde_json::json!([]), "{listed}");
}
