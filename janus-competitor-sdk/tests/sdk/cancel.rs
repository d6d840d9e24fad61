//! Keep-alives, client disconnects and deadlines.

use std::time::{Duration, Instant};

use janus_competitor_sdk::janus_core::StreamEvent;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::*;

/// The contract's longest allowed gap between two events a client sees.
const MAX_GAP: Duration = Duration::from_secs(2);

#[tokio::test]
async fn keepalives_cover_a_four_second_silent_handler() {
    let script = Script::new(vec![
        content("before"),
        Step::Sleep(Duration::from_secs(4)),
        content("after"),
    ]);
    // The default interval: 1.5 s.
    let server = TestServer::start(script, config()).await;
    let streamed = stream(&server, &body(true)).await;
    assert_eq!(streamed.content(), "beforeafter");
    assert!(streamed.comments() >= 2, "{:?}", streamed.events());
    assert!(streamed
        .events()
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Comment(text) => Some(text.as_str()),
            _ => None,
        })
        .all(|text| text.trim() == "ping"));
    let gap = streamed.max_gap();
    assert!(gap < MAX_GAP, "largest gap {gap:?}");
    assert!(String::from_utf8_lossy(&streamed.raw).contains("\n\n: ping\n\n"));
    server.stop().await;
}

#[tokio::test]
async fn keepalive_interval_is_configurable() {
    let script = Script::new(vec![Step::Sleep(Duration::from_millis(450)), content("x")]);
    let mut config = config();
    config.keepalive_interval = Duration::from_millis(100);
    let server = TestServer::start(script, config).await;
    let streamed = stream(&server, &body(true)).await;
    assert!(streamed.comments() >= 3, "{:?}", streamed.events());
    server.stop().await;
}

/// Writes a chat request by hand on a raw socket.
async fn raw_request(server: &TestServer, stream: bool) -> TcpStream {
    let body = body(stream).to_string();
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    socket
}

#[tokio::test]
async fn client_disconnect_cancels_a_streaming_handler() {
    let script = Script::new(vec![content("first"), Step::Sleep(Duration::from_secs(30))]);
    let server = TestServer::start(script.clone(), config()).await;
    let mut socket = raw_request(&server, true).await;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    let closed = Instant::now();
    drop(socket);
    let dropped = script
        .probe
        .wait_dropped(Duration::from_secs(2))
        .await
        .expect("handler not cancelled");
    let took = dropped.saturating_duration_since(closed);
    assert!(
        took < Duration::from_millis(100),
        "handler dropped after {took:?}"
    );
    assert!(!script
        .probe
        .completed
        .load(std::sync::atomic::Ordering::SeqCst));
    server.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_a_non_streaming_handler() {
    // hyper notices EOF on a connection whose request is being answered and drops the
    // service future; this pins that the handler goes with it.
    let script = Script::new(vec![Step::Sleep(Duration::from_secs(30)), content("never")]);
    let server = TestServer::start(script.clone(), config()).await;
    let socket = raw_request(&server, false).await;
    script.probe.wait_started().await;
    let closed = Instant::now();
    drop(socket);
    let dropped = script
        .probe
        .wait_dropped(Duration::from_secs(2))
        .await
        .expect("handler not cancelled");
    let took = dropped.saturating_duration_since(closed);
    assert!(
        took < Duration::from_millis(100),
        "handler dropped after {took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn half_closed_client_also_cancels() {
    // A client that shuts down its write side (FIN) but could still read counts as gone:
    // HTTP/1.1 has no half-close semantics for a request in flight.
    let script = Script::new(vec![Step::Sleep(Duration::from_secs(30))]);
    let server = TestServer::start(script.clone(), config()).await;
    let mut socket = raw_request(&server, true).await;
    script.probe.wait_started().await;
    socket.shutdown().await.unwrap();
    let dropped = script.probe.wait_dropped(Duration::from_secs(2)).await;
    assert!(dropped.is_some(), "handler not cancelled");
    server.stop().await;
}

#[tokio::test]
async fn deadline_cancels_a_streaming_handler_with_an_error_event() {
    let script = Script::new(vec![
        content("partial"),
        Step::Sleep(Duration::from_secs(30)),
    ]);
    let mut config = config();
    config.request_timeout = Duration::from_millis(300);
    let server = TestServer::start(script.clone(), config).await;
    let started = Instant::now();
    let streamed = stream(&server, &body(true)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(streamed.content(), "partial");
    let events = streamed.events();
    let n = events.len();
    match events[n - 2] {
        StreamEvent::Error(error) => {
            assert_eq!(error.kind, "timeout_error");
            assert_eq!(error.code.as_deref(), Some("deadline_exceeded"));
        }
        other => panic!("expected an error event, got {other:?}"),
    }
    assert!(matches!(events[n - 1], StreamEvent::Done));
    assert!(script
        .probe
        .wait_dropped(Duration::from_secs(1))
        .await
        .is_some());
    assert!(!script
        .probe
        .completed
        .load(std::sync::atomic::Ordering::SeqCst));
    server.stop().await;
}

#[tokio::test]
async fn deadline_gives_a_504_when_not_streaming() {
    let script = Script::new(vec![Step::Sleep(Duration::from_secs(30))]);
    let mut config = config();
    config.request_timeout = Duration::from_millis(300);
    let server = TestServer::start(script, config).await;
    let reply = post(&server, &body(false)).await;
    assert_eq!(reply.status, 504);
    let json = reply.json();
    assert_eq!(json["error"]["type"], "timeout_error");
    assert_eq!(json["error"]["code"], "deadline_exceeded");
    server.stop().await;
}
