//! Stalling competitors: the streaming score drops, nothing hangs.

use std::time::Duration;

use janus_bench::Suite;
use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, RequestContext,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{config, run, stack, suite};

/// Thinks silently for `before` before the first token; `None` never answers.
struct Slow(Option<Duration>);

#[async_trait]
impl Competitor for Slow {
    async fn handle(
        &self,
        _: ChatCompletionRequest,
        _: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        match self.0 {
            Some(before) => tokio::time::sleep(before).await,
            None => std::future::pending::<()>().await,
        }
        for word in ["the ", "answer ", "is ", "here"] {
            out.content(word).await?;
        }
        Ok(())
    }
}

fn one_chat() -> Suite {
    suite(
        r#"{"id": "s1", "category": "chat", "input": {"messages": [{"role": "user", "content": "hi"}]}, "expected": {"contains": ["answer"]}}"#,
    )
}

#[tokio::test]
async fn a_silent_first_token_lowers_streaming_and_a_hang_times_out() {
    let fast = stack(Slow(Some(Duration::ZERO))).await;
    let slow = stack(Slow(Some(Duration::from_millis(4500)))).await;
    let stuck = stack(Slow(None)).await;
    let fast = run(config(&fast.gateway, one_chat())).await;
    let slow = run(config(&slow.gateway, one_chat())).await;
    let mut cfg = config(&stuck.gateway, one_chat());
    cfg.target.timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let stuck = run(cfg).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        fast.results[0].streaming_score > 0.9,
        "{:?}",
        fast.results[0]
    );
    // TTFT past 2× the 2 s target; the gateway's keep-alives still hold the gap down.
    let s = &slow.results[0];
    assert!(
        s.streaming_metrics.ttft_seconds >= 4.5,
        "{:?}",
        s.streaming_metrics
    );
    assert!(
        s.streaming_metrics.keep_alive_count >= 2,
        "{:?}",
        s.streaming_metrics
    );
    assert!(
        s.streaming_metrics.max_gap_seconds < 2.0,
        "{:?}",
        s.streaming_metrics
    );
    assert!(
        s.streaming_score < fast.results[0].streaming_score - 0.25,
        "{} vs {}",
        s.streaming_score,
        fast.results[0].streaming_score
    );
    assert_eq!(s.quality_score, 1.0);
    let t = &stuck.results[0];
    assert_eq!(t.error.as_deref(), Some("timed out after 2s (--timeout)"));
    assert_eq!((t.quality_score, t.streaming_score), (0.0, 0.0));
    assert!(
        t.streaming_metrics.max_gap_seconds >= 1.0,
        "{:?}",
        t.streaming_metrics
    );
}

/// A raw server, no gateway and no keep-alives: two events 2.5 s apart, then [DONE].
async fn raw_stalling_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                // Read until the body has arrived (the bench sends a small JSON body).
                while !head.windows(4).any(|w| w == b"\r\n\r\n") || !head.ends_with(b"}") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let chunk = |text: &str| {
                    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n")
                };
                socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n").await.unwrap();
                socket.write_all(chunk("first ").as_bytes()).await.unwrap();
                socket.write_all(b": ping\n\n").await.unwrap();
                tokio::time::sleep(Duration::from_millis(2500)).await;
                socket.write_all(chunk("second").as_bytes()).await.unwrap();
                socket.write_all(b"data: [DONE]\n\n").await.unwrap();
            });
        }
    });
    url
}

#[tokio::test]
async fn a_gap_without_keepalives_is_measured() {
    let url = raw_stalling_server().await;
    let report = run(config(&url, suite(r#"{"id": "g", "category": "chat", "input": {"messages": [{"role": "user", "content": "hi"}]}, "expected": {"contains": ["second"]}}"#))).await;
    let r = &report.results[0];
    assert_eq!(r.error, None);
    assert_eq!(r.response_text.as_deref(), Some("first second"));
    let m = &r.streaming_metrics;
    assert!(m.max_gap_seconds >= 2.4 && m.max_gap_seconds < 5.0, "{m:?}");
    assert_eq!((m.total_chunks, m.keep_alive_count), (2, 1));
    // gap 2.5 s over a 2 s target: 1 - 0.5 * 0.25 = 0.875 of the gap part (weight 0.4);
    // TTFT full (0.5); 2 chunks → 0.5 (weight 0.1).
    let expected = 0.5 + 0.4 * (1.0 - 0.5 * (m.max_gap_seconds - 2.0) / 2.0) + 0.1 * 0.5;
    assert!(
        (r.streaming_score - expected).abs() < 1e-9,
        "{} vs {expected}",
        r.streaming_score
    );
    assert!(r.streaming_score < 0.97);
}
