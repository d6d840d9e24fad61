//! The accept loop, graceful shutdown and request dispatch.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use janus_core::contract::{
    CHAT_COMPLETIONS_PATH, CORRELATION_ID_HEADER, HEALTH_PATH, METRICS_PATH, MODELS_PATH,
    REQUEST_ID_HEADER, TRACEPARENT_HEADER,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::access::AccessRecord;
use crate::config::{CompetitorConfig, Config};
use crate::error::GatewayError;
use crate::health::{spawn_probes, HealthState};
use crate::metrics::Metrics;
use crate::relay::{RelayBody, RelayOptions};
use crate::upstream::{self, build_client, ForwardHeaders, HttpClient, UpstreamCall};

/// Response body type of every gateway response.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Largest competitor JSON response the gateway relays in non-streaming mode.
const MAX_UPSTREAM_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// After the grace period, streams get this long to flush their error event.
const FORCED_FLUSH: Duration = Duration::from_secs(2);

/// Shared state of a running gateway.
#[derive(Debug)]
struct Gateway {
    config: Config,
    client: HttpClient,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    limits: HashMap<String, Arc<Semaphore>>,
    /// `…/v1/chat/completions` of each competitor, parsed once.
    chat_urls: HashMap<String, http::Uri>,
    force_stop: watch::Receiver<bool>,
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains: in-flight
/// streams get `config.shutdown_grace` to finish; the rest get an error event and `[DONE]`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let client = build_client(config.connect_timeout);
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(HealthState::default());
    let (force_tx, force_rx) = watch::channel(false);
    let (stop_probes_tx, stop_probes_rx) = watch::channel(false);
    spawn_probes(
        client.clone(),
        config.competitors.clone(),
        config.health_interval,
        health.clone(),
        metrics.clone(),
        stop_probes_rx,
    );
    let limits = config
        .competitors
        .iter()
        .filter_map(|c| {
            c.max_concurrent_requests
                .map(|n| (c.id.clone(), Arc::new(Semaphore::new(n))))
        })
        .collect();
    let grace = config.shutdown_grace;
    let chat_urls = config
        .competitors
        .iter()
        .filter_map(|c| {
            UpstreamCall::chat_url(&c.url, &c.id)
                .ok()
                .map(|u| (c.id.clone(), u))
        })
        .collect();
    let gateway = Arc::new(Gateway {
        config,
        client,
        metrics,
        health,
        limits,
        chat_urls,
        force_stop: force_rx,
    });
    let local = listener.local_addr()?;
    tracing::info!(listen = %local, competitors = gateway.config.competitors.len(), "gateway listening");

    let builder = auto::Builder::new(TokioExecutor::new());
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
                let gateway = gateway.clone();
                let service = hyper::service::service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request).await) }
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_probes_tx.send(true);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down; draining streams"
    );
    let drained = graceful.shutdown();
    let mut drained = std::pin::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; ending remaining streams");
            let _ = force_tx.send(true);
            if tokio::time::timeout(FORCED_FLUSH, drained).await.is_err() {
                tracing::warn!("some connections did not close in time");
            }
        }
    }
    tracing::info!("gateway stopped");
    Ok(())
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
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

