//! A small HTTP client over one pooled hyper-util client, with SSE reading that timestamps
//! every item (events and comments), which the conformance kit and `janus chat` both need.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_http::{SseReadError, SseReader};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is unusable.
    #[error("bad url '{url}': {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting or sending failed.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Reading the body failed.
    #[error("reading the response from {url} failed: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time; `deadline` says which wait ran out.
    #[error("{url} {deadline} {}", humanize(*after))]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
        /// Which wait ran out.
        deadline: Deadline,
    },
    /// The SSE framing broke.
    #[error("malformed event stream from {url}: {reason}")]
    Stream {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Which wait of a call ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Deadline {
    /// Connecting, sending the request and receiving the response head.
    FirstByte,
    /// The whole response, body included (non-streamed calls).
    Total,
    /// Silence in the middle of an event stream that had started.
    Idle,
}

impl std::fmt::Display for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Deadline::FirstByte => "did not answer (connect and first byte) within",
            Deadline::Total => "did not send the whole response within",
            Deadline::Idle => "started streaming, then went silent for",
        })
    }
}

fn humanize(after: Duration) -> String {
    if after.subsec_millis() == 0 {
        format!("{} s", after.as_secs())
    } else {
        format!("{:.1} s", after.as_secs_f64())
    }
}

impl ClientError {
    /// True when the peer could not be reached or did not answer in time (as opposed to
    /// answering something wrong, or a bad URL).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Transport { .. } | ClientError::Timeout { .. } | ClientError::Body { .. }
        )
    }
}

/// A complete (non-streamed) response.
#[derive(Debug, Clone)]
pub struct FullResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl FullResponse {
    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub use janus_http::TimedItem;

/// An open SSE response being read (janus-http's timed [`SseReader`] with this call's URL
/// in its errors, and every received byte kept for byte-level checks).
#[derive(Debug)]
pub struct EventStream {
    url: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// When the request was sent.
    pub started: Instant,
    /// When the response head arrived.
    pub head_at: Duration,
    reader: SseReader<Incoming>,
    /// Raw bytes received so far.
    pub raw: Vec<u8>,
}

impl EventStream {
    /// The next item, or `None` at the end of the body. `idle` bounds the wait.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<TimedItem>, ClientError> {
        let url = &self.url;
        self.reader
            .next_with_raw(idle, Some(&mut self.raw))
            .await
            .map_err(|error| match error {
                SseReadError::Idle(after) => ClientError::Timeout {
                    url: url.clone(),
                    after,
                    deadline: Deadline::Idle,
                },
                SseReadError::Framing(reason) => ClientError::Stream {
                    url: url.clone(),
                    reason,
                },
                other => ClientError::Body {
                    url: url.clone(),
                    reason: other.to_string(),
                },
            })
    }
}

/// The pooled client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
    api_key: Option<String>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(None)
    }
}

/// Largest non-streamed body read.
const MAX_BODY: usize = 256 * 1024 * 1024;

impl HttpClient {
    /// A client; `api_key` goes out as `Authorization: Bearer`.
    pub fn new(api_key: Option<String>) -> Self {
        let inner = janus_http::build_client(Duration::from_secs(5));
        HttpClient { inner, api_key }
    }

    fn request(
        &self,
        method: http::Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| ClientError::BadUrl {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::BadUrl {
                url: url.to_owned(),
                reason: "only http:// URLs are supported".to_owned(),
            });
        }
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(key) = &self.api_key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::BadUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        url: &str,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, ClientError> {
        match tokio::time::timeout(timeout, self.inner.request(request)).await {
            Err(_) => Err(ClientError::Timeout {
                url: url.to_owned(),
                after: timeout,
                deadline: Deadline::FirstByte,
            }),
            Ok(Err(e)) => Err(ClientError::Transport {
                url: url.to_owned(),
                reason: janus_core::error_chain(&e),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// GET, whole body.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<FullResponse, ClientError> {
        let request = self.request(http::Method::GET, url, None)?;
        self.full(request, url, timeout).await
    }

    /// POST JSON, whole body.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<FullResponse, ClientError> {
        let request = self.request(http::Method::POST, url, Some(body))?;
        self.full(request, url, timeout).await
    }

    async fn full(
        &self,
        request: Request<Full<Bytes>>,
        url: &str,
        timeout: Duration,
    ) -> Result<FullResponse, ClientError> {
        let deadline = Instant::now() + timeout;
        let response = self.send(request, url, timeout).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let body = match tokio::time::timeout(
            left,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Timeout {
                    url: url.to_owned(),
                    after: timeout,
                    deadline: Deadline::Total,
                })
            }
            Ok(Err(e)) => {
                return Err(ClientError::Body {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        Ok(FullResponse {
            status,
            headers,
            body,
        })
    }

    /// POST JSON and read the answer as an event stream.
    pub async fn post_stream(
        &self,
        url: &str,
        body: Bytes,
        head_timeout: Duration,
    ) -> Result<EventStream, ClientError> {
        let mut request = self.request(http::Method::POST, url, Some(body))?;
        request.headers_mut().insert(
            header::ACCEPT,
            http::HeaderValue::from_static("text/event-stream"),
        );
        let started = Instant::now();
        let response = self.send(request, url, head_timeout).await?;
        Ok(EventStream {
            url: url.to_owned(),
            status: response.status(),
            headers: response.headers().clone(),
            started,
            head_at: started.elapsed(),
            reader: SseReader::new(response.into_body(), started),
            raw: Vec::new(),
        })
    }
}
