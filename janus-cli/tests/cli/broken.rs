//! Deliberately broken competitors (test doubles), each with one contract defect.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Streams end without `data: [DONE]`.
    NoDone,
    /// 3 s of silence in the middle of a slow request.
    SilentGap,
    /// `"usage": null` in responses and chunks.
    UsageNull,
    /// Artifacts whose sha256 does not match their bytes.
    WrongSha256,
    /// `GET /health` is 404.
    NoHealth,
    /// Requests are served strictly one at a time.
    Serial,
    /// Required-nullable fields left out: no `finish_reason: null` on chunks, no
    /// `logprobs`/`refusal` in responses (issue 11).
    NoNullables,
}

pub struct Broken {
    addr: SocketAddr,
}

impl Broken {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn start(defect: Defect) -> Broken {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lock = Arc::new(Mutex::new(()));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let lock = lock.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let lock = lock.clone();
                        async move { Ok::<_, Infallible>(answer(defect, lock, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Broken { addr }
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed_unsync())
        .unwrap()
}

fn chunk(defect: Defect, delta: Value, finish: Option<&str>) -> String {
    let mut chunk = json!({
        "id": "chatcmpl-broken", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if defect == Defect::NoNullables && finish.is_none() {
        chunk["choices"][0]
            .as_object_mut()
            .unwrap()
            .remove("finish_reason");
    }
    let usage_null = defect == Defect::UsageNull;
    if usage_null {
        chunk["usage"] = Value::Null;
    }
    format!("data: {chunk}\n\n")
}

async fn answer(
    defect: Defect,
    lock: Arc<Mutex<()>>,
    request: Request<Incoming>,
) -> Response<Body> {
    // Held until the response body ends: the whole server does one request at a time.
    let guard = if defect == Defect::Serial {
        Some(lock.lock_owned().await)
    } else {
        None
    };
    let path = request.uri().path().to_owned();
    if path == "/health" {
        return if defect == Defect::NoHealth {
            full(404, "text/plain", "not found")
        } else {
            full(200, "application/json", r#"{"status":"ok"}"#)
        };
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return full(
            400,
            "application/json",
            r#"{"error":{"message":"not json","type":"invalid_request_error","param":null,"code":null}}"#,
        );
    };
    if json["messages"].as_array().is_none_or(|m| m.is_empty()) {
        return full(
            400,
            "application/json",
            r#"{"error":{"message":"messages empty","type":"invalid_request_error","param":"messages","code":null}}"#,
        );
    }
    let prompt = json["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if json["stream"] != true {
        let mut response = json!({
            "id": "chatcmpl-broken", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": null}, "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        });
        if defect == Defect::UsageNull {
            response["usage"] = Value::Null;
        }
        if defect == Defect::NoNullables {
            response["choices"][0]
                .as_object_mut()
                .unwrap()
                .remove("logprobs");
        }
        return full(200, "application/json", response.to_string());
    }
    let slow = json["metadata"]["janus_check"] == "slow";
    let mut steps: Vec<(Duration, String)> = vec![
        (
            Duration::ZERO,
            chunk(defect, json!({"role": "assistant"}), None),
        ),
        (
            Duration::ZERO,
            chunk(defect, json!({"reasoning_content": "working\n"}), None),
        ),
    ];
    if slow {
        let pause = if defect == Defect::SilentGap {
            3000
        } else {
            400
        };
        steps.push((
            Duration::from_millis(pause),
            chunk(
                defect,
                json!({"reasoning_content": "still working\n"}),
                None,
            ),
        ));
        steps.push((
            Duration::from_millis(400),
            chunk(defect, json!({"content": "done"}), None),
        ));
    }
    if prompt.contains("file") {
        let bytes = b"hello from a broken competitor";
        let mut artifact =
            janus_core::ArtifactDescriptor::inline(bytes, "f.txt", "text/plain").unwrap();
        if defect == Defect::WrongSha256 {
            artifact.sha256 = Some("0".repeat(64));
        }
        let event = janus_core::JanusEvent::artifacts(&[artifact]);
        steps.push((Duration::ZERO, chunk(defect, json!({"janus": event}), None)));
    }
    steps.push((
        Duration::ZERO,
        chunk(defect, json!({"content": "hi"}), None),
    ));
    steps.push((Duration::ZERO, chunk(defect, json!({}), Some("stop"))));
    if json["stream_options"]["include_usage"] == true {
        let usage = json!({"id": "chatcmpl-broken", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        steps.push((Duration::ZERO, format!("data: {usage}\n\n")));
    }
    if defect != Defect::NoDone {
        steps.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
    }
    let stream = futures_util::stream::unfold(
        (steps.into_iter(), guard),
        |(mut steps, guard)| async move {
            let (pause, text) = steps.next()?;
            tokio::time::sleep(pause).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(text))),
                (steps, guard),
            ))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap()
}
