//! `OriginPool` against a real HTTP/1 server on loopback: reuse, early drops, peers that
//! close idle connections, idle expiry and connect failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use janus_http::{OriginPool, PoolError, PoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server treats a connection after each answer.
#[derive(Clone, Copy)]
enum After {
    /// Keep it open for the next request.
    KeepOpen,
    /// Close it (without saying so in the answer) once the answer is written.
    Close,
}

/// A keep-alive HTTP/1.1 server answering `hello <path> <host>` to every request; counts
/// the connections it accepted.
async fn server(after: After) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer_all(stream, after));
        }
    });
    (addr, accepted)
}

async fn answer_all(mut stream: TcpStream, after: After) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let length: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..head_end + length);
        let path = head.split(' ').nth(1).unwrap_or("?").to_owned();
        let body = format!("hello {path} {}", header(&head, "host").unwrap_or_default());
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        if let After::Close = after {
            return;
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

fn pool(addr: SocketAddr, options: PoolOptions) -> OriginPool {
    let url: Uri = format!("http://{addr}/prefix").parse().unwrap();
    OriginPool::new(&url, options).unwrap()
}

fn post(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

async fn text(pool: &OriginPool, addr: SocketAddr, path: &str) -> String {
    let response = pool.send(post(addr, path)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn options() -> PoolOptions {
    PoolOptions::new(Duration::from_secs(2))
}

#[tokio::test]
async fn a_connection_whose_body_was_read_is_reused_in_origin_form_with_a_host() {
    let (addr, accepted) = server(After::KeepOpen).await;
    let pool = pool(addr, options());
    for i in 0..5 {
        let answer = text(&pool, addr, &format!("/v1/chat/completions?n={i}")).await;
        assert_eq!(answer, format!("hello /v1/chat/completions?n={i} {addr}"));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for five calls"
    );
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_body_dropped_after_it_arrived_keeps_its_connection_and_one_cut_short_does_not() {
    // All of the body had arrived: hyper drains it and the connection serves the next call.
    let (addr, accepted) = server(After::KeepOpen).await;
    let pool = pool(addr, options());
    let response = pool.send(post(addr, "/a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(response);
    assert_eq!(text(&pool, addr, "/b").await, format!("hello /b {addr}"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // Half a body, the rest never sent: dropping it closes the connection, and the next
    // call gets a new one instead of waiting on the dead one.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let half = listener.local_addr().unwrap();
    let cut_short = Arc::new(AtomicUsize::new(0));
    let counter = cut_short.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            if n == 0 {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
                    .await;
                held.push(stream);
            } else {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                held.push(stream);
            }
        }
    });
    let pool = self::pool(half, options());
    let response = pool.send(post(half, "/a")).await.unwrap();
    drop(response);
    let second = tokio::time::timeout(Duration::from_secs(2), pool.send(post(half, "/b")))
        .await
        .expect("the next call waited on a connection whose body was cut short")
        .unwrap();
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    assert_eq!(cut_short.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_calls_get_their_own_connections_and_all_come_back() {
    let (addr, accepted) = server(After::KeepOpen).await;
    let pool = pool(addr, options());
    let held: Vec<_> = send_concurrently(&pool, addr, 4).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    for response in held {
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(pool.idle_count(), 4);
}

async fn send_concurrently(
    pool: &OriginPool,
    addr: SocketAddr,
    n: usize,
) -> Vec<http::Response<janus_http::PooledBody>> {
    let mut handles = Vec::new();
    for i in 0..n {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            pool.send(post(addr, &format!("/{i}"))).await.unwrap()
        }));
    }
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap());
    }
    responses
}

#[tokio::test]
async fn a_peer_that_closed_an_idle_connection_costs_nothing_but_a_new_connection() {
    let (addr, accepted) = server(After::Close).await;
    let pool = pool(addr, options());
    for i in 0..3 {
        assert_eq!(
            text(&pool, addr, &format!("/{i}")).await,
            format!("hello /{i} {addr}")
        );
        // Give the pooled connection time to see the close (or not: the send is retried).
        if i == 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn idle_connections_expire_and_the_sweeper_closes_them() {
    let (addr, accepted) = server(After::KeepOpen).await;
    let mut options = options();
    options.idle_timeout = Duration::from_millis(200);
    let pool = pool(addr, options);
    text(&pool, addr, "/a").await;
    assert_eq!(pool.idle_count(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(pool.idle_count(), 0, "the sweeper closes what expired");
    text(&pool, addr, "/b").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_full_pool_closes_what_comes_back() {
    let (addr, _) = server(After::KeepOpen).await;
    let mut options = options();
    options.max_idle = 2;
    let pool = pool(addr, options);
    for response in send_concurrently(&pool, addr, 3).await {
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(pool.idle_count(), 2);
}

#[tokio::test]
async fn refused_connections_and_non_http_origins_are_errors() {
    // A port that was just free: bound, read, released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = pool(addr, options());
    match pool.send(post(addr, "/")).await {
        Err(PoolError::Connect(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connect, got {other:?}"),
    }
    for url in ["https://127.0.0.1:1/", "/relative"] {
        let url: Uri = url.parse().unwrap();
        assert!(matches!(
            OriginPool::new(&url, options()),
            Err(PoolError::BadOrigin(_))
        ));
    }
}
