//! Platform services: the second listener at `ANY /platform/{name}/{path}`, per-request
//! grants, the guards in front of each upstream, budgets and metering.
//!
//! A grant is a stateless token (`signing`, purpose `grant`) over request id, competitor id,
//! expiry (deadline + 30 s) and a budget id unique to the request. The figures of a request
//! live in a [`Meter`] keyed by that budget id, in this replica's memory: the replica that
//! minted the grant creates the meter and drops it when the request ends; a call carrying a
//! grant this replica never minted gets a meter of its own (verified, enforced and counted
//! here, but not reported in the minting replica's stream).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use janus_core::unix_ms;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_core::sse::{SseDecoder, SseItem, DONE_DATA};
use janus_core::{ErrorEnvelope, ErrorKind};
use janus_http::response::{boxed, error_response};
use janus_http::{BoxError, ResponseBody};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::time::{Instant, Sleep};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::platform_config::{Budget, PlatformKind, PlatformService};
use crate::signing::SigningKeys;

/// Signing purpose of grants.
pub const GRANT_PURPOSE: &str = "grant";
/// Header carrying the grant to the competitor.
pub const PLATFORM_TOKEN_HEADER: &str = "x-janus-platform-token";
/// Header carrying the platform base to the competitor.
pub const PLATFORM_URL_HEADER: &str = "x-janus-platform-url";
/// Header carrying the request deadline (unix ms) to the competitor.
pub const DEADLINE_HEADER: &str = "x-janus-deadline";
/// How long a grant outlives the request deadline, so a competitor can clean up.
pub const GRANT_GRACE: Duration = Duration::from_secs(30);
/// Path prefix of the platform listener.
pub const PLATFORM_PREFIX: &str = "/platform/";

type UpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
type PlatformClient = Client<HttpConnector, UpBody>;

/// What a grant says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    /// Request id.
    rid: String,
    /// Competitor id.
    cid: String,
    /// Expiry, unix ms.
    exp: u64,
    /// Budget id: the meter of this request.
    bid: String,
}

/// The platform figures of one request, as reported in `usage.platform`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlatformFigures {
    /// Platform calls.
    pub calls: u64,
    /// Inference prompt tokens reported by upstreams.
    pub prompt_tokens: u64,
    /// Inference completion tokens reported by upstreams.
    pub completion_tokens: u64,
    /// Cost from the price table.
    pub cost_usd: f64,
    /// Sandbox seconds, create to terminate (or to now for a running sandbox).
    pub sandbox_seconds: f64,
    /// Calls by service name.
    pub by_service: BTreeMap<String, u64>,
}

impl PlatformFigures {
    /// The JSON object of `usage.platform`.
    pub fn to_json(&self) -> Value {
        json!({
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round6(self.cost_usd),
            "sandbox_seconds": round6(self.sandbox_seconds),
            "by_service": self.by_service,
        })
    }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[derive(Debug)]
struct SandboxUse {
    service: String,
    id: String,
    started: Instant,
    ended: Option<Instant>,
    refreshed: bool,
    price_per_second: f64,
}

#[derive(Debug, Default)]
struct MeterState {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
    by_service: BTreeMap<String, u64>,
    sandboxes: Vec<SandboxUse>,
}

/// The platform use of one request on this replica.
#[derive(Debug)]
pub struct Meter {
    competitor: String,
    budget: Budget,
    expires_ms: u64,
    state: Mutex<MeterState>,
}

impl Meter {
    fn state(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figures so far; running sandboxes count up to now.
    pub fn figures(&self) -> PlatformFigures {
        let state = self.state();
        let now = Instant::now();
        let mut figures = PlatformFigures {
            calls: state.calls,
            prompt_tokens: state.prompt_tokens,
            completion_tokens: state.completion_tokens,
            cost_usd: state.cost_usd,
            sandbox_seconds: 0.0,
            by_service: state.by_service.clone(),
        };
        for sandbox in &state.sandboxes {
            let seconds = sandbox
                .ended
                .unwrap_or(now)
                .duration_since(sandbox.started)
                .as_secs_f64();
            figures.sandbox_seconds += seconds;
            figures.cost_usd += seconds * sandbox.price_per_second;
        }
        figures
    }

    fn sandbox_seconds(&self) -> f64 {
        self.figures().sandbox_seconds
    }
}

/// A grant minted for one chat request; dropping it ends the request's platform life: its
/// meter leaves the registry and the sandboxes it created (and did not refresh) are
/// terminated.
#[derive(Debug)]
pub struct RequestGrant {
    platform: Arc<Platform>,
    meter: Arc<Meter>,
    budget_id: String,
    /// The token for `X-Janus-Platform-Token`.
    pub token: HeaderValue,
    /// The base for `X-Janus-Platform-Url`.
    pub url: HeaderValue,
}

impl RequestGrant {
    /// The figures so far.
    pub fn figures(&self) -> PlatformFigures {
        self.meter.figures()
    }

