//! The HTTP API (contract.md §6), wire-compatible with the reference Sandy client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::SandboxError;
use crate::isolation::Limits;
use crate::sandbox::{CreateRequest, Manager};

type Body = janus_http::ResponseBody;

/// Serves the API on `listener` until `shutdown` resolves; then terminates every sandbox.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if config.isolation == crate::config::IsolationMode::Full {
        crate::isolation::full_isolation_available().map_err(std::io::Error::other)?;
    }
    tokio::fs::create_dir_all(&config.root).await?;
    crate::sandbox::recover(&config).await;
    let serve_config = config.serve.clone();
    let manager = Arc::new(Manager::new(config));
    let reaper = {
        let manager = manager.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                manager.reap_expired().await;
            }
        })
    };
    tracing::info!(listen = %listener.local_addr()?, "sandbox service listening");
    let handler = {
        let manager = manager.clone();
        move |request: Request<Incoming>| {
            let manager = manager.clone();
            async move { handle(manager, request).await }
        }
    };
    let served = janus_http::serve(
        listener,
        handler,
        serve_config,
        janus_http::Drain::new(),
        shutdown,
    )
    .await;
    reaper.abort();
    manager.shutdown().await;
    served
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    janus_http::response::json_response(status, value.to_string())
}

fn error_response(error: &SandboxError) -> Response<Body> {
    let mut response = janus_http::response::error_response(error.status(), &error.envelope());
    if matches!(error, SandboxError::UpstreamClosed(_)) {
        response.headers_mut().insert(
            janus_core::contract::UPSTREAM_REACHED_HEADER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

async fn handle(manager: Arc<Manager>, request: Request<Incoming>) -> Response<Body> {
    let started = std::time::Instant::now();
    let operation = operation(request.method(), request.uri().path());
    let sandbox = sandbox_of(request.uri().path()).map(str::to_owned);
    let response = match route(&manager, request).await {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(error = %error, "sandbox request failed");
            }
            error_response(&error)
        }
    };
    // One line per API call, inside the request's span (trace ids included): what
    // `janus trace` shows as the sandbox hop. Streaming answers (exec, agent runs) are timed
    // to their response head; their end is the caller's.
    tracing::info!(
        operation,
        sandbox = sandbox.as_deref(),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "sandbox request finished"
    );
    response
}

/// The Sandy operation a request is, by method and path (for logs).
fn operation(method: &http::Method, path: &str) -> &'static str {
    if path == "/health" {
        return "health";
    }
    if path.starts_with("/sandboxes/") {
        return "artifact";
    }
    let Some(rest) = path.strip_prefix("/api/sandboxes") else {
        return "other";
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", []) => "create",
        ("GET", []) => "list",
        ("GET", [_]) => "status",
        ("DELETE", [_]) => "terminate",
        (_, [_, "agent", "cancel"]) => "agent_cancel",
        (_, [_, verb, ..]) => match *verb {
            "terminate" => "terminate",
            "refresh" => "refresh",
            "exec" => "exec",
            "files" => "files",
            "agent" => "agent_run",
            "proxy" => "proxy",
            "logs" => "logs",
            "service" => "service_restart",
            _ => "other",
        },
        _ => "other",
    }
}

/// The sandbox id in a `/api/sandboxes/<id>/…` path.
fn sandbox_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/sandboxes/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty())
}

fn authorized(config: &Config, request: &Request<Incoming>) -> bool {
    config
        .api_keys
        .as_ref()
        .is_none_or(|keys| keys.check(request.headers()).is_ok())
}

async fn body_json(
    request: Request<Incoming>,
    limit: usize,
    body_timeout: Duration,
) -> Result<Value, SandboxError> {
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + body_timeout;
    let bytes = janus_http::read_body(&parts.headers, body, limit, deadline)
        .await
        .map_err(|e| match e {
            janus_http::BodyError::TooLarge { .. } => SandboxError::TooLarge(limit),
            other => SandboxError::Body(other),
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| SandboxError::BadRequest {
        param: "body".into(),
        message: format!("the body is not valid JSON: {e}"),
    })?;
    if !value.is_object() {
        return Err(SandboxError::BadRequest {
            param: "body".into(),
            message: "the body must be a JSON object".into(),
        });
    }
    Ok(value)
}

fn bad(param: &str, message: impl Into<String>) -> SandboxError {
    SandboxError::BadRequest {
        param: param.to_owned(),
        message: message.into(),
    }
}

fn optional_u64(body: &Value, key: &str) -> Result<Option<u64>, SandboxError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| bad(key, format!("'{key}' must be a non-negative integer"))),
    }
}

