//! The SDK server against slow and hostile clients: the same probes the gateway and the
//! sandbox service pass (janus-http's `probe`).

use std::time::Duration;

use janus_http::probe;

use crate::support::*;

#[tokio::test]
async fn slowloris_connections_close_at_the_header_timeout() {
    let mut config = config();
    config.connections.header_read_timeout = Duration::from_millis(600);
    let server = TestServer::start(Script::new(vec![]), config).await;
    probe::slowloris(server.addr, 100, Duration::from_millis(600), "/health")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn at_the_cap_silent_connections_are_evicted_then_503() {
    let mut config = config();
    config.connections.max_connections = 6;
    let server = TestServer::start(Script::new(vec![]), config).await;
    probe::connection_cap(server.addr, 6, "/health", "/v1/chat/completions")
        .await
        .unwrap();
    server.stop().await;
}
