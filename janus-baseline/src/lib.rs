//! `janus-baseline`: the baseline competitor (id `baseline`), the one every competitor is
//! measured against and the one authors fork.
//!
//! Per request, [`route`] picks a path:
//!
//! - **fast**: one streaming call to platform inference; `content` and the upstream's
//!   `reasoning_content` are relayed as they arrive, usage passed on. Images in the input
//!   pick the vision model.
//! - **agent**: a sandbox (Sandy API), the `janus-agent` CLI agent run through the
//!   sandbox's `agent/run`, each step streamed as reasoning and `tool_start` / `tool_end`,
//!   the files it leaves in `/workspace/artifacts` as artifacts, its answer as content,
//!   `sandbox_seconds` in the usage.
//!
//! Map: `config` ([`Settings`], the `JANUS_BASELINE_*` variables), `router` ([`route`]),
//! `services` ([`Services`], the one seam between a request and the platform),
//! `inference` (the fast path), `agent` (the agent path).

mod agent;
mod config;
mod inference;
mod router;
mod services;

use std::time::Duration;

use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, Message,
    MessageContent, RequestContext, SandyClient,
};

pub use agent::{task_prompt, AGENT_PATH, SANDBOX_AGENT_COMMAND};
pub use config::{
    Settings, DEFAULT_AGENT_MODEL, DEFAULT_AGENT_NAME, DEFAULT_FAST_MODEL, DEFAULT_VISION_MODEL,
};
pub use inference::{stream_completion, upstream_body, HttpClient, StreamSummary};
pub use router::{estimate_tokens, route, Path, Route, RouteInput};
pub use services::{Endpoint, Services, AGENT_KEY, PATH_KEY};

/// The competitor id.
pub const ID: &str = "baseline";

/// The baseline competitor.
#[derive(Debug, Clone)]
pub struct Baseline {
    settings: Settings,
    sandy: Option<SandyClient>,
    http: HttpClient,
}

impl Baseline {
    /// A baseline with these settings and sandbox service.
    pub fn new(settings: Settings, sandy: Option<SandyClient>) -> Baseline {
        Baseline {
            settings,
            sandy,
            http: janus_http::build_client(Duration::from_secs(10)),
        }
    }

    /// From the environment: the `JANUS_BASELINE_*` settings and `SANDY_BASE_URL`.
    pub fn from_env() -> Result<Baseline, String> {
        Ok(Baseline::new(
            Settings::from_env()?,
            SandyClient::from_env(),
        ))
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

fn message_content(message: &Message) -> Option<&MessageContent> {
    match message {
        Message::System { content, .. }
        | Message::Developer { content, .. }
        | Message::User { content, .. }
        | Message::Tool { content, .. } => Some(content),
        Message::Assistant { content, .. } => content.as_ref(),
    }
}

/// The router's view of a request.
pub fn route_request(
    request: &ChatCompletionRequest,
    services: &Services,
    long_prompt_tokens: u64,
) -> Route {
    let text = request.last_user_text().unwrap_or_default();
    let chars: usize = request
        .messages
        .iter()
        .filter_map(message_content)
        .map(|c| c.text().len())
        .sum();
    let has_images = request
        .messages
        .iter()
        .filter_map(message_content)
        .any(|c| !c.image_urls().is_empty());
    let forced = services
        .forced_path
        .or(services.agent_override.as_ref().map(|_| Path::Agent));
    route(
        &RouteInput {
            text: &text,
            prompt_tokens: estimate_tokens(chars),
            has_images,
            forced,
        },
        long_prompt_tokens,
    )
}

#[async_trait]
impl Competitor for Baseline {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let services =
            Services::for_request(&self.settings, self.sandy.as_ref(), &request, &context)?;
        let decided = route_request(&request, &services, self.settings.long_prompt_tokens);
        let mut path = decided.path;
        // Guessed (not chosen) agent work without a sandbox service: answer on the fast
        // path and say so, rather than fail a request inference can still help with.
        if path == Path::Agent
            && services.sandy.is_none()
            && services.forced_path.is_none()
            && services.agent_override.is_none()
        {
            out.reasoning(&format!(
                "This looks like agent work ({}), but no sandbox service is configured (SANDY_BASE_URL): answering without tools.\n",
                decided.reason
            ))
            .await?;
            path = Path::Fast;
        }
        tracing::info!(path = path.as_str(), reason = decided.reason, "routed");
        match path {
            Path::Agent => {
                out.reasoning(&format!("Agent path: {}.\n", decided.reason))
                    .await?;
                agent::run(&self.settings, &services, &request, out).await
            }
            Path::Fast => {
                let endpoint = services.inference.as_ref().ok_or_else(|| {
                    CompetitorError::Internal(
                        "platform inference is not configured (JANUS_BASELINE_INFERENCE_URL)"
                            .into(),
                    )
                })?;
                let model = if decided.vision {
                    &self.settings.vision_model
                } else {
                    &self.settings.fast_model
                };
                let body = upstream_body(&request, model);
                let summary = stream_completion(
                    &self.http,
                    endpoint,
                    &body,
                    &context.request_id,
                    self.settings.inference_timeout,
                    out,
                )
                .await?;
                if let Some(usage) = summary.usage {
                    out.usage(usage).await?;
                }
                if let Some(reason) = summary.finish_reason {
                    out.finish(&reason).await?;
                }
                Ok(())
            }
        }
    }
}