fn parse_env(value: Option<&Value>, param: &str) -> Result<Vec<(String, String)>, SandboxError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    return Err(bad(param, format!("invalid variable name '{k}'")));
                }
                match v {
                    Value::String(s) if !s.contains('\0') => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(bad(param, format!("'{param}.{k}' must be a string"))),
                }
            })
            .collect(),
        Some(_) => Err(bad(
            param,
            format!("'{param}' must be an object of strings"),
        )),
    }
}

/// Sandy's convention is only "smaller is more important" (reference clients send 1 and 3,
/// one sends `"NORMAL"`): any integer 0-100, or a name; default NORMAL (2).
fn parse_priority(value: Option<&Value>) -> Result<u8, SandboxError> {
    const WHY: &str =
        "'priority' must be an integer 0-100 (smaller is more important) or HIGH, NORMAL, LOW";
    match value {
        None | Some(Value::Null) => Ok(2),
        Some(Value::String(name)) => match name.to_ascii_uppercase().as_str() {
            "HIGH" => Ok(1),
            "NORMAL" => Ok(2),
            "LOW" => Ok(3),
            _ => Err(bad("priority", WHY)),
        },
        Some(value) => value
            .as_u64()
            .filter(|n| *n <= 100)
            .map(|n| n as u8)
            .ok_or_else(|| bad("priority", WHY)),
    }
}

fn create_request(config: &Config, body: &Value) -> Result<CreateRequest, SandboxError> {
    let ttl = match optional_u64(body, "ttl_seconds")? {
        None => config.default_ttl,
        Some(0) => return Err(bad("ttl_seconds", "'ttl_seconds' must be at least 1")),
        Some(s) if Duration::from_secs(s) > config.max_ttl => {
            return Err(bad(
                "ttl_seconds",
                format!("'ttl_seconds' may be at most {}", config.max_ttl.as_secs()),
            ))
        }
        Some(s) => Duration::from_secs(s),
    };
    let priority = parse_priority(body.get("priority"))?;
    let preemptable = match body.get("preemptable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("preemptable", "'preemptable' must be a boolean")),
    };
    let mut disk_mb = None;
    let mut limits = Limits {
        memory_mb: config.memory_mb,
        pids: config.pids,
        cpus: config.cpus,
    };
    match body.get("resources") {
        None | Some(Value::Null) => {}
        Some(Value::Object(resources)) => {
            if let Some(memory) = resources.get("memory_mb") {
                limits.memory_mb = memory
                    .as_u64()
                    .filter(|m| (16..=65536).contains(m))
                    .ok_or_else(|| {
                        bad(
                            "resources.memory_mb",
                            "'resources.memory_mb' must be 16-65536",
                        )
                    })?;
            }
            if let Some(cpu) = resources.get("cpu") {
                limits.cpus = cpu
                    .as_f64()
                    .filter(|c| *c > 0.0 && *c <= 64.0)
                    .ok_or_else(|| {
                        bad(
                            "resources.cpu",
                            "'resources.cpu' must be a number of cores, 0-64",
                        )
                    })?;
            }
            if let Some(pids) = resources.get("pids") {
                limits.pids = pids
                    .as_u64()
                    .filter(|p| (1..=32768).contains(p))
                    .ok_or_else(|| bad("resources.pids", "'resources.pids' must be 1-32768"))?;
            }
            match (resources.get("disk_mb"), resources.get("disk_gb")) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "resources.disk_mb",
                        "give 'resources.disk_mb' or 'resources.disk_gb', not both",
                    ))
                }
                (Some(mb), None) => {
                    disk_mb = Some(
                        mb.as_u64()
                            .filter(|m| (1..=1_048_576).contains(m))
                            .ok_or_else(|| {
                                bad("resources.disk_mb", "'resources.disk_mb' must be 1-1048576")
                            })?,
                    );
                }
                (None, Some(gb)) => {
                    let gb = gb
                        .as_f64()
                        .filter(|g| *g > 0.0 && *g <= 1024.0)
                        .ok_or_else(|| {
                            bad(
                                "resources.disk_gb",
                                "'resources.disk_gb' must be a number, 0-1024",
                            )
                        })?;
                    disk_mb = Some(((gb * 1024.0).ceil() as u64).max(1));
                }
                (None, None) => {}
            }
        }
        Some(_) => return Err(bad("resources", "'resources' must be an object")),
    }
    let expose_ports = match body.get("expose_ports") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ports)) => ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(&format!("expose_ports[{i}]"), "a port must be 1-65535"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(bad(
                "expose_ports",
                "'expose_ports' must be an array of ports",
            ))
        }
    };
    let flavor = match body.get("flavor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("flavor", "'flavor' must be a string")),
    };
    let command = match body.get("command") {
        None | Some(Value::Null) => None,
        Some(Value::Array(words)) if !words.is_empty() && words.len() <= 256 => Some(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| match w {
                    Value::String(w) if !w.is_empty() && w.len() <= 4096 && !w.contains('\0') => {
                        Ok(w.clone())
                    }
                    _ => Err(bad(
                        &format!("command[{i}]"),
                        "each word of 'command' must be a non-empty string",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(bad(
                "command",
                "'command' must be an array of 1-256 strings (argv, no shell)",
            ))
        }
    };
    let rootfs = match body.get("rootfs") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) => Some(allowed_rootfs(config, path)?),
        Some(_) => return Err(bad("rootfs", "'rootfs' must be a path")),
    };
    Ok(CreateRequest {
        ttl,
        priority,
        preemptable,
        limits,
        env: parse_env(body.get("env"), "env")?,
        expose_ports,
        flavor,
        command,
        rootfs,
        disk_mb,
    })
}

