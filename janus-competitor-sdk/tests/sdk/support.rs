//! Shared test fixtures: a scripted competitor that reports when its handler is dropped, a
//! server on `127.0.0.1:0`, and a small HTTP client that timestamps every SSE item.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use janus_competitor_sdk::janus_core::{ChunkDecoder, StreamEvent};
use janus_competitor_sdk::{
    async_trait, publish_artifact, serve, ChatCompletionRequest, Competitor, CompetitorError,
    CompetitorEvent, EventWriter, RequestContext, ServeConfig,
};
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// One thing a [`Script`] handler does.
#[derive(Debug, Clone)]
pub enum Step {
    Send(CompetitorEvent),
    Sleep(Duration),
    Panic(&'static str),
    Fail(&'static str),
    Reject(&'static str),
    /// Publishes an artifact of `size` bytes of a repeating pattern and sends it.
    Artifact {
        size: usize,
        name: &'static str,
        mime: &'static str,
    },
    Log(&'static str),
}

pub fn content(text: &str) -> Step {
    Step::Send(CompetitorEvent::Content(text.to_owned()))
}

pub fn reasoning(text: &str) -> Step {
    Step::Send(CompetitorEvent::Reasoning(text.to_owned()))
}

pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// What the handler saw and when it was dropped.
#[derive(Debug, Default)]
pub struct Probe {
    pub started: AtomicUsize,
    pub start_notify: Notify,
    pub completed: AtomicBool,
    pub dropped_at: Mutex<Option<Instant>>,
    pub drop_notify: Notify,
    pub contexts: Mutex<Vec<RequestContext>>,
}

impl Probe {
    /// Waits until a handler has started.
    pub async fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.started.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "handler never started");
            let _ =
                tokio::time::timeout(Duration::from_millis(20), self.start_notify.notified()).await;
        }
    }

    /// When the handler future was dropped, waiting up to `limit` for it.
    pub async fn wait_dropped(&self, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = *self.dropped_at.lock().unwrap() {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.drop_notify.notified()).await;
        }
    }
}

struct DropGuard(Arc<Probe>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        *self.0.dropped_at.lock().unwrap() = Some(Instant::now());
        self.0.drop_notify.notify_waiters();
    }
}

/// A competitor that plays its steps in order.
#[derive(Debug)]
pub struct Script {
    pub steps: Vec<Step>,
    pub probe: Arc<Probe>,
    pub ready: AtomicBool,
}

impl Script {
    pub fn new(steps: Vec<Step>) -> Arc<Script> {
        Arc::new(Script {
            steps,
            probe: Arc::new(Probe::default()),
            ready: AtomicBool::new(true),
        })
    }
}

#[async_trait]
impl Competitor for Script {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let _guard = DropGuard(self.probe.clone());
        self.probe.contexts.lock().unwrap().push(context);
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        self.probe.start_notify.notify_waiters();
        for step in &self.steps {
            match step {
                Step::Send(event) => out.send(event.clone()).await?,
                Step::Sleep(duration) => tokio::time::sleep(*duration).await,
                Step::Panic(message) => panic!("{message}"),
                Step::Fail(message) => return Err(CompetitorError::Internal((*message).into())),
                Step::Reject(message) => {
                    return Err(CompetitorError::BadRequest((*message).into()))
                }
                Step::Artifact { size, name, mime } => {
                    let artifact = publish_artifact(pattern(*size), name, mime).await?;
                    out.artifact(artifact).await?;
                }
                Step::Log(message) => tracing::info!(step = *message, "script log"),
            }
        }
        self.probe.completed.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// A server on an ephemeral port, stopped by [`TestServer::stop`] (or on drop).
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start<C: Competitor>(competitor: Arc<C>, config: ServeConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, competitor, config, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks for shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Asks for shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.begin_stop();
        let task = &mut self.task;
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_stop();
    }
}

/// A config with a fresh artifact directory.
pub fn config() -> ServeConfig {
    let mut config = ServeConfig::default();
    config.artifact_dir = std::env::temp_dir().join(format!(
        "janus-sdk-test-{}",
        janus_competitor_sdk::janus_core::random_hex(8)
    ));
    config
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    janus_http::build_client(Duration::from_secs(5))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

pub async fn send(request: Request<Full<Bytes>>) -> Reply {
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Reply {
    send(Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

pub fn chat_request(url: &str, body: &Value) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub async fn post(server: &TestServer, body: &Value) -> Reply {
    send(chat_request(&server.url("/v1/chat/completions"), body)).await
}

pub fn body(stream: bool) -> Value {
    json!({
        "model": "test-model",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": stream,
    })
}

/// A decoded stream: every item with the time it arrived, and the raw bytes.
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub started: Instant,
    pub headers_at: Instant,
    pub items: Vec<(Instant, StreamEvent)>,
    pub raw: Vec<u8>,
}

impl Streamed {
    pub fn events(&self) -> Vec<&StreamEvent> {
        self.items.iter().map(|(_, e)| e).collect()
    }

    pub fn chunks(&self) -> Vec<&janus_competitor_sdk::janus_core::ChatCompletionChunk> {
        self.items
            .iter()
            .filter_map(|(_, e)| match e {
                StreamEvent::Chunk(chunk) => Some(chunk),
                _ => None,
            })
            .collect()
    }

    pub fn content(&self) -> String {
        self.chunks()
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter_map(|c| c.delta.content.clone())
            .collect()
    }

    /// Largest gap between the request and the first item, or between two items.
    pub fn max_gap(&self) -> Duration {
        let mut last = self.started;
        let mut max = Duration::ZERO;
        for (at, _) in &self.items {
            max = max.max(at.duration_since(last));
            last = *at;
        }
        max
    }

    pub fn comments(&self) -> usize {
        self.items
            .iter()
            .filter(|(_, e)| matches!(e, StreamEvent::Comment(_)))
            .count()
    }
}

pub async fn stream_request(request: Request<Full<Bytes>>) -> Streamed {
    let started = Instant::now();
    let response = client().request(request).await.unwrap();
    let headers_at = Instant::now();
    let (parts, mut body) = response.into_parts();
    // Inline artifacts up to 1,000,000 bytes make events of about 1.4 MB.
    let mut decoder = ChunkDecoder::with_max_event_bytes(4 * 1024 * 1024);
    let mut items = Vec::new();
    let mut raw = Vec::new();
    let mut decoded = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let at = Instant::now();
        raw.extend_from_slice(&data);
        decoder.feed(&data, &mut decoded).unwrap();
        items.extend(decoded.drain(..).map(|e| (at, e)));
    }
    assert!(decoder.at_boundary(), "stream ended inside an event");
    Streamed {
        status: parts.status,
        headers: parts.headers,
        started,
        headers_at,
        items,
        raw,
    }
}

pub async fn stream(server: &TestServer, body: &Value) -> Streamed {
    stream_request(chat_request(&server.url("/v1/chat/completions"), body)).await
}
