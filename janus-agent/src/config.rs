//! The agent's settings: `JANUS_AGENT_*` environment variables, each with a default.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the agent needs to run one task.
#[derive(Clone)]
pub struct Config {
    /// The task (`JANUS_AGENT_PROMPT`, else `.janus/prompt.txt` in the workspace).
    pub prompt: String,
    /// The system prompt (`JANUS_AGENT_SYSTEM_PROMPT`, else [`DEFAULT_SYSTEM_PROMPT`]).
    pub system_prompt: String,
    /// The model (`JANUS_AGENT_MODEL`, default `default`).
    pub model: String,
    /// OpenAI-compatible base URL, the part before `/chat/completions`
    /// (`JANUS_AGENT_API_BASE_URL`; required).
    pub api_base: String,
    /// Bearer key for the endpoint (`JANUS_AGENT_API_KEY`; optional).
    pub api_key: Option<String>,
    /// Most model turns (`JANUS_AGENT_MAX_STEPS`, default 20).
    pub max_steps: u32,
    /// Wall-clock budget for the whole task (`JANUS_AGENT_TIME_BUDGET`, seconds, default 240).
    pub time_budget: Duration,
    /// Longest single model call (`JANUS_AGENT_LLM_TIMEOUT`, seconds, default 120).
    pub llm_timeout: Duration,
    /// Longest shell command (`JANUS_AGENT_SHELL_TIMEOUT`, seconds, default 60).
    pub shell_timeout: Duration,
    /// Bytes of tool output shown to the model (`JANUS_AGENT_OUTPUT_LIMIT`, default 16384).
    pub output_limit: usize,
    /// Where tools work (`JANUS_AGENT_WORKSPACE`, default the current directory, which
    /// `agent/run` sets to `/workspace`).
    pub workspace: PathBuf,
    /// Platform search endpoint; `web_search` is offered only when set
    /// (`JANUS_AGENT_SEARCH_URL`).
    pub search_url: Option<String>,
}

impl std::fmt::Debug for Config {
    // The key stays out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("model", &self.model)
            .field("api_base", &self.api_base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("max_steps", &self.max_steps)
            .field("time_budget", &self.time_budget)
            .field("workspace", &self.workspace)
            .field("search_url", &self.search_url)
            .finish_non_exhaustive()
    }
}

/// The system prompt when `JANUS_AGENT_SYSTEM_PROMPT` is unset.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a capable autonomous agent working in a Linux sandbox. \
Your working directory is /workspace. Use the tools to do the task for real: write files, run code, \
check results. Files the user should receive go in /workspace/artifacts. Keep tool calls purposeful. \
When the task is done, call finish with the complete answer for the user (mention the files you made).";

fn number<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    match get(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{key} must be a number, got '{value}'")),
    }
}

impl Config {
    /// From the process environment.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(&|key| std::env::var(key).ok())
    }

    /// From any lookup (tests pass a map).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let workspace = match get("JANUS_AGENT_WORKSPACE").filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => std::env::current_dir()
                .map_err(|e| format!("cannot read the current directory: {e}"))?,
        };
        let prompt = match get("JANUS_AGENT_PROMPT").filter(|v| !v.trim().is_empty()) {
            Some(prompt) => prompt,
            None => std::fs::read_to_string(workspace.join(".janus/prompt.txt"))
                .ok()
                .filter(|p| !p.trim().is_empty())
                .ok_or("no task: JANUS_AGENT_PROMPT is unset and .janus/prompt.txt is missing")?,
        };
        let api_base = get("JANUS_AGENT_API_BASE_URL")
            .filter(|v| !v.trim().is_empty())
            .ok_or("JANUS_AGENT_API_BASE_URL is unset: the agent has no model endpoint")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let seconds = |key: &str, default: u64| number(get, key, default).map(Duration::from_secs);
        let max_steps = number(get, "JANUS_AGENT_MAX_STEPS", 20u32)?;
        if max_steps == 0 {
            return Err("JANUS_AGENT_MAX_STEPS must be at least 1".into());
        }
        Ok(Config {
            prompt,
            system_prompt: get("JANUS_AGENT_SYSTEM_PROMPT")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
            model: get("JANUS_AGENT_MODEL")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            api_base,
            api_key: get("JANUS_AGENT_API_KEY").filter(|v| !v.is_empty()),
            max_steps,
            time_budget: seconds("JANUS_AGENT_TIME_BUDGET", 240)?,
            llm_timeout: seconds("JANUS_AGENT_LLM_TIMEOUT", 120)?,
            shell_timeout: seconds("JANUS_AGENT_SHELL_TIMEOUT", 60)?,
            output_limit: number(get, "JANUS_AGENT_OUTPUT_LIMIT", 16384usize)?,
            workspace,
            search_url: get("JANUS_AGENT_SEARCH_URL").filter(|v| !v.trim().is_empty()),
        })
    }
}