/// `path` as a sandbox root: an existing directory inside one of `--allow-rootfs` (after
/// resolving symlinks), and full isolation to use it.
fn allowed_rootfs(config: &Config, path: &str) -> Result<std::path::PathBuf, SandboxError> {
    if config.isolation != crate::IsolationMode::Full {
        return Err(bad("rootfs", "'rootfs' needs full isolation"));
    }
    let canonical = std::path::Path::new(path)
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| bad("rootfs", "'rootfs' must be an existing directory"))?;
    if !config
        .allow_rootfs
        .iter()
        .any(|dir| canonical.starts_with(dir))
    {
        return Err(bad(
            "rootfs",
            "'rootfs' is not under a directory this service allows (--allow-rootfs)",
        ));
    }
    Ok(canonical)
}

/// A service's output as NDJSON, one `{"at","stream","line"}` object per line: the kept
/// lines, then (when following) each new line as it comes, until the service exits (an
/// `exit` record) or the sandbox ends. A follower too slow for the stream gets a `lagged`
/// record saying how many lines it missed.
fn logs_response(
    kept: Vec<crate::service::LogLine>,
    live: Option<tokio::sync::broadcast::Receiver<crate::service::LogLine>>,
) -> Response<Body> {
    use futures_util::StreamExt as _;
    fn frame(
        line: &impl serde::Serialize,
    ) -> Result<hyper::body::Frame<bytes::Bytes>, janus_http::BoxError> {
        let mut text = serde_json::to_vec(line).map_err(janus_http::BoxError::from)?;
        text.push(b'\n');
        Ok(hyper::body::Frame::data(bytes::Bytes::from(text)))
    }
    let ended = kept.iter().any(|l| l.stream == "exit");
    let head = futures_util::stream::iter(kept.into_iter().map(|l| frame(&l)).collect::<Vec<_>>());
    let tail = futures_util::stream::unfold(live.filter(|_| !ended), |receiver| async move {
        let mut receiver = receiver?;
        let item = match receiver.recv().await {
            Ok(line) => {
                let last = line.stream == "exit";
                return Some((frame(&line), (!last).then_some(receiver)));
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                frame(&json!({"stream": "lagged", "line": format!("{missed} lines missed")}))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((item, Some(receiver)))
    });
    let mut response = Response::new(janus_http::response::boxed(
        http_body_util::StreamBody::new(head.chain(tail)),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

fn query_param(uri: &http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            if let Some(value) = decoded {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(
    manager: &Arc<Manager>,
    request: Request<Incoming>,
) -> Result<Response<Body>, SandboxError> {
    let config = manager.config();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/health" {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
        ));
    }
    // `{url}/artifacts/<name>`: capability URLs (the sandbox id is unguessable), no key.
    if let Some(rest) = path.strip_prefix("/sandboxes/") {
        let (id, name) = rest
            .split_once("/artifacts/")
            .ok_or_else(|| SandboxError::NoRoute(format!("{method} {path}")))?;
        if method != Method::GET && method != Method::HEAD {
            return Err(SandboxError::NoRoute(format!("{method} {path}")));
        }
        let sandbox = manager.get(id).await?;
        let (bytes, mime) = manager.artifact(&sandbox, &percent_decode(name)).await?;
        let length = bytes.len();
        let mut response = Response::new(janus_http::response::full(bytes));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return Ok(response);
    }
    let Some(rest) = path.strip_prefix("/api/sandboxes") else {
        return Err(SandboxError::NoRoute(format!("{method} {path}")));
    };
    if !authorized(config, &request) {
        return Err(SandboxError::Unauthorized);
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let limit = config.max_body_bytes;
    match (method.clone(), segments.as_slice()) {
        (Method::POST, []) => {
            let body = body_json(request, limit, config.serve.body_timeout).await?;
            let create = create_request(config, &body)?;
            let sandbox = manager.create(create).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &sandbox.describe(config).await,
            ))
        }
        (Method::GET, []) => {
            let mut list = Vec::new();
            for sandbox in manager.list().await {
                list.push(sandbox.describe(config).await);
            }
            Ok(json_response(StatusCode::OK, &json!({"sandboxes": list})))
        }
        (Method::GET, [id]) => match manager.get(id).await {
            Ok(sandbox) => Ok(json_response(
                StatusCode::OK,
                &sandbox.describe(config).await,
            )),
            Err(SandboxError::Terminated(id)) => Ok(json_response(
                StatusCode::OK,
                &json!({"sandboxId": id, "sandbox_id": id, "id": id, "status": "terminated", "ttl_remaining": 0}),
            )),
            Err(e) => Err(e),
        },
        (Method::POST, [id, "terminate"]) | (Method::DELETE, [id]) => {
            manager.terminate(id, false).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"sandboxId": id, "status": "terminated"}),
            ))
        }
        (Method::POST, [id, "refresh"]) => {
            let body = body_json(request, limit, config.serve.body_timeout).await?;
            let ttl = match optional_u64(&body, "ttl_seconds")? {
                None => None,
                Some(s) if s == 0 || Duration::from_secs(s) > config.max_ttl => {
                    return Err(bad(
                        "ttl_seconds",
                        format!("'ttl_seconds' must be 1-{}", config.max_ttl.as_secs()),
                    ))
                }
                Some(s) => Some(Duration::from_secs(s)),
            };
            let sandbox = manager.refresh(id, ttl).await?;
            Ok(json_response(
                StatusCode::OK,
                &sandbox.describe(config).await,
            ))
        }
        (Method::POST, [id, "exec"]) => {
            let sandbox = manager.get(id).await?;
            let body = body_json(request, limit, config.serve.body_timeout).await?;
            let command = match body.get("command") {
                Some(Value::String(c)) if !c.trim().is_empty() => c.clone(),
                Some(Value::String(_)) => {
                    return Err(bad("command", "'command' must not be empty"))
                }
                Some(_) => return Err(bad("command", "'command' must be a string")),
                None => return Err(bad("command", "missing required parameter: 'command'")),
            };
            let timeout_ms = optional_u64(&body, "timeoutMs")?
                .or(optional_u64(&body, "timeout_ms")?)
                .unwrap_or(30_000);
            if timeout_ms == 0 || Duration::from_millis(timeout_ms) > config.max_exec_timeout {
                return Err(bad(
                    "timeoutMs",
                    format!(
                        "'timeoutMs' must be 1-{}",
                        config.max_exec_timeout.as_millis()
                    ),
                ));
            }
            let cwd = match body.get("cwd") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.clone()),
                Some(_) => return Err(bad("cwd", "'cwd' must be a string")),
            };
            let env = parse_env(body.get("env"), "env")?;
            let result = manager
                .exec(
                    &sandbox,
                    &command,
                    Duration::from_millis(timeout_ms),
                    cwd.as_deref(),
                    &env,
                )
                .await?;
            let value =
                serde_json::to_value(&result).map_err(|e| SandboxError::Internal(e.to_string()))?;
            Ok(json_response(StatusCode::OK, &value))
        }
        (Method::POST, [id, "files", "write"]) => {
            let sandbox = manager.get(id).await?;
            let body = body_json(request, limit, config.serve.body_timeout).await?;
            let path = body
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("path", "missing required parameter: 'path' (a string)"))?
                .to_owned();
            let content = body.get("content").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    "content",
                    "missing required parameter: 'content' (a string)",
                )
            })?;
            let bytes = match body.get("encoding").and_then(Value::as_str) {
                None | Some("utf8") | Some("utf-8") => content.as_bytes().to_vec(),
                Some("base64") => base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|e| bad("content", format!("'content' is not valid base64: {e}")))?,
                Some(other) => {
                    return Err(bad(
                        "encoding",
                        format!("unknown encoding '{other}' (utf8 or base64)"),
                    ))
                }
            };
            let size = manager.write_file(&sandbox, &path, &bytes).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"path": crate::sandbox::sandbox_path(&path)?, "size": size, "success": true}),
            ))
        }
        (Method::GET, [id, "files", "read"]) => {
            let sandbox = manager.get(id).await?;
            let uri = request.uri().clone();
            let path = query_param(&uri, "path")
                .ok_or_else(|| bad("path", "missing query parameter 'path'"))?;
            let bytes = manager.read_file(&sandbox, &path).await?;
            let wants_json = query_param(&uri, "encoding").is_some_and(|e| e == "base64")
                || request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("application/json"));
            if wants_json {
                let content = base64::engine::general_purpose::STANDARD.encode(&bytes);
                return Ok(json_response(
                    StatusCode::OK,
                    &json!({"path": path, "content": content, "encoding": "base64", "size": bytes.len()}),
                ));
            }
            let mut response = Response::new(janus_http::response::full(bytes));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(response)
        }
        (Method::GET, [id, "files", "list"]) => {
            let sandbox = manager.get(id).await?;
            let path =
                query_param(request.uri(), "path").unwrap_or_else(|| "/workspace".to_owned());
            Ok(json_response(
                StatusCode::OK,
                &manager.list_files(&sandbox, &path).await?,
            ))
        }
        (Method::POST, [id, "service", "restart"]) => {
            let sandbox = manager.get(id).await?;
            manager.restart_service(&sandbox).await?;
            Ok(json_response(
                StatusCode::OK,
                &sandbox.describe(config).await,
            ))
        }
        (Method::GET, [id, "logs"]) => {
            let sandbox = manager.get(id).await?;
            let follow = matches!(
                query_param(request.uri(), "follow").as_deref(),
                Some("true" | "1")
            );
            let (kept, live) = manager.service_logs(&sandbox, follow)?;
            Ok(logs_response(kept, live))
        }
        (Method::POST, [id, "agent", "run"]) => {
            let sandbox = manager.get(id).await?;
            let body = body_json(request, limit, config.serve.body_timeout).await?;
            let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
            let prompt = text("prompt")
                .ok_or_else(|| bad("prompt", "missing required parameter: 'prompt' (a string)"))?;
            let max_seconds = optional_u64(&body, "maxDuration")?.unwrap_or(600);
            if max_seconds == 0 || max_seconds > 3600 {
                return Err(bad("maxDuration", "'maxDuration' must be 1-3600 seconds"));
            }
            let run = crate::agent::AgentRun {
                agent: text("agent").unwrap_or_else(|| "default".to_owned()),
                model: text("model").unwrap_or_default(),
                prompt,
                system_prompt: text("systemPrompt"),
                api_base_url: text("apiBaseUrl"),
                max_duration: Duration::from_secs(max_seconds),
                env: parse_env(body.get("env"), "env")?,
            };
            let body = crate::agent::run(manager.clone(), sandbox, run).await?;
            let mut response = Response::new(janus_http::response::boxed(body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        }
        (Method::POST, [id, "agent", "cancel"]) => {
            let sandbox = manager.get(id).await?;
            sandbox.agent_cancel.notify_waiters();
            Ok(json_response(
                StatusCode::OK,
                &json!({"sandboxId": id, "cancelled": true}),
            ))
        }
        (_, [id, "proxy", port, ..]) => {
            let sandbox = manager.get(id).await?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("port", format!("'{port}' is not a port")))?;
            let prefix = format!("/api/sandboxes/{id}/proxy/{port}");
            proxy(manager, &sandbox, port, &prefix, request).await
        }
        (_, [id, "agent", ..]) => {
            manager.get(id).await?;
            Err(SandboxError::NoRoute(format!("{method} {path}")))
        }
        (_, []) => Err(SandboxError::NoRoute(format!("{method} {path}"))),
        _ => Err(SandboxError::NoRoute(format!("{method} {path}"))),
    }
}

