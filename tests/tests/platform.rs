//! The SDK's `Platform` handle through a real gateway: a competitor streams inference
//! (reasoning relayed) and runs a command in a sandbox through the platform listener, and
//! the client's usage carries what the gateway measured. `FakeInference` is a test double
//! for a paid LLM API; the sandbox service is the real janus-sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use janus_client::HttpClient;
use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, CreateOptions, EventWriter,
    PlatformExt, RequestContext, Usage,
};
use janus_core::sse::{SseItem, DONE_DATA};
use janus_gateway::{PlatformKind, PlatformService, Secret};
use serde_json::{json, Value};

const SECRET: &str = "sk-e2e-upstream-secret";

/// A test double for an OpenAI-compatible upstream: one streamed answer with reasoning and
/// usage; records the Authorization it saw. Its answer has a Content-Length, which pins a
/// bug: the gateway must drop it when it strips the usage chunk.
async fn fake_inference() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let addr = janus_e2e::test_double(move |request: hyper::Request<hyper::body::Incoming>| {
        let seen = sink.clone();
        async move {
            let auth = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            seen.lock().unwrap().push(auth);
            let body: Value =
                serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            let chunk = |delta: Value| {
                format!(
                    "data: {}\n\n",
                    json!({"id":"u","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":delta,"finish_reason":null}]})
                )
            };
            let mut text = chunk(json!({"reasoning_content": "upstream thinks"}));
            text.push_str(&chunk(json!({"content": "upstream says hi"})));
            if body["stream_options"]["include_usage"] == true {
                text.push_str(&format!("data: {}\n\n", json!({"id":"u","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":13,"completion_tokens":4,"total_tokens":17}})));
            }
            text.push_str("data: [DONE]\n\n");
            // A body of known length: the answer carries a Content-Length.
            hyper::Response::builder()
                .header("content-type", "text/event-stream")
                .body(janus_http::response::full(text))
                .unwrap()
        }
    })
    .await
    .unwrap();
    (format!("http://{addr}/v1"), seen)
}

/// A test double for a search API: echoes the query it got.
async fn fake_search() -> String {
    let addr = janus_e2e::test_double(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            let body = json!({"path": request.uri().path(), "query": request.uri().query()});
            janus_http::response::json_response(http::StatusCode::OK, body.to_string())
        },
    )
    .await
    .unwrap();
    format!("http://{addr}")
}

struct PlatformUser {
    saw_secret: Arc<Mutex<bool>>,
}

#[async_trait]
impl Competitor for PlatformUser {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let leaked = context.headers.iter().any(|(_, v)| v.contains(SECRET))
            || std::env::vars().any(|(_, v)| v.contains(SECRET));
        *self.saw_secret.lock().unwrap() = leaked;
        assert!(context.headers.get("x-janus-platform-token").is_none());
        assert!(context.gateway_deadline_ms.is_some());
        let platform = context
            .platform()
            .ok_or_else(|| CompetitorError::Internal("no platform".into()))?;
        let fail = |e: &dyn std::fmt::Display| CompetitorError::Internal(e.to_string());
        let upstream = platform
            .chat_stream(
                &json!({"model": "up", "messages": [{"role": "user", "content": "hi"}]}),
                out,
            )
            .await
            .map_err(|e| fail(&e))?;
        if upstream.is_some() {
            return Err(CompetitorError::Internal(
                "usage the handler did not ask for leaked through".into(),
            ));
        }
        let found = platform
            .search("api/search", &[("q", "janus rust")])
            .await
            .map_err(|e| fail(&e))?;
        out.content(&format!(
            " / {} {}",
            found["path"].as_str().unwrap_or(""),
            found["query"].as_str().unwrap_or("")
        ))
        .await?;
        let sandy = platform.sandy();
        let sandbox = sandy
            .create(&CreateOptions::default())
            .await
            .map_err(|e| fail(&e))?;
        let output = sandy
            .exec(&sandbox.id, "echo from-sandbox", Duration::from_secs(10))
            .await
            .map_err(|e| fail(&e))?;
        out.content(&format!(" / {}", output.stdout.trim())).await?;
        sandy.terminate(&sandbox.id).await.map_err(|e| fail(&e))?;
        out.usage(Usage::new(1, 1)).await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_sdk_competitor_uses_inference_and_a_sandbox_through_the_platform() {
    let (inference_url, seen) = fake_inference().await;
    let root =
        std::env::temp_dir().join(format!("janus-e2e-platform-{}", janus_core::random_hex(6)));
    let sandbox_config = janus_sandbox::Config::new(root, janus_sandbox::IsolationMode::None);
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().unwrap());
    let (_stop_sandbox, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(janus_sandbox::run(
        sandbox_listener,
        sandbox_config,
        async move {
            let _ = stopped.await;
        },
    ));
    let platforms = vec![
        PlatformService::new("inference", PlatformKind::Inference, &inference_url)
            .unwrap()
            .with_secret(Secret::new(SECRET)),
        PlatformService::new("sandbox", PlatformKind::Sandbox, &sandbox_url).unwrap(),
        PlatformService::new("search", PlatformKind::Search, &fake_search().await).unwrap(),
    ];
    let saw_secret = Arc::new(Mutex::new(true));
    let stack = janus_e2e::start_with_platform(
        PlatformUser {
            saw_secret: saw_secret.clone(),
        },
        platforms,
    )
    .await
    .unwrap();
    let client = HttpClient::default();
    let body = json!({"model": "c", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "go"}]});
    let mut stream = client
        .post_stream(
            &format!("{}/v1/chat/completions", stack.gateway),
            Bytes::from(body.to_string()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    let (mut content, mut reasoning, mut usage) = (String::new(), String::new(), None);
    while let Some(item) = stream.next(Duration::from_secs(30)).await.unwrap() {
        let SseItem::Event(event) = item.item else {
            continue;
        };
        if event.data == DONE_DATA {
            break;
        }
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        assert!(chunk.get("error").is_none(), "{chunk}");
        if let Some(u) = chunk.get("usage") {
            usage = Some(u.clone());
        }
        for choice in chunk["choices"].as_array().unwrap() {
            content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            reasoning.push_str(choice["delta"]["reasoning_content"].as_str().unwrap_or(""));
        }
    }
    assert!(reasoning.contains("upstream thinks"), "{reasoning}");
    assert_eq!(
        content,
        "upstream says hi / /api/search q=janus%20rust / from-sandbox"
    );
    let platform = &usage.expect("a usage chunk")["platform"];
    assert_eq!(platform["calls"], 5, "{platform}");
    assert_eq!(platform["prompt_tokens"], 13);
    assert_eq!(platform["completion_tokens"], 4);
    assert_eq!(
        platform["by_service"],
        json!({"inference": 1, "sandbox": 3, "search": 1})
    );
    assert!(platform["sandbox_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        !*saw_secret.lock().unwrap(),
        "the competitor saw the upstream secret"
    );
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {SECRET}")]);
}
