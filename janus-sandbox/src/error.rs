//! Service errors, mapped in one place to a status and the OpenAI-style error envelope.

use http::StatusCode;
use janus_core::{ErrorEnvelope, ErrorKind};

/// A failed API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// Bad input, naming the field.
    #[error("{message}")]
    BadRequest {
        /// The offending field.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// Missing or wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The body did not arrive in time or broke off.
    #[error("{0}")]
    Body(janus_http::BodyError),
    /// No such sandbox (never existed or expired).
    #[error("sandbox '{0}' not found")]
    NotFound(String),
    /// No such file in the workspace.
    #[error("file '{0}' not found in the sandbox")]
    FileNotFound(String),
    /// The sandbox was terminated.
    #[error("sandbox '{0}' was terminated")]
    Terminated(String),
    /// At capacity and nothing may be preempted.
    #[error("the command of sandbox '{0}' is still running")]
    ServiceRunning(String),
    #[error("at capacity ({0} sandboxes) and no lower-priority preemptable sandbox to stop")]
    AtCapacity(usize),
    /// The body (or a file) is over the limit.
    #[error("larger than the {0}-byte limit")]
    TooLarge(usize),
    /// Not part of this service yet.
    #[error("{0} is not implemented by this sandbox service yet")]
    NotImplemented(&'static str),
    /// Unknown route.
    #[error("no route for {0}")]
    NoRoute(String),
    /// Nothing answers inside the sandbox (proxy).
    #[error("{0}")]
    BadGateway(String),
    /// The process inside took the request and closed the connection without answering
    /// (it crashed, or was killed at a limit): the request must not be replayed.
    #[error("{0}")]
    UpstreamClosed(String),
    /// Something failed on the service side.
    #[error("{0}")]
    Internal(String),
}

impl SandboxError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            SandboxError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            SandboxError::Unauthorized => StatusCode::UNAUTHORIZED,
            SandboxError::Body(e) => e.status(),
            SandboxError::NotFound(_)
            | SandboxError::FileNotFound(_)
            | SandboxError::NoRoute(_) => StatusCode::NOT_FOUND,
            SandboxError::Terminated(_) | SandboxError::ServiceRunning(_) => StatusCode::CONFLICT,
            SandboxError::AtCapacity(_) => StatusCode::TOO_MANY_REQUESTS,
            SandboxError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SandboxError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            SandboxError::BadGateway(_) | SandboxError::UpstreamClosed(_) => {
                StatusCode::BAD_GATEWAY
            }
            SandboxError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SandboxError::BadRequest { .. } => "invalid_value",
            SandboxError::Unauthorized => "invalid_api_key",
            SandboxError::Body(e) => e.code(),
            SandboxError::NotFound(_) => "sandbox_not_found",
            SandboxError::FileNotFound(_) => "file_not_found",
            SandboxError::Terminated(_) => "sandbox_terminated",
            SandboxError::ServiceRunning(_) => "service_running",
            SandboxError::AtCapacity(_) => "at_capacity",
            SandboxError::TooLarge(_) => "request_too_large",
            SandboxError::NotImplemented(_) => "not_implemented",
            SandboxError::NoRoute(_) => "not_found",
            SandboxError::BadGateway(_) => "upstream_unreachable",
            SandboxError::UpstreamClosed(_) => "upstream_closed",
            SandboxError::Internal(_) => "sandbox_error",
        }
    }

    /// The error envelope.
    pub fn envelope(&self) -> ErrorEnvelope {
        let kind = match self.status() {
            StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
            StatusCode::REQUEST_TIMEOUT => ErrorKind::Timeout,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimit,
            s if s.is_server_error() => ErrorKind::Server,
            _ => ErrorKind::InvalidRequest,
        };
        let envelope = ErrorEnvelope::new(kind, self.to_string(), Some(self.code()));
        match self {
            SandboxError::BadRequest { param, .. } => envelope.with_param(param.clone()),
            _ => envelope,
        }
    }
}
