//! The agent path end to end: client → gateway → baseline → sandbox service → janus-agent
//! → the fake LLM (through the sandbox's forward when isolated).

use std::time::{Duration, Instant};

use janus_baseline::Settings;
use janus_competitor_sdk::janus_core::{data_url_decode, ArtifactDescriptor};
use janus_competitor_sdk::{CreateOptions, SandyClient};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::support::*;

/// Writes a CSV and a PNG (stdlib only) under `artifacts/`.
const MAKE_PY: &str = r#"import os, struct, zlib
os.makedirs("artifacts", exist_ok=True)
rows = [(n, n * n) for n in range(1, 11)]
with open("artifacts/data.csv", "w") as f:
    f.write("n,square\n")
    for n, s in rows:
        f.write(f"{n},{s}\n")
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
raw = b"".join(b"\x00" + bytes([min(255, s * 2), n * 20, 128]) * 10 for n, s in rows)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
with open("artifacts/chart.png", "wb") as f:
    f.write(png)
print("wrote", len(rows), "rows and a 10x10 png")
"#;

const ANSWER: &str = "I wrote make.py, ran it, and saved data.csv and chart.png.";

fn scripted_agent(request: &Value) -> FakeReply {
    match steps_done(request) {
        0 => tool_call(
            0,
            "write_file",
            json!({"path": "make.py", "content": MAKE_PY}),
        ),
        1 => tool_call(1, "shell", json!({"command": "python3 make.py && pwd"})),
        2 => tool_call(2, "list_files", json!({"path": "artifacts"})),
        _ => tool_call(3, "finish", json!({"answer": ANSWER})),
    }
}

/// The bytes the script makes, made here the same way.
fn expected_bytes() -> (Vec<u8>, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!(
        "janus-baseline-expected-{}",
        janus_competitor_sdk::janus_core::random_hex(6)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("make.py"), MAKE_PY).unwrap();
    let status = std::process::Command::new("python3")
        .arg("make.py")
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let csv = std::fs::read(dir.join("artifacts/data.csv")).unwrap();
    let png = std::fs::read(dir.join("artifacts/chart.png")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (csv, png)
}

fn janus_events(seen: &[Seen]) -> Vec<(String, Value)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Janus(name, payload) => Some((name.clone(), payload.clone())),
            _ => None,
        })
        .collect()
}

fn agent_settings() -> Settings {
    Settings {
        inference_key: Some("sk-agent-test-key".into()),
        agent_model: "fake-agent-model".into(),
        ..Settings::default()
    }
}

