//! The whole chain over real sockets: client → gateway → SDK competitor.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_client::HttpClient;
use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, RequestContext,
};
use janus_core::sse::{SseItem, DONE_DATA};
use janus_core::{ChatCompletionChunk, ChatCompletionResponse, ChunkAggregator};
use serde_json::json;

fn body(stream: bool, prompt: &str) -> Bytes {
    Bytes::from(
        json!({
            "model": "c",
            "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { json!(null) },
            "messages": [{"role": "user", "content": prompt}],
        })
        .to_string()
        .replace(",\"stream_options\":null", ""),
    )
}

#[tokio::test]
async fn a_folded_stream_through_the_gateway_equals_the_non_stream_answer() {
    let stack = janus_e2e::start(echo_competitor::Echo::new(Duration::from_millis(1700)))
        .await
        .unwrap();
    let client = HttpClient::default();
    let url = format!("{}/v1/chat/completions", stack.gateway);
    let prompt = "three little words, as a file";

    let mut stream = client
        .post_stream(&url, body(true, prompt), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(stream.status, 200);
    let mut aggregator = ChunkAggregator::new();
    let mut last = Duration::ZERO;
    let mut max_gap = Duration::ZERO;
    let mut pings = 0;
    while let Some(item) = stream.next(Duration::from_secs(10)).await.unwrap() {
        max_gap = max_gap.max(item.at - last);
        last = item.at;
        match item.item {
            SseItem::Comment(_) => pings += 1,
            SseItem::Event(event) if event.data == DONE_DATA => {}
            SseItem::Event(event) => {
                let chunk: ChatCompletionChunk = serde_json::from_str(&event.data).unwrap();
                aggregator.push(&chunk);
            }
        }
    }
    assert!(
        max_gap <= Duration::from_secs(2),
        "client saw a gap of {max_gap:?}"
    );
    assert!(
        pings >= 1,
        "the 1.7 s slow step should have produced a keep-alive"
    );
    let folded = aggregator.finish();

    let plain = client
        .post_json(&url, body(false, prompt), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(plain.status, 200);
    let plain: ChatCompletionResponse = serde_json::from_slice(&plain.body).unwrap();

    let (a, b) = (&folded.choices[0], &plain.choices[0]);
    assert_eq!(a.message.content, b.message.content);
    assert!(a.message.content.as_deref().unwrap().starts_with(prompt));
    assert_eq!(a.message.reasoning_content, b.message.reasoning_content);
    assert_eq!(a.finish_reason, b.finish_reason);
    let usage = |r: &ChatCompletionResponse| {
        r.usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens))
    };
    assert_eq!(usage(&folded), usage(&plain));
    assert!(usage(&folded).is_some());
    // Same artifact content (ids differ per request), and it verifies.
    let artifact = |r: &ChatCompletionResponse| {
        let list = r.choices[0].message.artifacts.clone().unwrap_or_default();
        assert_eq!(list.len(), 1);
        list.into_iter().next().unwrap()
    };
    let (x, y) = (artifact(&folded), artifact(&plain));
    assert_eq!(
        (&x.sha256, x.size_bytes, &x.display_name),
        (&y.sha256, y.size_bytes, &y.display_name)
    );
    let bytes = janus_client::fetch_artifact(&client, &x, Duration::from_secs(5))
        .await
        .unwrap();
    x.verify(&bytes).unwrap();
}

/// Records when its handler future is dropped.
struct Hangs {
    dropped: Arc<Mutex<Option<Instant>>>,
    started: Arc<AtomicBool>,
}

struct DropGuard(Arc<Mutex<Option<Instant>>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

#[async_trait]
impl Competitor for Hangs {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        _context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let _guard = DropGuard(self.dropped.clone());
        out.content("first").await?;
        self.started.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        out.content("never").await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_client_hang_up_at_the_gateway_cancels_the_competitor_handler() {
    let dropped = Arc::new(Mutex::new(None));
    let started = Arc::new(AtomicBool::new(false));
    let stack = janus_e2e::start(Hangs {
        dropped: dropped.clone(),
        started: started.clone(),
    })
    .await
    .unwrap();
    let client = HttpClient::default();
    let url = format!("{}/v1/chat/completions", stack.gateway);
    let mut stream = client
        .post_stream(&url, body(true, "hang"), Duration::from_secs(10))
        .await
        .unwrap();
    // Read until the first content chunk has come through the gateway.
    loop {
        let item = stream.next(Duration::from_secs(10)).await.unwrap().unwrap();
        if let SseItem::Event(event) = item.item {
            if event.data.contains("first") {
                break;
            }
        }
    }
    assert!(started.load(Ordering::SeqCst));
    let hung_up = Instant::now();
    drop(stream);
    let deadline = hung_up + Duration::from_secs(2);
    while dropped.lock().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let at = dropped
        .lock()
        .unwrap()
        .expect("the competitor's handler was never cancelled");
    let took = at.saturating_duration_since(hung_up);
    assert!(
        took <= Duration::from_millis(100),
        "handler cancelled {took:?} after the hang-up"
    );
}
