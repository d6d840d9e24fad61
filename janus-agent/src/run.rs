//! The tool-calling loop and its step log: one JSON line per event on stdout.

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

use crate::llm::Llm;
use crate::tools::{self, Tools};
use crate::Config;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `finish` was called (or the model answered without a tool call).
    Finished(String),
    /// Stopped: the step or time budget ran out, or the endpoint failed.
    Stopped {
        /// `step_budget`, `time_budget` or `inference`.
        code: &'static str,
        /// What happened, for the user.
        message: String,
    },
}

/// Writes step lines; a closed stdout is not worth failing the task over.
struct StepLog<W: Write> {
    out: W,
}

impl<W: Write> StepLog<W> {
    fn line(&mut self, value: Value) {
        let _ = writeln!(self.out, "{value}");
        let _ = self.out.flush();
    }
}

/// Runs the task to its end, writing one JSON line per event to `out`.
pub async fn run<W: Write>(config: &Config, out: W) -> Outcome {
    let mut log = StepLog { out };
    let started = Instant::now();
    let deadline = started + config.time_budget;
    let llm = Llm::new(&config.api_base, config.api_key.clone(), &config.model);
    let tools = Tools::new(config);
    let definitions = tools::definitions(config.search_url.is_some());
    let mut messages = vec![
        json!({"role": "system", "content": config.system_prompt}),
        json!({"role": "user", "content": config.prompt}),
    ];
    let (mut prompt_tokens, mut completion_tokens) = (0u64, 0u64);
    log.line(json!({
        "type": "start",
        "model": config.model,
        "max_steps": config.max_steps,
        "time_budget_s": config.time_budget.as_secs(),
    }));
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let time_up = |step: u32| Outcome::Stopped {
        code: "time_budget",
        message: format!(
            "the agent used up its time budget of {} s after {step} step(s) without finishing",
            config.time_budget.as_secs()
        ),
    };
    let mut outcome = None;
    for step in 1..=config.max_steps {
        if remaining().is_zero() {
            outcome = Some(time_up(step - 1));
            break;
        }
        let call_timeout = config.llm_timeout.min(remaining());
        let turn = match llm.complete(&messages, &definitions, call_timeout).await {
            Ok(turn) => turn,
            Err(_) if remaining().is_zero() => {
                outcome = Some(time_up(step - 1));
                break;
            }
            Err(message) => {
                outcome = Some(Outcome::Stopped {
                    code: "inference",
                    message,
                });
                break;
            }
        };
        prompt_tokens += turn.prompt_tokens;
        completion_tokens += turn.completion_tokens;
        let message = turn.message;
        let text = message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned();
        let thinking = message
            .get("reasoning_content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let calls: Vec<Value> = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if calls.is_empty() {
            // A model that answers in plain text is done; that text is the answer.
            if !thinking.is_empty() {
                log.line(json!({"type": "thinking", "step": step, "text": thinking}));
            }
            outcome = Some(Outcome::Finished(text));
            break;
        }
        for shown in [thinking, text.as_str()] {
            if !shown.is_empty() {
                log.line(json!({"type": "thinking", "step": step, "text": shown}));
            }
        }
        messages.push(json!({
            "role": "assistant",
            "content": if text.is_empty() { Value::Null } else { Value::String(text.clone()) },
            "tool_calls": calls,
        }));
        for (index, call) in calls.iter().enumerate() {
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{step}_{index}"));
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let raw = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let arguments: Value = match serde_json::from_str(raw) {
                Ok(value @ Value::Object(_)) => value,
                _ => Value::Null,
            };
            log.line(json!({"type": "tool_call", "step": step, "id": id, "tool": name, "input": arguments}));
            if name == "finish" {
                let answer = arguments
                    .get("answer")
                    .and_then(Value::as_str)
                    .unwrap_or(&text)
                    .to_owned();
                log.line(json!({"type": "tool_result", "step": step, "id": id, "tool": name, "ok": true, "summary": "finished", "duration_ms": 0}));
                outcome = Some(Outcome::Finished(answer));
                break;
            }
            let call_started = Instant::now();
            let result = if arguments.is_null() {
                tools::ToolOutcome {
                    ok: false,
                    output: format!("error: the arguments of {name} are not a JSON object: {raw}"),
                    summary: "arguments are not a JSON object".into(),
                }
            } else {
                tools.call(name, &arguments, remaining()).await
            };
            log.line(json!({
                "type": "tool_result", "step": step, "id": id, "tool": name, "ok": result.ok,
                "summary": result.summary, "duration_ms": call_started.elapsed().as_millis() as u64,
            }));
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": result.output}));
        }
        if outcome.is_some() {
            break;
        }
    }
    let outcome = outcome.unwrap_or_else(|| Outcome::Stopped {
        code: "step_budget",
        message: format!(
            "the agent used all {} steps without finishing",
            config.max_steps
        ),
    });
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens});
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &outcome {
        Outcome::Finished(answer) => log.line(
            json!({"type": "final", "answer": answer, "usage": usage, "elapsed_ms": elapsed_ms}),
        ),
        Outcome::Stopped { code, message } => log.line(json!({
            "type": "error", "code": code, "message": message, "usage": usage, "elapsed_ms": elapsed_ms,
        })),
    }
    outcome
}