    /// The meter (for the access log).
    pub fn meter(&self) -> Arc<Meter> {
        self.meter.clone()
    }
}

impl Drop for RequestGrant {
    fn drop(&mut self) {
        self.platform.end_request(&self.budget_id, &self.meter);
    }
}

/// A configured service, parsed once.
#[derive(Debug)]
struct Service {
    config: PlatformService,
    /// `scheme://authority` of the upstream.
    origin: String,
    /// Path of the base URL, without a trailing slash (may be empty).
    base_path: String,
    /// The injected header value, built once.
    secret_value: Option<HeaderValue>,
}

/// The platform side of a gateway.
#[derive(Debug)]
pub struct Platform {
    services: HashMap<String, Arc<Service>>,
    signing: SigningKeys,
    client: PlatformClient,
    meters: Mutex<HashMap<String, Arc<Meter>>>,
    /// (service, sandbox id) → owning competitor, for sandboxes created through here.
    owners: Mutex<HashMap<(String, String), String>>,
    metrics: Arc<Metrics>,
    public_url: HeaderValue,
    budgets: HashMap<String, Budget>,
}

/// A refused platform call: status, code, message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

impl Refusal {
    fn response(&self) -> Response<ResponseBody> {
        let kind = match self.status {
            StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::RateLimit,
            StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
            s if s.is_server_error() => ErrorKind::Server,
            _ => ErrorKind::InvalidRequest,
        };
        error_response(
            self.status,
            &ErrorEnvelope::new(kind, self.message.clone(), Some(self.code)),
        )
    }
}

/// Request headers never forwarded upstream: hop-by-hop, the grant, client identity.
const STRIPPED_REQUEST: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "via",
    "x-janus-platform-token",
    "content-length",
];

/// Response headers never relayed to the competitor.
const STRIPPED_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "location",
    "www-authenticate",
];

fn strip(headers: &mut HeaderMap, names: &[&str]) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in names {
        headers.remove(*name);
    }
}

/// Checks the raw path after `/platform/{name}`: it must stay below the base. Returns the
/// path as it goes upstream (always starting with `/`).
fn guard_path(rest: &str) -> Result<String, Refusal> {
    let bad = |why: &str| {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_platform_path",
            format!("platform path refused: {why}"),
        )
    };
    if rest.is_empty() {
        return Ok("/".to_owned());
    }
    let Some(inner) = rest.strip_prefix('/') else {
        return Err(bad("malformed"));
    };
    if inner.starts_with('/') {
        return Err(bad("'//' would name another host"));
    }
    if rest.contains('@') || rest.contains('\\') {
        return Err(bad("'@' and '\\' are not allowed"));
    }
    let lower = rest.to_ascii_lowercase();
    // Encoded dots, slashes, backslashes and percent signs (double encoding) could
    // reassemble a traversal after our check; control characters have no business here.
    for encoded in ["%2e", "%2f", "%5c", "%25", "%00"] {
        if lower.contains(encoded) {
            return Err(bad(
                "encoded dots, slashes and percent signs are not allowed",
            ));
        }
    }
    if inner
        .split('/')
        .enumerate()
        .any(|(i, s)| s == "." || s == ".." || (s.is_empty() && i + 1 != inner.split('/').count()))
    {
        return Err(bad("'.', '..' and empty segments are not allowed"));
    }
    if inner.split('/').next().is_some_and(|s| s.contains(':')) {
        return Err(bad("a scheme is not allowed"));
    }
    Ok(rest.to_owned())
}

