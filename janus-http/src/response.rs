//! Response helpers: the one body type every server answers with, and the OpenAI error
//! envelope responses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use janus_core::{ErrorEnvelope, ErrorKind};

/// Error type of response bodies (streams may fail mid-way, e.g. a file read).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body of every response a Janus server sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose errors convert into [`BoxError`].
pub fn boxed<B>(body: B) -> ResponseBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// `status` with a JSON body.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `status` with the OpenAI error envelope.
pub fn error_response(status: StatusCode, envelope: &ErrorEnvelope) -> Response<ResponseBody> {
    let mut response = json_response(status, envelope.to_json());
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// 404 with `code` (`not_found`, `artifact_not_found`, …).
pub fn not_found(message: impl Into<String>, code: &str) -> Response<ResponseBody> {
    error_response(
        StatusCode::NOT_FOUND,
        &ErrorEnvelope::new(ErrorKind::InvalidRequest, message, Some(code)),
    )
}

/// 405 naming the allowed methods, with `Allow`.
pub fn method_not_allowed(method: &http::Method, allow: &'static str) -> Response<ResponseBody> {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &ErrorEnvelope::new(
            ErrorKind::InvalidRequest,
            format!("method {method} not allowed here; use {allow}"),
            Some("method_not_allowed"),
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 503 `server_overloaded` with `Retry-After`, sent when every connection slot is busy.
pub fn overloaded(retry_after_seconds: u32) -> Response<ResponseBody> {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &ErrorEnvelope::new(
            ErrorKind::Server,
            "the server is at its connection limit; retry shortly",
            Some("server_overloaded"),
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `text/plain` Prometheus exposition.
pub fn metrics_response(text: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
