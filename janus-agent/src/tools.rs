//! The agent's tools: `shell`, `read_file`, `write_file`, `list_files`, `web_search` (when a
//! search endpoint is configured) and `finish`.
//!
//! Paths are relative to the workspace; an absolute path under `/workspace` means the same
//! file, so prompts written for a real sandbox also work where the workspace lives elsewhere
//! (a sandbox service without isolation). This is convenience, not a boundary: `shell` can
//! reach anything the sandbox allows.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::{json, Value};

use crate::Config;

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    /// Whether it worked.
    pub ok: bool,
    /// What the model is shown (truncated to the output limit).
    pub output: String,
    /// One line for the step log.
    pub summary: String,
}

impl ToolOutcome {
    fn ok(output: String, summary: String) -> ToolOutcome {
        ToolOutcome {
            ok: true,
            output,
            summary,
        }
    }

    fn failed(message: String) -> ToolOutcome {
        ToolOutcome {
            ok: false,
            output: format!("error: {message}"),
            summary: message,
        }
    }
}

/// The OpenAI `tools` array offered to the model.
pub fn definitions(search: bool) -> Value {
    let function = |name: &str, description: &str, parameters: Value| json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}});
    let mut tools = vec![
        function(
            "shell",
            "Run a shell command (sh -c) in /workspace. Returns exit code, stdout and stderr (truncated).",
            json!({"type": "object", "properties": {
                "command": {"type": "string"},
                "timeout_seconds": {"type": "integer", "description": "at most the agent's shell timeout"}
            }, "required": ["command"]}),
        ),
        function(
            "read_file",
            "Read a text file (relative to /workspace).",
            json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        ),
        function(
            "write_file",
            "Write a file (relative to /workspace), creating folders. Use encoding \"base64\" for binary content.",
            json!({"type": "object", "properties": {
                "path": {"type": "string"},
                "content": {"type": "string"},
                "encoding": {"type": "string", "enum": ["utf-8", "base64"]}
            }, "required": ["path", "content"]}),
        ),
        function(
            "list_files",
            "List a folder (relative to /workspace; default the workspace itself).",
            json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        ),
    ];
    if search {
        tools.push(function(
            "web_search",
            "Search the web through the platform's search service.",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        ));
    }
    tools.push(function(
        "finish",
        "End the task with the final answer for the user.",
        json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}),
    ));
    Value::Array(tools)
}

/// Keeps at most `limit` bytes (on a character boundary), saying how much was cut.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… {} more bytes truncated]",
        &text[..end],
        text.len() - end
    )
}

fn one_line(text: &str, limit: usize) -> String {
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(limit)
        .collect();
    flat
}

/// Runs tools for one task.
pub struct Tools {
    workspace: PathBuf,
    shell_timeout: Duration,
    output_limit: usize,
    search_url: Option<String>,
    /// The agent's API key, sent to the search service too: behind the gateway both are
    /// platform services and the key is the request's grant.
    search_key: Option<String>,
}

