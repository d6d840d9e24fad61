//! The agent path: a sandbox, the CLI agent run through the sandbox's `agent/run`, each of
//! its steps streamed as reasoning and `tool_start` / `tool_end` events, the files it
//! leaves in `/workspace/artifacts` as artifacts, its final answer as the content.

use std::time::{Duration, Instant};

use janus_competitor_sdk::{
    AgentEvent, AgentRequest, ChatCompletionRequest, CompetitorError, CreateOptions, EventWriter,
    JanusEvent, Message, SandboxSession, SandyError, Usage,
};
use serde_json::{json, Value};

use crate::services::Services;
use crate::Settings;

/// Where the baseline copies `JANUS_BASELINE_AGENT_BINARY` in each sandbox (relative to
/// `/workspace`, which is where `agent/run` starts the agent command).
pub const AGENT_PATH: &str = ".janus/bin/janus-agent";

/// The sandbox agent command that runs the copied agent. A sandbox service configured
/// with it (`--agent-command`) runs `janus-agent` for the baseline.
pub const SANDBOX_AGENT_COMMAND: &str = "exec ./.janus/bin/janus-agent";

/// Longest conversation text handed to the agent besides the task itself.
const MAX_HISTORY_CHARS: usize = 24_000;

fn failure(message: impl Into<String>) -> CompetitorError {
    CompetitorError::Internal(message.into())
}

/// The task for the agent: the last user message, with the earlier conversation as
/// context when there is one.
pub fn task_prompt(request: &ChatCompletionRequest) -> String {
    let task = request.last_user_text().unwrap_or_default();
    let mut history = String::new();
    let last_user = request
        .messages
        .iter()
        .rposition(|m| matches!(m, Message::User { .. }))
        .unwrap_or(request.messages.len());
    for message in &request.messages[..last_user] {
        let text = match message {
            Message::User { content, .. }
            | Message::System { content, .. }
            | Message::Developer { content, .. } => content.text(),
            Message::Assistant { content, .. } => {
                content.as_ref().map(|c| c.text()).unwrap_or_default()
            }
            Message::Tool { .. } => continue,
        };
        history.push_str(&format!("{}: {}\n", message.role().as_str(), text.trim()));
    }
    if history.is_empty() {
        return task;
    }
    if history.len() > MAX_HISTORY_CHARS {
        let mut start = history.len() - MAX_HISTORY_CHARS;
        while !history.is_char_boundary(start) {
            start += 1;
        }
        history = format!("[earlier messages cut]\n{}", &history[start..]);
    }
    format!("Conversation so far:\n{history}\nThe task now:\n{task}")
}

/// The conversation's images, written into the sandbox under `input/` (those sent as
/// `data:` URLs; others are listed by URL): what the prompt tells the agent about them.
async fn hand_over_images(
    session: &SandboxSession,
    request: &ChatCompletionRequest,
) -> Result<Vec<String>, CompetitorError> {
    let mut notes = Vec::new();
    // Owned before the first await: the handler's future must stay `Send`.
    let mut urls: Vec<String> = Vec::new();
    for message in &request.messages {
        if let Message::User { content, .. } = message {
            urls.extend(content.image_urls().into_iter().map(str::to_owned));
        }
    }
    for (index, url) in urls.iter().enumerate() {
        let Ok(decoded) = janus_competitor_sdk::janus_core::data_url_decode(url) else {
            notes.push(format!("image {}: {url}", index + 1));
            continue;
        };
        let extension = match decoded.mime_type.as_str() {
            "image/png" => "png",
            "image/jpeg" => "jpg",
            "image/gif" => "gif",
            "image/webp" => "webp",
            _ => "bin",
        };
        let path = format!("input/image-{}.{extension}", index + 1);
        session
            .write_file(&path, &decoded.bytes)
            .await
            .map_err(|e| failure(format!("cannot hand an image to the agent: {e}")))?;
        notes.push(format!("image {}: /workspace/{path}", index + 1));
    }
    Ok(notes)
}

/// Why a create failed, in the client's words.
fn create_failure(error: &SandyError) -> CompetitorError {
    match error {
        SandyError::Status { status, .. } if status.as_u16() == 429 => failure(format!(
            "sandbox capacity exhausted: no sandbox is free right now ({error})"
        )),
        SandyError::Transport { .. } | SandyError::Timeout(_) => {
            failure(format!("the sandbox service is unreachable: {error}"))
        }
        _ => failure(format!("cannot create a sandbox: {error}")),
    }
}

/// A short description of a tool call for the reasoning line.
fn describe(tool: &str, input: &Value) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str).unwrap_or("");
    let brief = match tool {
        "shell" => field("command"),
        "read_file" | "write_file" | "list_files" => field("path"),
        "web_search" => field("query"),
        _ => "",
    };
    let brief: String = brief.split_whitespace().collect::<Vec<_>>().join(" ");
    let brief: String = brief.chars().take(120).collect();
    if brief.is_empty() {
        tool.to_owned()
    } else {
        format!("{tool}: {brief}")
    }
}

