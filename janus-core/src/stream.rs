//! Typed chat-completion streams: SSE bytes in, [`StreamEvent`]s out.

use crate::chat::ChatCompletionChunk;
use crate::error::ErrorBody;
use crate::sse::{SseDecoder, SseError, SseItem, DONE_DATA};

/// One event of a chat-completion stream, as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A `chat.completion.chunk`.
    Chunk(ChatCompletionChunk),
    /// An SSE comment (`: ping` keep-alives, `: warming upstream`).
    Comment(String),
    /// `data: [DONE]`.
    Done,
    /// `data: {"error": …}`: the stream failed after it started.
    Error(ErrorBody),
}

/// Why a stream could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamDecodeError {
    /// The SSE framing broke (e.g. an event over the size cap).
    #[error("sse framing: {0}")]
    Sse(#[from] SseError),
    /// A `data:` payload was neither `[DONE]`, an error nor a chunk.
    #[error("malformed chunk: {source}: {data}")]
    MalformedChunk {
        /// The JSON error.
        source: serde_json::Error,
        /// The payload (truncated to 200 bytes).
        data: String,
    },
}

#[derive(serde::Deserialize)]
struct ErrorOnly {
    error: ErrorBody,
}

impl StreamEvent {
    /// Interprets one SSE item.
    pub fn from_sse(item: SseItem) -> Result<StreamEvent, StreamDecodeError> {
        match item {
            SseItem::Comment(text) => Ok(StreamEvent::Comment(text)),
            SseItem::Event(event) => StreamEvent::from_data(&event.data),
        }
    }

    /// Interprets one `data:` payload.
    pub fn from_data(data: &str) -> Result<StreamEvent, StreamDecodeError> {
        if data.trim() == DONE_DATA {
            return Ok(StreamEvent::Done);
        }
        // Most payloads are chunks; only fall back to the error shape when that fails.
        match serde_json::from_str::<ChatCompletionChunk>(data) {
            Ok(chunk) => Ok(StreamEvent::Chunk(chunk)),
            Err(source) => match serde_json::from_str::<ErrorOnly>(data) {
                Ok(ErrorOnly { error }) => Ok(StreamEvent::Error(error)),
                Err(_) => Err(StreamDecodeError::MalformedChunk {
                    source,
                    data: truncate(data, 200),
                }),
            },
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Incremental decoder of a chat-completion SSE byte stream into [`StreamEvent`]s.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    sse: SseDecoder,
    items: Vec<SseItem>,
}

impl ChunkDecoder {
    /// A decoder with the default event size cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose events may not exceed `limit` bytes.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        ChunkDecoder {
            sse: SseDecoder::with_max_event_bytes(limit),
            items: Vec::new(),
        }
    }

    /// Feeds bytes; appends the complete events to `out`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamDecodeError> {
        self.sse.feed(bytes, &mut self.items)?;
        for item in self.items.drain(..) {
            out.push(StreamEvent::from_sse(item)?);
        }
        Ok(())
    }

    /// True when no partial event is buffered.
    pub fn at_boundary(&self) -> bool {
        self.sse.at_boundary()
    }
}