#[tokio::test]
async fn the_scripted_agent_writes_runs_saves_and_finishes() {
    let llm = FakeLlm::start(scripted_agent).await;
    let stack = Stack::start(
        llm,
        StackOptions {
            settings: agent_settings(),
            ..Default::default()
        },
    )
    .await;
    let prompt = "Write a Python script that makes a CSV of squares and a PNG chart, run it, and give me both files.";
    let seen = read_all(&stack.chat_url(), chat(prompt, true, Value::Null)).await;
    assert!(error(&seen).is_none(), "{seen:?}");

    // Lifecycle reasoning, in order.
    let reasoning = reasoning(&seen);
    let mut at = 0;
    for line in [
        "Creating sandbox…",
        "Sandbox ready in ",
        "Running agent…",
        "→ write_file: make.py",
        "→ shell: python3 make.py && pwd",
        "Collecting artifacts…",
        "Done in ",
    ] {
        let found = reasoning[at..]
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} after byte {at} in {reasoning}"));
        at += found + line.len();
    }

    // Tool events in order, each end after its start, the shell step successful.
    let events = janus_events(&seen);
    let names: Vec<String> = events
        .iter()
        .map(
            |(name, payload)| match payload.get("tool").and_then(Value::as_str) {
                Some(tool) => format!("{name}:{tool}"),
                None => name.clone(),
            },
        )
        .collect();
    assert_eq!(
        names,
        [
            "sandbox_start",
            "tool_start:write_file",
            "tool_end:write_file",
            "tool_start:shell",
            "tool_end:shell",
            "tool_start:list_files",
            "tool_end:list_files",
            "tool_start:finish",
            "tool_end:finish",
            "artifacts",
            "artifacts",
            "sandbox_end",
        ],
        "{events:#?}"
    );
    let shell_end = &events[4].1;
    assert_eq!(shell_end["ok"], true, "{shell_end}");
    assert!(
        shell_end["summary"]
            .as_str()
            .unwrap()
            .contains("wrote 10 rows"),
        "{shell_end}"
    );
    assert_eq!(events[3].1["input"]["command"], "python3 make.py && pwd");
    assert_eq!(events[1].1["input"]["content"], MAKE_PY);
    // Isolated (root, as in CI), the agent ran in the sandbox's own /workspace and reached
    // the model only through the sandbox's forward.
    println!("isolation: {:?}", isolation());
    if isolation() == janus_sandbox::IsolationMode::Full {
        assert!(
            shell_end["summary"]
                .as_str()
                .unwrap()
                .ends_with(" /workspace"),
            "{shell_end}"
        );
    }

    // Both artifacts, verified by sha256 against the bytes behind the URL and against the
    // bytes the same script makes here.
    let (csv, png) = expected_bytes();
    let artifacts: Vec<ArtifactDescriptor> = events
        .iter()
        .filter(|(name, _)| name == "artifacts")
        .flat_map(|(_, payload)| {
            serde_json::from_value::<Vec<ArtifactDescriptor>>(payload["items"].clone()).unwrap()
        })
        .collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:#?}");
    for (name, expected, mime) in [
        ("data.csv", &csv, "text/csv"),
        ("chart.png", &png, "image/png"),
    ] {
        let artifact = artifacts
            .iter()
            .find(|a| a.display_name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"));
        let bytes = data_url_decode(&artifact.url).unwrap().bytes;
        artifact.verify(&bytes).unwrap();
        assert_eq!(
            &bytes, expected,
            "{name} differs from what the script makes"
        );
        assert_eq!(
            artifact.sha256.as_deref(),
            Some(format!("{:x}", sha2::Sha256::digest(expected)).as_str())
        );
        assert_eq!(artifact.mime_type, mime);
    }
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    // The agent's final answer is the content; usage counts the agent's tokens and the
    // sandbox's time.
    assert_eq!(content(&seen), ANSWER);
    let usage = seen
        .iter()
        .find_map(|s| match s {
            Seen::Usage(u) => Some(u.clone()),
            _ => None,
        })
        .expect("usage");
    assert_eq!(usage["prompt_tokens"], 400);
    assert_eq!(usage["completion_tokens"], 40);
    assert!(usage["sandbox_seconds"].as_f64().unwrap() > 0.0, "{usage}");
    assert_eq!(seen.last(), Some(&Seen::Done));

    // The agent called the model with the agent model, the key, and our tools.
    let requests = stack.llm.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r["model"] == "fake-agent-model"));
    assert!(requests[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("CSV of squares"));
    assert!(stack
        .llm
        .auth
        .lock()
        .unwrap()
        .iter()
        .all(|a| a == "Bearer sk-agent-test-key"));
    // The sandbox is gone.
    let id = events[0].1["sandbox_id"].as_str().unwrap();
    assert_eq!(sandbox_status(&stack.sandbox, id).await, "terminated");
}

