//! Request dispatch: routes, auth, validation and routing of chat requests. Connections,
//! timeouts, drain and request ids are `janus_http::serve`'s.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use janus_core::contract::{
    ARTIFACTS_ROUTE_PREFIX, CHAT_COMPLETIONS_PATH, HEALTH_PATH, METRICS_PATH, MODELS_PATH,
};
use janus_http::response::{error_response as envelope_response, json_response, metrics_response};
use janus_http::{Drain, RequestId, TraceContext};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::access::AccessRecord;
use crate::artifacts;
use crate::config::{CompetitorConfig, Config};
use crate::error::GatewayError;
use crate::health::{spawn_probes, HealthState};
use crate::metrics::Metrics;
use crate::platform::{add_platform_usage, Platform, RequestGrant};
use crate::relay::{PlatformUsage, RelayBody, RelayOptions};
use crate::signing::SigningKeys;
use crate::ui::Ui;
use crate::upstream::{self, ChatEndpoint, ForwardHeaders, HttpClient, UpstreamCall};

pub use janus_http::ResponseBody;

/// Response header naming the competitor that answered (contract §1).
pub const COMPETITOR_HEADER: &str = "x-janus-competitor";

/// Shared state of a running gateway.
#[derive(Debug)]
struct Gateway {
    config: Config,
    client: HttpClient,
    metrics: Arc<Metrics>,
    health: Arc<HealthState>,
    limits: HashMap<String, Arc<Semaphore>>,
    /// Each competitor's chat endpoint (URL and connection pool), made once.
    endpoints: HashMap<String, ChatEndpoint>,
    drain: Drain,
    /// Signs and verifies platform grants and artifact capabilities.
    signing: SigningKeys,
    /// The artifact base of each competitor, minted once a second.
    artifact_bases: artifacts::BaseCache,
    /// The chat UI, unless `--no-ui`.
    ui: Option<Ui>,
    /// Platform services, when configured and served on a platform listener.
    platform: Option<Arc<Platform>>,
}

/// Serves the gateway on `listener` until `shutdown` resolves, then drains: in-flight
/// streams get the shutdown grace period to finish; the rest get an error event and
/// `[DONE]`.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with_platform(listener, None, config, shutdown).await
}

