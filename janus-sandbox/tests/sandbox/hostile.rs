//! The sandbox service against slow and hostile clients: the same probes the gateway and
//! the SDK pass (janus-http's `probe`).

use std::net::SocketAddr;
use std::time::Duration;

use janus_http::probe;
use janus_sandbox::IsolationMode;

use crate::start;

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test]
async fn slowloris_connections_close_at_the_header_timeout() {
    let service = start(IsolationMode::None, |c| {
        c.serve.header_read_timeout = Duration::from_millis(600);
    })
    .await;
    probe::slowloris(
        addr(&service.url),
        100,
        Duration::from_millis(600),
        "/health",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn at_the_cap_silent_connections_are_evicted_then_503() {
    let service = start(IsolationMode::None, |c| c.serve.max_connections = 6).await;
    probe::connection_cap(addr(&service.url), 6, "/health", "/api/sandboxes")
        .await
        .unwrap();
}
