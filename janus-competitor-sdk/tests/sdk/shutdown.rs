//! Graceful shutdown: in-flight requests finish within the grace period; streams still
//! running after it end with an error event and `[DONE]`.

use std::time::{Duration, Instant};

use janus_competitor_sdk::janus_core::StreamEvent;

use crate::support::*;

#[tokio::test]
async fn in_flight_request_finishes_during_shutdown() {
    let script = Script::new(vec![
        Step::Sleep(Duration::from_millis(300)),
        content("done"),
    ]);
    let mut server = TestServer::start(script.clone(), config()).await;
    let url = server.url("/v1/chat/completions");
    let request = tokio::spawn(stream_request(chat_request(&url, &body(true))));
    script.probe.wait_started().await;
    server.begin_stop();
    let streamed = request.await.unwrap();
    assert_eq!(streamed.content(), "done");
    assert!(matches!(streamed.events().last(), Some(StreamEvent::Done)));
    server.stop().await;
}

#[tokio::test]
async fn streams_past_the_grace_period_end_with_an_error_event() {
    let script = Script::new(vec![
        content("partial"),
        Step::Sleep(Duration::from_secs(30)),
    ]);
    let mut config = config();
    config.connections.shutdown_grace = Duration::from_millis(200);
    let mut server = TestServer::start(script.clone(), config).await;
    let url = server.url("/v1/chat/completions");
    let request = tokio::spawn(stream_request(chat_request(&url, &body(true))));
    script.probe.wait_started().await;
    let stopping = Instant::now();
    server.begin_stop();
    let streamed = request.await.unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(2));
    let events = streamed.events();
    let n = events.len();
    match events[n - 2] {
        StreamEvent::Error(error) => assert_eq!(error.code.as_deref(), Some("shutting_down")),
        other => panic!("expected an error event, got {other:?}"),
    }
    assert!(matches!(events[n - 1], StreamEvent::Done));
    server.stop().await;
    assert!(script
        .probe
        .wait_dropped(Duration::from_secs(1))
        .await
        .is_some());
}