/// The sandbox id in `/api/sandboxes/{id}[/…]`, and the operation after it.
fn sandbox_target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/sandboxes/")?;
    let (id, op) = rest.split_once('/').unwrap_or((rest, ""));
    (!id.is_empty()).then_some((id, op))
}

impl Platform {
    /// The platform of a gateway configuration (`None` without platform services).
    pub fn new(
        config: &Config,
        signing: SigningKeys,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Platform>>, String> {
        if config.platforms.is_empty() {
            return Ok(None);
        }
        let mut services = HashMap::new();
        for service in &config.platforms {
            let uri: http::Uri = service
                .url
                .parse()
                .map_err(|e| format!("platform '{}': {e}", service.name))?;
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map(|a| a.as_str()).unwrap_or_default()
            );
            let base_path = uri.path().trim_end_matches('/').to_owned();
            let secret_value = match &service.secret {
                Some(secret) => {
                    let text = if service.scheme.is_empty() {
                        secret.expose().to_owned()
                    } else {
                        format!("{} {}", service.scheme, secret.expose())
                    };
                    let mut value = HeaderValue::from_str(&text).map_err(|_| {
                        format!(
                            "platform '{}': the secret is not a valid header value",
                            service.name
                        )
                    })?;
                    value.set_sensitive(true);
                    Some(value)
                }
                None => None,
            };
            services.insert(
                service.name.clone(),
                Arc::new(Service {
                    config: service.clone(),
                    origin,
                    base_path,
                    secret_value,
                }),
            );
        }
        let public_url = HeaderValue::from_str(&config.platform_base())
            .map_err(|_| "--platform-public-url is not a valid header value".to_owned())?;
        let client = janus_http::build_client(config.connect_timeout);
        Ok(Some(Arc::new(Platform {
            services,
            signing,
            client,
            meters: Mutex::default(),
            owners: Mutex::default(),
            metrics,
            public_url,
            budgets: config.budgets.clone(),
        })))
    }

    fn budget(&self, competitor: &str) -> Budget {
        self.budgets.get(competitor).copied().unwrap_or_default()
    }

    /// Mints the grant of a chat request whose deadline is `deadline_ms` (unix ms).
    pub fn mint(
        self: &Arc<Self>,
        request_id: &str,
        competitor: &str,
        deadline_ms: u64,
    ) -> Option<RequestGrant> {
        let grant = Grant {
            rid: request_id.to_owned(),
            cid: competitor.to_owned(),
            exp: deadline_ms
                .saturating_add(u64::try_from(GRANT_GRACE.as_millis()).unwrap_or(u64::MAX)),
            bid: janus_core::random_hex(12),
        };
        let payload = serde_json::to_vec(&grant).ok()?;
        let token = HeaderValue::from_str(&self.signing.sign(GRANT_PURPOSE, &payload)).ok()?;
        let meter = self.meter(&grant);
        Some(RequestGrant {
            platform: self.clone(),
            meter,
            budget_id: grant.bid,
            token,
            url: self.public_url.clone(),
        })
    }

    /// The meter of a grant, created on first use (and expired ones swept).
    fn meter(&self, grant: &Grant) -> Arc<Meter> {
        let mut meters = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(meter) = meters.get(&grant.bid) {
            return meter.clone();
        }
        let now = unix_ms();
        meters.retain(|_, m| m.expires_ms > now || Arc::strong_count(m) > 1);
        let meter = Arc::new(Meter {
            competitor: grant.cid.clone(),
            budget: self.budget(&grant.cid),
            expires_ms: grant.exp,
            state: Mutex::default(),
        });
        meters.insert(grant.bid.clone(), meter.clone());
        meter
    }

