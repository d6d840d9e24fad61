//! `janus trace` over a whole local stack in one process: gateway → competitor → platform
//! inference (a test double upstream) → platform sandbox → the sandbox service, and the
//! artifact the competitor published, downloaded afterwards through the gateway. Every
//! component logs into one JSON file; the trace rebuilt from it shows each hop in order
//! with its latency.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use janus_competitor_sdk::{
    async_trait, publish_artifact, ChatCompletionRequest, Competitor, CompetitorError,
    CreateOptions, EventWriter, PlatformExt as _, RequestContext,
};
use janus_gateway::{PlatformKind, PlatformService};
use serde_json::{json, Value};

/// The inference upstream (a test double): a chat completion with usage.
async fn fake_inference() -> String {
    let addr = janus_e2e::test_double(|request: hyper::Request<hyper::body::Incoming>| async move {
        let _ = request.into_body().collect().await;
        let body = json!({"id":"u","object":"chat.completion","created":1,"model":"up",
            "choices":[{"index":0,"message":{"role":"assistant","content":"upstream says hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":13,"completion_tokens":4,"total_tokens":17}});
        janus_http::response::json_response(http::StatusCode::OK, body.to_string())
    })
    .await
    .unwrap();
    format!("http://{addr}/v1")
}

/// A competitor (test double) that asks inference, runs a command in a platform sandbox
/// and publishes a file too large for a `data:` URL.
struct Worker;

#[async_trait]
impl Competitor for Worker {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let fail = |e: &dyn std::fmt::Display| CompetitorError::Internal(e.to_string());
        let platform = context.platform().ok_or_else(|| fail(&"no platform"))?;
        let answer = platform
            .chat(&json!({"model": "up", "messages": [{"role": "user", "content": "hi"}]}))
            .await
            .map_err(|e| fail(&e))?;
        out.content(
            answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or(""),
        )
        .await?;
        let sandy = platform.sandy();
        let sandbox = sandy
            .create(&CreateOptions::default())
            .await
            .map_err(|e| fail(&e))?;
        sandy
            .exec(&sandbox.id, "echo work", Duration::from_secs(10))
            .await
            .map_err(|e| fail(&e))?;
        sandy.terminate(&sandbox.id).await.map_err(|e| fail(&e))?;
        let bytes: Vec<u8> = (0..1_100_000u32).map(|i| (i % 251) as u8).collect();
        let artifact = publish_artifact(bytes, "result.bin", "application/octet-stream")
            .await
            .map_err(|e| fail(&e))?;
        out.artifact(artifact).await?;
        Ok(())
    }
}

fn steps(hop: &janus_client::trace::Hop) -> Vec<&str> {
    hop.events.iter().map(|e| e.what.as_str()).collect()
}

fn all_hops(hops: &[janus_client::trace::Hop]) -> Vec<&janus_client::trace::Hop> {
    let mut out = Vec::new();
    for hop in hops {
        out.push(hop);
        out.extend(all_hops(&hop.children));
    }
    out
}

#[tokio::test]
async fn a_request_through_every_hop_is_rebuilt_in_order_from_the_logs() {
    let dir = std::env::temp_dir().join(format!("janus-e2e-trace-{}", janus_core::random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stack.log");
    let file = std::fs::File::create(&log).unwrap();
    // This test's own process-wide subscriber (nextest runs each test in its own process):
    // the JSON shape every binary writes.
    tracing::subscriber::set_global_default(janus_http::runtime::json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        Mutex::new(file),
    ))
    .unwrap();

    let mut sandbox_config =
        janus_sandbox::Config::new(dir.join("sandboxes"), janus_sandbox::IsolationMode::None);
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
    sandbox_config.public_url = sandbox_url.clone();
    sandbox_config.serve.component = "sandbox";
    tokio::spawn(janus_sandbox::run(
        sandbox_listener,
        sandbox_config,
        std::future::pending(),
    ));
    let platforms = vec![
        PlatformService::new(
            "inference",
            PlatformKind::Inference,
            &fake_inference().await,
        )
        .unwrap(),
        PlatformService::new("sandbox", PlatformKind::Sandbox, &sandbox_url).unwrap(),
    ];
    let stack = janus_e2e::start_with_platform(Worker, platforms)
        .await
        .unwrap();

    let client = janus_client::HttpClient::default();
    let reply = client
        .post_json(
            &format!("{}/v1/chat/completions", stack.gateway),
            Bytes::from(
                json!({"model": "c", "messages": [{"role": "user", "content": "go"}]}).to_string(),
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    let url = body["choices"][0]["message"]["artifacts"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no artifact: {body}"))
        .to_owned();
    assert!(url.contains("/v1/artifacts/"), "{url}");
    let download = client.get(&url, Duration::from_secs(30)).await.unwrap();
    assert_eq!(download.status, 200);
    assert_eq!(download.body.len(), 1_100_000);

    // The competitor's last line is written as its response ends: wait for it.
    let files = vec![log.clone()];
    let mut trace = None;
    for _ in 0..100 {
        if let Ok(t) = janus_client::trace::build(&request_id, &files) {
            let hops = all_hops(&t.hops);
            let done = hops
                .iter()
                .any(|h| h.component == "competitor" && steps(h).contains(&"request finished"))
                && hops.iter().any(|h| steps(h).contains(&"artifact download"));
            if done {
                trace = Some(t);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trace = trace.expect("the trace never completed in the log");
    let text = trace.to_text();
    assert!(trace.missing.is_empty(), "{text}");

    let gateway = &trace.hops[0];
    assert_eq!(gateway.component, "gateway", "{text}");
    assert_eq!(
        steps(gateway),
        ["accepted", "competitor answered", "first byte", "end"],
        "{text}"
    );
    let competitor = &gateway.children[0];
    assert_eq!(competitor.component, "competitor", "{text}");
    assert!(steps(competitor).contains(&"artifact published"), "{text}");
    let calls: Vec<&janus_client::trace::Hop> = competitor
        .children
        .iter()
        .filter(|h| h.component == "platform")
        .collect();
    // inference, then sandbox create, exec, terminate.
    assert_eq!(calls.len(), 4, "{text}");
    assert!(
        calls.iter().all(|c| c.competitor.as_deref() == Some("c")),
        "{text}"
    );
    let inference = calls[0];
    let usage = inference
        .events
        .iter()
        .find(|e| e.what == "platform usage")
        .unwrap_or_else(|| panic!("no usage on the inference call: {text}"));
    assert_eq!(usage.detail["prompt_tokens"], 13);
    assert_eq!(usage.detail["completion_tokens"], 4);
    let operations: Vec<&str> = calls[1..]
        .iter()
        .flat_map(|c| c.children.iter())
        .filter(|h| h.component == "sandbox")
        .flat_map(|h| h.events.iter())
        .filter(|e| e.what == "sandbox request finished")
        .filter_map(|e| e.detail["operation"].as_str())
        .collect();
    assert_eq!(operations, ["create", "exec", "terminate"], "{text}");
    // In time order: each call starts after the one before it.
    let starts: Vec<f64> = calls.iter().map(|c| c.events[0].offset_ms).collect();
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "{starts:?}\n{text}"
    );
    assert!(gateway.duration_ms >= calls.iter().map(|c| c.duration_ms).sum::<f64>() * 0.5);
    // The download is a request of its own, joined by the artifact id.
    let download = all_hops(&trace.hops)
        .into_iter()
        .find(|h| h.component == "gateway" && steps(h).contains(&"artifact download"))
        .unwrap_or_else(|| panic!("no download hop: {text}"));
    assert_ne!(download.request_id.as_deref(), Some(request_id.as_str()));
    assert!(
        download
            .children
            .iter()
            .any(|h| h.component == "competitor"),
        "the competitor's side of the download is its child: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
