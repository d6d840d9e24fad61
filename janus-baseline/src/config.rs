//! The baseline's settings: one `JANUS_BASELINE_*` environment variable each, with a
//! default (the README's table lists them all). The SDK's own flags (`--listen`, …) and
//! `SANDY_BASE_URL` / `SANDY_API_KEY` are read by the SDK.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the baseline can be told.
#[derive(Clone)]
pub struct Settings {
    /// OpenAI-compatible base URL (the part before `/chat/completions`) of platform
    /// inference (`JANUS_BASELINE_INFERENCE_URL`). Unset: not configured, every request
    /// gets an error saying so.
    pub inference_url: Option<String>,
    /// Bearer key for it (`JANUS_BASELINE_INFERENCE_KEY`; optional).
    pub inference_key: Option<String>,
    /// Model of the fast path (`JANUS_BASELINE_FAST_MODEL`).
    pub fast_model: String,
    /// Model of the fast path when the input has images (`JANUS_BASELINE_VISION_MODEL`).
    pub vision_model: String,
    /// Model the agent uses (`JANUS_BASELINE_AGENT_MODEL`).
    pub agent_model: String,
    /// A prompt estimated above this many tokens goes to the agent
    /// (`JANUS_BASELINE_LONG_PROMPT_TOKENS`, default 6000).
    pub long_prompt_tokens: u64,
    /// Longest wait for inference's first byte, and for each next event
    /// (`JANUS_BASELINE_INFERENCE_TIMEOUT`, default 60s).
    pub inference_timeout: Duration,
    /// Cap of one agent run (`JANUS_BASELINE_AGENT_TIMEOUT`, default 5m), shortened to end
    /// 10 s before the request's deadline.
    pub agent_timeout: Duration,
    /// Most model turns of the agent (`JANUS_BASELINE_AGENT_MAX_STEPS`, default 20).
    pub agent_max_steps: u32,
    /// Agent name sent to `agent/run` (`JANUS_BASELINE_AGENT`, default `janus-agent`);
    /// a request may name another.
    pub agent_name: String,
    /// A `janus-agent` binary copied into each sandbox at [`AGENT_PATH`](crate::AGENT_PATH)
    /// (`JANUS_BASELINE_AGENT_BINARY`). Unset: the sandbox's agent command is used as
    /// configured.
    pub agent_binary: Option<PathBuf>,
    /// Model endpoint as seen from inside the sandbox (`JANUS_BASELINE_AGENT_API_BASE`,
    /// default the inference URL: the sandbox service forwards its host and port).
    pub agent_api_base: Option<String>,
    /// Search endpoint handed to the agent's `web_search` when the baseline runs without
    /// the gateway's platform (`JANUS_BASELINE_SEARCH_URL`; unset: no web search).
    pub search_url: Option<String>,
    /// Behind the gateway: the path under the platform base the agent's `web_search`
    /// posts to (`JANUS_BASELINE_SEARCH_PATH`, e.g. `search` when the gateway serves a
    /// search service; unset: no web search). `janus up --search-url` sets it.
    pub search_path: Option<String>,
}

impl std::fmt::Debug for Settings {
    // Keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("inference_url", &self.inference_url)
            .field(
                "inference_key",
                &self.inference_key.as_ref().map(|_| "<redacted>"),
            )
            .field("fast_model", &self.fast_model)
            .field("vision_model", &self.vision_model)
            .field("agent_model", &self.agent_model)
            .field("long_prompt_tokens", &self.long_prompt_tokens)
            .field("agent_timeout", &self.agent_timeout)
            .field("agent_max_steps", &self.agent_max_steps)
            .field("agent_name", &self.agent_name)
            .field("agent_binary", &self.agent_binary)
            .field("search_url", &self.search_url)
            .field("search_path", &self.search_path)
            .finish_non_exhaustive()
    }
}

/// Default fast-path model (the reference baseline's).
pub const DEFAULT_FAST_MODEL: &str = "Qwen/Qwen3-Next-80B-A3B-Instruct";
/// Default vision model (the reference baseline's).
pub const DEFAULT_VISION_MODEL: &str = "Qwen/Qwen3-VL-235B-A22B-Instruct";
/// Default agent model (the reference baseline's).
pub const DEFAULT_AGENT_MODEL: &str = "MiniMaxAI/MiniMax-M2.5";
/// Default agent name.
pub const DEFAULT_AGENT_NAME: &str = "janus-agent";

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            inference_url: None,
            inference_key: None,
            fast_model: DEFAULT_FAST_MODEL.to_owned(),
            vision_model: DEFAULT_VISION_MODEL.to_owned(),
            agent_model: DEFAULT_AGENT_MODEL.to_owned(),
            long_prompt_tokens: 6000,
            inference_timeout: Duration::from_secs(60),
            agent_timeout: Duration::from_secs(300),
            agent_max_steps: 20,
            agent_name: DEFAULT_AGENT_NAME.to_owned(),
            agent_binary: None,
            agent_api_base: None,
            search_url: None,
            search_path: None,
        }
    }
}

impl Settings {
    /// From the process environment.
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(&|key| std::env::var(key).ok())
    }

    /// From any lookup; an empty value counts as unset. Errors name the variable.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let duration = |key: &'static str, default: Duration| match get(key) {
            None => Ok(default),
            Some(value) => match value.parse::<u64>() {
                Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
                _ => janus_http::parse_duration(&value, key).map_err(|e| e.to_string()),
            },
        };
        let number = |key: &str, default: u64| match get(key) {
            None => Ok(default),
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{key} must be a positive number, got '{value}'")),
        };
        let url = |key: &str| match get(key) {
            Some(value) if !value.starts_with("http://") && !value.starts_with("https://") => Err(
                format!("{key} must be an http:// or https:// URL, got '{value}'"),
            ),
            other => Ok(other.map(|v| v.trim_end_matches('/').to_owned())),
        };
        let defaults = Settings::default();
        Ok(Settings {
            inference_url: url("JANUS_BASELINE_INFERENCE_URL")?,
            inference_key: get("JANUS_BASELINE_INFERENCE_KEY"),
            fast_model: get("JANUS_BASELINE_FAST_MODEL").unwrap_or(defaults.fast_model),
            vision_model: get("JANUS_BASELINE_VISION_MODEL").unwrap_or(defaults.vision_model),
            agent_model: get("JANUS_BASELINE_AGENT_MODEL").unwrap_or(defaults.agent_model),
            long_prompt_tokens: number(
                "JANUS_BASELINE_LONG_PROMPT_TOKENS",
                defaults.long_prompt_tokens,
            )?,
            inference_timeout: duration(
                "JANUS_BASELINE_INFERENCE_TIMEOUT",
                defaults.inference_timeout,
            )?,
            agent_timeout: duration("JANUS_BASELINE_AGENT_TIMEOUT", defaults.agent_timeout)?,
            agent_max_steps: u32::try_from(number(
                "JANUS_BASELINE_AGENT_MAX_STEPS",
                u64::from(defaults.agent_max_steps),
            )?)
            .map_err(|_| "JANUS_BASELINE_AGENT_MAX_STEPS is too large".to_owned())?,
            agent_name: get("JANUS_BASELINE_AGENT").unwrap_or(defaults.agent_name),
            agent_binary: get("JANUS_BASELINE_AGENT_BINARY").map(PathBuf::from),
            agent_api_base: url("JANUS_BASELINE_AGENT_API_BASE")?,
            search_url: url("JANUS_BASELINE_SEARCH_URL")?,
            search_path: get("JANUS_BASELINE_SEARCH_PATH"),
        })
    }
}