    fn end_request(&self, budget_id: &str, meter: &Arc<Meter>) {
        self.meters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(budget_id);
        let figures = meter.figures();
        self.metrics
            .platform_request_finished(figures.sandbox_seconds, figures.cost_usd);
        let leftovers: Vec<(String, String)> = meter
            .state()
            .sandboxes
            .iter()
            .filter(|s| s.ended.is_none() && !s.refreshed)
            .map(|s| (s.service.clone(), s.id.clone()))
            .collect();
        if leftovers.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for (service, id) in leftovers {
            let Some(service) = self.services.get(&service).cloned() else {
                continue;
            };
            self.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(service.config.name.clone(), id.clone()));
            let client = self.client.clone();
            runtime.spawn(async move {
                let url = format!(
                    "{}{}/api/sandboxes/{id}/terminate",
                    service.origin, service.base_path
                );
                let mut request = Request::post(url);
                if let Some(secret) = &service.secret_value {
                    request = request.header(&service.config.header, secret.clone());
                }
                let Ok(request) = request.body(Empty::new().map_err(BoxError::from).boxed_unsync())
                else {
                    return;
                };
                match tokio::time::timeout(Duration::from_secs(30), client.request(request)).await
                {
                    Ok(Ok(response)) => {
                        tracing::info!(sandbox = %id, status = %response.status(), "terminated a sandbox its request left behind");
                    }
                    _ => tracing::warn!(sandbox = %id, "could not terminate a sandbox its request left behind"),
                }
            });
        }
    }

    /// Serves one request of the platform listener.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        match self.call(request).await {
            Ok(response) => response,
            Err(refusal) => {
                tracing::info!(code = refusal.code, status = %refusal.status, "platform call refused");
                refusal.response()
            }
        }
    }

    fn verify(&self, headers: &HeaderMap) -> Result<Grant, Refusal> {
        let invalid = |why: &str| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                format!("platform grant {why}: send the X-Janus-Platform-Token of this request as Authorization: Bearer <grant>"),
            )
        };
        let token =
            janus_http::bearer_token(headers).map_err(|_| invalid("missing or malformed"))?;
        let payload = self
            .signing
            .verify(GRANT_PURPOSE, token)
            .map_err(|_| invalid("does not verify"))?;
        let grant: Grant = serde_json::from_slice(&payload).map_err(|_| invalid("is malformed"))?;
        if grant.exp <= unix_ms() {
            return Err(invalid("has expired"));
        }
        Ok(grant)
    }

    async fn call(&self, request: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
        let uri = request.uri().clone();
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_platform_path",
                "platform path refused: absolute URLs are not allowed",
            ));
        }
        let path = uri.path();
        let Some(after) = path.strip_prefix(PLATFORM_PREFIX) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {path}: platform calls are /platform/<service>/<path>"),
            ));
        };
        let (name, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let service = self.services.get(name).cloned().ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                "platform_service_not_found",
                format!("no platform service named '{name}'"),
            )
        })?;
        let rest = guard_path(rest)?;
        let grant = self.verify(request.headers())?;
        // The platform hop's log lines and span name the competitor that called.
        tracing::Span::current().record("competitor", grant.cid.as_str());
        let upstream_path = format!("{}{}", service.base_path, rest);
        let method = request.method().clone();
        if !service
            .config
            .allow
            .iter()
            .any(|rule| rule.allows(&method, &upstream_path))
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "not_allowed",
                format!("{method} {upstream_path} is not allowed on platform service '{name}'"),
            ));
        }
        let meter = self.meter(&grant);
        let kind = service.config.kind;
        let sandbox = match kind {
            PlatformKind::Sandbox => Some(self.sandbox_checks(&service, &meter, &method, &rest)?),
            _ => None,
        };
        {
            let mut state = meter.state();
            if state.calls >= meter.budget.calls {
                return Err(refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "platform_budget_exceeded",
                    format!(
                        "this request used its {} platform calls",
                        meter.budget.calls
                    ),
                ));
            }
            if kind == PlatformKind::Inference
                && state.prompt_tokens + state.completion_tokens >= meter.budget.inference_tokens
            {
                return Err(refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "platform_budget_exceeded",
                    format!(
                        "this request used its {} inference tokens",
                        meter.budget.inference_tokens
                    ),
                ));
            }
            state.calls += 1;
            *state.by_service.entry(name.to_owned()).or_insert(0) += 1;
            state.cost_usd += service.config.price.per_call;
        }
        self.metrics.platform_call(name);
        tracing::info!(
            service = name,
            request_id = %grant.rid,
            competitor = %grant.cid,
            method = %method,
            path = %upstream_path,
            "platform call"
        );

        let (parts, body) = request.into_parts();
        let trace = parts.extensions.get::<janus_http::TraceContext>().cloned();
        let mut headers = parts.headers;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let cap = service.config.max_request_bytes;
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("platform request bodies are limited to {cap} bytes"),
            ));
        }
        strip(&mut headers, STRIPPED_REQUEST);
        headers.remove(&service.config.header);
        // The upstream continues the trace under this platform hop, not under the
        // competitor that called it.
        if let Some(trace) = &trace {
            headers.insert(
                janus_core::contract::TRACEPARENT_HEADER,
                trace.traceparent.clone(),
            );
        }
        if let Some(secret) = &service.secret_value {
            headers.insert(service.config.header.clone(), secret.clone());
        }
        let chat = kind == PlatformKind::Inference
            && method == Method::POST
            && upstream_path.ends_with("/chat/completions");
        let deadline = Instant::now() + service.config.timeout;
        let timed_out = || {
            refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "platform_timeout",
                format!(
                    "platform service '{name}' did not answer within {:?}",
                    service.config.timeout
                ),
            )
        };
        // Inference chat bodies are small JSON read whole so streaming calls can ask for
        // usage; every other body streams through under the cap.
        let mut strip_usage = false;
        let body: UpBody = if chat {
            let bytes = tokio::time::timeout_at(deadline, Limited::new(body, cap).collect())
                .await
                .map_err(|_| timed_out())?
                .map_err(|_| {
                    refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request_too_large",
                        format!("platform request bodies are limited to {cap} bytes"),
                    )
                })?
                .to_bytes();
            let (bytes, strip) = ask_for_usage(bytes);
            strip_usage = strip;
            Full::new(bytes).map_err(BoxError::from).boxed_unsync()
        } else {
            Limited::new(body, cap).boxed_unsync()
        };
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let target = format!("{}{}{}", service.origin, upstream_path, query);
        let mut upstream = Request::builder()
            .method(method.clone())
            .uri(&target)
            .body(body)
            .map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_platform_path",
                    "platform path refused: not a valid URL path",
                )
            })?;
        *upstream.headers_mut() = headers;
        let called = std::time::Instant::now();
        let response = tokio::time::timeout_at(deadline, self.client.request(upstream))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| {
                tracing::warn!(service = name, error = %janus_core::error_chain(&e), "platform upstream failed");
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "platform_unreachable",
                    format!("platform service '{name}' is unreachable"),
                )
            })?;
        let (mut parts, body) = response.into_parts();
        strip(&mut parts.headers, STRIPPED_RESPONSE);
        let status = parts.status;
        // One line per call with the upstream's answer (streams: to their head; their
        // tokens follow in a `platform usage` line).
        tracing::info!(
            service = name,
            status = status.as_u16(),
            duration_ms = called.elapsed().as_secs_f64() * 1000.0,
            "platform call answered"
        );
        let response_cap = service.config.max_response_bytes;
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let buffered_json = status.is_success()
            && (matches!(sandbox, Some(SandboxOp::Create)) || (chat && !is_sse));
        if buffered_json {
            let bytes =
                tokio::time::timeout_at(deadline, Limited::new(body, response_cap).collect())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|_| {
                        refuse(
                            StatusCode::BAD_GATEWAY,
                            "platform_response_too_large",
                            format!(
                                "platform service '{name}' sent more than {response_cap} bytes"
                            ),
                        )
                    })?
                    .to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if chat {
                if let Some(usage) = value.get("usage") {
                    self.record_usage(&service, &meter, usage);
                }
            }
            if matches!(sandbox, Some(SandboxOp::Create)) {
                self.record_create(&service, &meter, &value);
            }
            parts.headers.remove(header::CONTENT_LENGTH);
            return Ok(Response::from_parts(
                parts,
                janus_http::response::full(bytes),
            ));
        }
        match sandbox {
            Some(SandboxOp::Terminate(id))
                if status.is_success() || status == StatusCode::NOT_FOUND =>
            {
                self.record_terminate(&service, &id);
            }
            Some(SandboxOp::Refresh(id)) if status.is_success() => {
                self.record_refresh(&service, &id);
            }
            _ => {}
        }
        let tap = (chat && is_sse && status.is_success()).then(|| UsageTap {
            decoder: SseDecoder::new(),
            items: Vec::new(),
            partial: BytesMut::new(),
            strip: strip_usage,
        });
        if tap.is_some() {
            // The tap may drop the usage chunk: the length is no longer the upstream's.
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let body = PlatformBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            remaining: response_cap,
            tap,
            service: service.clone(),
            meter: meter.clone(),
            metrics: self.metrics.clone(),
        };
        Ok(Response::from_parts(parts, boxed(body)))
    }

    fn sandbox_checks(
        &self,
        service: &Service,
        meter: &Meter,
        method: &Method,
        rest: &str,
    ) -> Result<SandboxOp, Refusal> {
        let over_seconds = || meter.sandbox_seconds() >= meter.budget.sandbox_seconds;
        let exceeded = |what: String| {
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "platform_budget_exceeded",
                what,
            )
        };
        if rest == "/api/sandboxes" && method == Method::POST {
            let created = meter.state().sandboxes.len() as u64;
            if created >= meter.budget.sandboxes {
                return Err(exceeded(format!(
                    "this request created its {} sandboxes",
                    meter.budget.sandboxes
                )));
            }
            if over_seconds() {
                return Err(exceeded(format!(
                    "this request used its {} sandbox-seconds",
                    meter.budget.sandbox_seconds
                )));
            }
            return Ok(SandboxOp::Create);
        }
        let Some((id, op)) = sandbox_target(rest) else {
            return Ok(SandboxOp::Other);
        };
        let owner = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(service.config.name.clone(), id.to_owned()))
            .cloned();
        if owner.as_deref() != Some(meter.competitor.as_str()) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "not_allowed",
                format!("sandbox '{id}' was not created through this platform by your competitor"),
            ));
        }
        match op {
            "terminate" => Ok(SandboxOp::Terminate(id.to_owned())),
            "refresh" => Ok(SandboxOp::Refresh(id.to_owned())),
            _ if over_seconds() => Err(exceeded(format!(
                "this request used its {} sandbox-seconds",
                meter.budget.sandbox_seconds
            ))),
            _ => Ok(SandboxOp::Other),
        }
    }

    fn record_usage(&self, service: &Service, meter: &Meter, usage: &Value) {
        let prompt = usage
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let completion = usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        record_tokens(service, meter, &self.metrics, prompt, completion);
    }

    fn record_create(&self, service: &Service, meter: &Meter, value: &Value) {
        let id = ["sandboxId", "sandbox_id", "id"]
            .iter()
            .find_map(|key| value.get(*key).and_then(Value::as_str));
        let Some(id) = id else {
            tracing::warn!(service = %service.config.name, "sandbox create answered no id; not metered");
            return;
        };
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (service.config.name.clone(), id.to_owned()),
                meter.competitor.clone(),
            );
        meter.state().sandboxes.push(SandboxUse {
            service: service.config.name.clone(),
            id: id.to_owned(),
            started: Instant::now(),
            ended: None,
            refreshed: false,
            price_per_second: service.config.price.per_sandbox_second,
        });
    }

    fn with_sandbox(&self, service: &Service, id: &str, f: impl Fn(&mut SandboxUse)) {
        let meters = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        for meter in meters.values() {
            let mut state = meter.state();
            for sandbox in state
                .sandboxes
                .iter_mut()
                .filter(|s| s.id == id && s.service == service.config.name)
            {
                f(sandbox);
            }
        }
    }

    fn record_terminate(&self, service: &Service, id: &str) {
        self.with_sandbox(service, id, |s| {
            if s.ended.is_none() {
                s.ended = Some(Instant::now());
            }
        });
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(service.config.name.clone(), id.to_owned()));
    }

    fn record_refresh(&self, service: &Service, id: &str) {
        self.with_sandbox(service, id, |s| s.refreshed = true);
    }
}

