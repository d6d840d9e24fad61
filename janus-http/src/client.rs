//! The one pooled HTTP client builder, and the timed SSE reader every client-side
//! consumer of event streams uses (`janus-client`, the SDK's Sandy client, the perf
//! harness, the tests).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use janus_core::sse::{SseDecoder, SseItem};

/// How idle pooled connections live. Shorter than the servers' idle timeout (75 s), so
/// the pool never sends a request on a connection the server is about to close.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of [`build_client_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// A fixed HTTP/1 read buffer (smaller per-connection memory for many streams).
    pub read_buf_exact_size: Option<usize>,
}

impl ClientOptions {
    /// Defaults with this connect timeout.
    pub fn new(connect_timeout: Duration) -> ClientOptions {
        ClientOptions {
            connect_timeout,
            pool_idle_timeout: POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: 256,
            read_buf_exact_size: None,
        }
    }

    /// With a fixed read buffer size.
    pub fn read_buf_exact_size(mut self, size: usize) -> ClientOptions {
        self.read_buf_exact_size = Some(size);
        self
    }
}

/// A pooled plain-HTTP client: `TCP_NODELAY`, a connect timeout, a pool timer so idle
/// connections are reaped after [`POOL_IDLE_TIMEOUT`].
pub fn build_client<B>(connect_timeout: Duration) -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    build_client_with(ClientOptions::new(connect_timeout))
}

/// [`build_client`] with every option.
pub fn build_client_with<B>(options: ClientOptions) -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(options.connect_timeout));
    connector.enforce_http(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host);
    if let Some(size) = options.read_buf_exact_size {
        builder.http1_read_buf_exact_size(size);
    }
    builder.build(connector)
}

/// One SSE item and when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedItem {
    /// Time since the reader's start instant (usually: when the request was sent).
    pub at: Duration,
    /// The item.
    pub item: SseItem,
}

/// Why reading an event stream stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseReadError {
    /// Nothing arrived for the idle bound.
    #[error("nothing arrived for {0:?}")]
    Idle(Duration),
    /// The body failed (connection reset, …).
    #[error("{0}")]
    Body(String),
    /// The SSE framing broke (an event over the size cap, …).
    #[error("malformed event stream: {0}")]
    Framing(String),
}

/// Reads an SSE body item by item, timestamping each with its arrival time.
#[derive(Debug)]
pub struct SseReader<B> {
    body: B,
    started: Instant,
    decoder: SseDecoder,
    ready: VecDeque<TimedItem>,
    scratch: Vec<SseItem>,
    ended: bool,
}

impl<B> SseReader<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    /// A reader of `body`; timestamps count from `started`.
    pub fn new(body: B, started: Instant) -> SseReader<B> {
        SseReader {
            body,
            started,
            decoder: SseDecoder::new(),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            ended: false,
        }
    }

    /// The next item, or `None` at the end of the body; `idle` bounds each wait.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<TimedItem>, SseReadError> {
        self.next_with_raw(idle, None).await
    }

    /// [`next`](Self::next), appending every received byte to `raw`.
    pub async fn next_with_raw(
        &mut self,
        idle: Duration,
        mut raw: Option<&mut Vec<u8>>,
    ) -> Result<Option<TimedItem>, SseReadError> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            let frame = match tokio::time::timeout(idle, self.body.frame()).await {
                Err(_) => return Err(SseReadError::Idle(idle)),
                Ok(None) => {
                    self.ended = true;
                    continue;
                }
                Ok(Some(Err(e))) => return Err(SseReadError::Body(janus_core::error_chain(&e))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let at = self.started.elapsed();
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&data);
            }
            self.decoder
                .feed(&data, &mut self.scratch)
                .map_err(|e| SseReadError::Framing(e.to_string()))?;
            for item in self.scratch.drain(..) {
                self.ready.push_back(TimedItem { at, item });
            }
        }
    }

    /// When timestamps count from.
    pub fn started(&self) -> Instant {
        self.started
    }
}
