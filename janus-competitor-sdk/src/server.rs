//! The HTTP server: accept loop, graceful shutdown, routing, and the endpoints
//! (`/v1/chat/completions`, `/health`, `/metrics`, `/artifacts/<id>`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use janus_core::contract::{
    CHAT_COMPLETIONS_PATH, CORRELATION_ID_HEADER, EVENT_STREAM_CONTENT_TYPE, HEALTH_PATH,
    METRICS_PATH, REQUEST_ID_HEADER, TRACEPARENT_HEADER,
};
use janus_core::{validate_request, Competitor, ErrorEnvelope, ErrorKind, RequestContext};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::artifacts::{content_disposition, ArtifactStore, Artifacts, FileBody};
use crate::config::ServeConfig;
use crate::metrics::{Metrics, Mode};
use crate::respond::{complete, spawn_handler, ChunkBuilder, RequestRecord, SseBody};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Path prefix of stored artifacts.
const ARTIFACTS_PREFIX: &str = "/artifacts/";
/// After the grace period, streams get this long to flush their error event.
const FORCED_FLUSH: Duration = Duration::from_secs(1);
/// How often expired artifact files are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// A readiness check slower than this counts as "not ready".
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where shutdown has got to; connections and streams watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// No new connections; in-flight requests are finishing.
    Draining,
    /// The grace period is over: streams end with an error event and `[DONE]`.
    GraceOver,
    /// Remaining connections are dropped (cancelling their handlers).
    Closed,
}

struct Server<C> {
    competitor: Arc<C>,
    config: ServeConfig,
    metrics: Arc<Metrics>,
    artifacts: Arc<ArtifactStore>,
    phase: watch::Receiver<Phase>,
    local_addr: SocketAddr,
}

/// Serves `competitor` on `listener` until `shutdown` resolves, then drains: in-flight
/// requests get `config.shutdown_grace` to finish; streams still running then end with an
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
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let grace = config.shutdown_grace;
    tracing::info!(listen = %local_addr, version = %config.version, "competitor listening");
    let server = Arc::new(Server {
        competitor,
        config,
        metrics,
        artifacts: artifacts.clone(),
        phase: phase_rx,
        local_addr,
    });
    let sweeper = tokio::spawn(sweep_artifacts(artifacts.clone()));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer enables hyper's header read timeout (slow clients cannot hold a slot).
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning or dying.
                        tracing::warn!(error = %e, "accept failed; pausing");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "set_nodelay failed");
                }
                let mut phase = server.phase.clone();
                let server = server.clone();
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    tokio::select! {
                        result = connection => {
                            if let Err(e) = result {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        }
                        // Dropping the connection drops its bodies and service futures,
                        // which cancels their handlers.
                        () = async { let _ = phase.wait_for(|p| *p == Phase::Closed).await; } => {}
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    phase_tx.send_replace(Phase::Draining);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down; draining requests"
    );
    let drained = graceful.shutdown();
    let mut drained = std::pin::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; ending remaining streams");
            phase_tx.send_replace(Phase::GraceOver);
            if tokio::time::timeout(FORCED_FLUSH, drained).await.is_err() {
                tracing::warn!("some requests did not finish in time; cancelling them");
            }
        }
    }
    phase_tx.send_replace(Phase::Closed);
    sweeper.abort();
    // Nobody can fetch them once this process is gone.
    artifacts.sweep(true).await;
    tracing::info!("competitor stopped");
    Ok(())
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

pub use janus_core::runtime::shutdown_signal;

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(status: StatusCode, envelope: &ErrorEnvelope) -> Response<ResponseBody> {
    json_response(status, envelope.to_json())
}