fn record_tokens(
    service: &Service,
    meter: &Meter,
    metrics: &Metrics,
    prompt: u64,
    completion: u64,
) {
    let price = service.config.price;
    let mut state = meter.state();
    state.prompt_tokens += prompt;
    state.completion_tokens += completion;
    state.cost_usd += prompt as f64 * price.prompt_per_million / 1e6
        + completion as f64 * price.completion_per_million / 1e6;
    drop(state);
    metrics.platform_tokens(&service.config.name, prompt, completion);
    // Inside the platform hop's span: `janus trace` shows the tokens of the call.
    tracing::info!(
        service = %service.config.name,
        prompt_tokens = prompt,
        completion_tokens = completion,
        "platform usage"
    );
}

#[derive(Debug)]
enum SandboxOp {
    Create,
    Terminate(String),
    Refresh(String),
    Other,
}

/// Sets `stream_options.include_usage` on a streaming chat body; true when the competitor
/// had not asked for it (so the usage chunk is stripped on the way back).
fn ask_for_usage(bytes: Bytes) -> (Bytes, bool) {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&bytes) else {
        return (bytes, false);
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return (bytes, false);
    }
    let asked = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if asked {
        return (bytes, false);
    }
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Value::Object(options) = options {
        options.insert("include_usage".into(), Value::Bool(true));
    }
    match serde_json::to_vec(&body) {
        Ok(rewritten) => (Bytes::from(rewritten), true),
        Err(_) => (bytes, false),
    }
}

