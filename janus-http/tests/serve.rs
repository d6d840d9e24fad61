//! The serving layer against hostile clients, over real sockets on loopback (issue 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use janus_http::{probe, read_body, Drain, ResponseBody, ServeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn handler(request: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    match read_body(&parts.headers, body, 1024, deadline).await {
        Ok(bytes) => janus_http::response::json_response(
            StatusCode::OK,
            format!("{{\"len\":{}}}", bytes.len()),
        ),
        Err(e) => janus_http::response::error_response(e.status(), &e.envelope()),
    }
}

async fn start(
    config: ServeConfig,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        janus_http::serve(listener, handler, config, Drain::new(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, task)
}

fn config() -> ServeConfig {
    let mut config = ServeConfig::default();
    config.header_read_timeout = Duration::from_millis(600);
    config.idle_timeout = Duration::from_secs(5);
    config.shutdown_grace = Duration::from_secs(5);
    config
}

#[tokio::test]
async fn slowloris_connections_close_at_the_header_timeout_while_others_are_served() {
    let (addr, stop, task) = start(config()).await;
    probe::slowloris(addr, 200, Duration::from_millis(600), "/health")
        .await
        .unwrap();
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn at_the_cap_silent_connections_are_evicted_and_then_503() {
    let mut config = config();
    config.header_read_timeout = Duration::from_secs(30);
    config.max_connections = 8;
    let (addr, stop, task) = start(config).await;
    probe::connection_cap(addr, 8, "/health", "/")
        .await
        .unwrap();
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn a_trickled_body_gets_408_at_its_deadline() {
    let (addr, stop, task) = start(config()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut out))
        .await
        .expect("408 in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&out[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"));
    assert!(started.elapsed() < Duration::from_millis(1500));
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_with_stalled_connections_is_immediate_not_the_grace_period() {
    let mut config = config();
    config.header_read_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_secs(20);
    let (addr, stop, task) = start(config).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTT").await.unwrap();
        stalled.push(stream);
    }
    assert!(probe::get(addr, "/health")
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("stalled connections must not hold shutdown")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn every_response_carries_a_request_id_under_the_rule() {
    let (addr, stop, task) = start(config()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nhost: x\r\nx-request-id: bad id;\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: chatcmpl-"), "{out}");
    assert!(!lower.contains("bad id"));
    let _ = stop.send(());
    task.await.unwrap();
}