/// Longest string shown per field of a tool's input (a `write_file` may carry megabytes).
const MAX_INPUT_CHARS: usize = 4000;

/// The input with long strings cut, for the client's `tool_start` event.
fn shortened(input: Value) -> Value {
    match input {
        Value::String(text) if text.chars().count() > MAX_INPUT_CHARS => {
            let kept: String = text.chars().take(MAX_INPUT_CHARS).collect();
            Value::String(format!("{kept}… [{} bytes in all]", text.len()))
        }
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, shortened(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(shortened).collect()),
        other => other,
    }
}

/// What the agent's step lines added up to.
#[derive(Debug, Default)]
struct Transcript {
    answer: Option<String>,
    stopped: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Lines that are not step lines (another agent's output, stderr).
    plain: Vec<String>,
    steps_seen: bool,
}

impl Transcript {
    fn add_usage(&mut self, line: &Value) {
        let usage = |key: &str| {
            line.pointer(&format!("/usage/{key}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        self.prompt_tokens += usage("prompt_tokens");
        self.completion_tokens += usage("completion_tokens");
    }

    /// Turns one output line into what the client sees.
    async fn line(&mut self, line: &str, out: &mut dyn EventWriter) -> Result<(), CompetitorError> {
        let step = serde_json::from_str::<Value>(line)
            .ok()
            .filter(|v| v.get("type").and_then(Value::as_str).is_some());
        let Some(step) = step else {
            if !line.trim().is_empty() {
                out.reasoning(&format!("{line}\n")).await?;
                self.plain.push(line.to_owned());
            }
            return Ok(());
        };
        self.steps_seen = true;
        let text = |key: &str| step.get(key).and_then(Value::as_str).unwrap_or("");
        match text("type") {
            "thinking" => out.reasoning(&format!("{}\n", text("text"))).await?,
            "tool_call" => {
                let input = shortened(step.get("input").cloned().unwrap_or(Value::Null));
                out.reasoning(&format!("→ {}\n", describe(text("tool"), &input)))
                    .await?;
                out.janus(JanusEvent::new(
                    JanusEvent::TOOL_START,
                    json!({"tool": text("tool"), "id": text("id"), "input": input}),
                ))
                .await?;
            }
            "tool_result" => {
                let ok = step.get("ok").and_then(Value::as_bool).unwrap_or(false);
                out.janus(JanusEvent::new(
                    JanusEvent::TOOL_END,
                    json!({
                        "tool": text("tool"),
                        "id": text("id"),
                        "ok": ok,
                        "summary": text("summary"),
                        "duration_ms": step.get("duration_ms").and_then(Value::as_u64).unwrap_or(0),
                    }),
                ))
                .await?;
                if !ok {
                    out.reasoning(&format!("  ✗ {}\n", text("summary"))).await?;
                }
            }
            "final" => {
                self.add_usage(&step);
                self.answer = Some(text("answer").to_owned());
            }
            "error" => {
                self.add_usage(&step);
                self.stopped = Some(text("message").to_owned());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs the agent path for one request.
pub async fn run(
    settings: &Settings,
    services: &Services,
    request: &ChatCompletionRequest,
    out: &mut dyn EventWriter,
) -> Result<(), CompetitorError> {
    let started = Instant::now();
    let sandy = services.sandy.clone().ok_or_else(|| {
        failure(
            "this request needs the agent, but no sandbox service is configured (SANDY_BASE_URL)",
        )
    })?;
    let endpoint = services.agent_inference.clone().ok_or_else(|| {
        failure("platform inference is not configured (JANUS_BASELINE_INFERENCE_URL)")
    })?;
    let cap = services.agent_cap(settings.agent_timeout);
    if cap < Duration::from_secs(5) {
        return Err(failure(format!(
            "too little time is left before the request's deadline to run the agent ({} s)",
            cap.as_secs()
        )));
    }

    out.reasoning("Creating sandbox…\n").await?;
    let creating = Instant::now();
    let options = CreateOptions {
        // Outlives the cap a little so artifacts can still be read; terminated at the end.
        ttl_seconds: cap.as_secs() + 120,
        ..CreateOptions::default()
    };
    let session = SandboxSession::open(sandy, &options)
        .await
        .map_err(|e| create_failure(&e))?;
    // From here on, dropping `session` (client gone, error) terminates the sandbox.
    let sandbox_id = session.info.id.clone();
    out.janus(JanusEvent::new(
        JanusEvent::SANDBOX_START,
        json!({"sandbox_id": sandbox_id}),
    ))
    .await?;
    out.reasoning(&format!(
        "Sandbox ready in {} ms\n",
        creating.elapsed().as_millis()
    ))
    .await?;

    if let Some(binary) = &settings.agent_binary {
        let bytes = tokio::fs::read(binary).await.map_err(|e| {
            failure(format!(
                "cannot read the agent binary {} (JANUS_BASELINE_AGENT_BINARY): {e}",
                binary.display()
            ))
        })?;
        session
            .write_file(AGENT_PATH, &bytes)
            .await
            .map_err(|e| failure(format!("cannot copy the agent into the sandbox: {e}")))?;
        let chmod = session
            .exec(&format!("chmod 755 {AGENT_PATH}"), Duration::from_secs(10))
            .await
            .map_err(|e| failure(format!("cannot make the agent executable: {e}")))?;
        if chmod.exit_code != 0 {
            return Err(failure(format!(
                "cannot make the agent executable: {}",
                chmod.stderr.trim()
            )));
        }
    }

    let images = hand_over_images(&session, request).await?;
    let mut prompt = task_prompt(request);
    if !images.is_empty() {
        out.reasoning(&format!(
            "Handing {} image(s) to the agent…\n",
            images.len()
        ))
        .await?;
        prompt.push_str(&format!(
            "\n\nImages from the conversation:\n{}",
            images.join("\n")
        ));
    }

    let agent = services
        .agent_override
        .clone()
        .unwrap_or_else(|| settings.agent_name.clone());
    out.reasoning("Running agent…\n").await?;
    let budget = cap.saturating_sub(Duration::from_secs(5)).max(cap / 2);
    let mut env = vec![
        (
            "JANUS_AGENT_MAX_STEPS".to_owned(),
            settings.agent_max_steps.to_string(),
        ),
        (
            "JANUS_AGENT_TIME_BUDGET".to_owned(),
            budget.as_secs().max(1).to_string(),
        ),
    ];
    // The per-request key (with the platform: the request's grant, valid until its
    // deadline) is the agent's only credential.
    if let Some(key) = &endpoint.key {
        env.push(("JANUS_AGENT_API_KEY".to_owned(), key.clone()));
    }
    if let Some(search) = &services.agent_search {
        env.push(("JANUS_AGENT_SEARCH_URL".to_owned(), search.clone()));
    }
    let agent_request = AgentRequest {
        agent: agent.clone(),
        model: settings.agent_model.clone(),
        prompt,
        max_duration_seconds: cap.as_secs() + 5,
        env,
        system_prompt: None,
        api_base_url: Some(endpoint.url.clone()),
    };
    let mut transcript = Transcript::default();
    let ran = tokio::time::timeout(cap, async {
        let mut events = session
            .client()
            .agent_run(&sandbox_id, &agent_request)
            .await
            .map_err(|e| failure(format!("cannot start the agent '{agent}': {e}")))?;
        loop {
            match events.next().await {
                Err(e) => return Err(failure(format!("lost the agent's output: {e}"))),
                Ok(None) => {
                    return Err(failure(
                        "the agent's event stream ended without a completion",
                    ))
                }
                Ok(Some(AgentEvent::Output(text))) => {
                    for line in text.lines() {
                        transcript.line(line, out).await?;
                    }
                }
                Ok(Some(AgentEvent::Error(message))) => {
                    transcript.stopped.get_or_insert(message);
                }
                Ok(Some(AgentEvent::Complete { exit_code, .. })) => return Ok(exit_code),
                Ok(Some(_)) => {}
            }
        }
    })
    .await;
    let exit_code = match ran {
        Ok(outcome) => outcome?,
        Err(_) => {
            // The cap: stop the agent, tell the client plainly.
            let _ = session.client().agent_cancel(&sandbox_id).await;
            let _ = session.finish(out).await;
            return Err(failure(format!(
                "time is up: the agent did not finish within its {} s limit and was stopped",
                cap.as_secs()
            )));
        }
    };
    let answer = match (&transcript.answer, &transcript.stopped) {
        (Some(answer), _) => answer.clone(),
        (None, Some(stopped)) => {
            let _ = session.finish(out).await;
            return Err(failure(format!(
                "the agent stopped without an answer: {stopped}"
            )));
        }
        // Another agent (aider, codex, …) writes plain text: that is its answer.
        (None, None) if exit_code == 0 && !transcript.steps_seen => transcript.plain.join("\n"),
        (None, None) => {
            let last: Vec<&str> = transcript
                .plain
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(String::as_str)
                .collect();
            let _ = session.finish(out).await;
            return Err(failure(format!(
                "the agent exited with code {exit_code} without an answer{}",
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {}", last.join(" | "))
                }
            )));
        }
    };

    out.reasoning("Collecting artifacts…\n").await?;
    let artifacts = session
        .collect_artifacts()
        .await
        .map_err(|e| failure(format!("cannot collect the agent's artifacts: {e}")))?;
    for artifact in artifacts {
        out.artifact(artifact).await?;
    }
    out.content(&answer).await?;
    session.finish(out).await?;
    let sandbox_seconds = creating.elapsed().as_secs_f64();
    out.reasoning(&format!(
        "Done in {:.1} s\n",
        started.elapsed().as_secs_f64()
    ))
    .await?;
    let mut usage = Usage::new(transcript.prompt_tokens, transcript.completion_tokens);
    usage.sandbox_seconds = Some((sandbox_seconds * 1000.0).round() / 1000.0);
    out.usage(usage).await?;
    Ok(())
}
