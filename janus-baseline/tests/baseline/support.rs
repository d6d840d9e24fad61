//! Test fixtures: `FakeLlm`, a scripted stand-in for platform inference (the one external
//! thing; a tiny hyper server on 127.0.0.1), the real sandbox service, the baseline served
//! by the SDK, and a real gateway in front — all in this process on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use janus_baseline::{Baseline, Settings};
use janus_competitor_sdk::janus_core::sse::SseItem;
use janus_competitor_sdk::janus_core::{ChatCompletionChunk, ErrorBody, StreamEvent};
use janus_competitor_sdk::{SandyClient, ServeConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// What the fake answers to one request.
pub enum FakeReply {
    /// A plain JSON answer with this status.
    Json(u16, Value),
    /// An SSE stream of these `data:` payloads, then `[DONE]`. With `gated`, every payload
    /// after the first waits for a permit of [`FakeLlm::gate`], so a test can prove that
    /// each token reached the client before the next was even sent.
    Sse { events: Vec<Value>, gated: bool },
}

type Script = Arc<dyn Fn(&Value) -> FakeReply + Send + Sync>;

/// A scripted, fake OpenAI-compatible endpoint: the test double for platform inference.
pub struct FakeLlm {
    /// Base URL, the part before `/chat/completions`.
    pub url: String,
    pub addr: SocketAddr,
    /// Every request body it received.
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// Authorization headers it received.
    pub auth: Arc<Mutex<Vec<String>>>,
    pub gate: Arc<Semaphore>,
}

async fn fake_reply(
    script: Script,
    requests: Arc<Mutex<Vec<Value>>>,
    auth: Arc<Mutex<Vec<String>>>,
    gate: Arc<Semaphore>,
    request: http::Request<Incoming>,
) -> Result<http::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
        auth.lock()
            .unwrap()
            .push(value.to_str().unwrap_or("").to_owned());
    }
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    requests.lock().unwrap().push(body.clone());
    let response = match script(&body) {
        FakeReply::Json(status, value) => http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(value.to_string())).boxed())
            .unwrap(),
        FakeReply::Sse { events, gated } => {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                for (index, event) in events.into_iter().enumerate() {
                    if gated && index > 0 {
                        gate.acquire().await.unwrap().forget();
                    }
                    if tx
                        .send(Bytes::from(format!("data: {event}\n\n")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
    };
    Ok(response)
}

impl FakeLlm {
    pub async fn start(script: impl Fn(&Value) -> FakeReply + Send + Sync + 'static) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Script = Arc::new(script);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let (r, a, g) = (requests.clone(), auth.clone(), gate.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, r, a, g) = (script.clone(), r.clone(), a.clone(), g.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        fake_reply(script.clone(), r.clone(), a.clone(), g.clone(), request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeLlm {
            url: format!("http://{addr}/v1"),
            addr,
            requests,
            auth,
            gate,
        }
    }
}

/// A chat completion whose message calls one tool.
pub fn tool_call(step: usize, name: &str, arguments: Value) -> FakeReply {
    FakeReply::Json(
        200,
        json!({
            "id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": format!("Step {step}: calling {name}."),
                "tool_calls": [{"id": format!("call_{step}"), "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()}}]
            }}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        }),
    )
}

/// Tool results so far in an agent's request: its step number.
pub fn steps_done(request: &Value) -> usize {
    request["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "tool").count())
        .unwrap_or(0)
}

/// True for the agent's requests (they offer tools), false for the fast path's.
pub fn is_agent(request: &Value) -> bool {
    request.get("tools").is_some_and(|t| {
        t.as_array()
            .is_some_and(|a| a.iter().any(|t| t["function"]["name"] == "finish"))
    })
}

/// Streaming chunks carrying these content pieces.
pub fn content_stream(pieces: &[&str]) -> Vec<Value> {
    let mut events: Vec<Value> = pieces
        .iter()
        .map(|p| {
            json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
        })
        .collect();
    events.push(
        json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    );
    events.push(json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": pieces.len(), "total_tokens": 7 + pieces.len()}}));
    events
}

/// Newest modification time of the files under `dir`.
fn newest(dir: &std::path::Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            self::newest(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(newest)
        };
        newest = newest.max(time);
    }
    newest
}

/// The `janus-agent` and `janus-sandbox` binaries. Cargo builds only this package's own
/// binaries for its tests, and the sandbox needs both: the agent is copied into each
/// sandbox, the sandbox binary is its holder and relay helper. A workspace test run builds
/// them already (their own tests need them); otherwise, or when their sources are newer,
/// they are built here once per test process.
pub fn binaries() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test binary>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let binaries = (
            profile_dir.join("janus-agent"),
            profile_dir.join("janus-sandbox"),
        );
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        let sources = ["janus-agent", "janus-sandbox", "janus-core", "janus-http"]
            .iter()
            .map(|krate| newest(&workspace.join(krate).join("src")))
            .max()
            .unwrap();
        let fresh = |path: &PathBuf| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|built| built >= sources)
        };
        if fresh(&binaries.0) && fresh(&binaries.1) {
            return binaries;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = std::process::Command::new(cargo);
        command
            .args([
                "build",
                "-p",
                "janus-agent",
                "-p",
                "janus-sandbox",
                "--bins",
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        let status = command
            .status()
            .expect("cargo build of the helper binaries");
        assert!(
            status.success(),
            "building janus-agent and janus-sandbox failed"
        );
        binaries
    })
}

/// Full isolation when this process may use it (root on Linux, as in CI), else none;
/// `JANUS_BASELINE_TESTS_ISOLATION=none` asks for none, to try the non-root path as root.
pub fn isolation() -> janus_sandbox::IsolationMode {
    let forced_none = std::env::var("JANUS_BASELINE_TESTS_ISOLATION").is_ok_and(|v| v == "none");
    if !forced_none && janus_sandbox::full_isolation_available().is_ok() {
        janus_sandbox::IsolationMode::Full
    } else {
        janus_sandbox::IsolationMode::None
    }
}

