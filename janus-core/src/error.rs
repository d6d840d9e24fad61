//! The OpenAI error envelope: `{"error":{"message","type","param","code"}}`.
//!
//! `param` and `code` are always present as keys (`null` when unknown), exactly like OpenAI,
//! because SDKs read them by name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `type` of an error, as OpenAI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed request (400, 404 for unknown things, 413).
    InvalidRequest,
    /// Missing or wrong credentials (401).
    Authentication,
    /// Too many requests (429).
    RateLimit,
    /// Something failed on our side or upstream (5xx, stream errors).
    Server,
    /// An upstream did not answer in time (504).
    Timeout,
}

impl ErrorKind {
    /// The wire `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Server => "server_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }
}

/// The body inside `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message.
    pub message: String,
    /// `invalid_request_error`, `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON path of the offending request field, if any.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code, e.g. `competitor_not_found`.
    #[serde(default)]
    pub code: Option<String>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

impl ErrorEnvelope {
    /// An envelope of this kind with a message and an optional code.
    pub fn new(kind: ErrorKind, message: impl Into<String>, code: Option<&str>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                message: message.into(),
                kind: kind.as_str().to_owned(),
                param: None,
                code: code.map(str::to_owned),
                extra: Map::new(),
            },
        }
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.error.param = Some(param.into());
        self
    }

    /// The JSON bytes of the envelope.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and maps into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }

    /// The SSE event `data: {"error":…}\n\n` that reports this error mid-stream.
    pub fn to_sse_event(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.error.message.len() + 96);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&self.to_json());
        out.extend_from_slice(b"\n\n");
        out
    }
}

/// `error: cause: cause …` — for errors (hyper's among them) whose `Display` hides the
/// interesting part in their sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