fn not_found(what: &str, code: &str) -> Response<ResponseBody> {
    error_response(
        StatusCode::NOT_FOUND,
        &ErrorEnvelope::new(ErrorKind::InvalidRequest, what, Some(code)),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &ErrorEnvelope::new(
            ErrorKind::InvalidRequest,
            format!("method not allowed; use {allow}"),
            Some("method_not_allowed"),
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The client's request id if it is a sane header value, else a fresh one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|v| janus_core::contract::accept_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&janus_core::new_request_id())
                .unwrap_or_else(|_| HeaderValue::from_static("chatcmpl-unknown"))
        })
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
        let request_id = request_id(request.headers());
        let id = request_id.to_str().unwrap_or("chatcmpl-unknown").to_owned();
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            path = %request.uri().path(),
        );
        let mut response = self.route(request, id).instrument(span).await;
        response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
        response
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
                _ => method_not_allowed("POST"),
            };
        }
        if path == HEALTH_PATH {
            return match *method {
                Method::GET | Method::HEAD => self.health().await,
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        if path == METRICS_PATH {
            return match *method {
                Method::GET => self.metrics(),
                _ => method_not_allowed("GET"),
            };
        }
        if let Some(id) = path.strip_prefix(ARTIFACTS_PREFIX) {
            return match *method {
                Method::GET => self.artifact(id, false),
                Method::HEAD => self.artifact(id, true),
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        not_found("unknown path", "not_found")
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
        let bytes =
            match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(e)) if e.is::<LengthLimitError>() => {
                    self.metrics.request_rejected("too_large");
                    tracing::info!(limit, "request body too large");
                    return error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &ErrorEnvelope::new(
                            ErrorKind::InvalidRequest,
                            format!("request body is larger than {limit} bytes"),
                            Some("request_too_large"),
                        ),
                    );
                }
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "reading the request body failed");
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        &ErrorEnvelope::new(
                            ErrorKind::InvalidRequest,
                            format!("could not read the request body: {e}"),
                            Some("invalid_body"),
                        ),
                    );
                }
                Err(_) => {
                    return error_response(
                        StatusCode::REQUEST_TIMEOUT,
                        &ErrorEnvelope::new(
                            ErrorKind::Timeout,
                            "the request body did not arrive in time",
                            Some("request_timeout"),
                        ),
                    );
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
            traceparent: header_string(&parts.headers, TRACEPARENT_HEADER),
            deadline: started + timeout,
        };
        let chunks = ChunkBuilder::new(&request.model);
        let include_usage = request.include_usage();
        let artifacts = Artifacts::new(self.artifacts.clone(), self.artifact_base_url(&parts));
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
        let mut phase = self.phase.clone();
        let force_stop = Box::pin(async move {
            let _ = phase
                .wait_for(|p| matches!(p, Phase::GraceOver | Phase::Closed))
                .await;
        });
        let body = SseBody::new(
            task,
            chunks,
            include_usage,
            self.config.keepalive_interval,
            force_stop,
            self.metrics.clone(),
            record,
        );
        let mut response = Response::new(body.map_err(|never| match never {}).boxed_unsync());
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

    fn metrics(&self) -> Response<ResponseBody> {
        let mut response = Response::new(full(self.metrics.render()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    fn artifact(&self, id: &str, head: bool) -> Response<ResponseBody> {
        let Some(stored) = self.artifacts.get(id) else {
            return not_found(
                "no such artifact (unknown or expired)",
                "artifact_not_found",
            );
        };
        tracing::info!(artifact_id = id, size = stored.size, "serving artifact");
        let body = if head {
            empty()
        } else {
            FileBody::open(stored.path.clone(), stored.size)
                .map_err(BoxError::from)
                .boxed_unsync()
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        let content_type = HeaderValue::from_str(&stored.mime_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_TYPE, content_type);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.size));
        if let Ok(value) = HeaderValue::from_str(&content_disposition(&stored.display_name)) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        if let Ok(value) = HeaderValue::from_str(id) {
            headers.insert("x-artifact-id", value);
        }
        headers.insert("x-artifact-size", HeaderValue::from(stored.size));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        response
    }
}
