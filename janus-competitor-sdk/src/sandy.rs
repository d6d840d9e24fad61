//! A typed client for the Sandy sandbox API (contract.md §6), and a helper that turns a
//! sandbox's lifecycle into what a competitor streams (reasoning lines, `sandbox_start` /
//! `sandbox_end` events, artifacts).
//!
//! Parsing is tolerant the way the reference clients are: the id may come as `sandboxId`,
//! `sandbox_id` or `id`, the exit code as `exit_code` or `exitCode`, a file read as raw bytes
//! or as `{content, encoding: "base64"}`. Retries follow the reference: `agent/run` twice on
//! timeouts (after 1 s, then 2 s), plus `create` twice on 502/503.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_core::sse::SseItem;
use janus_core::{ArtifactDescriptor, EventWriter, JanusEvent, WriterClosed};
use serde_json::{json, Value};

/// Largest response body read (file reads included).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Reference retry delays.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// A failed Sandy call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandyError {
    /// The base URL is unusable.
    #[error("bad Sandy URL '{0}'")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("Sandy {what} failed: {reason}")]
    Transport {
        /// The call.
        what: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("Sandy {0} timed out")]
    Timeout(String),
    /// Sandy answered with an error status.
    #[error("Sandy {what} answered {status}: {message}")]
    Status {
        /// The call.
        what: String,
        /// Its status.
        status: StatusCode,
        /// The error message Sandy gave.
        message: String,
    },
    /// The answer is not what the API says.
    #[error("Sandy {what} sent an unexpected answer: {reason}")]
    Protocol {
        /// The call.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

impl From<SandyError> for crate::CompetitorError {
    /// A failed Sandy call fails the handler (an error event, or a 500 envelope), so `?`
    /// works on Sandy calls inside [`Competitor::handle`](crate::Competitor::handle).
    fn from(error: SandyError) -> Self {
        crate::CompetitorError::Internal(error.to_string())
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Time to live in seconds (reference default 600).
    pub ttl_seconds: u64,
    /// Smaller is more important: 1 for interactive work, 3 for preemptable benchmark runs
    /// (janus-sandbox accepts 0-100).
    pub priority: u8,
    /// May be stopped to make room.
    pub preemptable: bool,
    /// Ports to expose (the artifact server's 5173 by default).
    pub expose_ports: Vec<u16>,
    /// Environment for every command.
    pub env: Vec<(String, String)>,
    /// Memory in MiB, if not the service default.
    pub memory_mb: Option<u64>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            ttl_seconds: 600,
            priority: 1,
            preemptable: false,
            expose_ports: vec![janus_core::contract::DEFAULT_ARTIFACT_PORT],
            env: Vec::new(),
            memory_mb: None,
        }
    }
}

/// A created sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Its id.
    pub id: String,
    /// Its public URL (`{url}/artifacts/<name>` serves artifacts).
    pub url: Option<String>,
    /// Its status.
    pub status: Option<String>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub exit_code: i64,
    /// Killed by its timeout (when the service says).
    pub timed_out: bool,
}

/// One event of an agent run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// `status{message}`.
    Status(String),
    /// `output{text}`.
    Output(String),
    /// `agent-output{data}`.
    AgentOutput(Value),
    /// `files-update{changes}`.
    FilesUpdate(Value),
    /// `heartbeat{elapsed}`.
    Heartbeat(f64),
    /// `error{error}`.
    Error(String),
    /// `complete{success, exitCode, duration}`.
    Complete {
        /// Whether the agent succeeded.
        success: bool,
        /// Its exit code.
        exit_code: i64,
        /// Seconds it ran.
        duration: f64,
    },
    /// Any other event, kept as JSON.
    Other(Value),
}

