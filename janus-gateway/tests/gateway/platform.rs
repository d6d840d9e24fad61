//! Platform services over real sockets: grants, secret injection, allowlists, path guards,
//! budgets, metering into the client's usage, and sandboxes through the real janus-sandbox
//! service. The inference upstream is `FakeInference`, a test double for a paid LLM API;
//! the competitor is `HoldingCompetitor`, which hands each request to the test so the test
//! can make the competitor's platform calls while the request is open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use janus_gateway::signing::SigningKeys;
use janus_gateway::{Budget, Config, PlatformKind, PlatformService, Price, Secret};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::support::{call, chat_request, test_config};

const KEY: &str = "platform-test-key-0123456789abcdef0123456789";
const SECRET: &str = "sk-upstream-secret-never-shown";
const SANDY_SECRET: &str = "sandy-secret-never-shown";

// ---------------------------------------------------------------------------------------
// FakeInference: a test double for an OpenAI-compatible upstream.

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

struct FakeInference {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// A streaming answer waits for this after its first chunk (proves no buffering).
    resume: Arc<Notify>,
}

const STREAM_USAGE: (u64, u64) = (11, 7);
const PLAIN_USAGE: (u64, u64) = (5, 3);

impl FakeInference {
    async fn start() -> FakeInference {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let resume = Arc::new(Notify::new());
        let (seen2, resume2) = (seen.clone(), resume.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, resume) = (seen2.clone(), resume2.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (seen, resume) = (seen.clone(), resume.clone());
                        async move { Ok::<_, Infallible>(fake_answer(request, seen, resume).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeInference { addr, seen, resume }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn fake_answer(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    resume: Arc<Notify>,
) -> Response<FakeBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let json_response = |value: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .header("connection", "x-hop")
            .header("x-hop", "must-not-pass")
            .body(Full::new(Bytes::from(value.to_string())).boxed())
            .unwrap()
    };
    if parts.uri.query() == Some("redirect=1") {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "http://127.0.0.9:9/elsewhere")
            .header("set-cookie", "upstream=1")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
    }
    if parts.uri.path() == "/v1/models" {
        return json_response(json!({"object": "list", "data": [{"id": "fake-model"}]}));
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request["stream"] != true {
        return json_response(json!({
            "id": "up-1", "object": "chat.completion", "created": 1, "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "plain"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PLAIN_USAGE.0, "completion_tokens": PLAIN_USAGE.1, "total_tokens": PLAIN_USAGE.0 + PLAIN_USAGE.1},
        }));
    }
    let include_usage = request["stream_options"]["include_usage"] == true;
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "up-s", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let first = chunk(
        json!({"role": "assistant", "reasoning_content": "thinking"}),
        Value::Null,
    );
    let mut rest = chunk(json!({"content": "streamed"}), json!("stop"));
    if include_usage {
        rest.push_str(&format!(
            "data: {}\n\n",
            json!({"id": "up-s", "object": "chat.completion.chunk", "created": 1, "model": "fake-model", "choices": [],
                "usage": {"prompt_tokens": STREAM_USAGE.0, "completion_tokens": STREAM_USAGE.1, "total_tokens": STREAM_USAGE.0 + STREAM_USAGE.1}})
        ));
    }
    rest.push_str("data: [DONE]\n\n");
    let (tx, rx) = mpsc::channel::<Result<hyper::body::Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(hyper::body::Frame::data(Bytes::from(first))))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), resume.notified()).await;
        let _ = tx
            .send(Ok(hyper::body::Frame::data(Bytes::from(rest))))
            .await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(http_body_util::StreamBody::new(stream).boxed())
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// HoldingCompetitor: hands each chat request to the test and answers what the test says.

struct Held {
    headers: HeaderMap,
    body: Value,
    reply: oneshot::Sender<(&'static str, String)>,
}

struct HoldingCompetitor {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Held>,
}

impl HoldingCompetitor {
    async fn start() -> HoldingCompetitor {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel::<Held>();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            if parts.uri.path() == "/health" {
                                return Ok::<_, Infallible>(Response::new(Full::new(
                                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                                )));
                            }
                            let (reply, answer) = oneshot::channel();
                            let _ = tx.send(Held {
                                headers: parts.headers,
                                body: serde_json::from_slice(&body).unwrap(),
                                reply,
                            });
                            let (content_type, text) =
                                answer.await.unwrap_or(("application/json", "{}".into()));
                            Ok(Response::builder()
                                .header("content-type", content_type)
                                .body(Full::new(Bytes::from(text)))
                                .unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HoldingCompetitor { addr, requests: rx }
    }

    async fn next(&mut self) -> Held {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("the competitor got no request within 10 s")
            .unwrap()
    }
}

impl Held {
    fn grant(&self) -> String {
        self.headers["x-janus-platform-token"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn platform_url(&self) -> String {
        self.headers["x-janus-platform-url"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Answers as an SDK competitor would: a chunk, and a usage chunk when asked.
    fn answer_stream(self, with_usage_chunk: bool) {
        let mut text = String::from("data: {\"id\":\"c-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n");
        if with_usage_chunk {
            text.push_str("data: {\"id\":\"c-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\n");
        }
        text.push_str("data: [DONE]\n\n");
        let _ = self.reply.send(("text/event-stream", text));
    }

    fn answer_json(self, usage: bool) {
        let mut body = json!({"id": "c-2", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
        if usage {
            body["usage"] = json!({"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3});
        }
        let _ = self.reply.send(("application/json", body.to_string()));
    }
}

// ---------------------------------------------------------------------------------------
// A gateway with its platform listener.

struct PlatformGateway {
    addr: SocketAddr,
    platform: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_gateway(config: Config) -> PlatformGateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let platform_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let platform = platform_listener.local_addr().unwrap();
    let mut config = config;
    config.platform_listen = platform;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(janus_gateway::run_with_platform(
        listener,
        Some(platform_listener),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    PlatformGateway {
        addr,
        platform,
        _stop: stop,
    }
}

fn inference(upstream: &FakeInference) -> PlatformService {
    let mut service = PlatformService::new(
        "inference",
        PlatformKind::Inference,
        &format!("http://{}/v1", upstream.addr),
    )
    .unwrap()
    .with_secret(Secret::new(SECRET));
    service.price = Price {
        per_call: 0.5,
        prompt_per_million: 2_000_000.0,
        completion_per_million: 1_000_000.0,
        per_sandbox_second: 0.0,
    };
    service
}

fn config_with(competitors: &[(&str, SocketAddr)], platforms: Vec<PlatformService>) -> Config {
    let mut config = test_config(
        competitors
            .iter()
            .map(|(id, addr)| janus_gateway::CompetitorConfig {
                id: (*id).to_owned(),
                url: format!("http://{addr}"),
                timeout: None,
                max_concurrent_requests: None,
                description: None,
            })
            .collect(),
    );
    config.signing_keys = Some(SigningKeys::from_lines(KEY).unwrap());
    config.platforms = platforms;
    config
}

/// A platform call as a competitor makes it (raw request target, so guards see it as sent).
async fn platform_call(
    addr: SocketAddr,
    method: Method,
    target: &str,
    grant: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "platform")
        .header("x-forwarded-for", "10.9.9.9")
        .header("cookie", "session=competitor");
    if let Some(grant) = grant {
        request = request.header("authorization", format!("Bearer {grant}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_request(request.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, headers, bytes)
}

fn error_code(bytes: &Bytes) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn usage_chunk(events: &[String]) -> Value {
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .filter(|c: &Value| c.get("usage").is_some())
        .collect();
    assert_eq!(chunks.len(), 1, "exactly one usage chunk: {events:?}");
    chunks[0].clone()
}

fn stream_request(model: &str, include_usage: bool) -> Value {
    let mut body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn inference_through_the_platform_is_injected_metered_and_reported() {
    let upstream = FakeInference::start().await;
    let mut competitor = HoldingCompetitor::start().await;
    let gateway = start_gateway(config_with(
        &[("hold", competitor.addr)],
        vec![inference(&upstream)],
    ))
    .await;
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", true)),
    ));
    let held = competitor.next().await;
    let grant = held.grant();
    assert_eq!(
        held.platform_url(),
        format!("http://{}/platform", gateway.platform)
    );
    let deadline: u64 = held.headers["x-janus-deadline"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = janus_core::unix_now() * 1000;
    assert!(
        deadline > now && deadline <= now + 301_000,
        "deadline {deadline} vs now {now}"
    );
    assert!(held.headers.get("authorization").is_none());
    assert_eq!(held.body["model"], "hold");

    let base = "/platform/inference";
    // Non-streaming inference: the upstream's usage is metered, the body relayed.
    let (status, headers, body) = platform_call(
        gateway.platform,
        Method::POST,
        &format!("{base}/chat/completions"),
        Some(&grant),
        Some(json!({"model": "fake-model", "messages": [{"role": "user", "content": "q"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "plain");
    assert!(
        headers.get("x-hop").is_none(),
        "hop-by-hop headers are stripped"
    );

    // Streaming without include_usage: the gateway asks for it and strips it again; the
    // first chunk arrives while the upstream still holds the rest (no buffering).
    let stream = TcpStream::connect(gateway.platform).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("{base}/chat/completions"))
        .header("host", "platform")
        .header("authorization", format!("Bearer {grant}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"model": "fake-model", "stream": true, "messages": [{"role": "user", "content": "q"}]}).to_string(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk must arrive before the upstream finishes")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("reasoning_content"));
    upstream.resume.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    assert!(
        rest.contains("streamed") && rest.ends_with("data: [DONE]\n\n"),
        "{rest}"
    );
    assert!(
        !rest.contains("\"usage\""),
        "the usage chunk the competitor did not ask for is stripped: {rest}"
    );

    // Streaming with include_usage: the usage chunk is kept.
    let sent = upstream.seen().len();
    // Stores a permit, so this answer does not wait.
    upstream.resume.notify_one();
    let (status, _, streamed) = platform_call(
        gateway.platform,
        Method::POST,
        &format!("{base}/chat/completions"),
        Some(&grant),
        Some(json!({"model": "fake-model", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "q"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&streamed).contains("\"usage\""));
    assert_eq!(upstream.seen().len(), sent + 1);

    // The upstream saw the injected secret, never the grant nor client identity.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            (&request.method, request.path.as_str()),
            (&Method::POST, "/v1/chat/completions")
        );
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {SECRET}").as_str()
        );
        for (name, value) in &request.headers {
            assert!(
                !value.to_str().unwrap_or("").contains(&grant),
                "grant leaked in {name}"
            );
        }
        assert!(request.headers.get("x-forwarded-for").is_none());
        assert!(request.headers.get("cookie").is_none());
        assert!(!String::from_utf8_lossy(&request.body).contains(&grant));
    }
    let asked: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(asked["stream_options"]["include_usage"], true);
    // The competitor never saw the secret.
    assert!(!String::from_utf8_lossy(&body_text(&answer)).contains(SECRET));
    assert!(!rest.contains(SECRET));
    for (_, value) in &held.headers {
        assert!(!value.to_str().unwrap_or("").contains(SECRET));
    }

    held.answer_stream(true);
    let timed = client.await.unwrap();
    assert_eq!(timed.status, StatusCode::OK);
    let events = timed.data_events();
    let usage = usage_chunk(&events);
    assert_eq!(
        usage["usage"]["prompt_tokens"], 2,
        "the competitor's own claim stays"
    );
    let platform = &usage["usage"]["platform"];
    let prompt = PLAIN_USAGE.0 + 2 * STREAM_USAGE.0;
    let completion = PLAIN_USAGE.1 + 2 * STREAM_USAGE.1;
    assert_eq!(platform["calls"], 3);
    assert_eq!(platform["prompt_tokens"], prompt);
    assert_eq!(platform["completion_tokens"], completion);
    assert_eq!(platform["by_service"], json!({"inference": 3}));
    let cost = 3.0 * 0.5 + 2.0 * prompt as f64 + completion as f64;
    assert!(
        (platform["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-6,
        "{platform}"
    );
    assert_eq!(platform["sandbox_seconds"], 0.0);
    assert_eq!(events.last().unwrap(), "[DONE]");

    // Metrics carry the same figures.
    let metrics = call(
        gateway.addr,
        Request::get("/metrics")
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .text();
    assert!(
        metrics.contains("janus_gateway_platform_calls_total{service=\"inference\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "janus_gateway_platform_tokens_total{{service=\"inference\",kind=\"prompt\"}} {prompt}"
    )));
}

fn body_text(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn usage_platform_is_present_with_zeros_when_nothing_was_used() {
    let upstream = FakeInference::start().await;
    let mut competitor = HoldingCompetitor::start().await;
    let gateway = start_gateway(config_with(
        &[("hold", competitor.addr)],
        vec![inference(&upstream)],
    ))
    .await;
    let zeros = json!({"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "sandbox_seconds": 0.0, "by_service": {}});

    // Stream, usage asked, the competitor sends no usage chunk: the gateway adds one.
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", true)),
    ));
    competitor.next().await.answer_stream(false);
    let events = client.await.unwrap().data_events();
    let usage = usage_chunk(&events);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["id"], "c-1",
        "the added chunk carries the stream's id"
    );
    assert_eq!(usage["usage"]["platform"], zeros);
    assert_eq!(events.last().unwrap(), "[DONE]");

    // Stream, usage not asked: no usage chunk at all.
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", false)),
    ));
    competitor.next().await.answer_stream(false);
    let events = client.await.unwrap().data_events();
    assert!(events.iter().all(|e| !e.contains("usage")), "{events:?}");

    // Non-stream, the competitor sends no usage: usage.platform still present.
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&json!({"model": "hold", "messages": [{"role": "user", "content": "x"}]})),
    ));
    competitor.next().await.answer_json(false);
    let response = client.await.unwrap().json();
    assert_eq!(response["usage"]["platform"], zeros);

    // Non-stream with usage: the claim stays beside the platform figures.
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&json!({"model": "hold", "messages": [{"role": "user", "content": "x"}]})),
    ));
    competitor.next().await.answer_json(true);
    let response = client.await.unwrap().json();
    assert_eq!(response["usage"]["completion_tokens"], 1);
    assert_eq!(response["usage"]["platform"]["calls"], 0);
}

#[tokio::test]
async fn grants_allowlist_and_path_guards_refuse() {
    let upstream = FakeInference::start().await;
    let mut competitor = HoldingCompetitor::start().await;
    let gateway = start_gateway(config_with(
        &[("hold", competitor.addr)],
        vec![inference(&upstream)],
    ))
    .await;
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", false)),
    ));
    let held = competitor.next().await;
    let grant = held.grant();
    let models = "/platform/inference/models";

    let (status, _, body) =
        platform_call(gateway.platform, Method::GET, models, Some(&grant), None).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");

    // A redirect is relayed, never followed, and its Location and cookies stay behind.
    let seen = upstream.seen().len();
    let (status, headers, _) = platform_call(
        gateway.platform,
        Method::GET,
        &format!("{models}?redirect=1"),
        Some(&grant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(headers.get("location").is_none() && headers.get("set-cookie").is_none());
    assert_eq!(
        upstream.seen().len(),
        seen + 1,
        "the redirect was not followed"
    );

    // Missing, forged, tampered and expired grants: 401 invalid_grant.
    let keys = SigningKeys::from_lines(KEY).unwrap();
    let other_key = SigningKeys::from_lines("another-key-entirely-0123456789abcdef").unwrap();
    let payload = |exp: u64| json!({"rid": "r", "cid": "hold", "exp": exp, "bid": "b"}).to_string();
    let far = janus_core::unix_now() * 1000 + 600_000;
    let (sig_payload, signature) = grant.split_once('.').unwrap();
    let tampered = format!("{}x.{signature}", sig_payload);
    let expired = keys.sign(
        "grant",
        payload(janus_core::unix_now() * 1000 - 1).as_bytes(),
    );
    let forged = other_key.sign("grant", payload(far).as_bytes());
    let wrong_purpose = keys.sign("artifact", payload(far).as_bytes());
    for bad in [
        None,
        Some("garbage"),
        Some(tampered.as_str()),
        Some(expired.as_str()),
        Some(forged.as_str()),
        Some(wrong_purpose.as_str()),
    ] {
        let (status, _, body) =
            platform_call(gateway.platform, Method::GET, models, bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(error_code(&body), "invalid_grant");
        let envelope: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope["error"]["type"], "authentication_error");
    }

    // Outside the allowlist: 403 not_allowed.
    for (method, target) in [
        (Method::GET, "/platform/inference/files"),
        (Method::DELETE, "/platform/inference/models"),
        (Method::GET, "/platform/inference/chat/completions"),
    ] {
        let (status, _, body) =
            platform_call(gateway.platform, method.clone(), target, Some(&grant), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {target}");
        assert_eq!(error_code(&body), "not_allowed");
    }

    // Traversal and SSRF-shaped paths: refused before anything reaches the upstream.
    let before = upstream.seen().len();
    for target in [
        "/platform/inference/../models",
        "/platform/inference/x/../../v1/models",
        "/platform/inference/%2e%2e/models",
        "/platform/inference/%2E%2e%2fmodels",
        "/platform/inference//127.0.0.9:9/v1/models",
        "/platform/inference/models@127.0.0.9:9",
        "/platform/inference/http:%2f%2f127.0.0.9:9/",
        "/platform/inference/a%252e%252e/models",
        "http://127.0.0.9:9/platform/inference/models",
    ] {
        let (status, _, body) =
            platform_call(gateway.platform, Method::GET, target, Some(&grant), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body:?}");
        assert_eq!(error_code(&body), "invalid_platform_path");
    }
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::GET,
        "/platform/nothere/x",
        Some(&grant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "platform_service_not_found");
    assert_eq!(
        upstream.seen().len(),
        before,
        "no refused call reached the upstream"
    );

    // The public listener never serves the platform.
    let (status, _, _) = platform_call(gateway.addr, Method::GET, models, Some(&grant), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    held.answer_stream(false);
    assert_eq!(client.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn budget_exceeded_is_429() {
    let upstream = FakeInference::start().await;
    let mut competitor = HoldingCompetitor::start().await;
    let mut config = config_with(&[("hold", competitor.addr)], vec![inference(&upstream)]);
    config.budgets.insert(
        "hold".into(),
        Budget {
            calls: 2,
            inference_tokens: 1_000,
            ..Budget::default()
        },
    );
    let gateway = start_gateway(config).await;
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", true)),
    ));
    let held = competitor.next().await;
    let grant = held.grant();
    for _ in 0..2 {
        let (status, _, _) = platform_call(
            gateway.platform,
            Method::GET,
            "/platform/inference/models",
            Some(&grant),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::GET,
        "/platform/inference/models",
        Some(&grant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "platform_budget_exceeded");
    assert_eq!(upstream.seen().len(), 2);
    held.answer_stream(true);
    let usage = usage_chunk(&client.await.unwrap().data_events());
    assert_eq!(
        usage["usage"]["platform"]["calls"], 2,
        "refused calls are not counted"
    );

    // Token budget: a fresh request whose first call used more than the budget.
    let mut config = config_with(&[("hold", competitor.addr)], vec![inference(&upstream)]);
    config.budgets.insert(
        "hold".into(),
        Budget {
            inference_tokens: 5,
            ..Budget::default()
        },
    );
    drop(gateway);
    let gateway = start_gateway(config).await;
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", false)),
    ));
    let held = competitor.next().await;
    let grant = held.grant();
    let ask = json!({"model": "fake-model", "messages": [{"role": "user", "content": "q"}]});
    let (status, _, _) = platform_call(
        gateway.platform,
        Method::POST,
        "/platform/inference/chat/completions",
        Some(&grant),
        Some(ask.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::POST,
        "/platform/inference/chat/completions",
        Some(&grant),
        Some(ask),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "platform_budget_exceeded");
    held.answer_stream(false);
    client.await.unwrap();
}

async fn sandbox_service() -> (SocketAddr, oneshot::Sender<()>) {
    let root =
        std::env::temp_dir().join(format!("janus-gw-platform-{}", janus_core::random_hex(6)));
    let mut config = janus_sandbox::Config::new(root, janus_sandbox::IsolationMode::None);
    config.api_keys = Some(janus_http::ApiKeys::new([SANDY_SECRET]).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    config.public_url = format!("http://{addr}");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(janus_sandbox::run(listener, config, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn sandboxes_through_the_platform_are_owned_metered_and_cleaned_up() {
    let (sandy, _stop) = sandbox_service().await;
    let sandbox =
        PlatformService::new("sandbox", PlatformKind::Sandbox, &format!("http://{sandy}"))
            .unwrap()
            .with_secret(Secret::new(SANDY_SECRET));
    let mut a = HoldingCompetitor::start().await;
    let mut b = HoldingCompetitor::start().await;
    let gateway = start_gateway(config_with(&[("a", a.addr), ("b", b.addr)], vec![sandbox])).await;
    let client_a = tokio::spawn(call(gateway.addr, chat_request(&stream_request("a", true))));
    let held_a = a.next().await;
    let client_b = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("b", false)),
    ));
    let held_b = b.next().await;
    let (grant_a, grant_b) = (held_a.grant(), held_b.grant());

    let create = |grant: String| async move {
        let (status, _, body) = platform_call(
            gateway.platform,
            Method::POST,
            "/platform/sandbox/api/sandboxes",
            Some(&grant),
            Some(json!({"ttl_seconds": 120})),
        )
        .await;
        assert!(status.is_success(), "{status} {body:?}");
        let created: Value = serde_json::from_slice(&body).unwrap();
        created["sandboxId"].as_str().unwrap().to_owned()
    };
    let kept = create(grant_a.clone()).await;
    let left = create(grant_a.clone()).await;
    let refreshed = create(grant_a.clone()).await;
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::POST,
        &format!("/platform/sandbox/api/sandboxes/{refreshed}/refresh"),
        Some(&grant_a),
        Some(json!({})),
    )
    .await;
    assert!(status.is_success(), "{status} {body:?}");
    let exec = |id: &str| format!("/platform/sandbox/api/sandboxes/{id}/exec");
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::POST,
        &exec(&kept),
        Some(&grant_a),
        Some(json!({"command": "echo through-platform", "timeoutMs": 10_000})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let output: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(output["stdout"], "through-platform\n");

    // Another competitor's grant cannot touch a's sandbox.
    for (method, target, body) in [
        (
            Method::POST,
            exec(&kept),
            Some(json!({"command": "id", "timeoutMs": 1000})),
        ),
        (
            Method::GET,
            format!("/platform/sandbox/api/sandboxes/{kept}/files/read?path=/etc/hostname"),
            None,
        ),
        (
            Method::POST,
            format!("/platform/sandbox/api/sandboxes/{kept}/terminate"),
            None,
        ),
    ] {
        let (status, _, reply) =
            platform_call(gateway.platform, method, &target, Some(&grant_b), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{target}");
        assert_eq!(error_code(&reply), "not_allowed");
    }

    let started = std::time::Instant::now();
    let (status, _, _) = platform_call(
        gateway.platform,
        Method::POST,
        &format!("/platform/sandbox/api/sandboxes/{kept}/terminate"),
        Some(&grant_a),
        None,
    )
    .await;
    assert!(status.is_success());
    held_a.answer_stream(true);
    let usage = usage_chunk(&client_a.await.unwrap().data_events());
    let platform = &usage["usage"]["platform"];
    assert_eq!(platform["calls"], 6);
    assert_eq!(platform["by_service"], json!({"sandbox": 6}));
    let seconds = platform["sandbox_seconds"].as_f64().unwrap();
    let bound = 2.0 * (std::time::Instant::now() - started).as_secs_f64() + 60.0;
    assert!(
        seconds > 0.0 && seconds < bound,
        "sandbox seconds {seconds}"
    );

    // The sandbox a's request left running is terminated when the request ends.
    let direct = |id: String| async move {
        let (status, _, body) = platform_call(
            sandy,
            Method::GET,
            &format!("/api/sandboxes/{id}"),
            Some(SANDY_SECRET),
            None,
        )
        .await;
        if status == StatusCode::NOT_FOUND {
            return "terminated".to_owned();
        }
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice::<Value>(&body).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut terminated = false;
    for _ in 0..200 {
        if direct(left.clone()).await == "terminated" {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminated, "the leftover sandbox was not terminated");
    assert_eq!(direct(kept).await, "terminated");
    assert_ne!(
        direct(refreshed).await,
        "terminated",
        "a refreshed sandbox outlives its request"
    );

    // b cannot create past its sandbox budget either; here b simply finishes.
    held_b.answer_stream(false);
    client_b.await.unwrap();
}

#[tokio::test]
async fn request_cap_and_per_call_timeout_hold() {
    let upstream = FakeInference::start().await;
    let mut competitor = HoldingCompetitor::start().await;
    let mut service = inference(&upstream);
    service.max_request_bytes = 200;
    service.timeout = Duration::from_millis(300);
    let gateway = start_gateway(config_with(&[("hold", competitor.addr)], vec![service])).await;
    let client = tokio::spawn(call(
        gateway.addr,
        chat_request(&stream_request("hold", false)),
    ));
    let held = competitor.next().await;
    let grant = held.grant();

    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(500)}]});
    let (status, _, body) = platform_call(
        gateway.platform,
        Method::POST,
        "/platform/inference/chat/completions",
        Some(&grant),
        Some(big),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&body), "request_too_large");

    // The upstream stalls after its first chunk: the call is cut at its timeout.
    let stream = TcpStream::connect(gateway.platform).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/platform/inference/chat/completions")
        .header("host", "platform")
        .header("authorization", format!("Bearer {grant}"))
        .body(Full::new(Bytes::from(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "q"}]})
                .to_string(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the per-call timeout must end the body");
    assert!(
        collected.is_err(),
        "a stalled upstream ends in a broken body"
    );
    upstream.resume.notify_one();
    held.answer_stream(false);
    client.await.unwrap();
}
