//! Every failure the gateway reports, mapped in one place to an HTTP status, an OpenAI error
//! envelope, a log level and a metrics label.

use http::StatusCode;
use janus_core::{ErrorEnvelope, ErrorKind, ValidationError};

/// A failure while serving a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The request body failed validation.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The body is over the limit, did not arrive in time (408), or broke off.
    #[error("{0}")]
    Body(janus_http::BodyError),
    /// API keys are configured and the request has none or a wrong one.
    #[error("{0}")]
    Unauthorized(janus_http::AuthError),
    /// `competitor_id` names no configured competitor.
    #[error("competitor '{0}' is not registered")]
    CompetitorNotFound(String),
    /// `--strict-models` is on and `model` names no competitor.
    #[error("model '{0}' is not a competitor of this gateway (see GET /v1/models)")]
    ModelNotFound(String),
    /// The competitor is at its concurrency limit.
    #[error("competitor '{0}' is at its concurrent request limit; retry shortly")]
    CompetitorBusy(String),
    /// No route for this path.
    #[error("no route for {0}")]
    NotFound(String),
    /// The path exists but not for this method.
    #[error("method {method} is not allowed for {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// The competitor could not be reached.
    #[error("competitor '{competitor}' is unreachable: {reason}")]
    Unreachable {
        /// Competitor id.
        competitor: String,
        /// Why.
        reason: String,
    },
    /// The competitor answered with an error status.
    #[error("competitor '{competitor}' answered {status}: {message}")]
    UpstreamStatus {
        /// Competitor id.
        competitor: String,
        /// Its status.
        status: StatusCode,
        /// Its error message, or a summary of its body.
        message: String,
        /// The competitor's own error envelope, passed through for 4xx.
        envelope: Option<Box<ErrorEnvelope>>,
    },
    /// The competitor's response is not what the contract says.
    #[error("competitor '{competitor}' sent an invalid response: {reason}")]
    InvalidUpstream {
        /// Competitor id.
        competitor: String,
        /// What was wrong.
        reason: String,
    },
    /// The connection to the competitor broke mid-response.
    #[error("competitor '{competitor}' connection failed mid-response: {reason}")]
    UpstreamReset {
        /// Competitor id.
        competitor: String,
        /// Why.
        reason: String,
    },
    /// The request ran past its total timeout.
    #[error("competitor '{competitor}' did not finish within {seconds:.0}s")]
    Timeout {
        /// Competitor id.
        competitor: String,
        /// The timeout.
        seconds: f64,
    },
    /// The gateway is shutting down and the grace period ran out.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// An artifact link whose capability does not verify (forged or altered).
    #[error("the artifact link is not valid")]
    CapabilityInvalid,
    /// An artifact link that expired, or an artifact nobody has.
    #[error("{0}")]
    ArtifactNotFound(String),
    /// A `Range` outside the artifact; `size` for `Content-Range: bytes */size`.
    #[error("the requested range is outside the artifact")]
    RangeNotSatisfiable {
        /// The artifact's size, when the competitor said.
        size: Option<u64>,
    },
}

impl GatewayError {
    /// HTTP status when the response has not started.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Invalid(_) => StatusCode::BAD_REQUEST,
            GatewayError::Body(e) => e.status(),
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::CompetitorNotFound(_)
            | GatewayError::ModelNotFound(_)
            | GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::CompetitorBusy(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::UpstreamStatus {
                status, envelope, ..
            } if status.is_client_error() && envelope.is_some() => *status,
            GatewayError::Unreachable { .. }
            | GatewayError::UpstreamStatus { .. }
            | GatewayError::InvalidUpstream { .. }
            | GatewayError::UpstreamReset { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::CapabilityInvalid => StatusCode::FORBIDDEN,
            GatewayError::ArtifactNotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    /// Machine-readable code (also the `outcome` label in logs and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Invalid(e) => e.code,
            GatewayError::Body(e) => e.code(),
            GatewayError::Unauthorized(_) => "invalid_api_key",
            GatewayError::CompetitorNotFound(_) => "competitor_not_found",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::CompetitorBusy(_) => "competitor_busy",
            GatewayError::NotFound(_) => "not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Unreachable { .. } => "upstream_unreachable",
            GatewayError::UpstreamStatus { .. } => "upstream_error",
            GatewayError::InvalidUpstream { .. } => "upstream_invalid",
            GatewayError::UpstreamReset { .. } => "upstream_reset",
            GatewayError::Timeout { .. } => "upstream_timeout",
            GatewayError::ShuttingDown => "shutting_down",
            GatewayError::CapabilityInvalid => "invalid_capability",
            GatewayError::ArtifactNotFound(_) => "artifact_not_found",
            GatewayError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        }
    }

    /// True for failures caused by the competitor (counted as upstream errors).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            GatewayError::Unreachable { .. }
                | GatewayError::UpstreamStatus { .. }
                | GatewayError::InvalidUpstream { .. }
                | GatewayError::UpstreamReset { .. }
                | GatewayError::Timeout { .. }
        )
    }

    /// The OpenAI error envelope.
    pub fn envelope(&self) -> ErrorEnvelope {
        match self {
            GatewayError::Invalid(e) => return e.to_envelope(),
            GatewayError::UpstreamStatus {
                envelope: Some(envelope),
                status,
                ..
            } if status.is_client_error() => return (**envelope).clone(),
            _ => {}
        }
        let kind = match self {
            GatewayError::Body(janus_http::BodyError::Timeout { .. }) => ErrorKind::Timeout,
            GatewayError::Invalid(_)
            | GatewayError::Body(_)
            | GatewayError::CompetitorNotFound(_)
            | GatewayError::ModelNotFound(_)
            | GatewayError::NotFound(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::ArtifactNotFound(_)
            | GatewayError::RangeNotSatisfiable { .. } => ErrorKind::InvalidRequest,
            GatewayError::Unauthorized(_) | GatewayError::CapabilityInvalid => {
                ErrorKind::Authentication
            }
            GatewayError::CompetitorBusy(_) => ErrorKind::RateLimit,
            GatewayError::Timeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Server,
        };
        let envelope = ErrorEnvelope::new(kind, self.to_string(), Some(self.code()));
        match self {
            GatewayError::CompetitorNotFound(_) => envelope.with_param("competitor_id"),
            GatewayError::ModelNotFound(_) => envelope.with_param("model"),
            _ => envelope,
        }
    }

    /// True when this is worth a warning in the logs (the gateway or a competitor failed),
    /// false for client mistakes.
    pub fn is_server_side(&self) -> bool {
        self.status().is_server_error()
    }
}
