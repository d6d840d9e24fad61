//! Optional span export over OTLP/HTTP (JSON encoding), on exactly when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` then names
//! the traces URL, if given).
//!
//! What is exported are the hop spans the serving layer opens for every request (those with
//! `trace_id` and `span_id` fields): their ids are the ones the component logs and sends
//! downstream in `traceparent`, so the spans of gateway, competitor, platform proxy and
//! sandbox service link up exactly as `janus trace` links the logs. That is why this is a
//! small layer of our own and not the `opentelemetry` SDK, which would mint span ids of
//! its own (and add a protobuf stack to every binary) — OTLP/HTTP with JSON bodies is part
//! of the OTLP specification and accepted by the OpenTelemetry Collector.
//!
//! Cost when off: nothing — the layer is not installed. When on: one small record per
//! request span, handed to a bounded queue (full queue: the span is dropped and counted,
//! the request never waits), exported in batches by one background task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tracing::span;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::runtime::JsonVisitor;

/// Spans waiting for export at most; more are dropped (and counted).
const QUEUE: usize = 4096;
/// Spans per export request at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`'s default).
const MAX_BATCH: usize = 512;

/// Where and how to export, from the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The traces URL (`…/v1/traces`).
    pub traces_url: http::Uri,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`, `k=v,k2=v2`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `OTEL_SERVICE_NAME`; when unset each span's `component` names its service.
    pub service_name: Option<String>,
    /// `OTEL_BSP_SCHEDULE_DELAY` in milliseconds (default 5000).
    pub schedule_delay: Duration,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` in milliseconds (default 10000).
    pub timeout: Duration,
}

impl OtlpConfig {
    /// From the process environment; `Ok(None)` when export is off.
    pub fn from_env() -> Result<Option<OtlpConfig>, String> {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// From a variable lookup (testable without touching the environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, String> {
        let set = |key: &str| {
            var(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        // On exactly when the endpoint is set (decisions.md); the traces-specific variable
        // only refines where spans go.
        let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") else {
            return Ok(None);
        };
        let url = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .unwrap_or_else(|| format!("{}/v1/traces", base.trim_end_matches('/')));
        if let Some(protocol) = set("OTEL_EXPORTER_OTLP_PROTOCOL") {
            if protocol != "http/json" {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/json is supported"
                ));
            }
        }
        let traces_url: http::Uri = url
            .parse()
            .map_err(|e| format!("OTLP endpoint '{url}' is not a URL: {e}"))?;
        if traces_url.scheme_str() != Some("http") || traces_url.host().is_none() {
            return Err(format!(
                "OTLP endpoint '{url}' must be an http:// URL (send to a local collector)"
            ));
        }
        let mut headers = Vec::new();
        for pair in set("OTEL_EXPORTER_OTLP_HEADERS")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| "OTEL_EXPORTER_OTLP_HEADERS must be k=v pairs".to_owned())?;
            let name = http::HeaderName::try_from(name.trim())
                .map_err(|_| format!("bad header name '{}'", name.trim()))?;
            // The value may be a secret: never echoed.
            let value = http::HeaderValue::try_from(value.trim())
                .map_err(|_| format!("bad value for header '{name}'"))?;
            headers.push((name, value));
        }
        let millis = |key: &str, default: u64| -> Result<Duration, String> {
            match set(key) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{key}={v} is not a number of milliseconds")),
            }
        };
        Ok(Some(OtlpConfig {
            traces_url,
            headers,
            service_name: set("OTEL_SERVICE_NAME"),
            schedule_delay: millis("OTEL_BSP_SCHEDULE_DELAY", 5000)?.max(Duration::from_millis(10)),
            timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        }))
    }
}

/// A finished span, ready for export.
#[derive(Debug, Clone)]
struct Finished {
    name: &'static str,
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    start: SystemTime,
    end: SystemTime,
    attributes: Map<String, Value>,
    error: bool,
}

/// A request span being recorded (kept in the span's extensions).
struct Recording {
    start: SystemTime,
    attributes: Map<String, Value>,
    error: bool,
}

/// The exporting layer; see the module docs.
#[derive(Debug)]
pub struct OtlpLayer {
    queue: mpsc::Sender<Finished>,
    dropped: Arc<AtomicU64>,
}

/// The running exporter, for a final flush at exit.
#[derive(Debug, Clone)]
pub struct OtlpHandle {
    flush: mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
    dropped: Arc<AtomicU64>,
}

static HANDLE: OnceLock<OtlpHandle> = OnceLock::new();

