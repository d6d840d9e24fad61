//! The one serving loop every Janus server runs.
//!
//! Each connection is tracked in one of three states: waiting for request headers (from
//! accept, or from the first byte after an idle spell), active (at least one request in
//! flight, until its response body is done or dropped), or idle (a kept-alive connection
//! between requests). A sweeper closes connections that wait for headers longer than the
//! header-read timeout or idle longer than the idle timeout. At the connection cap, the
//! connection that has been idle or waiting longest is closed to make room (nginx-style);
//! only when every connection is active does a new one get 503 `server_overloaded`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::drain::{Drain, Phase};
use crate::ids::{RequestId, TraceContext};
use crate::response::{overloaded, BoxError, ResponseBody};
use tracing::Instrument as _;

/// Largest request head (request line + headers) accepted; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Descriptors kept back from the open-file limit for everything that is not a client
/// connection (listeners, logs, files, the runtime).
const RESERVED_DESCRIPTORS: u64 = 64;
/// Connections at once that only get a 503 (past the cap, nothing to evict).
const MAX_OVERLOAD_RESPONDERS: usize = 64;
/// Pause after a failed accept (usually EMFILE), so the loop neither spins nor dies.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How a server treats its connections. Every binary that serves exposes these as
/// settings (see [`ServeFlags`](crate::ServeFlags)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// A connection must deliver a complete request head this soon after it opens, or
    /// after its first byte following an idle spell (default 10 s).
    pub header_read_timeout: Duration,
    /// A request body must have arrived completely this soon after its head (default
    /// 30 s); services read bodies with [`read_body`](crate::read_body) and this deadline.
    pub body_timeout: Duration,
    /// A kept-alive connection with nothing in flight is closed after this (default 75 s).
    pub idle_timeout: Duration,
    /// Most client connections at once (default from the open-file limit, see
    /// [`default_max_connections`]).
    pub max_connections: usize,
    /// Most concurrent streams per HTTP/2 connection (default 128).
    pub http2_max_streams: u32,
    /// After shutdown is asked for, in-flight requests get this long (default 30 s).
    pub shutdown_grace: Duration,
    /// After the grace period, streams get this long to write their error event before
    /// the connections are dropped (default 1 s).
    pub forced_flush: Duration,
    /// The `component` field of every log line of a request (`gateway`, `competitor`,
    /// `sandbox`, …), so logs of several components can be told apart and merged.
    pub component: &'static str,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: default_max_connections(1),
            http2_max_streams: 128,
            shutdown_grace: Duration::from_secs(30),
            forced_flush: Duration::from_secs(1),
            component: "server",
        }
    }
}

/// The default connection cap: the open-file soft limit less a reserve, divided by the
/// descriptors each client connection costs (`per_connection`: 2 for a proxy, which
/// opens one upstream connection per client stream; 1 for a plain server). So a gateway
/// always keeps the descriptors its upstream calls need.
pub fn default_max_connections(per_connection: u64) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    let usable = soft.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    usize::try_from(usable / per_connection.max(1)).unwrap_or(usize::MAX)
}

/// The peer of a request's connection, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

const WAITING: u8 = 0;
const ACTIVE: u8 = 1;
const IDLE: u8 = 2;

/// One tracked connection.
#[derive(Debug)]
struct Conn {
    state: AtomicU8,
    /// Milliseconds since the tracker's epoch at which `state` began.
    since: AtomicU64,
    in_flight: AtomicUsize,
    killed: AtomicBool,
    kill: Notify,
}

#[derive(Debug)]
struct Tracker {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    emptied: Notify,
    overload_responders: AtomicUsize,
}