impl AgentEvent {
    fn from_json(value: Value) -> AgentEvent {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        match value.get("type").and_then(Value::as_str).unwrap_or("") {
            "status" => AgentEvent::Status(text("message")),
            "output" => AgentEvent::Output(text("text")),
            "agent-output" => {
                AgentEvent::AgentOutput(value.get("data").cloned().unwrap_or(Value::Null))
            }
            "files-update" => {
                AgentEvent::FilesUpdate(value.get("changes").cloned().unwrap_or(Value::Null))
            }
            "heartbeat" => {
                AgentEvent::Heartbeat(value.get("elapsed").and_then(Value::as_f64).unwrap_or(0.0))
            }
            "error" => AgentEvent::Error(text("error")),
            "complete" => AgentEvent::Complete {
                success: value
                    .get("success")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                exit_code: value
                    .get("exitCode")
                    .or_else(|| value.get("exit_code"))
                    .and_then(Value::as_i64)
                    .unwrap_or(-1),
                duration: value.get("duration").and_then(Value::as_f64).unwrap_or(0.0),
            },
            _ => AgentEvent::Other(value),
        }
    }
}

/// What an agent run is asked.
#[derive(Debug, Clone, Default)]
pub struct AgentRequest {
    /// Agent name.
    pub agent: String,
    /// Model.
    pub model: String,
    /// Prompt (sent raw).
    pub prompt: String,
    /// Longest run in seconds (reference default 600).
    pub max_duration_seconds: u64,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Optional system prompt.
    pub system_prompt: Option<String>,
    /// Optional API base URL for the agent's model calls.
    pub api_base_url: Option<String>,
}

/// The events of a running agent.
#[derive(Debug)]
pub struct AgentEvents {
    reader: janus_http::SseReader<Incoming>,
    idle: Duration,
}

impl AgentEvents {
    /// The next event; `None` once the stream ends.
    pub async fn next(&mut self) -> Result<Option<AgentEvent>, SandyError> {
        let what = || "agent/run stream".to_owned();
        loop {
            let item = match self.reader.next(self.idle).await {
                Ok(Some(timed)) => timed.item,
                Ok(None) => return Ok(None),
                Err(janus_http::SseReadError::Idle(_)) => return Err(SandyError::Timeout(what())),
                Err(janus_http::SseReadError::Framing(reason)) => {
                    return Err(SandyError::Protocol {
                        what: what(),
                        reason,
                    })
                }
                Err(e) => {
                    return Err(SandyError::Transport {
                        what: what(),
                        reason: e.to_string(),
                    })
                }
            };
            if let SseItem::Event(event) = item {
                return Ok(Some(match serde_json::from_str::<Value>(&event.data) {
                    Ok(value) => AgentEvent::from_json(value),
                    Err(_) => AgentEvent::Output(event.data),
                }));
            }
        }
    }
}

