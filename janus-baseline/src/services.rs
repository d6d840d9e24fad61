//! The seam between a request and what it may use: the inference endpoint, the sandbox
//! service, the deadline, and the agent it names.
//!
//! Today these come from the settings (`JANUS_BASELINE_INFERENCE_URL` / `_KEY`,
//! `SANDY_BASE_URL`), the SDK's request deadline and the request's `metadata`. With the
//! gateway's platform (per-request grant and URL, `X-Janus-Deadline`, `X-Baseline-Agent`)
//! only [`Services::for_request`] changes: the endpoint becomes `<platform>/inference`
//! with the grant as its key, the sandbox client `<platform>/sandbox` with the grant, the
//! deadline the header's, and the agent the header's. Nothing else reads the environment.

use std::time::{Duration, Instant};

use janus_competitor_sdk::{ChatCompletionRequest, CompetitorError, RequestContext, SandyClient};
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
    /// When the request will be ended by whoever called us.
    pub deadline: Instant,
    /// An agent the request names (`metadata.baseline_agent` today; the `X-Baseline-Agent`
    /// header with the platform). Naming one also chooses the agent path, as in the
    /// reference.
    pub agent_override: Option<String>,
    /// `metadata.janus_path`: `fast` or `agent`.
    pub forced_path: Option<Path>,
}

/// The metadata key that chooses a path.
pub const PATH_KEY: &str = "janus_path";
/// The metadata key that names an agent (stand-in for `X-Baseline-Agent`).
pub const AGENT_KEY: &str = "baseline_agent";

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
        let forced_path = match metadata(PATH_KEY) {
            None => None,
            Some(value) => Some(Path::parse(&value).ok_or_else(|| {
                CompetitorError::BadRequest(format!(
                    "metadata.{PATH_KEY} must be \"fast\" or \"agent\", got \"{value}\""
                ))
            })?),
        };
        Ok(Services {
            inference,
            agent_inference,
            sandy: sandy.map(|client| client.with_request_id(&context.request_id)),
            deadline: context.deadline,
            agent_override: metadata(AGENT_KEY),
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