impl Tracker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self) -> (u64, Arc<Conn>) {
        let conn = Arc::new(Conn {
            state: AtomicU8::new(WAITING),
            since: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns().insert(id, conn.clone());
        (id, conn)
    }

    fn close(&self, id: u64) {
        let mut conns = self.conns();
        conns.remove(&id);
        if conns.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn len(&self) -> usize {
        self.conns().len()
    }

    /// Closes the connection that has been idle or waiting for headers longest; false
    /// when every connection is active.
    fn evict_one(&self) -> bool {
        let conns = self.conns();
        // Ties (same millisecond) go to the older connection, by id.
        let victim = conns
            .iter()
            .filter(|(_, c)| {
                c.state.load(Ordering::Acquire) != ACTIVE && !c.killed.load(Ordering::Acquire)
            })
            .min_by_key(|(id, c)| (c.since.load(Ordering::Acquire), **id));
        match victim {
            Some((_, conn)) => {
                conn.terminate();
                true
            }
            None => false,
        }
    }

    /// Closes connections past their header-read or idle timeout.
    fn sweep(&self, config: &ServeConfig) {
        let now = self.now_ms();
        let header_ms = u64::try_from(config.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle_ms = u64::try_from(config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut closed = 0usize;
        for conn in self.conns().values() {
            let age = now.saturating_sub(conn.since.load(Ordering::Acquire));
            let expired = match conn.state.load(Ordering::Acquire) {
                WAITING => age >= header_ms,
                IDLE => age >= idle_ms,
                _ => false,
            };
            if expired && !conn.killed.load(Ordering::Acquire) {
                conn.terminate();
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::debug!(
                closed,
                "closed connections past their header-read or idle timeout"
            );
        }
    }

    /// Closes every connection that has nothing in flight (shutdown).
    fn close_inactive(&self) {
        for conn in self.conns().values() {
            if conn.state.load(Ordering::Acquire) != ACTIVE {
                conn.terminate();
            }
        }
    }

    async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

impl Conn {
    fn terminate(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    fn set_state(&self, state: u8, now_ms: u64) {
        self.since.store(now_ms, Ordering::Release);
        self.state.store(state, Ordering::Release);
    }
}

/// Marks a connection active while a request is in flight: made when the request head
/// is complete, dropped with the response body (or with the handler future, if the
/// client went away first).
struct InFlight {
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl InFlight {
    fn begin(conn: Arc<Conn>, tracker: Arc<Tracker>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.set_state(ACTIVE, tracker.now_ms());
        InFlight { conn, tracker }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn.set_state(IDLE, self.tracker.now_ms());
        }
    }
}

/// A response body that keeps its connection marked active until it is done, and runs
/// (polls, then drops) inside its request's span, so what a streaming body logs — a relay
/// error, the access line written when it ends — carries the request's ids.
struct TrackedBody {
    inner: ResponseBody,
    in_flight: Option<InFlight>,
    span: tracing::Span,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.in_flight.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        drop(std::mem::replace(&mut self.inner, crate::response::empty()));
    }
}

/// A socket that notices the first byte of a new request on an idle connection.
struct TrackedIo {
    inner: TcpStream,
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self
                .conn
                .state
                .compare_exchange(IDLE, WAITING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.conn
                .since
                .store(self.tracker.now_ms(), Ordering::Release);
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn builder(config: &ServeConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header-read and idle timeouts are enforced by the tracker, not by hyper (whose
    // header timer would also cut idle keep-alive connections at the header timeout).
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_concurrent_streams(config.http2_max_streams)
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
    builder
}

/// Serves `handler` on `listener` until `shutdown` resolves, then drains through the
/// phases of `drain` (see [`Drain`]) and returns once every connection is gone.
///
/// Each request reaches the handler with its [`RequestId`] and [`PeerAddr`] in the
/// extensions; the response gets `X-Request-Id`. The caller owns the socket, so tests bind
/// `127.0.0.1:0` and read the port first.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    config: ServeConfig,
    drain: Drain,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    // What a load phase freed goes back to the system once the load is gone.
    crate::memory::start_trimmer();
    let tracker = Arc::new(Tracker {
        epoch: Instant::now(),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        emptied: Notify::new(),
        overload_responders: AtomicUsize::new(0),
    });
    let sweeper = {
        let tracker = tracker.clone();
        let config = config.clone();
        let tick = (config.header_read_timeout.min(config.idle_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_millis(500));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                tracker.sweep(&config);
            }
        })
    };
    let builder = Arc::new(builder(&config));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        if tracker.len() >= config.max_connections && !tracker.evict_one() {
            refuse(stream, peer, &tracker, &config);
            continue;
        }
        spawn_connection(
            stream,
            peer,
            &tracker,
            &builder,
            &drain,
            config.component,
            handler.clone(),
        );
    }
    drop(listener);
    drain.advance(Phase::Draining);
    tracker.close_inactive();
    let open = tracker.len();
    tracing::info!(
        open_connections = open,
        grace_ms = u64::try_from(config.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
        "shutting down; draining connections"
    );
    if tokio::time::timeout(config.shutdown_grace, tracker.wait_empty())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = tracker.len(),
            "grace period over; ending remaining streams"
        );
        drain.advance(Phase::Forced);
        let _ = tokio::time::timeout(config.forced_flush, tracker.wait_empty()).await;
    }
    drain.advance(Phase::Closed);
    if tokio::time::timeout(Duration::from_millis(500), tracker.wait_empty())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = tracker.len(),
            "some connections did not close"
        );
    }
    sweeper.abort();
    Ok(())
}

fn spawn_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    tracker: &Arc<Tracker>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    drain: &Drain,
    component: &'static str,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let (id, conn) = tracker.open();
    let io = TrackedIo {
        inner: stream,
        conn: conn.clone(),
        tracker: tracker.clone(),
    };
    let service = {
        let conn = conn.clone();
        let tracker = tracker.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let in_flight = InFlight::begin(conn.clone(), tracker.clone());
            let request_id = RequestId::from_headers(request.headers());
            let trace = TraceContext::from_headers(request.headers());
            // Every line logged for this request carries these (see `runtime`); services
            // record `competitor` once they know it.
            let span = tracing::info_span!(
                "request",
                component = component,
                request_id = request_id.as_str(),
                trace_id = trace.trace_id(),
                span_id = trace.span_id(),
                parent_span_id = trace.parent_span_id(),
                competitor = tracing::field::Empty,
            );
            request.extensions_mut().insert(request_id.clone());
            request.extensions_mut().insert(trace);
            request.extensions_mut().insert(PeerAddr(peer));
            let response = {
                let _entered = span.enter();
                handler(request)
            };
            let response = response.instrument(span.clone());
            async move {
                let response = response.await;
                let (mut parts, body) = response.into_parts();
                parts.headers.insert(
                    janus_core::contract::REQUEST_ID_HEADER,
                    request_id.header_value().clone(),
                );
                let body = TrackedBody {
                    inner: body,
                    in_flight: Some(in_flight),
                    span,
                };
                Ok::<_, std::convert::Infallible>(Response::from_parts(parts, body))
            }
        })
    };
    let builder = builder.clone();
    let tracker = tracker.clone();
    let mut phases = drain.subscribe();
    tokio::spawn(async move {
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        let mut draining = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                // Dropping the connection closes the socket and drops its bodies and
                // handler futures, which cancels their work.
                () = conn.kill.notified() => break,
                changed = phases.changed() => {
                    let phase = if changed.is_ok() { *phases.borrow_and_update() } else { Phase::Closed };
                    match phase {
                        Phase::Serving => {}
                        Phase::Draining | Phase::Forced if !draining => {
                            draining = true;
                            connection.as_mut().graceful_shutdown();
                        }
                        Phase::Draining | Phase::Forced => {}
                        Phase::Closed => break,
                    }
                }
            }
        }
        tracker.close(id);
    });
}

/// Past the cap with nothing to evict: answer 503 `server_overloaded` and close.
fn refuse(stream: TcpStream, peer: SocketAddr, tracker: &Arc<Tracker>, config: &ServeConfig) {
    if tracker.overload_responders.fetch_add(1, Ordering::AcqRel) >= MAX_OVERLOAD_RESPONDERS {
        tracker.overload_responders.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!(%peer, "at the connection cap; dropping the connection");
        return;
    }
    tracing::warn!(%peer, max_connections = config.max_connections, "at the connection cap; answering 503");
    let tracker = tracker.clone();
    let limit = config.header_read_timeout;
    tokio::spawn(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(false).max_buf_size(MAX_HEADER_BYTES);
        let service = hyper::service::service_fn(|_request: Request<Incoming>| async {
            Ok::<_, std::convert::Infallible>(overloaded(1))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(limit, connection).await;
        tracker.overload_responders.fetch_sub(1, Ordering::AcqRel);
    });
}