impl std::fmt::Debug for Tools {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools")
            .field("workspace", &self.workspace)
            .field("shell_timeout", &self.shell_timeout)
            .field("output_limit", &self.output_limit)
            .field("search_url", &self.search_url)
            .field(
                "search_key",
                &self.search_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Tools {
    /// Tools working in the configured workspace.
    pub fn new(config: &Config) -> Tools {
        Tools {
            workspace: config.workspace.clone(),
            shell_timeout: config.shell_timeout,
            output_limit: config.output_limit,
            search_url: config.search_url.clone(),
            search_key: config.api_key.clone(),
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let relative = path
            .strip_prefix("/workspace")
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(path)
            .trim_start_matches('/');
        if Path::new(path).is_absolute() && !path.starts_with("/workspace") {
            return PathBuf::from(path);
        }
        self.workspace.join(relative)
    }

    /// Runs `name` with its JSON `arguments`; `remaining` caps a command's time.
    pub async fn call(&self, name: &str, arguments: &Value, remaining: Duration) -> ToolOutcome {
        let text = |key: &str| arguments.get(key).and_then(Value::as_str);
        match name {
            "shell" => match text("command") {
                Some(command) => {
                    let asked = arguments
                        .get("timeout_seconds")
                        .and_then(Value::as_u64)
                        .map(Duration::from_secs)
                        .unwrap_or(self.shell_timeout);
                    let timeout = asked.min(self.shell_timeout).min(remaining);
                    self.shell(command, timeout).await
                }
                None => ToolOutcome::failed("shell needs a 'command'".into()),
            },
            "read_file" => match text("path") {
                Some(path) => match tokio::fs::read(self.resolve(path)).await {
                    Ok(bytes) => {
                        let content = String::from_utf8_lossy(&bytes);
                        ToolOutcome::ok(
                            truncate(&content, self.output_limit),
                            format!("read {path} ({} bytes)", bytes.len()),
                        )
                    }
                    Err(e) => ToolOutcome::failed(format!("cannot read {path}: {e}")),
                },
                None => ToolOutcome::failed("read_file needs a 'path'".into()),
            },
            "write_file" => match (text("path"), text("content")) {
                (Some(path), Some(content)) => {
                    let bytes = if text("encoding") == Some("base64") {
                        match base64::engine::general_purpose::STANDARD.decode(content.trim()) {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                return ToolOutcome::failed(format!(
                                    "content of {path} is not valid base64: {e}"
                                ))
                            }
                        }
                    } else {
                        content.as_bytes().to_vec()
                    };
                    self.write(path, &bytes).await
                }
                _ => ToolOutcome::failed("write_file needs a 'path' and a 'content'".into()),
            },
            "list_files" => self.list(text("path").unwrap_or(".")).await,
            "web_search" => match (text("query"), &self.search_url) {
                (Some(query), Some(url)) => self.search(url, query, remaining).await,
                (None, _) => ToolOutcome::failed("web_search needs a 'query'".into()),
                (_, None) => ToolOutcome::failed("web search is not configured here".into()),
            },
            other => ToolOutcome::failed(format!("there is no tool named '{other}'")),
        }
    }

    async fn shell(&self, command: &str, timeout: Duration) -> ToolOutcome {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.workspace)
            // Commands the model writes never see the endpoint key.
            .env_remove("JANUS_AGENT_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // No process group of its own: whoever stops the agent by its group (a sandbox
            // without isolation does) stops its commands too.
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return ToolOutcome::failed(format!("cannot start /bin/sh: {e}")),
        };
        let shell_pid = child.id().map(|id| id as i32);
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        let waited = tokio::time::timeout(timeout, child.wait()).await;
        if waited.is_err() {
            // Out of time. The shell is not reaped yet, so its pid is still ours: end its
            // whole tree, then reap it.
            if let Some(pid) = shell_pid {
                end_descendants(pid, true);
            }
            let _ = child.wait().await;
        }
        // As a child subreaper (the binary), background processes the command left
        // behind are still our descendants: they end with the command.
        if SUBREAPER.load(std::sync::atomic::Ordering::Relaxed) {
            end_descendants(std::process::id() as i32, false);
        }
        // A leftover that still holds the pipes (possible only for a library caller that
        // is no subreaper) cannot stall the agent for long.
        let grace = Duration::from_secs(2);
        let stdout = tokio::time::timeout(grace, stdout)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let stderr = tokio::time::timeout(grace, stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let outcome = waited.map(|status| {
            status.map(|status| std::process::Output {
                status,
                stdout,
                stderr,
            })
        });
        match outcome {
            Err(_) => ToolOutcome::failed(format!(
                "the command ran past {} s and was killed",
                timeout.as_secs()
            )),
            Ok(Err(e)) => ToolOutcome::failed(format!("the command failed to run: {e}")),
            Ok(Ok(output)) => {
                let code = output.status.code().unwrap_or(-1);
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                let half = self.output_limit / 2;
                let shown = format!(
                    "exit code {code}\nstdout:\n{}\nstderr:\n{}",
                    truncate(&stdout, half),
                    truncate(&stderr, half)
                );
                let tail = if stdout.trim().is_empty() {
                    &stderr
                } else {
                    &stdout
                };
                ToolOutcome {
                    ok: code == 0,
                    output: shown,
                    summary: format!("exit {code}: {}", one_line(tail, 160)),
                }
            }
        }
    }

    async fn write(&self, path: &str, bytes: &[u8]) -> ToolOutcome {
        let target = self.resolve(path);
        if let Some(parent) = target.parent() {
            if let Err(e) = tokio::fs::create_dir_all(parent).await {
                return ToolOutcome::failed(format!("cannot create the folder of {path}: {e}"));
            }
        }
        match tokio::fs::write(&target, bytes).await {
            Ok(()) => ToolOutcome::ok(
                format!("wrote {} bytes to {path}", bytes.len()),
                format!("wrote {path} ({} bytes)", bytes.len()),
            ),
            Err(e) => ToolOutcome::failed(format!("cannot write {path}: {e}")),
        }
    }

    async fn list(&self, path: &str) -> ToolOutcome {
        let mut entries = match tokio::fs::read_dir(self.resolve(path)).await {
            Ok(entries) => entries,
            Err(e) => return ToolOutcome::failed(format!("cannot list {path}: {e}")),
        };
        let mut lines = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.metadata().await {
                Ok(meta) if meta.is_dir() => lines.push(format!("{name}/")),
                Ok(meta) => lines.push(format!("{name} ({} bytes)", meta.len())),
                Err(_) => lines.push(name),
            }
        }
        lines.sort();
        ToolOutcome::ok(
            truncate(&lines.join("\n"), self.output_limit),
            format!("{} entries in {path}", lines.len()),
        )
    }

    async fn search(&self, url: &str, query: &str, remaining: Duration) -> ToolOutcome {
        let client = janus_http::build_client::<Full<Bytes>>(Duration::from_secs(10));
        let mut request =
            http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.search_key {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request =
            match request.body(Full::new(Bytes::from(json!({"query": query}).to_string()))) {
                Ok(request) => request,
                Err(_) => return ToolOutcome::failed(format!("bad search URL '{url}'")),
            };
        let call = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| janus_core::error_chain(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), 4 * 1024 * 1024)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(remaining.min(Duration::from_secs(60)), call).await {
            Err(_) => ToolOutcome::failed("the search service did not answer in time".into()),
            Ok(Err(e)) => ToolOutcome::failed(format!("the search service is unreachable: {e}")),
            Ok(Ok((status, _))) if !status.is_success() => {
                ToolOutcome::failed(format!("the search service answered {status}"))
            }
            Ok(Ok((_, body))) => ToolOutcome::ok(
                truncate(&String::from_utf8_lossy(&body), self.output_limit),
                format!("searched '{}'", one_line(query, 80)),
            ),
        }
    }
}

/// Reads a pipe to its end on a task of its own.
fn read_all<R>(pipe: Option<R>) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
        }
        bytes
    })
}