/// Reads usage out of an inference stream; strips the usage chunk when asked to.
#[derive(Debug)]
struct UsageTap {
    decoder: SseDecoder,
    items: Vec<SseItem>,
    partial: BytesMut,
    strip: bool,
}

/// The response body of a platform call: the upstream's bytes as they arrive, under the
/// per-call deadline and the response cap, with usage read from inference streams.
struct PlatformBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    remaining: usize,
    tap: Option<UsageTap>,
    service: Arc<Service>,
    meter: Arc<Meter>,
    metrics: Arc<Metrics>,
}

impl PlatformBody {
    /// Forwards complete events (zero-copy) and holds back a partial tail; the one read
    /// carrying the usage chunk is re-encoded without it when the competitor did not ask.
    fn tap(&mut self, data: Bytes) -> Bytes {
        let Some(tap) = &mut self.tap else {
            return data;
        };
        let outcome = match tap.decoder.feed(&data, &mut tap.items) {
            Ok(outcome) => outcome,
            Err(_) => {
                // Not SSE we can read: stop metering, pass the bytes on.
                let mut joined = std::mem::take(&mut tap.partial);
                joined.extend_from_slice(&data);
                self.tap = None;
                return joined.freeze();
            }
        };
        let mut usage_at = None;
        for (i, item) in tap.items.iter().enumerate() {
            let SseItem::Event(event) = item else {
                continue;
            };
            if event.data.trim() == DONE_DATA || !event.data.contains("\"usage\"") {
                continue;
            }
            if let Ok(value) = serde_json::from_str::<Value>(&event.data) {
                if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
                    let prompt = usage
                        .get("prompt_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let completion = usage
                        .get("completion_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    record_tokens(
                        &self.service,
                        &self.meter,
                        &self.metrics,
                        prompt,
                        completion,
                    );
                    usage_at = Some((i, value));
                }
            }
        }
        let ready = match outcome.last_boundary {
            Some(boundary) => {
                let mut joined = std::mem::take(&mut tap.partial);
                let head = if joined.is_empty() {
                    data.slice(..boundary)
                } else {
                    joined.extend_from_slice(&data[..boundary]);
                    joined.freeze()
                };
                tap.partial.extend_from_slice(&data[boundary..]);
                head
            }
            None => {
                tap.partial.extend_from_slice(&data);
                Bytes::new()
            }
        };
        let ready = match usage_at {
            Some((at, mut value)) if tap.strip => {
                let mut out = Vec::with_capacity(ready.len());
                for (i, item) in tap.items.iter().enumerate() {
                    match item {
                        SseItem::Event(_) if i == at => {
                            let has_choices = value
                                .get("choices")
                                .and_then(Value::as_array)
                                .is_some_and(|c| !c.is_empty());
                            if has_choices {
                                if let Value::Object(map) = &mut value {
                                    map.remove("usage");
                                }
                                janus_core::sse::encode_data(&value.to_string(), &mut out);
                            }
                        }
                        SseItem::Event(event) => janus_core::sse::encode_event(event, &mut out),
                        SseItem::Comment(text) => janus_core::sse::encode_comment(text, &mut out),
                    }
                }
                Bytes::from(out)
            }
            _ => ready,
        };
        tap.items.clear();
        ready
    }
}

