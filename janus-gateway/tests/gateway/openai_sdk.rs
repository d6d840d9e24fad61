//! The official OpenAI Python SDK against the gateway: streaming, non-streaming, usage with
//! `include_usage`, and errors that raise.

use std::path::PathBuf;

use crate::support::*;

/// The Python with `openai` installed: `JANUS_PYTHON`, else the workspace `.venv` that
/// `./scripts/test` creates. Missing is a failure, never a skip.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("JANUS_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the openai SDK at {}: run ./scripts/test, which creates it",
        venv.display()
    );
    venv
}

const STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"echo\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"echo\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"echo\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", world\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"echo\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
);
const USAGE: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"echo\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n";

#[tokio::test]
async fn official_openai_python_sdk_works_through_the_gateway() {
    let echo = Competitor::start(|_, request| {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        if body["stream"] == true {
            let mut steps = vec![send(STREAM)];
            if body["stream_options"]["include_usage"] == true {
                steps.push(send(USAGE));
            }
            steps.push(send("data: [DONE]\n\n"));
            Script::sse(steps)
        } else {
            Script::json(200, COMPLETION)
        }
    })
    .await;
    let mut broken = echo.config("broken");
    broken.url = "http://127.0.0.1:1".into();
    let gateway = Gateway::start(test_config(vec![echo.config("echo"), broken])).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/openai_check.py");
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .env("JANUS_GATEWAY_URL", format!("http://{}", gateway.addr))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openai SDK check failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "non-stream ok",
        "stream ok",
        "stream error raises ok",
        "404 raises ok",
        "400 raises ok",
        "models ok",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing '{line}':\n{stdout}\n{stderr}"
        );
    }
}
