//! `janus up` includes the baseline competitor when an inference upstream is configured,
//! and says plainly when it is not.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::{janus, janus_up_printing};

/// A test double for the inference upstream: every chat call streams one sentence.
async fn fake_inference() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let auth = Arc::new(Mutex::new(Vec::new()));
    let seen = auth.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        if let Some(value) = request.headers().get("authorization") {
                            seen.lock()
                                .unwrap()
                                .push(value.to_str().unwrap().to_owned());
                        }
                        let body = concat!(
                        "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello from the fake upstream.\"},\"finish_reason\":null}]}\n\n",
                        "data: [DONE]\n\n"
                    );
                        async move {
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .header("content-type", "text/event-stream")
                                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, auth)
}

#[tokio::test]
async fn up_includes_the_baseline_when_an_inference_upstream_is_configured() {
    let (inference, auth) = fake_inference().await;
    let (_up, url, _, printed) = janus_up_printing(
        &["--inference-url", &inference],
        &[("JANUS_BASELINE_INFERENCE_KEY", "sk-cli-secret")],
    )
    .await;
    assert!(
        printed.contains(&format!("baseline     included (inference {inference}")),
        "{printed}"
    );
    assert!(
        printed.contains("baseline → http://127.0.0.1:"),
        "{printed}"
    );
    assert!(!printed.contains("sk-cli-secret"), "{printed}");
    let output = janus()
        .args(["chat", "--gateway", &url, "--model", "baseline", "hello"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Hello from the fake upstream."), "{stdout}");
    assert_eq!(
        auth.lock().unwrap().as_slice(),
        ["Bearer sk-cli-secret".to_owned()]
    );
}

#[tokio::test]
async fn up_says_plainly_when_no_inference_upstream_is_configured() {
    let (_up, _, _, printed) = janus_up_printing(&[], &[]).await;
    assert!(
        printed.contains(
            "baseline     not included: no inference upstream is configured (--inference-url URL"
        ),
        "{printed}"
    );
    assert!(!printed.contains("baseline →"), "{printed}");
}
