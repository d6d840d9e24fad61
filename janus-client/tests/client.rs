//! `HttpClient` and `EventStream` against a real server on loopback: whole bodies, event
//! streams with timestamps, and each deadline named in its error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use janus_client::{ClientError, Deadline, HttpClient};
use janus_core::sse::SseItem;
use janus_http::response::{boxed, json_response};
use janus_http::{Drain, ResponseBody, ServeConfig};

/// A test server: `/json` echoes the request's Authorization and body; `/stream` sends one
/// event, a comment, then goes silent; `/slow-head` answers after 2 s; `/sse` a whole
/// short stream.
async fn handler(request: Request<Incoming>) -> Response<ResponseBody> {
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    match path.as_str() {
        "/json" => json_response(
            StatusCode::OK,
            serde_json::json!({"auth": auth, "body": String::from_utf8_lossy(&body)}).to_string(),
        ),
        "/sse" => sse(stream::iter(
            ["data: {\"n\":1}\n\n", ": ping\n\n", "data: [DONE]\n\n"]
                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
        )),
        "/stream" => sse(stream::iter(
            ["data: {\"n\":1}\n\n", ": ping\n\n"]
                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())))),
        )
        .chain(stream::pending())),
        "/slow-head" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            json_response(StatusCode::OK, "{}")
        }
        _ => json_response(StatusCode::NOT_FOUND, "{\"error\":{\"message\":\"no\"}}"),
    }
}

fn sse<S>(frames: S) -> Response<ResponseBody>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
{
    let mut response = Response::new(boxed(StreamBody::new(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

async fn server() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut config = ServeConfig::default();
    config.shutdown_grace = Duration::from_millis(100);
    tokio::spawn(janus_http::serve(
        listener,
        handler,
        config,
        Drain::new(),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[tokio::test]
async fn whole_bodies_carry_the_key_and_the_json() {
    let (addr, _stop) = server().await;
    let client = HttpClient::new(Some("sk-test".into()));
    let reply = client
        .post_json(
            &format!("http://{addr}/json"),
            Bytes::from_static(b"{\"a\":1}"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json().unwrap();
    assert_eq!(json["auth"], "Bearer sk-test");
    assert_eq!(json["body"], "{\"a\":1}");
    let missing = client
        .get(&format!("http://{addr}/nothing"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Without a key no Authorization goes out.
    let anonymous = HttpClient::default()
        .get(&format!("http://{addr}/json"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(anonymous.json().unwrap()["auth"], "");
}

#[tokio::test]
async fn event_streams_are_read_item_by_item_with_raw_bytes_kept() {
    let (addr, _stop) = server().await;
    let mut stream = HttpClient::default()
        .post_stream(
            &format!("http://{addr}/sse"),
            Bytes::from_static(b"{}"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(stream.status, StatusCode::OK);
    let mut items = Vec::new();
    while let Some(item) = stream.next(Duration::from_secs(5)).await.unwrap() {
        items.push(item);
    }
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(&items[0].item, SseItem::Event(e) if e.data == "{\"n\":1}"));
    assert!(matches!(&items[1].item, SseItem::Comment(c) if c.trim() == "ping"));
    assert!(
        items.windows(2).all(|w| w[0].at <= w[1].at),
        "timestamps go forward"
    );
    assert_eq!(
        stream.raw,
        b"data: {\"n\":1}\n\n: ping\n\ndata: [DONE]\n\n".to_vec()
    );
}

#[tokio::test]
async fn each_deadline_is_named_in_its_error() {
    let (addr, _stop) = server().await;
    let client = HttpClient::default();

    // The stream started, then went silent.
    let mut stream = client
        .post_stream(
            &format!("http://{addr}/stream"),
            Bytes::from_static(b"{}"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(stream.next(Duration::from_secs(5)).await.unwrap().is_some());
    assert!(stream.next(Duration::from_secs(5)).await.unwrap().is_some());
    let error = stream.next(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                deadline: Deadline::Idle,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("started streaming, then went silent for"),
        "{error}"
    );
    assert!(error.is_unreachable());

    // No head in time.
    let error = client
        .get(
            &format!("http://{addr}/slow-head"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                deadline: Deadline::FirstByte,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("did not answer"), "{error}");
}

#[tokio::test]
async fn bad_urls_and_refused_connections_are_told_apart() {
    let client = HttpClient::default();
    let error = client
        .get("https://127.0.0.1:1/x", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::BadUrl { .. }), "{error:?}");
    assert!(!error.is_unreachable());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = client
        .get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    assert!(error.is_unreachable());
}