/// Exports what is queued now; returns when that export is done (or failed), at most
/// `limit` later. Binaries call it before they exit. No-op when export is off.
pub async fn flush(limit: Duration) {
    let Some(handle) = HANDLE.get() else {
        return;
    };
    let (done, waited) = tokio::sync::oneshot::channel();
    if handle.flush.send(done).await.is_ok() {
        let _ = tokio::time::timeout(limit, waited).await;
    }
    let dropped = handle.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "spans dropped because the OTLP export queue was full"
        );
    }
}

/// The layer and its exporter task, started on the current tokio runtime (or a thread of
/// its own when there is none).
pub fn layer(config: OtlpConfig) -> OtlpLayer {
    let (queue, spans) = mpsc::channel(QUEUE);
    let (flush, flushes) = mpsc::channel(4);
    let dropped = Arc::new(AtomicU64::new(0));
    let _ = HANDLE.set(OtlpHandle {
        flush,
        dropped: dropped.clone(),
    });
    let task = export_loop(config, spans, flushes);
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
        }
        Err(_) => {
            let _ = std::thread::Builder::new()
                .name("otlp-export".into())
                .spawn(move || {
                    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        runtime.block_on(task);
                    }
                });
        }
    }
    OtlpLayer { queue, dropped }
}

async fn export_loop(
    config: OtlpConfig,
    mut spans: mpsc::Receiver<Finished>,
    mut flushes: mpsc::Receiver<tokio::sync::oneshot::Sender<()>>,
) {
    let client = crate::client::build_client::<Full<Bytes>>(Duration::from_secs(5));
    let mut batch: Vec<Finished> = Vec::new();
    let mut tick = tokio::time::interval(config.schedule_delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flushes_open = true;
    loop {
        let mut waiter = None;
        tokio::select! {
            received = spans.recv() => {
                let Some(span) = received else {
                    // The layer is gone: export what is left and stop.
                    send_all(&client, &config, &mut batch).await;
                    return;
                };
                batch.push(span);
                if batch.len() < MAX_BATCH {
                    continue;
                }
            }
            _ = tick.tick() => {}
            asked = flushes.recv(), if flushes_open => {
                // None: no flush handle points here (a second layer); stop listening.
                flushes_open = asked.is_some();
                // Take whatever is queued right now.
                while let Ok(span) = spans.try_recv() {
                    batch.push(span);
                }
                waiter = asked;
            }
        }
        send_all(&client, &config, &mut batch).await;
        if let Some(done) = waiter {
            let _ = done.send(());
        }
    }
}

type ExportClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn send_all(client: &ExportClient, config: &OtlpConfig, batch: &mut Vec<Finished>) {
    while !batch.is_empty() {
        let take = batch.len().min(MAX_BATCH);
        let chunk: Vec<Finished> = batch.drain(..take).collect();
        send(client, config, &chunk).await;
    }
}

async fn send(client: &ExportClient, config: &OtlpConfig, spans: &[Finished]) {
    let body = Bytes::from(encode(config, spans).to_string());
    let mut request = http::Request::post(config.traces_url.clone())
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    let Ok(request) = request.body(Full::new(body)) else {
        return;
    };
    // Export failures are reported without the headers (they may hold credentials). The
    // exporter's own request runs outside any request span, so it is never exported.
    match tokio::time::timeout(config.timeout, client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => {}
        Ok(Ok(response)) => {
            tracing::warn!(
                status = response.status().as_u16(),
                spans = spans.len(),
                "OTLP export refused"
            )
        }
        Ok(Err(e)) => tracing::warn!(error = %e, spans = spans.len(), "OTLP export failed"),
        Err(_) => tracing::warn!(spans = spans.len(), "OTLP export timed out"),
    }
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_else(|_| "0".to_owned())
}

fn attribute(key: &str, value: &Value) -> Value {
    let value = match value {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans`, one resource per service.
fn encode(config: &OtlpConfig, spans: &[Finished]) -> Value {
    let mut by_service: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for span in spans {
        let service = config.service_name.clone().unwrap_or_else(|| {
            span.attributes
                .get("component")
                .and_then(Value::as_str)
                .map_or_else(|| "janus".to_owned(), |c| format!("janus-{c}"))
        });
        let mut encoded = json!({
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "name": span.name,
            "kind": 2, // SERVER: each hop span is a request this component served.
            "startTimeUnixNano": nanos(span.start),
            "endTimeUnixNano": nanos(span.end),
            "attributes": span.attributes.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "trace_id" | "span_id" | "parent_span_id"))
                .map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
            "status": {"code": if span.error { 2 } else { 1 }},
        });
        if let (Some(parent), Value::Object(map)) = (&span.parent_span_id, &mut encoded) {
            map.insert("parentSpanId".into(), Value::String(parent.clone()));
        }
        by_service.entry(service).or_default().push(encoded);
    }
    let resource_spans: Vec<Value> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": {"attributes": [attribute("service.name", &Value::String(service))]},
                "scopeSpans": [{"scope": {"name": "janus", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
            })
        })
        .collect();
    json!({"resourceSpans": resource_spans})
}

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        // Only hop spans: the serving layer's request spans carry these two fields.
        let fields = attrs.metadata().fields();
        if fields.field("trace_id").is_none() || fields.field("span_id").is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut attributes = Map::new();
        attrs.record(&mut JsonVisitor(&mut attributes));
        span.extensions_mut().insert(Mutex::new(Recording {
            start: SystemTime::now(),
            attributes,
            error: false,
        }));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(recording) = span.extensions().get::<Mutex<Recording>>() {
                if let Ok(mut recording) = recording.lock() {
                    values.record(&mut JsonVisitor(&mut recording.attributes));
                }
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        // A warning or error inside a hop marks that hop's span as failed.
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(recording) = span.extensions().get::<Mutex<Recording>>() {
                if let Ok(mut recording) = recording.lock() {
                    recording.error = true;
                }
                break;
            }
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(recording) = span.extensions_mut().remove::<Mutex<Recording>>() else {
            return;
        };
        let Ok(recording) = recording.into_inner() else {
            return;
        };
        let text = |key: &str| {
            recording
                .attributes
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(trace_id), Some(span_id)) = (text("trace_id"), text("span_id")) else {
            return;
        };
        let finished = Finished {
            name: span.metadata().name(),
            trace_id,
            span_id,
            parent_span_id: text("parent_span_id"),
            start: recording.start,
            end: SystemTime::now(),
            attributes: recording.attributes,
            error: recording.error,
        };
        if self.queue.try_send(finished).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        assert_eq!(OtlpConfig::from_vars(vars(&[])).unwrap(), None);
        assert_eq!(
            OtlpConfig::from_vars(vars(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:9/t"
            )]))
            .unwrap(),
            None,
            "the traces URL alone does not turn export on"
        );
        let on = OtlpConfig::from_vars(vars(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318/",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(on.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(on.schedule_delay, Duration::from_secs(5));
        let traces = OtlpConfig::from_vars(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/t"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-key=secret-value, x-b = 2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(traces.traces_url, "http://127.0.0.1:9/t");
        assert_eq!(traces.service_name.as_deref(), Some("svc"));
        assert_eq!(traces.headers.len(), 2);
        assert_eq!(
            OtlpConfig::from_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_SDK_DISABLED", "true"),
            ]))
            .unwrap(),
            None
        );
    }

    #[test]
    fn bad_settings_are_errors_that_never_echo_header_values() {
        for bad in [
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318")],
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
        ] {
            assert!(OtlpConfig::from_vars(vars(&bad)).is_err(), "{bad:?}");
        }
        let error = OtlpConfig::from_vars(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-key=bad\u{1}secret"),
        ]))
        .unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn spans_encode_as_otlp_json_with_parents_and_one_resource_per_component() {
        let config = OtlpConfig::from_vars(vars(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318",
        )]))
        .unwrap()
        .unwrap();
        let span = |component: &str, span_id: &str, parent: Option<&str>| Finished {
            name: "request",
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: span_id.into(),
            parent_span_id: parent.map(str::to_owned),
            start: UNIX_EPOCH + Duration::from_secs(1),
            end: UNIX_EPOCH + Duration::from_secs(2),
            attributes: [("component".to_owned(), Value::String(component.into()))]
                .into_iter()
                .chain([("status".to_owned(), json!(200))])
                .collect(),
            error: false,
        };
        let encoded = encode(
            &config,
            &[
                span("gateway", "aaaaaaaaaaaaaaaa", None),
                span("competitor", "bbbbbbbbbbbbbbbb", Some("aaaaaaaaaaaaaaaa")),
            ],
        );
        let resources = encoded["resourceSpans"].as_array().unwrap();
        assert_eq!(resources.len(), 2);
        let competitor = &resources[0];
        assert_eq!(
            competitor["resource"]["attributes"][0]["value"]["stringValue"],
            "janus-competitor"
        );
        let span = &competitor["scopeSpans"][0]["spans"][0];
        assert_eq!(span["parentSpanId"], "aaaaaaaaaaaaaaaa");
        assert_eq!(span["startTimeUnixNano"], "1000000000");
        assert!(span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "status" && a["value"]["intValue"] == "200"));
        assert!(resources[1]["scopeSpans"][0]["spans"][0]
            .get("parentSpanId")
            .is_none());
    }
}