impl Body for PlatformBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err("platform call timed out".into())));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.len() > this.remaining {
                            return Poll::Ready(Some(Err(
                                "platform response is larger than the cap".into(),
                            )));
                        }
                        this.remaining -= data.len();
                        let out = this.tap(data);
                        if out.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    // Trailers are dropped: nothing in the platform APIs uses them.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => {
                    if let Some(tap) = &mut this.tap {
                        if !tap.partial.is_empty() {
                            let rest = std::mem::take(&mut tap.partial).freeze();
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Adds `usage.platform` to a non-streaming chat response (adding a zero `usage` when the
/// competitor sent none); the bytes unchanged when they are not a JSON object.
pub fn add_platform_usage(bytes: Bytes, figures: &PlatformFigures) -> Bytes {
    let Ok(Value::Object(mut response)) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    let usage = response
        .entry("usage")
        .or_insert_with(|| json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}));
    if let Value::Object(usage) = usage {
        usage.insert("platform".into(), figures.to_json());
    }
    match serde_json::to_vec(&response) {
        Ok(out) => Bytes::from(out),
        Err(_) => bytes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn path_guard_refuses_escapes() {
        for bad in [
            "//127.0.0.9:9/x",
            "/../x",
            "/a/../../x",
            "/a/./b",
            "/%2e%2e/x",
            "/%2E./x",
            "/a%2fb",
            "/a%5cb",
            "/a%252e",
            "/user@host/x",
            "/a\\b",
            "/http:/x",
            "/a//b",
        ] {
            assert!(guard_path(bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(
            guard_path("/v1/chat/completions").unwrap(),
            "/v1/chat/completions"
        );
        assert_eq!(guard_path("").unwrap(), "/");
        assert_eq!(guard_path("/a/").unwrap(), "/a/");
    }

    #[test]
    fn usage_is_requested_once() {
        let (body, strip) = ask_for_usage(Bytes::from_static(br#"{"stream":true,"model":"m"}"#));
        assert!(strip);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        let asked =
            Bytes::from_static(br#"{"stream":true,"stream_options":{"include_usage":true}}"#);
        assert!(!ask_for_usage(asked.clone()).1);
        assert!(!ask_for_usage(Bytes::from_static(br#"{"model":"m"}"#)).1);
    }

    #[test]
    fn platform_usage_lands_in_usage() {
        let figures = PlatformFigures {
            calls: 2,
            ..PlatformFigures::default()
        };
        let out = add_platform_usage(Bytes::from_static(br#"{"id":"x","choices":[]}"#), &figures);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["usage"]["platform"]["calls"], 2);
        assert_eq!(v["usage"]["prompt_tokens"], 0);
    }
}
