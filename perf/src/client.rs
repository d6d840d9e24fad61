//! The load generator's HTTP/1.1 client: one keep-alive connection per worker (no pool, so
//! nothing but the request itself is measured), and an SSE splitter that timestamps events.
//!
//! The same code talks to the gateway and to the mock directly.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::wire;

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Connecting or the HTTP exchange failed.
    #[error("connection: {0}")]
    Io(String),
    /// The server answered with something other than 200.
    #[error("status {0}")]
    Status(StatusCode),
    /// The body was not what the mock sends.
    #[error("unexpected body: {0}")]
    Body(String),
    /// The call took longer than allowed.
    #[error("timed out")]
    Timeout,
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    /// Connects with `TCP_NODELAY` and performs the HTTP/1.1 handshake.
    pub async fn open(addr: SocketAddr) -> Result<Conn, CallError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| CallError::Io(format!("connect {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("127.0.0.1"));
        Ok(Conn { addr, sender, host })
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True when the connection can take another request.
    pub fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    async fn send(&mut self, body: Bytes) -> Result<Response<Incoming>, CallError> {
        self.sender
            .ready()
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        let request = Request::post(wire::CHAT_PATH)
            .header(header::HOST, self.host.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(Full::new(body))
            .map_err(|e| CallError::Io(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| CallError::Io(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(CallError::Status(response.status()));
        }
        Ok(response)
    }

    /// A non-streaming call; returns the length of the reply body once all of it arrived.
    pub async fn complete(&mut self, body: Bytes, expect_len: usize) -> Result<usize, CallError> {
        let response = self.send(body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Io(e.to_string()))?
            .to_bytes();
        if bytes.len() != expect_len {
            return Err(CallError::Body(format!(
                "{} bytes where the mock sends {expect_len}",
                bytes.len()
            )));
        }
        Ok(bytes.len())
    }

    /// A streaming call: returns the response once its headers arrived, after checking the
    /// content type.
    pub async fn stream(&mut self, body: Bytes) -> Result<Response<Incoming>, CallError> {
        let response = self.send(body).await?;
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(CallError::Body(
                "content type is not text/event-stream".into(),
            ));
        }
        Ok(response)
    }
}

/// One SSE event as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A comment such as `: ping`.
    Comment,
    /// `data: [DONE]`.
    Done,
    /// A chunk with its `x_seq` and `x_sent_ns` stamps (0 when absent).
    Chunk {
        /// Sequence number the mock gave it.
        seq: u64,
        /// Wall-clock nanoseconds when the mock sent it.
        sent_ns: u64,
    },
    /// An error event (`data: {"error":…}`).
    Error,
}

/// Splits a byte stream into SSE events (blank-line separated). Linear: each byte is scanned
/// once; only an unfinished event is kept.
#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
    scanned: usize,
}

impl SseSplitter {
    /// Feeds bytes and appends the events they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        // Resume the search one byte back: a "\n\n" may straddle two reads.
        let mut from = self.scanned.saturating_sub(1);
        while let Some(at) = memchr::memmem::find(&self.buf[from..], b"\n\n") {
            let end = from + at;
            out.push(classify(&self.buf[start..end]));
            start = end + 2;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
    }

    /// Bytes of an event not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn classify(event: &[u8]) -> Event {
    let event = event.strip_prefix(b"\r").unwrap_or(event);
    if event.first() == Some(&b':') {
        return Event::Comment;
    }
    let data = event.strip_prefix(b"data:").unwrap_or(event);
    let data = data.strip_prefix(b" ").unwrap_or(data);
    if data == b"[DONE]" {
        return Event::Done;
    }
    if data.starts_with(b"{\"error\"") {
        return Event::Error;
    }
    Event::Chunk {
        seq: wire::find_u64(data, wire::SEQ_KEY).unwrap_or(0),
        sent_ns: wire::find_u64(data, wire::SENT_KEY).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_handles_events_split_anywhere() {
        let mut stream = wire::chunk_event(wire::ChunkKind::Role, 0, 11);
        stream.extend_from_slice(b": ping\n\n");
        stream.extend_from_slice(&wire::chunk_event(
            wire::ChunkKind::Content { n: 1, last: true },
            1,
            22,
        ));
        stream.extend_from_slice(wire::DONE_EVENT);
        let want = vec![
            Event::Chunk {
                seq: 0,
                sent_ns: 11,
            },
            Event::Comment,
            Event::Chunk {
                seq: 1,
                sent_ns: 22,
            },
            Event::Done,
        ];
        for cut in 1..stream.len() {
            let mut splitter = SseSplitter::default();
            let mut got = Vec::new();
            splitter.feed(&stream[..cut], &mut got);
            splitter.feed(&stream[cut..], &mut got);
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(splitter.pending(), 0);
        }
    }
}
