//! The seam between a request and what it may use: the inference endpoint, the sandbox
//! service, the deadline, and the agent it names.
//!
//! Behind the gateway every request carries its platform (`X-Janus-Platform-Url` and the
//! grant): inference is `<platform>/inference` with the grant as its key — for the fast
//! path and for the agent, which reaches the same URL inside its sandbox through the
//! sandbox service's platform forward — the sandbox service is `<platform>/sandbox`, and
//! the agent's `web_search` `<platform>/<JANUS_BASELINE_SEARCH_PATH>`. The deadline is the
//! earlier of the SDK's and `X-Janus-Deadline`; `X-Baseline-Agent` (or
//! `metadata.baseline_agent`) names an agent, `metadata.janus_path` forces a path.
//!
//! Without a platform (the baseline run on its own) the settings stand in:
//! `JANUS_BASELINE_INFERENCE_URL` / `_KEY`, `JANUS_BASELINE_AGENT_API_BASE`,
//! `JANUS_BASELINE_SEARCH_URL` and `SANDY_BASE_URL`. Nothing else reads the environment.

use std::time::{Duration, Instant};

use janus_competitor_sdk::{
    ChatCompletionRequest, CompetitorError, PlatformExt, RequestContext, SandyClient,
};
use serde_json::Value;

use crate::router::Path;
use crate::Settings;

/// An OpenAI-compatible endpoint: `{url}/chat/completions`, with an optional bearer key.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL (the part before `/chat/completions`).
    pub url: String,
    /// Bearer key.
    pub key: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What one request may use.
#[derive(Debug, Clone)]
pub struct Services {
    /// Platform inference, when configured.
    pub inference: Option<Endpoint>,
    /// The model endpoint as the agent reaches it from inside the sandbox.
    pub agent_inference: Option<Endpoint>,
    /// The sandbox service (Sandy API), when configured; sends the request id.
    pub sandy: Option<SandyClient>,
    /// The search endpoint the agent's `web_search` posts to, with the agent's key.
    pub agent_search: Option<String>,
    /// When the request will be ended by whoever called us.
    pub deadline: Instant,
    /// An agent the request names (the `X-Baseline-Agent` header, else
    /// `metadata.baseline_agent`). Naming one also chooses the agent path, as in the
    /// reference.
    pub agent_override: Option<String>,
    /// `metadata.janus_path`: `fast` or `agent`.
    pub forced_path: Option<Path>,
}

/// The metadata key that chooses a path.
pub const PATH_KEY: &str = "janus_path";
/// The metadata key that names an agent (as the `X-Baseline-Agent` header does).
pub const AGENT_KEY: &str = "baseline_agent";
/// The header that names an agent (the gateway forwards it).
pub const AGENT_HEADER: &str = "x-baseline-agent";

impl Services {
    /// Resolves the services of one request; a `metadata.janus_path` that is neither
    /// `fast` nor `agent` is a bad request.
    pub fn for_request(
        settings: &Settings,
        sandy: Option<&SandyClient>,
        request: &ChatCompletionRequest,
        context: &RequestContext,
    ) -> Result<Services, CompetitorError> {
        let metadata = |key: &str| {
            request
                .metadata
                .as_ref()
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let platform = context.platform();
        let (inference, agent_inference, sandy, agent_search) = match &platform {
            Some(platform) => {
                let key = context.platform.as_ref().map(|a| a.grant().to_owned());
                let inference = Endpoint {
                    url: format!("{}/inference", platform.url()),
                    key,
                };
                let search = settings
                    .search_path
                    .as_ref()
                    .map(|path| format!("{}/{}", platform.url(), path.trim_start_matches('/')));
                (
                    Some(inference.clone()),
                    Some(inference),
                    Some(platform.sandy()),
                    search,
                )
            }
            None => {
                let inference = settings.inference_url.as_ref().map(|url| Endpoint {
                    url: url.clone(),
                    key: settings.inference_key.clone(),
                });
                let agent_inference = settings
                    .agent_api_base
                    .as_ref()
                    .map(|url| Endpoint {
                        url: url.clone(),
                        key: settings.inference_key.clone(),
                    })
                    .or_else(|| inference.clone());
                let sandy = sandy.map(|client| client.with_request_id(&context.request_id));
                (
                    inference,
                    agent_inference,
                    sandy,
                    settings.search_url.clone(),
                )
            }
        };
        let forced_path = match metadata(PATH_KEY) {
            None => None,
            Some(value) => Some(Path::parse(&value).ok_or_else(|| {
                CompetitorError::BadRequest(format!(
                    "metadata.{PATH_KEY} must be \"fast\" or \"agent\", got \"{value}\""
                ))
            })?),
        };
        let agent_override = context
            .headers
            .get(AGENT_HEADER)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .or_else(|| metadata(AGENT_KEY));
        Ok(Services {
            inference,
            agent_inference,
            sandy,
            agent_search,
            deadline: context.ends_at(),
            agent_override,
            forced_path,
        })
    }

    /// The agent's cap: the setting, shortened to end 10 s before the deadline so the
    /// "time is up" message reaches the client before the cut.
    pub fn agent_cap(&self, setting: Duration) -> Duration {
        let before_deadline = self
            .deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_secs(10));
        setting.min(before_deadline)
    }
}