/// Set once this process is a child subreaper.
static SUBREAPER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Every descendant of `root`, from one pass over `/proc`.
fn descendants(root: i32) -> Vec<(i32, i32)> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![(root, 0)];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index].0;
        found.extend(parent_of.iter().filter(|(_, ppid)| *ppid == parent));
        index += 1;
    }
    found.remove(0);
    found
}

/// SIGKILL to every descendant of `root`, and to `root` itself when asked (single pids,
/// never a group or -1). Orphans we adopted as a subreaper are reaped on a thread of their
/// own, so they do not linger as zombies counting against the sandbox's process limit.
fn end_descendants(root: i32, and_root: bool) {
    let found = descendants(root);
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = found.iter().map(|(pid, _)| *pid).collect();
    if and_root {
        pids.push(root);
    }
    for pid in &pids {
        if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    // Only when `root` is this process: then no child of ours is still tokio's (the
    // command's shell was waited for already).
    let adopted: Vec<i32> = found
        .iter()
        .filter(|(_, ppid)| root == me && *ppid == me)
        .map(|(pid, _)| *pid)
        .collect();
    if !adopted.is_empty() {
        std::thread::spawn(move || {
            for pid in adopted {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
            }
        });
    }
}

/// Makes this process the reaper of its orphans, so processes a command leaves behind stay
/// its descendants and [`Tools`] can end them. The binary calls this once at start.
pub fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    SUBREAPER.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}
