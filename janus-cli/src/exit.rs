//! The `janus` exit codes and how a failure is reported (README, "Exit codes").
//!
//! - 0: success.
//! - 1: the gateway or competitor answered with an error (an error event, a 4xx/5xx, a
//!   failed conformance check, a competitor not ready).
//! - 2: a usage or configuration error (bad flags, a taken port, an unreadable file).
//! - 3: could not connect, or a deadline ran out.
//!
//! With `--json`, a failure also prints one JSON object on stdout:
//! `{"error": {"message", "type", "code"}}`, `type` being `api_error`, `usage_error` or
//! `connection_error` and `code` the exit code.

use std::process::ExitCode;

use janus_client::ClientError;

/// Exit code: the gateway or competitor answered with an error.
pub const ANSWERED_ERROR: u8 = 1;
/// Exit code: usage or configuration error.
pub const USAGE: u8 = 2;
/// Exit code: could not connect or timed out.
pub const UNREACHABLE: u8 = 3;

/// A failure whose class is known where it happens (unreachable peers are told by the
/// client's own error, [`ClientError::is_unreachable`]).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The peer answered with an error.
    #[error("{0}")]
    Answered(String),
    /// Bad usage or configuration.
    #[error("{0}")]
    Usage(String),
}

/// The exit code for an error: the first classified cause in its chain decides.
pub fn code_of(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return match failure {
                Failure::Answered(_) => ANSWERED_ERROR,
                Failure::Usage(_) => USAGE,
            };
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return if client.is_unreachable() {
                UNREACHABLE
            } else if matches!(client, ClientError::BadUrl { .. }) {
                USAGE
            } else {
                ANSWERED_ERROR
            };
        }
        if cause.downcast_ref::<crate::bench::Unreachable>().is_some() {
            return UNREACHABLE;
        }
        if cause.downcast_ref::<janus_gateway::ConfigError>().is_some() {
            return USAGE;
        }
    }
    ANSWERED_ERROR
}

/// The `type` of the JSON error object for an exit code.
fn kind_of(code: u8) -> &'static str {
    match code {
        USAGE => "usage_error",
        UNREACHABLE => "connection_error",
        _ => "api_error",
    }
}

/// The one JSON object `--json` prints on stdout for a failure.
pub fn json_error(message: &str, code: u8) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "type": kind_of(code), "code": code}})
}

/// Reports `error` (stderr, and stdout as JSON with `--json`) and gives its exit code.
pub fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    let code = code_of(error);
    let message = format!("{error:#}");
    eprintln!("janus: {message}");
    if json {
        println!("{}", json_error(&message, code));
    }
    ExitCode::from(code)
}
