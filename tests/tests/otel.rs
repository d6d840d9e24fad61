//! OpenTelemetry export: a small OTLP/HTTP receiver (a test double for a collector) gets the
//! hop spans of the gateway and the competitor, in one trace, linked parent to child, the
//! client's trace id kept.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use janus_http::otel::OtlpConfig;
use janus_http::{Drain, ResponseBody, ServeConfig};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;

/// Every span the receiver got: (service, span JSON).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sink = received.clone();
    let handler = move |request: Request<Incoming>| {
        let sink = sink.clone();
        async move {
            assert_eq!(request.uri().path(), "/v1/traces");
            assert_eq!(request.headers()["content-type"], "application/json");
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let export: Value = serde_json::from_slice(&body).unwrap();
            for resource in export["resourceSpans"].as_array().unwrap() {
                let service = resource["resource"]["attributes"][0]["value"]["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        sink.lock().unwrap().push((service.clone(), span.clone()));
                    }
                }
            }
            janus_http::response::json_response(StatusCode::OK, "{}") as Response<ResponseBody>
        }
    };
    tokio::spawn(janus_http::serve(
        listener,
        handler,
        ServeConfig::default(),
        Drain::new(),
        std::future::pending(),
    ));
    (url, received)
}

/// A competitor (test double) that creates and terminates a sandbox through the platform.
struct SandboxUser;

#[janus_competitor_sdk::async_trait]
impl janus_competitor_sdk::Competitor for SandboxUser {
    async fn handle(
        &self,
        _request: janus_competitor_sdk::ChatCompletionRequest,
        context: janus_competitor_sdk::RequestContext,
        out: &mut dyn janus_competitor_sdk::EventWriter,
    ) -> Result<(), janus_competitor_sdk::CompetitorError> {
        use janus_competitor_sdk::PlatformExt as _;
        let fail = |e: &dyn std::fmt::Display| {
            janus_competitor_sdk::CompetitorError::Internal(e.to_string())
        };
        let platform = context.platform().ok_or_else(|| fail(&"no platform"))?;
        let sandy = platform.sandy();
        let sandbox = sandy
            .create(&janus_competitor_sdk::CreateOptions::default())
            .await
            .map_err(|e| fail(&e))?;
        sandy.terminate(&sandbox.id).await.map_err(|e| fail(&e))?;
        out.content("done").await?;
        Ok(())
    }
}

/// A collector (test double) and this test process's exporter pointed at it, sending every
/// 50 ms (nextest runs each test in its own process, so the global subscriber is ours).
async fn exporting() -> Received {
    let (collector, received) = receiver().await;
    let config = OtlpConfig::from_vars(|key| match key {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(collector.clone()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("50".to_owned()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(janus_http::otel::layer(config)),
    )
    .unwrap();
    received
}

/// A non-streamed chat through `gateway` in the trace `00-<trace_id>-<parent>-01`.
async fn traced_chat(gateway: &str, trace_id: &str, parent: &str, prompt: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = serde_json::json!({"model": "c", "messages": [{"role": "user", "content": prompt}]})
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(gateway.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntraceparent: 00-{trace_id}-{parent}-01\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// The spans of `trace_id` once at least `count` arrived (spans close when their
/// responses are done), within 10 s.
async fn spans_of(received: &Received, trace_id: &str, count: usize) -> Vec<(String, Value)> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            janus_http::otel::flush(Duration::from_secs(2)).await;
            let spans: Vec<(String, Value)> = received
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, s)| s["traceId"] == trace_id)
                .cloned()
                .collect();
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than {count} spans of {trace_id} reached the collector"))
}

#[tokio::test]
async fn gateway_and_competitor_spans_share_the_clients_trace_with_parent_links() {
    let received = exporting().await;
    let stack = janus_e2e::start(echo_competitor::Echo::new(Duration::from_millis(50)))
        .await
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let answer = traced_chat(&stack.gateway, trace_id, client_span, "hello").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let spans = spans_of(&received, trace_id, 2).await;
    let of = |service: &str| {
        spans
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, span)| span.clone())
            .unwrap_or_else(|| panic!("no {service} span in {spans:#?}"))
    };
    let gateway = of("janus-gateway");
    let competitor = of("janus-competitor");
    assert_eq!(gateway["parentSpanId"], client_span);
    assert_eq!(competitor["parentSpanId"], gateway["spanId"]);
    assert_ne!(competitor["spanId"], gateway["spanId"]);
    assert_eq!(gateway["kind"], 2);
    assert_eq!(gateway["status"]["code"], 1, "{gateway}");
    let start = |s: &Value| {
        s["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    let end = |s: &Value| {
        s["endTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    assert!(start(&gateway) <= start(&competitor) && end(&competitor) <= end(&gateway) + 5_000_000);
    let attribute = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    assert_eq!(
        attribute(&gateway, "competitor").unwrap()["stringValue"],
        "c",
        "{gateway}"
    );
}

#[tokio::test]
async fn platform_and_sandbox_calls_are_children_in_the_same_trace() {
    let received = exporting().await;
    let root = std::env::temp_dir().join(format!("janus-e2e-otel-{}", janus_core::random_hex(6)));
    let mut sandbox_config = janus_sandbox::Config::new(root, janus_sandbox::IsolationMode::None);
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
    sandbox_config.public_url = sandbox_url.clone();
    tokio::spawn(janus_sandbox::run(
        sandbox_listener,
        sandbox_config,
        std::future::pending(),
    ));
    let platforms = vec![janus_gateway::PlatformService::new(
        "sandbox",
        janus_gateway::PlatformKind::Sandbox,
        &sandbox_url,
    )
    .unwrap()];
    let stack = janus_e2e::start_with_platform(SandboxUser, platforms)
        .await
        .unwrap();
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let answer = traced_chat(&stack.gateway, trace_id, "b7ad6b7169203331", "go").await;
    assert!(answer.contains("done"), "{answer}");
    // gateway, competitor, and for each of create and terminate: platform, sandbox.
    let spans = spans_of(&received, trace_id, 6).await;
    let by = |service: &str| -> Vec<Value> {
        spans
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, span)| span.clone())
            .collect()
    };
    let gateway = by("janus-gateway");
    let competitor = by("janus-competitor");
    let platform = by("janus-platform");
    let sandbox = by("janus-sandbox");
    assert_eq!((gateway.len(), competitor.len()), (1, 1), "{spans:#?}");
    assert_eq!(platform.len(), 2, "{spans:#?}");
    assert_eq!(sandbox.len(), 2, "{spans:#?}");
    assert_eq!(competitor[0]["parentSpanId"], gateway[0]["spanId"]);
    for call in &platform {
        assert_eq!(call["parentSpanId"], competitor[0]["spanId"], "{call}");
    }
    let platform_ids: Vec<&Value> = platform.iter().map(|p| &p["spanId"]).collect();
    for operation in &sandbox {
        assert!(
            platform_ids.contains(&&operation["parentSpanId"]),
            "a sandbox operation whose parent is not a platform call: {operation}"
        );
    }
    let attribute = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(
        attribute(&platform[0], "competitor"),
        Some(Value::from("c"))
    );
}