/// Hop-by-hop headers never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards the request to `127.0.0.1:port` inside the sandbox and streams the answer
/// back; bodies stream both ways (SSE included).
async fn proxy(
    manager: &Arc<Manager>,
    sandbox: &crate::sandbox::Sandbox,
    port: u16,
    prefix: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, SandboxError> {
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix(prefix).unwrap_or("");
    let target = match parts.uri.query() {
        Some(query) => format!("/{}?{query}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    let mut forward = Request::builder().method(parts.method.clone()).uri(&target);
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || lower == "authorization" || lower == "host" {
            continue;
        }
        forward = forward.header(name, value);
    }
    forward = forward.header(header::HOST, format!("127.0.0.1:{port}"));
    let forward = forward
        .body(body)
        .map_err(|e| bad("path", format!("cannot forward this request: {e}")))?;
    let unreachable = |e: hyper::Error| {
        SandboxError::BadGateway(format!(
            "nothing answers on port {port} in the sandbox: {}",
            janus_core::error_chain(&e)
        ))
    };
    let closed = |e: hyper::Error| {
        SandboxError::UpstreamClosed(format!(
            "the process on port {port} in the sandbox closed the connection without answering: {}",
            janus_core::error_chain(&e)
        ))
    };
    let response = match manager.connect_inside(sandbox, port).await? {
        // A connected socket: whatever fails now failed after the request was sent.
        crate::relay::Inside::Socket(stream) => {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(unreachable)?;
            tokio::spawn(connection);
            sender.send_request(forward).await.map_err(closed)?
        }
        crate::relay::Inside::Helper { mut child, io } => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(unreachable)?;
            let connection = tokio::spawn(connection);
            match sender.send_request(forward).await {
                Ok(response) => {
                    // The helper lives exactly as long as the connection.
                    tokio::spawn(async move {
                        let _ = connection.await;
                        let _ = child.kill().await;
                    });
                    response
                }
                Err(e) => {
                    // The helper exits 1 when its connect failed (nothing listens: a cold
                    // start, fine to retry), 0 when the connection it made was closed.
                    let exit = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                    let _ = child.kill().await;
                    return Err(match exit {
                        Ok(Ok(status)) if status.success() => closed(e),
                        _ => unreachable(e),
                    });
                }
            }
        }
    };
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(
        parts,
        janus_http::response::boxed(body),
    ))
}
