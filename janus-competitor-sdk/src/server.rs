//! The competitor's routes (`/v1/chat/completions`, `/health`, `/metrics`,
//! `/artifacts/<id>`) on `janus_http::serve`, which owns connections, timeouts, drain and
//! request ids.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use janus_core::contract::{
    ARTIFACT_BASE_HEADER, CHAT_COMPLETIONS_PATH, CORRELATION_ID_HEADER, EVENT_STREAM_CONTENT_TYPE,
    HEALTH_PATH, METRICS_PATH, TRACEPARENT_HEADER,
};
use janus_core::{
    content_disposition, validate_request, ByteRange, Competitor, ErrorEnvelope, ErrorKind,
    RequestContext,
};
use janus_http::response::{
    empty, error_response, json_response, method_not_allowed as method_not_allowed_for,
    metrics_response, not_found, BoxError, ResponseBody,
};
use janus_http::{Drain, RequestId};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::artifacts::{ArtifactStore, Artifacts, FileBody};
use crate::config::ServeConfig;
use crate::metrics::{Metrics, Mode};
use crate::respond::{complete, spawn_handler, ChunkBuilder, RequestRecord, SseBody};

/// Path prefix of stored artifacts.
const ARTIFACTS_PREFIX: &str = janus_core::contract::COMPETITOR_ARTIFACTS_PREFIX;
/// Longest `X-Janus-Artifact-Base` taken as a link prefix.
const MAX_ARTIFACT_BASE_BYTES: usize = 2048;
/// How often expired artifact files are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// A readiness check slower than this counts as "not ready".
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

struct Server<C> {
    competitor: Arc<C>,
    config: ServeConfig,
    metrics: Arc<Metrics>,
    artifacts: Arc<ArtifactStore>,
    drain: Drain,
    local_addr: SocketAddr,
}

/// Serves `competitor` on `listener` until `shutdown` resolves, then drains: in-flight
/// requests get the shutdown grace to finish; streams still running then end with an
/// error event and `[DONE]`, and whatever is left is cancelled.
///
/// The caller owns the socket, so tests bind `127.0.0.1:0` and read the port first.
pub async fn serve<C: Competitor>(
    listener: TcpListener,
    competitor: Arc<C>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local_addr = listener.local_addr()?;
    let metrics = Arc::new(Metrics::default());
    let artifacts = Arc::new(ArtifactStore::new(
        config.artifact_dir.clone(),
        metrics.clone(),
    ));
    tracing::info!(listen = %local_addr, version = %config.version, "competitor listening");
    let drain = Drain::new();
    let connections = config.connections.clone();
    let server = Arc::new(Server {
        competitor,
        config,
        metrics,
        artifacts: artifacts.clone(),
        drain: drain.clone(),
        local_addr,
    });
    let sweeper = tokio::spawn(sweep_artifacts(artifacts.clone()));
    let handler = move |request: Request<Incoming>| {
        let server = server.clone();
        async move { server.handle(request).await }
    };
    let served = janus_http::serve(listener, handler, connections, drain, shutdown).await;
    sweeper.abort();
    // Nobody can fetch them once this process is gone.
    artifacts.sweep(true).await;
    tracing::info!("competitor stopped");
    served
}

/// Deletes expired artifact files now and then; aborted when the server stops.
async fn sweep_artifacts(store: Arc<ArtifactStore>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        store.sweep(false).await;
    }
}

pub use janus_http::shutdown_signal;

