//! Test doubles and helpers: scripted competitors (small hyper servers standing in for real
//! competitors), a gateway on 127.0.0.1:0, and an HTTP client that timestamps every frame.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use janus_gateway::{CompetitorConfig, Config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

/// One step of a scripted response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes as one chunk.
    Send(Vec<u8>),
    /// Stay silent this long.
    Wait(Duration),
    /// Break the connection (the body yields an error).
    Reset,
}

pub fn send(bytes: impl AsRef<[u8]>) -> Step {
    Step::Send(bytes.as_ref().to_vec())
}

pub fn wait_ms(ms: u64) -> Step {
    Step::Wait(Duration::from_millis(ms))
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub content_type: &'static str,
    /// Delay before the response headers.
    pub head_delay: Duration,
    pub steps: Vec<Step>,
    /// Extra response headers.
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Script {
    pub fn sse(steps: Vec<Step>) -> Script {
        Script {
            status: 200,
            content_type: "text/event-stream",
            head_delay: Duration::ZERO,
            steps,
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, body: &str) -> Script {
        Script {
            status,
            content_type: "application/json",
            head_delay: Duration::ZERO,
            steps: vec![send(body)],
            headers: Vec::new(),
        }
    }

    /// The same, with one more response header.
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Script {
        self.headers.push((name, value));
        self
    }
}

/// A request the competitor received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Handler = dyn Fn(usize, &Received) -> Script + Send + Sync;

/// A scripted competitor on 127.0.0.1.
pub struct Competitor {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Response bodies dropped before their script finished (the gateway hung up).
    pub abandoned: Arc<AtomicUsize>,
    pub abandoned_notify: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl Competitor {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self, id: &str) -> CompetitorConfig {
        CompetitorConfig {
            id: id.to_owned(),
            url: self.url(),
            timeout: None,
            max_concurrent_requests: None,
            description: None,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Starts a competitor answering every chat request with `handler(n, request)`, where n
    /// counts requests from 0. `GET /health` answers 200.
    pub async fn start(
        handler: impl Fn(usize, &Received) -> Script + Send + Sync + 'static,
    ) -> Competitor {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let abandoned_notify = Arc::new(Notify::new());
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let state = (
            received.clone(),
            abandoned.clone(),
            abandoned_notify.clone(),
        );
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => return,
                };
                let handler = handler.clone();
                let (received, abandoned, notify) = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let handler = handler.clone();
                        let received = received.clone();
                        let abandoned = abandoned.clone();
                        let notify = notify.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let headers = request.headers().clone();
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            if path == "/health" {
                                return Ok::<_, Infallible>(Response::new(
                                    Full::new(Bytes::from_static(b"{\"status\":\"ok\"}"))
                                        .map_err(|never| match never {})
                                        .boxed_unsync(),
                                ));
                            }
                            let request = Received { headers, body };
                            let n = {
                                let mut list = received.lock().unwrap();
                                list.push(request.clone());
                                list.len() - 1
                            };
                            let script = handler(n, &request);
                            // Armed before the head delay so a hang-up while the competitor
                            // is still "thinking" counts too.
                            let guard = AbandonGuard {
                                finished: false,
                                abandoned,
                                notify,
                            };
                            tokio::time::sleep(script.head_delay).await;
                            Ok(scripted_response(script, guard))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Competitor {
            addr,
            received,
            abandoned,
            abandoned_notify,
            _stop: stop_tx,
        }
    }
}

/// Counts a body that is dropped before its last step.
struct AbandonGuard {
    finished: bool,
    abandoned: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl AbandonGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
    }
}

type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn scripted_response(script: Script, guard: AbandonGuard) -> Response<TestBody> {
    let steps = script.steps.into_iter();
    let extra_headers = script.headers;
    let body = stream::unfold((steps, guard), |(mut steps, mut guard)| async move {
        loop {
            match steps.next() {
                Some(Step::Send(bytes)) => {
                    return Some((Ok(Frame::data(Bytes::from(bytes))), (steps, guard)))
                }
                Some(Step::Wait(duration)) => tokio::time::sleep(duration).await,
                Some(Step::Reset) => {
                    guard.finish();
                    return Some((Err(std::io::Error::other("scripted reset")), (steps, guard)));
                }
                None => {
                    guard.finish();
                    return None;
                }
            }
        }
    });
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(script.status).unwrap();
    response
        .headers_mut()
        .insert("content-type", script.content_type.parse().unwrap());
    for (name, value) in extra_headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A gateway on 127.0.0.1:0, stopped on drop or with [`Gateway::stop`].
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    pub async fn start(config: Config) -> Gateway {
        Gateway::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
    }

    /// On a listener the test bound first (to know the address, e.g. for `public_url`).
    pub fn start_on(listener: TcpListener, config: Config) -> Gateway {
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(janus_gateway::run(listener, config, async move {
            let _ = stop_rx.await;
        }));
        Gateway {
            addr,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Begins graceful shutdown and returns the server task.
    pub fn stop(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A config for tests: fast keep-alives and retries unless a test says otherwise.
pub fn test_config(competitors: Vec<CompetitorConfig>) -> Config {
    let mut config = Config::with_competitors(competitors);
    config.health_interval = Duration::from_millis(200);
    config.retry.initial_backoff = Duration::from_millis(50);
    config.retry.max_backoff = Duration::from_millis(200);
    config.serve.shutdown_grace = Duration::from_secs(5);
    config
}

/// A response with every body frame timestamped.
#[derive(Debug)]
pub struct Timed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub frames: Vec<(Duration, Bytes)>,
    pub error: Option<String>,
}

impl Timed {
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes()).unwrap()
    }

    /// Largest gap between consecutive frames, counting from the request.
    pub fn max_gap(&self) -> Duration {
        let mut last = Duration::ZERO;
        let mut max = Duration::ZERO;
        for (at, _) in &self.frames {
            max = max.max(*at - last);
            last = *at;
        }
        max
    }

    /// Everything the client received, decoded.
    fn items(&self) -> Vec<janus_core::sse::SseItem> {
        let mut decoder = janus_core::sse::SseDecoder::new();
        let mut items = Vec::new();
        decoder.feed(&self.bytes(), &mut items).unwrap();
        items
    }

    /// The `data:` payloads, in order.
    pub fn data_events(&self) -> Vec<String> {
        self.items()
            .into_iter()
            .filter_map(|item| match item {
                janus_core::sse::SseItem::Event(e) => Some(e.data),
                janus_core::sse::SseItem::Comment(_) => None,
            })
            .collect()
    }

    /// The comments (keep-alives), in order.
    pub fn comments(&self) -> Vec<String> {
        self.items()
            .into_iter()
            .filter_map(|item| match item {
                janus_core::sse::SseItem::Comment(c) => Some(c),
                janus_core::sse::SseItem::Event(_) => None,
            })
            .collect()
    }
}

/// Opens a connection to `addr` and sends `request`; returns the response head and body.
pub async fn open(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (Response<Incoming>, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.unwrap();
    (response, task)
}

/// Sends a request and reads the whole response, timestamping frames.
pub async fn call(addr: SocketAddr, request: Request<Full<Bytes>>) -> Timed {
    let started = Instant::now();
    let (response, _task) = open(addr, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut error = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((started.elapsed(), data));
                }
            }
            Ok(Some(Err(e))) => {
                error = Some(e.to_string());
                break;
            }
            Ok(None) => break,
            Err(_) => panic!("response body stalled for 30 s"),
        }
    }
    Timed {
        status,
        headers,
        frames,
        error,
    }
}

pub fn chat_request(body: &serde_json::Value) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("host", "gateway")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub fn stream_body(model: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": "hello"}]
    })
}

pub fn plain_body(model: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello"}]
    })
}

/// A realistic chunk event.
pub fn chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
        serde_json::Value::String(content.to_owned())
    )
}

pub const COMPLETION: &str = r#"{"id":"chatcmpl-t","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"x_vendor":{"kept":true}}"#;

/// Waits until `check` holds, polling, for at most `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

/// The `data:` payload of one event made by [`chunk`].
pub fn payload(event: &str) -> String {
    event.trim_start_matches("data: ").trim_end().to_owned()
}
