//! Reading a request body with a size cap and a deadline, into one buffer.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use janus_core::{ErrorEnvelope, ErrorKind};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Longer than the limit (declared or actual).
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The whole body did not arrive by the deadline.
    #[error("the request body did not arrive within {seconds}s")]
    Timeout {
        /// The time the body had, in seconds.
        seconds: f64,
    },
    /// The connection failed while reading.
    #[error("could not read the request body: {0}")]
    Read(String),
}

impl BodyError {
    /// 413, 408 or 400.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// `request_too_large`, `request_timeout` or `body_read_error`.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "request_too_large",
            BodyError::Timeout { .. } => "request_timeout",
            BodyError::Read(_) => "body_read_error",
        }
    }

    /// The error envelope.
    pub fn envelope(&self) -> ErrorEnvelope {
        let kind = match self {
            BodyError::Timeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::InvalidRequest,
        };
        ErrorEnvelope::new(kind, self.to_string(), Some(self.code()))
    }
}

/// Reads the whole body into one contiguous buffer: at most `limit` bytes, all of it by
/// `deadline`. The buffer is sized from `Content-Length` (capped at `limit`) up front, so
/// a body costs its own size once, not twice as with collect-then-copy.
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    match tokio::time::timeout_at(deadline, collect(body, limit, capacity)).await {
        Ok(result) => result,
        Err(_) => Err(BodyError::Timeout {
            seconds: (budget.as_secs_f64() * 1000.0).round() / 1000.0,
        }),
    }
}

async fn collect<B>(mut body: B, limit: usize, capacity: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut first: Option<Bytes> = None;
    let mut buffer: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let so_far =
            buffer.as_ref().map_or(0, BytesMut::len) + first.as_ref().map_or(0, Bytes::len);
        if so_far + data.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        match (&mut buffer, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&data),
            // A body in one frame is passed on as it is, without a copy.
            (None, None) => first = Some(data),
            (None, Some(head)) => {
                let mut joined = BytesMut::with_capacity(capacity.max(head.len() + data.len()));
                joined.extend_from_slice(&head);
                joined.extend_from_slice(&data);
                buffer = Some(joined);
            }
        }
    }
    Ok(match (buffer, first) {
        (Some(buffer), _) => buffer.freeze(),
        (None, Some(first)) => first,
        (None, None) => Bytes::new(),
    })
}
