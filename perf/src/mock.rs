//! The mock competitor: the physical floor the gateway is compared with.
//!
//! Deliberately minimal so that what it costs is mostly hyper: a non-streaming request gets
//! a prebuilt ~1 KiB reply with zero delay after one substring search of the body; only a
//! streaming request (`"stream":true`) has its body parsed, for the `x_perf` plan.
//!
//! A stream is the role chunk, `chunks` content chunks paced against deadlines measured from
//! the stream's start (chunk `n` is due at `start + (n-1) * interval`, so a late wake-up does
//! not push every later chunk back), the usage chunk when asked for, and `[DONE]`. Each chunk
//! is stamped with the wall clock at the moment hyper pulls it from the body. An idle stream
//! sends headers and then nothing until its hold time passes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

use crate::wire::{self, ChunkKind, StreamPlan};

/// Response body of the mock: a fixed reply or a paced stream.
pub type MockBody = Either<Full<Bytes>, ChunkBody>;

/// Serves the mock on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let reply = Bytes::from(wire::completion_reply());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: pause rather than spin.
                        eprintln!("perf-mock: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let reply = reply.clone();
                        async move { Ok::<_, Infallible>(handle(request, reply).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct StreamRequest {
    #[serde(default)]
    x_perf: StreamPlan,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn fixed(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<MockBody> {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn handle(request: Request<Incoming>, reply: Bytes) -> Response<MockBody> {
    let path = request.uri().path();
    if path == "/health" {
        return fixed(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(
                br#"{"status":"ok","version":"perf-mock","timestamp":"1970-01-01T00:00:00Z"}"#,
            ),
        );
    }
    if path != wire::CHAT_PATH || request.method() != Method::POST {
        return fixed(
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(br#"{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}"#),
        );
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return fixed(StatusCode::BAD_REQUEST, "application/json", Bytes::new()),
    };
    if memchr::memmem::find(&body, b"\"stream\":true").is_none() {
        return fixed(StatusCode::OK, "application/json", reply);
    }
    let parsed: StreamRequest = serde_json::from_slice(&body).unwrap_or_default();
    let usage = parsed.stream_options.is_some_and(|o| o.include_usage);
    let mut response = Response::new(Either::Right(ChunkBody::new(parsed.x_perf, usage)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    Content(u32),
    Usage,
    Done,
    End,
}

/// A paced chunk stream.
pub struct ChunkBody {
    plan: StreamPlan,
    usage: bool,
    start: Instant,
    step: Step,
    sleep: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for ChunkBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBody")
            .field("plan", &self.plan)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl ChunkBody {
    fn new(plan: StreamPlan, usage: bool) -> Self {
        let start = Instant::now();
        ChunkBody {
            plan,
            usage,
            start,
            // An idle stream skips straight to the long wait before [DONE].
            step: if plan.idle { Step::Done } else { Step::Role },
            sleep: Box::pin(tokio::time::sleep_until(start)),
        }
    }

    /// When the current step is due.
    fn due(&self) -> Instant {
        let interval = Duration::from_micros(self.plan.interval_us);
        match self.step {
            _ if self.plan.idle => self.start + Duration::from_millis(self.plan.hold_ms),
            Step::Content(n) => self.start + interval * n.saturating_sub(1),
            _ => self.start,
        }
    }

    fn next_step(&self) -> Step {
        match self.step {
            Step::Role if self.plan.chunks > 0 => Step::Content(1),
            Step::Content(n) if n < self.plan.chunks => Step::Content(n + 1),
            Step::Content(_) if self.usage => Step::Usage,
            Step::Done | Step::End => Step::End,
            _ => Step::Done,
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.step == Step::End {
            return Poll::Ready(None);
        }
        let due = this.due();
        if Instant::now() < due {
            if this.sleep.deadline() != due {
                this.sleep.as_mut().reset(due);
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let sent = wire::wall_ns();
        let bytes = match this.step {
            Step::Role => wire::chunk_event(ChunkKind::Role, 0, sent),
            Step::Content(n) => wire::chunk_event(
                ChunkKind::Content {
                    n,
                    last: n == this.plan.chunks,
                },
                n,
                sent,
            ),
            Step::Usage => wire::chunk_event(
                ChunkKind::Usage {
                    completion_tokens: this.plan.chunks,
                },
                this.plan.chunks + 1,
                sent,
            ),
            Step::Done | Step::End => wire::DONE_EVENT.to_vec(),
        };
        this.step = this.next_step();
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))))
    }

    fn is_end_stream(&self) -> bool {
        self.step == Step::End
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
