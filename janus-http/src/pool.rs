//! A connection pool for one HTTP/1 origin, on hyper's own client connections.
//!
//! The gateway's hot path sends every chat request to one of a few known competitors, so
//! it has no use for a general client's pool keyed by scheme and authority (a hashed map
//! per checkout, a task spawned per request to see the connection ready again, a `Timeout`
//! and a `Checkout` future around every send). An [`OriginPool`] holds the idle
//! connections of one origin in a stack (the warmest on top), hands one out per request
//! and takes it back when its response body is done: read to the end, or dropped (then
//! hyper keeps the connection only if the rest of the body had already arrived).
//!
//! A request that could not be written because a reused connection had just closed (the
//! peer's idle timeout racing our send) is sent again on a fresh connection; a request
//! that was written is never sent twice (chat calls are not idempotent).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Options of an [`OriginPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// An idle connection is not reused (and is closed) after this.
    pub idle_timeout: Duration,
    /// Idle connections kept; a connection coming back to a full pool is closed.
    pub max_idle: usize,
    /// A fixed HTTP/1 read buffer per connection (less memory for many small streams).
    pub read_buf_exact_size: Option<usize>,
}

impl PoolOptions {
    /// The [`crate::ClientOptions`] defaults with this connect timeout.
    pub fn new(connect_timeout: Duration) -> PoolOptions {
        let client = crate::ClientOptions::new(connect_timeout);
        PoolOptions {
            connect_timeout,
            idle_timeout: client.pool_idle_timeout,
            max_idle: client.pool_max_idle_per_host,
            read_buf_exact_size: None,
        }
    }

    /// With a fixed read buffer size.
    pub fn read_buf_exact_size(mut self, size: usize) -> PoolOptions {
        self.read_buf_exact_size = Some(size);
        self
    }
}

/// Why a request through an [`OriginPool`] got no response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL given to [`OriginPool::new`] is not a plain `http://host[:port]` origin.
    #[error("not an http:// origin: {0}")]
    BadOrigin(String),
    /// No connection could be opened.
    #[error("tcp connect error: {0}")]
    Connect(#[source] io::Error),
    /// The connect timeout ran out.
    #[error("tcp connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The HTTP/1 handshake or the exchange failed.
    #[error("{0}")]
    Http(#[source] hyper::Error),
}

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: Instant,
}

struct Inner {
    /// `host:port` to connect to (brackets kept for IPv6, as `to_socket_addrs` wants).
    host: String,
    port: u16,
    host_header: HeaderValue,
    options: PoolOptions,
    idle: Mutex<Vec<Idle>>,
}

/// Pooled HTTP/1 connections to one origin (cheap to clone: a shared handle).
#[derive(Clone)]
pub struct OriginPool {
    inner: Arc<Inner>,
}

impl fmt::Debug for OriginPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginPool")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl OriginPool {
    /// A pool for the origin of `url` (`http://host[:port]`, any path is ignored). Starts
    /// a sweeper that closes connections idle past the idle timeout; it ends with the
    /// pool, so this must run inside a Tokio runtime.
    pub fn new(url: &Uri, options: PoolOptions) -> Result<OriginPool, PoolError> {
        let bad = || PoolError::BadOrigin(url.to_string());
        if url.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = url.authority().ok_or_else(bad)?;
        let host = authority.host();
        if host.is_empty() {
            return Err(bad());
        }
        let port = authority.port_u16().unwrap_or(80);
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        let inner = Arc::new(Inner {
            host: host.to_owned(),
            port,
            host_header,
            options,
            idle: Mutex::new(Vec::new()),
        });
        spawn_sweeper(Arc::downgrade(&inner));
        Ok(OriginPool { inner })
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.inner.idle().len()
    }

    /// Sends `request` on an idle connection, or a new one. The request's URI is sent as
    /// its path and query (origin form); `Host` is set when missing.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<PooledBody>, PoolError> {
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        *request.uri_mut() = target;
        request
            .headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| self.inner.host_header.clone());
        while let Some(mut sender) = self.checkout().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.pooled(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    // Not written: the connection closed under us; try the next one.
                    Some(unsent) => request = unsent,
                    None => return Err(PoolError::Http(failed.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(PoolError::Http)?;
        Ok(self.pooled(response, sender))
    }

    /// The most recently returned idle connection that is still usable.
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self.inner.idle().pop()?;
            if idle.since.elapsed() >= self.inner.options.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            // A connection comes back when its response body ended; its dispatcher may not
            // have been polled since, so wait for it to say it is ready (or closed).
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PoolError> {
        let options = &self.inner.options;
        let host = self
            .inner
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let stream = tokio::time::timeout(
            options.connect_timeout,
            TcpStream::connect((host, self.inner.port)),
        )
        .await
        .map_err(|_| PoolError::ConnectTimeout(options.connect_timeout))?
        .map_err(PoolError::Connect)?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let mut builder = http1::Builder::new();
        if let Some(size) = options.read_buf_exact_size {
            builder.read_buf_exact_size(Some(size));
        }
        let (sender, connection) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pooled connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn pooled(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<Full<Bytes>>,
    ) -> Response<PooledBody> {
        let (parts, body) = response.into_parts();
        let mut body = PooledBody {
            inner: body,
            sender: Some(sender),
            pool: Arc::downgrade(&self.inner),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        Response::from_parts(parts, body)
    }
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Pushes and pops cannot leave the stack inconsistent if a holder panicked.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn put_back(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.options.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn sweep(&self) {
        let timeout = self.options.idle_timeout;
        self.idle()
            .retain(|idle| idle.since.elapsed() < timeout && !idle.sender.is_closed());
    }
}

fn spawn_sweeper(pool: Weak<Inner>) {
    let Some(period) = pool
        .upgrade()
        .map(|inner| (inner.options.idle_timeout / 2).max(Duration::from_millis(100)))
    else {
        return;
    };
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match pool.upgrade() {
                Some(inner) => inner.sweep(),
                None => return,
            }
        }
    });
}

/// A response body from an [`OriginPool`]. Read to its end, it gives its connection back
/// to the pool. Dropped before, it gives it back too, unchecked: hyper reads what of the
/// body has already arrived, and keeps the connection only if that was all of it (a relay
/// that stops at `[DONE]` has usually received the final chunk too), else closes it. The
/// next checkout waits for that verdict (`ready`), which comes on the connection's next
/// poll.
pub struct PooledBody {
    inner: Incoming,
    sender: Option<SendRequest<Full<Bytes>>>,
    pool: Weak<Inner>,
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody")
            .field("returns_connection", &self.sender.is_some())
            .finish()
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.put_back(sender);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.release();
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => {
                self.sender.take();
            }
            _ => {}
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
