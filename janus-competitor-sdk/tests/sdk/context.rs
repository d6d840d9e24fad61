//! What the handler's context says about the request: forwarded headers without
//! credentials, the gateway's deadline, and the platform handle (its grant hidden).

use std::sync::Arc;

use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, PlatformExt,
    RequestContext,
};
use serde_json::json;

use crate::support::{body, chat_request, config, send, TestServer};

struct Reports;

#[async_trait]
impl Competitor for Reports {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let platform = context.platform();
        let report = json!({
            "baseline_agent": context.headers.get("X-Baseline-Agent"),
            "authorization": context.headers.get("authorization"),
            "token_header": context.headers.get("x-janus-platform-token"),
            "deadline": context.gateway_deadline_ms,
            "platform_url": platform.as_ref().map(|p| p.url().to_owned()),
            "sandy_debug": platform.as_ref().map(|p| format!("{:?}", p.sandy())),
            "context_debug": format!("{context:?}"),
        });
        out.content(&report.to_string()).await?;
        Ok(())
    }
}

#[tokio::test]
async fn context_carries_headers_deadline_and_platform_without_credentials() {
    let server = TestServer::start(Arc::new(Reports), config()).await;
    let mut request = chat_request(&server.url("/v1/chat/completions"), &body(false));
    let headers = request.headers_mut();
    headers.insert("x-baseline-agent", "research".parse().unwrap());
    headers.insert("authorization", "Bearer client-key".parse().unwrap());
    headers.insert("x-janus-deadline", "1893456000000".parse().unwrap());
    headers.insert(
        "x-janus-platform-token",
        "grant-payload.sig".parse().unwrap(),
    );
    headers.insert(
        "x-janus-platform-url",
        "http://127.0.0.1:8001/platform".parse().unwrap(),
    );
    let reply = send(request).await;
    let text = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["baseline_agent"], "research");
    assert_eq!(report["authorization"], serde_json::Value::Null);
    assert_eq!(report["token_header"], serde_json::Value::Null);
    assert_eq!(report["deadline"], 1_893_456_000_000u64);
    assert_eq!(report["platform_url"], "http://127.0.0.1:8001/platform");
    assert!(
        report["sandy_debug"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:8001/platform/sandbox"),
        "{report}"
    );
    assert!(!text.contains("client-key"), "{text}");
    assert!(
        !report["sandy_debug"]
            .as_str()
            .unwrap()
            .contains("grant-payload"),
        "{report}"
    );
    assert!(
        !report["context_debug"]
            .as_str()
            .unwrap()
            .contains("grant-payload"),
        "the grant never shows in Debug: {report}"
    );

    // Without a grant there is no platform.
    let reply = send(chat_request(
        &server.url("/v1/chat/completions"),
        &body(false),
    ))
    .await;
    let text = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["platform_url"], serde_json::Value::Null);
}