fn method_not_allowed(method: &Method, allow: &'static str) -> Response<ResponseBody> {
    method_not_allowed_for(method, allow)
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `host[:port]` made only of characters a host may contain.
fn is_plain_authority(authority: &str) -> bool {
    !authority.is_empty()
        && authority.len() <= 255
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

impl<C: Competitor> Server<C> {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_else(|| {
                RequestId::from_headers(request.headers())
                    .as_str()
                    .to_owned()
            });
        // The serving layer's span carries the ids; this one adds what was asked.
        let span = tracing::info_span!(
            "route",
            method = %request.method(),
            path = %request.uri().path(),
        );
        self.route(request, id).instrument(span).await
    }

    async fn route(
        &self,
        request: Request<Incoming>,
        request_id: String,
    ) -> Response<ResponseBody> {
        let path = request.uri().path();
        let method = request.method();
        if path == CHAT_COMPLETIONS_PATH {
            return match *method {
                Method::POST => self.chat(request, request_id).await,
                _ => method_not_allowed(method, "POST"),
            };
        }
        if path == HEALTH_PATH {
            return match *method {
                Method::GET | Method::HEAD => self.health().await,
                _ => method_not_allowed(method, "GET, HEAD"),
            };
        }
        if path == METRICS_PATH {
            return match *method {
                Method::GET => metrics_response(self.metrics.render()),
                _ => method_not_allowed(method, "GET"),
            };
        }
        if let Some(id) = path.strip_prefix(ARTIFACTS_PREFIX) {
            let range = request
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok());
            return match *method {
                Method::GET => self.artifact(id, range, false),
                Method::HEAD => self.artifact(id, range, true),
                _ => method_not_allowed(method, "GET, HEAD"),
            };
        }
        not_found("unknown path", "not_found")
    }

    /// The prefix of this request's artifact links (ends with `/`): the gateway's
    /// `X-Janus-Artifact-Base` when it sent a usable one, so links go through the gateway
    /// from the start; else `<own base>/artifacts/`.
    fn artifact_prefix(&self, parts: &Parts) -> String {
        if let Some(base) = parts
            .headers
            .get(ARTIFACT_BASE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|base| is_artifact_base(base))
        {
            return base.to_owned();
        }
        format!("{}{ARTIFACTS_PREFIX}", self.artifact_base_url(parts))
    }

    /// `http://host` for artifact links: the configured base, else the request's authority,
    /// else the listening address.
    fn artifact_base_url(&self, parts: &Parts) -> String {
        if let Some(base) = &self.config.public_base_url {
            return base.clone();
        }
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header_string(&parts.headers, header::HOST.as_str()))
            .filter(|a| is_plain_authority(a));
        match authority {
            Some(authority) => format!("http://{authority}"),
            None => format!("http://{}", self.local_addr),
        }
    }

    async fn chat(&self, request: Request<Incoming>, request_id: String) -> Response<ResponseBody> {
        let started = Instant::now();
        let timeout = self.config.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let (parts, body) = request.into_parts();
        let limit = self.config.max_body_bytes;
        let body_deadline =
            tokio::time::Instant::now() + self.config.connections.body_timeout.min(timeout);
        let bytes = match janus_http::read_body(&parts.headers, body, limit, body_deadline).await {
            Ok(bytes) => bytes,
            Err(e) => {
                if matches!(e, janus_http::BodyError::TooLarge { .. }) {
                    self.metrics.request_rejected("too_large");
                }
                tracing::info!(error = %e, "request body rejected");
                return error_response(e.status(), &e.envelope());
            }
        };
        let request = match validate_request(&bytes) {
            Ok(request) => request,
            Err(e) => {
                self.metrics.request_rejected("invalid");
                tracing::info!(param = e.param.as_deref(), code = e.code, error = %e, "invalid request");
                return error_response(StatusCode::BAD_REQUEST, &e.to_envelope());
            }
        };
        let stream = request.is_stream();
        let mode = if stream {
            Mode::Stream
        } else {
            Mode::NonStream
        };
        tracing::info!(mode = mode.as_str(), model = %request.model, "request started");
        let record = RequestRecord::start(self.metrics.clone(), mode, started);
        let context = RequestContext {
            request_id,
            correlation_id: header_string(&parts.headers, CORRELATION_ID_HEADER),
            // What this hop sends on: the request's trace with this hop's span as parent
            // (the serving layer settled it), so outgoing calls link under this request.
            traceparent: parts
                .extensions
                .get::<janus_http::TraceContext>()
                .and_then(|t| t.traceparent.to_str().ok().map(str::to_owned))
                .or_else(|| header_string(&parts.headers, TRACEPARENT_HEADER)),
            deadline: started + timeout,
            gateway_deadline_ms: header_string(&parts.headers, "x-janus-deadline")
                .and_then(|v| v.trim().parse().ok()),
            headers: janus_core::RequestHeaders::new(
                parts
                    .headers
                    .iter()
                    .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
            ),
            platform: crate::platform::access_from_headers(&parts.headers),
        };
        let chunks = ChunkBuilder::new(&request.model);
        let include_usage = request.include_usage();
        let artifacts = Artifacts::new(self.artifacts.clone(), self.artifact_prefix(&parts));
        let task = spawn_handler(
            self.competitor.clone(),
            request,
            context,
            deadline,
            timeout,
            artifacts,
        );
        if !stream {
            return match complete(task, chunks, record).await {
                Ok(response) => match serde_json::to_vec(&response) {
                    Ok(json) => json_response(StatusCode::OK, json),
                    Err(e) => error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &ErrorEnvelope::new(
                            ErrorKind::Server,
                            format!("response did not serialize: {e}"),
                            Some("competitor_error"),
                        ),
                    ),
                },
                Err(failure) => error_response(failure.status(), &failure.envelope()),
            };
        }
        let drain = self.drain.clone();
        let force_stop = Box::pin(async move { drain.forced().await });
        let body = SseBody::new(
            task,
            chunks,
            include_usage,
            self.config.keepalive_interval,
            force_stop,
            self.metrics.clone(),
            record,
        );
        let mut response = Response::new(janus_http::response::boxed(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(EVENT_STREAM_CONTENT_TYPE),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells buffering reverse proxies (nginx) to pass events through at once.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }

    async fn health(&self) -> Response<ResponseBody> {
        let ready = tokio::time::timeout(READY_CHECK_TIMEOUT, self.competitor.ready())
            .await
            .unwrap_or(false);
        let body = serde_json::json!({
            "status": if ready { "ok" } else { "starting" },
            "version": self.config.version,
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "ready": ready,
            "sdk_version": env!("CARGO_PKG_VERSION"),
        });
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, body.to_string())
    }

    /// A stored artifact, whole or one byte range (206); a range past the end is 416.
    fn artifact(&self, id: &str, range: Option<&str>, head: bool) -> Response<ResponseBody> {
        let Some(stored) = self.artifacts.get(id) else {
            return not_found(
                "no such artifact (unknown or expired)",
                "artifact_not_found",
            );
        };
        // Several ranges or a malformed header: the whole file (RFC 9110 allows ignoring it).
        let range = range.and_then(ByteRange::parse);
        let (status, first, len) = match range.map(|r| r.resolve(stored.size)) {
            None => (StatusCode::OK, 0, stored.size),
            Some(Some((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
            Some(None) => {
                let mut response = error_response(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    &ErrorEnvelope::new(
                        ErrorKind::InvalidRequest,
                        format!(
                            "the requested range is outside the artifact's {} bytes",
                            stored.size
                        ),
                        Some("range_not_satisfiable"),
                    ),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", stored.size)) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        };
        tracing::info!(
            artifact_id = id,
            size = stored.size,
            first,
            len,
            "serving artifact"
        );
        let body = if head {
            empty()
        } else {
            FileBody::open(stored.path.clone(), first, len)
                .map_err(BoxError::from)
                .boxed_unsync()
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let content_type = HeaderValue::from_str(&stored.mime_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_TYPE, content_type);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        if status == StatusCode::PARTIAL_CONTENT {
            let value = format!("bytes {first}-{}/{}", first + len - 1, stored.size);
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(value) = HeaderValue::from_str(&content_disposition(&stored.display_name)) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert("x-artifact-id", value);
        }
        headers.insert("x-artifact-size", HeaderValue::from(stored.size));
        // Never rendered as a page of this origin, whatever the file holds.
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        response
    }
}

/// A usable `X-Janus-Artifact-Base`: an absolute http(s) URL ending in `/`, printable
/// ASCII without quotes or spaces, so it can go verbatim into a markdown link.
fn is_artifact_base(base: &str) -> bool {
    base.len() <= MAX_ARTIFACT_BASE_BYTES
        && (base.starts_with("http://") || base.starts_with("https://"))
        && base.ends_with('/')
        && base
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"<>\\`(){}|^".contains(&b))
}