fn error_response(error: &GatewayError) -> Response<ResponseBody> {
    let mut response = json_response(error.status(), error.envelope().to_json());
    if let GatewayError::MethodNotAllowed { allow, .. } = error {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let GatewayError::Unauthorized(_) = error {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
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

/// The client's request id if it is a sane header value, else a fresh `chatcmpl-` id.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|v| janus_core::contract::accept_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

/// `chatcmpl-` + 24 hex characters: 8 random per process, then a 64-bit counter. Unique
/// without a getrandom syscall per request.
fn fresh_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| janus_core::random_hex(4));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("chatcmpl-{prefix}{n:016x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("chatcmpl-unknown"))
}

/// Constant-time comparison so key checks do not leak prefix matches through timing.
fn keys_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Gateway {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        let request_id = request_id(request.headers());
        let mut response = self.dispatch(request, request_id.clone()).await;
        response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
        response
    }

    async fn dispatch(
        self: Arc<Self>,
        request: Request<Incoming>,
        request_id: HeaderValue,
    ) -> Response<ResponseBody> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let not_allowed = |allow: &'static str| {
            error_response(&GatewayError::MethodNotAllowed {
                method: method.to_string(),
                path: path.clone(),
                allow,
            })
        };
        match path.as_str() {
            CHAT_COMPLETIONS_PATH if method == Method::POST => self.chat(request, request_id).await,
            CHAT_COMPLETIONS_PATH => not_allowed("POST"),
            MODELS_PATH if method == Method::GET => match self.authorize(request.headers()) {
                Ok(()) => self.models(),
                Err(e) => error_response(&e),
            },
            MODELS_PATH => not_allowed("GET"),
            HEALTH_PATH if method == Method::GET => self.health(),
            HEALTH_PATH => not_allowed("GET"),
            METRICS_PATH if method == Method::GET => {
                let mut response = Response::new(full(self.metrics.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            METRICS_PATH => not_allowed("GET"),
            _ => error_response(&GatewayError::NotFound(format!("{method} {path}"))),
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        if self.config.api_keys.is_empty() {
            return Ok(());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(GatewayError::Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>'",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or("");
        if self
            .config
            .api_keys
            .iter()
            .any(|key| keys_equal(key.as_bytes(), presented.as_bytes()))
        {
            Ok(())
        } else {
            Err(GatewayError::Unauthorized("invalid API key"))
        }
    }

    fn models(&self) -> Response<ResponseBody> {
        let created = janus_core::unix_now();
        let data: Vec<Value> = self
            .config
            .competitors
            .iter()
            .map(|c| {
                let mut model = json!({
                    "id": c.id,
                    "object": "model",
                    "created": created,
                    "owned_by": "janus",
                });
                if let (Some(description), Value::Object(map)) = (&c.description, &mut model) {
                    map.insert("description".into(), Value::String(description.clone()));
                }
                model
            })
            .collect();
        let body = json!({"object": "list", "data": data});
        json_response(StatusCode::OK, body.to_string().into_bytes())
    }

    fn health(&self) -> Response<ResponseBody> {
        let competitors = self.health.snapshot(&self.config.competitors);
        let body = json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "default_competitor": self.config.default_competitor,
            "competitors": competitors,
        });
        json_response(StatusCode::OK, body.to_string().into_bytes())
    }

    async fn chat(
        self: Arc<Self>,
        request: Request<Incoming>,
        request_id: HeaderValue,
    ) -> Response<ResponseBody> {
        // Taken apart rather than cloned: the body goes to `prepare`, the headers stay here.
        let (parts, body) = request.into_parts();
        let headers = parts.headers;
        let mut record = AccessRecord::start(
            self.metrics.clone(),
            request_id.to_str().unwrap_or_default().to_owned(),
            header_string(&headers, CORRELATION_ID_HEADER),
        );
        let prepared = match self.prepare(body, &headers, &mut record).await {
            Ok(prepared) => prepared,
            Err(error) => {
                record.status = error.status().as_u16();
                record.set_outcome(error.code());
                if error.is_server_side() {
                    tracing::warn!(request_id = %record.request_id, error = %error, "request failed");
                }
                return error_response(&error);
            }
        };
        let call = UpstreamCall {
            competitor: prepared.competitor.id.clone(),
            url: prepared.url,
            body: prepared.body,
            stream: prepared.stream,
            headers: ForwardHeaders {
                request_id,
                correlation_id: headers.get(CORRELATION_ID_HEADER).cloned(),
                traceparent: headers.get(TRACEPARENT_HEADER).cloned(),
            },
        };
        let timeout = prepared
            .competitor
            .timeout
            .unwrap_or(self.config.request_timeout);
        if prepared.stream {
            self.stream(call, timeout, prepared.permit, record)
        } else {
            self.complete(call, timeout, record).await
        }
    }

    /// Auth, body limit, validation and routing.
    async fn prepare(
        &self,
        body: Incoming,
        headers: &HeaderMap,
        record: &mut AccessRecord,
    ) -> Result<Prepared, GatewayError> {
        self.authorize(headers)?;
        let limit = self.config.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(GatewayError::BodyTooLarge { limit })
            }
            Err(e) => return Err(GatewayError::BodyRead(e.to_string())),
        };
        let mut value: Value = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::Invalid(janus_core::ValidationError {
                message: format!("request body is not valid JSON: {e}"),
                param: None,
                code: "invalid_json",
            })
        })?;
        janus_core::check_request_json(&value).map_err(GatewayError::Invalid)?;
        let stream = value
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        record.stream = stream;

        let requested = value
            .get("competitor_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (competitor, route) = match &requested {
            Some(id) => (
                self.config
                    .competitor(id)
                    .ok_or_else(|| GatewayError::CompetitorNotFound(id.clone()))?,
                "competitor_id",
            ),
            None => {
                let model = value.get("model").and_then(Value::as_str).unwrap_or("");
                match self.config.competitor(model) {
                    Some(c) => (c, "model"),
                    None => (
                        self.config
                            .competitor(&self.config.default_competitor)
                            .ok_or_else(|| {
                                GatewayError::CompetitorNotFound(
                                    self.config.default_competitor.clone(),
                                )
                            })?,
                        "default",
                    ),
                }
            }
        };
        record.competitor.clone_from(&competitor.id);
        record.route = route;

        // Forward the client's bytes untouched unless competitor_id must be stripped.
        let body = if requested.is_some() {
            if let Value::Object(map) = &mut value {
                map.shift_remove("competitor_id");
            }
            Bytes::from(serde_json::to_vec(&value).map_err(|e| {
                GatewayError::BodyRead(format!("cannot re-encode the request: {e}"))
            })?)
        } else {
            body
        };
        let permit = match self.limits.get(&competitor.id) {
            Some(semaphore) => Some(
                semaphore
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| GatewayError::CompetitorBusy(competitor.id.clone()))?,
            ),
            None => None,
        };
        let url = match self.chat_urls.get(&competitor.id) {
            Some(url) => url.clone(),
            None => UpstreamCall::chat_url(&competitor.url, &competitor.id)?,
        };
        Ok(Prepared {
            url,
            competitor: competitor.clone(),
            body,
            stream,
            permit,
        })
    }

    /// Streaming: answer 200 at once and relay.
    fn stream(
        self: Arc<Self>,
        call: UpstreamCall,
        timeout: Duration,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        record: AccessRecord,
    ) -> Response<ResponseBody> {
        let warming = Arc::new(AtomicBool::new(false));
        let connect = {
            let gateway = self.clone();
            let warming = warming.clone();
            async move { upstream::open(&gateway.client, &call, gateway.config.retry, &warming).await }
        };
        let mut force_stop = self.force_stop.clone();
        let shutdown = async move {
            // Resolves when the grace period is over (or the gateway is gone).
            let _ = force_stop.wait_for(|forced| *forced).await;
        };
        let relay = RelayBody::new(
            connect,
            shutdown,
            RelayOptions {
                competitor: record.competitor.clone(),
                keepalive_interval: self.config.keepalive_interval,
                timeout,
                warming,
                permit,
            },
            record,
        );
        let mut response = Response::new(relay.boxed_unsync());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx-style proxies in front of us not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }

    /// Non-streaming: await the competitor's JSON and relay it unchanged.
    async fn complete(
        self: Arc<Self>,
        call: UpstreamCall,
        timeout: Duration,
        mut record: AccessRecord,
    ) -> Response<ResponseBody> {
        let never_warming = AtomicBool::new(false);
        let outcome = tokio::time::timeout(timeout, async {
            let response =
                upstream::open(&self.client, &call, self.config.retry, &never_warming).await?;
            if !upstream::has_content_type(&response, "application/json") {
                return Err(GatewayError::InvalidUpstream {
                    competitor: call.competitor.clone(),
                    reason: "expected content-type application/json".to_owned(),
                });
            }
            let bytes = Limited::new(response.into_body(), MAX_UPSTREAM_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| GatewayError::UpstreamReset {
                    competitor: call.competitor.clone(),
                    reason: e.to_string(),
                })?
                .to_bytes();
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                return Err(GatewayError::InvalidUpstream {
                    competitor: call.competitor.clone(),
                    reason: format!("response is not JSON: {e}"),
                });
            }
            Ok(bytes)
        })
        .await
        .unwrap_or_else(|_| {
            Err(GatewayError::Timeout {
                competitor: call.competitor.clone(),
                seconds: timeout.as_secs_f64(),
            })
        });
        match outcome {
            Ok(bytes) => {
                record.emitted(bytes.len(), false);
                record.set_outcome("ok");
                json_response(StatusCode::OK, bytes)
            }
            Err(error) => {
                if error.is_upstream() {
                    record.upstream_error(error.code());
                    tracing::warn!(request_id = %record.request_id, competitor = %call.competitor, error = %error, "competitor failed");
                }
                record.status = error.status().as_u16();
                record.set_outcome(error.code());
                error_response(&error)
            }
        }
    }
}

/// A validated, routed chat request.
#[derive(Debug)]
struct Prepared {
    competitor: CompetitorConfig,
    url: http::Uri,
    body: Bytes,
    stream: bool,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}