async fn sandbox_status(base: &str, id: &str) -> String {
    let response = janus_client::HttpClient::default()
        .get(
            &format!("{base}/api/sandboxes/{id}"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    if response.status == 404 {
        return "gone".into();
    }
    response.json().unwrap()["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Pids of processes whose environment names this sandbox.
fn sandbox_processes(id: &str) -> Vec<u32> {
    let needle = format!("SANDBOX_ID={id}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
            {
                pids.push(pid);
            }
        }
    }
    pids
}

#[tokio::test]
async fn a_client_disconnect_mid_agent_leaves_no_sandbox_and_no_agent_process() {
    let llm = FakeLlm::start(|request| match steps_done(request) {
        0 => tool_call(0, "shell", json!({"command": "sleep 30"})),
        _ => tool_call(1, "finish", json!({"answer": "slept"})),
    })
    .await;
    let stack = Stack::start(llm, StackOptions::default()).await;
    let client = janus_client::HttpClient::default();
    let mut stream = client
        .post_stream(
            &stack.chat_url(),
            chat("Run sleep 30 in a shell", true, Value::Null),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let mut sandbox_id = None;
    'read: while let Some(item) = stream.next(Duration::from_secs(20)).await.unwrap() {
        for part in interpret(item.item) {
            match part {
                Seen::Janus(name, payload) if name == "sandbox_start" => {
                    sandbox_id = payload["sandbox_id"].as_str().map(str::to_owned)
                }
                Seen::Janus(name, payload)
                    if name == "tool_start" && payload["tool"] == "shell" =>
                {
                    break 'read
                }
                Seen::Error(e) => panic!("{e:?}"),
                _ => {}
            }
        }
    }
    let id = sandbox_id.expect("a sandbox_start event");
    // The agent and its `sleep` run now: the check below can fail.
    let running = sandbox_processes(&id);
    assert!(
        !running.is_empty(),
        "no process of sandbox {id} found while the agent runs"
    );
    assert_eq!(sandbox_status(&stack.sandbox, &id).await, "running");

    drop(stream);
    let hung_up = Instant::now();
    loop {
        let status = sandbox_status(&stack.sandbox, &id).await;
        let left = sandbox_processes(&id);
        if (status == "terminated" || status == "gone") && left.is_empty() {
            break;
        }
        assert!(
            hung_up.elapsed() < Duration::from_secs(1),
            "1 s after the hang-up: sandbox {status}, processes {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "sandbox and agent gone {:?} after the hang-up",
        hung_up.elapsed()
    );
}

#[tokio::test]
async fn a_looping_agent_is_stopped_by_its_step_budget() {
    let llm =
        FakeLlm::start(|request| tool_call(steps_done(request), "list_files", json!({}))).await;
    let settings = Settings {
        agent_max_steps: 3,
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(
        &stack.chat_url(),
        chat("loop", true, json!({"janus_path": "agent"})),
    )
    .await;
    assert_eq!(
        error(&seen).expect("an error event").message,
        "the agent stopped without an answer: the agent used all 3 steps without finishing"
    );
    let starts = janus_events(&seen)
        .iter()
        .filter(|(n, _)| n == "tool_start")
        .count();
    assert_eq!(starts, 3);
    assert_eq!(stack.llm.requests.lock().unwrap().len(), 3);
    assert!(janus_events(&seen).iter().any(|(n, _)| n == "sandbox_end"));
    assert_eq!(content(&seen), "");
}

#[tokio::test]
async fn a_looping_agent_is_stopped_by_its_time_budget() {
    let llm = FakeLlm::start(|request| {
        tool_call(steps_done(request), "shell", json!({"command": "sleep 1"}))
    })
    .await;
    // A cap of 8 s gives the agent a budget of 4 s.
    let settings = Settings {
        agent_timeout: Duration::from_secs(8),
        agent_max_steps: 1000,
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    let seen = read_all(
        &stack.chat_url(),
        chat("loop", true, json!({"janus_path": "agent"})),
    )
    .await;
    let message = &error(&seen).expect("an error event").message;
    assert!(
        message.starts_with(
            "the agent stopped without an answer: the agent used up its time budget of 4 s after "
        ),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let steps = stack.llm.requests.lock().unwrap().len();
    assert!(
        (2..=6).contains(&steps),
        "{steps} model calls in a 4 s budget of 1 s steps"
    );
}

#[tokio::test]
async fn inference_down_on_the_agent_path_is_an_error_naming_it() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let llm = FakeLlm::start(|_| FakeReply::Json(500, json!({}))).await;
    let settings = Settings {
        agent_api_base: Some(format!("http://{closed}/v1")),
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(
        &stack.chat_url(),
        chat("work", true, json!({"janus_path": "agent"})),
    )
    .await;
    let message = &error(&seen).expect("an error event").message;
    let expected = format!(
        "the agent stopped without an answer: inference at http://{closed}/v1/chat/completions is unreachable: "
    );
    assert!(message.starts_with(&expected), "{message}");
}

#[tokio::test]
async fn sandbox_capacity_exhausted_is_an_error_saying_so() {
    let llm = FakeLlm::start(scripted_agent).await;
    let stack = Stack::start(
        llm,
        StackOptions {
            max_sandboxes: 1,
            ..Default::default()
        },
    )
    .await;
    // Someone else holds the only sandbox.
    let holder = SandyClient::new(&stack.sandbox, None);
    let held = holder.create(&CreateOptions::default()).await.unwrap();
    let seen = read_all(
        &stack.chat_url(),
        chat("work", true, json!({"janus_path": "agent"})),
    )
    .await;
    let message = &error(&seen).expect("an error event").message;
    assert!(
        message.starts_with("sandbox capacity exhausted: no sandbox is free right now"),
        "{message}"
    );
    assert!(message.contains("429"), "{message}");
    holder.terminate(&held.id).await.unwrap();
}

/// A sandbox agent command that runs janus-agent unless the request names another agent,
/// as a deployment with several agents would.
const DISPATCH: &str = r#"case "$JANUS_AGENT_NAME" in
  stubborn) sleep 60 ;;
  plain) echo "Plain answer from another agent for: $JANUS_AGENT_PROMPT" ;;
  crash) echo "loading the model"; echo "fatal: out of cheese" >&2; exit 3 ;;
  *) exec ./.janus/bin/janus-agent ;;
esac"#;

#[tokio::test]
async fn the_cap_stops_an_agent_that_ignores_its_budget_with_a_clear_message() {
    let llm = FakeLlm::start(scripted_agent).await;
    let settings = Settings {
        agent_timeout: Duration::from_secs(6),
        ..Settings::default()
    };
    let stack = Stack::start(
        llm,
        StackOptions {
            settings,
            agent_command: DISPATCH.to_owned(),
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    // Naming an agent also chooses the agent path, even for a greeting.
    let seen = read_all(
        &stack.chat_url(),
        chat("hello", true, json!({"baseline_agent": "stubborn"})),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        error(&seen).expect("an error event").message,
        "time is up: the agent did not finish within its 6 s limit and was stopped"
    );
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(30),
        "{took:?}"
    );
    let events = janus_events(&seen);
    let id = events[0].1["sandbox_id"].as_str().unwrap().to_owned();
    assert!(events.iter().any(|(n, _)| n == "sandbox_end"), "{events:?}");
    assert_eq!(sandbox_status(&stack.sandbox, &id).await, "terminated");
    assert!(sandbox_processes(&id).is_empty());
}

#[tokio::test]
async fn another_agent_plugs_in_through_the_agent_command() {
    let llm = FakeLlm::start(scripted_agent).await;
    let stack = Stack::start(
        llm,
        StackOptions {
            agent_command: DISPATCH.to_owned(),
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(
        &stack.chat_url(),
        chat("count to three", true, json!({"baseline_agent": "plain"})),
    )
    .await;
    assert!(error(&seen).is_none(), "{seen:?}");
    assert_eq!(
        content(&seen),
        "Plain answer from another agent for: count to three"
    );
    assert!(
        stack.llm.requests.lock().unwrap().is_empty(),
        "janus-agent did not run"
    );
}

#[test]
fn the_cap_ends_ten_seconds_before_the_deadline() {
    use janus_baseline::Services;
    let mut context = janus_competitor_sdk::RequestContext::new();
    context.deadline = Instant::now() + Duration::from_secs(40);
    let request: janus_competitor_sdk::ChatCompletionRequest = serde_json::from_value(
        json!({"model": "baseline", "messages": [{"role": "user", "content": "x"}],
            "metadata": {"janus_path": "agent", "baseline_agent": "aider"}}),
    )
    .unwrap();
    let services = Services::for_request(&Settings::default(), None, &request, &context).unwrap();
    let cap = services.agent_cap(Duration::from_secs(300));
    assert!(
        cap <= Duration::from_secs(30) && cap > Duration::from_secs(28),
        "{cap:?}"
    );
    assert_eq!(
        services.agent_cap(Duration::from_secs(5)),
        Duration::from_secs(5)
    );
    assert_eq!(services.forced_path, Some(janus_baseline::Path::Agent));
    assert_eq!(services.agent_override.as_deref(), Some("aider"));
}

#[test]
fn the_gateway_deadline_header_and_agent_header_decide_with_the_platform() {
    use janus_baseline::Services;
    let mut context = janus_competitor_sdk::RequestContext::new();
    context.deadline = Instant::now() + Duration::from_secs(300);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // X-Janus-Deadline: the gateway ends the request in 40 s, before the SDK would.
    context.gateway_deadline_ms = Some(now_ms + 40_000);
    context.headers =
        janus_competitor_sdk::janus_core::RequestHeaders::new([("X-Baseline-Agent", "codex")]);
    context.platform = Some(janus_competitor_sdk::janus_core::PlatformAccess::new(
        "http://127.0.0.1:9/platform".to_owned(),
        "grant-token".to_owned(),
    ));
    let request: janus_competitor_sdk::ChatCompletionRequest = serde_json::from_value(
        json!({"model": "baseline", "messages": [{"role": "user", "content": "x"}],
            "metadata": {"baseline_agent": "aider"}}),
    )
    .unwrap();
    let settings = Settings {
        inference_url: Some("http://127.0.0.1:9/ignored".into()),
        inference_key: Some("sk-ignored".into()),
        search_path: Some("search".into()),
        ..Settings::default()
    };
    let services = Services::for_request(&settings, None, &request, &context).unwrap();
    let cap = services.agent_cap(Duration::from_secs(300));
    assert!(
        cap <= Duration::from_secs(30) && cap > Duration::from_secs(28),
        "{cap:?}"
    );
    // The header wins over the metadata.
    assert_eq!(services.agent_override.as_deref(), Some("codex"));
    // With a platform, everything is the platform's, keyed by the grant; the settings'
    // upstream and key are not used.
    let inference = services.inference.as_ref().unwrap();
    assert_eq!(inference.url, "http://127.0.0.1:9/platform/inference");
    assert_eq!(inference.key.as_deref(), Some("grant-token"));
    let agent = services.agent_inference.as_ref().unwrap();
    assert_eq!(agent.url, "http://127.0.0.1:9/platform/inference");
    assert_eq!(
        services.agent_search.as_deref(),
        Some("http://127.0.0.1:9/platform/search")
    );
    assert!(services.sandy.is_some());
}

#[tokio::test]
async fn a_large_artifact_outlives_the_sandbox_and_is_served_by_url() {
    let llm = FakeLlm::start(|request| match steps_done(request) {
        0 => tool_call(0, "write_file", json!({"path": "notes.txt", "content": "n".repeat(5000)})),
        1 => tool_call(
            1,
            "shell",
            json!({"command": "mkdir -p artifacts && python3 -c \"open('artifacts/big.bin','wb').write(bytes(range(256))*5000)\""}),
        ),
        _ => tool_call(2, "finish", json!({"answer": "big.bin is ready"})),
    })
    .await;
    let stack = Stack::start(llm, StackOptions::default()).await;
    let seen = read_all(
        &stack.chat_url(),
        chat("make a big file", true, json!({"janus_path": "agent"})),
    )
    .await;
    assert!(error(&seen).is_none(), "{seen:?}");
    // The client sees the start of a long input, not all of it.
    let shown = janus_events(&seen)[1].1["input"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(shown, format!("{}… [5000 bytes in all]", "n".repeat(4000)));
    let artifact: ArtifactDescriptor = janus_events(&seen)
        .iter()
        .find(|(n, _)| n == "artifacts")
        .map(|(_, p)| serde_json::from_value(p["items"][0].clone()).unwrap())
        .expect("an artifact");
    assert_eq!(artifact.size_bytes, 1_280_000);
    // Over 1,000,000 bytes: not a data: URL but a capability link through the gateway
    // (its X-Janus-Artifact-Base), so the client never needs to reach the competitor.
    assert!(
        artifact
            .url
            .starts_with(&format!("{}/v1/artifacts/", stack.gateway)),
        "{}",
        artifact.url
    );
    let id = janus_events(&seen)[0].1["sandbox_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sandbox_status(&stack.sandbox, &id).await, "terminated");
    let bytes = janus_client::fetch_artifact(
        &janus_client::HttpClient::default(),
        &artifact,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    artifact.verify(&bytes).unwrap();
    assert_eq!(bytes.len(), 1_280_000);
}

#[tokio::test]
async fn an_agent_crash_is_an_error_with_its_last_words() {
    let llm = FakeLlm::start(scripted_agent).await;
    let stack = Stack::start(
        llm,
        StackOptions {
            agent_command: DISPATCH.to_owned(),
            ..Default::default()
        },
    )
    .await;
    let seen = read_all(
        &stack.chat_url(),
        chat("work", true, json!({"baseline_agent": "crash"})),
    )
    .await;
    let message = &error(&seen).expect("an error event").message;
    assert!(
        message.starts_with("the agent exited with code 3 without an answer: "),
        "{message}"
    );
    assert!(message.contains("fatal: out of cheese"), "{message}");
    assert_eq!(content(&seen), "");
}

#[tokio::test]
async fn a_plain_request_gets_the_agent_answer_with_its_artifacts_folded() {
    let llm = FakeLlm::start(scripted_agent).await;
    let stack = Stack::start(llm, StackOptions::default()).await;
    let response = janus_client::HttpClient::default()
        .post_json(
            &stack.chat_url(),
            chat(
                "Run a script that saves a CSV and a PNG",
                false,
                Value::Null,
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let body = response.json().unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], ANSWER);
    assert!(message["reasoning_content"]
        .as_str()
        .unwrap()
        .contains("Collecting artifacts…"));
    let names: Vec<&str> = message["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{message}");
    assert!(
        names.contains(&"data.csv") && names.contains(&"chart.png"),
        "{names:?}"
    );
    assert!(body["usage"]["sandbox_seconds"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn images_in_the_input_are_handed_to_the_agent_as_files() {
    let llm = FakeLlm::start(|request| match steps_done(request) {
        0 => tool_call(0, "shell", json!({"command": "wc -c < input/image-1.png"})),
        _ => tool_call(1, "finish", json!({"answer": "It is 8 bytes."})),
    })
    .await;
    let stack = Stack::start(llm, StackOptions::default()).await;
    let body = json!({
        "model": "baseline", "stream": true,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Analyze this image file and report its size"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]
    });
    let seen = read_all(&stack.chat_url(), body.to_string().into()).await;
    assert!(error(&seen).is_none(), "{seen:?}");
    assert!(
        reasoning(&seen).contains("Handing 1 image(s) to the agent…"),
        "{seen:?}"
    );
    let shell_end = janus_events(&seen)
        .into_iter()
        .find(|(n, p)| n == "tool_end" && p["tool"] == "shell")
        .unwrap()
        .1;
    assert_eq!(shell_end["summary"], "exit 0: 8", "{shell_end}");
    let requests = stack.llm.requests.lock().unwrap().clone();
    let task = requests[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        task.ends_with("Images from the conversation:\nimage 1: /workspace/input/image-1.png"),
        "{task}"
    );
    assert_eq!(content(&seen), "It is 8 bytes.");
}