/// The Sandy client: one pooled hyper client. `Debug` never prints the key (which is the
/// request's platform grant when the client comes from [`crate::Platform::sandy`]).
#[derive(Clone)]
pub struct SandyClient {
    base: String,
    api_key: Option<String>,
    request_id: Option<String>,
    traceparent: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for SandyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandyClient")
            .field("base", &self.base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_id", &self.request_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn first_str<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
}

impl SandyClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8300`).
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> SandyClient {
        SandyClient::on(
            base_url,
            api_key,
            janus_http::build_client(Duration::from_secs(10)),
        )
    }

    /// A client on an existing connection pool (the platform handle's), so a request's
    /// platform and Sandy calls share connections instead of each building a pool.
    pub(crate) fn on(
        base_url: impl Into<String>,
        api_key: Option<String>,
        http: Client<HttpConnector, Full<Bytes>>,
    ) -> SandyClient {
        SandyClient {
            base: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            request_id: None,
            traceparent: None,
            http,
            // The reference's HTTP timeout.
            timeout: Duration::from_secs(660),
        }
    }

    /// From `SANDY_BASE_URL` and `SANDY_API_KEY` (optional; sent as a bearer key).
    ///
    /// Returns `None` when `SANDY_BASE_URL` is unset or empty: the competitor was started
    /// without a sandbox service, and should answer without one (or fail the request with
    /// a clear message). Nothing is contacted here; a wrong URL shows on the first call.
    pub fn from_env() -> Option<SandyClient> {
        let base = std::env::var("SANDY_BASE_URL")
            .ok()
            .filter(|b| !b.is_empty())?;
        Some(SandyClient::new(base, std::env::var("SANDY_API_KEY").ok()))
    }

    /// The same client, sending this `X-Request-Id` (use the handler's).
    pub fn with_request_id(&self, request_id: impl Into<String>) -> SandyClient {
        let mut client = self.clone();
        client.request_id = Some(request_id.into());
        client
    }

    /// The same client, sending this `traceparent` on every call (use
    /// [`RequestContext::traceparent`](crate::RequestContext): this hop's span becomes the
    /// parent of the sandbox operations, so a trace shows them under the request).
    pub fn with_traceparent(&self, traceparent: Option<String>) -> SandyClient {
        let mut client = self.clone();
        client.traceparent = traceparent;
        client
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> SandyClient {
        let mut client = self.clone();
        client.timeout = timeout;
        client
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Request<Full<Bytes>>, SandyError> {
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder().method(method).uri(&url);
        if let Some(key) = &self.api_key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(id) = &self.request_id {
            builder = builder.header("x-request-id", id);
        }
        if let Some(traceparent) = &self.traceparent {
            builder = builder.header(janus_core::contract::TRACEPARENT_HEADER, traceparent);
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(bytes))
            .map_err(|_| SandyError::BadUrl(url))
    }

    async fn send(
        &self,
        what: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, SandyError> {
        match tokio::time::timeout(self.timeout, self.http.request(request)).await {
            Err(_) => Err(SandyError::Timeout(what.to_owned())),
            Ok(Err(e)) => Err(SandyError::Transport {
                what: what.to_owned(),
                reason: janus_core::error_chain(&e),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), SandyError> {
        let response = self.send(what, self.request(method, path, body)?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await
        {
            Err(_) => return Err(SandyError::Timeout(what.to_owned())),
            Ok(Err(e)) => {
                return Err(SandyError::Transport {
                    what: what.to_owned(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        Ok((status, headers, bytes))
    }

    fn status_error(what: &str, status: StatusCode, body: &[u8]) -> SandyError {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(200)])
                    .trim()
                    .to_owned()
            });
        SandyError::Status {
            what: what.to_owned(),
            status,
            message,
        }
    }

    async fn json(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SandyError> {
        let (status, _, bytes) = self.call(what, method, path, body).await?;
        if !status.is_success() {
            return Err(Self::status_error(what, status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&bytes).map_err(|e| SandyError::Protocol {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Creates a sandbox; retried twice on 502/503 (cold capacity).
    pub async fn create(&self, options: &CreateOptions) -> Result<SandboxInfo, SandyError> {
        let mut body = json!({
            "priority": options.priority,
            "preemptable": options.preemptable,
            "ttl_seconds": options.ttl_seconds,
            "expose_ports": options.expose_ports,
            "env": options.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
        });
        if let (Some(memory), Value::Object(map)) = (options.memory_mb, &mut body) {
            map.insert("resources".into(), json!({"memory_mb": memory}));
        }
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self
                .json("create", Method::POST, "/api/sandboxes", Some(&body))
                .await
            {
                Err(SandyError::Status { status, .. })
                    if matches!(
                        status,
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                    ) =>
                {
                    match delays.next() {
                        Some(delay) => tokio::time::sleep(*delay).await,
                        None => {
                            return Err(SandyError::Status {
                                what: "create".into(),
                                status,
                                message: "unavailable after retries".into(),
                            })
                        }
                    }
                }
                Err(e) => return Err(e),
                Ok(value) => {
                    let id =
                        first_str(&value, &["sandboxId", "sandbox_id", "id"]).ok_or_else(|| {
                            SandyError::Protocol {
                                what: "create".into(),
                                reason: "no sandboxId, sandbox_id or id in the answer".into(),
                            }
                        })?;
                    return Ok(SandboxInfo {
                        id: id.to_owned(),
                        url: first_str(&value, &["url"]).map(str::to_owned),
                        status: first_str(&value, &["status"]).map(str::to_owned),
                    });
                }
            }
        }
    }

    /// A sandbox's status.
    pub async fn get(&self, id: &str) -> Result<Value, SandyError> {
        self.json("get", Method::GET, &format!("/api/sandboxes/{id}"), None)
            .await
    }

    /// Runs a command.
    pub async fn exec(
        &self,
        id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, SandyError> {
        let body = json!({"command": command, "timeoutMs": timeout.as_millis() as u64});
        let value = self
            .json(
                "exec",
                Method::POST,
                &format!("/api/sandboxes/{id}/exec"),
                Some(&body),
            )
            .await?;
        Ok(ExecOutput {
            stdout: first_str(&value, &["stdout"]).unwrap_or("").to_owned(),
            stderr: first_str(&value, &["stderr"]).unwrap_or("").to_owned(),
            exit_code: value
                .get("exit_code")
                .or_else(|| value.get("exitCode"))
                .and_then(Value::as_i64)
                .ok_or_else(|| SandyError::Protocol {
                    what: "exec".into(),
                    reason: "no exit_code or exitCode".into(),
                })?,
            timed_out: value
                .get("timed_out")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Writes a file (sent as base64, so any bytes work).
    pub async fn write_file(&self, id: &str, path: &str, bytes: &[u8]) -> Result<(), SandyError> {
        let body = json!({
            "path": path,
            "content": base64::engine::general_purpose::STANDARD.encode(bytes),
            "encoding": "base64",
        });
        self.json(
            "files/write",
            Method::POST,
            &format!("/api/sandboxes/{id}/files/write"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Reads a file: raw bytes, or `{content, encoding}` JSON.
    pub async fn read_file(&self, id: &str, path: &str) -> Result<Vec<u8>, SandyError> {
        let encoded: String = path
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let what = "files/read";
        let (status, headers, bytes) = self
            .call(
                what,
                Method::GET,
                &format!("/api/sandboxes/{id}/files/read?path={encoded}"),
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(Self::status_error(what, status, &bytes));
        }
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                if let Some(content) = value.get("content").and_then(Value::as_str) {
                    return match value.get("encoding").and_then(Value::as_str) {
                        Some("base64") => base64::engine::general_purpose::STANDARD
                            .decode(content)
                            .map_err(|e| SandyError::Protocol {
                                what: what.into(),
                                reason: e.to_string(),
                            }),
                        _ => Ok(content.as_bytes().to_vec()),
                    };
                }
            }
        }
        Ok(bytes.to_vec())
    }

    /// Lists a directory.
    pub async fn list_files(&self, id: &str, path: &str) -> Result<Value, SandyError> {
        self.json(
            "files/list",
            Method::GET,
            &format!("/api/sandboxes/{id}/files/list?path={path}"),
            None,
        )
        .await
    }

    /// Terminates; 200, 204 and 404 all mean gone.
    pub async fn terminate(&self, id: &str) -> Result<(), SandyError> {
        let what = "terminate";
        let (status, _, bytes) = self
            .call(
                what,
                Method::POST,
                &format!("/api/sandboxes/{id}/terminate"),
                Some(&json!({})),
            )
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::status_error(what, status, &bytes))
        }
    }

    /// Extends the TTL.
    pub async fn refresh(&self, id: &str) -> Result<(), SandyError> {
        self.json(
            "refresh",
            Method::POST,
            &format!("/api/sandboxes/{id}/refresh"),
            Some(&json!({})),
        )
        .await
        .map(|_| ())
    }

    /// Starts an agent run; retried twice on timeouts (1 s, then 2 s), as the reference does.
    pub async fn agent_run(
        &self,
        id: &str,
        request: &AgentRequest,
    ) -> Result<AgentEvents, SandyError> {
        let mut body = json!({
            "agent": request.agent,
            "model": request.model,
            "prompt": request.prompt,
            "maxDuration": if request.max_duration_seconds == 0 { 600 } else { request.max_duration_seconds },
            "rawPrompt": true,
            "env": request.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
        });
        if let Value::Object(map) = &mut body {
            if let Some(system) = &request.system_prompt {
                map.insert("systemPrompt".into(), Value::String(system.clone()));
            }
            if let Some(base) = &request.api_base_url {
                map.insert("apiBaseUrl".into(), Value::String(base.clone()));
            }
        }
        let what = "agent/run";
        let mut delays = RETRY_DELAYS.iter();
        loop {
            let request = self.request(
                Method::POST,
                &format!("/api/sandboxes/{id}/agent/run"),
                Some(&body),
            )?;
            match self.send(what, request).await {
                Err(SandyError::Timeout(_)) if delays.len() > 0 => {
                    if let Some(delay) = delays.next() {
                        tokio::time::sleep(*delay).await;
                    }
                }
                Err(e) => return Err(e),
                Ok(response) if !response.status().is_success() => {
                    let status = response.status();
                    let bytes = Limited::new(response.into_body(), 64 * 1024)
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    return Err(Self::status_error(what, status, &bytes));
                }
                Ok(response) => {
                    return Ok(AgentEvents {
                        reader: janus_http::SseReader::new(
                            response.into_body(),
                            std::time::Instant::now(),
                        ),
                        idle: self.timeout,
                    })
                }
            }
        }
    }

    /// Stops a running agent.
    pub async fn agent_cancel(&self, id: &str) -> Result<(), SandyError> {
        self.json(
            "agent/cancel",
            Method::POST,
            &format!("/api/sandboxes/{id}/agent/cancel"),
            Some(&json!({})),
        )
        .await
        .map(|_| ())
    }
}

/// A sandbox seen from a competitor's handler: its lifecycle becomes reasoning lines and
/// `sandbox_start` / `sandbox_end` events, and its `/workspace/artifacts` becomes artifact
/// descriptors.
///
/// End it with [`finish`](SandboxSession::finish). A session dropped without `finish` —
/// the client went away and the SDK cancelled the handler, the handler returned early with
/// `?`, or it panicked — terminates its sandbox in the background, so no sandbox outlives
/// the request that started it.
#[derive(Debug)]
pub struct SandboxSession {
    client: SandyClient,
    /// The sandbox.
    pub info: SandboxInfo,
    /// The request's artifact store, taken on the handler's task at `start`, so large
    /// artifacts can be copied into it from any task.
    artifacts: Option<crate::Artifacts>,
    finished: bool,
}

impl SandboxSession {
    /// Creates a sandbox and tells the client.
    pub async fn start(
        client: SandyClient,
        options: &CreateOptions,
        out: &mut dyn EventWriter,
    ) -> Result<SandboxSession, crate::CompetitorError> {
        out.reasoning("Starting a sandbox…\n").await?;
        let info = client.create(options).await.map_err(|e| {
            crate::CompetitorError::Internal(format!("cannot start a sandbox: {e}"))
        })?;
        // From here on, dropping the session terminates the sandbox.
        let session = SandboxSession {
            client,
            info,
            artifacts: crate::Artifacts::current(),
            finished: false,
        };
        out.janus(JanusEvent::new(
            JanusEvent::SANDBOX_START,
            json!({"sandbox_id": session.info.id}),
        ))
        .await?;
        out.reasoning(&format!("Sandbox {} is ready.\n", session.info.id))
            .await?;
        Ok(session)
    }

    /// Creates a sandbox without telling the client, for a competitor that streams its own
    /// lifecycle lines (and its own `sandbox_start` event). Dropping the session terminates
    /// the sandbox exactly as with [`start`](SandboxSession::start).
    pub async fn open(
        client: SandyClient,
        options: &CreateOptions,
    ) -> Result<SandboxSession, SandyError> {
        let info = client.create(options).await?;
        Ok(SandboxSession {
            client,
            info,
            artifacts: crate::Artifacts::current(),
            finished: false,
        })
    }

    /// The client, for the calls without a shortcut here.
    pub fn client(&self) -> &SandyClient {
        &self.client
    }

    /// Runs `command` (with `/bin/sh -c`) in the sandbox; `timeout` ends it.
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, SandyError> {
        self.client.exec(&self.info.id, command, timeout).await
    }

    /// Writes `bytes` to `path` (relative to `/workspace`, or absolute under it).
    pub async fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), SandyError> {
        self.client.write_file(&self.info.id, path, bytes).await
    }

    /// Reads the file at `path`.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, SandyError> {
        self.client.read_file(&self.info.id, path).await
    }

    /// Descriptors for every file in `/workspace/artifacts`, with sha256 and size from the
    /// bytes read: a `data:` URL up to 1,000,000 bytes; larger files are copied into the
    /// competitor's artifact store (linked under the request's artifact prefix, the
    /// gateway's `X-Janus-Artifact-Base` when there is one), so they stay downloadable for
    /// their TTL after [`finish`](SandboxSession::finish) terminates the sandbox. Only
    /// outside a handler (no store, e.g. a unit test) does a large artifact point at the
    /// sandbox's own URL, which stops working with the sandbox.
    pub async fn collect_artifacts(&self) -> Result<Vec<ArtifactDescriptor>, SandyError> {
        let listing = match self
            .client
            .list_files(&self.info.id, "/workspace/artifacts")
            .await
        {
            Ok(listing) => listing,
            Err(SandyError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut artifacts = Vec::new();
        let entries = listing
            .get("entries")
            .or_else(|| listing.get("files"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let store = self.artifacts.clone().or_else(crate::Artifacts::current);
        for entry in entries {
            if entry
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "file")
            {
                continue;
            }
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let bytes = self
                .client
                .read_file(&self.info.id, &format!("/workspace/artifacts/{name}"))
                .await?;
            let mime = janus_core::mime_type_for_name(name);
            let protocol = |reason: String| SandyError::Protocol {
                what: "artifact".into(),
                reason,
            };
            let descriptor = if bytes.len() as u64 <= janus_core::contract::DATA_URL_MAX_BYTES {
                ArtifactDescriptor::inline(&bytes, name, mime)
                    .map_err(|e| protocol(e.to_string()))?
            } else if let Some(store) = &store {
                store
                    .publish(bytes, name, mime)
                    .await
                    .map_err(|e| protocol(e.to_string()))?
            } else {
                let base =
                    self.info.url.clone().unwrap_or_else(|| {
                        format!("{}/sandboxes/{}", self.client.base, self.info.id)
                    });
                ArtifactDescriptor::for_bytes(
                    &bytes,
                    name,
                    mime,
                    format!("{base}/artifacts/{name}"),
                )
            };
            artifacts.push(descriptor);
        }
        Ok(artifacts)
    }

    /// Terminates the sandbox and tells the client.
    pub async fn finish(mut self, out: &mut dyn EventWriter) -> Result<(), WriterClosed> {
        let outcome = self.client.terminate(&self.info.id).await;
        // Terminated, or at least tried: Drop need not try again.
        self.finished = true;
        out.janus(JanusEvent::new(
            JanusEvent::SANDBOX_END,
            json!({"sandbox_id": self.info.id, "ok": outcome.is_ok()}),
        ))
        .await
    }
}

impl Drop for SandboxSession {
    /// Dropped without `finish` (cancelled, returned early, panicked): terminate in the
    /// background. Drop cannot await, and a cancelled handler's task is gone, so the call
    /// runs on a task of its own.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(sandbox = %self.info.id, "session dropped outside a runtime; its sandbox lives until its TTL");
            return;
        };
        let client = self.client.clone();
        let id = std::mem::take(&mut self.info.id);
        runtime.spawn(async move {
            if let Err(e) = client.terminate(&id).await {
                tracing::warn!(sandbox = %id, error = %e, "could not terminate an abandoned sandbox");
            } else {
                tracing::info!(sandbox = %id, "terminated the sandbox of an abandoned session");
            }
        });
    }
}