/// [`run`] plus the platform listener: with `platform_listener` and at least one platform
/// service configured, every chat request gets a grant, and `ANY /platform/{name}/{path}`
/// is served there (never on the public listener).
pub async fn run_with_platform(
    listener: TcpListener,
    platform_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut config = config;
    // Without --public-url, links name the address actually bound (port 0 resolved), not
    // the configured one.
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{}", listener.local_addr()?));
    }
    // Likewise the platform base competitors are told names the platform port bound.
    let platform_on = match &platform_listener {
        Some(platform_listener) if !config.platforms.is_empty() => {
            config.platform_listen = platform_listener.local_addr()?;
            true
        }
        _ => false,
    };
    let client = janus_http::build_client(config.connect_timeout);
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(HealthState::default());
    // Launched competitors get their sandboxes first, so they are routed and probed like
    // the others from the start (their readiness shows in /health).
    let (stop_runner_tx, stop_runner_rx) = watch::channel(false);
    let runner = match (&config.sandbox_url, config.launch.is_empty()) {
        (Some(sandbox_url), false) => {
            let runner_client = janus_http::build_client(config.connect_timeout);
            // A launched competitor finds the platform in JANUS_PLATFORM_URL; the sandbox
            // service forwards the platform port into its sandbox (`--forward platform=…`).
            let platform_url = platform_on.then(|| config.platform_base());
            let platform_port = config.platform_listen.port();
            if let Some(spec) = config
                .launch
                .iter()
                .find(|s| platform_on && s.port == platform_port)
            {
                return Err(std::io::Error::other(format!(
                    "competitor '{}' would listen on port {platform_port} in its sandbox, where the platform is forwarded: give it another `port`",
                    spec.id
                )));
            }
            let launched = crate::runner::launch(
                &runner_client,
                sandbox_url,
                &config.launch,
                platform_url.as_deref(),
            )
            .await
            .map_err(std::io::Error::other)?;
            config
                .competitors
                .extend(crate::runner::competitor_configs(&launched, &config.launch));
            Some(tokio::spawn(crate::runner::supervise(
                runner_client,
                sandbox_url.clone(),
                launched,
                metrics.clone(),
                stop_runner_rx,
            )))
        }
        _ => None,
    };
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
    let endpoints = config
        .competitors
        .iter()
        .filter_map(|c| {
            ChatEndpoint::new(&c.url, &c.id, config.connect_timeout)
                .ok()
                .map(|e| (c.id.clone(), e))
        })
        .collect();
    let signing = match &config.signing_keys {
        Some(keys) => keys.clone(),
        None => SigningKeys::ephemeral().map_err(std::io::Error::other)?,
    };
    let platform = match &platform_listener {
        Some(_) => Platform::new(&config, signing.clone(), metrics.clone())
            .map_err(std::io::Error::other)?,
        None => None,
    };
    let drain = Drain::new();
    let serve_config = config.serve.clone();
    let ui = config.ui.then(Ui::new);
    // One shutdown signal for both listeners.
    let (stop_tx, stop_rx) = watch::channel(false);
    let platform_task = match (platform_listener, &platform) {
        (Some(platform_listener), Some(platform)) => {
            tracing::info!(
                listen = %platform_listener.local_addr()?,
                services = config.platforms.len(),
                "platform listening"
            );
            let platform = platform.clone();
            let handler = move |request: Request<Incoming>| {
                let platform = platform.clone();
                async move { platform.handle(request).await }
            };
            let mut stop = stop_rx.clone();
            // Platform calls log (and export spans) as their own component.
            let mut platform_serve = serve_config.clone();
            platform_serve.component = "platform";
            Some(tokio::spawn(janus_http::serve(
                platform_listener,
                handler,
                platform_serve,
                Drain::new(),
                async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                },
            )))
        }
        _ => None,
    };
    let gateway = Arc::new(Gateway {
        config,
        client,
        metrics,
        health,
        limits,
        endpoints,
        drain: drain.clone(),
        signing,
        artifact_bases: artifacts::BaseCache::default(),
        ui,
        platform,
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        competitors = gateway.config.competitors.len(),
        max_connections = serve_config.max_connections,
        "gateway listening"
    );
    let handler = move |request: Request<Incoming>| {
        let gateway = gateway.clone();
        async move { gateway.handle(request).await }
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let served = janus_http::serve(listener, handler, serve_config, drain, shutdown).await;
    if let Some(task) = platform_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "platform listener failed"),
            Err(e) => tracing::warn!(error = %e, "platform listener panicked"),
            Ok(Ok(())) => {}
        }
    }
    let _ = stop_probes_tx.send(true);
    let _ = stop_runner_tx.send(true);
    if let Some(runner) = runner {
        // Launched competitors' sandboxes are terminated before the gateway is gone.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), runner).await;
    }
    tracing::info!("gateway stopped");
    served
}