/// The whole chain; everything stops when it is dropped.
pub struct Stack {
    pub gateway: String,
    pub baseline: String,
    pub sandbox: String,
    pub llm: FakeLlm,
    stop: watch::Sender<bool>,
    root: PathBuf,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub struct StackOptions {
    pub settings: Settings,
    pub sandbox: bool,
    pub max_sandboxes: usize,
    /// The sandbox service's agent command.
    pub agent_command: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            settings: Settings::default(),
            sandbox: true,
            max_sandboxes: 4,
            agent_command: janus_baseline::SANDBOX_AGENT_COMMAND.to_owned(),
        }
    }
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

impl Stack {
    pub async fn start(llm: FakeLlm, mut options: StackOptions) -> Stack {
        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let root = std::env::temp_dir().join(format!(
            "janus-baseline-test-{}",
            janus_competitor_sdk::janus_core::random_hex(6)
        ));
        let (sandbox_listener, sandbox_url) = bind().await;
        let sandy = if options.sandbox {
            let (agent, sandbox_binary) = binaries();
            let mut config = janus_sandbox::Config::new(root.clone(), isolation());
            config.public_url = sandbox_url.clone();
            config.helper_binary = sandbox_binary.clone();
            config.agent_command = options.agent_command.clone();
            config.max_sandboxes = options.max_sandboxes;
            // The agent's binary travels through the files API as base64.
            config.max_body_bytes = 64 * 1024 * 1024;
            // Inside an isolated sandbox the fake LLM is reachable only through this.
            config.forwards = vec![("inference".to_owned(), llm.addr.to_string())];
            tokio::spawn(janus_sandbox::run(
                sandbox_listener,
                config,
                stopped(stop_rx.clone()),
            ));
            options.settings.agent_binary = Some(agent.clone());
            Some(SandyClient::new(&sandbox_url, None))
        } else {
            drop(sandbox_listener);
            None
        };
        if options.settings.inference_url.is_none() {
            options.settings.inference_url = Some(llm.url.clone());
        }
        let (baseline_listener, baseline_url) = bind().await;
        let mut serve = ServeConfig::default();
        serve.public_base_url = Some(baseline_url.clone());
        tokio::spawn(janus_competitor_sdk::serve(
            baseline_listener,
            Arc::new(Baseline::new(options.settings, sandy)),
            serve,
            stopped(stop_rx.clone()),
        ));
        let (gateway_listener, gateway_url) = bind().await;
        let config =
            janus_gateway::Config::with_competitors(vec![janus_gateway::CompetitorConfig {
                id: janus_baseline::ID.to_owned(),
                url: baseline_url.clone(),
                timeout: None,
                max_concurrent_requests: None,
                description: None,
            }]);
        tokio::spawn(janus_gateway::run(
            gateway_listener,
            config,
            stopped(stop_rx),
        ));
        Stack {
            gateway: gateway_url,
            baseline: baseline_url,
            sandbox: sandbox_url,
            llm,
            stop,
            root,
        }
    }

    pub fn chat_url(&self) -> String {
        format!("{}/v1/chat/completions", self.gateway)
    }
}

/// A chat request body.
pub fn chat(prompt: &str, stream: bool, metadata: Value) -> Bytes {
    let mut body = json!({
        "model": "baseline",
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if !metadata.is_null() {
        body["metadata"] = metadata;
    }
    Bytes::from(body.to_string())
}

/// What a client saw in a stream, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Reasoning(String),
    Content(String),
    Janus(String, Value),
    Usage(Value),
    Error(ErrorBody),
    Done,
}

/// Reads a whole stream through the gateway (idle bound 20 s).
pub async fn read_all(url: &str, body: Bytes) -> Vec<Seen> {
    let client = janus_client::HttpClient::default();
    let mut stream = client
        .post_stream(url, body, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    let mut seen = Vec::new();
    while let Some(item) = stream.next(Duration::from_secs(20)).await.unwrap() {
        seen.extend(interpret(item.item));
    }
    seen
}

pub fn interpret(item: SseItem) -> Vec<Seen> {
    let mut seen = Vec::new();
    match StreamEvent::from_sse(item).unwrap() {
        StreamEvent::Comment(_) => {}
        StreamEvent::Done => seen.push(Seen::Done),
        StreamEvent::Error(error) => seen.push(Seen::Error(error)),
        StreamEvent::Chunk(chunk) => seen.extend(chunk_parts(&chunk)),
    }
    seen
}

fn chunk_parts(chunk: &ChatCompletionChunk) -> Vec<Seen> {
    let mut seen = Vec::new();
    if let Some(usage) = &chunk.usage {
        seen.push(Seen::Usage(serde_json::to_value(usage).unwrap()));
    }
    for choice in &chunk.choices {
        if let Some(text) = &choice.delta.reasoning_content {
            seen.push(Seen::Reasoning(text.clone()));
        }
        if let Some(text) = &choice.delta.content {
            seen.push(Seen::Content(text.clone()));
        }
        if let Some(event) = &choice.delta.janus {
            seen.push(Seen::Janus(event.event.clone(), event.payload.clone()));
        }
    }
    seen
}

pub fn reasoning(seen: &[Seen]) -> String {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Reasoning(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

pub fn content(seen: &[Seen]) -> String {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

pub fn error(seen: &[Seen]) -> Option<&ErrorBody> {
    seen.iter().find_map(|s| match s {
        Seen::Error(e) => Some(e),
        _ => None,
    })
}