fn error_response(error: &GatewayError) -> Response<ResponseBody> {
    let mut response = envelope_response(error.status(), &error.envelope());
    if let GatewayError::MethodNotAllowed { allow, .. } = error {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

impl Gateway {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        // The time the request head was complete: deadlines count from here, so a body
        // trickled in slowly uses up the request's time too.
        let started = Instant::now();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_headers(request.headers()));
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
            CHAT_COMPLETIONS_PATH if method == Method::POST => {
                self.chat(request, request_id, started).await
            }
            CHAT_COMPLETIONS_PATH => not_allowed("POST"),
            MODELS_PATH if method == Method::GET => match self.authorize(request.headers()) {
                Ok(()) => self.models(),
                Err(e) => error_response(&e),
            },
            MODELS_PATH => not_allowed("GET"),
            HEALTH_PATH if method == Method::GET || method == Method::HEAD => {
                // Liveness is open; competitor details need a key when keys are set.
                let detailed = self.authorize(request.headers()).is_ok();
                self.health(detailed)
            }
            HEALTH_PATH => not_allowed("GET, HEAD"),
            METRICS_PATH if method == Method::GET => match self.authorize(request.headers()) {
                Ok(()) => metrics_response(self.metrics.render()),
                Err(e) => error_response(&e),
            },
            METRICS_PATH => not_allowed("GET"),
            // No API key: the capability in the path is the credential.
            _ if path.starts_with(ARTIFACTS_ROUTE_PREFIX) => {
                if method != Method::GET && method != Method::HEAD {
                    return not_allowed("GET, HEAD");
                }
                let rest = &path[ARTIFACTS_ROUTE_PREFIX.len()..];
                let downloaded = artifacts::download(
                    &self.config,
                    &self.client,
                    &self.signing,
                    rest,
                    &request,
                    request_id.header_value(),
                )
                .await;
                match downloaded {
                    Ok(response) => response,
                    Err(error) => artifact_error(&error),
                }
            }
            // The UI's page and assets need no key: the page asks for one when the API does.
            _ => match self
                .ui
                .as_ref()
                .and_then(|ui| ui.respond(&method, &path, request.headers()))
            {
                Some(response) => response,
                None => error_response(&GatewayError::NotFound(format!("{method} {path}"))),
            },
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        match &self.config.api_keys {
            None => Ok(()),
            Some(keys) => keys.check(headers).map_err(GatewayError::Unauthorized),
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
                if let Value::Object(map) = &mut model {
                    if let Some(description) = &c.description {
                        map.insert("description".into(), Value::String(description.clone()));
                    }
                    if c.id == self.config.default_competitor {
                        map.insert("janus".into(), json!({"default": true}));
                    }
                }
                model
            })
            .collect();
        let body = json!({"object": "list", "data": data});
        json_response(StatusCode::OK, body.to_string().into_bytes())
    }

    fn health(&self, detailed: bool) -> Response<ResponseBody> {
        let mut body = json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        });
        if let (true, Value::Object(map)) = (detailed, &mut body) {
            let competitors = self.health.snapshot(&self.config.competitors);
            map.insert(
                "default_competitor".into(),
                Value::String(self.config.default_competitor.clone()),
            );
            map.insert("competitors".into(), json!(competitors));
        }
        json_response(StatusCode::OK, body.to_string().into_bytes())
    }

    async fn chat(
        self: Arc<Self>,
        request: Request<Incoming>,
        request_id: RequestId,
        started: Instant,
    ) -> Response<ResponseBody> {
        // Taken apart rather than cloned: the body goes to `prepare`, the headers stay here.
        let (mut parts, body) = request.into_parts();
        let trace_context = parts.extensions.remove::<TraceContext>();
        let headers = parts.headers;
        let correlation_id = janus_http::correlation_id(&headers);
        let mut record = AccessRecord::start(
            self.metrics.clone(),
            request_id.as_str().to_owned(),
            correlation_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        let prepared = match self.prepare(body, &headers, started, &mut record).await {
            Ok(prepared) => prepared,
            Err(error) => {
                record.status = error.status().as_u16();
                record.set_outcome(error.code());
                if error.is_server_side() {
                    tracing::warn!(request_id = %record.request_id, error = %error, "request failed");
                }
                let mut response = error_response(&error);
                if !record.competitor.is_empty() {
                    set_competitor(&mut response, &record.competitor);
                }
                return response;
            }
        };
        let competitor_id = prepared.competitor.id.clone();
        let timeout = prepared
            .competitor
            .timeout
            .unwrap_or(self.config.request_timeout);
        // The deadline as a wall clock for the competitor: what is left of the timeout.
        let deadline_ms = janus_core::unix_ms().saturating_add(
            u64::try_from(timeout.saturating_sub(started.elapsed()).as_millis())
                .unwrap_or(u64::MAX),
        );
        let grant = self
            .platform
            .as_ref()
            .and_then(|p| p.mint(request_id.as_str(), &competitor_id, deadline_ms));
        if let Some(grant) = &grant {
            record.platform = Some(grant.meter());
        }
        let call = UpstreamCall {
            competitor: competitor_id.clone(),
            endpoint: prepared.endpoint,
            body: prepared.body,
            stream: prepared.stream,
            headers: ForwardHeaders {
                request_id: request_id.header_value().clone(),
                correlation_id,
                // The serving layer settled this hop's trace context (and logs under it).
                trace: trace_context.unwrap_or_else(|| TraceContext::from_headers(&headers)),
                baseline_agent: headers
                    .get(upstream::BASELINE_AGENT_HEADER)
                    .filter(|v| janus_http::accept_id(v.as_bytes()))
                    .cloned(),
                deadline: Some(HeaderValue::from(deadline_ms)),
                platform: grant.as_ref().map(|g| (g.token.clone(), g.url.clone())),
                artifact_base: self.artifact_bases.get(
                    &self.config,
                    &self.signing,
                    &competitor_id,
                    janus_core::unix_now(),
                ),
            },
        };
        let deadline = started + timeout;
        let mut response = if prepared.stream {
            let platform = grant.map(|grant| PlatformUsage::new(grant, prepared.include_usage));
            self.stream(call, timeout, deadline, prepared.permit, record, platform)
        } else {
            self.complete(call, timeout, deadline, record, grant).await
        };
        set_competitor(&mut response, &competitor_id);
        response
    }

    /// Auth, body (size cap and deadline), validation and routing.
    async fn prepare(
        &self,
        body: Incoming,
        headers: &HeaderMap,
        started: Instant,
        record: &mut AccessRecord,
    ) -> Result<Prepared, GatewayError> {
        self.authorize(headers)?;
        let body_deadline = started
            + self
                .config
                .serve
                .body_timeout
                .min(self.config.request_timeout);
        let body = janus_http::read_body(headers, body, self.config.max_body_bytes, body_deadline)
            .await
            .map_err(GatewayError::Body)?;
        let summary = janus_core::check_request(&body).map_err(GatewayError::Invalid)?;
        record.stream = summary.stream;
        let include_usage = summary.include_usage;

        let (competitor, route) = match &summary.competitor_id {
            Some(id) => (
                self.config
                    .competitor(id)
                    .ok_or_else(|| GatewayError::CompetitorNotFound(id.to_string()))?,
                "competitor_id",
            ),
            None => match self.config.competitor(&summary.model) {
                Some(c) => (c, "model"),
                None if self.config.strict_models => {
                    return Err(GatewayError::ModelNotFound(summary.model.to_string()))
                }
                None => (
                    self.config
                        .competitor(&self.config.default_competitor)
                        .ok_or_else(|| {
                            GatewayError::CompetitorNotFound(self.config.default_competitor.clone())
                        })?,
                    "default",
                ),
            },
        };
        record.competitor.clone_from(&competitor.id);
        tracing::Span::current().record("competitor", competitor.id.as_str());
        record.route = route;
        let stream = summary.stream;
        let strip = summary.competitor_id.is_some();
        drop(summary);

        // Forward the client's bytes untouched unless competitor_id must be stripped.
        let body = if strip {
            Bytes::from(
                janus_core::strip_top_level_key(&body, "competitor_id")
                    .map_err(GatewayError::Invalid)?,
            )
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
        // Only a competitor whose URL is not a plain http:// one has no endpoint.
        let endpoint = match self.endpoints.get(&competitor.id) {
            Some(endpoint) => endpoint.clone(),
            None => {
                ChatEndpoint::new(&competitor.url, &competitor.id, self.config.connect_timeout)?
            }
        };
        Ok(Prepared {
            endpoint,
            competitor: competitor.clone(),
            body,
            stream,
            include_usage,
            permit,
        })
    }

    /// Streaming: answer 200 at once and relay.
    fn stream(
        self: Arc<Self>,
        call: UpstreamCall,
        timeout: std::time::Duration,
        deadline: Instant,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        record: AccessRecord,
        platform: Option<PlatformUsage>,
    ) -> Response<ResponseBody> {
        let warming = Arc::new(AtomicBool::new(false));
        let connect = {
            let gateway = self.clone();
            let warming = warming.clone();
            async move { upstream::open(&call, gateway.config.retry, &warming).await }
        };
        let drain = self.drain.clone();
        // Resolves when the shutdown grace period is over.
        let shutdown = async move { drain.forced().await };
        let relay = RelayBody::new(
            connect,
            shutdown,
            RelayOptions {
                competitor: record.competitor.clone(),
                keepalive_interval: self.config.keepalive_interval,
                timeout,
                deadline,
                warming,
                permit,
                platform,
            },
            record,
        );
        let mut response = Response::new(janus_http::response::boxed(relay));
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
        timeout: std::time::Duration,
        deadline: Instant,
        mut record: AccessRecord,
        grant: Option<RequestGrant>,
    ) -> Response<ResponseBody> {
        let never_warming = AtomicBool::new(false);
        let limit = self.config.max_response_bytes;
        let mut upstream_head = None;
        let outcome = tokio::time::timeout_at(deadline, async {
            let response = upstream::open(&call, self.config.retry, &never_warming).await?;
            upstream_head = Some(std::time::Instant::now());
            if !upstream::has_content_type(&response, "application/json") {
                return Err(GatewayError::InvalidUpstream {
                    competitor: call.competitor.clone(),
                    reason: "expected content-type application/json".to_owned(),
                });
            }
            let bytes = match Limited::new(response.into_body(), limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(GatewayError::InvalidUpstream {
                        competitor: call.competitor.clone(),
                        reason: format!("response is larger than {limit} bytes"),
                    })
                }
                Err(e) => {
                    return Err(GatewayError::UpstreamReset {
                        competitor: call.competitor.clone(),
                        reason: e.to_string(),
                    })
                }
            };
            if let Err(why) = janus_core::check_json_document(&bytes) {
                return Err(GatewayError::InvalidUpstream {
                    competitor: call.competitor.clone(),
                    reason: format!("response is not valid JSON: {why}"),
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
        if let Some(at) = upstream_head {
            record.upstream_answered_at(at);
        }
        match outcome {
            Ok(bytes) => {
                // The competitor has answered: the request's platform use is complete.
                let bytes = match &grant {
                    Some(grant) => add_platform_usage(bytes, &grant.figures()),
                    None => bytes,
                };
                drop(grant);
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
    endpoint: ChatEndpoint,
    body: Bytes,
    stream: bool,
    include_usage: bool,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// An artifact route error: the envelope, `Content-Range: bytes */size` on a 416, and the
/// download's security headers (an error body is no more trusted to render than a file).
fn artifact_error(error: &GatewayError) -> Response<ResponseBody> {
    if error.is_server_side() {
        tracing::warn!(error = %error, "artifact download failed");
    }
    let mut response = error_response(error);
    if let GatewayError::RangeNotSatisfiable { size: Some(size) } = error {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    artifacts::insert_security_headers(response.headers_mut());
    response
}

fn set_competitor(response: &mut Response<ResponseBody>, competitor: &str) {
    if let Ok(value) = HeaderValue::from_str(competitor) {
        response.headers_mut().insert(COMPETITOR_HEADER, value);
    }
}
